/* efi-pe.c: strict PE/COFF parsing, the Authenticode SHA-256 image hash and the PE checksum. */
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "efi-pe.h"

/* Offsets inside the headers (PE/COFF specification, "Optional Header Image Only"). */
#define DOS_E_LFANEW 0x3c
#define COFF_MACHINE 0
#define COFF_NUMBER_OF_SECTIONS 2
#define COFF_SIZE_OF_OPTIONAL_HEADER 16
#define OPT_SIZE_OF_HEADERS 60
#define OPT_CHECKSUM 64
#define OPT32_NUMBER_OF_RVA 92
#define OPT32_DATA_DIRS 96
#define OPT64_NUMBER_OF_RVA 108
#define OPT64_DATA_DIRS 112
#define DATA_DIR_SIZE 8
#define DATA_DIR_MAX 16
#define SECTION_SIZE_OF_RAW_DATA 16
#define SECTION_POINTER_TO_RAW_DATA 20

/* True when [off, off+len) lies inside [0, limit); never overflows. */
static bool range_ok(size_t off, size_t len, size_t limit) {
        return len <= limit && off <= limit - len;
}

static size_t align8(size_t n) {
        return (n + (WIN_CERT_ALIGN - 1)) & ~(size_t) (WIN_CERT_ALIGN - 1);
}

/* Walks the certificate table; with ret_entry, stops at entry `want` and returns it. */
static int cert_walk(const uint8_t *data, size_t table, size_t table_size, unsigned want,
                     unsigned *ret_count, struct pe_cert *ret_entry) {
        size_t end = table + table_size, cur = table;
        unsigned n = 0;

        while (cur < end) {
                uint32_t len;

                if (end - cur < WIN_CERT_HEADER_SIZE)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "certificate table: %zu stray bytes at offset %zu", end - cur, cur);
                len = pe_get32(data + cur);
                if (len < WIN_CERT_HEADER_SIZE)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "certificate table: entry %u has dwLength %u", n, len);
                /* INVARIANT: every WIN_CERTIFICATE, padding included, lies inside the table. */
                if (len > end - cur || align8(len) > end - cur)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "certificate table: entry %u (dwLength %u) overruns the table", n,
                                           len);
                if (n >= PE_MAX_CERT_ENTRIES)
                        return ringil_fail(-RINGIL_ETOOBIG, "certificate table: more than %u entries",
                                           PE_MAX_CERT_ENTRIES);
                if (ret_entry && n == want) {
                        *ret_entry = (struct pe_cert){
                                .offset = cur,
                                .length = len,
                                .revision = pe_get16(data + cur + 4),
                                .type = pe_get16(data + cur + 6),
                                .data = data + cur + WIN_CERT_HEADER_SIZE,
                                .data_len = len - WIN_CERT_HEADER_SIZE,
                        };
                        return 0;
                }
                n++;
                cur += align8(len);
        }
        if (ret_entry)
                return -ENOENT;
        if (ret_count)
                *ret_count = n;
        return 0;
}

int pe_parse(const uint8_t *data, size_t size, struct pe_image *ret) {
        struct pe_image pe = { .data = data, .size = size };
        size_t lfanew, coff, opt, opt_size, sectab, dirs, nrva_off;
        unsigned n_sections;
        uint32_t nrva, cert_va, cert_sz;
        uint16_t magic;
        int r;

        if (size > PE_MAX_IMAGE_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, "image is %zu bytes, more than the %u MiB limit", size,
                                   PE_MAX_IMAGE_SIZE >> 20);
        if (size < PE_DOS_HEADER_SIZE)
                return ringil_fail(-RINGIL_ETRUNCATED, "file of %zu bytes is too small for a DOS header", size);
        if (data[0] != 'M' || data[1] != 'Z')
                return ringil_fail(-RINGIL_EMALFORMED, "no MZ signature: not a PE/COFF image");

        lfanew = pe_get32(data + DOS_E_LFANEW);
        if (lfanew < PE_DOS_HEADER_SIZE)
                return ringil_fail(-RINGIL_EMALFORMED, "e_lfanew %zu points into the DOS header", lfanew);
        if (!range_ok(lfanew, 4 + PE_COFF_HEADER_SIZE + 2, size))
                return ringil_fail(-RINGIL_ETRUNCATED, "PE header at %zu is beyond the end of the file", lfanew);
        if (memcmp(data + lfanew, "PE\0\0", 4) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "no PE signature at offset %zu", lfanew);

        coff = lfanew + 4;
        pe.coff_offset = coff;
        pe.machine = pe_get16(data + coff + COFF_MACHINE);
        n_sections = pe_get16(data + coff + COFF_NUMBER_OF_SECTIONS);
        opt_size = pe_get16(data + coff + COFF_SIZE_OF_OPTIONAL_HEADER);
        if (n_sections > PE_MAX_SECTIONS)
                return ringil_fail(-RINGIL_ETOOBIG, "%u sections, more than %u", n_sections, PE_MAX_SECTIONS);

        opt = coff + PE_COFF_HEADER_SIZE;
        pe.opt_offset = opt;
        magic = pe_get16(data + opt);
        switch (magic) {
        case PE_OPT_MAGIC_PE32:
                nrva_off = OPT32_NUMBER_OF_RVA;
                dirs = OPT32_DATA_DIRS;
                break;
        case PE_OPT_MAGIC_PE32PLUS:
                pe.pe32plus = true;
                nrva_off = OPT64_NUMBER_OF_RVA;
                dirs = OPT64_DATA_DIRS;
                break;
        default:
                return ringil_fail(-RINGIL_EMALFORMED, "optional header magic 0x%04x is neither PE32 nor PE32+",
                                   magic);
        }
        /* The certificate-table entry must exist: at least 5 data directories, inside the header. */
        if (opt_size < dirs + (PE_DATA_DIR_CERT_TABLE + 1) * DATA_DIR_SIZE)
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "optional header of %zu bytes has no certificate-table directory entry",
                                   opt_size);
        if (!range_ok(opt, opt_size, size))
                return ringil_fail(-RINGIL_ETRUNCATED, "optional header ends beyond the end of the file");
        nrva = pe_get32(data + opt + nrva_off);
        if (nrva <= PE_DATA_DIR_CERT_TABLE || nrva > DATA_DIR_MAX)
                return ringil_fail(-RINGIL_EMALFORMED, "NumberOfRvaAndSizes %u is outside 5..16", nrva);
        if (dirs + (size_t) nrva * DATA_DIR_SIZE > opt_size)
                return ringil_fail(-RINGIL_EMALFORMED, "%u data directories do not fit the %zu-byte optional header",
                                   nrva, opt_size);

        sectab = opt + opt_size;
        pe.section_table = sectab;
        pe.n_sections = n_sections;
        if (!range_ok(sectab, (size_t) n_sections * PE_SECTION_HEADER_SIZE, size))
                return ringil_fail(-RINGIL_ETRUNCATED, "section table ends beyond the end of the file");
        pe.size_of_headers = pe_get32(data + opt + OPT_SIZE_OF_HEADERS);
        if (pe.size_of_headers < sectab + (size_t) n_sections * PE_SECTION_HEADER_SIZE)
                return ringil_fail(-RINGIL_EMALFORMED, "SizeOfHeaders %zu is smaller than the headers",
                                   pe.size_of_headers);
        if (pe.size_of_headers > size)
                return ringil_fail(-RINGIL_ETRUNCATED, "SizeOfHeaders %zu is beyond the end of the file",
                                   pe.size_of_headers);
        pe.checksum_offset = opt + OPT_CHECKSUM;
        pe.cert_dir_offset = opt + dirs + PE_DATA_DIR_CERT_TABLE * DATA_DIR_SIZE;

        /* The certificate table's "VirtualAddress" is a file offset: it is never mapped. */
        cert_va = pe_get32(data + pe.cert_dir_offset);
        cert_sz = pe_get32(data + pe.cert_dir_offset + 4);
        if (cert_sz == 0) {
                pe.signed_end = size;
        } else {
                if (cert_va == 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "certificate table of %u bytes at offset 0", cert_sz);
                if (cert_sz > PE_MAX_CERT_TABLE)
                        return ringil_fail(-RINGIL_ETOOBIG, "certificate table of %u bytes, more than %u", cert_sz,
                                           PE_MAX_CERT_TABLE);
                if (!range_ok(cert_va, cert_sz, size))
                        return ringil_fail(-RINGIL_ETRUNCATED,
                                           "certificate table [%u, +%u) is beyond the end of the file (%zu)", cert_va,
                                           cert_sz, size);
                /* Anything after the table would be neither hashed nor signed. */
                if ((size_t) cert_va + cert_sz != size)
                        return ringil_fail(-RINGIL_EMALFORMED, "%zu bytes follow the certificate table",
                                           size - cert_va - cert_sz);
                if (cert_va % WIN_CERT_ALIGN != 0 || cert_sz % WIN_CERT_ALIGN != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "certificate table [%u, +%u) is not 8-byte aligned",
                                           cert_va, cert_sz);
                if (cert_va < pe.size_of_headers)
                        return ringil_fail(-RINGIL_EMALFORMED, "certificate table at %u overlaps the headers",
                                           cert_va);
                pe.cert_offset = cert_va;
                pe.cert_size = cert_sz;
                pe.signed_end = cert_va;
                r = cert_walk(data, pe.cert_offset, pe.cert_size, 0, &pe.n_certs, NULL);
                if (r < 0)
                        return r;
        }

        for (unsigned i = 0; i < n_sections; i++) {
                const uint8_t *s = data + sectab + (size_t) i * PE_SECTION_HEADER_SIZE;
                uint32_t raw_size = pe_get32(s + SECTION_SIZE_OF_RAW_DATA);
                uint32_t raw_ptr = pe_get32(s + SECTION_POINTER_TO_RAW_DATA);
                unsigned j;

                if (raw_size == 0)   /* no file data (.bss-like); its pointer means nothing */
                        continue;
                if (raw_ptr < pe.size_of_headers)
                        return ringil_fail(-RINGIL_EMALFORMED, "section %u at offset %u overlaps the headers", i,
                                           raw_ptr);
                if (!range_ok(raw_ptr, raw_size, size))
                        return ringil_fail(-RINGIL_ETRUNCATED,
                                           "section %u [%u, +%u) extends beyond the end of the file (%zu)", i, raw_ptr,
                                           raw_size, size);
                if (!range_ok(raw_ptr, raw_size, pe.signed_end))
                        return ringil_fail(-RINGIL_EMALFORMED, "section %u [%u, +%u) overlaps the certificate table",
                                           i, raw_ptr, raw_size);
                /* Insertion sort by file offset: at most 96 entries. */
                for (j = pe.n_ranges; j > 0 && pe.ranges[j - 1].offset > raw_ptr; j--)
                        pe.ranges[j] = pe.ranges[j - 1];
                pe.ranges[j] = (struct pe_range){ .offset = raw_ptr, .size = raw_size };
                pe.n_ranges++;
        }

        pe.sum_of_bytes_hashed = pe.size_of_headers;
        for (unsigned i = 0; i < pe.n_ranges; i++) {
                /* INVARIANT: section data never overlaps, so no byte is hashed twice as section data. */
                if (i > 0 && pe.ranges[i].offset < (size_t) pe.ranges[i - 1].offset + pe.ranges[i - 1].size)
                        return ringil_fail(-RINGIL_EMALFORMED, "sections at offsets %u and %u overlap",
                                           pe.ranges[i - 1].offset, pe.ranges[i].offset);
                pe.sum_of_bytes_hashed += pe.ranges[i].size;
        }
        /* Disjoint ranges inside [SizeOfHeaders, signed_end) cannot sum past signed_end. */
        if (pe.sum_of_bytes_hashed > pe.signed_end)
                return ringil_fail(-RINGIL_EMALFORMED, "section data exceeds the image");

        *ret = pe;
        return 0;
}

int pe_authenticode_sha256(const struct pe_image *pe, uint8_t out[static 32]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        const uint8_t *d = pe->data;
        unsigned n = 0;
        bool ok;

        if (!ctx)
                return -ENOMEM;
        /* Headers minus CheckSum and minus the certificate-table directory entry. */
        ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, d, pe->checksum_offset) &&
             EVP_DigestUpdate(ctx, d + pe->checksum_offset + 4, pe->cert_dir_offset - pe->checksum_offset - 4) &&
             EVP_DigestUpdate(ctx, d + pe->cert_dir_offset + DATA_DIR_SIZE,
                              pe->size_of_headers - pe->cert_dir_offset - DATA_DIR_SIZE);
        for (unsigned i = 0; ok && i < pe->n_ranges; i++)
                ok = EVP_DigestUpdate(ctx, d + pe->ranges[i].offset, pe->ranges[i].size);
        /* Then whatever follows the sections (debug data, padding), but not the certificate table. */
        if (ok && pe->sum_of_bytes_hashed < pe->signed_end)
                ok = EVP_DigestUpdate(ctx, d + pe->sum_of_bytes_hashed, pe->signed_end - pe->sum_of_bytes_hashed);
        if (!ok || !EVP_DigestFinal_ex(ctx, out, &n) || n != 32)
                return crypto_fail(-EIO, "SHA-256 of the image");
        return 0;
}

int pe_cert_get(const struct pe_image *pe, unsigned index, struct pe_cert *ret) {
        if (pe->cert_size == 0 || index >= pe->n_certs)
                return -ENOENT;
        return cert_walk(pe->data, pe->cert_offset, pe->cert_size, index, NULL, ret);
}

int pe_section_get(const struct pe_image *pe, unsigned index, struct pe_section *ret) {
        const uint8_t *s;

        if (index >= pe->n_sections)
                return -ENOENT;
        /* pe_parse checked that the whole table lies inside the headers. */
        s = pe->data + pe->section_table + (size_t) index * PE_SECTION_HEADER_SIZE;
        *ret = (struct pe_section){
                .virtual_size = pe_get32(s + 8),
                .virtual_address = pe_get32(s + 12),
                .raw_size = pe_get32(s + SECTION_SIZE_OF_RAW_DATA),
                .raw_offset = pe_get32(s + SECTION_POINTER_TO_RAW_DATA),
                .characteristics = pe_get32(s + 36),
        };
        /* An 8-character name fills the field with no NUL; shorter ones are NUL-padded. */
        memcpy(ret->name, s, PE_SECTION_NAME_MAX);
        ret->name[PE_SECTION_NAME_MAX] = '\0';
        return 0;
}

uint32_t pe_checksum(const uint8_t *data, size_t size, size_t checksum_offset) {
        uint64_t sum = 0;

        /*
         * 16-bit little-endian words with an odd last byte as a low byte, summed without folding (a
         * 64-bit sum cannot overflow below 2^48 bytes), then CheckSum's own bytes taken out again —
         * exact in integer arithmetic — and the end-around carries folded once. Folding once at the
         * end gives the same result as folding after every addition (both are the sum mod 0xffff,
         * in 1..0xffff unless every word is zero).
         */
        for (size_t i = 0; i + 1 < size; i += 2)
                sum += (uint32_t) data[i] | (uint32_t) data[i + 1] << 8;
        if (size % 2)
                sum += data[size - 1];
        for (size_t j = checksum_offset; j < checksum_offset + 4 && j < size; j++)
                sum -= (uint64_t) data[j] << (8 * (j & 1));
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint32_t) sum + (uint32_t) size;
}
