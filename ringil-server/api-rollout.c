/* api-rollout.c: routes for rollouts, tags, maintenance windows, retries, compliance and drift; check-in hook. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fleet-window.h"
#include "log.h"
#include "parse.h"
#include "rollout.h"
#include "server.h"
#include "store-rollout.h"

enum route_role {
        ROLE_OPERATOR,
        ROLE_APPROVER,          /* an operator named in `approvers` (any operator when unset) */
        ROLE_SELF_OR_OPERATOR,  /* the drone the path names, or an operator */
};

typedef int (*route_fn)(struct conn *c, const struct http_request *req, const char *id, const char *action);

struct route {
        enum http_method method;
        const char *path;       /* segments; "{id}" captures a name or number, "{action}" one of the route's verbs */
        enum route_role role;
        route_fn handler;
};

static int route_rollout_create(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_rollouts(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_rollout(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_rollout_action(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_tags(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_drone_retry(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_drone_clear(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_compliance(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_windows(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_window_set(struct conn *c, const struct http_request *req, const char *id, const char *action);
static int route_drift(struct conn *c, const struct http_request *req, const char *id, const char *action);

/* INVARIANT: every route names its role here; the dispatcher checks it before the handler runs. */
static const struct route routes[] = {
        { HTTP_POST, "/api/v1/rollouts", ROLE_OPERATOR, route_rollout_create },
        { HTTP_GET, "/api/v1/rollouts", ROLE_OPERATOR, route_rollouts },
        { HTTP_GET, "/api/v1/rollouts/{id}", ROLE_OPERATOR, route_rollout },
        { HTTP_POST, "/api/v1/rollouts/{id}/approve", ROLE_APPROVER, route_rollout_action },
        { HTTP_POST, "/api/v1/rollouts/{id}/start", ROLE_OPERATOR, route_rollout_action },
        { HTTP_POST, "/api/v1/rollouts/{id}/pause", ROLE_OPERATOR, route_rollout_action },
        { HTTP_POST, "/api/v1/rollouts/{id}/resume", ROLE_OPERATOR, route_rollout_action },
        { HTTP_POST, "/api/v1/rollouts/{id}/abort", ROLE_OPERATOR, route_rollout_action },
        { HTTP_POST, "/api/v1/rollouts/{id}/retry", ROLE_OPERATOR, route_rollout_action },
        { HTTP_POST, "/api/v1/drones/{id}/tags", ROLE_OPERATOR, route_tags },
        { HTTP_POST, "/api/v1/drones/{id}/retry", ROLE_OPERATOR, route_drone_retry },
        { HTTP_POST, "/api/v1/drones/{id}/clear", ROLE_OPERATOR, route_drone_clear },
        { HTTP_GET, "/api/v1/drones/{id}/compliance", ROLE_SELF_OR_OPERATOR, route_compliance },
        { HTTP_GET, "/api/v1/windows", ROLE_OPERATOR, route_windows },
        { HTTP_POST, "/api/v1/windows", ROLE_OPERATOR, route_window_set },
        { HTTP_GET, "/api/v1/drift", ROLE_OPERATOR, route_drift },
};

/* Match path against a pattern of segments; {id} captures one segment (1..64 bytes). */
static bool match(const char *pattern, const char *path, char id[static 65], const char **ret_action) {
        const char *p = pattern, *q = path;

        id[0] = '\0';
        *ret_action = "";
        while (*p && *q) {
                if (strncmp(p, "{id}", 4) == 0) {
                        size_t n = strcspn(q, "/");
                        if (n == 0 || n > 64)
                                return false;
                        memcpy(id, q, n);
                        id[n] = '\0';
                        p += 4;
                        q += n;
                        continue;
                }
                if (*p != *q)
                        return false;
                p++;
                q++;
        }
        if (*p || *q)
                return false;
        {
                const char *slash = strrchr(pattern, '/');
                if (slash && slash[1] != '{')
                        *ret_action = slash + 1;
        }
        return true;
}

static bool is_approver(const struct server *srv, const char *cn) {
        const char *list = srv->cfg.approvers;
        size_t n = strlen(cn);

        if (!list)
                return true;
        for (const char *p = list; *p;) {
                size_t len = strcspn(p, ",");
                if (len == n && strncmp(p, cn, n) == 0)
                        return true;
                p += len;
                if (*p == ',')
                        p++;
        }
        return false;
}

int api_rollout_handle(struct conn *c, const struct http_request *req) {
        enum http_method m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
        bool path_known = false;
        char id[65];
        const char *action;

        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                const struct route *rt = &routes[i];
                int r;

                if (!match(rt->path, req->path, id, &action))
                        continue;
                path_known = true;
                if (rt->method != m)
                        continue;
                switch (rt->role) {
                case ROLE_SELF_OR_OPERATOR:
                        r = ca_name_valid(id) < 0 ? -conn_error(c, 404, "no such drone")
                                                  : api_authorize_self_or_operator(c, id);
                        break;
                case ROLE_APPROVER:
                        r = api_authorize_operator(c);
                        if (r >= 0 && !is_approver(c->srv, c->peer)) {
                                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                                log_notice("operator '%s' tried to approve without approval rights", c->peer);
                                r = -conn_error(c, 403, "operator '%s' may not approve rollouts", c->peer);
                        }
                        break;
                case ROLE_OPERATOR:
                default:
                        r = api_authorize_operator(c);
                        break;
                }
                if (r < 0)
                        return api_skip_body(c, req) < 0 ? -ECONNRESET : 1;
                r = rt->handler(c, req, id, action);
                return r < 0 ? r : 1;
        }
        if (path_known) {
                /* The path is ours, the method is not: nothing else will take it. */
                if (api_skip_body(c, req) < 0)
                        return -ECONNRESET;
                (void) conn_error(c, 405, "method not allowed on %s", req->path);
                return 1;
        }
        return 0;
}

/* ---- helpers ---- */

static int parse_id(const char *s, int64_t *ret) {
        uint64_t u;

        if (parse_u64(s, &u) < 0 || u == 0 || u > INT64_MAX)
                return -ENOENT;
        *ret = (int64_t) u;
        return 0;
}

static int store_error(struct conn *c, int r) {
        switch (r) {
        case -ENOENT:
                return conn_error(c, 404, "%s", ringil_detail());
        case -EEXIST:
        case -EPERM:
                return conn_error(c, 409, "%s", ringil_detail());
        case -EACCES:
                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                return conn_error(c, 403, "%s", ringil_detail());
        case -ENODATA:
                return conn_error(c, 422, "%s", ringil_detail());
        case -E2BIG:
                return conn_error(c, 413, "%s", ringil_detail());
        default:
                return conn_error(c, 503, "store: %s", ringil_detail());
        }
}

static int respond_rollout(struct conn *c, int status, int64_t id) {
        json_t *j = NULL;
        int r = store_rollout_json(c->srv->db, id, &j);

        if (r < 0)
                return store_error(c, r);
        r = api_respond_json(c, status, j);
        json_decref(j);
        return r;
}

/* A small JSON object body (optional: an empty body is {}). */
static int read_object(struct conn *c, const struct http_request *req, size_t max, json_t **ret) {
        _cleanup_free_ char *body = NULL;
        json_error_t e;
        size_t len = 0;
        json_t *j;
        int r;

        if (req->has_content_length && req->content_length == 0) {
                *ret = json_object();
                return *ret ? 0 : -ENOMEM;
        }
        r = api_read_body(c, req, max, &body, &len);
        if (r < 0)
                return r;
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                (void) conn_error(c, 400, "body is not a JSON object%s%s", j ? "" : ": ", j ? "" : e.text);
                return -RINGIL_EMALFORMED;
        }
        *ret = j;
        return 0;
}

/* read_object's failures: the answer is out already; keep the connection unless it broke. */
static int body_failed(int r) {
        return r == -ECONNRESET || r == -ENOMEM ? r : 0;
}

/* ---- rollouts ---- */

static int route_rollout_create(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        _cleanup_free_ char *body = NULL;
        struct rollout_spec spec;
        int64_t rid = 0;
        size_t len;
        int r;

        (void) id;
        (void) action;
        r = api_read_body(c, req, ROLLOUT_MAX_SPEC, &body, &len);
        if (r < 0)
                return body_failed(r);
        r = rollout_spec_parse(body, len, &spec);
        if (r < 0)
                return conn_error(c, r == -RINGIL_ETOOBIG ? 413 : 400, "rollout: %s", ringil_detail());
        r = store_rollout_create(c->srv->db, &spec, body, c->peer, (int64_t) time(NULL), &rid);
        rollout_spec_done(&spec);
        if (r < 0)
                return store_error(c, r);
        log_info("rollout %" PRId64 " created by '%s'", rid, c->peer);
        return respond_rollout(c, 201, rid);
}

static int route_rollouts(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        json_t *j = NULL;
        int r;

        (void) id;
        (void) action;
        if (api_skip_body(c, req) < 0)
                return -ECONNRESET;
        r = store_rollouts_json(c->srv->db, &j);
        if (r < 0)
                return store_error(c, r);
        r = api_respond_json(c, 200, j);
        json_decref(j);
        return r;
}

static int route_rollout(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        int64_t rid;

        (void) action;
        if (api_skip_body(c, req) < 0)
                return -ECONNRESET;
        if (parse_id(id, &rid) < 0)
                return conn_error(c, 404, "no such rollout");
        return respond_rollout(c, 200, rid);
}

static int route_rollout_action(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        static const struct {
                const char *name;
                enum rollout_action a;
        } actions[] = {
                { "approve", ROLLOUT_APPROVE }, { "start", ROLLOUT_START }, { "pause", ROLLOUT_PAUSE },
                { "resume", ROLLOUT_RESUME },   { "abort", ROLLOUT_ABORT }, { "retry", ROLLOUT_RETRY },
        };
        struct rollout_action_args args = { .operator_name = c->peer };
        _cleanup_free_ const char **drones = NULL;
        json_t *j = NULL, *v;
        enum rollout_action a = ROLLOUT_PAUSE;
        const char *k;
        int64_t rid;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                if (streq(actions[i].name, action))
                        a = actions[i].a;
        r = read_object(c, req, SERVER_MAX_JSON_BODY, &j);
        if (r < 0)
                return body_failed(r);
        if (parse_id(id, &rid) < 0) {
                json_decref(j);
                return conn_error(c, 404, "no such rollout");
        }
        json_object_foreach(j, k, v) {
                if (a == ROLLOUT_START && streq(k, "start_at") && json_is_integer(v) && json_integer_value(v) >= 0)
                        args.start_at = json_integer_value(v);
                else if (a == ROLLOUT_RETRY && streq(k, "drones") && json_is_array(v) && json_array_size(v) > 0 &&
                         json_array_size(v) <= 1024 && !drones) {
                        size_t i;
                        json_t *x;
                        drones = calloc(json_array_size(v), sizeof(char *));
                        if (!drones) {
                                json_decref(j);
                                return -ENOMEM;
                        }
                        json_array_foreach(v, i, x) {
                                if (!json_is_string(x) || ca_name_valid(json_string_value(x)) < 0) {
                                        json_decref(j);
                                        return conn_error(c, 400, "'drones' must list drone names");
                                }
                                drones[i] = json_string_value(x);
                        }
                        args.drones = drones;
                        args.n_drones = json_array_size(v);
                } else {
                        r = conn_error(c, 400, "%s: unexpected key '%s'", action, k);
                        json_decref(j);
                        return r;
                }
        }
        r = store_rollout_action(c->srv->db, rid, a, &args, (int64_t) time(NULL));
        json_decref(j);   /* the drone names point into j */
        if (r < 0)
                return store_error(c, r);
        log_info("rollout %" PRId64 ": %s by '%s'", rid, action, c->peer);
        return respond_rollout(c, 200, rid);
}

/* ---- drones ---- */

static int route_tags(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        static const char *const keys[] = { "add", "remove" };
        json_t *j = NULL, *out = NULL, *tags;
        const char *k;
        json_t *v;
        int r;

        (void) action;
        r = read_object(c, req, SERVER_MAX_JSON_BODY, &j);
        if (r < 0)
                return body_failed(r);
        if (ca_name_valid(id) < 0) {
                json_decref(j);
                return conn_error(c, 404, "no such drone");
        }
        json_object_foreach(j, k, v) {
                size_t i;
                json_t *x;
                if ((!streq(k, "add") && !streq(k, "remove")) || !json_is_array(v) || json_array_size(v) > 64) {
                        json_decref(j);
                        return conn_error(c, 400, "expected {\"add\": [TAG…], \"remove\": [TAG…]}");
                }
                json_array_foreach(v, i, x)
                        if (!json_is_string(x) || ca_name_valid(json_string_value(x)) < 0) {
                                json_decref(j);
                                return conn_error(c, 400, "a tag is a name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})");
                        }
        }
        for (size_t n = 0; n < ELEMENTSOF(keys); n++) {
                size_t i;
                json_t *x;
                json_array_foreach(json_object_get(j, keys[n]), i, x) {
                        r = store_drone_tag(c->srv->db, id, json_string_value(x), n == 0);
                        if (r < 0) {
                                json_decref(j);
                                return store_error(c, r);
                        }
                }
        }
        json_decref(j);
        out = json_pack("{s:s}", "id", id);
        if (!out)
                return -ENOMEM;
        r = store_drone_decorate(c->srv->db, id, out);
        if (r < 0) {
                json_decref(out);
                return store_error(c, r);
        }
        tags = json_incref(json_object_get(out, "tags"));
        json_decref(out);
        out = json_pack("{s:s, s:o}", "id", id, "tags", tags ? tags : json_array());
        r = api_respond_json(c, 200, out);
        json_decref(out);
        return r;
}

static int route_drone_retry(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        uint32_t gen = 0;
        json_t *out;
        int r;

        (void) action;
        if (api_skip_body(c, req) < 0)
                return -ECONNRESET;
        r = ca_name_valid(id) < 0 ? ringil_fail(-ENOENT, "no such drone") : store_drone_retry(c->srv->db, id, &gen);
        if (r < 0)
                return store_error(c, r);
        log_info("drone '%s' told to retry (generation %" PRIu32 ") by '%s'", id, gen, c->peer);
        out = json_pack("{s:s, s:I}", "id", id, "retry", (json_int_t) gen);
        r = api_respond_json(c, 200, out);
        json_decref(out);
        return r;
}

static int route_drone_clear(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        json_t *out;
        int r;

        (void) action;
        if (api_skip_body(c, req) < 0)
                return -ECONNRESET;
        r = ca_name_valid(id) < 0 ? ringil_fail(-ENOENT, "no such drone")
                                  : store_drone_clear(c->srv->db, id, (int64_t) time(NULL));
        if (r < 0)
                return store_error(c, r);
        log_info("assignment of drone '%s' cleared by '%s'", id, c->peer);
        out = json_pack("{s:s, s:b}", "id", id, "cleared", r > 0);
        r = api_respond_json(c, 200, out);
        json_decref(out);
        return r;
}

static int route_compliance(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        json_t *j = NULL;
        int r;

        (void) action;
        if (api_skip_body(c, req) < 0)
                return -ECONNRESET;
        r = store_compliance_json(c->srv->db, id, &j);
        if (r < 0)
                return store_error(c, r);
        r = api_respond_json(c, 200, j);
        json_decref(j);
        return r;
}

/* ---- windows ---- */

static int route_windows(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        json_t *j = NULL;
        int r;

        (void) id;
        (void) action;
        if (api_skip_body(c, req) < 0)
                return -ECONNRESET;
        r = store_windows_json(c->srv->db, &j);
        if (r < 0)
                return store_error(c, r);
        r = api_respond_json(c, 200, j);
        json_decref(j);
        return r;
}

static int route_window_set(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        struct fleet_window w[FLEET_MAX_WINDOWS];
        char text[FLEET_WINDOWS_TEXT_MAX];
        const char *target = NULL, *spec = NULL;
        json_t *j = NULL, *out, *wv = NULL;
        size_t n = 0;
        int r;

        (void) id;
        (void) action;
        r = read_object(c, req, SERVER_MAX_JSON_BODY, &j);
        if (r < 0)
                return body_failed(r);
        if (json_unpack(j, "{s:s, s:o !}", "target", &target, "windows", &wv) < 0 ||
            !(json_is_null(wv) || (spec = json_string_value(wv))) ||
            !((strncmp(target, "group:", 6) == 0 && ca_name_valid(target + 6) >= 0) ||
              (strncmp(target, "drone:", 6) == 0 && ca_name_valid(target + 6) >= 0))) {
                json_decref(j);
                return conn_error(c, 400, "expected {\"target\": \"group:G\" | \"drone:ID\", \"windows\": \"HH:MM-HH:MM,…\" | null}");
        }
        if (spec && fleet_windows_parse(spec, w, &n) < 0) {
                r = conn_error(c, 400, "%s", ringil_detail());
                json_decref(j);
                return r;
        }
        if (spec)
                fleet_windows_format(w, n, text, sizeof(text));
        r = store_window_set(c->srv->db, target, spec ? text : NULL);
        if (r < 0) {
                json_decref(j);
                return store_error(c, r);
        }
        log_info("maintenance windows of %s: %s (by '%s')", target, spec ? text : "any time", c->peer);
        out = json_pack("{s:s, s:s?}", "target", target, "windows", spec ? text : NULL);
        json_decref(j);
        r = api_respond_json(c, 200, out);
        json_decref(out);
        return r;
}

/* ---- drift ---- */

static int route_drift(struct conn *c, const struct http_request *req, const char *id, const char *action) {
        uint32_t polls = c->srv->cfg.silent_polls;
        json_t *j = NULL;
        int r;

        (void) id;
        (void) action;
        if (api_skip_body(c, req) < 0)
                return -ECONNRESET;
        if (req->query[0]) {
                if (strncmp(req->query, "silent_polls=", 13) != 0 || parse_u32_range(req->query + 13, 1, 10000, &polls) < 0)
                        return conn_error(c, 400, "query: only silent_polls=N (1..10000)");
        }
        r = store_drift_json(c->srv->db, (int64_t) time(NULL), polls * c->srv->cfg.poll_interval, &j);
        if (r < 0)
                return store_error(c, r);
        json_object_set_new(j, "silent_polls", json_integer(polls));
        r = api_respond_json(c, 200, j);
        json_decref(j);
        return r;
}

/* ---- the check-in's part ---- */

int api_rollout_checkin(struct conn *c, const char *group, const struct fleet_status *st, bool *ret_held,
                        struct fleet_assignment *a) {
        struct rollout_checkin_result res;
        int64_t now = (int64_t) time(NULL);
        int r;

        r = store_rollout_checkin(c->srv->db, c->peer, group, st, now, true, &res);
        if (r >= 0)
                r = store_compliance_update(c->srv->db, c->peer, st, now);
        if (r < 0)
                return r;
        if (res.handed) {
                atomic_fetch_add(&c->srv->m.rollout_hands, 1);
                log_info("rollout %" PRId64 ": handed its release to '%s'", res.rollout, c->peer);
        }
        *ret_held = res.held;
        a->retry = res.retry;
        a->rate = res.rate;
        a->rollout = res.rollout;
        a->n_windows = res.n_windows;
        memcpy(a->windows, res.windows, sizeof(a->windows));
        return 0;
}
