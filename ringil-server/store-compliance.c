/* store-compliance.c: the drones' compliance reports and their history, the drift report and rollout metrics. */
#include <inttypes.h>
#include <pthread.h>
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

/* Schema version 4 (store.c runs it). */
const char store_compliance_schema[] =
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
        pthread_mutex_t lock;           /* check-ins run on several workers */
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

int store_compliance_open(store *s) {
        struct store_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->n_buckets = 1024;
        c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
        if (!c->buckets) {
                free(c);
                return -ENOMEM;
        }
        pthread_mutex_init(&c->lock, NULL);
        *store_cache_slot(s) = c;
        return 0;
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
        pthread_mutex_destroy(&c->lock);
        free(c);
        *store_cache_slot(s) = NULL;
}

#define col row_text

void store_audit_failing_join(const struct fleet_audit *a, char *out, size_t cap) {
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


/* The compliance columns as statement arguments from index first on, in COMPLIANCE_COLUMNS order. */
static void compliance_args(struct sql_arg *a, const struct fleet_status *st, const char *failing) {
        const struct fleet_audit *au = &st->audit;
        const struct fleet_secureboot *sb = &st->sb;
        size_t i = 0;

        a[i++] = (struct sql_arg) TEXT(st->version);
        a[i++] = (struct sql_arg) TEXT(st->slot);
        a[i++] = (struct sql_arg) TEXT(st->system);
        a[i++] = (struct sql_arg) TEXT(st->tz);
        a[i++] = st->has_utc_offset ? (struct sql_arg) INT(st->utc_offset) : (struct sql_arg) NUL;
        a[i++] = (struct sql_arg) INT(sb->present);
        a[i++] = (struct sql_arg) TEXT(sb->mode);
        a[i++] = (struct sql_arg) TEXT(sb->pk);
        a[i++] = (struct sql_arg) TEXT(sb->kek);
        a[i++] = (struct sql_arg) TEXT(sb->db);
        a[i++] = (struct sql_arg) INT(au->present);
        a[i++] = (struct sql_arg) TEXT(au->profile);
        a[i++] = (struct sql_arg) INT(au->pass);
        a[i++] = (struct sql_arg) INT(au->fail);
        a[i++] = (struct sql_arg) INT(au->error);
        a[i++] = (struct sql_arg) INT(au->waived);
        a[i++] = (struct sql_arg) INT(au->notapplicable);
        a[i++] = (struct sql_arg) TEXT(failing);
        a[i++] = (struct sql_arg) TEXT(au->sha256);
        a[i++] = (struct sql_arg) TEXT(au->version);
        a[i++] = (struct sql_arg) INT(au->time);
        a[i] = (struct sql_arg) { .type = A_END };
}

#define N_COMPLIANCE_COLUMNS 21

static int digest_row(const struct sql_row *q, void *userdata) {
        const char *t = row_text(q, 0);
        if (strlen(t) == 2 * SHA256_LEN)
                (void) hex_decode(t, userdata, SHA256_LEN);
        return 1;
}

int store_compliance_update(store *s, const char *drone, const struct fleet_status *st, int64_t now, bool *ret_resend) {
        struct store_cache *cache = *store_cache_slot(s);
        char failing[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX], hex[2 * SHA256_LEN + 1];
        struct sql_arg args[4 + N_COMPLIANCE_COLUMNS + 1];   /* the history row: 4 leading, the columns, the end */
        uint8_t digest[SHA256_LEN], stored[SHA256_LEN] = {};
        struct cache_entry **e;
        struct sqlconn *c;
        bool known;
        int r;

        *ret_resend = false;
        if (!fleet_status_has_compliance(st)) {
                /* Only the digest (or nothing, from an agent that does not report compliance): the
                 * server must hold the report it names, else it asks for it. */
                if (!st->compliance[0] || hex_decode(st->compliance, digest, SHA256_LEN) < 0)
                        return 0;
                pthread_mutex_lock(&cache->lock);
                e = cache_find(cache, drone);
                known = *e != NULL;
                if (known)
                        memcpy(stored, (*e)->digest, SHA256_LEN);
                pthread_mutex_unlock(&cache->lock);
                if (!known) {
                        /* not seen since the server started: the table has the last one */
                        c = store_reader(s);
                        r = store_sql(c, "SELECT digest FROM compliance WHERE drone = ?1", ARGS(TEXT(drone)), digest_row,
                                      stored);
                        store_reader_done(c);
                        if (r < 0)
                                return r;
                }
                *ret_resend = memcmp(stored, digest, SHA256_LEN) != 0;
                return 0;
        }
        store_audit_failing_join(&st->audit, failing, sizeof(failing));
        r = fleet_compliance_digest(st, hex);
        if (r < 0)
                return r;
        (void) hex_decode(hex, digest, SHA256_LEN);
        /* With replicas (PostgreSQL) another one may have stored a newer report since this one cached
         * it (a drone whose report went X, then Y through another replica, then X again here): the
         * upsert below, a no-op for an unchanged digest, decides there. A single server's cache is the
         * truth. (The digest-only path above may trust it on both: a drone names a report by digest
         * only after a server acknowledged that full report, which was then the newest stored.) */
        pthread_mutex_lock(&cache->lock);
        e = cache_find(cache, drone);
        r = *e && memcmp((*e)->digest, digest, SHA256_LEN) == 0;
        pthread_mutex_unlock(&cache->lock);
        if (r && store_backend_single(s))
                return 0;   /* unchanged since the last one stored: no SQL at all */
        r = store_tx(s, false, &c);
        if (r < 0)
                return r;
        args[0] = (struct sql_arg) TEXT(drone);
        args[1] = (struct sql_arg) INT(now);
        args[2] = (struct sql_arg) TEXT(hex);
        compliance_args(args + 3, st, failing);
        r = store_sql(c, "INSERT INTO compliance(drone, time, digest, " COMPLIANCE_COLUMNS ") "
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
                         "audit_time = excluded.audit_time WHERE compliance.digest != excluded.digest",
                      args, NULL, NULL);
        if (r >= 0 && store_sql_changes(c) > 0) {
                /* the history keeps one row per change, the newest COMPLIANCE_HISTORY_MAX per drone */
                args[2] = (struct sql_arg) TEXT(drone);
                args[3] = (struct sql_arg) INT(now);
                compliance_args(args + 4, st, failing);
                r = store_sql(c, "INSERT INTO compliance_history(drone, time, " COMPLIANCE_COLUMNS ") VALUES "
                                 "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
                                 "?21, ?22, ?23)",
                              args + 2, NULL, NULL);
                if (r >= 0)
                        r = store_sql(c, "DELETE FROM compliance_history WHERE drone = ?1 AND id <= (SELECT id FROM "
                                         "compliance_history WHERE drone = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                                      ARGS(TEXT(drone), INT(COMPLIANCE_HISTORY_MAX)), NULL, NULL);
        }
        r = store_tx_end(s, r);
        if (r < 0)
                return r;
        /* remember only what is committed */
        pthread_mutex_lock(&cache->lock);
        e = cache_find(cache, drone);
        if (!*e) {
                size_t n = strlen(drone);
                *e = calloc(1, sizeof(**e) + n + 1);
                if (*e) {
                        memcpy((*e)->drone, drone, n + 1);
                        cache->n++;
                }
        }
        if (*e)
                memcpy((*e)->digest, digest, SHA256_LEN);
        if (cache->n > cache->n_buckets)
                (void) cache_grow(cache);
        pthread_mutex_unlock(&cache->lock);
        return 0;
}

/* A compliance row (COMPLIANCE_COLUMNS from first on) as JSON. */
static json_t *compliance_json(const struct sql_row *q, int first) {
        int i = first;
        json_t *o = json_object(), *audit, *sb, *ids;

        if (!o)
                return NULL;
        json_object_set_new(o, "version", json_string(col(q, i)));
        json_object_set_new(o, "slot", json_string(col(q, i + 1)));
        json_object_set_new(o, "system", json_string(col(q, i + 2)));
        json_object_set_new(o, "tz", json_string(col(q, i + 3)));
        if (!row_null(q, i + 4))
                json_object_set_new(o, "utc_offset", json_integer(row_int(q, i + 4)));
        sb = (int) row_int(q, i + 5) ? json_pack("{s:s, s:s, s:s, s:s}", "mode", col(q, i + 6), "pk", col(q, i + 7),
                                                      "kek", col(q, i + 8), "db", col(q, i + 9))
                                          : json_null();
        json_object_set_new(o, "secureboot", sb ? sb : json_null());
        if ((int) row_int(q, i + 10)) {
                ids = json_array();
                for (const char *p = col(q, i + 17); ids && *p;) {
                        const char *sp = strchr(p, ' ');
                        size_t n = sp ? (size_t) (sp - p) : strlen(p);
                        json_array_append_new(ids, json_stringn(p, n));
                        if (!sp)
                                break;
                        p = sp + 1;
                }
                audit = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:s, s:I}", "profile", col(q, i + 11),
                                  "pass", (json_int_t) row_int(q, i + 12),
                                  "fail", (json_int_t) row_int(q, i + 13),
                                  "error", (json_int_t) row_int(q, i + 14),
                                  "waived", (json_int_t) row_int(q, i + 15),
                                  "notapplicable", (json_int_t) row_int(q, i + 16),
                                  "failing", ids ? ids : json_array(), "sha256", col(q, i + 18),
                                  "version", col(q, i + 19), "time", (json_int_t) row_int(q, i + 20));
        } else
                audit = json_null();
        json_object_set_new(o, "audit", audit ? audit : json_null());
        json_object_set_new(o, "time", json_integer(row_int(q, 0)));
        return o;
}

static int last_row(const struct sql_row *q, void *userdata) {
        *(json_t **) userdata = compliance_json(q, 1);
        return *(json_t **) userdata ? 1 : -ENOMEM;
}

static int history_row(const struct sql_row *q, void *userdata) {
        json_t *h = compliance_json(q, 1);
        return h && json_array_append_new(userdata, h) == 0 ? 0 : -ENOMEM;
}

int store_compliance_json(store *s, const char *drone, json_t **ret) {
        json_t *o = NULL, *last = NULL, *hist = json_array();
        struct sqlconn *c;
        int r;

        if (!hist)
                return -ENOMEM;
        c = store_reader(s);
        r = store_sql(c, "SELECT time, " COMPLIANCE_COLUMNS " FROM compliance WHERE drone = ?1", ARGS(TEXT(drone)),
                      last_row, &last);
        if (r >= 0)
                r = store_sql(c, "SELECT time, " COMPLIANCE_COLUMNS " FROM compliance_history WHERE drone = ?1 "
                                 "ORDER BY id DESC LIMIT 100", ARGS(TEXT(drone)), history_row, hist);
        store_reader_done(c);
        if (r >= 0) {
                o = json_pack("{s:s, s:o, s:o}", "drone", drone, "last", last ? last : json_null(), "history", hist);
                if (!o)
                        r = -ENOMEM;
        } else {
                json_decref(last);
                json_decref(hist);
        }
        if (r >= 0)
                *ret = o;
        return r < 0 ? r : 0;
}

static int tag_row(const struct sql_row *q, void *userdata) {
        return json_array_append_new(userdata, json_string(col(q, 0))) == 0 ? 0 : -ENOMEM;
}

static int membership_json_row(const struct sql_row *q, void *userdata) {
        json_t *m = json_pack("{s:I, s:s, s:I, s:s, s:I, s:s}", "id", (json_int_t) row_int(q, 0),
                              "state", col(q, 1), "group", (json_int_t) row_int(q, 2) + 1,
                              "member", col(q, 3), "attempt", (json_int_t) row_int(q, 4),
                              "detail", col(q, 5));
        if (!m)
                return -ENOMEM;
        json_object_set_new(userdata, "rollout", m);
        return 1;
}

int store_drone_decorate(store *s, const char *drone, json_t *j) {
        json_t *tags = json_array(), *last = NULL;
        struct sqlconn *c;
        int r;

        if (!tags)
                return -ENOMEM;
        c = store_reader(s);
        r = store_sql(c, "SELECT tag FROM drone_tags WHERE drone = ?1 ORDER BY tag", ARGS(TEXT(drone)), tag_row, tags);
        if (r >= 0)
                r = store_sql(c, "SELECT time, " COMPLIANCE_COLUMNS " FROM compliance WHERE drone = ?1", ARGS(TEXT(drone)),
                              last_row, &last);
        if (r >= 0)
                r = store_sql(c, "SELECT m.rollout, r.state, m.grp, m.state, m.attempt, m.detail "
                                 "FROM rollout_members m JOIN rollouts r ON r.id = m.rollout "
                                 "WHERE m.drone = ?1 ORDER BY m.rollout DESC LIMIT 1",
                              ARGS(TEXT(drone)), membership_json_row, j);
        store_reader_done(c);
        json_object_set_new(j, "tags", tags);
        json_object_set_new(j, "compliance", last ? last : json_null());
        return r < 0 ? r : 0;
}

/* ---- drift ---- */

typedef int (*drift_fn)(const struct sql_row *q, const struct drift_input *in, const struct drift_result *res, void *userdata);

struct drift_walk {
        int64_t now;
        uint32_t silent_after;
        drift_fn cb;
        void *userdata;
};

static int drift_row(const struct sql_row *q, void *userdata) {
        struct drift_walk *w = userdata;
        struct drift_input in = {
                .last_seen = row_int(q, 2),
                .version = col(q, 3),
                .audit_present = (int) row_int(q, 6) != 0,
                .audit_profile = col(q, 7),
                .audit_fail = (uint32_t) row_int(q, 8),
                .audit_error = (uint32_t) row_int(q, 9),
                .audit_failing = col(q, 10),
                .sb_present = (int) row_int(q, 11) != 0,
                .sb_mode = col(q, 12),
                .sb_pk = col(q, 13),
                .sb_kek = col(q, 14),
                .sb_db = col(q, 15),
                .assigned_version = !row_null(q, 16) ? col(q, 16) : NULL,
                .held = (int) row_int(q, 17) != 0,
        };
        struct drift_result res;

        drift_classify(&in, w->now, w->silent_after, &res);
        return w->cb(q, &in, &res, w->userdata);
}

/* Every non-revoked drone with what drift_classify() needs, on one reader (one snapshot). */
static int drift_walk(store *s, int64_t now, uint32_t silent_after, drift_fn cb, void *userdata) {
        struct drift_walk w = { .now = now, .silent_after = silent_after, .cb = cb, .userdata = userdata };
        struct sqlconn *c = store_reader(s);
        int r = store_sql(c, "SELECT d.id, d.grp, COALESCE(d.last_seen, 0), COALESCE(d.version, ''), COALESCE(d.state, ''), "
                             "c.drone IS NOT NULL, COALESCE(c.audit_present, 0), c.audit_profile, COALESCE(c.audit_fail, 0), "
                             "COALESCE(c.audit_error, 0), c.audit_failing, COALESCE(c.sb_present, 0), c.sb_mode, c.sb_pk, "
                             "c.sb_kek, c.sb_db, rel.version, "
                             "EXISTS (SELECT 1 FROM rollout_members m JOIN rollouts r ON r.id = m.rollout WHERE m.drone = d.id "
                             " AND m.state = 'pending' AND r.state IN ('scheduled', 'running', 'paused')) "
                             "FROM drones d LEFT JOIN compliance c ON c.drone = d.id "
                             "LEFT JOIN releases rel ON rel.id = COALESCE("
                             "(SELECT release FROM assignments WHERE target = 'drone:' || d.id), "
                             "(SELECT release FROM assignments WHERE target = 'group:' || d.grp), "
                             "(SELECT release FROM assignments WHERE target = '*')) "
                             "WHERE d.status != 2 ORDER BY d.id",
                          NOARGS, drift_row, &w);

        store_reader_done(c);
        return r < 0 ? r : 0;
}

struct drift_json {
        json_t *drones;
        unsigned counts[_DRIFT_KINDS];
        unsigned total;
};

static int drift_json_cb(const struct sql_row *q, const struct drift_input *in, const struct drift_result *res, void *u) {
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
        return json_array_append_new(dj->drones, o) == 0 ? 0 : -ENOMEM;
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
        r = drift_walk(s, now, silent_after, drift_json_cb, &dj);
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

static int drift_count_cb(const struct sql_row *q, const struct drift_input *in, const struct drift_result *res, void *u) {
        unsigned *counts = u;

        (void) q;
        (void) in;
        for (unsigned b = 0; b < _DRIFT_KINDS; b++)
                if (res->kinds & (1u << b))
                        counts[b]++;
        return 0;
}

/* ---- metrics ---- */

struct rollout_metric {
        int64_t id, group, groups;
        char state[16];
};

struct rollout_metrics {
        struct buf *b;
        struct rollout_metric v[64];
        size_t n;
        int64_t last;
};

static int member_metric_row(const struct sql_row *q, void *userdata) {
        struct rollout_metrics *m = userdata;
        int64_t id = row_int(q, 0);

        buf_printf(m->b, "ringil_rollout_members{rollout=\"%" PRId64 "\",state=\"%s\"} %" PRId64 "\n", id, col(q, 4),
                   (int64_t) row_int(q, 5));
        if (id != m->last && m->n < ELEMENTSOF(m->v)) {
                m->last = id;
                m->v[m->n].id = id;
                m->v[m->n].group = MIN(row_int(q, 2) + 1, row_int(q, 3));
                m->v[m->n].groups = row_int(q, 3);
                row_text_copy(q, 1, m->v[m->n].state, sizeof(m->v[m->n].state));
                m->n++;
        }
        return 0;
}

int store_rollout_metrics(store *s, int64_t now, uint32_t silent_after, struct buf *b) {
        unsigned counts[_DRIFT_KINDS] = {};
        struct rollout_metrics m = { .b = b, .last = -1 };
        struct sqlconn *c;
        int r;

        r = drift_walk(s, now, silent_after, drift_count_cb, counts);
        if (r < 0)
                return r;
        buf_printf(b, "# HELP ringil_drift_drones Drones that drifted, by kind.\n# TYPE ringil_drift_drones gauge\n");
        for (unsigned k = 0; k < _DRIFT_KINDS; k++)
                buf_printf(b, "ringil_drift_drones{kind=\"%s\"} %u\n", drift_kind_to_string(1u << k), counts[k]);
        /* Rollouts that can still move, and the ten most recent ones. */
        buf_printf(b, "# HELP ringil_rollout_members Rollout members by state.\n# TYPE ringil_rollout_members gauge\n");
        c = store_reader(s);
        r = store_sql(c, "SELECT r.id, r.state, r.current_group, r.n_groups, m.state, count(*) "
                         "FROM rollouts r JOIN rollout_members m ON m.rollout = r.id "
                         "WHERE r.state IN ('draft', 'scheduled', 'running', 'paused') "
                         "OR r.id IN (SELECT id FROM rollouts ORDER BY id DESC LIMIT 10) "
                         "GROUP BY r.id, m.state ORDER BY r.id",
                      NOARGS, member_metric_row, &m);
        store_reader_done(c);
        if (r < 0)
                return r;
        /* one block per metric family, as the exposition format wants */
        buf_printf(b, "# HELP ringil_rollout_info Rollouts by state (value 1).\n# TYPE ringil_rollout_info gauge\n");
        for (size_t i = 0; i < m.n; i++)
                buf_printf(b, "ringil_rollout_info{rollout=\"%" PRId64 "\",state=\"%s\"} 1\n", m.v[i].id, m.v[i].state);
        buf_printf(b, "# HELP ringil_rollout_group The group being rolled out (1-based).\n# TYPE ringil_rollout_group gauge\n");
        for (size_t i = 0; i < m.n; i++)
                buf_printf(b, "ringil_rollout_group{rollout=\"%" PRId64 "\"} %" PRId64 "\n", m.v[i].id, m.v[i].group);
        buf_printf(b, "# HELP ringil_rollout_groups Groups of the rollout.\n# TYPE ringil_rollout_groups gauge\n");
        for (size_t i = 0; i < m.n; i++)
                buf_printf(b, "ringil_rollout_groups{rollout=\"%" PRId64 "\"} %" PRId64 "\n", m.v[i].id, m.v[i].groups);
        return 0;
}
