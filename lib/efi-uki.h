/* efi-uki.h: Unified Kernel Images: systemd-stub plus kernel, initrds, command line, os-release and devicetree as PE sections. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "efi-pe.h"

/*
 * A UKI (uapi-group "Unified Kernel Image" specification) is the EFI stub with one PE section per
 * resource appended. The layout follows systemd's ukify, so that the stub, bootctl, systemd-boot and
 * `ukify inspect` read it the same way:
 *
 *   - the stub's own sections stay where they are, byte for byte (its trailing data too); a COFF symbol
 *     table at the very end of the stub (Debian's x86-64 stub has one) is dropped, as ukify does;
 *   - new sections follow in ukify's order: .osrel .cmdline .dtb… .uname .splash .initrd, then extra
 *     sections, then .linux last;
 *   - each new section starts at the next SectionAlignment boundary after the previous one in memory
 *     and at the next FileAlignment boundary in the file; its VirtualSize is the exact content length
 *     (the stub reads VirtualSize bytes), except .linux, whose VirtualSize is the kernel's own
 *     SizeOfImage when larger (room for its BSS if it is run in place); raw data is zero-padded to
 *     FileAlignment;
 *   - characteristics: .linux CNT_CODE|MEM_READ, the others CNT_INITIALIZED_DATA|MEM_READ (ukify's);
 *   - NumberOfSections, SizeOfCode/SizeOfInitializedData, SizeOfImage (rounded to SectionAlignment)
 *     and CheckSum are updated; the new section headers must fit in the stub's header slack (up to
 *     SizeOfHeaders), where neither the entry point nor a data directory may point, else the build is
 *     refused;
 *   - several initrds are concatenated, each zero-padded to 4 bytes (as ukify and the stub do);
 *   - the result is parsed again (pe_parse) and its virtual ranges checked before it is returned.
 *
 * Differences from ukify, on purpose: no default for the stub or os-release from the build host (the
 * CLI picks the stub from the kernel's machine type), the stub's .sbat is kept as it is instead of
 * merged with the kernel's (SBAT matters only under shim; ringil's drones boot with their own db), no
 * .pcrsig/.pcrpkey/.ucode/.profile (TPM policy and multi-profile UKIs are not built here).
 *
 * Limits (every input is bounded before it is copied): stub UKI_MAX_STUB, kernel UKI_MAX_KERNEL, the
 * whole image PE_MAX_IMAGE_SIZE (what `ringil efi verify` and the installer accept), command line
 * UKI_MAX_CMDLINE, os-release UKI_MAX_OSREL, UKI_MAX_INITRDS initrds, UKI_MAX_DTBS devicetrees,
 * UKI_MAX_EXTRA extra sections.
 */

#define UKI_MAX_STUB (16u << 20)
#define UKI_MAX_KERNEL (256u << 20)
#define UKI_MAX_CMDLINE 2047u            /* x86 and arm64 kernels keep COMMAND_LINE_SIZE-1 = 2047 bytes */
#define UKI_MAX_OSREL (64u << 10)
#define UKI_MAX_UNAME 64u                /* utsname.release holds 64 characters */
#define UKI_MAX_INITRDS 32u
#define UKI_MAX_DTBS 16u
#define UKI_MAX_EXTRA 8u

/* COFF machine types of the EFI architectures systemd ships stubs for. */
#define PE_MACHINE_I386 0x014cu
#define PE_MACHINE_X86_64 0x8664u
#define PE_MACHINE_ARMTHUMB 0x01c2u
#define PE_MACHINE_ARMNT 0x01c4u
#define PE_MACHINE_AARCH64 0xaa64u
#define PE_MACHINE_RISCV64 0x5064u
#define PE_MACHINE_LOONGARCH64 0x6264u

enum uki_kernel_format {
        UKI_KERNEL_BZIMAGE,              /* x86 bzImage ("HdrS" setup header) with the EFI stub's PE header */
        UKI_KERNEL_IMAGE,                /* arm64 or riscv64 Image (uncompressed, with its PE header) */
        UKI_KERNEL_ZBOOT,                /* EFI zboot: a compressed kernel inside a PE decompressor */
        UKI_KERNEL_PE,                   /* another EFI-stub kernel */
};

struct uki_kernel {
        enum uki_kernel_format format;
        uint16_t machine;                /* COFF Machine of the kernel's PE header */
        uint32_t size_of_image;          /* its SizeOfImage */
        char uname[UKI_MAX_UNAME + 1];   /* kernel release (`uname -r`), "" when it cannot be read */
};

/*
 * What kind of kernel image data is, and its release string, from the kernel's bytes alone (untrusted:
 * every offset is checked). The image must be an EFI-stub kernel: a PE/COFF image (pe_parse rules)
 * whose Subsystem is EFI application. The release comes from the bzImage setup header's kernel_version
 * pointer, else from the "Linux version X (" banner of an uncompressed image; a zboot image is
 * compressed, so its release is "" (pass one with uki_params.uname).
 *
 * Errors: -RINGIL_EMALFORMED/-RINGIL_ETRUNCATED/-RINGIL_ETOOBIG (detail recorded: a gzip'd vmlinuz,
 * an ELF vmlinux, a file that is no kernel). *ret is filled only on success.
 */
int uki_kernel_inspect(const uint8_t *data, size_t size, struct uki_kernel *ret);

/* Short name of a COFF machine type ("x86-64", "aarch64"…), or NULL if not an EFI architecture. */
const char *uki_machine_name(uint16_t machine);
/* systemd's file-name suffix for a machine's stub ("x64", "aa64"…): linux<suffix>.efi.stub; or NULL. */
const char *uki_machine_efi_suffix(uint16_t machine);

/* An input blob; `what` names it in error details (a file name), may be NULL. */
struct uki_blob {
        const uint8_t *data;
        size_t size;
        const char *what;
};

struct uki_extra_section {
        const char *name;                /* ".name", 2..8 characters */
        struct uki_blob content;
};

struct uki_params {
        struct uki_blob stub;            /* required: systemd-stub (linux<arch>.efi.stub), unsigned */
        struct uki_blob kernel;          /* required: the kernel (see uki_kernel_inspect) */
        const struct uki_blob *initrds;  /* cpio archives (plain or compressed), concatenated in order */
        size_t n_initrds;
        const char *cmdline;             /* NULL: no .cmdline; printable, one line, <= UKI_MAX_CMDLINE */
        struct uki_blob os_release;      /* data NULL: no .osrel; os-release(5) lines, no NUL */
        const char *uname;               /* NULL: read from the kernel (none if unreadable); else checked */
        const struct uki_blob *dtbs;     /* flattened devicetrees (FDT magic), one .dtb section each */
        size_t n_dtbs;
        struct uki_blob splash;          /* data NULL: none; a BMP */
        const struct uki_extra_section *extra;
        size_t n_extra;
};

/* What uki_build produced, for reports. */
struct uki_info {
        uint16_t machine;
        struct uki_kernel kernel;
        char uname[UKI_MAX_UNAME + 1];   /* the .uname written, "" for none */
        char stub_version[64];           /* from the stub's "#### LoaderInfo: systemd-stub V ####", or "" */
        unsigned first_new_section;      /* index of the first appended section in the output's table */
        bool stripped_symbols;           /* the stub's trailing COFF symbol table was dropped */
};

/*
 * Build a UKI from p. On success *ret_image is a malloc'd PE image of *ret_size bytes (unsigned;
 * sign it with authenticode_sign) and *ret_info (may be NULL) describes it; on failure nothing is
 * returned and a one-line detail is recorded. Errors:
 *   -RINGIL_EMALFORMED / -RINGIL_ETRUNCATED  a bad stub (not PE, not an EFI application, signed,
 *        overlapping sections, bad alignment, something pointing into the header slack, already has a
 *        section we add),
 *        kernel, initrd, devicetree, splash, os-release, command line, uname or extra-section name
 *   -RINGIL_EINCOMPAT   the stub and the kernel are for different machines
 *   -RINGIL_ETOOBIG     an input over its limit, the image over PE_MAX_IMAGE_SIZE, a field over 32 bits,
 *                       or no header room for the new section headers
 *   -EINVAL             a required input missing, or more initrds/devicetrees/extras than allowed
 *   -ENOMEM
 */
int uki_build(const struct uki_params *p, uint8_t **ret_image, size_t *ret_size, struct uki_info *ret_info);
