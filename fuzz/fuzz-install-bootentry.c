/* fuzz-install-bootentry.c: ESP entry file names (attacker-writable FAT) and the LoaderEntrySelected variable. */
#include <stdlib.h>
#include <string.h>

#include "install-bootentry.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct boot_entry e;
        char *s;

        if (size > 4096)
                return 0;
        if (size > 0 && data[0] == 0xff) {
                if (bootentry_decode_selected(data + 1, size - 1, &s) >= 0)
                        free(s);
                return 0;
        }
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        (void) bootentry_parse_name(s, "ringil", &e);
        free(s);
        return 0;
}
