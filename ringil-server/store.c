/* store.c: SQLite persistence for the fleet server: one writer, a reader per worker, versioned schema, WAL. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "err.h"
#include "macro.h"
#include "rollout.h"
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
        Q_ASSIGNMENT_GET,
        Q_DRONES,
        Q_DRONE,
        Q_HISTORY,
        Q_RELEASES,
        Q_STATE_COUNTS,
        Q_RELEASE_EXISTS,
        Q_DRONE_REISSUE,
        _Q_MAX,
};

static const char *const queries[_Q_MAX] = {
        [Q_SYNC_FULL] = "PRAGMA synchronous=FULL",
        [Q_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
        [Q_BEGIN] = "BEGIN IMMEDIATE",
        [Q_COMMIT] = "COMMIT",
        [Q_ROLLBACK] = "ROLLBACK",
        /* The drone's record and its assignment in one read: drone beats group beats fleet, each a
         * primary-key lookup (a check-in is then one read statement and one write statement). */
        [Q_DRONE_AUTH] = "SELECT d.status, d.grp, COALESCE(d.cert_serial, ''), r.id, r.version, r.compatible, r.size, "
                         "r.sha256, r.path, "
                         /* its latest rollout membership, windows and retry generation (store-rollout.c) */
                         "m.rollout, m.ord, m.grp, m.state, ro.state, ro.current_group, ro.rate, ro.release, "
                         "rr.version, (SELECT spec FROM windows WHERE target = 'drone:' || d.id), "
                         "(SELECT spec FROM windows WHERE target = 'group:' || d.grp), "
                         "(SELECT retry FROM drone_ctl WHERE drone = d.id) "
                         "FROM drones d LEFT JOIN releases r ON r.id = COALESCE("
                         "(SELECT release FROM assignments WHERE target = 'drone:' || d.id), "
                         "(SELECT release FROM assignments WHERE target = 'group:' || d.grp), "
                         "(SELECT release FROM assignments WHERE target = '*')) "
                         "LEFT JOIN rollout_members m ON m.drone = d.id AND m.rollout = "
                         "(SELECT max(rollout) FROM rollout_members WHERE drone = d.id) "
                         "LEFT JOIN rollouts ro ON ro.id = m.rollout LEFT JOIN releases rr ON rr.id = ro.release "
                         "WHERE d.id = ?1",
        [Q_DRONE_ADD] = "INSERT INTO drones(id, grp, status, token_hash, token_expires, created) "
                        "VALUES (?1, ?2, 0, ?3, ?4, ?5)",
        [Q_DRONE_TOKEN] = "SELECT status, token_hash, token_expires FROM drones WHERE id = ?1",
        [Q_DRONE_ENROLL] = "UPDATE drones SET status = 1, token_hash = NULL, token_expires = NULL, "
                           "cert_serial = ?2, enrolled = ?3 WHERE id = ?1",
        [Q_DRONE_REVOKE] = "UPDATE drones SET status = 2, token_hash = NULL WHERE id = ?1",
        /* a check-in that names its compliance report by digest only keeps the audit counts stored */
        [Q_CHECKIN] = "UPDATE drones SET last_seen = ?2, version = ?3, slot = ?4, boot = ?5, "
                      "audit_pass = COALESCE(?6, audit_pass), audit_fail = COALESCE(?7, audit_fail) WHERE id = ?1",
        [Q_LAST_SEQ] = "SELECT last_seq FROM drones WHERE id = ?1",
        [Q_EVENT_ADD] = "INSERT OR IGNORE INTO events(drone, seq, time, state, release, version, target, error) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [Q_DRONE_REPORT] = "UPDATE drones SET last_seq = ?2, last_seen = ?3, state = ?4, release = ?5, "
                           "version = CASE WHEN ?6 = '' THEN version ELSE ?6 END, target = ?7, error = ?8, "
                           "bytes_fetched = CASE WHEN ?9 + ?10 > 0 THEN ?9 ELSE bytes_fetched END, "
                           "bytes_reused = CASE WHEN ?9 + ?10 > 0 THEN ?10 ELSE bytes_reused END "
                           "WHERE id = ?1",
        [Q_RELEASE_ADD] = "INSERT INTO releases(version, compatible, size, sha256, path, signer, "
                          "manifest_digest, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [Q_RELEASE_GET] = "SELECT version, compatible, size, sha256, path FROM releases WHERE id = ?1",
        [Q_ASSIGN] = "INSERT INTO assignments(target, release, created) VALUES (?1, ?2, strftime('%s')) "
                     "ON CONFLICT(target) DO UPDATE SET release = excluded.release, created = excluded.created",
        /* One primary-key lookup, run for drone:ID, group:G and * in turn: an IN list with ORDER BY
         * CASE built two temporary B-trees per check-in (148 µs and 11 page faults each). */
        [Q_ASSIGNMENT_GET] = "SELECT release FROM assignments WHERE target = ?1",
        [Q_DRONES] = "SELECT id, grp, status, COALESCE(last_seen, 0), COALESCE(version, ''), COALESCE(state, ''), "
                     "COALESCE(release, 0), COALESCE(target, ''), COALESCE(error, ''), COALESCE(slot, ''), "
                     "COALESCE(boot, ''), audit_pass, audit_fail, created, COALESCE(enrolled, 0), bytes_fetched, "
                     "bytes_reused FROM drones ORDER BY id",
        [Q_DRONE] = "SELECT id, grp, status, COALESCE(last_seen, 0), COALESCE(version, ''), COALESCE(state, ''), "
                    "COALESCE(release, 0), COALESCE(target, ''), COALESCE(error, ''), COALESCE(slot, ''), "
                    "COALESCE(boot, ''), audit_pass, audit_fail, created, COALESCE(enrolled, 0), bytes_fetched, "
                    "bytes_reused FROM drones WHERE id = ?1",
        [Q_HISTORY] = "SELECT seq, time, state, release, version, target, error FROM events WHERE drone = ?1 "
                      "ORDER BY seq DESC LIMIT 100",
        [Q_RELEASES] = "SELECT r.id, r.version, r.compatible, r.size, r.sha256, r.signer, r.created, "
                       "(SELECT group_concat(target, ' ') FROM assignments a WHERE a.release = r.id), "
                       "r.built, r.expires, r.payloads, "
                       "COALESCE(d.n, 0), COALESCE(d.fetched, 0), COALESCE(d.reused, 0) "
                       "FROM releases r LEFT JOIN (SELECT release, count(*) AS n, sum(bytes_fetched) AS fetched, "
                       "sum(bytes_reused) AS reused FROM drones WHERE bytes_fetched IS NOT NULL GROUP BY release) d "
                       "ON d.release = r.id ORDER BY r.id",
        [Q_STATE_COUNTS] = "SELECT CASE status WHEN 2 THEN 'revoked' ELSE COALESCE(NULLIF(state, ''), 'unknown') END, "
                           "count(*) FROM drones GROUP BY 1",
        [Q_RELEASE_EXISTS] = "SELECT id FROM releases WHERE id = ?1",
        /* INVARIANT: a revoked drone never gets a token again (status 2 is never matched). */
        [Q_DRONE_REISSUE] = "UPDATE drones SET token_hash = ?2, token_expires = ?3 WHERE id = ?1 AND status != 2",
};


/*
 * Schema versions (PRAGMA user_version). Version 1 is the schema the server created before it kept a
 * version: such a database has user_version 0 and a drones table, and is migrated from there. Each
 * step runs in one transaction with the new user_version; a database newer than this server is refused.
 */
static const char schema_v1[] =
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

static const char *const migrations[] = {
        /* 0 → 1: the original schema */
        schema_v1,
        /* 1 → 2: when a drone enrolled (its certificate was issued), and an index for the release list,
         * whose per-release assignment lookup scanned the whole table */
        "ALTER TABLE drones ADD COLUMN enrolled INTEGER;"
        "CREATE INDEX IF NOT EXISTS assignments_release ON assignments(release);",
        /* 2 → 3: rollouts and their members and events, tags, maintenance windows, retry generations */
        store_rollout_schema,
        /* 3 → 4: the drones' compliance reports and their history */
        store_compliance_schema,
        /* 4 → 5: the operator action log, certificate expiry, release details, the dashboard's indexes */
        store_ui_schema,
        /* 5 → 6: what the drone's last install downloaded and reused from its own slots (delta updates) */
        "ALTER TABLE drones ADD COLUMN bytes_fetched INTEGER;"
        "ALTER TABLE drones ADD COLUMN bytes_reused INTEGER;",
};

#define SCHEMA_VERSION ((int) ELEMENTSOF(migrations))

struct sqlconn {
        sqlite3 *db;
        sqlite3_stmt *q[_Q_MAX];
        pthread_mutex_t lock;
        struct {
                const char *sql;             /* a string literal: its address is the key */
                sqlite3_stmt *q;
        } extra[STORE_MAX_EXTRA_STMTS];   /* statements of the store's other files, prepared on first use */
        size_t n_extra;
};

/*
 * One writer connection behind a mutex (SQLite serializes writers anyway) and a pool of reader
 * connections: in WAL mode readers never wait for the writer, so a check-in's lookups do not queue
 * behind another drone's commit.
 */
struct store {
        struct sqlconn w;
        struct sqlconn *r;
        unsigned n_readers;
        atomic_uint next_reader;
        int sync_full;              /* the writer's synchronous mode now: -1 unknown, 0 NORMAL, 1 FULL */
        struct heartbeat *pending;  /* check-ins waiting for the next group commit (under hb_lock) */
        pthread_mutex_t hb_lock;
        pthread_cond_t hb_done;
        struct store_cache *cache;  /* store-compliance.c */
};

/* One check-in waiting to be written; on the caller's stack until done. */
struct heartbeat {
        const char *id;
        const struct fleet_status *st;
        int64_t now;
        int result;
        bool done;
        struct heartbeat *next;
};

static int sql_fail(sqlite3 *db, int rc, const char *what) {
        ringil_set_detail("SQLite %s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        if (rc == SQLITE_CONSTRAINT)
                return -EEXIST;
        if (rc == SQLITE_FULL)
                return -ENOSPC;
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                return -EBUSY;
        return -EIO;
}

/* ---- the one lock/bind/step/reset helper ---- */

/* (the argument list and row callback types are in store-internal.h) */

/*
 * Bind args to statement qi of connection c, step through every row (handing each to row, if any),
 * then reset and clear the bindings whatever happened. Returns the number of rows seen, or a negative
 * errno. Strings and blobs are bound SQLITE_STATIC: they must live until this returns. The caller
 * holds c->lock.
 */
static int sql_run_stmt(struct sqlconn *c, sqlite3_stmt *q, const char *what, const struct sql_arg *args, row_fn row,
                        void *userdata) {
        int rc = SQLITE_OK, r = 0, n = 0;

        for (int i = 0; args[i].type != A_END && rc == SQLITE_OK; i++)
                switch (args[i].type) {
                case A_TEXT:
                        rc = sqlite3_bind_text(q, i + 1, args[i].p, -1, SQLITE_STATIC);
                        break;
                case A_INT:
                        rc = sqlite3_bind_int64(q, i + 1, args[i].i);
                        break;
                case A_BLOB:
                        rc = sqlite3_bind_blob(q, i + 1, args[i].p, args[i].n, SQLITE_STATIC);
                        break;
                default:
                        rc = sqlite3_bind_null(q, i + 1);
                        break;
                }
        if (rc != SQLITE_OK)
                r = sql_fail(c->db, rc, "bind");
        while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
                n++;
                if (row) {
                        r = row(q, userdata);
                        if (r > 0)
                                r = 1;
                }
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = sql_fail(c->db, rc, what);
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        return r < 0 ? r : n;
}

static int sql_run(struct sqlconn *c, int qi, const struct sql_arg *args, row_fn row, void *userdata) {
        return sql_run_stmt(c, c->q[qi], queries[qi], args, row, userdata);
}

static struct sqlconn *reader_lock(store *s) {
        /* Each worker thread sticks to one reader: with as many readers as workers, never contended. */
        static _Thread_local unsigned mine = UINT32_MAX;
        struct sqlconn *c;

        if (mine == UINT32_MAX)
                mine = atomic_fetch_add(&s->next_reader, 1);
        c = &s->r[mine % s->n_readers];
        pthread_mutex_lock(&c->lock);
        return c;
}

static void reader_unlock(struct sqlconn *c) {
        pthread_mutex_unlock(&c->lock);
}

/* One read-only statement on a reader connection. */
static int sql_read(store *s, int qi, const struct sql_arg *args, row_fn row, void *userdata) {
        struct sqlconn *c = reader_lock(s);
        int r = sql_run(c, qi, args, row, userdata);

        reader_unlock(c);
        return r;
}

/* BEGIN IMMEDIATE with the writer already locked. */
static int tx_begin_locked(store *s, bool durable) {
        /* switched only when it changes: a stream of check-ins runs no PRAGMA */
        int r = s->sync_full == (int) durable ? 0 : sql_run(&s->w, durable ? Q_SYNC_FULL : Q_SYNC_NORMAL, NOARGS, NULL, NULL);

        s->sync_full = r >= 0 ? (int) durable : -1;
        if (r >= 0)
                r = sql_run(&s->w, Q_BEGIN, NOARGS, NULL, NULL);
        return r;
}

static int tx_begin(store *s, bool durable) {
        int r;

        pthread_mutex_lock(&s->w.lock);
        r = tx_begin_locked(s, durable);
        if (r < 0)
                pthread_mutex_unlock(&s->w.lock);
        return r;
}

/* Commit when r >= 0, else roll back (the writer stays locked); returns r or the commit's error. */
static int tx_end_locked(store *s, int r) {
        if (r >= 0) {
                /* INVARIANT: callers acknowledge only after COMMIT returned; with synchronous=FULL the
                 * WAL is fsynced before it does. */
                int k = sql_run(&s->w, Q_COMMIT, NOARGS, NULL, NULL);
                if (k < 0) {
                        (void) sql_run(&s->w, Q_ROLLBACK, NOARGS, NULL, NULL);
                        r = k;
                }
        } else
                (void) sql_run(&s->w, Q_ROLLBACK, NOARGS, NULL, NULL);
        return r;
}

/* Commit or roll back, then unlock the writer. */
static int tx_end(store *s, int r) {
        r = tx_end_locked(s, r);
        pthread_mutex_unlock(&s->w.lock);
        return r;
}

/* ---- open, schema, close ---- */

static void conn_close(struct sqlconn *c) {
        for (size_t i = 0; i < c->n_extra; i++)
                sqlite3_finalize(c->extra[i].q);
        for (size_t i = 0; i < _Q_MAX; i++)
                sqlite3_finalize(c->q[i]);
        sqlite3_close(c->db);
        pthread_mutex_destroy(&c->lock);
}

void store_close(store *s) {
        if (!s)
                return;
        store_compliance_close(s);
        for (unsigned i = 0; i < s->n_readers; i++)
                conn_close(&s->r[i]);
        free(s->r);
        conn_close(&s->w);
        pthread_mutex_destroy(&s->hb_lock);
        pthread_cond_destroy(&s->hb_done);
        free(s);
}

static int int_row(sqlite3_stmt *q, void *userdata) {
        *(int64_t *) userdata = sqlite3_column_int64(q, 0);
        return 1;
}

static int exec(sqlite3 *db, const char *sql, const char *what) {
        char *err = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

        if (rc != SQLITE_OK) {
                ringil_set_detail("SQLite %s: %s", what, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return rc == SQLITE_BUSY ? -EBUSY : -EIO;
        }
        return 0;
}

static int query_int(sqlite3 *db, const char *sql, int64_t *ret) {
        sqlite3_stmt *q = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);

        if (rc == SQLITE_OK)
                rc = sqlite3_step(q);
        *ret = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
        sqlite3_finalize(q);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_fail(db, rc, sql);
}

/* Bring the schema to SCHEMA_VERSION, one transaction per step. */
static int migrate(sqlite3 *db) {
        int64_t version = 0, has_drones = 0;
        int r;

        r = query_int(db, "PRAGMA user_version", &version);
        if (r < 0)
                return r;
        if (version == 0) {
                r = query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'drones'", &has_drones);
                if (r < 0)
                        return r;
                if (has_drones)
                        version = 1;   /* the unversioned original schema */
        }
        if (version > SCHEMA_VERSION)
                return ringil_fail(-EPROTO, "database schema version %" PRId64 " is newer than this server's (%d)",
                                   version, SCHEMA_VERSION);
        for (; version < SCHEMA_VERSION; version++) {
                char setv[64];
                snprintf(setv, sizeof(setv), "PRAGMA user_version = %" PRId64, version + 1);
                r = exec(db, "BEGIN IMMEDIATE", "migration");
                if (r >= 0)
                        r = exec(db, migrations[version], "migration");
                if (r >= 0)
                        r = exec(db, setv, "migration");
                if (r >= 0)
                        r = exec(db, "COMMIT", "migration");
                if (r < 0) {
                        (void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                        return r;
                }
        }
        return 0;
}

static int conn_open(const char *path, bool writer, struct sqlconn *c) {
        int rc, r;

        pthread_mutex_init(&c->lock, NULL);
        rc = sqlite3_open_v2(path, &c->db,
                             (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) |
                                     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                             NULL);
        if (rc != SQLITE_OK)
                return sql_fail(c->db, rc, "open");
        sqlite3_busy_timeout(c->db, 5000);
        /* Limits: nothing we store needs long strings; a bug cannot make SQLite allocate wildly. */
        sqlite3_limit(c->db, SQLITE_LIMIT_LENGTH, 1 << 20);
        sqlite3_limit(c->db, SQLITE_LIMIT_SQL_LENGTH, 1 << 16);
        /* No mmap of the database (page faults and munmap TLB shootdowns in a threaded server); a page
         * cache sized once, so statements do not grow and free it on every call. */
        r = exec(c->db,
                 writer ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                          "PRAGMA trusted_schema=OFF; PRAGMA mmap_size=0; PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY;"
                          "PRAGMA wal_autocheckpoint=4000;"
                        : "PRAGMA trusted_schema=OFF; PRAGMA mmap_size=0; PRAGMA cache_size=-4096; PRAGMA temp_store=MEMORY;"
                          "PRAGMA query_only=ON;",
                 "setup");
        if (r < 0)
                return r;
        if (writer) {
                r = migrate(c->db);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < _Q_MAX; i++) {
                rc = sqlite3_prepare_v3(c->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &c->q[i], NULL);
                if (rc != SQLITE_OK)
                        return sql_fail(c->db, rc, queries[i]);
        }
        return 0;
}

int store_open(const char *path, unsigned readers, store **ret) {
        store *s;
        int r;

        if (strncmp(path, "postgresql:", 11) == 0 || strncmp(path, "postgres:", 9) == 0)
                return ringil_fail(-EPROTONOSUPPORT, "PostgreSQL is not supported by this build yet");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->sync_full = -1;
        pthread_mutex_init(&s->hb_lock, NULL);
        pthread_cond_init(&s->hb_done, NULL);
        r = conn_open(path, true, &s->w);
        if (r < 0) {
                store_close(s);
                return r;
        }
        s->r = calloc(MAX(readers, 1u), sizeof(*s->r));
        if (!s->r) {
                store_close(s);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < MAX(readers, 1u); i++) {
                s->n_readers = i + 1;
                r = conn_open(path, false, &s->r[i]);
                if (r < 0) {
                        store_close(s);
                        return r;
                }
        }
        r = store_compliance_open(s);
        if (r < 0) {
                store_close(s);
                return r;
        }
        *ret = s;
        return 0;
}

int store_schema_version(store *s) {
        int64_t v = 0;
        pthread_mutex_lock(&s->w.lock);
        (void) query_int(s->w.db, "PRAGMA user_version", &v);
        pthread_mutex_unlock(&s->w.lock);
        return (int) v;
}

/* ---- drones ---- */

static void text(sqlite3_stmt *q, int col, char *dst, size_t cap) {
        const unsigned char *t = sqlite3_column_text(q, col);
        size_t n = t ? strlen((const char *) t) : 0;

        if (n >= cap)
                n = cap - 1;
        if (n)
                memcpy(dst, t, n);
        dst[n] = '\0';
}

static int auth_row(sqlite3_stmt *q, void *userdata) {
        struct drone_auth *a = userdata;

        a->exists = true;
        a->status = (enum drone_status) sqlite3_column_int(q, 0);
        text(q, 1, a->group, sizeof(a->group));
        text(q, 2, a->cert_serial, sizeof(a->cert_serial));
        a->assigned = sqlite3_column_type(q, 3) != SQLITE_NULL;
        if (a->assigned) {
                a->release.id = sqlite3_column_int64(q, 3);
                text(q, 4, a->release.version, sizeof(a->release.version));
                text(q, 5, a->release.compatible, sizeof(a->release.compatible));
                a->release.size = (uint64_t) sqlite3_column_int64(q, 6);
                text(q, 7, a->release.sha256, sizeof(a->release.sha256));
                text(q, 8, a->release.path, sizeof(a->release.path));
        }
        if (sqlite3_column_type(q, 9) != SQLITE_NULL) {
                a->ro.rollout = sqlite3_column_int64(q, 9);
                a->ro.ord = sqlite3_column_int64(q, 10);
                a->ro.group = (uint32_t) sqlite3_column_int64(q, 11);
                text(q, 12, a->ro.member, sizeof(a->ro.member));
                text(q, 13, a->ro.state, sizeof(a->ro.state));
                a->ro.current_group = (uint32_t) sqlite3_column_int64(q, 14);
                a->ro.rate = (uint64_t) sqlite3_column_int64(q, 15);
                a->ro.release = sqlite3_column_int64(q, 16);
                text(q, 17, a->ro.version, sizeof(a->ro.version));
        }
        text(q, 18, a->ro.windows, sizeof(a->ro.windows));
        if (!a->ro.windows[0])
                text(q, 19, a->ro.windows, sizeof(a->ro.windows));   /* a drone's own windows beat its group's */
        a->ro.retry = (uint32_t) sqlite3_column_int64(q, 20);
        return 1;
}

int store_drone_auth(store *s, const char *id, struct drone_auth *ret) {
        struct drone_auth a = {};
        int r = sql_read(s, Q_DRONE_AUTH, ARGS(TEXT(id)), auth_row, &a);

        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

int store_drone_add(store *s, const char *id, const char *group, const uint8_t token_hash[32], int64_t now,
                    int64_t token_expires) {
        int r = tx_begin(s, true);

        if (r < 0)
                return r;
        r = sql_run(&s->w, Q_DRONE_ADD, ARGS(TEXT(id), TEXT(group), BLOB(token_hash, 32), INT(token_expires), INT(now)),
                    NULL, NULL);
        return tx_end(s, r);
}

struct token_row {
        int status;
        bool ok;
        const uint8_t *want;
        int64_t now;
};

static int token_row(sqlite3_stmt *q, void *userdata) {
        struct token_row *t = userdata;
        const void *h = sqlite3_column_blob(q, 1);

        /* INVARIANT: a token works once (cleared on use), before expiry, for a drone that is not revoked.
         * An active drone has a token only when an operator re-issued one (store_drone_reissue);
         * enrolling with it records the new certificate's serial, which from then on is the only
         * certificate accepted for the id. */
        t->ok = sqlite3_column_int(q, 0) != DRONE_REVOKED && h && sqlite3_column_bytes(q, 1) == 32 &&
                crypto_memcmp(h, t->want, 32) == 0 && sqlite3_column_int64(q, 2) >= t->now;
        return 1;
}

int store_drone_enroll(store *s, const char *id, const uint8_t token_hash[32], int64_t now, const char *cert_serial) {
        struct token_row t = { .want = token_hash, .now = now };
        int r = tx_begin(s, true);

        if (r < 0)
                return r;
        r = sql_run(&s->w, Q_DRONE_TOKEN, ARGS(TEXT(id)), token_row, &t);
        if (r == 0)
                r = -ENOENT;
        else if (r > 0 && !t.ok)
                r = -EACCES;
        if (r >= 0)
                r = sql_run(&s->w, Q_DRONE_ENROLL, ARGS(TEXT(id), TEXT(cert_serial), INT(now)), NULL, NULL);
        return tx_end(s, r);
}

int store_drone_reissue(store *s, const char *id, const uint8_t token_hash[32], int64_t token_expires) {
        struct drone_auth a;
        int r;

        r = store_drone_auth(s, id, &a);
        if (r < 0)
                return r;
        if (!a.exists)
                return -ENOENT;
        if (a.status == DRONE_REVOKED)
                return -RINGIL_EREFUSED;
        r = tx_begin(s, true);
        if (r < 0)
                return r;
        r = sql_run(&s->w, Q_DRONE_REISSUE, ARGS(TEXT(id), BLOB(token_hash, 32), INT(token_expires)), NULL, NULL);
        /* revoked between the lookup and here: the statement's own condition refused it */
        if (r >= 0 && sqlite3_changes(s->w.db) == 0)
                r = -RINGIL_EREFUSED;
        return tx_end(s, r);
}

int store_drone_revoke(store *s, const char *id) {
        int r = tx_begin(s, true);

        if (r < 0)
                return r;
        r = sql_run(&s->w, Q_DRONE_REVOKE, ARGS(TEXT(id)), NULL, NULL);
        if (r >= 0 && sqlite3_changes(s->w.db) == 0)
                r = -ENOENT;
        return tx_end(s, r);
}

static int heartbeat_write(store *s, const struct heartbeat *h) {
        const struct fleet_status *st = h->st;

        if (st->audit.present)
                return sql_run(&s->w, Q_CHECKIN, ARGS(TEXT(h->id), INT(h->now), TEXT(st->version), TEXT(st->slot),
                                                      TEXT(st->boot), INT(st->audit.pass), INT(st->audit.fail)),
                               NULL, NULL);
        return sql_run(&s->w, Q_CHECKIN, ARGS(TEXT(h->id), INT(h->now), TEXT(st->version), TEXT(st->slot),
                                              TEXT(st->boot), NUL, NUL),
                       NULL, NULL);
}

/*
 * Group commit: a check-in queues itself; whoever holds the writer next writes every queued one in a
 * single transaction (synchronous=NORMAL: a heartbeat lost to a power cut is harmless). Under load one
 * commit, one set of WAL locks and one WAL append serve several drones; alone, it is one transaction
 * as before. The answer is sent only after the commit that holds this check-in.
 */
int store_checkin(store *s, const char *id, const struct fleet_status *st, int64_t now) {
        struct heartbeat me = { .id = id, .st = st, .now = now }, *batch, *h;
        int r;

        pthread_mutex_lock(&s->hb_lock);
        me.next = s->pending;
        s->pending = &me;
        pthread_mutex_unlock(&s->hb_lock);

        pthread_mutex_lock(&s->w.lock);
        pthread_mutex_lock(&s->hb_lock);
        batch = s->pending;
        s->pending = NULL;
        pthread_mutex_unlock(&s->hb_lock);
        if (batch) {
                r = tx_begin_locked(s, false);
                for (h = batch; h && r >= 0; h = h->next)
                        h->result = heartbeat_write(s, h);
                r = tx_end_locked(s, r);
                pthread_mutex_lock(&s->hb_lock);
                for (h = batch; h; h = h->next) {
                        if (r < 0 || h->result > 0)
                                h->result = r < 0 ? r : 0;
                        h->done = true;
                }
                pthread_cond_broadcast(&s->hb_done);
                pthread_mutex_unlock(&s->hb_lock);
        }
        pthread_mutex_unlock(&s->w.lock);

        /* another writer may have taken me into its batch */
        pthread_mutex_lock(&s->hb_lock);
        while (!me.done)
                pthread_cond_wait(&s->hb_done, &s->hb_lock);
        pthread_mutex_unlock(&s->hb_lock);
        return me.result < 0 ? me.result : 0;
}

int store_report(store *s, const char *id, const struct fleet_status *st, int64_t now) {
        const char *state = fleet_state_to_string(st->state);
        int64_t last = 0;
        int r = tx_begin(s, true);

        if (r < 0)
                return r;
        r = sql_run(&s->w, Q_LAST_SEQ, ARGS(TEXT(id)), int_row, &last);
        if (r == 0)
                r = -ENOENT;
        else if (r > 0 && (int64_t) st->seq < last)
                r = -ESTALE;
        else if (r > 0 && (int64_t) st->seq == last)
                r = 0;   /* a retry of the report we already hold: acknowledge again */
        else if (r > 0) {
                r = sql_run(&s->w, Q_EVENT_ADD,
                            ARGS(TEXT(id), INT(st->seq), INT(now), TEXT(state), INT(st->release), TEXT(st->version),
                                 TEXT(st->target), TEXT(st->error)),
                            NULL, NULL);
                if (r >= 0)
                        r = sql_run(&s->w, Q_DRONE_REPORT,
                                    ARGS(TEXT(id), INT(st->seq), INT(now), TEXT(state), INT(st->release),
                                         TEXT(st->version), TEXT(st->target), TEXT(st->error),
                                         INT((int64_t) st->bytes_fetched), INT((int64_t) st->bytes_reused)),
                                    NULL, NULL);
                if (r >= 0)
                        r = 1;
        }
        return tx_end(s, r);
}

/* ---- releases and assignments ---- */

int store_release_add(store *s, const struct release *rel, const char *signer, const char *manifest_digest,
                      int64_t *ret_id) {
        int r = tx_begin(s, true);

        if (r < 0)
                return r;
        r = sql_run(&s->w, Q_RELEASE_ADD,
                    ARGS(TEXT(rel->version), TEXT(rel->compatible), INT(rel->size), TEXT(rel->sha256), TEXT(rel->path),
                         TEXT(signer), TEXT(manifest_digest), INT(time(NULL))),
                    NULL, NULL);
        if (r >= 0)
                *ret_id = sqlite3_last_insert_rowid(s->w.db);
        return tx_end(s, r);
}

static int release_row(sqlite3_stmt *q, void *userdata) {
        struct release *rel = userdata;

        text(q, 0, rel->version, sizeof(rel->version));
        text(q, 1, rel->compatible, sizeof(rel->compatible));
        rel->size = (uint64_t) sqlite3_column_int64(q, 2);
        text(q, 3, rel->sha256, sizeof(rel->sha256));
        text(q, 4, rel->path, sizeof(rel->path));
        return 1;
}

int store_release_get(store *s, int64_t id, struct release *ret) {
        struct release rel = { .id = id };
        int r = sql_read(s, Q_RELEASE_GET, ARGS(INT(id)), release_row, &rel);

        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        *ret = rel;
        return 0;
}

int store_assign(store *s, const char *target, int64_t release_id) {
        int r = tx_begin(s, true);

        if (r < 0)
                return r;
        r = sql_run(&s->w, Q_RELEASE_EXISTS, ARGS(INT(release_id)), NULL, NULL);
        if (r == 0)
                r = -ENOENT;
        if (r > 0)
                r = sql_run(&s->w, Q_ASSIGN, ARGS(TEXT(target), INT(release_id)), NULL, NULL);
        return tx_end(s, r);
}

int store_assignment_for(store *s, const char *id, const char *group, int64_t *ret_id) {
        char drone[8 + 256], grp[8 + 256];
        const char *targets[] = { drone, grp, "*" };
        struct sqlconn *c;
        int64_t rel = 0;
        int r = 0;

        if (snprintf(drone, sizeof(drone), "drone:%s", id) >= (int) sizeof(drone) ||
            snprintf(grp, sizeof(grp), "group:%s", group) >= (int) sizeof(grp))
                return -EINVAL;
        /* drone beats group beats fleet: the first that exists wins */
        c = reader_lock(s);
        for (size_t i = 0; i < ELEMENTSOF(targets) && r == 0; i++)
                r = sql_run(c, Q_ASSIGNMENT_GET, ARGS(TEXT(targets[i])), int_row, &rel);
        reader_unlock(c);
        if (r < 0)
                return r;
        *ret_id = rel;
        return 0;
}

/* ---- JSON views ---- */

static const char *status_name(int st) {
        return st == DRONE_REVOKED ? "revoked" : st == DRONE_ACTIVE ? "active" : "enrolled";
}

static json_t *drone_row(sqlite3_stmt *q) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I}",
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
                              "boot", (const char *) sqlite3_column_text(q, 10),
                              "created", (json_int_t) sqlite3_column_int64(q, 13),
                              "enrolled", (json_int_t) sqlite3_column_int64(q, 14));
        if (j && sqlite3_column_type(q, 11) != SQLITE_NULL)
                json_object_set_new(j, "audit", json_pack("{s:I, s:I}", "pass",
                                                          (json_int_t) sqlite3_column_int64(q, 11), "fail",
                                                          (json_int_t) sqlite3_column_int64(q, 12)));
        if (j && sqlite3_column_type(q, 15) != SQLITE_NULL)
                json_object_set_new(j, "delta", json_pack("{s:I, s:I}", "fetched", (json_int_t) sqlite3_column_int64(q, 15),
                                                          "reused", (json_int_t) sqlite3_column_int64(q, 16)));
        return j;
}

static int drones_row(sqlite3_stmt *q, void *userdata) {
        json_t *j = drone_row(q);
        return j && json_array_append_new(userdata, j) == 0 ? 0 : -ENOMEM;
}

int store_drones_json(store *s, json_t **ret) {
        json_t *a = json_array();
        int r;

        if (!a)
                return -ENOMEM;
        r = sql_read(s, Q_DRONES, NOARGS, drones_row, a);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

static int one_drone_row(sqlite3_stmt *q, void *userdata) {
        *(json_t **) userdata = drone_row(q);
        return *(json_t **) userdata ? 1 : -ENOMEM;
}

static const char *col_text(sqlite3_stmt *q, int col) {
        const unsigned char *t = sqlite3_column_text(q, col);
        return t ? (const char *) t : "";
}

static int history_row(sqlite3_stmt *q, void *userdata) {
        json_t *e = json_pack("{s:I, s:I, s:s, s:I, s:s, s:s, s:s}", "seq", (json_int_t) sqlite3_column_int64(q, 0),
                              "time", (json_int_t) sqlite3_column_int64(q, 1), "state", col_text(q, 2), "release",
                              (json_int_t) sqlite3_column_int64(q, 3), "version", col_text(q, 4), "target",
                              col_text(q, 5), "error", col_text(q, 6));
        return e && json_array_append_new(userdata, e) == 0 ? 0 : -ENOMEM;
}

int store_drone_json(store *s, const char *id, json_t **ret) {
        struct sqlconn *c = reader_lock(s);
        json_t *d = NULL, *h = NULL;
        int r;

        /* one reader, one lock: the drone and its history come from the same snapshot of commits */
        r = sql_run(c, Q_DRONE, ARGS(TEXT(id)), one_drone_row, &d);
        if (r > 0) {
                h = json_array();
                r = h ? sql_run(c, Q_HISTORY, ARGS(TEXT(id)), history_row, h) : -ENOMEM;
        } else if (r == 0)
                r = -ENOENT;
        reader_unlock(c);
        if (r < 0) {
                json_decref(d);
                json_decref(h);
                return r;
        }
        json_object_set_new(d, "history", h);
        *ret = d;
        return 0;
}

static int releases_row(sqlite3_stmt *q, void *userdata) {
        json_t *e = json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:s}", "id", (json_int_t) sqlite3_column_int64(q, 0),
                              "version", col_text(q, 1), "compatible", col_text(q, 2), "size",
                              (json_int_t) sqlite3_column_int64(q, 3), "sha256", col_text(q, 4), "signer",
                              col_text(q, 5), "created", (json_int_t) sqlite3_column_int64(q, 6), "assigned",
                              col_text(q, 7));
        /* what the signed manifest said, recorded at upload (store_release_details); a release uploaded
         * before it was recorded has none, and a row that does not hold a JSON array is left out */
        if (e && sqlite3_column_type(q, 10) != SQLITE_NULL) {
                json_error_t err;
                json_t *p = json_loads(col_text(q, 10), JSON_REJECT_DUPLICATES, &err);
                if (json_is_array(p) && json_object_set_new(e, "payloads", p) == 0) {
                        json_object_set_new(e, "built", json_integer(sqlite3_column_int64(q, 8)));
                        json_object_set_new(e, "expires", json_integer(sqlite3_column_int64(q, 9)));
                } else
                        json_decref(p);
        }
        /* What the drones now on this release downloaded and found on their own disks for it. */
        if (e)
                json_object_set_new(e, "delta", json_pack("{s:I, s:I, s:I}", "drones", (json_int_t) sqlite3_column_int64(q, 11),
                                                          "fetched", (json_int_t) sqlite3_column_int64(q, 12), "reused",
                                                          (json_int_t) sqlite3_column_int64(q, 13)));
        return e && json_array_append_new(userdata, e) == 0 ? 0 : -ENOMEM;
}

int store_releases_json(store *s, json_t **ret) {
        json_t *a = json_array();
        int r;

        if (!a)
                return -ENOMEM;
        r = sql_read(s, Q_RELEASES, NOARGS, releases_row, a);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

static int count_row(sqlite3_stmt *q, void *userdata) {
        return json_object_set_new(userdata, col_text(q, 0), json_integer(sqlite3_column_int64(q, 1))) == 0 ? 0 : -ENOMEM;
}

int store_state_counts(store *s, json_t **ret) {
        json_t *o = json_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = sql_read(s, Q_STATE_COUNTS, NOARGS, count_row, o);
        if (r < 0) {
                json_decref(o);
                return r;
        }
        *ret = o;
        return 0;
}

/* ---- for the store's other files (store-internal.h) ---- */

int store_sql(struct sqlconn *c, const char *sql, const struct sql_arg *args, row_fn row, void *userdata) {
        sqlite3_stmt *q = NULL;
        int rc;

        for (size_t i = 0; i < c->n_extra && !q; i++)
                if (c->extra[i].sql == sql)
                        q = c->extra[i].q;
        if (!q) {
                if (c->n_extra == STORE_MAX_EXTRA_STMTS)
                        return ringil_fail(-ENOSPC, "more than %d statements on one connection", STORE_MAX_EXTRA_STMTS);
                rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL);
                if (rc != SQLITE_OK)
                        return sql_fail(c->db, rc, sql);
                c->extra[c->n_extra].sql = sql;
                c->extra[c->n_extra++].q = q;
        }
        return sql_run_stmt(c, q, sql, args, row, userdata);
}

int64_t store_sql_last_rowid(struct sqlconn *c) {
        return sqlite3_last_insert_rowid(c->db);
}

int store_sql_changes(struct sqlconn *c) {
        return sqlite3_changes(c->db);
}

int store_tx(store *s, bool durable, struct sqlconn **ret) {
        int r = tx_begin(s, durable);

        if (r >= 0)
                *ret = &s->w;
        return r;
}

int store_tx_end(store *s, int r) {
        return tx_end(s, r);
}

struct sqlconn *store_reader(store *s) {
        return reader_lock(s);
}

void store_reader_done(struct sqlconn *c) {
        reader_unlock(c);
}

void store_col_text(sqlite3_stmt *q, int col, char *dst, size_t cap) {
        text(q, col, dst, cap);
}

const char *store_col(sqlite3_stmt *q, int col) {
        return col_text(q, col);
}

struct store_cache **store_cache_slot(store *s) {
        return &s->cache;
}
