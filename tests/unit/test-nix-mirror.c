/* test-nix-mirror.c: the closure mirror over a fake cache: signatures, pruning, sizes, resume, parallel fetches, a pinned closure. */
#include "tests.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "nix-mirror.h"

/* ---- a fake cache for the mirror ---- */

struct entry {
        char path[96];       /* request path: /HASH.narinfo or /nar/FILE */
        char *body;
        size_t len;
};

struct fake {
        struct entry e[32];
        size_t n;
        size_t cut;          /* at most this many bytes per range answer (0: no limit) */
        unsigned gets, ranges;
        EVP_PKEY *key;
        char pk[128];
};

static struct entry *fake_find(struct fake *f, const char *path) {
        for (size_t i = 0; i < f->n; i++)
                if (streq(f->e[i].path, path))
                        return &f->e[i];
        return NULL;
}

static int fake_get(void *userdata, const char *path, size_t max, long *ret_status, struct buf *ret_body) {
        struct fake *f = userdata;
        struct entry *e = fake_find(f, path);
        struct buf b = BUF_INIT(max);

        __atomic_fetch_add(&f->gets, 1, __ATOMIC_RELAXED);
        *ret_status = e ? 200 : 404;
        if (e && buf_append(&b, e->body, e->len) < 0)
                return -EFBIG;
        *ret_body = b;
        return 0;
}

static int64_t fake_get_range(void *userdata, const char *path, uint64_t off, uint64_t len, nixcache_sink_t sink,
                              void *sink_userdata, long *ret_status) {
        struct fake *f = userdata;
        struct entry *e = fake_find(f, path);
        size_t k;

        __atomic_fetch_add(&f->ranges, 1, __ATOMIC_RELAXED);
        if (!e) {
                *ret_status = 404;
                return -EPROTO;
        }
        *ret_status = 206;
        if (off >= e->len)
                return -EPROTO;
        k = (size_t) MIN(len, (uint64_t) (e->len - off));
        if (f->cut && k > f->cut)
                k = f->cut;
        if (sink(sink_userdata, e->body + off, k) < 0)
                return -EIO;
        return (int64_t) k;
}

static void fake_put(struct fake *f, const char *path, const void *body, size_t len) {
        struct entry *e = fake_find(f, path);

        if (!e) {
                assert_true(f->n < 32);
                e = &f->e[f->n++];
                snprintf(e->path, sizeof(e->path), "%s", path);
        } else
                free(e->body);
        e->body = malloc(len + 1);
        memcpy(e->body, body, len);
        e->body[len] = '\0';
        e->len = len;
}

static void fake_done(struct fake *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->e[i].body);
        EVP_PKEY_free(f->key);
}

#define H_TOP "1111111111111111111111111111111a"
#define H_MID "2222222222222222222222222222222b"
#define H_BASE "3333333333333333333333333333333c"

/* Publish a path: NAR bytes (compression none), a narinfo signed by f->key (unless !sign). */
static void publish(struct fake *f, const char *hash, const char *name, const char *refs, const char *content, bool sign) {
        char sp[128], nh[64], narpath[128], url[96], *text, *fp = NULL, b64[100];
        uint8_t h[32], sig[64];
        size_t siglen = sizeof(sig);
        struct narinfo ni;
        EVP_MD_CTX *ctx;

        snprintf(sp, sizeof(sp), "/nix/store/%s-%s", hash, name);
        assert_int_equal(crypto_sha256(content, strlen(content), h), 0);
        nix32_encode(h, 32, nh);
        snprintf(url, sizeof(url), "nar/%s.nar", nh);
        snprintf(narpath, sizeof(narpath), "/%s", url);
        fake_put(f, narpath, content, strlen(content));
        assert_true(asprintf(&text, "StorePath: %s\nURL: %s\nCompression: none\nFileHash: sha256:%s\nFileSize: %zu\n"
                                    "NarHash: sha256:%s\nNarSize: %zu\nReferences: %s\n",
                             sp, url, nh, strlen(content), nh, strlen(content), refs) > 0);
        if (sign) {
                char *t2;
                assert_int_equal(narinfo_parse(text, strlen(text), &ni), 0);
                assert_int_equal(narinfo_fingerprint(&ni, &fp), 0);
                narinfo_done(&ni);
                ctx = EVP_MD_CTX_new();
                assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, f->key), 1);
                assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *) fp, strlen(fp)), 1);
                EVP_MD_CTX_free(ctx);
                EVP_EncodeBlock((uint8_t *) b64, sig, 64);
                assert_true(asprintf(&t2, "%sSig: test-1:%s\n", text, b64) > 0);
                free(text);
                text = t2;
                free(fp);
        }
        snprintf(narpath, sizeof(narpath), "/%s.narinfo", hash);
        fake_put(f, narpath, text, strlen(text));
        free(text);
}

/* top -> mid, base, itself; mid -> base. */
static void fake_init(struct fake *f) {
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        uint8_t pub[32];
        size_t pl = sizeof(pub);
        char b64[64];

        *f = (struct fake) {};
        assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
        assert_int_equal(EVP_PKEY_keygen(kc, &f->key), 1);
        EVP_PKEY_CTX_free(kc);
        assert_int_equal(EVP_PKEY_get_raw_public_key(f->key, pub, &pl), 1);
        EVP_EncodeBlock((uint8_t *) b64, pub, 32);
        snprintf(f->pk, sizeof(f->pk), "test-1:%s", b64);
        publish(f, H_BASE, "base", "", "base contents", true);
        publish(f, H_MID, "mid", H_BASE "-base", "middle contents, a little longer", true);
        publish(f, H_TOP, "nixos-system-t-1", H_MID "-mid " H_BASE "-base " H_TOP "-nixos-system-t-1",
                "#!/bin/sh\necho switch-to-configuration\n", true);
}

struct validity {
        const char *valid[4];
        unsigned calls;
};

static int fake_invalid(void *userdata, char *const *paths, size_t n, bool *invalid) {
        struct validity *v = userdata;

        v->calls++;
        for (size_t i = 0; i < n; i++) {
                invalid[i] = true;
                for (size_t k = 0; k < 4 && v->valid[k]; k++)
                        if (strncmp(paths[i] + 11, v->valid[k], 32) == 0)
                                invalid[i] = false;
        }
        return 0;
}

static const char top_path[] = "/nix/store/" H_TOP "-nixos-system-t-1";

/* One mirror run over the fake cache with one connection. */
static int mirror1(struct fake *f, const char *top, const char *keys, const struct nix_closure *pin, struct validity *v,
                   const char *dir, struct nixcache_stats *st) {
        return nixcache_mirror(&(struct nixcache_source) { fake_get, fake_get_range, f }, 1, top, keys, pin,
                               fake_invalid, v, dir, st);
}

static bool exists_in(const char *dir, const char *name) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        return access(p, F_OK) == 0;
}

static size_t count_nars(const char *dir) {
        char cmd[512];
        FILE *p;
        size_t n = 0;

        snprintf(cmd, sizeof(cmd), "ls %s/nar | grep -c '\\.nar$'", dir);
        p = popen(cmd, "r");
        assert_non_null(p);
        if (fscanf(p, "%zu", &n) != 1)
                n = 0;
        pclose(p);
        return n;
}

static void test_mirror_whole_closure(void **state) {
        const char *d = *state;
        char dir[256];
        struct validity v = {};
        struct nixcache_stats st;
        struct fake f;

        fake_init(&f);
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.paths_seen, 3);
        assert_int_equal(st.paths_fetched, 3);
        assert_int_equal(st.nars_fetched, 3);
        assert_int_equal(v.calls, 2);   /* one validity query per level: top; then mid and base together */
        assert_true(exists_in(dir, "nix-cache-info"));
        assert_true(exists_in(dir, H_TOP ".narinfo") && exists_in(dir, H_MID ".narinfo") && exists_in(dir, H_BASE ".narinfo"));
        assert_int_equal(count_nars(dir), 3);
        /* Again: every NAR is already complete, only narinfos are fetched. */
        f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(f.ranges, 0);
        assert_int_equal(st.nars_fetched, 0);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        assert_false(exists_in(d, "m"));
        fake_done(&f);
}

static void test_mirror_prunes_valid_paths(void **state) {
        const char *d = *state;
        char dir[256];
        struct validity v = { .valid = { H_BASE } };
        struct nixcache_stats st;
        struct fake f;

        fake_init(&f);
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.paths_fetched, 2);
        assert_false(exists_in(dir, H_BASE ".narinfo"));
        assert_int_equal(count_nars(dir), 2);
        /* The toplevel itself is there: nothing at all is fetched. */
        v = (struct validity) { .valid = { H_TOP } };
        f.gets = f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(f.gets + f.ranges, 0);
        assert_int_equal(st.paths_fetched, 0);
        fake_done(&f);
}

static void test_mirror_refuses_unsigned_and_stops(void **state) {
        const char *d = *state;
        char dir[256];
        struct validity v = {};
        struct nixcache_stats st;
        struct fake f;

        fake_init(&f);
        publish(&f, H_MID, "mid", H_BASE "-base", "middle contents, a little longer", false);
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), -RINGIL_EUNTRUSTED);
        assert_false(exists_in(dir, H_MID ".narinfo"));
        /* mid's references were never followed through an unsigned narinfo; its NAR never fetched. */
        assert_int_equal(count_nars(dir), exists_in(dir, H_BASE ".narinfo") ? 2 : 1);
        /* Signed by another key: untrusted too. */
        assert_int_equal(mirror1(&f, top_path, "test-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM=", NULL, &v, dir,
                                         &st), -RINGIL_EBADSIG);
        assert_int_equal(mirror1(&f, top_path, "other-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM=", NULL, &v, dir,
                                         &st), -RINGIL_EUNTRUSTED);
        fake_done(&f);
}

static void test_mirror_refuses_wrong_path_and_sizes(void **state) {
        const char *d = *state;
        char dir[256];
        struct validity v = {};
        struct fake f;
        struct entry *e;

        snprintf(dir, sizeof(dir), "%s/m", d);
        /* The server answers mid's narinfo for top's hash: a validly signed narinfo of another path. */
        fake_init(&f);
        e = fake_find(&f, "/" H_MID ".narinfo");
        fake_put(&f, "/" H_TOP ".narinfo", e->body, e->len);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, NULL), -RINGIL_EMALFORMED);
        fake_done(&f);
        /* Not in the cache. */
        fake_init(&f);
        fake_find(&f, "/" H_MID ".narinfo")->path[0] = '\0';
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, NULL), -ENOENT);
        fake_done(&f);
}

static void test_mirror_nar_hash_and_resume(void **state) {
        const char *d = *state;
        char dir[256], part[512], nh[64];
        struct validity v = {};
        struct nixcache_stats st;
        struct fake f;
        struct entry *e = NULL;
        uint8_t h[32];
        const char *content = "#!/bin/sh\necho switch-to-configuration\n";

        snprintf(dir, sizeof(dir), "%s/m", d);
        fake_init(&f);
        assert_int_equal(crypto_sha256(content, strlen(content), h), 0);
        nix32_encode(h, 32, nh);
        for (size_t i = 0; i < f.n; i++)
                if (strstr(f.e[i].path, nh))
                        e = &f.e[i];
        assert_non_null(e);

        /* The NAR served differs from its FileHash: refused, neither the NAR nor the narinfo kept. */
        e->body[3] ^= 1;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), -RINGIL_EDIGEST);
        assert_int_equal(count_nars(dir), 0);
        assert_false(exists_in(dir, H_TOP ".narinfo"));
        e->body[3] ^= 1;

        /* A connection that delivers 5 bytes per request: resumed until complete. */
        f.cut = 5;
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.nars_fetched, 3);
        assert_true(f.ranges >= (strlen(content) + 4) / 5);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        f.cut = 0;

        /* An interrupted earlier run left the first 10 bytes: only the rest is fetched. */
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar", dir);
        assert_int_equal(mkdir(part, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar/%s.nar.part", dir, nh);
        assert_int_equal(atomic_write_file(part, content, 10, 0600, 0), 0);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(st.bytes_resumed, 10);
        assert_int_equal(access(part, F_OK), -1);
        assert_int_equal(nixcache_mirror_remove(dir), 0);

        /* A complete-looking NAR left by an earlier run (right size, wrong bytes) is not trusted by name. */
        {
                char final[512];
                snprintf(final, sizeof(final), "%s/nar/%s.nar", dir, nh);
                assert_int_equal(mkdir(dir, 0700), 0);
                snprintf(part, sizeof(part), "%s/nar", dir);
                assert_int_equal(mkdir(part, 0700), 0);
                char *bad = strdup(content);
                bad[0] ^= 1;
                assert_int_equal(atomic_write_file(final, bad, strlen(bad), 0600, 0), 0);
                free(bad);
                assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
                assert_int_equal(st.nars_fetched, 3);
                {
                        uint8_t *got = NULL;
                        size_t gl = 0;
                        assert_int_equal(read_full_file(final, 0, 4096, &got, &gl), 0);
                        assert_int_equal(gl, strlen(content));
                        assert_memory_equal(got, content, gl);
                        free(got);
                }
                assert_int_equal(nixcache_mirror_remove(dir), 0);
        }

        /* ... and a wrong kept prefix is thrown away and fetched again whole. */
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar", dir);
        assert_int_equal(mkdir(part, 0700), 0);
        snprintf(part, sizeof(part), "%s/nar/%s.nar.part", dir, nh);
        assert_int_equal(atomic_write_file(part, "XXXXXXXXXX", 10, 0600, 0), 0);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, &st), 0);
        assert_int_equal(count_nars(dir), 3);
        fake_done(&f);
}

static void test_mirror_file_size_bound(void **state) {
        const char *d = *state;
        char dir[256], *t;
        struct validity v = {};
        struct fake f;
        struct entry *e;
        char from[32];

        /* FileSize is not signed: with Compression none it must equal the signed NarSize. */
        snprintf(dir, sizeof(dir), "%s/m", d);
        fake_init(&f);
        e = fake_find(&f, "/" H_TOP ".narinfo");
        snprintf(from, sizeof(from), "FileSize: %zu", strlen("#!/bin/sh\necho switch-to-configuration\n"));
        t = test_replace(e->body, from, "FileSize: 99999999999");
        fake_put(&f, "/" H_TOP ".narinfo", t, strlen(t));
        free(t);
        assert_int_equal(mirror1(&f, top_path, f.pk, NULL, &v, dir, NULL), -RINGIL_ETOOBIG);
        assert_int_equal(f.ranges, 0);
        assert_int_equal(mirror1(&f, "/nix/store/x", f.pk, NULL, &v, dir, NULL), -RINGIL_EMALFORMED);
        fake_done(&f);
}

static void test_mirror_parallel_shared_nar(void **state) {
        static const char *const hashes[] = { "4444444444444444444444444444444d", "5555555555555555555555555555555f",
                                              "6666666666666666666666666666666g", "7777777777777777777777777777777h",
                                              "8888888888888888888888888888888i", "9999999999999999999999999999999j" };
        const char *d = *state;
        char dir[256], refs[1024] = "", top2[128];
        struct validity v = {};
        struct nixcache_stats st;
        struct nixcache_source src[3];
        struct fake f;

        /* A wide level: six leaves under one toplevel, two of them with byte-identical contents (one NAR
         * file for two paths), fetched by three workers over connections that deliver 3 bytes at a time. */
        fake_init(&f);
        for (size_t i = 0; i < 6; i++) {
                char name[16], content[64];
                snprintf(name, sizeof(name), "leaf%zu", i);
                snprintf(content, sizeof(content), "leaf contents %zu, long enough to be cut", i >= 4 ? (size_t) 4 : i);
                publish(&f, hashes[i], name, "", content, true);
                snprintf(refs + strlen(refs), sizeof(refs) - strlen(refs), "%s%s-%s", i ? " " : "", hashes[i], name);
        }
        publish(&f, "0000000000000000000000000000000k", "nixos-system-t-2", refs, "#!/bin/sh\n", true);
        snprintf(top2, sizeof(top2), "/nix/store/0000000000000000000000000000000k-nixos-system-t-2");
        f.cut = 3;
        for (size_t i = 0; i < 3; i++)
                src[i] = (struct nixcache_source) { fake_get, fake_get_range, &f };
        snprintf(dir, sizeof(dir), "%s/m", d);
        assert_int_equal(nixcache_mirror(src, 3, top2, f.pk, NULL, fake_invalid, &v, dir, &st), 0);
        assert_int_equal(st.paths_seen, 7);
        assert_int_equal(st.paths_fetched, 7);
        assert_int_equal(count_nars(dir), 6);     /* leaf4 and leaf5 share one */
        for (size_t i = 0; i < 6; i++) {
                char n[64];
                snprintf(n, sizeof(n), "%s.narinfo", hashes[i]);
                assert_true(exists_in(dir, n));
        }
        /* The first failure stops the level: leaf2 unsigned. */
        publish(&f, hashes[2], "leaf2", "", "leaf contents 2, long enough to be cut", false);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        assert_int_equal(nixcache_mirror(src, 3, top2, f.pk, NULL, fake_invalid, &v, dir, &st), -RINGIL_EUNTRUSTED);
        assert_false(exists_in(dir, "6666666666666666666666666666666g.narinfo"));
        fake_done(&f);
}

static void test_mirror_pinned_closure(void **state) {
        const char *d = *state;
        char dir[256];
        struct validity v = {};
        struct nix_closure pin = {};
        struct nixcache_stats st;
        struct fake f;

        /* The pin lists every path of the fake closure with the NAR hashes the cache serves. */
        fake_init(&f);
        snprintf(dir, sizeof(dir), "%s/m", d);
        {
                /* Sorted by path: 1111… (top), 2222… (mid), 3333… (base). */
                const char *names[] = { top_path, "/nix/store/" H_MID "-mid", "/nix/store/" H_BASE "-base" };
                const char *contents[] = { "#!/bin/sh\necho switch-to-configuration\n",
                                           "middle contents, a little longer", "base contents" };
                pin.v = calloc(3, sizeof(*pin.v));
                pin.n = 3;
                for (size_t i = 0; i < 3; i++) {
                        snprintf(pin.v[i].path, sizeof(pin.v[i].path), "%s", names[i]);
                        assert_int_equal(crypto_sha256(contents[i], strlen(contents[i]), pin.v[i].nar_hash), 0);
                        pin.v[i].nar_size = strlen(contents[i]);
                }
        }
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), 0);
        assert_int_equal(st.paths_fetched, 3);
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        /* A validly signed narinfo whose NarHash is not the bundle's: refused before its NAR is fetched. */
        pin.v[1].nar_hash[5] ^= 1;
        f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), -RINGIL_EDIGEST);
        assert_false(exists_in(dir, H_MID ".narinfo"));
        assert_int_equal(f.ranges, 1);   /* top's NAR only: mid's never asked for */
        pin.v[1].nar_hash[5] ^= 1;
        /* Only NarSize differs. */
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        pin.v[1].nar_size++;
        f.ranges = 0;
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), -RINGIL_EDIGEST);
        assert_int_equal(f.ranges, 1);   /* top's NAR only */
        assert_false(exists_in(dir, H_MID ".narinfo"));
        pin.v[1].nar_size--;
        /* A path the listing does not have (base, the sorted last): refused, its narinfo not kept. */
        assert_int_equal(nixcache_mirror_remove(dir), 0);
        pin.n = 2;
        assert_int_equal(mirror1(&f, top_path, f.pk, &pin, &v, dir, &st), -RINGIL_EDIGEST);
        assert_false(exists_in(dir, H_BASE ".narinfo"));
        pin.n = 3;
        nix_closure_done(&pin);
        fake_done(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_mirror_whole_closure, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mirror_prunes_valid_paths, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mirror_refuses_unsigned_and_stops, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mirror_refuses_wrong_path_and_sizes, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mirror_nar_hash_and_resume, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mirror_file_size_bound, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mirror_parallel_shared_nar, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mirror_pinned_closure, test_setup_tmpdir, test_teardown_tmpdir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
