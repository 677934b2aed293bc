/* test-efi-uki.c: UKI builds on hand-made stubs and kernels: section order, alignment, contents, header fields, every refusal. */
#include "tests.h"

#include "efi-pe.h"
#include "efi-uki.h"
#include "err.h"

/*
 * Hand-built inputs (offsets written out here, not taken from efi-uki.c):
 *   stub:   PE32+ at 0x40, Subsystem 10, two sections .text (RVA 0x1000) and .data (RVA 0x2000), 0x200 bytes
 *           each at file 0x400/0x600, SizeOfHeaders 0x400, SectionAlignment STUB_SA, FileAlignment 0x200;
 *   kernel: an x86 bzImage (boot flag, "HdrS", kernel_version -> "6.1.0-test (builder) #1") or an arm64
 *           Image ("ARM\x64" at 0x38, "Linux version 6.1.0-arm64test (…) …" in .text), each a PE32+ with
 *           one 0x1000-byte section and SizeOfImage KERNEL_SOI.
 */
#define LFANEW 0x40u
#define OPT (LFANEW + 24u)
#define OPT_SIZE 240u
#define SECTAB (OPT + OPT_SIZE)
#define STUB_HEADERS 0x400u
#define STUB_SIZE 0x800u
#define KERNEL_SIZE 0x1400u
#define KERNEL_SOI 0x8000u
#define FA 0x200u

static uint8_t stub[STUB_SIZE + 0x1000];
static size_t stub_len;
static uint8_t kernel[KERNEL_SIZE];

static void put_sec(uint8_t *b, unsigned i, const char *name, uint32_t vsize, uint32_t va, uint32_t rsize, uint32_t rptr) {
        uint8_t *s = b + SECTAB + 40u * i;
        memcpy(s, name, strlen(name));
        pe_put32(s + 8, vsize);
        pe_put32(s + 12, va);
        pe_put32(s + 16, rsize);
        pe_put32(s + 20, rptr);
        pe_put32(s + 36, 0x60000020u);
}

static void pe_headers(uint8_t *b, uint16_t machine, unsigned nsec, uint32_t headers, uint32_t sa, uint32_t soi) {
        b[0] = 'M';
        b[1] = 'Z';
        pe_put32(b + 0x3c, LFANEW);
        memcpy(b + LFANEW, "PE\0\0", 4);
        pe_put16(b + LFANEW + 4, machine);
        pe_put16(b + LFANEW + 6, (uint16_t) nsec);
        pe_put16(b + LFANEW + 20, OPT_SIZE);
        pe_put16(b + OPT, PE_OPT_MAGIC_PE32PLUS);
        pe_put32(b + OPT + 32, sa);
        pe_put32(b + OPT + 36, FA);
        pe_put32(b + OPT + 56, soi);
        pe_put32(b + OPT + 60, headers);
        pe_put16(b + OPT + 68, 10);                /* EFI application */
        pe_put32(b + OPT + 108, 16);
}

static void make_stub(uint16_t machine, uint32_t sa) {
        memset(stub, 0, sizeof(stub));
        pe_headers(stub, machine, 2, STUB_HEADERS, sa, 0x3000);
        put_sec(stub, 0, ".text", 0x1f0, 0x1000, 0x200, 0x400);
        put_sec(stub, 1, ".data", 0x100, 0x2000, 0x200, 0x600);
        for (size_t i = STUB_HEADERS; i < STUB_SIZE; i++)
                stub[i] = (uint8_t) (i * 13 + 1);
        memcpy(stub + 0x700, "#### LoaderInfo: systemd-stub 252.99-test ####", 46);
        stub_len = STUB_SIZE;
}

static void make_bzimage(void) {
        memset(kernel, 0, sizeof(kernel));
        pe_headers(kernel, PE_MACHINE_X86_64, 1, 0x400, 0x1000, KERNEL_SOI);
        put_sec(kernel, 0, ".text", 0x1000, 0x1000, 0x1000, 0x400);
        pe_put16(kernel + 0x1fe, 0xaa55);
        memcpy(kernel + 0x202, "HdrS", 4);
        pe_put16(kernel + 0x20e, 0x100);           /* -> 0x300 */
        memcpy(kernel + 0x300, "6.1.0-test (builder@host) #1 SMP", 32);
        for (size_t i = 0x400; i < KERNEL_SIZE; i++)
                kernel[i] = (uint8_t) (i * 7 + 5);
}

static void make_arm64_image(void) {
        static const char banner[] = "Linux version %s (fmt)\0Linux version 6.1.0-arm64test (b@h) (gcc 12) #1 SMP";
        memset(kernel, 0, sizeof(kernel));
        pe_headers(kernel, PE_MACHINE_AARCH64, 1, 0x400, 0x10000, KERNEL_SOI);
        put_sec(kernel, 0, ".text", 0x1000, 0x10000, 0x1000, 0x400);
        memcpy(kernel + 0x38, "ARM\x64", 4);
        for (size_t i = 0x400; i < KERNEL_SIZE; i++)
                kernel[i] = (uint8_t) (i * 7 + 5);
        memcpy(kernel + 0x800, banner, sizeof(banner));
}

static const char osrel[] = "# test\nNAME=ringil\nID=ringil\n\nVERSION_ID=2.0\nPRETTY_NAME=\"ringil 2.0\"\n";
static uint8_t initrd1[] = "070701 first cpio, 33 bytes long.";   /* 34 with NUL: not a multiple of 4 */
static uint8_t initrd2[] = "\x28\xb5\x2f\xfd zstd-ish";
static uint8_t dtb[64] = { 0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 64 };

static struct uki_params base_params(void) {
        static struct uki_blob initrds[2];
        static struct uki_blob dtbs[1];

        initrds[0] = (struct uki_blob){ initrd1, sizeof(initrd1), "initrd1" };
        initrds[1] = (struct uki_blob){ initrd2, sizeof(initrd2), "initrd2" };
        dtbs[0] = (struct uki_blob){ dtb, sizeof(dtb), "board.dtb" };
        return (struct uki_params){
                .stub = { stub, stub_len, "stub" },
                .kernel = { kernel, KERNEL_SIZE, "kernel" },
                .initrds = initrds,
                .n_initrds = 2,
                .cmdline = "console=ttyS0 quiet",
                .os_release = { (const uint8_t *) osrel, strlen(osrel), "os-release" },
                .dtbs = dtbs,
                .n_dtbs = 1,
        };
}

static int setup_x86(void **state) {
        (void) state;
        make_stub(PE_MACHINE_X86_64, 0x1000);
        make_bzimage();
        return 0;
}

static int setup_arm64(void **state) {
        (void) state;
        make_stub(PE_MACHINE_AARCH64, 0x1000);
        make_arm64_image();
        return 0;
}

static uint32_t rd32(const uint8_t *b, size_t off) {
        return pe_get32(b + off);
}

/* Expects a failure with code `want` and checks that nothing was returned. */
static void expect_fail(const struct uki_params *p, int want) {
        uint8_t *img = NULL;
        size_t len = 12345;
        int r = uki_build(p, &img, &len, NULL);
        if (r != want)
                print_message("got %d (%s), want %d\n", r, ringil_detail(), want);
        assert_int_equal(r, want);
        assert_null(img);
        assert_int_equal(len, 12345);
        assert_true(ringil_detail()[0] != '\0');
}

static void test_layout(void **state) {
        struct uki_params p = base_params();
        struct uki_info info;
        struct pe_image pe;
        struct pe_section s;
        uint8_t *img = NULL;
        size_t len;
        static const char *const order[] = { ".osrel", ".cmdline", ".dtb", ".uname", ".initrd", ".linux" };
        uint32_t va = 0x3000, off = STUB_SIZE;   /* after .data (RVA 0x2000 + 0x100 -> 0x3000), file end */

        (void) state;
        assert_int_equal(uki_build(&p, &img, &len, &info), 0);
        assert_int_equal(pe_parse(img, len, &pe), 0);
        assert_int_equal(pe.n_sections, 2 + 6);
        assert_int_equal(info.first_new_section, 2);
        assert_string_equal(info.uname, "6.1.0-test");
        assert_string_equal(info.stub_version, "252.99-test");
        assert_false(info.stripped_symbols);
        /* the stub's bytes are untouched up to its section table's end and from SizeOfHeaders on */
        assert_memory_equal(img + STUB_HEADERS, stub + STUB_HEADERS, STUB_SIZE - STUB_HEADERS);
        assert_memory_equal(img + SECTAB, stub + SECTAB, 80);

        for (unsigned i = 0; i < 6; i++) {
                const uint8_t *want = NULL;
                size_t want_len = 0;
                uint8_t cat[64] = {};

                assert_int_equal(pe_section_get(&pe, 2 + i, &s), 0);
                assert_string_equal(s.name, order[i]);
                assert_int_equal(s.virtual_address, va);
                assert_int_equal(s.raw_offset, off);
                assert_int_equal(s.raw_offset % FA, 0);
                assert_int_equal(s.raw_size % FA, 0);
                assert_int_equal(s.characteristics, i == 5 ? 0x40000020u : 0x40000040u);
                switch (i) {
                case 0: want = (const uint8_t *) osrel; want_len = strlen(osrel); break;
                case 1: want = (const uint8_t *) "console=ttyS0 quiet"; want_len = 19; break;
                case 2: want = dtb; want_len = sizeof(dtb); break;
                case 3: want = (const uint8_t *) "6.1.0-test"; want_len = 10; break;
                case 4:
                        /* each initrd padded to 4 bytes, then concatenated */
                        memcpy(cat, initrd1, sizeof(initrd1));
                        memcpy(cat + 36, initrd2, sizeof(initrd2));
                        want = cat;
                        want_len = 36 + ((sizeof(initrd2) + 3) & ~3u);
                        break;
                default: want = kernel; want_len = KERNEL_SIZE; break;
                }
                assert_int_equal(s.virtual_size, i == 5 ? KERNEL_SOI : want_len);
                assert_true(s.raw_size >= want_len && s.raw_size < want_len + FA);
                assert_memory_equal(img + s.raw_offset, want, want_len);
                for (size_t j = want_len; j < s.raw_size; j++)
                        assert_int_equal(img[s.raw_offset + j], 0);
                va = (s.virtual_address + s.virtual_size + 0xfffu) & ~0xfffu;
                off += s.raw_size;
        }
        assert_int_equal(len, off);
        assert_int_equal(rd32(img, OPT + 56), va);                             /* SizeOfImage */
        assert_int_equal(pe_get16(img + LFANEW + 6), 8);                      /* NumberOfSections */
        assert_int_equal(rd32(img, OPT + 64), pe_checksum(img, len, OPT + 64)); /* CheckSum */
        free(img);
}

static void test_arm64_and_uname(void **state) {
        struct uki_params p = base_params();
        struct uki_info info;
        struct uki_kernel k;
        uint8_t *img = NULL;
        size_t len;

        (void) state;
        assert_int_equal(uki_kernel_inspect(kernel, KERNEL_SIZE, &k), 0);
        assert_int_equal(k.format, UKI_KERNEL_IMAGE);
        assert_int_equal(k.machine, PE_MACHINE_AARCH64);
        /* the format string "Linux version %s" is skipped, the real banner found */
        assert_string_equal(k.uname, "6.1.0-arm64test");
        assert_int_equal(uki_build(&p, &img, &len, &info), 0);
        assert_int_equal(info.machine, PE_MACHINE_AARCH64);
        free(img);

        /* an explicit --uname wins; a bad one is refused */
        p.uname = "6.1.0-custom";
        assert_int_equal(uki_build(&p, &img, &len, &info), 0);
        assert_string_equal(info.uname, "6.1.0-custom");
        free(img);
        p.uname = "6.1 0";
        expect_fail(&p, -RINGIL_EMALFORMED);

        /* an EFI zboot image: compressed, no release; no .uname section unless given */
        p.uname = NULL;
        memcpy(kernel + 4, "zimg", 4);
        assert_int_equal(uki_kernel_inspect(kernel, KERNEL_SIZE, &k), 0);
        assert_int_equal(k.format, UKI_KERNEL_ZBOOT);
        assert_string_equal(k.uname, "");
        assert_int_equal(uki_build(&p, &img, &len, &info), 0);
        assert_string_equal(info.uname, "");
        {
                struct pe_image pe;
                struct pe_section s;
                assert_int_equal(pe_parse(img, len, &pe), 0);
                for (unsigned i = 0; pe_section_get(&pe, i, &s) == 0; i++)
                        assert_string_not_equal(s.name, ".uname");
        }
        free(img);
}

static void test_machine_mismatch(void **state) {
        struct uki_params p = base_params();

        (void) state;
        make_arm64_image();   /* stub is x86-64 */
        expect_fail(&p, -RINGIL_EINCOMPAT);
        assert_non_null(strstr(ringil_detail(), "x86-64"));
        assert_non_null(strstr(ringil_detail(), "aarch64"));
        /* an arm64 Image header with an x86 PE machine is not a kernel */
        pe_put16(kernel + LFANEW + 4, PE_MACHINE_X86_64);
        expect_fail(&p, -RINGIL_EMALFORMED);
}

static void test_bad_kernels(void **state) {
        struct uki_params p = base_params();
        static const uint8_t gz[] = { 0x1f, 0x8b, 8, 0, 0, 0 }, elf[] = { 0x7f, 'E', 'L', 'F', 2, 1 };

        (void) state;
        p.kernel = (struct uki_blob){ gz, sizeof(gz), "vmlinuz.gz" };
        expect_fail(&p, -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "gzip"));
        p.kernel = (struct uki_blob){ elf, sizeof(elf), "vmlinux" };
        expect_fail(&p, -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "ELF"));
        p.kernel = (struct uki_blob){ (const uint8_t *) "hello", 5, "text" };
        expect_fail(&p, -RINGIL_EMALFORMED);
        p.kernel = (struct uki_blob){ kernel, 0x100, "cut" };   /* MZ, but cut inside the headers */
        expect_fail(&p, -RINGIL_ETRUNCATED);
        p.kernel = (struct uki_blob){ kernel, KERNEL_SIZE, "kernel" };
        pe_put16(kernel + OPT + 68, 3);   /* a console application */
        expect_fail(&p, -RINGIL_EMALFORMED);
        pe_put16(kernel + OPT + 68, 10);
        p.kernel.data = NULL;
        expect_fail(&p, -EINVAL);
}

static void test_bad_stubs(void **state) {
        struct uki_params p = base_params();

        (void) state;
        p.stub = (struct uki_blob){ (const uint8_t *) "not a PE at all, just text", 26, "stub" };
        expect_fail(&p, -RINGIL_ETRUNCATED);
        p.stub = (struct uki_blob){ kernel, KERNEL_SIZE, "stub" };
        kernel[0] = 'X';   /* no MZ */
        expect_fail(&p, -RINGIL_EMALFORMED);
        kernel[0] = 'M';
        p.stub = (struct uki_blob){ stub, stub_len, "stub" };

        /* a section the UKI would add already present */
        memcpy(stub + SECTAB + 40, ".linux\0", 8);
        expect_fail(&p, -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), ".linux"));
        /* a name the stub would read as .initrd (prefix match) */
        memcpy(stub + SECTAB + 40, ".initrdX", 8);
        expect_fail(&p, -RINGIL_EMALFORMED);
        memcpy(stub + SECTAB + 40, ".data\0\0\0", 8);

        /* overlapping in memory (file ranges are fine) */
        pe_put32(stub + SECTAB + 40 + 12, 0x1100);
        expect_fail(&p, -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "overlap"));
        pe_put32(stub + SECTAB + 40 + 12, 0x2000);

        /* overlapping in the file */
        pe_put32(stub + SECTAB + 40 + 20, 0x500);
        expect_fail(&p, -RINGIL_EMALFORMED);
        pe_put32(stub + SECTAB + 40 + 20, 0x600);

        /* not an EFI application */
        pe_put16(stub + OPT + 68, 2);
        expect_fail(&p, -RINGIL_EMALFORMED);
        pe_put16(stub + OPT + 68, 10);

        /* bad alignments */
        pe_put32(stub + OPT + 36, 0x300);
        expect_fail(&p, -RINGIL_EMALFORMED);
        pe_put32(stub + OPT + 36, FA);
        pe_put32(stub + OPT + 32, 0x100);
        expect_fail(&p, -RINGIL_EMALFORMED);
        pe_put32(stub + OPT + 32, 0x1000);

        /* a data directory (here the debug directory) or the entry point in the header slack */
        pe_put32(stub + OPT + 112 + 6 * 8, SECTAB + 80 + 48);
        pe_put32(stub + OPT + 112 + 6 * 8 + 4, 28);
        expect_fail(&p, -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "data directory 6"));
        pe_put32(stub + OPT + 112 + 6 * 8 + 4, 0);
        pe_put32(stub + OPT + 16, SECTAB + 80 + 4);
        expect_fail(&p, -RINGIL_EMALFORMED);
        pe_put32(stub + OPT + 16, 0x1000);
        /* padding bytes there are overwritten, as ukify does (Debian's aarch64 stub has NOPs) */
        memset(stub + SECTAB + 80, 0x1f, STUB_HEADERS - SECTAB - 80);
        {
                uint8_t *img = NULL;
                size_t len;
                assert_int_equal(uki_build(&p, &img, &len, NULL), 0);
                static const uint8_t zero[16];
                /* name NUL-padded, relocation/line-number fields zero: nothing of the padding left */
                assert_memory_equal(img + SECTAB + 80, ".osrel\0\0", 8);
                assert_memory_equal(img + SECTAB + 80 + 24, zero, 12);
                assert_memory_equal(img + SECTAB + 120 + 24, zero, 12);
                assert_memory_equal(img + SECTAB + 120, ".cmdline", 8);
                free(img);
        }

        /* signed: a certificate table at the end */
        {
                size_t off = STUB_SIZE;
                pe_put32(stub + off, 16);
                pe_put16(stub + off + 4, WIN_CERT_REVISION_2_0);
                pe_put16(stub + off + 6, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
                pe_put32(stub + OPT + 112 + 32, (uint32_t) off);
                pe_put32(stub + OPT + 112 + 36, 16);
                p.stub.size = STUB_SIZE + 16;
                expect_fail(&p, -RINGIL_EMALFORMED);
                assert_non_null(strstr(ringil_detail(), "signed"));
        }
}

static void test_header_room(void **state) {
        struct uki_params p = base_params();
        static struct uki_blob dtbs[UKI_MAX_DTBS];
        uint8_t *img = NULL;
        size_t len;

        (void) state;
        /* SizeOfHeaders 0x400, the table ends at 0x148 + 80 = 0x198: room for 15 more headers */
        for (unsigned i = 0; i < UKI_MAX_DTBS; i++)
                dtbs[i] = (struct uki_blob){ dtb, sizeof(dtb), "dtb" };
        p.dtbs = dtbs;
        p.n_dtbs = 10;  /* 5 + 10 = 15: fits exactly */
        assert_int_equal(uki_build(&p, &img, &len, NULL), 0);
        free(img);
        p.n_dtbs = 11;
        expect_fail(&p, -RINGIL_ETOOBIG);
        assert_non_null(strstr(ringil_detail(), "header room"));
        p.n_dtbs = UKI_MAX_DTBS + 1;
        expect_fail(&p, -EINVAL);
}

static void test_bad_inputs(void **state) {
        struct uki_params p = base_params();
        struct uki_blob bad;
        char longline[UKI_MAX_CMDLINE + 2];
        struct uki_extra_section extra[2];

        (void) state;
        p.cmdline = "console=ttyS0\nsingle";
        expect_fail(&p, -RINGIL_EMALFORMED);
        p.cmdline = "";
        expect_fail(&p, -RINGIL_EMALFORMED);
        memset(longline, 'a', sizeof(longline) - 1);
        longline[sizeof(longline) - 1] = '\0';
        p.cmdline = longline;
        expect_fail(&p, -RINGIL_ETOOBIG);
        longline[UKI_MAX_CMDLINE] = '\0';   /* exactly the limit is fine */
        {
                uint8_t *img = NULL;
                size_t len;
                assert_int_equal(uki_build(&p, &img, &len, NULL), 0);
                free(img);
        }
        p = base_params();

        bad = (struct uki_blob){ (const uint8_t *) "NAME=x\nnot an assignment\n", 25, "os-release" };
        p.os_release = bad;
        expect_fail(&p, -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "line 2"));
        p.os_release = (struct uki_blob){ (const uint8_t *) "# only a comment\n", 17, "os-release" };
        expect_fail(&p, -RINGIL_EMALFORMED);
        p.os_release = (struct uki_blob){ (const uint8_t *) "ID=a\0b\n", 7, "os-release" };
        expect_fail(&p, -RINGIL_EMALFORMED);
        p = base_params();

        bad = (struct uki_blob){ kernel, KERNEL_SIZE, "vmlinuz-as-initrd" };
        p.initrds = &bad;
        p.n_initrds = 1;
        expect_fail(&p, -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "vmlinuz-as-initrd"));
        bad = (struct uki_blob){ initrd1, 0, "empty" };
        expect_fail(&p, -RINGIL_EMALFORMED);
        p = base_params();

        bad = (struct uki_blob){ initrd1, sizeof(initrd1), "not.dtb" };
        p.dtbs = &bad;
        expect_fail(&p, -RINGIL_EMALFORMED);
        dtb[7] = 65;   /* totalsize past the file */
        p = base_params();
        expect_fail(&p, -RINGIL_EMALFORMED);
        dtb[7] = 64;

        p.splash = (struct uki_blob){ initrd1, sizeof(initrd1), "splash" };
        expect_fail(&p, -RINGIL_EMALFORMED);
        p = base_params();

        extra[0] = (struct uki_extra_section){ ".linuxh", { initrd1, 4, "x" } };
        p.extra = extra;
        p.n_extra = 1;
        expect_fail(&p, -RINGIL_EMALFORMED);   /* the stub would take it for .linux */
        extra[0].name = ".sbat";
        expect_fail(&p, -RINGIL_EMALFORMED);
        extra[0].name = "noDot";
        expect_fail(&p, -RINGIL_EMALFORMED);
        extra[0].name = ".toolong!";
        expect_fail(&p, -RINGIL_EMALFORMED);
        extra[0].name = ".data";               /* the stub has one */
        expect_fail(&p, -RINGIL_EMALFORMED);
        extra[0].name = ".ringil";
        extra[1] = extra[0];
        p.n_extra = 2;
        expect_fail(&p, -RINGIL_EMALFORMED);   /* twice */
        p.n_extra = 1;
        {
                uint8_t *img = NULL;
                size_t len;
                struct pe_image pe;
                struct pe_section s;
                assert_int_equal(uki_build(&p, &img, &len, NULL), 0);
                assert_int_equal(pe_parse(img, len, &pe), 0);
                /* extra sections go after .initrd, before .linux */
                assert_int_equal(pe_section_get(&pe, pe.n_sections - 2, &s), 0);
                assert_string_equal(s.name, ".ringil");
                assert_int_equal(pe_section_get(&pe, pe.n_sections - 1, &s), 0);
                assert_string_equal(s.name, ".linux");
                free(img);
        }
}

static void test_symbol_table(void **state) {
        struct uki_params p = base_params();
        struct uki_info info;
        struct pe_image pe;
        struct pe_section s;
        uint8_t *img = NULL;
        size_t len;

        (void) state;
        /* Two symbols and a 4-byte string table after the sections, ending the file: dropped. */
        memset(stub + STUB_SIZE, 0x11, 36);
        pe_put32(stub + STUB_SIZE + 36, 4);
        stub_len = STUB_SIZE + 40;
        pe_put32(stub + LFANEW + 4 + 8, STUB_SIZE);
        pe_put32(stub + LFANEW + 4 + 12, 2);
        p.stub.size = stub_len;
        assert_int_equal(uki_build(&p, &img, &len, &info), 0);
        assert_true(info.stripped_symbols);
        assert_int_equal(rd32(img, LFANEW + 4 + 8), 0);
        assert_int_equal(rd32(img, LFANEW + 4 + 12), 0);
        assert_int_equal(pe_get16(img + LFANEW + 4 + 18) & 0x0008, 0x0008);
        assert_int_equal(pe_parse(img, len, &pe), 0);
        assert_int_equal(pe_section_get(&pe, 2, &s), 0);
        assert_int_equal(s.raw_offset, STUB_SIZE);   /* the first new section takes its place */
        free(img);

        /* A symbol table that does not end the file is left alone, and the new data follows it. */
        stub_len = STUB_SIZE + 48;
        p.stub.size = stub_len;
        assert_int_equal(uki_build(&p, &img, &len, &info), 0);
        assert_false(info.stripped_symbols);
        assert_int_equal(rd32(img, LFANEW + 4 + 8), STUB_SIZE);
        assert_int_equal(pe_parse(img, len, &pe), 0);
        assert_int_equal(pe_section_get(&pe, 2, &s), 0);
        assert_int_equal(s.raw_offset, STUB_SIZE + FA);
        free(img);
}

static void test_small_section_alignment(void **state) {
        struct uki_params p = base_params();
        struct pe_image pe;
        struct pe_section s;
        uint8_t *img = NULL;
        size_t len;

        (void) state;
        /* Debian's x86-64 stub has SectionAlignment 0x200 = FileAlignment */
        make_stub(PE_MACHINE_X86_64, 0x200);
        p.stub.size = stub_len;
        assert_int_equal(uki_build(&p, &img, &len, NULL), 0);
        assert_int_equal(pe_parse(img, len, &pe), 0);
        assert_int_equal(pe_section_get(&pe, 2, &s), 0);
        assert_int_equal(s.virtual_address, 0x2200);   /* .data ends at 0x2100 -> next 0x200 boundary */
        assert_int_equal(pe_section_get(&pe, 3, &s), 0);
        assert_int_equal(s.virtual_address % 0x200, 0);
        free(img);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_layout, setup_x86),
                cmocka_unit_test_setup(test_arm64_and_uname, setup_arm64),
                cmocka_unit_test_setup(test_machine_mismatch, setup_x86),
                cmocka_unit_test_setup(test_bad_kernels, setup_x86),
                cmocka_unit_test_setup(test_bad_stubs, setup_x86),
                cmocka_unit_test_setup(test_header_room, setup_x86),
                cmocka_unit_test_setup(test_bad_inputs, setup_x86),
                cmocka_unit_test_setup(test_symbol_table, setup_x86),
                cmocka_unit_test_setup(test_small_section_alignment, setup_x86),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
