/* nix-closure.c: the closure listing a generation bundle signs: canonical text, `nix path-info` input, comparison. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "err.h"
#include "macro.h"
#include "nix-closure.h"
#include "parse.h"

void nix_closure_done(struct nix_closure *c) {
        if (!c)
                return;
        free(c->v);
        *c = (struct nix_closure) {};
}

static int cmp_entry(const void *a, const void *b) {
        return strcmp(((const struct nix_closure_entry *) a)->path, ((const struct nix_closure_entry *) b)->path);
}

const struct nix_closure_entry *nix_closure_find(const struct nix_closure *c, const char *path) {
        struct nix_closure_entry key;

        if (!c || strlen(path) > NIX_STORE_PATH_MAX)
                return NULL;
        memcpy(key.path, path, strlen(path) + 1);
        return bsearch(&key, c->v, c->n, sizeof(*c->v), cmp_entry);
}

static const char closure_header[] = "ringil-nix-closure 1\n";

/* A new zeroed entry at the end of c (capped at NIX_CLOSURE_MAX paths). */
static int closure_append(struct nix_closure *c, size_t *cap, struct nix_closure_entry **ret) {
        if (c->n >= NIX_CLOSURE_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "closure has more than %u paths", NIX_CLOSURE_MAX);
        if (c->n == *cap) {
                struct nix_closure_entry *v = reallocarray(c->v, *cap ? *cap * 2 : 64, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                c->v = v;
                *cap = *cap ? *cap * 2 : 64;
        }
        *ret = memset(&c->v[c->n++], 0, sizeof(**ret));
        return 0;
}

int nix_closure_parse(const char *text, size_t len, struct nix_closure *ret) {
        struct nix_closure c = {};
        size_t pos = sizeof(closure_header) - 1, cap = 0;
        unsigned line = 1;
        int r = 0;

        if (len > NIX_CLOSURE_LIST_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "closure listing larger than %u bytes", NIX_CLOSURE_LIST_MAX);
        if (len < pos || memcmp(text, closure_header, pos) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "closure listing: no `ringil-nix-closure 1' header");
        if (memchr(text, '\0', len))
                return ringil_fail(-RINGIL_EMALFORMED, "closure listing contains a NUL byte");
        while (pos < len) {
                const char *s = text + pos, *nl = memchr(s, '\n', len - pos), *sp1, *sp2;
                char hash[NIX32_SHA256_LEN + 1], num[24];
                struct nix_closure_entry *e;
                size_t n, pl;

                line++;
                if (!nl) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u: no final newline", line);
                        break;
                }
                n = (size_t) (nl - s);
                pos += n + 1;
                sp1 = memchr(s, ' ', n);
                sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t) (sp1 + 1 - s)) : NULL;
                pl = sp1 ? (size_t) (sp1 - s) : 0;
                if (!sp2 || pl > NIX_STORE_PATH_MAX || (size_t) (sp2 - sp1 - 1) != 7 + NIX32_SHA256_LEN ||
                    strncmp(sp1 + 1, "sha256:", 7) != 0 || (size_t) (nl - sp2 - 1) == 0 ||
                    (size_t) (nl - sp2 - 1) >= sizeof(num)) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u is not `PATH sha256:NIX32 NARSIZE'", line);
                        break;
                }
                r = closure_append(&c, &cap, &e);
                if (r < 0)
                        break;
                memcpy(e->path, s, pl);
                e->path[pl] = '\0';
                memcpy(hash, sp1 + 8, NIX32_SHA256_LEN);
                hash[NIX32_SHA256_LEN] = '\0';
                memcpy(num, sp2 + 1, (size_t) (nl - sp2 - 1));
                num[nl - sp2 - 1] = '\0';
                if (!nix_store_path_valid(e->path) || nix32_decode(hash, e->nar_hash, 32) < 0 ||
                    num[0] == '0' || parse_u64(num, &e->nar_size) < 0 || e->nar_size == 0) {   /* "088": not canonical */
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u: bad path, hash or size", line);
                        break;
                }
                /* Canonical: strictly ascending, so one closure has exactly one listing. */
                if (c.n > 1 && strcmp(c.v[c.n - 2].path, e->path) >= 0) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u: paths not strictly sorted", line);
                        break;
                }
        }
        if (r >= 0 && c.n == 0)
                r = ringil_fail(-RINGIL_EMALFORMED, "closure listing is empty");
        if (r < 0) {
                nix_closure_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int nix_path_info_each(const char *json, size_t len, int (*add)(void *userdata, const char *path, json_t *entry),
                       void *userdata) {
        json_error_t err;
        json_t *j, *o;
        int r = 0, n = 0;

        j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: %s", err.text);
        if (json_is_array(j)) {   /* Nix 2.8: [{"path": ..., "narHash": ..., ...}] */
                size_t i;
                json_array_foreach(j, i, o) {
                        r = add(userdata, json_string_value(json_object_get(o, "path")), o);
                        if (r < 0)
                                break;
                        n++;
                }
        } else if (json_is_object(j)) {   /* newer Nix: {"/nix/store/...": {...}} */
                const char *k;
                json_object_foreach(j, k, o) {
                        r = add(userdata, k, o);
                        if (r < 0)
                                break;
                        n++;
                }
        } else
                r = ringil_fail(-RINGIL_EMALFORMED, "nix path-info: not a JSON array or object");
        json_decref(j);
        if (r >= 0 && n == 0)
                r = ringil_fail(-RINGIL_EMALFORMED, "nix path-info listed no path");
        return r < 0 ? r : n;
}

struct closure_builder {
        struct nix_closure c;
        size_t cap;
};

static int add_path_info(void *userdata, const char *path, json_t *o) {
        struct closure_builder *b = userdata;
        const char *nh = json_string_value(json_object_get(o, "narHash"));
        json_t *ns = json_object_get(o, "narSize");
        struct nix_closure_entry *e;
        int r;

        if (!path || !nix_store_path_valid(path) || !nh || !json_is_integer(ns) || json_integer_value(ns) <= 0)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: an entry lacks path, narHash or narSize");
        r = closure_append(&b->c, &b->cap, &e);
        if (r < 0)
                return r;
        memcpy(e->path, path, strlen(path) + 1);
        if (nix_hash_parse(nh, e->nar_hash) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: narHash `%.80s' of %s", nh, path);
        e->nar_size = (uint64_t) json_integer_value(ns);
        return 0;
}

int nix_closure_from_path_info(const char *json, size_t len, struct nix_closure *ret) {
        struct closure_builder b = {};
        int r;

        r = nix_path_info_each(json, len, add_path_info, &b);
        if (r >= 0) {
                qsort(b.c.v, b.c.n, sizeof(*b.c.v), cmp_entry);
                for (size_t i = 1; i < b.c.n && r >= 0; i++)
                        if (streq(b.c.v[i - 1].path, b.c.v[i].path))
                                r = ringil_fail(-RINGIL_EMALFORMED, "nix path-info lists %s twice", b.c.v[i].path);
        }
        if (r < 0) {
                nix_closure_done(&b.c);
                return r;
        }
        *ret = b.c;
        return 0;
}

int nix_closure_format(const struct nix_closure *c, struct buf *ret) {
        struct buf b = BUF_INIT(NIX_CLOSURE_LIST_MAX);
        int r = buf_append_str(&b, closure_header);

        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                char h[NIX32_SHA256_LEN + 1];
                nix32_encode(c->v[i].nar_hash, 32, h);
                r = buf_printf(&b, "%s sha256:%s %" PRIu64 "\n", c->v[i].path, h, c->v[i].nar_size);
        }
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = b;
        return 0;
}

int nix_closure_compare(const struct nix_closure *want, const struct nix_closure *got) {
        size_t i = 0, k = 0;

        while (i < want->n || k < got->n) {
                int c = i >= want->n ? 1 : k >= got->n ? -1 : strcmp(want->v[i].path, got->v[k].path);
                if (c < 0)
                        return ringil_fail(-RINGIL_EDIGEST, "%s of the signed closure is not in the installed one", want->v[i].path);
                if (c > 0)
                        return ringil_fail(-RINGIL_EDIGEST, "%s is in the installed closure but not in the signed one", got->v[k].path);
                if (crypto_memcmp(want->v[i].nar_hash, got->v[k].nar_hash, 32) != 0 || want->v[i].nar_size != got->v[k].nar_size)
                        return ringil_fail(-RINGIL_EDIGEST, "%s: the installed NAR hash differs from the signed closure's",
                                           want->v[i].path);
                i++;
                k++;
        }
        return 0;
}
