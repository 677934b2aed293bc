/* store.h: the fleet server's state in one SQLite file (WAL): drones, releases, assignments, events. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet-msg.h"

/*
 * The interface is the contract a second backend (PostgreSQL) implements: an opaque handle, plain C
 * types and jansson views, no SQLite type. Every call is safe from any thread.
 *
 * The SQLite backend (store.c): one writer connection behind a mutex (SQLite serializes writers
 * anyway) and a pool of read-only connections, so reads never wait for a commit (WAL). Every
 * statement is prepared once with bound parameters; no SQL is ever built from input. The schema is
 * versioned (PRAGMA user_version) and migrated at open. Durability: heartbeats commit with
 * synchronous=NORMAL (may be lost on power cut, harmless); enrollment, revocation, releases,
 * assignments and reports commit with synchronous=FULL, so a report acknowledged with 200 survives
 * SIGKILL and power loss.
 */

typedef struct store store;

/* readers: read connections (one per worker thread keeps them uncontended). -EPROTO: the database's
 * schema is newer than this server; -EPROTONOSUPPORT: a backend this build lacks. */
int store_open(const char *path, unsigned readers, store **ret);
void store_close(store *s);
int store_schema_version(store *s);

enum drone_status {
        DRONE_ENROLLED,   /* registered, no certificate issued through us yet */
        DRONE_ACTIVE,
        DRONE_REVOKED,
};

struct release {
        int64_t id;
        char version[FLEET_VERSION_MAX];
        char compatible[129];
        uint64_t size;
        char sha256[65];
        char path[4096];
};

/* What a check-in needs to know of rollouts, read with the record (store-rollout.c interprets it). */
struct drone_rollout {
        int64_t rollout;        /* the drone's latest rollout membership, 0 none */
        int64_t ord;            /* its place in that rollout */
        uint32_t group, current_group;
        char member[16];        /* member state (rollout.h names) */
        char state[16];         /* the rollout's state */
        uint64_t rate;          /* the rollout's download limit, bytes/s */
        int64_t release;        /* the rollout's release … */
        char version[FLEET_VERSION_MAX];   /* … and its version */
        char windows[FLEET_WINDOWS_TEXT_MAX];   /* the drone's maintenance windows (its own, else its group's) */
        uint32_t retry;         /* its retry generation */
};

struct drone_auth {
        bool exists;
        enum drone_status status;
        char group[65];
        char cert_serial[65];   /* hex; "" when the certificate was issued offline (`ringil ca issue`) */
        bool assigned;          /* the release assigned to it now (drone > group > fleet), read with the record */
        struct release release;
        struct drone_rollout ro;
};

/* The drone's record and its current assignment, in one read. */
int store_drone_auth(store *s, const char *id, struct drone_auth *ret);

/* Register a drone with a one-time enrollment token (stored as SHA-256). -EEXIST if it exists. */
int store_drone_add(store *s, const char *id, const char *group, const uint8_t token_hash[32], int64_t now,
                    int64_t token_expires);
/* Consume the token: succeeds once, before expiry, for a non-revoked drone; records the serial. */
int store_drone_enroll(store *s, const char *id, const uint8_t token_hash[32], int64_t now,
                       const char *cert_serial);
/*
 * A new one-time token for an existing drone (its earlier token, if any, stops working). The drone's
 * current certificate stays valid until a certificate is enrolled with the new token, which then
 * replaces it. -ENOENT for an unknown id, -RINGIL_EREFUSED for a revoked one: revocation is final.
 */
int store_drone_reissue(store *s, const char *id, const uint8_t token_hash[32], int64_t token_expires);
int store_drone_revoke(store *s, const char *id);

/* A heartbeat: last seen and reported fields (not durable). */
int store_checkin(store *s, const char *id, const struct fleet_status *st, int64_t now);
/*
 * A durable report. Returns 1 when stored, 0 when (drone, seq) was already stored (a retry after a
 * lost acknowledgement), -ESTALE when seq is below the last one stored for that drone.
 */
int store_report(store *s, const char *id, const struct fleet_status *st, int64_t now);


int store_release_add(store *s, const struct release *r, const char *signer, const char *manifest_digest,
                      int64_t *ret_id);
int store_release_get(store *s, int64_t id, struct release *ret);
/* target: "*" (whole fleet), "group:NAME" or "drone:ID". */
int store_assign(store *s, const char *target, int64_t release_id);
/* The release assigned to this drone (drone > group > fleet); 0 and *ret_id = 0 when none. */
int store_assignment_for(store *s, const char *id, const char *group, int64_t *ret_id);

/* JSON views for the operator API. */
int store_drones_json(store *s, json_t **ret);
int store_drone_json(store *s, const char *id, json_t **ret);   /* with history; -ENOENT */
int store_releases_json(store *s, json_t **ret);
/* Count of drones per state for /metrics. */
int store_state_counts(store *s, json_t **ret);
