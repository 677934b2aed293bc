/* api-rollout.c: routes for rollouts, tags, maintenance windows, retries, compliance and drift; the check-in hook. */
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

static int respond_json(struct route_ctx *x, int status, json_t *j) {
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

        if (!s)
                return tp_respond_error(x->resp, 500, "out of memory");
        if (tp_respond(x->resp, status, "application/json", s, strlen(s)) < 0)
                tp_respond_error(x->resp, 500, "out of memory");
        free(s);
        return status;
}

static int store_error(struct route_ctx *x, int r) {
        switch (r) {
        case -ENOENT:
                return tp_respond_error(x->resp, 404, "%s", ringil_detail());
        case -EEXIST:
        case -EPERM:
                return tp_respond_error(x->resp, 409, "%s", ringil_detail());
        case -EACCES:
                atomic_fetch_add(&x->srv->m.auth_refused, 1);
                return tp_respond_error(x->resp, 403, "%s", ringil_detail());
        case -ENODATA:
                return tp_respond_error(x->resp, 422, "%s", ringil_detail());
        case -E2BIG:
                return tp_respond_error(x->resp, 413, "%s", ringil_detail());
        default:
                return api_store_error(x, r);   /* 503 with Retry-After */
        }
}

static int parse_id(const char *s, int64_t *ret) {
        uint64_t u;

        if (parse_u64(s, &u) < 0 || u == 0 || u > INT64_MAX)
                return -ENOENT;
        *ret = (int64_t) u;
        return 0;
}

/* The request's JSON object body; an empty body is {}. Answers 400 itself (returns NULL). */
static json_t *body_object(struct route_ctx *x) {
        json_error_t e;
        json_t *j;

        if (x->req->body_len == 0)
                return json_object();
        j = json_loadb(x->req->body, x->req->body_len, JSON_REJECT_DUPLICATES, &e);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                tp_respond_error(x->resp, 400, "body is not a JSON object%s%s", j ? "" : ": ", j ? "" : e.text);
                return NULL;
        }
        return j;
}

bool api_is_approver(const struct server *srv, const char *cn) {
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

static int respond_rollout(struct route_ctx *x, int status, int64_t id) {
        json_t *j = NULL;
        int r = store_rollout_json(x->srv->db, id, &j);

        if (r < 0)
                return store_error(x, r);
        r = respond_json(x, status, j);
        json_decref(j);
        return r;
}

/* ---- rollouts ---- */

static int route_rollout_create(struct route_ctx *x) {
        struct rollout_spec spec;
        int64_t rid = 0;
        int r;

        r = rollout_spec_parse(x->req->body, x->req->body_len, &spec);
        if (r < 0)
                return tp_respond_error(x->resp, r == -RINGIL_ETOOBIG ? 413 : 400, "rollout: %s", ringil_detail());
        r = store_rollout_create(x->srv->db, &spec, x->req->body, x->req->peer, (int64_t) time(NULL), &rid);
        rollout_spec_done(&spec);
        if (r < 0)
                return store_error(x, r);
        log_info("rollout %" PRId64 " created by '%s'", rid, x->req->peer);
        return respond_rollout(x, 201, rid);
}

static int route_rollouts(struct route_ctx *x) {
        json_t *j = NULL;
        int r = store_rollouts_json(x->srv->db, &j);

        if (r < 0)
                return store_error(x, r);
        r = respond_json(x, 200, j);
        json_decref(j);
        return r;
}

static int route_rollout(struct route_ctx *x) {
        int64_t rid;

        if (parse_id(x->param, &rid) < 0)
                return tp_respond_error(x->resp, 404, "no such rollout");
        return respond_rollout(x, 200, rid);
}

static int route_rollout_action(struct route_ctx *x) {
        static const struct {
                const char *name;
                enum rollout_action a;
        } actions[] = {
                { "approve", ROLLOUT_APPROVE }, { "start", ROLLOUT_START }, { "pause", ROLLOUT_PAUSE },
                { "resume", ROLLOUT_RESUME },   { "abort", ROLLOUT_ABORT }, { "retry", ROLLOUT_RETRY },
        };
        struct rollout_action_args args = { .operator_name = x->req->peer };
        _cleanup_free_ const char **drones = NULL;
        const char *action = strrchr(x->http->path, '/') + 1, *k;   /* the table's paths end in the action */
        enum rollout_action a = ROLLOUT_PAUSE;
        json_t *j, *v;
        int64_t rid;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                if (streq(actions[i].name, action))
                        a = actions[i].a;
        if (parse_id(x->param, &rid) < 0)
                return tp_respond_error(x->resp, 404, "no such rollout");
        j = body_object(x);
        if (!j)
                return 400;
        json_object_foreach(j, k, v) {
                if (a == ROLLOUT_START && streq(k, "start_at") && json_is_integer(v) && json_integer_value(v) >= 0)
                        args.start_at = json_integer_value(v);
                else if (a == ROLLOUT_RETRY && streq(k, "drones") && json_is_array(v) && json_array_size(v) > 0 &&
                         json_array_size(v) <= 1024 && !drones) {
                        size_t i;
                        json_t *d;
                        drones = calloc(json_array_size(v), sizeof(char *));
                        if (!drones) {
                                json_decref(j);
                                return tp_respond_error(x->resp, 500, "out of memory");
                        }
                        json_array_foreach(v, i, d) {
                                if (!json_is_string(d) || ca_name_valid(json_string_value(d)) < 0) {
                                        json_decref(j);
                                        return tp_respond_error(x->resp, 400, "'drones' must list drone names");
                                }
                                drones[i] = json_string_value(d);
                        }
                        args.drones = drones;
                        args.n_drones = json_array_size(v);
                } else {
                        r = tp_respond_error(x->resp, 400, "%s: unexpected key '%s'", action, k);
                        json_decref(j);
                        return r;
                }
        }
        r = store_rollout_action(x->srv->db, rid, a, &args, (int64_t) time(NULL));
        json_decref(j);   /* the drone names point into j */
        if (r < 0)
                return store_error(x, r);
        log_info("rollout %" PRId64 ": %s by '%s'", rid, action, x->req->peer);
        return respond_rollout(x, 200, rid);
}

/* ---- drones ---- */

static int route_tags(struct route_ctx *x) {
        static const char *const keys[] = { "add", "remove" };
        json_t *j, *out, *tags, *v;
        const char *k;
        int r;

        if (ca_name_valid(x->param) < 0)
                return tp_respond_error(x->resp, 404, "no such drone");
        j = body_object(x);
        if (!j)
                return 400;
        json_object_foreach(j, k, v) {
                size_t i;
                json_t *t;
                if ((!streq(k, "add") && !streq(k, "remove")) || !json_is_array(v) || json_array_size(v) > 64) {
                        json_decref(j);
                        return tp_respond_error(x->resp, 400, "expected {\"add\": [TAG…], \"remove\": [TAG…]}");
                }
                json_array_foreach(v, i, t)
                        if (!json_is_string(t) || ca_name_valid(json_string_value(t)) < 0) {
                                json_decref(j);
                                return tp_respond_error(x->resp, 400, "a tag is a name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})");
                        }
        }
        for (size_t n = 0; n < ELEMENTSOF(keys); n++) {
                size_t i;
                json_t *t;
                json_array_foreach(json_object_get(j, keys[n]), i, t) {
                        r = store_drone_tag(x->srv->db, x->param, json_string_value(t), n == 0);
                        if (r < 0) {
                                json_decref(j);
                                return store_error(x, r);
                        }
                }
        }
        json_decref(j);
        out = json_pack("{s:s}", "id", x->param);
        if (!out)
                return tp_respond_error(x->resp, 500, "out of memory");
        r = store_drone_decorate(x->srv->db, x->param, out);
        if (r < 0) {
                json_decref(out);
                return store_error(x, r);
        }
        tags = json_incref(json_object_get(out, "tags"));
        json_decref(out);
        out = json_pack("{s:s, s:o}", "id", x->param, "tags", tags ? tags : json_array());
        r = respond_json(x, 200, out);
        json_decref(out);
        return r;
}

static int route_drone_retry(struct route_ctx *x) {
        uint32_t gen = 0;
        json_t *out;
        int r;

        r = ca_name_valid(x->param) < 0 ? ringil_fail(-ENOENT, "no such drone") : store_drone_retry(x->srv->db, x->param, &gen);
        if (r < 0)
                return store_error(x, r);
        log_info("drone '%s' told to retry (generation %" PRIu32 ") by '%s'", x->param, gen, x->req->peer);
        out = json_pack("{s:s, s:I}", "id", x->param, "retry", (json_int_t) gen);
        r = respond_json(x, 200, out);
        json_decref(out);
        return r;
}

static int route_drone_clear(struct route_ctx *x) {
        json_t *out;
        int r;

        r = ca_name_valid(x->param) < 0 ? ringil_fail(-ENOENT, "no such drone")
                                        : store_drone_clear(x->srv->db, x->param, (int64_t) time(NULL));
        if (r < 0)
                return store_error(x, r);
        log_info("assignment of drone '%s' cleared by '%s'", x->param, x->req->peer);
        out = json_pack("{s:s, s:b}", "id", x->param, "cleared", r > 0);
        r = respond_json(x, 200, out);
        json_decref(out);
        return r;
}

static int route_compliance(struct route_ctx *x) {
        json_t *j = NULL;
        int r;

        if (ca_name_valid(x->param) < 0)
                return tp_respond_error(x->resp, 404, "no such drone");
        r = store_compliance_json(x->srv->db, x->param, &j);
        if (r < 0)
                return store_error(x, r);
        r = respond_json(x, 200, j);
        json_decref(j);
        return r;
}

/* ---- windows ---- */

static int route_windows(struct route_ctx *x) {
        json_t *j = NULL;
        int r = store_windows_json(x->srv->db, &j);

        if (r < 0)
                return store_error(x, r);
        r = respond_json(x, 200, j);
        json_decref(j);
        return r;
}

static int route_window_set(struct route_ctx *x) {
        struct fleet_window w[FLEET_MAX_WINDOWS];
        char text[FLEET_WINDOWS_TEXT_MAX];
        const char *target = NULL, *spec = NULL;
        json_t *j, *out, *wv = NULL;
        size_t n = 0;
        int r;

        j = body_object(x);
        if (!j)
                return 400;
        if (json_unpack(j, "{s:s, s:o !}", "target", &target, "windows", &wv) < 0 ||
            !(json_is_null(wv) || (spec = json_string_value(wv))) ||
            !((strncmp(target, "group:", 6) == 0 && ca_name_valid(target + 6) >= 0) ||
              (strncmp(target, "drone:", 6) == 0 && ca_name_valid(target + 6) >= 0))) {
                json_decref(j);
                return tp_respond_error(x->resp, 400, "expected {\"target\": \"group:G\" | \"drone:ID\", "
                                                      "\"windows\": \"HH:MM-HH:MM,…\" | null}");
        }
        if (spec && fleet_windows_parse(spec, w, &n) < 0) {
                r = tp_respond_error(x->resp, 400, "%s", ringil_detail());
                json_decref(j);
                return r;
        }
        if (spec)
                fleet_windows_format(w, n, text, sizeof(text));
        r = store_window_set(x->srv->db, target, spec ? text : NULL);
        if (r < 0) {
                json_decref(j);
                return store_error(x, r);
        }
        log_info("maintenance windows of %s: %s (by '%s')", target, spec ? text : "any time", x->req->peer);
        out = json_pack("{s:s, s:s?}", "target", target, "windows", spec ? text : NULL);
        json_decref(j);
        r = respond_json(x, 200, out);
        json_decref(out);
        return r;
}

/* ---- drift ---- */

static int route_drift(struct route_ctx *x) {
        uint32_t polls = x->srv->cfg.silent_polls;
        json_t *j = NULL;
        int r;

        if (x->http->query[0] &&
            (strncmp(x->http->query, "silent_polls=", 13) != 0 || parse_u32_range(x->http->query + 13, 1, 10000, &polls) < 0))
                return tp_respond_error(x->resp, 400, "query: only silent_polls=N (1..10000)");
        r = store_drift_json(x->srv->db, (int64_t) time(NULL), polls * x->srv->cfg.poll_interval, &j);
        if (r < 0)
                return store_error(x, r);
        json_object_set_new(j, "silent_polls", json_integer(polls));
        r = respond_json(x, 200, j);
        json_decref(j);
        return r;
}

/* ---- the table ---- */

int api_rollout_routes_register(struct route_table *t) {
        const struct route routes[] = {
                ROUTE(ROUTE_POST, "/api/v1/rollouts", ROLE_OPERATOR, route_rollout_create, .body = TP_BODY_MEMORY,
                      .max_body = ROLLOUT_MAX_SPEC),
                ROUTE(ROUTE_GET, "/api/v1/rollouts", ROLE_OPERATOR, route_rollouts),
                ROUTE(ROUTE_GET, "/api/v1/rollouts/*", ROLE_OPERATOR, route_rollout),
                ROUTE(ROUTE_POST, "/api/v1/rollouts/*/approve", ROLE_APPROVER, route_rollout_action,
                      .body = TP_BODY_MEMORY, .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/rollouts/*/start", ROLE_OPERATOR, route_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/rollouts/*/pause", ROLE_OPERATOR, route_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/rollouts/*/resume", ROLE_OPERATOR, route_rollout_action,
                      .body = TP_BODY_MEMORY, .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/rollouts/*/abort", ROLE_OPERATOR, route_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/rollouts/*/retry", ROLE_OPERATOR, route_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/drones/*/tags", ROLE_OPERATOR, route_tags, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/drones/*/retry", ROLE_OPERATOR, route_drone_retry),
                ROUTE(ROUTE_POST, "/api/v1/drones/*/clear", ROLE_OPERATOR, route_drone_clear),
                ROUTE(ROUTE_GET, "/api/v1/drones/*/compliance", ROLE_SELF_OR_OPERATOR, route_compliance),
                ROUTE(ROUTE_GET, "/api/v1/windows", ROLE_OPERATOR, route_windows),
                ROUTE(ROUTE_POST, "/api/v1/windows", ROLE_OPERATOR, route_window_set, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_GET, "/api/v1/drift", ROLE_OPERATOR, route_drift),
        };

        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                int r = route_table_add(t, &routes[i]);
                if (r < 0)
                        return ringil_fail(r, "route '%s' cannot be registered", routes[i].path);
        }
        return 0;
}

/* ---- the check-in's part ---- */

int api_rollout_checkin(struct route_ctx *x, const struct fleet_status *st, bool *ret_held, struct fleet_assignment *a) {
        struct rollout_checkin_result res;
        int64_t now = (int64_t) time(NULL);
        int r;

        /* compliance first: a hand takes the drift gate's baseline from the stored report */
        r = store_compliance_update(x->srv->db, x->req->peer, st, now, &a->resend_compliance);
        if (r >= 0)
                r = store_rollout_checkin(x->srv->db, x->req->peer, &x->auth, st, now, &res);
        if (r < 0)
                return r;
        if (res.handed) {
                /* the drone's own assignment is the rollout's release from now on (written by the hand) */
                r = store_release_get(x->srv->db, x->auth.ro.release, &x->auth.release);
                if (r < 0)
                        return r;
                x->auth.assigned = true;
                atomic_fetch_add(&x->srv->m.rollout_hands, 1);
                log_info("rollout %" PRId64 ": handed its release to '%s'", res.rollout, x->req->peer);
        }
        *ret_held = res.held;
        a->retry = res.retry;
        a->rate = res.rate;
        a->rollout = res.rollout;
        a->n_windows = res.n_windows;
        memcpy(a->windows, res.windows, sizeof(a->windows));
        return 0;
}
