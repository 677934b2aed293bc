/* compliance.c: the drone's own `ringil audit` and `ringil keys status`, summarized, kept in memory only. */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"

#define AUDIT_MAX_REPORT (16u << 20)
#define KEYS_MAX_OUTPUT (256u << 10)

/*
 * INVARIANT: the audit report never touches a disk. The child writes it to an anonymous memfd, the
 * agent hashes and summarizes it in memory, and only the summary (counts, failing IDs, the report's
 * SHA-256) leaves the drone. A drone in prod mode keeps logs in RAM only; its audit findings (which
 * name its weak spots) must not outlive the boot on its disk either.
 */
static int run_to_memory(const char *const argv[], size_t max, uint8_t **ret, size_t *ret_len, int *ret_code) {
        _cleanup_close_ int fd = memfd_create("ringild-report", MFD_CLOEXEC);
        int r;

        if (fd < 0)
                return negative_errno();
        r = agent_spawn_wait(argv, fd);
        if (r < 0)
                return r;
        *ret_code = r;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return negative_errno();
        return read_full_fd(fd, max, ret, ret_len);
}

/* A profile name as the wire format takes it ([a-z0-9._-]): "prod", "dev", or a file's base name. */
static void profile_name(const char *s, char out[static FLEET_PROFILE_MAX]) {
        const char *base = strrchr(s, '/');
        size_t o = 0;

        base = base ? base + 1 : s;
        for (; *base && o + 1 < FLEET_PROFILE_MAX; base++) {
                char ch = *base;
                if (ch >= 'A' && ch <= 'Z')
                        ch = (char) (ch - 'A' + 'a');
                out[o++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'
                                   ? ch : '_';
        }
        out[o] = '\0';
        if (!o)
                snprintf(out, FLEET_PROFILE_MAX, "custom");
}

static uint32_t count(json_t *summary, const char *k) {
        json_int_t v = json_integer_value(json_object_get(summary, k));
        return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t) v;
}

int compliance_audit(const struct agent_config *c, const char *running_version, struct fleet_audit *ret) {
        const char *argv[] = { c->ringil, "audit", "--format", "json", "--profile", c->audit_profile,
                               c->audit_root ? "--root" : NULL, c->audit_root, NULL };
        _cleanup_free_ uint8_t *report = NULL;
        struct fleet_audit a = { .time = (int64_t) time(NULL) };
        uint8_t digest[SHA256_LEN];
        json_error_t e;
        json_t *j, *results, *x, *profile;
        size_t len = 0, i;
        int r, code = 0;

        r = run_to_memory(argv, AUDIT_MAX_REPORT, &report, &len, &code);
        if (r < 0)
                return ringil_fail(r, "ringil audit: %s", ringil_strerror(r));
        /* 0 compliant, 2 failures, 3 unevaluated checks: all are reports; 1 is a usage or internal error */
        if (code != 0 && code != 2 && code != 3)
                return ringil_fail(-EIO, "ringil audit exited %d", code);
        j = json_loadb((const char *) report, len, 0, &e);
        if (!j || !json_is_object(json_object_get(j, "summary"))) {
                json_decref(j);
                return ringil_fail(-RINGIL_EMALFORMED, "ringil audit --format json: %s", j ? "no summary" : e.text);
        }
        (void) crypto_sha256(report, len, digest);
        hex_encode(digest, sizeof(digest), a.sha256);
        x = json_object_get(j, "summary");
        a.pass = count(x, "pass");
        a.fail = count(x, "fail");
        a.error = count(x, "error");
        a.waived = count(x, "waived");
        a.notapplicable = count(x, "notapplicable");
        profile = json_object_get(j, "profile");
        profile_name(json_string_value(json_object_get(profile, "name")) ?: c->audit_profile, a.profile);
        results = json_object_get(j, "results");
        json_array_foreach(results, i, x) {
                const char *id = json_string_value(json_object_get(x, "id"));
                const char *status = json_string_value(json_object_get(x, "status"));
                if (!id || !status || !streq(status, "fail") || !fleet_check_id_valid(id))
                        continue;
                if (a.n_failing == FLEET_AUDIT_MAX_IDS)
                        break;   /* `fail` still counts them all */
                snprintf(a.failing[a.n_failing++], FLEET_CHECK_ID_MAX, "%s", id);
        }
        json_decref(j);
        explicit_bzero(report, len);
        snprintf(a.version, sizeof(a.version), "%s", running_version ? running_version : "");
        a.present = true;
        *ret = a;
        return 0;
}

static void key_state(json_t *vars, const char *name, char out[static 16]) {
        const char *s = json_string_value(json_object_get(json_object_get(vars, name), "state"));

        snprintf(out, 16, "%s", s && (streq(s, "ok") || streq(s, "foreign") || streq(s, "missing")) ? s : "unknown");
}

int compliance_secureboot(const struct agent_config *c, struct fleet_secureboot *ret) {
        static const char *const modes[] = { "setup", "audit", "user", "deployed", "disabled" };
        const char *argv[] = { c->ringil, "keys", "status", "--json", "--dir", c->keys_dir, "--efivarfs", c->efivarfs,
                               NULL };
        _cleanup_free_ uint8_t *out = NULL;
        struct fleet_secureboot sb = { .present = true, .mode = "unknown", .pk = "unknown", .kek = "unknown",
                                       .db = "unknown" };
        json_error_t e;
        json_t *j;
        size_t len = 0;
        int r, code = 0;

        r = run_to_memory(argv, KEYS_MAX_OUTPUT, &out, &len, &code);
        if (r < 0)
                return ringil_fail(r, "ringil keys status: %s", ringil_strerror(r));
        /* No efivarfs (not booted with UEFI): report "unknown", which the server counts as drift. */
        if (code == 0 && (j = json_loadb((const char *) out, len, 0, &e))) {
                const char *mode = json_string_value(json_object_get(j, "mode"));
                for (size_t i = 0; mode && i < ELEMENTSOF(modes); i++)
                        if (streq(mode, modes[i]))
                                snprintf(sb.mode, sizeof(sb.mode), "%s", mode);
                key_state(json_object_get(j, "variables"), "PK", sb.pk);
                key_state(json_object_get(j, "variables"), "KEK", sb.kek);
                key_state(json_object_get(j, "variables"), "db", sb.db);
                json_decref(j);
        } else
                log_debug("ringil keys status exited %d", code);
        *ret = sb;
        return 0;
}
