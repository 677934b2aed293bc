/* fuzz-fleet-form.c: the dashboard's form and query decoder on arbitrary bytes. */
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "fleet-form.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct form f;
        char enc[3 * FORM_MAX_VALUE + 1];

        if (form_parse((const char *) data, size, &f) < 0) {
                if (f.n || f.storage)
                        abort();   /* a refusal leaves nothing behind */
                return 0;
        }
        for (size_t i = 0; i < f.n; i++) {
                const char *v = f.f[i].value;
                /* every accepted value is printable text of bounded size, and survives a round trip */
                if (strlen(v) > FORM_MAX_VALUE || escape_needed(v) || form_get(&f, f.f[i].name) != v)
                        abort();
                if (!form_encode(v, enc, sizeof(enc)) || strspn(enc, "ABCDEFabcdefghijklmnopqrstuvwxyz"
                                                                      "GHIJKLMNOPQRSTUVWXYZ0123456789%._~-") != strlen(enc))
                        abort();
        }
        form_done(&f);
        return 0;
}
