/* fuzz-install-conf.c: the device.conf schema and the install state file, both read by lib/conf.c. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "err.h"
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
                ringil_clear_detail();
                if (device_conf_parse((const char *) data + 1, size - 1, &c) >= 0) {
                        /* Every default is filled in, and slot mode has both sides of every class. */
                        if (!c.compatible || !c.keyring || !c.esp || !c.state_dir || !c.floor_copy || !c.efivarfs ||
                            !c.entry_name || !c.title || c.boot_tries < 1 || c.boot_tries > INSTALL_TRIES_MAX ||
                            (c.nix_generation && (!c.nix_trusted_keys || c.n_classes > 0)))
                                abort();
                        for (size_t i = 0; i < c.n_classes; i++)
                                if (!c.classes[i].device[0] || !c.classes[i].device[1])
                                        abort();
                        device_conf_done(&c);
                } else if (!ringil_detail()[0] || strchr(ringil_detail(), '\n'))
                        abort();   /* a refusal is one line */
        } else if (install_state_parse((const char *) data + 1, size - 1, &s) >= 0) {
                struct buf b = BUF_INIT(CONF_MAX_SIZE);
                (void) install_state_format(&s, &b);
                buf_free(&b);
                install_state_done(&s);
        }
        return 0;
}
