/* nix-narinfo.c: store paths, nix32, strict .narinfo parsing, Nix's fingerprint and ed25519 signature checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "macro.h"
#include "nix-narinfo.h"
#include "parse.h"

static const char nix32_chars[] = "0123456789abcdfghijklmnpqrsvwxyz";

void nix32_encode(const uint8_t *p, size_t n, char *out) {
        size_t len = (n * 8 + 4) / 5;

        /* Nix writes the most significant 5-bit group first; group k takes bits 5k.. of the little-endian number. */
        for (size_t k = len; k-- > 0;) {
                size_t b = k * 5, i = b / 8, j = b % 8;
                unsigned c = (unsigned) (p[i] >> j);
                if (i + 1 < n)
                        c |= (unsigned) p[i + 1] << (8 - j);
                *out++ = nix32_chars[c & 0x1f];
        }
        *out = '\0';
}

int nix32_decode(const char *s, uint8_t *out, size_t n) {
        size_t len = (n * 8 + 4) / 5;

        if (strlen(s) != len)
                return -RINGIL_EMALFORMED;
        memset(out, 0, n);
        for (size_t k = 0; k < len; k++) {
                const char *c = s[len - 1 - k] ? strchr(nix32_chars, s[len - 1 - k]) : NULL;
                size_t b = k * 5, i = b / 8, j = b % 8;
                unsigned d;

                if (!c)
                        return -RINGIL_EMALFORMED;
                d = (unsigned) (c - nix32_chars);
                out[i] |= (uint8_t) (d << j);
                if (i + 1 < n)
                        out[i + 1] |= (uint8_t) (d >> (8 - j));
                else if (d >> (8 - j))
                        return -RINGIL_EMALFORMED;   /* bits beyond the hash: not a canonical encoding */
        }
        return 0;
}

int nix32_digit(char c) {
        const char *p = c ? strchr(nix32_chars, c) : NULL;

        return p ? (int) (p - nix32_chars) : -1;
}

bool nix_store_path_valid(const char *s) {
        const char *name;
        size_t n;

        if (!s || strncmp(s, "/nix/store/", 11) != 0)
                return false;
        s += 11;
        for (int i = 0; i < 32; i++)
                if (!s[i] || !strchr(nix32_chars, s[i]))
                        return false;
        if (s[32] != '-')
                return false;
        name = s + 33;
        n = strlen(name);
        if (n == 0 || n > 211 || name[0] == '.')
                return false;
        return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+._?=-") == n;
}

void narinfo_done(struct narinfo *ni) {
        if (!ni)
                return;
        free(ni->store_path);
        free(ni->url);
        free(ni->compression);
        for (size_t i = 0; i < ni->n_refs; i++)
                free(ni->refs[i]);
        free(ni->refs);
        for (size_t i = 0; i < ni->n_sigs; i++)
                free(ni->sigs[i]);
        free(ni->deriver);
        free(ni->ca);
        *ni = (struct narinfo) {};
}

int nix_sha256_parse(const char *v, uint8_t out[static 32]) {
        if (strncmp(v, "sha256:", 7) != 0)
                return -RINGIL_EMALFORMED;
        v += 7;
        if (strlen(v) == NIX32_SHA256_LEN)
                return nix32_decode(v, out, 32);
        if (strlen(v) == 64)
                return hex_decode(v, out, 32) < 0 ? -RINGIL_EMALFORMED : 0;
        return -RINGIL_EMALFORMED;
}

int nix_hash_parse(const char *v, uint8_t out[static 32]) {
        if (strncmp(v, "sha256-", 7) == 0)
                return crypto_base64_decode(v + 7, strlen(v + 7), out, 32);
        return nix_sha256_parse(v, out);
}

/* nar/FILE with FILE of [A-Za-z0-9._+-] not starting with '.': no scheme, no directory, no "..". */
static bool url_valid(const char *v) {
        const char *f = v + 4;
        size_t n;

        if (strncmp(v, "nar/", 4) != 0)
                return false;
        n = strlen(f);
        return n > 0 && n <= 160 && f[0] != '.' &&
               strspn(f, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-") == n &&
               !strstr(f, ".part");   /* never collides with our own partial downloads */
}

static bool compression_valid(const char *v) {
        static const char *const known[] = { "none", "xz", "bzip2", "zstd", "br", "lz4", "lzip", "gzip" };

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (streq(v, known[i]))
                        return true;
        return false;
}

/* n bytes (the input is not NUL-terminated: strndup would look past them for one) plus a NUL. */
static char *memdup_str(const char *p, size_t n) {
        char *s = malloc(n + 1);

        if (s) {
                memcpy(s, p, n);
                s[n] = '\0';
        }
        return s;
}

static int set_once(char **dst, const char *v, const char *key, unsigned line) {
        if (*dst)
                return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s given twice", line, key);
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static int parse_refs(struct narinfo *ni, const char *v, unsigned line) {
        if (ni->refs)
                return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: References given twice", line);
        ni->refs = calloc(1, sizeof(char *));   /* present, possibly empty */
        if (!ni->refs)
                return -ENOMEM;
        while (*v) {
                char full[NIX_STORE_PATH_MAX + 1];
                size_t n = strcspn(v, " ");
                char **nr;

                if (n == 0) {
                        v++;
                        continue;
                }
                if (ni->n_refs >= NARINFO_MAX_REFS)
                        return ringil_fail(-RINGIL_ETOOBIG, "narinfo line %u: more than %u references", line,
                                           NARINFO_MAX_REFS);
                if (n > NIX_STORE_PATH_MAX - 11)
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: reference too long", line);
                (void) snprintf(full, sizeof(full), "/nix/store/%.*s", (int) n, v);
                if (!nix_store_path_valid(full))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: reference `%.*s' is not a store path name",
                                           line, (int) MIN(n, (size_t) 80), v);
                nr = reallocarray(ni->refs, ni->n_refs + 2, sizeof(char *));
                if (!nr)
                        return -ENOMEM;
                ni->refs = nr;
                ni->refs[ni->n_refs] = strndup(v, n);
                if (!ni->refs[ni->n_refs])
                        return -ENOMEM;
                ni->n_refs++;
                v += n;
        }
        return 0;
}

static int narinfo_field(struct narinfo *ni, const char *key, const char *v, unsigned line, bool seen[static 4]) {
        if (streq(key, "StorePath")) {
                if (!nix_store_path_valid(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: StorePath is not a store path", line);
                return set_once(&ni->store_path, v, key, line);
        }
        if (streq(key, "URL")) {
                if (!url_valid(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: URL `%.80s' is not nar/FILE", line, v);
                return set_once(&ni->url, v, key, line);
        }
        if (streq(key, "Compression")) {
                if (!compression_valid(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: unknown compression `%.32s'", line, v);
                return set_once(&ni->compression, v, key, line);
        }
        if (streq(key, "FileHash") || streq(key, "NarHash")) {
                bool file = key[0] == 'F';
                if (seen[file ? 0 : 1])
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s given twice", line, key);
                if (nix_sha256_parse(v, file ? ni->file_hash : ni->nar_hash) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s is not sha256:NIX32 or sha256:HEX",
                                           line, key);
                seen[file ? 0 : 1] = true;
                ni->has_file_hash |= file;
                return 0;
        }
        if (streq(key, "FileSize") || streq(key, "NarSize")) {
                bool file = key[0] == 'F';
                if (seen[file ? 2 : 3])
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s given twice", line, key);
                if (parse_u64(v, file ? &ni->file_size : &ni->nar_size) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s `%.32s' is not a number", line,
                                           key, v);
                seen[file ? 2 : 3] = true;
                ni->has_file_size |= file;
                return 0;
        }
        if (streq(key, "References"))
                return parse_refs(ni, v, line);
        if (streq(key, "Sig")) {
                if (ni->n_sigs >= NARINFO_MAX_SIGS)
                        return ringil_fail(-RINGIL_ETOOBIG, "narinfo line %u: more than %u signatures", line,
                                           NARINFO_MAX_SIGS);
                ni->sigs[ni->n_sigs] = strdup(v);
                if (!ni->sigs[ni->n_sigs])
                        return -ENOMEM;
                ni->n_sigs++;
                return 0;
        }
        if (streq(key, "Deriver"))
                return set_once(&ni->deriver, v, key, line);
        if (streq(key, "CA"))
                return set_once(&ni->ca, v, key, line);
        return 0;   /* Nix skips keys it does not know (System, ...) */
}

int narinfo_parse(const char *text, size_t len, struct narinfo *ret) {
        struct narinfo ni = {};
        bool seen[4] = {};   /* FileHash, NarHash, FileSize, NarSize */
        unsigned line = 0;
        size_t pos = 0;
        int r = 0;

        if (len > NARINFO_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "narinfo larger than %u bytes", NARINFO_MAX);
        if (memchr(text, '\0', len))
                return ringil_fail(-RINGIL_EMALFORMED, "narinfo contains a NUL byte");
        while (pos < len && r >= 0) {
                const char *s = text + pos, *nl = memchr(s, '\n', len - pos), *colon;
                size_t n = nl ? (size_t) (nl - s) : len - pos;
                size_t klen, vstart;
                char key[32], *val;

                line++;
                pos += n + (nl ? 1 : 0);
                colon = memchr(s, ':', n);
                klen = colon ? (size_t) (colon - s) : 0;
                /* "Key: value"; "References: " may stop right after the space (or the colon). */
                if (!colon || klen == 0 || klen >= sizeof(key) || (klen + 1 < n && colon[1] != ' ')) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u is not `Key: value'", line);
                        break;
                }
                memcpy(key, s, klen);
                key[klen] = '\0';
                vstart = MIN(klen + 2, n);
                val = memdup_str(s + vstart, n - vstart);
                if (!val) {
                        r = -ENOMEM;
                        break;
                }
                r = narinfo_field(&ni, key, val, line, seen);
                free(val);
        }
        if (r >= 0 && (!ni.store_path || !ni.url || !seen[1] || !seen[3] || ni.nar_size == 0))
                r = ringil_fail(-RINGIL_EMALFORMED, "narinfo lacks one of StorePath, URL, NarHash, NarSize > 0");
        if (r >= 0 && !ni.compression && !(ni.compression = strdup("bzip2")))
                r = -ENOMEM;
        if (r < 0) {
                narinfo_done(&ni);
                return r;
        }
        *ret = ni;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int narinfo_fingerprint(const struct narinfo *ni, char **ret) {
        _cleanup_free_ char **sorted = NULL;
        struct buf b = BUF_INIT(NARINFO_MAX_REFS * (NIX_STORE_PATH_MAX + 1) + 4096);
        char h[NIX32_SHA256_LEN + 1];
        int r;

        nix32_encode(ni->nar_hash, 32, h);
        r = buf_printf(&b, "1;%s;sha256:%s;%" PRIu64 ";", ni->store_path, h, ni->nar_size);
        if (ni->n_refs > 0) {
                sorted = calloc(ni->n_refs, sizeof(char *));
                if (!sorted)
                        r = -ENOMEM;
                else {
                        memcpy(sorted, ni->refs, ni->n_refs * sizeof(char *));
                        qsort(sorted, ni->n_refs, sizeof(char *), cmp_str);
                }
        }
        for (size_t i = 0; r >= 0 && i < ni->n_refs; i++)
                r = buf_printf(&b, "%s/nix/store/%s", i ? "," : "", sorted[i]);
        if (r >= 0)
                r = buf_append(&b, "", 1);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = (char *) buf_steal(&b, NULL);
        return 0;
}

/* Find key `name' (n bytes) in "name:base64 name:base64 ..." and decode its 32 bytes. 1 found, 0 not, < 0 malformed. */
static int find_key(const char *keys, const char *name, size_t n, uint8_t pub[static 32]) {
        const char *k = keys;

        while (*k) {
                size_t len = strcspn(k, " \t\n"), nl;
                const char *colon = memchr(k, ':', len);

                if (len == 0) {
                        k++;
                        continue;
                }
                if (!colon || colon == k)
                        return -RINGIL_EMALFORMED;
                nl = (size_t) (colon - k);
                if (nl == n && memcmp(k, name, n) == 0)
                        return crypto_base64_decode(colon + 1, len - nl - 1, pub, 32) < 0 ? -RINGIL_EMALFORMED : 1;
                k += len;
        }
        return 0;
}

int narinfo_verify(const struct narinfo *ni, const char *trusted_keys) {
        _cleanup_free_ char *fp = NULL;
        bool named = false;
        int r;

        r = narinfo_fingerprint(ni, &fp);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ni->n_sigs; i++) {
                const char *s = ni->sigs[i], *colon = strchr(s, ':');
                uint8_t pub[32], sig[64];

                if (!colon || colon == s)
                        continue;   /* Nix ignores a malformed Sig line too */
                r = find_key(trusted_keys, s, (size_t) (colon - s), pub);
                if (r < 0)
                        return ringil_fail(r, "trusted-public-keys is malformed");
                if (r == 0)
                        continue;
                named = true;
                if (crypto_base64_decode(colon + 1, strlen(colon + 1), sig, 64) < 0)
                        continue;
                if (crypto_ed25519_verify(pub, fp, strlen(fp), sig) == 0)
                        return 0;
        }
        if (named)
                return ringil_fail(-RINGIL_EBADSIG, "narinfo of %s: the signature by a trusted key does not verify",
                                   ni->store_path);
        return ringil_fail(-RINGIL_EUNTRUSTED, "narinfo of %s is not signed by any key in trusted-public-keys",
                           ni->store_path);
}
