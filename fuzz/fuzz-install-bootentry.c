/* fuzz-install-bootentry.c: ESP entry file names (attacker-writable FAT), entry ids as loaders report them, and the LoaderEntrySelected variable. */
#include <stdlib.h>
#include <string.h>

#include "install-bootentry.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct boot_entry e, i;
        char *s;

        if (size > 4096)
                return 0;
        if (size > 0 && data[0] == 0xff) {
                if (bootentry_decode_selected(data + 1, size - 1, &s) >= 0) {
                        (void) bootentry_parse_id(s, "ringil", &i);
                        free(s);
                }
                return 0;
        }
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        /* Invariant: every file name of ours is also an id of ours, naming the same slot, version and counter. */
        if (bootentry_parse_name(s, "ringil", &e) >= 0 &&
            (bootentry_parse_id(s, "ringil", &i) < 0 || i.slot != e.slot || strcmp(i.version, e.version) != 0 ||
             strcmp(i.id, e.id) != 0 || i.tries_left != e.tries_left || i.tries_done != e.tries_done))
                abort();
        (void) bootentry_parse_id(s, "ringil", &i);
        free(s);
        return 0;
}
