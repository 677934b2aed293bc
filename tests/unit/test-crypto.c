/* test-crypto.c: the OpenSSL boundary: SHA-256 and ed25519 against published vectors (FIPS 180-2, RFC 8032)
 * with forgeries and a malleated S, canonical-only base64 and hex, PEM loading with its caps and the keyring
 * directory rules, constant-time compare, error capture. */
#include "tests.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <sys/stat.h>

#include "crypto.h"
#include "err.h"

static void unhex(const char *s, uint8_t *out, size_t n) {
        assert_int_equal(hex_decode(s, out, n), 0);
}

static void assert_sha256(const void *p, size_t n, const char *want_hex) {
        uint8_t md[SHA256_LEN];
        char hex[2 * SHA256_LEN + 1];

        assert_int_equal(crypto_sha256(p, n, md), 0);
        assert_string_equal(hex_encode(md, SHA256_LEN, hex), want_hex);
}

static void test_sha256_vectors(void **state) {
        static const char million[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        uint8_t *a = malloc(1000000), md[SHA256_LEN];
        char hex[2 * SHA256_LEN + 1];
        EVP_MD_CTX *ctx = NULL;
        (void) state;

        assert_sha256("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_sha256("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        assert_non_null(a);
        memset(a, 'a', 1000000);
        assert_sha256(a, 1000000, million);
        /* Incrementally, in uneven pieces: the same digest. */
        assert_int_equal(crypto_sha256_begin(&ctx), 0);
        for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 + 1)
                assert_int_equal(crypto_sha256_update(ctx, a + off, MIN(step, 1000000 - off)), 0);
        assert_int_equal(crypto_sha256_final(ctx, md), 0);
        assert_string_equal(hex_encode(md, SHA256_LEN, hex), million);
        free(a);
}

static void test_hex(void **state) {
        uint8_t b[4];
        char s[9];
        (void) state;

        assert_int_equal(hex_decode("00ff7Fa0", b, 4), 0);   /* either case in, lowercase out */
        assert_memory_equal(b, "\x00\xff\x7f\xa0", 4);
        assert_string_equal(hex_encode(b, 4, s), "00ff7fa0");
        assert_string_equal(hex_encode(b, 0, s), "");
        assert_int_equal(hex_decode("00ff7fa", b, 4), -RINGIL_EMALFORMED);     /* too short */
        assert_int_equal(hex_decode("00ff7fa000", b, 4), -RINGIL_EMALFORMED);  /* too long: exact length only */
        assert_int_equal(hex_decode("00ff7fg0", b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(hex_decode(" 0ff7fa0", b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(hex_decode("0x ff7fa", b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(hex_decode(NULL, b, 4), -RINGIL_EMALFORMED);
}

static void test_base64_canonical(void **state) {
        uint8_t b[8];
        (void) state;

        /* RFC 4648 §10 */
        assert_int_equal(crypto_base64_decode("Zm9vYmFy", 8, b, 6), 0);
        assert_memory_equal(b, "foobar", 6);
        assert_int_equal(crypto_base64_decode("Zm9vYg==", 8, b, 4), 0);
        assert_memory_equal(b, "foob", 4);
        assert_int_equal(crypto_base64_decode("Zm9vYmE=", 8, b, 5), 0);
        assert_memory_equal(b, "fooba", 5);
        assert_int_equal(crypto_base64_decode("Zg==", 4, b, 1), 0);
        assert_int_equal(b[0], 'f');
        /* The length must be exactly what the caller expects. */
        assert_int_equal(crypto_base64_decode("Zm9vYg==", 8, b, 5), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("Zm9vYmFy", 8, b, 5), -RINGIL_EMALFORMED);
        /* A second spelling of "foob" (non-zero bits under the padding) is refused. */
        assert_int_equal(crypto_base64_decode("Zm9vYh==", 8, b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("Zm9vYmF=", 8, b, 5), -RINGIL_EMALFORMED);
        /* Shapes: missing padding, padding inside, a third '=', whitespace, URL alphabet, empty. */
        assert_int_equal(crypto_base64_decode("Zm9vYg", 6, b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("Zm=vYmFy", 8, b, 6), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("Zm9v=g==", 8, b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("Zm9v Yg=", 8, b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("Zm9v_-==", 8, b, 4), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("", 0, b, 0), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_base64_decode("Zm9vYmFy", 7, b, 5), -RINGIL_EMALFORMED);   /* n is authoritative */
        {
                char big[4100];
                memset(big, 'A', sizeof(big));
                assert_int_equal(crypto_base64_decode(big, 4100, b, 8), -RINGIL_EMALFORMED);   /* over the cap */
        }
}

/* RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte). */
static void test_ed25519_vectors(void **state) {
        uint8_t pub1[32], sig1[64], pub2[32], sig2[64], bad[64];
        (void) state;

        unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pub1, 32);
        unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b", sig1, 64);
        unhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", pub2, 32);
        unhex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00", sig2, 64);

        assert_int_equal(crypto_ed25519_verify(pub1, "", 0, sig1), 0);
        assert_int_equal(crypto_ed25519_verify(pub2, "\x72", 1, sig2), 0);
        /* Wrong message, wrong key, swapped signature, every single bit of the signature flipped. */
        assert_int_equal(crypto_ed25519_verify(pub2, "\x73", 1, sig2), -RINGIL_EBADSIG);
        assert_int_equal(crypto_ed25519_verify(pub1, "\x72", 1, sig2), -RINGIL_EBADSIG);
        assert_int_equal(crypto_ed25519_verify(pub2, "", 0, sig1), -RINGIL_EBADSIG);
        for (unsigned bit = 0; bit < 512; bit++) {
                memcpy(bad, sig2, 64);
                bad[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                if (crypto_ed25519_verify(pub2, "\x72", 1, bad) != -RINGIL_EBADSIG)
                        fail_msg("signature with bit %u flipped verifies", bit);
        }
        /* Malleability: S + L is the same point arithmetic but a second encoding; it must not verify. */
        {
                BIGNUM *s = BN_lebin2bn(sig2 + 32, 32, NULL), *l = NULL;
                assert_non_null(s);
                assert_true(BN_dec2bn(&l, "7237005577332262213973186563042994240857116359379907606001950938285454250989") > 0);
                assert_true(BN_add(s, s, l));
                memcpy(bad, sig2, 32);
                assert_int_equal(BN_bn2lebinpad(s, bad + 32, 32), 32);
                assert_int_equal(crypto_ed25519_verify(pub2, "\x72", 1, bad), -RINGIL_EBADSIG);
                BN_free(s);
                BN_free(l);
        }
        /* An all-zero key and signature (a degenerate point) never verifies. */
        memset(bad, 0, sizeof(bad));
        assert_int_equal(crypto_ed25519_verify(bad, "", 0, bad), -RINGIL_EBADSIG);
}

static void test_pem_loading(void **state) {
        const char *d = *state;
        char *key = test_path(d, "k.pem"), *crt = test_path(d, "c.pem"), *two = test_path(d, "two.pem"),
             *big = test_path(d, "big.pem"), *ring = test_path(d, "ring");
        EVP_PKEY *k1 = test_key_new(false), *k2 = test_key_new(false), *got = NULL;
        X509 *c1 = test_cert_new(k1, "one", NULL, NULL, -60, 3600, 0), *c2 = test_cert_new(k2, "two", NULL, NULL, -60, 3600, 0);
        X509 *x = NULL;
        STACK_OF(X509) *sk = NULL;
        uint8_t h[SHA256_LEN], want[SHA256_LEN];
        unsigned char *der = NULL;
        char *text, *both;
        int n;

        test_write_key_pem(key, k1);
        test_write_cert_pem(crt, c1);
        assert_int_equal(crypto_load_private_key(key, &got), 0);
        assert_int_equal(EVP_PKEY_eq(got, k1), 1);
        EVP_PKEY_free(got);
        got = NULL;
        /* A certificate is not a key, a key is not a certificate; missing files keep their errno. */
        assert_int_equal(crypto_load_private_key(crt, &got), -RINGIL_EMALFORMED);
        assert_null(got);
        assert_int_equal(crypto_load_cert(key, &x), -RINGIL_EMALFORMED);
        assert_int_equal(crypto_load_cert(ring, &x), -ENOENT);
        assert_int_equal(crypto_load_private_key(ring, &got), -ENOENT);

        /* Two certificates with text around them: load_cert takes the first, load_certs both. */
        text = test_read_file(crt, NULL);
        test_write_cert_pem(two, c2);
        {
                char *second = test_read_file(two, NULL);
                assert_true(asprintf(&both, "leading words\n%s\nbetween\n%strailing\n", text, second) > 0);
                free(second);
        }
        test_write_file(two, both, 0644);
        assert_int_equal(crypto_load_cert(two, &x), 0);
        assert_int_equal(X509_cmp(x, c1), 0);
        X509_free(x);
        assert_int_equal(crypto_load_certs(two, &sk), 0);
        assert_int_equal(sk_X509_num(sk), 2);
        assert_int_equal(X509_cmp(sk_X509_value(sk, 1), c2), 0);
        sk_X509_pop_free(sk, X509_free);
        sk = NULL;

        /* A keyring directory: *.pem, *.crt, *.cer in name order; other names and dotfiles ignored. */
        {
                char *t2 = NULL, *p = test_path(ring, "b.crt");
                test_write_file(p, text, 0644);   /* c1 */
                free(p);
                test_write_cert_pem(p = test_path(ring, "a.pem"), c2);
                t2 = test_read_file(p, NULL);
                free(p);
                test_write_file(p = test_path(ring, ".hidden.pem"), t2, 0644);
                free(p);
                test_write_file(p = test_path(ring, "notes.txt"), t2, 0644);
                free(p);
                free(t2);
        }
        assert_int_equal(crypto_load_certs(ring, &sk), 0);
        assert_int_equal(sk_X509_num(sk), 2);
        assert_int_equal(X509_cmp(sk_X509_value(sk, 0), c2), 0);   /* a.pem first */
        assert_int_equal(X509_cmp(sk_X509_value(sk, 1), c1), 0);
        sk_X509_pop_free(sk, X509_free);
        sk = NULL;
        {
                char *empty = test_path(d, "empty");
                assert_int_equal(mkdir(empty, 0755), 0);
                assert_int_equal(crypto_load_certs(empty, &sk), -RINGIL_EMALFORMED);
                assert_null(sk);
                free(empty);
        }

        /* Over the 1 MiB cap: refused before parsing. */
        {
                size_t len = CRYPTO_MAX_PEM + 1;
                char *blob = malloc(len);
                assert_non_null(blob);
                memset(blob, '\n', len);
                memcpy(blob, text, strlen(text));
                test_write_bytes(big, blob, len, 0644);
                free(blob);
                assert_int_equal(crypto_load_cert(big, &x), -RINGIL_ETOOBIG);
                assert_int_equal(crypto_load_certs(big, &sk), -RINGIL_ETOOBIG);
                assert_int_equal(crypto_load_private_key(big, &got), -RINGIL_ETOOBIG);
        }
        n = i2d_X509(c1, &der);
        assert_true(n > 0);
        assert_int_equal(crypto_sha256(der, (size_t) n, want), 0);
        assert_int_equal(crypto_cert_sha256(c1, h), 0);
        assert_memory_equal(h, want, SHA256_LEN);
        OPENSSL_free(der);

        free(text);
        free(both);
        EVP_PKEY_free(k1);
        EVP_PKEY_free(k2);
        X509_free(c1);
        X509_free(c2);
        free(key);
        free(crt);
        free(two);
        free(big);
        free(ring);
}

static void test_memcmp_random_fail(void **state) {
        uint8_t a[64] = { 0 }, b[64] = { 0 }, r1[32], r2[32];
        (void) state;

        assert_int_equal(crypto_memcmp(a, b, sizeof(a)), 0);
        b[63] = 1;
        assert_int_not_equal(crypto_memcmp(a, b, sizeof(a)), 0);
        assert_int_equal(crypto_memcmp(a, b, 63), 0);
        b[0] = 0x80;
        assert_int_not_equal(crypto_memcmp(a, b, 1), 0);

        assert_int_equal(crypto_random(r1, sizeof(r1)), 0);
        assert_int_equal(crypto_random(r2, sizeof(r2)), 0);
        assert_memory_not_equal(r1, r2, sizeof(r1));
        assert_int_equal(crypto_random(r1, 0), 0);

        /* crypto_fail: the OpenSSL error becomes the detail, and the queue is left empty. */
        ringil_clear_detail();
        assert_null(d2i_X509(NULL, &(const unsigned char *){ (const unsigned char *) "\x30\x03\x02\x01" }, 4));
        assert_int_not_equal(ERR_peek_error(), 0);
        assert_int_equal(crypto_fail(-RINGIL_EMALFORMED, "certificate"), -RINGIL_EMALFORMED);
        assert_int_equal(ERR_peek_error(), 0);
        assert_true(strncmp(ringil_detail(), "certificate: ", 13) == 0);
        assert_true(strlen(ringil_detail()) > 13);
        assert_int_equal(crypto_fail(-EIO, "nothing queued"), -EIO);
        assert_string_equal(ringil_detail(), "nothing queued");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sha256_vectors),
                cmocka_unit_test(test_hex),
                cmocka_unit_test(test_base64_canonical),
                cmocka_unit_test(test_ed25519_vectors),
                cmocka_unit_test_setup_teardown(test_pem_loading, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test(test_memcmp_random_fail),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
