/* store-internal.h: what the store's files share: connections, transactions and the one statement helper. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* ---- the one lock/bind/step/reset helper's arguments ---- */

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

/* Called per row; < 0 stops with that error, > 0 stops after this row, 0 goes on. */
typedef int (*row_fn)(sqlite3_stmt *q, void *userdata);

struct sqlconn;

/*
 * The store's other files (store-rollout.c, store-compliance.c, store-ui.c) run their statements through these.
 * store_sql() prepares `sql` once per connection (SQLITE_PREPARE_PERSISTENT; the cache is keyed by
 * the literal's address, so sql must be a string literal), binds args, hands every row to row, then
 * resets and clears the bindings whatever happened. Returns the rows seen or a negative errno.
 */
int store_sql(struct sqlconn *c, const char *sql, const struct sql_arg *args, row_fn row, void *userdata);
int64_t store_sql_last_rowid(struct sqlconn *c);
int store_sql_changes(struct sqlconn *c);

/* The writer in a transaction: store_tx() locks it and BEGINs (synchronous=FULL when durable);
 * store_tx_end() commits when r >= 0, else rolls back, unlocks, and returns r or the commit's error. */
int store_tx(store *s, bool durable, struct sqlconn **ret);
int store_tx_end(store *s, int r);
/* A reader connection (read-only statements, a consistent snapshot while held). */
struct sqlconn *store_reader(store *s);
void store_reader_done(struct sqlconn *c);

/* Column helpers. */
void store_col_text(sqlite3_stmt *q, int col, char *dst, size_t cap);
const char *store_col(sqlite3_stmt *q, int col);   /* "" for NULL */

/* A slot for the caches of the other files (store-compliance.c), freed by store_close(). */
struct store_cache;
struct store_cache **store_cache_slot(store *s);
int store_compliance_open(store *s);
void store_compliance_close(store *s);

#define STORE_MAX_EXTRA_STMTS 96

/* The schema steps of the other files, run by store.c's migrations (PRAGMA user_version 3, 4 and 5). */
extern const char store_rollout_schema[];
extern const char store_compliance_schema[];
extern const char store_ui_schema[];   /* store-ui.c: the action log, dashboard indexes and columns */

/* ---- shared by the rollout store files (store-rollout.c, store-rollout-pass.c, store-compliance.c) ---- */

#include "rollout.h"

/* Member states that count as failures and as in flight, as SQL lists. */
#define SQL_FAILURES "('failed', 'rolled-back', 'timed-out', 'drift')"
#define SQL_IN_FLIGHT "('handed', 'downloading', 'waiting', 'installed', 'rebooting', 'retrying')"

/* A drone's latest rollout membership, read on the writer inside a transaction. */
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
