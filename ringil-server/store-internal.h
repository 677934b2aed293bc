/* store-internal.h: what the store's files share: the backend interface, connections, transactions, the one statement helper. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * The store is written once (store.c and the other store-*.c files) against this interface and runs on
 * two backends: SQLite (store-sqlite.c) and PostgreSQL (store-pg.c). The store's code sees connections,
 * transactions, statements and rows, never a backend type. SQL text is shared where the dialects agree
 * (most of it: upserts, RETURNING, COALESCE, `||`), and picked per dialect with SQL_DIALECT() where they
 * do not. Parameters are written ?1, ?2 … in every statement; the PostgreSQL backend rewrites them to
 * $1, $2 … when it prepares the statement.
 *
 * Concurrency contract, the same on both backends:
 * - store_tx() transactions are serialized fleet-wide, as SQLite's one writer serializes them: on
 *   PostgreSQL every store_tx() takes one transaction-scoped advisory lock first (released at COMMIT
 *   or ROLLBACK), so code that reads and then writes in a transaction sees no concurrent writer, on
 *   this replica or another. A transaction commits durably when `durable` (SQLite synchronous=FULL,
 *   PostgreSQL synchronous_commit=on) and is acknowledged only after COMMIT returned.
 * - store_tx_rows() is a durable transaction without that order, for writes whose every decision is
 *   made by a statement on the rows it changes (UPDATE … WHERE …: PostgreSQL locks the row and checks
 *   the condition again after a concurrent commit). Reports use it: drones' reports do not wait for
 *   each other, and PostgreSQL flushes their commits together.
 * - Heartbeats (store_checkin) are not durable and not serialized: each touches its own drone's row.
 * - A reader sees committed data only; on SQLite it is a separate read-only connection, on
 *   PostgreSQL the calling thread's connection.
 */

/* ---- statement arguments ---- */

enum { A_END, A_TEXT, A_INT, A_BLOB, A_NULL };

struct sql_arg {
        int type;
        const void *p;
        int64_t i;
        int n;
};

#define TEXT(s) { .type = A_TEXT, .p = (s) }
#define INT(v) { .type = A_INT, .i = (int64_t) (v) }
#define BLOB(b, len) { .type = A_BLOB, .p = (b), .n = (len) }
#define NUL { .type = A_NULL }
#define ARGS(...) ((const struct sql_arg[]) { __VA_ARGS__, { .type = A_END } })
#define NOARGS ((const struct sql_arg[]) { { .type = A_END } })

/* ---- rows ---- */

/* One result row, valid only inside the row callback. */
struct sql_row;

/* Called per row; < 0 stops with that error, > 0 stops after this row, 0 goes on. */
typedef int (*row_fn)(const struct sql_row *q, void *userdata);

bool row_null(const struct sql_row *q, int col);
/* 0 for NULL; a boolean is 1 or 0. */
int64_t row_int(const struct sql_row *q, int col);
/* "" for NULL; valid inside the callback. */
const char *row_text(const struct sql_row *q, int col);
/* Copy, cut to cap - 1 bytes. */
void row_text_copy(const struct sql_row *q, int col, char *dst, size_t cap);
/* NULL for NULL (and for a blob over SQL_BLOB_MAX bytes on PostgreSQL); *ret_len its length. */
const void *row_blob(const struct sql_row *q, int col, size_t *ret_len);

#define SQL_BLOB_MAX 256

/* ---- connections and statements ---- */

struct sqlconn;

enum store_dialect {
        STORE_SQLITE,
        STORE_POSTGRESQL,
};

/* The statement text for this connection's dialect; both must be string literals (see store_sql). */
#define SQL_DIALECT(c, sqlite, pg) (store_sql_dialect(c) == STORE_POSTGRESQL ? (pg) : (sqlite))

/*
 * Run sql on c: prepared once per connection and cached by the literal's address (so sql must be a
 * string literal: no SQL is ever built from input), args bound, every row handed to row, then the
 * statement reset whatever happened. Returns the number of rows seen, or a negative errno:
 * -EEXIST (a constraint), -ENOSPC, -EBUSY (locked, or a serialization conflict), -ENOTCONN (the
 * database cannot be reached: the caller answers 503 and the request is retried), -EIO otherwise;
 * the detail names the statement and the database's message.
 */
int store_sql(struct sqlconn *c, const char *sql, const struct sql_arg *args, row_fn row, void *userdata);
/* Rows changed by the last statement run on c. */
int store_sql_changes(struct sqlconn *c);
enum store_dialect store_sql_dialect(struct sqlconn *c);

/*
 * A write transaction: store_tx() takes a connection, BEGINs (durable: committed with a sync before
 * COMMIT returns) and takes the fleet-wide writer order (above); store_tx_end() commits when r >= 0,
 * else rolls back, gives the connection back and returns r or the commit's error.
 */
int store_tx(store *s, bool durable, struct sqlconn **ret);
int store_tx_rows(store *s, struct sqlconn **ret);
int store_tx_end(store *s, int r);
/* A connection for reads (a consistent snapshot per statement). */
struct sqlconn *store_reader(store *s);
void store_reader_done(struct sqlconn *c);
/* A read-only transaction: every statement until store_snapshot_done() sees the same snapshot. */
int store_snapshot(store *s, struct sqlconn **ret);
void store_snapshot_done(store *s, struct sqlconn *c);

/* ---- the backends ---- */

enum {
        STORE_TX_DURABLE = 1 << 0,   /* committed with a sync before COMMIT returns */
        STORE_TX_ORDERED = 1 << 1,   /* in the fleet-wide writer order (store_tx) */
};

/*
 * What a backend implements. Every function is safe from any thread. schema_version: the version the
 * database holds now. heartbeats: write n check-ins (store.c's heartbeat statement on each), not
 * durably; a backend may group them into one commit. leader: store_leader_acquire() (store.h).
 */
struct heartbeat;
struct store_backend {
        const char *name;
        enum store_dialect dialect;
        int (*sql)(struct sqlconn *c, const char *sql, const struct sql_arg *args, row_fn row, void *userdata);
        int (*changes)(struct sqlconn *c);
        int (*tx)(store *s, unsigned flags, struct sqlconn **ret);
        int (*tx_end)(store *s, int r);
        struct sqlconn *(*reader)(store *s);
        void (*reader_done)(struct sqlconn *c);
        int (*snapshot)(store *s, struct sqlconn **ret);
        void (*snapshot_done)(store *s, struct sqlconn *c);
        int (*checkin)(store *s, struct heartbeat *h);
        int (*schema_version)(store *s);
        int (*leader)(store *s, const char *name, bool *ret_leader);
        void (*close)(store *s);
        /* rows */
        bool (*row_null)(const struct sql_row *q, int col);
        int64_t (*row_int)(const struct sql_row *q, int col);
        const char *(*row_text)(const struct sql_row *q, int col);
        const void *(*row_blob)(const struct sql_row *q, int col, size_t *ret_len);
};

/* The first member of each backend's store, connection and row. */
struct store {
        const struct store_backend *be;
        struct store_cache *cache;   /* store-compliance.c's, opened and closed by store.c */
};
struct sqlconn {
        const struct store_backend *be;
};
struct sql_row {
        const struct store_backend *be;
};

/* One check-in to be written; on the caller's stack until done. */
struct heartbeat {
        const char *id;
        const struct fleet_status *st;
        int64_t now;
        int result;
        bool done;
        struct heartbeat *next;
};

/* The heartbeat's statement (store.c), run by a backend's checkin on its connection. */
int store_heartbeat_write(struct sqlconn *c, const struct heartbeat *h);

/* Open a backend (a path: SQLite; a postgresql:// URL: PostgreSQL); both bring the schema to
 * STORE_SCHEMA_VERSION, each with its own migrations, one version number for both. */
int store_sqlite_open(const char *path, unsigned readers, store **ret);
int store_pg_open(const char *url, unsigned connections, store **ret);

/*
 * Schema versions (one numbering for both backends; each backend has its own DDL for each step):
 *   1  drones, releases, assignments, events (the schema before versions were kept)
 *   2  drones.enrolled; an index of assignments by release
 *   3  rollouts, their groups, members and events; tags, maintenance windows, retry generations
 *      (SQLite: store_rollout_schema in store-rollout.c)
 *   4  the drones' compliance reports and their history (SQLite: store_compliance_schema)
 *   5  the operator action log, certificate expiry, release details, the dashboard's indexes
 *      (SQLite: store_ui_schema in store-ui.c)
 *   6  what each drone's last install downloaded and reused (delta updates)
 *   7  release mirrors and the bundle's signed-metadata hash; releases the server only references;
 *      the scheduler's holder, for operators to see
 */
#define STORE_SCHEMA_VERSION 7

/* The SQLite schema steps 3, 4 and 5, kept beside the code that uses them. */
extern const char store_rollout_schema[];
extern const char store_compliance_schema[];
extern const char store_ui_schema[];

/* Is this store's database used by this server alone (SQLite), so that what it cached stays true? */
bool store_backend_single(store *s);

/* A slot for the caches of the other files (store-compliance.c), freed by store_close(). */
struct store_cache;
struct store_cache **store_cache_slot(store *s);
int store_compliance_open(store *s);
void store_compliance_close(store *s);

/* ---- shared by the rollout store files (store-rollout.c, store-rollout-pass.c, store-compliance.c) ---- */

#include "rollout.h"

/* An audit's failing check IDs, space-separated, as many as fit in cap (the stored form). */
void store_audit_failing_join(const struct fleet_audit *a, char *out, size_t cap);

/* Member states that count as failures and as in flight, as SQL lists. */
#define SQL_FAILURES "('failed', 'rolled-back', 'timed-out', 'drift')"
#define SQL_IN_FLIGHT "('handed', 'downloading', 'waiting', 'installed', 'rebooting', 'retrying')"

/* A drone's latest rollout membership, read inside a writer transaction. */
struct rollout_membership {
        int64_t rollout, ord, release;
        uint32_t group, current_group;
        enum member_state member;
        enum rollout_state state;
        uint64_t rate;
        bool drift_gate, baseline_known;
        char version[FLEET_VERSION_MAX];
        char baseline[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX];
};

/* 1 with *ret filled, 0 when the drone was never in a rollout. */
int store_rollout_membership(struct sqlconn *c, const char *drone, struct rollout_membership *ret);
int store_rollout_event(struct sqlconn *c, int64_t rollout, int64_t now, const char *drone, const char *what,
                        int64_t attempt, const char *detail);
int store_rollout_set_member(struct sqlconn *c, int64_t rollout, int64_t ord, enum member_state st, int64_t now,
                             const char *detail);
int store_rollout_set_state(struct sqlconn *c, int64_t id, enum rollout_state st, const char *reason, int64_t now);
int store_drone_bump_retry(struct sqlconn *c, const char *drone, uint32_t *ret);
