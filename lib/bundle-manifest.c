/* bundle-manifest.c: the signed manifest of a bundle: strict JSON parsing with caps, canonical output and
 * the payload type names. */
#include <jansson.h>
#include <string.h>

#include "bundle-internal.h"
#include "bundle.h"
#include "cdc.h"
#include "crypto.h"
#include "err.h"
#include "macro.h"

/* json_decrefp comes from jansson itself. */

static const char *const type_names[] = {
        [BUNDLE_PAYLOAD_RAW] = "raw",
        [BUNDLE_PAYLOAD_EFI] = "efi",
        [BUNDLE_PAYLOAD_NIXOS] = "nixos",
};

const char *bundle_payload_type_to_string(enum bundle_payload_type t) {
        if ((size_t) t >= ELEMENTSOF(type_names))
                return NULL;
        return type_names[t];
}

int bundle_payload_type_from_string(const char *s, enum bundle_payload_type *ret) {
        for (size_t i = 0; i < ELEMENTSOF(type_names); i++)
                if (s && streq(s, type_names[i])) {
                        *ret = (enum bundle_payload_type) i;
                        return 0;
                }
        return -RINGIL_EMALFORMED;
}

void bundle_manifest_free(struct bundle_manifest *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n_payloads; i++) {
                free(m->payloads[i].name);
                free(m->payloads[i].chunk_sha256);
                free(m->payloads[i].store_path);
                free(m->payloads[i].cache_url);
                free(m->payloads[i].chunk_end);
        }
        free(m->payloads);
        free(m->compatible);
        free(m->version);
        free(m->signer);
        free(m);
}

/* Only the listed keys may appear: an unknown key is an error, not something to skip. */
static int check_keys(json_t *obj, const char *const *allowed, size_t n, const char *where) {
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v) {
                size_t i;
                for (i = 0; i < n; i++)
                        if (streq(key, allowed[i]))
                                break;
                if (i == n)
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: unknown key '%.64s' in %s", key, where);
        }
        return 0;
}

static bool char_ok(char c, const char *extra) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr(extra, c));
}

/* A string field: present (unless optional), a JSON string, 1..max bytes from the allowed set. */
static int get_string(json_t *obj, const char *key, size_t max, const char *extra, bool optional, char **ret) {
        json_t *v = json_object_get(obj, key);
        const char *s;
        size_t len;

        if (!v) {
                if (optional) {
                        *ret = NULL;
                        return 0;
                }
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: missing '%s'", key);
        }
        if (!json_is_string(v))
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: '%s' is not a string", key);
        s = json_string_value(v);
        len = json_string_length(v);
        if (len == 0 || len > max || strlen(s) != len)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: '%s' has a bad length", key);
        for (size_t i = 0; i < len; i++)
                if (!char_ok(s[i], extra))
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: '%s' has a bad character", key);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int get_uint_value(json_t *v, const char *key, uint64_t max, uint64_t *ret) {
        json_int_t i;

        if (!json_is_integer(v))
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: '%s' is not an integer", key);
        i = json_integer_value(v);
        if (i < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: '%s' is negative", key);
        if ((uint64_t) i > max)
                return ringil_fail(-RINGIL_ETOOBIG, "manifest: '%s' exceeds its cap", key);
        *ret = (uint64_t) i;
        return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *ret) {
        json_t *v = json_object_get(obj, key);

        if (!v)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: missing '%s'", key);
        return get_uint_value(v, key, max, ret);
}

static int get_hash(json_t *v, const char *what, uint8_t out[static SHA256_LEN]) {
        const char *s;

        if (!json_is_string(v) || json_string_length(v) != 2 * SHA256_LEN)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: %s is not 64 hex digits", what);
        s = json_string_value(v);
        /* Lowercase only, so each hash has exactly one spelling. */
        for (size_t i = 0; i < 2 * SHA256_LEN; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: %s is not lowercase hex", what);
        return hex_decode(s, out, SHA256_LEN);
}

/* SHA-256 of the empty string (e3b0c442…b855). */
static const uint8_t empty_sha256[SHA256_LEN] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

/* A content-defined payload's chunker: {"max":N,"min":N,"avg":N,"type":"gear"}, powers of two. */
static int parse_chunker(json_t *o, struct bundle_payload *p) {
        static const char *const keys[] = { "type", "min", "avg", "max" };
        _cleanup_free_ char *type = NULL;
        uint64_t v[3];
        struct cdc c;
        int r;

        if (!json_is_object(o))
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: chunker of '%s' is not an object", p->name);
        r = check_keys(o, keys, ELEMENTSOF(keys), "chunker");
        if (r >= 0)
                r = get_string(o, "type", 16, "", false, &type);
        if (r >= 0 && !streq(type, CDC_NAME))
                r = ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' has unknown chunker '%s'", p->name, type);
        for (size_t i = 0; r >= 0 && i < 3; i++)
                r = get_uint(o, keys[i + 1], CDC_MAX_SIZE, &v[i]);
        if (r < 0)
                return r;
        if (cdc_init(&c, (uint32_t) v[0], (uint32_t) v[1], (uint32_t) v[2]) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: chunker of '%s' needs powers of two 4 KiB <= min < avg < max <= 64 MiB",
                                   p->name);
        p->cdc = true;
        p->cdc_min = c.min;
        p->cdc_avg = c.avg;
        p->cdc_max = c.max;
        p->chunk_size = c.max;
        return 0;
}

/*
 * The signed sizes of a content-defined payload's chunks: as many as hashes, each in [min, max] but the
 * last in [1, max], adding up to exactly `size`. INVARIANT: the chunk extents tile the payload: no byte
 * unhashed, no byte hashed twice.
 */
static int parse_chunk_sizes(json_t *a, struct bundle_payload *p, size_t n) {
        uint64_t pos = 0;

        if (!json_is_array(a) || json_array_size(a) != n)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' needs one chunk size per chunk hash", p->name);
        if (n > 0) {
                p->chunk_end = calloc(n, sizeof(uint64_t));
                if (!p->chunk_end)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                uint64_t len = 0;   /* -O3 cannot see get_uint_value() set it on success */
                int r = get_uint_value(json_array_get(a, i), "chunk size", p->cdc_max, &len);
                if (r < 0)
                        return r;
                if (len == 0 || (len < p->cdc_min && i + 1 < n))
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' chunk %zu has size %llu outside [min, max]",
                                           p->name, i, (unsigned long long) len);
                pos += len;   /* n <= 131072 chunks of <= 64 MiB: no overflow */
                p->chunk_end[i] = pos;
        }
        if (pos != p->size)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: chunk sizes of '%s' add up to %llu, size is %llu", p->name,
                                   (unsigned long long) pos, (unsigned long long) p->size);
        return 0;
}

static int parse_payload(json_t *o, uint32_t format, struct bundle_payload *p, uint64_t *chunks_left) {
        static const char *const keys[] = { "name", "type", "size", "sha256", "chunk_size", "chunks",
                                            "store_path", "cache_url", "chunker", "chunk_sizes" };
        _cleanup_free_ char *type = NULL;
        uint64_t cs, size;
        json_t *chunks, *chunker;
        int r;

        if (!json_is_object(o))
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload is not an object");
        /* Format 1 knows the first eight keys only; format 2 adds content-defined chunking. */
        r = check_keys(o, keys, format >= BUNDLE_FORMAT_CDC ? ELEMENTSOF(keys) : ELEMENTSOF(keys) - 2, "payload");
        if (r < 0)
                return r;
        r = get_string(o, "name", BUNDLE_MAX_NAME, "._-", false, &p->name);
        if (r < 0)
                return r;
        r = get_string(o, "type", 16, "", false, &type);
        if (r < 0)
                return r;
        if (bundle_payload_type_from_string(type, &p->type) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' has unknown type '%s'", p->name, type);
        chunker = json_object_get(o, "chunker");
        if (chunker) {
                /* Content-defined: the chunker, and the chunk sizes instead of one chunk_size. */
                if (json_object_get(o, "chunk_size") || !json_object_get(o, "chunk_sizes"))
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' with a chunker needs chunk_sizes and no chunk_size",
                                           p->name);
                r = parse_chunker(chunker, p);
                if (r < 0)
                        return r;
        } else {
                if (json_object_get(o, "chunk_sizes"))
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' has chunk_sizes but no chunker", p->name);
                r = get_uint(o, "chunk_size", BUNDLE_MAX_CHUNK_SIZE, &cs);
                if (r < 0)
                        return r;
                if (cs < BUNDLE_MIN_CHUNK_SIZE || (cs & (cs - 1)) != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' chunk_size %llu is not a power of two in [4 KiB, 64 MiB]",
                                           p->name, (unsigned long long) cs);
                p->chunk_size = (uint32_t) cs;
        }
        /* INVARIANT: size is a full u64 and bounded by what the chunk list can cover, so no length
         * is ever truncated (RAUC CVE-2026-34155) and an "endless" size is refused before any read. */
        r = get_uint(o, "size", (uint64_t) BUNDLE_MAX_CHUNK_SIZE * BUNDLE_MAX_CHUNKS, &size);
        if (r < 0)
                return r;
        p->size = size;
        if (p->cdc) {
                /* The count comes from the list; parse_chunk_sizes() checks it tiles `size`. */
                chunks = json_object_get(o, "chunks");
                p->n_chunks = json_is_array(chunks) ? json_array_size(chunks) : 0;
                if (size > (uint64_t) p->cdc_max * BUNDLE_MAX_CHUNKS)
                        return ringil_fail(-RINGIL_ETOOBIG, "manifest: 'size' exceeds its cap");
        } else
                p->n_chunks = bundle_chunks_for(size, p->chunk_size);
        if (p->n_chunks > *chunks_left)
                return ringil_fail(-RINGIL_ETOOBIG, "manifest: more than %u chunks in total", BUNDLE_MAX_CHUNKS);
        r = get_hash(json_object_get(o, "sha256"), "payload sha256", p->sha256);
        if (r < 0)
                return r;
        /* INVARIANT: an empty payload has no chunks and exactly the SHA-256 of the empty string. The
         * verifier of a file checks chunk hashes only, so with no chunk nothing else would bind this
         * field to the bytes (none). */
        if (size == 0 && (p->n_chunks != 0 || memcmp(p->sha256, empty_sha256, SHA256_LEN) != 0))
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: empty payload '%s' must have no chunks and the SHA-256 of \"\"",
                                   p->name);
        chunks = json_object_get(o, "chunks");
        if (!json_is_array(chunks))
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' has no chunk list", p->name);
        /* INVARIANT: the chunk list covers exactly ceil(size/chunk_size) chunks: no byte unhashed,
         * no hash without bytes. */
        if (json_array_size(chunks) != p->n_chunks)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' lists %zu chunk hashes, size needs %llu",
                                   p->name, json_array_size(chunks), (unsigned long long) p->n_chunks);
        *chunks_left -= p->n_chunks;
        if (p->n_chunks > 0) {
                p->chunk_sha256 = calloc(p->n_chunks, SHA256_LEN);
                if (!p->chunk_sha256)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_chunks; i++) {
                r = get_hash(json_array_get(chunks, i), "chunk hash", p->chunk_sha256[i]);
                if (r < 0)
                        return r;
        }
        if (p->cdc) {
                r = parse_chunk_sizes(json_object_get(o, "chunk_sizes"), p, p->n_chunks);
                if (r < 0)
                        return r;
        }
        r = get_string(o, "store_path", BUNDLE_MAX_STORE_PATH, "/._+-", true, &p->store_path);
        if (r < 0)
                return r;
        r = get_string(o, "cache_url", BUNDLE_MAX_URL, ":/._~%?&=+-@", true, &p->cache_url);
        if (r < 0)
                return r;
        if (p->type == BUNDLE_PAYLOAD_NIXOS) {
                if (!p->store_path || strncmp(p->store_path, "/nix/store/", 11) != 0 || strstr(p->store_path, "/../") ||
                    strchr(p->store_path + 11, '/'))
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: nixos payload '%s' needs a /nix/store/… store_path", p->name);
                if (p->cache_url && strncmp(p->cache_url, "https://", 8) != 0 && strncmp(p->cache_url, "http://", 7) != 0 &&
                    strncmp(p->cache_url, "file://", 7) != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest: cache_url of '%s' is not an http(s)/file URL", p->name);
        } else if (p->store_path || p->cache_url)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: store_path/cache_url on non-nixos payload '%s'", p->name);
        else if (p->size == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: payload '%s' is empty", p->name);
        return 0;
}

int bundle_manifest_parse(const uint8_t *data, size_t len, struct bundle_manifest **ret) {
        static const char *const keys[] = { "format", "compatible", "version", "created", "expires", "payloads" };
        _cleanup_(bundle_manifest_freep) struct bundle_manifest *m = NULL;
        _cleanup_(json_decrefp) json_t *root = NULL;
        uint64_t u, chunks_left = BUNDLE_MAX_CHUNKS;
        bool have_cdc = false;
        json_error_t err;
        json_t *payloads;
        int r;

        if (len > BUNDLE_MAX_MANIFEST)
                return ringil_fail(-RINGIL_ETOOBIG, "manifest larger than %u bytes", BUNDLE_MAX_MANIFEST);
        /* Duplicate keys are the classic parser-differential trick: refuse them. NUL in strings is
         * refused by jansson unless JSON_ALLOW_NUL, which we do not pass. */
        root = json_loadb((const char *) data, len, JSON_REJECT_DUPLICATES, &err);
        if (!root)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: JSON error at byte %d: %.100s", err.position, err.text);
        if (!json_is_object(root))
                return ringil_fail(-RINGIL_EMALFORMED, "manifest is not a JSON object");
        r = check_keys(root, keys, ELEMENTSOF(keys), "manifest");
        if (r < 0)
                return r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        r = get_uint(root, "format", UINT32_MAX, &u);
        if (r < 0)
                return r;
        if (u != BUNDLE_FORMAT && u != BUNDLE_FORMAT_CDC)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: unsupported format %llu", (unsigned long long) u);
        m->format = (uint32_t) u;
        r = get_string(root, "compatible", BUNDLE_MAX_COMPATIBLE, "._:+-", false, &m->compatible);
        if (r < 0)
                return r;
        r = get_string(root, "version", BUNDLE_MAX_VERSION, ".", false, &m->version);
        if (r < 0)
                return r;
        if (version_valid(m->version) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: version '%s' is not dot-numeric", m->version);
        r = get_uint(root, "created", INT64_MAX, &u);
        if (r < 0)
                return r;
        m->created = (int64_t) u;
        r = get_uint(root, "expires", INT64_MAX, &u);
        if (r < 0)
                return r;
        m->expires = (int64_t) u;
        if (m->expires <= m->created)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: expires is not after created");

        payloads = json_object_get(root, "payloads");
        if (!json_is_array(payloads) || json_array_size(payloads) == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: 'payloads' is not a non-empty array");
        if (json_array_size(payloads) > BUNDLE_MAX_PAYLOADS)
                return ringil_fail(-RINGIL_ETOOBIG, "manifest: more than %u payloads", BUNDLE_MAX_PAYLOADS);
        m->payloads = calloc(json_array_size(payloads), sizeof(*m->payloads));
        if (!m->payloads)
                return -ENOMEM;
        /* Format 2 only where it is needed: a format-2 manifest must use content-defined chunking, so
         * that a bundle older drones could install is never labelled one they refuse. */
        for (size_t i = 0; i < json_array_size(payloads); i++) {
                m->n_payloads = i + 1;   /* so the cleanup frees what this entry allocated */
                r = parse_payload(json_array_get(payloads, i), m->format, &m->payloads[i], &chunks_left);
                if (r < 0)
                        return r;
                if (m->payloads[i].cdc)
                        have_cdc = true;
                for (size_t j = 0; j < i; j++)
                        if (streq(m->payloads[j].name, m->payloads[i].name))
                                return ringil_fail(-RINGIL_EMALFORMED, "manifest: duplicate payload name '%s'", m->payloads[i].name);
        }
        if (m->format == BUNDLE_FORMAT_CDC && !have_cdc)
                return ringil_fail(-RINGIL_EMALFORMED, "manifest: format 2 without a content-defined payload");
        /* INVARIANT: one manifest, one byte string: the bytes must be exactly the canonical form
         * (compact, sorted keys, as bundle_create writes), so no two encodings mean the same thing. */
        {
                _cleanup_free_ char *canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
                if (!canon)
                        return -ENOMEM;
                if (strlen(canon) != len || memcmp(canon, data, len) != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "manifest is not in canonical form");
        }
        r = crypto_sha256(data, len, m->digest);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int bundle_manifest_format(const struct bundle_manifest *m, char **ret, size_t *ret_len) {
        _cleanup_(json_decrefp) json_t *root = json_object(), *payloads = json_array();
        char hex[2 * SHA256_LEN + 1];
        char *s;

        if (!root || !payloads)
                return -ENOMEM;
        if (json_object_set_new(root, "format", json_integer(m->format)) < 0 ||
            json_object_set_new(root, "compatible", json_string(m->compatible)) < 0 ||
            json_object_set_new(root, "version", json_string(m->version)) < 0 ||
            json_object_set_new(root, "created", json_integer(m->created)) < 0 ||
            json_object_set_new(root, "expires", json_integer(m->expires)) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_payloads; i++) {
                const struct bundle_payload *p = &m->payloads[i];
                _cleanup_(json_decrefp) json_t *o = json_object(), *chunks = json_array(), *sizes = NULL;

                if (!o || !chunks)
                        return -ENOMEM;
                if (p->cdc) {
                        sizes = json_array();
                        if (!sizes)
                                return -ENOMEM;
                        for (uint64_t c = 0; c < p->n_chunks; c++)
                                if (json_array_append_new(sizes, json_integer((json_int_t) bundle_chunk_len(p, c))) < 0)
                                        return -ENOMEM;
                        if (json_object_set(o, "chunk_sizes", sizes) < 0 ||
                            json_object_set_new(o, "chunker", json_pack("{s:s, s:I, s:I, s:I}", "type", CDC_NAME,
                                                                        "min", (json_int_t) p->cdc_min, "avg",
                                                                        (json_int_t) p->cdc_avg, "max",
                                                                        (json_int_t) p->cdc_max)) < 0)
                                return -ENOMEM;
                } else if (json_object_set_new(o, "chunk_size", json_integer(p->chunk_size)) < 0)
                        return -ENOMEM;
                if (p->size > (uint64_t) INT64_MAX)
                        return -EOVERFLOW;
                for (uint64_t c = 0; c < p->n_chunks; c++)
                        if (json_array_append_new(chunks, json_string(hex_encode(p->chunk_sha256[c], SHA256_LEN, hex))) < 0)
                                return -ENOMEM;
                if (json_object_set_new(o, "name", json_string(p->name)) < 0 ||
                    json_object_set_new(o, "type", json_string(bundle_payload_type_to_string(p->type))) < 0 ||
                    json_object_set_new(o, "size", json_integer((json_int_t) p->size)) < 0 ||
                    json_object_set_new(o, "sha256", json_string(hex_encode(p->sha256, SHA256_LEN, hex))) < 0 ||
                    json_object_set(o, "chunks", chunks) < 0)
                        return -ENOMEM;
                if (p->store_path && json_object_set_new(o, "store_path", json_string(p->store_path)) < 0)
                        return -ENOMEM;
                if (p->cache_url && json_object_set_new(o, "cache_url", json_string(p->cache_url)) < 0)
                        return -ENOMEM;
                if (json_array_append(payloads, o) < 0)
                        return -ENOMEM;
        }
        if (json_object_set(root, "payloads", payloads) < 0)
                return -ENOMEM;
        s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;
        *ret_len = strlen(s);
        *ret = s;
        return 0;
}
