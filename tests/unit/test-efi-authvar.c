/* test-efi-authvar.c: .auth payloads: EFI_TIME, signed bytes, build/parse/verify and forgeries that must fail. */
#include "tests.h"

#include "efi-authvar.h"
#include "err.h"
#include "efi-keys.h"

static EVP_PKEY *key_a, *key_b;
static X509 *cert_a, *cert_b;

static int setup(void **state) {
        (void) state;
        if (keys_generate("Test A", 1700000000, &key_a, &cert_a) < 0 ||
            keys_generate("Test B", 1700000000, &key_b, &cert_b) < 0)
                return -1;
        return 0;
}

static int teardown(void **state) {
        (void) state;
        EVP_PKEY_free(key_a);
        EVP_PKEY_free(key_b);
        X509_free(cert_a);
        X509_free(cert_b);
        return 0;
}

static void test_efi_time(void **state) {
        uint8_t t[EFI_TIME_SIZE];
        /* 2026-03-04T05:06:07Z */
        const uint8_t want[EFI_TIME_SIZE] = { 0xea, 0x07, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        (void) state;
        assert_int_equal(efi_time_from_unix(1772600767, t), 0);
        assert_memory_equal(t, want, sizeof(want));
}

static void test_signed_bytes(void **state) {
        _cleanup_buf_ struct buf b = BUF_INIT(1024);
        const uint8_t tm[EFI_TIME_SIZE] = { 0xea, 0x07, 3, 4 };
        (void) state;
        assert_int_equal(auth_signed_bytes("db", &EFI_IMAGE_SECURITY_DATABASE_GUID, AUTH_ATTRIBUTES, tm,
                                           (const uint8_t *) "ESL", 3, &b), 0);
        assert_int_equal(b.len, 4 + 16 + 4 + 16 + 3);
        assert_memory_equal(b.data, "d\0b\0", 4);
        assert_memory_equal(b.data + 4, EFI_IMAGE_SECURITY_DATABASE_GUID.b, 16);
        assert_memory_equal(b.data + 20, "\x27\0\0\0", 4);
        assert_memory_equal(b.data + 24, tm, 16);
        assert_memory_equal(b.data + 40, "ESL", 3);
        buf_reset(&b);
        assert_int_equal(auth_signed_bytes("", &LOADER_GUID, 0, tm, NULL, 0, &b), -EINVAL);
        assert_int_equal(auth_signed_bytes("d\xc3\xa9", &LOADER_GUID, 0, tm, NULL, 0, &b), -EINVAL);
}

static void make_esl(struct buf *esl, X509 *cert) {
        unsigned char *der = NULL;
        int n = i2d_X509(cert, &der);
        assert_true(n > 0);
        assert_int_equal(esl_append_x509(esl, &MICROSOFT_OWNER_GUID, der, (size_t) n), 0);
        OPENSSL_free(der);
}

static void test_build_parse_verify(void **state) {
        _cleanup_buf_ struct buf esl = BUF_INIT(ESL_MAX_SIZE), a = BUF_INIT(AUTH_MAX_SIZE);
        struct auth_parts p;
        (void) state;

        make_esl(&esl, cert_b);
        assert_int_equal(auth_build("KEK", &EFI_GLOBAL_VARIABLE_GUID, AUTH_ATTRIBUTES, 1772600767, esl.data, esl.len,
                                    key_a, cert_a, &a), 0);
        assert_int_equal(auth_parse(a.data, a.len, &p), 0);
        assert_ptr_equal(p.efi_time, a.data);
        assert_int_equal(p.esl_len, esl.len);
        assert_memory_equal(p.esl, esl.data, esl.len);
        assert_int_equal(p.sig[0], 0x30);   /* SignedData SEQUENCE, … */
        assert_int_equal(a.data[20], 0x00);
        assert_int_equal(a.data[21], 0x02); /* wRevision 0x0200 */
        assert_int_equal(a.data[22], 0xf1);
        assert_int_equal(a.data[23], 0x0e); /* WIN_CERT_TYPE_EFI_GUID */

        assert_int_equal(auth_verify(a.data, a.len, "KEK", &EFI_GLOBAL_VARIABLE_GUID, AUTH_ATTRIBUTES, cert_a), 0);
        /* Wrong signer, name, vendor, attributes: all rejected. */
        assert_int_equal(auth_verify(a.data, a.len, "KEK", &EFI_GLOBAL_VARIABLE_GUID, AUTH_ATTRIBUTES, cert_b),
                         -RINGIL_EBADSIG);
        assert_int_equal(auth_verify(a.data, a.len, "PK", &EFI_GLOBAL_VARIABLE_GUID, AUTH_ATTRIBUTES, cert_a),
                         -RINGIL_EBADSIG);
        assert_int_equal(auth_verify(a.data, a.len, "KEK", &EFI_IMAGE_SECURITY_DATABASE_GUID, AUTH_ATTRIBUTES,
                                     cert_a), -RINGIL_EBADSIG);
        assert_int_equal(auth_verify(a.data, a.len, "KEK", &EFI_GLOBAL_VARIABLE_GUID, 0x7, cert_a), -RINGIL_EBADSIG);
}

static void test_forgeries(void **state) {
        _cleanup_buf_ struct buf esl = BUF_INIT(ESL_MAX_SIZE), a = BUF_INIT(AUTH_MAX_SIZE);
        uint8_t *c;
        (void) state;

        make_esl(&esl, cert_b);
        assert_int_equal(auth_build("db", &EFI_IMAGE_SECURITY_DATABASE_GUID, AUTH_ATTRIBUTES, 1772600767, esl.data,
                                    esl.len, key_a, cert_a, &a), 0);
        c = malloc(a.len);
        assert_non_null(c);
        /* Flip a bit in every byte (time, headers, signature, embedded certificate, ESL): never accepted. */
        for (size_t i = 0; i < a.len; i++) {
                memcpy(c, a.data, a.len);
                c[i] ^= 0x01;
                assert_int_not_equal(auth_verify(c, a.len, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, AUTH_ATTRIBUTES,
                                                 cert_a), 0);
        }
        /* Every truncation fails. */
        for (size_t k = 0; k < a.len; k += 13)
                assert_int_not_equal(auth_verify(a.data, k, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, AUTH_ATTRIBUTES,
                                                 cert_a), 0);
        /* One byte short of the end: the ESL no longer parses. */
        memcpy(c, a.data, a.len);
        assert_int_not_equal(auth_verify(a.data, a.len - 1, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID,
                                         AUTH_ATTRIBUTES, cert_a), 0);
        free(c);
}

static void test_parse_errors(void **state) {
        uint8_t h[64] = { 0 };
        struct auth_parts p;
        (void) state;
        assert_int_equal(auth_parse(h, 39, &p), -RINGIL_ETRUNCATED);
        assert_int_equal(auth_parse(h, sizeof(h), &p), -RINGIL_EMALFORMED);   /* wRevision 0 */
        h[21] = 0x02;
        h[22] = 0xf1;
        h[23] = 0x0e;
        memcpy(h + 24, EFI_CERT_TYPE_PKCS7_GUID.b, 16);
        h[16] = 24;                                                          /* no signature */
        assert_int_equal(auth_parse(h, sizeof(h), &p), -RINGIL_EMALFORMED);
        h[16] = 49;                                                          /* past the end */
        assert_int_equal(auth_parse(h, sizeof(h), &p), -RINGIL_ETRUNCATED);
        h[16] = 48;
        assert_int_equal(auth_parse(h, sizeof(h), &p), 0);
        assert_int_equal(p.sig_len, 24);
        assert_int_equal(p.esl_len, 0);
        /* EFI_TIME: a real date parses; non-zero Nanosecond/TimeZone/Daylight/Pad or an impossible date
         * does not (firmware would refuse the write). */
        h[0] = 0xea, h[1] = 0x07, h[2] = 11, h[3] = 28, h[4] = 3, h[5] = 4, h[6] = 5;  /* 2026-11-28 03:04:05 */
        assert_int_equal(auth_parse(h, sizeof(h), &p), 0);
        for (int i = 7; i < 16; i++) {
                h[i] = 1;
                assert_int_equal(auth_parse(h, sizeof(h), &p), -RINGIL_EMALFORMED);
                h[i] = 0;
        }
        h[2] = 13;
        assert_int_equal(auth_parse(h, sizeof(h), &p), -RINGIL_EMALFORMED);
        h[2] = 11, h[6] = 60;
        assert_int_equal(auth_parse(h, sizeof(h), &p), -RINGIL_EMALFORMED);
        h[6] = 5;
        h[19] = 0xff;                                                        /* 4 GiB */
        assert_int_equal(auth_parse(h, sizeof(h), &p), -RINGIL_ETRUNCATED);
        assert_int_equal(auth_parse(h, AUTH_MAX_SIZE + 1, &p), -RINGIL_ETOOBIG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_efi_time),
                cmocka_unit_test(test_signed_bytes),
                cmocka_unit_test(test_build_parse_verify),
                cmocka_unit_test(test_forgeries),
                cmocka_unit_test(test_parse_errors),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
