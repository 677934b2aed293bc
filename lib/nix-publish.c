/* nix-publish.c: the closure a release publishes: `nix path-info` records, dependency order, narinfo text and the upload envelope. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "err.h"
#include "nix-publish.h"
#include "parse.h"
#include "secret.h"

static void info_done(struct nix_path_info *p) {
        for (size_t i = 0; i < p->n_refs; i++)
                free(p->refs[i]);
        free(p->refs);
        for (size_t i = 0; i < p->n_sigs; i++)
                free(p->sigs[i]);
        free(p->sigs);
        free(p->deriver);
        *p = (struct nix_path_info) {};
}

void nix_path_infos_done(struct nix_path_infos *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n; i++)
                info_done(&p->v[i]);
        free(p->v);
        *p = (struct nix_path_infos) {};
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int cmp_info(const void *a, const void *b) {
        return strcmp(((const struct nix_path_info *) a)->path, ((const struct nix_path_info *) b)->path);
}

/* A reference as Nix writes it (full path, or a basename in newer Nix) → a full, valid store path. */
static char *full_path(const char *r) {
        char *p;

        if (asprintf(&p, "%s%s", strncmp(r, "/nix/store/", 11) == 0 ? "" : "/nix/store/", r) < 0)
                return NULL;
        if (!nix_store_path_valid(p)) {
                free(p);
                errno = EINVAL;
                return NULL;
        }
        return p;
}

static int strings(json_t *a, size_t max, bool paths, const char *what, const char *path, char ***ret, size_t *ret_n) {
        char **v = NULL;
        size_t i, n = json_is_array(a) ? json_array_size(a) : 0;
        json_t *x;

        if (a && !json_is_array(a))
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: %s of %s is not a list", what, path);
        if (n > max)
                return ringil_fail(-RINGIL_ETOOBIG, "nix path-info: %s has more than %zu %s", path, max, what);
        v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        json_array_foreach(a, i, x) {
                const char *s = json_string_value(x);
                if (!s || strlen(s) > 1024 || strpbrk(s, "\n\r")) {
                        for (size_t k = 0; k < i; k++)
                                free(v[k]);
                        free(v);
                        return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: a bad entry in %s of %s", what, path);
                }
                v[i] = paths ? full_path(s) : strdup(s);
                if (!v[i]) {
                        int r = errno == EINVAL ? ringil_fail(-RINGIL_EMALFORMED, "nix path-info: %s of %s: `%.80s' is not a store path",
                                                              what, path, s)
                                                : -ENOMEM;
                        for (size_t k = 0; k < i; k++)
                                free(v[k]);
                        free(v);
                        return r;
                }
        }
        if (paths && n > 1)
                qsort(v, n, sizeof(char *), cmp_str);
        *ret = v;
        *ret_n = n;
        return 0;
}

struct infos_builder {
        struct nix_path_infos pi;
        size_t cap;
};

static int add_info(void *userdata, const char *path, json_t *o) {
        struct infos_builder *b = userdata;
        struct nix_path_infos *pi = &b->pi;
        size_t *cap = &b->cap;
        const char *nh = json_string_value(json_object_get(o, "narHash"));
        const char *deriver = json_string_value(json_object_get(o, "deriver"));
        json_t *ns = json_object_get(o, "narSize");
        struct nix_path_info *e;
        int r;

        if (!path || !nix_store_path_valid(path) || !nh || !json_is_integer(ns) || json_integer_value(ns) <= 0)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: an entry lacks path, narHash or narSize");
        if (pi->n >= NIX_CLOSURE_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "nix path-info: more than %u paths", NIX_CLOSURE_MAX);
        if (pi->n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                struct nix_path_info *nv = reallocarray(pi->v, nc, sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                pi->v = nv;
                *cap = nc;
        }
        e = &pi->v[pi->n];
        *e = (struct nix_path_info) {};
        pi->n++;
        memcpy(e->path, path, strlen(path) + 1);
        if (nix_hash_parse(nh, e->nar_hash) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: narHash `%.80s' of %s", nh, path);
        e->nar_size = (uint64_t) json_integer_value(ns);
        e->ca = json_object_get(o, "ca") && !json_is_null(json_object_get(o, "ca"));
        if (deriver) {
                e->deriver = full_path(deriver);
                if (!e->deriver)
                        return errno == EINVAL ? ringil_fail(-RINGIL_EMALFORMED, "nix path-info: deriver of %s", path) : -ENOMEM;
        }
        r = strings(json_object_get(o, "references"), NARINFO_MAX_REFS, true, "references", path, &e->refs, &e->n_refs);
        if (r >= 0)
                r = strings(json_object_get(o, "signatures"), NARINFO_MAX_SIGS, false, "signatures", path, &e->sigs,
                            &e->n_sigs);
        return r;
}

int nix_path_infos_parse(const char *json, size_t len, struct nix_path_infos *ret) {
        struct infos_builder b = {};
        int r;

        r = nix_path_info_each(json, len, add_info, &b);
        if (r >= 0) {
                qsort(b.pi.v, b.pi.n, sizeof(*b.pi.v), cmp_info);
                for (size_t i = 1; i < b.pi.n && r >= 0; i++)
                        if (streq(b.pi.v[i - 1].path, b.pi.v[i].path))
                                r = ringil_fail(-RINGIL_EMALFORMED, "nix path-info lists %s twice", b.pi.v[i].path);
        }
        if (r < 0) {
                nix_path_infos_done(&b.pi);
                return r;
        }
        *ret = b.pi;
        return 0;
}

static size_t find(const struct nix_path_infos *pi, const char *path) {
        size_t lo = 0, hi = pi->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(pi->v[mid].path, path);
                if (c == 0)
                        return mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return SIZE_MAX;
}

int nix_path_infos_toposort(struct nix_path_infos *pi) {
        _cleanup_free_ size_t *order = calloc(pi->n + 1, sizeof(size_t));
        _cleanup_free_ uint8_t *state = calloc(pi->n + 1, 1);    /* 0 new, 1 on the stack, 2 placed */
        _cleanup_free_ size_t *stack = calloc(pi->n + 1, sizeof(size_t)), *next = calloc(pi->n + 1, sizeof(size_t));
        struct nix_path_info *sorted;
        size_t placed = 0;

        if (!order || !state || !stack || !next)
                return -ENOMEM;
        /* The input is sorted by path (binary search); an iterative depth-first walk places every path
         * after its references, so a deep closure cannot exhaust the C stack. */
        for (size_t s = 0; s < pi->n; s++) {
                size_t sp = 0;
                if (state[s])
                        continue;
                stack[sp++] = s;
                state[s] = 1;
                next[s] = 0;
                while (sp > 0) {
                        size_t cur = stack[sp - 1];
                        const struct nix_path_info *e = &pi->v[cur];
                        if (next[cur] < e->n_refs) {
                                const char *ref = e->refs[next[cur]++];
                                size_t k;
                                if (streq(ref, e->path))
                                        continue;   /* a path may refer to itself */
                                k = find(pi, ref);
                                if (k == SIZE_MAX)
                                        return ringil_fail(-RINGIL_EMALFORMED, "%s refers to %s, which is not in the closure",
                                                           e->path, ref);
                                if (state[k] == 1)
                                        return ringil_fail(-RINGIL_EMALFORMED, "the references of %s form a cycle", ref);
                                if (state[k] == 0) {
                                        state[k] = 1;
                                        next[k] = 0;
                                        stack[sp++] = k;
                                }
                                continue;
                        }
                        state[cur] = 2;
                        order[placed++] = cur;
                        sp--;
                }
        }
        sorted = calloc(pi->n, sizeof(*sorted));
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < pi->n; i++)
                sorted[i] = pi->v[order[i]];
        free(pi->v);
        pi->v = sorted;
        return 0;
}

int nix_narinfo_format(const struct nix_path_info *p, struct buf *ret) {
        struct buf b = BUF_INIT(NARINFO_MAX);
        char h[NIX32_SHA256_LEN + 1];
        int r;

        nix32_encode(p->nar_hash, 32, h);
        r = buf_printf(&b,
                       "StorePath: %s\nURL: nar/%s.nar\nCompression: none\nFileHash: sha256:%s\nFileSize: %" PRIu64
                       "\nNarHash: sha256:%s\nNarSize: %" PRIu64 "\nReferences: ",
                       p->path, h, h, p->nar_size, h, p->nar_size);
        /* (Nix reads "References: " with its space even when the list is empty) */
        for (size_t i = 0; r >= 0 && i < p->n_refs; i++)
                r = buf_printf(&b, "%s%s", i ? " " : "", p->refs[i] + 11);
        if (r >= 0)
                r = buf_append_str(&b, "\n");
        if (r >= 0 && p->deriver)
                r = buf_printf(&b, "Deriver: %s\n", p->deriver + 11);
        for (size_t i = 0; r >= 0 && i < p->n_sigs; i++)
                r = buf_printf(&b, "Sig: %s\n", p->sigs[i]);
        if (r < 0) {
                buf_free(&b);
                return r == -ENOBUFS || r == -EFBIG ? ringil_fail(-RINGIL_ETOOBIG, "narinfo of %s too large", p->path) : r;
        }
        *ret = b;
        return 0;
}

size_t nix_upload_header(size_t narinfo_len, char buf[static NIX_UPLOAD_HEADER_MAX]) {
        int n = snprintf(buf, NIX_UPLOAD_HEADER_MAX, NIX_UPLOAD_MAGIC "%zu\n", narinfo_len);
        return n < 0 ? 0 : (size_t) n;
}

int nix_upload_header_parse(const char *p, size_t len, size_t *ret_consumed, size_t *ret_narinfo_len) {
        const size_t ml = strlen(NIX_UPLOAD_MAGIC);
        const char *nl = memchr(p, '\n', MIN(len, (size_t) NIX_UPLOAD_HEADER_MAX));
        char num[24];
        uint64_t v;
        size_t n;

        if (!nl)
                return len < NIX_UPLOAD_HEADER_MAX ? -EAGAIN
                                                   : ringil_fail(-RINGIL_EMALFORMED, "the upload does not start with its header line");
        if ((size_t) (nl - p) <= ml || memcmp(p, NIX_UPLOAD_MAGIC, ml) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "the upload does not start with `" NIX_UPLOAD_MAGIC "N'");
        n = (size_t) (nl - p) - ml;
        if (n >= sizeof(num))
                return ringil_fail(-RINGIL_EMALFORMED, "the upload header's length is too long");
        memcpy(num, p + ml, n);
        num[n] = '\0';
        if (parse_u64(num, &v) < 0 || v == 0 || v > NARINFO_MAX)
                return ringil_fail(-RINGIL_EMALFORMED, "the upload's narinfo length `%s' is not 1..%u", num, NARINFO_MAX);
        *ret_consumed = (size_t) (nl - p) + 1;
        *ret_narinfo_len = (size_t) v;
        return 0;
}

int nix_secret_key_public(const char *secret, size_t len, char **ret_public) {
        const char *colon = memchr(secret, ':', len);
        uint8_t sk[64], pub[32];
        char b64[64];
        size_t nl, bl;
        int r;

        while (len > 0 && (secret[len - 1] == '\n' || secret[len - 1] == '\r' || secret[len - 1] == ' '))
                len--;
        if (!colon || colon == secret)
                return ringil_fail(-RINGIL_EMALFORMED, "a Nix secret key is `name:base64'");
        nl = (size_t) (colon - secret);
        bl = len - nl - 1;
        if (nl > 128 || memchr(secret, '\n', len) || memchr(secret, ' ', nl))
                return ringil_fail(-RINGIL_EMALFORMED, "the Nix secret key's name is not one word");
        if (crypto_base64_decode(colon + 1, bl, sk, 64) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "the Nix secret key is not name:base64 of 64 bytes");
        /* libsodium's layout: seed then public key; a file whose halves disagree is refused */
        r = crypto_ed25519_public(sk, pub);
        if (r >= 0 && crypto_memcmp(pub, sk + 32, 32) != 0)
                r = ringil_fail(-RINGIL_EMALFORMED, "the Nix secret key's public half does not match its seed");
        secret_wipe(sk, sizeof(sk));
        if (r < 0)
                return r;
        r = crypto_base64_encode(pub, 32, b64, sizeof(b64));
        if (r < 0)
                return r;
        if (asprintf(ret_public, "%.*s:%s", (int) nl, secret, b64) < 0)
                return -ENOMEM;
        return 0;
}

int nix_keys_check(const char *keys) {
        const char *k = keys;
        size_t n = 0;

        while (*k) {
                size_t len = strcspn(k, " \t"), nl;
                const char *colon = memchr(k, ':', len);
                uint8_t pub[32];

                if (len == 0) {
                        k++;
                        continue;
                }
                if (!colon || colon == k)
                        return ringil_fail(-RINGIL_EMALFORMED, "nix-trusted-public-keys: `%.*s' is not name:base64", (int) MIN(len, (size_t) 80), k);
                nl = (size_t) (colon - k);
                if (crypto_base64_decode(colon + 1, len - nl - 1, pub, 32) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "nix-trusted-public-keys: key `%.*s' is not 32 bytes of base64", (int) nl, k);
                n++;
                k += len;
        }
        return n > 0 ? 0 : ringil_fail(-RINGIL_EMALFORMED, "nix-trusted-public-keys is empty");
}
