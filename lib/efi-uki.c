/* efi-uki.c: Unified Kernel Images: kernel identification, checks of every input, and the PE section layout ukify uses. */
#include <stdlib.h>
#include <string.h>

#include "efi-uki.h"
#include "err.h"
#include "log.h"
#include "macro.h"

/* Optional-header fields at the same offsets in PE32 and PE32+ (PE/COFF specification). */
#define OPT_SIZE_OF_CODE 4
#define OPT_SIZE_OF_INIT_DATA 8
#define OPT_SECTION_ALIGNMENT 32
#define OPT_FILE_ALIGNMENT 36
#define OPT_SIZE_OF_IMAGE 56
#define OPT_SIZE_OF_HEADERS 60
#define OPT_SUBSYSTEM 68
#define OPT_ADDRESS_OF_ENTRY_POINT 16
#define OPT32_NUMBER_OF_RVA 92
#define OPT32_DATA_DIRS 96
#define OPT64_NUMBER_OF_RVA 108
#define OPT64_DATA_DIRS 112
#define COFF_NUMBER_OF_SECTIONS 2
#define COFF_POINTER_TO_SYMBOL_TABLE 8
#define COFF_NUMBER_OF_SYMBOLS 12
#define COFF_CHARACTERISTICS 18
#define COFF_SYMBOL_SIZE 18u
#define IMAGE_FILE_LOCAL_SYMS_STRIPPED 0x0008u
#define IMAGE_SUBSYSTEM_EFI_APPLICATION 10u
#define SCN_CNT_CODE 0x00000020u
#define SCN_CNT_INITIALIZED_DATA 0x00000040u
#define SCN_MEM_READ 0x40000000u

/* x86 boot protocol (Documentation/arch/x86/boot.rst): boot_flag, "HdrS", kernel_version pointer. */
#define BZ_BOOT_FLAG 0x1fe
#define BZ_HEADER_MAGIC 0x202
#define BZ_KERNEL_VERSION 0x20e
#define BZ_SETUP_BASE 0x200
#define BZ_VERSION_MAX 128u
/* arm64 and riscv Image header: magic at 0x38. EFI zboot: "zimg" at 4. */
#define IMAGE_MAGIC 0x38
#define ZBOOT_MAGIC 4

#define FDT_HEADER_SIZE 40u
#define UKI_MAX_DTB (16u << 20)
#define UKI_MAX_SPLASH (32u << 20)
#define BMP_HEADER_SIZE 54u

#define STUB_MAGIC "#### LoaderInfo: systemd-stub "

/*
 * The section names the UKI specification and systemd-stub know. TRAP: systemd-stub (at least through
 * 257) matches a section by comparing only strlen(known name) bytes, so a section named ".linuxfoo"
 * is taken for ".linux" and, coming later in the table, wins. An extra section whose name starts with
 * one of these is therefore refused, not only an exact duplicate.
 */
static const char *const known_sections[] = {
        ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname",
        ".sbat", ".pcrsig", ".pcrpkey", ".profile", ".hwids", ".efifw",
};

static const struct {
        uint16_t machine;
        const char *name;
        const char *suffix;
} machines[] = {
        { PE_MACHINE_X86_64, "x86-64", "x64" },
        { PE_MACHINE_I386, "ia32", "ia32" },
        { PE_MACHINE_AARCH64, "aarch64", "aa64" },
        { PE_MACHINE_ARMTHUMB, "arm", "arm" },
        { PE_MACHINE_ARMNT, "arm", "arm" },
        { PE_MACHINE_RISCV64, "riscv64", "riscv64" },
        { PE_MACHINE_LOONGARCH64, "loongarch64", "loongarch64" },
};

const char *uki_machine_name(uint16_t machine) {
        for (size_t i = 0; i < ELEMENTSOF(machines); i++)
                if (machines[i].machine == machine)
                        return machines[i].name;
        return NULL;
}

const char *uki_machine_efi_suffix(uint16_t machine) {
        for (size_t i = 0; i < ELEMENTSOF(machines); i++)
                if (machines[i].machine == machine)
                        return machines[i].suffix;
        return NULL;
}

static const char *what_or(const struct uki_blob *b, const char *dflt) {
        return b->what ? b->what : dflt;
}

static uint64_t round_up(uint64_t x, uint64_t align) {
        return (x + align - 1) / align * align;
}

static bool is_pow2(uint32_t x) {
        return x != 0 && (x & (x - 1)) == 0;
}

static bool release_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c != '\0' && strchr("._+~-", c));
}

/*
 * The release token at p[0..n): release characters up to a space or the end, at most UKI_MAX_UNAME.
 * Returns its length, or 0 when there is none (empty, too long, or a bad character before the space).
 */
static size_t release_token(const uint8_t *p, size_t n) {
        size_t i = 0;

        while (i < n && p[i] != ' ' && p[i] != '\0') {
                if (!release_char((char) p[i]) || i >= UKI_MAX_UNAME)
                        return 0;
                i++;
        }
        return i;
}

/* bzImage: the setup header's kernel_version is a pointer (minus 0x200) to "6.1.0-57-amd64 (…) #1 …". */
static void bzimage_release(const uint8_t *data, size_t size, char ret[static UKI_MAX_UNAME + 1]) {
        size_t off = BZ_SETUP_BASE + pe_get16(data + BZ_KERNEL_VERSION), n, len;

        ret[0] = '\0';
        if (off == BZ_SETUP_BASE || off >= size)
                return;
        n = MIN(size - off, (size_t) BZ_VERSION_MAX);
        len = release_token(data + off, n);
        /* the release is followed by " (" builder ")" or ends the string */
        if (len == 0 || (len < n && data[off + len] != ' ' && data[off + len] != '\0'))
                return;
        memcpy(ret, data + off, len);
        ret[len] = '\0';
}

/* Uncompressed kernels carry linux_banner: "Linux version 6.1.0-57-arm64 (builder) (compiler) #1 …". */
static void banner_release(const uint8_t *data, size_t size, char ret[static UKI_MAX_UNAME + 1]) {
        static const char needle[] = "Linux version ";
        const size_t nl = sizeof(needle) - 1;
        const uint8_t *p = data, *end = data + size;

        ret[0] = '\0';
        while ((size_t) (end - p) > nl) {
                const uint8_t *hit = memmem(p, (size_t) (end - p), needle, nl);
                size_t rest, len;

                if (!hit)
                        return;
                hit += nl;
                rest = (size_t) (end - hit);
                len = release_token(hit, rest);
                /* as ukify: a digit first, then " (" (format strings such as "Linux version %s" fail) */
                if (len > 0 && hit[0] >= '0' && hit[0] <= '9' && rest >= len + 2 && hit[len] == ' ' &&
                    hit[len + 1] == '(') {
                        memcpy(ret, hit, len);
                        ret[len] = '\0';
                        return;
                }
                p = hit;
        }
}

int uki_kernel_inspect(const uint8_t *data, size_t size, struct uki_kernel *ret) {
        struct uki_kernel k = {};
        struct pe_image pe;
        uint16_t subsystem;
        int r;

        if (size == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "kernel is empty");
        if (size > UKI_MAX_KERNEL)
                return ringil_fail(-RINGIL_ETOOBIG, "kernel of %zu bytes is over the %u MiB limit", size,
                                   UKI_MAX_KERNEL >> 20);
        if (size >= 4 && memcmp(data, "\x7f" "ELF", 4) == 0)
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "kernel is an ELF vmlinux, not a bootable image (use the bzImage or Image)");
        if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "kernel is gzip-compressed and the stub cannot decompress it: zcat it first");
        if (size >= 4 && memcmp(data, "\x28\xb5\x2f\xfd", 4) == 0)
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "kernel is zstd-compressed and the stub cannot decompress it: zstdcat it first");
        if (size < 2 || data[0] != 'M' || data[1] != 'Z')
                return ringil_fail(-RINGIL_EMALFORMED, "kernel is not an EFI-stub kernel image (no MZ header)");
        r = pe_parse(data, size, &pe);
        if (r < 0)
                return ringil_fail(r, "kernel: %s", ringil_detail());
        subsystem = pe_get16(data + pe.opt_offset + OPT_SUBSYSTEM);
        if (subsystem != IMAGE_SUBSYSTEM_EFI_APPLICATION)
                return ringil_fail(-RINGIL_EMALFORMED, "kernel's PE Subsystem is %u, not EFI application (10)",
                                   subsystem);
        k.machine = pe.machine;
        k.size_of_image = pe_get32(data + pe.opt_offset + OPT_SIZE_OF_IMAGE);
        if (!uki_machine_name(k.machine))
                return ringil_fail(-RINGIL_EMALFORMED, "kernel is for COFF machine 0x%04x, not an EFI architecture",
                                   k.machine);

        if (size >= ZBOOT_MAGIC + 4 && memcmp(data + ZBOOT_MAGIC, "zimg", 4) == 0) {
                k.format = UKI_KERNEL_ZBOOT;   /* compressed: no readable banner */
        } else if (size >= BZ_KERNEL_VERSION + 2 && memcmp(data + BZ_HEADER_MAGIC, "HdrS", 4) == 0 &&
                   pe_get16(data + BZ_BOOT_FLAG) == 0xaa55) {
                if (k.machine != PE_MACHINE_X86_64 && k.machine != PE_MACHINE_I386)
                        return ringil_fail(-RINGIL_EMALFORMED, "kernel has an x86 setup header but a %s PE header",
                                           uki_machine_name(k.machine));
                k.format = UKI_KERNEL_BZIMAGE;
                bzimage_release(data, size, k.uname);
        } else if (size >= IMAGE_MAGIC + 4 && (memcmp(data + IMAGE_MAGIC, "ARM\x64", 4) == 0 ||
                                               memcmp(data + IMAGE_MAGIC, "RSC\x05", 4) == 0)) {
                uint16_t want = data[IMAGE_MAGIC] == 'A' ? PE_MACHINE_AARCH64 : PE_MACHINE_RISCV64;
                if (k.machine != want)
                        return ringil_fail(-RINGIL_EMALFORMED, "kernel has an %s Image header but a %s PE header",
                                           uki_machine_name(want), uki_machine_name(k.machine));
                k.format = UKI_KERNEL_IMAGE;
                banner_release(data, size, k.uname);
        } else {
                k.format = UKI_KERNEL_PE;
                banner_release(data, size, k.uname);
        }
        *ret = k;
        return 0;
}

static int check_uname(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > UKI_MAX_UNAME || release_token((const uint8_t *) s, n) != n)
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "uname `%.80s' is not a kernel release (1-%u of A-Z a-z 0-9 . _ + ~ -)", s,
                                   UKI_MAX_UNAME);
        return 0;
}

/* One line of printable ASCII: the kernel command line the stub hands over (and measures). */
static int check_cmdline(const char *s) {
        size_t n = strlen(s);

        if (n == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "command line is empty (leave it out instead)");
        if (n > UKI_MAX_CMDLINE)
                return ringil_fail(-RINGIL_ETOOBIG,
                                   "command line of %zu bytes: the kernel keeps only %u, and would drop the rest", n,
                                   UKI_MAX_CMDLINE);
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "command line has a control or non-ASCII byte 0x%02x at offset %zu",
                                           (unsigned) (uint8_t) s[i], i);
        return 0;
}

/* os-release(5): lines that are empty, comments, or KEY=VALUE with an environment-variable name. */
static int check_os_release(const struct uki_blob *b) {
        const char *what = what_or(b, "os-release");
        const uint8_t *p = b->data, *end = b->data + b->size;
        unsigned line = 0, assignments = 0;

        if (b->size == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "`%s' is empty", what);
        if (b->size > UKI_MAX_OSREL)
                return ringil_fail(-RINGIL_ETOOBIG, "`%s' of %zu bytes is over the %u KiB limit", what, b->size,
                                   UKI_MAX_OSREL >> 10);
        if (memchr(b->data, '\0', b->size))
                return ringil_fail(-RINGIL_EMALFORMED, "`%s' contains a NUL byte: not an os-release file", what);
        while (p < end) {
                const uint8_t *nl = memchr(p, '\n', (size_t) (end - p)), *eol = nl ? nl : end, *q = p;

                line++;
                while (q < eol && (*q == ' ' || *q == '\t'))
                        q++;
                if (q < eol && *q != '#') {
                        const uint8_t *k = q;
                        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
                                return ringil_fail(-RINGIL_EMALFORMED, "`%s' line %u is not KEY=VALUE", what, line);
                        while (k < eol && ((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
                                           (*k >= '0' && *k <= '9') || *k == '_'))
                                k++;
                        if (k == eol || *k != '=')
                                return ringil_fail(-RINGIL_EMALFORMED, "`%s' line %u is not KEY=VALUE", what, line);
                        assignments++;
                }
                p = nl ? nl + 1 : end;
        }
        if (assignments == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "`%s' has no KEY=VALUE line", what);
        return 0;
}

static int check_initrd(const struct uki_blob *b) {
        static const struct {
                const char *magic;
                size_t len;
        } formats[] = {
                { "070701", 6 }, { "070702", 6 }, { "070707", 6 },     /* cpio newc, crc, odc */
                { "\xc7\x71", 2 }, { "\x71\xc7", 2 },                    /* cpio binary */
                { "\x1f\x8b", 2 }, { "\x1f\x9e", 2 },                    /* gzip */
                { "\x28\xb5\x2f\xfd", 4 },                               /* zstd */
                { "\xfd" "7zXZ\0", 6 },                                  /* xz */
                { "\x5d\0\0", 3 },                                       /* lzma */
                { "BZh", 3 },                                            /* bzip2 */
                { "\x02\x21\x4c\x18", 4 }, { "\x04\x22\x4d\x18", 4 },    /* lz4 legacy, frame */
                { "\x89LZO", 4 },                                        /* lzop */
        };
        const char *what = what_or(b, "initrd");

        if (b->size == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "initrd `%s' is empty", what);
        for (size_t i = 0; i < ELEMENTSOF(formats); i++)
                if (b->size >= formats[i].len && memcmp(b->data, formats[i].magic, formats[i].len) == 0)
                        return 0;
        return ringil_fail(-RINGIL_EMALFORMED, "initrd `%s' is neither a cpio archive nor a compressed one", what);
}

static int check_dtb(const struct uki_blob *b) {
        const char *what = what_or(b, "devicetree");
        uint32_t total;

        if (b->size > UKI_MAX_DTB)
                return ringil_fail(-RINGIL_ETOOBIG, "devicetree `%s' is over the %u MiB limit", what, UKI_MAX_DTB >> 20);
        if (b->size < FDT_HEADER_SIZE || memcmp(b->data, "\xd0\x0d\xfe\xed", 4) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "devicetree `%s' is not a flattened devicetree (.dtb)", what);
        total = (uint32_t) b->data[4] << 24 | (uint32_t) b->data[5] << 16 | (uint32_t) b->data[6] << 8 | b->data[7];
        if (total < FDT_HEADER_SIZE || total > b->size)
                return ringil_fail(-RINGIL_EMALFORMED, "devicetree `%s' declares %u bytes but has %zu", what, total,
                                   b->size);
        return 0;
}

static int check_splash(const struct uki_blob *b) {
        const char *what = what_or(b, "splash");

        if (b->size > UKI_MAX_SPLASH)
                return ringil_fail(-RINGIL_ETOOBIG, "splash `%s' is over the %u MiB limit", what, UKI_MAX_SPLASH >> 20);
        if (b->size < BMP_HEADER_SIZE || b->data[0] != 'B' || b->data[1] != 'M')
                return ringil_fail(-RINGIL_EMALFORMED, "splash `%s' is not a BMP image", what);
        return 0;
}

static bool name_has_known_prefix(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(known_sections); i++)
                if (strncmp(name, known_sections[i], strlen(known_sections[i])) == 0)
                        return true;
        return false;
}

static int check_extra_name(const char *name) {
        size_t n = strlen(name);

        if (n < 2 || n > PE_SECTION_NAME_MAX || name[0] != '.')
                return ringil_fail(-RINGIL_EMALFORMED, "section name `%.16s' is not '.' and 1-7 characters", name);
        for (size_t i = 1; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                      (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-' || name[i] == '.'))
                        return ringil_fail(-RINGIL_EMALFORMED, "section name `%s' has a character outside A-Z a-z 0-9 _ - .",
                                           name);
        if (name_has_known_prefix(name))
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "section name `%s' is (or starts with) a UKI section name the stub interprets; "
                                   "use the dedicated option", name);
        return 0;
}

/* One section to append: a name and the parts of its content (several only for .initrd). */
struct plan {
        char name[PE_SECTION_NAME_MAX + 1];
        const struct uki_blob *parts;
        size_t n_parts;
        bool pad_parts;                  /* each part zero-padded to 4 bytes (concatenated initrds) */
        uint64_t len;                    /* content length */
        uint64_t vsize;
        uint32_t characteristics;
        uint64_t va, raw_offset, raw_size;
};

/* The content length, each part capped first so that the sum cannot overflow. */
static int plan_length(struct plan *s) {
        uint64_t n = 0;

        for (size_t i = 0; i < s->n_parts; i++) {
                if (s->parts[i].size > PE_MAX_IMAGE_SIZE)
                        return ringil_fail(-RINGIL_ETOOBIG, "`%s' is over the %u MiB image limit",
                                           what_or(&s->parts[i], s->name), PE_MAX_IMAGE_SIZE >> 20);
                n += s->pad_parts ? round_up(s->parts[i].size, 4) : s->parts[i].size;
        }
        s->len = n;
        return 0;
}

/* A section name from an untrusted image, fit for a message: non-printable bytes shown as '?'. */
static const char *shown(const char *name, char buf[static PE_SECTION_NAME_MAX + 1]) {
        size_t i;

        for (i = 0; i < PE_SECTION_NAME_MAX && name[i]; i++)
                buf[i] = name[i] > 0x20 && name[i] < 0x7f ? name[i] : '?';
        buf[i] = '\0';
        return buf;
}

/* The memory extent of a section: VirtualSize, or SizeOfRawData when VirtualSize is 0 (old linkers). */
static uint64_t section_extent(const struct pe_section *s) {
        return s->virtual_size ? s->virtual_size : s->raw_size;
}

/*
 * Virtual layout of an image: sections lie above the headers and do not overlap in memory. Returns
 * the end of the highest section in *ret_end. pe_parse checks only the file side.
 */
static int check_virtual_layout(const struct pe_image *pe, const char *what, uint64_t *ret_end) {
        struct pe_section s[PE_MAX_SECTIONS];
        uint64_t end = pe->size_of_headers;
        char n1[PE_SECTION_NAME_MAX + 1], n2[PE_SECTION_NAME_MAX + 1];

        for (unsigned i = 0; i < pe->n_sections; i++) {
                int r = pe_section_get(pe, i, &s[i]);
                if (r < 0)
                        return r;
                if (s[i].virtual_address < pe->size_of_headers)
                        return ringil_fail(-RINGIL_EMALFORMED, "%s: section %u `%s' at RVA 0x%x overlaps the headers",
                                           what, i, shown(s[i].name, n1), s[i].virtual_address);
        }
        for (unsigned i = 0; i < pe->n_sections; i++) {
                uint64_t a0 = s[i].virtual_address, a1 = a0 + section_extent(&s[i]);
                for (unsigned j = i + 1; j < pe->n_sections; j++) {
                        uint64_t b0 = s[j].virtual_address, b1 = b0 + section_extent(&s[j]);
                        if (a0 < b1 && b0 < a1 && a1 > a0 && b1 > b0)
                                return ringil_fail(-RINGIL_EMALFORMED, "%s: sections `%s' and `%s' overlap in memory",
                                                   what, shown(s[i].name, n1), shown(s[j].name, n2));
                }
                end = MAX(end, a1);
        }
        *ret_end = end;
        return 0;
}

/* "252.39-1~deb12u2" from the stub's "#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####". */
static void stub_version(const uint8_t *data, size_t size, char ret[static 64]) {
        const size_t ml = sizeof(STUB_MAGIC) - 1;
        const uint8_t *hit = memmem(data, size, STUB_MAGIC, ml);
        size_t i = 0;

        ret[0] = '\0';
        if (!hit)
                return;
        hit += ml;
        while (i < 63 && hit + i < data + size && hit[i] > 0x20 && hit[i] < 0x7f) {
                ret[i] = (char) hit[i];
                i++;
        }
        ret[i] = '\0';
}

/*
 * Where the stub's bytes end in the output: before a COFF symbol table (+ string table) that ends the
 * file and follows every section, which images should not carry and ukify drops; else the whole stub.
 */
static size_t stub_keep_length(const struct pe_image *pe, bool *ret_stripped) {
        const uint8_t *coff = pe->data + pe->coff_offset;
        uint64_t sym = pe_get32(coff + COFF_POINTER_TO_SYMBOL_TABLE), end;
        uint64_t nsym = pe_get32(coff + COFF_NUMBER_OF_SYMBOLS);
        uint64_t sections_end = pe->size_of_headers;

        *ret_stripped = false;
        if (sym == 0)
                return pe->size;
        for (unsigned i = 0; i < pe->n_ranges; i++)
                sections_end = MAX(sections_end, (uint64_t) pe->ranges[i].offset + pe->ranges[i].size);
        end = sym + nsym * COFF_SYMBOL_SIZE;
        if (sym < sections_end || end + 4 > pe->size)
                return pe->size;
        end += pe_get32(pe->data + end);  /* the string table's size includes its own 4 bytes */
        if (end != pe->size)
                return pe->size;
        *ret_stripped = true;
        return (size_t) sym;
}

/*
 * The bytes after the section table are padding in every stub we know (zeros on x86-64; NOP
 * instructions on Debian's aarch64 stub, whose header is cut from its code), and ukify writes over
 * them. Refuse only when something points there: the entry point or a data directory (the headers
 * are mapped at RVA = file offset, and a linker may put e.g. the debug directory in them).
 */
static int check_header_slack(const struct pe_image *pe, size_t start, size_t end) {
        const uint8_t *opt = pe->data + pe->opt_offset;
        size_t dirs = pe->opt_offset + (pe->pe32plus ? OPT64_DATA_DIRS : OPT32_DATA_DIRS);
        uint32_t nrva = pe_get32(opt + (pe->pe32plus ? OPT64_NUMBER_OF_RVA : OPT32_NUMBER_OF_RVA));
        uint64_t entry = pe_get32(opt + OPT_ADDRESS_OF_ENTRY_POINT);

        if (entry >= start && entry < end)
                return ringil_fail(-RINGIL_EMALFORMED, "stub's entry point 0x%jx lies where the new section headers go",
                                   (uintmax_t) entry);
        /* pe_parse checked 5 <= nrva <= 16 and that the directories fit the optional header. */
        for (uint32_t i = 0; i < nrva; i++) {
                uint64_t rva = pe_get32(pe->data + dirs + 8 * i), sz = pe_get32(pe->data + dirs + 8 * i + 4);
                if (i == PE_DATA_DIR_CERT_TABLE || sz == 0)
                        continue;
                if (rva < end && start < rva + sz)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "stub's data directory %u [0x%jx, +0x%jx) lies where the new section headers go",
                                           i, (uintmax_t) rva, (uintmax_t) sz);
        }
        return 0;
}

static int add_u32(uint8_t *field, uint64_t add, const char *name) {
        uint64_t v = (uint64_t) pe_get32(field) + add;

        if (v > UINT32_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "%s would exceed 32 bits", name);
        pe_put32(field, (uint32_t) v);
        return 0;
}

int uki_build(const struct uki_params *p, uint8_t **ret_image, size_t *ret_size, struct uki_info *ret_info) {
        struct plan plan[8 + UKI_MAX_DTBS + UKI_MAX_EXTRA];
        struct uki_blob cmdline_blob = {}, uname_blob = {};
        struct uki_info info = {};
        struct pe_image stub, out_pe;
        struct pe_section ss;
        char shown_name[PE_SECTION_NAME_MAX + 1];
        _cleanup_free_ uint8_t *out = NULL;
        uint32_t salign, falign, hdrs;
        uint64_t vend, keep, file_end, va, total;
        size_t n = 0, slack_start, slack_end;
        const uint8_t *opt;
        uint8_t *o_opt, *o_coff;
        uint16_t subsystem;
        int r;

        ringil_clear_detail();
        if (!p->stub.data || !p->kernel.data)
                return ringil_fail(-EINVAL, "a stub and a kernel are required");
        if (p->n_initrds > UKI_MAX_INITRDS || p->n_dtbs > UKI_MAX_DTBS || p->n_extra > UKI_MAX_EXTRA)
                return ringil_fail(-EINVAL, "at most %u initrds, %u devicetrees and %u extra sections", UKI_MAX_INITRDS,
                                   UKI_MAX_DTBS, UKI_MAX_EXTRA);

        /* The stub: an unsigned EFI application with a sane layout. */
        if (p->stub.size > UKI_MAX_STUB)
                return ringil_fail(-RINGIL_ETOOBIG, "stub of %zu bytes is over the %u MiB limit", p->stub.size,
                                   UKI_MAX_STUB >> 20);
        r = pe_parse(p->stub.data, p->stub.size, &stub);
        if (r < 0)
                return ringil_fail(r, "stub: %s", ringil_detail());
        opt = stub.data + stub.opt_offset;
        subsystem = pe_get16(opt + OPT_SUBSYSTEM);
        if (subsystem != IMAGE_SUBSYSTEM_EFI_APPLICATION)
                return ringil_fail(-RINGIL_EMALFORMED, "stub's PE Subsystem is %u, not EFI application (10)", subsystem);
        if (!uki_machine_name(stub.machine))
                return ringil_fail(-RINGIL_EMALFORMED, "stub is for COFF machine 0x%04x, not an EFI architecture",
                                   stub.machine);
        if (stub.cert_size > 0)
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "stub is signed: adding sections would break its signature (use the unsigned "
                                   "stub and sign the UKI)");
        salign = pe_get32(opt + OPT_SECTION_ALIGNMENT);
        falign = pe_get32(opt + OPT_FILE_ALIGNMENT);
        /* PE/COFF: FileAlignment a power of two in 512..64K; SectionAlignment a power of two >= it. */
        if (!is_pow2(falign) || falign < 512 || falign > 65536 || !is_pow2(salign) || salign < falign)
                return ringil_fail(-RINGIL_EMALFORMED, "stub has SectionAlignment 0x%x / FileAlignment 0x%x", salign,
                                   falign);
        r = check_virtual_layout(&stub, "stub", &vend);
        if (r < 0)
                return r;

        /* The kernel, for the same machine. */
        r = uki_kernel_inspect(p->kernel.data, p->kernel.size, &info.kernel);
        if (r < 0)
                return r;
        if (info.kernel.machine != stub.machine)
                return ringil_fail(-RINGIL_EINCOMPAT, "stub is for %s but the kernel is for %s",
                                   uki_machine_name(stub.machine), uki_machine_name(info.kernel.machine));
        info.machine = stub.machine;

        /* Every other input, in ukify's section order. */
        if (p->os_release.data) {
                r = check_os_release(&p->os_release);
                if (r < 0)
                        return r;
                plan[n++] = (struct plan){ .name = ".osrel", .parts = &p->os_release, .n_parts = 1 };
        }
        if (p->cmdline) {
                r = check_cmdline(p->cmdline);
                if (r < 0)
                        return r;
                cmdline_blob = (struct uki_blob){ (const uint8_t *) p->cmdline, strlen(p->cmdline), "command line" };
                plan[n++] = (struct plan){ .name = ".cmdline", .parts = &cmdline_blob, .n_parts = 1 };
        }
        for (size_t i = 0; i < p->n_dtbs; i++) {
                r = check_dtb(&p->dtbs[i]);
                if (r < 0)
                        return r;
                plan[n++] = (struct plan){ .name = ".dtb", .parts = &p->dtbs[i], .n_parts = 1 };
        }
        if (p->uname) {
                r = check_uname(p->uname);
                if (r < 0)
                        return r;
                memcpy(info.uname, p->uname, strlen(p->uname) + 1);
        } else {
                memcpy(info.uname, info.kernel.uname, sizeof(info.uname));
        }
        if (info.uname[0]) {
                uname_blob = (struct uki_blob){ (const uint8_t *) info.uname, strlen(info.uname), "uname" };
                plan[n++] = (struct plan){ .name = ".uname", .parts = &uname_blob, .n_parts = 1 };
        }
        if (p->splash.data) {
                r = check_splash(&p->splash);
                if (r < 0)
                        return r;
                plan[n++] = (struct plan){ .name = ".splash", .parts = &p->splash, .n_parts = 1 };
        }
        if (p->n_initrds > 0) {
                for (size_t i = 0; i < p->n_initrds; i++) {
                        r = check_initrd(&p->initrds[i]);
                        if (r < 0)
                                return r;
                }
                /* ukify pads every part to 4 bytes when joining several, and leaves a single one alone. */
                plan[n++] = (struct plan){ .name = ".initrd", .parts = p->initrds, .n_parts = p->n_initrds,
                                           .pad_parts = p->n_initrds > 1 };
        }
        for (size_t i = 0; i < p->n_extra; i++) {
                r = check_extra_name(p->extra[i].name);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(p->extra[i].name, p->extra[j].name))
                                return ringil_fail(-RINGIL_EMALFORMED, "section `%s' given twice", p->extra[i].name);
                if (p->extra[i].content.size == 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "section `%s' is empty", p->extra[i].name);
                plan[n] = (struct plan){ .parts = &p->extra[i].content, .n_parts = 1 };
                memcpy(plan[n].name, p->extra[i].name, strlen(p->extra[i].name) + 1);
                n++;
        }
        /* .linux last: ukify's order, and the kernel may use the memory above it when run in place. */
        plan[n++] = (struct plan){ .name = ".linux", .parts = &p->kernel, .n_parts = 1,
                                   .characteristics = SCN_CNT_CODE | SCN_MEM_READ };

        /* INVARIANT: no section name the stub interprets appears twice (it would take the last one). */
        for (unsigned i = 0; i < stub.n_sections; i++) {
                r = pe_section_get(&stub, i, &ss);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < n; j++)
                        if (streq(ss.name, plan[j].name))
                                return ringil_fail(-RINGIL_EMALFORMED,
                                                   "stub already has a `%s' section (is it a UKI already?)", ss.name);
                if (name_has_known_prefix(ss.name) && !streq(ss.name, ".sbat"))
                        return ringil_fail(-RINGIL_EMALFORMED, "stub has a section `%s' that the stub would read as "
                                           "a UKI resource (is it a UKI already?)", shown(ss.name, shown_name));
        }

        /* Header room: the new headers go right after the table, inside SizeOfHeaders, over zero bytes. */
        hdrs = (uint32_t) stub.size_of_headers;
        slack_start = stub.section_table + (size_t) stub.n_sections * PE_SECTION_HEADER_SIZE;
        slack_end = slack_start + n * PE_SECTION_HEADER_SIZE;
        if (slack_end > hdrs || stub.n_sections + n > PE_MAX_SECTIONS)
                return ringil_fail(-RINGIL_ETOOBIG,
                                   "stub has header room for %zu more section headers, %zu needed (SizeOfHeaders 0x%x)",
                                   (hdrs - slack_start) / PE_SECTION_HEADER_SIZE, n, hdrs);
        r = check_header_slack(&stub, slack_start, slack_end);
        if (r < 0)
                return r;

        /* Layout: memory after the stub's highest section, file after its last byte kept. */
        keep = stub_keep_length(&stub, &info.stripped_symbols);
        file_end = round_up(keep, falign);
        va = round_up(vend, salign);
        for (size_t i = 0; i < n; i++) {
                struct plan *s = &plan[i];

                r = plan_length(s);
                if (r < 0)
                        return r;
                if (s->len == 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "section `%s' would be empty", s->name);
                if (s->characteristics == 0)
                        s->characteristics = SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ;
                s->vsize = s->len;
                if (streq(s->name, ".linux"))
                        s->vsize = MAX(s->len, (uint64_t) info.kernel.size_of_image);
                s->va = va;
                s->raw_offset = file_end;
                s->raw_size = round_up(s->len, falign);
                /* 64-bit sums of sizes capped far below 2^63: no overflow before this check. */
                if (s->va + s->vsize > UINT32_MAX || s->raw_offset + s->raw_size > PE_MAX_IMAGE_SIZE)
                        return ringil_fail(-RINGIL_ETOOBIG, "the UKI would be larger than the %u MiB limit at `%s'",
                                           PE_MAX_IMAGE_SIZE >> 20, s->name);
                va = round_up(s->va + s->vsize, salign);
                file_end = s->raw_offset + s->raw_size;
        }
        if (va > UINT32_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "SizeOfImage would exceed 32 bits");
        total = file_end;

        out = calloc(1, (size_t) total);
        if (!out)
                return -ENOMEM;
        memcpy(out, stub.data, (size_t) keep);
        if (info.stripped_symbols) {
                /* Bytes between the stub's end and the first new section stay zero (calloc). */
                o_coff = out + stub.coff_offset;
                pe_put32(o_coff + COFF_POINTER_TO_SYMBOL_TABLE, 0);
                pe_put32(o_coff + COFF_NUMBER_OF_SYMBOLS, 0);
                pe_put16(o_coff + COFF_CHARACTERISTICS,
                         (uint16_t) (pe_get16(o_coff + COFF_CHARACTERISTICS) | IMAGE_FILE_LOCAL_SYMS_STRIPPED));
        }
        o_coff = out + stub.coff_offset;
        o_opt = out + stub.opt_offset;
        for (size_t i = 0; i < n; i++) {
                const struct plan *s = &plan[i];
                uint8_t *h = out + slack_start + i * PE_SECTION_HEADER_SIZE, *d = out + s->raw_offset;

                /* The slack held the stub's padding: clear the whole header, NUL-padding the name. */
                memset(h, 0, PE_SECTION_HEADER_SIZE);
                memcpy(h, s->name, strlen(s->name));
                pe_put32(h + 8, (uint32_t) s->vsize);
                pe_put32(h + 12, (uint32_t) s->va);
                pe_put32(h + 16, (uint32_t) s->raw_size);
                pe_put32(h + 20, (uint32_t) s->raw_offset);
                pe_put32(h + 36, s->characteristics);
                for (size_t j = 0; j < s->n_parts; j++) {
                        memcpy(d, s->parts[j].data, s->parts[j].size);
                        d += s->pad_parts ? round_up(s->parts[j].size, 4) : s->parts[j].size;
                }
                r = add_u32(o_opt + (s->characteristics & SCN_CNT_CODE ? OPT_SIZE_OF_CODE : OPT_SIZE_OF_INIT_DATA),
                            s->raw_size, "SizeOfCode/SizeOfInitializedData");
                if (r < 0)
                        return r;
        }
        pe_put16(o_coff + COFF_NUMBER_OF_SECTIONS, (uint16_t) (stub.n_sections + n));
        pe_put32(o_opt + OPT_SIZE_OF_IMAGE, (uint32_t) va);
        pe_put32(o_opt + (stub.checksum_offset - stub.opt_offset),
                 pe_checksum(out, (size_t) total, stub.checksum_offset));

        /* INVARIANT: what we return parses under the same rules as any image we sign or verify. */
        r = pe_parse(out, (size_t) total, &out_pe);
        if (r < 0)
                return ringil_fail(r, "internal error: the built UKI does not parse: %s", ringil_detail());
        r = check_virtual_layout(&out_pe, "built UKI", &vend);
        if (r < 0)
                return r;

        stub_version(stub.data, stub.size, info.stub_version);
        info.first_new_section = stub.n_sections;
        log_debug("UKI: %zu sections appended after %u of the stub, %ju bytes", n, stub.n_sections, (uintmax_t) total);
        *ret_size = (size_t) total;
        *ret_image = TAKE_PTR(out);
        if (ret_info)
                *ret_info = info;
        return 0;
}
