/* fuzz-audit-ini.c: systemd INI files (journald.conf, sleep.conf and their drop-ins), merged twice. */
#include "audit-parse.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct kvlist l = {};

        (void) audit_parse_ini_section((const char *) data, size, "Journal", &l);
        (void) audit_parse_ini_section((const char *) data, size, "Journal", &l);
        (void) kvlist_get(&l, "Storage");
        kvlist_free(&l);
        return 0;
}
