/* test-nix-publish.c: path-info records, dependency order, narinfo text (read back by the real parser, signature included), the upload envelope, the key's public half. */
#include "tests.h"

#include <string.h>

#include "err.h"
#include "nix-cache.h"
#include "nix-publish.h"

#define S(x) x, sizeof(x) - 1

/* `nix path-info --json --recursive --sigs` of test_nix_publish's system, as Debian's Nix 2.8 prints it
 * (shortened paths are real store path shapes). */
static const char path_info_28[] =
        "[{\"path\":\"/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-nixos-system-drone-1.0\","
        "\"narHash\":\"sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6\",\"narSize\":776,"
        "\"references\":[\"/nix/store/ffibd6ckhkwb5kkmzii5zmg4v0ak3q81-drone-base\"],"
        "\"deriver\":\"/nix/store/q54mr9z1lwn42mf5y42pi330j2ajyrih-nixos-system-drone-1.0.drv\","
        "\"signatures\":[\"fleet-1:abc\"],\"registrationTime\":1,\"valid\":true},"
        "{\"path\":\"/nix/store/ffibd6ckhkwb5kkmzii5zmg4v0ak3q81-drone-base\","
        "\"narHash\":\"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\",\"narSize\":120,"
        "\"references\":[],\"valid\":true}]";

static void test_parse_and_order(void **state) {
        struct nix_path_infos pi = {};
        (void) state;
        assert_int_equal(nix_path_infos_parse(S(path_info_28), &pi), 0);
        assert_int_equal(pi.n, 2);
        /* sorted by path after parsing; toposort puts the base (a reference) first */
        assert_string_equal(pi.v[0].path, "/nix/store/ffibd6ckhkwb5kkmzii5zmg4v0ak3q81-drone-base");
        assert_int_equal(nix_path_infos_toposort(&pi), 0);
        assert_string_equal(pi.v[0].path, "/nix/store/ffibd6ckhkwb5kkmzii5zmg4v0ak3q81-drone-base");
        assert_string_equal(pi.v[1].path, "/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-nixos-system-drone-1.0");
        assert_int_equal(pi.v[1].n_refs, 1);
        assert_int_equal(pi.v[1].n_sigs, 1);
        assert_string_equal(pi.v[1].deriver, "/nix/store/q54mr9z1lwn42mf5y42pi330j2ajyrih-nixos-system-drone-1.0.drv");
        assert_int_equal(pi.v[1].nar_size, 776);
        nix_path_infos_done(&pi);
        /* newer Nix: an object keyed by path, references as basenames, SRI hashes */
        assert_int_equal(nix_path_infos_parse(S("{\"/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-a\":{\"narHash\":"
                                                "\"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\",\"narSize\":1,"
                                                "\"references\":[\"y2d20rmyb1imww6az6qggnr08mr3scfg-a\"]}}"), &pi), 0);
        assert_string_equal(pi.v[0].refs[0], "/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-a");
        assert_int_equal(nix_path_infos_toposort(&pi), 0);   /* a self-reference is no cycle */
        nix_path_infos_done(&pi);
}

static void test_order_refuses_non_closures(void **state) {
        struct nix_path_infos pi = {};
        (void) state;
        /* a reference outside the set */
        assert_int_equal(nix_path_infos_parse(S("[{\"path\":\"/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-a\",\"narHash\":"
                                                "\"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\",\"narSize\":1,"
                                                "\"references\":[\"/nix/store/ffibd6ckhkwb5kkmzii5zmg4v0ak3q81-b\"]}]"), &pi), 0);
        assert_int_equal(nix_path_infos_toposort(&pi), -RINGIL_EMALFORMED);
        nix_path_infos_done(&pi);
        /* a cycle of two */
        assert_int_equal(nix_path_infos_parse(S("[{\"path\":\"/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-a\",\"narHash\":"
                                                "\"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\",\"narSize\":1,"
                                                "\"references\":[\"/nix/store/ffibd6ckhkwb5kkmzii5zmg4v0ak3q81-b\"]},"
                                                "{\"path\":\"/nix/store/ffibd6ckhkwb5kkmzii5zmg4v0ak3q81-b\",\"narHash\":"
                                                "\"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\",\"narSize\":1,"
                                                "\"references\":[\"/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-a\"]}]"), &pi), 0);
        assert_int_equal(nix_path_infos_toposort(&pi), -RINGIL_EMALFORMED);
        nix_path_infos_done(&pi);
        /* malformed records */
        assert_int_equal(nix_path_infos_parse(S("[{\"path\":\"/etc/passwd\",\"narHash\":\"sha256:x\",\"narSize\":1}]"), &pi),
                         -RINGIL_EMALFORMED);
        assert_int_equal(nix_path_infos_parse(S("[{\"path\":\"/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-a\",\"narHash\":"
                                                "\"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\",\"narSize\":1,"
                                                "\"references\":[\"../../etc\"]}]"), &pi), -RINGIL_EMALFORMED);
        assert_int_equal(nix_path_infos_parse(S("[]"), &pi), -RINGIL_EMALFORMED);
        assert_int_equal(nix_path_infos_parse(S("{"), &pi), -RINGIL_EMALFORMED);
        assert_int_equal(nix_path_infos_parse(S("[{\"path\":\"/nix/store/y2d20rmyb1imww6az6qggnr08mr3scfg-a\",\"narHash\":"
                                                "\"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\",\"narSize\":1,"
                                                "\"signatures\":[\"k:a\\nStorePath: /nix/store/x\"]}]"), &pi), -RINGIL_EMALFORMED);
}

/* A narinfo of ours is one Nix's fields: our own strict parser reads back every field, and a signature
 * made by Nix 2.8 (test-nix-cache.c's vector) verifies over it. */
static void test_narinfo_round_trip(void **state) {
        static const char info[] =
                "[{\"path\":\"/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0\","
                "\"narHash\":\"sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6\",\"narSize\":776,"
                "\"references\":[\"/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base\"],"
                "\"deriver\":\"/nix/store/q54mr9z1lwn42mf5y42pi330j2ajyrih-nixos-system-drone-1.0.drv\","
                "\"signatures\":[\"fleet-1:4AZB891uMvaCwQ1HCh+vIxxNQjJJCXGR5TDOVNwvrl3lrPKB43W0CgnM6AAQRbACWr1FBI/R+CnUe/nY8T4PCg==\"]}]";
        struct nix_path_infos pi = {};
        struct narinfo ni;
        struct buf b = {};
        (void) state;
        assert_int_equal(nix_path_infos_parse(S(info), &pi), 0);
        assert_int_equal(nix_narinfo_format(&pi.v[0], &b), 0);
        assert_int_equal(narinfo_parse((const char *) b.data, b.len, &ni), 0);
        assert_string_equal(ni.store_path, pi.v[0].path);
        assert_string_equal(ni.compression, "none");
        assert_int_equal(ni.file_size, 776);
        assert_memory_equal(ni.file_hash, ni.nar_hash, 32);
        assert_string_equal(ni.url, "nar/107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6.nar");
        assert_int_equal(ni.n_refs, 1);
        assert_string_equal(ni.refs[0], "0qn246ynpxiyp58ag592h7r5iz0nr99w-base");
        assert_int_equal(narinfo_verify(&ni, "fleet-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM="), 0);
        narinfo_done(&ni);
        buf_free(&b);
        /* no references: "References: " keeps its space (Nix reads the value after ": ") */
        pi.v[0].n_refs = 0;
        assert_int_equal(nix_narinfo_format(&pi.v[0], &b), 0);
        assert_non_null(strstr((const char *) b.data, "\nReferences: \nDeriver: "));
        pi.v[0].n_refs = 1;
        buf_free(&b);
        nix_path_infos_done(&pi);
}

static void test_upload_header(void **state) {
        char h[NIX_UPLOAD_HEADER_MAX];
        size_t consumed, n;
        (void) state;
        assert_int_equal(nix_upload_header(812, h), strlen("ringil-nix-upload 1 812\n"));
        assert_string_equal(h, "ringil-nix-upload 1 812\n");
        assert_int_equal(nix_upload_header_parse(S("ringil-nix-upload 1 812\nStorePath: …"), &consumed, &n), 0);
        assert_int_equal(consumed, 24);
        assert_int_equal(n, 812);
        assert_int_equal(nix_upload_header_parse(S("ringil-nix-upload 1 8"), &consumed, &n), -EAGAIN);
        assert_int_equal(nix_upload_header_parse(S("ringil-nix-upload 2 8\n"), &consumed, &n), -RINGIL_EMALFORMED);
        assert_int_equal(nix_upload_header_parse(S("ringil-nix-upload 1 0\n"), &consumed, &n), -RINGIL_EMALFORMED);
        assert_int_equal(nix_upload_header_parse(S("ringil-nix-upload 1 65537\n"), &consumed, &n), -RINGIL_EMALFORMED);
        assert_int_equal(nix_upload_header_parse(S("ringil-nix-upload 1 -5\n"), &consumed, &n), -RINGIL_EMALFORMED);
        assert_int_equal(nix_upload_header_parse(S("ringil-nix-upload 1 \n"), &consumed, &n), -RINGIL_EMALFORMED);
        assert_int_equal(nix_upload_header_parse(S("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), &consumed, &n),
                         -RINGIL_EMALFORMED);
}

static void test_secret_key_public(void **state) {
        /* `nix-store --generate-binary-cache-key test-1` (Nix 2.8): the secret file and its .pk */
        static const char sk[] = "test-1:twHeuYmgs5SmYRmLTq3HdMWLcpwf5+BwgjEJlDkkUiBe7Z/q7uXePcJU2oB+0JfOVjOkjw/EAUqgrupy5ZoNQg==";
        char *pub = NULL, bad[sizeof(sk)];
        (void) state;
        assert_int_equal(nix_secret_key_public(S(sk), &pub), 0);
        assert_string_equal(pub, "test-1:Xu2f6u7l3j3CVNqAftCXzlYzpI8PxAFKoK7qcuWaDUI=");
        free(pub);
        assert_int_equal(nix_secret_key_public(S("test-1:twHeuYmgs5SmYRmLTq3HdMWLcpwf5+BwgjEJlDkkUiBe7Z/q7uXePcJU2oB+0JfOVjOkjw/EAUqgrupy5ZoNQg==\n"), &pub), 0);
        free(pub);
        /* a public half that is not the seed's */
        memcpy(bad, sk, sizeof(sk));
        bad[60] = bad[60] == 'A' ? 'B' : 'A';
        assert_int_equal(nix_secret_key_public(bad, sizeof(sk) - 1, &pub), -RINGIL_EMALFORMED);
        assert_int_equal(nix_secret_key_public(S("test-1"), &pub), -RINGIL_EMALFORMED);
        assert_int_equal(nix_secret_key_public(S(":abc"), &pub), -RINGIL_EMALFORMED);
        assert_int_equal(nix_secret_key_public(S("test-1:Xu2f6u7l3j3CVNqAftCXzlYzpI8PxAFKoK7qcuWaDUI="), &pub), -RINGIL_EMALFORMED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_and_order),
                cmocka_unit_test(test_order_refuses_non_closures),
                cmocka_unit_test(test_narinfo_round_trip),
                cmocka_unit_test(test_upload_header),
                cmocka_unit_test(test_secret_key_public),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
