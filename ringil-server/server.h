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
        char *nix_trusted_keys;  /* "name:base64 …": the fleet's Nix keys; set, operators may publish into nix_cache */
        uint64_t max_upload;     /* bytes; default 2 GiB */
        uint32_t max_connections;
        uint32_t poll_interval;  /* seconds, told to drones */
        uint32_t token_ttl;      /* enrollment token lifetime, seconds */
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
        atomic_uint_fast64_t requests, errors_4xx, errors_5xx, checkins, reports, enrollments;
        atomic_uint_fast64_t bundle_bytes, uploads, uploads_refused, tls_failures, auth_refused;
        atomic_uint_fast64_t connections_total;
        atomic_uint_fast64_t nix_cache_hits, nix_cache_misses, nix_cache_bytes;
        atomic_uint_fast64_t nix_uploads, nix_uploads_refused;
        atomic_int connections_active;
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

/* Upload route (upload.c): stream, verify, store, register. */
int api_upload(struct conn *c, const struct http_request *req);

/*
 * The operator's publish routes into the Nix cache (nixpublish.c), for a request whose path starts with
 * NIX_PUBLISH_PREFIX (rest = what follows): POST …/missing and PUT …/HASHPART. Operator only; the body is
 * read here. Returns like api_handle().
 */
#define NIX_PUBLISH_PREFIX "/api/v1/nix-cache/"
int api_nix_publish(struct conn *c, const struct http_request *req, const char *rest);

int server_run(struct server *srv);
