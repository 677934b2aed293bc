/* install-nix.c: NixOS-generation install mode: fetch a signed bundle's system closure with the fleet's Nix key, set the profile, switch-to-configuration boot. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fleet-client.h"
#include "install-nix.h"
#include "log.h"
#include "macro.h"
#include "process.h"

#define NIX_ARGV_MAX 32

/* NIX_REMOTE=daemon (or another store URI of safe characters) when our caller has it: on NixOS the agent
 * runs sandboxed with /nix/store read-only, and nix-daemon does the store writes. NULL ends envp. */
static char *nix_remote(char buf[static 80]) {
        const char *v = getenv("NIX_REMOTE");

        if (!v || !*v)
                return NULL;
        if (strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789:/._-?=&") != strlen(v)) {
                log_debug("NIX_REMOTE `%.64s' ignored (not a plain store URI); Nix uses its default store", v);
                return NULL;
        }
        (void) snprintf(buf, 80, "NIX_REMOTE=%s", v);
        return buf;
}

/*
 * Run argv[0] without a shell and wait: its exit status, 128+signal, or a negative errno. home_dir set:
 * a fixed environment (PATH, HOME=home_dir, LC_ALL, NIX_REMOTE passed on); NULL: the caller's (an
 * operator's command such as bundle create, with its own Nix setup). ret set: stdout captured into it
 * (at most max bytes, else -EFBIG; the child is drained either way so it never blocks).
 */
static int spawn(const char *home_dir, char *const argv[], size_t max, struct buf *ret) {
        char home[PATH_MAX + 8], remote[80];
        char *const envp[] = { (char *) "PATH=/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:/usr/bin:/bin",
                               home, (char *) "LC_ALL=C", nix_remote(remote), NULL };

        if (home_dir)
                (void) snprintf(home, sizeof(home), "HOME=%s", home_dir);
        return process_run(argv, &(struct process_opts) { .envp = home_dir ? envp : NULL,
                                                          .out = ret ? PROCESS_STDIO_CAPTURE : PROCESS_STDIO_INHERIT,
                                                          .capture_max = max },
                           ret);
}

static int run(const struct device_conf *c, char *const argv[]) {
        return spawn(c->state_dir, argv, 0, NULL);
}

/* argv helper: appends "--store DIR" when a chroot store is configured. */
static void add_store(const struct device_conf *c, char **argv, size_t *n) {
        if (c->nix_store) {
                argv[(*n)++] = (char *) "--store";
                argv[(*n)++] = c->nix_store;
        }
}

/* The physical path of a store path (under the chroot store root in tests). */
static int physical(const struct device_conf *c, const char *store_path, const char *suffix, char **ret) {
        return asprintf(ret, "%s%s%s", c->nix_store ? c->nix_store : "", store_path, suffix) < 0 ? -ENOMEM : 0;
}

/* The store path the profile currently points at (profile -> P-N-link -> /nix/store/...). */
int install_nix_profile_target(const struct device_conf *c, char **ret) {
        _cleanup_free_ char *dir = NULL;
        char link1[PATH_MAX], link2[PATH_MAX], path[PATH_MAX * 2 + 2];
        ssize_t n;

        n = readlink(c->nix_profile, link1, sizeof(link1) - 1);
        if (n < 0)
                return ringil_fail(negative_errno(), "cannot read profile %s", c->nix_profile);
        link1[n] = '\0';
        if (link1[0] == '/')
                (void) snprintf(path, sizeof(path), "%s", link1);
        else {
                dir = strdup(c->nix_profile);
                if (!dir)
                        return -ENOMEM;
                *strrchr(dir, '/') = '\0';
                (void) snprintf(path, sizeof(path), "%s/%s", dir, link1);
        }
        n = readlink(path, link2, sizeof(link2) - 1);
        if (n < 0)
                return ringil_fail(negative_errno(), "cannot read profile generation %s", path);
        link2[n] = '\0';
        if (!nix_store_path_valid(link2))
                return ringil_fail(-RINGIL_EMALFORMED, "profile %s points at `%s', not a store path", c->nix_profile, link2);
        *ret = strdup(link2);
        return *ret ? 0 : -ENOMEM;
}

static int switch_boot(const struct device_conf *c, const char *store_path) {
        _cleanup_free_ char *stc = NULL;
        struct stat st;
        int r;

        r = physical(c, store_path, "/bin/switch-to-configuration", &stc);
        if (r < 0)
                return r;
        if (stat(stc, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR))
                return ringil_fail(-RINGIL_EREFUSED, "%s has no executable bin/switch-to-configuration", store_path);
        r = run(c, (char *const[]){ stc, (char *) "boot", NULL });
        if (r != 0)
                return ringil_fail(r < 0 ? r : -RINGIL_EREFUSED, "switch-to-configuration boot of %s failed (%d)", store_path, r);
        return 0;
}

static int profile_rollback(const struct device_conf *c) {
        char *argv[NIX_ARGV_MAX];
        size_t n = 0;
        int r;

        argv[n++] = (char *) "nix-env";
        add_store(c, argv, &n);
        argv[n++] = (char *) "--profile";
        argv[n++] = c->nix_profile;
        argv[n++] = (char *) "--rollback";
        argv[n] = NULL;
        r = run(c, argv);
        if (r != 0)
                return ringil_fail(r < 0 ? r : -RINGIL_EREFUSED, "nix-env --rollback of %s failed (%d)", c->nix_profile, r);
        return 0;
}

#define VALIDITY_BATCH 256
#define NIX_FETCH_CONNECTIONS 4   /* parallel connections to the fleet's cache */

/* nixcache_invalid_t over `nix-store --check-validity --print-invalid', a batch of paths per run. */
static int store_invalid(void *userdata, char *const *paths, size_t n, bool *invalid) {
        const struct device_conf *c = userdata;

        for (size_t at = 0; at < n; at += VALIDITY_BATCH) {
                size_t k = MIN(n - at, (size_t) VALIDITY_BATCH), na = 0;
                char *argv[VALIDITY_BATCH + 8];
                _cleanup_buf_ struct buf out = {};
                const char *p, *end;
                int r;

                argv[na++] = (char *) "nix-store";
                add_store(c, argv, &na);
                argv[na++] = (char *) "--check-validity";
                argv[na++] = (char *) "--print-invalid";
                for (size_t i = 0; i < k; i++)
                        argv[na++] = paths[at + i];
                argv[na] = NULL;
                r = spawn(c->state_dir, argv, k * (NIX_STORE_PATH_MAX + 1) + 1, &out);
                if (r != 0)
                        return ringil_fail(r < 0 ? r : -RINGIL_EREFUSED, "nix-store --check-validity failed (%d)", r);
                /* Each output line names one of the paths asked about. */
                for (p = (const char *) out.data, end = p + out.len; p && p < end;) {
                        const char *nl = memchr(p, '\n', (size_t) (end - p));
                        size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);
                        bool found = false;
                        for (size_t i = 0; i < k; i++)
                                if (strlen(paths[at + i]) == len && memcmp(paths[at + i], p, len) == 0)
                                        found = invalid[at + i] = true;
                        if (!found && len > 0)
                                return ringil_fail(-RINGIL_EMALFORMED, "nix-store --print-invalid answered `%.*s'",
                                                   (int) MIN(len, (size_t) 80), p);
                        p = nl ? nl + 1 : NULL;
                }
        }
        return 0;
}

static int src_get(void *userdata, const char *path, size_t max, long *ret_status, struct buf *ret_body) {
        return fleet_client_request(userdata, "GET", path, NULL, max, ret_status, ret_body);
}

static int64_t src_get_range(void *userdata, const char *path, uint64_t off, uint64_t len, nixcache_sink_t sink,
                             void *sink_userdata, long *ret_status) {
        return fleet_client_get_range(userdata, path, off, len, sink, sink_userdata, ret_status);
}

/*
 * The fleet server's cache answers only drones with their client certificate, which Nix cannot present:
 * mirror what the store lacks into STATE/nix-mirror through ringil's own mutual-TLS client, and let Nix
 * substitute from there. *ret_url is the file:// URL Nix then uses.
 */
static int mirror_cache(const struct device_conf *c, const char *url, const char *store_path,
                        const struct nix_closure *pin, char **ret_dir) {
        fleet_client *fc[NIX_FETCH_CONNECTIONS] = {};
        struct nixcache_source src[NIX_FETCH_CONNECTIONS];
        _cleanup_free_ char *dir = NULL;
        struct nixcache_stats st = {};
        struct timespec t0, t1;
        int r;

        if (asprintf(&dir, "%s/nix-mirror", c->state_dir) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < NIX_FETCH_CONNECTIONS; i++) {
                r = fleet_client_new(url, c->nix_tls_ca, c->nix_tls_cert, c->nix_tls_key, 60, &fc[i]);
                if (r < 0) {
                        r = ringil_fail(r, "cache %s: %s", url, ringil_detail());
                        goto out;
                }
                src[i] = (struct nixcache_source) { .get = src_get, .get_range = src_get_range, .userdata = fc[i] };
        }
        (void) clock_gettime(CLOCK_MONOTONIC, &t0);
        r = nixcache_mirror(src, NIX_FETCH_CONNECTIONS, store_path, c->nix_trusted_keys, pin, store_invalid, (void *) c,
                            dir, &st);
        (void) clock_gettime(CLOCK_MONOTONIC, &t1);
        log_debug("nix cache %s: %" PRIu64 " of %" PRIu64 " closure paths missing here and fetched, %" PRIu64
                 " NARs, %" PRIu64 " bytes received, %" PRIu64 " bytes resumed, %.3f s",
                 url, st.paths_fetched, st.paths_seen, st.nars_fetched, st.bytes_fetched, st.bytes_resumed,
                 (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (r < 0)
                r = ringil_fail(r, "fetching %s from %s: %s", store_path, url, ringil_detail());
        else
                *ret_dir = TAKE_PTR(dir);
out:
        for (size_t i = 0; i < NIX_FETCH_CONNECTIONS; i++)
                fleet_client_free(fc[i]);
        return r;
}

/* The nixos payload's bytes: the signed closure listing (each chunk checked against its signed hash). */
static int read_closure(bundle *b, size_t index, const struct bundle_payload *p, struct nix_closure *ret) {
        _cleanup_buf_ struct buf text = BUF_INIT(NIX_CLOSURE_LIST_MAX);
        _cleanup_free_ uint8_t *chunk = NULL;
        int r;

        if (p->size == 0)
                return ringil_fail(-RINGIL_EREFUSED, "payload `%s' carries no closure listing (make the bundle with "
                                   "`ringil bundle create', which lists the closure's NAR hashes)", p->name);
        if (p->size > NIX_CLOSURE_LIST_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "closure listing of `%s' is larger than %u bytes", p->name,
                                   NIX_CLOSURE_LIST_MAX);
        chunk = malloc(p->chunk_size);
        if (!chunk)
                return -ENOMEM;
        for (uint64_t i = 0; i < p->n_chunks; i++) {
                size_t len;
                r = bundle_read_chunk(b, index, i, chunk, &len);
                if (r < 0)
                        return r;
                r = buf_append(&text, chunk, len);
                if (r < 0)
                        return r;
        }
        r = nix_closure_parse((const char *) text.data, text.len, ret);
        if (r < 0)
                return ringil_fail(r, "payload `%s': %s", p->name, ringil_detail());
        if (!nix_closure_find(ret, p->store_path)) {
                nix_closure_done(ret);
                return ringil_fail(-RINGIL_EMALFORMED, "payload `%s': the closure listing does not contain %s", p->name,
                                   p->store_path);
        }
        return 0;
}

int nix_store_closure(const char *store, const char *home, const char *store_path, struct nix_closure *ret) {
        _cleanup_buf_ struct buf out = {};
        char *argv[NIX_ARGV_MAX];
        size_t n = 0;
        int r;

        if (!nix_store_path_valid(store_path))
                return ringil_fail(-RINGIL_EMALFORMED, "`%s' is not a store path", store_path);
        argv[n++] = (char *) "nix";
        argv[n++] = (char *) "--extra-experimental-features";
        argv[n++] = (char *) "nix-command";
        if (store) {
                argv[n++] = (char *) "--store";
                argv[n++] = (char *) store;
        }
        argv[n++] = (char *) "path-info";
        argv[n++] = (char *) "--json";
        argv[n++] = (char *) "--recursive";
        argv[n++] = (char *) store_path;
        argv[n] = NULL;
        r = spawn(home, argv, 4 * (size_t) NIX_CLOSURE_LIST_MAX, &out);
        if (r != 0)
                return ringil_fail(r < 0 ? r : -ENOENT, "nix path-info --recursive %s%s%s failed (%d)", store_path,
                                   store ? " --store " : "", store ? store : "", r);
        return nix_closure_from_path_info((const char *) out.data, out.len, ret);
}

/* INVARIANT: the store now holds exactly the signed closure: same paths, same NAR hashes. */
static int check_installed_closure(const struct device_conf *c, const char *store_path, const struct nix_closure *want) {
        struct nix_closure got = {};
        int r = nix_store_closure(c->nix_store, c->state_dir, store_path, &got);

        if (r >= 0)
                r = nix_closure_compare(want, &got);
        nix_closure_done(&got);
        return r;
}

int install_nix_generation(const struct device_conf *c, bundle *b, const struct bundle_manifest *m,
                           struct install_state *st, int64_t time_floor) {
        _cleanup_(nix_closure_done) struct nix_closure closure = {};
        const struct bundle_payload *p = NULL;
        size_t pi = 0;
        _cleanup_free_ char *phys = NULL, *now_target = NULL, *mirror = NULL, *mirror_url = NULL;
        const char *url;
        char *argv[NIX_ARGV_MAX];
        struct stat sb;
        size_t n = 0;
        int r;

        for (size_t i = 0; i < m->n_payloads; i++) {
                if (m->payloads[i].type != BUNDLE_PAYLOAD_NIXOS)
                        return ringil_fail(-RINGIL_EREFUSED, "payload `%s': generation mode installs only a nixos payload",
                                           m->payloads[i].name);
                if (p)
                        return ringil_fail(-RINGIL_EREFUSED, "more than one nixos payload");
                p = &m->payloads[i];
                pi = i;
        }
        if (!p)
                return ringil_fail(-RINGIL_EREFUSED, "bundle has no nixos payload (generation mode)");
        /* INVARIANT: argv is built only from validated strings: a store path and a URL without spaces. */
        if (!nix_store_path_valid(p->store_path))
                return ringil_fail(-RINGIL_EMALFORMED, "payload `%s': `%s' is not a Nix store path", p->name,
                                   p->store_path ? p->store_path : "");
        if (strlen(p->store_path) > 4 && streq(p->store_path + strlen(p->store_path) - 4, ".drv"))
                return ringil_fail(-RINGIL_EREFUSED, "payload `%s': %s is a derivation; a drone installs built systems only",
                                   p->name, p->store_path);
        url = p->cache_url ? p->cache_url : c->nix_substituter;
        if (!url)
                return ringil_fail(-RINGIL_EREFUSED, "bundle names no cache and [nix] substituter is not set");
        if (!nix_url_valid(url))
                return ringil_fail(-RINGIL_EMALFORMED, "cache URL `%s' refused", url);

        /* INVARIANT: one generation at a time: the pending one is blessed or rolled back first, so the
         * profile's previous generation is always the last known-good one. */
        if (st->phase == PHASE_PENDING)
                return ringil_fail(-RINGIL_EREFUSED, "generation %s is pending: run `ringil mark-good` once it is healthy "
                                   "(or `ringil mark-bad`) before installing", st->version ? st->version : "?");
        /* The bundle is authenticated: its creation time is a lower bound on the current time. */
        st->time_floor = MAX(time_floor, m->created);

        /* The bundle, not only the fleet's Nix key, decides the exact contents: its signed closure listing. */
        r = read_closure(b, pi, p, &closure);
        if (r < 0)
                return r;

        /* Through the drone's own TLS identity when the cache needs it (checked signatures, hashes). */
        if (strncmp(url, "https://", 8) == 0 && c->nix_tls_cert) {
                r = mirror_cache(c, url, p->store_path, &closure, &mirror);
                if (r < 0)
                        return r;
                if (asprintf(&mirror_url, "file://%s", mirror) < 0)
                        return -ENOMEM;
                url = mirror_url;
        }

        /* INVARIANT: the closure is accepted only with a signature by the fleet key (require-sigs, our keys
         * only, this one substituter); the bundle's own checks (freshness, floor) already passed. Nix
         * substitutes just the paths the store lacks and checks each NAR against its signed NarHash. */
        argv[n++] = (char *) "nix-store";
        add_store(c, argv, &n);
        argv[n++] = (char *) "--option";
        argv[n++] = (char *) "require-sigs";
        argv[n++] = (char *) "true";
        argv[n++] = (char *) "--option";
        argv[n++] = (char *) "trusted-public-keys";
        argv[n++] = c->nix_trusted_keys;
        argv[n++] = (char *) "--option";
        argv[n++] = (char *) "substituters";
        argv[n++] = (char *) url;
        argv[n++] = (char *) "--option";
        argv[n++] = (char *) "fallback";
        argv[n++] = (char *) "false";
        argv[n++] = (char *) "--option";   /* substitute only: never build anything here */
        argv[n++] = (char *) "max-jobs";
        argv[n++] = (char *) "0";
        argv[n++] = (char *) "--realise";
        argv[n++] = p->store_path;
        argv[n] = NULL;
        r = run(c, argv);
        /* The store has it now, or Nix refused what the mirror holds (a NAR matching its unsigned
         * FileHash but not the signed NarHash): either way the mirror is not kept. A mirror step that
         * failed earlier (a cut download) returned above and keeps its files for resuming. */
        if (mirror)
                (void) nixcache_mirror_remove(mirror);
        if (r != 0)
                return ringil_fail(r < 0 ? r : -RINGIL_EBADSIG,
                                   "nix-store --realise of %s from %s refused (exit %d): unsigned, wrong key, or corrupt closure",
                                   p->store_path, url, r);
        r = check_installed_closure(c, p->store_path, &closure);
        if (r < 0)
                return ringil_fail(r, "%s; not installed", ringil_detail());   /* the detail names the path */
        r = physical(c, p->store_path, "", &phys);
        if (r < 0)
                return r;
        if (lstat(phys, &sb) < 0 || !S_ISDIR(sb.st_mode))
                return ringil_fail(-RINGIL_EREFUSED, "%s is not in the store after nix-store --realise", p->store_path);
        /* INVARIANT: the exact path of the signed manifest is a valid (registered, verified) store path. */
        n = 0;
        argv[n++] = (char *) "nix-store";
        add_store(c, argv, &n);
        argv[n++] = (char *) "--check-validity";
        argv[n++] = p->store_path;
        argv[n] = NULL;
        r = run(c, argv);
        if (r != 0)
                return ringil_fail(r < 0 ? r : -RINGIL_EREFUSED, "%s is not a valid store path after nix-store --realise (%d)",
                                   p->store_path, r);

        /* From here on the system changes: record it (a crash leaves `writing`, and a rerun repeats the
         * idempotent steps). */
        memcpy(st->digest, m->digest, SHA256_LEN);
        st->have_digest = true;
        free(st->version);
        st->version = strdup(m->version);
        if (!st->version)
                return -ENOMEM;
        st->slot = 0;   /* generation mode keeps its record in slot a */
        st->attempts = 1;
        st->writes = 0;
        st->n_progress = 0;
        st->phase = PHASE_WRITING;
        r = install_state_save(c->state_dir, st);
        if (r < 0)
                return r;

        n = 0;
        argv[n++] = (char *) "nix-env";
        add_store(c, argv, &n);
        argv[n++] = (char *) "--profile";
        argv[n++] = c->nix_profile;
        argv[n++] = (char *) "--set";
        argv[n++] = p->store_path;
        argv[n] = NULL;
        r = run(c, argv);
        if (r != 0) {
                st->phase = PHASE_IDLE;
                return ringil_fail(r < 0 ? r : -RINGIL_EREFUSED, "nix-env --set %s failed (%d)", p->store_path, r);
        }
        /* INVARIANT: the profile names exactly the store path of the signed manifest. */
        r = install_nix_profile_target(c, &now_target);
        if (r >= 0 && !streq(now_target, p->store_path))
                r = ringil_fail(-RINGIL_EREFUSED, "profile points at %s, not %s", now_target, p->store_path);
        if (r >= 0)
                r = switch_boot(c, p->store_path);
        if (r < 0) {
                /* Leave the boot menu as it was: back to the previous generation. */
                (void) profile_rollback(c);
                st->phase = PHASE_IDLE;
                return r;
        }
        st->phase = PHASE_PENDING;
        /* Slot b's record keeps the last good generation's version: what runs after a fallback. */
        if (st->slots[0].status == SLOT_GOOD && st->slots[0].version) {
                free(st->slots[1].version);
                st->slots[1].version = TAKE_PTR(st->slots[0].version);
                st->slots[1].status = SLOT_GOOD;
        }
        st->slots[0].status = SLOT_PENDING;
        free(st->slots[0].version);
        st->slots[0].version = strdup(m->version);
        if (!st->slots[0].version)
                return -ENOMEM;
        (void) install_state_set_error(st, NULL);
        return install_state_save(c->state_dir, st);
}

int install_nix_mark_good(const struct device_conf *c, char **ret_version) {
        _cleanup_free_ char *target = NULL;
        char running[PATH_MAX];
        struct install_state st;
        ssize_t n;
        int r;

        r = install_state_load(c->state_dir, &st);
        if (r < 0)
                return r;
        if (st.phase != PHASE_PENDING) {
                r = ringil_fail(-RINGIL_EREFUSED, "no generation is pending");
                goto out;
        }
        r = install_nix_profile_target(c, &target);
        if (r < 0)
                goto out;
        n = readlink(c->nix_current_system, running, sizeof(running) - 1);
        if (n < 0) {
                r = ringil_fail(negative_errno(), "cannot read %s", c->nix_current_system);
                goto out;
        }
        running[n] = '\0';
        /* INVARIANT: only the generation actually running is blessed; a fallback boot is not. */
        if (!streq(running, target)) {
                _cleanup_free_ char *prev = NULL;
                char msg[PATH_MAX + 256];   /* install_state_set_error() caps it */

                /* The boot loader fell back (the pending generation's boot counter ran out, or it was not
                 * picked): the pending generation failed. Reset the profile so that no later
                 * switch-to-configuration reinstates it. */
                r = profile_rollback(c);
                if (r >= 0)
                        r = install_nix_profile_target(c, &prev);
                if (r >= 0 && !streq(prev, running))
                        r = ringil_fail(-RINGIL_EREFUSED,
                                        "running system %s is neither the pending generation %s nor the previous one %s",
                                        running, target, prev);
                if (r >= 0)
                        r = switch_boot(c, prev);
                if (r < 0)
                        goto out;
                st.phase = PHASE_IDLE;
                st.slots[0].status = SLOT_BAD;
                (void) snprintf(msg, sizeof(msg), "rollback: generation %s did not become the running system; back to %s",
                                st.version, running);
                (void) install_state_set_error(&st, msg);
                r = install_state_save(c->state_dir, &st);
                if (r >= 0)
                        r = 1;
                goto out;
        }
        r = floor_raise(c->state_dir, c->floor_copy, st.version, st.time_floor);
        if (r < 0)
                goto out;
        st.phase = PHASE_IDLE;
        st.slots[0].status = SLOT_GOOD;
        (void) install_state_set_error(&st, NULL);
        r = install_state_save(c->state_dir, &st);
        if (r >= 0 && ret_version) {
                *ret_version = strdup(st.version);
                if (!*ret_version)
                        r = -ENOMEM;
        }
out:
        install_state_done(&st);
        return r;
}

int install_nix_mark_bad(const struct device_conf *c) {
        _cleanup_free_ char *target = NULL;
        char msg[INSTALL_ERROR_MAX];
        struct install_state st;
        int r;

        r = install_state_load(c->state_dir, &st);
        if (r < 0)
                return r;
        if (st.phase != PHASE_PENDING) {
                r = ringil_fail(-RINGIL_EREFUSED, "no generation is pending; nothing to roll back");
                goto out;
        }
        r = profile_rollback(c);
        if (r >= 0)
                r = install_nix_profile_target(c, &target);
        if (r >= 0)
                r = switch_boot(c, target);
        if (r < 0)
                goto out;
        st.phase = PHASE_IDLE;
        st.slots[0].status = SLOT_BAD;
        (void) snprintf(msg, sizeof(msg), "rollback: generation %s marked bad; back to %s", st.version, target);
        (void) install_state_set_error(&st, msg);
        r = install_state_save(c->state_dir, &st);
out:
        install_state_done(&st);
        return r;
}

int install_nix_running_version(const struct device_conf *c, const struct install_state *st, char **ret) {
        _cleanup_free_ char *target = NULL;
        char running[PATH_MAX];
        const char *v;
        ssize_t n;

        n = readlink(c->nix_current_system, running, sizeof(running) - 1);
        if (n < 0)
                return -ENOENT;
        running[n] = '\0';
        if (install_nix_profile_target(c, &target) < 0)
                return -ENOENT;
        /* The profile's generation runs and is not the one rolled back from: the newest record. Anything
         * else is the previous, last good generation. */
        v = streq(running, target) && st->slots[0].status != SLOT_BAD ? st->slots[0].version : st->slots[1].version;
        if (!v)
                return -ENOENT;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}
