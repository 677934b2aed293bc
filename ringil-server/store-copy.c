/* store-copy.c: `ringil-server migrate`: a fleet's whole state from one store to another (SQLite ↔ PostgreSQL), counts verified. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "macro.h"
#include "store-internal.h"

/*
 * Every table of the schema (STORE_SCHEMA_VERSION) in an order that satisfies the references, each with
 * its columns' kinds (T text, I integer, B blob) and its statements: the same columns in the same order
 * on both sides, so a row is copied value by value: drones and their identities, releases, assignments,
 * reports, rollouts with their groups, members and events, tags, windows, retry generations and the
 * compliance reports with their history, the operator action log. The scheduler's holder is not state to carry over:
 * the replicas on the new database elect their own.
 */
struct copy_table {
        const char *name;
        const char *kinds;
        const char *select;
        const char *insert;
        const char *count;
};

#define ROLLOUT_COLS                                                                                         \
        "id, name, release, target, state, reason, created, created_by, require_approval, approved_by, "       \
        "approved_at, start_at, started_at, ended_at, current_group, n_groups, deadline, rate, drift_gate, request"
#define GROUP_COLS                                                                                           \
        "rollout, idx, size, success_pct, soak, error_count, error_pct, success_since, completed_at, failures_acked"
#define MEMBER_COLS                                                                                          \
        "rollout, ord, drone, grp, state, attempt, handed_at, state_at, baseline_known, baseline, detail"
#define COMPLIANCE_COLS                                                                                      \
        "version, slot, system, tz, utc_offset, sb_present, sb_mode, sb_pk, sb_kek, sb_db, audit_present, "  \
        "audit_profile, audit_pass, audit_fail, audit_error, audit_waived, audit_na, audit_failing, "         \
        "audit_sha256, audit_version, audit_time"
#define COMPLIANCE_KINDS "TTTTIITTTTITIIIIITTTI"
#define COMPLIANCE_PARAMS                                                                                    \
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24"

static const struct copy_table tables[] = {
        { "releases", "ITTITTTTIITTIIT",
          "SELECT id, version, compatible, size, sha256, path, signer, manifest_digest, created, meta_size, meta_sha256, "
          "mirrors, built, expires, payloads FROM releases ORDER BY id",
          "INSERT INTO releases(id, version, compatible, size, sha256, path, signer, manifest_digest, created, meta_size, "
          "meta_sha256, mirrors, built, expires, payloads) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
          "?13, ?14, ?15)",
          "SELECT count(*) FROM releases" },
        { "drones", "TTIBITIITTTTITTIIIIIII",
          "SELECT id, grp, status, token_hash, token_expires, cert_serial, created, last_seen, version, slot, boot, state, "
          "release, target, error, audit_pass, audit_fail, last_seq, enrolled, cert_not_after, bytes_fetched, "
          "bytes_reused FROM drones ORDER BY id",
          "INSERT INTO drones(id, grp, status, token_hash, token_expires, cert_serial, created, last_seen, version, slot, "
          "boot, state, release, target, error, audit_pass, audit_fail, last_seq, enrolled, cert_not_after, "
          "bytes_fetched, bytes_reused) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
          "?17, ?18, ?19, ?20, ?21, ?22)",
          "SELECT count(*) FROM drones" },
        { "assignments", "TII",
          "SELECT target, release, created FROM assignments ORDER BY target",
          "INSERT INTO assignments(target, release, created) VALUES (?1, ?2, ?3)",
          "SELECT count(*) FROM assignments" },
        { "events", "ITIITITTT",
          "SELECT id, drone, seq, time, state, release, version, target, error FROM events ORDER BY id",
          "INSERT INTO events(id, drone, seq, time, state, release, version, target, error) VALUES (?1, ?2, ?3, ?4, ?5, "
          "?6, ?7, ?8, ?9)",
          "SELECT count(*) FROM events" },
        { "rollouts", "ITITTTITITIIIIIIIIIT",
          "SELECT " ROLLOUT_COLS " FROM rollouts ORDER BY id",
          "INSERT INTO rollouts(" ROLLOUT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
          "?15, ?16, ?17, ?18, ?19, ?20)",
          "SELECT count(*) FROM rollouts" },
        { "rollout_groups", "IIIIIIIIII",
          "SELECT " GROUP_COLS " FROM rollout_groups ORDER BY rollout, idx",
          "INSERT INTO rollout_groups(" GROUP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
          "SELECT count(*) FROM rollout_groups" },
        { "rollout_members", "IITITIIIITT",
          "SELECT " MEMBER_COLS " FROM rollout_members ORDER BY rollout, ord",
          "INSERT INTO rollout_members(" MEMBER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
          "SELECT count(*) FROM rollout_members" },
        { "rollout_events", "IIITTIT",
          "SELECT id, rollout, time, drone, event, attempt, detail FROM rollout_events ORDER BY id",
          "INSERT INTO rollout_events(id, rollout, time, drone, event, attempt, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
          "SELECT count(*) FROM rollout_events" },
        { "drone_tags", "TT",
          "SELECT drone, tag FROM drone_tags ORDER BY drone, tag",
          "INSERT INTO drone_tags(drone, tag) VALUES (?1, ?2)",
          "SELECT count(*) FROM drone_tags" },
        { "windows", "TT",
          "SELECT target, spec FROM windows ORDER BY target",
          "INSERT INTO windows(target, spec) VALUES (?1, ?2)",
          "SELECT count(*) FROM windows" },
        { "drone_ctl", "TI",
          "SELECT drone, retry FROM drone_ctl ORDER BY drone",
          "INSERT INTO drone_ctl(drone, retry) VALUES (?1, ?2)",
          "SELECT count(*) FROM drone_ctl" },
        { "compliance", "TIT" COMPLIANCE_KINDS,
          "SELECT drone, time, digest, " COMPLIANCE_COLS " FROM compliance ORDER BY drone",
          "INSERT INTO compliance(drone, time, digest, " COMPLIANCE_COLS ") VALUES (" COMPLIANCE_PARAMS ")",
          "SELECT count(*) FROM compliance" },
        { "compliance_history", "ITI" COMPLIANCE_KINDS,
          "SELECT id, drone, time, " COMPLIANCE_COLS " FROM compliance_history ORDER BY id",
          "INSERT INTO compliance_history(id, drone, time, " COMPLIANCE_COLS ") VALUES (" COMPLIANCE_PARAMS ")",
          "SELECT count(*) FROM compliance_history" },
        { "operator_actions", "IITTTTTTI",
          "SELECT id, time, operator, serial, method, path, target, detail, status FROM operator_actions ORDER BY id",
          "INSERT INTO operator_actions(id, time, operator, serial, method, path, target, detail, status) VALUES (?1, ?2, "
          "?3, ?4, ?5, ?6, ?7, ?8, ?9)",
          "SELECT count(*) FROM operator_actions" },
};

/* Identity columns continue after the copied ids (SQLite's INTEGER PRIMARY KEY needs nothing). */
static const char *const pg_after[] = {
        "SELECT setval(pg_get_serial_sequence('releases', 'id'), COALESCE(max(id), 0) + 1, false) FROM releases",
        "SELECT setval(pg_get_serial_sequence('events', 'id'), COALESCE(max(id), 0) + 1, false) FROM events",
        "SELECT setval(pg_get_serial_sequence('rollouts', 'id'), COALESCE(max(id), 0) + 1, false) FROM rollouts",
        "SELECT setval(pg_get_serial_sequence('rollout_events', 'id'), COALESCE(max(id), 0) + 1, false) FROM rollout_events",
        "SELECT setval(pg_get_serial_sequence('compliance_history', 'id'), COALESCE(max(id), 0) + 1, false) "
        "FROM compliance_history",
        "SELECT setval(pg_get_serial_sequence('operator_actions', 'id'), COALESCE(max(id), 0) + 1, false) "
        "FROM operator_actions",
};

#define COPY_MAX_COLUMNS 24

struct copy_ctx {
        const struct copy_table *t;
        struct sqlconn *to;
        int64_t rows;
};

static int copy_row(const struct sql_row *q, void *userdata) {
        struct copy_ctx *x = userdata;
        struct sql_arg args[COPY_MAX_COLUMNS + 1];
        size_t n = strlen(x->t->kinds);
        int r;

        if (n > COPY_MAX_COLUMNS)
                return -E2BIG;

        for (size_t i = 0; i < n; i++) {
                if (row_null(q, (int) i)) {
                        args[i] = (struct sql_arg) NUL;
                        continue;
                }
                switch (x->t->kinds[i]) {
                case 'I':
                        args[i] = (struct sql_arg) INT(row_int(q, (int) i));
                        break;
                case 'B': {
                        size_t len = 0;
                        const void *b = row_blob(q, (int) i, &len);
                        if (!b)
                                return ringil_fail(-EIO, "%s: a value of column %zu cannot be read", x->t->name, i + 1);
                        args[i] = (struct sql_arg) BLOB(b, (int) len);
                        break;
                }
                default:
                        args[i] = (struct sql_arg) TEXT(row_text(q, (int) i));
                        break;
                }
        }
        args[n] = (struct sql_arg) { .type = A_END };
        r = store_sql(x->to, x->t->insert, args, NULL, NULL);
        if (r < 0)
                return r;
        x->rows++;
        return 0;
}

static int count_row(const struct sql_row *q, void *userdata) {
        *(int64_t *) userdata = row_int(q, 0);
        return 1;
}

int store_copy(store *from, store *to, json_t **ret) {
        _cleanup_(json_decrefp) json_t *counts = json_object();
        struct sqlconn *src = NULL, *dst = NULL;
        int r;

        if (!counts)
                return -ENOMEM;
        _Static_assert(STORE_SCHEMA_VERSION == 7, "a new schema version: add its tables and columns here");
        /* One snapshot of the source: a live server may go on writing, the copy is of one instant. */
        r = store_snapshot(from, &src);
        if (r < 0)
                return r;
        r = store_tx(to, true, &dst);
        if (r < 0) {
                store_snapshot_done(from, src);
                return r;
        }
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(tables); i++) {
                int64_t have = 0;
                r = store_sql(dst, tables[i].count, NOARGS, count_row, &have);
                if (r >= 0 && have > 0)
                        r = ringil_fail(-ENOTEMPTY, "the destination's table %s has %" PRId64 " rows: migrate only into "
                                        "a new database", tables[i].name, have);
        }
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(tables); i++) {
                struct copy_ctx x = { .t = &tables[i], .to = dst };
                int64_t n_src = -1, n_dst = -1;

                r = store_sql(src, tables[i].select, NOARGS, copy_row, &x);
                if (r >= 0)
                        r = store_sql(src, tables[i].count, NOARGS, count_row, &n_src);
                if (r >= 0)
                        r = store_sql(dst, tables[i].count, NOARGS, count_row, &n_dst);
                /* INVARIANT: nothing is committed unless every table holds as many rows as the source. */
                if (r >= 0 && (n_src != n_dst || n_src != x.rows))
                        r = ringil_fail(-EIO, "table %s: %" PRId64 " rows in the source, %" PRId64 " copied, %" PRId64
                                        " in the destination", tables[i].name, n_src, x.rows, n_dst);
                if (r >= 0 && json_object_set_new(counts, tables[i].name, json_integer(n_dst)) < 0)
                        r = -ENOMEM;
        }
        if (store_sql_dialect(dst) == STORE_POSTGRESQL)
                for (size_t i = 0; r >= 0 && i < ELEMENTSOF(pg_after); i++)
                        r = store_sql(dst, pg_after[i], NOARGS, NULL, NULL);
        r = store_tx_end(to, r);
        store_snapshot_done(from, src);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(counts);
        return 0;
}
