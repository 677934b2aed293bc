/* store-sqlite.c: the store's SQLite backend: one writer, a reader per worker, WAL, versioned schema (user_version). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "macro.h"
#include "store-internal.h"

/*
 * Schema versions (PRAGMA user_version; the numbering of store-internal.h). Version 1 is the schema the
 * server created before it kept a version: such a database has user_version 0 and a drones table, and
 * is migrated from there. Each step runs in one transaction with the new user_version; a database
 * newer than this server is refused. store-pg.c has the same steps in PostgreSQL's dialect.
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
        /* 6 → 7: mirrors and the signed metadata's hash of a release (path '' when only referenced);
         * who runs the scheduler */
        "ALTER TABLE releases ADD COLUMN meta_size INTEGER;"
        "ALTER TABLE releases ADD COLUMN meta_sha256 TEXT;"
        "ALTER TABLE releases ADD COLUMN mirrors TEXT NOT NULL DEFAULT '';"
        "CREATE TABLE IF NOT EXISTS scheduler("
        " id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, since INTEGER NOT NULL, seen INTEGER NOT NULL);",
};

_Static_assert(ELEMENTSOF(migrations) == STORE_SCHEMA_VERSION, "one SQLite migration per schema version");

#define MAX_STMTS 192

struct liteconn {
        struct sqlconn base;
        sqlite3 *db;
        struct {
                const char *sql;   /* a string literal: its address is the key */
                sqlite3_stmt *q;
        } stmts[MAX_STMTS];
        size_t n_stmts;
        pthread_mutex_t lock;
};

struct literow {
        struct sql_row base;
        sqlite3_stmt *q;
};

/*
 * One writer connection behind a mutex (SQLite serializes writers anyway) and a pool of reader
 * connections: in WAL mode readers never wait for the writer, so a check-in's lookups do not queue
 * behind another drone's commit.
 */
struct litestore {
        struct store base;
        struct liteconn w;
        struct liteconn *r;
        unsigned n_readers;
        atomic_uint next_reader;
        int sync_full;              /* the writer's synchronous mode now: -1 unknown, 0 NORMAL, 1 FULL */
        struct heartbeat *pending;  /* check-ins waiting for the next group commit (under hb_lock) */
        pthread_mutex_t hb_lock;
        pthread_cond_t hb_done;
};

static const struct store_backend sqlite_backend;

static struct litestore *LS(store *s) {
        return (struct litestore *) s;
}

static struct liteconn *LC(struct sqlconn *c) {
        return (struct liteconn *) c;
}

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

/* ---- the one prepare/bind/step/reset helper ---- */

static sqlite3_stmt *stmt_for(struct liteconn *c, const char *sql, int *ret) {
        sqlite3_stmt *q = NULL;
        int rc;

        for (size_t i = 0; i < c->n_stmts; i++)
                if (c->stmts[i].sql == sql)
                        return c->stmts[i].q;
        if (c->n_stmts == MAX_STMTS) {
                *ret = ringil_fail(-ENOSPC, "more than %d statements on one connection", MAX_STMTS);
                return NULL;
        }
        rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL);
        if (rc != SQLITE_OK) {
                *ret = sql_fail(c->db, rc, sql);
                return NULL;
        }
        c->stmts[c->n_stmts].sql = sql;
        c->stmts[c->n_stmts++].q = q;
        return q;
}

/*
 * Bind args, step through every row (handing each to row, if any), then reset and clear the bindings
 * whatever happened. Strings and blobs are bound SQLITE_STATIC: they live until this returns. The caller
 * holds c->lock.
 */
static int lite_sql(struct sqlconn *conn, const char *sql, const struct sql_arg *args, row_fn row, void *userdata) {
        struct liteconn *c = LC(conn);
        int rc = SQLITE_OK, r = 0, n = 0;
        struct literow lr = { .base.be = &sqlite_backend };
        sqlite3_stmt *q = stmt_for(c, sql, &r);

        if (!q)
                return r;
        lr.q = q;
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
                        r = row(&lr.base, userdata);
                        if (r > 0)
                                r = 1;
                }
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = sql_fail(c->db, rc, sql);
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        return r < 0 ? r : n;
}

static int lite_changes(struct sqlconn *c) {
        return sqlite3_changes(LC(c)->db);
}

static bool lite_row_null(const struct sql_row *q, int col) {
        return sqlite3_column_type(((const struct literow *) q)->q, col) == SQLITE_NULL;
}

static int64_t lite_row_int(const struct sql_row *q, int col) {
        return sqlite3_column_int64(((const struct literow *) q)->q, col);
}

static const char *lite_row_text(const struct sql_row *q, int col) {
        const unsigned char *t = sqlite3_column_text(((const struct literow *) q)->q, col);
        return t ? (const char *) t : "";
}

static const void *lite_row_blob(const struct sql_row *q, int col, size_t *ret_len) {
        sqlite3_stmt *st = ((const struct literow *) q)->q;
        const void *b = sqlite3_column_blob(st, col);

        *ret_len = b ? (size_t) sqlite3_column_bytes(st, col) : 0;
        return b;
}

/* ---- readers, transactions ---- */

static struct sqlconn *lite_reader(store *s) {
        /* Each worker thread sticks to one reader: with as many readers as workers, never contended. */
        static _Thread_local unsigned mine = UINT32_MAX;
        struct litestore *ls = LS(s);
        struct liteconn *c;

        if (mine == UINT32_MAX)
                mine = atomic_fetch_add(&ls->next_reader, 1);
        c = &ls->r[mine % ls->n_readers];
        pthread_mutex_lock(&c->lock);
        return &c->base;
}

static void lite_reader_done(struct sqlconn *c) {
        pthread_mutex_unlock(&LC(c)->lock);
}

static const char Q_SYNC_FULL[] = "PRAGMA synchronous=FULL";
static const char Q_SYNC_NORMAL[] = "PRAGMA synchronous=NORMAL";
static const char Q_BEGIN[] = "BEGIN IMMEDIATE";
static const char Q_BEGIN_READ[] = "BEGIN DEFERRED";
static const char Q_COMMIT[] = "COMMIT";
static const char Q_ROLLBACK[] = "ROLLBACK";

static int lite_snapshot(store *s, struct sqlconn **ret) {
        struct sqlconn *c = lite_reader(s);
        /* a deferred transaction takes its WAL snapshot at the first read and keeps it until COMMIT */
        int r = lite_sql(c, Q_BEGIN_READ, NOARGS, NULL, NULL);

        if (r < 0) {
                lite_reader_done(c);
                return r;
        }
        *ret = c;
        return 0;
}

static void lite_snapshot_done(store *s, struct sqlconn *c) {
        (void) s;
        (void) lite_sql(c, Q_COMMIT, NOARGS, NULL, NULL);
        lite_reader_done(c);
}

/* BEGIN IMMEDIATE with the writer already locked. */
static int tx_begin_locked(struct litestore *ls, bool durable) {
        /* switched only when it changes: a stream of check-ins runs no PRAGMA */
        int r = ls->sync_full == (int) durable ? 0
                                               : lite_sql(&ls->w.base, durable ? Q_SYNC_FULL : Q_SYNC_NORMAL, NOARGS, NULL, NULL);

        ls->sync_full = r >= 0 ? (int) durable : -1;
        if (r >= 0)
                r = lite_sql(&ls->w.base, Q_BEGIN, NOARGS, NULL, NULL);
        return r;
}

/* Commit when r >= 0, else roll back (the writer stays locked); returns r or the commit's error. */
static int tx_end_locked(struct litestore *ls, int r) {
        if (r >= 0) {
                /* INVARIANT: callers acknowledge only after COMMIT returned; with synchronous=FULL the
                 * WAL is fsynced before it does. */
                int k = lite_sql(&ls->w.base, Q_COMMIT, NOARGS, NULL, NULL);
                if (k < 0) {
                        (void) lite_sql(&ls->w.base, Q_ROLLBACK, NOARGS, NULL, NULL);
                        r = k;
                }
        } else
                (void) lite_sql(&ls->w.base, Q_ROLLBACK, NOARGS, NULL, NULL);
        return r;
}

/* One writer: every transaction is in the writer order, ordered or not. */
static int lite_tx(store *s, unsigned flags, struct sqlconn **ret) {
        struct litestore *ls = LS(s);
        int r;

        pthread_mutex_lock(&ls->w.lock);
        r = tx_begin_locked(ls, flags & STORE_TX_DURABLE);
        if (r < 0) {
                pthread_mutex_unlock(&ls->w.lock);
                return r;
        }
        *ret = &ls->w.base;
        return 0;
}

static int lite_tx_end(store *s, int r) {
        struct litestore *ls = LS(s);

        r = tx_end_locked(ls, r);
        pthread_mutex_unlock(&ls->w.lock);
        return r;
}

/*
 * Group commit: a check-in queues itself; whoever holds the writer next writes every queued one in a
 * single transaction (synchronous=NORMAL: a heartbeat lost to a power cut is harmless). Under load one
 * commit, one set of WAL locks and one WAL append serve several drones; alone, it is one transaction.
 */
static int lite_checkin(store *s, struct heartbeat *me) {
        struct litestore *ls = LS(s);
        struct heartbeat *batch, *h;
        int r;

        pthread_mutex_lock(&ls->hb_lock);
        me->next = ls->pending;
        ls->pending = me;
        pthread_mutex_unlock(&ls->hb_lock);

        pthread_mutex_lock(&ls->w.lock);
        pthread_mutex_lock(&ls->hb_lock);
        batch = ls->pending;
        ls->pending = NULL;
        pthread_mutex_unlock(&ls->hb_lock);
        if (batch) {
                r = tx_begin_locked(ls, false);
                for (h = batch; h && r >= 0; h = h->next)
                        h->result = store_heartbeat_write(&ls->w.base, h);
                r = tx_end_locked(ls, r);
                pthread_mutex_lock(&ls->hb_lock);
                for (h = batch; h; h = h->next) {
                        if (r < 0 || h->result > 0)
                                h->result = r < 0 ? r : 0;
                        h->done = true;
                }
                pthread_cond_broadcast(&ls->hb_done);
                pthread_mutex_unlock(&ls->hb_lock);
        }
        pthread_mutex_unlock(&ls->w.lock);

        /* another writer may have taken me into its batch */
        pthread_mutex_lock(&ls->hb_lock);
        while (!me->done)
                pthread_cond_wait(&ls->hb_done, &ls->hb_lock);
        pthread_mutex_unlock(&ls->hb_lock);
        return me->result < 0 ? me->result : 0;
}

/* One SQLite server: it is the scheduler's only candidate. */
static int lite_leader(store *s, const char *name, bool *ret_leader) {
        (void) s;
        (void) name;
        *ret_leader = true;
        return 0;
}

/* ---- open, schema, close ---- */

static void conn_close(struct liteconn *c) {
        for (size_t i = 0; i < c->n_stmts; i++)
                sqlite3_finalize(c->stmts[i].q);
        sqlite3_close(c->db);
        pthread_mutex_destroy(&c->lock);
}

static void lite_close(store *s) {
        struct litestore *ls = LS(s);

        for (unsigned i = 0; i < ls->n_readers; i++)
                conn_close(&ls->r[i]);
        free(ls->r);
        conn_close(&ls->w);
        pthread_mutex_destroy(&ls->hb_lock);
        pthread_cond_destroy(&ls->hb_done);
        free(ls);
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

/* Bring the schema to STORE_SCHEMA_VERSION, one transaction per step. */
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
        if (version > STORE_SCHEMA_VERSION)
                return ringil_fail(-EPROTO, "database schema version %" PRId64 " is newer than this server's (%d)",
                                   version, STORE_SCHEMA_VERSION);
        for (; version < STORE_SCHEMA_VERSION; version++) {
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

static int conn_open(const char *path, bool writer, struct liteconn *c) {
        int rc, r;

        c->base.be = &sqlite_backend;
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
        if (writer)
                return migrate(c->db);
        return 0;
}

static int lite_schema_version(store *s) {
        struct litestore *ls = LS(s);
        int64_t v = 0;

        pthread_mutex_lock(&ls->w.lock);
        (void) query_int(ls->w.db, "PRAGMA user_version", &v);
        pthread_mutex_unlock(&ls->w.lock);
        return (int) v;
}

static const struct store_backend sqlite_backend = {
        .name = "sqlite",
        .dialect = STORE_SQLITE,
        .sql = lite_sql,
        .changes = lite_changes,
        .tx = lite_tx,
        .tx_end = lite_tx_end,
        .reader = lite_reader,
        .reader_done = lite_reader_done,
        .snapshot = lite_snapshot,
        .snapshot_done = lite_snapshot_done,
        .checkin = lite_checkin,
        .schema_version = lite_schema_version,
        .leader = lite_leader,
        .close = lite_close,
        .row_null = lite_row_null,
        .row_int = lite_row_int,
        .row_text = lite_row_text,
        .row_blob = lite_row_blob,
};

int store_sqlite_open(const char *path, unsigned readers, store **ret) {
        struct litestore *ls;
        int r;

        ls = calloc(1, sizeof(*ls));
        if (!ls)
                return -ENOMEM;
        ls->base.be = &sqlite_backend;
        ls->sync_full = -1;
        pthread_mutex_init(&ls->hb_lock, NULL);
        pthread_cond_init(&ls->hb_done, NULL);
        r = conn_open(path, true, &ls->w);
        if (r < 0) {
                lite_close(&ls->base);
                return r;
        }
        ls->r = calloc(MAX(readers, 1u), sizeof(*ls->r));
        if (!ls->r) {
                lite_close(&ls->base);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < MAX(readers, 1u); i++) {
                ls->n_readers = i + 1;
                r = conn_open(path, false, &ls->r[i]);
                if (r < 0) {
                        lite_close(&ls->base);
                        return r;
                }
        }
        *ret = &ls->base;
        return 0;
}
