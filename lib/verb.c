/* verb.c: subcommand dispatch and uniform --help handling for the ringil CLI. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "macro.h"
#include "verb.h"

const char exit_codes_help[] =
        "Exit codes:\n"
        "  0  success                       7  version not above the anti-rollback floor\n"
        "  1  I/O or internal error         8  wrong 'compatible' for this device\n"
        "  2  usage error                   9  payload/content hash mismatch\n"
        "  3  malformed/truncated/too big  10  refusing to overwrite existing material\n"
        "  4  bad signature                11  refused by state or policy\n"
        "  5  signer not trusted           12  input not found\n"
        "  6  expired or not yet valid\n";

void verb_list(const struct verb *verbs, size_t n, const char *prefix) {
        printf("Commands%s%s:\n", prefix ? " of " : "", prefix ? prefix : "");
        for (size_t i = 0; i < n; i++)
                printf("  %-14s %s\n", verbs[i].name, verbs[i].summary);
}

int usage_error(const char *fmt, ...) {
        va_list ap;

        fputs("ringil: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (see --help)\n", stderr);
        return EXIT_USAGE;
}

static bool wants_help(int argc, char *argv[]) {
        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "--"))
                        return false;
                if (streq(argv[i], "--help") || streq(argv[i], "-h"))
                        return true;
        }
        return false;
}

int verb_dispatch(const struct verb *verbs, size_t n, const char *prefix, int argc, char *argv[]) {
        if (argc < 1 || !argv[0]) {
                verb_list(verbs, n, prefix);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < n; i++) {
                if (!streq(verbs[i].name, argv[0]))
                        continue;
                /* A verb with nested verbs (usage NULL) handles --help itself, so the innermost wins. */
                if (verbs[i].usage && wants_help(argc, argv)) {
                        fputs(verbs[i].usage, stdout);
                        return EXIT_OK;
                }
                /* Each verb parses its own options from a fresh getopt state. */
                optind = 0;
                return verbs[i].run(argc, argv);
        }
        fprintf(stderr, "ringil: unknown command '%s'%s%s\n", argv[0], prefix ? " for " : "",
                prefix ? prefix : "");
        verb_list(verbs, n, prefix);
        return EXIT_USAGE;
}
