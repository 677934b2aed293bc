/* test-efi-authenticode.c: Authenticode signing and verification on a hand-built PE32+ image: the image hash
 * against a hand-assembled golden, forgeries of every part (image, signature, signed digest, trust), append
 * and replace, chains and expired certificates, and interoperation with sbsign/sbverify when installed. */
#include "tests.h"

#include <unistd.h>

#include "crypto.h"
#include "efi-authenticode.h"
#include "efi-pe.h"
#include "err.h"
#include "process.h"

struct pki {
        EVP_PKEY *ka, *kb, *kca, *kleaf;
        X509 *a, *b, *ca, *leaf;   /* a, b: self-signed db certificates; leaf: issued by ca, expired */
};

static int setup(void **state) {
        struct pki *p = calloc(1, sizeof(*p));

        assert_non_null(p);
        p->ka = test_key_new(true);   /* RSA-2048, as UEFI db keys are */
        p->kb = test_key_new(true);
        p->kca = test_key_new(false);
        p->kleaf = test_key_new(false);
        p->a = test_cert_new(p->ka, "db A", NULL, NULL, -86400, 86400L * 365, 0);
        p->b = test_cert_new(p->kb, "db B", NULL, NULL, -86400, 86400L * 365, 0);
        p->ca = test_cert_new(p->kca, "fleet CA", NULL, NULL, -86400L * 30, 86400L * 365, TEST_CERT_CA);
        p->leaf = test_cert_new(p->kleaf, "old signer", p->kca, p->ca, -86400L * 20, -86400L * 10, TEST_CERT_CODESIGN);
        *state = p;
        return 0;
}

static int teardown(void **state) {
        struct pki *p = *state;

        EVP_PKEY_free(p->ka);
        EVP_PKEY_free(p->kb);
        EVP_PKEY_free(p->kca);
        EVP_PKEY_free(p->kleaf);
        X509_free(p->a);
        X509_free(p->b);
        X509_free(p->ca);
        X509_free(p->leaf);
        free(p);
        return 0;
}

static uint8_t img[TEST_PE_BUF_SIZE];

static void sign(const uint8_t *in, size_t n, EVP_PKEY *k, X509 *c, unsigned flags, uint8_t **ret, size_t *ret_n,
                 unsigned *ret_replaced) {
        int r = authenticode_sign(in, n, k, c, flags, ret, ret_n, ret_replaced);
        if (r < 0)
                fail_msg("authenticode_sign: %d %s", r, ringil_detail());
}

static void test_image_hash_golden(void **state) {
        size_t n = test_pe64(img);
        uint8_t got[SHA256_LEN], want[SHA256_LEN];
        (void) state;

        test_pe64_hash(img, n, want);
        assert_int_equal(authenticode_image_hash(img, n, got), 0);
        assert_memory_equal(got, want, SHA256_LEN);
        /* The CheckSum and the certificate directory are outside the hash, everything else is inside. */
        img[TEST_PE_CHECKSUM] ^= 0xff;
        img[TEST_PE_CERT_DIR_64 + 7] = 0;   /* still an empty directory: size 0 */
        assert_int_equal(authenticode_image_hash(img, n, got), 0);
        assert_memory_equal(got, want, SHA256_LEN);
        img[TEST_PE_LFANEW + 8] ^= 1;      /* TimeDateStamp */
        assert_int_equal(authenticode_image_hash(img, n, got), 0);
        assert_memory_not_equal(got, want, SHA256_LEN);
}

static void test_sign_and_verify(void **state) {
        struct pki *p = *state;
        struct authenticode_info info;
        size_t n = test_pe64(img), sn;
        uint8_t *s = NULL, want[SHA256_LEN];
        unsigned replaced = 99;
        struct pe_image pe;

        sign(img, n, p->ka, p->a, 0, &s, &sn, &replaced);
        assert_int_equal(replaced, 0);
        assert_true(sn > n);
        assert_memory_equal(s + TEST_PE_HEADERS, img + TEST_PE_HEADERS, n - TEST_PE_HEADERS);   /* content kept */
        assert_int_equal(pe_parse(s, sn, &pe), 0);
        assert_int_equal(pe.n_certs, 1);
        assert_int_equal(pe.cert_offset, n);   /* 0x610 is 8-aligned: no padding before the table */
        /* The CheckSum field is the PE checksum of the new file. */
        assert_int_equal(pe_get32(s + TEST_PE_CHECKSUM), pe_checksum(s, sn, TEST_PE_CHECKSUM));

        memset(&info, 0, sizeof(info));
        assert_int_equal(authenticode_verify(s, sn, p->a, &info), 0);
        assert_int_equal(info.n_signatures, 1);
        assert_int_equal(info.valid_index, 0);
        assert_non_null(strstr(info.signer, "CN=db A"));
        test_pe64_hash(img, n, want);
        assert_memory_equal(info.image_hash, want, SHA256_LEN);
        free(s);
}

/* Every forgery fails, each with the error that names it; nothing but "valid" returns 0. */
static void test_forgeries(void **state) {
        struct pki *p = *state;
        struct authenticode_info info = { .n_signatures = 77 };
        size_t n = test_pe64(img), sn;
        uint8_t *s = NULL, hash[SHA256_LEN], *at;
        struct pe_image pe;
        struct pe_cert c;

        sign(img, n, p->ka, p->a, 0, &s, &sn, NULL);

        /* Not our key. */
        assert_int_equal(authenticode_verify(s, sn, p->b, &info), -RINGIL_EUNTRUSTED);
        assert_int_equal(info.n_signatures, 77);   /* untouched on failure */
        /* A byte of a section, of the headers, of the unsectioned tail: the image changed after signing. */
        {
                static const size_t offsets[] = { 0x200, 0x5ff, TEST_PE_LFANEW + 8, 0x605 };
                for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
                        s[offsets[i]] ^= 0x40;
                        assert_int_equal(authenticode_verify(s, sn, p->a, NULL), -RINGIL_EDIGEST);
                        s[offsets[i]] ^= 0x40;
                }
        }
        /* CheckSum is not covered: changing it is not a forgery (firmware ignores it too). */
        s[TEST_PE_CHECKSUM + 1] ^= 0x55;
        assert_int_equal(authenticode_verify(s, sn, p->a, NULL), 0);
        s[TEST_PE_CHECKSUM + 1] ^= 0x55;

        /* The signed image digest inside SpcIndirectDataContent, rewritten to another image's hash:
         * messageDigest no longer matches the content, so the signature itself fails. */
        test_pe64_hash(img, n, hash);
        assert_int_equal(pe_parse(s, sn, &pe), 0);
        assert_int_equal(pe_cert_get(&pe, 0, &c), 0);
        at = memmem(s + c.offset, c.length, hash, SHA256_LEN);
        assert_non_null(at);
        at[5] ^= 1;
        assert_int_equal(authenticode_verify(s, sn, p->a, NULL), -RINGIL_EBADSIG);
        at[5] ^= 1;
        /* The RSA signature value (the last 256 bytes of the DER). */
        {
                size_t der_end = c.offset + WIN_CERT_HEADER_SIZE + c.data_len;
                while (s[der_end - 1] == 0)
                        der_end--;   /* padding */
                s[der_end - 10] ^= 1;
                assert_int_equal(authenticode_verify(s, sn, p->a, NULL), -RINGIL_EBADSIG);
                s[der_end - 10] ^= 1;
        }
        assert_int_equal(authenticode_verify(s, sn, p->a, NULL), 0);   /* all restored */

        /* Not signed at all; a certificate entry that is not PKCS#7. */
        assert_int_equal(authenticode_verify(img, n, p->a, NULL), -RINGIL_EBADSIG);
        pe_put16(s + c.offset + 6, 0x0001);   /* WIN_CERT_TYPE_X509 */
        assert_int_equal(authenticode_verify(s, sn, p->a, NULL), -RINGIL_EBADSIG);
        pe_put16(s + c.offset + 6, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
        /* Bytes hidden after the PKCS#7 structure, inside dwLength. */
        if (c.length % WIN_CERT_ALIGN) {
                s[c.offset + c.length] = 0x01;
                pe_put32(s + c.offset, c.length + 1);
                assert_int_equal(authenticode_verify(s, sn, p->a, NULL), -RINGIL_EMALFORMED);
        }
        free(s);
}

static void test_append_and_replace(void **state) {
        struct pki *p = *state;
        struct authenticode_info info;
        size_t n = test_pe64(img), n1, n2, n3;
        uint8_t *s1 = NULL, *s2 = NULL, *s3 = NULL;
        unsigned replaced = 99;

        sign(img, n, p->ka, p->a, 0, &s1, &n1, NULL);
        sign(s1, n1, p->kb, p->b, AUTHENTICODE_SIGN_APPEND, &s2, &n2, &replaced);
        assert_int_equal(replaced, 0);
        assert_int_equal(authenticode_verify(s2, n2, p->a, &info), 0);
        assert_int_equal(info.n_signatures, 2);
        assert_int_equal(info.valid_index, 0);
        assert_int_equal(authenticode_verify(s2, n2, p->b, &info), 0);
        assert_int_equal(info.valid_index, 1);
        /* The default replaces: a retired key's signature does not outlive a re-signing. */
        sign(s2, n2, p->kb, p->b, 0, &s3, &n3, &replaced);
        assert_int_equal(replaced, 2);
        assert_int_equal(authenticode_verify(s3, n3, p->b, &info), 0);
        assert_int_equal(info.n_signatures, 1);
        assert_int_equal(authenticode_verify(s3, n3, p->a, NULL), -RINGIL_EUNTRUSTED);
        /* Replacing cut the old table off: the image is the original plus exactly one new table. */
        assert_memory_equal(s3 + TEST_PE_HEADERS, img + TEST_PE_HEADERS, n - TEST_PE_HEADERS);
        assert_true(n3 < n2);
        free(s1);
        free(s2);
        free(s3);
}

static void test_chain_expired_and_mismatch(void **state) {
        struct pki *p = *state;
        size_t n = test_pe64(img), sn;
        uint8_t *s = NULL;

        /* A leaf issued by the trusted CA verifies through the certificate the signature carries; its
         * validity ended ten days ago, and firmware (no trusted clock) does not check dates. */
        sign(img, n, p->kleaf, p->leaf, 0, &s, &sn, NULL);
        assert_int_equal(authenticode_verify(s, sn, p->ca, NULL), 0);
        assert_int_equal(authenticode_verify(s, sn, p->leaf, NULL), 0);   /* the leaf itself as db entry */
        assert_int_equal(authenticode_verify(s, sn, p->a, NULL), -RINGIL_EUNTRUSTED);
        free(s);
        s = NULL;
        /* Key and certificate that do not belong together are refused before anything is made. */
        assert_int_equal(authenticode_sign(img, n, p->ka, p->b, 0, &s, &sn, NULL), -EINVAL);
        assert_null(s);
        /* Not a PE image. */
        memcpy(img, "ZM", 2);
        assert_int_equal(authenticode_sign(img, n, p->ka, p->a, 0, &s, &sn, NULL), -RINGIL_EMALFORMED);
        assert_int_equal(authenticode_verify(img, n, p->a, NULL), -RINGIL_EMALFORMED);
}

/* Interoperation: sbverify accepts what we sign, and we accept what sbsign signs (same image hash). */
static void test_sbsign_interop(void **state) {
        struct pki *p = *state;
        char *d = test_tmpdir(), *key = test_path(d, "db.key"), *crt = test_path(d, "db.crt"),
             *in = test_path(d, "in.efi"), *ours = test_path(d, "ours.efi"), *theirs = test_path(d, "theirs.efi");
        size_t n = test_pe64(img), sn, tn;
        uint8_t *s = NULL;
        char *t;
        struct authenticode_info info;
        uint8_t want[SHA256_LEN];

        if (access("/usr/bin/sbsign", X_OK) < 0 || access("/usr/bin/sbverify", X_OK) < 0) {
                test_tmpdir_done(d);
                skip();
        }
        test_write_key_pem(key, p->ka);
        test_write_cert_pem(crt, p->a);
        test_write_bytes(in, img, n, 0644);
        sign(img, n, p->ka, p->a, 0, &s, &sn, NULL);
        test_write_bytes(ours, s, sn, 0644);
        assert_int_equal(process_run((char *const[]){ (char *) "/usr/bin/sbverify", (char *) "--cert", crt, ours, NULL },
                                     &(struct process_opts){ .exact_path = true, .out = PROCESS_STDIO_NULL, .err = PROCESS_STDIO_NULL }, NULL), 0);
        assert_int_equal(process_run((char *const[]){ (char *) "/usr/bin/sbsign", (char *) "--key", key, (char *) "--cert", crt,
                                                      (char *) "--output", theirs, in, NULL },
                                     &(struct process_opts){ .exact_path = true, .out = PROCESS_STDIO_NULL, .err = PROCESS_STDIO_NULL }, NULL), 0);
        t = test_read_file(theirs, &tn);
        assert_int_equal(authenticode_verify((uint8_t *) t, tn, p->a, &info), 0);
        test_pe64_hash(img, n, want);
        assert_memory_equal(info.image_hash, want, SHA256_LEN);
        assert_int_equal(authenticode_verify((uint8_t *) t, tn, p->b, NULL), -RINGIL_EUNTRUSTED);
        t[0x300] ^= 1;
        assert_int_equal(authenticode_verify((uint8_t *) t, tn, p->a, NULL), -RINGIL_EDIGEST);
        free(t);
        free(s);
        free(key);
        free(crt);
        free(in);
        free(ours);
        free(theirs);
        test_tmpdir_done(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_image_hash_golden),
                cmocka_unit_test(test_sign_and_verify),
                cmocka_unit_test(test_forgeries),
                cmocka_unit_test(test_append_and_replace),
                cmocka_unit_test(test_chain_expired_and_mismatch),
                cmocka_unit_test(test_sbsign_interop),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
