/* test-fleet-msg.c: protocol messages: round trips, caps, unknown keys refused; Nix cache names. */
#include "tests.h"

#include "err.h"
#include "fleet-msg.h"
#include "macro.h"

static int st(const char *s, struct fleet_status *r) {
        return fleet_status_parse(s, strlen(s), r);
}

static void test_status_roundtrip(void **state) {
        struct fleet_status s = { .seq = 7, .state = FLEET_STATE_ROLLED_BACK, .release = 3, 
                                  .audit = { .present = true, .pass = 40, .fail = 2 } }, t;
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
        assert_true(t.audit.present);
        assert_int_equal(t.audit.fail, 2);
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

/* Mirrors and the metadata hash: through format and parse; each URL checked; both hash fields or none. */
static void test_assignment_mirrors(void **state) {
        struct fleet_assignment a = { .assigned = true, .release = 4, .size = 4096, .meta_size = 700, .n_mirrors = 2 }, b;
        char *json = NULL, text[2048];
        const char *hex64 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
        (void) state;

        strcpy(a.version, "2.0");
        strcpy(a.sha256, hex64);
        strcpy(a.meta_sha256, hex64);
        strcpy(a.mirrors[0], "https://cdn.example/fleet/2.0.bundle");
        strcpy(a.mirrors[1], "https://m.example:8443/x?sig=a%20b");
        assert_int_equal(fleet_assignment_format(&a, &json), 0);
        assert_int_equal(fleet_assignment_parse(json, strlen(json), &b), 0);
        free(json);
        assert_int_equal(b.n_mirrors, 2);
        assert_string_equal(b.mirrors[1], "https://m.example:8443/x?sig=a%20b");
        assert_int_equal(b.meta_size, 700);
        assert_string_equal(b.meta_sha256, hex64);
        /* refusals */
        const char *bad[] = {
                "\"mirrors\":[\"http://plain/x\"]",
                "\"mirrors\":[\"https://a/b c\"]",
                "\"mirrors\":\"https://a/b\"",
                "\"mirrors\":[1]",
                "\"mirrors\":[\"https://1\",\"https://2\",\"https://3\",\"https://4\",\"https://5\",\"https://6\","
                "\"https://7\",\"https://8\",\"https://9\"]",
                "\"meta_size\":700",
                "\"meta_size\":5000,\"meta_sha256\":\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"",
                "\"meta_size\":7,\"meta_sha256\":\"xyz\"",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                snprintf(text, sizeof(text), "{\"assignment\":{\"release\":1,\"version\":\"2\",\"size\":4096,\"sha256\":"
                                             "\"%s\",%s}}", hex64, bad[i]);
                if (fleet_assignment_parse(text, strlen(text), &b) >= 0)
                        fail_msg("accepted: %s", bad[i]);
        }
        assert_true(fleet_mirror_url_valid("https://a.example/x.bundle"));
        assert_false(fleet_mirror_url_valid("https://"));
        assert_false(fleet_mirror_url_valid("https://a\"b"));
}

static void test_status_compliance(void **state) {
        struct fleet_status s = { .state = FLEET_STATE_UPDATED, .release = 9, .has_utc_offset = true,
                                  .utc_offset = -18000 }, t;
        char *json = NULL;
        (void) state;
        strcpy(s.version, "2.0");
        strcpy(s.system, "/nix/store/9a8b7c6d5e4f3g2h1i0j9k8l7m6n5o4p-nixos-system-drone-25.11");
        strcpy(s.tz, "America/New_York");
        s.audit = (struct fleet_audit) { .present = true, .pass = 50, .fail = 2, .error = 1, .waived = 1,
                                         .notapplicable = 3, .n_failing = 2, .time = 1700000000 };
        strcpy(s.audit.profile, "prod");
        strcpy(s.audit.failing[0], "SVC-001");
        strcpy(s.audit.failing[1], "LOG-003");
        strcpy(s.audit.version, "2.0");
        memset(s.audit.sha256, 'f', 64);
        s.sb = (struct fleet_secureboot) { .present = true };
        strcpy(s.sb.mode, "deployed");
        strcpy(s.sb.pk, "ok");
        strcpy(s.sb.kek, "ok");
        strcpy(s.sb.db, "foreign");
        assert_int_equal(fleet_status_format(&s, &json), 0);
        assert_int_equal(st(json, &t), 0);
        free(json);
        assert_string_equal(t.system, s.system);
        assert_string_equal(t.tz, "America/New_York");
        assert_true(t.has_utc_offset);
        assert_int_equal(t.utc_offset, -18000);
        assert_true(t.audit.present);
        assert_int_equal(t.audit.n_failing, 2);
        assert_string_equal(t.audit.failing[1], "LOG-003");
        assert_string_equal(t.audit.profile, "prod");
        assert_string_equal(t.audit.sha256, s.audit.sha256);
        assert_int_equal(t.audit.error, 1);
        assert_int_equal(t.audit.notapplicable, 3);
        assert_int_equal(t.audit.time, 1700000000);
        assert_true(t.sb.present);
        assert_string_equal(t.sb.db, "foreign");
        assert_string_equal(t.sb.mode, "deployed");
}

static void test_compliance_digest(void **state) {
        struct fleet_status a = { .state = FLEET_STATE_IDLE }, b, t;
        char d1[65], d2[65], *json = NULL;
        (void) state;
        a.audit = (struct fleet_audit) { .present = true, .pass = 5, .fail = 1, .n_failing = 1 };
        strcpy(a.audit.failing[0], "SVC-001");
        strcpy(a.audit.profile, "prod");
        strcpy(a.tz, "UTC");
        b = a;
        strcpy(b.version, "9.9");              /* not a compliance field */
        b.state = FLEET_STATE_DOWNLOADING;
        assert_true(fleet_status_has_compliance(&a));
        assert_int_equal(fleet_compliance_digest(&a, d1), 0);
        assert_int_equal(fleet_compliance_digest(&b, d2), 0);
        assert_string_equal(d1, d2);
        b.audit.pass = 6;                      /* any compliance field changes it */
        assert_int_equal(fleet_compliance_digest(&b, d2), 0);
        assert_string_not_equal(d1, d2);
        b = a;
        b.has_utc_offset = true;               /* a DST change too */
        assert_int_equal(fleet_compliance_digest(&b, d2), 0);
        assert_string_not_equal(d1, d2);
        /* a digest-only status: no compliance fields, the digest survives a round trip */
        b = (struct fleet_status) { .state = FLEET_STATE_IDLE };
        memcpy(b.compliance, d1, sizeof(d1));
        assert_false(fleet_status_has_compliance(&b));
        assert_int_equal(fleet_status_format(&b, &json), 0);
        assert_int_equal(st(json, &t), 0);
        free(json);
        assert_string_equal(t.compliance, d1);
        assert_int_equal(st("{\"state\":\"idle\",\"compliance\":\"abc\"}", &t), -RINGIL_EMALFORMED);
}

static void test_status_compliance_refused(void **state) {
        static const char *const bad[] = {
                "{\"state\":\"idle\",\"audit\":{\"fail\":1,\"failing\":[\"svc-001\"]}}",            /* lower case */
                "{\"state\":\"idle\",\"audit\":{\"fail\":1,\"failing\":[\"SVC-0011111111111\"]}}",  /* 16 bytes */
                "{\"state\":\"idle\",\"audit\":{\"fail\":2,\"failing\":[\"A\",\"A\"]}}",          /* twice */
                "{\"state\":\"idle\",\"audit\":{\"fail\":0,\"failing\":[\"A\"]}}",                /* > fail */
                "{\"state\":\"idle\",\"audit\":{\"fail\":1,\"failing\":\"A\"}}",
                "{\"state\":\"idle\",\"audit\":{\"fail\":1,\"failing\":[1]}}",
                "{\"state\":\"idle\",\"audit\":{\"sha256\":\"abc\"}}",
                "{\"state\":\"idle\",\"audit\":{\"profile\":\"Prod\"}}",
                "{\"state\":\"idle\",\"audit\":{\"profile\":\"\"}}",
                "{\"state\":\"idle\",\"audit\":{\"time\":-5}}",
                "{\"state\":\"idle\",\"secureboot\":{\"mode\":\"user\",\"pk\":\"ok\",\"kek\":\"ok\"}}",
                "{\"state\":\"idle\",\"secureboot\":{\"mode\":\"pwned\",\"pk\":\"ok\",\"kek\":\"ok\",\"db\":\"ok\"}}",
                "{\"state\":\"idle\",\"secureboot\":{\"mode\":\"user\",\"pk\":\"ok\",\"kek\":\"ok\",\"db\":\"mine\"}}",
                "{\"state\":\"idle\",\"secureboot\":{\"mode\":\"user\",\"pk\":\"ok\",\"kek\":\"ok\",\"db\":\"ok\",\"x\":1}}",
                "{\"state\":\"idle\",\"tz\":\"../../etc/passwd\"}",
                "{\"state\":\"idle\",\"tz\":\"/etc/localtime\"}",
                "{\"state\":\"idle\",\"tz\":\"Europe/Paris;x\"}",
                "{\"state\":\"idle\",\"utc_offset\":50401}",
                "{\"state\":\"idle\",\"utc_offset\":\"3600\"}",
                "{\"state\":\"idle\",\"system\":\"/nix/store/x\\u0001\"}",
        };
        struct fleet_status s;
        char many[FLEET_MAX_MESSAGE];
        size_t o;
        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (st(bad[i], &s) >= 0)
                        fail_msg("accepted %s", bad[i]);
        /* more than FLEET_AUDIT_MAX_IDS failing IDs */
        o = (size_t) snprintf(many, sizeof(many), "{\"state\":\"idle\",\"audit\":{\"fail\":100,\"failing\":[");
        for (int i = 0; i < FLEET_AUDIT_MAX_IDS + 1; i++)
                o += (size_t) snprintf(many + o, sizeof(many) - o, "%s\"X-%d\"", i ? "," : "", i);
        snprintf(many + o, sizeof(many) - o, "]}}");
        assert_int_equal(st(many, &s), -RINGIL_ETOOBIG);
        assert_int_equal(st("{\"state\":\"waiting\",\"audit\":{\"pass\":1,\"fail\":0}}", &s), 0);
        assert_int_equal(s.state, FLEET_STATE_WAITING);
        assert_true(s.audit.present);
        assert_int_equal(s.audit.n_failing, 0);
        assert_true(fleet_check_id_valid("SB-005"));
        assert_false(fleet_check_id_valid(""));
        assert_false(fleet_check_id_valid("SB 005"));
}

static void test_assignment_rollout_fields(void **state) {
        struct fleet_assignment a = { .poll_interval = 5, .assigned = true, .release = 4, .size = 99, .retry = 3,
                                      .rate = 1 << 20, .rollout = 12, .n_windows = 2 }, b;
        const char *bad[] = {
                "{\"windows\":[\"2:00-04:00\"]}",
                "{\"windows\":[\"02:00-02:00\"]}",
                "{\"windows\":\"02:00-04:00\"}",
                "{\"windows\":[\"01:00-02:00\",\"01:00-02:00\",\"01:00-02:00\",\"01:00-02:00\",\"01:00-02:00\","
                "\"01:00-02:00\",\"01:00-02:00\",\"01:00-02:00\",\"01:00-02:00\"]}",
                "{\"assignment\":{\"release\":1,\"version\":\"2\",\"size\":1,\"retry\":-1,\"sha256\":"
                "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
        };
        char *json = NULL;
        (void) state;
        strcpy(a.version, "2.0");
        memset(a.sha256, 'b', 64);
        a.windows[0] = (struct fleet_window) { 120, 240 };
        a.windows[1] = (struct fleet_window) { 1320, 60 };
        assert_int_equal(fleet_assignment_format(&a, &json), 0);
        assert_non_null(strstr(json, "\"windows\":[\"02:00-04:00\",\"22:00-01:00\"]"));
        assert_int_equal(fleet_assignment_parse(json, strlen(json), &b), 0);
        free(json);
        assert_int_equal(b.retry, 3);
        assert_int_equal(b.rate, 1 << 20);
        assert_int_equal(b.rollout, 12);
        assert_int_equal(b.n_windows, 2);
        assert_int_equal(b.windows[1].start, 1320);
        assert_int_equal(b.windows[1].end, 60);
        assert_false(b.resend_compliance);
        a.resend_compliance = true;
        assert_int_equal(fleet_assignment_format(&a, &json), 0);
        assert_int_equal(fleet_assignment_parse(json, strlen(json), &b), 0);
        free(json);
        assert_true(b.resend_compliance);
        {
                const char *later = "{\"compliance\":\"later\"}";
                assert_int_equal(fleet_assignment_parse(later, strlen(later), &b), -RINGIL_EMALFORMED);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (fleet_assignment_parse(bad[i], strlen(bad[i]), &b) >= 0)
                        fail_msg("accepted %s", bad[i]);
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
                cmocka_unit_test(test_assignment_mirrors),
                cmocka_unit_test(test_status_compliance),
                cmocka_unit_test(test_compliance_digest),
                cmocka_unit_test(test_status_compliance_refused),
                cmocka_unit_test(test_assignment_rollout_fields),
                cmocka_unit_test(test_states),
                cmocka_unit_test(test_nix_cache_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
