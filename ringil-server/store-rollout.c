/* store-rollout.c: rollouts and their members, tags, windows and retries in the store: the operator's side. */
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
 * and a newer rollout always has a higher id. Schema version 3 (store.c runs it).
 */
const char store_rollout_schema[] =
        "CREATE TABLE rollouts("
        " id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', release INTEGER NOT NULL REFERENCES releases(id),"
        " target TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',"
        " created INTEGER NOT NULL, created_by TEXT NOT NULL, require_approval INTEGER NOT NULL,"
        " approved_by TEXT, approved_at INTEGER, start_at INTEGER NOT NULL DEFAULT 0,"
        " started_at INTEGER NOT NULL DEFAULT 0, ended_at INTEGER NOT NULL DEFAULT 0,"
        " current_group INTEGER NOT NULL DEFAULT 0, n_groups INTEGER NOT NULL, deadline INTEGER NOT NULL,"
        " rate INTEGER NOT NULL DEFAULT 0, drift_gate INTEGER NOT NULL, request TEXT NOT NULL);"
        "CREATE TABLE rollout_groups("
        " rollout INTEGER NOT NULL REFERENCES rollouts(id), idx INTEGER NOT NULL, size INTEGER NOT NULL,"
        " success_pct INTEGER NOT NULL, soak INTEGER NOT NULL, error_count INTEGER NOT NULL,"
        " error_pct INTEGER NOT NULL, success_since INTEGER NOT NULL DEFAULT 0,"
        " completed_at INTEGER NOT NULL DEFAULT 0, failures_acked INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY(rollout, idx));"
        "CREATE TABLE rollout_members("
        " rollout INTEGER NOT NULL REFERENCES rollouts(id), ord INTEGER NOT NULL, drone TEXT NOT NULL,"
        " grp INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,"
        " handed_at INTEGER NOT NULL DEFAULT 0, state_at INTEGER NOT NULL DEFAULT 0,"
        " baseline_known INTEGER NOT NULL DEFAULT 0, baseline TEXT NOT NULL DEFAULT '',"
        " detail TEXT NOT NULL DEFAULT '', PRIMARY KEY(rollout, ord), UNIQUE(rollout, drone));"
        "CREATE INDEX rollout_members_by_drone ON rollout_members(drone, rollout);"
        "CREATE INDEX rollouts_by_state ON rollouts(state);"
        "CREATE TABLE rollout_events("
        " id INTEGER PRIMARY KEY, rollout INTEGER NOT NULL, time INTEGER NOT NULL, drone TEXT NOT NULL DEFAULT '',"
        " event TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '');"
        "CREATE INDEX rollout_events_by_rollout ON rollout_events(rollout, id);"
        "CREATE TABLE drone_tags(drone TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(drone, tag)) WITHOUT ROWID;"
        "CREATE INDEX drone_tags_by_tag ON drone_tags(tag);"
        "CREATE TABLE windows(target TEXT PRIMARY KEY, spec TEXT NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE drone_ctl(drone TEXT PRIMARY KEY, retry INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;";

/* ---- small helpers ---- */

static int int_row(const struct sql_row *q, void *userdata) {
        *(int64_t *) userdata = row_int(q, 0);
        return 1;
}

int store_rollout_event(struct sqlconn *c, int64_t rollout, int64_t now, const char *drone, const char *what,
                        int64_t attempt, const char *detail) {
        return store_sql(c, "INSERT INTO rollout_events(rollout, time, drone, event, attempt, detail) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         ARGS(INT(rollout), INT(now), TEXT(drone ? drone : ""), TEXT(what), INT(attempt),
                              TEXT(detail ? detail : "")),
                         NULL, NULL);
}

int store_rollout_set_member(struct sqlconn *c, int64_t rollout, int64_t ord, enum member_state st, int64_t now,
                             const char *detail) {
        return store_sql(c, "UPDATE rollout_members SET state = ?3, state_at = ?4, detail = ?5 "
                            "WHERE rollout = ?1 AND ord = ?2",
                         ARGS(INT(rollout), INT(ord), TEXT(member_state_to_string(st)), INT(now),
                              TEXT(detail ? detail : "")),
                         NULL, NULL);
}

/* 1 when the drone is registered (its status in *ret_status), 0 when not. */
static int drone_exists(struct sqlconn *c, const char *drone, int *ret_status) {
        int64_t status = 0;
        int r = store_sql(c, "SELECT status FROM drones WHERE id = ?1", ARGS(TEXT(drone)), int_row, &status);

        if (r > 0 && ret_status)
                *ret_status = (int) status;
        return r < 0 ? r : r > 0;
}

static int need_drone(struct sqlconn *c, const char *drone) {
        int r = drone_exists(c, drone, NULL);
        return r == 0 ? ringil_fail(-ENOENT, "no drone '%s'", drone) : r;
}

static int membership_row(const struct sql_row *q, void *userdata) {
        struct rollout_membership *m = userdata;

        m->rollout = row_int(q, 0);
        m->ord = row_int(q, 1);
        m->group = (uint32_t) row_int(q, 2);
        if (member_state_from_string(row_text(q, 3), &m->member) < 0 ||
            rollout_state_from_string(row_text(q, 4), &m->state) < 0)
                return ringil_fail(-EIO, "rollout %" PRId64 ": unknown state in the store", m->rollout);
        m->current_group = (uint32_t) row_int(q, 5);
        m->rate = (uint64_t) row_int(q, 6);
        m->release = row_int(q, 7);
        row_text_copy(q, 8, m->version, sizeof(m->version));
        m->drift_gate = (int) row_int(q, 9) != 0;
        m->baseline_known = (int) row_int(q, 10) != 0;
        row_text_copy(q, 11, m->baseline, sizeof(m->baseline));
        return 1;
}

int store_rollout_membership(struct sqlconn *c, const char *drone, struct rollout_membership *ret) {
        struct rollout_membership m = {};
        int r = store_sql(c, "SELECT m.rollout, m.ord, m.grp, m.state, r.state, r.current_group, r.rate, r.release, "
                             "rel.version, r.drift_gate, m.baseline_known, m.baseline "
                             "FROM rollout_members m JOIN rollouts r ON r.id = m.rollout "
                             "JOIN releases rel ON rel.id = r.release "
                             "WHERE m.drone = ?1 ORDER BY m.rollout DESC LIMIT 1",
                          ARGS(TEXT(drone)), membership_row, &m);

        if (r > 0)
                *ret = m;
        return r;
}

/* ---- drones: tags, retry generation, clearing ---- */

int store_drone_tag(store *s, const char *drone, const char *tag, bool add) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = need_drone(c, drone);
        if (r >= 0)
                r = add ? store_sql(c, "INSERT INTO drone_tags(drone, tag) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                                    ARGS(TEXT(drone), TEXT(tag)), NULL, NULL)
                        : store_sql(c, "DELETE FROM drone_tags WHERE drone = ?1 AND tag = ?2", ARGS(TEXT(drone), TEXT(tag)),
                                    NULL, NULL);
        return store_tx_end(s, r);
}

int store_drone_bump_retry(struct sqlconn *c, const char *drone, uint32_t *ret) {
        int64_t gen = 0;
        int r = store_sql(c, "INSERT INTO drone_ctl(drone, retry) VALUES (?1, 1) "
                             "ON CONFLICT(drone) DO UPDATE SET retry = drone_ctl.retry + 1 RETURNING retry",
                          ARGS(TEXT(drone)), int_row, &gen);

        if (r >= 0 && ret)
                *ret = (uint32_t) gen;
        return r < 0 ? r : 0;
}

int store_drone_retry(store *s, const char *drone, uint32_t *ret_generation) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = need_drone(c, drone);
        if (r >= 0)
                r = store_drone_bump_retry(c, drone, ret_generation);
        return store_tx_end(s, r);
}

/* A rollout that holds the drone and has not settled it: the member becomes removed. */
static int remove_from_rollout(struct sqlconn *c, const char *drone, int64_t now, const char *why, bool *ret_removed) {
        struct rollout_membership m;
        int r = store_rollout_membership(c, drone, &m);

        *ret_removed = false;
        if (r <= 0)
                return r;
        if (!rollout_state_holds(m.state) || member_settled(m.member))
                return 0;
        r = store_rollout_set_member(c, m.rollout, m.ord, MEMBER_REMOVED, now, why);
        if (r >= 0)
                r = store_rollout_event(c, m.rollout, now, drone, "removed", 0, why);
        *ret_removed = r >= 0;
        return r;
}

int store_drone_clear(store *s, const char *drone, int64_t now) {
        struct sqlconn *c;
        bool removed = false;
        int changed = 0, r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = need_drone(c, drone);
        if (r >= 0)
                r = store_sql(c, "DELETE FROM assignments WHERE target = 'drone:' || ?1", ARGS(TEXT(drone)), NULL, NULL);
        if (r >= 0) {
                changed = store_sql_changes(c) > 0;
                r = remove_from_rollout(c, drone, now, "assignment cleared by an operator", &removed);
        }
        r = store_tx_end(s, r);
        return r < 0 ? r : changed || removed;
}

int store_rollout_assign_check(store *s, const char *drone, bool force, int64_t now) {
        struct rollout_membership m;
        struct sqlconn *c;
        bool removed;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_rollout_membership(c, drone, &m);
        if (r > 0 && rollout_state_holds(m.state) && !member_settled(m.member)) {
                if (!force)
                        r = ringil_fail(-EEXIST, "drone '%s' is in rollout %" PRId64 " (%s, member %s); clear it or use "
                                        "force", drone, m.rollout, rollout_state_to_string(m.state),
                                        member_state_to_string(m.member));
                else
                        r = remove_from_rollout(c, drone, now, "overridden by a static assignment", &removed);
        }
        return store_tx_end(s, r < 0 ? r : 0);
}

/* ---- windows ---- */

int store_window_set(store *s, const char *target, const char *spec) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = spec ? store_sql(c, "INSERT INTO windows(target, spec) VALUES (?1, ?2) "
                                "ON CONFLICT(target) DO UPDATE SET spec = excluded.spec",
                             ARGS(TEXT(target), TEXT(spec)), NULL, NULL)
                 : store_sql(c, "DELETE FROM windows WHERE target = ?1", ARGS(TEXT(target)), NULL, NULL);
        return store_tx_end(s, r);
}

static int window_row(const struct sql_row *q, void *userdata) {
        json_t *o = json_pack("{s:s, s:s}", "target", row_text(q, 0), "windows", row_text(q, 1));
        return o && json_array_append_new(userdata, o) == 0 ? 0 : -ENOMEM;
}

int store_windows_json(store *s, json_t **ret) {
        json_t *a = json_array();
        struct sqlconn *c;
        int r;

        if (!a)
                return -ENOMEM;
        c = store_reader(s);
        r = store_sql(c, "SELECT target, spec FROM windows ORDER BY target", NOARGS, window_row, a);
        store_reader_done(c);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

/* ---- creation ---- */

struct targets {
        struct target_drone {
                char *id;
                uint8_t key[32];
        } *v;
        size_t n, cap;
        int error;
};

static void targets_done(struct targets *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->v[i].id);
        free(t->v);
}

static int targets_add(struct targets *t, const char *id) {
        if (t->n == ROLLOUT_MAX_MEMBERS)
                return ringil_fail(-E2BIG, "the target holds more than %d drones", ROLLOUT_MAX_MEMBERS);
        if (t->n == t->cap) {
                size_t ncap = t->cap ? t->cap * 2 : 256;
                struct target_drone *nv = realloc(t->v, ncap * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                t->v = nv;
                t->cap = ncap;
        }
        t->v[t->n].id = strdup(id);
        if (!t->v[t->n].id)
                return -ENOMEM;
        t->n++;
        return 0;
}

static int target_row(const struct sql_row *q, void *userdata) {
        return targets_add(userdata, row_text(q, 0));
}

static int cmp_key(const void *a, const void *b) {
        const struct target_drone *x = a, *y = b;
        int c = memcmp(x->key, y->key, 32);
        return c ? c : strcmp(x->id, y->id);
}

static int resolve_target(struct sqlconn *c, const struct rollout_spec *spec, struct targets *t) {
        int r = 0;

        switch (spec->target) {
        case TARGET_LIST:
                for (size_t i = 0; i < spec->n_drones && r >= 0; i++) {
                        int status = 0;
                        r = drone_exists(c, spec->drones[i], &status);
                        if (r == 0)
                                r = ringil_fail(-ENOENT, "drone '%s' is not registered", spec->drones[i]);
                        else if (r > 0 && status == DRONE_REVOKED)
                                r = ringil_fail(-EPERM, "drone '%s' is revoked", spec->drones[i]);
                        if (r >= 0)
                                r = targets_add(t, spec->drones[i]);
                }
                return r;
        case TARGET_GROUP:
                return store_sql(c, "SELECT id FROM drones WHERE status != 2 AND grp = ?1 ORDER BY id",
                                 ARGS(TEXT(spec->target_name)), target_row, t);
        case TARGET_TAG:
                return store_sql(c, "SELECT d.id FROM drones d JOIN drone_tags t ON t.drone = d.id "
                                    "WHERE d.status != 2 AND t.tag = ?1 ORDER BY d.id",
                                 ARGS(TEXT(spec->target_name)), target_row, t);
        case TARGET_FLEET:
        default:
                /* revoked drones are not part of a fleet */
                return store_sql(c, "SELECT id FROM drones WHERE status != 2 ORDER BY id", NOARGS, target_row, t);
        }
}

struct conflicts {
        char msg[400];
        size_t o, n;
        const char *drone;
};

static int conflict_row(const struct sql_row *q, void *userdata) {
        struct conflicts *k = userdata;

        if (k->n < 5 && k->o < sizeof(k->msg))
                k->o += (size_t) snprintf(k->msg + k->o, sizeof(k->msg) - k->o, "%s'%s' (rollout %" PRId64 ", %s)",
                                          k->n ? ", " : "", k->drone, (int64_t) row_int(q, 0),
                                          row_text(q, 1));
        k->n++;
        return 1;
}

/* One rollout per drone at a time: name the first few drones another rollout claims. */
static int check_conflicts(struct sqlconn *c, const struct targets *t) {
        struct conflicts k = {};
        int r = 0;

        for (size_t i = 0; i < t->n && r >= 0; i++) {
                k.drone = t->v[i].id;
                r = store_sql(c, "SELECT m.rollout, r.state FROM rollout_members m JOIN rollouts r ON r.id = m.rollout "
                                 "WHERE m.drone = ?1 AND r.state IN ('draft', 'scheduled', 'running', 'paused') LIMIT 1",
                              ARGS(TEXT(t->v[i].id)), conflict_row, &k);
        }
        if (r < 0)
                return r;
        if (k.n)
                return ringil_fail(-EEXIST, "%zu drone%s already in another rollout: %s%s; one rollout per drone at a "
                                   "time: abort or finish it first", k.n, k.n == 1 ? " is" : "s are", k.msg,
                                   k.n > 5 ? ", …" : "");
        return 0;
}

int store_rollout_create(store *s, const struct rollout_spec *spec, const char *request_json, const char *creator,
                         int64_t now, int64_t *ret_id) {
        struct targets t = {};
        uint32_t sizes[ROLLOUT_MAX_GROUPS];
        struct rollout_conditions cond[ROLLOUT_MAX_GROUPS];
        struct sqlconn *c;
        char target[80], detail[160];
        size_t k = 0, ord = 0;
        int64_t id = 0, rel = 0;
        int r;

        rollout_spec_target_string(spec, target, sizeof(target));
        r = store_tx(s, true, &c);
        if (r < 0)
                return r;
        r = store_sql(c, "SELECT id FROM releases WHERE id = ?1", ARGS(INT(spec->release)), int_row, &rel);
        if (r == 0)
                r = ringil_fail(-ENOENT, "no release %" PRId64, spec->release);
        if (r >= 0)
                r = resolve_target(c, spec, &t);
        if (r >= 0 && t.n == 0)
                r = ringil_fail(-ENODATA, "target '%s' holds no drone", target);
        if (r >= 0)
                r = check_conflicts(c, &t);
        if (r >= 0) {
                k = rollout_partition(t.n, spec->groups, spec->n_groups, sizes, cond);
                r = store_sql(c, "INSERT INTO rollouts(name, release, target, state, created, created_by, "
                                 "require_approval, start_at, n_groups, deadline, rate, drift_gate, request) "
                                 "VALUES (?1, ?2, ?3, 'draft', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
                              ARGS(TEXT(spec->name), INT(spec->release), TEXT(target), INT(now), TEXT(creator),
                                   INT(spec->require_approval), INT(spec->start_at), INT(k), INT(spec->deadline),
                                   INT(spec->rate), INT(spec->drift_gate), TEXT(request_json)),
                              int_row, &id);
                if (r == 0)
                        r = ringil_fail(-EIO, "the new rollout has no id");
        }
        if (r >= 0) {
                /* an explicit list keeps the operator's order; everything else is shuffled per rollout */
                if (spec->target != TARGET_LIST) {
                        for (size_t i = 0; i < t.n; i++)
                                rollout_order_key(id, t.v[i].id, t.v[i].key);
                        qsort(t.v, t.n, sizeof(*t.v), cmp_key);
                }
        }
        for (size_t g = 0; r >= 0 && g < k; g++)
                r = store_sql(c, "INSERT INTO rollout_groups(rollout, idx, size, success_pct, soak, error_count, error_pct) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                              ARGS(INT(id), INT(g), INT(sizes[g]), INT(cond[g].success_pct), INT(cond[g].soak),
                                   INT(cond[g].error_count), INT(cond[g].error_pct)),
                              NULL, NULL);
        for (size_t g = 0; r >= 0 && g < k; g++)
                for (uint32_t i = 0; r >= 0 && i < sizes[g]; i++, ord++)
                        r = store_sql(c, "INSERT INTO rollout_members(rollout, ord, drone, grp, state, state_at) "
                                         "VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                                      ARGS(INT(id), INT(ord), TEXT(t.v[ord].id), INT(g), INT(now)), NULL, NULL);
        if (r >= 0) {
                snprintf(detail, sizeof(detail), "%zu drones in %zu groups, target %s, by %s", t.n, k, target, creator);
                r = store_rollout_event(c, id, now, NULL, "created", 0, detail);
        }
        r = store_tx_end(s, r);
        targets_done(&t);
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
        int error;
};

static int rollout_row(const struct sql_row *q, void *userdata) {
        struct rollout_row *row = userdata;

        if (rollout_state_from_string(row_text(q, 0), &row->state) < 0)
                return ringil_fail(-EIO, "rollout: unknown state '%s'", row_text(q, 0));
        row->require_approval = (int) row_int(q, 1) != 0;
        row->approved = !row_null(q, 2);
        row_text_copy(q, 3, row->created_by, sizeof(row->created_by));
        row_text_copy(q, 2, row->approved_by, sizeof(row->approved_by));
        row->start_at = row_int(q, 4);
        row->started_at = row_int(q, 5);
        return 1;
}

int store_rollout_set_state(struct sqlconn *c, int64_t id, enum rollout_state st, const char *reason, int64_t now) {
        return store_sql(c, "UPDATE rollouts SET state = ?2, reason = ?3, "
                            "started_at = CASE WHEN ?2 = 'running' AND started_at = 0 THEN ?4 ELSE started_at END, "
                            "ended_at = CASE WHEN ?2 IN ('aborted', 'finished') THEN ?4 ELSE 0 END WHERE id = ?1",
                         ARGS(INT(id), TEXT(rollout_state_to_string(st)), TEXT(reason), INT(now)), NULL, NULL);
}

static int not_now(int64_t id, const char *what, enum rollout_state st) {
        return ringil_fail(-EPERM, "cannot %s rollout %" PRId64 ": it is %s", what, id, rollout_state_to_string(st));
}

struct failed_members {
        struct {
                int64_t ord;
                char drone[65];
        } *v;
        size_t n, cap;
        const struct rollout_action_args *args;
};

static int failed_row(const struct sql_row *q, void *userdata) {
        struct failed_members *f = userdata;
        const char *d = row_text(q, 1);
        bool wanted = !f->args->drones;

        for (size_t i = 0; !wanted && i < f->args->n_drones; i++)
                wanted = streq(f->args->drones[i], d);
        if (!wanted)
                return 0;
        if (f->n == f->cap) {
                size_t ncap = f->cap ? f->cap * 2 : 64;
                void *nv = realloc(f->v, ncap * sizeof(*f->v));
                if (!nv)
                        return -ENOMEM;
                f->v = nv;
                f->cap = ncap;
        }
        f->v[f->n].ord = row_int(q, 0);
        snprintf(f->v[f->n].drone, sizeof(f->v[f->n].drone), "%s", d);
        f->n++;
        return 0;
}

static int do_retry(struct sqlconn *c, int64_t id, const struct rollout_action_args *args, int64_t now) {
        struct failed_members f = { .args = args };
        char detail[120];
        int r;

        r = store_sql(c, "SELECT ord, drone FROM rollout_members WHERE rollout = ?1 AND state IN " SQL_FAILURES
                         " ORDER BY ord", ARGS(INT(id)), failed_row, &f);
        for (size_t i = 0; r >= 0 && args->drones && i < args->n_drones; i++) {
                bool found = false;
                for (size_t j = 0; j < f.n && !found; j++)
                        found = streq(f.v[j].drone, args->drones[i]);
                if (!found)
                        r = ringil_fail(-EPERM, "drone '%s' is not a failed member of rollout %" PRId64, args->drones[i], id);
        }
        snprintf(detail, sizeof(detail), "retry by %s", args->operator_name);
        for (size_t i = 0; r >= 0 && i < f.n; i++) {
                /* INVARIANT: the retry generation rises with the member's return to pending, so its agent
                 * tries the release again instead of skipping one it failed before. */
                r = store_rollout_set_member(c, id, f.v[i].ord, MEMBER_PENDING, now, detail);
                if (r >= 0)
                        r = store_drone_bump_retry(c, f.v[i].drone, NULL);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, f.v[i].drone, "retry", 0, detail);
        }
        free(f.v);
        /* Failures accepted by a resume cannot exceed the failures left, or a retried drone that fails
         * again would not count. */
        if (r >= 0)
                r = store_sql(c, SQL_DIALECT(c, "UPDATE rollout_groups SET failures_acked = MIN(failures_acked, "
                                                "(SELECT count(*) FROM rollout_members m WHERE m.rollout = ?1 AND "
                                                "m.grp = rollout_groups.idx AND m.state IN " SQL_FAILURES ")) WHERE rollout = ?1",
                                                "UPDATE rollout_groups SET failures_acked = LEAST(failures_acked, "
                                                "(SELECT count(*) FROM rollout_members m WHERE m.rollout = ?1 AND "
                                                "m.grp = rollout_groups.idx AND m.state IN " SQL_FAILURES ")) WHERE rollout = ?1"),
                              ARGS(INT(id)), NULL, NULL);
        return r < 0 ? r : (int) MIN(f.n, (size_t) INT32_MAX);
}

int store_rollout_action(store *s, int64_t id, enum rollout_action a, const struct rollout_action_args *args,
                         int64_t now) {
        struct rollout_row row = {};
        char reason[ROLLOUT_REASON_MAX];
        const char *who = args->operator_name;
        struct sqlconn *c;
        int changed = 0, r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, "SELECT state, require_approval, approved_by, created_by, start_at, started_at "
                         "FROM rollouts WHERE id = ?1", ARGS(INT(id)), rollout_row, &row);
        if (r == 0)
                r = ringil_fail(-ENOENT, "no rollout %" PRId64, id);
        if (r < 0)
                return store_tx_end(s, r);
        switch (a) {
        case ROLLOUT_APPROVE:
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
                if (r >= 0)
                        r = store_sql(c, "UPDATE rollouts SET approved_by = ?2, approved_at = ?3 WHERE id = ?1",
                                      ARGS(INT(id), TEXT(who), INT(now)), NULL, NULL);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, NULL, "approved", 0, who);
                break;
        case ROLLOUT_START: {
                int64_t start_at = args->start_at ? args->start_at : row.start_at;
                if (row.state != ROLLOUT_DRAFT)
                        r = not_now(id, "start", row.state);
                else if (row.require_approval && !row.approved)
                        r = ringil_fail(-EACCES, "rollout %" PRId64 " needs the approval of a second operator before it "
                                        "starts", id);
                if (r >= 0 && args->start_at)
                        r = store_sql(c, "UPDATE rollouts SET start_at = ?2 WHERE id = ?1", ARGS(INT(id), INT(start_at)),
                                      NULL, NULL);
                snprintf(reason, sizeof(reason), "%s by %s", start_at > now ? "scheduled" : "started", who);
                if (r >= 0)
                        r = store_rollout_set_state(c, id, start_at > now ? ROLLOUT_SCHEDULED : ROLLOUT_RUNNING, reason,
                                                    now);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, NULL, start_at > now ? "scheduled" : "started", 0, reason);
                break;
        }
        case ROLLOUT_PAUSE:
                if (row.state != ROLLOUT_RUNNING && row.state != ROLLOUT_SCHEDULED)
                        r = not_now(id, "pause", row.state);
                snprintf(reason, sizeof(reason), "paused by %s", who);
                if (r >= 0)
                        r = store_rollout_set_state(c, id, ROLLOUT_PAUSED, reason, now);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, NULL, "paused", 0, reason);
                break;
        case ROLLOUT_RESUME:
                if (row.state != ROLLOUT_PAUSED)
                        r = not_now(id, "resume", row.state);
                /* Resuming accepts the failures seen so far: the error condition counts new ones. */
                if (r >= 0)
                        r = store_sql(c, "UPDATE rollout_groups SET failures_acked = (SELECT count(*) FROM rollout_members m "
                                         "WHERE m.rollout = ?1 AND m.grp = rollout_groups.idx AND m.state IN " SQL_FAILURES
                                         ") WHERE rollout = ?1", ARGS(INT(id)), NULL, NULL);
                snprintf(reason, sizeof(reason), "resumed by %s", who);
                if (r >= 0)
                        r = store_rollout_set_state(c, id, row.started_at == 0 && row.start_at > now ? ROLLOUT_SCHEDULED
                                                                                                   : ROLLOUT_RUNNING,
                                                    reason, now);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, NULL, "resumed", 0, reason);
                break;
        case ROLLOUT_ABORT:
                if (!rollout_state_holds(row.state))
                        r = not_now(id, "abort", row.state);
                /* INVARIANT: after an abort nobody is handed the release: pending members are skipped in the
                 * same transaction; handed ones keep their assignment and finish. */
                if (r >= 0)
                        r = store_sql(c, "UPDATE rollout_members SET state = 'skipped', state_at = ?2, detail = 'aborted' "
                                         "WHERE rollout = ?1 AND state = 'pending'", ARGS(INT(id), INT(now)), NULL, NULL);
                snprintf(reason, sizeof(reason), "aborted by %s", who);
                if (r >= 0)
                        r = store_rollout_set_state(c, id, ROLLOUT_ABORTED, reason, now);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, NULL, "aborted", 0, reason);
                break;
        case ROLLOUT_RETRY:
                if (row.state != ROLLOUT_RUNNING && row.state != ROLLOUT_PAUSED && row.state != ROLLOUT_FINISHED)
                        r = not_now(id, "retry drones of", row.state);
                if (r >= 0)
                        r = changed = do_retry(c, id, args, now);
                if (r > 0 && row.state == ROLLOUT_FINISHED) {
                        snprintf(reason, sizeof(reason), "running again: %d drones retried by %s", changed, who);
                        r = store_rollout_set_state(c, id, ROLLOUT_RUNNING, reason, now);
                }
                break;
        }
        r = store_tx_end(s, r);
        return r < 0 ? r : changed;
}

/* ---- views ---- */

#define ROLLOUT_COLUMNS                                                                                      \
        "r.id, r.name, r.release, rel.version, r.target, r.state, r.reason, r.created, r.created_by, "       \
        "r.require_approval, r.approved_by, r.start_at, r.started_at, r.ended_at, r.current_group, "         \
        "r.n_groups, r.deadline, r.rate, r.drift_gate"

static int summary_row(const struct sql_row *q, void *userdata) {
        json_t *j = json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b}",
                              "id", (json_int_t) row_int(q, 0), "name", row_text(q, 1),
                              "release", (json_int_t) row_int(q, 2), "version", row_text(q, 3),
                              "target", row_text(q, 4), "state", row_text(q, 5), "reason", row_text(q, 6),
                              "created", (json_int_t) row_int(q, 7), "created_by", row_text(q, 8),
                              "require_approval", (int) row_int(q, 9) != 0,
                              "start_at", (json_int_t) row_int(q, 11),
                              "started_at", (json_int_t) row_int(q, 12),
                              "ended_at", (json_int_t) row_int(q, 13),
                              "current_group", (json_int_t) MIN(row_int(q, 14) + 1, row_int(q, 15)),
                              "groups_total", (json_int_t) row_int(q, 15),
                              "deadline", (json_int_t) row_int(q, 16),
                              "rate", (json_int_t) row_int(q, 17),
                              "drift_gate", (int) row_int(q, 18) != 0,
                              "completed", row_int(q, 14) >= row_int(q, 15));
        if (!j)
                return -ENOMEM;
        if (!row_null(q, 10))
                json_object_set_new(j, "approved_by", json_string(row_text(q, 10)));
        return json_array_append_new(userdata, j) == 0 ? 0 : -ENOMEM;
}

static int count_row(const struct sql_row *q, void *userdata) {
        return json_object_set_new(userdata, row_text(q, 0), json_integer(row_int(q, 1))) == 0 ? 0 : -ENOMEM;
}

static int counts_json(struct sqlconn *c, int64_t id, json_t *o) {
        json_t *counts = json_object();
        int r;

        if (!counts)
                return -ENOMEM;
        r = store_sql(c, "SELECT state, count(*) FROM rollout_members WHERE rollout = ?1 GROUP BY state", ARGS(INT(id)),
                      count_row, counts);
        json_object_set_new(o, "counts", counts);
        return r;
}

int store_rollouts_json(store *s, json_t **ret) {
        json_t *a = json_array();
        struct sqlconn *c;
        int r;

        if (!a)
                return -ENOMEM;
        c = store_reader(s);
        r = store_sql(c, "SELECT " ROLLOUT_COLUMNS " FROM rollouts r JOIN releases rel ON rel.id = r.release ORDER BY r.id",
                      NOARGS, summary_row, a);
        for (size_t i = 0; r >= 0 && i < json_array_size(a); i++) {
                json_t *o = json_array_get(a, i);
                r = counts_json(c, json_integer_value(json_object_get(o, "id")), o);
        }
        store_reader_done(c);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

static int group_row(const struct sql_row *q, void *userdata) {
        json_t *g = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                              "group", (json_int_t) row_int(q, 0) + 1,
                              "size", (json_int_t) row_int(q, 1),
                              "success_percent", (json_int_t) row_int(q, 2),
                              "soak", (json_int_t) row_int(q, 3),
                              "error_count", (json_int_t) row_int(q, 4),
                              "error_percent", (json_int_t) row_int(q, 5),
                              "success_since", (json_int_t) row_int(q, 6),
                              "completed_at", (json_int_t) row_int(q, 7),
                              "failures_accepted", (json_int_t) row_int(q, 8),
                              "blessed", (json_int_t) row_int(q, 9),
                              "failed", (json_int_t) row_int(q, 10),
                              "in_flight", (json_int_t) row_int(q, 11),
                              "pending", (json_int_t) row_int(q, 12));
        return g && json_array_append_new(userdata, g) == 0 ? 0 : -ENOMEM;
}

static int member_row(const struct sql_row *q, void *userdata) {
        json_t *m = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:s}", "drone", row_text(q, 0),
                              "group", (json_int_t) row_int(q, 1) + 1, "state", row_text(q, 2),
                              "attempt", (json_int_t) row_int(q, 3),
                              "handed_at", (json_int_t) row_int(q, 4),
                              "state_at", (json_int_t) row_int(q, 5), "detail", row_text(q, 6));
        return m && json_array_append_new(userdata, m) == 0 ? 0 : -ENOMEM;
}

static int event_row(const struct sql_row *q, void *userdata) {
        json_t *e = json_pack("{s:I, s:s, s:s, s:I, s:s}", "time", (json_int_t) row_int(q, 0),
                              "drone", row_text(q, 1), "event", row_text(q, 2),
                              "attempt", (json_int_t) row_int(q, 3), "detail", row_text(q, 4));
        return e && json_array_append_new(userdata, e) == 0 ? 0 : -ENOMEM;
}

/* with_members false: the dashboard's page, which lists only the members that need a look (store-ui.c) */
static int rollout_json(store *s, int64_t id, bool with_members, json_t **ret) {
        json_t *one = json_array(), *groups = json_array(), *members = json_array(), *events = json_array(), *o = NULL;
        struct sqlconn *c;
        int r;

        if (!one || !groups || !members || !events) {
                r = -ENOMEM;
                goto out;
        }
        /* one reader, one snapshot: the summary, its groups and members agree */
        c = store_reader(s);
        r = store_sql(c, "SELECT " ROLLOUT_COLUMNS " FROM rollouts r JOIN releases rel ON rel.id = r.release WHERE r.id = ?1",
                      ARGS(INT(id)), summary_row, one);
        if (r == 0)
                r = ringil_fail(-ENOENT, "no rollout %" PRId64, id);
        if (r >= 0)
                r = store_sql(c, "SELECT g.idx, g.size, g.success_pct, g.soak, g.error_count, g.error_pct, "
                                 "g.success_since, g.completed_at, g.failures_acked, "
                                 "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx "
                                 " AND m.state = 'blessed'), "
                                 "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx "
                                 " AND m.state IN " SQL_FAILURES "), "
                                 "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx "
                                 " AND m.state IN " SQL_IN_FLIGHT "), "
                                 "(SELECT count(*) FROM rollout_members m WHERE m.rollout = g.rollout AND m.grp = g.idx "
                                 " AND m.state = 'pending') "
                                 "FROM rollout_groups g WHERE g.rollout = ?1 ORDER BY g.idx",
                              ARGS(INT(id)), group_row, groups);
        if (r >= 0 && with_members)
                r = store_sql(c, "SELECT drone, grp, state, attempt, handed_at, state_at, detail FROM rollout_members "
                                 "WHERE rollout = ?1 ORDER BY ord", ARGS(INT(id)), member_row, members);
        if (r >= 0)
                r = store_sql(c, "SELECT time, drone, event, attempt, detail FROM rollout_events WHERE rollout = ?1 "
                                 "ORDER BY id DESC LIMIT 200", ARGS(INT(id)), event_row, events);
        if (r >= 0) {
                o = json_incref(json_array_get(one, 0));
                r = counts_json(c, id, o);
        }
        store_reader_done(c);
        if (r >= 0) {
                json_object_set_new(o, "groups", TAKE_PTR(groups));
                if (with_members)
                        json_object_set_new(o, "members", TAKE_PTR(members));
                json_object_set_new(o, "events", TAKE_PTR(events));
        }
out:
        json_decref(one);
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

int store_rollout_json(store *s, int64_t id, json_t **ret) {
        return rollout_json(s, id, true, ret);
}

int store_rollout_json_brief(store *s, int64_t id, json_t **ret) {
        return rollout_json(s, id, false, ret);
}
