/* store-ui.c: the dashboard's reads (fleet counts, version changes, drone pages) and the operator action log. */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "macro.h"
#include "store-internal.h"
#include "store.h"

/*
 * Schema step (store.c's migrations). The drone table gets no index on what a check-in rewrites
 * (last_seen, version): every heartbeat would pay for it; sorting 10,000 rows by them is a top-N sort
 * of a few milliseconds instead. grp is set at registration only.
 */
const char store_ui_schema[] =
        "CREATE TABLE IF NOT EXISTS operator_actions("
        " id INTEGER PRIMARY KEY, time INTEGER NOT NULL, operator TEXT NOT NULL, serial TEXT NOT NULL,"
        " method TEXT NOT NULL, path TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL,"
        " status INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS operator_actions_target ON operator_actions(target, id);"
        "ALTER TABLE drones ADD COLUMN cert_not_after INTEGER;"
        "ALTER TABLE releases ADD COLUMN built INTEGER;"
        "ALTER TABLE releases ADD COLUMN expires INTEGER;"
        "ALTER TABLE releases ADD COLUMN payloads TEXT;"
        "CREATE INDEX IF NOT EXISTS drones_grp ON drones(grp, id);";

/* The dashboard's state word (store.h); now and silent_after are the statement's parameters n and s. */
#define UI_STATE(n, s)                                                                                       \
        "(CASE WHEN status = 2 THEN 'revoked' WHEN COALESCE(last_seen, 0) <= " n " - " s " THEN 'silent' "   \
        "WHEN state IN ('downloading', 'retrying') THEN 'downloading' "                                      \
        "WHEN state IN ('installed', 'rebooting', 'waiting') THEN 'pending' "                                \
        "WHEN state = 'updated' THEN 'blessed' WHEN state = 'rolled-back' THEN 'rolled-back' "               \
        "WHEN state = 'failed' THEN 'failed' ELSE 'idle' END)"

/*
 * The drift rules of drift.c as SQL over a row of drones (a unit test holds them to drift_classify()
 * through the drift report): a filter of the drones table and the fleet's drift counts are then one
 * statement each, instead of a walk over every drone through drift_classify() and a set of ids.
 */
#define DRIFT_AUDIT_CLEAN                                                                                    \
        "EXISTS (SELECT 1 FROM compliance c WHERE c.drone = drones.id AND COALESCE(c.audit_present, 0) != 0 " \
        "AND c.audit_profile = 'prod' AND COALESCE(c.audit_fail, 0) = 0 AND COALESCE(c.audit_error, 0) = 0)"
#define DRIFT_SECUREBOOT_CLEAN                                                                               \
        "EXISTS (SELECT 1 FROM compliance c WHERE c.drone = drones.id AND COALESCE(c.sb_present, 0) != 0 "    \
        "AND c.sb_mode IN ('user', 'deployed') AND c.sb_pk = 'ok' AND c.sb_kek = 'ok' AND c.sb_db = 'ok')"
#define DRIFT_SILENT(n, s) "(COALESCE(drones.last_seen, 0) <= 0 OR " n " - drones.last_seen > " s ")"
/* the assigned release (drone, then group, then everyone) is not what it runs, and no rollout holds it */
#define DRIFT_RELEASE                                                                                        \
        "(EXISTS (SELECT 1 FROM releases rel WHERE rel.id = COALESCE("                                       \
        "(SELECT release FROM assignments WHERE target = 'drone:' || drones.id), "                           \
        "(SELECT release FROM assignments WHERE target = 'group:' || drones.grp), "                          \
        "(SELECT release FROM assignments WHERE target = '*')) AND rel.version != COALESCE(drones.version, '')) " \
        "AND NOT EXISTS (SELECT 1 FROM rollout_members m JOIN rollouts r ON r.id = m.rollout "               \
        "WHERE m.drone = drones.id AND m.state = 'pending' AND r.state IN ('scheduled', 'running', 'paused')))"
/* Drift of kind k (a drift.h word; anything else matches nothing); revoked drones never drift. */
#define DRIFT_OF(k, n, s)                                                                                    \
        "(drones.status != 2 AND CASE " k " WHEN 'release' THEN " DRIFT_RELEASE " WHEN 'audit' THEN NOT "     \
        DRIFT_AUDIT_CLEAN " WHEN 'secureboot' THEN NOT " DRIFT_SECUREBOOT_CLEAN " WHEN 'silent' THEN "       \
        DRIFT_SILENT(n, s) " ELSE FALSE END)"

/* ---- fleet counts ---- */

/*
 * Every count of the fleet view in one pass over the drones and their last compliance report: each
 * row is a combination of (state word, version, audit class, Secure Boot class, release drift,
 * silence) with its count, a few dozen rows for a fleet, summed up in C. NULL columns for a revoked
 * drone: it counts only by state. The audit and Secure Boot classes follow the drift rules, so
 * "compliant" and "enforced" are exactly the drones without audit or secureboot drift.
 */
static const char q_fleet_counts[] =
        "SELECT " UI_STATE("?1", "?2") ", "
        "CASE WHEN status != 2 THEN COALESCE(drones.version, '') END, "
        "CASE WHEN status = 2 THEN NULL WHEN c.drone IS NULL OR COALESCE(c.audit_present, 0) = 0 THEN 'unknown' "
        "WHEN COALESCE(c.audit_profile, '') != 'prod' THEN 'other-profile' "
        "WHEN COALESCE(c.audit_fail, 0) > 0 THEN 'failing' WHEN COALESCE(c.audit_error, 0) > 0 THEN 'unevaluated' "
        "ELSE 'compliant' END, "
        "CASE WHEN status = 2 THEN NULL WHEN c.drone IS NULL OR COALESCE(c.sb_present, 0) = 0 THEN 'unknown' "
        "WHEN COALESCE(c.sb_mode, '') NOT IN ('user', 'deployed') THEN 'not-enforced' "
        "WHEN c.sb_pk = 'ok' AND c.sb_kek = 'ok' AND c.sb_db = 'ok' THEN 'enforced' ELSE 'foreign-keys' END, "
        "status != 2 AND " DRIFT_RELEASE ", status != 2 AND " DRIFT_SILENT("?1", "?2") ", count(*) "
        "FROM drones LEFT JOIN compliance c ON c.drone = drones.id GROUP BY 1, 2, 3, 4, 5, 6";

struct fleet_counts {
        json_t *state, *version, *audit, *secureboot, *drift;
        json_int_t total;
};

static int count_add(json_t *o, const char *key, json_int_t n) {
        return json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + n)) == 0 ? 0 : -ENOMEM;
}

static int fleet_row(const struct sql_row *q, void *userdata) {
        struct fleet_counts *fc = userdata;
        json_int_t n = row_int(q, 6);
        int r = count_add(fc->state, row_text(q, 0), n);

        fc->total += n;
        if (r < 0 || row_null(q, 1))
                return r;   /* revoked: counted by state only */
        if (r >= 0)
                r = count_add(fc->version, row_text(q, 1), n);
        if (r >= 0)
                r = count_add(fc->audit, row_text(q, 2), n);
        if (r >= 0)
                r = count_add(fc->secureboot, row_text(q, 3), n);
        if (r >= 0 && (int) row_int(q, 4))
                r = count_add(fc->drift, "release", n);
        if (r >= 0 && !streq(row_text(q, 2), "compliant"))
                r = count_add(fc->drift, "audit", n);
        if (r >= 0 && !streq(row_text(q, 3), "enforced"))
                r = count_add(fc->drift, "secureboot", n);
        if (r >= 0 && (int) row_int(q, 5))
                r = count_add(fc->drift, "silent", n);
        return r;
}

int store_fleet_summary(store *s, int64_t now, uint32_t silent_after, json_t **ret) {
        struct fleet_counts fc = {
                .state = json_object(),
                .version = json_object(),
                .audit = json_object(),
                .secureboot = json_object(),
                .drift = json_pack("{s:i, s:i, s:i, s:i}", "release", 0, "audit", 0, "secureboot", 0, "silent", 0),
        };
        struct sqlconn *c;
        int r = fc.state && fc.version && fc.audit && fc.secureboot && fc.drift ? 0 : -ENOMEM;

        if (r >= 0) {
                c = store_reader(s);
                r = store_sql(c, q_fleet_counts, ARGS(INT(now), INT(silent_after)), fleet_row, &fc);
                store_reader_done(c);
        }
        if (r < 0) {
                json_decref(fc.state);
                json_decref(fc.version);
                json_decref(fc.audit);
                json_decref(fc.secureboot);
                json_decref(fc.drift);
                return r;
        }
        *ret = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "total", fc.total, "state", fc.state, "version", fc.version,
                         "audit", fc.audit, "secureboot", fc.secureboot, "drift", fc.drift);
        return *ret ? 0 : -ENOMEM;
}

/* ---- version history ---- */

/*
 * A report's version is the one running when it was sent; walking a drone's reports in order (the
 * UNIQUE(drone, seq) index gives it without a sort) keeps the ones where it changed. A window function
 * (lag() over the drone) did the same in SQL at four times the cost. The last check-in then adds the
 * version running now, which a drone updated outside the fleet never reported.
 */
static const char q_version_reports[] =
        "SELECT drone, time, version FROM events WHERE version != '' "
        "AND drone NOT IN (SELECT id FROM drones WHERE status = 2) ORDER BY drone, seq";
static const char q_version_checkins[] =
        "SELECT id, last_seen, version FROM drones WHERE status != 2 AND last_seen IS NOT NULL AND COALESCE(version, '') != ''";

struct version_cb {
        store_version_fn fn;
        void *userdata;
        char drone[256], version[FLEET_VERSION_MAX];
};

static int version_row(const struct sql_row *q, void *userdata) {
        struct version_cb *cb = userdata;
        const char *drone = row_text(q, 0), *version = row_text(q, 2);
        int r;

        if (strncmp(cb->drone, drone, sizeof(cb->drone)) == 0 && strncmp(cb->version, version, sizeof(cb->version)) == 0)
                return 0;   /* the same drone, still on the same version */
        snprintf(cb->drone, sizeof(cb->drone), "%s", drone);
        snprintf(cb->version, sizeof(cb->version), "%s", version);
        r = cb->fn(row_int(q, 1), drone, version, cb->userdata);
        return r < 0 ? r : 0;
}

int store_version_changes(store *s, store_version_fn fn, void *userdata) {
        struct version_cb cb = { .fn = fn, .userdata = userdata };
        struct sqlconn *c = store_reader(s);
        int r = store_sql(c, q_version_reports, NOARGS, version_row, &cb);

        cb.drone[0] = '\0';   /* every check-in is a row of its own */
        if (r >= 0)
                r = store_sql(c, q_version_checkins, NOARGS, version_row, &cb);
        store_reader_done(c);
        return r < 0 ? r : 0;
}

/* ---- the drone table ---- */

#define DRONE_COLS                                                                                           \
        "id, grp, status, COALESCE(last_seen, 0), COALESCE(version, ''), COALESCE(state, ''), "              \
        "COALESCE(release, 0), COALESCE(target, ''), COALESCE(error, ''), COALESCE(slot, ''), "              \
        "COALESCE(boot, ''), audit_pass, audit_fail, created, " UI_STATE("?5", "?6")

/* ?1 search, ?2 version, ?3 group, ?4 state word, ?5 now, ?6 silent_after, ?9 tag, ?10 drift kind; "" = any.
 * instr is SQLite's name of PostgreSQL's strpos (haystack, needle: the same order). */
#define DRONE_FILTER_(instr)                                                                                 \
        " FROM drones WHERE (?1 = '' OR " instr "(lower(id), lower(?1)) > 0 OR " instr "(lower(COALESCE(error, '')), " \
        "lower(?1)) > 0) AND (?2 = '' OR version = ?2) AND (?3 = '' OR grp = ?3) AND "                      \
        "(?4 = '' OR " UI_STATE("?5", "?6") " = ?4) AND "                                                    \
        "(?9 = '' OR EXISTS (SELECT 1 FROM drone_tags t WHERE t.drone = drones.id AND t.tag = ?9)) AND "     \
        "(?10 = '' OR " DRIFT_OF("?10", "?5", "?6") ")"

#define DRONE_PAGE_(f, order) "SELECT " DRONE_COLS DRONE_FILTER_(f) " ORDER BY " order " LIMIT ?7 OFFSET ?8"
#define DRONE_PAGES(f)                                                                                       \
        {                                                                                                    \
                [DRONE_SORT_ID] = { DRONE_PAGE_(f, "id"), DRONE_PAGE_(f, "id DESC") },                       \
                [DRONE_SORT_GROUP] = { DRONE_PAGE_(f, "grp, id"), DRONE_PAGE_(f, "grp DESC, id DESC") },     \
                [DRONE_SORT_VERSION] = { DRONE_PAGE_(f, "COALESCE(version, ''), id"),                        \
                                         DRONE_PAGE_(f, "COALESCE(version, '') DESC, id DESC") },            \
                [DRONE_SORT_STATE] = { DRONE_PAGE_(f, "15, id"), DRONE_PAGE_(f, "15 DESC, id DESC") },       \
                [DRONE_SORT_LAST_SEEN] = { DRONE_PAGE_(f, "COALESCE(last_seen, 0), id"),                     \
                                           DRONE_PAGE_(f, "COALESCE(last_seen, 0) DESC, id DESC") },         \
        }

/*
 * One statement per sort order, all string literals (prepared once, no SQL is ever built from input).
 * id is the primary key and (grp, id) an index: a page walks the index and stops after it; the other
 * orders are top-N sorts bounded by offset + limit.
 */
static const char *const q_drone_page[2][_DRONE_SORT_MAX][2] = {
        [STORE_SQLITE] = DRONE_PAGES("instr"),
        [STORE_POSTGRESQL] = DRONE_PAGES("strpos"),
};
static const char q_drone_count_sqlite[] = "SELECT count(*)" DRONE_FILTER_("instr");
static const char q_drone_count_pg[] = "SELECT count(*)" DRONE_FILTER_("strpos");

static const char *status_word(int st) {
        return st == DRONE_REVOKED ? "revoked" : st == DRONE_ACTIVE ? "active" : "enrolled";
}

static int page_row(const struct sql_row *q, void *userdata) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s}",
                              "id", row_text(q, 0), "group", row_text(q, 1),
                              "status", status_word((int) row_int(q, 2)),
                              "last_seen", (json_int_t) row_int(q, 3), "version", row_text(q, 4),
                              "state", row_text(q, 5), "release", (json_int_t) row_int(q, 6),
                              "target", row_text(q, 7), "error", row_text(q, 8), "slot", row_text(q, 9),
                              "boot", row_text(q, 10), "created", (json_int_t) row_int(q, 13),
                              "ui_state", row_text(q, 14));

        if (j && !row_null(q, 11))
                json_object_set_new(j, "audit", json_pack("{s:I, s:I}", "pass", (json_int_t) row_int(q, 11),
                                                          "fail", (json_int_t) row_int(q, 12)));
        return j && json_array_append_new(userdata, j) == 0 ? 0 : -ENOMEM;
}

static int int_row(const struct sql_row *q, void *userdata) {
        *(int64_t *) userdata = row_int(q, 0);
        return 1;
}

/* Reverse a page read from the far end (below). */
static void reverse(json_t *a) {
        for (size_t i = 0, n = json_array_size(a); i < n / 2; i++) {
                json_t *x = json_incref(json_array_get(a, i));
                json_array_set(a, i, json_array_get(a, n - 1 - i));
                json_array_set_new(a, n - 1 - i, x);
        }
}

int store_drones_page(store *s, const struct drone_query *dq, json_t **ret) {
        json_t *a = json_array();
        struct sqlconn *c;
        int64_t total = 0, n, offset;
        bool desc = dq->desc;
        int r;

        if (!a)
                return -ENOMEM;
        if ((unsigned) dq->sort >= _DRONE_SORT_MAX) {
                json_decref(a);
                return -EINVAL;
        }
#define FILTER_ARGS                                                                                          \
        TEXT(dq->search), TEXT(dq->version), TEXT(dq->group), TEXT(dq->state), INT(dq->now), INT(dq->silent_after)
#define MORE_ARGS TEXT(dq->tag ? dq->tag : ""), TEXT(dq->drift ? dq->drift : "")
        c = store_reader(s);   /* one snapshot: the count and the page agree */
        /* ?7 and ?8 (limit, offset) are not in the count: typed anyway (PostgreSQL cannot guess a NULL's) */
        r = store_sql(c, SQL_DIALECT(c, q_drone_count_sqlite, q_drone_count_pg), ARGS(FILTER_ARGS, INT(0), INT(0), MORE_ARGS),
                      int_row, &total);
        /*
         * Every order ends in the id, so it is total and reading it backwards is exact. A page in the
         * second half is read from the far end: a top-N sort keeps offset + limit rows, and the last
         * page of 10,000 drones by check-in time would otherwise sort all of them.
         */
        offset = dq->offset;
        n = MIN((int64_t) dq->limit, MAX(total - (int64_t) dq->offset, 0));
        if (r >= 0 && n > 0 && (int64_t) dq->offset > total - (int64_t) dq->offset - n) {
                desc = !desc;
                offset = total - (int64_t) dq->offset - n;
        }
        if (r >= 0 && n > 0)
                r = store_sql(c, q_drone_page[store_sql_dialect(c)][dq->sort][desc],
                              ARGS(FILTER_ARGS, INT(n), INT(offset), MORE_ARGS), page_row, a);
        store_reader_done(c);
#undef FILTER_ARGS
#undef MORE_ARGS
        if (r < 0) {
                json_decref(a);
                return r;
        }
        if (desc != dq->desc)
                reverse(a);
        *ret = json_pack("{s:I, s:o}", "total", (json_int_t) total, "drones", a);
        return *ret ? 0 : -ENOMEM;
}

static const char q_versions[] = "SELECT DISTINCT version FROM drones WHERE COALESCE(version, '') != '' ORDER BY 1";
static const char q_groups[] = "SELECT DISTINCT grp FROM drones ORDER BY 1";
static const char q_tags[] = "SELECT DISTINCT tag FROM drone_tags ORDER BY 1";

static int string_row(const struct sql_row *q, void *userdata) {
        return json_array_append_new(userdata, json_string(row_text(q, 0))) == 0 ? 0 : -ENOMEM;
}

int store_drone_facets(store *s, json_t **ret) {
        json_t *v = json_array(), *g = json_array(), *t = json_array();
        struct sqlconn *c = store_reader(s);
        int r = v && g && t ? 0 : -ENOMEM;

        if (r >= 0)
                r = store_sql(c, q_versions, NOARGS, string_row, v);
        if (r >= 0)
                r = store_sql(c, q_groups, NOARGS, string_row, g);
        if (r >= 0)
                r = store_sql(c, q_tags, NOARGS, string_row, t);
        store_reader_done(c);
        if (r < 0) {
                json_decref(v);
                json_decref(g);
                json_decref(t);
                return r;
        }
        *ret = json_pack("{s:o, s:o, s:o}", "versions", v, "groups", g, "tags", t);
        return *ret ? 0 : -ENOMEM;
}

/* ---- identity ---- */

static const char q_identity[] =
        "SELECT COALESCE(cert_serial, ''), COALESCE(cert_not_after, 0), COALESCE(enrolled, 0), created, "
        "CASE WHEN token_hash IS NULL THEN 0 ELSE COALESCE(token_expires, 0) END FROM drones WHERE id = ?1";

static int identity_row(const struct sql_row *q, void *userdata) {
        struct drone_identity *d = userdata;

        row_text_copy(q, 0, d->cert_serial, sizeof(d->cert_serial));
        d->cert_not_after = row_int(q, 1);
        d->enrolled = row_int(q, 2);
        d->created = row_int(q, 3);
        d->token_expires = row_int(q, 4);
        return 1;
}

int store_drone_identity(store *s, const char *id, struct drone_identity *ret) {
        struct drone_identity d = {};
        struct sqlconn *c = store_reader(s);
        int r = store_sql(c, q_identity, ARGS(TEXT(id)), identity_row, &d);

        store_reader_done(c);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        *ret = d;
        return 0;
}

static const char q_cert_expiry[] = "UPDATE drones SET cert_not_after = ?3 WHERE id = ?1 AND cert_serial = ?2";

int store_drone_cert_expiry(store *s, const char *id, const char *serial, int64_t not_after) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, q_cert_expiry, ARGS(TEXT(id), TEXT(serial), INT(not_after)), NULL, NULL);
        return store_tx_end(s, r);
}

/* ---- release details ---- */

static const char q_release_details[] = "UPDATE releases SET built = ?2, expires = ?3, payloads = ?4 WHERE id = ?1";

int store_release_details(store *s, int64_t id, int64_t built, int64_t expires, const char *payloads_json) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, q_release_details, ARGS(INT(id), INT(built), INT(expires), TEXT(payloads_json)), NULL, NULL);
        if (r >= 0 && store_sql_changes(c) == 0)
                r = -ENOENT;
        return store_tx_end(s, r);
}

/* ---- a rollout's history ---- */

static const char q_rollout_exists[] = "SELECT 1 FROM rollouts WHERE id = ?1";
static const char q_rollout_events[] =
        "SELECT time, drone, event FROM rollout_events WHERE rollout = ?1 AND drone IS NOT NULL AND drone != '' ORDER BY id";

struct event_cb {
        store_rollout_event_fn fn;
        void *userdata;
};

static int rollout_event_row(const struct sql_row *q, void *userdata) {
        struct event_cb *cb = userdata;
        int r = cb->fn(row_int(q, 0), row_text(q, 1), row_text(q, 2), cb->userdata);
        return r < 0 ? r : 0;
}

int store_rollout_history(store *s, int64_t id, store_rollout_event_fn fn, void *userdata) {
        struct event_cb cb = { fn, userdata };
        struct sqlconn *c = store_reader(s);
        int r = store_sql(c, q_rollout_exists, ARGS(INT(id)), NULL, NULL);

        if (r == 0)
                r = -ENOENT;
        if (r > 0)
                r = store_sql(c, q_rollout_events, ARGS(INT(id)), rollout_event_row, &cb);
        store_reader_done(c);
        return r < 0 ? r : 0;
}

static const char q_attention_count[] =
        "SELECT count(*) FROM rollout_members WHERE rollout = ?1 AND (state IN " SQL_FAILURES " OR state IN " SQL_IN_FLIGHT ")";
static const char q_attention[] =
        "SELECT drone, grp, state, attempt, handed_at, state_at, detail FROM rollout_members WHERE rollout = ?1 "
        "AND (state IN " SQL_FAILURES " OR state IN " SQL_IN_FLIGHT ") ORDER BY state IN " SQL_FAILURES " DESC, ord LIMIT ?2";

static int attention_row(const struct sql_row *q, void *userdata) {
        json_t *m = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:s}", "drone", row_text(q, 0),
                              "group", (json_int_t) row_int(q, 1) + 1, "state", row_text(q, 2),
                              "attempt", (json_int_t) row_int(q, 3),
                              "handed_at", (json_int_t) row_int(q, 4),
                              "state_at", (json_int_t) row_int(q, 5), "detail", row_text(q, 6));
        return m && json_array_append_new(userdata, m) == 0 ? 0 : -ENOMEM;
}

int store_rollout_attention(store *s, int64_t id, uint32_t limit, json_t **ret) {
        json_t *a = json_array();
        struct sqlconn *c;
        int64_t total = 0;
        int r;

        if (!a)
                return -ENOMEM;
        c = store_reader(s);
        r = store_sql(c, q_attention_count, ARGS(INT(id)), int_row, &total);
        if (r >= 0)
                r = store_sql(c, q_attention, ARGS(INT(id), INT(limit)), attention_row, a);
        store_reader_done(c);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = json_pack("{s:I, s:o}", "total", (json_int_t) total, "members", a);
        return *ret ? 0 : -ENOMEM;
}

/* ---- the operator action log ---- */

static const char q_action_add[] =
        "INSERT INTO operator_actions(time, operator, serial, method, path, target, detail, status) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char q_actions_all[] =
        "SELECT id, time, operator, serial, method, path, target, detail, status FROM operator_actions "
        "ORDER BY id DESC LIMIT ?1 OFFSET ?2";
static const char q_actions_count_all[] = "SELECT count(*) FROM operator_actions";
static const char q_actions_target[] =
        "SELECT id, time, operator, serial, method, path, target, detail, status FROM operator_actions "
        "WHERE target = ?3 ORDER BY id DESC LIMIT ?1 OFFSET ?2";
static const char q_actions_count_target[] = "SELECT count(*) FROM operator_actions WHERE target = ?1";

int store_action_add(store *s, const struct operator_action *a) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, q_action_add,
                      ARGS(INT(a->time), TEXT(a->operator_name), TEXT(a->serial), TEXT(a->method), TEXT(a->path),
                           TEXT(a->target ? a->target : ""), TEXT(a->detail ? a->detail : ""), INT(a->status)),
                      NULL, NULL);
        return store_tx_end(s, r);
}

static int action_row(const struct sql_row *q, void *userdata) {
        json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "id", (json_int_t) row_int(q, 0),
                              "time", (json_int_t) row_int(q, 1), "operator", row_text(q, 2), "serial",
                              row_text(q, 3), "method", row_text(q, 4), "path", row_text(q, 5), "target",
                              row_text(q, 6), "detail", row_text(q, 7), "status", (int) row_int(q, 8));
        return j && json_array_append_new(userdata, j) == 0 ? 0 : -ENOMEM;
}

int store_actions_json(store *s, const char *target, uint32_t limit, uint32_t offset, json_t **ret) {
        json_t *a = json_array();
        struct sqlconn *c;
        int64_t total = 0;
        int r;

        if (!a)
                return -ENOMEM;
        c = store_reader(s);
        if (target) {
                r = store_sql(c, q_actions_count_target, ARGS(TEXT(target)), int_row, &total);
                if (r >= 0)
                        r = store_sql(c, q_actions_target, ARGS(INT(limit), INT(offset), TEXT(target)), action_row, a);
        } else {
                r = store_sql(c, q_actions_count_all, NOARGS, int_row, &total);
                if (r >= 0)
                        r = store_sql(c, q_actions_all, ARGS(INT(limit), INT(offset)), action_row, a);
        }
        store_reader_done(c);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = json_pack("{s:I, s:o}", "total", (json_int_t) total, "actions", a);
        return *ret ? 0 : -ENOMEM;
}
