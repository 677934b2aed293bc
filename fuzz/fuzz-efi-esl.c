/* fuzz-efi-esl.c: EFI_SIGNATURE_LIST parsing and efivarfs decoding of hostile variable contents. */
#include <stdlib.h>
#include <string.h>

#include "efi-var.h"
#include "efi-esl.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct esl_entry *e = NULL;
        const uint8_t *d;
        uint32_t attr;
        size_t n, len;

        if (esl_parse(data, size, &e, &n) >= 0) {
                /* Every entry must lie inside the input. */
                for (size_t i = 0; i < n; i++)
                        if (e[i].data < data || e[i].data + e[i].len > data + size)
                                abort();
                free(e);
        }
        if (efivar_decode(data, size, &attr, &d, &len) >= 0 && esl_parse(d, len, &e, &n) >= 0)
                free(e);
        return 0;
}
