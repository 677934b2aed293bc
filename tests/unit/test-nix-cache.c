/* test-nix-cache.c: nix32, narinfo parsing and signatures (a real vector from Nix 2.8), and the closure mirror over a fake cache. */
#include "tests.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "nix-cache.h"

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

static char *replace(const char *s, const char *from, const char *to) {
        const char *at = strstr(s, from);
        char *out;

        assert_non_null(at);
        assert_true(asprintf(&out, "%.*s%s%s", (int) (at - s), s, to, at + strlen(from)) > 0);
        return out;
}

static void test_narinfo_forms(void **state) {
        struct narinfo ni;
        char *t;
        (void) state;

        /* Base16 NarHash: same fingerprint, same signature. */
        t = replace(real_narinfo, "NarHash: sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6",
                    "NarHash: sha256:e621ff692d6ce102a80df2dbc088985784a740a3d39459e606702b87016fec80");
        assert_int_equal(narinfo_parse(t, strlen(t), &ni), 0);
        assert_int_equal(narinfo_verify(&ni, fleet_pk), 0);
        narinfo_done(&ni);
        free(t);
        /* Empty References (Nix writes "References: "), unknown keys skipped, no trailing newline. */
        t = replace(real_narinfo, "References: 0qn246ynpxiyp58ag592h7r5iz0nr99w-base\n", "References: \nSystem: x86_64-linux\n");
        t[strlen(t) - 1] = '\0';
        assert_int_equal(narinfo_parse(t, strlen(t), &ni), 0);
        assert_int_equal(ni.n_refs, 0);
        assert_int_equal(narinfo_verify(&ni, fleet_pk), -RINGIL_EBADSIG);   /* the signature covered the reference */
        narinfo_done(&ni);
        free(t);
        /* Compression defaults to bzip2 as in Nix. */
        t = replace(real_narinfo, "Compression: xz\n", "");
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
                char *t = replace(real_narinfo, cases[i].from, cases[i].to);
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

/* ---- a fake cache for the mirror ---- */

struct entry {
        char path[96];       /* request path: /HASH.narinfo or /nar/FILE */
        char *body;
        size_t len;
};

struct fake {
        struct entry e[32];
        size_t n;
        size_t cut;          /* at most this many bytes per range answer (0: no limit) */
        unsigned gets, ranges;
        EVP_PKEY *key;
        char pk[128];
};

static struct entry *fake_find(struct fake *f, const char *path) {
        for (size_t i = 0; i < f->n; i++)
                if (streq(f->e[i].path, path))
                        return &f->e[i];
        return NULL;
}

static int fake_get(void *userdata, const char *path, size_t max, long *ret_status, struct buf *ret_body) {
        struct fake *f = userdata;
        struct entry *e = fake_find(f, path);
        struct buf b = BUF_INIT(max);

        __atomic_fetch_add(&f->gets, 1, __ATOMIC_RELAXED);
        *ret_status = e ? 200 : 404;
        if (e && buf_append(&b, e->body, e->len) < 0)
                return -EFBIG;
        *ret_body = b;
        return 0;
}

static int64_t fake_get_range(void *userdata, const char *path, uint64_t off, uint64_t len, nixcache_sink_t sink,
                              void *sink_userdata, long *ret_status) {
        struct fake *f = userdata;
        struct entry *e = fake_find(f, path);
        size_t k;

        __atomic_fetch_add(&f->ranges, 1, __ATOMIC_RELAXED);
        if (!e) {
                *ret_status = 404;
                return -EPROTO;
        }
        *ret_status = 206;
        if (off >= e->len)
                return -EPROTO;
        k = (size_t) MIN(len, (uint64_t) (e->len - off));
        if (f->cut && k > f->cut)
                k = f->cut;
        if (sink(sink_userdata, e->body + off, k) < 0)
                return -EIO;
        return (int64_t) k;
}

static void fake_put(struct fake *f, const char *path, const void *body, size_t len) {
        struct entry *e = fake_find(f, path);

        if (!e) {
                assert_true(f->n < 32);
                e = &f->e[f->n++];
                snprintf(e->path, sizeof(e->path), "%s", path);
        } else
                free(e->body);
        e->body = malloc(len + 1);
        memcpy(e->body, body, len);
        e->body[len] = '\0';
        e->len = len;
}

static void fake_done(struct fake *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->e[i].body);
        EVP_PKEY_free(f->key);
}

#define H_TOP "1111111111111111111111111111111a"
#define H_MID "2222222222222222222222222222222b"
#define H_BASE "3333333333333333333333333333333c"

/* Publish a path: NAR bytes (compression none), a narinfo signed by f->key (unless !sign). */
static void publish(struct fake *f, const char *hash, const char *name, const char *refs, const char *content, bool sign) {
        char sp[128], nh[64], narpath[128], url[96], *text, *fp = NULL, b64[100];
        uint8_t h[32], sig[64];
        size_t siglen = sizeof(sig);
        struct narinfo ni;
        EVP_MD_CTX *ctx;

        snprintf(sp, sizeof(sp), "/nix/store/%s-%s", hash, name);
        assert_int_equal(crypto_sha256(content, strlen(content), h), 0);
        nix32_encode(h, 32, nh);
        snprintf(url, sizeof(url), "nar/%s.nar", nh);
        snprintf(narpath, sizeof(narpath), "/%s", url);
        fake_put(f, narpath, content, strlen(content));
        assert_true(asprintf(&text, "StorePath: %s\nURL: %s\nCompression: none\nFileHash: sha256:%s\nFileSize: %zu\n"
                                    "NarHash: sha256:%s\nNarSize: %zu\nReferences: %s\n",
                             sp, url, nh, strlen(content), nh, strlen(content), refs) > 0);
        if (sign) {
                char *t2;
                assert_int_equal(narinfo_parse(text, strlen(text), &ni), 0);
                assert_int_equal(narinfo_fingerprint(&ni, &fp), 0);
                narinfo_done(&ni);
                ctx = EVP_MD_CTX_new();
                assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, f->key), 1);
                assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *) fp, strlen(fp)), 1);
                EVP_MD_CTX_free(ctx);
                EVP_EncodeBlock((uint8_t *) b64, sig, 64);
                assert_true(asprintf(&t2, "%sSig: test-1:%s\n", text, b64) > 0);
                free(text);
                text = t2;
                free(fp);
        }
        snprintf(narpath, sizeof(narpath), "/%s.narinfo", hash);
        fake_put(f, narpath, text, strlen(text));
        free(text);
}

/* top -> mid, base, itself; mid -> base. */
static void fake_init(struct fake *f) {
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        uint8_t pub[32];
        size_t pl = sizeof(pub);
        char b64[64];

        *f = (struct fake) {};
        assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
        assert_int_equal(EVP_PKEY_keygen(kc, &f->key), 1);
        EVP_PKEY_CTX_free(kc);
        assert_int_equal(EVP_PKEY_get_raw_public_key(f->key, pub, &pl), 1);
        EVP_EncodeBlock((uint8_t *) b64, pub, 32);
        snprintf(f->pk, sizeof(f->pk), "test-1:%s", b64);
        publish(f, H_BASE, "base", "", "base contents", true);
        publish(f, H_MID, "mid", H_BASE "-base", "middle contents, a little longer", true);
        publish(f, H_TOP, "nixos-system-t-1", H_MID "-mid " H_BASE "-base " H_TOP "-nixos-system-t-1",
                "#!/bin/sh\necho switch-to-configuration\n", true);
}

struct validity {
        const char *valid[4];
        unsigned calls;
};

static int fake_invalid(void *userdata, char *const *paths, size_t n, bool *invalid) {
        struct validity *v = userdata;

        v->calls++;
        for (size_t i = 0; i < n; i++) {
                invalid[i] = true;
                for (size_t k = 0; k < 4 && v->valid[k]; k++)
                        if (strncmp(paths[i] + 11, v->valid[k], 32) == 0)
                                invalid[i] = false;
        }
        return 0;
}

static const char top_path[] = "/nix/store/" H_TOP "-nixos-system-t-1";

/* One mirror run over the fake cache with one connection. */
static int mirror1(struct fake *f, const char *top, const char *keys, const struct nix_closure *pin, struct validity *v,
                   const char *dir, struct nixcache_stats *st) {
        return nixcache_mirror(&(struct nixcache_source) { fake_get, fake_get_range, f }, 1, top, keys, pin,
                               fake_invalid, v, dir, st);
}

static bool exists_in(const char *dir, const char *name) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        return access(p, F_OK) == 0;
}

static size_t count_nars(const char *dir) {
        char cmd[512];
        FILE *p;
        size_t n = 0;

        snprintf(cmd, sizeof(cmd), "ls %s/nar | grep -c '\\.nar$'", dir);
        p = popen(cmd, "r");
        assert_non_null(p);
        if (fscanf(p, "%zu", &n) != 1)
                n = 0;
        pclose(p);
        return n;
}

static void test_mirror_whole_closure(void **state) {
        char *d = test_mkdtemp(), dir[256];
        struct validity v = {};
        struct nixcache_stats st;
        struct fake f;
        (void) state;

        fake_init(&f);
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.paths_seen, 3);
        assert_int_equal(st.paths_fetched, 3);
        assert_int_equal(st.nars_fetched, 3);
        assert_int_equal(v.calls, 2);   /* one validity query per level: top; then mid and base together */
        assert_true(exists_in(dir, "nix-cache-info"));
        assert_true(exists_in(dir, H_TOP ".narinfo") && exists_in(dir, H_MID ".narinfo") && exists_in(dir, H_BASE ".narinfo"));
        assert_int_equal(count_nars(dir), 3);
        /* Again: every NAR is already complete, only narinfos are fetched. */
        f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(f.ranges, 0);
        assert_int_equal(st.nars_fetched, 0);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        assert_false(exists_in(d, "m"));
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

static void test_mirror_prunes_valid_paths(void **state) {
        char *d = test_mkdtemp(), dir[256];
        struct validity v = { .valid = { H_BASE } };
        struct nixcache_stats st;
        struct fake f;
        (void) state;

        fake_init(&f);
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.paths_fetched, 2);
        assert_false(exists_in(dir, H_BASE ".narinfo"));
        assert_int_equal(count_nars(dir), 2);
        /* The toplevel itself is there: nothing at all is fetched. */
        v = (struct validity) { .valid = { H_TOP } };
        f.gets = f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(f.gets + f.ranges, 0);
        assert_int_equal(st.paths_fetched, 0);
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

static void test_mirror_refuses_unsigned_and_stops(void **state) {
        char *d = test_mkdtemp(), dir[256];
        struct validity v = {};
        struct nixcache_stats st;
        struct fake f;
        (void) state;

        fake_init(&f);
        publish(&f, H_MID, "mid", H_BASE "-base", "middle contents, a little longer", false);
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), -RINGIL_EUNTRUSTED);
        assert_false(exists_in(dir, H_MID ".narinfo"));
        /* mid's references were never followed through an unsigned narinfo; its NAR never fetched. */
        assert_int_equal(count_nars(dir), exists_in(dir, H_BASE ".narinfo") ? 2 : 1);
        /* Signed by another key: untrusted too. */
        assert_int_equal(mirror1(&f, top_path, "test-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM=", NULL, &v, dir,
                                         &st), -RINGIL_EBADSIG);
        assert_int_equal(mirror1(&f, top_path, "other-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM=", NULL, &v, dir,
                                         &st), -RINGIL_EUNTRUSTED);
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

static void test_mirror_refuses_wrong_path_and_sizes(void **state) {
        char *d = test_mkdtemp(), dir[256];
        struct validity v = {};
        struct fake f;
        struct entry *e;
        (void) state;

        snprintf(dir, sizeof(dir), "%s/m", d);
        /* The server answers mid's narinfo for top's hash: a validly signed narinfo of another path. */
        fake_init(&f);
        e = fake_find(&f, "/" H_MID ".narinfo");
        fake_put(&f, "/" H_TOP ".narinfo", e->body, e->len);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, NULL), -RINGIL_EMALFORMED);
        fake_done(&f);
        /* Not in the cache. */
        fake_init(&f);
        fake_find(&f, "/" H_MID ".narinfo")->path[0] = '\0';
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, NULL), -ENOENT);
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

static void test_mirror_nar_hash_and_resume(void **state) {
        char *d = test_mkdtemp(), dir[256], part[512], nh[64];
        struct validity v = {};
        struct nixcache_stats st;
        struct fake f;
        struct entry *e = NULL;
        uint8_t h[32];
        const char *content = "#!/bin/sh\necho switch-to-configuration\n";
        (void) state;

        snprintf(dir, sizeof(dir), "%s/m", d);
        fake_init(&f);
        assert_int_equal(crypto_sha256(content, strlen(content), h), 0);
        nix32_encode(h, 32, nh);
        for (size_t i = 0; i < f.n; i++)
                if (strstr(f.e[i].path, nh))
                        e = &f.e[i];
        assert_non_null(e);

        /* The NAR served differs from its FileHash: refused, neither the NAR nor the narinfo kept. */
        e->body[3] ^= 1;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), -RINGIL_EDIGEST);
        assert_int_equal(count_nars(dir), 0);
        assert_false(exists_in(dir, H_TOP ".narinfo"));
        e->body[3] ^= 1;

        /* A connection that delivers 5 bytes per request: resumed until complete. */
        f.cut = 5;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.nars_fetched, 3);
        assert_true(f.ranges >= (strlen(content) + 4) / 5);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        f.cut = 0;

        /* An interrupted earlier run left the first 10 bytes: only the rest is fetched. */
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar", dir);
        assert_int_equal(mkdir(part, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar/%s.nar.part", dir, nh);
        assert_int_equal(atomic_write_file(part, content, 10, 0600, 0), 0);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.bytes_resumed, 10);
        assert_int_equal(access(part, F_OK), -1);
        assert_int_equal(nixcache_mirror_remove(dir), 0);

        /* A complete-looking NAR left by an earlier run (right size, wrong bytes) is not trusted by name. */
        {
                char final[512];
                snprintf(final, sizeof(final), "%s/nar/%s.nar", dir, nh);
                assert_int_equal(mkdir(dir, 0700), 0);
                snprintf(part, sizeof(part), "%s/nar", dir);
                assert_int_equal(mkdir(part, 0700), 0);
                char *bad = strdup(content);
                bad[0] ^= 1;
                assert_int_equal(atomic_write_file(final, bad, strlen(bad), 0600, 0), 0);
                free(bad);
                assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
                assert_int_equal(st.nars_fetched, 3);
                {
                        uint8_t *got = NULL;
                        size_t gl = 0;
                        assert_int_equal(read_full_file(final, 0, 4096, &got, &gl), 0);
                        assert_int_equal(gl, strlen(content));
                        assert_memory_equal(got, content, gl);
                        free(got);
                }
                assert_int_equal(nixcache_mirror_remove(dir), 0);
        }

        /* ... and a wrong kept prefix is thrown away and fetched again whole. */
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar", dir);
        assert_int_equal(mkdir(part, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar/%s.nar.part", dir, nh);
        assert_int_equal(atomic_write_file(part, "XXXXXXXXXX", 10, 0600, 0), 0);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(count_nars(dir), 3);
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

static void test_mirror_file_size_bound(void **state) {
        char *d = test_mkdtemp(), dir[256], *t;
        struct validity v = {};
        struct fake f;
        struct entry *e;
        char from[32];
        (void) state;

        /* FileSize is not signed: with Compression none it must equal the signed NarSize. */
        snprintf(dir, sizeof(dir), "%s/m", d);
        fake_init(&f);
        e = fake_find(&f, "/" H_TOP ".narinfo");
        snprintf(from, sizeof(from), "FileSize: %zu", strlen("#!/bin/sh\necho switch-to-configuration\n"));
        t = replace(e->body, from, "FileSize: 99999999999");
        fake_put(&f, "/" H_TOP ".narinfo", t, strlen(t));
        free(t);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, NULL), -RINGIL_ETOOBIG);
        assert_int_equal(f.ranges, 0);
        assert_int_equal(mirror1(&f, "/nix/store/x", f.pk, NULL, &v, dir, NULL), -RINGIL_EMALFORMED);
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

static void test_mirror_parallel_shared_nar(void **state) {
        static const char *const hashes[] = { "4444444444444444444444444444444d", "5555555555555555555555555555555f",
                                              "6666666666666666666666666666666g", "7777777777777777777777777777777h",
                                              "8888888888888888888888888888888i", "9999999999999999999999999999999j" };
        char *d = test_mkdtemp(), dir[256], refs[1024] = "", top2[128];
        struct validity v = {};
        struct nixcache_stats st;
        struct nixcache_source src[3];
        struct fake f;
        (void) state;

        /* A wide level: six leaves under one toplevel, two of them with byte-identical contents (one NAR
         * file for two paths), fetched by three workers over connections that deliver 3 bytes at a time. */
        fake_init(&f);
        for (size_t i = 0; i < 6; i++) {
                char name[16], content[64];
                snprintf(name, sizeof(name), "leaf%zu", i);
                snprintf(content, sizeof(content), "leaf contents %zu, long enough to be cut", i >= 4 ? (size_t) 4 : i);
                publish(&f, hashes[i], name, "", content, true);
                snprintf(refs + strlen(refs), sizeof(refs) - strlen(refs), "%s%s-%s", i ? " " : "", hashes[i], name);
        }
        publish(&f, "0000000000000000000000000000000k", "nixos-system-t-2", refs, "#!/bin/sh\n", true);
        snprintf(top2, sizeof(top2), "/nix/store/0000000000000000000000000000000k-nixos-system-t-2");
        f.cut = 3;
        for (size_t i = 0; i < 3; i++)
                src[i] = (struct nixcache_source) { fake_get, fake_get_range, &f };
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(nixcache_mirror(src, 3, top2, f.pk, NULL, fake_invalid, &v, dir, &st), 0);
        assert_int_equal(st.paths_seen, 7);
        assert_int_equal(st.paths_fetched, 7);
        assert_int_equal(count_nars(dir), 6);     /* leaf4 and leaf5 share one */
        for (size_t i = 0; i < 6; i++) {
                char n[64];
                snprintf(n, sizeof(n), "%s.narinfo", hashes[i]);
                assert_true(exists_in(dir, n));
        }
        /* The first failure stops the level: leaf2 unsigned. */
        publish(&f, hashes[2], "leaf2", "", "leaf contents 2, long enough to be cut", false);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        assert_int_equal(nixcache_mirror(src, 3, top2, f.pk, NULL, fake_invalid, &v, dir, &st), -RINGIL_EUNTRUSTED);
        assert_false(exists_in(dir, "6666666666666666666666666666666g.narinfo"));
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

static void test_closure_listing(void **state) {
        static const char good[] = "ringil-nix-closure 1\n"
                "/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288\n"
                "/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0 sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6 776\n";
        /* `nix path-info --json -r` of that closure as Nix 2.8 prints it (trimmed), and as newer Nix does. */
        static const char pi28[] = "[{\"path\":\"/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0\","
                "\"narHash\":\"sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6\",\"narSize\":776,"
                "\"references\":[\"/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base\"]},"
                "{\"path\":\"/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base\","
                "\"narHash\":\"sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x\",\"narSize\":288}]";
        char pinew[1024];
        struct nix_closure a, b2, c2;
        struct buf out;
        uint8_t h[32];
        char b64[64];
        (void) state;

        assert_int_equal(nix_closure_parse(good, strlen(good), &a), 0);
        assert_int_equal(a.n, 2);
        assert_non_null(nix_closure_find(&a, "/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base"));
        assert_null(nix_closure_find(&a, "/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-bass"));
        assert_int_equal(nix_closure_format(&a, &out), 0);
        assert_int_equal(out.len, strlen(good));
        assert_memory_equal(out.data, good, out.len);
        buf_free(&out);
        assert_int_equal(nix_closure_from_path_info(pi28, strlen(pi28), &b2), 0);
        assert_int_equal(nix_closure_compare(&a, &b2), 0);
        /* SRI hashes in an object keyed by path (Nix >= 2.19). */
        assert_int_equal(nix32_decode("0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x", h, 32), 0);
        EVP_EncodeBlock((uint8_t *) b64, h, 32);
        snprintf(pinew, sizeof(pinew), "{\"/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base\":{\"narHash\":\"sha256-%s\",\"narSize\":288},"
                 "\"/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0\":{\"narHash\":"
                 "\"sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6\",\"narSize\":776}}", b64);
        assert_int_equal(nix_closure_from_path_info(pinew, strlen(pinew), &c2), 0);
        assert_int_equal(nix_closure_compare(&a, &c2), 0);
        /* Differences: a hash, a size, a missing path, an extra path. */
        c2.v[0].nar_hash[0] ^= 1;
        assert_int_equal(nix_closure_compare(&a, &c2), -RINGIL_EDIGEST);
        c2.v[0].nar_hash[0] ^= 1;
        c2.v[1].nar_size++;
        assert_int_equal(nix_closure_compare(&a, &c2), -RINGIL_EDIGEST);
        c2.v[1].nar_size--;
        c2.n = 1;
        assert_int_equal(nix_closure_compare(&a, &c2), -RINGIL_EDIGEST);
        assert_int_equal(nix_closure_compare(&c2, &a), -RINGIL_EDIGEST);
        nix_closure_done(&c2);
        nix_closure_done(&b2);
        nix_closure_done(&a);

        {
                static const char *const bad[] = {
                        "",
                        "ringil-nix-closure 1\n",
                        "ringil-nix-closure 2\n/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288\n",
                        "ringil-nix-closure 1\n/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288",
                        "ringil-nix-closure 1\n/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 0\n",
                        "ringil-nix-closure 1\n/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base  sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288\n",
                        "ringil-nix-closure 1\n/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0e 288\n",
                        "ringil-nix-closure 1\n/tmp/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288\n",
                        "ringil-nix-closure 1\n/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 0288\n",
                        "ringil-nix-closure 1\n/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288\n"
                        "/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288\n",
                        "ringil-nix-closure 1\n/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-x sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 1\n"
                        "/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x 288\n",
                };
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        struct nix_closure x = { .n = 77 };
                        if (nix_closure_parse(bad[i], strlen(bad[i]), &x) != -RINGIL_EMALFORMED)
                                fail_msg("bad listing %zu accepted", i);
                        assert_int_equal(x.n, 77);
                }
        }
        {
                static const char *const badpi[] = { "", "{}", "[]", "[{\"path\":\"/nix/store/x\",\"narHash\":\"sha256:00\",\"narSize\":1}]",
                        "[{\"path\":\"/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base\",\"narHash\":\"md5:00\",\"narSize\":1}]",
                        "[{\"path\":\"/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base\",\"narHash\":\"sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x\",\"narSize\":-1}]",
                        "42" };
                for (size_t i = 0; i < sizeof(badpi) / sizeof(badpi[0]); i++) {
                        struct nix_closure x = { .n = 77 };
                        if (nix_closure_from_path_info(badpi[i], strlen(badpi[i]), &x) >= 0)
                                fail_msg("bad path-info %zu accepted", i);
                        assert_int_equal(x.n, 77);
                }
        }
}

static void test_mirror_pinned_closure(void **state) {
        char *d = test_mkdtemp(), dir[256];
        struct validity v = {};
        struct nix_closure pin = {};
        struct nixcache_stats st;
        struct fake f;
        (void) state;

        /* The pin lists every path of the fake closure with the NAR hashes the cache serves. */
        fake_init(&f);
        snprintf(dir, sizeof(dir), "%s/m", d);
        {
                /* Sorted by path: 1111… (top), 2222… (mid), 3333… (base). */
                const char *names[] = { top_path, "/nix/store/" H_MID "-mid", "/nix/store/" H_BASE "-base" };
                const char *contents[] = { "#!/bin/sh\necho switch-to-configuration\n",
                                           "middle contents, a little longer", "base contents" };
                pin.v = calloc(3, sizeof(*pin.v));
                pin.n = 3;
                for (size_t i = 0; i < 3; i++) {
                        snprintf(pin.v[i].path, sizeof(pin.v[i].path), "%s", names[i]);
                        assert_int_equal(crypto_sha256(contents[i], strlen(contents[i]), pin.v[i].nar_hash), 0);
                        pin.v[i].nar_size = strlen(contents[i]);
                }
        }
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), 0);
        assert_int_equal(st.paths_fetched, 3);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        /* A validly signed narinfo whose NarHash is not the bundle's: refused before its NAR is fetched. */
        pin.v[1].nar_hash[5] ^= 1;
        f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), -RINGIL_EDIGEST);
        assert_false(exists_in(dir, H_MID ".narinfo"));
        assert_int_equal(f.ranges, 1);   /* top's NAR only: mid's never asked for */
        pin.v[1].nar_hash[5] ^= 1;
        /* Only NarSize differs. */
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        pin.v[1].nar_size++;
        f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), -RINGIL_EDIGEST);
        assert_int_equal(f.ranges, 1);   /* top's NAR only */
        assert_false(exists_in(dir, H_MID ".narinfo"));
        pin.v[1].nar_size--;
        /* A path the listing does not have (base, the sorted last): refused, its narinfo not kept. */
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        pin.n = 2;
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), -RINGIL_EDIGEST);
        assert_false(exists_in(dir, H_BASE ".narinfo"));
        pin.n = 3;
        nix_closure_done(&pin);
        fake_done(&f);
        test_rm_rf(d);
        free(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nix32),
                cmocka_unit_test(test_real_narinfo_verifies),
                cmocka_unit_test(test_narinfo_forms),
                cmocka_unit_test(test_narinfo_rejects),
                cmocka_unit_test(test_mirror_whole_closure),
                cmocka_unit_test(test_mirror_prunes_valid_paths),
                cmocka_unit_test(test_mirror_refuses_unsigned_and_stops),
                cmocka_unit_test(test_mirror_refuses_wrong_path_and_sizes),
                cmocka_unit_test(test_mirror_nar_hash_and_resume),
                cmocka_unit_test(test_mirror_file_size_bound),
                cmocka_unit_test(test_mirror_parallel_shared_nar),
                cmocka_unit_test(test_closure_listing),
                cmocka_unit_test(test_mirror_pinned_closure),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
