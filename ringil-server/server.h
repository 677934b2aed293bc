/* server.h: the fleet server's shared state and the entry points of its routes. */
#pragma once

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet-ca.h"
#include "fleet-http.h"
#include "routes.h"
#include "store.h"
#include "transport.h"

#define SERVER_MAX_JSON_BODY 16384
#define SERVER_ENROLL_MAX_BODY 16384
/* Seconds a client is asked to wait (Retry-After) when the store cannot answer. */
#define SERVER_STORE_RETRY_AFTER 5
/* The transport's ceiling for any in-memory body: the largest route's (the operator's nix-cache/missing
 * list). Each route keeps its own smaller cap, and roles are checked before a body is read, so drones
 * and anonymous peers can make the server hold no more than their routes' 16 KiB. */
#define SERVER_MAX_MEMORY_BODY SERVER_NIX_MISSING_MAX_BODY

struct server_config {
        char *listen;            /* host:port of the fleet port (mutual TLS); port 0 picks a free one */
        char *enroll_listen;     /* host:port of the enrollment port; NULL: enrollment by token is off */
        char *db;                /* an SQLite file, or a postgresql:// URL (replicas share it) */
        char *store_dir;         /* verified bundles, named by their SHA-256 */
        char *cert, *key;        /* the server's TLS identity */
        char *device_ca;         /* directory with ca.pem (and ca.key to sign enrollment CSRs) */
        char *operator_ca;       /* PEM file of the CA whose OU=operator certificates are operators */
        char *keyring;           /* bundle trust anchors: uploads must verify against these */
        char *nix_cache;         /* Nix binary cache directory served under /nix-cache/, NULL: none */
        char *nix_trusted_keys;  /* "name:base64 …": the fleet's Nix keys; set, operators may publish into nix_cache */
        uint64_t max_upload;     /* bytes; default 2 GiB */
        uint32_t max_connections;
        uint32_t poll_interval;  /* seconds, told to drones */
        uint32_t token_ttl;      /* enrollment token lifetime, seconds */
        /* admission and deadlines (docs/fleet.md "Admission") */
        uint32_t enroll_max_connections;
        uint32_t enroll_per_address;
        uint32_t enroll_rate;        /* new connections per address per minute */
        uint32_t enroll_timeout;     /* seconds for a whole enrollment exchange */
        uint32_t handshake_timeout;  /* seconds */
        uint32_t request_timeout;    /* seconds for head and body, plus body / min_body_rate */
        uint32_t keepalive_timeout;  /* seconds idle between requests */
        uint32_t min_body_rate;      /* bytes per second */
        uint32_t workers;            /* handler threads */
        /* rollouts (docs/fleet.md "Rollouts") */
        char *approvers;             /* operator CNs that may approve rollouts (comma-separated); NULL: any other */
        uint32_t scheduler_interval; /* seconds between rollout scheduler passes (and election checks) */
        uint32_t silent_polls;       /* a drone silent for this many poll intervals is drift */
        /* replicas */
        char *replica_name;          /* this server in the scheduler's election; NULL: HOST:PORT of listen */
};

/*
 * The config file (format: lib/conf.h; keys: docs/fleet.md): no sections, unknown and repeated keys
 * refused, db/store/cert/key/device-ca/keyring required, defaults applied. On failure *c is freed and
 * zeroed, the error is -RINGIL_EMALFORMED/-RINGIL_ETOOBIG or the file's errno, with a one-line detail
 * naming the path once (`PATH:LINE: …`, `cannot read configuration `PATH': reason`).
 */
int server_config_load(const char *path, struct server_config *c);
int server_config_parse(const char *text, size_t len, struct server_config *c);
void server_config_free(struct server_config *c);

struct metrics {
        atomic_uint_fast64_t checkins, reports, enrollments;
        atomic_uint_fast64_t bundle_bytes, uploads, uploads_refused, auth_refused;
        atomic_uint_fast64_t nix_cache_hits, nix_cache_misses, nix_cache_bytes;
        atomic_uint_fast64_t store_errors;          /* requests answered 503 because the store failed */
        atomic_uint_fast64_t scheduler_passes;      /* passes run here as the elected replica */
        atomic_int scheduler_leader;                /* 1 while this replica runs the scheduler */
        atomic_uint_fast64_t nix_uploads, nix_uploads_refused;
        atomic_uint_fast64_t rollout_passes, rollout_hands, rollout_pass_us_last, rollout_pass_us_max;
};

struct server {
        struct server_config cfg;
        store *db;
        X509 *device_ca_cert;
        EVP_PKEY *device_ca_key;   /* NULL: enrollment by token is disabled */
        X509 *operator_ca_cert;
        int nix_cache_fd;          /* O_PATH directory fd of cfg.nix_cache, opened once at start; < 0: none */
        struct metrics m;
        struct route_table routes;
        transport *tp;
        struct leader *leader;     /* leader.c: the election and the passes that run once per fleet */
};

/* What a handler gets: the request, the answer to fill, the path's '*' segment, the caller's record. */
struct route_ctx {
        struct server *srv;
        const struct tp_request *req;
        const struct http_request *http;
        struct tp_response *resp;
        const char *param;
        struct drone_auth auth;    /* the calling drone (roles that admit drones); zero for operators */
        /* the operator action log's entry for this request (api.c records every operator POST):
         * handlers may name what it acted on and what was done; "" leaves the path to say it */
        char log_target[160];
        char log_detail[256];
};

/* The built-in routes (api.c); -EINVAL if one is malformed (the server does not start). */
int api_routes_register(struct route_table *t, uint64_t max_upload);
/* The dispatcher: tp_app callbacks (userdata: struct server *). */
void api_admit(void *userdata, const struct tp_request *req, struct tp_plan *ret);
void api_handle(void *userdata, const struct tp_request *req, struct tp_response *resp);

/* 503 with Retry-After for a failed store call (counted in ringil_store_errors_total). */
int api_store_error(struct route_ctx *x, int r);

/* The rollout, tag, window, retry, compliance and drift routes (api-rollout.c). */
int api_rollout_routes_register(struct route_table *t);
/* The check-in's rollout part (api-rollout.c): may hold the drone (no assignment at all) or add retry
 * generation, rate, rollout and windows to the answer; keeps its compliance report. */
int api_rollout_checkin(struct route_ctx *x, const struct fleet_status *st, bool *ret_held, struct fleet_assignment *a);
/* Is cn named in `approvers` (or is the list unset)? */
bool api_is_approver(const struct server *srv, const char *cn);

/*
 * The rollout scheduler's pass (scheduler.c), run by the elected replica (leader.c) every
 * scheduler-interval seconds: store_rollout_pass() with the pass's metrics and logs. A scheduler is
 * made new each time this replica takes the scheduler (now: since when) and freed when it loses it.
 */
struct scheduler;
int scheduler_new(int64_t now, struct scheduler **ret);
void scheduler_free(struct scheduler *sc);
int scheduler_pass(struct server *srv, struct scheduler *sc, int64_t now);

/* Upload route (upload.c): verify the spooled bundle, store (or only reference), register. */
int api_upload(struct route_ctx *x);
/*
 * The signed metadata of the bundle in fd (size bytes): header, manifest and signature, bytes
 * [0, *ret_size), and their SHA-256 in hex. Only the header's two lengths are read to find the end;
 * -RINGIL_EMALFORMED when they do not fit in size.
 */
int release_meta(int fd, uint64_t size, uint64_t *ret_size, char ret_sha256[static 65]);
/* Split a stored mirror list ("URL URL …") into the assignment's array; the count. */
size_t release_mirrors_split(const char *text, char mirrors[][FLEET_URL_MAX + 1]);

/*
 * The work that must run once per fleet (leader.c): a thread that, every scheduler-interval seconds,
 * asks the store whether this replica holds the scheduler (store_leader_acquire) and, while it does,
 * runs the passes: the holder's record, the enrollment token sweep and the rollout scheduler's pass.
 */
int leader_start(struct server *srv, const char *name);
void leader_stop(struct server *srv);

/*
 * The operator's publish routes into the Nix cache (nixpublish.c): POST /api/v1/nix-cache/missing (the
 * paths the cache lacks, a JSON body in memory) and PUT /api/v1/nix-cache/HASHPART (one path: the
 * upload envelope of lib/nix-publish.h, spooled by the transport). Operator routes of the table.
 */
#define SERVER_NIX_MISSING_MAX_BODY (8u << 20)   /* NIX_CLOSURE_MAX store paths as JSON */
int api_nix_missing(struct route_ctx *x);
int api_nix_upload(struct route_ctx *x);
/* The largest PUT body: a NAR of up to max_upload bytes in its envelope. */
uint64_t api_nix_upload_max_body(uint64_t max_upload);

/* Bind, serve until SIGTERM. */
int server_run(struct server *srv);
