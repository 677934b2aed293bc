/* fuzz-audit-net.c: /proc/net/{tcp,udp}[6] socket tables and the routing tables /proc/net/route, ipv6_route. */
#include <string.h>

#include "audit-parse.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct net_list l = {};
        struct audit_route route;
        /* 10.77.0.1 and fd77::1: the first byte of the input picks other addresses too */
        uint8_t v4[16] = { 10, 77, 0, 1 }, v6[16] = { 0xfd, 0x77, [15] = 1 };

        if (audit_parse_proc_net((const char *) data, size, &l) >= 0)
                net_list_free(&l);
        if (size > 0)
                v4[3] = v6[15] = data[0];
        if (audit_route_lookup((const char *) data, size, 4, v4, &route) >= 0 && strlen(route.iface) > AUDIT_IFNAME_MAX)
                __builtin_trap();
        if (audit_route_lookup((const char *) data, size, 6, v6, &route) >= 0 && strlen(route.iface) > AUDIT_IFNAME_MAX)
                __builtin_trap();
        return 0;
}
