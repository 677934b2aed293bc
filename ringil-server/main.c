/* main.c: `ringil-server`: the fleet server (serve) and the operator commands that talk to it. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config-check.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "progress.h"
#include "operator.h"
#include "server.h"
#include "verb.h"

/*
 * glibc's defaults give freed memory back to the kernel as soon as 128 KiB are free at the top of a
 * heap, and serve requests above a moving threshold with fresh mmaps. In a threaded server that
 * means a page fault storm and a TLB-shootdown IPI to every core per request (madvise/munmap), which
 * was most of the check-in's cost. Keep freed memory, serve small and medium blocks from the heap.
 */
static void tune_malloc(void) {
        (void) mallopt(M_MMAP_THRESHOLD, 4 << 20);
        (void) mallopt(M_TRIM_THRESHOLD, 64 << 20);
        (void) mallopt(M_TOP_PAD, 4 << 20);
}

/* Enough descriptors for every connection the caps allow, plus files, the database and listeners. */
static int raise_nofile(const struct server_config *c) {
        struct rlimit rl;
        rlim_t want = (rlim_t) c->max_connections + c->enroll_max_connections + 4 * c->workers + 256;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (rl.rlim_cur >= want)
                return 0;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (rl.rlim_cur < want)
                log_warning("RLIMIT_NOFILE hard limit %llu is below the %llu that max-connections needs; "
                            "raise LimitNOFILE= or lower max-connections",
                            (unsigned long long) rl.rlim_max, (unsigned long long) want);
        return 0;
}

int server_run(struct server *srv) {
        const struct server_config *c = &srv->cfg;
        struct tp_config tc = {
                .listen = { [TP_FLEET] = c->listen, [TP_ENROLL] = c->enroll_listen },
                .cert = c->cert,
                .key = c->key,
                .device_ca = srv->device_ca_cert,
                .operator_ca = srv->operator_ca_cert,
                .spool_dir = c->store_dir,
                .limits = {
                        .max_connections = c->max_connections,
                        .enroll_max_connections = c->enroll_max_connections,
                        .enroll_per_address = c->enroll_per_address,
                        .enroll_rate = c->enroll_rate,
                        .enroll_timeout_ms = c->enroll_timeout * 1000,
                        .handshake_timeout_ms = c->handshake_timeout * 1000,
                        .request_timeout_ms = c->request_timeout * 1000,
                        .keepalive_timeout_ms = c->keepalive_timeout * 1000,
                        .min_body_rate = c->min_body_rate,
                        .workers = c->workers,
                        .max_memory_body = SERVER_MAX_MEMORY_BODY,
                },
                .app = { .userdata = srv, .admit = api_admit, .handle = api_handle },
        };
        char addr[128], name[256];
        int r;

        r = api_routes_register(&srv->routes, c->max_upload);
        if (r < 0)
                return r;
        (void) raise_nofile(c);
        r = tp_new(&tc, &srv->tp);
        if (r < 0)
                return r;
        /* The lines on stdout: tests and scripts read the ports from them when listen used port 0. */
        (void) tp_address(srv->tp, TP_FLEET, addr, sizeof(addr));
        printf("listening on %s\n", addr);
        log_info("listening on %s (mutual TLS)", addr);
        if (tp_address(srv->tp, TP_ENROLL, addr, sizeof(addr)) >= 0) {
                printf("enrollment on %s\n", addr);
                log_info("enrollment on %s", addr);
        }
        fflush(stdout);
        /* This replica's name in the scheduler's election: configured, or this host and fleet port. */
        if (c->replica_name)
                snprintf(name, sizeof(name), "%s", c->replica_name);
        else {
                char host[128] = "localhost";
                const char *port;
                (void) gethostname(host, sizeof(host) - 1);
                (void) tp_address(srv->tp, TP_FLEET, addr, sizeof(addr));
                port = strrchr(addr, ':');
                snprintf(name, sizeof(name), "%s%s", host, port ? port : "");
        }
        r = leader_start(srv, name);
        if (r < 0) {
                tp_free(srv->tp);
                srv->tp = NULL;
                return ringil_fail(r, "cannot start the scheduler thread");
        }
        r = tp_run(srv->tp);
        log_info("stopping");
        leader_stop(srv);
        tp_free(srv->tp);
        srv->tp = NULL;
        return r;
}

/* What to do about the usual reasons a server cannot start listening. */
static const char *serve_hint(int r) {
        switch (-r) {
        case EADDRINUSE:
                return " (another process listens on that port: stop it, or choose another `listen`)";
        case EACCES:
                return " (ports below 1024 need CAP_NET_BIND_SERVICE)";
        case EADDRNOTAVAIL:
                return " (no local interface has that address)";
        default:
                return "";
        }
}

static int serve_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "listen", required_argument, NULL, 'l' },
                {},
        };
        struct server srv = { .nix_cache_fd = -EBADF };
        const char *config = "/etc/ringil/server.conf", *listen_override = NULL;
        _cleanup_free_ char *ca_pem = NULL, *ca_key = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "c:l:", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'l':
                        listen_override = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("serve: unexpected argument '%s'", argv[optind]);
        progress_setup(NULL, PROGRESS_QUIET);   /* a daemon: its stderr is the journal */
        r = server_config_load(config, &srv.cfg);
        if (r < 0) {
                /* The detail is the whole line: the path once, the line, what is wrong (or why it is unreadable). */
                log_error_errno(r, "%s", ringil_detail());
                return exit_code_from_errno(r);
        }
        if (listen_override) {
                free(srv.cfg.listen);
                srv.cfg.listen = strdup(listen_override);
                if (!srv.cfg.listen)
                        return EXIT_FAIL;
        }
        /* Every config error is one line and exit 2, before anything is opened or bound. */
        if (server_config_check(config, &srv.cfg) < 0) {
                server_config_free(&srv.cfg);
                return EXIT_USAGE;
        }
        if (asprintf(&ca_pem, "%s/ca.pem", srv.cfg.device_ca) < 0 || asprintf(&ca_key, "%s/ca.key", srv.cfg.device_ca) < 0)
                return EXIT_FAIL;
        if (access(ca_key, F_OK) == 0)
                r = ca_load(srv.cfg.device_ca, &srv.device_ca_key, &srv.device_ca_cert);
        else
                r = crypto_load_cert(ca_pem, &srv.device_ca_cert);
        if (r < 0) {
                log_error_errno(r, "Cannot load the device CA from '%s': %s", srv.cfg.device_ca, ringil_detail());
                goto out;
        }
        if (!srv.device_ca_key)
                log_notice("no %s: enrollment by token is disabled", ca_key);
        r = crypto_load_cert(srv.cfg.operator_ca ? srv.cfg.operator_ca : ca_pem, &srv.operator_ca_cert);
        if (r < 0) {
                log_error_errno(r, "Cannot load the operator CA: %s", ringil_detail());
                goto out;
        }
        r = mkdir_p(srv.cfg.store_dir, 0700);
        if (r < 0) {
                log_error_errno(r, "Cannot create '%s': %m", srv.cfg.store_dir);
                goto out;
        }
        if (srv.cfg.nix_cache) {
                /* Opened once: every request resolves its file below this fd, so a later rename or
                 * symlink swap of the configured path itself cannot redirect what is served. */
                srv.nix_cache_fd = open(srv.cfg.nix_cache, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (srv.nix_cache_fd < 0) {
                        r = negative_errno();
                        if (r == -ENOTDIR)
                                log_error_errno(r, "Cannot serve nix-cache '%s': not a directory", srv.cfg.nix_cache);
                        else
                                log_error_errno(r, "Cannot serve nix-cache '%s': %m", srv.cfg.nix_cache);
                        goto out;
                }
        }
        r = store_open(srv.cfg.db, srv.cfg.workers, &srv.db);
        if (r < 0) {
                char shown[1024];
                store_db_redact(srv.cfg.db, shown, sizeof(shown));
                log_error_errno(r, "Cannot open database '%s': %s", shown, ringil_detail());
                goto out;
        }
        tune_malloc();
        r = server_run(&srv);
        if (r < 0)
                log_error_errno(r, "Server failed: %s: %m%s", ringil_detail(), serve_hint(r));
out:
        store_close(srv.db);
        X509_free(srv.device_ca_cert);
        X509_free(srv.operator_ca_cert);
        EVP_PKEY_free(srv.device_ca_key);
        safe_close(srv.nix_cache_fd);
        server_config_free(&srv.cfg);
        return exit_code_from_errno(r);
}

/* `sqlite:PATH`, a bare absolute path, or a PostgreSQL URL, as store_open() takes it. */
static const char *migrate_db(const char *arg) {
        return strncmp(arg, "sqlite:", 7) == 0 ? arg + 7 : arg;
}

static int migrate_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "from", required_argument, NULL, 'f' },
                { "to", required_argument, NULL, 't' },
                {},
        };
        const char *from = NULL, *to = NULL, *k;
        char from_shown[1024], to_shown[1024];
        store *src = NULL, *dst = NULL;
        json_t *counts = NULL, *v;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        from = migrate_db(optarg);
                        break;
                case 't':
                        to = migrate_db(optarg);
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("migrate: unexpected argument '%s'", argv[optind]);
        if (!from || !to)
                return usage_error("migrate: --from and --to are required");
        store_db_redact(from, from_shown, sizeof(from_shown));
        store_db_redact(to, to_shown, sizeof(to_shown));
        if (streq(from, to))
                return usage_error("migrate: --from and --to name the same database");
        r = store_open(from, 1, &src);
        if (r < 0) {
                log_error_errno(r, "Cannot open '%s': %s", from_shown, ringil_detail());
                return exit_code_from_errno(r);
        }
        r = store_open(to, 1, &dst);
        if (r < 0) {
                log_error_errno(r, "Cannot open '%s': %s", to_shown, ringil_detail());
                store_close(src);
                return exit_code_from_errno(r);
        }
        r = store_copy(src, dst, &counts);
        store_close(dst);
        store_close(src);
        if (r == -ENOTEMPTY) {
                log_error("Refusing to migrate into '%s': %s", to_shown, ringil_detail());
                return EXIT_EXISTS;
        }
        if (r < 0) {
                log_error_errno(r, "Migration from '%s' to '%s' failed, nothing was written: %s", from_shown, to_shown,
                                ringil_detail());
                return exit_code_from_errno(r);
        }
        json_object_foreach(counts, k, v)
                printf("%-12s %" JSON_INTEGER_FORMAT " rows\n", k, json_integer_value(v));
        printf("migrated %s to %s: every table holds as many rows as the source\n", from_shown, to_shown);
        json_decref(counts);
        return EXIT_OK;
}

#define OPERATOR_OPTIONS                                                                                   \
        "Connection options (or RINGIL_FLEET_SERVER, _CA, _CERT, _KEY in the environment):\n"             \
        "      --server URL   https://host:port of ringil-server\n"                                        \
        "      --ca FILE      CA that issued the server certificate (pinned)\n"                            \
        "      --cert FILE    operator certificate (ringil ca issue --operator)\n"                         \
        "      --key FILE     its key\n"                                                                   \
        "      --json         print the server's JSON instead of a table\n"                              \
        "      --quiet        no progress on stderr (upload)\n\n"

static const struct verb verbs[] = {
        VERB("serve", serve_main, "run the fleet server",
             "Usage: ringil-server serve [--config FILE] [--listen HOST:PORT]\n\n"
             "Serve the fleet API over HTTPS with mutual TLS. FILE defaults to /etc/ringil/server.conf\n"
             "(format in docs/fleet.md). Prints \"listening on HOST:PORT\" on stdout once ready; logs go\n"
             "to stderr only. SIGTERM stops it.\n\n"),
        VERB("migrate", migrate_main, "copy a fleet's state to a new database (SQLite to PostgreSQL)",
             "Usage: ringil-server migrate --from sqlite:PATH --to postgresql://USER@HOST/DB\n\n"
             "Copies drones and their identities (enrollment state, certificate serials), releases with their\n"
             "mirrors, assignments and the reports' history from one snapshot of the source into the\n"
             "destination, in one transaction, then compares the row count of every table; nothing is\n"
             "committed unless they all match. The destination's schema is created; its tables must be\n"
             "empty (exit 10 otherwise). Either side may be SQLite (sqlite:PATH or an absolute path) or a\n"
             "postgresql:// URL. Stop the server on the source first: a report it acknowledged after the\n"
             "snapshot would not be copied (agents resend reports until one is acknowledged, so drones lose\n"
             "nothing while no server answers). Bundle files are not moved: the new servers' `store` must\n"
             "hold them at the same paths.\n\n"),
        VERB("drones", op_drones, "list drones and their update state",
             "Usage: ringil-server drones [CONNECTION OPTIONS] [--json]\n\n" OPERATOR_OPTIONS),
        VERB("enroll", op_enroll, "register a drone and print its one-time enrollment token",
             "Usage: ringil-server enroll [CONNECTION OPTIONS] [--group G] DRONE-ID\n\n"
             "Registers DRONE-ID (in group G, default \"default\") and prints a one-time token for\n"
             "`ringild enroll`. Drones with certificates from `ringil ca issue` also need this step.\n\n"
             OPERATOR_OPTIONS),
        VERB("reissue-token", op_reissue_token, "a new one-time enrollment token for an existing drone",
             "Usage: ringil-server reissue-token [CONNECTION OPTIONS] DRONE-ID\n\n"
             "Prints a new one-time token for `ringild enroll` when the first one was lost or expired\n"
             "(valid `token-ttl`, like the first). Any earlier token of the drone stops working. The\n"
             "drone's current certificate stays valid until a certificate is enrolled with the new token;\n"
             "from then on only the new one is accepted. A revoked drone gets no token (exit 11):\n"
             "revocation is final, register the drone under a new id. Unknown DRONE-ID: exit 12.\n\n"
             OPERATOR_OPTIONS),
        VERB("revoke", op_revoke, "revoke a drone: every route refuses it from now on",
             "Usage: ringil-server revoke [CONNECTION OPTIONS] DRONE-ID\n\n" OPERATOR_OPTIONS),
        VERB("upload", op_upload, "upload a signed bundle as a new release",
             "Usage: ringil-server upload [CONNECTION OPTIONS] [--mirror URL]… [--reference] BUNDLE\n\n"
             "The server verifies the bundle against the fleet keyring and refuses anything else.\n"
             "Prints the release id. Progress goes to stderr (bytes, rate and time left on a terminal,\n"
             "one line otherwise); --quiet turns it off. --mirror (up to 8): https:// URLs where the same\n"
             "bundle file is served (any static web server or object store); drones fetch from them first,\n"
             "then from the server. --reference: the server verifies and registers the bundle but keeps\n"
             "no copy; the mirrors are then the only source.\n\n" OPERATOR_OPTIONS),
        VERB("mirrors", op_mirrors, "set the mirror URLs of a release",
             "Usage: ringil-server mirrors [CONNECTION OPTIONS] RELEASE-ID [URL]…\n\n"
             "Replaces the release's mirrors (none: clears them; refused for a release the server\n"
             "keeps no copy of). Drones check every byte from a mirror against the release's signed\n"
             "metadata and chunk hashes, and move to the next source on any mismatch.\n\n" OPERATOR_OPTIONS),
        VERB("release", op_release, "assign a release to the fleet, a group or a drone (at once: see rollout)",
             "Usage: ringil-server release [CONNECTION OPTIONS] RELEASE-ID --fleet|--group G|--drone D [--force]\n\n"
             "Every matching drone takes it at its next check-in. A drone that a rollout holds is refused\n"
             "(exit 10) unless --force, which takes it out of the rollout.\n\n"
             OPERATOR_OPTIONS),
        VERB("rollout", op_rollout, "staged rollouts: create, approve, start, pause, resume, abort, retry, show",
             NULL),
        VERB("tag", op_tag, "add or remove a drone's tags (rollout targets)",
             "Usage: ringil-server tag [CONNECTION OPTIONS] DRONE-ID [+TAG|-TAG]…\n\n"
             "Without +/- arguments, prints the drone's tags.\n\n" OPERATOR_OPTIONS),
        VERB("window", op_window, "maintenance windows of a group or drone (drone local time)",
             "Usage: ringil-server window set (--group G|--drone D) HH:MM-HH:MM[,HH:MM-HH:MM…]\n"
             "       ringil-server window clear (--group G|--drone D)\n"
             "       ringil-server window list\n\n"
             "Drones download at any time but install and reboot only inside a window, in their own\n"
             "time zone (ringild's `timezone`). A drone's windows beat its group's; none: any time.\n\n"
             OPERATOR_OPTIONS),
        VERB("retry", op_retry, "tell a drone to try again a release it failed",
             "Usage: ringil-server retry [CONNECTION OPTIONS] DRONE-ID\n\n"
             "Raises the drone's retry generation: its agent installs again a release it refused or\n"
             "rolled back before (for faults of the drone, not of the release).\n\n" OPERATOR_OPTIONS),
        VERB("clear", op_clear, "clear a drone's own assignment (and take it out of its rollout)",
             "Usage: ringil-server clear [CONNECTION OPTIONS] DRONE-ID\n\n" OPERATOR_OPTIONS),
        VERB("drift", op_drift, "drones off their release, failing prod, without Secure Boot, or silent",
             "Usage: ringil-server drift [CONNECTION OPTIONS] [--json] [--silent-polls N]\n\n"
             "From each drone's last compliance report: runs another version than assigned (release),\n"
             "last audit not a clean prod pass, with the failing check IDs (audit), Secure Boot not\n"
             "enforced or PK/KEK/db not exactly the fleet's (secureboot), no check-in for N poll\n"
             "intervals (silent; default server.conf silent-polls, 3).\n\n" OPERATOR_OPTIONS),
        VERB("status", op_status, "one drone's state and history, or the releases",
             "Usage: ringil-server status [CONNECTION OPTIONS] [DRONE-ID] [--json]\n\n"
             "Without DRONE-ID: the releases and where they are assigned.\n\n" OPERATOR_OPTIONS),
        VERB("metrics", op_metrics, "print the server's Prometheus metrics",
             "Usage: ringil-server metrics [CONNECTION OPTIONS]\n\n" OPERATOR_OPTIONS),
};

static void help(void) {
        printf("Usage: ringil-server COMMAND [OPTIONS]\n\n"
               "The ringil fleet server: drones pull signed bundles over mutual TLS; operators enroll\n"
               "drones, upload releases and watch the rollout.\n\n");
        verb_list(verbs, ELEMENTSOF(verbs), NULL);
        printf("\n%s", exit_codes_help);
}

int main(int argc, char *argv[]) {
        log_setup("ringil-server");
        progress_setup("ringil-server", PROGRESS_AUTO);   /* upload; --quiet turns it off */
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                help();
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        if (streq(argv[1], "--version")) {
                printf("ringil-server %s\n", RINGIL_VERSION);
                return EXIT_OK;
        }
        return verb_dispatch(verbs, ELEMENTSOF(verbs), NULL, argc - 1, argv + 1);
}
