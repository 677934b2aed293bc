/* test-fleet-msg.c: protocol messages: round trips, caps, unknown keys refused; Nix cache names. */
#include "tests.h"

#include "err.h"
#include "fleet-msg.h"

static int st(const char *s, struct fleet_status *r) {
        return fleet_status_parse(s, strlen(s), r);
}

static void test_status_roundtrip(void **state) {
        struct fleet_status s = { .seq = 7, .state = FLEET_STATE_ROLLED_BACK, .release = 3, .has_audit = true,
                                  .audit_pass = 40, .audit_fail = 2 }, t;
        char *json = NULL;
        (void) state;
        strcpy(s.version, "1.0");
        strcpy(s.slot, "a");
        strcpy(s.boot, "good");
        strcpy(s.target, "2.0");
        strcpy(s.error, "health gate failed");
        assert_int_equal(fleet_status_format(&s, &json), 0);
        assert_int_equal(st(json, &t), 0);
        free(json);
        assert_int_equal(t.seq, 7);
        assert_int_equal(t.state, FLEET_STATE_ROLLED_BACK);
        assert_int_equal(t.release, 3);
        assert_string_equal(t.target, "2.0");
        assert_string_equal(t.error, "health gate failed");
        assert_true(t.has_audit);
        assert_int_equal(t.audit_fail, 2);
}

static void test_status_refused(void **state) {
        struct fleet_status s;
        char big[FLEET_MAX_MESSAGE + 100];
        (void) state;
        assert_int_equal(st("{}", &s), -RINGIL_EMALFORMED);                                 /* no state */
        assert_int_equal(st("[]", &s), -RINGIL_EMALFORMED);
        assert_int_equal(st("{\"state\":\"idle\",\"x\":1}", &s), -RINGIL_EMALFORMED);      /* unknown key */
        assert_int_equal(st("{\"state\":\"idle\",\"state\":\"failed\"}", &s), -RINGIL_EMALFORMED);
        assert_int_equal(st("{\"state\":\"pwned\"}", &s), -RINGIL_EMALFORMED);
        assert_int_equal(st("{\"state\":\"idle\",\"seq\":-1}", &s), -RINGIL_EMALFORMED);
        assert_int_equal(st("{\"state\":\"idle\",\"version\":\"a\\nb\"}", &s), -RINGIL_EMALFORMED);
        assert_int_equal(st("{\"state\":\"idle\",\"version\":1}", &s), -RINGIL_EMALFORMED);
        assert_int_equal(st("{\"state\":\"idle\",\"audit\":{\"pass\":1,\"evil\":2}}", &s), -RINGIL_EMALFORMED);
        assert_int_equal(st("{\"state\":\"idle\",\"audit\":{\"evil\":2}}", &s), -RINGIL_EMALFORMED);   /* unknown key first */
        assert_int_equal(st("{\"state\":\"idle\",\"version\":\"0123456789012345678901234567890123456789"
                            "012345678901234567890123456789\"}", &s), -RINGIL_ETOOBIG);
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        memcpy(big + sizeof(big) - 16, "\"state\":\"idle\"}", 15);
        assert_int_equal(fleet_status_parse(big, sizeof(big) - 1, &s), -RINGIL_ETOOBIG);
}

static void test_assignment(void **state) {
        struct fleet_assignment a = { .poll_interval = 60, .assigned = true, .release = 4, .size = 1234 }, b;
        const char *none = "{\"poll_interval\":5,\"assignment\":null}";
        char *json = NULL;
        (void) state;
        strcpy(a.version, "2.0");
        memset(a.sha256, 'a', 64);
        a.sha256[64] = '\0';
        assert_int_equal(fleet_assignment_format(&a, &json), 0);
        assert_int_equal(fleet_assignment_parse(json, strlen(json), &b), 0);
        free(json);
        assert_true(b.assigned);
        assert_int_equal(b.release, 4);
        assert_int_equal(b.size, 1234);
        assert_int_equal(fleet_assignment_parse(none, strlen(none), &b), 0);
        assert_false(b.assigned);
        assert_int_equal(b.poll_interval, 5);
        none = "{\"assignment\":{\"release\":1,\"version\":\"2\",\"size\":1,\"sha256\":\"zz\"}}";
        assert_int_equal(fleet_assignment_parse(none, strlen(none), &b), -RINGIL_EMALFORMED);
        none = "{\"assignment\":{\"release\":1,\"version\":\"2\"}}";
        assert_int_equal(fleet_assignment_parse(none, strlen(none), &b), -RINGIL_EMALFORMED);
        none = "{\"assignment\":{\"release\":0,\"version\":\"2\",\"size\":1,\"sha256\":"
               "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}";
        assert_int_equal(fleet_assignment_parse(none, strlen(none), &b), -RINGIL_EMALFORMED);
}

static void test_states(void **state) {
        enum fleet_state s;
        (void) state;
        for (unsigned i = 0; i < _FLEET_STATE_MAX; i++) {
                assert_int_equal(fleet_state_from_string(fleet_state_to_string((enum fleet_state) i), &s), 0);
                assert_int_equal(s, i);
        }
        assert_int_equal(fleet_state_from_string("", &s), -RINGIL_EMALFORMED);
}

static void test_nix_cache_names(void **state) {
        static const char *const nar = "nar/0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqr";  /* 64 */
        static const char *const bad[] = {
                "", "nix-cache-info/", "/nix-cache-info", "nix-cache-info.", "Nix-cache-info",
                "0123456789abcdfghijklmnpqrsvwxy.narinfo",     /* 31 chars */
                "0123456789abcdfghijklmnpqrsvwxyzz.narinfo",   /* 33 */
                "0123456789abcdfghijklmnpqrsvwxyZ.narinfo",    /* uppercase */
                "0123456789abcdfghijklmnpqrsvwxye.narinfo",    /* e, o, t, u are not Nix base32 */
                "0123456789abcdfghijklmnpqrsvwxyo.narinfo",
                "0123456789abcdfghijklmnpqrsvwxyt.narinfo",
                "0123456789abcdfghijklmnpqrsvwxyu.narinfo",
                "0123456789abcdfghijklmnpqrsvwxyz.narinf", "0123456789abcdfghijklmnpqrsvwxyz.narinfo.",
                "0123456789abcdfghijklmnpqrsvwxyz.narinfo/x", "0123456789abcdfghijklmnpqrsvwxyz",
                "../0123456789abcdfghijklmnpqrsvwxy.narinfo", "./0123456789abcdfghijklmnpqrsvwxyz.narinfo",
                "nar/", "nar/.nar", "nar/x", "nar/x.nar.", "nar/x.nar.xz.xz", "nar/x.nar.zstd", "nar/x.nar.XZ",
                "nar/X.nar", "nar/x-y.nar", "nar/x_y.nar", "nar/x.y.nar", "nar//x.nar", "nar/../x.nar",
                "nar/./x.nar", "nar/x/y.nar", "nar/x.nar/", "nar", "nar/x.narinfo", "NAR/x.nar", "nars/x.nar",
                "x/nar/x.nar", "nar/x.nar.gz\n",
        };
        static const char *const compressions[] = { "", ".xz", ".bz2", ".zst", ".br", ".lz4", ".lzip", ".gz" };
        char name[128];
        (void) state;
        assert_int_equal(fleet_nix_cache_file("nix-cache-info"), FLEET_NIX_CACHE_INFO);
        assert_int_equal(fleet_nix_cache_file("0123456789abcdfghijklmnpqrsvwxyz.narinfo"), FLEET_NIX_NARINFO);
        assert_int_equal(fleet_nix_cache_file("nar/x.nar"), FLEET_NIX_NAR);
        assert_int_equal(fleet_nix_cache_file("nar/1b8m3v5q9lzv7cmwwpkyq4pdz0fpjrw9hzjw1y5alzbqy3z2nk1a.nar.xz"),
                         FLEET_NIX_NAR);
        for (size_t i = 0; i < sizeof(compressions) / sizeof(compressions[0]); i++) {
                snprintf(name, sizeof(name), "%s.nar%s", nar, compressions[i]);
                assert_int_equal(fleet_nix_cache_file(name), FLEET_NIX_NAR);
        }
        snprintf(name, sizeof(name), "%sz.nar", nar);                        /* 65 characters */
        assert_int_equal(fleet_nix_cache_file(name), -ENOENT);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (fleet_nix_cache_file(bad[i]) != -ENOENT)
                        fail_msg("accepted `%s'", bad[i]);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_status_roundtrip),
                cmocka_unit_test(test_status_refused),
                cmocka_unit_test(test_assignment),
                cmocka_unit_test(test_states),
                cmocka_unit_test(test_nix_cache_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
