/* fuzz-fleet-config.c: the agent config (ringild.conf) schema over the configuration reader. */
#include "fleet-agentconf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct agent_config c;

        if (agent_config_parse((const char *) data, size, &c) == 0)
                agent_config_free(&c);
        return 0;
}
