/* fuzz-audit-shadow.c: passwd(5)/shadow(5) parsing of a hostile image's account files. */
#include "audit-parse.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct pw_list l = {};

        if (audit_parse_passwd((const char *) data, size, &l) >= 0)
                pw_list_free(&l);
        if (audit_parse_shadow((const char *) data, size, &l) >= 0) {
                (void) pw_list_find(&l, "root");
                pw_list_free(&l);
        }
        return 0;
}
