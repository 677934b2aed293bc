/* test-nix-narinfo.c: nix32, narinfo parsing and signatures (a real vector from Nix 2.8), forms Nix accepts and forgeries it refuses. */
#include "tests.h"

#include "crypto.h"
#include "err.h"
#include "nix-narinfo.h"

/* Made by Debian's nix 2.8: `nix-store --generate-binary-cache-key fleet-1`, `nix store sign`, `nix copy --to file://`. */
static const char fleet_pk[] = "fleet-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM=";
static const char real_narinfo[] =
        "StorePath: /nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0\n"
        "URL: nar/04y1kqny7nmld02rcz7sigfh6bc1finpahfiwgypzjpaqzh8pr4f.nar.xz\n"
        "Compression: xz\n"
        "FileHash: sha256:04y1kqny7nmld02rcz7sigfh6bc1finpahfiwgypzjpaqzh8pr4f\n"
        "FileSize: 300\n"
        "NarHash: sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6\n"
        "NarSize: 776\n"
        "References: 0qn246ynpxiyp58ag592h7r5iz0nr99w-base\n"
        "Deriver: q54mr9z1lwn42mf5y42pi330j2ajyrih-nixos-system-drone-1.0.drv\n"
        "Sig: fleet-1:4AZB891uMvaCwQ1HCh+vIxxNQjJJCXGR5TDOVNwvrl3lrPKB43W0CgnM6AAQRbACWr1FBI/R+CnUe/nY8T4PCg==\n";

static void test_nix32(void **state) {
        uint8_t h[32], back[32], h1[20];
        char s[64];
        (void) state;

        /* `nix-hash --type sha256 --to-base32` of SHA-256("") and SHA-256("abc"); sha1("abc"). */
        assert_int_equal(crypto_sha256("", 0, h), 0);
        nix32_encode(h, 32, s);
        assert_string_equal(s, "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
        assert_int_equal(nix32_decode(s, back, 32), 0);
        assert_memory_equal(h, back, 32);
        assert_int_equal(crypto_sha256("abc", 3, h), 0);
        nix32_encode(h, 32, s);
        assert_string_equal(s, "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
        assert_int_equal(hex_decode("a9993e364706816aba3e25717850c26c9cd0d89d", h1, 20), 0);
        nix32_encode(h1, 20, s);
        assert_string_equal(s, "kpcd173cq987hw957sx6m0868wv3x6d9");

        assert_int_equal(nix32_decode("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5", back, 32), -RINGIL_EMALFORMED);
        assert_int_equal(nix32_decode("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicyes", back, 32), -RINGIL_EMALFORMED);
        assert_int_equal(nix32_decode("1B8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", back, 32), -RINGIL_EMALFORMED);
        /* 52 digits carry 260 bits: a first digit >= 2 sets bits beyond the hash. */
        assert_int_equal(nix32_decode("2b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", back, 32), -RINGIL_EMALFORMED);
}

/* SHA-256("abc") in the three spellings Nix prints: narinfo's nix32, hex, and path-info's SRI. */
static void test_hash_spellings(void **state) {
        uint8_t want[32], h[32];
        (void) state;

        assert_int_equal(crypto_sha256("abc", 3, want), 0);
        assert_int_equal(nix_hash_parse("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", h), 0);
        assert_memory_equal(h, want, 32);
        assert_int_equal(nix_hash_parse("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h), 0);
        assert_memory_equal(h, want, 32);
        assert_int_equal(nix_hash_parse("sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", h), 0);
        assert_memory_equal(h, want, 32);
        /* other algorithms, lengths and encodings are malformed */
        assert_true(nix_hash_parse("sha512:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", h) < 0);
        assert_true(nix_hash_parse("sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa", h) < 0);
        assert_true(nix_hash_parse("sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0AAAA=", h) < 0);
        assert_true(nix_hash_parse("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", h) < 0);
        assert_true(nix_hash_parse("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", h) < 0);
        assert_true(nix_hash_parse("", h) < 0);
}

static void test_real_narinfo_verifies(void **state) {
        struct narinfo ni;
        char *fp = NULL;
        (void) state;

        assert_int_equal(narinfo_parse(real_narinfo, strlen(real_narinfo), &ni), 0);
        assert_string_equal(ni.store_path, "/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0");
        assert_string_equal(ni.url, "nar/04y1kqny7nmld02rcz7sigfh6bc1finpahfiwgypzjpaqzh8pr4f.nar.xz");
        assert_string_equal(ni.compression, "xz");
        assert_true(ni.has_file_hash && ni.has_file_size);
        assert_int_equal(ni.file_size, 300);
        assert_int_equal(ni.nar_size, 776);
        assert_int_equal(ni.n_refs, 1);
        assert_string_equal(ni.refs[0], "0qn246ynpxiyp58ag592h7r5iz0nr99w-base");
        assert_int_equal(ni.n_sigs, 1);
        assert_int_equal(narinfo_fingerprint(&ni, &fp), 0);
        assert_string_equal(fp, "1;/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0;"
                                "sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6;776;"
                                "/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base");
        free(fp);
        assert_int_equal(narinfo_verify(&ni, fleet_pk), 0);
        /* The trusted key among others, in any position. */
        assert_int_equal(narinfo_verify(&ni, "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= "
                                             "fleet-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM="), 0);
        /* No trusted key by that name; a key of that name that did not sign it. */
        assert_int_equal(narinfo_verify(&ni, "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="),
                         -RINGIL_EUNTRUSTED);
        assert_int_equal(narinfo_verify(&ni, "fleet-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="), -RINGIL_EBADSIG);
        assert_int_equal(narinfo_verify(&ni, "fleet-1"), -RINGIL_EMALFORMED);
        /* The same signature spelt with non-zero padding bits ("…PCg==" → "…PCm==") is not accepted. */
        {
                char *sig = ni.sigs[0], *eq = strstr(sig, "==");
                assert_non_null(eq);
                assert_int_equal(eq[-1], 'g');
                eq[-1] = 'm';
                assert_int_equal(narinfo_verify(&ni, fleet_pk), -RINGIL_EBADSIG);
                eq[-1] = 'g';
                assert_int_equal(narinfo_verify(&ni, fleet_pk), 0);
        }
        /* Every signed field matters. */
        ni.nar_size++;
        assert_int_equal(narinfo_verify(&ni, fleet_pk), -RINGIL_EBADSIG);
        ni.nar_size--;
        ni.nar_hash[7] ^= 1;
        assert_int_equal(narinfo_verify(&ni, fleet_pk), -RINGIL_EBADSIG);
        ni.nar_hash[7] ^= 1;
        ni.refs[0][0] = '1';
        assert_int_equal(narinfo_verify(&ni, fleet_pk), -RINGIL_EBADSIG);
        ni.refs[0][0] = '0';
        ni.store_path[20] = 'x';
        assert_int_equal(narinfo_verify(&ni, fleet_pk), -RINGIL_EBADSIG);
        ni.store_path[20] = 'p';
        assert_int_equal(narinfo_verify(&ni, fleet_pk), 0);
        narinfo_done(&ni);
}

static void test_narinfo_forms(void **state) {
        struct narinfo ni;
        char *t;
        (void) state;

        /* Base16 NarHash: same fingerprint, same signature. */
        t = test_replace(real_narinfo, "NarHash: sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6",
                    "NarHash: sha256:e621ff692d6ce102a80df2dbc088985784a740a3d39459e606702b87016fec80");
        assert_int_equal(narinfo_parse(t, strlen(t), &ni), 0);
        assert_int_equal(narinfo_verify(&ni, fleet_pk), 0);
        narinfo_done(&ni);
        free(t);
        /* Empty References (Nix writes "References: "), unknown keys skipped, no trailing newline. */
        t = test_replace(real_narinfo, "References: 0qn246ynpxiyp58ag592h7r5iz0nr99w-base\n", "References: \nSystem: x86_64-linux\n");
        t[strlen(t) - 1] = '\0';
        assert_int_equal(narinfo_parse(t, strlen(t), &ni), 0);
        assert_int_equal(ni.n_refs, 0);
        assert_int_equal(narinfo_verify(&ni, fleet_pk), -RINGIL_EBADSIG);   /* the signature covered the reference */
        narinfo_done(&ni);
        free(t);
        /* Compression defaults to bzip2 as in Nix. */
        t = test_replace(real_narinfo, "Compression: xz\n", "");
        assert_int_equal(narinfo_parse(t, strlen(t), &ni), 0);
        assert_string_equal(ni.compression, "bzip2");
        narinfo_done(&ni);
        free(t);
}

static void test_narinfo_rejects(void **state) {
        static const struct {
                const char *from, *to;
                int err;
        } cases[] = {
                { "StorePath: /nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0\n", "", -RINGIL_EMALFORMED },
                { "StorePath: /nix/store/w04b3", "StorePath: /nix/store/W04b3", -RINGIL_EMALFORMED },
                { "StorePath: /nix/store/", "StorePath: /gnu/store/", -RINGIL_EMALFORMED },
                { "NarSize: 776", "NarSize: 0", -RINGIL_EMALFORMED },
                { "NarSize: 776", "NarSize: -1", -RINGIL_EMALFORMED },
                { "NarSize: 776", "NarSize: 776\nNarSize: 776", -RINGIL_EMALFORMED },
                { "NarSize: 776\n", "", -RINGIL_EMALFORMED },
                { "NarHash: sha256:1", "NarHash: md5:1", -RINGIL_EMALFORMED },
                { "NarHash: sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6", "NarHash: sha256-EAN0/8XkrQw=", -RINGIL_EMALFORMED },
                { "FileHash: sha256:04y1", "FileHash: sha256:04e1", -RINGIL_EMALFORMED },
                { "URL: nar/", "URL: https://evil.example/nar/", -RINGIL_EMALFORMED },
                { "URL: nar/", "URL: nar/../", -RINGIL_EMALFORMED },
                { "URL: nar/", "URL: nar/x/", -RINGIL_EMALFORMED },
                { "URL: nar/04y1kqny7nmld02rcz7sigfh6bc1finpahfiwgypzjpaqzh8pr4f.nar.xz", "URL: nar/", -RINGIL_EMALFORMED },
                { "URL: nar/04y1kqny7nmld02rcz7sigfh6bc1finpahfiwgypzjpaqzh8pr4f.nar.xz", "URL: nar/x.part", -RINGIL_EMALFORMED },
                { "URL: nar/", "URL: /nar/", -RINGIL_EMALFORMED },
                { "URL: nar/", "URL: nar/.", -RINGIL_EMALFORMED },
                { "Compression: xz", "Compression: lzma", -RINGIL_EMALFORMED },
                { "References: 0qn246", "References: ../../etc/passwd 0qn246", -RINGIL_EMALFORMED },
                { "References: 0qn246ynpxiyp58ag592h7r5iz0nr99w-base", "References: 0qn246ynpxiyp58ag592h7r5iz0nr99w", -RINGIL_EMALFORMED },
                { "Deriver: ", "Deriver:x", -RINGIL_EMALFORMED },
                { "Deriver: q54", "\nDeriver: q54", -RINGIL_EMALFORMED },
                { "Deriver: q54", "Deriver q54", -RINGIL_EMALFORMED },
                { "FileSize: 300", "FileSize: 300\nFileSize: 300", -RINGIL_EMALFORMED },
        };
        struct narinfo ni = { .nar_size = 42 };
        (void) state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *t = test_replace(real_narinfo, cases[i].from, cases[i].to);
                int r = narinfo_parse(t, strlen(t), &ni);
                if (r != cases[i].err)
                        fail_msg("case %zu (%s): %d", i, cases[i].to, r);
                assert_int_equal(ni.nar_size, 42);   /* untouched on failure */
                free(t);
        }
        /* NUL inside, too many signatures, too large. */
        {
                char t[sizeof(real_narinfo)];
                memcpy(t, real_narinfo, sizeof(t));
                t[40] = '\0';
                assert_int_equal(narinfo_parse(t, sizeof(t) - 1, &ni), -RINGIL_EMALFORMED);
        }
        {
                char *t = strdup(real_narinfo), *u;
                for (int i = 0; i < 17; i++) {
                        assert_true(asprintf(&u, "%sSig: k%d:AAAA\n", t, i) > 0);
                        free(t);
                        t = u;
                }
                assert_int_equal(narinfo_parse(t, strlen(t), &ni), -RINGIL_ETOOBIG);
                free(t);
        }
        {
                size_t n = NARINFO_MAX + 1;
                char *t = malloc(n);
                memset(t, 'a', n);
                assert_int_equal(narinfo_parse(t, n, &ni), -RINGIL_ETOOBIG);
                free(t);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nix32),
                cmocka_unit_test(test_hash_spellings),
                cmocka_unit_test(test_real_narinfo_verifies),
                cmocka_unit_test(test_narinfo_forms),
                cmocka_unit_test(test_narinfo_rejects),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
