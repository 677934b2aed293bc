/* audit-profiles.c: the built-in audit profiles: data/audit/{prod,dev}.json embedded at build time (scripts/embed.py),
 * read by the same loader as a --profile file. */
#include <string.h>

#include "audit-profiles-data.h"
#include "audit.h"
#include "macro.h"

static const struct {
        const char *name;
        const char *json;
} builtin[] = {
        { "prod", audit_profile_prod },   /* every check, with the seed's values */
        { "dev", audit_profile_dev },     /* prod minus what a development drone legitimately has */
};

const char *audit_builtin_profile(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(builtin); i++)
                if (streq(name, builtin[i].name))
                        return builtin[i].json;
        return NULL;
}
