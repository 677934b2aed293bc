/* transport.h: the fleet server's connections: listeners, TLS, admission, deadlines, request heads, worker pool. */
#pragma once

#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "fleet-ca.h"
#include "fleet-http.h"

/*
 * One event loop (libevent) accepts, runs every TLS handshake, reads every request head and body, and
 * writes every answer; a fixed pool of worker threads runs the handlers, which may block (SQLite,
 * files, bundle verification). The transport knows nothing of routes or of the store: the application
 * hands it two callbacks (struct tp_app). Every connection has a deadline in every state, so a client
 * that sends nothing, or one byte a second, holds its slot for a bounded time only.
 *
 * Two listeners: the fleet port, where the TLS handshake fails without a client certificate that
 * chains to the device or operator CA (no certificate, no HTTP), and the optional enrollment port,
 * which asks for none and has its own small connection cap, a cap and a rate limit per source
 * address, and one deadline for the whole exchange (handshake, head and body).
 */

enum tp_listener {
        TP_FLEET,    /* mutual TLS: a client certificate is required in the handshake */
        TP_ENROLL,   /* anonymous TLS, enrollment only */
        _TP_LISTENER_MAX,
};

enum peer_role {
        PEER_NONE,       /* no usable client certificate (the enrollment port) */
        PEER_DRONE,      /* chains to the device CA, no OU=operator */
        PEER_OPERATOR,   /* OU=operator, chains to the operator CA */
};

/* Why a connection was refused or cut: ringil_connections_refused_total{reason}. */
enum tp_refusal {
        TP_REFUSED_CAP,                /* the listener's connection cap, no idle connection to close */
        TP_REFUSED_PER_ADDRESS,        /* enrollment: too many connections from one address */
        TP_REFUSED_RATE,               /* enrollment: too many new connections from one address */
        TP_REFUSED_NO_CERTIFICATE,     /* fleet port: handshake without a client certificate */
        TP_REFUSED_TLS,                /* any other failed handshake (bad certificate, not TLS) */
        TP_REFUSED_HANDSHAKE_TIMEOUT,
        TP_REFUSED_REQUEST_TIMEOUT,    /* head and body not complete by the request's deadline */
        TP_REFUSED_SLOW_BODY,          /* body slower than min-body-rate */
        TP_REFUSED_MALFORMED,          /* 400/414/431/501 from the request parser */
        _TP_REFUSED_MAX,
};

const char *tp_refusal_to_string(enum tp_refusal r);

struct tp_limits {
        uint32_t max_connections;          /* fleet port */
        uint32_t enroll_max_connections;   /* enrollment port */
        uint32_t enroll_per_address;       /* concurrent connections from one address */
        uint32_t enroll_rate;              /* new connections per address per minute (burst the same) */
        uint32_t enroll_timeout_ms;        /* the whole enrollment exchange, from accept */
        uint32_t handshake_timeout_ms;
        uint32_t request_timeout_ms;       /* head and body, from the request's first byte, plus body/min rate */
        uint32_t keepalive_timeout_ms;     /* idle between requests */
        uint32_t min_body_rate;            /* bytes/s over every 5 s of a body */
        uint32_t workers;
        uint32_t max_memory_body;          /* largest body a route may ask to receive in memory */
};

struct tp_stats {
        atomic_uint_fast64_t connections_total, requests, idle_closed, responses_4xx, responses_5xx;
        atomic_uint_fast64_t refused[_TP_REFUSED_MAX];
        atomic_int active[_TP_LISTENER_MAX];
};

/* What the application decides from a parsed head, in the event loop (must not block). */
enum tp_body {
        TP_BODY_NONE,     /* a body, if any, up to 16 KiB is read and discarded */
        TP_BODY_MEMORY,   /* read into memory, at most max_body bytes (NUL-terminated for the handler) */
        TP_BODY_SPOOL,    /* streamed to a temporary file in spool_dir and hashed, at most max_body */
};

struct tp_plan {
        int status;             /* != 0: answer this error at once, no handler runs */
        char message[160];      /* its "error" text */
        char allow[32];         /* for 405: the Allow header's value */
        enum tp_body body;
        uint64_t max_body;
        const void *route;      /* opaque, handed back to handle() */
};

struct tp_request {
        const struct http_request *http;
        enum tp_listener listener;
        enum peer_role role;
        const char *peer;       /* CN of the client certificate, "" without one */
        const char *serial;     /* its serial, lowercase hex */
        const char *addr;       /* source address, numeric */
        const void *route;
        const char *body;       /* TP_BODY_MEMORY: body_len bytes + NUL; else NULL */
        size_t body_len;
        int spool_fd;           /* TP_BODY_SPOOL: the file (read/write, at offset 0 after the body) */
        const char *spool_path; /* its name; the transport unlinks it after the handler returned */
        uint64_t spool_len;
        uint8_t spool_sha256[32];
};

/* The handler's answer. tp_respond*() fill it; the transport sends it and frees what it holds. */
struct tp_response {
        int status;
        const char *ctype;                /* static string, or NULL */
        struct buf headers;               /* extra "Name: value\r\n" lines */
        struct buf body;
        int file_fd;                      /* >= 0: the body is file_len bytes of this file from file_first */
        uint64_t file_first, file_len;
        atomic_uint_fast64_t *file_sent;  /* counts the file bytes sent, or NULL */
        bool close;                       /* end the connection after this answer */
};

int tp_respond(struct tp_response *r, int status, const char *ctype, const void *body, size_t len);
/* JSON error body {"error": "...", "status": N}. Returns status. */
int tp_respond_error(struct tp_response *r, int status, const char *fmt, ...) _printf_(3, 4);
int tp_respond_errorv(struct tp_response *r, int status, const char *fmt, va_list ap) _printf_(3, 0);
/* Add "Name: value\r\n" (value printf-formatted). */
int tp_header(struct tp_response *r, const char *name, const char *fmt, ...) _printf_(3, 4);
/* Answer with len bytes of fd from first (fd is taken over, also on failure). */
int tp_respond_file(struct tp_response *r, int status, const char *ctype, int fd, uint64_t first, uint64_t len,
                    atomic_uint_fast64_t *sent);

struct tp_app {
        void *userdata;
        void (*admit)(void *userdata, const struct tp_request *req, struct tp_plan *ret);
        void (*handle)(void *userdata, const struct tp_request *req, struct tp_response *resp);
};

struct tp_config {
        const char *listen[_TP_LISTENER_MAX];   /* HOST:PORT; listen[TP_ENROLL] NULL: no enrollment port */
        const char *cert, *key;                 /* the server's identity */
        X509 *device_ca, *operator_ca;          /* operator_ca may equal device_ca */
        const char *spool_dir;
        struct tp_limits limits;
        struct tp_app app;
};

typedef struct transport transport;

/* Load TLS, bind the listeners (so their ports are known) and start the workers. */
int tp_new(const struct tp_config *cfg, transport **ret);
/* "HOST:PORT" the listener is bound to. */
int tp_address(transport *t, enum tp_listener l, char *buf, size_t n);
/* Run until tp_stop() or SIGTERM/SIGINT. */
int tp_run(transport *t);
/* Safe from any thread. */
void tp_stop(transport *t);
void tp_free(transport *t);
struct tp_stats *tp_get_stats(transport *t);
