/* fuzz-audit-loader.c: loader.conf, udev database records and kernel command lines from a hostile image. */
#include "audit-parse.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct kvlist l = {};
        struct strv s = {};

        if (audit_parse_loader_conf((const char *) data, size, &l) >= 0) {
                (void) kvlist_get(&l, "editor");
                kvlist_free(&l);
        }
        if (audit_parse_udev_data((const char *) data, size, &l) >= 0)
                kvlist_free(&l);
        if (audit_parse_cmdline((const char *) data, size, &s) >= 0)
                strv_done(&s);
        return 0;
}
