/* test-efi-keys.c: the sbctl-compatible bundle: layout, modes, no overwrite, GUID rules, ESL/.auth from it. */
#include "tests.h"

#include <sys/stat.h>

#include "efi-authvar.h"
#include "err.h"
#include "fileio.h"
#include "efi-keys.h"

static char *dir;   /* one bundle for the whole file: RSA-4096 generation is slow */

static int setup(void **state) {
        struct keys_create_result res;
        (void) state;
        dir = test_tmpdir();
        if (!dir)
                return -1;
        return keys_create(dir, &res) < 0 || !res.guid_created ? -1 : 0;
}

static int teardown(void **state) {
        (void) state;
        test_tmpdir_done(dir);
        return 0;
}

/* Mode of dir/sub[/name.ext]. */
static mode_t mode_of(const char *sub, const char *name, const char *ext) {
        char p[4096];
        struct stat st;
        if (name)
                snprintf(p, sizeof(p), "%s/%s/%s.%s", dir, sub, name, ext);
        else
                snprintf(p, sizeof(p), "%s/%s", dir, sub);
        assert_int_equal(lstat(p, &st), 0);
        return st.st_mode & 07777;
}

static void test_table(void **state) {
        (void) state;
        assert_string_equal(sb_key_name(SB_KEY_PK), "PK");
        assert_string_equal(sb_key_name(SB_KEY_KEK), "KEK");
        assert_string_equal(sb_key_name(SB_KEY_DB), "db");
        assert_string_equal(sb_key_description(SB_KEY_KEK), "Key Exchange Key");
        assert_int_equal(sb_key_signer(SB_KEY_PK), SB_KEY_PK);
        assert_int_equal(sb_key_signer(SB_KEY_KEK), SB_KEY_PK);
        assert_int_equal(sb_key_signer(SB_KEY_DB), SB_KEY_KEK);
        assert_true(efi_guid_equal(sb_key_vendor(SB_KEY_DB), &EFI_IMAGE_SECURITY_DATABASE_GUID));
        assert_true(efi_guid_equal(sb_key_vendor(SB_KEY_PK), &EFI_GLOBAL_VARIABLE_GUID));
}

static void test_layout(void **state) {
        (void) state;
        assert_int_equal(mode_of("GUID", NULL, NULL), 0644);
        assert_int_equal(mode_of("keys", NULL, NULL), 0700);
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                char sub[32];
                snprintf(sub, sizeof(sub), "keys/%s", sb_key_name(k));
                assert_int_equal(mode_of(sub, NULL, NULL), 0700);
                assert_int_equal(mode_of(sub, sb_key_name(k), "key"), 0400);
                assert_int_equal(mode_of(sub, sb_key_name(k), "pem"), 0400);
        }
}

static void test_load_and_match(void **state) {
        (void) state;
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                EVP_PKEY *key = NULL;
                X509 *cert = NULL;
                char cn[64];
                assert_int_equal(keys_load(dir, k, &key, &cert), 0);
                assert_int_equal(EVP_PKEY_get_bits(key), 4096);
                assert_int_equal(X509_get_version(cert), X509_VERSION_3);
                assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0);
                assert_string_equal(cn, sb_key_description(k));
                assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
                assert_int_equal(X509_get_ext_count(cert), 0);
                /* Positive: a negative serial has type V_ASN1_NEG_INTEGER. */
                assert_int_equal(ASN1_STRING_type(X509_get0_serialNumber(cert)), V_ASN1_INTEGER);
                EVP_PKEY_free(key);
                X509_free(cert);
        }
        /* A key that does not belong to the certificate is refused. */
        {
                char a[4096], b[4096];
                EVP_PKEY *key = NULL;
                X509 *cert = NULL;
                snprintf(a, sizeof(a), "%s/keys/db/db.key", dir);
                snprintf(b, sizeof(b), "%s/keys/db/db.key.orig", dir);
                assert_int_equal(rename(a, b), 0);
                {
                        char *kek = test_path(dir, "keys/KEK/KEK.key"), *data;
                        size_t len;
                        data = test_read_file(kek, &len);
                        snprintf(a, sizeof(a), "%s/keys/db/db.key", dir);
                        test_write_bytes(a, data, len, 0600);
                        free(data);
                        free(kek);
                }
                assert_int_equal(keys_load(dir, SB_KEY_DB, &key, &cert), -RINGIL_EMALFORMED);
                assert_null(key);
                snprintf(a, sizeof(a), "%s/keys/db/db.key", dir);
                assert_int_equal(unlink(a), 0);
                assert_int_equal(rename(b, a), 0);
        }
}

static void test_no_overwrite(void **state) {
        struct keys_create_result res;
        uint8_t *before = NULL, *after = NULL;
        size_t n1, n2;
        char p[4096];
        (void) state;
        snprintf(p, sizeof(p), "%s/keys/PK/PK.key", dir);
        assert_int_equal(read_full_file(p, 0, 1 << 16, &before, &n1), 0);
        assert_int_equal(keys_create(dir, &res), -EEXIST);
        assert_false(res.guid_created);
        assert_int_equal(read_full_file(p, 0, 1 << 16, &after, &n2), 0);
        assert_int_equal(n1, n2);
        assert_memory_equal(before, after, n1);
        free(before);
        free(after);
}

static void test_guid_rules(void **state) {
        const char *d = *state;
        char p[4096];
        struct keys_create_result res;
        efi_guid g;
        snprintf(p, sizeof(p), "%s/GUID", d);
        assert_int_equal(keys_read_guid(d, &g), -ENOENT);
        assert_int_equal(atomic_write_file(p, "8be4df61-93ca-11d2-aa0d-00e098032b8c\n", 37, 0644, 0), 0);
        assert_int_equal(keys_read_guid(d, &g), -RINGIL_EMALFORMED);
        assert_int_equal(keys_create(d, &res), -RINGIL_EMALFORMED);   /* before any keygen */
        assert_int_equal(atomic_write_file(p, "8BE4DF61-93CA-11D2-AA0D-00E098032B8C", 36, 0644, 0), 0);
        assert_int_equal(keys_read_guid(d, &g), 0);
        assert_true(efi_guid_equal(&g, &EFI_GLOBAL_VARIABLE_GUID));
        /* Partial bundle: refused without generating anything, the GUID is kept. */
        snprintf(p, sizeof(p), "%s/keys/KEK", d);
        assert_int_equal(mkdir_p(p, 0700), 0);
        assert_int_equal(keys_create(d, &res), -EEXIST);
        assert_false(res.guid_created);
        assert_true(efi_guid_equal(&res.guid, &EFI_GLOBAL_VARIABLE_GUID));
        snprintf(p, sizeof(p), "%s/keys/PK", d);
        assert_int_equal(access(p, F_OK), -1);
}

static void test_esl_and_auth(void **state) {
        (void) state;
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                _cleanup_buf_ struct buf esl = BUF_INIT(ESL_MAX_SIZE), a = BUF_INIT(AUTH_MAX_SIZE);
                struct esl_entry *e = NULL;
                X509 *cert = NULL, *signer = NULL, *other = NULL;
                unsigned char *der = NULL;
                efi_guid g;
                size_t n;
                int len;

                assert_int_equal(keys_read_guid(dir, &g), 0);
                assert_int_equal(keys_build_esl(dir, k, &esl), 0);
                assert_int_equal(esl_parse(esl.data, esl.len, &e, &n), 0);
                assert_int_equal(n, 1);
                assert_true(efi_guid_equal(&e[0].owner, &g));
                assert_int_equal(keys_load(dir, k, NULL, &cert), 0);
                len = i2d_X509(cert, &der);
                assert_int_equal((size_t) len, e[0].len);
                assert_memory_equal(der, e[0].data, e[0].len);
                OPENSSL_free(der);
                free(e);

                assert_int_equal(keys_build_auth(dir, k, 1772600767, &a), 0);
                assert_int_equal(keys_load(dir, sb_key_signer(k), NULL, &signer), 0);
                assert_int_equal(keys_load(dir, k == SB_KEY_DB ? SB_KEY_PK : SB_KEY_DB, NULL, &other), 0);
                assert_int_equal(auth_verify(a.data, a.len, sb_key_name(k), sb_key_vendor(k), AUTH_ATTRIBUTES, signer), 0);
                assert_int_equal(auth_verify(a.data, a.len, sb_key_name(k), sb_key_vendor(k), AUTH_ATTRIBUTES, other),
                                 -RINGIL_EBADSIG);
                X509_free(cert);
                X509_free(signer);
                X509_free(other);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_layout),
                cmocka_unit_test(test_load_and_match),
                cmocka_unit_test(test_no_overwrite),
                cmocka_unit_test_setup_teardown(test_guid_rules, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test(test_esl_and_auth),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
