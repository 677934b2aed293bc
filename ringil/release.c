/* release.c: `ringil release`: from a built NixOS system to a fleet release in one command: sign the closure, publish what the fleet cache lacks, sign a bundle, upload it, assign it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "fleet-ca.h"
#include "fleet-client.h"
#include "log.h"
#include "nix-publish.h"
#include "parse.h"
#include "process.h"
#include "secret.h"
#include "verb.h"
#include "verbs.h"
#include "vercmp.h"

#define RESPONSE_MAX (4u << 20)
#define REUSE_BUNDLE_MAX (64u << 20)   /* a generation bundle is a manifest and a closure listing */
#define NIX_KEY_MAX 4096

char release_usage[] =
        "Usage: ringil release (--system PATH | --flake REF) --key KEY --cert CERT --compatible ID --version V\n"
        "                      (--nix-key FILE | --no-sign) [--valid-for DAYS] [--nix-store STORE]\n"
        "                      [--server URL --server-ca PEM --operator-cert PEM --operator-key KEY]\n"
        "                      [--assign fleet|group:NAME|drone:ID] [--output BUNDLE]\n\n"
        "Publish a built NixOS system to the fleet in one step, as CI does after a configuration commit:\n"
        "  1. sign its closure with the fleet's Nix key (nix store sign --recursive);\n"
        "  2. ask the fleet server which closure paths its Nix cache lacks, and upload those, references\n"
        "     first (PUT /api/v1/nix-cache/HASH: the server checks each narinfo's signature against its\n"
        "     nix-trusted-public-keys and each NAR against the signed NarHash before storing anything);\n"
        "  3. make a generation bundle (the closure listing, signed with the db key, cache = the server's\n"
        "     /nix-cache) and upload it as a release;\n"
        "  4. assign the release (--assign); staged rollouts will take this place when they exist.\n"
        "Idempotent: a rerun uploads no path twice and, when the version is already released with this very\n"
        "closure, reuses that release; the same version with another closure is refused.\n\n"
        "Options:\n"
        "  --system PATH        the system's store path (nixosConfigurations.X.config.system.build.toplevel)\n"
        "  --flake REF          build it first: nix build --no-link --json REF\n"
        "  --nix-key FILE       the fleet's Nix secret key (nix-store --generate-binary-cache-key)\n"
        "  --no-sign            the closure is signed already (e.g. by a separate signing step)\n"
        "  --nix-store STORE    the Nix store to read (nix --store: a chroot store dir; default: the local one)\n"
        "  --key KEY, --cert CERT\n"
        "                       the bundle signer: the fleet's Secure Boot db key and certificate\n"
        "  --compatible ID, --version V, --valid-for DAYS (default 30)\n"
        "                       as for `ringil bundle create`\n"
        "  --server URL, --server-ca PEM, --operator-cert PEM, --operator-key KEY\n"
        "                       the fleet server and an operator identity (default: $RINGIL_FLEET_SERVER,\n"
        "                       $RINGIL_FLEET_CA, $RINGIL_FLEET_CERT, $RINGIL_FLEET_KEY)\n"
        "  --assign TARGET      fleet, group:NAME or drone:ID\n"
        "  --output BUNDLE      keep the bundle here (default: a temporary file)\n\n";

struct release_opts {
        const char *system, *flake, *nix_key, *nix_store;
        const char *key, *cert, *compatible, *version, *assign, *output;
        const char *server, *server_ca, *op_cert, *op_key;
        unsigned valid_days;
        bool no_sign;
};

static int fail(int r, const char *what) {
        const char *d = ringil_detail();

        log_error_errno(r, "%s: %m%s%s", what, *d ? ": " : "", d);
        return exit_code_from_errno(r);
}

/* argv for `nix --extra-experimental-features ... [--store S] ARGS...` */
struct nixv {
        char *v[24];
        size_t n;
};

static void nixv_init(struct nixv *a, const struct release_opts *o, bool flakes) {
        a->n = 0;
        a->v[a->n++] = (char *) "nix";
        a->v[a->n++] = (char *) "--extra-experimental-features";
        a->v[a->n++] = (char *) (flakes ? "nix-command flakes" : "nix-command");
        if (o->nix_store) {
                a->v[a->n++] = (char *) "--store";
                a->v[a->n++] = (char *) o->nix_store;
        }
}

static void nixv_add(struct nixv *a, const char *s) {
        if (a->n < ELEMENTSOF(a->v) - 1)
                a->v[a->n++] = (char *) s;
        a->v[a->n] = NULL;
}

static int run_nix(struct nixv *a, size_t max, struct buf *out, const char *what) {
        int r;

        a->v[a->n] = NULL;
        /* the operator's environment: their Nix setup (store, substituters, flake registry) */
        r = process_run(a->v, &(struct process_opts) { .out = out ? PROCESS_STDIO_CAPTURE : PROCESS_STDIO_INHERIT,
                                                        .capture_max = max },
                        out);
        if (r != 0)
                return ringil_fail(r < 0 ? r : -RINGIL_EREFUSED, "%s failed (%s %d)", what, r < 0 ? "error" : "exit", r);
        return 0;
}

/* `nix build --no-link --json REF` → the single output's store path. */
static int build_flake(const struct release_opts *o, char **ret) {
        _cleanup_buf_ struct buf out = {};
        struct nixv a;
        json_error_t e;
        json_t *j;
        const char *p;
        int r;

        nixv_init(&a, o, true);
        nixv_add(&a, "build");
        nixv_add(&a, "--no-link");
        nixv_add(&a, "--json");
        nixv_add(&a, o->flake);
        log_info("building %s", o->flake);
        r = run_nix(&a, 1u << 20, &out, "nix build");
        if (r < 0)
                return r;
        j = json_loadb((const char *) out.data, out.len, 0, &e);
        p = json_string_value(json_object_get(json_object_get(json_array_get(j, 0), "outputs"), "out"));
        if (!j || json_array_size(j) != 1 || !p || !nix_store_path_valid(p)) {
                json_decref(j);
                return ringil_fail(-RINGIL_EMALFORMED, "nix build %s did not print one output path", o->flake);
        }
        *ret = strdup(p);
        json_decref(j);
        return *ret ? 0 : -ENOMEM;
}

static int path_infos(const struct release_opts *o, const char *system, struct nix_path_infos *ret) {
        _cleanup_buf_ struct buf out = {};
        struct nixv a;
        int r;

        nixv_init(&a, o, false);
        nixv_add(&a, "path-info");
        nixv_add(&a, "--json");
        nixv_add(&a, "--recursive");
        nixv_add(&a, "--sigs");
        nixv_add(&a, system);
        r = run_nix(&a, 256u << 20, &out, "nix path-info");
        if (r < 0)
                return r;
        return nix_path_infos_parse((const char *) out.data, out.len, ret);
}

/* The fleet key's public half, and `nix store sign --recursive` with it. */
static int sign_closure(const struct release_opts *o, const char *system, char **ret_public) {
        _cleanup_free_ uint8_t *secret = NULL;
        struct nixv a;
        size_t len;
        int r;

        r = read_full_file(o->nix_key, RFILE_SECRET, NIX_KEY_MAX, &secret, &len);
        if (r < 0)
                return ringil_fail(r, "cannot read the Nix key %s", o->nix_key);
        r = nix_secret_key_public((const char *) secret, len, ret_public);
        secret_wipe(secret, len);
        if (r < 0)
                return ringil_fail(r, "%s: %s", o->nix_key, ringil_detail());
        nixv_init(&a, o, false);
        nixv_add(&a, "store");
        nixv_add(&a, "sign");
        nixv_add(&a, "--recursive");
        nixv_add(&a, "--key-file");
        nixv_add(&a, o->nix_key);
        nixv_add(&a, system);
        return run_nix(&a, 0, NULL, "nix store sign");
}

/* One request; the server's JSON answer (2xx) or its error message as a failure. */
static int call(fleet_client *fc, const char *method, const char *path, const char *body, json_t **ret) {
        _cleanup_buf_ struct buf resp = {};
        json_error_t e;
        long status = 0;
        json_t *j;
        int r = fleet_client_request(fc, method, path, body, RESPONSE_MAX, &status, &resp);

        if (r < 0)
                return ringil_fail(r, "%s %s: %s", method, path, ringil_detail());
        j = json_loadb((const char *) resp.data, resp.len, 0, &e);
        if (status < 200 || status > 299) {
                const char *msg = json_string_value(json_object_get(j, "error"));
                r = ringil_fail(status == 401 || status == 403 ? -RINGIL_EUNTRUSTED : status == 404 ? -ENOENT
                                : status == 409 ? -EEXIST : status == 422 ? -RINGIL_EREFUSED : -EPROTO,
                                "%s %s: the server answered %ld: %s", method, path, status, msg ? msg : "(no detail)");
                json_decref(j);
                return r;
        }
        if (!j)
                return ringil_fail(-RINGIL_EMALFORMED, "%s %s: malformed JSON answer", method, path);
        *ret = j;
        return 0;
}

/* The closure paths the server's cache does not have (a subset of pi, by index). */
static int ask_missing(fleet_client *fc, const struct nix_path_infos *pi, bool *missing, size_t *ret_n) {
        json_t *req = json_object(), *paths = json_array(), *ans = NULL, *v;
        char *body;
        size_t i, n = 0;
        int r;

        if (!req || !paths || json_object_set_new(req, "paths", paths) < 0) {
                json_decref(req);
                return -ENOMEM;
        }
        for (i = 0; i < pi->n; i++)
                if (json_array_append_new(paths, json_string(pi->v[i].path)) < 0) {
                        json_decref(req);
                        return -ENOMEM;
                }
        body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (!body)
                return -ENOMEM;
        r = call(fc, "POST", "/api/v1/nix-cache/missing", body, &ans);
        free(body);
        if (r < 0)
                return r;
        json_array_foreach(json_object_get(ans, "missing"), i, v) {
                const char *p = json_string_value(v);
                size_t k;
                for (k = 0; p && k < pi->n; k++)
                        if (streq(pi->v[k].path, p))
                                break;
                if (!p || k == pi->n) {
                        json_decref(ans);
                        return ringil_fail(-RINGIL_EMALFORMED, "the server named a path that is not in the closure");
                }
                if (!missing[k])
                        n++;
                missing[k] = true;
        }
        json_decref(ans);
        *ret_n = n;
        return 0;
}

/* The upload body: the envelope's header and narinfo from memory, then the NAR from `nix store dump-path`. */
struct upload_src {
        const uint8_t *head;
        size_t head_len, head_off;
        int fd;
};

static ssize_t upload_read(void *userdata, void *p, size_t n) {
        struct upload_src *u = userdata;

        if (u->head_off < u->head_len) {
                size_t k = MIN(n, u->head_len - u->head_off);
                memcpy(p, u->head + u->head_off, k);
                u->head_off += k;
                return (ssize_t) k;
        }
        for (;;) {
                ssize_t k = read(u->fd, p, n);
                if (k >= 0)
                        return k;
                if (errno != EINTR)
                        return negative_errno();
        }
}

static int publish_path(fleet_client *fc, const struct release_opts *o, const struct nix_path_info *p) {
        _cleanup_buf_ struct buf narinfo = {}, body = {}, resp = {};
        _cleanup_close_ int fd = -EBADF;
        struct upload_src src = {};
        char head[NIX_UPLOAD_HEADER_MAX], url[128];
        struct nixv a;
        long status = 0;
        pid_t pid;
        int r, rw;

        r = nix_narinfo_format(p, &narinfo);
        if (r < 0)
                return r;
        body = (struct buf) BUF_INIT(NARINFO_MAX + sizeof(head));
        r = buf_append(&body, head, nix_upload_header(narinfo.len, head));
        if (r >= 0)
                r = buf_append(&body, narinfo.data, narinfo.len);
        if (r < 0)
                return r;
        nixv_init(&a, o, false);
        nixv_add(&a, "store");
        nixv_add(&a, "dump-path");
        nixv_add(&a, p->path);
        a.v[a.n] = NULL;
        r = process_spawn_reader(a.v, &(struct process_opts) { .out = PROCESS_STDIO_CAPTURE }, &fd, &pid);
        if (r < 0)
                return ringil_fail(r, "cannot run nix store dump-path");
        src = (struct upload_src) { .head = body.data, .head_len = body.len, .fd = fd };
        (void) snprintf(url, sizeof(url), "/api/v1/nix-cache/%.32s", p->path + 11);
        r = fleet_client_send(fc, "PUT", url, body.len + p->nar_size, upload_read, &src, RESPONSE_MAX, &status, &resp);
        fd = safe_close(fd);   /* a Nix still writing gets EPIPE and ends */
        rw = process_wait(pid);
        if (r < 0)
                return ringil_fail(r, "publishing %s: %s", p->path, ringil_detail());
        if (status < 200 || status > 299) {
                json_error_t e;
                json_t *j = json_loadb((const char *) resp.data, resp.len, 0, &e);
                const char *msg = json_string_value(json_object_get(j, "error"));
                r = ringil_fail(status == 401 || status == 403 ? -RINGIL_EUNTRUSTED
                                : status == 422 ? -RINGIL_EREFUSED : status == 409 ? -RINGIL_EREFUSED : -EPROTO,
                                "the server refused %s (%ld): %s", p->path, status, msg ? msg : "(no detail)");
                json_decref(j);
                return r;
        }
        if (rw != 0)
                return ringil_fail(-EIO, "nix store dump-path %s failed (%d)", p->path, rw);
        return 0;
}

/* The bundle's nixos payload: the closure listing (paths, NAR hashes, sizes) in a memfd. */
static int closure_listing(const struct nix_path_infos *pi, struct buf *ret_text) {
        _cleanup_(nix_closure_done) struct nix_closure c = {};

        c.v = calloc(pi->n, sizeof(*c.v));
        if (!c.v)
                return -ENOMEM;
        for (size_t i = 0; i < pi->n; i++) {
                memcpy(c.v[i].path, pi->v[i].path, strlen(pi->v[i].path) + 1);
                memcpy(c.v[i].nar_hash, pi->v[i].nar_hash, 32);
                c.v[i].nar_size = pi->v[i].nar_size;
                c.n++;
        }
        return nix_closure_format(&c, ret_text);   /* sorts nothing: pi was sorted by path when parsed */
}

static int make_bundle(const struct release_opts *o, const char *system, const struct buf *listing, const char *output) {
        _cleanup_close_ int fd = memfd_create("ringil-closure", MFD_CLOEXEC);
        _cleanup_free_ char *cache = NULL;
        char path[32];
        struct bundle_create_payload p = { .name = "system", .type = BUNDLE_PAYLOAD_NIXOS, .store_path = system };
        struct bundle_create_opts b = {
                .key = o->key, .cert = o->cert, .compatible = o->compatible, .version = o->version,
                .created = (int64_t) time(NULL), .payloads = &p, .n_payloads = 1,
        };
        int r;

        if (fd < 0)
                return negative_errno();
        r = write_all(fd, listing->data, listing->len);
        if (r < 0)
                return r;
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (asprintf(&cache, "%s/nix-cache", o->server) < 0)
                return -ENOMEM;
        p.path = path;
        p.cache_url = cache;
        b.expires = b.created + (int64_t) o->valid_days * 86400;
        return bundle_create(&b, output);
}

/*
 * A release of this version for this hardware already on the server: 1 (its id) when it carries exactly
 * this closure listing, -EEXIST when it carries another, 0 when there is none.
 */
static int existing_release(fleet_client *fc, const struct release_opts *o, const struct buf *listing, int64_t *ret_id) {
        uint8_t want[SHA256_LEN];
        json_t *list = NULL, *e;
        int64_t id = 0;
        uint64_t size = 0;
        size_t i;
        int r;

        r = call(fc, "GET", "/api/v1/releases", NULL, &list);
        if (r < 0)
                return r;
        json_array_foreach(list, i, e) {
                const char *v = json_string_value(json_object_get(e, "version"));
                const char *cpt = json_string_value(json_object_get(e, "compatible"));
                if (v && cpt && streq(v, o->version) && streq(cpt, o->compatible)) {
                        id = json_integer_value(json_object_get(e, "id"));
                        size = (uint64_t) json_integer_value(json_object_get(e, "size"));
                }
        }
        json_decref(list);
        if (id <= 0)
                return 0;
        if (size == 0 || size > REUSE_BUNDLE_MAX)
                return ringil_fail(-EEXIST, "version %s for %s is release %" PRId64 ", which is not this system's bundle",
                                   o->version, o->compatible, id);
        {
                _cleanup_buf_ struct buf data = {};
                _cleanup_bundle_ bundle *bd = NULL;
                _cleanup_close_ int fd = -EBADF;
                const struct bundle_manifest *m;
                char path[64];
                long status = 0;

                (void) snprintf(path, sizeof(path), "/api/v1/releases/%" PRId64 "/bundle", id);
                r = fleet_client_request(fc, "GET", path, NULL, REUSE_BUNDLE_MAX, &status, &data);
                if (r < 0 || status != 200)
                        return ringil_fail(r < 0 ? r : -EPROTO, "cannot fetch release %" PRId64 "'s bundle", id);
                fd = memfd_create("ringil-release", MFD_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                r = write_all(fd, data.data, data.len);
                if (r < 0)
                        return r;
                if (lseek(fd, 0, SEEK_SET) < 0)
                        return negative_errno();
                r = bundle_open_fd(TAKE_FD(fd), &bd);
                if (r < 0)
                        return ringil_fail(r, "release %" PRId64 "'s bundle: %s", id, ringil_detail());
                /* judged only once it verifies with our own signer certificate */
                {
                        struct bundle_policy pol = { .keyring = o->cert, .compatible = o->compatible };
                        r = bundle_verify_manifest(bd, &pol);
                        if (r < 0)
                                return ringil_fail(-EEXIST, "version %s for %s is already release %" PRId64
                                                   ", whose bundle does not verify with %s: %s", o->version, o->compatible,
                                                   id, o->cert, ringil_detail());
                }
                m = bundle_get_manifest(bd);
                r = crypto_sha256(listing->data, listing->len, want);
                if (r < 0)
                        return r;
                if (!m || m->n_payloads != 1 || m->payloads[0].type != BUNDLE_PAYLOAD_NIXOS ||
                    crypto_memcmp(m->payloads[0].sha256, want, SHA256_LEN) != 0)
                        return ringil_fail(-EEXIST, "version %s for %s is already release %" PRId64 " with another closure: "
                                           "give this system a new version", o->version, o->compatible, id);
        }
        *ret_id = id;
        return 1;
}

/*
 * What happens to a release once it is on the server. Today: assign it (the whole fleet, a group or one
 * drone). When the server has staged rollouts, this is where one is created instead (a rollout plan over
 * the target, with its health gates); nothing else in this command needs to change.
 */
static int roll_out(fleet_client *fc, int64_t id, const char *assign) {
        char path[64], target[96], *body;
        json_t *req, *ans = NULL;
        int r;

        if (!assign)
                return 0;
        (void) snprintf(target, sizeof(target), "%s", streq(assign, "fleet") ? "*" : assign);
        (void) snprintf(path, sizeof(path), "/api/v1/releases/%" PRId64 "/assign", id);
        req = json_pack("{s:s}", "target", target);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body)
                return -ENOMEM;
        r = call(fc, "POST", path, body, &ans);
        free(body);
        json_decref(ans);
        if (r >= 0)
                printf("release %" PRId64 " assigned to %s\n", id, assign);
        return r;
}

static int upload_release(fleet_client *fc, const char *bundle_file, int64_t *ret_id) {
        _cleanup_buf_ struct buf resp = {};
        json_error_t e;
        long status = 0;
        json_t *j;
        int r = fleet_client_upload(fc, "/api/v1/releases", bundle_file, RESPONSE_MAX, &status, &resp);

        if (r < 0)
                return ringil_fail(r, "uploading the bundle: %s", ringil_detail());
        j = json_loadb((const char *) resp.data, resp.len, 0, &e);
        if (status != 201) {
                const char *msg = json_string_value(json_object_get(j, "error"));
                r = ringil_fail(status == 422 ? -RINGIL_EREFUSED : status == 409 ? -EEXIST : -EPROTO,
                                "the server refused the bundle (%ld): %s", status, msg ? msg : "(no detail)");
                json_decref(j);
                return r;
        }
        *ret_id = json_integer_value(json_object_get(j, "id"));
        json_decref(j);
        return *ret_id > 0 ? 0 : ringil_fail(-RINGIL_EMALFORMED, "the server named no release id");
}

static int release_run(const struct release_opts *o) {
        _cleanup_(fleet_client_freep) fleet_client *fc = NULL;
        _cleanup_(nix_path_infos_done) struct nix_path_infos pi = {};
        _cleanup_free_ char *built = NULL, *pub = NULL, *tmp = NULL;
        _cleanup_free_ bool *missing = NULL;
        _cleanup_buf_ struct buf listing = {};
        const char *system = o->system, *bundle_file = o->output;
        uint64_t bytes = 0;
        size_t n_missing = 0, published = 0;
        int64_t id = 0;
        int r;

        if (o->flake) {
                r = build_flake(o, &built);
                if (r < 0)
                        return fail(r, "cannot build the system");
                system = built;
        }
        if (!nix_store_path_valid(system))
                return usage_error("`%s' is not a store path", system);
        printf("system %s\n", system);
        if (!o->no_sign) {
                r = sign_closure(o, system, &pub);
                if (r < 0)
                        return fail(r, "cannot sign the closure");
        }
        r = path_infos(o, system, &pi);
        if (r >= 0)
                r = closure_listing(&pi, &listing);
        if (r < 0)
                return fail(r, "cannot list the closure");
        /* What this command publishes must be what the drones will accept: signed by the fleet key. */
        for (size_t i = 0; pub && i < pi.n; i++) {
                _cleanup_buf_ struct buf text = {};
                _cleanup_(narinfo_done) struct narinfo ni = {};
                r = nix_narinfo_format(&pi.v[i], &text);
                if (r >= 0)
                        r = narinfo_parse((const char *) text.data, text.len, &ni);
                if (r >= 0)
                        r = narinfo_verify(&ni, pub);
                if (r < 0)
                        return fail(r, "the signed closure does not verify with the fleet key");
        }
        r = nix_path_infos_toposort(&pi);
        if (r < 0)
                return fail(r, "cannot order the closure");

        r = fleet_client_new(o->server, o->server_ca, o->op_cert, o->op_key, 120, &fc);
        if (r < 0)
                return fail(r, "cannot set up the fleet client");
        missing = calloc(pi.n + 1, sizeof(bool));
        if (!missing)
                return fail(-ENOMEM, "out of memory");
        r = ask_missing(fc, &pi, missing, &n_missing);
        if (r < 0)
                return fail(r, "cannot ask the fleet cache what it lacks");
        printf("closure: %zu paths, %zu already in the fleet cache, %zu to publish\n", pi.n, pi.n - n_missing, n_missing);
        for (size_t i = 0; i < pi.n; i++) {
                if (!missing[i])
                        continue;
                r = publish_path(fc, o, &pi.v[i]);
                if (r < 0)
                        return fail(r, "publishing stopped");
                published++;
                bytes += pi.v[i].nar_size;
                printf("  published %s (%" PRIu64 " bytes)\n", pi.v[i].path, pi.v[i].nar_size);
        }

        r = existing_release(fc, o, &listing, &id);
        if (r < 0)
                return fail(r, "cannot release");
        if (r > 0)
                printf("release %" PRId64 ": version %s is already released with this closure\n", id, o->version);
        else {
                if (!bundle_file) {
                        const char *dir = getenv("TMPDIR");
                        if (asprintf(&tmp, "%s/ringil-release-%d.rb", dir && *dir ? dir : "/tmp", (int) getpid()) < 0)
                                return fail(-ENOMEM, "out of memory");
                        bundle_file = tmp;
                }
                r = make_bundle(o, system, &listing, bundle_file);
                if (r < 0)
                        return fail(r, "cannot make the bundle");
                r = upload_release(fc, bundle_file, &id);
                if (tmp)
                        (void) unlink(tmp);
                if (r < 0)
                        return fail(r, "cannot upload the release");
                printf("release %" PRId64 ": version %s for %s (%zu path%s published, %" PRIu64 " bytes)\n", id, o->version,
                       o->compatible, published, published == 1 ? "" : "s", bytes);
        }
        r = roll_out(fc, id, o->assign);
        if (r < 0)
                return fail(r, "cannot assign the release");
        return EXIT_OK;
}

int verb_release(int argc, char *argv[]) {
        enum { A_SYSTEM = 0x100, A_FLAKE, A_NIX_KEY, A_NO_SIGN, A_NIX_STORE, A_KEY, A_CERT, A_COMPATIBLE, A_VERSION,
               A_VALID_FOR, A_SERVER, A_SERVER_CA, A_OP_CERT, A_OP_KEY, A_ASSIGN, A_OUTPUT };
        static const struct option options[] = {
                { "system", required_argument, NULL, A_SYSTEM },
                { "flake", required_argument, NULL, A_FLAKE },
                { "nix-key", required_argument, NULL, A_NIX_KEY },
                { "no-sign", no_argument, NULL, A_NO_SIGN },
                { "nix-store", required_argument, NULL, A_NIX_STORE },
                { "key", required_argument, NULL, A_KEY },
                { "cert", required_argument, NULL, A_CERT },
                { "compatible", required_argument, NULL, A_COMPATIBLE },
                { "version", required_argument, NULL, A_VERSION },
                { "valid-for", required_argument, NULL, A_VALID_FOR },
                { "server", required_argument, NULL, A_SERVER },
                { "server-ca", required_argument, NULL, A_SERVER_CA },
                { "operator-cert", required_argument, NULL, A_OP_CERT },
                { "operator-key", required_argument, NULL, A_OP_KEY },
                { "assign", required_argument, NULL, A_ASSIGN },
                { "output", required_argument, NULL, A_OUTPUT },
                {},
        };
        struct release_opts o = {
                .valid_days = 30,
                .server = getenv("RINGIL_FLEET_SERVER"),
                .server_ca = getenv("RINGIL_FLEET_CA"),
                .op_cert = getenv("RINGIL_FLEET_CERT"),
                .op_key = getenv("RINGIL_FLEET_KEY"),
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case A_SYSTEM: o.system = optarg; break;
                case A_FLAKE: o.flake = optarg; break;
                case A_NIX_KEY: o.nix_key = optarg; break;
                case A_NO_SIGN: o.no_sign = true; break;
                case A_NIX_STORE: o.nix_store = optarg; break;
                case A_KEY: o.key = optarg; break;
                case A_CERT: o.cert = optarg; break;
                case A_COMPATIBLE: o.compatible = optarg; break;
                case A_VERSION: o.version = optarg; break;
                case A_VALID_FOR:
                        if (parse_uint(optarg, &o.valid_days) < 0 || o.valid_days == 0 || o.valid_days > 3660)
                                return usage_error("bad --valid-for '%s' (1..3660 days)", optarg);
                        break;
                case A_SERVER: o.server = optarg; break;
                case A_SERVER_CA: o.server_ca = optarg; break;
                case A_OP_CERT: o.op_cert = optarg; break;
                case A_OP_KEY: o.op_key = optarg; break;
                case A_ASSIGN: o.assign = optarg; break;
                case A_OUTPUT: o.output = optarg; break;
                default: return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (!!o.system + !!o.flake != 1)
                return usage_error("one of --system and --flake is required");
        if (!!o.nix_key + o.no_sign != 1)
                return usage_error("one of --nix-key and --no-sign is required");
        if (!o.key || !o.cert || !o.compatible || !o.version)
                return usage_error("--key, --cert, --compatible and --version are required");
        if (version_valid(o.version) < 0)
                return usage_error("bad --version '%s' (dot-numeric)", o.version);
        if (!o.server || !o.server_ca || !o.op_cert || !o.op_key)
                return usage_error("the fleet server and an operator identity are required (--server, --server-ca, "
                                   "--operator-cert, --operator-key or $RINGIL_FLEET_*)");
        if (o.assign && !streq(o.assign, "fleet") &&
            !((strncmp(o.assign, "group:", 6) == 0 || strncmp(o.assign, "drone:", 6) == 0) && ca_name_valid(o.assign + 6) >= 0))
                return usage_error("bad --assign '%s' (fleet, group:NAME or drone:ID)", o.assign);
        return release_run(&o);
}
