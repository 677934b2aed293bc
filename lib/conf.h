/* conf.h: the one strict INI reader of ringil's files and the table-driven configuration schemas on top of it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/*
 * Format (docs/architecture.md "Configuration files"): text of at most CONF_MAX_SIZE bytes; `key = value`
 * lines, `[section]` headers, whole-line `#`/`;` comments and blank lines. A line ends at LF (one CR
 * before it is dropped) and holds at most CONF_MAX_LINE bytes; no continuation lines, no quoting; blanks
 * around names and values are trimmed. Names (sections and keys) are [A-Za-z0-9._-], 1..CONF_MAX_NAME
 * bytes. A NUL, a control character other than tab, or DEL anywhere is refused. Keys before the first
 * header belong to the section "" (the agent and server configs have no headers).
 *
 * Duplicates are errors, never "the last one wins": a section header seen twice, or a key seen twice in
 * one section (a second `device =` must not silently redirect a write). A list is one value.
 *
 * Every failure is one line recorded with ringil_fail(): `FILE:LINE: what` (`line N: what` when the text
 * has no file name), the offending name or value quoted back.
 */
#define CONF_MAX_SIZE (64u * 1024u)
#define CONF_MAX_LINE 1024u
#define CONF_MAX_NAME 64u
#define CONF_MAX_ENTRIES 512u   /* sections + keys */

struct conf_item;

/* Where the reader is; handed to handlers and parsers, and used to place messages. */
struct conf_ctx {
        const char *file;                /* path for messages, NULL: "line N" */
        const char *section;             /* "" before the first header */
        const char *key;                 /* NULL for a section header, and in checks after the parse */
        unsigned line;                   /* 1-based; 0 after the parse (defaults, cross-key checks) */
        const struct conf_item *item;    /* table layer: the entry whose parser runs, else NULL */
};

/* Record `FILE:LINE: [SECTION] KEY: message` (the parts that are known) as the failure detail; returns r. */
int conf_fail(const struct conf_ctx *ctx, int r, const char *fmt, ...) _printf_(3, 4);

/*
 * The reader. handler is called for each section header (ctx->key NULL, value NULL) and for each key
 * (value trimmed, possibly ""); a negative return stops the parse and is returned. Errors of the text
 * itself are -RINGIL_EMALFORMED, or -RINGIL_ETOOBIG for the size, line and entry caps.
 */
typedef int (*conf_handler)(void *userdata, const struct conf_ctx *ctx, const char *value);
int conf_read(const char *text, size_t len, const char *file, conf_handler handler, void *userdata);

/*
 * Read a configuration file (following symlinks: /etc on NixOS is links into the store). Only a regular
 * file of at most CONF_MAX_SIZE bytes; a FIFO or device is refused without blocking on it. Errors keep
 * their errno (-ENOENT, -EACCES, -EISDIR…; -RINGIL_EMALFORMED for another file type, -RINGIL_ETOOBIG)
 * and record `cannot read configuration `PATH': reason`. *ret_data is NUL-terminated.
 */
int conf_read_file(const char *path, uint8_t **ret_data, size_t *ret_len);

/*
 * The table layer. A parser turns one value into the field at `dst` (base + item->offset), using the
 * item's bounds and data; it refuses "" and anything outside the bounds with -RINGIL_EMALFORMED (or
 * -RINGIL_ETOOBIG for a count cap) and conf_fail(), and replaces (frees) an earlier value of the field.
 */
typedef int (*conf_parser)(const struct conf_ctx *ctx, const char *value, void *dst);

enum {
        CONF_REQUIRED = 1 << 0,   /* a missing key is an error (per section, for a section family) */
};

struct conf_item {
        const char *section;   /* exact name, "" for keys before any header, or "PREFIX*": a family */
        const char *key;
        conf_parser parse;
        size_t offset;         /* of the field, from the base (the userdata, or what open() returned) */
        uint64_t min, max;     /* numbers: inclusive bounds; strings: byte length (max 0: the line cap) */
        const void *data;      /* parser-specific: enum names, URL schemes, list shape */
        const char *def;       /* default text, run through the parser when the key is absent; NULL: none */
        unsigned flags;
};

struct conf_schema {
        const struct conf_item *items;
        size_t n_items;
        /*
         * Optional, called at each section header the table knows: *ret_base is where the offsets of
         * that section's items point (preset to the userdata). A family's sections get their own
         * struct here (e.g. [slot.NAME.a]); a negative return stops the parse.
         */
        int (*open)(void *userdata, const struct conf_ctx *ctx, void **ret_base);
        /* Optional, after the parse and the defaults: cross-key checks (ctx->line 0). */
        int (*check)(void *userdata, const struct conf_ctx *ctx);
};

/*
 * Parse text against the schema into userdata: every key must be in the table (else `unknown key
 * `K' in [S]`), every section must have an item (else `unknown section [S]`); then the defaults of
 * absent keys, the CONF_REQUIRED checks and schema->check. On failure userdata may hold some fields:
 * the caller frees it as usual and discards it.
 */
int conf_parse(const char *text, size_t len, const char *file, const struct conf_schema *schema, void *userdata);
/* conf_read_file() + conf_parse() with the path in every message. */
int conf_load(const char *path, const struct conf_schema *schema, void *userdata);

/* Typed parsers. Strings: char * fields, malloc'd. */

/* conf_parse_string's data, when set: the bytes a value may hold, and how a message names them. */
struct conf_charset {
        const char *chars;
        const char *what;   /* e.g. "a-z 0-9 _" */
};
int conf_parse_string(const struct conf_ctx *ctx, const char *value, void *dst);   /* length min..max */
int conf_parse_path(const struct conf_ctx *ctx, const char *value, void *dst);     /* absolute, no `..' */
/* A program: an absolute path without `..', or a bare name looked up in PATH (no '/'). */
int conf_parse_program(const struct conf_ctx *ctx, const char *value, void *dst);
/* data: NULL-terminated array of accepted scheme prefixes ("https://", …); URL characters only. */
int conf_parse_url(const struct conf_ctx *ctx, const char *value, void *dst);
int conf_parse_bool(const struct conf_ctx *ctx, const char *value, void *dst);     /* bool: yes/no, true/false, 1/0 */
int conf_parse_u32(const struct conf_ctx *ctx, const char *value, void *dst);      /* uint32_t, min..max */
/* uint64_t bytes: decimal with an optional K/M/G/T suffix (powers of 1024), min..max. */
int conf_parse_size(const struct conf_ctx *ctx, const char *value, void *dst);
/* uint32_t seconds: N, or N with one unit s, min, h or d (also m for minutes); min..max seconds. */
int conf_parse_duration(const struct conf_ctx *ctx, const char *value, void *dst);
/* int: the index of value in data, a NULL-terminated array of names. */
int conf_parse_enum(const struct conf_ctx *ctx, const char *value, void *dst);

/*
 * A list in one value, e.g. `allowed-signer = A, B`: items split at data->separator and trimmed, each
 * 1..data->item_max bytes, min..max items, none twice. dst is a `char *[max + 1]` array, NULL-terminated.
 */
struct conf_list {
        char separator;
        size_t item_max;
};
int conf_parse_list(const struct conf_ctx *ctx, const char *value, void *dst);
void conf_list_free(char **list);

/* The same checks as the parsers, for values that do not come from a file. */
bool conf_path_valid(const char *s);
bool conf_url_valid(const char *s, const char *const *schemes);
