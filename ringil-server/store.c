/* store.c: SQLite persistence for the fleet server; prepared statements only, WAL, durable reports. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "macro.h"
#include "store-internal.h"
#include "store.h"

enum {
        Q_SYNC_FULL,
        Q_SYNC_NORMAL,
        Q_BEGIN,
        Q_COMMIT,
        Q_ROLLBACK,
        Q_DRONE_AUTH,
        Q_DRONE_ADD,
        Q_DRONE_TOKEN,
        Q_DRONE_ENROLL,
        Q_DRONE_REVOKE,
        Q_CHECKIN,
        Q_LAST_SEQ,
        Q_EVENT_ADD,
        Q_DRONE_REPORT,
        Q_RELEASE_ADD,
        Q_RELEASE_GET,
        Q_ASSIGN,
        Q_ASSIGNMENT_FOR,
        Q_DRONES,
        Q_DRONE,
        Q_HISTORY,
        Q_RELEASES,
        Q_STATE_COUNTS,
        Q_RELEASE_EXISTS,
        _Q_MAX,
};

static const char *const queries[_Q_MAX] = {
        [Q_SYNC_FULL] = "PRAGMA synchronous=FULL",
        [Q_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
        [Q_BEGIN] = "BEGIN IMMEDIATE",
        [Q_COMMIT] = "COMMIT",
        [Q_ROLLBACK] = "ROLLBACK",
        [Q_DRONE_AUTH] = "SELECT status, grp, COALESCE(cert_serial, '') FROM drones WHERE id = ?1",
        [Q_DRONE_ADD] = "INSERT INTO drones(id, grp, status, token_hash, token_expires, created) "
                        "VALUES (?1, ?2, 0, ?3, ?4, ?5)",
        [Q_DRONE_TOKEN] = "SELECT status, token_hash, token_expires FROM drones WHERE id = ?1",
        [Q_DRONE_ENROLL] = "UPDATE drones SET status = 1, token_hash = NULL, token_expires = NULL, "
                           "cert_serial = ?2 WHERE id = ?1",
        [Q_DRONE_REVOKE] = "UPDATE drones SET status = 2, token_hash = NULL WHERE id = ?1",
        [Q_CHECKIN] = "UPDATE drones SET last_seen = ?2, version = ?3, slot = ?4, boot = ?5, "
                      "audit_pass = ?6, audit_fail = ?7 WHERE id = ?1",
        [Q_LAST_SEQ] = "SELECT last_seq FROM drones WHERE id = ?1",
        [Q_EVENT_ADD] = "INSERT OR IGNORE INTO events(drone, seq, time, state, release, version, target, error) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [Q_DRONE_REPORT] = "UPDATE drones SET last_seq = ?2, last_seen = ?3, state = ?4, release = ?5, "
                           "version = CASE WHEN ?6 = '' THEN version ELSE ?6 END, target = ?7, error = ?8 "
                           "WHERE id = ?1",
        [Q_RELEASE_ADD] = "INSERT INTO releases(version, compatible, size, sha256, path, signer, "
                          "manifest_digest, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [Q_RELEASE_GET] = "SELECT version, compatible, size, sha256, path FROM releases WHERE id = ?1",
        [Q_ASSIGN] = "INSERT INTO assignments(target, release, created) VALUES (?1, ?2, strftime('%s')) "
                     "ON CONFLICT(target) DO UPDATE SET release = excluded.release, created = excluded.created",
        [Q_ASSIGNMENT_FOR] = "SELECT release FROM assignments WHERE target IN ('drone:' || ?1, 'group:' || ?2, '*') "
                             "ORDER BY CASE WHEN target = '*' THEN 2 WHEN target LIKE 'group:%' THEN 1 ELSE 0 END "
                             "LIMIT 1",
        [Q_DRONES] = "SELECT id, grp, status, COALESCE(last_seen, 0), COALESCE(version, ''), COALESCE(state, ''), "
                     "COALESCE(release, 0), COALESCE(target, ''), COALESCE(error, ''), COALESCE(slot, ''), "
                     "COALESCE(boot, ''), audit_pass, audit_fail FROM drones ORDER BY id",
        [Q_DRONE] = "SELECT id, grp, status, COALESCE(last_seen, 0), COALESCE(version, ''), COALESCE(state, ''), "
                    "COALESCE(release, 0), COALESCE(target, ''), COALESCE(error, ''), COALESCE(slot, ''), "
                    "COALESCE(boot, ''), audit_pass, audit_fail FROM drones WHERE id = ?1",
        [Q_HISTORY] = "SELECT seq, time, state, release, version, target, error FROM events WHERE drone = ?1 "
                      "ORDER BY seq DESC LIMIT 100",
        [Q_RELEASES] = "SELECT r.id, r.version, r.compatible, r.size, r.sha256, r.signer, r.created, "
                       "(SELECT group_concat(target, ' ') FROM assignments a WHERE a.release = r.id) "
                       "FROM releases r ORDER BY r.id",
        [Q_STATE_COUNTS] = "SELECT CASE status WHEN 2 THEN 'revoked' ELSE COALESCE(NULLIF(state, ''), 'unknown') END, "
                           "count(*) FROM drones GROUP BY 1",
        [Q_RELEASE_EXISTS] = "SELECT id FROM releases WHERE id = ?1",
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS drones("
        " id TEXT PRIMARY KEY, grp TEXT NOT NULL, status INTEGER NOT NULL,"
        " token_hash BLOB, token_expires INTEGER, cert_serial TEXT, created INTEGER NOT NULL,"
        " last_seen INTEGER, version TEXT, slot TEXT, boot TEXT, state TEXT, release INTEGER,"
        " target TEXT, error TEXT, audit_pass INTEGER, audit_fail INTEGER,"
        " last_seq INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS releases("
        " id INTEGER PRIMARY KEY, version TEXT NOT NULL, compatible TEXT NOT NULL, size INTEGER NOT NULL,"
        " sha256 TEXT NOT NULL UNIQUE, path TEXT NOT NULL, signer TEXT, manifest_digest TEXT,"
        " created INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS assignments("
        " target TEXT PRIMARY KEY, release INTEGER NOT NULL REFERENCES releases(id), created INTEGER);"
        "CREATE TABLE IF NOT EXISTS events("
        " id INTEGER PRIMARY KEY, drone TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL,"
        " state TEXT NOT NULL, release INTEGER, version TEXT, target TEXT, error TEXT,"
        " UNIQUE(drone, seq));";

struct store {
        sqlite3 *db;
        sqlite3_stmt *q[_Q_MAX];
        pthread_mutex_t lock;
        struct store_cache *cache;       /* caches of the store's other files (store-compliance.c) */
        struct {
                const char *sql;             /* a string literal: its address is the key */
                sqlite3_stmt *q;
        } extra[STORE_MAX_EXTRA_STMTS];   /* statements of the store's other files, prepared on first use */
        size_t n_extra;
};

static int sql_fail(store *s, int rc, const char *what) {
        ringil_set_detail("SQLite %s: %s", what, s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        if (rc == SQLITE_CONSTRAINT)
                return -EEXIST;
        if (rc == SQLITE_FULL)
                return -ENOSPC;
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                return -EBUSY;
        return -EIO;
}

void store_close(store *s) {
        if (!s)
                return;
        store_rollout_close(s);
        for (size_t i = 0; i < s->n_extra; i++)
                sqlite3_finalize(s->extra[i].q);
        for (size_t i = 0; i < _Q_MAX; i++)
                sqlite3_finalize(s->q[i]);
        sqlite3_close(s->db);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int store_open(const char *path, store **ret) {
        store *s = calloc(1, sizeof(*s));
        char *err = NULL;
        int rc, r0;

        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                     SQLITE_OPEN_NOFOLLOW,
                             NULL);
        if (rc != SQLITE_OK) {
                int r = sql_fail(s, rc, "open");
                store_close(s);
                return r;
        }
        sqlite3_busy_timeout(s->db, 5000);
        /* Limits: nothing we store needs long strings; a bug cannot make SQLite allocate wildly. */
        sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH, 1 << 20);
        sqlite3_limit(s->db, SQLITE_LIMIT_SQL_LENGTH, 1 << 16);
        rc = sqlite3_exec(s->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                          "PRAGMA trusted_schema=OFF;",
                          NULL, NULL, &err);
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(s->db, schema, NULL, NULL, &err);
        sqlite3_free(err);
        if (rc != SQLITE_OK) {
                int r = sql_fail(s, rc, "schema");
                store_close(s);
                return r;
        }
        for (size_t i = 0; i < _Q_MAX; i++) {
                rc = sqlite3_prepare_v3(s->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL);
                if (rc != SQLITE_OK) {
                        int r = sql_fail(s, rc, queries[i]);
                        store_close(s);
                        return r;
                }
        }
        r0 = store_rollout_open(s);
        if (r0 < 0) {
                store_close(s);
                return r0;
        }
        *ret = s;
        return 0;
}

/* Run a statement that returns no rows (or ignore them); resets it. */
static int step_done(store *s, sqlite3_stmt *q) {
        int rc = sqlite3_step(q);

        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return sql_fail(s, rc, "step");
        return 0;
}

static int begin(store *s, bool durable) {
        int r = step_done(s, s->q[durable ? Q_SYNC_FULL : Q_SYNC_NORMAL]);

        if (r < 0)
                return r;
        return step_done(s, s->q[Q_BEGIN]);
}

static int end(store *s, int r) {
        if (r < 0) {
                (void) step_done(s, s->q[Q_ROLLBACK]);
                return r;
        }
        /* INVARIANT: callers acknowledge only after COMMIT returned; with synchronous=FULL the WAL is
         * fsynced before it does. */
        r = step_done(s, s->q[Q_COMMIT]);
        if (r < 0)
                (void) step_done(s, s->q[Q_ROLLBACK]);
        return r;
}

static void text(sqlite3_stmt *q, int col, char *dst, size_t cap) {
        const unsigned char *t = sqlite3_column_text(q, col);
        size_t n = t ? strlen((const char *) t) : 0;

        if (n >= cap)
                n = cap - 1;
        if (n)
                memcpy(dst, t, n);
        dst[n] = '\0';
}

int store_drone_auth(store *s, const char *id, struct drone_auth *ret) {
        sqlite3_stmt *q = s->q[Q_DRONE_AUTH];
        struct drone_auth a = {};
        int rc;

        pthread_mutex_lock(&s->lock);
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                a.exists = true;
                a.status = (enum drone_status) sqlite3_column_int(q, 0);
                text(q, 1, a.group, sizeof(a.group));
                text(q, 2, a.cert_serial, sizeof(a.cert_serial));
        }
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        pthread_mutex_unlock(&s->lock);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return sql_fail(s, rc, "drone lookup");
        *ret = a;
        return 0;
}

int store_drone_add(store *s, const char *id, const char *group, const uint8_t token_hash[32],
                    int64_t token_expires) {
        sqlite3_stmt *q = s->q[Q_DRONE_ADD];
        int r;

        pthread_mutex_lock(&s->lock);
        r = begin(s, true);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, group, -1, SQLITE_STATIC);
                sqlite3_bind_blob(q, 3, token_hash, 32, SQLITE_STATIC);
                sqlite3_bind_int64(q, 4, token_expires);
                sqlite3_bind_int64(q, 5, token_expires - 86400);
                r = step_done(s, q);
                r = end(s, r);
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_drone_enroll(store *s, const char *id, const uint8_t token_hash[32], int64_t now,
                       const char *cert_serial) {
        sqlite3_stmt *q = s->q[Q_DRONE_TOKEN];
        int r, rc;

        pthread_mutex_lock(&s->lock);
        r = begin(s, true);
        if (r < 0)
                goto out;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc != SQLITE_ROW) {
                r = rc == SQLITE_DONE ? -ENOENT : sql_fail(s, rc, "token lookup");
        } else {
                const void *h = sqlite3_column_blob(q, 1);
                /* INVARIANT: a token works once (cleared below), before expiry, for a live drone. */
                if (sqlite3_column_int(q, 0) != DRONE_ENROLLED || !h || sqlite3_column_bytes(q, 1) != 32 ||
                    crypto_memcmp(h, token_hash, 32) != 0 || sqlite3_column_int64(q, 2) < now)
                        r = -EACCES;
        }
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (r >= 0) {
                q = s->q[Q_DRONE_ENROLL];
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, cert_serial, -1, SQLITE_STATIC);
                r = step_done(s, q);
        }
        r = end(s, r);
out:
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_drone_revoke(store *s, const char *id) {
        sqlite3_stmt *q = s->q[Q_DRONE_REVOKE];
        int r;

        pthread_mutex_lock(&s->lock);
        r = begin(s, true);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                r = step_done(s, q);
                if (r >= 0 && sqlite3_changes(s->db) == 0)
                        r = -ENOENT;
                r = end(s, r);
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_checkin(store *s, const char *id, const struct fleet_status *st, int64_t now) {
        sqlite3_stmt *q = s->q[Q_CHECKIN];
        int r;

        pthread_mutex_lock(&s->lock);
        r = begin(s, false);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 2, now);
                sqlite3_bind_text(q, 3, st->version, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 4, st->slot, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 5, st->boot, -1, SQLITE_STATIC);
                if (st->audit.present) {
                        sqlite3_bind_int64(q, 6, st->audit.pass);
                        sqlite3_bind_int64(q, 7, st->audit.fail);
                }
                r = step_done(s, q);
                r = end(s, r);
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_report(store *s, const char *id, const struct fleet_status *st, int64_t now) {
        sqlite3_stmt *q = s->q[Q_LAST_SEQ];
        const char *state = fleet_state_to_string(st->state);
        int64_t last = 0;
        int r, rc;

        pthread_mutex_lock(&s->lock);
        r = begin(s, true);
        if (r < 0)
                goto out;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
                last = sqlite3_column_int64(q, 0);
        else
                r = rc == SQLITE_DONE ? -ENOENT : sql_fail(s, rc, "last seq");
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (r >= 0 && (int64_t) st->seq < last)
                r = -ESTALE;
        else if (r >= 0 && (int64_t) st->seq == last)
                r = 0;   /* a retry of the report we already hold: acknowledge again */
        else if (r >= 0) {
                q = s->q[Q_EVENT_ADD];
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 2, (int64_t) st->seq);
                sqlite3_bind_int64(q, 3, now);
                sqlite3_bind_text(q, 4, state, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 5, st->release);
                sqlite3_bind_text(q, 6, st->version, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 7, st->target, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 8, st->error, -1, SQLITE_STATIC);
                r = step_done(s, q);
                if (r >= 0) {
                        q = s->q[Q_DRONE_REPORT];
                        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 2, (int64_t) st->seq);
                        sqlite3_bind_int64(q, 3, now);
                        sqlite3_bind_text(q, 4, state, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(q, 5, st->release);
                        sqlite3_bind_text(q, 6, st->version, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 7, st->target, -1, SQLITE_STATIC);
                        sqlite3_bind_text(q, 8, st->error, -1, SQLITE_STATIC);
                        r = step_done(s, q);
                }
                if (r >= 0)
                        r = 1;
        }
        if (r >= 0) {
                int k = end(s, 0);
                r = k < 0 ? k : r;
        } else
                (void) end(s, r);
out:
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_release_add(store *s, const struct release *rel, const char *signer, const char *manifest_digest,
                      int64_t *ret_id) {
        sqlite3_stmt *q = s->q[Q_RELEASE_ADD];
        int r;

        pthread_mutex_lock(&s->lock);
        r = begin(s, true);
        if (r >= 0) {
                sqlite3_bind_text(q, 1, rel->version, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, rel->compatible, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 3, (int64_t) rel->size);
                sqlite3_bind_text(q, 4, rel->sha256, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 5, rel->path, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 6, signer, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 7, manifest_digest, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 8, (int64_t) time(NULL));
                r = step_done(s, q);
                if (r >= 0)
                        *ret_id = sqlite3_last_insert_rowid(s->db);
                r = end(s, r);
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_release_get(store *s, int64_t id, struct release *ret) {
        sqlite3_stmt *q = s->q[Q_RELEASE_GET];
        struct release rel = { .id = id };
        int rc;

        pthread_mutex_lock(&s->lock);
        sqlite3_bind_int64(q, 1, id);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                text(q, 0, rel.version, sizeof(rel.version));
                text(q, 1, rel.compatible, sizeof(rel.compatible));
                rel.size = (uint64_t) sqlite3_column_int64(q, 2);
                text(q, 3, rel.sha256, sizeof(rel.sha256));
                text(q, 4, rel.path, sizeof(rel.path));
        }
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        pthread_mutex_unlock(&s->lock);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_fail(s, rc, "release lookup");
        *ret = rel;
        return 0;
}

int store_assign(store *s, const char *target, int64_t release_id) {
        sqlite3_stmt *q = s->q[Q_RELEASE_EXISTS];
        int r, rc;

        pthread_mutex_lock(&s->lock);
        r = begin(s, true);
        if (r < 0)
                goto out;
        sqlite3_bind_int64(q, 1, release_id);
        rc = sqlite3_step(q);
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (rc != SQLITE_ROW)
                r = rc == SQLITE_DONE ? -ENOENT : sql_fail(s, rc, "release lookup");
        if (r >= 0) {
                q = s->q[Q_ASSIGN];
                sqlite3_bind_text(q, 1, target, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 2, release_id);
                r = step_done(s, q);
        }
        r = end(s, r);
out:
        pthread_mutex_unlock(&s->lock);
        return r;
}

int store_assignment_for(store *s, const char *id, const char *group, int64_t *ret_id) {
        sqlite3_stmt *q = s->q[Q_ASSIGNMENT_FOR];
        int64_t rel = 0;
        int rc;

        pthread_mutex_lock(&s->lock);
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, group, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
                rel = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        pthread_mutex_unlock(&s->lock);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return sql_fail(s, rc, "assignment lookup");
        *ret_id = rel;
        return 0;
}

static const char *status_name(int st) {
        return st == DRONE_REVOKED ? "revoked" : st == DRONE_ACTIVE ? "active" : "enrolled";
}

static json_t *drone_row(sqlite3_stmt *q) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:s}",
                              "id", (const char *) sqlite3_column_text(q, 0),
                              "group", (const char *) sqlite3_column_text(q, 1),
                              "status", status_name(sqlite3_column_int(q, 2)),
                              "last_seen", (json_int_t) sqlite3_column_int64(q, 3),
                              "version", (const char *) sqlite3_column_text(q, 4),
                              "state", (const char *) sqlite3_column_text(q, 5),
                              "release", (json_int_t) sqlite3_column_int64(q, 6),
                              "target", (const char *) sqlite3_column_text(q, 7),
                              "error", (const char *) sqlite3_column_text(q, 8),
                              "slot", (const char *) sqlite3_column_text(q, 9),
                              "boot", (const char *) sqlite3_column_text(q, 10));
        if (j && sqlite3_column_type(q, 11) != SQLITE_NULL)
                json_object_set_new(j, "audit", json_pack("{s:I, s:I}", "pass",
                                                          (json_int_t) sqlite3_column_int64(q, 11), "fail",
                                                          (json_int_t) sqlite3_column_int64(q, 12)));
        return j;
}

int store_drones_json(store *s, json_t **ret) {
        sqlite3_stmt *q = s->q[Q_DRONES];
        json_t *a = json_array();
        int rc;

        if (!a)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                json_array_append_new(a, drone_row(q));
        sqlite3_reset(q);
        pthread_mutex_unlock(&s->lock);
        if (rc != SQLITE_DONE) {
                json_decref(a);
                return sql_fail(s, rc, "drones");
        }
        *ret = a;
        return 0;
}

int store_drone_json(store *s, const char *id, json_t **ret) {
        sqlite3_stmt *q = s->q[Q_DRONE];
        json_t *d = NULL, *h;
        int rc;

        pthread_mutex_lock(&s->lock);
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
                d = drone_row(q);
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (d) {
                h = json_array();
                q = s->q[Q_HISTORY];
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                        json_array_append_new(
                                h, json_pack("{s:I, s:I, s:s, s:I, s:s, s:s, s:s}",
                                             "seq", (json_int_t) sqlite3_column_int64(q, 0),
                                             "time", (json_int_t) sqlite3_column_int64(q, 1),
                                             "state", (const char *) sqlite3_column_text(q, 2),
                                             "release", (json_int_t) sqlite3_column_int64(q, 3),
                                             "version", sqlite3_column_text(q, 4) ? (const char *) sqlite3_column_text(q, 4) : "",
                                             "target", sqlite3_column_text(q, 5) ? (const char *) sqlite3_column_text(q, 5) : "",
                                             "error", sqlite3_column_text(q, 6) ? (const char *) sqlite3_column_text(q, 6) : ""));
                sqlite3_reset(q);
                sqlite3_clear_bindings(q);
                json_object_set_new(d, "history", h);
        }
        pthread_mutex_unlock(&s->lock);
        if (!d)
                return rc == SQLITE_DONE || rc == SQLITE_ROW ? -ENOENT : sql_fail(s, rc, "drone");
        *ret = d;
        return 0;
}

int store_releases_json(store *s, json_t **ret) {
        sqlite3_stmt *q = s->q[Q_RELEASES];
        json_t *a = json_array();
        int rc;

        if (!a)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                const unsigned char *assigned = sqlite3_column_text(q, 7);
                json_array_append_new(
                        a, json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:s}",
                                     "id", (json_int_t) sqlite3_column_int64(q, 0),
                                     "version", (const char *) sqlite3_column_text(q, 1),
                                     "compatible", (const char *) sqlite3_column_text(q, 2),
                                     "size", (json_int_t) sqlite3_column_int64(q, 3),
                                     "sha256", (const char *) sqlite3_column_text(q, 4),
                                     "signer", sqlite3_column_text(q, 5) ? (const char *) sqlite3_column_text(q, 5) : "",
                                     "created", (json_int_t) sqlite3_column_int64(q, 6),
                                     "assigned", assigned ? (const char *) assigned : ""));
        }
        sqlite3_reset(q);
        pthread_mutex_unlock(&s->lock);
        if (rc != SQLITE_DONE) {
                json_decref(a);
                return sql_fail(s, rc, "releases");
        }
        *ret = a;
        return 0;
}

int store_state_counts(store *s, json_t **ret) {
        sqlite3_stmt *q = s->q[Q_STATE_COUNTS];
        json_t *o = json_object();
        int rc;

        if (!o)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
                json_object_set_new(o, (const char *) sqlite3_column_text(q, 0),
                                    json_integer(sqlite3_column_int64(q, 1)));
        sqlite3_reset(q);
        pthread_mutex_unlock(&s->lock);
        if (rc != SQLITE_DONE) {
                json_decref(o);
                return sql_fail(s, rc, "state counts");
        }
        *ret = o;
        return 0;
}

/* ---- for the store's other files (store-internal.h) ---- */

sqlite3 *store_sqlite(store *s) {
        return s->db;
}

void store_lock(store *s) {
        pthread_mutex_lock(&s->lock);
}

void store_unlock(store *s) {
        pthread_mutex_unlock(&s->lock);
}

struct store_cache **store_cache_slot(store *s) {
        return &s->cache;
}

sqlite3_stmt *store_stmt(store *s, const char *sql) {
        int rc;

        for (size_t i = 0; i < s->n_extra; i++)
                if (s->extra[i].sql == sql)
                        return s->extra[i].q;
        if (s->n_extra == STORE_MAX_EXTRA_STMTS) {
                ringil_set_detail("more than %d extra statements", STORE_MAX_EXTRA_STMTS);
                return NULL;
        }
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->extra[s->n_extra].q, NULL);
        if (rc != SQLITE_OK) {
                (void) sql_fail(s, rc, sql);
                return NULL;
        }
        s->extra[s->n_extra].sql = sql;
        return s->extra[s->n_extra++].q;
}

int store_step(store *s, sqlite3_stmt *q) {
        return step_done(s, q);
}

int store_begin(store *s, bool durable) {
        return begin(s, durable);
}

int store_end(store *s, int r) {
        return end(s, r);
}

void store_text(sqlite3_stmt *q, int col, char *dst, size_t cap) {
        text(q, col, dst, cap);
}

int store_sql_fail(store *s, int rc, const char *what) {
        return sql_fail(s, rc, what);
}
