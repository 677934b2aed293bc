/* verb.c: subcommand dispatch and uniform --help handling for the ringil CLI. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "escape.h"
#include "macro.h"
#include "verb.h"

const char exit_codes_help[] = EXIT_CODES_HELP;

static void list_to(FILE *f, const struct verb *verbs, size_t n, const char *prefix) {
        fprintf(f, "Commands%s%s:\n", prefix ? " of " : "", prefix ? prefix : "");
        for (size_t i = 0; i < n; i++)
                fprintf(f, "  %-14s %s\n", verbs[i].name, verbs[i].summary);
}

void verb_list(const struct verb *verbs, size_t n, const char *prefix) {
        list_to(stdout, verbs, n, prefix);
}

static void group_help(FILE *f, const struct verb *v) {
        fputs(v->group->usage, f);
        list_to(f, v->group->verbs, v->group->n, v->name);
        fprintf(f, "\nRun `ringil %s COMMAND --help` for a command's options.\n\n%s", v->name, exit_codes_help);
}

int usage_error(const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* The offending argument is quoted back: escaped, like every message (escape.h). */
        fprintf(stderr, "%s: %s (see --help)\n", program_invocation_short_name, ESCAPED(msg));
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
                list_to(stderr, verbs, n, prefix);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < n; i++) {
                const struct verb *v = &verbs[i];

                if (!streq(v->name, argv[0]))
                        continue;
                if (v->group) {
                        /* Descend: only the innermost verb named on the command line answers --help. */
                        if (argc < 2) {
                                group_help(stderr, v);
                                return EXIT_USAGE;
                        }
                        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                                group_help(stdout, v);
                                return EXIT_OK;
                        }
                        return verb_dispatch(v->group->verbs, v->group->n, v->name, argc - 1, argv + 1);
                }
                if (v->usage && wants_help(argc, argv)) {
                        fputs(v->usage, stdout);
                        return EXIT_OK;
                }
                /* Each verb parses its own options from a fresh getopt state. */
                optind = 0;
                return v->run(argc, argv);
        }
        usage_error("unknown command '%s'%s%s", argv[0], prefix ? " for " : "", prefix ? prefix : "");
        list_to(stderr, verbs, n, prefix);
        return EXIT_USAGE;
}
