/* routes.h: the fleet API as data: {methods, path, role, handler, body}; a route without a role cannot exist. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet-http.h"
#include "transport.h"

/*
 * Who may call a route. The dispatcher (api.c) checks it before the handler runs, in two steps: the
 * certificate's role in the event loop before any body is read, then the drone's record in the store
 * (registered, not revoked, the certificate on record) in the worker. A handler never checks roles.
 */
enum route_role {
        ROLE_UNSET = 0,            /* never valid: route_table_add() refuses it */
        ROLE_ENROLLING,            /* anyone, on the enrollment port only */
        ROLE_DRONE,                /* an allowed drone */
        ROLE_OPERATOR,
        ROLE_DRONE_OR_OPERATOR,
        ROLE_SELF_OR_OPERATOR,     /* the drone named by the path's '*' segment, or an operator */
        ROLE_APPROVER,             /* an operator named in `approvers` (any operator when it is unset) */
        _ROLE_MAX,
};

enum {
        ROUTE_GET = 1 << 0,        /* GET and HEAD */
        ROUTE_POST = 1 << 1,
        ROUTE_PUT = 1 << 2,
        _ROUTE_METHODS = ROUTE_GET | ROUTE_POST | ROUTE_PUT,
};

struct route_ctx;
typedef int (*route_fn)(struct route_ctx *ctx);

struct route {
        unsigned methods;          /* ROUTE_GET | ROUTE_POST | ROUTE_PUT */
        const char *path;          /* literal segments; "*" one non-empty segment; a final "**" the rest */
        enum route_role role;
        route_fn handler;
        enum tp_body body;
        uint64_t max_body;         /* TP_BODY_MEMORY/SPOOL; 0 with SPOOL: the server's max-upload */
};

/* A route, role first: ROUTE(methods, path, role, handler[, body, max_body]). */
#define ROUTE(m, p, r, h, ...) ((struct route) { .methods = (m), .path = (p), .role = (r), .handler = (h), __VA_ARGS__ })

#define ROUTE_TABLE_MAX 64
#define ROUTE_PARAM_MAX 256

struct route_table {
        struct route routes[ROUTE_TABLE_MAX];
        size_t n;
};

/* -EINVAL when the role is unset or unknown, the handler or path is missing, no method is given, the
 * path is not absolute, or a body kind lacks its size; -EEXIST when path and a method are taken; -ENOSPC. */
int route_table_add(struct route_table *t, const struct route *r);

/*
 * The route for (method, path): NULL with *ret_methods = the methods the path does take (0: no such
 * path). param receives the '*' segment or the "**" rest ("" when none).
 */
const struct route *route_match(const struct route_table *t, enum http_method m, const char *path,
                                char param[static ROUTE_PARAM_MAX], unsigned *ret_methods);

/* The ROUTE_* bit of an HTTP method, 0 for one no route can take (DELETE). */
unsigned route_method_bit(enum http_method m);
/* Every method some route of the table takes: a method outside it is 501, not 405. */
unsigned route_table_methods(const struct route_table *t);
/* The Allow header's value for a set of ROUTE_* bits ("GET, HEAD, POST"), into buf. */
void route_methods_allow(unsigned methods, char *buf, size_t n);

const char *route_role_to_string(enum route_role r);
