/* test-rollout.c: the rollout model: requests, partitions, every evaluation rule, check-in and drift gate. */
#include "tests.h"

#include "drift.h"
#include "err.h"
#include "rollout.h"

static int spec(const char *json, struct rollout_spec *s) {
        return rollout_spec_parse(json, strlen(json), s);
}

static void test_spec_defaults(void **state) {
        struct rollout_spec s;
        char t[80];
        (void) state;
        assert_int_equal(spec("{\"release\":3,\"target\":\"*\"}", &s), 0);
        assert_int_equal(s.release, 3);
        assert_int_equal(s.target, TARGET_FLEET);
        assert_int_equal(s.n_groups, 2);   /* a canary of one, then the rest */
        assert_int_equal(s.groups[0].kind, GROUP_COUNT);
        assert_int_equal(s.groups[0].value, 1);
        assert_int_equal(s.groups[1].kind, GROUP_REST);
        assert_int_equal(s.groups[0].cond.success_pct, 100);
        assert_int_equal(s.groups[0].cond.error_count, 1);
        assert_int_equal(s.deadline, 1800);
        assert_true(s.drift_gate);
        assert_false(s.require_approval);
        rollout_spec_target_string(&s, t, sizeof(t));
        assert_string_equal(t, "*");
        rollout_spec_done(&s);
}

static void test_spec_full(void **state) {
        struct rollout_spec s;
        char t[80];
        (void) state;
        assert_int_equal(spec("{\"name\":\"v2-canary\",\"release\":7,\"target\":\"tag:north\",\"groups\":["
                              "{\"percent\":5,\"soak\":600,\"error_count\":1},{\"count\":20,\"success_percent\":90},"
                              "{\"rest\":true,\"error_percent\":10}],\"success_percent\":95,\"error_count\":3,"
                              "\"deadline\":900,\"rate\":65536,\"start_at\":1900000000,\"require_approval\":true,"
                              "\"drift_gate\":false}", &s), 0);
        assert_string_equal(s.name, "v2-canary");
        assert_int_equal(s.target, TARGET_TAG);
        assert_string_equal(s.target_name, "north");
        assert_int_equal(s.n_groups, 3);
        assert_int_equal(s.groups[0].kind, GROUP_PERCENT);
        assert_int_equal(s.groups[0].cond.soak, 600);
        assert_int_equal(s.groups[0].cond.success_pct, 95);     /* the default of the request */
        assert_int_equal(s.groups[1].cond.success_pct, 90);     /* overridden */
        assert_int_equal(s.groups[1].cond.error_count, 3);
        assert_int_equal(s.groups[2].cond.error_pct, 10);       /* an override replaces the whole condition */
        assert_int_equal(s.groups[2].cond.error_count, 0);
        assert_int_equal(s.deadline, 900);
        assert_int_equal(s.rate, 65536);
        assert_int_equal(s.start_at, 1900000000);
        assert_true(s.require_approval);
        assert_false(s.drift_gate);
        rollout_spec_target_string(&s, t, sizeof(t));
        assert_string_equal(t, "tag:north");
        rollout_spec_done(&s);
        assert_int_equal(spec("{\"release\":1,\"target\":\"drones\",\"drones\":[\"d-3\",\"d-1\",\"d-2\"]}", &s), 0);
        assert_int_equal(s.n_drones, 3);
        assert_string_equal(s.drones[0], "d-3");   /* the operator's order */
        rollout_spec_done(&s);
}

static void test_spec_refused(void **state) {
        static const char *const bad[] = {
                "", "[]", "{}", "{\"release\":1}", "{\"target\":\"*\"}",
                "{\"release\":0,\"target\":\"*\"}", "{\"release\":-1,\"target\":\"*\"}",
                "{\"release\":1,\"target\":\"*\",\"x\":1}",
                "{\"release\":1,\"target\":\"*\",\"release\":2}",
                "{\"release\":1,\"target\":\"fleet\"}", "{\"release\":1,\"target\":\"group:\"}",
                "{\"release\":1,\"target\":\"group:a b\"}", "{\"release\":1,\"target\":\"tag:../x\"}",
                "{\"release\":1,\"target\":\"drones\"}", "{\"release\":1,\"target\":\"*\",\"drones\":[\"a\"]}",
                "{\"release\":1,\"target\":\"drones\",\"drones\":[]}",
                "{\"release\":1,\"target\":\"drones\",\"drones\":[\"a\",\"a\"]}",
                "{\"release\":1,\"target\":\"drones\",\"drones\":[\"a\",\"-b\"]}",
                "{\"release\":1,\"target\":\"drones\",\"drones\":[1]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":{}}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{}]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"count\":0}]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"percent\":101}]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"count\":1,\"percent\":5}]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"rest\":true},{\"count\":1}]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"rest\":false}]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"count\":1,\"error_count\":0}]}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"count\":1,\"colour\":\"red\"}]}",
                "{\"release\":1,\"target\":\"*\",\"success_percent\":0}",
                "{\"release\":1,\"target\":\"*\",\"success_percent\":101}",
                "{\"release\":1,\"target\":\"*\",\"error_percent\":101}",
                "{\"release\":1,\"target\":\"*\",\"deadline\":0}",
                "{\"release\":1,\"target\":\"*\",\"deadline\":2592001}",
                "{\"release\":1,\"target\":\"*\",\"soak\":-1}",
                "{\"release\":1,\"target\":\"*\",\"rate\":100}",
                "{\"release\":1,\"target\":\"*\",\"start_at\":\"tomorrow\"}",
                "{\"release\":1,\"target\":\"*\",\"require_approval\":1}",
                "{\"release\":1,\"target\":\"*\",\"name\":\"a/b\"}",
                "{\"release\":1,\"target\":\"*\",\"groups\":[{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1},"
                "{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1},"
                "{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1},{\"count\":1}]}",
        };
        struct rollout_spec s;
        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (spec(bad[i], &s) >= 0) {
                        rollout_spec_done(&s);
                        fail_msg("accepted %s", bad[i]);
                }
}

static void test_spec_list_cap(void **state) {
        size_t cap = 16 + (ROLLOUT_MAX_LIST + 1) * 12 + 64, o;
        char *j = malloc(cap);
        struct rollout_spec s;
        (void) state;
        o = (size_t) snprintf(j, cap, "{\"release\":1,\"target\":\"drones\",\"drones\":[");
        for (int i = 0; i <= ROLLOUT_MAX_LIST; i++)
                o += (size_t) snprintf(j + o, cap - o, "%s\"d%d\"", i ? "," : "", i);
        snprintf(j + o, cap - o, "]}");
        assert_int_equal(spec(j, &s), -RINGIL_ETOOBIG);
        free(j);
}

static void test_partition(void **state) {
        struct rollout_group_spec g[4] = {
                { .kind = GROUP_PERCENT, .value = 5, .cond = { .success_pct = 100, .error_count = 1 } },
                { .kind = GROUP_COUNT, .value = 10, .cond = { .success_pct = 90, .error_count = 2 } },
                { .kind = GROUP_REST, .cond = { .success_pct = 80, .error_pct = 10 } },
        };
        uint32_t sizes[ROLLOUT_MAX_GROUPS];
        struct rollout_conditions cond[ROLLOUT_MAX_GROUPS];
        (void) state;
        assert_int_equal(rollout_partition(100, g, 3, sizes, cond), 3);
        assert_int_equal(sizes[0], 5);
        assert_int_equal(sizes[1], 10);
        assert_int_equal(sizes[2], 85);
        assert_int_equal(cond[2].error_pct, 10);
        /* 5 % of 10 rounds up to one drone; a group larger than what is left is cut; an empty rest is dropped */
        assert_int_equal(rollout_partition(10, g, 3, sizes, cond), 2);
        assert_int_equal(sizes[0], 1);
        assert_int_equal(sizes[1], 9);
        /* groups that do not cover the target: the rest forms one more group with the last conditions */
        assert_int_equal(rollout_partition(30, g, 2, sizes, cond), 3);
        assert_int_equal(sizes[2], 30 - 2 - 10);
        assert_int_equal(cond[2].success_pct, 90);
        /* nothing to split */
        assert_int_equal(rollout_partition(0, g, 3, sizes, cond), 0);
        /* one drone, canary of one: a single group */
        g[0] = (struct rollout_group_spec) { .kind = GROUP_COUNT, .value = 1, .cond = { .success_pct = 100, .error_count = 1 } };
        assert_int_equal(rollout_partition(1, g, 3, sizes, cond), 1);
        assert_int_equal(sizes[0], 1);
}

static void test_order_key(void **state) {
        uint8_t a[32], b[32], c[32];
        (void) state;
        rollout_order_key(1, "drone-1", a);
        rollout_order_key(1, "drone-1", b);
        assert_memory_equal(a, b, 32);
        rollout_order_key(2, "drone-1", c);
        assert_memory_not_equal(a, c, 32);   /* another rollout shuffles differently */
}

/* ---- evaluation ---- */

#define NOW 1000000

struct fixture {
        struct rollout_view v;
        struct rollout_member m[128];
};

/* groups of the given sizes, members pending, running */
static void setup(struct fixture *f, const uint32_t *sizes, size_t n, struct rollout_conditions cond) {
        size_t k = 0;
        memset(f, 0, sizeof(*f));
        f->v = (struct rollout_view) { .id = 1, .state = ROLLOUT_RUNNING, .deadline = 60, .n_groups = (uint32_t) n,
                                       .members = f->m };
        for (size_t g = 0; g < n; g++) {
                f->v.groups[g] = (struct rollout_group) { .size = sizes[g], .cond = cond };
                for (uint32_t i = 0; i < sizes[g]; i++)
                        f->m[k++] = (struct rollout_member) { .group = (uint32_t) g, .state = MEMBER_PENDING };
        }
        f->v.n_members = k;
}

static void set(struct fixture *f, size_t i, enum member_state s, int64_t at) {
        f->m[i].state = s;
        f->m[i].state_at = at;
        if (member_in_flight(s) || member_settled(s))
                f->m[i].handed_at = f->m[i].handed_at ? f->m[i].handed_at : at;
        f->m[i].last_seen = at;
}

/* apply a decision back to the fixture, as the store does */
static void apply(struct fixture *f, const struct rollout_decision *d, int64_t now) {
        f->v.state = d->state;
        f->v.current_group = d->current_group;
        memcpy(f->v.groups, d->groups, sizeof(f->v.groups));
        for (size_t i = 0; i < d->n_changes; i++)
                set(f, d->changes[i].index, d->changes[i].state, now);
}

static struct rollout_decision eval(struct fixture *f, int64_t now) {
        struct rollout_decision d;
        assert_int_equal(rollout_evaluate(&f->v, now, &d), 0);
        return d;
}

static void test_canary_then_rest(void **state) {
        const uint32_t sizes[] = { 1, 4 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 100, .soak = 30, .error_count = 1 });
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_RUNNING);
        assert_int_equal(d.current_group, 0);
        assert_int_equal(d.n_changes, 0);
        rollout_decision_done(&d);
        /* the canary is handed and blessed: soak starts */
        set(&f, 0, MEMBER_BLESSED, NOW + 10);
        d = eval(&f, NOW + 10);
        assert_int_equal(d.groups[0].success_since, NOW + 10);
        assert_int_equal(d.current_group, 0);
        apply(&f, &d, NOW + 10);
        rollout_decision_done(&d);
        d = eval(&f, NOW + 39);
        assert_int_equal(d.current_group, 0);   /* soak not over */
        assert_int_equal(d.next_check, NOW + 40);
        rollout_decision_done(&d);
        d = eval(&f, NOW + 40);
        assert_int_equal(d.current_group, 1);   /* soak over: the rest starts */
        assert_int_equal(d.groups[0].completed_at, NOW + 40);
        assert_non_null(strstr(d.reason, "group 1 completed"));
        apply(&f, &d, NOW + 40);
        rollout_decision_done(&d);
        for (size_t i = 1; i < 5; i++)
                set(&f, i, MEMBER_BLESSED, NOW + 50);
        d = eval(&f, NOW + 50);
        assert_int_equal(d.state, ROLLOUT_RUNNING);   /* its soak */
        apply(&f, &d, NOW + 50);
        rollout_decision_done(&d);
        d = eval(&f, NOW + 80);
        assert_int_equal(d.state, ROLLOUT_FINISHED);
        assert_int_equal(d.current_group, 2);
        rollout_decision_done(&d);
}

static void test_error_condition_count_and_percent(void **state) {
        const uint32_t sizes[] = { 10, 10 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 100, .error_count = 2 });
        set(&f, 0, MEMBER_FAILED, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_RUNNING);   /* 1 < 2 */
        rollout_decision_done(&d);
        set(&f, 1, MEMBER_ROLLED_BACK, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_PAUSED);
        assert_non_null(strstr(d.reason, "group 1: 2 of 10 drones failed"));
        rollout_decision_done(&d);
        /* percent: 3 of 10 ≥ 30 % */
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 100, .error_pct = 30 });
        set(&f, 0, MEMBER_DRIFT, NOW);
        set(&f, 1, MEMBER_TIMED_OUT, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_RUNNING);
        rollout_decision_done(&d);
        set(&f, 2, MEMBER_FAILED, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_PAUSED);
        rollout_decision_done(&d);
        /* removed members leave the group: 3 failures of 9 remaining is still ≥ 30 % */
        set(&f, 3, MEMBER_REMOVED, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_PAUSED);
        rollout_decision_done(&d);
}

static void test_deadline_bricked_canary(void **state) {
        const uint32_t sizes[] = { 5, 95 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 100, .error_count = 1 });
        f.v.deadline = 30;
        for (size_t i = 0; i < 5; i++)
                set(&f, i, MEMBER_REBOOTING, NOW);   /* then silence: bricked */
        d = eval(&f, NOW + 30);
        assert_int_equal(d.n_changes, 0);          /* exactly the deadline: not yet */
        assert_int_equal(d.state, ROLLOUT_RUNNING);
        assert_int_equal(d.next_check, NOW + 31);  /* the scheduler need not look before that */
        rollout_decision_done(&d);
        d = eval(&f, NOW + 31);
        assert_int_equal(d.n_changes, 5);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(d.changes[i].state, MEMBER_TIMED_OUT);
        assert_int_equal(d.state, ROLLOUT_PAUSED);
        assert_int_equal(d.current_group, 0);      /* the rest never started */
        assert_int_equal(d.counts[0].failures, 5);
        assert_int_equal(d.counts[1].pending, 95);
        rollout_decision_done(&d);
}

static void test_deadline_counts_from_last_sign_of_life(void **state) {
        const uint32_t sizes[] = { 2 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 1, (struct rollout_conditions) { .success_pct = 100, .error_count = 1 });
        f.v.deadline = 30;
        set(&f, 0, MEMBER_WAITING, NOW);
        f.m[0].last_seen = NOW + 100;              /* waiting for its window, checking in */
        set(&f, 1, MEMBER_HANDED, NOW);
        f.v.not_before = NOW + 90;                 /* the server was down until then */
        d = eval(&f, NOW + 110);
        assert_int_equal(d.n_changes, 0);
        rollout_decision_done(&d);
        d = eval(&f, NOW + 121);
        assert_int_equal(d.n_changes, 1);          /* 31 s after the server came back */
        assert_int_equal(d.changes[0].index, 1);
        rollout_decision_done(&d);
        /* deadlines also apply while paused and after an abort: in-flight drones can still brick */
        f.v.state = ROLLOUT_ABORTED;
        d = eval(&f, NOW + 200);
        assert_int_equal(d.n_changes, 2);
        assert_int_equal(d.state, ROLLOUT_ABORTED);
        rollout_decision_done(&d);
}

static void test_soak_restarts_on_failure(void **state) {
        const uint32_t sizes[] = { 4, 4 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 75, .soak = 100, .error_count = 2 });
        for (size_t i = 0; i < 3; i++)
                set(&f, i, MEMBER_BLESSED, NOW);
        set(&f, 3, MEMBER_DOWNLOADING, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.groups[0].success_since, NOW);
        apply(&f, &d, NOW);
        rollout_decision_done(&d);
        /* a blessed drone rolls back during the soak: 2 of 4 is below 75 % */
        set(&f, 0, MEMBER_ROLLED_BACK, NOW + 50);
        d = eval(&f, NOW + 50);
        assert_int_equal(d.groups[0].success_since, 0);
        apply(&f, &d, NOW + 50);
        rollout_decision_done(&d);
        /* the fourth blesses: 3 of 4 again, and the soak counts from now, not from before */
        set(&f, 3, MEMBER_BLESSED, NOW + 60);
        d = eval(&f, NOW + 60);
        assert_int_equal(d.groups[0].success_since, NOW + 60);
        apply(&f, &d, NOW + 60);
        rollout_decision_done(&d);
        d = eval(&f, NOW + 159);
        assert_int_equal(d.current_group, 0);
        rollout_decision_done(&d);
        d = eval(&f, NOW + 160);
        assert_int_equal(d.current_group, 1);
        rollout_decision_done(&d);
}

static void test_settled_below_success_pauses(void **state) {
        const uint32_t sizes[] = { 5, 5 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 100, .error_count = 3 });
        for (size_t i = 0; i < 4; i++)
                set(&f, i, MEMBER_BLESSED, NOW);
        set(&f, 4, MEMBER_FAILED, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_PAUSED);   /* 4/5 blessed, 1 < 3 failures, nothing left to wait for */
        assert_non_null(strstr(d.reason, "below its success condition"));
        rollout_decision_done(&d);
        /* a member that never checked in keeps the group waiting instead */
        set(&f, 4, MEMBER_PENDING, 0);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_RUNNING);
        rollout_decision_done(&d);
}

static void test_failures_acked_by_resume(void **state) {
        const uint32_t sizes[] = { 10 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 1, (struct rollout_conditions) { .success_pct = 50, .error_count = 1 });
        set(&f, 0, MEMBER_FAILED, NOW);
        f.v.groups[0].failures_acked = 1;   /* the operator resumed after this failure */
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_RUNNING);
        rollout_decision_done(&d);
        set(&f, 1, MEMBER_FAILED, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.state, ROLLOUT_PAUSED);
        rollout_decision_done(&d);
}

static void test_late_failure_in_completed_group(void **state) {
        const uint32_t sizes[] = { 2, 2 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 50, .error_count = 1 });
        set(&f, 0, MEMBER_BLESSED, NOW);
        set(&f, 1, MEMBER_REBOOTING, NOW);
        d = eval(&f, NOW);
        assert_int_equal(d.current_group, 1);   /* 50 % blessed, no soak */
        apply(&f, &d, NOW);
        rollout_decision_done(&d);
        set(&f, 1, MEMBER_ROLLED_BACK, NOW + 5);   /* the straggler of group 1 fails after group 2 began */
        d = eval(&f, NOW + 5);
        assert_int_equal(d.state, ROLLOUT_PAUSED);
        assert_non_null(strstr(d.reason, "group 1"));
        rollout_decision_done(&d);
}

static void test_scheduled_and_finish_waits(void **state) {
        const uint32_t sizes[] = { 1, 1 };
        struct fixture f;
        struct rollout_decision d;
        (void) state;
        setup(&f, sizes, 2, (struct rollout_conditions) { .success_pct = 100, .error_count = 1 });
        f.v.state = ROLLOUT_SCHEDULED;
        f.v.start_at = NOW + 100;
        d = eval(&f, NOW + 99);
        assert_int_equal(d.state, ROLLOUT_SCHEDULED);
        assert_false(d.changed);
        assert_int_equal(d.next_check, NOW + 100);
        rollout_decision_done(&d);
        d = eval(&f, NOW + 100);
        assert_int_equal(d.state, ROLLOUT_RUNNING);
        rollout_decision_done(&d);
        /* both groups reached their share, but one drone is still in flight: not finished */
        f.v.state = ROLLOUT_RUNNING;
        f.v.groups[0].cond.success_pct = 1;
        f.v.groups[1].cond.success_pct = 1;
        set(&f, 0, MEMBER_BLESSED, NOW);
        set(&f, 1, MEMBER_BLESSED, NOW);
        f.v.current_group = 2;
        f.m[1].state = MEMBER_INSTALLED;
        d = eval(&f, NOW + 20);
        assert_int_equal(d.state, ROLLOUT_RUNNING);
        rollout_decision_done(&d);
        f.m[1].state = MEMBER_BLESSED;
        d = eval(&f, NOW + 20);
        assert_int_equal(d.state, ROLLOUT_FINISHED);
        rollout_decision_done(&d);
        /* paused and draft rollouts do not move */
        f.v.state = ROLLOUT_PAUSED;
        f.v.current_group = 0;
        d = eval(&f, NOW + 300);
        assert_int_equal(d.state, ROLLOUT_PAUSED);
        assert_int_equal(d.current_group, 0);
        rollout_decision_done(&d);
}

static void test_large_group_is_linear(void **state) {
        size_t n = 10000;
        struct rollout_member *m = calloc(n, sizeof(*m));
        struct rollout_view v = { .id = 1, .state = ROLLOUT_RUNNING, .deadline = 60, .n_groups = 1, .members = m,
                                  .n_members = n };
        struct rollout_decision d;
        (void) state;
        v.groups[0] = (struct rollout_group) { .size = (uint32_t) n, .cond = { .success_pct = 95, .error_pct = 2 } };
        for (size_t i = 0; i < n; i++)
                m[i] = (struct rollout_member) { .state = i % 100 == 0 ? MEMBER_REBOOTING : MEMBER_BLESSED,
                                                 .handed_at = NOW, .state_at = NOW, .last_seen = NOW };
        assert_int_equal(rollout_evaluate(&v, NOW + 61, &d), 0);
        assert_int_equal(d.n_changes, 100);     /* 1 % timed out, below the 2 % error condition, */
        assert_int_equal(d.counts[0].failures, 100);
        assert_int_equal(d.counts[0].blessed, 9900);
        assert_int_equal(d.state, ROLLOUT_FINISHED);   /* 99 % ≥ 95 % blessed and nothing left in flight */
        rollout_decision_done(&d);
        free(m);
}

static void test_checkin_decide(void **state) {
        (void) state;
        assert_int_equal(rollout_checkin_decide(ROLLOUT_RUNNING, 0, 0, MEMBER_PENDING), CHECKIN_HAND);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_RUNNING, 0, 1, MEMBER_PENDING), CHECKIN_HOLD);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_RUNNING, 2, 1, MEMBER_PENDING), CHECKIN_HAND);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_PAUSED, 0, 0, MEMBER_PENDING), CHECKIN_HOLD);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_SCHEDULED, 0, 0, MEMBER_PENDING), CHECKIN_HOLD);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_DRAFT, 0, 0, MEMBER_PENDING), CHECKIN_FOLLOW);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_ABORTED, 0, 0, MEMBER_PENDING), CHECKIN_FOLLOW);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_ABORTED, 0, 0, MEMBER_DOWNLOADING), CHECKIN_FOLLOW);
        assert_int_equal(rollout_checkin_decide(ROLLOUT_RUNNING, 0, 0, MEMBER_HANDED), CHECKIN_FOLLOW);
        assert_int_equal(rollout_member_on_checkin(MEMBER_HANDED, true), MEMBER_BLESSED);
        assert_int_equal(rollout_member_on_checkin(MEMBER_HANDED, false), MEMBER_HANDED);
        assert_int_equal(rollout_member_on_checkin(MEMBER_DOWNLOADING, true), MEMBER_DOWNLOADING);
        assert_true(rollout_state_holds(ROLLOUT_DRAFT));
        assert_false(rollout_state_holds(ROLLOUT_FINISHED));
}

static void test_member_on_report(void **state) {
        (void) state;
        assert_int_equal(rollout_member_on_report(MEMBER_HANDED, FLEET_STATE_DOWNLOADING, true, false), MEMBER_DOWNLOADING);
        assert_int_equal(rollout_member_on_report(MEMBER_REBOOTING, FLEET_STATE_UPDATED, true, false), MEMBER_BLESSED);
        assert_int_equal(rollout_member_on_report(MEMBER_REBOOTING, FLEET_STATE_UPDATED, true, true), MEMBER_DRIFT);
        assert_int_equal(rollout_member_on_report(MEMBER_REBOOTING, FLEET_STATE_UPDATED, false, true), MEMBER_BLESSED);
        assert_int_equal(rollout_member_on_report(MEMBER_REBOOTING, FLEET_STATE_ROLLED_BACK, true, false), MEMBER_ROLLED_BACK);
        assert_int_equal(rollout_member_on_report(MEMBER_BLESSED, FLEET_STATE_ROLLED_BACK, true, false), MEMBER_ROLLED_BACK);
        assert_int_equal(rollout_member_on_report(MEMBER_TIMED_OUT, FLEET_STATE_UPDATED, true, false), MEMBER_BLESSED);
        assert_int_equal(rollout_member_on_report(MEMBER_HANDED, FLEET_STATE_RETRYING, true, false), MEMBER_RETRYING);
        assert_int_equal(rollout_member_on_report(MEMBER_HANDED, FLEET_STATE_FAILED, true, false), MEMBER_FAILED);
        assert_int_equal(rollout_member_on_report(MEMBER_HANDED, FLEET_STATE_IDLE, true, false), MEMBER_HANDED);
        assert_int_equal(rollout_member_on_report(MEMBER_PENDING, FLEET_STATE_UPDATED, true, false), MEMBER_PENDING);
        assert_int_equal(rollout_member_on_report(MEMBER_REMOVED, FLEET_STATE_FAILED, true, false), MEMBER_REMOVED);
        assert_int_equal(rollout_member_on_report(MEMBER_SKIPPED, FLEET_STATE_FAILED, true, false), MEMBER_SKIPPED);
}

static void test_drift_gate(void **state) {
        char out[128];
        (void) state;
        assert_int_equal(rollout_drift_new(true, "LOG-004 SB-008", true, "SB-008 LOG-004", out, sizeof(out)), 0);
        assert_string_equal(out, "");
        assert_int_equal(rollout_drift_new(true, "SB-008", true, "SVC-001 SB-008 LOG-001", out, sizeof(out)), 2);
        assert_string_equal(out, "SVC-001 LOG-001");
        assert_int_equal(rollout_drift_new(true, "", true, "SVC-001", out, sizeof(out)), 1);
        /* a check that was fixed is not drift */
        assert_int_equal(rollout_drift_new(true, "SVC-001", true, "", out, sizeof(out)), 0);
        /* no baseline: every failing check counts; none failing: nothing */
        assert_int_equal(rollout_drift_new(false, NULL, true, "SVC-001", out, sizeof(out)), 1);
        assert_int_equal(rollout_drift_new(false, NULL, true, "", out, sizeof(out)), 0);
        /* an audit that stopped arriving is drift; a drone that never audits is not gated */
        assert_int_equal(rollout_drift_new(true, "", false, NULL, out, sizeof(out)), 1);
        assert_string_equal(out, "audit-missing");
        assert_int_equal(rollout_drift_new(false, NULL, false, NULL, out, sizeof(out)), 0);
        /* prefixes are not matches */
        assert_int_equal(rollout_drift_new(true, "SB-00", true, "SB-008", out, sizeof(out)), 1);
        /* a small buffer still counts everything */
        assert_int_equal(rollout_drift_new(true, "", true, "SVC-001 SVC-002 SVC-003", out, 10), 3);
}

static void test_drift_classify(void **state) {
        struct drift_input clean = {
                .last_seen = NOW - 10, .version = "2.0", .assigned_version = "2.0", .audit_present = true,
                .audit_profile = "prod", .audit_failing = "", .sb_present = true, .sb_mode = "deployed", .sb_pk = "ok",
                .sb_kek = "ok", .sb_db = "ok",
        }, in;
        struct drift_result r;
        (void) state;
        drift_classify(&clean, NOW, 900, &r);
        assert_int_equal(r.kinds, 0);
        in = clean;
        in.version = "1.0";
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_RELEASE);
        assert_string_equal(r.release, "runs '1.0', assigned '2.0'");
        in.held = true;                      /* a rollout holds it: not drift yet */
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, 0);
        in = clean;
        in.assigned_version = NULL;          /* nothing assigned: any version is fine */
        in.version = "0.9";
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, 0);
        in = clean;
        in.audit_fail = 2;
        in.audit_failing = "SVC-001 LOG-003";
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_AUDIT);
        assert_non_null(strstr(r.audit, "SVC-001 LOG-003"));
        in = clean;
        in.audit_error = 1;                  /* unevaluated is not proven */
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_AUDIT);
        in = clean;
        in.audit_profile = "dev";
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_AUDIT);
        in = clean;
        in.audit_present = false;
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_AUDIT);
        in = clean;
        in.sb_mode = "setup";
        in.sb_db = "foreign";
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_SECUREBOOT);
        assert_string_equal(r.secureboot, "mode setup (not enforced), db foreign");
        in = clean;
        in.sb_mode = "user";                 /* user mode enforces too */
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, 0);
        in.sb_present = false;
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_SECUREBOOT);
        in = clean;
        in.last_seen = NOW - 901;
        drift_classify(&in, NOW, 900, &r);
        assert_int_equal(r.kinds, DRIFT_SILENT);
        in.last_seen = 0;
        drift_classify(&in, NOW, 900, &r);
        assert_string_equal(r.silent, "never checked in");
        assert_string_equal(drift_kind_to_string(DRIFT_SECUREBOOT), "secureboot");
}

static void test_state_names(void **state) {
        enum rollout_state r;
        enum member_state m;
        (void) state;
        for (unsigned i = 0; i < _ROLLOUT_STATE_MAX; i++) {
                assert_int_equal(rollout_state_from_string(rollout_state_to_string((enum rollout_state) i), &r), 0);
                assert_int_equal(r, i);
        }
        for (unsigned i = 0; i < _MEMBER_STATE_MAX; i++) {
                assert_int_equal(member_state_from_string(member_state_to_string((enum member_state) i), &m), 0);
                assert_int_equal(m, i);
        }
        assert_int_equal(rollout_state_from_string("gone", &r), -RINGIL_EMALFORMED);
        assert_int_equal(member_state_from_string("", &m), -RINGIL_EMALFORMED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spec_defaults),
                cmocka_unit_test(test_spec_full),
                cmocka_unit_test(test_spec_refused),
                cmocka_unit_test(test_spec_list_cap),
                cmocka_unit_test(test_partition),
                cmocka_unit_test(test_order_key),
                cmocka_unit_test(test_canary_then_rest),
                cmocka_unit_test(test_error_condition_count_and_percent),
                cmocka_unit_test(test_deadline_bricked_canary),
                cmocka_unit_test(test_deadline_counts_from_last_sign_of_life),
                cmocka_unit_test(test_soak_restarts_on_failure),
                cmocka_unit_test(test_settled_below_success_pauses),
                cmocka_unit_test(test_failures_acked_by_resume),
                cmocka_unit_test(test_late_failure_in_completed_group),
                cmocka_unit_test(test_scheduled_and_finish_waits),
                cmocka_unit_test(test_large_group_is_linear),
                cmocka_unit_test(test_checkin_decide),
                cmocka_unit_test(test_member_on_report),
                cmocka_unit_test(test_drift_gate),
                cmocka_unit_test(test_drift_classify),
                cmocka_unit_test(test_state_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
