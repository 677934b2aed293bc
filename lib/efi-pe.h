/* efi-pe.h: strict PE/COFF parser for EFI images, the Authenticode image hash and the certificate table. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * An EFI binary is untrusted input until its signature has been checked, so the parser checks every
 * offset and size against the file before anything is read through it, and caps what it accepts:
 *
 *   PE_MAX_IMAGE_SIZE   whole file, 512 MiB (a UKI with a large initrd is ~100 MiB)
 *   PE_MAX_SECTIONS     96, the PE/COFF specification's limit for images
 *   PE_MAX_CERT_TABLE   1 MiB of certificate table, PE_MAX_CERT_ENTRIES WIN_CERTIFICATEs
 *
 * Layout rules enforced on top of the specification's (they make the Authenticode hash well defined
 * and every valid EFI binary we know of satisfies them):
 *   - e_lfanew >= 64, the PE signature, COFF header, optional header (PE32 0x10b or PE32+ 0x20b) and
 *     the section table all lie inside SizeOfHeaders, which lies inside the file;
 *   - NumberOfRvaAndSizes is 5..16 and fits SizeOfOptionalHeader, so the certificate-table entry
 *     (data directory 4) exists;
 *   - sections with file data start at or after SizeOfHeaders, end before the certificate table, and
 *     do not overlap each other (so no byte is hashed twice as two different things);
 *   - a certificate table (whose VirtualAddress is a FILE offset, not an RVA) is 8-byte aligned, starts
 *     after all hashed data and ends exactly at the end of the file, and is a sequence of 8-byte
 *     aligned WIN_CERTIFICATE entries that fills it exactly.
 * Gaps between sections are allowed (linkers produce them); bytes in a gap before the spec's
 * SUM_OF_BYTES_HASHED are not covered by the hash, as in every Authenticode implementation.
 *
 * Errors: -RINGIL_ETRUNCATED (file ends inside a structure), -RINGIL_EMALFORMED (bad magic, bad field,
 * inconsistent layout), -RINGIL_ETOOBIG (over a cap); a one-line detail is recorded (err.h).
 */

#define PE_MAX_IMAGE_SIZE (512u << 20)
#define PE_MAX_SECTIONS 96u
#define PE_MAX_CERT_TABLE (1u << 20)
#define PE_MAX_CERT_ENTRIES 16u

#define PE_DOS_HEADER_SIZE 64u
#define PE_COFF_HEADER_SIZE 20u          /* after the 4-byte "PE\0\0" signature */
#define PE_SECTION_HEADER_SIZE 40u
#define PE_SECTION_NAME_MAX 8u
#define PE_DATA_DIR_CERT_TABLE 4u
#define PE_OPT_MAGIC_PE32 0x10bu
#define PE_OPT_MAGIC_PE32PLUS 0x20bu

#define WIN_CERT_HEADER_SIZE 8u          /* dwLength u32, wRevision u16, wCertificateType u16 */
#define WIN_CERT_REVISION_2_0 0x0200u
#define WIN_CERT_TYPE_PKCS_SIGNED_DATA 0x0002u
#define WIN_CERT_ALIGN 8u

/* A file range that carries section data, in file order. */
struct pe_range {
        uint32_t offset;
        uint32_t size;
};

/* One WIN_CERTIFICATE of the certificate table. data points into the image (borrowed). */
struct pe_cert {
        size_t offset;                   /* file offset of the WIN_CERTIFICATE header */
        uint32_t length;                 /* dwLength: header + data, unpadded */
        uint16_t revision;
        uint16_t type;
        const uint8_t *data;             /* bCertificate */
        size_t data_len;                 /* dwLength - 8 */
};

/*
 * The parsed view of an image. It borrows `data`, which must stay alive and unchanged while the view
 * is used. All offsets are file offsets and have been checked against `size`.
 */
struct pe_image {
        const uint8_t *data;
        size_t size;

        uint16_t machine;                /* COFF Machine, e.g. 0x8664 x86-64, 0xaa64 AArch64 */
        bool pe32plus;
        size_t coff_offset;              /* COFF header (after "PE\0\0") */
        size_t opt_offset;               /* optional header */
        size_t section_table;            /* first section header */
        unsigned n_sections;             /* NumberOfSections, all of them (not only those with data) */
        size_t size_of_headers;          /* SizeOfHeaders */
        size_t checksum_offset;          /* the optional header's CheckSum (4 bytes) */
        size_t cert_dir_offset;          /* data directory entry 4 (8 bytes: offset, size) */

        unsigned n_ranges;               /* sections with SizeOfRawData > 0, sorted by offset */
        struct pe_range ranges[PE_MAX_SECTIONS];
        size_t sum_of_bytes_hashed;      /* SizeOfHeaders + sum of the section sizes (spec name) */

        size_t cert_offset;              /* certificate table; 0 and 0 when unsigned */
        size_t cert_size;
        unsigned n_certs;                /* WIN_CERTIFICATE entries in it */
        size_t signed_end;               /* end of the signable image: cert_offset, or size if unsigned */
};

/*
 * Parse and check an image (see the rules above). On success fills *ret (which borrows data) and
 * returns 0; on failure *ret is untouched.
 */
int pe_parse(const uint8_t *data, size_t size, struct pe_image *ret);

/*
 * The Authenticode SHA-256 image hash: bytes [0, CheckSum), (CheckSum, cert dir entry), (entry,
 * SizeOfHeaders), then every section's file data in file order, then [SUM_OF_BYTES_HASHED,
 * signed_end) — everything after the sections except the certificate table.
 */
int pe_authenticode_sha256(const struct pe_image *pe, uint8_t out[static 32]);

/*
 * The index-th WIN_CERTIFICATE of the table (0-based). -ENOENT past the last one. The layout was
 * checked by pe_parse, so this only fails for a bad index.
 */
int pe_cert_get(const struct pe_image *pe, unsigned index, struct pe_cert *ret);

/* One section header, decoded. name is NUL-terminated (8 characters at most, as in the table). */
struct pe_section {
        char name[PE_SECTION_NAME_MAX + 1];
        uint32_t virtual_size;
        uint32_t virtual_address;
        uint32_t raw_size;               /* SizeOfRawData */
        uint32_t raw_offset;             /* PointerToRawData */
        uint32_t characteristics;
};

/*
 * The index-th section header of a parsed image (0-based, table order). -ENOENT past the last one.
 * File ranges were checked by pe_parse; virtual ranges are the caller's to check.
 */
int pe_section_get(const struct pe_image *pe, unsigned index, struct pe_section *ret);

/* The PE checksum of data (16-bit one's-complement fold plus file length), skipping CheckSum. */
uint32_t pe_checksum(const uint8_t *data, size_t size, size_t checksum_offset);

/* Little-endian accessors for callers that patch headers; p must have room. */
static inline uint16_t pe_get16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}
static inline uint32_t pe_get32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static inline void pe_put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
static inline void pe_put32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}
