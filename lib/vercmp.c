/* vercmp.c: release version syntax and order, shared by bundles, install state and boot entries. */
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "vercmp.h"

int version_valid(const char *v) {
        size_t digits = 0, comps = 1;

        if (!v || !*v || strlen(v) > VERSION_MAX)
                return -RINGIL_EMALFORMED;
        for (const char *p = v; *p; p++) {
                if (*p == '.') {
                        if (digits == 0)
                                return -RINGIL_EMALFORMED;
                        digits = 0;
                        if (++comps > VERSION_MAX_COMPONENTS)
                                return -RINGIL_EMALFORMED;
                } else if (*p >= '0' && *p <= '9') {
                        if (++digits > VERSION_MAX_DIGITS)
                                return -RINGIL_EMALFORMED;
                } else
                        return -RINGIL_EMALFORMED;
        }
        return digits == 0 ? -RINGIL_EMALFORMED : 0;
}

/* Next component as a number (<= 18 digits always fits in u64); 0 past the end. */
static uint64_t next_component(const char **p) {
        uint64_t n = 0;

        if (!**p)
                return 0;
        while (**p >= '0' && **p <= '9')
                n = n * 10 + (uint64_t) (*(*p)++ - '0');
        if (**p == '.')
                (*p)++;
        return n;
}

int version_compare(const char *a, const char *b) {
        while (*a || *b) {
                uint64_t x = next_component(&a), y = next_component(&b);
                if (x != y)
                        return x < y ? -1 : 1;
        }
        return 0;
}
