/* ca.c: `ringil ca create|issue`: the fleet's device CA for drone, operator and server identities. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "fleet-ca.h"
#include "err.h"
#include "escape.h"
#include "log.h"
#include "parse.h"
#include "verb.h"
#include "verbs.h"

#define CA_MAX_SANS 16

static int ca_create_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "name", required_argument, NULL, 'n' },
                { "days", required_argument, NULL, 'D' },
                {},
        };
        const char *dir = NULL, *cn = NULL;
        unsigned days = 3650;
        int c, r;

        while ((c = getopt_long(argc, argv, "d:n:", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'n':
                        cn = optarg;
                        break;
                case 'D':
                        if (parse_uint(optarg, &days) < 0 || days == 0)
                                return usage_error("invalid --days '%s'", optarg);
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (!dir)
                return usage_error("ca create: --dir is required");
        if (optind < argc)
                return usage_error("ca create: unexpected argument '%s'", argv[optind]);
        r = ca_create(dir, cn, days);
        if (r < 0) {
                log_error_errno(r, "Failed to create CA in '%s': %s", dir, ringil_detail());
                return exit_code_from_errno(r);
        }
        printf("%s/ca.pem\n", ESCAPED(dir));
        return EXIT_OK;
}

static int ca_issue_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "name", required_argument, NULL, 'n' },
                { "out-dir", required_argument, NULL, 'o' },
                { "days", required_argument, NULL, 'D' },
                { "server", no_argument, NULL, 'S' },
                { "operator", no_argument, NULL, 'O' },
                { "san", required_argument, NULL, 's' },
                {},
        };
        const char *dir = NULL, *name = NULL, *out = NULL;
        const char *sans[CA_MAX_SANS + 1] = {};
        size_t n_sans = 0;
        enum ca_profile profile = CA_PROFILE_DEVICE;
        unsigned days = CA_DEFAULT_DAYS;
        int c, r;

        while ((c = getopt_long(argc, argv, "d:n:o:", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 'D':
                        if (parse_uint(optarg, &days) < 0 || days == 0)
                                return usage_error("invalid --days '%s'", optarg);
                        break;
                case 'S':
                        profile = CA_PROFILE_SERVER;
                        break;
                case 'O':
                        profile = CA_PROFILE_OPERATOR;
                        break;
                case 's':
                        if (n_sans >= CA_MAX_SANS)
                                return usage_error("at most %d --san", CA_MAX_SANS);
                        sans[n_sans++] = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (!dir || !name)
                return usage_error("ca issue: --dir and --name are required");
        if (optind < argc)
                return usage_error("ca issue: unexpected argument '%s'", argv[optind]);
        if (n_sans > 0 && profile != CA_PROFILE_SERVER)
                return usage_error("--san only applies to --server certificates");
        if (ca_name_valid(name) < 0)
                return usage_error("invalid name '%s' (1-64 of A-Z a-z 0-9 . _ -)", name);
        if (!out)
                out = dir;
        r = ca_issue(dir, name, profile, sans, days, out);
        if (r < 0) {
                log_error_errno(r, "Failed to issue a certificate for '%s': %s", name, ringil_detail());
                return exit_code_from_errno(r);
        }
        printf("%s/%s.pem\n%s/%s.key\n", ESCAPED(out), name, ESCAPED(out), name);
        return EXIT_OK;
}

static const struct verb ca_verbs[] = {
        VERB("create", ca_create_main, "create a device CA (EC P-256) in a directory",
             "Usage: ringil ca create --dir DIR [--name CN] [--days N]\n\n"
             "Create DIR/ca.key (PKCS#8, mode 0400) and DIR/ca.pem: a self-signed EC P-256 CA with\n"
             "basicConstraints CA:TRUE, pathlen:0 and keyUsage keyCertSign, cRLSign. Never overwrites.\n\n"
             "Options:\n"
             "  -d, --dir DIR    CA directory (created 0700)\n"
             "  -n, --name CN    subject CN (default \"ringil device CA\")\n"
             "      --days N     validity (default 3650)\n\n"
             "Exit codes: 0 created, 1 I/O error, 2 usage, 10 DIR/ca.key or DIR/ca.pem exists.\n"),
        VERB("issue", ca_issue_main, "issue a drone, operator or server certificate",
             "Usage: ringil ca issue --dir DIR --name NAME [--out-dir D] [--server [--san S]…|--operator]\n\n"
             "Generate an EC P-256 key and a certificate signed by the CA in DIR: D/NAME.key (0400,\n"
             "created O_EXCL) and D/NAME.pem. Default profile: a drone (CN=NAME, EKU clientAuth).\n\n"
             "Options:\n"
             "  -d, --dir DIR      CA directory (ca.key, ca.pem)\n"
             "  -n, --name NAME    drone id / operator / host name: 1-64 of A-Z a-z 0-9 . _ -\n"
             "  -o, --out-dir D    where to write NAME.key and NAME.pem (default DIR)\n"
             "      --server       server certificate: EKU serverAuth, SAN DNS:NAME or IP:NAME\n"
             "      --san S        extra SAN for --server, \"DNS:host\" or \"IP:addr\" (repeatable)\n"
             "      --operator     operator certificate: OU=operator, EKU clientAuth\n"
             "      --days N       validity (default 825)\n\n"
             "Exit codes: 0 issued, 1 I/O error, 2 usage, 3 malformed CA files, 10 NAME.key or NAME.pem\n"
             "exists, 12 no CA in DIR.\n"),
};

const struct verb_group ca_group = {
        .usage = "Usage: ringil ca COMMAND [OPTIONS]\n\n"
                 "The fleet's device CA (separate from the Secure Boot keys): it issues the TLS identities\n"
                 "of drones, operators and the server (docs/fleet.md).\n\n",
        .verbs = ca_verbs,
        .n = ELEMENTSOF(ca_verbs),
};
