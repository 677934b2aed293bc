/* fuzz-audit-net.c: /proc/net/{tcp,udp}[6] socket tables and /proc/swaps-like text. */
#include "audit-parse.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct net_list l = {};

        if (audit_parse_proc_net((const char *) data, size, &l) >= 0)
                net_list_free(&l);
        return 0;
}
