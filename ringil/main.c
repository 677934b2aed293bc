/* main.c: `ringil`, the operator and on-drone CLI: keys, EFI signing, bundles, install, audit. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "progress.h"
#include "verb.h"
#include "verbs.h"

static const struct verb verbs[] = {
        VERB("version", verb_version, "print the version",
             "Usage: ringil version\n\nPrint ringil's version and the OpenSSL it runs on.\n"),
        /* keys */
        VERB_GROUP("keys", &keys_group, "Secure Boot PK/KEK/db: create, export, enroll, status"),

        /* efi */
        VERB_GROUP("efi", &efi_group, "EFI binaries: sign, verify, hash (Authenticode); build UKIs (uki)"),

        /* bundle */
        VERB_GROUP("bundle", &bundle_group, "signed update bundles: create, verify, info"),

        /* install */
        VERB("install", verb_install, "install a verified bundle into the inactive A/B slot", install_usage),
        VERB("mark-good", verb_mark_good, "bless the booted slot and raise the anti-rollback floor", mark_good_usage),
        VERB("mark-bad", verb_mark_bad, "mark the booted slot bad so the other one boots", mark_bad_usage),
        VERB("status", verb_status, "A/B slots, boot entries, floor and last install error", status_usage),
        VERB("health", verb_health, "run the configured health check (before boot-complete.target)", health_usage),

        /* audit */
        VERB("audit", verb_audit, "check this drone (or --root image) against the prod/dev hardening profile",
             audit_usage),

        /* fleet */
        VERB_GROUP("ca", &ca_group, "the fleet's device CA: drone, operator and server certificates"),
        VERB("release", verb_release, "publish a built NixOS system: sign, upload to the fleet cache, release, assign",
             release_usage),

};

static void help(void) {
        printf("Usage: ringil [--verbose] COMMAND [ARGS…]\n"
               "       ringil COMMAND --help\n\n"
               "Secure Boot keys, EFI signing, signed update bundles, A/B install and the hardening\n"
               "auditor for a fleet of hardened NixOS drones.\n\n");
        verb_list(verbs, ELEMENTSOF(verbs), NULL);
        printf("\nOptions:\n"
               "  -v, --verbose  debug logging (or RINGIL_LOG_LEVEL=debug)\n"
               "  -h, --help     this help; COMMAND --help for a command's\n"
               "      --version  print the version\n\n%s",
               exit_codes_help);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "verbose", no_argument, NULL, 'v' },
                {},
        };
        int c;

        log_setup("ringil");
        /* Long work (bundle create, install) shows progress on stderr; --quiet on those verbs turns it off. */
        progress_setup("ringil", PROGRESS_AUTO);
        /* '+': stop at the first non-option, which is the verb; its options are its own. */
        while ((c = getopt_long(argc, argv, "+hv", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case 'V':
                        return verb_version(0, NULL);
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind >= argc) {
                help();
                return EXIT_USAGE;
        }
        return verb_dispatch(verbs, ELEMENTSOF(verbs), NULL, argc - optind, argv + optind);
}
