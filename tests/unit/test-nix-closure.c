/* test-nix-closure.c: the signed closure listing: canonical form, `nix path-info` input of old and new Nix, comparison, rejects. */
#include "tests.h"

#include <openssl/evp.h>

#include "err.h"
#include "nix-closure.h"

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_closure_listing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
