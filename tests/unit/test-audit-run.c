/* test-audit-run.c: the runner's verdict rule: a check passes only by saying so (audit_pass). */
#include "tests.h"

#include "audit.h"
#include "macro.h"

static void result_free(struct audit_result *res) {
        free(res->message);
        for (size_t i = 0; i < res->n_ev; i++) {
                free(res->ev[i].path);
                free(res->ev[i].observed);
                free(res->ev[i].expected);
        }
        *res = (struct audit_result){};
}

static void run_nothing(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        (void) ctx, (void) res, (void) params;   /* e.g. an early return after a failed allocation */
}
static void run_evidence_only(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        (void) ctx, (void) params;
        audit_evidence(res, "/etc/x", "seen", "expected");
}
static void run_note_only(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        (void) ctx, (void) params;
        audit_note(res, "looked at something");
}
static void run_pass(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        (void) ctx, (void) params;
        audit_pass(res, "/etc/x", "ok", "ok");
}
static void run_fail_then_pass(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        (void) ctx, (void) params;
        audit_fail(res, "bad");
        audit_pass(res, "/etc/x", "ok", "ok");
}
static void run_error_then_pass(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        (void) ctx, (void) params;
        audit_error(res, -ENOENT, "/etc/x", "cannot read");
        audit_pass(res, "/etc/x", "ok", "ok");
}

static enum audit_status run(void (*fn)(struct audit_ctx *, struct audit_result *, json_t *), size_t *ret_ev,
                             char **ret_msg) {
        const struct audit_check c = { .id = "T-001", .run = fn };
        struct audit_ctx ctx = {};
        struct audit_result res = { .check = &c, .status = AUDIT_PASS };   /* the old runner's start */
        json_t *params = json_object();
        enum audit_status s;

        audit_run_check(&ctx, &c, &res, params);
        json_decref(params);
        s = res.status;
        *ret_ev = res.n_ev;
        *ret_msg = res.message ? strdup(res.message) : NULL;
        result_free(&res);
        return s;
}

static void test_no_verdict_is_error(void **state) {
        size_t n;
        char *m;
        (void) state;
        assert_int_equal(run(run_nothing, &n, &m), AUDIT_ERROR);
        assert_non_null(m);
        assert_non_null(strstr(m, "no verdict"));
        free(m);
        assert_int_equal(run(run_evidence_only, &n, &m), AUDIT_ERROR);
        free(m);
        assert_int_equal(run(run_note_only, &n, &m), AUDIT_ERROR);
        free(m);
}

static void test_explicit_pass(void **state) {
        size_t n;
        char *m;
        (void) state;
        assert_int_equal(run(run_pass, &n, &m), AUDIT_PASS);
        assert_int_equal(n, 1);
        assert_null(m);
        /* a pass never overrides what was recorded before it, nor adds its evidence */
        assert_int_equal(run(run_fail_then_pass, &n, &m), AUDIT_FAIL);
        assert_int_equal(n, 0);
        free(m);
        assert_int_equal(run(run_error_then_pass, &n, &m), AUDIT_ERROR);
        assert_int_equal(n, 1);
        free(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_verdict_is_error),
                cmocka_unit_test(test_explicit_pass),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
