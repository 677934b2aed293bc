/* install.c: `ringil install`, `mark-good`, `mark-bad`, `status` and `health`: the A/B install verbs. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "install-bootentry.h"
#include "err.h"
#include "escape.h"
#include "install.h"
#include "install-nix.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "progress.h"
#include "verb.h"
#include "verbs.h"

#define COMMON_OPTS                                                                                   \
        "  -c, --config FILE     device configuration (default " DEVICE_CONF_DEFAULT ")\n"          \
        "      --efivarfs DIR    efivarfs to read LoaderEntrySelected from (default from config)\n"  \
        "      --booted ENTRY    the booted entry, overriding LoaderEntrySelected (tests, recovery): its\n"  \
        "                        file name under ESP/loader/entries or its id, with or without the\n"  \
        "                        +LEFT-DONE boot counter and .conf (ringil-b-2.0+2-1.conf, ringil-b-2.0)\n"

static const char install_text[] =
        "Usage: ringil install [OPTIONS] BUNDLE|-\n\n"
        "Verify BUNDLE (or a stream on stdin) against the device configuration — signature and chain\n"
        "against the keyring, 'compatible', expiry and the anti-rollback floor — before anything is written;\n"
        "then stream each payload chunk, verified against its signed hash, into the slot that is not booted,\n"
        "fsync, and add a boot entry with systemd-boot boot counting (+N tries). The new slot is tried on the\n"
        "next boot and kept only after `ringil mark-good`. An interrupted install of the same bundle resumes\n"
        "after the last recorded verified chunk; another bundle starts clean.\n\n"
        "Options:\n" COMMON_OPTS
        "      --slot a|b        install into this slot (first provisioning; never the booted one)\n"
        "      --reuse           take every chunk that is already on this drone (target slot, the other\n"
        "                        slot read-only, --seed files) from there, re-hashed, instead of the bundle\n"
        "      --seed FILE       one more read-only file to look for chunks in (repeatable, at most 6)\n"
        "      --fetch-stdio     the bundle is not here: ask for its byte ranges on stdout and read them\n"
        "                        on stdin (how ringild installs; implies --reuse unless --no-reuse;\n"
        "                        the protocol is in docs/install.md \"Delta updates\")\n"
        "      --fetch-size N    --fetch-stdio: the bundle's length, as the server said\n"
        "      --full-above PCT  --fetch-stdio: one sequential download when more than PCT percent of the payload\n"
        "                        would be fetched anyway (default 80)\n"
        "  -q, --quiet           no progress on stderr (shown by default: bytes, rate and time left on\n"
        "                        a terminal, a line per payload otherwise)\n\n"
        "Refused (exit 11) when the booted slot is unknown (no LoaderEntrySelected and no --booted) or not\n"
        "blessed, except --slot while no slot is blessed yet (first provisioning). Expiry is checked against\n"
        "the later of the clock and the newest installed bundle's creation time.\n\n"
        "Generation mode (device.conf [nix], docs/nixos.md): after the same bundle checks, fetch the nixos\n"
        "payload's closure with `nix copy` requiring a signature by [nix] trusted-public-keys, set the\n"
        "system profile to it and run its switch-to-configuration boot; pending until mark-good.\n\n"
        "Environment: RINGIL_TEST_CRASH_AT=N kills the installer at its Nth crash point (tests only).\n\n";

static const char mark_good_text[] =
        "Usage: ringil mark-good [OPTIONS]\n\n"
        "Bless the booted entry (strip its +LEFT-DONE boot counter), raise the anti-rollback floor to its\n"
        "version and keep it the default. Run after boot-complete.target (ringil-bless.service).\n"
        "Generation mode: bless the pending generation if it is the running one ([nix] current-system).\n\n"
        "Options:\n" COMMON_OPTS "\n";

static const char mark_bad_text[] =
        "Usage: ringil mark-bad [OPTIONS]\n\n"
        "Mark the booted entry bad (0 tries left), so systemd-boot boots the other slot next.\n"
        "Generation mode: roll the profile back to the previous generation and run its\n"
        "switch-to-configuration boot.\n\n"
        "Options:\n" COMMON_OPTS "\n";

static const char status_text[] =
        "Usage: ringil status [OPTIONS] [--json]\n\n"
        "Booted slot, version and state (pending/good/bad/incomplete/empty) per slot, the entry booted by\n"
        "default, the install in progress, the anti-rollback floor, the last error and whether the boot\n"
        "loader rolled back.\n\n"
        "Options:\n" COMMON_OPTS "      --json            machine-readable output\n\n";

static const char health_text[] =
        "Usage: ringil health [OPTIONS]\n\n"
        "Run the configured health-hook (ringil-health.service, before boot-complete.target). Success\n"
        "when no hook is configured; the hook's exit status otherwise.\n\n"
        "Options:\n  -c, --config FILE     device configuration (default " DEVICE_CONF_DEFAULT ")\n\n";

char install_usage[sizeof(install_text) + 1024], mark_good_usage[sizeof(mark_good_text) + 1024],
        mark_bad_usage[sizeof(mark_bad_text) + 1024], status_usage[sizeof(status_text) + 1024],
        health_usage[sizeof(health_text) + 1024];

/* Help texts with the shared exit-code table appended, built once before main(). */
__attribute__((constructor)) static void install_help_init(void) {
        snprintf(install_usage, sizeof(install_usage), "%s%s", install_text, exit_codes_help);
        snprintf(mark_good_usage, sizeof(mark_good_usage), "%s%s", mark_good_text, exit_codes_help);
        snprintf(mark_bad_usage, sizeof(mark_bad_usage), "%s%s", mark_bad_text, exit_codes_help);
        snprintf(status_usage, sizeof(status_usage), "%s%s", status_text, exit_codes_help);
        snprintf(health_usage, sizeof(health_usage), "%s%s", health_text, exit_codes_help);
}

enum { ARG_EFIVARFS = 0x100, ARG_BOOTED, ARG_SLOT, ARG_JSON, ARG_REUSE, ARG_NO_REUSE, ARG_SEED, ARG_FETCH_STDIO,
       ARG_FETCH_SIZE, ARG_FULL_ABOVE };

#define MAX_SEEDS 6

struct common {
        const char *config;
        const char *efivarfs;
        const char *booted;
        int slot;
        bool json;
        /* install only */
        int reuse;                      /* -1 default, 0 no, 1 yes */
        bool fetch_stdio;
        uint64_t fetch_size;
        unsigned full_above;
        const char *seeds[MAX_SEEDS + 1];
        size_t n_seeds;
};

static int parse_common(int argc, char *argv[], struct common *o, bool allow_slot, bool allow_json) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "efivarfs", required_argument, NULL, ARG_EFIVARFS },
                { "booted", required_argument, NULL, ARG_BOOTED },
                { "slot", required_argument, NULL, ARG_SLOT },
                { "json", no_argument, NULL, ARG_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "reuse", no_argument, NULL, ARG_REUSE },
                { "no-reuse", no_argument, NULL, ARG_NO_REUSE },
                { "seed", required_argument, NULL, ARG_SEED },
                { "fetch-stdio", no_argument, NULL, ARG_FETCH_STDIO },
                { "fetch-size", required_argument, NULL, ARG_FETCH_SIZE },
                { "full-above", required_argument, NULL, ARG_FULL_ABOVE },
                {},
        };
        int c;

        *o = (struct common){ .config = DEVICE_CONF_DEFAULT, .slot = -1, .reuse = -1, .full_above = 80 };
        while ((c = getopt_long(argc, argv, allow_slot ? "c:q" : "c:", options, NULL)) >= 0)
                switch (c) {
                case 'q':
                        if (!allow_slot)
                                return usage_error("--quiet is only for install");
                        progress_setup(NULL, PROGRESS_QUIET);
                        break;
                case 'c':
                        o->config = optarg;
                        break;
                case ARG_EFIVARFS:
                        o->efivarfs = optarg;
                        break;
                case ARG_BOOTED:
                        o->booted = optarg;
                        break;
                case ARG_SLOT:
                        if (!allow_slot)
                                return usage_error("--slot is only for install");
                        o->slot = slot_from_string(optarg);
                        if (o->slot < 0)
                                return usage_error("--slot must be a or b, not `%s'", optarg);
                        break;
                case ARG_REUSE:
                case ARG_NO_REUSE:
                case ARG_SEED:
                case ARG_FETCH_STDIO:
                case ARG_FETCH_SIZE:
                case ARG_FULL_ABOVE:
                        if (!allow_slot)
                                return usage_error("--%s is only for install", c == ARG_REUSE ? "reuse" : c == ARG_NO_REUSE ? "no-reuse" :
                                                   c == ARG_SEED ? "seed" : c == ARG_FETCH_STDIO ? "fetch-stdio" :
                                                   c == ARG_FETCH_SIZE ? "fetch-size" : "full-above");
                        if (c == ARG_REUSE || c == ARG_NO_REUSE)
                                o->reuse = c == ARG_REUSE;
                        else if (c == ARG_SEED) {
                                if (o->n_seeds >= MAX_SEEDS)
                                        return usage_error("at most %u --seed files", MAX_SEEDS);
                                o->seeds[o->n_seeds++] = optarg;
                        } else if (c == ARG_FETCH_STDIO)
                                o->fetch_stdio = true;
                        else if (c == ARG_FETCH_SIZE) {
                                if (parse_u64(optarg, &o->fetch_size) < 0 || o->fetch_size == 0)
                                        return usage_error("bad --fetch-size `%s'", optarg);
                        } else if (parse_uint(optarg, &o->full_above) < 0 || o->full_above > 100)
                                return usage_error("--full-above must be a percentage 0..100, not `%s'", optarg);
                        break;
                case ARG_JSON:
                        if (!allow_json)
                                return usage_error("--json is only for status");
                        o->json = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        return -1;
}

static int load_conf(const struct common *o, struct device_conf *c) {
        int r = device_conf_load(o->config, c);

        if (r < 0) {
                /* The detail is the whole line: the path once, the line, what is wrong (or why it is unreadable). */
                log_error_errno(r, "%s", ringil_detail());
                return exit_code_from_errno(r);
        }
        if (o->efivarfs) {
                char *e = strdup(o->efivarfs);
                if (!e)
                        return EXIT_FAIL;
                free(c->efivarfs);
                c->efivarfs = e;
        }
        return -1;
}

static int fail(int r, const char *what) {
        const char *d = ringil_detail();

        log_error_errno(r, "%s: %s%s%s", what, ringil_strerror(r), d[0] ? ": " : "", d);
        return exit_code_from_errno(r);
}

int verb_install(int argc, char *argv[]) {
        _cleanup_(device_conf_done) struct device_conf conf = {};
        struct common o;
        struct install_result res;
        int r;

        r = parse_common(argc, argv, &o, true, false);
        if (r >= 0)
                return r;
        if (optind + 1 != argc)
                return usage_error("install takes exactly one BUNDLE (or -)");
        if (o.fetch_stdio && !streq(argv[optind], "-"))
                return usage_error("--fetch-stdio reads the bundle from stdin: name it `-'");
        r = load_conf(&o, &conf);
        if (r >= 0)
                return r;
        if (o.fetch_stdio)
                /* stdout carries the protocol: only whole lines, each written at once */
                setvbuf(stdout, NULL, _IOLBF, 0);
        r = install_run(&conf,
                        &(struct install_opts){ .bundle = argv[optind], .slot = o.slot, .booted = o.booted,
                                                .reuse = o.reuse > 0 || (o.reuse < 0 && o.fetch_stdio),
                                                .seeds = o.n_seeds ? o.seeds : NULL, .fetch_stdio = o.fetch_stdio,
                                                .fetch_size = o.fetch_size, .full_above = o.full_above },
                        &res);
        if (r < 0)
                return fail(r, "Install failed");
        if (conf.nix_generation) {
                printf("installed NixOS generation %s into profile %s (switch-to-configuration boot); pending until mark-good\n",
                       res.version, conf.nix_profile);
                return EXIT_OK;
        }
        printf("installed %s into slot %c: %llu chunks written, %llu already done%s; boots next with %u tries\n",
               res.version, slot_letter(res.slot), (unsigned long long) res.chunks_written,
               (unsigned long long) res.chunks_skipped, res.resumed ? " (resumed)" : "", conf.boot_tries);
        if (o.reuse > 0 || o.fetch_stdio)
                printf("delta: %llu bytes reused from local storage (%llu already in place), %llu bytes of chunks "
                       "fetched%s, %llu received in all; %llu local chunk%s failed the hash and %s fetched\n",
                       (unsigned long long) res.bytes_local, (unsigned long long) res.bytes_inplace,
                       (unsigned long long) res.bytes_fetched, res.full_download ? " (one sequential download)" : "",
                       (unsigned long long) res.bytes_received, (unsigned long long) res.chunks_refetched,
                       res.chunks_refetched == 1 ? "" : "s", res.chunks_refetched == 1 ? "was" : "were");
        return EXIT_OK;
}

/* The verbs without arguments: options, no operands, then the device configuration. Returns -1 to go
 * on, or the exit code to return. */
static int setup_noarg_verb(int argc, char *argv[], const char *verb, struct common *o, struct device_conf *c) {
        int r = parse_common(argc, argv, o, false, false);

        if (r >= 0)
                return r;
        if (optind != argc)
                return usage_error("%s takes no arguments", verb);
        return load_conf(o, c);
}

int verb_mark_good(int argc, char *argv[]) {
        _cleanup_(device_conf_done) struct device_conf conf = {};
        _cleanup_free_ char *version = NULL;
        struct common o;
        int r;

        r = setup_noarg_verb(argc, argv, "mark-good", &o, &conf);
        if (r >= 0)
                return r;
        r = install_mark_good(&conf, o.booted, &version);
        if (r < 0)
                return fail(r, "mark-good failed");
        if (r == 1) {
                printf("the pending generation is not running: recorded it bad and rolled the profile back\n");
                return EXIT_OK;
        }
        printf("blessed %s; floor is now at least %s\n", version ? version : "?", version ? version : "?");
        return EXIT_OK;
}

int verb_mark_bad(int argc, char *argv[]) {
        _cleanup_(device_conf_done) struct device_conf conf = {};
        struct common o;
        int r;

        r = setup_noarg_verb(argc, argv, "mark-bad", &o, &conf);
        if (r >= 0)
                return r;
        r = install_mark_bad(&conf, o.booted);
        if (r < 0)
                return fail(r, "mark-bad failed");
        printf(conf.nix_generation ? "rolled the profile back to the previous generation (switch-to-configuration boot)\n"
                                   : "marked the booted slot bad; the other slot boots next\n");
        return EXIT_OK;
}

int verb_health(int argc, char *argv[]) {
        _cleanup_(device_conf_done) struct device_conf conf = {};
        struct common o;
        int r;

        r = setup_noarg_verb(argc, argv, "health", &o, &conf);
        if (r >= 0)
                return r;
        if (!conf.health_hook)
                return EXIT_OK;
        r = install_run_hook(conf.health_hook, "health", -1, NULL);
        if (r < 0)
                return fail(r, "health hook");
        if (r != 0)
                log_error("Health hook %s failed with status %d", conf.health_hook, r);
        return r == 0 ? EXIT_OK : EXIT_REFUSED;
}

/* Generation mode: the profile's system, the pending or last generation, the floor. */
static int status_generation(const struct device_conf *c, const struct install_state *st, const char *floor,
                             int64_t time_floor, bool json) {
        _cleanup_free_ char *sys = NULL, *running = NULL;
        const char *gen = slot_status_to_string(st->slots[0].status);

        (void) install_nix_profile_target(c, &sys);
        (void) install_nix_running_version(c, st, &running);
        if (json) {
                json_t *j = json_object();
                char *s;
                json_object_set_new(j, "mode", json_string("generation"));
                json_object_set_new(j, "profile", json_string(c->nix_profile));
                json_object_set_new(j, "system", sys ? json_string(sys) : json_null());
                json_object_set_new(j, "phase", json_string(install_phase_to_string(st->phase)));
                json_object_set_new(j, "generation", json_string(gen));
                json_object_set_new(j, "version", st->slots[0].version ? json_string(st->slots[0].version) : json_null());
                json_object_set_new(j, "target_version", st->phase != PHASE_IDLE && st->version ? json_string(st->version) : json_null());
                json_object_set_new(j, "floor", floor ? json_string(floor) : json_null());
                json_object_set_new(j, "time_floor", time_floor > 0 ? json_integer(time_floor) : json_null());
                json_object_set_new(j, "last_error", st->last_error ? json_string(st->last_error) : json_null());
                json_object_set_new(j, "rollback", json_boolean(st->slots[0].status == SLOT_BAD));
                json_object_set_new(j, "running_version", running ? json_string(running) : json_null());
                s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
                json_decref(j);
                if (!s)
                        return EXIT_FAIL;
                puts(s);
                free(s);
                return EXIT_OK;
        }
        printf("mode:       generation (profile %s)\n", ESCAPED(c->nix_profile));
        printf("system:     %s\n", sys ? ESCAPED(sys) : "none");
        printf("generation: %s %s\n", st->slots[0].version ? st->slots[0].version : "-", gen);
        printf("running:    %s\n", running ? ESCAPED(running) : "unknown");
        printf("install:    %s%s%s\n", install_phase_to_string(st->phase), st->phase != PHASE_IDLE && st->version ? " " : "",
               st->phase != PHASE_IDLE && st->version ? st->version : "");
        printf("floor:      %s\n", floor ? floor : "none");
        printf("last error: %s\n", st->last_error ? ESCAPED(st->last_error) : "-");
        return EXIT_OK;
}

struct slot_view {
        const char *state;   /* good, pending, bad, incomplete, empty */
        const char *version;
        const struct boot_entry *entry;
};

static void view_slots(const struct install_state *st, const struct boot_entry *v, size_t n, struct slot_view out[2]) {
        for (int k = 0; k < 2; k++) {
                const struct boot_entry *e = NULL;
                for (size_t i = 0; i < n && !e; i++)
                        if (v[i].slot == k)
                                e = &v[i];
                out[k] = (struct slot_view){ .entry = e, .version = e ? e->version : st->slots[k].version };
                if (st->slots[k].status == SLOT_BAD || (e && bootentry_is_bad(e)))
                        out[k].state = "bad";
                else if (e)
                        out[k].state = e->tries_left < 0 ? "good" : "pending";
                else if (st->slots[k].status == SLOT_WRITING)
                        out[k].state = "incomplete";
                else
                        out[k].state = "empty";
        }
}

int verb_status(int argc, char *argv[]) {
        _cleanup_(device_conf_done) struct device_conf conf = {};
        _cleanup_free_ struct boot_entry *v = NULL;
        _cleanup_free_ char *floor = NULL, *booted_id = NULL, *efi_default = NULL, *loader = NULL, *why = NULL;
        struct install_state st;
        struct slot_view sv[2];
        const struct boot_entry *def;
        struct common o;
        size_t n = 0;
        int64_t time_floor = 0;
        struct boot_entry be;
        enum booted_state bstate;
        int r, booted = -1;
        bool rollback;

        r = parse_common(argc, argv, &o, false, true);
        if (r >= 0)
                return r;
        if (optind != argc)
                return usage_error("status takes no arguments");
        r = load_conf(&o, &conf);
        if (r >= 0)
                return r;
        r = install_state_load(conf.state_dir, &st);
        if (r < 0)
                return fail(r, "Cannot read install state");
        r = floor_read(conf.state_dir, conf.floor_copy, &floor, &time_floor);
        if (r >= 0 && conf.nix_generation) {
                r = status_generation(&conf, &st, floor, MAX(time_floor, st.time_floor), o.json);
                install_state_done(&st);
                return r;
        }
        if (r >= 0)
                r = bootentry_list(conf.esp, conf.entry_name, &v, &n);
        if (r < 0) {
                install_state_done(&st);
                return fail(r, "Cannot read status");
        }
        time_floor = MAX(time_floor, st.time_floor);
        /* The booted slot, or why it cannot be known (said, never left as a bare "unknown"). */
        if (install_find_booted(&conf, o.booted, &be, &booted_id, &bstate) >= 0)
                booted = be.slot;
        else if (!(why = strdup(ringil_detail()[0] ? ringil_detail() : "cannot read the booted entry"))) {
                install_state_done(&st);
                return EXIT_FAIL;
        }
        (void) bootentry_loader_info(conf.efivarfs, &loader);
        (void) bootentry_efivar_default(conf.efivarfs, &efi_default);
        view_slots(&st, v, n, sv);
        def = bootentry_default(v, n);
        rollback = (st.phase == PHASE_PENDING && booted >= 0 && booted != st.slot && streq(sv[st.slot].state, "bad")) ||
                   (st.last_error && strncmp(st.last_error, "rollback:", 9) == 0);

        if (o.json) {
                json_t *j = json_object(), *slots = json_object();
                char *s;
                for (int k = 0; k < 2; k++) {
                        json_t *e = json_object();
                        char name[2] = { slot_letter(k), 0 };
                        json_object_set_new(e, "state", json_string(sv[k].state));
                        json_object_set_new(e, "version", sv[k].version ? json_string(sv[k].version) : json_null());
                        json_object_set_new(e, "entry", sv[k].entry ? json_string(sv[k].entry->file) : json_null());
                        json_object_set_new(e, "tries_left",
                                            sv[k].entry && sv[k].entry->tries_left >= 0 ? json_integer(sv[k].entry->tries_left)
                                                                                        : json_null());
                        json_object_set_new(slots, name, e);
                }
                json_object_set_new(j, "booted", booted >= 0 ? json_string((char[]){ slot_letter(booted), 0 }) : json_null());
                json_object_set_new(j, "booted_entry", booted_id ? json_string(booted_id) : json_null());
                json_object_set_new(j, "booted_file", booted >= 0 ? json_string(be.file) : json_null());
                json_object_set_new(j, "booted_unknown_reason", why ? json_string(why) : json_null());
                json_object_set_new(j, "loader", loader ? json_string(loader) : json_null());
                json_object_set_new(j, "default_entry", def ? json_string(def->file) : json_null());
                json_object_set_new(j, "efivar_default_override", efi_default ? json_string(efi_default) : json_null());
                json_object_set_new(j, "slots", slots);
                json_object_set_new(j, "phase", json_string(install_phase_to_string(st.phase)));
                json_object_set_new(j, "target", st.phase != PHASE_IDLE ? json_string((char[]){ slot_letter(st.slot), 0 }) : json_null());
                json_object_set_new(j, "target_version", st.phase != PHASE_IDLE && st.version ? json_string(st.version) : json_null());
                json_object_set_new(j, "attempts", json_integer(st.attempts));
                json_object_set_new(j, "stalls", json_integer(st.stalls));
                json_object_set_new(j, "chunk_writes", json_integer((json_int_t) st.writes));
                json_object_set_new(j, "floor", floor ? json_string(floor) : json_null());
                json_object_set_new(j, "time_floor", time_floor > 0 ? json_integer(time_floor) : json_null());
                json_object_set_new(j, "last_error", st.last_error ? json_string(st.last_error) : json_null());
                json_object_set_new(j, "rollback", json_boolean(rollback));
                s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
                json_decref(j);
                if (!s) {
                        install_state_done(&st);
                        return EXIT_FAIL;
                }
                puts(s);
                free(s);
        } else {
                if (booted >= 0)
                        printf("booted:     %c (%s; the loader reported `%s')\n", slot_letter(booted), ESCAPED(be.file),
                               ESCAPED(booted_id));
                else
                        printf("booted:     unknown: %s\n", ESCAPED(why));
                if (loader)
                        printf("loader:     %s\n", ESCAPED(loader));
                printf("default:    %s\n", def ? ESCAPED(def->file) : "none");
                if (efi_default)
                        printf("warning:    LoaderEntryDefault=%s overrides loader.conf; fallback may not work\n",
                               ESCAPED(efi_default));
                for (int k = 0; k < 2; k++) {
                        printf("slot %c:     %s %s", slot_letter(k), sv[k].version ? sv[k].version : "-", sv[k].state);
                        if (sv[k].entry && sv[k].entry->tries_left > 0)
                                printf(" (%d tries left)", sv[k].entry->tries_left);
                        putchar('\n');
                }
                if (st.phase == PHASE_IDLE)
                        printf("install:    idle\n");
                else
                        printf("install:    %s %s into slot %c (run %u; %u in a row without progress, %u allowed)\n",
                               install_phase_to_string(st.phase), st.version, slot_letter(st.slot), st.attempts,
                               st.stalls, conf.max_attempts);
                printf("floor:      %s\n", floor ? floor : "none");
                if (time_floor > 0) {
                        char t[32];
                        struct tm tm;
                        time_t tt = (time_t) time_floor;
                        printf("time floor: %s\n", gmtime_r(&tt, &tm) && strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm) ? t : "?");
                }
                printf("rollback:   %s\n", rollback ? "yes" : "no");
                printf("last error: %s\n", st.last_error ? ESCAPED(st.last_error) : "-");
        }
        install_state_done(&st);
        return EXIT_OK;
}
