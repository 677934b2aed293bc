/* main.c: `ringild`, the drone's update agent: pulls its assignment from ringil-server over mutual TLS. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "fleet-ca.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "verb.h"

static void help(void) {
        printf("Usage: ringild [--config FILE] [--once] [--verbose]\n"
               "       ringild enroll [--config FILE] --id DRONE-ID --token TOKEN\n\n"
               "The drone's update agent. Polls ringil-server (jittered interval, exponential backoff on\n"
               "failure), streams its assigned bundle into `ringil install -` (each chunk is verified by\n"
               "the engine before it is written), resumes cut downloads with Range requests, reboots\n"
               "through the configured command, and after the reboot runs the health gate and\n"
               "mark-good, or marks the slot bad and reports the rollback. Every state change is\n"
               "reported and kept until the server acknowledges it. Logs go to stderr only.\n\n"
               "Options:\n"
               "  -c, --config FILE  agent config (default /etc/ringil/ringild.conf; docs/fleet.md)\n"
               "      --once         one check-in (and install, if assigned), then exit\n"
               "  -v, --verbose      debug logging\n"
               "  -h, --help         this help\n\n"
               "enroll: generate this drone's EC P-256 key (written to the config's `key`, 0400),\n"
               "send a CSR with the one-time TOKEN from `ringil-server enroll` (or `reissue-token`) to the\n"
               "server's enrollment port (the config's `enroll-server`), and store the issued\n"
               "certificate at `cert`.\n\n"
               "%s\n"
               "In ringild's terms (docs/exit-codes.md): 3 the config or agent state is malformed;\n"
               "10 enroll: the key or certificate exists; 11 enroll: the server refused the token;\n"
               "12 a file the config names is missing; 13 (enroll, --once) the server cannot be reached;\n"
               "14 (enroll, --once) TLS failed (server not trusted by the pinned `ca`, or our\n"
               "certificate refused) or the server answered outside the protocol. The daemon keeps\n"
               "retrying network failures with backoff and exits 0 on SIGTERM.\n",
               exit_codes_help);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "once", no_argument, NULL, 'o' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "id", required_argument, NULL, 'i' },
                { "token", required_argument, NULL, 't' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        const char *config = "/etc/ringil/ringild.conf", *id = NULL, *token = NULL;
        struct agent_config cfg = {};
        bool once = false, enroll = false;
        int c, r;

        log_setup("ringild");
        if (argc > 1 && streq(argv[1], "enroll")) {
                enroll = true;
                argv++;
                argc--;
        }
        while ((c = getopt_long(argc, argv, "c:vh", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'o':
                        once = true;
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                case 'i':
                        id = optarg;
                        break;
                case 't':
                        token = optarg;
                        break;
                case 'V':
                        printf("ringild %s\n", RINGIL_VERSION);
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (enroll && (!id || !token))
                return usage_error("enroll: --id DRONE-ID and --token TOKEN are required");
        if (enroll && ca_name_valid(id) < 0)
                return usage_error("enroll: invalid DRONE-ID '%s' (1-64 of A-Z a-z 0-9 . _ -)", id);
        r = agent_config_load(config, &cfg);
        if (r < 0) {
                /* The detail is the whole line: the path once, the line, what is wrong (or why it is unreadable). */
                log_error_errno(r, "%s", ringil_detail());
                return exit_code_from_errno(r);
        }
        if (enroll) {
                r = agent_enroll(&cfg, id, token);
                if (r < 0)
                        log_error_errno(r, "Enrollment failed: %s", ringil_detail());
                else
                        log_info("enrolled as '%s'; certificate in %s", id, cfg.cert);
        } else
                r = agent_run(&cfg, once);
        agent_config_free(&cfg);
        return r < 0 ? exit_code_from_errno(r) : EXIT_OK;
}
