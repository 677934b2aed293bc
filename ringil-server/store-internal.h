/* store-internal.h: what the store's files share: the connection, its lock, the statement helpers. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/*
 * store.c owns the connection and the mutex that serializes it; the other store files prepare their
 * statements through store_stmt() and keep caches in the slot below. Every helper expects the lock
 * to be held by the caller.
 */
struct store_cache;

sqlite3 *store_sqlite(store *s);
void store_lock(store *s);
void store_unlock(store *s);
struct store_cache **store_cache_slot(store *s);

/*
 * The statement for sql, prepared on first use (SQLITE_PREPARE_PERSISTENT) and finalized by
 * store_close(). sql must be a string literal: the cache is keyed by its address. NULL on failure,
 * with SQLite's message as the detail.
 */
#define STORE_MAX_EXTRA_STMTS 128
sqlite3_stmt *store_stmt(store *s, const char *sql);

/* Step a statement that returns no rows (or ignore them), then reset and clear it. */
int store_step(store *s, sqlite3_stmt *q);
/* BEGIN IMMEDIATE with synchronous=FULL (durable) or NORMAL. */
int store_begin(store *s, bool durable);
/* COMMIT when r >= 0, else ROLLBACK; returns r or the COMMIT's error. */
int store_end(store *s, int r);
/* Column text copied into dst (cut to cap - 1 bytes; "" for NULL). */
void store_text(sqlite3_stmt *q, int col, char *dst, size_t cap);
/* Record SQLite's message as the detail and map rc to a negative errno. */
int store_sql_fail(store *s, int rc, const char *what);

/* store-rollout.c: its schema and statements, created by store_open(), released by store_close(). */
int store_rollout_open(store *s);
void store_rollout_close(store *s);
