/* server.h: the fleet server's shared state, connection I/O and route entry point. */
#pragma once

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet-ca.h"
#include "fleet-http.h"
#include "store.h"

#define SERVER_MAX_JSON_BODY 16384
#define SERVER_IO_TIMEOUT_SEC 30

struct server_config {
        char *listen;            /* host:port; port 0 picks a free one (printed on stdout) */
        char *db;
        char *store_dir;         /* verified bundles, named by their SHA-256 */
        char *cert, *key;        /* the server's TLS identity */
        char *device_ca;         /* directory with ca.pem (and ca.key to sign enrollment CSRs) */
        char *operator_ca;       /* PEM file of the CA whose OU=operator certificates are operators */
        char *keyring;           /* bundle trust anchors: uploads must verify against these */
        char *nix_cache;         /* Nix binary cache directory served under /nix-cache/, NULL: none */
        uint64_t max_upload;     /* bytes; default 2 GiB */
        uint32_t max_connections;
        uint32_t poll_interval;  /* seconds, told to drones */
        uint32_t token_ttl;      /* enrollment token lifetime, seconds */
        char *approvers;         /* operator CNs that may approve rollouts (comma-separated), NULL: any other */
        uint32_t scheduler_interval;   /* seconds between rollout scheduler passes */
        uint32_t silent_polls;   /* a drone silent for this many poll intervals is drift */
};

int server_config_load(const char *path, struct server_config *c);
void server_config_free(struct server_config *c);

struct metrics {
        atomic_uint_fast64_t requests, errors_4xx, errors_5xx, checkins, reports, enrollments;
        atomic_uint_fast64_t bundle_bytes, uploads, uploads_refused, tls_failures, auth_refused;
        atomic_uint_fast64_t connections_total;
        atomic_uint_fast64_t nix_cache_hits, nix_cache_misses, nix_cache_bytes;
        atomic_int connections_active;
        atomic_uint_fast64_t rollout_passes, rollout_hands, rollout_pass_us_last, rollout_pass_us_max;
};

struct server {
        struct server_config cfg;
        SSL_CTX *ssl;
        store *db;
        X509 *device_ca_cert;
        EVP_PKEY *device_ca_key;   /* NULL: enrollment by token is disabled */
        X509 *operator_ca_cert;
        int nix_cache_fd;          /* O_PATH directory fd of cfg.nix_cache, opened once at start; < 0: none */
        struct metrics m;
        struct scheduler *scheduler;   /* scheduler.c: the rollout scheduler thread */
};

enum peer_role {
        PEER_NONE,       /* no client certificate (only /api/v1/enroll accepts this) */
        PEER_DRONE,
        PEER_OPERATOR,
};

struct conn {
        struct server *srv;
        SSL *ssl;
        int fd;
        enum peer_role role;
        char peer[CA_NAME_MAX + 1];   /* CN of the client certificate */
        char serial[65];              /* its serial, lowercase hex */
        char buf[HTTP_MAX_HEAD];      /* bytes read past the current head (pipelining) */
        size_t have;
        bool close_after;             /* set when a response must end the connection */
        bool head_only;               /* the current request is HEAD: conn_respond() sends no body */
};

/* Read exactly n body bytes (first from conn->buf). */
int conn_read(struct conn *c, void *p, size_t n);
/* Send a complete response (for HEAD its head only, with the body's Content-Length). extra_headers:
 * "Name: value\r\n…" or NULL. */
int conn_respond(struct conn *c, int status, const char *ctype, const char *extra_headers, const void *body,
                 size_t len);
/* JSON error body {"error": "...", "status": N}. Returns the status. */
int conn_error(struct conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int conn_write(struct conn *c, const void *p, size_t n);

/* Route one parsed request; the body (if any) is still unread. Returns < 0 to drop the connection. */
int api_handle(struct conn *c, const struct http_request *req);

/* Rollout, tag, window, retry, compliance and drift routes (api-rollout.c). Returns 0 when none of its
 * routes matched (nothing was read or answered), 1 when one answered, < 0 to drop the connection. */
int api_rollout_handle(struct conn *c, const struct http_request *req);
/* The check-in's rollout part: may hold the drone (no assignment) or add retry, rate, rollout, windows. */
int api_rollout_checkin(struct conn *c, const char *group, const struct fleet_status *st, bool *ret_held,
                        struct fleet_assignment *a);
/* Reads the JSON body of a route (at most max bytes); answers the error itself (< 0 then). */
int api_read_body(struct conn *c, const struct http_request *req, size_t max, char **ret, size_t *ret_len);
int api_skip_body(struct conn *c, const struct http_request *req);
int api_respond_json(struct conn *c, int status, json_t *j);
/* Role checks of api.c; each answers 401/403 itself and returns < 0 when refused. */
int api_authorize_drone(struct conn *c, struct drone_auth *ret);
int api_authorize_operator(struct conn *c);
int api_authorize_self_or_operator(struct conn *c, const char *id);

/* The rollout scheduler (scheduler.c): one pass every scheduler-interval seconds in its own thread. */
int scheduler_start(struct server *srv);
void scheduler_stop(struct server *srv);

/* Upload route (upload.c): stream, verify, store, register. */
int api_upload(struct conn *c, const struct http_request *req);

int server_run(struct server *srv);
