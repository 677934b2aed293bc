/* routes.c: the route table: registration rules and path matching (no handlers, no store). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "routes.h"

static const char *const role_names[_ROLE_MAX] = {
        [ROLE_UNSET] = "unset",
        [ROLE_ENROLLING] = "enrolling",
        [ROLE_DRONE] = "drone",
        [ROLE_OPERATOR] = "operator",
        [ROLE_DRONE_OR_OPERATOR] = "drone-or-operator",
        [ROLE_SELF_OR_OPERATOR] = "self-or-operator",
        [ROLE_APPROVER] = "approver",
};

const char *route_role_to_string(enum route_role r) {
        return (unsigned) r < _ROLE_MAX ? role_names[r] : NULL;
}

/* One segment of a pattern against one of a path; both end at '/' or NUL. */
static size_t seg_len(const char *s) {
        const char *e = strchr(s, '/');
        return e ? (size_t) (e - s) : strlen(s);
}

static bool match(const char *pat, const char *path, char param[static ROUTE_PARAM_MAX]) {
        param[0] = '\0';
        if (*pat != '/' || *path != '/')
                return false;
        pat++;
        path++;
        for (;;) {
                size_t pl = seg_len(pat), sl = seg_len(path);

                if (pl == 2 && memcmp(pat, "**", 2) == 0) {
                        size_t n = strlen(path);
                        if (n >= ROUTE_PARAM_MAX)
                                return false;
                        memcpy(param, path, n + 1);
                        return true;
                }
                if (pl == 1 && pat[0] == '*') {
                        if (sl == 0 || sl >= ROUTE_PARAM_MAX)
                                return false;
                        memcpy(param, path, sl);
                        param[sl] = '\0';
                } else if (pl != sl || memcmp(pat, path, pl) != 0)
                        return false;
                pat += pl;
                path += sl;
                if (!*pat || !*path)
                        return !*pat && !*path;
                pat++;   /* both at '/' */
                path++;
        }
}

/* Two patterns that one path could match: equal after treating '*' as any segment. */
static bool overlap(const char *a, const char *b) {
        char param[ROUTE_PARAM_MAX];
        return streq(a, b) || match(a, b, param) || match(b, a, param);
}

int route_table_add(struct route_table *t, const struct route *r) {
        /* INVARIANT: every route names who may call it; ROLE_UNSET (the zero value a forgotten
         * .role leaves) is refused here, and the server refuses to start on any refusal. */
        if (r->role <= ROLE_UNSET || r->role >= _ROLE_MAX || !r->handler || !r->path || r->path[0] != '/' ||
            (r->methods & ~(unsigned) _ROUTE_METHODS) || !r->methods)
                return -EINVAL;
        if (r->body != TP_BODY_NONE && r->body != TP_BODY_MEMORY && r->body != TP_BODY_SPOOL)
                return -EINVAL;
        if (r->body == TP_BODY_MEMORY && r->max_body == 0)
                return -EINVAL;
        for (size_t i = 0; i < t->n; i++)
                if ((t->routes[i].methods & r->methods) && overlap(t->routes[i].path, r->path))
                        return -EEXIST;
        if (t->n >= ELEMENTSOF(t->routes))
                return -ENOSPC;
        t->routes[t->n++] = *r;
        return 0;
}

unsigned route_method_bit(enum http_method m) {
        switch (m) {
        case HTTP_GET:
        case HTTP_HEAD:
                return ROUTE_GET;
        case HTTP_POST:
                return ROUTE_POST;
        case HTTP_PUT:
                return ROUTE_PUT;
        case HTTP_DELETE:
                break;
        }
        return 0;
}

unsigned route_table_methods(const struct route_table *t) {
        unsigned m = 0;

        for (size_t i = 0; i < t->n; i++)
                m |= t->routes[i].methods;
        return m;
}

void route_methods_allow(unsigned methods, char *buf, size_t n) {
        static const struct {
                unsigned bit;
                const char *names;
        } order[] = { { ROUTE_GET, "GET, HEAD" }, { ROUTE_POST, "POST" }, { ROUTE_PUT, "PUT" } };
        size_t len = 0;

        if (n == 0)
                return;
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                int k;
                if (!(methods & order[i].bit))
                        continue;
                k = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", order[i].names);
                if (k < 0 || (size_t) k >= n - len) {
                        buf[len] = '\0';   /* whole names only */
                        return;
                }
                len += (size_t) k;
        }
}

const struct route *route_match(const struct route_table *t, enum http_method m, const char *path,
                                char param[static ROUTE_PARAM_MAX], unsigned *ret_methods) {
        unsigned want = route_method_bit(m);
        unsigned allowed = 0;

        for (size_t i = 0; i < t->n; i++) {
                if (!match(t->routes[i].path, path, param))
                        continue;
                if (t->routes[i].methods & want) {
                        *ret_methods = t->routes[i].methods;
                        return &t->routes[i];
                }
                allowed |= t->routes[i].methods;
        }
        param[0] = '\0';
        *ret_methods = allowed;
        return NULL;
}
