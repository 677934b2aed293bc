/* fuzz-pe.c: the PE/COFF parser, the Authenticode hash and the certificate-table walk on any bytes. */
#include <openssl/x509.h>

#include "authenticode.h"
#include "fuzz.h"
#include "pe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct pe_image pe;
        uint8_t hash[32];

        if (size > (4u << 20))
                return 0;
        if (pe_parse(data, size, &pe) < 0)
                return 0;
        (void) pe_authenticode_sha256(&pe, hash);
        (void) pe_checksum(data, size, pe.checksum_offset);
        for (unsigned i = 0; i < pe.n_certs; i++) {
                struct pe_cert c;
                if (pe_cert_get(&pe, i, &c) < 0)
                        __builtin_trap();   /* pe_parse vouched for every entry */
                if (c.data + c.data_len > data + size)
                        __builtin_trap();
        }
        /* The PKCS#7 / SpcIndirectDataContent decoding, against a trust anchor nothing chains to. */
        if (pe.n_certs > 0) {
                static X509 *anchor;
                if (!anchor) {
                        anchor = X509_new();
                        if (!anchor)
                                return 0;
                }
                (void) authenticode_verify(data, size, anchor, NULL);
        }
        return 0;
}
