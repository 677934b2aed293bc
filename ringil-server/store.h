/* store.h: the fleet server's state: drones, releases, assignments, events; on SQLite (one file) or PostgreSQL (replicas). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet-msg.h"

/*
 * One interface, two backends (store-internal.h): an opaque handle, plain C types and jansson views, no
 * database type. Every call is safe from any thread. The same schema and migrations on both, one
 * version number (store_schema_version).
 *
 * SQLite (store-sqlite.c; `db` is a path): one file in WAL mode, one writer connection behind a mutex
 * and a pool of read-only connections, so reads never wait for a commit. Heartbeats commit with
 * synchronous=NORMAL (may be lost on power cut, harmless), grouped into one commit under load;
 * enrollment, revocation, releases, assignments and reports with synchronous=FULL.
 *
 * PostgreSQL (store-pg.c; `db` is a postgresql:// URL): one connection per worker thread (libpq), so
 * several server replicas can share one database. Heartbeats commit with synchronous_commit=off, every
 * other write with synchronous_commit=on. A connection that breaks (the database restarted, the network
 * cut) is reconnected at the next use, at most once a second while the database stays away; meanwhile
 * calls fail with -ENOTCONN at once (the API answers 503 with Retry-After), and a transaction cut in the
 * middle is rolled back by the database: nothing half-written.
 *
 * On both, every statement is prepared once per connection with bound parameters (no SQL is ever
 * built from input), and a report acknowledged with 200 was committed durably before the answer.
 */

typedef struct store store;

/*
 * db: an absolute path (SQLite) or a postgresql:// (postgres://) URL. connections: one per thread that
 * uses the store at once (the workers; SQLite: its read connections). -EPROTO: the database's schema is
 * newer than this server; -EPROTONOSUPPORT: neither a path nor a PostgreSQL URL; -ENOTCONN: the
 * PostgreSQL server cannot be reached (the detail has libpq's reason).
 */
int store_open(const char *db, unsigned connections, store **ret);
void store_close(store *s);
int store_schema_version(store *s);
/* "sqlite" or "postgresql". */
const char *store_backend_name(store *s);
/* Is db a PostgreSQL URL (postgresql:// or postgres://)? */
bool store_db_is_postgresql(const char *db);
/* db with a password in it replaced by "***", for messages and logs. */
void store_db_redact(const char *db, char *buf, size_t size);

/*
 * Fleet-wide work that must run on exactly one replica (the scheduler): is this process the one?
 * PostgreSQL: a session-level advisory lock on a dedicated connection, taken with
 * pg_try_advisory_lock() and re-checked at every call; the database releases it when that session
 * ends, so when the holder dies another replica's next call takes it. A broken session is
 * reconnected and tried again. SQLite (one server): always true. name identifies this replica
 * (application_name, and the holder shown in the store); 0 or a negative errno.
 */
int store_leader_acquire(store *s, const char *name, bool *ret_leader);
/* Record that name holds the scheduler (now), and read who does: holder "" when nobody has yet. */
int store_leader_note(store *s, const char *name, int64_t now);
int store_leader_json(store *s, json_t **ret);
/* Clear enrollment tokens that expired before now (they could never be used again): the count. */
int store_tokens_expire(store *s, int64_t now);

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
        char path[4096];                        /* "" when the server only references it: mirrors serve it */
        uint64_t meta_size;                     /* bytes of header, manifest and signature; 0: not known */
        char meta_sha256[65];                   /* their SHA-256 ("" when not known) */
        char mirrors[FLEET_MIRRORS_TEXT_MAX];   /* space-separated https:// URLs of the whole bundle, in order */
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
/* Replace the release's mirror list (space-separated URLs, "" none) and, when meta_size > 0, its
 * metadata hash. -ENOENT for an unknown release. */
int store_release_set_mirrors(store *s, int64_t id, const char *mirrors, uint64_t meta_size, const char *meta_sha256);
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

/*
 * `ringil-server migrate`: copy every table of from into to, whose tables must be empty (-ENOTEMPTY
 * otherwise), in one transaction of to, from one consistent read of from; then compare the row
 * counts of every table. *ret: {"table": rows, …} as copied. -EIO with the table named when a count
 * differs (nothing is committed then).
 */
int store_copy(store *from, store *to, json_t **ret);
/* ---- the operator dashboard and the action log (store-ui.c) ---- */

/*
 * The dashboard's word for a drone's state (docs/fleet.md "Operator dashboard"): "revoked", then
 * "silent" (no check-in for silent_after seconds, or never), else what its last report said: "idle"
 * (also: no report yet), "downloading" (also: retrying a fault that is not the release's), "pending"
 * (installed, rebooting, waiting for its window: the new slot is not blessed yet), "blessed"
 * (updated), "rolled-back", "failed".
 */
#define STORE_UI_STATES "idle", "downloading", "pending", "blessed", "rolled-back", "failed", "silent", "revoked"

/*
 * {"total", "state": {WORD: n}, "version": {V: n}, "audit": {…}, "secureboot": {…}}; version, audit and
 * secureboot count drones that are not revoked, from their last compliance report, by the drift rules
 * (drift.h): audit "compliant" (a clean pass of the prod profile), "failing", "unevaluated" (checks
 * that could not be evaluated), "other-profile", "unknown" (none reported); secureboot "enforced"
 * (user or deployed mode, PK, KEK and db exactly the fleet's), "not-enforced", "foreign-keys"
 * (enforced, but a key is foreign, missing or unknown), "unknown" (none reported); drift {"release",
 * "audit", "secureboot", "silent": n}, the drift report's counts (drift.h).
 */
int store_fleet_summary(store *s, int64_t now, uint32_t silent_after, json_t **ret);

/*
 * Every change of a drone's running version, in no particular order: its reports where the version
 * differs from its previous report's, and its last check-in. Revoked drones are left out. fn returning
 * < 0 stops with that error.
 */
typedef int (*store_version_fn)(int64_t time, const char *drone, const char *version, void *userdata);
int store_version_changes(store *s, store_version_fn fn, void *userdata);

enum drone_sort {
        DRONE_SORT_ID,
        DRONE_SORT_GROUP,
        DRONE_SORT_VERSION,
        DRONE_SORT_STATE,
        DRONE_SORT_LAST_SEEN,
        _DRONE_SORT_MAX,
};

/* One page of the drone table. Strings "" match anything. */
struct drone_query {
        const char *search;        /* a substring of the id or of the last error (ASCII case-insensitive) */
        const char *version;       /* the running version, exactly */
        const char *group;
        const char *state;         /* one dashboard word (above) */
        const char *tag;
        const char *drift;         /* a drift kind (drift.h: "release", "audit", "secureboot", "silent") */
        enum drone_sort sort;
        bool desc;
        uint32_t limit, offset;
        int64_t now;
        uint32_t silent_after;
};
/* {"total": matches, "drones": [{"id","group","status","state","ui_state","version","last_seen","error",…}]} */
int store_drones_page(store *s, const struct drone_query *q, json_t **ret);
/* The values the filters offer: {"versions": [...], "groups": [...], "tags": [...]} (sorted). */
int store_drone_facets(store *s, json_t **ret);

struct drone_identity {
        char cert_serial[65];      /* "" when the certificate was issued offline */
        int64_t cert_not_after;    /* 0 unknown (issued offline, or enrolled before it was recorded) */
        int64_t enrolled, created;
        int64_t token_expires;     /* an unused enrollment token's expiry, 0 none */
};
/* -ENOENT for an unknown id. */
int store_drone_identity(store *s, const char *id, struct drone_identity *ret);
/* Record the expiry of the certificate the server issued (only while serial is the one on record). */
int store_drone_cert_expiry(store *s, const char *id, const char *serial, int64_t not_after);

/* What the signed manifest of a release says beyond the release row: built, expires, payloads (a JSON
 * array of {"name","type","size"[,"store_path"]}); store_releases_json() shows them. -ENOENT. */
int store_release_details(store *s, int64_t id, int64_t built, int64_t expires, const char *payloads_json);

/* One operator request that changed or tried to change something (POST), kept durably. */
struct operator_action {
        int64_t time;
        const char *operator_name;   /* the certificate's CN */
        const char *serial;          /* its serial, lowercase hex */
        const char *method, *path;
        const char *target;          /* "drone:ID", "release:N", "rollout:N", … or "" */
        const char *detail;          /* what was asked, in words, or "" */
        int status;                  /* the HTTP status answered */
};
int store_action_add(store *s, const struct operator_action *a);
/* A rollout's member events, oldest first: fn(time, drone, event) for every event that names a drone
 * ("handed", a member state, "retry", "removed"). -ENOENT: no such rollout. */
typedef int (*store_rollout_event_fn)(int64_t time, const char *drone, const char *event, void *userdata);
int store_rollout_history(store *s, int64_t id, store_rollout_event_fn fn, void *userdata);
/* A rollout's members that need a look: {"total": n, "members": [{"drone","group","state","attempt",
 * "handed_at","state_at","detail"}]}, failures first, then those in flight, each in rollout order; at most limit. */
int store_rollout_attention(store *s, int64_t id, uint32_t limit, json_t **ret);

/* Newest first: {"total", "actions": [{"id","time","operator","serial","method","path","target","detail","status"}]};
 * target NULL: every action. */
int store_actions_json(store *s, const char *target, uint32_t limit, uint32_t offset, json_t **ret);
