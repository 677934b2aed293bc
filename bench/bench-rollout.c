/* bench-rollout.c: the rollout scheduler's cost for one group of N drones: the pure evaluation, and a
 * whole scheduler pass over a real SQLite store (snapshot, evaluation, writing the decision). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollout.h"
#include "store-rollout.h"
#include "store.h"

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n, double limit) {
        qsort(t, (size_t) n, sizeof(*t), cmp);
        printf("%-58s median %8.3f ms  p99 %8.3f ms  max %8.3f ms  (limit %.0f ms: %s)\n", what, t[n / 2],
               t[(n * 99) / 100], t[n - 1], limit, t[(n * 99) / 100] <= limit ? "within" : "OVER");
}

static int sql(sqlite3 *db, const char *s) {
        char *err = NULL;
        if (sqlite3_exec(db, s, NULL, NULL, &err) != SQLITE_OK) {
                fprintf(stderr, "bench-rollout: %s: %s\n", s, err ? err : "?");
                sqlite3_free(err);
                return -1;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        int n = argc > 1 ? atoi(argv[1]) : 10000, iters = argc > 2 ? atoi(argv[2]) : 50;
        int64_t t0 = (int64_t) time(NULL);
        struct rollout_member *m;
        struct rollout_view v = { .id = 1, .state = ROLLOUT_RUNNING, .deadline = 1800, .n_groups = 1 };
        char dir[] = "/tmp/ringil-bench-rollout.XXXXXX", path[128], spec_json[128], stmt[256];
        struct rollout_spec spec;
        struct rollout_action_args args = { .operator_name = "bench" };
        struct rollout_pass_stats st;
        double *t;
        int64_t rid = 0;
        sqlite3 *db;
        store *s;

        if (n < 1 || iters < 1)
                return 2;
        t = calloc((size_t) iters, sizeof(*t));
        m = calloc((size_t) n, sizeof(*m));
        if (!t || !m)
                return 1;

        /* 1. rollout_evaluate() alone: one group of n members, 90 % blessed, the rest in flight */
        v.groups[0] = (struct rollout_group) { .size = (uint32_t) n, .cond = { .success_pct = 95, .error_pct = 5 } };
        for (int i = 0; i < n; i++)
                m[i] = (struct rollout_member) { .state = i % 10 ? MEMBER_BLESSED : MEMBER_REBOOTING,
                                                 .handed_at = t0, .state_at = t0, .last_seen = t0 };
        v.members = m;
        v.n_members = (size_t) n;
        for (int k = 0; k < iters; k++) {
                struct rollout_decision d;
                double a = now_ms();
                if (rollout_evaluate(&v, t0 + 10, &d) < 0)
                        return 1;
                t[k] = now_ms() - a;
                rollout_decision_done(&d);
        }
        snprintf(stmt, sizeof(stmt), "rollout_evaluate(), %d drones in one group", n);
        report(stmt, t, iters, 50);

        /* 2. store_rollout_pass() on a real store: snapshot, evaluation, transaction */
        if (!mkdtemp(dir))
                return 1;
        snprintf(path, sizeof(path), "%s/fleet.db", dir);
        if (store_open(path, 1, &s) < 0) {
                fprintf(stderr, "bench-rollout: cannot open the store\n");
                return 1;
        }
        if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
            sql(db, "BEGIN") < 0 ||
            sql(db, "INSERT INTO releases(id, version, compatible, size, sha256, path, created) "
                    "VALUES (1, '2.0', 'bench', 1, 'aa', '/dev/null', 0)") < 0 ||
            sql(db, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n LIMIT 100000) "
                    "INSERT INTO drones(id, grp, status, created, last_seen) "
                    "SELECT printf('drone-%05d', i), 'bench', 1, 0, strftime('%s') FROM n") < 0)
                return 1;
        snprintf(stmt, sizeof(stmt), "DELETE FROM drones WHERE id >= printf('drone-%%05d', %d)", n);
        if (sql(db, stmt) < 0 || sql(db, "COMMIT") < 0)
                return 1;
        snprintf(spec_json, sizeof(spec_json), "{\"release\":1,\"target\":\"*\",\"groups\":[{\"rest\":true}],"
                                               "\"success_percent\":95,\"error_percent\":5}");
        if (rollout_spec_parse(spec_json, strlen(spec_json), &spec) < 0 ||
            store_rollout_create(s, &spec, spec_json, "bench", t0, &rid) < 0 ||
            store_rollout_action(s, rid, ROLLOUT_START, &args, t0) < 0) {
                fprintf(stderr, "bench-rollout: cannot create the rollout\n");
                return 1;
        }
        rollout_spec_done(&spec);
        snprintf(stmt, sizeof(stmt), "UPDATE rollout_members SET handed_at = %lld, state_at = %lld, "
                                     "state = CASE WHEN ord %% 10 = 0 THEN 'rebooting' ELSE 'blessed' END",
                 (long long) t0, (long long) t0);
        if (sql(db, stmt) < 0)
                return 1;
        sqlite3_close(db);
        for (int k = 0; k < iters; k++) {
                double a = now_ms();
                if (store_rollout_pass(s, t0 + 10, t0, NULL, NULL, &st) < 0) {
                        fprintf(stderr, "bench-rollout: the pass failed\n");
                        return 1;
                }
                t[k] = now_ms() - a;
        }
        snprintf(stmt, sizeof(stmt), "store_rollout_pass() (SQLite, WAL), %u members, full", st.members);
        report(stmt, t, iters, 50);
        {
                /* the scheduler's own passes: with its cache, a rollout with nothing new is skipped */
                struct rollout_pass_cache cache = {};
                for (int k = 0; k < iters; k++) {
                        double a = now_ms();
                        if (store_rollout_pass(s, t0 + 10, t0, &cache, NULL, &st) < 0)
                                return 1;
                        t[k] = now_ms() - a;
                }
                report("store_rollout_pass() with the scheduler's cache, nothing new", t, iters, 50);
        }
        {
                /* the heaviest pass: every in-flight drone passes its deadline at once and is written */
                double a = now_ms(), b;
                if (store_rollout_pass(s, t0 + 1801, t0, NULL, NULL, &st) < 0)
                        return 1;
                b = now_ms() - a;
                printf("%-58s %8.3f ms  (%u members timed out and written, one transaction)\n",
                       "store_rollout_pass(), deadline of 10 % of them", b, st.timed_out);
        }
        store_close(s);
        snprintf(stmt, sizeof(stmt), "rm -rf -- '%s'", dir);
        if (system(stmt) != 0)
                return 1;
        free(t);
        free(m);
        return 0;
}
