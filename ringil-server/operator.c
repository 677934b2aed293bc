/* operator.c: `ringil-server drones|enroll|reissue-token|revoke|upload|mirrors|release|status|metrics` over the operator API. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fleet-ca.h"
#include "err.h"
#include "escape.h"
#include "fleet-client.h"
#include "fleet-msg.h"
#include "log.h"
#include "operator.h"
#include "parse.h"
#include "progress.h"
#include "verb.h"

#define OP_MAX_RESPONSE (4u << 20)

struct op_opts {
        const char *server, *ca, *cert, *key;
        const char *group, *drone;
        bool json, fleet, force, reference;
        const char *mirrors[FLEET_MIRRORS_MAX];
        size_t n_mirrors;
        char *args[FLEET_MIRRORS_MAX + 1];
        int n_args;
};

enum { OPT_SERVER = 0x100, OPT_CA, OPT_CERT, OPT_KEY, OPT_JSON, OPT_GROUP, OPT_DRONE, OPT_FLEET, OPT_FORCE, OPT_QUIET,
       OPT_MIRROR, OPT_REFERENCE };

static int parse_opts(int argc, char *argv[], struct op_opts *o, int max_args) {
        static const struct option options[] = {
                { "server", required_argument, NULL, OPT_SERVER },
                { "ca", required_argument, NULL, OPT_CA },
                { "cert", required_argument, NULL, OPT_CERT },
                { "key", required_argument, NULL, OPT_KEY },
                { "json", no_argument, NULL, OPT_JSON },
                { "group", required_argument, NULL, OPT_GROUP },
                { "drone", required_argument, NULL, OPT_DRONE },
                { "fleet", no_argument, NULL, OPT_FLEET },
                { "force", no_argument, NULL, OPT_FORCE },
                { "quiet", no_argument, NULL, OPT_QUIET },
                { "mirror", required_argument, NULL, OPT_MIRROR },
                { "reference", no_argument, NULL, OPT_REFERENCE },
                {},
        };
        int c;

        *o = (struct op_opts) {
                .server = getenv("RINGIL_FLEET_SERVER"),
                .ca = getenv("RINGIL_FLEET_CA"),
                .cert = getenv("RINGIL_FLEET_CERT"),
                .key = getenv("RINGIL_FLEET_KEY"),
        };
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case OPT_SERVER: o->server = optarg; break;
                case OPT_CA: o->ca = optarg; break;
                case OPT_CERT: o->cert = optarg; break;
                case OPT_KEY: o->key = optarg; break;
                case OPT_JSON: o->json = true; break;
                case OPT_GROUP: o->group = optarg; break;
                case OPT_DRONE: o->drone = optarg; break;
                case OPT_FLEET: o->fleet = true; break;
                case OPT_FORCE: o->force = true; break;
                case OPT_QUIET: progress_setup(NULL, PROGRESS_QUIET); break;
                case OPT_MIRROR:
                        if (o->n_mirrors == FLEET_MIRRORS_MAX)
                                return usage_error("at most %d --mirror", FLEET_MIRRORS_MAX);
                        o->mirrors[o->n_mirrors++] = optarg;
                        break;
                case OPT_REFERENCE: o->reference = true; break;
                default: return EXIT_USAGE;
                }
        for (; optind < argc; optind++) {
                if (o->n_args >= max_args)
                        return usage_error("unexpected argument '%s'", argv[optind]);
                o->args[o->n_args++] = argv[optind];
        }
        if (!o->server || !o->ca || !o->cert || !o->key)
                return usage_error("--server, --ca, --cert and --key are required");
        return EXIT_OK;
}

int op_call(const struct op_conn *o, const char *method, const char *path, const char *body, const char *upload,
            json_t **ret) {
        fleet_client *fc = NULL;
        _cleanup_buf_ struct buf resp = {};
        json_error_t e;
        long status = 0;
        int r;

        r = fleet_client_new(o->server, o->ca, o->cert, o->key, 120, &fc);
        if (r >= 0)
                r = upload ? fleet_client_upload(fc, path, upload, OP_MAX_RESPONSE, &status, &resp)
                           : fleet_client_request(fc, method, path, body, OP_MAX_RESPONSE, &status, &resp);
        fleet_client_free(fc);
        if (r < 0) {
                log_error_errno(r, "%s %s failed: %s", method, path, ringil_detail());
                return exit_code_from_errno(r);
        }
        if (status < 200 || status > 299) {
                json_t *j = json_loadb((const char *) resp.data, resp.len, 0, &e);
                const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
                log_error("Server answered %ld: %s", status, msg ? msg : "(no detail)");
                json_decref(j);
                return status == 404 ? EXIT_NOTFOUND
                       : status == 409 ? EXIT_EXISTS
                       : status == 422 ? EXIT_REFUSED
                       : status == 401 || status == 403 ? EXIT_UNTRUSTED
                                                        : EXIT_FAIL;
        }
        if (ret) {
                *ret = json_loadb((const char *) resp.data, resp.len, 0, &e);
                if (!*ret) {
                        log_error("Server sent malformed JSON: %s", e.text);
                        return EXIT_MALFORMED;
                }
        } else
                fwrite(resp.data, 1, resp.len, stdout);
        return EXIT_OK;
}

static int call(const struct op_opts *o, const char *method, const char *path, const char *body,
                const char *upload, json_t **ret) {
        const struct op_conn conn = { .server = o->server, .ca = o->ca, .cert = o->cert, .key = o->key };
        return op_call(&conn, method, path, body, upload, ret);
}

void op_print_json(json_t *j) {
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (s)
                puts(s);
        free(s);
}

static void print_json(json_t *j) {
        op_print_json(j);
}

static const char *str_raw(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s && *s ? s : "-";
}
/* A string of the server's answer, printable (escape.h): the server is not trusted with our terminal. */
#define str(o, k) ESCAPED(str_raw((o), (k)))

int op_drones(int argc, char *argv[]) {
        struct op_opts o;
        json_t *j = NULL, *d;
        size_t i;
        int r = parse_opts(argc, argv, &o, 0);

        if (r != EXIT_OK)
                return r;
        r = call(&o, "GET", "/api/v1/drones", NULL, NULL, &j);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                print_json(j);
        else {
                printf("%-20s %-10s %-8s %-10s %-12s %-8s %s\n", "DRONE", "GROUP", "STATUS", "VERSION", "STATE",
                       "RELEASE", "ERROR");
                json_array_foreach(j, i, d)
                        printf("%-20s %-10s %-8s %-10s %-12s %-8" JSON_INTEGER_FORMAT " %s\n", str(d, "id"),
                               str(d, "group"), str(d, "status"), str(d, "version"), str(d, "state"),
                               json_integer_value(json_object_get(d, "release")), str(d, "error"));
        }
        json_decref(j);
        return EXIT_OK;
}

int op_enroll(int argc, char *argv[]) {
        struct op_opts o;
        json_t *j = NULL, *req;
        char *body;
        int r = parse_opts(argc, argv, &o, 1);

        if (r != EXIT_OK)
                return r;
        if (o.n_args != 1 || ca_name_valid(o.args[0]) < 0)
                return usage_error("enroll: one valid DRONE-ID required");
        req = json_pack("{s:s, s:s}", "id", o.args[0], "group", o.group ? o.group : "default");
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body)
                return EXIT_FAIL;
        r = call(&o, "POST", "/api/v1/drones", body, NULL, &j);
        free(body);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                print_json(j);
        else
                printf("%s\n", str(j, "token"));
        json_decref(j);
        return EXIT_OK;
}

int op_reissue_token(int argc, char *argv[]) {
        struct op_opts o;
        char path[128];
        json_t *j = NULL;
        int r = parse_opts(argc, argv, &o, 1);

        if (r != EXIT_OK)
                return r;
        if (o.n_args != 1 || ca_name_valid(o.args[0]) < 0)
                return usage_error("reissue-token: one valid DRONE-ID required");
        snprintf(path, sizeof(path), "/api/v1/drones/%s/token", o.args[0]);
        r = call(&o, "POST", path, NULL, NULL, &j);
        if (r == EXIT_EXISTS)
                return EXIT_REFUSED;   /* 409 here means revoked: a refusal by state, nothing exists to keep */
        if (r != EXIT_OK)
                return r;
        if (o.json)
                print_json(j);
        else
                printf("%s\n", str(j, "token"));
        json_decref(j);
        return EXIT_OK;
}

int op_revoke(int argc, char *argv[]) {
        struct op_opts o;
        char path[128];
        json_t *j = NULL;
        int r = parse_opts(argc, argv, &o, 1);

        if (r != EXIT_OK)
                return r;
        if (o.n_args != 1 || ca_name_valid(o.args[0]) < 0)
                return usage_error("revoke: one valid DRONE-ID required");
        snprintf(path, sizeof(path), "/api/v1/drones/%s/revoke", o.args[0]);
        r = call(&o, "POST", path, NULL, NULL, &j);
        json_decref(j);
        if (r == EXIT_OK)
                printf("revoked %s\n", o.args[0]);
        return r;
}

static int check_bundle_file(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        int r;

        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                log_error_errno(r, "Cannot read bundle '%s': %m", path);
                return exit_code_from_errno(r);
        }
        if (!S_ISREG(st.st_mode)) {
                log_error("Cannot upload '%s': not a regular file", path);
                return EXIT_USAGE;
        }
        return EXIT_OK;
}

/* POST the mirror list of a release ([] clears it). */
static int set_mirrors(const struct op_opts *o, int64_t id, const char *const *urls, size_t n) {
        json_t *req = json_pack("{s:[]}", "mirrors"), *j = NULL;
        char path[128], *body;
        int r;

        for (size_t i = 0; req && i < n; i++)
                json_array_append_new(json_object_get(req, "mirrors"), json_string(urls[i]));
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body)
                return EXIT_FAIL;
        snprintf(path, sizeof(path), "/api/v1/releases/%" PRId64 "/mirrors", id);
        r = call(o, "POST", path, body, NULL, &j);
        free(body);
        json_decref(j);
        return r;
}

static int check_mirrors(const struct op_opts *o) {
        for (size_t i = 0; i < o->n_mirrors; i++)
                if (!fleet_mirror_url_valid(o->mirrors[i]))
                        return usage_error("mirror '%s' is not an https:// URL (URL characters, at most %d bytes)",
                                           ESCAPED(o->mirrors[i]), FLEET_URL_MAX);
        return EXIT_OK;
}

int op_upload(int argc, char *argv[]) {
        struct op_opts o;
        json_t *j = NULL;
        int r = parse_opts(argc, argv, &o, 1);

        if (r != EXIT_OK)
                return r;
        if (o.n_args != 1)
                return usage_error("upload: BUNDLE required");
        r = check_mirrors(&o);
        if (r != EXIT_OK)
                return r;
        if (o.reference && o.n_mirrors == 0)
                return usage_error("upload: --reference needs at least one --mirror (nothing else could serve it)");
        /* Checked before connecting: a missing file is the operator's input error (exit 12), not the server's. */
        r = check_bundle_file(o.args[0]);
        if (r != EXIT_OK)
                return r;
        r = call(&o, "POST", o.reference ? "/api/v1/releases?store=no" : "/api/v1/releases", NULL, o.args[0], &j);
        if (r != EXIT_OK)
                return r;
        if (o.n_mirrors > 0) {
                int64_t id = json_integer_value(json_object_get(j, "id"));
                r = set_mirrors(&o, id, o.mirrors, o.n_mirrors);
                if (r != EXIT_OK) {
                        log_error("Release %" PRId64 " was registered, but its mirrors were not set: run `ringil-server "
                                  "mirrors %" PRId64 " URL…` again", id, id);
                        json_decref(j);
                        return r;
                }
        }
        if (o.json)
                print_json(j);
        else
                printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(j, "id")));
        json_decref(j);
        return EXIT_OK;
}

int op_mirrors(int argc, char *argv[]) {
        struct op_opts o;
        uint64_t id;
        int r = parse_opts(argc, argv, &o, FLEET_MIRRORS_MAX + 1);

        if (r != EXIT_OK)
                return r;
        if (o.n_args < 1 || parse_u64(o.args[0], &id) < 0 || id == 0 || id > INT64_MAX)
                return usage_error("mirrors: RELEASE-ID [URL…] required");
        o.n_mirrors = 0;
        for (int i = 1; i < o.n_args; i++)
                o.mirrors[o.n_mirrors++] = o.args[i];
        r = check_mirrors(&o);
        if (r != EXIT_OK)
                return r;
        r = set_mirrors(&o, (int64_t) id, o.mirrors, o.n_mirrors);
        if (r == EXIT_OK)
                printf("release %" PRIu64 ": %zu mirror%s\n", id, o.n_mirrors, o.n_mirrors == 1 ? "" : "s");
        return r;
}

int op_release(int argc, char *argv[]) {
        struct op_opts o;
        char path[128], target[80];
        json_t *j = NULL, *req;
        char *body;
        uint64_t id;
        int r = parse_opts(argc, argv, &o, 1);

        if (r != EXIT_OK)
                return r;
        if (o.n_args != 1 || parse_u64(o.args[0], &id) < 0 || id == 0)
                return usage_error("release: RELEASE-ID required");
        if (o.fleet + !!o.group + !!o.drone != 1)
                return usage_error("release: exactly one of --fleet, --group, --drone");
        if ((o.group && ca_name_valid(o.group) < 0) || (o.drone && ca_name_valid(o.drone) < 0))
                return usage_error("release: invalid group or drone name");
        snprintf(target, sizeof(target), "%s%s", o.fleet ? "*" : o.group ? "group:" : "drone:",
                 o.fleet ? "" : o.group ? o.group : o.drone);
        snprintf(path, sizeof(path), "/api/v1/releases/%" PRIu64 "/assign", id);
        req = json_pack("{s:s}", "target", target);
        if (req && o.force)
                json_object_set_new(req, "force", json_true());
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body)
                return EXIT_FAIL;
        r = call(&o, "POST", path, body, NULL, &j);
        free(body);
        json_decref(j);
        if (r == EXIT_OK)
                printf("release %" PRIu64 " assigned to %s\n", id, target);
        return r;
}

int op_status(int argc, char *argv[]) {
        struct op_opts o;
        char path[128];
        json_t *j = NULL, *e;
        size_t i;
        int r = parse_opts(argc, argv, &o, 1);

        if (r != EXIT_OK)
                return r;
        if (o.n_args == 1 && ca_name_valid(o.args[0]) < 0)
                return usage_error("status: invalid DRONE-ID");
        if (o.n_args == 0)
                snprintf(path, sizeof(path), "/api/v1/releases");
        else
                snprintf(path, sizeof(path), "/api/v1/drones/%s", o.args[0]);
        r = call(&o, "GET", path, NULL, NULL, &j);
        if (r != EXIT_OK)
                return r;
        if (o.json)
                print_json(j);
        else if (o.n_args == 0) {
                printf("%-8s %-10s %-20s %-12s %-7s %-8s %-7s %-13s %-13s %s\n", "RELEASE", "VERSION", "COMPATIBLE",
                       "SIZE", "STORED", "MIRRORS", "DRONES", "FETCHED", "REUSED", "ASSIGNED");
                json_array_foreach(j, i, e) {
                        json_t *d = json_object_get(e, "delta");
                        /* DRONES/FETCHED/REUSED: drones on this release that reported their download */
                        printf("%-8" JSON_INTEGER_FORMAT " %-10s %-20s %-12" JSON_INTEGER_FORMAT " %-7s %-8zu %-7" JSON_INTEGER_FORMAT
                               " %-13" JSON_INTEGER_FORMAT " %-13" JSON_INTEGER_FORMAT " %s\n",
                               json_integer_value(json_object_get(e, "id")), str(e, "version"),
                               str(e, "compatible"), json_integer_value(json_object_get(e, "size")),
                               json_is_false(json_object_get(e, "stored")) ? "no" : "yes",
                               json_array_size(json_object_get(e, "mirrors")),
                               json_integer_value(json_object_get(d, "drones")),
                               json_integer_value(json_object_get(d, "fetched")),
                               json_integer_value(json_object_get(d, "reused")), str(e, "assigned"));
                }
        } else {
                char seen[21] = "never";
                json_int_t t = json_integer_value(json_object_get(j, "last_seen"));
                if (t > 0)
                        format_time(t, seen);
                printf("drone:     %s (%s, group %s)\nversion:   %s\nstate:     %s\nrelease:   %" JSON_INTEGER_FORMAT
                       "\nerror:     %s\nlast seen: %s\n",
                       str(j, "id"), str(j, "status"), str(j, "group"), str(j, "version"), str(j, "state"),
                       json_integer_value(json_object_get(j, "release")), str(j, "error"), seen);
                if (json_is_object(json_object_get(j, "delta")))
                        printf("download:  %" JSON_INTEGER_FORMAT " bytes fetched, %" JSON_INTEGER_FORMAT
                               " reused from its own slots (last install)\n",
                               json_integer_value(json_object_get(json_object_get(j, "delta"), "fetched")),
                               json_integer_value(json_object_get(json_object_get(j, "delta"), "reused")));
                printf("history:\n");
                json_array_foreach(json_object_get(j, "history"), i, e)
                {
                        char when[21];
                        format_time(json_integer_value(json_object_get(e, "time")), when);
                        printf("  #%-4" JSON_INTEGER_FORMAT " %s %-12s release %" JSON_INTEGER_FORMAT " %s %s\n",
                               json_integer_value(json_object_get(e, "seq")), when, str(e, "state"),
                               json_integer_value(json_object_get(e, "release")), str(e, "version"),
                               str(e, "error"));
                }
        }
        json_decref(j);
        return EXIT_OK;
}

int op_metrics(int argc, char *argv[]) {
        struct op_opts o;
        int r = parse_opts(argc, argv, &o, 0);

        if (r != EXIT_OK)
                return r;
        return call(&o, "GET", "/metrics", NULL, NULL, NULL);
}
