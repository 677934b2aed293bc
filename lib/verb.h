/* verb.h: the subcommand dispatch table shared by `ringil` and its nested verbs (keys, efi, …). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct verb {
        const char *name;
        int (*run)(int argc, char *argv[]);   /* argv[0] is the verb name; returns an exit code */
        const char *summary;                  /* one line, for the parent's --help */
        const char *usage;                    /* full --help text: synopsis, options, exit codes;
                                                 NULL for a verb with nested verbs, which handles
                                                 --help itself */
};

/*
 * Run the verb named by argv[0] from the table. `--help`/`-h` anywhere before `--` prints that verb's
 * usage and returns 0; an unknown or missing verb prints the table and returns EXIT_USAGE.
 */
int verb_dispatch(const struct verb *verbs, size_t n, const char *prefix, int argc, char *argv[]);
void verb_list(const struct verb *verbs, size_t n, const char *prefix);

/* Print "prefix: unexpected argument 'x'"-style usage errors; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Exit-code table printed by every --help. */
extern const char exit_codes_help[];

#define VERB(n, fn, sum, use) { .name = (n), .run = (fn), .summary = (sum), .usage = (use) }
