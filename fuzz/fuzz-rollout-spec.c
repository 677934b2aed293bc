/* fuzz-rollout-spec.c: an operator's rollout request (JSON), and the partition of a fleet by its groups. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "rollout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct rollout_spec s;
        uint32_t sizes[ROLLOUT_MAX_GROUPS];
        struct rollout_conditions cond[ROLLOUT_MAX_GROUPS];
        char target[80];

        if (rollout_spec_parse(data, size, &s) < 0)
                return 0;
        /* whatever parses is internally consistent */
        if (s.release <= 0 || s.n_groups == 0 || s.n_groups > ROLLOUT_MAX_GROUPS || s.deadline == 0 ||
            (s.target == TARGET_LIST) != (s.n_drones > 0))
                abort();
        for (size_t i = 0; i < s.n_groups; i++)
                if ((s.groups[i].cond.error_count == 0 && s.groups[i].cond.error_pct == 0) ||
                    s.groups[i].cond.success_pct == 0 || s.groups[i].cond.success_pct > 100)
                        abort();
        rollout_spec_target_string(&s, target, sizeof(target));
        /* partitions cover the target exactly, whatever its size */
        for (size_t n = 0; n < 300; n += 37) {
                size_t k = rollout_partition(n, s.groups, s.n_groups, sizes, cond), sum = 0;
                if (k > ROLLOUT_MAX_GROUPS || (n > 0 && k == 0))
                        abort();
                for (size_t i = 0; i < k; i++) {
                        if (sizes[i] == 0)
                                abort();
                        sum += sizes[i];
                }
                if (sum != n)
                        abort();
        }
        rollout_spec_done(&s);
        return 0;
}
