/* fleet-agentconf.c: the ringild.conf schema: one table of keys, bounds and defaults. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"
#include "fleet-agentconf.h"
#include "macro.h"

void agent_config_free(struct agent_config *c) {
        if (!c)
                return;
        free(c->server);
        free(c->enroll_server);
        free(c->ca);
        free(c->cert);
        free(c->key);
        free(c->device_config);
        free(c->state_dir);
        free(c->ringil);
        free(c->reboot_command);
        free(c->health_command);
        free(c->boot_id_file);
        free(c->mirror_ca);
        free(c->timezone);
        free(c->download_dir);
        free(c->audit_root);
        free(c->audit_profile);
        free(c->keys_dir);
        free(c->efivarfs);
        *c = (struct agent_config) {};
}

static const char *const https_only[] = { "https://", NULL };
/* A zone name as under /usr/share/zoneinfo (Europe/Paris, Etc/GMT+3, UTC); the agent checks at start
 * that the zone exists. Not a path: no leading '/' and no "..", checked in agent_check(). */
static const struct conf_charset zone_chars = {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-", "A-Z a-z 0-9 / _ + -"
};
static const struct conf_charset profile_chars = { "abcdefghijklmnopqrstuvwxyz0123456789_-", "a-z 0-9 _ -" };

/*
 * `server = URL[, URL…]`: the fleet port of each server (replicas of one fleet, or one server), tried
 * in this order; kept as "URL,URL" for fleet_client_new().
 */
static int parse_servers(const struct conf_ctx *ctx, const char *value, void *dst) {
        char out[AGENT_MAX_SERVERS * 257] = "", seen[AGENT_MAX_SERVERS][256];
        const char *p = value;
        size_t o = 0, n = 0;

        while (*p) {
                char url[256];
                size_t k;
                p += strspn(p, ", \t");
                k = strcspn(p, ", \t");
                if (k == 0)
                        break;
                if (++n > AGENT_MAX_SERVERS)
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "more than %d server URLs", AGENT_MAX_SERVERS);
                if (k >= sizeof(url))
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "server URL %zu is longer than 255 bytes", n);
                memcpy(url, p, k);
                url[k] = '\0';
                if (!conf_url_valid(url, https_only))
                        return conf_fail(ctx, -RINGIL_EMALFORMED,
                                         "`%s' is not a URL (https://; URL characters only, not too long)", url);
                for (size_t i = 0; i + 1 < n; i++)
                        if (streq(seen[i], url))
                                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%s' is listed twice", url);
                memcpy(seen[n - 1], url, k + 1);
                o += (size_t) snprintf(out + o, sizeof(out) - o, "%s%s", o ? "," : "", url);
                p += k;
        }
        if (n == 0)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "no server URL");
        free(*(char **) dst);
        *(char **) dst = strdup(out);
        return *(char **) dst ? 0 : -ENOMEM;
}

#define F(field) offsetof(struct agent_config, field)
/* docs/fleet.md "Agent config" lists the same keys; a key is accepted only if it is here. */
static const struct conf_item agent_items[] = {
        { "", "server", parse_servers, F(server), .flags = CONF_REQUIRED },
        { "", "enroll-server", conf_parse_url, F(enroll_server), .max = 255, .data = https_only },
        { "", "ca", conf_parse_path, F(ca), .flags = CONF_REQUIRED },
        { "", "cert", conf_parse_path, F(cert), .flags = CONF_REQUIRED },
        { "", "key", conf_parse_path, F(key), .flags = CONF_REQUIRED },
        { "", "device-config", conf_parse_path, F(device_config), .def = "/etc/ringil/device.conf" },
        { "", "state-dir", conf_parse_path, F(state_dir), .def = "/var/lib/ringild" },
        { "", "ringil", conf_parse_program, F(ringil), .def = "ringil" },
        /* Shell command lines (/bin/sh -c), written by the operator: any text but empty. */
        { "", "reboot-command", conf_parse_string, F(reboot_command), .def = "systemctl reboot" },
        { "", "health-command", conf_parse_string, F(health_command) },
        { "", "boot-id-file", conf_parse_path, F(boot_id_file), .def = "/proc/sys/kernel/random/boot_id" },
        { "", "poll-interval", conf_parse_duration, F(poll_interval), 1, 7 * 86400, .def = "300" },
        { "", "poll-jitter", conf_parse_u32, F(poll_jitter), 0, 100, .def = "20" },
        { "", "backoff-max", conf_parse_duration, F(backoff_max), 1, 7 * 86400, .def = "3600" },
        { "", "timeout", conf_parse_duration, F(timeout), 1, 3600, .def = "30" },
        /* bundle mirrors (docs/fleet.md): their TLS trust; unset, the system's trust store */
        { "", "mirror-ca", conf_parse_path, F(mirror_ca) },
        /* Delta updates (docs/install.md "Delta updates"). */
        { "", "delta", conf_parse_bool, F(delta), .def = "yes" },
        { "", "delta-full-above", conf_parse_u32, F(delta_full_above), 0, 100, .def = "80" },
        { "", "fetch-parallel", conf_parse_u32, F(fetch_parallel), 1, 8, .def = "4" },
        /* rollouts and compliance (docs/fleet.md "Maintenance windows", "Drift and compliance") */
        { "", "timezone", conf_parse_string, F(timezone), .max = 63, .data = &zone_chars },
        { "", "download-dir", conf_parse_path, F(download_dir) },   /* default: STATE-DIR/download */
        { "", "audit", conf_parse_bool, F(audit), .def = "yes" },
        { "", "audit-root", conf_parse_path, F(audit_root) },
        { "", "audit-profile", conf_parse_string, F(audit_profile), .max = 32, .data = &profile_chars, .def = "prod" },
        { "", "audit-interval", conf_parse_duration, F(audit_interval), 0, 30 * 86400, .def = "0" },
        { "", "keys-dir", conf_parse_path, F(keys_dir), .def = "/etc/secure/keys" },
        { "", "efivarfs", conf_parse_path, F(efivarfs), .def = "/sys/firmware/efi/efivars" },
};
#undef F

/* After the defaults: the zone is a name, not a path; the download directory follows the state one. */
static int agent_check(void *userdata, const struct conf_ctx *ctx) {
        struct agent_config *c = userdata;

        if (c->timezone && (c->timezone[0] == '/' || strstr(c->timezone, "..")))
                return conf_fail(ctx, -RINGIL_EMALFORMED, "timezone `%s' is not a zone name like Europe/Paris",
                                 c->timezone);
        if (!c->download_dir && asprintf(&c->download_dir, "%s/download", c->state_dir) < 0) {
                c->download_dir = NULL;
                return -ENOMEM;
        }
        return 0;
}

static const struct conf_schema agent_schema = {
        .items = agent_items,
        .n_items = ELEMENTSOF(agent_items),
        .check = agent_check,
};

static int parse_named(const char *data, size_t len, const char *file, struct agent_config *ret) {
        struct agent_config c = {};
        int r;

        r = file ? conf_load(file, &agent_schema, &c) : conf_parse(data, len, NULL, &agent_schema, &c);
        if (r < 0) {
                agent_config_free(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int agent_config_parse(const char *data, size_t len, struct agent_config *ret) {
        return parse_named(data, len, NULL, ret);
}

int agent_config_load(const char *path, struct agent_config *ret) {
        return parse_named(NULL, 0, path, ret);
}
