/* store-compliance.c: the drones' compliance reports and their history, the drift report and rollout metrics. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "drift.h"
#include "err.h"
#include "macro.h"
#include "store-internal.h"
#include "store-rollout.h"

#define COMPLIANCE_HISTORY_MAX 100

#define COMPLIANCE_COLUMNS                                                                                   \
        "version, slot, system, tz, utc_offset, sb_present, sb_mode, sb_pk, sb_kek, sb_db, audit_present, "  \
        "audit_profile, audit_pass, audit_fail, audit_error, audit_waived, audit_na, audit_failing, "         \
        "audit_sha256, audit_version, audit_time"

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS compliance("
        " drone TEXT PRIMARY KEY, time INTEGER NOT NULL, digest TEXT NOT NULL,"
        " version TEXT, slot TEXT, system TEXT, tz TEXT, utc_offset INTEGER, sb_present INTEGER, sb_mode TEXT,"
        " sb_pk TEXT, sb_kek TEXT, sb_db TEXT, audit_present INTEGER, audit_profile TEXT, audit_pass INTEGER,"
        " audit_fail INTEGER, audit_error INTEGER, audit_waived INTEGER, audit_na INTEGER, audit_failing TEXT,"
        " audit_sha256 TEXT, audit_version TEXT, audit_time INTEGER) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS compliance_history("
        " id INTEGER PRIMARY KEY, drone TEXT NOT NULL, time INTEGER NOT NULL,"
        " version TEXT, slot TEXT, system TEXT, tz TEXT, utc_offset INTEGER, sb_present INTEGER, sb_mode TEXT,"
        " sb_pk TEXT, sb_kek TEXT, sb_db TEXT, audit_present INTEGER, audit_profile TEXT, audit_pass INTEGER,"
        " audit_fail INTEGER, audit_error INTEGER, audit_waived INTEGER, audit_na INTEGER, audit_failing TEXT,"
        " audit_sha256 TEXT, audit_version TEXT, audit_time INTEGER);"
        "CREATE INDEX IF NOT EXISTS compliance_history_by_drone ON compliance_history(drone, id);";

/*
 * Check-ins repeat the same compliance report every poll. The digest of the last one stored per drone
 * is kept in memory, so an unchanged report costs a hash and no SQL at all: the check-in path stays
 * one UPDATE. The table keeps the truth (a restart starts with an empty cache and rewrites once).
 */
struct cache_entry {
        struct cache_entry *next;
        uint8_t digest[SHA256_LEN];
        char drone[];
};

struct store_cache {
        struct cache_entry **buckets;
        size_t n_buckets, n;
};

static uint64_t fnv1a(const char *s) {
        uint64_t h = 1469598103934665603ull;
        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 1099511628211ull;
        return h;
}

static struct cache_entry **cache_find(struct store_cache *c, const char *drone) {
        struct cache_entry **e = &c->buckets[fnv1a(drone) & (c->n_buckets - 1)];
        while (*e && !streq((*e)->drone, drone))
                e = &(*e)->next;
        return e;
}

static int cache_grow(struct store_cache *c) {
        size_t nb = c->n_buckets * 2;
        struct cache_entry **b = calloc(nb, sizeof(*b));

        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_buckets; i++)
                for (struct cache_entry *e = c->buckets[i], *next; e; e = next) {
                        next = e->next;
                        e->next = b[fnv1a(e->drone) & (nb - 1)];
                        b[fnv1a(e->drone) & (nb - 1)] = e;
                }
        free(c->buckets);
        c->buckets = b;
        c->n_buckets = nb;
        return 0;
}

int store_compliance_open(store *s);
void store_compliance_close(store *s);

int store_compliance_open(store *s) {
        struct store_cache *c = calloc(1, sizeof(*c));
        char *err = NULL;
        int rc;

        if (!c)
                return -ENOMEM;
        c->n_buckets = 1024;
        c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
        if (!c->buckets) {
                free(c);
                return -ENOMEM;
        }
        *store_cache_slot(s) = c;
        rc = sqlite3_exec(store_sqlite(s), schema, NULL, NULL, &err);
        sqlite3_free(err);
        return rc == SQLITE_OK ? 0 : store_sql_fail(s, rc, "compliance schema");
}

void store_compliance_close(store *s) {
        struct store_cache *c = *store_cache_slot(s);

        if (!c)
                return;
        for (size_t i = 0; i < c->n_buckets; i++)
                for (struct cache_entry *e = c->buckets[i], *next; e; e = next) {
                        next = e->next;
                        free(e);
                }
        free(c->buckets);
        free(c);
        *store_cache_slot(s) = NULL;
}

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

static void join_ids(const struct fleet_audit *a, char *out, size_t cap) {
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

/* Bind the compliance columns at parameters first..first+20, in COMPLIANCE_COLUMNS order. */
static void bind_compliance(sqlite3_stmt *q, int first, const struct fleet_status *st, const char *failing) {
        const struct fleet_audit *a = &st->audit;
        const struct fleet_secureboot *sb = &st->sb;
        int i = first;

        sqlite3_bind_text(q, i++, st->version, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, st->slot, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, st->system, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, st->tz, -1, SQLITE_STATIC);
        if (st->has_utc_offset)
                sqlite3_bind_int64(q, i, st->utc_offset);
        i++;
        sqlite3_bind_int(q, i++, sb->present);
        sqlite3_bind_text(q, i++, sb->mode, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, sb->pk, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, sb->kek, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, sb->db, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, i++, a->present);
        sqlite3_bind_text(q, i++, a->profile, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, i++, a->pass);
        sqlite3_bind_int64(q, i++, a->fail);
        sqlite3_bind_int64(q, i++, a->error);
        sqlite3_bind_int64(q, i++, a->waived);
        sqlite3_bind_int64(q, i++, a->notapplicable);
        sqlite3_bind_text(q, i++, failing, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, a->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, i++, a->version, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, i, a->time);
}

static void compliance_digest(const struct fleet_status *st, const char *failing, uint8_t out[static SHA256_LEN]) {
        char text[FLEET_MAX_MESSAGE];
        const struct fleet_audit *a = &st->audit;
        const struct fleet_secureboot *sb = &st->sb;
        int n = snprintf(text, sizeof(text),
                         "%s|%s|%s|%s|%d:%" PRId32 "|%d:%s:%s:%s:%s|%d:%s:%" PRIu32 ":%" PRIu32 ":%" PRIu32 ":%" PRIu32
                         ":%" PRIu32 ":%s:%s:%s:%" PRId64,
                         st->version, st->slot, st->system, st->tz, st->has_utc_offset, st->utc_offset, sb->present,
                         sb->mode, sb->pk, sb->kek, sb->db, a->present, a->profile, a->pass, a->fail, a->error,
                         a->waived, a->notapplicable, failing, a->sha256, a->version, a->time);
        (void) crypto_sha256(text, n > 0 ? MIN((size_t) n, sizeof(text) - 1) : 0, out);
}

int store_compliance_update(store *s, const char *drone, const struct fleet_status *st, int64_t now) {
        struct store_cache *c = *store_cache_slot(s);
        char failing[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX], hex[2 * SHA256_LEN + 1];
        uint8_t digest[SHA256_LEN];
        struct cache_entry **e;
        int r;

        join_ids(&st->audit, failing, sizeof(failing));
        compliance_digest(st, failing, digest);
        hex_encode(digest, sizeof(digest), hex);
        store_lock(s);
        e = cache_find(c, drone);
        if (*e && memcmp((*e)->digest, digest, SHA256_LEN) == 0) {
                store_unlock(s);
                return 0;
        }
        r = store_begin(s, false);
        if (r >= 0) {
                sqlite3_stmt *q = store_stmt(s, "INSERT INTO compliance(drone, time, digest, " COMPLIANCE_COLUMNS ") "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
                        "?21, ?22, ?23, ?24) ON CONFLICT(drone) DO UPDATE SET time = excluded.time, digest = excluded.digest, "
                        "version = excluded.version, slot = excluded.slot, system = excluded.system, tz = excluded.tz, "
                        "utc_offset = excluded.utc_offset, sb_present = excluded.sb_present, sb_mode = excluded.sb_mode, "
                        "sb_pk = excluded.sb_pk, sb_kek = excluded.sb_kek, sb_db = excluded.sb_db, "
                        "audit_present = excluded.audit_present, audit_profile = excluded.audit_profile, "
                        "audit_pass = excluded.audit_pass, audit_fail = excluded.audit_fail, "
                        "audit_error = excluded.audit_error, audit_waived = excluded.audit_waived, "
                        "audit_na = excluded.audit_na, audit_failing = excluded.audit_failing, "
                        "audit_sha256 = excluded.audit_sha256, audit_version = excluded.audit_version, "
                        "audit_time = excluded.audit_time WHERE compliance.digest != excluded.digest");
                r = q ? 0 : -EIO;
                if (r >= 0) {
                        sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 2, now);
                        sqlite3_bind_text(q, 3, hex, -1, SQLITE_STATIC);
                        bind_compliance(q, 4, st, failing);
                        r = store_step(s, q);
                }
                if (r >= 0 && sqlite3_changes(store_sqlite(s)) > 0) {
                        q = store_stmt(s, "INSERT INTO compliance_history(drone, time, " COMPLIANCE_COLUMNS ") VALUES "
                                          "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
                                          "?19, ?20, ?21, ?22, ?23)");
                        r = q ? 0 : -EIO;
                        if (r >= 0) {
                                sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                                sqlite3_bind_int64(q, 2, now);
                                bind_compliance(q, 3, st, failing);
                                r = store_step(s, q);
                        }
                        q = r >= 0 ? store_stmt(s, "DELETE FROM compliance_history WHERE drone = ?1 AND id <= "
                                                   "(SELECT id FROM compliance_history WHERE drone = ?1 ORDER BY id DESC "
                                                   "LIMIT 1 OFFSET ?2)") : NULL;
                        if (r >= 0 && !q)
                                r = -EIO;
                        if (r >= 0) {
                                sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                                sqlite3_bind_int(q, 2, COMPLIANCE_HISTORY_MAX);
                                r = store_step(s, q);
                        }
                }
                r = store_end(s, r);
        }
        if (r >= 0) {
                /* remember only what is committed */
                if (!*e) {
                        size_t n = strlen(drone);
                        *e = calloc(1, sizeof(**e) + n + 1);
                        if (*e) {
                                memcpy((*e)->drone, drone, n + 1);
                                c->n++;
                        }
                }
                if (*e)
                        memcpy((*e)->digest, digest, SHA256_LEN);
                if (c->n > c->n_buckets)
                        (void) cache_grow(c);
        }
        store_unlock(s);
        return r;
}

/* A compliance row (columns from COMPLIANCE_COLUMNS starting at first) as JSON. */
static json_t *compliance_row(sqlite3_stmt *q, int first) {
        int i = first;
        json_t *o = json_object(), *audit, *sb, *ids;
        const char *failing;

        if (!o)
                return NULL;
        json_object_set_new(o, "version", json_string(col(q, i)));
        json_object_set_new(o, "slot", json_string(col(q, i + 1)));
        json_object_set_new(o, "system", json_string(col(q, i + 2)));
        json_object_set_new(o, "tz", json_string(col(q, i + 3)));
        if (sqlite3_column_type(q, i + 4) != SQLITE_NULL)
                json_object_set_new(o, "utc_offset", json_integer(sqlite3_column_int64(q, i + 4)));
        sb = sqlite3_column_int(q, i + 5) ? json_pack("{s:s, s:s, s:s, s:s}", "mode", col(q, i + 6), "pk", col(q, i + 7),
                                                      "kek", col(q, i + 8), "db", col(q, i + 9))
                                          : json_null();
        json_object_set_new(o, "secureboot", sb);
        if (sqlite3_column_int(q, i + 10)) {
                ids = json_array();
                failing = col(q, i + 17);
                for (const char *p = failing; ids && *p;) {
                        const char *sp = strchr(p, ' ');
                        size_t n = sp ? (size_t) (sp - p) : strlen(p);
                        json_array_append_new(ids, json_stringn(p, n));
                        if (!sp)
                                break;
                        p = sp + 1;
                }
                audit = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:s, s:I}", "profile", col(q, i + 11),
                                  "pass", (json_int_t) sqlite3_column_int64(q, i + 12),
                                  "fail", (json_int_t) sqlite3_column_int64(q, i + 13),
                                  "error", (json_int_t) sqlite3_column_int64(q, i + 14),
                                  "waived", (json_int_t) sqlite3_column_int64(q, i + 15),
                                  "notapplicable", (json_int_t) sqlite3_column_int64(q, i + 16),
                                  "failing", ids ? ids : json_array(), "sha256", col(q, i + 18),
                                  "version", col(q, i + 19), "time", (json_int_t) sqlite3_column_int64(q, i + 20));
        } else
                audit = json_null();
        json_object_set_new(o, "audit", audit ? audit : json_null());
        return o;
}

static int last_compliance(store *s, const char *drone, json_t **ret) {
        STMT(q, "SELECT time, " COMPLIANCE_COLUMNS " FROM compliance WHERE drone = ?1");
        int rc;

        *ret = NULL;
        sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                *ret = compliance_row(q, 1);
                if (*ret)
                        json_object_set_new(*ret, "time", json_integer(sqlite3_column_int64(q, 0)));
        }
        reset(q);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(s, rc, "compliance");
}

int store_compliance_json(store *s, const char *drone, json_t **ret) {
        json_t *o = NULL, *last = NULL, *hist = json_array();
        sqlite3_stmt *q;
        int rc, r;

        if (!hist)
                return -ENOMEM;
        store_lock(s);
        r = last_compliance(s, drone, &last);
        q = r >= 0 ? store_stmt(s, "SELECT time, " COMPLIANCE_COLUMNS " FROM compliance_history WHERE drone = ?1 "
                                   "ORDER BY id DESC LIMIT 100") : NULL;
        if (r >= 0 && !q)
                r = -EIO;
        if (r >= 0) {
                sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                        json_t *h = compliance_row(q, 1);
                        if (h) {
                                json_object_set_new(h, "time", json_integer(sqlite3_column_int64(q, 0)));
                                json_array_append_new(hist, h);
                        }
                }
                reset(q);
                if (rc != SQLITE_DONE)
                        r = store_sql_fail(s, rc, "compliance history");
        }
        store_unlock(s);
        if (r >= 0)
                o = json_pack("{s:s, s:o, s:o}", "drone", drone, "last", last ? last : json_null(), "history", hist);
        else {
                json_decref(last);
                json_decref(hist);
        }
        if (r >= 0 && !o)
                r = -ENOMEM;
        if (r >= 0)
                *ret = o;
        return r;
}

int store_drone_decorate(store *s, const char *drone, json_t *j) {
        json_t *tags = json_array(), *last = NULL;
        sqlite3_stmt *q;
        int rc, r = 0;

        if (!tags)
                return -ENOMEM;
        store_lock(s);
        q = store_stmt(s, "SELECT tag FROM drone_tags WHERE drone = ?1 ORDER BY tag");
        if (!q)
                r = -EIO;
        else {
                sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                        json_array_append_new(tags, json_string(col(q, 0)));
                reset(q);
                if (rc != SQLITE_DONE)
                        r = store_sql_fail(s, rc, "tags");
        }
        if (r >= 0)
                r = last_compliance(s, drone, &last);
        q = r >= 0 ? store_stmt(s, "SELECT m.rollout, r.state, m.grp, m.state, m.attempt, m.detail, "
                                   "COALESCE((SELECT retry FROM drone_ctl WHERE drone = ?1), 0) "
                                   "FROM rollout_members m JOIN rollouts r ON r.id = m.rollout "
                                   "WHERE m.drone = ?1 ORDER BY m.rollout DESC LIMIT 1") : NULL;
        if (r >= 0 && !q)
                r = -EIO;
        if (r >= 0) {
                sqlite3_bind_text(q, 1, drone, -1, SQLITE_STATIC);
                rc = sqlite3_step(q);
                if (rc == SQLITE_ROW)
                        json_object_set_new(j, "rollout", json_pack("{s:I, s:s, s:I, s:s, s:I, s:s}",
                                "id", (json_int_t) sqlite3_column_int64(q, 0), "state", col(q, 1),
                                "group", (json_int_t) sqlite3_column_int64(q, 2) + 1, "member", col(q, 3),
                                "attempt", (json_int_t) sqlite3_column_int64(q, 4), "detail", col(q, 5)));
                reset(q);
                if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                        r = store_sql_fail(s, rc, "membership");
        }
        store_unlock(s);
        json_object_set_new(j, "tags", tags);
        json_object_set_new(j, "compliance", last ? last : json_null());
        return r;
}

/* ---- drift ---- */

/* Walk every non-revoked drone with what drift_classify() needs. */
static int drift_walk(store *s, int64_t now, uint32_t silent_after,
                      int (*cb)(sqlite3_stmt *q, const struct drift_input *in, const struct drift_result *res, void *u),
                      void *userdata) {
        STMT(q, "SELECT d.id, d.grp, COALESCE(d.last_seen, 0), COALESCE(d.version, ''), COALESCE(d.state, ''), "
                "c.drone IS NOT NULL, COALESCE(c.audit_present, 0), c.audit_profile, COALESCE(c.audit_fail, 0), "
                "COALESCE(c.audit_error, 0), c.audit_failing, COALESCE(c.sb_present, 0), c.sb_mode, c.sb_pk, c.sb_kek, c.sb_db, "
                "(SELECT rel.version FROM assignments a JOIN releases rel ON rel.id = a.release "
                " WHERE a.target IN ('drone:' || d.id, 'group:' || d.grp, '*') "
                " ORDER BY CASE WHEN a.target = '*' THEN 2 WHEN a.target LIKE 'group:%' THEN 1 ELSE 0 END LIMIT 1), "
                "EXISTS (SELECT 1 FROM rollout_members m JOIN rollouts r ON r.id = m.rollout WHERE m.drone = d.id "
                " AND m.state = 'pending' AND r.state IN ('scheduled', 'running', 'paused')) "
                "FROM drones d LEFT JOIN compliance c ON c.drone = d.id WHERE d.status != 2 ORDER BY d.id");
        int rc, r = 0;

        while (r >= 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
                struct drift_input in = {
                        .last_seen = sqlite3_column_int64(q, 2),
                        .version = col(q, 3),
                        .audit_present = sqlite3_column_int(q, 6) != 0,
                        .audit_profile = col(q, 7),
                        .audit_fail = (uint32_t) sqlite3_column_int64(q, 8),
                        .audit_error = (uint32_t) sqlite3_column_int64(q, 9),
                        .audit_failing = col(q, 10),
                        .sb_present = sqlite3_column_int(q, 11) != 0,
                        .sb_mode = col(q, 12),
                        .sb_pk = col(q, 13),
                        .sb_kek = col(q, 14),
                        .sb_db = col(q, 15),
                        .assigned_version = sqlite3_column_type(q, 16) != SQLITE_NULL ? col(q, 16) : NULL,
                        .held = sqlite3_column_int(q, 17) != 0,
                };
                struct drift_result res;
                drift_classify(&in, now, silent_after, &res);
                r = cb(q, &in, &res, userdata);
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = store_sql_fail(s, rc, "drift");
        reset(q);
        return r;
}

struct drift_json {
        json_t *drones;
        unsigned counts[_DRIFT_KINDS];
        unsigned total;
};

static int drift_json_cb(sqlite3_stmt *q, const struct drift_input *in, const struct drift_result *res, void *u) {
        struct drift_json *dj = u;
        json_t *o, *kinds;

        dj->total++;
        if (!res->kinds)
                return 0;
        kinds = json_array();
        o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s?}", "id", col(q, 0), "group", col(q, 1), "last_seen",
                      (json_int_t) in->last_seen, "version", in->version, "state", col(q, 4), "assigned",
                      in->assigned_version);
        if (!o || !kinds) {
                json_decref(o);
                json_decref(kinds);
                return -ENOMEM;
        }
        for (unsigned b = 0; b < _DRIFT_KINDS; b++)
                if (res->kinds & (1u << b)) {
                        const char *why = (1u << b) == DRIFT_RELEASE ? res->release
                                        : (1u << b) == DRIFT_AUDIT ? res->audit
                                        : (1u << b) == DRIFT_SECUREBOOT ? res->secureboot : res->silent;
                        json_array_append_new(kinds, json_string(drift_kind_to_string(1u << b)));
                        json_object_set_new(o, drift_kind_to_string(1u << b), json_string(why));
                        dj->counts[b]++;
                }
        if (res->kinds & DRIFT_AUDIT) {
                json_t *ids = json_array();
                for (const char *p = in->audit_failing; ids && p && *p;) {
                        const char *sp = strchr(p, ' ');
                        size_t n = sp ? (size_t) (sp - p) : strlen(p);
                        json_array_append_new(ids, json_stringn(p, n));
                        if (!sp)
                                break;
                        p = sp + 1;
                }
                json_object_set_new(o, "failing", ids ? ids : json_array());
        }
        json_object_set_new(o, "kinds", kinds);
        json_array_append_new(dj->drones, o);
        return 0;
}

int store_drift_json(store *s, int64_t now, uint32_t silent_after, json_t **ret) {
        struct drift_json dj = { .drones = json_array() };
        json_t *counts = json_object(), *o;
        int r;

        if (!dj.drones || !counts) {
                json_decref(dj.drones);
                json_decref(counts);
                return -ENOMEM;
        }
        store_lock(s);
        r = drift_walk(s, now, silent_after, drift_json_cb, &dj);
        store_unlock(s);
        if (r < 0) {
                json_decref(dj.drones);
                json_decref(counts);
                return r;
        }
        for (unsigned b = 0; b < _DRIFT_KINDS; b++)
                json_object_set_new(counts, drift_kind_to_string(1u << b), json_integer(dj.counts[b]));
        o = json_pack("{s:I, s:I, s:I, s:o, s:o}", "time", (json_int_t) now, "silent_after", (json_int_t) silent_after,
                      "drones_total", (json_int_t) dj.total, "counts", counts, "drones", dj.drones);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

static int drift_count_cb(sqlite3_stmt *q, const struct drift_input *in, const struct drift_result *res, void *u) {
        unsigned *counts = u;
        (void) q;
        (void) in;
        for (unsigned b = 0; b < _DRIFT_KINDS; b++)
                if (res->kinds & (1u << b))
                        counts[b]++;
        return 0;
}

int store_rollout_metrics(store *s, int64_t now, uint32_t silent_after, struct buf *b) {
        unsigned counts[_DRIFT_KINDS] = {};
        sqlite3_stmt *q;
        int64_t last = -1;
        int rc, r;

        store_lock(s);
        r = drift_walk(s, now, silent_after, drift_count_cb, counts);
        if (r >= 0) {
                buf_printf(b, "# HELP ringil_drift_drones Drones that drifted, by kind.\n# TYPE ringil_drift_drones gauge\n");
                for (unsigned k = 0; k < _DRIFT_KINDS; k++)
                        buf_printf(b, "ringil_drift_drones{kind=\"%s\"} %u\n", drift_kind_to_string(1u << k), counts[k]);
        }
        /* Rollouts that can still move, and the ten most recent ones. */
        q = r >= 0 ? store_stmt(s, "SELECT r.id, r.state, r.current_group, r.n_groups, m.state, count(*) "
                                   "FROM rollouts r JOIN rollout_members m ON m.rollout = r.id "
                                   "WHERE r.state IN ('draft', 'scheduled', 'running', 'paused') "
                                   "OR r.id IN (SELECT id FROM rollouts ORDER BY id DESC LIMIT 10) "
                                   "GROUP BY r.id, m.state ORDER BY r.id") : NULL;
        if (r >= 0 && !q)
                r = -EIO;
        if (r >= 0) {
                buf_printf(b, "# HELP ringil_rollout_members Rollout members by state.\n# TYPE ringil_rollout_members gauge\n");
                while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                        buf_printf(b, "ringil_rollout_members{rollout=\"%" PRId64 "\",state=\"%s\"} %" PRId64 "\n",
                                   (int64_t) sqlite3_column_int64(q, 0), col(q, 4), (int64_t) sqlite3_column_int64(q, 5));
                reset(q);
                if (rc != SQLITE_DONE)
                        r = store_sql_fail(s, rc, "rollout metrics");
        }
        if (r >= 0) {
                struct {
                        int64_t id, group, groups;
                        char state[16];
                } v[64];
                size_t n = 0;
                while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                        int64_t id = sqlite3_column_int64(q, 0);
                        if (id == last || n == ELEMENTSOF(v))
                                continue;
                        last = id;
                        v[n].id = id;
                        v[n].group = MIN(sqlite3_column_int64(q, 2) + 1, sqlite3_column_int64(q, 3));
                        v[n].groups = sqlite3_column_int64(q, 3);
                        store_text(q, 1, v[n].state, sizeof(v[n].state));
                        n++;
                }
                reset(q);
                if (rc != SQLITE_DONE)
                        r = store_sql_fail(s, rc, "rollout metrics");
                /* one block per metric family, as the exposition format wants */
                buf_printf(b, "# HELP ringil_rollout_info Rollouts by state (value 1).\n# TYPE ringil_rollout_info gauge\n");
                for (size_t i = 0; i < n; i++)
                        buf_printf(b, "ringil_rollout_info{rollout=\"%" PRId64 "\",state=\"%s\"} 1\n", v[i].id, v[i].state);
                buf_printf(b, "# HELP ringil_rollout_group The group being rolled out (1-based).\n"
                              "# TYPE ringil_rollout_group gauge\n");
                for (size_t i = 0; i < n; i++)
                        buf_printf(b, "ringil_rollout_group{rollout=\"%" PRId64 "\"} %" PRId64 "\n", v[i].id, v[i].group);
                buf_printf(b, "# HELP ringil_rollout_groups Groups of the rollout.\n# TYPE ringil_rollout_groups gauge\n");
                for (size_t i = 0; i < n; i++)
                        buf_printf(b, "ringil_rollout_groups{rollout=\"%" PRId64 "\"} %" PRId64 "\n", v[i].id, v[i].groups);
        }
        store_unlock(s);
        return r;
}
