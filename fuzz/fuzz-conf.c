/* fuzz-conf.c: the configuration reader and the table walk with every typed parser; a refusal is one printable line. */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"
#include "fuzz.h"
#include "macro.h"

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
        char *list[5];
        struct side sides[2];
};

static const char *const modes[] = { "off", "on", "auto", NULL };
static const char *const schemes[] = { "https://", "http://", "file:///", NULL };
static const struct conf_charset lower = { "abcdefghijklmnopqrstuvwxyz_", "a-z _" };
static const struct conf_list comma = { .separator = ',', .item_max = 16 };

#define F(f) offsetof(struct sample, f)
static const struct conf_item items[] = {
        { "", "name", conf_parse_string, F(name), 1, 32, &lower, .def = "default" },
        { "", "opt", conf_parse_string, F(opt) },
        { "main", "path", conf_parse_path, F(path), .def = "/default" },
        { "main", "prog", conf_parse_program, F(prog) },
        { "main", "url", conf_parse_url, F(url), .max = 512, .data = schemes },
        { "main", "flag", conf_parse_bool, F(flag) },
        { "main", "count", conf_parse_u32, F(count), 0, UINT32_MAX },
        { "main", "wait", conf_parse_duration, F(wait), 1, UINT32_MAX, .def = "1h" },
        { "main", "size", conf_parse_size, F(size), 1, UINT64_MAX, .def = "1M" },
        { "main", "mode", conf_parse_enum, F(mode), .data = modes },
        { "main", "list", conf_parse_list, F(list), 1, 4, &comma },
        { "side.*", "dev", conf_parse_path, offsetof(struct side, dev), .flags = CONF_REQUIRED },
        { "side.*", "weight", conf_parse_u32, offsetof(struct side, weight), 0, 9 },
};
#undef F

static int sample_open(void *userdata, const struct conf_ctx *ctx, void **ret_base) {
        struct sample *s = userdata;

        if (strncmp(ctx->section, "side.", 5) != 0)
                return 0;
        if (!streq(ctx->section + 5, "0") && !streq(ctx->section + 5, "1"))
                return conf_fail(ctx, -RINGIL_EMALFORMED, "section [%s] is not [side.0] or [side.1]", ctx->section);
        *ret_base = &s->sides[ctx->section[5] - '0'];
        return 0;
}

static const struct conf_schema schema = {
        .items = items,
        .n_items = ELEMENTSOF(items),
        .open = sample_open,
};

static int count_keys(void *userdata, const struct conf_ctx *ctx, const char *value) {
        /* The reader's promises: names are set, values are trimmed and carry no control byte. */
        if (!ctx->section || ctx->line == 0 || (ctx->key && (!value || value[0] == ' ' || !ctx->key[0])))
                abort();
        for (const char *p = value; p && *p; p++)
                if ((unsigned char) *p < 0x20 && *p != '\t')
                        abort();
        (*(unsigned *) userdata)++;
        return 0;
}

static void check_detail(void) {
        const char *d = ringil_detail();

        if (!d[0])
                abort();
        for (; *d; d++)
                if ((unsigned char) *d < 0x20 || *d == 0x7f)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct sample s = {};
        unsigned n = 0;
        int r;

        if (size > CONF_MAX_SIZE + 16)
                return 0;
        ringil_clear_detail();
        r = conf_read((const char *) data, size, NULL, count_keys, &n);
        if (r < 0 && r != -ENOMEM)
                check_detail();
        if (n > CONF_MAX_ENTRIES)
                abort();

        ringil_clear_detail();
        r = conf_parse((const char *) data, size, "/etc/fuzz.conf", &schema, &s);
        if (r < 0 && r != -ENOMEM)
                check_detail();
        if (r == 0 && (!s.name || !s.path || s.wait == 0 || s.size == 0))
                abort();   /* defaults fill every absent key that has one */
        for (int i = 0; r == 0 && i < 2; i++)
                if (s.sides[i].weight > 9)
                        abort();
        free(s.name);
        free(s.path);
        free(s.prog);
        free(s.url);
        free(s.opt);
        conf_list_free(s.list);
        free(s.sides[0].dev);
        free(s.sides[1].dev);
        return 0;
}
