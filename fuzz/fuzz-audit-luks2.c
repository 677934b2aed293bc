/* fuzz-audit-luks2.c: LUKS2 binary header + JSON area read from a device of a captured or hostile disk. */
#include <stdlib.h>
#include <string.h>

#include "audit-parse.h"
#include "crypto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct luks2_info info;
        size_t hs;
        uint8_t *copy;

        if (size > LUKS2_HDR_MAX)
                return 0;
        (void) audit_parse_luks2(data, size, &info);
        /* Most mutations break the checksum; fix it up so the JSON parser is reached too. */
        if (audit_luks2_header_size(data, size, &hs) < 0 || size < hs)
                return 0;
        copy = malloc(hs);
        if (!copy)
                return 0;
        memcpy(copy, data, hs);
        memset(copy + 448, 0, 64);
        {
                uint8_t d[SHA256_LEN];
                if (crypto_sha256(copy, hs, d) >= 0) {
                        memcpy(copy + 448, d, SHA256_LEN);
                        (void) audit_parse_luks2(copy, hs, &info);
                }
        }
        free(copy);
        return 0;
}
