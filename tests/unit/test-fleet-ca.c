/* test-fleet-ca.c: device CA profiles, CSR signing keeps only the public key, names are strictly checked,
 * serial numbers in the one hex spelling the server stores and compares. */
#include "tests.h"

#include <sys/stat.h>

#include "crypto.h"
#include "err.h"
#include "fleet-ca.h"

static void test_names(void **state) {
        (void) state;
        assert_int_equal(ca_name_valid("drone-01"), 0);
        assert_int_equal(ca_name_valid("a.b_c"), 0);
        assert_int_equal(ca_name_valid(""), -EINVAL);
        assert_int_equal(ca_name_valid("-x"), -EINVAL);
        assert_int_equal(ca_name_valid(".x"), -EINVAL);
        assert_int_equal(ca_name_valid("a/b"), -EINVAL);
        assert_int_equal(ca_name_valid("a b"), -EINVAL);
        assert_int_equal(ca_name_valid("x'--"), -EINVAL);
        assert_int_equal(ca_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), -EINVAL);
}

static void test_create_issue(void **state) {
        const char *d = *state;
        char path[512], cn[CA_NAME_MAX + 1];
        EVP_PKEY *cak = NULL;
        X509 *cac = NULL, *cert = NULL;
        struct stat st;
        X509_STORE *store;
        X509_STORE_CTX *ctx;

        assert_int_equal(ca_create(d, NULL, 30), 0);
        assert_int_equal(ca_create(d, NULL, 30), -EEXIST);
        snprintf(path, sizeof(path), "%s/ca.key", d);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0400);
        assert_int_equal(ca_issue(d, "drone-7", CA_PROFILE_DEVICE, NULL, 10, d), 0);
        assert_int_equal(ca_issue(d, "drone-7", CA_PROFILE_DEVICE, NULL, 10, d), -EEXIST);
        assert_int_equal(ca_issue(d, "bad/name", CA_PROFILE_DEVICE, NULL, 10, d), -EINVAL);
        snprintf(path, sizeof(path), "%s/drone-7.pem", d);
        assert_int_equal(crypto_load_cert(path, &cert), 0);
        assert_int_equal(ca_cert_cn(cert, cn), 0);
        assert_string_equal(cn, "drone-7");
        assert_false(ca_cert_is_operator(cert));
        assert_int_equal(ca_load(d, &cak, &cac), 0);

        /* chains to the CA, and is good for TLS client auth only */
        store = X509_STORE_new();
        X509_STORE_add_cert(store, cac);
        ctx = X509_STORE_CTX_new();
        X509_STORE_CTX_init(ctx, store, cert, NULL);
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        assert_int_equal(X509_verify_cert(ctx), 1);
        X509_STORE_CTX_cleanup(ctx);
        X509_STORE_CTX_init(ctx, store, cert, NULL);
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
        assert_int_not_equal(X509_verify_cert(ctx), 1);
        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
        X509_free(cert);
        X509_free(cac);
        EVP_PKEY_free(cak);
}

static void test_csr(void **state) {
        const char *d = *state;
        EVP_PKEY *cak = NULL, *key = NULL, *pub = NULL, *rsa;
        X509 *cac = NULL, *cert = NULL;
        char *csr = NULL, cn[CA_NAME_MAX + 1];

        assert_int_equal(ca_create(d, "test CA", 30), 0);
        assert_int_equal(ca_load(d, &cak, &cac), 0);
        assert_int_equal(ca_generate_key(&key), 0);
        assert_int_equal(ca_make_csr_pem(key, "drone-9", &csr), 0);
        assert_int_equal(ca_csr_pubkey(csr, strlen(csr), &pub), 0);
        /* the name comes from the enrollment record, not from the CSR */
        assert_int_equal(ca_sign(cak, cac, pub, "drone-10", CA_PROFILE_DEVICE, NULL, 10, &cert), 0);
        assert_int_equal(ca_cert_cn(cert, cn), 0);
        assert_string_equal(cn, "drone-10");
        assert_int_equal(X509_check_private_key(cert, key), 1);
        X509_free(cert);
        /* a corrupted CSR fails */
        csr[strlen(csr) / 2] ^= 0x01;
        assert_true(ca_csr_pubkey(csr, strlen(csr), &rsa) < 0);
        /* an RSA key is refused */
        rsa = EVP_RSA_gen(2048);
        assert_int_equal(ca_sign(cak, cac, rsa, "drone-11", CA_PROFILE_DEVICE, NULL, 10, &cert), -RINGIL_EUNTRUSTED);
        EVP_PKEY_free(rsa);
        free(csr);
        EVP_PKEY_free(pub);
        EVP_PKEY_free(key);
        EVP_PKEY_free(cak);
        X509_free(cac);
}

static void test_operator_server(void **state) {
        const char *d = *state;
        char path[512];
        const char *sans[] = { "DNS:fleet.example", NULL };
        const char *bad_sans[] = { "URI:x", NULL };
        X509 *cert = NULL;
        assert_int_equal(ca_create(d, NULL, 30), 0);
        assert_int_equal(ca_issue(d, "alice", CA_PROFILE_OPERATOR, NULL, 10, d), 0);
        snprintf(path, sizeof(path), "%s/alice.pem", d);
        assert_int_equal(crypto_load_cert(path, &cert), 0);
        assert_true(ca_cert_is_operator(cert));
        X509_free(cert);
        assert_int_equal(ca_issue(d, "127.0.0.1", CA_PROFILE_SERVER, sans, 10, d), 0);
        snprintf(path, sizeof(path), "%s/127.0.0.1.pem", d);
        assert_int_equal(crypto_load_cert(path, &cert), 0);
        assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
        assert_int_equal(X509_check_host(cert, "fleet.example", 0, 0, NULL), 1);
        X509_free(cert);
        assert_int_equal(ca_issue(d, "srv2", CA_PROFILE_SERVER, bad_sans, 10, d), -EINVAL);
}

/* A certificate whose serial is the hex number `serial' (a leading '-' for a negative one). */
static X509 *cert_with_serial(EVP_PKEY *k, const char *serial) {
        X509 *x = test_cert_new(k, "serial", NULL, NULL, -60, 3600, 0);
        BIGNUM *bn = NULL;

        assert_true(BN_hex2bn(&bn, serial) > 0);
        assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
        BN_free(bn);
        return x;
}

static void test_serial_hex(void **state) {
        static const struct {
                const char *serial, *want;
        } ok[] = {
                { "0", "0" },
                { "1", "01" },                      /* BN_bn2hex pads to whole bytes */
                { "ABCDEF", "abcdef" },             /* lowercase: the server compares strings */
                { "00A0B", "0a0b" },                /* leading zero bytes dropped, the byte kept whole */
                { "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "7fffffffffffffffffffffffffffffff" },   /* ringil's 127-bit */
                { "-5", "-05" },
                /* exactly CA_SERIAL_HEX_MAX digits */
                { "FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210",
                  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210" },
        };
        EVP_PKEY *k = test_key_new(false);
        char buf[CA_SERIAL_HEX_MAX + 1];
        X509 *x;
        (void) state;

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                x = cert_with_serial(k, ok[i].serial);
                memset(buf, 'X', sizeof(buf));
                assert_int_equal(ca_cert_serial_hex(x, buf), 0);
                assert_string_equal(buf, ok[i].want);
                X509_free(x);
        }
        /* One byte more than fits: refused, and the buffer is not touched. */
        x = cert_with_serial(k, "01FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210");
        memset(buf, 'X', sizeof(buf));
        assert_int_equal(ca_cert_serial_hex(x, buf), -ERANGE);
        for (size_t i = 0; i < sizeof(buf); i++)
                assert_int_equal(buf[i], 'X');
        X509_free(x);
        EVP_PKEY_free(k);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_serial_hex),
                cmocka_unit_test_setup_teardown(test_create_issue, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_csr, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_operator_server, test_setup_tmpdir, test_teardown_tmpdir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
