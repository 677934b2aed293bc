/* test-efi-esl.c: GUID conversion, EFI_SIGNATURE_LIST parse/build and rejection of malformed lists. */
#include "tests.h"

#include "efi-var.h"
#include "err.h"
#include "efi-esl.h"

static void test_guid_roundtrip(void **state) {
        char s[EFI_GUID_STRING_MAX];
        efi_guid g;
        (void) state;

        assert_int_equal(efi_guid_from_string("8be4df61-93ca-11d2-aa0d-00e098032b8c", &g), 0);
        assert_true(efi_guid_equal(&g, &EFI_GLOBAL_VARIABLE_GUID));
        /* Mixed-endian: first three fields little-endian on disk. */
        assert_int_equal(g.b[0], 0x61);
        assert_int_equal(g.b[3], 0x8b);
        assert_int_equal(g.b[4], 0xca);
        assert_int_equal(g.b[6], 0xd2);
        assert_int_equal(g.b[8], 0xaa);
        assert_int_equal(g.b[15], 0x8c);
        assert_string_equal(efi_guid_to_string(&EFI_CERT_X509_GUID, s), "a5c059a1-94e4-4aa7-87b5-ab155c2bf072");
        assert_int_equal(efi_guid_from_string("D719B2CB-3D3A-4596-A3BC-DAD00E67656F", &g), 0);
        assert_true(efi_guid_equal(&g, &EFI_IMAGE_SECURITY_DATABASE_GUID));
        assert_string_equal(efi_guid_to_string(&g, s), "d719b2cb-3d3a-4596-a3bc-dad00e67656f");
        assert_string_equal(efi_guid_to_string(&MICROSOFT_OWNER_GUID, s), "77fa9abd-0359-4d32-bd60-28f4e78f784b");
        assert_false(efi_guid_equal(&EFI_GLOBAL_VARIABLE_GUID, &LOADER_GUID));
}

static void test_guid_reject(void **state) {
        static const char *bad[] = {
                "", "8be4df61-93ca-11d2-aa0d-00e098032b8", "8be4df61-93ca-11d2-aa0d-00e098032b8c\n",
                "8be4df6193ca-11d2-aa0d-00e098032b8c0", "8be4df61-93ca-11d2-aa0d-00e098032b8g",
                "{8be4df61-93ca-11d2-aa0d-00e098032b}", " 8be4df61-93ca-11d2-aa0d-00e098032b8",
        };
        efi_guid g = { { 0x55 } };
        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(efi_guid_from_string(bad[i], &g), -EINVAL);
        assert_int_equal(efi_guid_from_string(NULL, &g), -EINVAL);
        assert_int_equal(g.b[0], 0x55);   /* untouched on failure */
}

static void test_build_parse(void **state) {
        _cleanup_buf_ struct buf b = BUF_INIT(ESL_MAX_SIZE);
        struct esl_entry *e = NULL;
        const uint8_t der1[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
        const uint8_t der2[] = { 0x30, 0x00 };
        size_t n = 99;
        (void) state;

        assert_int_equal(esl_append_x509(&b, &MICROSOFT_OWNER_GUID, der1, sizeof(der1)), 0);
        assert_int_equal(b.len, 28 + 16 + sizeof(der1));
        /* Header: type, ListSize, HeaderSize = 0, SignatureSize = 16 + DER. */
        assert_memory_equal(b.data, EFI_CERT_X509_GUID.b, 16);
        assert_int_equal(b.data[16], 28 + 16 + 5);
        assert_int_equal(b.data[20], 0);
        assert_int_equal(b.data[24], 16 + 5);
        assert_memory_equal(b.data + 28, MICROSOFT_OWNER_GUID.b, 16);
        assert_int_equal(esl_append_x509(&b, &LOADER_GUID, der2, sizeof(der2)), 0);

        assert_int_equal(esl_parse(b.data, b.len, &e, &n), 0);
        assert_int_equal(n, 2);
        assert_true(efi_guid_equal(&e[0].type, &EFI_CERT_X509_GUID));
        assert_true(efi_guid_equal(&e[0].owner, &MICROSOFT_OWNER_GUID));
        assert_int_equal(e[0].len, sizeof(der1));
        assert_memory_equal(e[0].data, der1, sizeof(der1));
        assert_true(efi_guid_equal(&e[1].owner, &LOADER_GUID));
        assert_int_equal(e[1].len, sizeof(der2));
        free(e);

        assert_int_equal(esl_parse(NULL, 0, &e, &n), 0);
        assert_int_equal(n, 0);
        free(e);

        assert_int_equal(esl_append_x509(&b, &LOADER_GUID, der2, 0), -EINVAL);
}

static void test_build_cap(void **state) {
        struct buf b = BUF_INIT(60);
        const uint8_t der[40] = { 0x30 };
        (void) state;
        assert_int_equal(esl_append_x509(&b, &LOADER_GUID, der, sizeof(der)), -EFBIG);
        assert_int_equal(b.len, 0);
        buf_free(&b);
}

/* A list with several SHA-256 entries and a non-zero SignatureHeaderSize. */
static void test_sha256_list_with_header(void **state) {
        uint8_t l[28 + 4 + 2 * 48];
        struct esl_entry *e = NULL;
        size_t n;
        (void) state;
        memset(l, 0xab, sizeof(l));
        memcpy(l, EFI_CERT_SHA256_GUID.b, 16);
        l[16] = sizeof(l); l[17] = l[18] = l[19] = 0;
        l[20] = 4; l[21] = l[22] = l[23] = 0;
        l[24] = 48; l[25] = l[26] = l[27] = 0;
        assert_int_equal(esl_parse(l, sizeof(l), &e, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(e[1].len, 32);
        assert_ptr_equal(e[1].data, l + 28 + 4 + 48 + 16);
        free(e);
        l[24] = 47;   /* SHA-256 entries must be 48 bytes */
        assert_int_equal(esl_parse(l, sizeof(l), &e, &n), -RINGIL_EMALFORMED);
}

static void put32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v; p[1] = (uint8_t) (v >> 8); p[2] = (uint8_t) (v >> 16); p[3] = (uint8_t) (v >> 24);
}

static void test_malformed(void **state) {
        _cleanup_buf_ struct buf b = BUF_INIT(ESL_MAX_SIZE);
        const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
        struct esl_entry *e = (struct esl_entry *) 0x1;
        size_t n = 77;
        uint8_t *c;
        (void) state;

        assert_int_equal(esl_append_x509(&b, &LOADER_GUID, der, sizeof(der)), 0);
        c = malloc(b.len);
        assert_non_null(c);

        /* Every proper prefix is truncated (or, for a zero-length prefix, empty and fine). */
        for (size_t k = 1; k < b.len; k++)
                assert_int_equal(esl_parse(b.data, k, &e, &n), -RINGIL_ETRUNCATED);

        memcpy(c, b.data, b.len);
        put32(c + 16, (uint32_t) b.len + 1);          /* ListSize past the end */
        assert_int_equal(esl_parse(c, b.len, &e, &n), -RINGIL_ETRUNCATED);
        put32(c + 16, 27);                            /* ListSize smaller than the header */
        assert_int_equal(esl_parse(c, b.len, &e, &n), -RINGIL_EMALFORMED);
        put32(c + 16, (uint32_t) b.len);
        put32(c + 24, 15);                            /* SignatureSize without room for the owner */
        assert_int_equal(esl_parse(c, b.len, &e, &n), -RINGIL_EMALFORMED);
        put32(c + 24, 0);                             /* zero: division trap */
        assert_int_equal(esl_parse(c, b.len, &e, &n), -RINGIL_EMALFORMED);
        put32(c + 24, 16 + 4);                        /* body not a multiple of SignatureSize */
        assert_int_equal(esl_parse(c, b.len, &e, &n), -RINGIL_EMALFORMED);
        put32(c + 24, 16 + 5);
        put32(c + 20, 0xffffffffu);                   /* HeaderSize overflowing ListSize */
        assert_int_equal(esl_parse(c, b.len, &e, &n), -RINGIL_EMALFORMED);
        put32(c + 20, 21);                            /* header eats the whole body: empty list */
        assert_int_equal(esl_parse(c, b.len, &e, &n), -RINGIL_EMALFORMED);
        put32(c + 20, 0);
        assert_int_equal(esl_parse(c, b.len, &e, &n), 0);
        free(e);
        e = (struct esl_entry *) 0x1;
        n = 77;

        /* Oversized input. */
        assert_int_equal(esl_parse(c, (size_t) ESL_MAX_SIZE + 1, &e, &n), -RINGIL_ETOOBIG);
        assert_ptr_equal(e, (struct esl_entry *) 0x1);
        assert_int_equal(n, 77);
        free(c);
}

static void test_too_many_entries(void **state) {
        size_t entries = ESL_MAX_ENTRIES + 1, size = 28 + entries * 48;
        uint8_t *l = calloc(1, size);
        struct esl_entry *e = NULL;
        size_t n;
        (void) state;
        assert_non_null(l);
        memcpy(l, EFI_CERT_SHA256_GUID.b, 16);
        put32(l + 16, (uint32_t) size);
        put32(l + 24, 48);
        assert_int_equal(esl_parse(l, size, &e, &n), -RINGIL_ETOOBIG);
        put32(l + 16, (uint32_t) (size - 48));
        assert_int_equal(esl_parse(l, size - 48, &e, &n), 0);
        assert_int_equal(n, ESL_MAX_ENTRIES);
        free(e);
        free(l);
}

static void test_sb_mode_truth_table(void **state) {
        (void) state;
        /* secure_boot, setup, audit, deployed */
        assert_int_equal(sb_mode_decode(0, 1, 0, 0), SB_MODE_SETUP);
        assert_int_equal(sb_mode_decode(0, 1, -1, -1), SB_MODE_SETUP);
        assert_int_equal(sb_mode_decode(0, 1, 1, 0), SB_MODE_AUDIT);
        assert_int_equal(sb_mode_decode(1, 0, 0, 0), SB_MODE_USER);
        assert_int_equal(sb_mode_decode(1, 0, -1, -1), SB_MODE_USER);
        assert_int_equal(sb_mode_decode(1, 0, 0, 1), SB_MODE_DEPLOYED);
        assert_int_equal(sb_mode_decode(0, 0, 0, 0), SB_MODE_DISABLED);
        /* Missing or garbage SecureBoot/SetupMode never decode to a mode. */
        for (int sb = -1; sb <= 2; sb++)
                for (int su = -1; su <= 2; su++)
                        if (sb < 0 || su < 0 || sb > 1 || su > 1)
                                assert_int_equal(sb_mode_decode(sb, su, 0, 0), SB_MODE_UNKNOWN);
        /* Inconsistent combinations. */
        assert_int_equal(sb_mode_decode(1, 1, 0, 0), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(1, 1, 1, 0), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(0, 1, 0, 1), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(1, 0, 1, 0), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(0, 0, 1, 0), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(0, 0, 0, 1), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(1, 0, 1, 1), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(1, 0, 2, 0), SB_MODE_UNKNOWN);
        assert_int_equal(sb_mode_decode(1, 0, 0, 2), SB_MODE_UNKNOWN);

        assert_string_equal(sb_mode_to_string(SB_MODE_SETUP), "setup");
        assert_string_equal(sb_mode_to_string(SB_MODE_AUDIT), "audit");
        assert_string_equal(sb_mode_to_string(SB_MODE_USER), "user");
        assert_string_equal(sb_mode_to_string(SB_MODE_DEPLOYED), "deployed");
        assert_string_equal(sb_mode_to_string(SB_MODE_DISABLED), "disabled");
        assert_string_equal(sb_mode_to_string(SB_MODE_UNKNOWN), "unknown");
        assert_string_equal(sb_mode_to_string((enum sb_mode) 42), "unknown");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_guid_roundtrip),
                cmocka_unit_test(test_guid_reject),
                cmocka_unit_test(test_build_parse),
                cmocka_unit_test(test_build_cap),
                cmocka_unit_test(test_sha256_list_with_header),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_too_many_entries),
                cmocka_unit_test(test_sb_mode_truth_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
