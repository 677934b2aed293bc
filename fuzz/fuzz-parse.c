/* fuzz-parse.c: number, size and time parsers on arbitrary strings (config files, CLI, manifests). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s;
        uint64_t u;
        int64_t t;
        char buf[21];

        if (size > 4096)
                return 0;
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        (void) parse_u64(s, &u);
        (void) parse_size(s, &u);
        if (parse_time(s, &t) >= 0)
                (void) format_time(t, buf);
        free(s);
        return 0;
}
