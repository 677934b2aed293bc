/* fuzz-install-conf.c: the device.conf schema and the install state file, both read by lib/conf.c. */
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "fuzz.h"
#include "install-conf.h"
#include "install-state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct device_conf c;
        struct install_state s;

        if (size < 1 || size > CONF_MAX_SIZE + 16)
                return 0;
        /* First byte picks the schema, so one corpus covers both readers. */
        if (data[0] & 1) {
                if (device_conf_parse((const char *) data + 1, size - 1, &c) >= 0)
                        device_conf_done(&c);
        } else if (install_state_parse((const char *) data + 1, size - 1, &s) >= 0) {
                struct buf b = BUF_INIT(CONF_MAX_SIZE);
                (void) install_state_format(&s, &b);
                buf_free(&b);
                install_state_done(&s);
        }
        return 0;
}
