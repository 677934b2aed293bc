/* fuzz-fleet-http.c: the server's request-head parser and Range parsers on arbitrary bytes. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct http_request req;
        uint64_t a, b, t;
        size_t n;
        char *s;

        if (size > HTTP_MAX_HEAD + 64)
                return 0;
        n = http_head_length((const char *) data, size);
        (void) http_parse_head((const char *) data, n ? n : size, &req);
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (http_parse_range(s, 1u << 20, &a, &b) == 0 && (a > b || b >= (1u << 20)))
                abort();   /* the range must lie inside the resource */
        (void) http_parse_content_range(s, &a, &b, &t);
        free(s);
        return 0;
}
