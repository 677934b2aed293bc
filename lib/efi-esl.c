/* efi-esl.c: EFI GUID text/binary conversion and bounded EFI_SIGNATURE_LIST parsing and building. */
#include <string.h>

#include "err.h"
#include "efi-esl.h"
#include "parse.h"
#include "macro.h"

#define G(a, b, c, d0, d1, d2, d3, d4, d5, d6, d7)                                               \
        { { (a) & 0xff, ((a) >> 8) & 0xff, ((a) >> 16) & 0xff, ((a) >> 24) & 0xff, (b) & 0xff,   \
            ((b) >> 8) & 0xff, (c) & 0xff, ((c) >> 8) & 0xff, d0, d1, d2, d3, d4, d5, d6, d7 } }

const efi_guid EFI_GLOBAL_VARIABLE_GUID =
        G(0x8be4df61, 0x93ca, 0x11d2, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c);
const efi_guid EFI_IMAGE_SECURITY_DATABASE_GUID =
        G(0xd719b2cb, 0x3d3a, 0x4596, 0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f);
const efi_guid EFI_CERT_X509_GUID =
        G(0xa5c059a1, 0x94e4, 0x4aa7, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72);
const efi_guid EFI_CERT_SHA256_GUID =
        G(0xc1c41626, 0x504c, 0x4092, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28);
const efi_guid EFI_CERT_TYPE_PKCS7_GUID =
        G(0x4aafd29d, 0x68df, 0x49ee, 0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7);
const efi_guid LOADER_GUID =
        G(0x4a67b082, 0x0a4c, 0x41cf, 0xb6, 0xc7, 0x44, 0x0b, 0x29, 0xbb, 0x8c, 0x4f);
const efi_guid MICROSOFT_OWNER_GUID =
        G(0x77fa9abd, 0x0359, 0x4d32, 0xbd, 0x60, 0x28, 0xf4, 0xe7, 0x8f, 0x78, 0x4b);

/* Byte index in efi_guid.b for each of the 16 bytes in text order (first three fields reversed). */
static const uint8_t text_order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };


int efi_guid_from_string(const char *s, efi_guid *ret) {
        efi_guid g;
        size_t i = 0, k = 0;

        if (!s || strlen(s) != 36)
                return -EINVAL;
        while (k < 16) {
                int hi, lo;
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return -EINVAL;
                        i++;
                        continue;
                }
                hi = unhexchar(s[i]);
                lo = unhexchar(s[i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                g.b[text_order[k++]] = (uint8_t) (hi << 4 | lo);
                i += 2;
        }
        *ret = g;
        return 0;
}

char *efi_guid_to_string(const efi_guid *g, char out[static EFI_GUID_STRING_MAX]) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        for (size_t k = 0; k < 16; k++) {
                if (k == 4 || k == 6 || k == 8 || k == 10)
                        out[o++] = '-';
                out[o++] = hex[g->b[text_order[k]] >> 4];
                out[o++] = hex[g->b[text_order[k]] & 0xf];
        }
        out[o] = '\0';
        return out;
}

int efi_guid_equal(const efi_guid *a, const efi_guid *b) {
        return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

#define ESL_HEADER_SIZE 28u   /* SignatureType(16) ListSize(4) HeaderSize(4) SignatureSize(4) */
#define ESL_OWNER_SIZE 16u

int esl_parse(const uint8_t *p, size_t n, struct esl_entry **ret_entries, size_t *ret_count) {
        _cleanup_free_ struct esl_entry *entries = NULL;
        size_t count = 0, alloc = 0, off = 0;

        if (n > ESL_MAX_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, "signature list of %zu bytes exceeds %u", n,
                                   ESL_MAX_SIZE);
        if (n > 0 && !p)
                return -EINVAL;

        while (off < n) {
                size_t rest = n - off, list_size, header_size, sig_size, body;
                efi_guid type;

                if (rest < ESL_HEADER_SIZE)
                        return ringil_fail(-RINGIL_ETRUNCATED, "signature list header at offset %zu truncated",
                                           off);
                memcpy(type.b, p + off, 16);
                list_size = le32(p + off + 16);
                header_size = le32(p + off + 20);
                sig_size = le32(p + off + 24);

                if (list_size > rest)
                        return ringil_fail(-RINGIL_ETRUNCATED,
                                           "signature list at offset %zu declares %zu bytes, %zu left", off,
                                           list_size, rest);
                /* ListSize covers the header, the optional SignatureHeader and whole entries. */
                if (list_size < ESL_HEADER_SIZE || header_size > list_size - ESL_HEADER_SIZE)
                        return ringil_fail(-RINGIL_EMALFORMED, "signature list at offset %zu: bad sizes", off);
                if (sig_size < ESL_OWNER_SIZE)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "signature list at offset %zu: SignatureSize %zu too small", off,
                                           sig_size);
                if (efi_guid_equal(&type, &EFI_CERT_SHA256_GUID) && sig_size != ESL_OWNER_SIZE + 32)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "signature list at offset %zu: SHA-256 entries of %zu bytes", off,
                                           sig_size);
                body = list_size - ESL_HEADER_SIZE - header_size;
                if (body % sig_size != 0)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "signature list at offset %zu: %zu bytes is not a multiple of %zu",
                                           off, body, sig_size);
                /* An empty list carries no signature and only hides data; reject it. */
                if (body == 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "signature list at offset %zu is empty", off);

                for (size_t e = off + ESL_HEADER_SIZE + header_size; e < off + list_size; e += sig_size) {
                        if (count >= ESL_MAX_ENTRIES)
                                return ringil_fail(-RINGIL_ETOOBIG, "more than %u signature entries",
                                                   ESL_MAX_ENTRIES);
                        if (count == alloc) {
                                size_t na = alloc ? alloc * 2 : 8;
                                struct esl_entry *t;
                                na = MIN(na, (size_t) ESL_MAX_ENTRIES);
                                t = reallocarray(entries, na, sizeof(*entries));
                                if (!t)
                                        return -ENOMEM;
                                entries = t;
                                alloc = na;
                        }
                        entries[count].type = type;
                        memcpy(entries[count].owner.b, p + e, 16);
                        entries[count].data = p + e + ESL_OWNER_SIZE;
                        entries[count].len = sig_size - ESL_OWNER_SIZE;
                        count++;
                }
                off += list_size;
        }

        *ret_entries = TAKE_PTR(entries);
        *ret_count = count;
        return 0;
}

int esl_append_x509(struct buf *out, const efi_guid *owner, const uint8_t *der, size_t der_len) {
        uint8_t hdr[ESL_HEADER_SIZE + ESL_OWNER_SIZE];
        size_t total;
        size_t old_len = out->len;
        int r;

        if (der_len == 0 || der_len > ESL_MAX_SIZE - sizeof(hdr))
                return -EINVAL;
        total = sizeof(hdr) + der_len;
        memcpy(hdr, EFI_CERT_X509_GUID.b, 16);
        put_le32(hdr + 16, (uint32_t) total);
        put_le32(hdr + 20, 0);
        put_le32(hdr + 24, (uint32_t) (ESL_OWNER_SIZE + der_len));
        memcpy(hdr + ESL_HEADER_SIZE, owner->b, 16);

        r = buf_reserve(out, total);
        if (r < 0)
                return r;
        r = buf_append(out, hdr, sizeof(hdr));
        if (r >= 0)
                r = buf_append(out, der, der_len);
        if (r < 0) {
                out->len = old_len;
                out->data[old_len] = 0;
        }
        return r;
}
