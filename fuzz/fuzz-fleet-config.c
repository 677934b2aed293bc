/* fuzz-fleet-config.c: the agent config (ringild.conf) schema over the configuration reader. */
#include <stdlib.h>

#include "err.h"
#include "fleet-agentconf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct agent_config c;
        int r;

        ringil_clear_detail();
        r = agent_config_parse((const char *) data, size, &c);
        if (r == 0) {
                /* Required keys are there and every default is filled in. */
                if (!c.server || !c.ca || !c.cert || !c.key || !c.device_config || !c.state_dir || !c.ringil ||
                    !c.reboot_command || !c.boot_id_file || c.poll_interval == 0 || c.poll_jitter > 100 ||
                    c.timeout == 0)
                        abort();
                agent_config_free(&c);
        } else if (r != -ENOMEM) {
                /* A refusal is one printable line. */
                const char *d = ringil_detail();
                if (!d[0])
                        abort();
                for (; *d; d++)
                        if ((unsigned char) *d < 0x20 || *d == 0x7f)
                                abort();
        }
        return 0;
}
