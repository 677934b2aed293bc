/* fuzz-fleet-msg.c: check-in/report JSON (server side) and assignment JSON (agent side). */
#include <stdlib.h>
#include <string.h>

#include "fleet-msg.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct fleet_status s;
        struct fleet_assignment a;
        char *out = NULL;

        if (fleet_status_parse(data, size, &s) == 0) {
                /* whatever parses must format and parse back */
                if (fleet_status_format(&s, &out) < 0 || fleet_status_parse(out, strlen(out), &s) < 0)
                        abort();
                free(out);
                out = NULL;
        }
        if (fleet_assignment_parse(data, size, &a) == 0) {
                if (fleet_assignment_format(&a, &out) < 0 || fleet_assignment_parse(out, strlen(out), &a) < 0)
                        abort();
                free(out);
        }
        return 0;
}
