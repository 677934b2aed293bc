/* conf.c: the strict INI reader, the table-driven schema walk and the typed value parsers. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "parse.h"

/* ---- messages ---- */

/* Values are quoted back shortened, cut at a UTF-8 boundary, so the reason still fits the detail. */
#define QUOTE_MAX 80
#define Q(s) qlen(s), (s), strlen(s) > (size_t) qlen(s) ? "..." : ""

static int qlen_n(const char *s, size_t n) {
        if (n <= QUOTE_MAX)
                return (int) n;
        n = QUOTE_MAX;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        return (int) n;
}

static int qlen(const char *s) {
        return qlen_n(s, strlen(s));
}

static bool utf8_valid(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p) {
                uint32_t cp;
                size_t n;

                if (p[0] < 0x80) {
                        p++;
                        continue;
                }
                if ((p[0] & 0xe0) == 0xc0)
                        n = 1, cp = p[0] & 0x1f;
                else if ((p[0] & 0xf0) == 0xe0)
                        n = 2, cp = p[0] & 0x0f;
                else if ((p[0] & 0xf8) == 0xf0)
                        n = 3, cp = p[0] & 0x07;
                else
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates and anything past U+10FFFF have a second spelling or none. */
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return false;
                p += n + 1;
        }
        return true;
}

int conf_fail(const struct conf_ctx *ctx, int r, const char *fmt, ...) {
        char file[256] = "", where[256 + 16], what[CONF_MAX_NAME * 2 + 8] = "", msg[512];
        va_list ap;

        va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
#pragma GCC diagnostic pop
        va_end(ap);
        if (ctx->file)
                escape_text(ctx->file, file, sizeof(file));
        if (ctx->file && ctx->line > 0)
                (void) snprintf(where, sizeof(where), "%s:%u: ", file, ctx->line);
        else if (ctx->file)
                (void) snprintf(where, sizeof(where), "%s: ", file);
        else if (ctx->line > 0)
                (void) snprintf(where, sizeof(where), "line %u: ", ctx->line);
        else
                where[0] = '\0';
        /* Inside a parser the key is known and already checked against the table: name it. */
        if (ctx->item && ctx->section && ctx->section[0])
                (void) snprintf(what, sizeof(what), "[%s] %s: ", ctx->section, ctx->key);
        else if (ctx->item)
                (void) snprintf(what, sizeof(what), "%s: ", ctx->key);
        return ringil_fail(r, "%s%s%s", where, what, msg);
}

/* ---- the reader ---- */

static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '-';
}

static bool name_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > CONF_MAX_NAME)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!name_char(s[i]))
                        return false;
        return true;
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                *--e = '\0';
        return s;
}

/* Sections and keys seen so far, with their line, to refuse and point at duplicates. */
struct seen_entry {
        char name[2 * CONF_MAX_NAME + 2];   /* "section\nkey", or "section\n" for the header */
        unsigned line;
};

static int seen_add(struct seen_entry *seen, size_t *n, const struct conf_ctx *ctx) {
        char tmp[sizeof(seen->name)];

        (void) snprintf(tmp, sizeof(tmp), "%s\n%s", ctx->section, ctx->key ? ctx->key : "");
        for (size_t i = 0; i < *n; i++)
                if (streq(seen[i].name, tmp)) {
                        if (ctx->key && ctx->section[0])
                                return conf_fail(ctx, -RINGIL_EMALFORMED, "duplicate key `%s' in [%s] (first on line %u)",
                                                 ctx->key, ctx->section, seen[i].line);
                        if (ctx->key)
                                return conf_fail(ctx, -RINGIL_EMALFORMED, "duplicate key `%s' (first on line %u)",
                                                 ctx->key, seen[i].line);
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "duplicate section [%s] (first on line %u)",
                                         ctx->section, seen[i].line);
                }
        if (*n >= CONF_MAX_ENTRIES)
                return conf_fail(ctx, -RINGIL_ETOOBIG, "more than %u sections and keys", CONF_MAX_ENTRIES);
        memcpy(seen[*n].name, tmp, sizeof(tmp));
        seen[(*n)++].line = ctx->line;
        return 0;
}

int conf_read(const char *text, size_t len, const char *file, conf_handler handler, void *userdata) {
        _cleanup_free_ struct seen_entry *seen = NULL;
        char section[CONF_MAX_NAME + 1] = "";
        /* What the reader cannot make sense of is quoted back escaped (lib/escape.c), cut to a readable length. */
        char line[CONF_MAX_LINE + 1], bad[QUOTE_MAX + 4];
        struct conf_ctx ctx = { .file = file, .section = section };
        size_t pos = 0, n_seen = 0;
        int r;

        if (len > CONF_MAX_SIZE)
                return conf_fail(&ctx, -RINGIL_ETOOBIG, "larger than %u bytes", CONF_MAX_SIZE);
        seen = calloc(CONF_MAX_ENTRIES, sizeof(*seen));
        if (!seen)
                return -ENOMEM;

        while (pos < len) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t n = nl ? (size_t) (nl - (text + pos)) : len - pos;
                char *s, *eq, *value;

                ctx.line++;
                ctx.key = NULL;
                if (n > CONF_MAX_LINE)
                        return conf_fail(&ctx, -RINGIL_ETOOBIG, "line longer than %u bytes", CONF_MAX_LINE);
                memcpy(line, text + pos, n);
                line[n] = '\0';
                pos += n + (nl ? 1 : 0);
                if (n > 0 && line[n - 1] == '\r')
                        line[--n] = '\0';
                for (size_t i = 0; i < n; i++)
                        if (((unsigned char) line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
                                return conf_fail(&ctx, -RINGIL_EMALFORMED, "%s byte 0x%02x",
                                                 line[i] ? "control" : "NUL", (unsigned char) line[i]);
                s = strip(line);
                if (*s == '\0' || *s == '#' || *s == ';')
                        continue;
                if (*s == '[') {
                        char *end = strchr(s, ']');
                        if (!end || strip(end + 1)[0] != '\0')
                                return conf_fail(&ctx, -RINGIL_EMALFORMED, "expected `[section]'");
                        *end = '\0';
                        s = strip(s + 1);
                        if (!name_valid(s)) {
                                escape_text(s, bad, sizeof(bad));
                                return conf_fail(&ctx, -RINGIL_EMALFORMED,
                                                 "bad section name `%s' (1..%u of A-Z a-z 0-9 . _ -)", bad, CONF_MAX_NAME);
                        }
                        memcpy(section, s, strlen(s) + 1);
                        r = seen_add(seen, &n_seen, &ctx);
                        if (r >= 0)
                                r = handler(userdata, &ctx, NULL);
                        if (r < 0)
                                return r;
                        continue;
                }
                eq = strchr(s, '=');
                if (!eq) {
                        escape_text(s, bad, sizeof(bad));
                        return conf_fail(&ctx, -RINGIL_EMALFORMED, "expected `key = value', not `%s'", bad);
                }
                *eq = '\0';
                ctx.key = strip(s);
                value = strip(eq + 1);
                if (!name_valid(ctx.key)) {
                        escape_text(ctx.key, bad, sizeof(bad));
                        return conf_fail(&ctx, -RINGIL_EMALFORMED, "bad key `%s' (1..%u of A-Z a-z 0-9 . _ -)", bad,
                                         CONF_MAX_NAME);
                }
                /* A tab is a blank around names and values, never part of a value. */
                if (strchr(value, '\t'))
                        return conf_fail(&ctx, -RINGIL_EMALFORMED, "tab inside the value of `%s'", ctx.key);
                r = seen_add(seen, &n_seen, &ctx);
                if (r >= 0)
                        r = handler(userdata, &ctx, value);
                if (r < 0)
                        return r;
        }
        return 0;
}

int conf_read_file(const char *path, uint8_t **ret_data, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        char name[256];
        struct stat st;
        int r;

        escape_text(path, name, sizeof(name));
        /* O_NONBLOCK: opening a FIFO must not hang the program; it is refused below. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                return ringil_fail(r, "cannot read configuration `%s': %s", name, ringil_strerror(r));
        }
        if (S_ISDIR(st.st_mode))
                return ringil_fail(-EISDIR, "cannot read configuration `%s': it is a directory", name);
        if (!S_ISREG(st.st_mode))
                return ringil_fail(-RINGIL_EMALFORMED, "cannot read configuration `%s': not a regular file", name);
        r = read_full_fd(fd, CONF_MAX_SIZE, ret_data, ret_len);
        if (r == -EFBIG)
                return ringil_fail(-RINGIL_ETOOBIG, "cannot read configuration `%s': larger than %u bytes", name,
                                   CONF_MAX_SIZE);
        if (r < 0)
                return ringil_fail(r, "cannot read configuration `%s': %s", name, ringil_strerror(r));
        return 0;
}

/* ---- the table layer ---- */

/* "slot.*" matches [slot.X] for any non-empty X; anything else matches exactly. */
static bool section_matches(const char *pattern, const char *section) {
        size_t n = strlen(pattern);

        if (n > 0 && pattern[n - 1] == '*')
                return strncmp(pattern, section, n - 1) == 0 && section[n - 1] != '\0';
        return streq(pattern, section);
}

static bool is_family(const struct conf_item *it) {
        size_t n = strlen(it->section);
        return n > 0 && it->section[n - 1] == '*';
}

struct walk {
        const struct conf_schema *schema;
        void *userdata;
        void *base;              /* of the current section's fields */
        bool *seen;              /* per item; family items are reset at each of their sections */
        bool known_section;
        char open_section[CONF_MAX_NAME + 1];
        unsigned open_line;
};

static int missing(const struct conf_ctx *ctx, const struct conf_item *it, const char *section) {
        if (section[0])
                return conf_fail(ctx, -RINGIL_EMALFORMED, "missing `%s' in [%s]", it->key, section);
        return conf_fail(ctx, -RINGIL_EMALFORMED, "missing `%s'", it->key);
}

/* End of a family section: its required keys must have been there. Exact sections are checked at the end. */
static int close_section(struct walk *w, const char *file) {
        const struct conf_ctx ctx = { .file = file, .section = w->open_section, .line = w->open_line };

        for (size_t i = 0; i < w->schema->n_items; i++) {
                const struct conf_item *it = &w->schema->items[i];
                if (is_family(it) && (it->flags & CONF_REQUIRED) && !w->seen[i] &&
                    section_matches(it->section, w->open_section))
                        return missing(&ctx, it, w->open_section);
        }
        return 0;
}

static int walk_handler(void *userdata, const struct conf_ctx *ctx, const char *value) {
        struct walk *w = userdata;
        const struct conf_item *it = NULL;
        struct conf_ctx c;
        size_t idx = 0;

        if (!ctx->key) {
                int r = close_section(w, ctx->file);
                if (r < 0)
                        return r;
                w->known_section = false;
                for (size_t i = 0; i < w->schema->n_items; i++)
                        if (section_matches(w->schema->items[i].section, ctx->section)) {
                                w->known_section = true;
                                if (is_family(&w->schema->items[i]))
                                        w->seen[i] = false;
                        }
                if (!w->known_section)
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "unknown section [%s]", ctx->section);
                memcpy(w->open_section, ctx->section, strlen(ctx->section) + 1);
                w->open_line = ctx->line;
                w->base = w->userdata;
                return w->schema->open ? w->schema->open(w->userdata, ctx, &w->base) : 0;
        }
        for (size_t i = 0; !it && i < w->schema->n_items; i++)
                if (section_matches(w->schema->items[i].section, ctx->section) &&
                    streq(w->schema->items[i].key, ctx->key))
                        it = &w->schema->items[idx = i];
        if (!it && ctx->section[0])
                return conf_fail(ctx, -RINGIL_EMALFORMED, "unknown key `%s' in [%s]", ctx->key, ctx->section);
        if (!it)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "unknown key `%s'", ctx->key);
        if (!utf8_valid(value))
                return conf_fail(ctx, -RINGIL_EMALFORMED, "value of `%s' is not valid UTF-8", ctx->key);
        w->seen[idx] = true;
        c = *ctx;
        c.item = it;
        return it->parse(&c, value, (char *) w->base + it->offset);
}

int conf_parse(const char *text, size_t len, const char *file, const struct conf_schema *schema, void *userdata) {
        _cleanup_free_ bool *seen = calloc(schema->n_items ? schema->n_items : 1, sizeof(bool));
        struct walk w = {
                .schema = schema,
                .userdata = userdata,
                .base = userdata,
                .seen = seen,
        };
        struct conf_ctx ctx = { .file = file, .section = "" };
        int r;

        if (!seen)
                return -ENOMEM;
        r = conf_read(text, len, file, walk_handler, &w);
        if (r >= 0)
                r = close_section(&w, file);
        /* Then the keys that were not there: defaults through the same parser, required keys refused. */
        for (size_t i = 0; r >= 0 && i < schema->n_items; i++) {
                const struct conf_item *it = &schema->items[i];
                if (seen[i] || is_family(it))
                        continue;
                ctx.section = it->section;
                if (it->flags & CONF_REQUIRED)
                        r = missing(&ctx, it, it->section);
                else if (it->def) {
                        ctx.key = it->key;
                        ctx.item = it;
                        r = it->parse(&ctx, it->def, (char *) userdata + it->offset);
                        ctx.key = NULL;
                        ctx.item = NULL;
                }
        }
        ctx.section = "";
        if (r >= 0 && schema->check)
                r = schema->check(userdata, &ctx);
        return r < 0 ? r : 0;
}

int conf_load(const char *path, const struct conf_schema *schema, void *userdata) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        ringil_clear_detail();
        r = conf_read_file(path, &data, &len);
        if (r >= 0)
                r = conf_parse((const char *) data, len, path, schema, userdata);
        if (r < 0 && !ringil_detail()[0]) {
                const struct conf_ctx ctx = { .file = path };
                return conf_fail(&ctx, r, "%s", ringil_strerror(r));
        }
        return r;
}

/* ---- typed parsers ---- */

static int empty(const struct conf_ctx *ctx) {
        return conf_fail(ctx, -RINGIL_EMALFORMED, "empty value");
}

static int set_string(char **dst, const char *value) {
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

int conf_parse_string(const struct conf_ctx *ctx, const char *value, void *dst) {
        const struct conf_charset *cs = ctx->item->data;
        uint64_t max = ctx->item->max ? ctx->item->max : CONF_MAX_LINE, n = strlen(value);

        if (n == 0)
                return empty(ctx);
        if (n < ctx->item->min)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is shorter than %llu bytes", Q(value),
                                 (unsigned long long) ctx->item->min);
        if (n > max)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is longer than %llu bytes", Q(value),
                                 (unsigned long long) max);
        if (cs && strspn(value, cs->chars) != n)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' may only hold %s", Q(value), cs->what);
        return set_string(dst, value);
}

bool conf_path_valid(const char *s) {
        if (!s || s[0] != '/' || strlen(s) > CONF_MAX_LINE)
                return false;
        for (const char *p = s; (p = strstr(p, "..")); p += 2)
                if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
                        return false;
        return true;
}

int conf_parse_path(const struct conf_ctx *ctx, const char *value, void *dst) {
        if (!*value)
                return empty(ctx);
        if (!conf_path_valid(value) || (ctx->item->max && strlen(value) > ctx->item->max))
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not an absolute path without `..'", Q(value));
        return set_string(dst, value);
}

int conf_parse_program(const struct conf_ctx *ctx, const char *value, void *dst) {
        if (!*value)
                return empty(ctx);
        if (value[0] == '/' ? !conf_path_valid(value)
                            : (strchr(value, '/') || streq(value, ".") || streq(value, "..") || strlen(value) > 255))
                return conf_fail(ctx, -RINGIL_EMALFORMED,
                                 "`%.*s%s' is neither an absolute path without `..' nor a program name", Q(value));
        return set_string(dst, value);
}

bool conf_url_valid(const char *s, const char *const *schemes) {
        const char *scheme = NULL, *rest;
        size_t n;

        for (size_t i = 0; schemes && schemes[i] && !scheme; i++)
                if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
                        scheme = schemes[i];
        if (!scheme)
                return false;
        n = strlen(scheme);
        rest = s + n;
        /* Something after the scheme; after "scheme://" a host, not a path. */
        if (rest[0] == '\0' || (n >= 3 && streq(scheme + n - 3, "://") && rest[0] == '/'))
                return false;
        for (; *s; s++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%", *s))
                        return false;
        return true;
}

int conf_parse_url(const struct conf_ctx *ctx, const char *value, void *dst) {
        const char *const *schemes = ctx->item->data;
        char list[128] = "";
        size_t o = 0;

        if (!*value)
                return empty(ctx);
        if (conf_url_valid(value, schemes) && (!ctx->item->max || strlen(value) <= ctx->item->max))
                return set_string(dst, value);
        for (size_t i = 0; schemes && schemes[i] && o < sizeof(list); i++)
                o += (size_t) snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", schemes[i]);
        return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not a URL (%s; URL characters only%s)", Q(value), list,
                         ctx->item->max ? ", not too long" : "");
}

int conf_parse_bool(const struct conf_ctx *ctx, const char *value, void *dst) {
        bool *b = dst;

        /* A typo is an error, never a silent default. */
        if (streq(value, "yes") || streq(value, "true") || streq(value, "1"))
                *b = true;
        else if (streq(value, "no") || streq(value, "false") || streq(value, "0"))
                *b = false;
        else
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not yes or no", Q(value));
        return 0;
}

int conf_parse_u32(const struct conf_ctx *ctx, const char *value, void *dst) {
        uint64_t min = ctx->item->min, max = MIN(ctx->item->max, (uint64_t) UINT32_MAX), v;

        if (parse_u64(value, &v) < 0 || v < min || v > max)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not a number in %llu..%llu", Q(value),
                                 (unsigned long long) min, (unsigned long long) max);
        *(uint32_t *) dst = (uint32_t) v;
        return 0;
}

/* Bounds in messages are written the way a user would write them: 32M, not 33554432. */
static void format_unit(uint64_t v, const uint64_t *units, const char *const *names, size_t n, char *buf, size_t size) {
        for (size_t i = n; i-- > 0;)
                if (v >= units[i] && v % units[i] == 0) {
                        (void) snprintf(buf, size, "%llu%s", (unsigned long long) (v / units[i]), names[i]);
                        return;
                }
        (void) snprintf(buf, size, "%llu", (unsigned long long) v);
}

int conf_parse_size(const struct conf_ctx *ctx, const char *value, void *dst) {
        static const uint64_t units[] = { 1, 1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40 };
        static const char *const names[] = { "", "K", "M", "G", "T" };
        uint64_t v, min = ctx->item->min, max = ctx->item->max ? ctx->item->max : UINT64_MAX;
        char lo[32], hi[32];

        if (parse_size(value, &v) >= 0 && v >= min && v <= max) {
                *(uint64_t *) dst = v;
                return 0;
        }
        format_unit(min, units, names, ELEMENTSOF(units), lo, sizeof(lo));
        format_unit(max, units, names, ELEMENTSOF(units), hi, sizeof(hi));
        if (max == UINT64_MAX)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not a size of at least %s (suffixes K, M, G, T)",
                                 Q(value), lo);
        return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not a size in %s..%s (suffixes K, M, G, T)", Q(value),
                         lo, hi);
}

int conf_parse_duration(const struct conf_ctx *ctx, const char *value, void *dst) {
        static const uint64_t units[] = { 1, 60, 3600, 86400 };
        static const char *const names[] = { "s", "min", "h", "d" };
        static const struct {
                const char *suffix;
                uint64_t seconds;
        } suffixes[] = { { "", 1 }, { "s", 1 }, { "m", 60 }, { "min", 60 }, { "h", 3600 }, { "d", 86400 } };
        uint64_t min = ctx->item->min, max = MIN(ctx->item->max, (uint64_t) UINT32_MAX), v;
        char digits[24], lo[32], hi[32];
        size_t n = strspn(value, "0123456789");

        if (n > 0 && n < sizeof(digits)) {
                memcpy(digits, value, n);
                digits[n] = '\0';
                for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                        if (streq(value + n, suffixes[i].suffix) && parse_u64(digits, &v) >= 0 &&
                            v <= UINT32_MAX / suffixes[i].seconds && v * suffixes[i].seconds >= min &&
                            v * suffixes[i].seconds <= max) {
                                *(uint32_t *) dst = (uint32_t) (v * suffixes[i].seconds);
                                return 0;
                        }
        }
        format_unit(min, units, names, ELEMENTSOF(units), lo, sizeof(lo));
        format_unit(max, units, names, ELEMENTSOF(units), hi, sizeof(hi));
        return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not a duration in %s..%s (seconds, or a unit s, min, h, d)",
                         Q(value), lo, hi);
}

int conf_parse_enum(const struct conf_ctx *ctx, const char *value, void *dst) {
        const char *const *names = ctx->item->data;
        char list[256] = "";
        size_t o = 0;

        for (size_t i = 0; names[i]; i++)
                if (streq(value, names[i])) {
                        *(int *) dst = (int) i;
                        return 0;
                }
        for (size_t i = 0; names[i] && o < sizeof(list); i++)
                o += (size_t) snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", names[i]);
        return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' is not one of %s", Q(value), list);
}

void conf_list_free(char **list) {
        for (size_t i = 0; list && list[i]; i++) {
                free(list[i]);
                list[i] = NULL;
        }
}

int conf_parse_list(const struct conf_ctx *ctx, const char *value, void *dst) {
        const struct conf_list *spec = ctx->item->data;
        char **list = dst;
        size_t n = 0;
        const char *p = value;

        conf_list_free(list);
        for (;;) {
                const char *end = strchr(p, spec->separator);
                size_t len = end ? (size_t) (end - p) : strlen(p);

                while (len > 0 && (*p == ' ' || *p == '\t'))
                        p++, len--;
                while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                        len--;
                if (len == 0) {
                        conf_list_free(list);
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "empty item in `%.*s%s'", Q(value));
                }
                if (len > spec->item_max) {
                        conf_list_free(list);
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "item `%.*s%s' longer than %zu bytes",
                                         qlen_n(p, len), p, (size_t) qlen_n(p, len) < len ? "..." : "", spec->item_max);
                }
                if (n >= ctx->item->max) {
                        conf_list_free(list);
                        return conf_fail(ctx, -RINGIL_ETOOBIG, "more than %llu items",
                                         (unsigned long long) ctx->item->max);
                }
                for (size_t i = 0; i < n; i++)
                        if (strlen(list[i]) == len && memcmp(list[i], p, len) == 0) {
                                conf_list_free(list);
                                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%.*s%s' listed twice", qlen_n(p, len),
                                                 p, (size_t) qlen_n(p, len) < len ? "..." : "");
                        }
                list[n] = strndup(p, len);
                if (!list[n]) {
                        conf_list_free(list);
                        return -ENOMEM;
                }
                list[++n] = NULL;
                if (!end)
                        break;
                p = end + 1;
        }
        if (n < ctx->item->min) {
                conf_list_free(list);
                return conf_fail(ctx, -RINGIL_EMALFORMED, "fewer than %llu items", (unsigned long long) ctx->item->min);
        }
        return 0;
}
