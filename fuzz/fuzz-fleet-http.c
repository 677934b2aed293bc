/* fuzz-fleet-http.c: the server's request-head parser, Range parsers and Nix cache names on arbitrary bytes. */
#include <stdlib.h>
#include <string.h>

#include "fleet-msg.h"
#include "fuzz.h"
#include "fleet-http.h"

/* An accepted cache name is "nix-cache-info", one "HASH.narinfo" or "nar/" and one file name: it never
 * climbs, never starts a component with '.', never has a second '/'. */
static void check_nix_cache_name(const char *rel) {
        int kind = fleet_nix_cache_file(rel);
        const char *last = kind == FLEET_NIX_NAR ? rel + 4 : rel;

        if (kind < 0)
                return;
        if (kind > FLEET_NIX_NAR || strstr(rel, "..") || strchr(last, '/') || last[0] == '.' || strlen(last) > 80)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct http_request req;
        uint64_t a, b, t;
        size_t n;
        char *s;

        if (size > HTTP_MAX_HEAD + 64)
                return 0;
        n = http_head_length((const char *) data, size);
        {
                size_t hl = 0;
                int k = http_head_scan((const char *) data, size, &hl);
                /* the scanner never finds a longer head than the terminator search, and never one past the data */
                if (k == 1 && (hl > size || hl != n))
                        abort();
        }
        if (http_parse_head((const char *) data, n ? n : size, &req) == 0 &&
            strncmp(req.path, FLEET_NIX_CACHE_PREFIX, strlen(FLEET_NIX_CACHE_PREFIX)) == 0)
                check_nix_cache_name(req.path + strlen(FLEET_NIX_CACHE_PREFIX));
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (http_parse_range(s, 1u << 20, &a, &b) == 0 && (a > b || b >= (1u << 20)))
                abort();   /* the range must lie inside the resource */
        (void) http_parse_content_range(s, &a, &b, &t);
        check_nix_cache_name(s);
        free(s);
        return 0;
}
