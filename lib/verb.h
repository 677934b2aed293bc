/* verb.h: the subcommand dispatch table shared by `ringil` and its nested verbs (keys, efi, …). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct verb_group;

struct verb {
        const char *name;
        int (*run)(int argc, char *argv[]);   /* argv[0] is the verb name; returns an exit code */
        const char *summary;                  /* one line, for the parent's --help */
        const char *usage;                    /* full --help text: synopsis, options, exit codes */
        const struct verb_group *group;       /* a verb with nested verbs (run and usage unused) */
};

/* Nested verbs (`ringil keys create`): the group's own text, then its table. */
struct verb_group {
        const char *usage;                    /* synopsis and description, above the command list */
        const struct verb *verbs;
        size_t n;
};

/*
 * Run the verb named by argv[0] from the table. For a leaf verb, `--help`/`-h` anywhere before `--`
 * prints its usage and returns 0. For a group, the dispatch descends into the group's table, so the
 * innermost verb named answers --help: `ringil ca issue --help` prints the text of `ca issue`, and
 * `ringil ca --help` the group's text with its command list. An unknown or missing verb prints the
 * table (on stderr) and returns EXIT_USAGE.
 */
int verb_dispatch(const struct verb *verbs, size_t n, const char *prefix, int argc, char *argv[]);
void verb_list(const struct verb *verbs, size_t n, const char *prefix);

/* Print "prefix: unexpected argument 'x'"-style usage errors; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Exit-code table printed by every --help (the same text as a string literal, for concatenation). */
#define EXIT_CODES_HELP                                                                     \
        "Exit codes:\n"                                                                     \
        "  0  success                       8  wrong 'compatible' for this device\n"        \
        "  1  I/O or internal error         9  payload/content hash mismatch\n"             \
        "  2  usage error                  10  refusing to overwrite existing material\n"   \
        "  3  malformed/truncated/too big  11  refused by state or policy\n"                \
        "  4  bad signature                12  input not found\n"                           \
        "  5  signer not trusted           13  server unreachable (network)\n"              \
        "  6  expired or not yet valid     14  TLS or protocol failure with the server\n"   \
        "  7  version not above the anti-rollback floor\n"
extern const char exit_codes_help[];

#define VERB(n, fn, sum, use) { .name = (n), .run = (fn), .summary = (sum), .usage = (use) }
#define VERB_GROUP(n, grp, sum) { .name = (n), .summary = (sum), .group = (grp) }
