/* drift.c: the drift rules: release, prod audit, Secure Boot state and silence, per drone. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "drift.h"
#include "macro.h"

const char *drift_kind_to_string(unsigned bit) {
        switch (bit) {
        case DRIFT_RELEASE:
                return "release";
        case DRIFT_AUDIT:
                return "audit";
        case DRIFT_SECUREBOOT:
                return "secureboot";
        case DRIFT_SILENT:
                return "silent";
        default:
                return "unknown";
        }
}

static bool empty(const char *s) {
        return !s || !*s;
}

void drift_classify(const struct drift_input *in, int64_t now, uint32_t silent_after, struct drift_result *ret) {
        struct drift_result r = {};

        if (in->assigned_version && !in->held && !streq(in->assigned_version, in->version ? in->version : "")) {
                r.kinds |= DRIFT_RELEASE;
                snprintf(r.release, sizeof(r.release), "runs '%s', assigned '%s'",
                         empty(in->version) ? "unknown" : in->version, in->assigned_version);
        }

        if (!in->audit_present) {
                r.kinds |= DRIFT_AUDIT;
                snprintf(r.audit, sizeof(r.audit), "no audit reported");
        } else if (!in->audit_profile || !streq(in->audit_profile, "prod")) {
                r.kinds |= DRIFT_AUDIT;
                snprintf(r.audit, sizeof(r.audit), "audited against profile '%s', not prod",
                         empty(in->audit_profile) ? "unknown" : in->audit_profile);
        } else if (in->audit_fail > 0 || in->audit_error > 0) {
                r.kinds |= DRIFT_AUDIT;
                if (in->audit_fail > 0)
                        snprintf(r.audit, sizeof(r.audit), "%" PRIu32 " failing: %s%s", in->audit_fail,
                                 empty(in->audit_failing) ? "(IDs not reported)" : in->audit_failing,
                                 in->audit_error ? "; some checks could not be evaluated" : "");
                else
                        snprintf(r.audit, sizeof(r.audit), "%" PRIu32 " checks could not be evaluated",
                                 in->audit_error);
        }

        if (!in->sb_present) {
                r.kinds |= DRIFT_SECUREBOOT;
                snprintf(r.secureboot, sizeof(r.secureboot), "no Secure Boot status reported");
        } else {
                const char *mode = in->sb_mode ? in->sb_mode : "unknown";
                const char *keys[3] = { in->sb_pk, in->sb_kek, in->sb_db }, *names[3] = { "PK", "KEK", "db" };
                size_t o = 0;
                if (!streq(mode, "user") && !streq(mode, "deployed"))
                        o += (size_t) snprintf(r.secureboot, sizeof(r.secureboot), "mode %s (not enforced)", mode);
                for (int i = 0; i < 3 && o < sizeof(r.secureboot); i++)
                        if (!keys[i] || !streq(keys[i], "ok"))
                                o += (size_t) snprintf(r.secureboot + o, sizeof(r.secureboot) - o, "%s%s %s",
                                                       o ? ", " : "", names[i], keys[i] ? keys[i] : "unknown");
                if (o)
                        r.kinds |= DRIFT_SECUREBOOT;
        }

        if (in->last_seen <= 0) {
                r.kinds |= DRIFT_SILENT;
                snprintf(r.silent, sizeof(r.silent), "never checked in");
        } else if (now - in->last_seen > (int64_t) silent_after) {
                r.kinds |= DRIFT_SILENT;
                snprintf(r.silent, sizeof(r.silent), "silent for %" PRId64 " s", now - in->last_seen);
        }
        *ret = r;
}
