/* config.c: ringil-server's config file (key = value, see docs/fleet.md). */
#include <inttypes.h>
#include <string.h>

#include "err.h"
#include "fleet-ca.h"
#include "fileio.h"
#include "fleet-msg.h"
#include "parse.h"
#include "server.h"

void server_config_free(struct server_config *c) {
        free(c->listen);
        free(c->enroll_listen);
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
                { "enroll-listen", &c->enroll_listen },
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
        const struct {
                const char *key;
                uint32_t *dst, min, max;
        } nums[] = {
                { "max-connections", &c->max_connections, 1, 1000000 },
                { "poll-interval", &c->poll_interval, 1, 86400 },
                { "token-ttl", &c->token_ttl, 60, 86400 * 30 },
                { "enroll-max-connections", &c->enroll_max_connections, 1, 65536 },
                { "enroll-per-address", &c->enroll_per_address, 1, 65536 },
                { "enroll-rate", &c->enroll_rate, 1, 100000 },
                { "enroll-timeout", &c->enroll_timeout, 1, 3600 },
                { "handshake-timeout", &c->handshake_timeout, 1, 3600 },
                { "request-timeout", &c->request_timeout, 1, 3600 },
                { "keepalive-timeout", &c->keepalive_timeout, 1, 86400 },
                { "min-body-rate", &c->min_body_rate, 1, 1u << 30 },
                { "workers", &c->workers, 1, 256 },
                { "scheduler-interval", &c->scheduler_interval, 1, 3600 },
                { "silent-polls", &c->silent_polls, 1, 10000 },
        };
        for (size_t i = 0; i < ELEMENTSOF(nums); i++)
                if (streq(key, nums[i].key))
                        return parse_u32_range(value, nums[i].min, nums[i].max, nums[i].dst) < 0
                                       ? ringil_fail(-RINGIL_EMALFORMED, "line %u: bad %s '%s' (%" PRIu32 "..%" PRIu32 ")",
                                                     line, key, value, nums[i].min, nums[i].max)
                                       : 0;
        return ringil_fail(-RINGIL_EMALFORMED, "line %u: unknown key '%s'", line, key);
}

int server_config_load(const char *path, struct server_config *c) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        *c = (struct server_config) {
                .max_upload = 2ull << 30,
                .max_connections = 4096,
                .poll_interval = 300,
                .token_ttl = 86400,
                .enroll_max_connections = 64,
                .enroll_per_address = 4,
                .enroll_rate = 30,
                .enroll_timeout = 10,
                .handshake_timeout = 10,
                .request_timeout = 30,
                .keepalive_timeout = 120,
                .min_body_rate = 4096,
                .workers = 4,
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
