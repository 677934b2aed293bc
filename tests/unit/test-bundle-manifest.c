/* test-bundle-manifest.c: the manifest parser (canonical form only, strict fields, sizes and chunk counts,
 * caps, nixos payloads), the canonical writer against a golden, and the payload type names. */
#include <jansson.h>

#include "tests.h"

#include "bundle-internal.h"
#include "bundle.h"
#include "crypto.h"
#include "err.h"
#include "macro.h"

static const char HASH0[] = "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- manifest parser ---- */

static char *manifest_with(const char *payload_fields, const char *top_extra) {
        char *s;
        if (asprintf(&s,
                     "{\"format\":1,\"compatible\":\"drone-x\",\"version\":\"1.0\",\"created\":100,\"expires\":200%s,"
                     "\"payloads\":[{\"name\":\"root\",\"type\":\"raw\",%s}]}",
                     top_extra, payload_fields) < 0)
                return NULL;
        return s;
}

/* The parser insists on the canonical form; tests write readable JSON and canonicalize it here,
 * unless it does not even load (then the raw text goes in, and must fail). */
static char *canonical(const char *s) {
        json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
        char *c;

        if (!j)
                return strdup(s);
        c = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        return c;
}

static int parse_str(const char *raw) {
        struct bundle_manifest *m = NULL;
        _cleanup_free_ char *s = canonical(raw);
        int r;

        assert_non_null(s);
        r = bundle_manifest_parse((const uint8_t *) s, strlen(s), &m);
        if (r >= 0) {
                assert_non_null(m);
                bundle_manifest_free(m);
        }
        return r;
}

#define OKPAYLOAD(size, cs, chunks) "\"size\":" size ",\"chunk_size\":" cs ",\"sha256\":\"%s\",\"chunks\":[" chunks "]"

static int parse_payload(const char *fmt, const char *top_extra) {
        _cleanup_free_ char *fields = NULL, *m = NULL;
        /* fmt is one of this file's literals with %s slots filled with HASH0 (at most 4) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        if (asprintf(&fields, fmt, HASH0, HASH0, HASH0, HASH0) < 0)
                return -ENOMEM;
#pragma GCC diagnostic pop
        m = manifest_with(fields, top_extra);
        return parse_str(m);
}

static void test_manifest_ok(void **state) {
        struct bundle_manifest *m = NULL;
        _cleanup_free_ char *fields = NULL, *s = NULL;
        (void) state;

        assert_true(asprintf(&fields, OKPAYLOAD("5000", "4096", "\"%s\",\"%s\""), HASH0, HASH0, HASH0) > 0);
        s = manifest_with(fields, "");
        /* not canonical as written (key order) */
        assert_int_equal(bundle_manifest_parse((const uint8_t *) s, strlen(s), &m), -RINGIL_EMALFORMED);
        {
                char *c = canonical(s);
                free(s);
                s = c;
        }
        assert_int_equal(bundle_manifest_parse((const uint8_t *) s, strlen(s), &m), 0);
        assert_int_equal(m->n_payloads, 1);
        assert_int_equal(m->payloads[0].size, 5000);
        assert_int_equal(m->payloads[0].n_chunks, 2);
        assert_int_equal(m->payloads[0].chunk_size, 4096);
        assert_int_equal(m->created, 100);
        assert_int_equal(m->expires, 200);
        assert_string_equal(m->version, "1.0");
        bundle_manifest_free(m);
}

static void test_manifest_chunk_count(void **state) {
        (void) state;
        /* exactly ceil(size/chunk_size) hashes: one too few, one too many, both refused */
        assert_int_equal(parse_payload(OKPAYLOAD("5000", "4096", "\"%s\""), ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("5000", "4096", "\"%s\",\"%s\",\"%s\""), ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("4096", "4096", "\"%s\""), ""), 0);
        assert_int_equal(parse_payload(OKPAYLOAD("4097", "4096", "\"%s\""), ""), -RINGIL_EMALFORMED);
        /* a raw payload may not be empty */
        assert_int_equal(parse_payload(OKPAYLOAD("0", "4096", ""), ""), -RINGIL_EMALFORMED);
}

/*
 * Canonical manifest bytes written out by hand (sorted keys, compact), fed to the parser as they are, so
 * that each refusal comes from the rule under test and not from canonicalization. top_before goes between
 * "compatible" and "created", top_after between "format" and "payloads"; payload holds the payload's keys.
 */
static char *canon_manifest(const char *top_before, const char *top_after, const char *payload) {
        char *s;
        if (asprintf(&s, "{\"compatible\":\"drone-x\",%s\"created\":100,\"expires\":200,\"format\":1,%s\"payloads\":[{%s}],\"version\":\"1.0\"}",
                     top_before, top_after, payload) < 0)
                return NULL;
        return s;
}

/* Parse exactly these bytes; the result must be want and, on failure, the detail must contain why. */
static void expect_parse(const char *bytes, int want, const char *why) {
        struct bundle_manifest *m = NULL;
        int r;

        assert_non_null(bytes);
        ringil_clear_detail();
        r = bundle_manifest_parse((const uint8_t *) bytes, strlen(bytes), &m);
        if (r != want || (why && !strstr(ringil_detail(), why)))
                fprintf(stderr, "# %.160s\n#  -> %d (%s), want %d (%s)\n", bytes, r, ringil_detail(), want, why ? why : "");
        assert_int_equal(r, want);
        if (why)
                assert_non_null(strstr(ringil_detail(), why));
        if (r >= 0)
                bundle_manifest_free(m);
        else
                assert_null(m);
}

#define CPAYLOAD(cs, size, chunks) "\"chunk_size\":" cs ",\"chunks\":[" chunks "],\"name\":\"root\",\"sha256\":\"%s\",\"size\":" size ",\"type\":\"raw\""

/* A canonical one-payload manifest with a payload of these fields; %s in fields gets HASH0. */
static char *canon_with_payload(const char *fields) {
        _cleanup_free_ char *p = NULL;
        /* fields is one of this file's literals with %s slots for HASH0 (at most 4) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        if (asprintf(&p, fields, HASH0, HASH0, HASH0, HASH0) < 0)
                return NULL;
#pragma GCC diagnostic pop
        return canon_manifest("", "", p);
}

static void test_manifest_sizes(void **state) {
        (void) state;
        /* control: the canonical template itself parses */
        {
                _cleanup_free_ char *ok = canon_with_payload(CPAYLOAD("4096", "100", "\"%s\""));
                expect_parse(ok, 0, NULL);
        }
        /* Endless data: a size the chunk list could never cover is refused by the size cap, before
         * anything is allocated for chunks. Each value here is an integer jansson reads fine. */
        {
                _cleanup_free_ char *a = canon_with_payload(CPAYLOAD("67108864", "8796093022209", "\"%s\""));   /* cap + 1 */
                _cleanup_free_ char *b = canon_with_payload(CPAYLOAD("4096", "8796093022209", "\"%s\""));
                _cleanup_free_ char *c = canon_with_payload(CPAYLOAD("4096", "9223372036854775807", "\"%s\""));
                _cleanup_free_ char *at_cap = canon_with_payload(CPAYLOAD("67108864", "8796093022208", "\"%s\""));
                /* just over what 4 KiB chunks can cover within the chunk cap (131073 chunks) */
                _cleanup_free_ char *d = canon_with_payload(CPAYLOAD("4096", "536870913", "\"%s\""));
                expect_parse(a, -RINGIL_ETOOBIG, "'size' exceeds its cap");
                expect_parse(b, -RINGIL_ETOOBIG, "'size' exceeds its cap");
                expect_parse(c, -RINGIL_ETOOBIG, "'size' exceeds its cap");
                /* at the cap the size is fine; the chunk list (131072 hashes needed) is what fails */
                expect_parse(at_cap, -RINGIL_EMALFORMED, "lists 1 chunk hashes, size needs 131072");
                expect_parse(d, -RINGIL_ETOOBIG, "more than 131072 chunks");
        }
        /* beyond INT64 jansson itself refuses the number (it never reaches the size rule) */
        {
                _cleanup_free_ char *e = canon_with_payload(CPAYLOAD("4096", "18446744073709551615", "\"%s\""));
                expect_parse(e, -RINGIL_EMALFORMED, "JSON error");
        }
        /* a payload over 4 GiB is fine when the chunk list covers it (no 32-bit truncation) */
        assert_int_equal(parse_payload(OKPAYLOAD("4294967297", "67108864", "\"%s\"" ), ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("-1", "4096", "\"%s\""), ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("1.0", "4096", "\"%s\""), ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("\"1\"", "4096", "\"%s\""), ""), -RINGIL_EMALFORMED);
        /* chunk sizes: powers of two in [4 KiB, 64 MiB] */
        assert_int_equal(parse_payload(OKPAYLOAD("100", "2048", "\"%s\""), ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("100", "6144", "\"%s\""), ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("100", "134217728", "\"%s\""), ""), -RINGIL_ETOOBIG);
        assert_int_equal(parse_payload(OKPAYLOAD("100", "0", "\"%s\""), ""), -RINGIL_EMALFORMED);
}

static void test_manifest_4g(void **state) {
        struct bundle_manifest *m = NULL;
        _cleanup_free_ char *fields = NULL, *s = NULL;
        (void) state;

        /* 4 GiB + 1 in 64 MiB chunks = 65 chunks */
        struct buf b = BUF_INIT(1 << 20);
        assert_int_equal(buf_printf(&b, "\"size\":4294967297,\"chunk_size\":67108864,\"sha256\":\"%s\",\"chunks\":[", HASH0), 0);
        for (int i = 0; i < 65; i++)
                assert_int_equal(buf_printf(&b, "%s\"%s\"", i ? "," : "", HASH0), 0);
        assert_int_equal(buf_append_str(&b, "]"), 0);
        s = manifest_with((char *) b.data, "");
        buf_free(&b);
        {
                char *c = canonical(s);
                free(s);
                s = c;
        }
        assert_int_equal(bundle_manifest_parse((const uint8_t *) s, strlen(s), &m), 0);
        assert_true(m->payloads[0].size == 4294967297ULL);
        assert_int_equal(m->payloads[0].n_chunks, 65);
        bundle_manifest_free(m);
        (void) fields;
}

static void test_manifest_strictness(void **state) {
        (void) state;
        /* unknown key, wrong types, bad hashes */
        assert_int_equal(parse_payload(OKPAYLOAD("100", "4096", "\"%s\""), ",\"extra\":1"), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload(OKPAYLOAD("100", "4096", "\"%s\"") ",\"bogus\":true", ""), -RINGIL_EMALFORMED);
        /* unknown keys in canonical position: refused by the key list, not by canonical form */
        {
                _cleanup_free_ char *fields = NULL, *top = NULL;
                _cleanup_free_ char *pl = canon_with_payload("\"bogus\":true," CPAYLOAD("4096", "100", "\"%s\""));
                assert_true(asprintf(&fields, CPAYLOAD("4096", "100", "\"%s\""), HASH0, HASH0) > 0);
                top = canon_manifest("", "\"extra\":1,", fields);
                expect_parse(top, -RINGIL_EMALFORMED, "unknown key 'extra' in manifest");
                expect_parse(pl, -RINGIL_EMALFORMED, "unknown key 'bogus' in payload");
        }
        /* Duplicate keys, otherwise canonical: jansson's JSON_REJECT_DUPLICATES must refuse them (without
         * it the last value would win and only the length check of the canonical form would notice). */
        {
                _cleanup_free_ char *fields = NULL, *dup_top = NULL, *dup_pl = NULL;
                assert_true(asprintf(&fields, CPAYLOAD("4096", "100", "\"%s\""), HASH0, HASH0) > 0);
                dup_top = canon_manifest("\"created\":100,", "", fields);
                free(fields);
                assert_true(asprintf(&fields, "\"chunk_size\":4096,\"chunks\":[\"%s\"],\"name\":\"root\",\"sha256\":\"%s\","
                                              "\"size\":100,\"size\":100,\"type\":\"raw\"", HASH0, HASH0) > 0);
                dup_pl = canon_manifest("", "", fields);
                expect_parse(dup_top, -RINGIL_EMALFORMED, "duplicate object key");
                expect_parse(dup_pl, -RINGIL_EMALFORMED, "duplicate object key");
        }
        assert_int_equal(parse_str("[]"), -RINGIL_EMALFORMED);
        assert_int_equal(parse_str(""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_str("{\"format\":1}"), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload("\"size\":100,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":[\"ABCDEF0000000000000000000000000000000000000000000000000000000000\"]", ""),
                         -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload("\"size\":100,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":[\"00\"]", ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload("\"size\":100,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":[1]", ""), -RINGIL_EMALFORMED);
        assert_int_equal(parse_payload("\"size\":100,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":\"%s\"", ""), -RINGIL_EMALFORMED);
        /* trailing garbage after the object */
        {
                _cleanup_free_ char *fields = NULL, *m = NULL, *m2 = NULL;
                assert_true(asprintf(&fields, OKPAYLOAD("100", "4096", "\"%s\""), HASH0, HASH0) > 0);
                m = manifest_with(fields, "");
                assert_int_equal(parse_str(m), 0);
                assert_true(asprintf(&m2, "%s x", m) > 0);
                assert_int_equal(parse_str(m2), -RINGIL_EMALFORMED);
                /* an embedded NUL in the buffer */
                assert_int_equal(bundle_manifest_parse((const uint8_t *) m, strlen(m) + 1, &(struct bundle_manifest *){ NULL }),
                                 -RINGIL_EMALFORMED);
        }
        /* Top-level rules, each case otherwise valid (one good payload, canonical bytes), so each fails
         * for its own reason: the detail names it. The first row is the control. */
        {
                static const struct {
                        const char *compatible, *created, *expires, *format, *version;
                        int want;
                        const char *why;
                } cases[] = {
                        { "\"x\"", "1", "200", "1", "\"1\"", 0, NULL },
                        { "\"x\"", "200", "200", "1", "\"1\"", -RINGIL_EMALFORMED, "expires is not after created" },
                        { "\"x\"", "201", "200", "1", "\"1\"", -RINGIL_EMALFORMED, "expires is not after created" },
                        { "\"x\"", "1", "200", "3", "\"1\"", -RINGIL_EMALFORMED, "unsupported format 3" },
                        { "\"x\"", "1", "200", "2", "\"1\"", -RINGIL_EMALFORMED, "format 2 without a content-defined payload" },
                        { "\"x\"", "1", "200", "0", "\"1\"", -RINGIL_EMALFORMED, "unsupported format 0" },
                        { "\"x\"", "1", "200", "\"1\"", "\"1\"", -RINGIL_EMALFORMED, "'format' is not an integer" },
                        { "\"x\"", "1", "200", "1", "\"1a\"", -RINGIL_EMALFORMED, "version '1a' is not dot-numeric" },
                        { "\"x\"", "1", "200", "1", "\"1..2\"", -RINGIL_EMALFORMED, "version '1..2' is not dot-numeric" },
                        { "\"x\"", "1", "200", "1", "\"1-2\"", -RINGIL_EMALFORMED, "'version' has a bad character" },
                        { "\"x\"", "1", "200", "1", "1", -RINGIL_EMALFORMED, "'version' is not a string" },
                        { "\"x y\"", "1", "200", "1", "\"1\"", -RINGIL_EMALFORMED, "'compatible' has a bad character" },
                        { "\"\"", "1", "200", "1", "\"1\"", -RINGIL_EMALFORMED, "'compatible' has a bad length" },
                        { "\"x\"", "-1", "200", "1", "\"1\"", -RINGIL_EMALFORMED, "'created' is negative" },
                        { "\"x\"", "1", "-5", "1", "\"1\"", -RINGIL_EMALFORMED, "'expires' is negative" },
                        { "\"x\"", "1.5", "200", "1", "\"1\"", -RINGIL_EMALFORMED, "'created' is not an integer" },
                };
                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        _cleanup_free_ char *m = NULL;
                        assert_true(asprintf(&m,
                                             "{\"compatible\":%s,\"created\":%s,\"expires\":%s,\"format\":%s,\"payloads\":[{\"chunk_size\":4096,"
                                             "\"chunks\":[\"%s\"],\"name\":\"root\",\"sha256\":\"%s\",\"size\":100,\"type\":\"raw\"}],\"version\":%s}",
                                             cases[i].compatible, cases[i].created, cases[i].expires, cases[i].format, HASH0, HASH0,
                                             cases[i].version) > 0);
                        expect_parse(m, cases[i].want, cases[i].why);
                }
        }
        /* an empty or missing payload list, with everything else valid */
        expect_parse("{\"compatible\":\"x\",\"created\":1,\"expires\":200,\"format\":1,\"payloads\":[],\"version\":\"1\"}",
                     -RINGIL_EMALFORMED, "'payloads' is not a non-empty array");
        expect_parse("{\"compatible\":\"x\",\"created\":1,\"expires\":200,\"format\":1,\"version\":\"1\"}", -RINGIL_EMALFORMED,
                     "'payloads' is not a non-empty array");
}

static void test_manifest_nixos(void **state) {
        (void) state;
        const char *ok = "{\"format\":1,\"compatible\":\"x\",\"version\":\"1\",\"created\":1,\"expires\":2,\"payloads\":[{\"name\":\"sys\","
                         "\"type\":\"nixos\",\"size\":0,\"chunk_size\":4096,\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
                         "\"chunks\":[],\"store_path\":\"/nix/store/abc-nixos-system\",\"cache_url\":\"https://cache.example/x\"}]}";
        const char *no_path = "{\"format\":1,\"compatible\":\"x\",\"version\":\"1\",\"created\":1,\"expires\":2,\"payloads\":[{\"name\":\"sys\","
                              "\"type\":\"nixos\",\"size\":0,\"chunk_size\":4096,\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
                              "\"chunks\":[]}]}";
        const char *escape = "{\"format\":1,\"compatible\":\"x\",\"version\":\"1\",\"created\":1,\"expires\":2,\"payloads\":[{\"name\":\"sys\","
                             "\"type\":\"nixos\",\"size\":0,\"chunk_size\":4096,\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
                             "\"chunks\":[],\"store_path\":\"/nix/store/../etc\"}]}";
        assert_int_equal(parse_str(ok), 0);
        /* size 0: the digest must be the SHA-256 of "" (nothing else binds it: there is no chunk) */
        {
                _cleanup_free_ char *wrong = NULL;
                _cleanup_free_ char *c = NULL;
                assert_true(asprintf(&wrong, "{\"format\":1,\"compatible\":\"x\",\"version\":\"1\",\"created\":1,\"expires\":2,\"payloads\":[{\"name\":\"sys\","
                                             "\"type\":\"nixos\",\"size\":0,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":[],"
                                             "\"store_path\":\"/nix/store/abc-nixos-system\"}]}", HASH0) > 0);
                c = canonical(wrong);
                expect_parse(c, -RINGIL_EMALFORMED, "empty payload 'sys' must have no chunks and the SHA-256");
        }
        assert_int_equal(parse_str(no_path), -RINGIL_EMALFORMED);
        assert_int_equal(parse_str(escape), -RINGIL_EMALFORMED);
        /* store_path on a raw payload is refused */
        assert_int_equal(parse_payload(OKPAYLOAD("100", "4096", "\"%s\"") ",\"store_path\":\"/nix/store/a\"", ""), -RINGIL_EMALFORMED);
        /* unknown type */
        {
                _cleanup_free_ char *s = NULL;
                assert_true(asprintf(&s, "{\"format\":1,\"compatible\":\"x\",\"version\":\"1\",\"created\":1,\"expires\":2,\"payloads\":[{\"name\":\"a\","
                                         "\"type\":\"tar\",\"size\":1,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":[\"%s\"]}]}", HASH0, HASH0) > 0);
                assert_int_equal(parse_str(s), -RINGIL_EMALFORMED);
        }
}

static void test_manifest_caps(void **state) {
        (void) state;
        /* more than BUNDLE_MAX_PAYLOADS payloads */
        struct buf b = BUF_INIT(1 << 22);
        assert_int_equal(buf_append_str(&b, "{\"format\":1,\"compatible\":\"x\",\"version\":\"1\",\"created\":1,\"expires\":2,\"payloads\":["), 0);
        for (unsigned i = 0; i <= BUNDLE_MAX_PAYLOADS; i++)
                assert_int_equal(buf_printf(&b, "%s{\"name\":\"p%u\",\"type\":\"raw\",\"size\":1,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":[\"%s\"]}",
                                            i ? "," : "", i, HASH0, HASH0), 0);
        assert_int_equal(buf_append_str(&b, "]}"), 0);
        assert_int_equal(parse_str((char *) b.data), -RINGIL_ETOOBIG);
        buf_free(&b);
        /* duplicate payload names */
        b = BUF_INIT(1 << 16);
        assert_int_equal(buf_append_str(&b, "{\"format\":1,\"compatible\":\"x\",\"version\":\"1\",\"created\":1,\"expires\":2,\"payloads\":["), 0);
        for (unsigned i = 0; i < 2; i++)
                assert_int_equal(buf_printf(&b, "%s{\"name\":\"p\",\"type\":\"raw\",\"size\":1,\"chunk_size\":4096,\"sha256\":\"%s\",\"chunks\":[\"%s\"]}",
                                            i ? "," : "", HASH0, HASH0), 0);
        assert_int_equal(buf_append_str(&b, "]}"), 0);
        assert_int_equal(parse_str((char *) b.data), -RINGIL_EMALFORMED);
        buf_free(&b);
        /* manifest over the byte cap is refused before parsing */
        assert_int_equal(bundle_manifest_parse((const uint8_t *) "{}", (size_t) BUNDLE_MAX_MANIFEST + 1, &(struct bundle_manifest *){ NULL }),
                         -RINGIL_ETOOBIG);
}

/* ---- canonical writer ---- */

/* The exact bytes a signer writes: compact, keys sorted, lowercase hex, optional keys only when set. */
static void test_format_golden(void **state) {
        static const char want[] =
                "{\"compatible\":\"drone-x\",\"created\":1700000000,\"expires\":1800000000,\"format\":1,\"payloads\":["
                "{\"chunk_size\":4096,\"chunks\":[\"0101010101010101010101010101010101010101010101010101010101010101\","
                "\"0202020202020202020202020202020202020202020202020202020202020202\"],\"name\":\"root\",\"sha256\":"
                "\"abababababababababababababababababababababababababababababababab\",\"size\":5000,\"type\":\"raw\"},"
                "{\"cache_url\":\"https://cache.example/x\",\"chunk_size\":1048576,\"chunks\":[],\"name\":\"sys\","
                "\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\"size\":0,"
                "\"store_path\":\"/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0\",\"type\":\"nixos\"}],"
                "\"version\":\"1.2.10\"}";
        uint8_t chunks[2][SHA256_LEN];
        struct bundle_payload p[2] = {
                { .name = (char *) "root", .type = BUNDLE_PAYLOAD_RAW, .size = 5000, .chunk_size = 4096, .n_chunks = 2,
                  .chunk_sha256 = chunks },
                { .name = (char *) "sys", .type = BUNDLE_PAYLOAD_NIXOS, .size = 0, .chunk_size = 1u << 20,
                  .store_path = (char *) "/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0",
                  .cache_url = (char *) "https://cache.example/x" },
        };
        struct bundle_manifest m = { .format = 1, .compatible = (char *) "drone-x", .version = (char *) "1.2.10",
                                     .created = 1700000000, .expires = 1800000000, .n_payloads = 2, .payloads = p };
        struct bundle_manifest *back = NULL;
        _cleanup_free_ char *s = NULL, *again = NULL;
        size_t len = 0, len2 = 0;
        uint8_t digest[SHA256_LEN];
        (void) state;

        memset(chunks[0], 0x01, SHA256_LEN);
        memset(chunks[1], 0x02, SHA256_LEN);
        memset(p[0].sha256, 0xab, SHA256_LEN);
        assert_int_equal(crypto_sha256("", 0, p[1].sha256), 0);
        assert_int_equal(bundle_manifest_format(&m, &s, &len), 0);
        assert_int_equal(len, strlen(want));
        assert_string_equal(s, want);

        /* The parser takes it back unchanged, records the digest of exactly these bytes, and writing the
         * parsed manifest again gives the same bytes: one manifest, one spelling. */
        assert_int_equal(bundle_manifest_parse((const uint8_t *) s, len, &back), 0);
        assert_string_equal(back->compatible, "drone-x");
        assert_string_equal(back->version, "1.2.10");
        assert_int_equal(back->n_payloads, 2);
        assert_int_equal(back->payloads[0].n_chunks, 2);
        assert_memory_equal(back->payloads[0].chunk_sha256[1], chunks[1], SHA256_LEN);
        assert_string_equal(back->payloads[1].store_path, p[1].store_path);
        assert_string_equal(back->payloads[1].cache_url, p[1].cache_url);
        assert_null(back->signer);
        assert_int_equal(crypto_sha256(s, len, digest), 0);
        assert_memory_equal(back->digest, digest, SHA256_LEN);
        assert_int_equal(bundle_manifest_format(back, &again, &len2), 0);
        assert_int_equal(len2, len);
        assert_string_equal(again, s);
        bundle_manifest_free(back);
        bundle_manifest_free(NULL);
}

static void test_payload_type_names(void **state) {
        static const struct {
                const char *name;
                enum bundle_payload_type type;
        } names[] = { { "raw", BUNDLE_PAYLOAD_RAW }, { "efi", BUNDLE_PAYLOAD_EFI }, { "nixos", BUNDLE_PAYLOAD_NIXOS } };
        enum bundle_payload_type t = BUNDLE_PAYLOAD_EFI;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                assert_string_equal(bundle_payload_type_to_string(names[i].type), names[i].name);
                assert_int_equal(bundle_payload_type_from_string(names[i].name, &t), 0);
                assert_int_equal(t, names[i].type);
        }
        t = BUNDLE_PAYLOAD_EFI;
        assert_int_equal(bundle_payload_type_from_string("RAW", &t), -RINGIL_EMALFORMED);   /* exact spelling */
        assert_int_equal(bundle_payload_type_from_string("raw ", &t), -RINGIL_EMALFORMED);
        assert_int_equal(bundle_payload_type_from_string("", &t), -RINGIL_EMALFORMED);
        assert_int_equal(bundle_payload_type_from_string(NULL, &t), -RINGIL_EMALFORMED);
        assert_int_equal(t, BUNDLE_PAYLOAD_EFI);   /* untouched */
        assert_null(bundle_payload_type_to_string((enum bundle_payload_type) 3));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_manifest_ok),
                cmocka_unit_test(test_manifest_chunk_count),
                cmocka_unit_test(test_manifest_sizes),
                cmocka_unit_test(test_manifest_4g),
                cmocka_unit_test(test_manifest_strictness),
                cmocka_unit_test(test_manifest_nixos),
                cmocka_unit_test(test_manifest_caps),
                cmocka_unit_test(test_format_golden),
                cmocka_unit_test(test_payload_type_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
