/* test-conf.c: the configuration reader, the table walk, every typed parser and the one-line messages. */
#include "tests.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"
#include "macro.h"

/* ---- the reader: a handler that records what it was given ---- */

struct rec {
        char log[4096];
        size_t n;
};

static int record(void *userdata, const struct conf_ctx *ctx, const char *value) {
        struct rec *r = userdata;

        r->n += (size_t) snprintf(r->log + r->n, sizeof(r->log) - r->n, "%u[%s]%s=%s|", ctx->line, ctx->section,
                                  ctx->key ? ctx->key : "(header)", value ? value : "(null)");
        return 0;
}

static int rd(const char *text, struct rec *r) {
        *r = (struct rec) {};
        return conf_read(text, strlen(text), NULL, record, r);
}

static void test_reader_lines(void **state) {
        struct rec r;
        (void) state;

        assert_int_equal(rd("# comment\n; comment\n\n  top = 1 \nk=v=w\n[ s.1 ]\r\n\tkey\t=\tx y \r\nempty =\n[T_-9]\n"
                            "a = \xc3\xa9t\xc3\xa9", &r), 0);
        assert_string_equal(r.log, "4[]top=1|5[]k=v=w|6[s.1](header)=(null)|7[s.1]key=x y|8[s.1]empty=|"
                                   "9[T_-9](header)=(null)|10[T_-9]a=\xc3\xa9t\xc3\xa9|");
        assert_int_equal(rd("", &r), 0);
        assert_string_equal(r.log, "");
        /* The same key in different sections is not a duplicate. */
        assert_int_equal(rd("[a]\nk = 1\n[b]\nk = 2\n", &r), 0);
}

static void test_reader_refusals(void **state) {
        static const struct {
                const char *text;
                int r;
                const char *detail;
        } bad[] = {
                { "a = 1\na = 2\n", -RINGIL_EMALFORMED, "line 2: duplicate key `a' (first on line 1)" },
                { "[s]\na = 1\n\na = 2\n", -RINGIL_EMALFORMED, "line 4: duplicate key `a' in [s] (first on line 2)" },
                { "[s]\n[t]\n[s]\n", -RINGIL_EMALFORMED, "line 3: duplicate section [s] (first on line 1)" },
                { "a = 1\njunk\n", -RINGIL_EMALFORMED, "line 2: expected `key = value', not `junk'" },
                { "[s\n", -RINGIL_EMALFORMED, "line 1: expected `[section]'" },
                { "[s] x\n", -RINGIL_EMALFORMED, "line 1: expected `[section]'" },
                { "[]\n", -RINGIL_EMALFORMED, "line 1: bad section name `' (1..64 of A-Z a-z 0-9 . _ -)" },
                { "[a b]\n", -RINGIL_EMALFORMED, "line 1: bad section name `a b' (1..64 of A-Z a-z 0-9 . _ -)" },
                { " = 1\n", -RINGIL_EMALFORMED, "line 1: bad key `' (1..64 of A-Z a-z 0-9 . _ -)" },
                { "a/b = 1\n", -RINGIL_EMALFORMED, "line 1: bad key `a/b' (1..64 of A-Z a-z 0-9 . _ -)" },
                { "a = 1\nb = \x01\n", -RINGIL_EMALFORMED, "line 2: control byte 0x01" },
                { "a = \x7f\n", -RINGIL_EMALFORMED, "line 1: control byte 0x7f" },
                { "a = 1\rb = 2\n", -RINGIL_EMALFORMED, "line 1: control byte 0x0d" },   /* CR only before LF */
                { "a = x\ty\n", -RINGIL_EMALFORMED, "line 1: tab inside the value of `a'" },
                /* What the reader cannot make sense of is quoted escaped: no tab, no raw byte >= 0x80. */
                { "n\t\xff = 1\n", -RINGIL_EMALFORMED, "line 1: bad key `n\\t\\xff' (1..64 of A-Z a-z 0-9 . _ -)" },
                { "[s\xc3\xa9]\n", -RINGIL_EMALFORMED, "line 1: bad section name `s\xc3\xa9' (1..64 of A-Z a-z 0-9 . _ -)" },
                { "just\\words\there\n", -RINGIL_EMALFORMED, "line 1: expected `key = value', not `just\\words\\there'" },
                { "x123456789012345678901234567890123456789012345678901234567890abcde = 1\n", -RINGIL_EMALFORMED,
                  "line 1: bad key `x123456789012345678901234567890123456789012345678901234567890abcde' (1..64 of A-Z a-z 0-9 . _ -)" },
        };
        struct rec r;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int got = rd(bad[i].text, &r);
                if (got != bad[i].r || !streq(ringil_detail(), bad[i].detail))
                        fail_msg("case %zu: %d `%s'", i, got, ringil_detail());
        }
        /* NUL inside the text (not its end) */
        assert_int_equal(conf_read("a = 1\nb = x\0y\n", 14, NULL, record, &r), -RINGIL_EMALFORMED);
        assert_string_equal(ringil_detail(), "line 2: NUL byte 0x00");
        /* A handler's error stops the parse and is returned as is. */
}

static int refuse_b(void *userdata, const struct conf_ctx *ctx, const char *value) {
        (void) userdata, (void) value;
        return ctx->key && streq(ctx->key, "b") ? -ENOTRECOVERABLE : 0;
}

static void test_reader_caps(void **state) {
        _cleanup_free_ char *big = malloc(CONF_MAX_SIZE + 2), *keys = malloc(CONF_MAX_ENTRIES * 16 + 16);
        char line[CONF_MAX_LINE + 16];
        struct rec r;
        size_t o = 0;
        (void) state;

        assert_non_null(big);
        assert_non_null(keys);
        memset(big, '#', CONF_MAX_SIZE);
        for (size_t i = 63; i < CONF_MAX_SIZE; i += 64)
                big[i] = '\n';
        big[CONF_MAX_SIZE] = '\0';
        assert_int_equal(rd(big, &r), 0);   /* exactly the cap */
        big[CONF_MAX_SIZE] = '#';
        big[CONF_MAX_SIZE + 1] = '\0';
        assert_int_equal(rd(big, &r), -RINGIL_ETOOBIG);
        assert_string_equal(ringil_detail(), "larger than 65536 bytes");

        memset(line, 'x', sizeof(line));
        memcpy(line, "a = ", 4);
        line[CONF_MAX_LINE] = '\0';
        assert_int_equal(rd(line, &r), 0);
        line[CONF_MAX_LINE] = 'x';
        line[CONF_MAX_LINE + 1] = '\0';
        assert_int_equal(rd(line, &r), -RINGIL_ETOOBIG);
        assert_string_equal(ringil_detail(), "line 1: line longer than 1024 bytes");

        for (unsigned i = 0; i < CONF_MAX_ENTRIES; i++)
                o += (size_t) sprintf(keys + o, "k%u = 1\n", i);
        assert_int_equal(conf_read(keys, o, NULL, refuse_b, NULL), 0);
        strcpy(keys + o, "one = more\n");
        assert_int_equal(conf_read(keys, strlen(keys), NULL, refuse_b, NULL), -RINGIL_ETOOBIG);
        assert_string_equal(ringil_detail(), "line 513: more than 512 sections and keys");

        assert_int_equal(conf_read("a = 1\nb = 2\nc = \x01\n", 16, NULL, refuse_b, NULL), -ENOTRECOVERABLE);
}

/* ---- the table layer: one schema with every parser ---- */

struct side {
        char *dev;
        uint32_t weight;
};

struct sample {
        char *name, *path, *prog, *url, *opt;
        bool flag;
        uint32_t count, wait;
        uint64_t size;
        int mode;
        char *list[4];
        struct side sides[2];
        unsigned opened, checked;
};

static const char *const modes[] = { "off", "on", "auto", NULL };
static const char *const schemes[] = { "https://", "file:///", NULL };
static const struct conf_charset lower = { "abcdefghijklmnopqrstuvwxyz_", "a-z _" };
static const struct conf_list comma = { .separator = ',', .item_max = 8 };

#define F(f) offsetof(struct sample, f)
static const struct conf_item items[] = {
        { "", "name", conf_parse_string, F(name), 2, 8, &lower, .flags = CONF_REQUIRED },
        { "", "opt", conf_parse_string, F(opt) },
        { "main", "path", conf_parse_path, F(path), .def = "/default/path" },
        { "main", "prog", conf_parse_program, F(prog) },
        { "main", "url", conf_parse_url, F(url), .max = 40, .data = schemes },
        { "main", "flag", conf_parse_bool, F(flag) },
        { "main", "count", conf_parse_u32, F(count), 2, 10, .def = "5" },
        { "main", "wait", conf_parse_duration, F(wait), 1, 2 * 86400, .def = "1h" },
        { "main", "size", conf_parse_size, F(size), 4096, 1ull << 30, .def = "1M" },
        { "main", "mode", conf_parse_enum, F(mode), .data = modes },
        { "main", "list", conf_parse_list, F(list), 1, 3, &comma },
        { "side.*", "dev", conf_parse_path, offsetof(struct side, dev), .flags = CONF_REQUIRED },
        { "side.*", "weight", conf_parse_u32, offsetof(struct side, weight), 0, 9 },
};
#undef F

static int sample_open(void *userdata, const struct conf_ctx *ctx, void **ret_base) {
        struct sample *s = userdata;

        s->opened++;
        if (strncmp(ctx->section, "side.", 5) != 0)
                return 0;
        if (!streq(ctx->section + 5, "0") && !streq(ctx->section + 5, "1"))
                return conf_fail(ctx, -RINGIL_EMALFORMED, "section [%s] is not [side.0] or [side.1]", ctx->section);
        *ret_base = &s->sides[ctx->section[5] - '0'];
        return 0;
}

static int sample_check(void *userdata, const struct conf_ctx *ctx) {
        struct sample *s = userdata;

        s->checked++;
        if (s->flag && !s->url)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "flag needs url");
        return 0;
}

static const struct conf_schema schema = {
        .items = items,
        .n_items = ELEMENTSOF(items),
        .open = sample_open,
        .check = sample_check,
};

static void sample_free(struct sample *s) {
        free(s->name);
        free(s->path);
        free(s->prog);
        free(s->url);
        free(s->opt);
        conf_list_free(s->list);
        for (int i = 0; i < 2; i++)
                free(s->sides[i].dev);
        *s = (struct sample) {};
}

static int sp(const char *text, struct sample *s) {
        *s = (struct sample) {};
        return conf_parse(text, strlen(text), NULL, &schema, s);
}

static void test_table_values_and_defaults(void **state) {
        struct sample s;
        (void) state;

        assert_int_equal(sp("name = ab_c\n[main]\nprog = ringil\nurl = https://h:1/x?y=z\nflag = yes\ncount = 10\n"
                            "wait = 2d\nsize = 4K\nmode = auto\nlist = a , b,c\n[side.1]\ndev = /dev/b\nweight = 0\n"
                            "[side.0]\ndev = /dev/a\n", &s), 0);
        assert_string_equal(s.name, "ab_c");
        assert_null(s.opt);
        assert_string_equal(s.path, "/default/path");   /* default through the parser */
        assert_string_equal(s.prog, "ringil");
        assert_string_equal(s.url, "https://h:1/x?y=z");
        assert_true(s.flag);
        assert_int_equal(s.count, 10);
        assert_int_equal(s.wait, 2 * 86400);
        assert_int_equal(s.size, 4096);
        assert_int_equal(s.mode, 2);
        assert_string_equal(s.list[0], "a");
        assert_string_equal(s.list[1], "b");
        assert_string_equal(s.list[2], "c");
        assert_null(s.list[3]);
        assert_string_equal(s.sides[0].dev, "/dev/a");
        assert_string_equal(s.sides[1].dev, "/dev/b");
        assert_int_equal(s.opened, 3);
        assert_int_equal(s.checked, 1);
        sample_free(&s);

        assert_int_equal(sp("name = xy\n", &s), 0);
        assert_int_equal(s.count, 5);
        assert_int_equal(s.wait, 3600);
        assert_int_equal(s.size, 1u << 20);
        assert_false(s.flag);
        assert_null(s.list[0]);
        assert_int_equal(s.opened, 0);
        sample_free(&s);

        /* Every spelling a parser takes. */
        static const struct {
                const char *line;
                uint64_t want;
        } ok[] = {
                { "wait = 90", 90 },    { "wait = 90s", 90 },      { "wait = 2m", 120 },     { "wait = 2min", 120 },
                { "wait = 3h", 10800 }, { "wait = 172800", 172800 }, { "size = 4096", 4096 }, { "size = 1G", 1u << 30 },
                { "size = 8k", 8192 },  { "count = 02", 2 },       { "flag = true", 1 },     { "flag = 1", 1 },
                { "flag = no", 0 },     { "flag = false", 0 },     { "flag = 0", 0 },        { "mode = off", 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                char text[128];
                uint64_t got;
                snprintf(text, sizeof(text), "name = xy\n[main]\n%s\nurl = file:///c\n", ok[i].line);
                if (sp(text, &s) != 0)
                        fail_msg("refused `%s': %s", ok[i].line, ringil_detail());
                got = ok[i].line[0] == 'w' ? s.wait : ok[i].line[0] == 's' ? s.size : ok[i].line[0] == 'c' ? s.count
                      : ok[i].line[0] == 'f' ? s.flag : (uint64_t) s.mode;
                if (got != ok[i].want)
                        fail_msg("`%s' gave %llu", ok[i].line, (unsigned long long) got);
                sample_free(&s);
        }
}

static void test_table_refusals(void **state) {
        static const struct {
                const char *text;
                int r;
                const char *detail;
        } bad[] = {
                { "[main]\n", -RINGIL_EMALFORMED, "missing `name'" },
                { "name = xy\nbogus = 1\n", -RINGIL_EMALFORMED, "line 2: unknown key `bogus'" },
                { "name = xy\n[main]\nname = 1\n", -RINGIL_EMALFORMED, "line 3: unknown key `name' in [main]" },
                { "name = xy\n[mian]\n", -RINGIL_EMALFORMED, "line 2: unknown section [mian]" },
                { "name = xy\n[side.]\n", -RINGIL_EMALFORMED, "line 2: unknown section [side.]" },
                { "name = xy\n[side.2]\ndev = /x\n", -RINGIL_EMALFORMED, "line 2: section [side.2] is not [side.0] or [side.1]" },
                { "name = xy\n[side.0]\nweight = 1\n[main]\n", -RINGIL_EMALFORMED, "line 2: missing `dev' in [side.0]" },
                { "name = xy\n[side.1]\n", -RINGIL_EMALFORMED, "line 2: missing `dev' in [side.1]" },
                { "name = x\n", -RINGIL_EMALFORMED, "line 1: name: `x' is shorter than 2 bytes" },
                { "name = abcdefghi\n", -RINGIL_EMALFORMED, "line 1: name: `abcdefghi' is longer than 8 bytes" },
                { "name = ab-c\n", -RINGIL_EMALFORMED, "line 1: name: `ab-c' may only hold a-z _" },
                { "name =\n", -RINGIL_EMALFORMED, "line 1: name: empty value" },
                { "name = xy\nopt = \xc3\x28\n", -RINGIL_EMALFORMED, "line 2: value of `opt' is not valid UTF-8" },
                { "name = xy\nopt = \xe0\x80\xaf\n", -RINGIL_EMALFORMED, "line 2: value of `opt' is not valid UTF-8" },
                { "name = xy\nopt = \xed\xa0\x80\n", -RINGIL_EMALFORMED, "line 2: value of `opt' is not valid UTF-8" },
                { "name = xy\nopt = \xf4\x90\x80\x80\n", -RINGIL_EMALFORMED, "line 2: value of `opt' is not valid UTF-8" },
                { "name = xy\n[main]\npath = rel/x\n", -RINGIL_EMALFORMED,
                  "line 3: [main] path: `rel/x' is not an absolute path without `..'" },
                { "name = xy\n[main]\npath = /a/../b\n", -RINGIL_EMALFORMED,
                  "line 3: [main] path: `/a/../b' is not an absolute path without `..'" },
                { "name = xy\n[main]\npath = /a/..\n", -RINGIL_EMALFORMED,
                  "line 3: [main] path: `/a/..' is not an absolute path without `..'" },
                { "name = xy\n[main]\nprog = ./x\n", -RINGIL_EMALFORMED,
                  "line 3: [main] prog: `./x' is neither an absolute path without `..' nor a program name" },
                { "name = xy\n[main]\nprog = ..\n", -RINGIL_EMALFORMED,
                  "line 3: [main] prog: `..' is neither an absolute path without `..' nor a program name" },
                { "name = xy\n[main]\nurl = http://h\n", -RINGIL_EMALFORMED,
                  "line 3: [main] url: `http://h' is not a URL (https://, file:///; URL characters only, not too long)" },
                { "name = xy\n[main]\nurl = https:///path\n", -RINGIL_EMALFORMED,
                  "line 3: [main] url: `https:///path' is not a URL (https://, file:///; URL characters only, not too long)" },
                { "name = xy\n[main]\nurl = https://\n", -RINGIL_EMALFORMED,
                  "line 3: [main] url: `https://' is not a URL (https://, file:///; URL characters only, not too long)" },
                { "name = xy\n[main]\nurl = https://a b\n", -RINGIL_EMALFORMED,
                  "line 3: [main] url: `https://a b' is not a URL (https://, file:///; URL characters only, not too long)" },
                { "name = xy\n[main]\nurl = https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", -RINGIL_EMALFORMED,
                  "line 3: [main] url: `https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is not a URL (https://, file:///; URL characters only, not too long)" },
                { "name = xy\n[main]\nflag = maybe\n", -RINGIL_EMALFORMED, "line 3: [main] flag: `maybe' is not yes or no" },
                { "name = xy\n[main]\nflag = Yes\n", -RINGIL_EMALFORMED, "line 3: [main] flag: `Yes' is not yes or no" },
                { "name = xy\n[main]\ncount = 1\n", -RINGIL_EMALFORMED, "line 3: [main] count: `1' is not a number in 2..10" },
                { "name = xy\n[main]\ncount = 11\n", -RINGIL_EMALFORMED, "line 3: [main] count: `11' is not a number in 2..10" },
                { "name = xy\n[main]\ncount = -3\n", -RINGIL_EMALFORMED, "line 3: [main] count: `-3' is not a number in 2..10" },
                { "name = xy\n[main]\ncount = 3x\n", -RINGIL_EMALFORMED, "line 3: [main] count: `3x' is not a number in 2..10" },
                { "name = xy\n[main]\ncount = 4294967298\n", -RINGIL_EMALFORMED,
                  "line 3: [main] count: `4294967298' is not a number in 2..10" },
                { "name = xy\n[main]\nwait = 0\n", -RINGIL_EMALFORMED,
                  "line 3: [main] wait: `0' is not a duration in 1s..2d (seconds, or a unit s, min, h, d)" },
                { "name = xy\n[main]\nwait = 3d\n", -RINGIL_EMALFORMED,
                  "line 3: [main] wait: `3d' is not a duration in 1s..2d (seconds, or a unit s, min, h, d)" },
                { "name = xy\n[main]\nwait = 1w\n", -RINGIL_EMALFORMED,
                  "line 3: [main] wait: `1w' is not a duration in 1s..2d (seconds, or a unit s, min, h, d)" },
                { "name = xy\n[main]\nwait = h\n", -RINGIL_EMALFORMED,
                  "line 3: [main] wait: `h' is not a duration in 1s..2d (seconds, or a unit s, min, h, d)" },
                { "name = xy\n[main]\nwait = 1 h\n", -RINGIL_EMALFORMED,
                  "line 3: [main] wait: `1 h' is not a duration in 1s..2d (seconds, or a unit s, min, h, d)" },
                { "name = xy\n[main]\nwait = 99999999999999999999d\n", -RINGIL_EMALFORMED,
                  "line 3: [main] wait: `99999999999999999999d' is not a duration in 1s..2d (seconds, or a unit s, min, h, d)" },
                { "name = xy\n[main]\nsize = 4095\n", -RINGIL_EMALFORMED,
                  "line 3: [main] size: `4095' is not a size in 4K..1G (suffixes K, M, G, T)" },
                { "name = xy\n[main]\nsize = 2G\n", -RINGIL_EMALFORMED,
                  "line 3: [main] size: `2G' is not a size in 4K..1G (suffixes K, M, G, T)" },
                { "name = xy\n[main]\nsize = 1.5M\n", -RINGIL_EMALFORMED,
                  "line 3: [main] size: `1.5M' is not a size in 4K..1G (suffixes K, M, G, T)" },
                { "name = xy\n[main]\nmode = AUTO\n", -RINGIL_EMALFORMED,
                  "line 3: [main] mode: `AUTO' is not one of off, on, auto" },
                { "name = xy\n[main]\nlist = a,,b\n", -RINGIL_EMALFORMED, "line 3: [main] list: empty item in `a,,b'" },
                { "name = xy\n[main]\nlist = a, \n", -RINGIL_EMALFORMED, "line 3: [main] list: empty item in `a,'" },
                { "name = xy\n[main]\nlist = a,b,a\n", -RINGIL_EMALFORMED, "line 3: [main] list: `a' listed twice" },
                { "name = xy\n[main]\nlist = abcdefghi\n", -RINGIL_EMALFORMED,
                  "line 3: [main] list: item `abcdefghi' longer than 8 bytes" },
                { "name = xy\n[main]\nlist = a,b,c,d\n", -RINGIL_ETOOBIG, "line 3: [main] list: more than 3 items" },
                { "name = xy\n[main]\nflag = yes\n", -RINGIL_EMALFORMED, "flag needs url" },
        };
        struct sample s;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = sp(bad[i].text, &s);
                if (r != bad[i].r || !streq(ringil_detail(), bad[i].detail))
                        fail_msg("case %zu: %d `%s', want `%s'", i, r, ringil_detail(), bad[i].detail);
                sample_free(&s);
        }
}

static void test_table_messages_name_the_file(void **state) {
        struct sample s = {};
        (void) state;

        const char *t = "name = xy\n[main]\ncount = 99\n";
        assert_int_equal(conf_parse(t, strlen(t), "/etc/x.conf", &schema, &s), -RINGIL_EMALFORMED);
        assert_string_equal(ringil_detail(), "/etc/x.conf:3: [main] count: `99' is not a number in 2..10");
        sample_free(&s);
        assert_int_equal(conf_parse("[main]\n", 7, "/etc/x.conf", &schema, &s), -RINGIL_EMALFORMED);
        assert_string_equal(ringil_detail(), "/etc/x.conf: missing `name'");
        sample_free(&s);
        /* A file name with control bytes is escaped, never printed raw. */
        assert_int_equal(conf_parse("bogus = 1\n", 10, "/tmp/a\nb\x1b[1m", &schema, &s), -RINGIL_EMALFORMED);
        assert_string_equal(ringil_detail(), "/tmp/a\\nb\\x1b[1m:1: unknown key `bogus'");
        sample_free(&s);
        assert_int_equal(conf_parse("bogus = 1\n", 10, "/tmp/\xff\xc3\xa9.conf", &schema, &s), -RINGIL_EMALFORMED);
        assert_string_equal(ringil_detail(), "/tmp/\\xff\xc3\xa9.conf:1: unknown key `bogus'");   /* the invalid byte escaped, é kept */
        assert_int_equal(conf_parse("bogus = 1\n", 10, "/tmp/\xc3\xa9t\xc3\xa9.conf", &schema, &s), -RINGIL_EMALFORMED);
        assert_string_equal(ringil_detail(), "/tmp/\xc3\xa9t\xc3\xa9.conf:1: unknown key `bogus'");   /* UTF-8 stays */
        sample_free(&s);
        /* A long value is quoted shortened, so the reason still fits in the message. */
        char text[600] = "name = ";
        memset(text + 7, 'a', 500);
        strcpy(text + 507, "\n");
        assert_int_equal(conf_parse(text, strlen(text), NULL, &schema, &s), -RINGIL_EMALFORMED);
        assert_string_equal(ringil_detail(), "line 1: name: `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' "
                                             "is longer than 8 bytes");
        sample_free(&s);
}

/* ---- files ---- */

static void write_file(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static void test_load_files(void **state) {
        _cleanup_free_ char *dir = test_tmpdir();
        char path[512], link[512], fifo[512], msg[1024];
        struct sample s = {};
        uint8_t *data = NULL;
        size_t len;
        (void) state;

        assert_non_null(dir);
        snprintf(path, sizeof(path), "%s/x.conf", dir);
        snprintf(link, sizeof(link), "%s/link.conf", dir);
        snprintf(fifo, sizeof(fifo), "%s/fifo.conf", dir);

        /* Missing: the errno survives, the message names the path once, with the reason. */
        assert_int_equal(conf_load(path, &schema, &s), -ENOENT);
        snprintf(msg, sizeof(msg), "cannot read configuration `%s': No such file or directory", path);
        assert_string_equal(ringil_detail(), msg);

        write_file(path, "name = xy\n[main]\ncount = 7\n");
        assert_int_equal(conf_load(path, &schema, &s), 0);
        assert_int_equal(s.count, 7);
        sample_free(&s);

        /* Followed: /etc on NixOS is links into the store. */
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(conf_load(link, &schema, &s), 0);
        sample_free(&s);

        write_file(path, "name = xy\n[main]\ncount = 70\n");
        assert_int_equal(conf_load(path, &schema, &s), -RINGIL_EMALFORMED);
        snprintf(msg, sizeof(msg), "%s:3: [main] count: `70' is not a number in 2..10", path);
        assert_string_equal(ringil_detail(), msg);
        sample_free(&s);

        assert_int_equal(conf_load(dir, &schema, &s), -EISDIR);
        snprintf(msg, sizeof(msg), "cannot read configuration `%s': it is a directory", dir);
        assert_string_equal(ringil_detail(), msg);

        /* A FIFO with no writer would block a plain open(): refused at once. */
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_int_equal(conf_load(fifo, &schema, &s), -RINGIL_EMALFORMED);
        snprintf(msg, sizeof(msg), "cannot read configuration `%s': not a regular file", fifo);
        assert_string_equal(ringil_detail(), msg);

        assert_int_equal(chmod(path, 0), 0);
        if (geteuid() != 0) {
                assert_int_equal(conf_load(path, &schema, &s), -EACCES);
                snprintf(msg, sizeof(msg), "cannot read configuration `%s': Permission denied", path);
                assert_string_equal(ringil_detail(), msg);
        }
        assert_int_equal(chmod(path, 0600), 0);

        {
                _cleanup_free_ char *big = malloc(CONF_MAX_SIZE + 2);
                assert_non_null(big);
                memset(big, '#', CONF_MAX_SIZE + 1);
                big[CONF_MAX_SIZE + 1] = '\0';
                write_file(path, big);
        }
        assert_int_equal(conf_read_file(path, &data, &len), -RINGIL_ETOOBIG);
        snprintf(msg, sizeof(msg), "cannot read configuration `%s': larger than 65536 bytes", path);
        assert_string_equal(ringil_detail(), msg);
        test_rm_rf(dir);
}

static void test_validators(void **state) {
        (void) state;

        assert_true(conf_path_valid("/"));
        assert_true(conf_path_valid("/a/b..c/..d/e.."));
        assert_false(conf_path_valid(NULL));
        assert_false(conf_path_valid(""));
        assert_false(conf_path_valid("a"));
        assert_false(conf_path_valid("/.."));
        assert_false(conf_path_valid("/a/../b"));
        assert_true(conf_url_valid("file:///x", schemes));
        assert_false(conf_url_valid("file:///", schemes));
        assert_false(conf_url_valid("https://h/\x01", schemes));
        assert_false(conf_url_valid("https://h/x", NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reader_lines),
                cmocka_unit_test(test_reader_refusals),
                cmocka_unit_test(test_reader_caps),
                cmocka_unit_test(test_table_values_and_defaults),
                cmocka_unit_test(test_table_refusals),
                cmocka_unit_test(test_table_messages_name_the_file),
                cmocka_unit_test(test_load_files),
                cmocka_unit_test(test_validators),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
