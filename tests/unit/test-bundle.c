/* test-bundle.c: the bundle container through the library: the round trip
 * (create → open → verify → chunk reads) including sequential sources, forgeries (EC and RSA signers),
 * metadata read failures and an input changed during create. */
#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests.h"

#include "buf.h"
#include "bundle.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "macro.h"

/* ---- library round trip with a throwaway signer ---- */

struct fixture {
        char *dir;
        int64_t t;   /* bundle created at t - 100, expires at t + 100000 */
        char key[512], cert[512], payload[512], out[512];
};

static int make_signer(const char *keypath, const char *certpath, bool rsa) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
        _cleanup_(X509_freep) X509 *x = X509_new();
        FILE *f;

        if (!k || !x)
                return -1;
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -10L * 86400);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
        X509_set_pubkey(x, k);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *) "unit signer", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        if (!X509_sign(x, k, EVP_sha256()))
                return -1;
        f = fopen(keypath, "we");
        if (!f || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
                return -1;
        fclose(f);
        f = fopen(certpath, "we");
        if (!f || !PEM_write_X509(f, x))
                return -1;
        fclose(f);
        return 0;
}

static int setup_signer(void **state, bool rsa) {
        struct fixture *fx = calloc(1, sizeof(*fx));
        uint8_t *data;
        int r;

        if (!fx || !(fx->dir = test_tmpdir()))
                return -1;
        fx->t = (int64_t) time(NULL);
        snprintf(fx->key, sizeof(fx->key), "%s/key.pem", fx->dir);
        snprintf(fx->cert, sizeof(fx->cert), "%s/cert.pem", fx->dir);
        snprintf(fx->payload, sizeof(fx->payload), "%s/payload", fx->dir);
        snprintf(fx->out, sizeof(fx->out), "%s/b.rb", fx->dir);
        if (make_signer(fx->key, fx->cert, rsa) < 0)
                return -1;
        /* 10 chunks of 4 KiB plus 100 bytes */
        data = malloc(41060);
        for (size_t i = 0; i < 41060; i++)
                data[i] = (uint8_t) (i * 7 + i / 4096);
        r = atomic_write_file(fx->payload, data, 41060, 0644, 0);
        free(data);
        if (r < 0)
                return -1;
        struct bundle_create_payload p = { .name = "root", .type = BUNDLE_PAYLOAD_RAW, .path = fx->payload };
        struct bundle_create_opts o = { .key = fx->key, .cert = fx->cert, .compatible = "unit", .version = "2.0",
                                        .created = fx->t - 100, .expires = fx->t + 100000, .chunk_size = 4096, .payloads = &p,
                                        .n_payloads = 1 };
        if (bundle_create(&o, fx->out) < 0) {
                fprintf(stderr, "create: %s\n", ringil_detail());
                return -1;
        }
        *state = fx;
        return 0;
}

static int setup(void **state) {
        return setup_signer(state, false);
}

static int setup_rsa(void **state) {
        return setup_signer(state, true);
}

static int teardown(void **state) {
        struct fixture *fx = *state;
        test_tmpdir_done(fx->dir);
        free(fx);
        return 0;
}

static void test_roundtrip(void **state) {
        struct fixture *fx = *state;
        _cleanup_bundle_ bundle *b = NULL;
        struct bundle_policy pol = { .keyring = fx->cert, .compatible = "unit", .min_version = "1.9", .now = fx->t };
        const struct bundle_manifest *m;
        uint8_t buf[4096];
        size_t len;
        uint64_t off, total;

        assert_int_equal(bundle_open(fx->out, &b), 0);
        assert_null(bundle_get_manifest(b));
        assert_int_equal(bundle_read_chunk(b, 0, 0, buf, &len), -EINVAL);   /* not before verification */
        assert_int_equal(bundle_verify_manifest(b, &pol), 0);
        m = bundle_get_manifest(b);
        assert_non_null(m);
        assert_string_equal(m->signer, "CN=unit signer");
        assert_int_equal(m->payloads[0].n_chunks, 11);
        /* seekable: any order */
        assert_int_equal(bundle_read_chunk(b, 0, 10, buf, &len), 0);
        assert_int_equal(len, 100);
        assert_int_equal(bundle_read_chunk(b, 0, 3, buf, &len), 0);
        assert_int_equal(len, 4096);
        assert_int_equal(buf[0], (uint8_t) (3 * 4096 * 7 + 3));
        assert_int_equal(bundle_read_chunk(b, 0, 11, buf, &len), -EINVAL);
        assert_int_equal(bundle_read_chunk(b, 1, 0, buf, &len), -EINVAL);
        assert_int_equal(bundle_chunk_offset(b, 0, 1, &off), 0);
        assert_int_equal(bundle_total_size(b, &total), 0);
        assert_true(off + 4096 * 9 + 100 == total);
        assert_int_equal(bundle_verify_payloads(b), 0);

        /* a second verification under a stricter policy is not answered from the first */
        pol.min_version = "2.0";
        assert_int_equal(bundle_verify_manifest(b, &pol), -RINGIL_EROLLBACK);
        assert_null(bundle_get_manifest(b));
        assert_int_equal(bundle_read_chunk(b, 0, 0, buf, &len), -EINVAL);
        pol.min_version = "1";
        assert_int_equal(bundle_verify_manifest(b, &pol), 0);
        assert_int_equal(bundle_read_chunk(b, 0, 0, buf, &len), 0);
}

static void test_policy(void **state) {
        struct fixture *fx = *state;
        struct { struct bundle_policy p; int want; } cases[] = {
                { { .keyring = fx->cert, .now = fx->t }, 0 },
                { { .keyring = fx->cert, .now = fx->t + 100001 }, -RINGIL_EEXPIRED },
                { { .keyring = fx->cert, .now = fx->t + 100000 }, 0 },   /* expired = now > expires */
                { { .keyring = fx->cert, .now = fx->t - 100 - BUNDLE_CLOCK_SKEW }, 0 },
                { { .keyring = fx->cert, .now = fx->t - 100 - BUNDLE_CLOCK_SKEW - 1 }, -RINGIL_EEXPIRED },
                { { .keyring = fx->cert, .now = fx->t, .compatible = "other" }, -RINGIL_EINCOMPAT },
                { { .keyring = fx->cert, .now = fx->t, .min_version = "2.0" }, -RINGIL_EROLLBACK },
                { { .keyring = fx->cert, .now = fx->t, .min_version = "2.0.0.1" }, -RINGIL_EROLLBACK },
                { { .keyring = fx->cert, .now = fx->t, .min_version = "1.99" }, 0 },
                { { .keyring = fx->cert, .now = fx->t, .require_codesigning = true }, -RINGIL_EUNTRUSTED },
                { { .keyring = fx->cert, .now = fx->t, .allowed_signers = (const char *const[]){ "nobody", NULL } }, -RINGIL_EUNTRUSTED },
                { { .keyring = fx->cert, .now = fx->t, .allowed_signers = (const char *const[]){ "x", "unit signer", NULL } }, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_bundle_ bundle *b = NULL;
                int r;
                assert_int_equal(bundle_open(fx->out, &b), 0);
                r = bundle_verify_manifest(b, &cases[i].p);
                if (r != cases[i].want)
                        fprintf(stderr, "case %zu: %d (%s)\n", i, r, ringil_detail());
                assert_int_equal(r, cases[i].want);
        }
}

/* A sequential source over a memory image: refuses to go backwards, like a pipe. */
struct memsrc {
        const uint8_t *data;
        size_t len;
        uint64_t pos;
};

static int mem_read_at(void *u, uint64_t off, void *buf, size_t len) {
        struct memsrc *s = u;
        if (off < s->pos)
                return -ESPIPE;
        if (off > s->len || len > s->len - off)
                return -ENODATA;
        memcpy(buf, s->data + off, len);
        s->pos = off + len;
        return 0;
}

/* Offset of the end of the signature block in a bundle image. */
static size_t metadata_end(const uint8_t *img) {
        return BUNDLE_HEADER_SIZE + ((size_t) img[16] << 24 | (size_t) img[17] << 16 | (size_t) img[18] << 8 | img[19]) +
               ((size_t) img[20] << 24 | (size_t) img[21] << 16 | (size_t) img[22] << 8 | img[23]);
}

/*
 * Every single-byte change is refused by verify_manifest or verify_payloads: each byte of the header,
 * manifest and signature block (and at least the first 2048 bytes) xor-ed with several values (one bit,
 * two bits, the top bit, all bits; 0x0a turns rsaEncryption into sha256WithRSAEncryption), then
 * payload bytes at a stride.
 */
static void flip_every_byte(struct fixture *fx, uint8_t *img, size_t len) {
        static const uint8_t values[] = { 0x01, 0x0a, 0x80, 0xff };
        struct bundle_policy pol = { .keyring = fx->cert, .now = fx->t };
        size_t full = MAX(metadata_end(img), (size_t) 2048);

        for (size_t i = 0; i < len; i += (i < full ? 1 : 509))
                for (size_t v = 0; v < ELEMENTSOF(values); v++) {
                        struct memsrc ms = { img, len, 0 };
                        struct bundle_source src = { .read_at = mem_read_at, .userdata = &ms, .size = len };
                        _cleanup_bundle_ bundle *b = NULL;
                        int r;
                        img[i] ^= values[v];
                        assert_int_equal(bundle_open_source(&src, &b), 0);
                        r = bundle_verify_manifest(b, &pol);
                        if (r == 0)
                                r = bundle_verify_payloads(b);
                        img[i] ^= values[v];
                        if (r >= 0)
                                fprintf(stderr, "# xor %#x at %zu (metadata ends at %zu) accepted\n", values[v], i, metadata_end(img));
                        assert_true(r < 0);
                }
}

static void test_stream_and_forgeries(void **state) {
        struct fixture *fx = *state;
        _cleanup_free_ uint8_t *img = NULL;
        size_t len;
        struct bundle_policy pol = { .keyring = fx->cert, .now = fx->t };

        assert_int_equal(read_full_file(fx->out, 0, 1 << 20, &img, &len), 0);

        /* stream: in order works; going back is refused by the source */
        {
                struct memsrc ms = { img, len, 0 };
                struct bundle_source src = { .read_at = mem_read_at, .userdata = &ms, .size = UINT64_MAX };
                _cleanup_bundle_ bundle *b = NULL;
                uint8_t buf[4096];
                size_t n;
                assert_int_equal(bundle_open_source(&src, &b), 0);
                assert_int_equal(bundle_verify_manifest(b, &pol), 0);
                assert_int_equal(bundle_read_chunk(b, 0, 0, buf, &n), 0);
                assert_int_equal(bundle_read_chunk(b, 0, 2, buf, &n), 0);
                assert_int_equal(bundle_read_chunk(b, 0, 1, buf, &n), -ESPIPE);
        }
        flip_every_byte(fx, img, len);
        /* truncation at many points */
        for (size_t cut = 0; cut < len; cut += (cut < 2048 ? 13 : 997)) {
                struct memsrc ms = { img, cut, 0 };
                struct bundle_source src = { .read_at = mem_read_at, .userdata = &ms, .size = UINT64_MAX };
                _cleanup_bundle_ bundle *b = NULL;
                int r;
                assert_int_equal(bundle_open_source(&src, &b), 0);
                r = bundle_verify_manifest(b, &pol);
                if (r == 0)
                        r = bundle_verify_payloads(b);
                assert_true(r < 0);
        }
}

/* An RSA signer: the CMS carries rsaEncryption as its signature algorithm, which OpenSSL would also
 * accept spelled sha256WithRSAEncryption (one byte apart): that spelling must be refused. */
static void test_rsa_signature_block(void **state) {
        struct fixture *fx = *state;
        static const uint8_t rsa_oid[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
        _cleanup_free_ uint8_t *img = NULL;
        struct bundle_policy pol = { .keyring = fx->cert, .now = fx->t };
        size_t len, mend, at = 0;

        assert_int_equal(read_full_file(fx->out, 0, 1 << 20, &img, &len), 0);
        mend = metadata_end(img);
        /* the untouched RSA bundle verifies */
        {
                _cleanup_bundle_ bundle *b = NULL;
                assert_int_equal(bundle_open(fx->out, &b), 0);
                assert_int_equal(bundle_verify_manifest(b, &pol), 0);
                assert_int_equal(bundle_verify_payloads(b), 0);
        }
        /* the SignerInfo's signature algorithm: the last rsaEncryption OID in the block */
        for (size_t i = 0; i + sizeof(rsa_oid) <= mend; i++)
                if (memcmp(img + i, rsa_oid, sizeof(rsa_oid)) == 0)
                        at = i;
        assert_true(at > 0);
        img[at + sizeof(rsa_oid) - 1] = 0x0b;   /* 1.2.840.113549.1.1.11: sha256WithRSAEncryption */
        {
                struct memsrc ms = { img, len, 0 };
                struct bundle_source src = { .read_at = mem_read_at, .userdata = &ms, .size = len };
                _cleanup_bundle_ bundle *b = NULL;
                assert_int_equal(bundle_open_source(&src, &b), 0);
                assert_int_equal(bundle_verify_manifest(b, &pol), -RINGIL_EBADSIG);
                assert_non_null(strstr(ringil_detail(), "signature algorithm"));
        }
        img[at + sizeof(rsa_oid) - 1] = 0x01;
        flip_every_byte(fx, img, len);
}

/* A metadata read that fails is final: a retry returns the same error (no re-read of a stream from
 * offset 0, no allocation over the first buffers: ASan's leak check would see it). */
static void test_metadata_failure_is_final(void **state) {
        struct fixture *fx = *state;
        _cleanup_free_ uint8_t *img = NULL;
        struct bundle_policy pol = { .keyring = fx->cert, .now = fx->t };
        size_t len;

        assert_int_equal(read_full_file(fx->out, 0, 1 << 20, &img, &len), 0);
        /* cut inside the manifest, inside the signature; and a bad magic */
        for (size_t k = 0; k < 3; k++) {
                size_t cut = k == 0 ? BUNDLE_HEADER_SIZE + 10 : k == 1 ? metadata_end(img) - 1 : len;
                struct memsrc ms = { img, cut, 0 };
                struct bundle_source src = { .read_at = mem_read_at, .userdata = &ms, .size = UINT64_MAX };
                _cleanup_bundle_ bundle *b = NULL;
                const struct bundle_manifest *m = NULL;
                char first[512];
                int want = k < 2 ? -RINGIL_ETRUNCATED : -RINGIL_EMALFORMED;

                if (k == 2)
                        img[0] ^= 0x01;
                assert_int_equal(bundle_open_source(&src, &b), 0);
                assert_int_equal(bundle_verify_manifest(b, &pol), want);
                snprintf(first, sizeof(first), "%s", ringil_detail());
                ringil_clear_detail();
                assert_int_equal(bundle_verify_manifest(b, &pol), want);
                assert_string_equal(ringil_detail(), first);
                assert_int_equal(bundle_read_unverified(b, &m, NULL), want);
                assert_null(m);
                assert_null(bundle_get_manifest(b));
                if (k == 2)
                        img[0] ^= 0x01;
        }
}

/*
 * bundle_create hashes its input, then copies it: a same-size change in between must not give a
 * bundle whose bytes fail its own signed hashes. copy_file_range (what the copy uses) is interposed
 * here: armed, it rewrites the input's first byte before copying.
 */
static const char *cfr_rewrite;

ssize_t copy_file_range(int infd, loff_t *pinoff, int outfd, loff_t *poutoff, size_t length, unsigned int flags) {
        if (cfr_rewrite) {
                int fd = open(cfr_rewrite, O_WRONLY | O_CLOEXEC);
                uint8_t x = 0xff;   /* the fixture's payload starts with 0x00 */
                cfr_rewrite = NULL;
                if (fd < 0 || pwrite(fd, &x, 1, 0) != 1)
                        abort();
                close(fd);
        }
        return syscall(SYS_copy_file_range, infd, pinoff, outfd, poutoff, length, flags);
}

static void test_create_input_changed(void **state) {
        struct fixture *fx = *state;
        char out[600];
        struct bundle_create_payload p = { .name = "root", .type = BUNDLE_PAYLOAD_RAW, .path = fx->payload };
        struct bundle_create_opts o = { .key = fx->key, .cert = fx->cert, .compatible = "unit", .version = "2.0",
                                        .created = fx->t - 100, .expires = fx->t + 100000, .chunk_size = 4096, .payloads = &p,
                                        .n_payloads = 1 };
        int r;

        snprintf(out, sizeof(out), "%s/changed.rb", fx->dir);
        /* control: unarmed, the same call makes a bundle that verifies */
        assert_int_equal(bundle_create(&o, out), 0);
        assert_int_equal(unlink(out), 0);

        cfr_rewrite = fx->payload;
        r = bundle_create(&o, out);
        if (r >= 0) {
                /* what the old code did: a bundle that fails its own verification */
                _cleanup_bundle_ bundle *b = NULL;
                struct bundle_policy pol = { .keyring = fx->cert, .now = fx->t };
                assert_int_equal(bundle_open(out, &b), 0);
                assert_int_equal(bundle_verify_manifest(b, &pol), 0);
                fprintf(stderr, "# create succeeded; verify_payloads: %d\n", bundle_verify_payloads(b));
        }
        assert_null(cfr_rewrite);   /* the hook ran: the copy went through copy_file_range */
        assert_int_equal(r, -EIO);
        assert_non_null(strstr(ringil_detail(), "payload 'root' changed while the bundle was made"));
        assert_int_equal(access(out, F_OK), -1);   /* nothing renamed into place */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stream_and_forgeries, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rsa_signature_block, setup_rsa, teardown),
                cmocka_unit_test_setup_teardown(test_metadata_failure_is_final, setup, teardown),
                cmocka_unit_test_setup_teardown(test_create_input_changed, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
