/* config.c: ringil-server's config file (key = value, see docs/fleet.md). */
#include <string.h>

#include "err.h"
#include "fleet-ca.h"
#include "fileio.h"
#include "fleet-msg.h"
#include "parse.h"
#include "server.h"

void server_config_free(struct server_config *c) {
        free(c->listen);
        free(c->db);
        free(c->store_dir);
        free(c->cert);
        free(c->key);
        free(c->device_ca);
        free(c->operator_ca);
        free(c->keyring);
        free(c->nix_cache);
        free(c->approvers);
        *c = (struct server_config) {};
}

static int set_str(char **dst, const char *v) {
        char *s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

static int server_kv(const char *key, const char *value, unsigned line, void *userdata) {
        struct server_config *c = userdata;
        const struct {
                const char *key;
                char **dst;
        } strs[] = {
                { "listen", &c->listen },
                { "db", &c->db },
                { "store", &c->store_dir },
                { "cert", &c->cert },
                { "key", &c->key },
                { "device-ca", &c->device_ca },
                { "operator-ca", &c->operator_ca },
                { "keyring", &c->keyring },
                { "nix-cache", &c->nix_cache },
                { "approvers", &c->approvers },
        };

        for (size_t i = 0; i < ELEMENTSOF(strs); i++)
                if (streq(key, strs[i].key)) {
                        if (!*value)
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: empty %s", line, key);
                        return set_str(strs[i].dst, value);
                }
        if (streq(key, "max-upload")) {
                if (parse_size(value, &c->max_upload) < 0 || c->max_upload == 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad max-upload '%s'", line, value);
                return 0;
        }
        if (streq(key, "max-connections"))
                return parse_u32_range(value, 1, 65536, &c->max_connections) < 0
                               ? ringil_fail(-RINGIL_EMALFORMED, "line %u: bad max-connections '%s'", line, value)
                               : 0;
        if (streq(key, "poll-interval"))
                return parse_u32_range(value, 1, 86400, &c->poll_interval) < 0
                               ? ringil_fail(-RINGIL_EMALFORMED, "line %u: bad poll-interval '%s'", line, value)
                               : 0;
        if (streq(key, "scheduler-interval"))
                return parse_u32_range(value, 1, 3600, &c->scheduler_interval) < 0
                               ? ringil_fail(-RINGIL_EMALFORMED, "line %u: bad scheduler-interval '%s'", line, value)
                               : 0;
        if (streq(key, "silent-polls"))
                return parse_u32_range(value, 1, 10000, &c->silent_polls) < 0
                               ? ringil_fail(-RINGIL_EMALFORMED, "line %u: bad silent-polls '%s'", line, value)
                               : 0;
        if (streq(key, "token-ttl"))
                return parse_u32_range(value, 60, 86400 * 30, &c->token_ttl) < 0
                               ? ringil_fail(-RINGIL_EMALFORMED, "line %u: bad token-ttl '%s'", line, value)
                               : 0;
        return ringil_fail(-RINGIL_EMALFORMED, "line %u: unknown key '%s'", line, key);
}

int server_config_load(const char *path, struct server_config *c) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        *c = (struct server_config) {
                .max_upload = 2ull << 30,
                .max_connections = 512,
                .poll_interval = 300,
                .token_ttl = 86400,
                .scheduler_interval = 5,
                .silent_polls = 3,
        };
        r = read_full_file(path, 0, FLEET_MAX_CONFIG, &data, &len);
        if (r < 0)
                return ringil_fail(r, "cannot read '%s'", path);
        r = fleet_kv_parse((const char *) data, len, server_kv, c);
        if (r >= 0 && (!c->db || !c->store_dir || !c->cert || !c->key || !c->device_ca || !c->keyring))
                r = ringil_fail(-RINGIL_EMALFORMED, "config needs db, store, cert, key, device-ca and keyring");
        if (r >= 0 && !c->listen)
                r = set_str(&c->listen, "127.0.0.1:8443");
        if (r >= 0 && c->approvers) {
                /* comma-separated certificate names, each checked like every name of the fleet */
                _cleanup_free_ char *copy = strdup(c->approvers);
                char *save = NULL;
                if (!copy)
                        r = -ENOMEM;
                for (char *n = copy ? strtok_r(copy, ",", &save) : NULL; r >= 0 && n; n = strtok_r(NULL, ",", &save))
                        if (ca_name_valid(n) < 0)
                                r = ringil_fail(-RINGIL_EMALFORMED, "approvers: '%s' is not a certificate name", n);
        }
        if (r < 0)
                server_config_free(c);
        return r;
}
