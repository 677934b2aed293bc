/* test-efi-pe.c: the PE/COFF parser on hand-built PE32/PE32+ images: layout rules, caps, hash, checksum. */
#include "tests.h"

#include "crypto.h"
#include "err.h"
#include "efi-pe.h"

static uint8_t img[TEST_PE_BUF_SIZE];

/* Appends a certificate table of `n` minimal entries (16 bytes each) and points entry 4 at it. */
static size_t add_cert_table(uint8_t *buf, size_t size, unsigned n) {
        size_t off = (size + 7) & ~(size_t) 7;
        memset(buf + size, 0, off - size);
        for (unsigned i = 0; i < n; i++) {
                uint8_t *e = buf + off + 16u * i;
                pe_put32(e, 16);
                pe_put16(e + 4, WIN_CERT_REVISION_2_0);
                pe_put16(e + 6, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
                memset(e + 8, 0xa5, 8);
        }
        pe_put32(buf + TEST_PE_CERT_DIR_64, (uint32_t) off);
        pe_put32(buf + TEST_PE_CERT_DIR_64 + 4, 16u * n);
        return off + 16u * n;
}

static int parse(const uint8_t *buf, size_t size) {
        struct pe_image pe;
        return pe_parse(buf, size, &pe);
}

static void test_parse_minimal(void **state) {
        size_t size = test_pe64(img);
        struct pe_image pe;

        (void) state;
        assert_int_equal(pe_parse(img, size, &pe), 0);
        assert_true(pe.pe32plus);
        assert_int_equal(pe.machine, 0x8664);
        assert_int_equal(pe.size_of_headers, TEST_PE_HEADERS);
        assert_int_equal(pe.checksum_offset, TEST_PE_CHECKSUM);
        assert_int_equal(pe.cert_dir_offset, TEST_PE_CERT_DIR_64);
        assert_int_equal(pe.n_ranges, 2);
        assert_int_equal(pe.sum_of_bytes_hashed, 0x600);
        assert_int_equal(pe.signed_end, size);
        assert_int_equal(pe.n_certs, 0);
}

static void test_hash_regions(void **state) {
        size_t size = test_pe64(img);
        struct pe_image pe;
        uint8_t h[32], want[32], h2[32];

        (void) state;
        assert_int_equal(pe_parse(img, size, &pe), 0);
        assert_int_equal(pe_authenticode_sha256(&pe, h), 0);
        test_pe64_hash(img, size, want);
        assert_memory_equal(h, want, 32);

        /* CheckSum is not hashed. */
        pe_put32(img + TEST_PE_CHECKSUM, 0x12345678);
        assert_int_equal(pe_parse(img, size, &pe), 0);
        assert_int_equal(pe_authenticode_sha256(&pe, h2), 0);
        assert_memory_equal(h, h2, 32);

        /* A hashed header field, a section byte and a trailing byte all are. */
        static const size_t offsets[] = { TEST_PE_LFANEW + 8, 0x3ff, 0x400, 0x605 };
        for (size_t i = 0; i < ELEMENTSOF(offsets); i++) {
                img[offsets[i]] ^= 1;
                assert_int_equal(pe_parse(img, size, &pe), 0);
                assert_int_equal(pe_authenticode_sha256(&pe, h2), 0);
                assert_memory_not_equal(h, h2, 32);
                img[offsets[i]] ^= 1;
        }
}

static void test_sections_hashed_in_file_order(void **state) {
        size_t size = test_pe64(img);
        struct pe_image pe;
        uint8_t h[32], want[32];

        (void) state;
        /* Section table lists .data before .text: data is still hashed in file order. */
        memset(img + TEST_PE_SECTAB, 0, 80);
        test_pe_section(img, TEST_PE_SECTAB, 0, ".data", 0x400, 0x200);
        test_pe_section(img, TEST_PE_SECTAB, 1, ".text", 0x200, 0x200);
        assert_int_equal(pe_parse(img, size, &pe), 0);
        assert_int_equal(pe.ranges[0].offset, 0x200);
        assert_int_equal(pe.ranges[1].offset, 0x400);
        assert_int_equal(pe_authenticode_sha256(&pe, h), 0);
        test_pe64_hash(img, size, want);
        assert_memory_equal(h, want, 32);
}

static void test_pe32(void **state) {
        size_t size = test_pe64(img);
        struct pe_image pe;

        (void) state;
        /* PE32: data directories at +96, so a 224-byte optional header; move the section table. */
        memset(img + TEST_PE_SECTAB, 0, 80);
        pe_put16(img + TEST_PE_LFANEW + 20, 224);
        pe_put16(img + TEST_PE_OPT, PE_OPT_MAGIC_PE32);
        pe_put32(img + TEST_PE_OPT + 108, 0);
        pe_put32(img + TEST_PE_OPT + 92, 16);
        test_pe_section(img, TEST_PE_OPT + 224, 0, ".text", 0x200, 0x200);
        test_pe_section(img, TEST_PE_OPT + 224, 1, ".data", 0x400, 0x200);
        assert_int_equal(pe_parse(img, size, &pe), 0);
        assert_false(pe.pe32plus);
        assert_int_equal(pe.cert_dir_offset, TEST_PE_OPT + 96 + 32);
}

static void test_truncated_everywhere(void **state) {
        size_t size = test_pe64(img);

        (void) state;
        /* Every cut into headers or sections fails cleanly (trailing data may be cut freely). */
        for (size_t n = 0; n < 0x600; n++) {
                int r = parse(img, n);
                assert_true(r == -RINGIL_ETRUNCATED || r == -RINGIL_EMALFORMED);
        }
        assert_int_equal(parse(img, 0x600), 0);
        assert_int_equal(parse(img, size), 0);
}

static void test_malformed_headers(void **state) {
        size_t size;

        (void) state;
#define EXPECT(r, mutate)                                \
        do {                                             \
                size = test_pe64(img);                  \
                mutate;                                  \
                assert_int_equal(parse(img, size), (r)); \
        } while (0)
        EXPECT(-RINGIL_EMALFORMED, img[1] = 'X');
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + 0x3c, 0x20));                    /* into DOS header */
        EXPECT(-RINGIL_ETRUNCATED, pe_put32(img + 0x3c, 0xfffffff0));              /* beyond the file */
        EXPECT(-RINGIL_EMALFORMED, img[TEST_PE_LFANEW + 1] = 'F');
        EXPECT(-RINGIL_EMALFORMED, pe_put16(img + TEST_PE_OPT, 0x107));                    /* ROM image */
        EXPECT(-RINGIL_ETOOBIG, pe_put16(img + TEST_PE_LFANEW + 6, 97));
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + TEST_PE_OPT + 108, 4));                  /* no entry 4 */
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + TEST_PE_OPT + 108, 17));
        EXPECT(-RINGIL_EMALFORMED, pe_put16(img + TEST_PE_LFANEW + 20, 112 + 32));         /* opt hdr too small */
        EXPECT(-RINGIL_EMALFORMED, (pe_put16(img + TEST_PE_LFANEW + 20, 200), pe_put32(img + TEST_PE_OPT + 108, 16)));
        EXPECT(-RINGIL_ETRUNCATED, pe_put16(img + TEST_PE_LFANEW + 20, 0xfff0));           /* past the file */
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + TEST_PE_OPT + 60, 0x100));               /* < section table */
        EXPECT(-RINGIL_ETRUNCATED, pe_put32(img + TEST_PE_OPT + 60, 0x10000));             /* > file */
#undef EXPECT
}

static void test_malformed_sections(void **state) {
        size_t size;

        (void) state;
#define EXPECT(r, mutate)                                \
        do {                                             \
                size = test_pe64(img);                  \
                mutate;                                  \
                assert_int_equal(parse(img, size), (r)); \
        } while (0)
        EXPECT(-RINGIL_ETRUNCATED, test_pe_section(img, TEST_PE_SECTAB, 1, ".data", 0x400, 0x400));
        EXPECT(-RINGIL_ETRUNCATED, test_pe_section(img, TEST_PE_SECTAB, 1, ".data", 0xffffffff, 0xffffffff));
        EXPECT(-RINGIL_ETRUNCATED, test_pe_section(img, TEST_PE_SECTAB, 1, ".data", 0x400, 0xfffffe00));
        EXPECT(-RINGIL_EMALFORMED, test_pe_section(img, TEST_PE_SECTAB, 1, ".data", 0x300, 0x200));      /* overlap */
        EXPECT(-RINGIL_EMALFORMED, test_pe_section(img, TEST_PE_SECTAB, 0, ".text", 0x100, 0x100));      /* in headers */
        /* A section without file data may point anywhere. */
        EXPECT(0, test_pe_section(img, TEST_PE_SECTAB, 1, ".bss", 0xffffffff, 0));
#undef EXPECT
}

static void test_cert_table(void **state) {
        size_t size = test_pe64(img), signed_size;
        struct pe_image pe;
        struct pe_cert c;
        uint8_t h[32], want[32];

        (void) state;
        signed_size = add_cert_table(img, size, 2);
        assert_int_equal(pe_parse(img, signed_size, &pe), 0);
        assert_int_equal(pe.n_certs, 2);
        assert_int_equal(pe.cert_offset, 0x610);
        assert_int_equal(pe.signed_end, 0x610);
        assert_int_equal(pe_authenticode_sha256(&pe, h), 0);
        test_pe64_hash(img, 0x610, want);
        assert_memory_equal(h, want, 32);
        assert_int_equal(pe_cert_get(&pe, 1, &c), 0);
        assert_int_equal(c.offset, 0x620);
        assert_int_equal(c.length, 16);
        assert_int_equal(c.type, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
        assert_int_equal(c.data_len, 8);
        assert_ptr_equal(c.data, img + 0x628);
        assert_int_equal(pe_cert_get(&pe, 2, &c), -ENOENT);

        /* Same hash as the unsigned image: table and its directory entry are excluded. */
        {
                static uint8_t plain[TEST_PE_BUF_SIZE];
                struct pe_image pp;
                uint8_t h2[32];
                test_pe64(plain);
                assert_int_equal(pe_parse(plain, size, &pp), 0);
                assert_int_equal(pe_authenticode_sha256(&pp, h2), 0);
                assert_memory_equal(h, h2, 32);
        }
}

static void test_cert_table_malformed(void **state) {
        size_t size, n;

        (void) state;
#define EXPECT(r, mutate)                                      \
        do {                                                   \
                size = test_pe64(img);                        \
                n = add_cert_table(img, size, 1);              \
                mutate;                                        \
                assert_int_equal(parse(img, n), (r));          \
        } while (0)
        EXPECT(0, (void) 0);
        EXPECT(-RINGIL_ETRUNCATED, n -= 8);                                        /* table cut */
        EXPECT(-RINGIL_ETOOBIG, pe_put32(img + TEST_PE_CERT_DIR_64 + 4, 0xfffffff8));
        EXPECT(-RINGIL_ETRUNCATED, pe_put32(img + TEST_PE_CERT_DIR_64, 0xfffffff0));
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + TEST_PE_CERT_DIR_64, 0));
        EXPECT(-RINGIL_EMALFORMED, n += 8);                                        /* data after it */
        EXPECT(-RINGIL_EMALFORMED, (pe_put32(img + TEST_PE_CERT_DIR_64, 0x614), pe_put32(img + TEST_PE_CERT_DIR_64 + 4, 12)));
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + 0x610, 4));                      /* dwLength < 8 */
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + 0x610, 17));                     /* overruns */
        EXPECT(-RINGIL_EMALFORMED, pe_put32(img + 0x610, 0xffffffff));
        EXPECT(-RINGIL_EMALFORMED, (pe_put32(img + TEST_PE_CERT_DIR_64, 0x5f0), pe_put32(img + TEST_PE_CERT_DIR_64 + 4, 0x30)));
        EXPECT(-RINGIL_EMALFORMED, (pe_put32(img + TEST_PE_CERT_DIR_64, 0x100), pe_put32(img + TEST_PE_CERT_DIR_64 + 4, 0x520)));
#undef EXPECT
        /* More entries than the cap. */
        size = test_pe64(img);
        n = add_cert_table(img, size, PE_MAX_CERT_ENTRIES + 1);
        assert_int_equal(parse(img, n), -RINGIL_ETOOBIG);
        n = add_cert_table(img, size, PE_MAX_CERT_ENTRIES);
        assert_int_equal(parse(img, n), 0);
}

static void test_size_cap(void **state) {
        (void) state;
        test_pe64(img);
        /* The cap is checked before anything is read, so the buffer need not be that large. */
        assert_int_equal(parse(img, (size_t) PE_MAX_IMAGE_SIZE + 1), -RINGIL_ETOOBIG);
}

/* Reference checksum the way sbsign folds it: after every 16-bit addition. */
static uint32_t ref_checksum(const uint8_t *d, size_t n, size_t cs) {
        uint32_t sum = 0;
        for (size_t i = 0; i < n; i += 2) {
                uint32_t w = 0;
                if (i < cs || i >= cs + 4)
                        w = (uint32_t) d[i] | (i + 1 < n ? (uint32_t) d[i + 1] << 8 : 0);
                sum += w;
                sum = (sum & 0xffff) + (sum >> 16);
        }
        return sum + (uint32_t) n;
}

static void test_checksum(void **state) {
        size_t size = test_pe64(img);

        (void) state;
        assert_int_equal(pe_checksum(img, size, TEST_PE_CHECKSUM), ref_checksum(img, size, TEST_PE_CHECKSUM));
        assert_int_equal(pe_checksum(img, size - 1, TEST_PE_CHECKSUM), ref_checksum(img, size - 1, TEST_PE_CHECKSUM));
        assert_int_equal(size, TEST_PE_IMAGE_SIZE);
        /* A constant length: GCC -O3 cannot see that size is above TEST_PE_HEADERS (-Wstringop-overflow). */
        memset(img + TEST_PE_HEADERS, 0xff, TEST_PE_IMAGE_SIZE - TEST_PE_HEADERS);   /* plenty of carries */
        assert_int_equal(pe_checksum(img, size, TEST_PE_CHECKSUM), ref_checksum(img, size, TEST_PE_CHECKSUM));
        /* The CheckSum field itself does not count. */
        {
                uint32_t a = pe_checksum(img, size, TEST_PE_CHECKSUM);
                pe_put32(img + TEST_PE_CHECKSUM, 0x01020304);
                assert_int_equal(pe_checksum(img, size, TEST_PE_CHECKSUM), a);
        }
}

static void test_section_get(void **state) {
        size_t n = test_pe64(img);
        struct pe_image pe;
        struct pe_section s;

        (void) state;
        memcpy(img + TEST_PE_SECTAB + 40, ".8chars!", 8);   /* a full 8-byte name has no NUL in the table */
        assert_int_equal(pe_parse(img, n, &pe), 0);
        assert_int_equal(pe.n_sections, 2);
        assert_int_equal(pe.section_table, TEST_PE_SECTAB);
        assert_int_equal(pe_section_get(&pe, 0, &s), 0);
        assert_string_equal(s.name, ".text");
        assert_int_equal(s.virtual_address, 0x1000);
        assert_int_equal(s.virtual_size, 0x200);
        assert_int_equal(s.raw_offset, 0x200);
        assert_int_equal(s.raw_size, 0x200);
        assert_int_equal(pe_section_get(&pe, 1, &s), 0);
        assert_string_equal(s.name, ".8chars!");
        assert_int_equal(s.virtual_address, 0x2000);
        assert_int_equal(pe_section_get(&pe, 2, &s), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_minimal),
                cmocka_unit_test(test_hash_regions),
                cmocka_unit_test(test_sections_hashed_in_file_order),
                cmocka_unit_test(test_pe32),
                cmocka_unit_test(test_truncated_everywhere),
                cmocka_unit_test(test_malformed_headers),
                cmocka_unit_test(test_malformed_sections),
                cmocka_unit_test(test_cert_table),
                cmocka_unit_test(test_cert_table_malformed),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_checksum),
                cmocka_unit_test(test_section_get),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
