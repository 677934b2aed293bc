/* store-rollout.c: rollouts and their members, tags, windows and retries in SQLite; the scheduler pass. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "macro.h"
#include "store-internal.h"
#include "store-rollout.h"

/*
 * Members live in rollout_members keyed by (rollout, ord): ord is the drone's place in the rollout's
 * order, so the scheduler updates rows without strings. A drone's "latest membership" (highest rollout
 * id) is the one that governs its check-ins: one rollout per drone at a time is enforced at creation,
 * and a newer rollout always has a higher id.
 */
static const char schema[] =
        "CREATE TABLE IF NOT EXISTS rollouts("
        " id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', release INTEGER NOT NULL REFERENCES releases(id),"
        " target TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',"
        " created INTEGER NOT NULL, created_by TEXT NOT NULL, require_approval INTEGER NOT NULL,"
        " approved_by TEXT, approved_at INTEGER, start_at INTEGER NOT NULL DEFAULT 0,"
        " started_at INTEGER NOT NULL DEFAULT 0, ended_at INTEGER NOT NULL DEFAULT 0,"
        " current_group INTEGER NOT NULL DEFAULT 0, n_groups INTEGER NOT NULL, deadline INTEGER NOT NULL,"
        " rate INTEGER NOT NULL DEFAULT 0, drift_gate INTEGER NOT NULL, request TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS rollout_groups("
        " rollout INTEGER NOT NULL REFERENCES rollouts(id), idx INTEGER NOT NULL, size INTEGER NOT NULL,"
        " success_pct INTEGER NOT NULL, soak INTEGER NOT NULL, error_count INTEGER NOT NULL,"
        " error_pct INTEGER NOT NULL, success_since INTEGER NOT NULL DEFAULT 0,"
        " completed_at INTEGER NOT NULL DEFAULT 0, failures_acked INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY(rollout, idx));"
        "CREATE TABLE IF NOT EXISTS rollout_members("
        " rollout INTEGER NOT NULL REFERENCES rollouts(id), ord INTEGER NOT NULL, drone TEXT NOT NULL,"
        " grp INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,"
        " handed_at INTEGER NOT NULL DEFAULT 0, state_at INTEGER NOT NULL DEFAULT 0,"
        " baseline_known INTEGER NOT NULL DEFAULT 0, baseline TEXT NOT NULL DEFAULT '',"
        " detail TEXT NOT NULL DEFAULT '', PRIMARY KEY(rollout, ord), UNIQUE(rollout, drone));"
        "CREATE INDEX IF NOT EXISTS rollout_members_by_drone ON rollout_members(drone, rollout);"
        "CREATE TABLE IF NOT EXISTS rollout_events("
        " id INTEGER PRIMARY KEY, rollout INTEGER NOT NULL, time INTEGER NOT NULL, drone TEXT NOT NULL DEFAULT '',"
        " event TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '');"
        "CREATE INDEX IF NOT EXISTS rollout_events_by_rollout ON rollout_events(rollout, id);"
        "CREATE TABLE IF NOT EXISTS drone_tags(drone TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(drone, tag))"
        " WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS drone_tags_by_tag ON drone_tags(tag);"
        "CREATE TABLE IF NOT EXISTS windows(target TEXT PRIMARY KEY, spec TEXT NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS drone_ctl(drone TEXT PRIMARY KEY, retry INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;";

/* Member states that count as failures and as in flight, for SQL. */
#define SQL_FAILURES "('failed','rolled-back','timed-out','drift')"
#define SQL_IN_FLIGHT "('handed','downloading','waiting','installed','rebooting','retrying')"
#define SQL_HOLDING "('draft','scheduled','running','paused')"

int store_compliance_open(store *s);
void store_compliance_close(store *s);

int store_rollout_open(store *s) {
        char *err = NULL;
        int rc = sqlite3_exec(store_sqlite(s), schema, NULL, NULL, &err);

        sqlite3_free(err);
        if (rc != SQLITE_OK)
                return store_sql_fail(s, rc, "rollout schema");
        return store_compliance_open(s);
}

void store_rollout_close(store *s) {
        store_compliance_close(s);
}

/* ---- small helpers (the store lock is held) ---- */

#define STMT(var, sql)                                                  \
        sqlite3_stmt *var = store_stmt(s, sql);                         \
        if (!var)                                                       \
                return -EIO

static void reset(sqlite3_stmt *q) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
}

static const char *col(sqlite3_stmt *q, int i) {
        const unsigned char *t = sqlite3_column_text(q, i);
        return t ? (const char *) t : "";
}

static int event(store *s, int64_t rollout, int64_t now, const char *drone, const char *what, int64_t attempt,
                 const char *detail) {
        STMT(q, "INSERT INTO rollout_events(rollout, time, drone, event, attempt, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
        sqlite3_bind_int64(q, 1, rollout);
        sqlite3_bind_int64(q, 2, now);
        sqlite3_bind_text(q, 3, drone ? drone : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, what, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, attempt);
        sqlite3_bind_text(q, 6, detail ? detail : "", -1, SQLITE_STATIC);
        return store_step(s, q);
}

static int drone_exists(store *s, const char *drone, int *ret_status) {
        STMT(q, "SELECT status FROM drones WHERE id = ?1");
        int rc;

        sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW && ret_status)
                *ret_status = sqlite3_column_int(q, 0);
        reset(q);
        if (rc == SQLITE_ROW)
                return 1;
        return rc == SQLITE_DONE ? 0 : store_sql_fail(s, rc, "drone lookup");
}

/* The drone's latest membership: rollout, ord, member state and its rollout's state. 0 when none. */
struct membership {
        int64_t rollout, ord, release;
        uint32_t group, current_group;
        enum member_state member;
        enum rollout_state state;
        uint64_t rate;
        bool drift_gate, baseline_known;
        char version[FLEET_VERSION_MAX];
        char baseline[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX];
};

static int latest_membership(store *s, const char *drone, struct membership *ret) {
        STMT(q, "SELECT m.rollout, m.ord, m.grp, m.state, r.state, r.current_group, r.rate, r.release, rel.version, "
                "r.drift_gate, m.baseline_known, m.baseline "
                "FROM rollout_members m JOIN rollouts r ON r.id = m.rollout JOIN releases rel ON rel.id = r.release "
                "WHERE m.drone = ?1 ORDER BY m.rollout DESC LIMIT 1");
        struct membership m = {};
        int rc, r = 0;

        sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                m.rollout = sqlite3_column_int64(q, 0);
                m.ord = sqlite3_column_int64(q, 1);
                m.group = (uint32_t) sqlite3_column_int64(q, 2);
                if (member_state_from_string(col(q, 3), &m.member) < 0 ||
                    rollout_state_from_string(col(q, 4), &m.state) < 0)
                        r = ringil_fail(-EIO, "rollout %" PRId64 ": unknown state in the store", m.rollout);
                m.current_group = (uint32_t) sqlite3_column_int64(q, 5);
                m.rate = (uint64_t) sqlite3_column_int64(q, 6);
                m.release = sqlite3_column_int64(q, 7);
                store_text(q, 8, m.version, sizeof(m.version));
                m.drift_gate = sqlite3_column_int(q, 9) != 0;
                m.baseline_known = sqlite3_column_int(q, 10) != 0;
                store_text(q, 11, m.baseline, sizeof(m.baseline));
                r = r < 0 ? r : 1;
        } else if (rc != SQLITE_DONE)
                r = store_sql_fail(s, rc, "membership");
        reset(q);
        if (r > 0)
                *ret = m;
        return r;
}

static int set_member(store *s, int64_t rollout, int64_t ord, enum member_state st, int64_t now, const char *detail) {
        STMT(q, "UPDATE rollout_members SET state = ?3, state_at = ?4, detail = ?5 WHERE rollout = ?1 AND ord = ?2");
        sqlite3_bind_int64(q, 1, rollout);
        sqlite3_bind_int64(q, 2, ord);
        sqlite3_bind_text(q, 3, member_state_to_string(st), -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, now);
        sqlite3_bind_text(q, 5, detail ? detail : "", -1, SQLITE_STATIC);
        return store_step(s, q);
}

static int member_drone(store *s, int64_t rollout, int64_t ord, char drone[static 65]) {
        STMT(q, "SELECT drone FROM rollout_members WHERE rollout = ?1 AND ord = ?2");
        int rc;

        sqlite3_bind_int64(q, 1, rollout);
        sqlite3_bind_int64(q, 2, ord);
        rc = sqlite3_step(q);
        drone[0] = '\0';
        if (rc == SQLITE_ROW)
                store_text(q, 0, drone, 65);
        reset(q);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(s, rc, "member");
}

/* ---- drones: tags, retry generation, clearing ---- */

int store_drone_tag(store *s, const char *drone, const char *tag, bool add) {
        int r;

        store_lock(s);
        r = store_begin(s, true);
        if (r >= 0) {
                r = drone_exists(s, drone, NULL);
                if (r == 0)
                        r = ringil_fail(-ENOENT, "no drone '%s'", drone);
                if (r >= 0) {
                        sqlite3_stmt *q = add ? store_stmt(s, "INSERT OR IGNORE INTO drone_tags(drone, tag) VALUES (?1, ?2)")
                                              : store_stmt(s, "DELETE FROM drone_tags WHERE drone = ?1 AND tag = ?2");
                        if (!q)
                                r = -EIO;
                        else {
                                sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                                sqlite3_bind_text(q, 2, tag, -1, SQLITE_STATIC);
                                r = store_step(s, q);
                        }
                }
                r = store_end(s, r);
        }
        store_unlock(s);
        return r;
}

static int bump_retry(store *s, const char *drone, uint32_t *ret) {
        STMT(q, "INSERT INTO drone_ctl(drone, retry) VALUES (?1, 1) "
                "ON CONFLICT(drone) DO UPDATE SET retry = retry + 1 RETURNING retry");
        int rc;

        sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW && ret)
                *ret = (uint32_t) sqlite3_column_int64(q, 0);
        /* RETURNING: step to the end so the statement completes before reset */
        while (rc == SQLITE_ROW)
                rc = sqlite3_step(q);
        reset(q);
        return rc == SQLITE_DONE ? 0 : store_sql_fail(s, rc, "retry");
}

int store_drone_retry(store *s, const char *drone, uint32_t *ret_generation) {
        int r;

        store_lock(s);
        r = store_begin(s, true);
        if (r >= 0) {
                r = drone_exists(s, drone, NULL);
                if (r == 0)
                        r = ringil_fail(-ENOENT, "no drone '%s'", drone);
                if (r >= 0)
                        r = bump_retry(s, drone, ret_generation);
                r = store_end(s, r);
        }
        store_unlock(s);
        return r;
}

/* A rollout that holds the drone and has not settled it: the member becomes removed. */
static int remove_from_rollout(store *s, const char *drone, int64_t now, const char *why, bool *ret_removed) {
        struct membership m;
        int r = latest_membership(s, drone, &m);

        *ret_removed = false;
        if (r <= 0)
                return r;
        if (!rollout_state_holds(m.state) || member_settled(m.member))
                return 0;
        r = set_member(s, m.rollout, m.ord, MEMBER_REMOVED, now, why);
        if (r >= 0)
                r = event(s, m.rollout, now, drone, "removed", 0, why);
        *ret_removed = r >= 0;
        return r;
}

int store_drone_clear(store *s, const char *drone, int64_t now) {
        bool removed = false;
        int r, changed = 0;

        store_lock(s);
        r = store_begin(s, true);
        if (r >= 0) {
                r = drone_exists(s, drone, NULL);
                if (r == 0)
                        r = ringil_fail(-ENOENT, "no drone '%s'", drone);
                if (r >= 0) {
                        sqlite3_stmt *q = store_stmt(s, "DELETE FROM assignments WHERE target = 'drone:' || ?1");
                        r = q ? 0 : -EIO;
                        if (r >= 0) {
                                sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                                r = store_step(s, q);
                                changed = sqlite3_changes(store_sqlite(s)) > 0;
                        }
                }
                if (r >= 0)
                        r = remove_from_rollout(s, drone, now, "assignment cleared by an operator", &removed);
                r = store_end(s, r);
        }
        store_unlock(s);
        return r < 0 ? r : changed || removed;
}

int store_rollout_assign_check(store *s, const char *drone, bool force, int64_t now) {
        struct membership m;
        bool removed;
        int r;

        store_lock(s);
        r = store_begin(s, true);
        if (r >= 0) {
                r = latest_membership(s, drone, &m);
                if (r > 0 && rollout_state_holds(m.state) && !member_settled(m.member)) {
                        if (!force)
                                r = ringil_fail(-EEXIST, "drone '%s' is in rollout %" PRId64 " (%s, member %s); "
                                                "clear it or use force", drone, m.rollout,
                                                rollout_state_to_string(m.state), member_state_to_string(m.member));
                        else
                                r = remove_from_rollout(s, drone, now, "overridden by a static assignment", &removed);
                }
                r = store_end(s, r < 0 ? r : 0);
        }
        store_unlock(s);
        return r;
}

/* ---- windows ---- */

int store_window_set(store *s, const char *target, const char *spec) {
        int r;

        store_lock(s);
        r = store_begin(s, true);
        if (r >= 0) {
                sqlite3_stmt *q = spec ? store_stmt(s, "INSERT INTO windows(target, spec) VALUES (?1, ?2) "
                                                       "ON CONFLICT(target) DO UPDATE SET spec = excluded.spec")
                                       : store_stmt(s, "DELETE FROM windows WHERE target = ?1");
                r = q ? 0 : -EIO;
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, target, -1, SQLITE_STATIC);
                        if (spec)
                                sqlite3_bind_text(q, 2, spec, -1, SQLITE_STATIC);
                        r = store_step(s, q);
                }
                r = store_end(s, r);
        }
        store_unlock(s);
        return r;
}

int store_windows_json(store *s, json_t **ret) {
        json_t *a = json_array();
        sqlite3_stmt *q;
        int rc;

        if (!a)
                return -ENOMEM;
        store_lock(s);
        q = store_stmt(s, "SELECT target, spec FROM windows ORDER BY target");
        if (!q) {
                store_unlock(s);
                json_decref(a);
                return -EIO;
        }
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                json_array_append_new(a, json_pack("{s:s, s:s}", "target", col(q, 0), "windows", col(q, 1)));
        reset(q);
        store_unlock(s);
        if (rc != SQLITE_DONE) {
                json_decref(a);
                return store_sql_fail(s, rc, "windows");
        }
        *ret = a;
        return 0;
}

/* ---- creation ---- */

struct target_drone {
        char *id;
        uint8_t key[32];
};

static int cmp_key(const void *a, const void *b) {
        const struct target_drone *x = a, *y = b;
        int c = memcmp(x->key, y->key, 32);
        return c ? c : strcmp(x->id, y->id);
}

static void targets_free(struct target_drone *t, size_t n) {
        for (size_t i = 0; t && i < n; i++)
                free(t[i].id);
        free(t);
}

static int resolve_target(store *s, const struct rollout_spec *spec, struct target_drone **ret, size_t *ret_n) {
        struct target_drone *t = NULL;
        size_t n = 0, cap = 0;
        sqlite3_stmt *q = NULL;
        int rc, r = 0;

        if (spec->target == TARGET_LIST) {
                t = calloc(MAX(spec->n_drones, (size_t) 1), sizeof(*t));
                if (!t)
                        return -ENOMEM;
                for (size_t i = 0; i < spec->n_drones; i++) {
                        int status = 0;
                        r = drone_exists(s, spec->drones[i], &status);
                        if (r == 0)
                                r = ringil_fail(-ENOENT, "drone '%s' is not registered", spec->drones[i]);
                        else if (r > 0 && status == DRONE_REVOKED)
                                r = ringil_fail(-EPERM, "drone '%s' is revoked", spec->drones[i]);
                        if (r < 0)
                                goto fail;
                        t[i].id = strdup(spec->drones[i]);
                        if (!t[i].id) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        n = i + 1;
                }
                *ret = t;
                *ret_n = n;
                return 0;
        }
        switch (spec->target) {
        case TARGET_GROUP:
                q = store_stmt(s, "SELECT id FROM drones WHERE status != 2 AND grp = ?1 ORDER BY id");
                break;
        case TARGET_TAG:
                q = store_stmt(s, "SELECT d.id FROM drones d JOIN drone_tags t ON t.drone = d.id "
                                  "WHERE d.status != 2 AND t.tag = ?1 ORDER BY d.id");
                break;
        case TARGET_FLEET:
        case TARGET_LIST:
        default:
                q = store_stmt(s, "SELECT id FROM drones WHERE status != 2 ORDER BY id");
                break;
        }
        if (!q)
                return -EIO;
        if (spec->target != TARGET_FLEET)
                sqlite3_bind_text(q, 1, spec->target_name, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                if (n == ROLLOUT_MAX_MEMBERS) {
                        r = ringil_fail(-E2BIG, "the target holds more than %d drones", ROLLOUT_MAX_MEMBERS);
                        break;
                }
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 256;
                        struct target_drone *nt = realloc(t, ncap * sizeof(*t));
                        if (!nt) {
                                r = -ENOMEM;
                                break;
                        }
                        t = nt;
                        cap = ncap;
                }
                t[n].id = strdup(col(q, 0));
                if (!t[n].id) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
                r = store_sql_fail(s, rc, "target");
        reset(q);
        if (r < 0)
                goto fail;
        *ret = t;
        *ret_n = n;
        return 0;
fail:
        targets_free(t, n);
        return r;
}

/* One rollout per drone at a time: name the first few drones another rollout claims. */
static int check_conflicts(store *s, const struct target_drone *t, size_t n) {
        STMT(q, "SELECT m.rollout, r.state FROM rollout_members m JOIN rollouts r ON r.id = m.rollout "
                "WHERE m.drone = ?1 AND r.state IN " SQL_HOLDING " LIMIT 1");
        char msg[400] = "";
        size_t o = 0, conflicts = 0;
        int rc;

        for (size_t i = 0; i < n; i++) {
                sqlite3_bind_text(q, 1, t[i].id, -1, SQLITE_STATIC);
                rc = sqlite3_step(q);
                if (rc == SQLITE_ROW) {
                        if (conflicts < 5 && o < sizeof(msg))
                                o += (size_t) snprintf(msg + o, sizeof(msg) - o, "%s'%s' (rollout %" PRId64 ", %s)",
                                                       conflicts ? ", " : "", t[i].id, (int64_t) sqlite3_column_int64(q, 0),
                                                       col(q, 1));
                        conflicts++;
                }
                reset(q);
                if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                        return store_sql_fail(s, rc, "conflicts");
        }
        if (conflicts)
                return ringil_fail(-EEXIST, "%zu drone%s already in another rollout: %s%s; one rollout per drone at a "
                                   "time: abort or finish it first", conflicts, conflicts == 1 ? " is" : "s are", msg,
                                   conflicts > 5 ? ", …" : "");
        return 0;
}

int store_rollout_create(store *s, const struct rollout_spec *spec, const char *request_json, const char *creator,
                         int64_t now, int64_t *ret_id) {
        struct target_drone *t = NULL;
        uint32_t sizes[ROLLOUT_MAX_GROUPS];
        struct rollout_conditions cond[ROLLOUT_MAX_GROUPS];
        char target[80];
        size_t n = 0, k, ord = 0;
        int64_t id = 0;
        sqlite3_stmt *q;
        int r, rc;

        rollout_spec_target_string(spec, target, sizeof(target));
        store_lock(s);
        r = store_begin(s, true);
        if (r < 0)
                goto out;
        q = store_stmt(s, "SELECT id FROM releases WHERE id = ?1");
        if (!q) {
                r = -EIO;
                goto end;
        }
        sqlite3_bind_int64(q, 1, spec->release);
        rc = sqlite3_step(q);
        reset(q);
        if (rc != SQLITE_ROW) {
                r = rc == SQLITE_DONE ? ringil_fail(-ENOENT, "no release %" PRId64, spec->release)
                                      : store_sql_fail(s, rc, "release");
                goto end;
        }
        r = resolve_target(s, spec, &t, &n);
        if (r < 0)
                goto end;
        if (n == 0) {
                r = ringil_fail(-ENODATA, "target '%s' holds no drone", spec->target == TARGET_LIST ? "drones" : target);
                goto end;
        }
        r = check_conflicts(s, t, n);
        if (r < 0)
                goto end;
        q = store_stmt(s, "INSERT INTO rollouts(name, release, target, state, created, created_by, require_approval, "
                          "start_at, n_groups, deadline, rate, drift_gate, request) "
                          "VALUES (?1, ?2, ?3, 'draft', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
        if (!q) {
                r = -EIO;
                goto end;
        }
        k = rollout_partition(n, spec->groups, spec->n_groups, sizes, cond);
        sqlite3_bind_text(q, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, spec->release);
        sqlite3_bind_text(q, 3, target, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, now);
        sqlite3_bind_text(q, 5, creator, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 6, spec->require_approval);
        sqlite3_bind_int64(q, 7, spec->start_at);
        sqlite3_bind_int64(q, 8, (int64_t) k);
        sqlite3_bind_int64(q, 9, spec->deadline);
        sqlite3_bind_int64(q, 10, (int64_t) spec->rate);
        sqlite3_bind_int(q, 11, spec->drift_gate);
        sqlite3_bind_text(q, 12, request_json, -1, SQLITE_STATIC);
        r = store_step(s, q);
        if (r < 0)
                goto end;
        id = sqlite3_last_insert_rowid(store_sqlite(s));
        if (spec->target != TARGET_LIST) {
                for (size_t i = 0; i < n; i++)
                        rollout_order_key(id, t[i].id, t[i].key);
                qsort(t, n, sizeof(*t), cmp_key);
        }
        q = store_stmt(s, "INSERT INTO rollout_groups(rollout, idx, size, success_pct, soak, error_count, error_pct) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
        for (size_t g = 0; q && r >= 0 && g < k; g++) {
                sqlite3_bind_int64(q, 1, id);
                sqlite3_bind_int64(q, 2, (int64_t) g);
                sqlite3_bind_int64(q, 3, sizes[g]);
                sqlite3_bind_int64(q, 4, cond[g].success_pct);
                sqlite3_bind_int64(q, 5, cond[g].soak);
                sqlite3_bind_int64(q, 6, cond[g].error_count);
                sqlite3_bind_int64(q, 7, cond[g].error_pct);
                r = store_step(s, q);
        }
        q = q ? store_stmt(s, "INSERT INTO rollout_members(rollout, ord, drone, grp, state, state_at) "
                              "VALUES (?1, ?2, ?3, ?4, 'pending', ?5)") : NULL;
        if (!q)
                r = -EIO;
        for (size_t g = 0; r >= 0 && g < k; g++)
                for (uint32_t i = 0; r >= 0 && i < sizes[g]; i++, ord++) {
                        sqlite3_bind_int64(q, 1, id);
                        sqlite3_bind_int64(q, 2, (int64_t) ord);
                        sqlite3_bind_text(q, 3, t[ord].id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 4, (int64_t) g);
                        sqlite3_bind_int64(q, 5, now);
                        r = store_step(s, q);
                }
        if (r >= 0) {
                char detail[160];
                snprintf(detail, sizeof(detail), "%zu drones in %zu groups, target %s, by %s", n, k, target, creator);
                r = event(s, id, now, NULL, "created", 0, detail);
        }
end:
        r = store_end(s, r);
out:
        store_unlock(s);
        targets_free(t, n);
        if (r >= 0)
                *ret_id = id;
        return r;
}

/* ---- operator actions ---- */

struct rollout_row {
        enum rollout_state state;
        bool require_approval, approved;
        char created_by[65], approved_by[65];
        int64_t start_at, started_at;
};

static int rollout_row(store *s, int64_t id, struct rollout_row *ret) {
        STMT(q, "SELECT state, require_approval, approved_by IS NOT NULL, created_by, COALESCE(approved_by, ''), "
                "start_at, started_at FROM rollouts WHERE id = ?1");
        struct rollout_row row = {};
        int rc, r = 0;

        sqlite3_bind_int64(q, 1, id);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                if (rollout_state_from_string(col(q, 0), &row.state) < 0)
                        r = ringil_fail(-EIO, "rollout %" PRId64 ": unknown state", id);
                row.require_approval = sqlite3_column_int(q, 1) != 0;
                row.approved = sqlite3_column_int(q, 2) != 0;
                store_text(q, 3, row.created_by, sizeof(row.created_by));
                store_text(q, 4, row.approved_by, sizeof(row.approved_by));
                row.start_at = sqlite3_column_int64(q, 5);
                row.started_at = sqlite3_column_int64(q, 6);
        } else
                r = rc == SQLITE_DONE ? ringil_fail(-ENOENT, "no rollout %" PRId64, id) : store_sql_fail(s, rc, "rollout");
        reset(q);
        if (r >= 0)
                *ret = row;
        return r;
}

static int set_rollout_state(store *s, int64_t id, enum rollout_state st, const char *reason, int64_t now) {
        STMT(q, "UPDATE rollouts SET state = ?2, reason = ?3, "
                "started_at = CASE WHEN ?2 = 'running' AND started_at = 0 THEN ?4 ELSE started_at END, "
                "ended_at = CASE WHEN ?2 IN ('aborted', 'finished') THEN ?4 ELSE 0 END WHERE id = ?1");
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_text(q, 2, rollout_state_to_string(st), -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, now);
        return store_step(s, q);
}

static int not_now(int64_t id, const char *what, enum rollout_state st) {
        return ringil_fail(-EPERM, "cannot %s rollout %" PRId64 ": it is %s", what, id, rollout_state_to_string(st));
}

static int do_retry(store *s, int64_t id, const struct rollout_action_args *args, int64_t now) {
        STMT(q, "SELECT ord, drone FROM rollout_members WHERE rollout = ?1 AND state IN " SQL_FAILURES " ORDER BY ord");
        struct {
                int64_t ord;
                char drone[65];
        } *v = NULL;
        size_t n = 0, cap = 0;
        char detail[120];
        int rc, r = 0;

        sqlite3_bind_int64(q, 1, id);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                const char *d = col(q, 1);
                bool wanted = !args->drones;
                for (size_t i = 0; !wanted && i < args->n_drones; i++)
                        wanted = streq(args->drones[i], d);
                if (!wanted)
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        void *nv = realloc(v, ncap * sizeof(*v));
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        v = nv;
                        cap = ncap;
                }
                v[n].ord = sqlite3_column_int64(q, 0);
                snprintf(v[n].drone, sizeof(v[n].drone), "%s", d);
                n++;
        }
        if (r >= 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
                r = store_sql_fail(s, rc, "retry");
        reset(q);
        for (size_t i = 0; r >= 0 && args->drones && i < args->n_drones; i++) {
                bool found = false;
                for (size_t j = 0; j < n && !found; j++)
                        found = streq(v[j].drone, args->drones[i]);
                if (!found)
                        r = ringil_fail(-EPERM, "drone '%s' is not a failed member of rollout %" PRId64, args->drones[i], id);
        }
        snprintf(detail, sizeof(detail), "retry by %s", args->operator_name);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                /* INVARIANT: the retry generation rises with the member's return to pending, so its
                 * agent tries the release again instead of skipping one it failed before. */
                r = set_member(s, id, v[i].ord, MEMBER_PENDING, now, detail);
                if (r >= 0)
                        r = bump_retry(s, v[i].drone, NULL);
                if (r >= 0)
                        r = event(s, id, now, v[i].drone, "retry", 0, detail);
        }
        free(v);
        if (r >= 0) {
                /* Failures accepted by a resume cannot exceed the failures left, or a retried drone that
                 * fails again would not count. */
                sqlite3_stmt *u = store_stmt(s, "UPDATE rollout_groups SET failures_acked = MIN(failures_acked, "
                                                "(SELECT count(*) FROM rollout_members m WHERE m.rollout = ?1 AND "
                                                "m.grp = rollout_groups.idx AND m.state IN " SQL_FAILURES ")) "
                                                "WHERE rollout = ?1");
                if (!u)
                        return -EIO;
                sqlite3_bind_int64(u, 1, id);
                r = store_step(s, u);
        }
        return r < 0 ? r : (int) MIN(n, (size_t) INT32_MAX);
}

int store_rollout_action(store *s, int64_t id, enum rollout_action a, const struct rollout_action_args *args,
                         int64_t now) {
        struct rollout_row row;
        char reason[ROLLOUT_REASON_MAX];
        const char *who = args->operator_name;
        int r, changed = 0;

        store_lock(s);
        r = store_begin(s, true);
        if (r < 0)
                goto out;
        r = rollout_row(s, id, &row);
        if (r < 0)
                goto end;
        switch (a) {
        case ROLLOUT_APPROVE: {
                sqlite3_stmt *q;
                if (!row.require_approval)
                        r = ringil_fail(-EPERM, "rollout %" PRId64 " does not require approval", id);
                else if (row.state != ROLLOUT_DRAFT)
                        r = not_now(id, "approve", row.state);
                else if (row.approved)
                        r = ringil_fail(-EPERM, "rollout %" PRId64 " was approved by '%s' already", id, row.approved_by);
                else if (streq(row.created_by, who))
                        /* INVARIANT: approval is a second person's: never the certificate name that created it. */
                        r = ringil_fail(-EACCES, "'%s' created rollout %" PRId64 " and cannot approve it: a second "
                                        "operator must", who, id);
                if (r < 0)
                        break;
                q = store_stmt(s, "UPDATE rollouts SET approved_by = ?2, approved_at = ?3 WHERE id = ?1");
                if (!q) {
                        r = -EIO;
                        break;
                }
                sqlite3_bind_int64(q, 1, id);
                sqlite3_bind_text(q, 2, who, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 3, now);
                r = store_step(s, q);
                if (r >= 0)
                        r = event(s, id, now, NULL, "approved", 0, who);
                break;
        }
        case ROLLOUT_START: {
                int64_t start_at = args->start_at ? args->start_at : row.start_at;
                if (row.state != ROLLOUT_DRAFT) {
                        r = not_now(id, "start", row.state);
                        break;
                }
                if (row.require_approval && !row.approved) {
                        r = ringil_fail(-EACCES, "rollout %" PRId64 " needs the approval of a second operator before it "
                                        "starts", id);
                        break;
                }
                if (args->start_at) {
                        sqlite3_stmt *q = store_stmt(s, "UPDATE rollouts SET start_at = ?2 WHERE id = ?1");
                        if (!q) {
                                r = -EIO;
                                break;
                        }
                        sqlite3_bind_int64(q, 1, id);
                        sqlite3_bind_int64(q, 2, start_at);
                        r = store_step(s, q);
                        if (r < 0)
                                break;
                }
                snprintf(reason, sizeof(reason), "%s by %s", start_at > now ? "scheduled" : "started", who);
                r = set_rollout_state(s, id, start_at > now ? ROLLOUT_SCHEDULED : ROLLOUT_RUNNING, reason, now);
                if (r >= 0)
                        r = event(s, id, now, NULL, start_at > now ? "scheduled" : "started", 0, reason);
                break;
        }
        case ROLLOUT_PAUSE:
                if (row.state != ROLLOUT_RUNNING && row.state != ROLLOUT_SCHEDULED) {
                        r = not_now(id, "pause", row.state);
                        break;
                }
                snprintf(reason, sizeof(reason), "paused by %s", who);
                r = set_rollout_state(s, id, ROLLOUT_PAUSED, reason, now);
                if (r >= 0)
                        r = event(s, id, now, NULL, "paused", 0, reason);
                break;
        case ROLLOUT_RESUME: {
                sqlite3_stmt *q;
                enum rollout_state to = row.started_at == 0 && row.start_at > now ? ROLLOUT_SCHEDULED : ROLLOUT_RUNNING;
                if (row.state != ROLLOUT_PAUSED) {
                        r = not_now(id, "resume", row.state);
                        break;
                }
                /* Resuming accepts the failures seen so far: the error condition counts new ones. */
                q = store_stmt(s, "UPDATE rollout_groups SET failures_acked = (SELECT count(*) FROM rollout_members m "
                                  "WHERE m.rollout = ?1 AND m.grp = rollout_groups.idx AND m.state IN " SQL_FAILURES ") "
                                  "WHERE rollout = ?1");
                if (!q) {
                        r = -EIO;
                        break;
                }
                sqlite3_bind_int64(q, 1, id);
                r = store_step(s, q);
                snprintf(reason, sizeof(reason), "resumed by %s", who);
                if (r >= 0)
                        r = set_rollout_state(s, id, to, reason, now);
                if (r >= 0)
                        r = event(s, id, now, NULL, "resumed", 0, reason);
                break;
        }
        case ROLLOUT_ABORT: {
                sqlite3_stmt *q;
                if (!rollout_state_holds(row.state)) {
                        r = not_now(id, "abort", row.state);
                        break;
                }
                /* INVARIANT: after an abort nobody is handed the release: pending members are skipped in
                 * the same transaction; handed ones keep their assignment and finish. */
                q = store_stmt(s, "UPDATE rollout_members SET state = 'skipped', state_at = ?2, detail = 'aborted' "
                                  "WHERE rollout = ?1 AND state = 'pending'");
                if (!q) {
                        r = -EIO;
                        break;
                }
                sqlite3_bind_int64(q, 1, id);
                sqlite3_bind_int64(q, 2, now);
                r = store_step(s, q);
                snprintf(reason, sizeof(reason), "aborted by %s", who);
                if (r >= 0)
                        r = set_rollout_state(s, id, ROLLOUT_ABORTED, reason, now);
                if (r >= 0)
                        r = event(s, id, now, NULL, "aborted", 0, reason);
                break;
        }
        case ROLLOUT_RETRY:
                if (row.state != ROLLOUT_RUNNING && row.state != ROLLOUT_PAUSED && row.state != ROLLOUT_FINISHED) {
                        r = not_now(id, "retry drones of", row.state);
                        break;
                }
                r = do_retry(s, id, args, now);
                changed = r;
                if (r > 0 && row.state == ROLLOUT_FINISHED) {
                        snprintf(reason, sizeof(reason), "running again: %d drones retried by %s", changed, who);
                        r = set_rollout_state(s, id, ROLLOUT_RUNNING, reason, now);
                }
                break;
        }
end:
        r = store_end(s, r);
out:
        store_unlock(s);
        return r < 0 ? r : changed;
}

/* ---- views ---- */

static json_t *rollout_summary(sqlite3_stmt *q) {
        json_t *j = json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
                              "id", (json_int_t) sqlite3_column_int64(q, 0), "name", col(q, 1),
                              "release", (json_int_t) sqlite3_column_int64(q, 2), "version", col(q, 3),
                              "target", col(q, 4), "state", col(q, 5), "reason", col(q, 6),
                              "created", (json_int_t) sqlite3_column_int64(q, 7), "created_by", col(q, 8),
                              "require_approval", sqlite3_column_int(q, 9) != 0,
                              "start_at", (json_int_t) sqlite3_column_int64(q, 11),
                              "started_at", (json_int_t) sqlite3_column_int64(q, 12),
                              "ended_at", (json_int_t) sqlite3_column_int64(q, 13),
                              "current_group", (json_int_t) MIN(sqlite3_column_int64(q, 14) + 1, sqlite3_column_int64(q, 15)),
                              "groups_total", (json_int_t) sqlite3_column_int64(q, 15),
                              "deadline", (json_int_t) sqlite3_column_int64(q, 16),
                              "rate", (json_int_t) sqlite3_column_int64(q, 17),
                              "drift_gate", sqlite3_column_int(q, 18) != 0);
        if (j && sqlite3_column_type(q, 10) != SQLITE_NULL)
                json_object_set_new(j, "approved_by", json_string(col(q, 10)));
        if (j)
                json_object_set_new(j, "completed", json_boolean(sqlite3_column_int64(q, 14) >= sqlite3_column_int64(q, 15)));
        return j;
}

#define ROLLOUT_COLUMNS                                                                                      \
        "r.id, r.name, r.release, rel.version, r.target, r.state, r.reason, r.created, r.created_by, "       \
        "r.require_approval, r.approved_by, r.start_at, r.started_at, r.ended_at, r.current_group, "         \
        "r.n_groups, r.deadline, r.rate, r.drift_gate"

static int counts_json(store *s, int64_t id, json_t *o) {
        STMT(q, "SELECT state, count(*) FROM rollout_members WHERE rollout = ?1 GROUP BY state");
        json_t *c = json_object();
        int rc;

        if (!c)
                return -ENOMEM;
        sqlite3_bind_int64(q, 1, id);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                json_object_set_new(c, col(q, 0), json_integer(sqlite3_column_int64(q, 1)));
        reset(q);
        json_object_set_new(o, "counts", c);
        return rc == SQLITE_DONE ? 0 : store_sql_fail(s, rc, "counts");
}

int store_rollouts_json(store *s, json_t **ret) {
        json_t *a = json_array();
        sqlite3_stmt *q;
        int rc = SQLITE_DONE, r = 0;

        if (!a)
                return -ENOMEM;
        store_lock(s);
        q = store_stmt(s, "SELECT " ROLLOUT_COLUMNS " FROM rollouts r JOIN releases rel ON rel.id = r.release ORDER BY r.id");
        if (!q)
                r = -EIO;
        while (r >= 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
                json_t *o = rollout_summary(q);
                if (!o) {
                        r = -ENOMEM;
                        break;
                }
                json_array_append_new(a, o);
        }
        if (q)
                reset(q);
        if (r >= 0 && rc != SQLITE_DONE)
                r = store_sql_fail(s, rc, "rollouts");
        /* counts in a second step: one statement at a time on this connection */
        for (size_t i = 0; r >= 0 && i < json_array_size(a); i++) {
                json_t *o = json_array_get(a, i);
                r = counts_json(s, json_integer_value(json_object_get(o, "id")), o);
        }
        store_unlock(s);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

int store_rollout_json(store *s, int64_t id, json_t **ret) {
        json_t *o = NULL, *groups = NULL, *members = NULL, *events = NULL;
        sqlite3_stmt *q;
        int rc, r = 0;

        store_lock(s);
        q = store_stmt(s, "SELECT " ROLLOUT_COLUMNS " FROM rollouts r JOIN releases rel ON rel.id = r.release WHERE r.id = ?1");
        if (!q) {
                r = -EIO;
                goto out;
        }
        sqlite3_bind_int64(q, 1, id);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
                o = rollout_summary(q);
        reset(q);
        if (rc != SQLITE_ROW) {
                r = rc == SQLITE_DONE ? ringil_fail(-ENOENT, "no rollout %" PRId64, id) : store_sql_fail(s, rc, "rollout");
                goto out;
        }
        if (!o || !(groups = json_array()) || !(members = json_array()) || !(events = json_array())) {
                r = -ENOMEM;
                goto out;
        }
        q = store_stmt(s, "SELECT g.idx, g.size, g.success_pct, g.soak, g.error_count, g.error_pct, g.success_since, "
                          "g.completed_at, g.failures_acked, "
                          "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx AND m.state = 'blessed'), "
                          "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx AND m.state IN " SQL_FAILURES "), "
                          "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx AND m.state IN " SQL_IN_FLIGHT "), "
                          "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx AND m.state = 'pending') "
                          "FROM rollout_groups g WHERE g.rollout = ?1 ORDER BY g.idx");
        if (!q) {
                r = -EIO;
                goto out;
        }
        sqlite3_bind_int64(q, 1, id);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                json_array_append_new(groups, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                        "group", (json_int_t) sqlite3_column_int64(q, 0) + 1,
                        "size", (json_int_t) sqlite3_column_int64(q, 1),
                        "success_percent", (json_int_t) sqlite3_column_int64(q, 2),
                        "soak", (json_int_t) sqlite3_column_int64(q, 3),
                        "error_count", (json_int_t) sqlite3_column_int64(q, 4),
                        "error_percent", (json_int_t) sqlite3_column_int64(q, 5),
                        "success_since", (json_int_t) sqlite3_column_int64(q, 6),
                        "completed_at", (json_int_t) sqlite3_column_int64(q, 7),
                        "failures_accepted", (json_int_t) sqlite3_column_int64(q, 8),
                        "blessed", (json_int_t) sqlite3_column_int64(q, 9),
                        "failed", (json_int_t) sqlite3_column_int64(q, 10),
                        "in_flight", (json_int_t) sqlite3_column_int64(q, 11),
                        "pending", (json_int_t) sqlite3_column_int64(q, 12)));
        reset(q);
        if (rc != SQLITE_DONE) {
                r = store_sql_fail(s, rc, "groups");
                goto out;
        }
        q = store_stmt(s, "SELECT drone, grp, state, attempt, handed_at, state_at, detail FROM rollout_members "
                          "WHERE rollout = ?1 ORDER BY ord");
        if (!q) {
                r = -EIO;
                goto out;
        }
        sqlite3_bind_int64(q, 1, id);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                json_array_append_new(members, json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:s}",
                        "drone", col(q, 0), "group", (json_int_t) sqlite3_column_int64(q, 1) + 1,
                        "state", col(q, 2), "attempt", (json_int_t) sqlite3_column_int64(q, 3),
                        "handed_at", (json_int_t) sqlite3_column_int64(q, 4),
                        "state_at", (json_int_t) sqlite3_column_int64(q, 5), "detail", col(q, 6)));
        reset(q);
        if (rc != SQLITE_DONE) {
                r = store_sql_fail(s, rc, "members");
                goto out;
        }
        q = store_stmt(s, "SELECT time, drone, event, attempt, detail FROM rollout_events WHERE rollout = ?1 "
                          "ORDER BY id DESC LIMIT 200");
        if (!q) {
                r = -EIO;
                goto out;
        }
        sqlite3_bind_int64(q, 1, id);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                json_array_append_new(events, json_pack("{s:I, s:s, s:s, s:I, s:s}",
                        "time", (json_int_t) sqlite3_column_int64(q, 0), "drone", col(q, 1), "event", col(q, 2),
                        "attempt", (json_int_t) sqlite3_column_int64(q, 3), "detail", col(q, 4)));
        reset(q);
        if (rc != SQLITE_DONE) {
                r = store_sql_fail(s, rc, "events");
                goto out;
        }
        r = counts_json(s, id, o);
        if (r >= 0) {
                json_object_set_new(o, "groups", TAKE_PTR(groups));
                json_object_set_new(o, "members", TAKE_PTR(members));
                json_object_set_new(o, "events", TAKE_PTR(events));
        }
out:
        store_unlock(s);
        json_decref(groups);
        json_decref(members);
        json_decref(events);
        if (r < 0) {
                json_decref(o);
                return r;
        }
        *ret = o;
        return 0;
}

/* ---- the drone's side ---- */

static void join_failing(const struct fleet_audit *a, char *out, size_t cap) {
        size_t o = 0;

        out[0] = '\0';
        for (uint32_t i = 0; i < a->n_failing && i < FLEET_AUDIT_MAX_IDS; i++) {
                size_t n = strlen(a->failing[i]);
                if (o + n + 2 > cap)
                        break;
                if (o)
                        out[o++] = ' ';
                memcpy(out + o, a->failing[i], n + 1);
                o += n;
        }
}

static int windows_and_retry(store *s, const char *drone, const char *group, struct rollout_checkin_result *ret) {
        STMT(q, "SELECT (SELECT spec FROM windows WHERE target = 'drone:' || ?1), "
                "(SELECT spec FROM windows WHERE target = 'group:' || ?2), "
                "COALESCE((SELECT retry FROM drone_ctl WHERE drone = ?1), 0)");
        int rc;

        sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, group, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                /* a drone's own windows beat its group's */
                const char *spec = sqlite3_column_type(q, 0) != SQLITE_NULL ? col(q, 0) : col(q, 1);
                if (*spec && fleet_windows_parse(spec, ret->windows, &ret->n_windows) < 0)
                        ret->n_windows = 0;   /* validated when stored; a damaged row means "any time" */
                ret->retry = (uint32_t) sqlite3_column_int64(q, 2);
        }
        reset(q);
        return rc == SQLITE_ROW ? 0 : store_sql_fail(s, rc, "windows");
}

static int hand(store *s, const char *drone, const struct membership *m, const struct fleet_status *st, int64_t now,
                bool *ret_handed) {
        STMT(q, "UPDATE rollout_members SET state = 'handed', attempt = attempt + 1, handed_at = ?4, state_at = ?4, "
                "baseline_known = ?5, baseline = ?6, detail = '' "
                "WHERE rollout = ?1 AND ord = ?2 AND state = 'pending' AND EXISTS (SELECT 1 FROM rollouts r "
                "WHERE r.id = ?1 AND r.state = 'running' AND r.current_group >= ?3) RETURNING attempt");
        char baseline[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX];
        int64_t attempt = 0;
        int rc, r;

        *ret_handed = false;
        join_failing(&st->audit, baseline, sizeof(baseline));
        r = store_begin(s, true);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q, 1, m->rollout);
        sqlite3_bind_int64(q, 2, m->ord);
        sqlite3_bind_int64(q, 3, m->group);
        sqlite3_bind_int64(q, 4, now);
        /* The drift gate's baseline: the audit the drone sent with the check-in that handed it the release. */
        sqlite3_bind_int(q, 5, st->audit.present);
        sqlite3_bind_text(q, 6, baseline, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                attempt = sqlite3_column_int64(q, 0);
                *ret_handed = true;
        }
        while (rc == SQLITE_ROW)
                rc = sqlite3_step(q);
        reset(q);
        if (rc != SQLITE_DONE)
                r = store_sql_fail(s, rc, "hand");
        if (r >= 0 && *ret_handed) {
                sqlite3_stmt *a = store_stmt(s, "INSERT INTO assignments(target, release, created) VALUES ('drone:' || ?1, ?2, ?3) "
                                                "ON CONFLICT(target) DO UPDATE SET release = excluded.release, "
                                                "created = excluded.created");
                if (!a)
                        r = -EIO;
                else {
                        sqlite3_bind_text(a, 1, drone, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(a, 2, m->release);
                        sqlite3_bind_int64(a, 3, now);
                        r = store_step(s, a);
                }
                if (r >= 0)
                        r = event(s, m->rollout, now, drone, "handed", attempt, m->version);
        }
        /* INVARIANT: the hand is committed (synchronous=FULL) before the check-in is answered. */
        return store_end(s, r);
}

int store_rollout_checkin(store *s, const char *drone, const char *group, const struct fleet_status *st,
                          int64_t now, bool do_hand, struct rollout_checkin_result *ret) {
        struct rollout_checkin_result res = {};
        struct membership m;
        bool handed;
        int r;

        store_lock(s);
        r = windows_and_retry(s, drone, group, &res);
        if (r >= 0)
                r = latest_membership(s, drone, &m);
        if (r > 0) {
                switch (rollout_checkin_decide(m.state, m.current_group, m.group, m.member)) {
                case CHECKIN_HAND:
                        if (!do_hand) {
                                res.held = true;   /* not handed yet: its bundle is not its to fetch */
                                break;
                        }
                        r = hand(s, drone, &m, st, now, &handed);
                        if (r >= 0 && handed) {
                                res.handed = true;
                                res.rollout = m.rollout;
                                res.rate = m.rate;
                        } else
                                res.held = true;
                        break;
                case CHECKIN_HOLD:
                        res.held = true;
                        break;
                case CHECKIN_FOLLOW:
                        if (member_in_flight(m.member) || m.member == MEMBER_BLESSED) {
                                res.rollout = m.rollout;
                                res.rate = member_in_flight(m.member) ? m.rate : 0;
                        }
                        if (do_hand && st && m.member == MEMBER_HANDED) {
                                bool runs = streq(st->version, m.version) && streq(st->boot, "good") &&
                                            (st->state == FLEET_STATE_IDLE || st->state == FLEET_STATE_UPDATED);
                                if (rollout_member_on_checkin(m.member, runs) == MEMBER_BLESSED) {
                                        r = store_begin(s, true);
                                        if (r >= 0)
                                                r = set_member(s, m.rollout, m.ord, MEMBER_BLESSED, now,
                                                               "already ran the release");
                                        if (r >= 0)
                                                r = event(s, m.rollout, now, drone, "blessed", 0, "already ran the release");
                                        r = store_end(s, r);
                                }
                        }
                        break;
                }
        }
        store_unlock(s);
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

int store_rollout_report(store *s, const char *drone, const struct fleet_status *st, int64_t now) {
        char post[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX], new_ids[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX],
                detail[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX + 64];
        struct membership m;
        enum member_state to;
        size_t n_new = 0;
        int r;

        store_lock(s);
        r = latest_membership(s, drone, &m);
        if (r <= 0 || m.release != st->release)
                goto out;
        if (st->state == FLEET_STATE_UPDATED) {
                join_failing(&st->audit, post, sizeof(post));
                n_new = rollout_drift_new(m.baseline_known, m.baseline, st->audit.present, post, new_ids, sizeof(new_ids));
        }
        to = rollout_member_on_report(m.member, st->state, m.drift_gate, n_new > 0);
        if (to == m.member) {
                r = 0;
                goto out;
        }
        if (to == MEMBER_DRIFT)
                snprintf(detail, sizeof(detail), "drift gate: new failing checks: %s", new_ids);
        else
                snprintf(detail, sizeof(detail), "%s", st->error);
        r = store_begin(s, true);
        if (r >= 0)
                r = set_member(s, m.rollout, m.ord, to, now, detail);
        if (r >= 0)
                r = event(s, m.rollout, now, drone, member_state_to_string(to), 0, detail);
        r = store_end(s, r);
out:
        store_unlock(s);
        return r < 0 ? r : 0;
}

/* ---- the scheduler pass ---- */

static int active_ids(store *s, int64_t **ret, size_t *ret_n) {
        STMT(q, "SELECT id FROM rollouts WHERE state IN ('scheduled', 'running', 'paused') OR (state = 'aborted' AND "
                "EXISTS (SELECT 1 FROM rollout_members m WHERE m.rollout = rollouts.id AND m.state IN " SQL_IN_FLIGHT ")) "
                "ORDER BY id");
        int64_t *v = NULL;
        size_t n = 0, cap = 0;
        int rc, r = 0;

        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        int64_t *nv = realloc(v, ncap * sizeof(*v));
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        v = nv;
                        cap = ncap;
                }
                v[n++] = sqlite3_column_int64(q, 0);
        }
        reset(q);
        if (r >= 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
                r = store_sql_fail(s, rc, "active rollouts");
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

struct snapshot {
        struct rollout_view v;
        struct rollout_member *members;
        int64_t *ords;
        size_t cap;
};

static void snapshot_done(struct snapshot *sn) {
        free(sn->members);
        free(sn->ords);
}

static int load_snapshot(store *s, int64_t id, int64_t not_before, struct snapshot *sn) {
        sqlite3_stmt *q;
        int rc, r = 0;

        sn->v = (struct rollout_view) { .id = id, .not_before = not_before };
        q = store_stmt(s, "SELECT state, start_at, deadline, current_group, n_groups FROM rollouts WHERE id = ?1");
        if (!q)
                return -EIO;
        sqlite3_bind_int64(q, 1, id);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                if (rollout_state_from_string(col(q, 0), &sn->v.state) < 0)
                        r = ringil_fail(-EIO, "rollout %" PRId64 ": unknown state", id);
                sn->v.start_at = sqlite3_column_int64(q, 1);
                sn->v.deadline = (uint32_t) sqlite3_column_int64(q, 2);
                sn->v.current_group = (uint32_t) sqlite3_column_int64(q, 3);
                sn->v.n_groups = (uint32_t) MIN(sqlite3_column_int64(q, 4), (int64_t) ROLLOUT_MAX_GROUPS);
        } else
                r = rc == SQLITE_DONE ? -ENOENT : store_sql_fail(s, rc, "snapshot");
        reset(q);
        if (r < 0)
                return r;
        q = store_stmt(s, "SELECT idx, size, success_pct, soak, error_count, error_pct, success_since, completed_at, "
                          "failures_acked FROM rollout_groups WHERE rollout = ?1 ORDER BY idx");
        if (!q)
                return -EIO;
        sqlite3_bind_int64(q, 1, id);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                int64_t g = sqlite3_column_int64(q, 0);
                if (g < 0 || g >= ROLLOUT_MAX_GROUPS)
                        continue;
                sn->v.groups[g] = (struct rollout_group) {
                        .size = (uint32_t) sqlite3_column_int64(q, 1),
                        .cond = { .success_pct = (uint32_t) sqlite3_column_int64(q, 2),
                                  .soak = (uint32_t) sqlite3_column_int64(q, 3),
                                  .error_count = (uint32_t) sqlite3_column_int64(q, 4),
                                  .error_pct = (uint32_t) sqlite3_column_int64(q, 5) },
                        .success_since = sqlite3_column_int64(q, 6),
                        .completed_at = sqlite3_column_int64(q, 7),
                        .failures_acked = (uint32_t) sqlite3_column_int64(q, 8),
                };
        }
        reset(q);
        if (rc != SQLITE_DONE)
                return store_sql_fail(s, rc, "snapshot groups");
        q = store_stmt(s, "SELECT m.ord, m.grp, m.state, m.handed_at, m.state_at, COALESCE(d.last_seen, 0) "
                          "FROM rollout_members m LEFT JOIN drones d ON d.id = m.drone WHERE m.rollout = ?1 ORDER BY m.ord");
        if (!q)
                return -EIO;
        sqlite3_bind_int64(q, 1, id);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                size_t i = sn->v.n_members;
                if (i == sn->cap) {
                        size_t ncap = sn->cap ? sn->cap * 2 : 256;
                        struct rollout_member *nm = realloc(sn->members, ncap * sizeof(*nm));
                        int64_t *no = nm ? realloc(sn->ords, ncap * sizeof(*no)) : NULL;
                        if (nm)
                                sn->members = nm;
                        if (no)
                                sn->ords = no;
                        if (!nm || !no) {
                                r = -ENOMEM;
                                break;
                        }
                        sn->cap = ncap;
                }
                sn->ords[i] = sqlite3_column_int64(q, 0);
                sn->members[i] = (struct rollout_member) {
                        .group = (uint32_t) sqlite3_column_int64(q, 1),
                        .handed_at = sqlite3_column_int64(q, 3),
                        .state_at = sqlite3_column_int64(q, 4),
                        .last_seen = sqlite3_column_int64(q, 5),
                };
                if (member_state_from_string(col(q, 2), &sn->members[i].state) < 0) {
                        r = ringil_fail(-EIO, "rollout %" PRId64 ": unknown member state", id);
                        break;
                }
                sn->v.n_members = i + 1;
        }
        reset(q);
        if (r >= 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
                r = store_sql_fail(s, rc, "snapshot members");
        sn->v.members = sn->members;
        return r;
}

static int apply_decision(store *s, const struct snapshot *sn, const struct rollout_decision *d, int64_t now) {
        sqlite3_stmt *q;
        char drone[65], detail[ROLLOUT_REASON_MAX + 8];
        int r = 0;

        if (d->state != sn->v.state) {
                r = set_rollout_state(s, sn->v.id, d->state, d->reason, now);
                if (r >= 0)
                        r = event(s, sn->v.id, now, NULL, rollout_state_to_string(d->state), 0, d->reason);
        }
        if (r >= 0 && d->current_group != sn->v.current_group) {
                q = store_stmt(s, "UPDATE rollouts SET current_group = ?2 WHERE id = ?1");
                if (!q)
                        return -EIO;
                sqlite3_bind_int64(q, 1, sn->v.id);
                sqlite3_bind_int64(q, 2, d->current_group);
                r = store_step(s, q);
                for (uint32_t g = sn->v.current_group; r >= 0 && g < d->current_group && g < sn->v.n_groups; g++) {
                        char what[64];
                        snprintf(what, sizeof(what), "group %u completed", g + 1);
                        r = event(s, sn->v.id, now, NULL, "group-completed", 0, what);
                }
        }
        q = store_stmt(s, "UPDATE rollout_groups SET success_since = ?3, completed_at = ?4 WHERE rollout = ?1 AND idx = ?2");
        if (!q)
                return -EIO;
        for (uint32_t g = 0; r >= 0 && g < sn->v.n_groups; g++) {
                if (d->groups[g].success_since == sn->v.groups[g].success_since &&
                    d->groups[g].completed_at == sn->v.groups[g].completed_at)
                        continue;
                sqlite3_bind_int64(q, 1, sn->v.id);
                sqlite3_bind_int64(q, 2, g);
                sqlite3_bind_int64(q, 3, d->groups[g].success_since);
                sqlite3_bind_int64(q, 4, d->groups[g].completed_at);
                r = store_step(s, q);
        }
        for (size_t i = 0; r >= 0 && i < d->n_changes; i++) {
                const struct rollout_member_change *c = &d->changes[i];
                if (c->state == MEMBER_TIMED_OUT)
                        snprintf(detail, sizeof(detail), "no sign of life for more than %u s", sn->v.deadline);
                else
                        snprintf(detail, sizeof(detail), "%s", d->reason);
                r = set_member(s, sn->v.id, sn->ords[c->index], c->state, now, detail);
                if (r >= 0)
                        r = member_drone(s, sn->v.id, sn->ords[c->index], drone);
                if (r >= 0)
                        r = event(s, sn->v.id, now, drone, member_state_to_string(c->state), 0, detail);
        }
        return r;
}

int store_rollout_pass(store *s, int64_t now, int64_t not_before,
                       void (*log_cb)(int64_t id, enum rollout_state from, enum rollout_state to, const char *reason),
                       struct rollout_pass_stats *ret) {
        struct rollout_pass_stats st = {};
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0;
        int r;

        store_lock(s);
        r = active_ids(s, &ids, &n);
        store_unlock(s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                struct snapshot sn = {};
                struct rollout_decision d = {};
                /* One transaction per rollout: snapshot, decision and its application see the same rows,
                 * and a report that arrives meanwhile waits on the lock instead of being overwritten. */
                store_lock(s);
                r = store_begin(s, true);
                if (r >= 0)
                        r = load_snapshot(s, ids[i], not_before, &sn);
                if (r >= 0)
                        r = rollout_evaluate(&sn.v, now, &d);
                if (r >= 0 && d.changed)
                        r = apply_decision(s, &sn, &d, now);
                r = store_end(s, r);
                store_unlock(s);
                if (r >= 0) {
                        st.rollouts++;
                        st.members += (unsigned) sn.v.n_members;
                        if (d.changed)
                                st.changed++;
                        for (size_t c = 0; c < d.n_changes; c++)
                                st.timed_out += d.changes[c].state == MEMBER_TIMED_OUT;
                        if (log_cb && d.state != sn.v.state)
                                log_cb(ids[i], sn.v.state, d.state, d.reason);
                }
                rollout_decision_done(&d);
                snapshot_done(&sn);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        if (ret)
                *ret = st;
        return 0;
}
