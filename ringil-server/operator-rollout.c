/* operator-rollout.c: `ringil-server rollout|tag|window|retry|clear|drift` over the operator API. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fleet-ca.h"
#include "fleet-window.h"
#include "log.h"
#include "macro.h"
#include "operator.h"
#include "parse.h"
#include "verb.h"

/* Every option of these commands; each command says which it takes (mask). */
enum {
        O_JSON = 1 << 0,
        O_TARGET = 1 << 1,      /* --fleet, --group, --tag, --drones */
        O_PLAN = 1 << 2,        /* --groups, --success, --soak, --error-count, --error-percent, --deadline,
                                   --rate, --name, --require-approval, --no-drift-gate */
        O_START_AT = 1 << 3,
        O_DRONE = 1 << 4,       /* --drone (repeatable) */
        O_GROUP = 1 << 5,       /* --group alone (windows) */
        O_SILENT = 1 << 6,
};

enum {
        OPT_SERVER = 0x100, OPT_CA, OPT_CERT, OPT_KEY, OPT_JSON, OPT_FLEET, OPT_GROUP, OPT_TAG, OPT_DRONES,
        OPT_GROUPS, OPT_SUCCESS, OPT_SOAK, OPT_ERROR_COUNT, OPT_ERROR_PERCENT, OPT_DEADLINE, OPT_RATE, OPT_NAME,
        OPT_APPROVAL, OPT_NO_DRIFT_GATE, OPT_START_AT, OPT_DRONE, OPT_SILENT,
};

#define MAX_ARGS 64

struct ro_opts {
        struct op_conn conn;
        bool json, fleet, require_approval, no_drift_gate;
        const char *group, *tag, *drones, *groups, *success, *soak, *error_count, *error_percent, *deadline,
                *rate, *name, *start_at, *silent_polls;
        const char *drone[MAX_ARGS];
        size_t n_drone;
        char *args[MAX_ARGS];
        size_t n_args;
};

static int parse(int argc, char *argv[], unsigned allowed, size_t max_args, struct ro_opts *o) {
        static const struct option options[] = {
                { "server", required_argument, NULL, OPT_SERVER },
                { "ca", required_argument, NULL, OPT_CA },
                { "cert", required_argument, NULL, OPT_CERT },
                { "key", required_argument, NULL, OPT_KEY },
                { "json", no_argument, NULL, OPT_JSON },
                { "fleet", no_argument, NULL, OPT_FLEET },
                { "group", required_argument, NULL, OPT_GROUP },
                { "tag", required_argument, NULL, OPT_TAG },
                { "drones", required_argument, NULL, OPT_DRONES },
                { "groups", required_argument, NULL, OPT_GROUPS },
                { "success", required_argument, NULL, OPT_SUCCESS },
                { "soak", required_argument, NULL, OPT_SOAK },
                { "error-count", required_argument, NULL, OPT_ERROR_COUNT },
                { "error-percent", required_argument, NULL, OPT_ERROR_PERCENT },
                { "deadline", required_argument, NULL, OPT_DEADLINE },
                { "rate", required_argument, NULL, OPT_RATE },
                { "name", required_argument, NULL, OPT_NAME },
                { "require-approval", no_argument, NULL, OPT_APPROVAL },
                { "no-drift-gate", no_argument, NULL, OPT_NO_DRIFT_GATE },
                { "start-at", required_argument, NULL, OPT_START_AT },
                { "drone", required_argument, NULL, OPT_DRONE },
                { "silent-polls", required_argument, NULL, OPT_SILENT },
                {},
        };
        unsigned need;
        int c;

        *o = (struct ro_opts) {
                .conn = { .server = getenv("RINGIL_FLEET_SERVER"), .ca = getenv("RINGIL_FLEET_CA"),
                          .cert = getenv("RINGIL_FLEET_CERT"), .key = getenv("RINGIL_FLEET_KEY") },
        };
        optind = 1;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case OPT_SERVER: o->conn.server = optarg; continue;
                case OPT_CA: o->conn.ca = optarg; continue;
                case OPT_CERT: o->conn.cert = optarg; continue;
                case OPT_KEY: o->conn.key = optarg; continue;
                case OPT_JSON: need = O_JSON; o->json = true; break;
                case OPT_FLEET: need = O_TARGET; o->fleet = true; break;
                case OPT_GROUP: need = O_TARGET | O_GROUP; o->group = optarg; break;
                case OPT_TAG: need = O_TARGET; o->tag = optarg; break;
                case OPT_DRONES: need = O_TARGET; o->drones = optarg; break;
                case OPT_GROUPS: need = O_PLAN; o->groups = optarg; break;
                case OPT_SUCCESS: need = O_PLAN; o->success = optarg; break;
                case OPT_SOAK: need = O_PLAN; o->soak = optarg; break;
                case OPT_ERROR_COUNT: need = O_PLAN; o->error_count = optarg; break;
                case OPT_ERROR_PERCENT: need = O_PLAN; o->error_percent = optarg; break;
                case OPT_DEADLINE: need = O_PLAN; o->deadline = optarg; break;
                case OPT_RATE: need = O_PLAN; o->rate = optarg; break;
                case OPT_NAME: need = O_PLAN; o->name = optarg; break;
                case OPT_APPROVAL: need = O_PLAN; o->require_approval = true; break;
                case OPT_NO_DRIFT_GATE: need = O_PLAN; o->no_drift_gate = true; break;
                case OPT_START_AT: need = O_START_AT; o->start_at = optarg; break;
                case OPT_DRONE:
                        need = O_DRONE;
                        if (o->n_drone == MAX_ARGS)
                                return usage_error("too many --drone");
                        o->drone[o->n_drone++] = optarg;
                        break;
                case OPT_SILENT: need = O_SILENT; o->silent_polls = optarg; break;
                default:
                        return EXIT_USAGE;
                }
                if (!(allowed & need))
                        return usage_error("%s: option '%s' does not apply here", argv[0], argv[optind - 1]);
        }
        for (; optind < argc; optind++) {
                if (o->n_args >= max_args)
                        return usage_error("%s: unexpected argument '%s'", argv[0], argv[optind]);
                o->args[o->n_args++] = argv[optind];
        }
        if (!o->conn.server || !o->conn.ca || !o->conn.cert || !o->conn.key)
                return usage_error("--server, --ca, --cert and --key are required");
        return EXIT_OK;
}

static const char *str(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s && *s ? s : "-";
}

static json_int_t num(json_t *o, const char *k) {
        return json_integer_value(json_object_get(o, k));
}

/* "90", "90s", "15m", "2h", "1d" → seconds. */
static int parse_duration(const char *s, uint32_t max, uint32_t *ret) {
        char digits[16];
        size_t n = strspn(s, "0123456789");
        uint64_t v, mult = 1;

        if (n == 0 || n >= sizeof(digits))
                return -EINVAL;
        memcpy(digits, s, n);
        digits[n] = '\0';
        if (parse_u64(digits, &v) < 0)
                return -EINVAL;
        if (streq(s + n, "") || streq(s + n, "s"))
                mult = 1;
        else if (streq(s + n, "m"))
                mult = 60;
        else if (streq(s + n, "h"))
                mult = 3600;
        else if (streq(s + n, "d"))
                mult = 86400;
        else
                return -EINVAL;
        if (v > max / mult)
                return -ERANGE;
        *ret = (uint32_t) (v * mult);
        return 0;
}

/* "+DURATION" from now, or a time parse_time() reads (@EPOCH, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ). */
static int parse_start(const char *s, int64_t *ret) {
        uint32_t d;

        if (s[0] == '+') {
                if (parse_duration(s + 1, 366u * 86400u, &d) < 0)
                        return -EINVAL;
                *ret = (int64_t) time(NULL) + d;
                return 0;
        }
        return parse_time(s, ret);
}

static int set_u32(json_t *j, const char *key, const char *value, const char *opt, uint32_t min, uint32_t max) {
        uint32_t v;

        if (!value)
                return 0;
        if (parse_u32_range(value, min, max, &v) < 0)
                return usage_error("%s: '%s' is not a number in %u..%u", opt, value, min, max);
        json_object_set_new(j, key, json_integer(v));
        return EXIT_OK;
}

static int set_duration(json_t *j, const char *key, const char *value, const char *opt, uint32_t min, uint32_t max) {
        uint32_t v;

        if (!value)
                return 0;
        if (parse_duration(value, max, &v) < 0 || v < min)
                return usage_error("%s: '%s' is not a duration (90, 90s, 15m, 2h, 1d) of %u s or more", opt, value, min);
        json_object_set_new(j, key, json_integer(v));
        return EXIT_OK;
}

/* "1,5%,25%,rest" → [{"count":1},{"percent":5},{"percent":25},{"rest":true}] */
static int groups_json(const char *spec, json_t **ret) {
        _cleanup_free_ char *copy = strdup(spec);
        json_t *a = json_array();
        char *save = NULL;
        uint32_t v;

        if (!copy || !a) {
                json_decref(a);
                return EXIT_FAIL;
        }
        for (char *g = strtok_r(copy, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
                size_t n = strlen(g);
                json_t *o;
                if (streq(g, "rest"))
                        o = json_pack("{s:b}", "rest", 1);
                else if (n > 1 && g[n - 1] == '%') {
                        g[n - 1] = '\0';
                        if (parse_u32_range(g, 1, 100, &v) < 0) {
                                json_decref(a);
                                return usage_error("--groups: '%s%%' is not a percentage 1..100", g);
                        }
                        o = json_pack("{s:I}", "percent", (json_int_t) v);
                } else if (parse_u32_range(g, 1, 100000, &v) >= 0)
                        o = json_pack("{s:I}", "count", (json_int_t) v);
                else {
                        json_decref(a);
                        return usage_error("--groups: '%s' is not a count, a percentage (5%%) or 'rest'", g);
                }
                json_array_append_new(a, o);
        }
        *ret = a;
        return EXIT_OK;
}

static int print_rollout(json_t *j, bool members) {
        char t1[21], t2[21];
        size_t i;
        json_t *g, *m, *e, *counts = json_object_get(j, "counts");
        const char *k;
        json_t *v;

        printf("rollout %" JSON_INTEGER_FORMAT "%s%s: release %" JSON_INTEGER_FORMAT " (%s) to %s\n", num(j, "id"),
               *str(j, "name") != '-' ? " " : "", *str(j, "name") != '-' ? str(j, "name") : "", num(j, "release"),
               str(j, "version"), str(j, "target"));
        printf("state:     %s%s%s\n", str(j, "state"), *str(j, "reason") != '-' ? " — " : "",
               *str(j, "reason") != '-' ? str(j, "reason") : "");
        printf("created:   %s by %s%s%s%s\n", format_time(num(j, "created"), t1), str(j, "created_by"),
               json_is_true(json_object_get(j, "require_approval")) ? "; approval required" : "",
               json_object_get(j, "approved_by") ? ", approved by " : "",
               json_object_get(j, "approved_by") ? str(j, "approved_by") : "");
        if (num(j, "start_at"))
                printf("start at:  %s\n", format_time(num(j, "start_at"), t2));
        printf("group:     %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT "%s; deadline %" JSON_INTEGER_FORMAT
               " s%s; drift gate %s\n",
               num(j, "current_group"), num(j, "groups_total"), json_is_true(json_object_get(j, "completed")) ? " (all completed)" : "",
               num(j, "deadline"), num(j, "rate") ? ", rate-limited" : "",
               json_is_true(json_object_get(j, "drift_gate")) ? "on" : "off");
        printf("members:  ");
        json_object_foreach(counts, k, v)
                printf(" %s %" JSON_INTEGER_FORMAT, k, json_integer_value(v));
        printf("\n\n%-6s %-6s %-8s %-8s %-8s %-9s %-8s %s\n", "GROUP", "SIZE", "BLESSED", "FAILED", "FLIGHT", "PENDING",
               "SUCCESS", "ERROR CONDITION");
        json_array_foreach(json_object_get(j, "groups"), i, g) {
                char err[48];
                if (num(g, "error_count") && num(g, "error_percent"))
                        snprintf(err, sizeof(err), "%" JSON_INTEGER_FORMAT " drone%s or %" JSON_INTEGER_FORMAT " %%",
                                 num(g, "error_count"), num(g, "error_count") == 1 ? "" : "s", num(g, "error_percent"));
                else if (num(g, "error_count"))
                        snprintf(err, sizeof(err), "%" JSON_INTEGER_FORMAT " drone%s", num(g, "error_count"),
                                 num(g, "error_count") == 1 ? "" : "s");
                else
                        snprintf(err, sizeof(err), "%" JSON_INTEGER_FORMAT " %%", num(g, "error_percent"));
                printf("%-6" JSON_INTEGER_FORMAT " %-6" JSON_INTEGER_FORMAT " %-8" JSON_INTEGER_FORMAT
                       " %-8" JSON_INTEGER_FORMAT " %-8" JSON_INTEGER_FORMAT " %-9" JSON_INTEGER_FORMAT " %3" JSON_INTEGER_FORMAT
                       "%%+%-4" JSON_INTEGER_FORMAT " %s%s\n",
                       num(g, "group"), num(g, "size"), num(g, "blessed"), num(g, "failed"), num(g, "in_flight"),
                       num(g, "pending"), num(g, "success_percent"), num(g, "soak"), err,
                       num(g, "completed_at") ? "  completed" : "");
        }
        if (members) {
                printf("\n%-24s %-6s %-12s %-8s %s\n", "DRONE", "GROUP", "STATE", "ATTEMPT", "DETAIL");
                json_array_foreach(json_object_get(j, "members"), i, m)
                        printf("%-24s %-6" JSON_INTEGER_FORMAT " %-12s %-8" JSON_INTEGER_FORMAT " %s\n", str(m, "drone"),
                               num(m, "group"), str(m, "state"), num(m, "attempt"), *str(m, "detail") != '-' ? str(m, "detail") : "");
                printf("\nrecent events:\n");
                json_array_foreach(json_object_get(j, "events"), i, e) {
                        if (i >= 15)
                                break;
                        printf("  %s %-16s %-16s %s\n", format_time(num(e, "time"), t1), str(e, "event"),
                               *str(e, "drone") != '-' ? str(e, "drone") : "", *str(e, "detail") != '-' ? str(e, "detail") : "");
                }
        }
        return EXIT_OK;
}

static int call_print(const struct ro_opts *o, const char *method, const char *path, const char *body, bool members) {
        json_t *j = NULL;
        int r = op_call(&o->conn, method, path, body, NULL, &j);

        if (r != EXIT_OK)
                return r;
        if (o->json)
                op_print_json(j);
        else
                print_rollout(j, members);
        json_decref(j);
        return EXIT_OK;
}

static char *dump(json_t *j) {
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        return s;
}

static int rollout_create(int argc, char *argv[]) {
        struct ro_opts o;
        _cleanup_free_ char *body = NULL;
        json_t *j;
        uint64_t rid, rate;
        int64_t start;
        char target[80];
        int r = parse(argc, argv, O_JSON | O_TARGET | O_PLAN | O_START_AT, 1, &o);

        if (r != EXIT_OK)
                return r;
        if (o.n_args != 1 || parse_u64(o.args[0], &rid) < 0 || rid == 0 || rid > INT64_MAX)
                return usage_error("rollout create: RELEASE-ID required");
        if (o.fleet + !!o.group + !!o.tag + !!o.drones != 1)
                return usage_error("rollout create: exactly one of --fleet, --group, --tag, --drones");
        if ((o.group && ca_name_valid(o.group) < 0) || (o.tag && ca_name_valid(o.tag) < 0))
                return usage_error("rollout create: invalid group or tag name");
        snprintf(target, sizeof(target), "%s%s", o.fleet ? "*" : o.group ? "group:" : o.tag ? "tag:" : "drones",
                 o.group ? o.group : o.tag ? o.tag : "");
        j = json_pack("{s:I, s:s}", "release", (json_int_t) rid, "target", target);
        if (!j)
                return EXIT_FAIL;
        if (o.drones) {
                _cleanup_free_ char *copy = strdup(o.drones);
                json_t *a = json_array();
                char *save = NULL;
                for (char *d = copy ? strtok_r(copy, ",", &save) : NULL; d; d = strtok_r(NULL, ",", &save)) {
                        if (ca_name_valid(d) < 0) {
                                json_decref(a);
                                json_decref(j);
                                return usage_error("--drones: '%s' is not a drone name", d);
                        }
                        json_array_append_new(a, json_string(d));
                }
                json_object_set_new(j, "drones", a);
        }
        if (o.groups) {
                json_t *g = NULL;
                r = groups_json(o.groups, &g);
                if (r != EXIT_OK) {
                        json_decref(j);
                        return r;
                }
                json_object_set_new(j, "groups", g);
        }
        if ((r = set_u32(j, "success_percent", o.success, "--success", 1, 100)) != EXIT_OK ||
            (r = set_duration(j, "soak", o.soak, "--soak", 0, 30u * 86400u)) != EXIT_OK ||
            (r = set_u32(j, "error_count", o.error_count, "--error-count", 0, 100000)) != EXIT_OK ||
            (r = set_u32(j, "error_percent", o.error_percent, "--error-percent", 0, 100)) != EXIT_OK ||
            (r = set_duration(j, "deadline", o.deadline, "--deadline", 1, 30u * 86400u)) != EXIT_OK) {
                json_decref(j);
                return r;
        }
        if (o.rate) {
                if (parse_size(o.rate, &rate) < 0 || rate < 1024 || rate > INT64_MAX) {
                        json_decref(j);
                        return usage_error("--rate: '%s' is not a rate of at least 1K (bytes/s, K/M/G suffixes)", o.rate);
                }
                json_object_set_new(j, "rate", json_integer((json_int_t) rate));
        }
        if (o.start_at) {
                if (parse_start(o.start_at, &start) < 0) {
                        json_decref(j);
                        return usage_error("--start-at: '%s' is not +DURATION, @EPOCH, YYYY-MM-DD or "
                                           "YYYY-MM-DDTHH:MM:SSZ", o.start_at);
                }
                json_object_set_new(j, "start_at", json_integer(start));
        }
        if (o.name) {
                if (ca_name_valid(o.name) < 0) {
                        json_decref(j);
                        return usage_error("--name: '%s' is not a name", o.name);
                }
                json_object_set_new(j, "name", json_string(o.name));
        }
        if (o.require_approval)
                json_object_set_new(j, "require_approval", json_true());
        if (o.no_drift_gate)
                json_object_set_new(j, "drift_gate", json_false());
        body = dump(j);
        if (!body)
                return EXIT_FAIL;
        j = NULL;
        r = op_call(&o.conn, "POST", "/api/v1/rollouts", body, NULL, &j);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                op_print_json(j);
        else
                printf("%" JSON_INTEGER_FORMAT "\n", num(j, "id"));
        json_decref(j);
        return EXIT_OK;
}

static int rollout_list(int argc, char *argv[]) {
        struct ro_opts o;
        json_t *j = NULL, *e;
        size_t i;
        int r = parse(argc, argv, O_JSON, 0, &o);

        if (r != EXIT_OK)
                return r;
        r = op_call(&o.conn, "GET", "/api/v1/rollouts", NULL, NULL, &j);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                op_print_json(j);
        else {
                printf("%-4s %-14s %-10s %-8s %-10s %-14s %-6s %-8s %-7s %s\n", "ID", "NAME", "STATE", "RELEASE",
                       "VERSION", "TARGET", "GROUP", "BLESSED", "FAILED", "REASON");
                json_array_foreach(j, i, e) {
                        json_t *c = json_object_get(e, "counts");
                        json_int_t failed = num(c, "failed") + num(c, "rolled-back") + num(c, "timed-out") + num(c, "drift");
                        char group[24];
                        snprintf(group, sizeof(group), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                                 num(e, "current_group"), num(e, "groups_total"));
                        printf("%-4" JSON_INTEGER_FORMAT " %-14s %-10s %-8" JSON_INTEGER_FORMAT " %-10s %-14s %-6s %-8"
                               JSON_INTEGER_FORMAT " %-7" JSON_INTEGER_FORMAT " %s\n",
                               num(e, "id"), str(e, "name"), str(e, "state"), num(e, "release"), str(e, "version"),
                               str(e, "target"), group, num(c, "blessed"), failed, str(e, "reason"));
                }
        }
        json_decref(j);
        return EXIT_OK;
}

static int one_id(struct ro_opts *o, const char *what, char path[static 64], const char *suffix) {
        uint64_t id;

        if (o->n_args != 1 || parse_u64(o->args[0], &id) < 0 || id == 0 || id > INT64_MAX)
                return usage_error("rollout %s: ROLLOUT-ID required", what);
        snprintf(path, 64, "/api/v1/rollouts/%" PRIu64 "%s%s", id, *suffix ? "/" : "", suffix);
        return EXIT_OK;
}

static int rollout_show(int argc, char *argv[]) {
        struct ro_opts o;
        char path[64];
        int r = parse(argc, argv, O_JSON, 1, &o);

        if (r == EXIT_OK)
                r = one_id(&o, "show", path, "");
        return r == EXIT_OK ? call_print(&o, "GET", path, NULL, true) : r;
}

/* approve, start, pause, resume, abort, retry */
static int rollout_action(int argc, char *argv[]) {
        const char *action = argv[0];
        bool start = streq(action, "start"), retry = streq(action, "retry");
        struct ro_opts o;
        _cleanup_free_ char *body = NULL;
        json_t *j;
        char path[64];
        int r = parse(argc, argv, O_JSON | (start ? O_START_AT : 0) | (retry ? O_DRONE : 0), 1, &o);

        if (r == EXIT_OK)
                r = one_id(&o, action, path, action);
        if (r != EXIT_OK)
                return r;
        j = json_object();
        if (!j)
                return EXIT_FAIL;
        if (o.start_at) {
                int64_t t;
                if (parse_start(o.start_at, &t) < 0) {
                        json_decref(j);
                        return usage_error("--start-at: '%s' is not +DURATION, @EPOCH, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
                                           o.start_at);
                }
                json_object_set_new(j, "start_at", json_integer(t));
        }
        if (o.n_drone) {
                json_t *a = json_array();
                for (size_t i = 0; i < o.n_drone; i++) {
                        if (ca_name_valid(o.drone[i]) < 0) {
                                json_decref(a);
                                json_decref(j);
                                return usage_error("--drone: '%s' is not a drone name", o.drone[i]);
                        }
                        json_array_append_new(a, json_string(o.drone[i]));
                }
                json_object_set_new(j, "drones", a);
        }
        body = dump(j);
        if (!body)
                return EXIT_FAIL;
        return call_print(&o, "POST", path, body, false);
}

static const struct verb rollout_verbs[] = {
        VERB("create", rollout_create, "create a rollout (state draft); prints its id",
             "Usage: ringil-server rollout create RELEASE-ID --fleet|--group G|--tag T|--drones A,B,…\n"
             "                                  [--groups 1,5%,rest] [--success PCT] [--soak DUR]\n"
             "                                  [--error-count N] [--error-percent PCT] [--deadline DUR]\n"
             "                                  [--rate SIZE] [--start-at TIME] [--require-approval]\n"
             "                                  [--no-drift-gate] [--name NAME] [CONNECTION OPTIONS]\n\n"
             "Groups are handed the release one after the other; the first is the canary. Each is a count,\n"
             "a percentage of the target (rounded up) or 'rest'; drones left over form one more group.\n"
             "Default: 1,rest. A group completes when --success percent of it blessed the release (default\n"
             "100) and --soak passed without a failure in it; then the next one starts. --error-count or\n"
             "--error-percent failures in a group pause the whole rollout (default: 1 drone). A handed drone\n"
             "silent for --deadline (default 30m) has failed. --rate limits each drone's download (bytes/s).\n"
             "--start-at +10m|@EPOCH|YYYY-MM-DDTHH:MM:SSZ is kept for `start`. --require-approval: a second\n"
             "operator must `approve` before `start`. With the drift gate (default on), a drone whose audit\n"
             "after the update fails checks that passed before counts as failed.\n"
             "DUR: 90, 90s, 15m, 2h, 1d. A drone is in one rollout at a time: overlapping targets are refused.\n\n"),
        VERB("list", rollout_list, "list rollouts", "Usage: ringil-server rollout list [--json] [CONNECTION OPTIONS]\n\n"),
        VERB("show", rollout_show, "a rollout's groups, members and recent events",
             "Usage: ringil-server rollout show ROLLOUT-ID [--json] [CONNECTION OPTIONS]\n\n"),
        VERB("approve", rollout_action, "approve a rollout (a second operator; see `approvers` in server.conf)",
             "Usage: ringil-server rollout approve ROLLOUT-ID [CONNECTION OPTIONS]\n\n"
             "Refused (exit 5) for the operator that created it and for operators not in `approvers`.\n\n"),
        VERB("start", rollout_action, "start a draft rollout (now, or at --start-at)",
             "Usage: ringil-server rollout start ROLLOUT-ID [--start-at TIME] [CONNECTION OPTIONS]\n\n"),
        VERB("pause", rollout_action, "pause: nobody new is handed the release",
             "Usage: ringil-server rollout pause ROLLOUT-ID [CONNECTION OPTIONS]\n\n"),
        VERB("resume", rollout_action, "resume a paused rollout (its failures so far are accepted)",
             "Usage: ringil-server rollout resume ROLLOUT-ID [CONNECTION OPTIONS]\n\n"),
        VERB("abort", rollout_action, "abort: nobody is handed the release any more; drones installing finish",
             "Usage: ringil-server rollout abort ROLLOUT-ID [CONNECTION OPTIONS]\n\n"),
        VERB("retry", rollout_action, "hand the release again to failed drones (all, or each --drone)",
             "Usage: ringil-server rollout retry ROLLOUT-ID [--drone D]… [CONNECTION OPTIONS]\n\n"),
};

int op_rollout(int argc, char *argv[]) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                FILE *f = argc < 2 ? stderr : stdout;
                fprintf(f, "Usage: ringil-server rollout COMMAND [OPTIONS]\n\nStaged rollouts of a release.\n\n");
                verb_list(rollout_verbs, ELEMENTSOF(rollout_verbs), "rollout");
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        return verb_dispatch(rollout_verbs, ELEMENTSOF(rollout_verbs), "rollout", argc - 1, argv + 1);
}

/* ---- tags, windows, retry, clear ---- */

int op_tag(int argc, char *argv[]) {
        struct ro_opts o;
        _cleanup_free_ char *body = NULL;
        json_t *j, *add, *rm, *out = NULL, *t;
        char path[128];
        size_t i;
        int r = parse(argc, argv, O_JSON, MAX_ARGS, &o);

        if (r != EXIT_OK)
                return r;
        if (o.n_args < 1 || ca_name_valid(o.args[0]) < 0)
                return usage_error("tag: DRONE-ID [+TAG|-TAG]… required");
        add = json_array();
        rm = json_array();
        for (i = 1; i < o.n_args; i++) {
                const char *a = o.args[i];
                if ((a[0] != '+' && a[0] != '-') || ca_name_valid(a + 1) < 0) {
                        json_decref(add);
                        json_decref(rm);
                        return usage_error("tag: '%s' is not +TAG or -TAG", a);
                }
                json_array_append_new(a[0] == '+' ? add : rm, json_string(a + 1));
        }
        j = json_pack("{s:o, s:o}", "add", add, "remove", rm);
        body = dump(j);
        if (!body)
                return EXIT_FAIL;
        snprintf(path, sizeof(path), "/api/v1/drones/%s/tags", o.args[0]);
        r = op_call(&o.conn, "POST", path, body, NULL, &out);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                op_print_json(out);
        else {
                printf("%s:", o.args[0]);
                json_array_foreach(json_object_get(out, "tags"), i, t)
                        printf(" %s", json_string_value(t));
                printf("\n");
        }
        json_decref(out);
        return EXIT_OK;
}

int op_window(int argc, char *argv[]) {
        const char *sub = argc > 1 ? argv[1] : "";
        struct ro_opts o;
        _cleanup_free_ char *body = NULL;
        json_t *j = NULL, *e;
        char target[80];
        size_t i;
        int r;

        if (!streq(sub, "set") && !streq(sub, "clear") && !streq(sub, "list"))
                return usage_error("window: set|clear|list");
        r = parse(argc - 1, argv + 1, O_JSON | O_GROUP | O_DRONE, streq(sub, "set") ? 1 : 0, &o);
        if (r != EXIT_OK)
                return r;
        if (streq(sub, "list")) {
                r = op_call(&o.conn, "GET", "/api/v1/windows", NULL, NULL, &j);
                if (r != EXIT_OK)
                        return r;
                if (o.json)
                        op_print_json(j);
                else
                        json_array_foreach(j, i, e)
                                printf("%-30s %s\n", str(e, "target"), str(e, "windows"));
                json_decref(j);
                return EXIT_OK;
        }
        if (!!o.group + o.n_drone != 1 || (o.group && ca_name_valid(o.group) < 0) ||
            (o.n_drone && ca_name_valid(o.drone[0]) < 0))
                return usage_error("window %s: exactly one of --group G, --drone D", sub);
        snprintf(target, sizeof(target), "%s%s", o.group ? "group:" : "drone:", o.group ? o.group : o.drone[0]);
        if (streq(sub, "set")) {
                struct fleet_window w[FLEET_MAX_WINDOWS];
                size_t n;
                if (o.n_args != 1 || fleet_windows_parse(o.args[0], w, &n) < 0)
                        return usage_error("window set: WINDOWS like 02:00-04:00[,13:00-13:30] (drone local time): %s",
                                           ringil_detail());
                j = json_pack("{s:s, s:s}", "target", target, "windows", o.args[0]);
        } else
                j = json_pack("{s:s, s:n}", "target", target, "windows");
        body = dump(j);
        if (!body)
                return EXIT_FAIL;
        j = NULL;
        r = op_call(&o.conn, "POST", "/api/v1/windows", body, NULL, &j);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                op_print_json(j);
        else
                printf("%s: %s\n", target, json_is_string(json_object_get(j, "windows")) ? str(j, "windows") : "any time");
        json_decref(j);
        return EXIT_OK;
}

static int drone_post(int argc, char *argv[], const char *what) {
        struct ro_opts o;
        json_t *j = NULL;
        char path[128];
        int r = parse(argc, argv, O_JSON, 1, &o);

        if (r != EXIT_OK)
                return r;
        if (o.n_args != 1 || ca_name_valid(o.args[0]) < 0)
                return usage_error("%s: DRONE-ID required", what);
        snprintf(path, sizeof(path), "/api/v1/drones/%s/%s", o.args[0], what);
        r = op_call(&o.conn, "POST", path, NULL, NULL, &j);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                op_print_json(j);
        else if (streq(what, "retry"))
                printf("%s: retry generation %" JSON_INTEGER_FORMAT "\n", o.args[0], num(j, "retry"));
        else
                printf("%s: %s\n", o.args[0], json_is_true(json_object_get(j, "cleared")) ? "assignment cleared"
                                                                                          : "nothing to clear");
        json_decref(j);
        return EXIT_OK;
}

int op_retry(int argc, char *argv[]) {
        return drone_post(argc, argv, "retry");
}

int op_clear(int argc, char *argv[]) {
        return drone_post(argc, argv, "clear");
}

/* ---- drift ---- */

int op_drift(int argc, char *argv[]) {
        struct ro_opts o;
        json_t *j = NULL, *d, *counts;
        char path[96] = "/api/v1/drift";
        size_t i;
        int r = parse(argc, argv, O_JSON | O_SILENT, 0, &o);

        if (r != EXIT_OK)
                return r;
        if (o.silent_polls) {
                uint32_t n;
                if (parse_u32_range(o.silent_polls, 1, 10000, &n) < 0)
                        return usage_error("--silent-polls: '%s' is not a number in 1..10000", o.silent_polls);
                snprintf(path, sizeof(path), "/api/v1/drift?silent_polls=%" PRIu32, n);
        }
        r = op_call(&o.conn, "GET", path, NULL, NULL, &j);
        if (r != EXIT_OK)
                return r;
        if (o.json) {
                op_print_json(j);
                json_decref(j);
                return EXIT_OK;
        }
        counts = json_object_get(j, "counts");
        printf("%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " drones drifted (release %" JSON_INTEGER_FORMAT
               ", audit %" JSON_INTEGER_FORMAT ", secureboot %" JSON_INTEGER_FORMAT ", silent %" JSON_INTEGER_FORMAT
               "; silent after %" JSON_INTEGER_FORMAT " s)\n",
               (json_int_t) json_array_size(json_object_get(j, "drones")), num(j, "drones_total"),
               num(counts, "release"), num(counts, "audit"), num(counts, "secureboot"), num(counts, "silent"),
               num(j, "silent_after"));
        if (json_array_size(json_object_get(j, "drones")))
                printf("\n%-20s %-30s %s\n", "DRONE", "KINDS", "WHY");
        json_array_foreach(json_object_get(j, "drones"), i, d) {
                static const char *const kinds[] = { "release", "audit", "secureboot", "silent" };
                char k[64] = "";
                size_t o2 = 0;
                bool first = true;
                json_t *x;
                size_t n;
                json_array_foreach(json_object_get(d, "kinds"), n, x)
                        o2 += (size_t) snprintf(k + o2, o2 < sizeof(k) ? sizeof(k) - o2 : 0, "%s%s", n ? "," : "",
                                                json_string_value(x));
                for (size_t kk = 0; kk < ELEMENTSOF(kinds); kk++) {
                        if (!json_object_get(d, kinds[kk]))
                                continue;
                        printf("%-20s %-30s %s: %s\n", first ? str(d, "id") : "", first ? k : "", kinds[kk],
                               str(d, kinds[kk]));
                        first = false;
                }
        }
        json_decref(j);
        /* exit 0 either way: the report is the answer; scripts read --json */
        return EXIT_OK;
}
