/* config.c: ringil-server's config file (/etc/ringil/server.conf): one table of keys, bounds and defaults. */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"
#include "nix-publish.h"
#include "fleet-ca.h"
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
        free(c->replica_name);
        free(c->nix_trusted_keys);
        free(c->approvers);
        *c = (struct server_config) {};
}

static const char *const pg_schemes[] = { "postgresql://", "postgres://", NULL };

/* `db`: an absolute path (an SQLite file) or a PostgreSQL URL (the replicas' shared database). */
static int parse_db(const struct conf_ctx *ctx, const char *value, void *dst) {
        if (strncmp(value, "postgres", 8) != 0)
                return conf_parse_path(ctx, value, dst);
        if (!conf_url_valid(value, pg_schemes) || strlen(value) > ctx->item->max)
                /* not quoted back: a URL may hold a password */
                return conf_fail(ctx, -RINGIL_EMALFORMED, "the value is neither an absolute path (SQLite) nor a "
                                 "postgresql:// URL (URL characters only, at most %" PRIu64 " bytes)", ctx->item->max);
        return conf_parse_string(ctx, value, dst);
}

static const struct conf_charset replica_chars = {
        .chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-",
        .what = "A-Z a-z 0-9 . _ : -",
};

/* `approvers = alice, carol`: operator certificate names, each as every name of the fleet is checked. */
static int parse_approvers(const struct conf_ctx *ctx, const char *value, void *dst) {
        _cleanup_free_ char *copy = strdup(value), *out = NULL;
        char *save = NULL;
        size_t o = 0;

        if (!copy || !(out = calloc(1, strlen(value) + 1)))
                return -ENOMEM;
        for (char *n = strtok_r(copy, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
                size_t len;
                while (*n == ' ' || *n == '\t')
                        n++;
                len = strlen(n);
                while (len > 0 && (n[len - 1] == ' ' || n[len - 1] == '\t'))
                        n[--len] = '\0';
                if (ca_name_valid(n) < 0)
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "`%s' is not a certificate name", n);
                o += (size_t) sprintf(out + o, "%s%s", o ? "," : "", n);
        }
        if (o == 0)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "empty value");
        free(*(char **) dst);
        *(char **) dst = TAKE_PTR(out);
        return 0;
}
#define F(field) offsetof(struct server_config, field)
/* docs/fleet.md "Server config" lists the same keys; a key is accepted only if it is here. */
static const struct conf_item server_items[] = {
        { "", "listen", conf_parse_string, F(listen), .max = 255, .def = "127.0.0.1:8443" },
        { "", "enroll-listen", conf_parse_string, F(enroll_listen), .max = 255 },
        { "", "db", parse_db, F(db), .max = 1023, .flags = CONF_REQUIRED },
        { "", "store", conf_parse_path, F(store_dir), .flags = CONF_REQUIRED },
        { "", "cert", conf_parse_path, F(cert), .flags = CONF_REQUIRED },
        { "", "key", conf_parse_path, F(key), .flags = CONF_REQUIRED },
        { "", "device-ca", conf_parse_path, F(device_ca), .flags = CONF_REQUIRED },
        { "", "operator-ca", conf_parse_path, F(operator_ca) },
        { "", "keyring", conf_parse_path, F(keyring), .flags = CONF_REQUIRED },
        { "", "nix-cache", conf_parse_path, F(nix_cache) },
        { "", "nix-trusted-public-keys", conf_parse_string, F(nix_trusted_keys), .max = 4096 },
        { "", "max-upload", conf_parse_size, F(max_upload), 1, UINT64_MAX, .def = "2G" },
        { "", "max-connections", conf_parse_u32, F(max_connections), 1, 1000000, .def = "4096" },
        { "", "poll-interval", conf_parse_duration, F(poll_interval), 1, 86400, .def = "300" },
        { "", "token-ttl", conf_parse_duration, F(token_ttl), 60, 30 * 86400, .def = "86400" },
        /* admission and deadlines (docs/fleet.md "Admission and deadlines") */
        { "", "enroll-max-connections", conf_parse_u32, F(enroll_max_connections), 1, 65536, .def = "64" },
        { "", "enroll-per-address", conf_parse_u32, F(enroll_per_address), 1, 65536, .def = "4" },
        { "", "enroll-rate", conf_parse_u32, F(enroll_rate), 1, 100000, .def = "30" },
        { "", "enroll-timeout", conf_parse_duration, F(enroll_timeout), 1, 3600, .def = "10" },
        { "", "handshake-timeout", conf_parse_duration, F(handshake_timeout), 1, 3600, .def = "10" },
        { "", "request-timeout", conf_parse_duration, F(request_timeout), 1, 3600, .def = "30" },
        { "", "keepalive-timeout", conf_parse_duration, F(keepalive_timeout), 1, 86400, .def = "120" },
        { "", "min-body-rate", conf_parse_u32, F(min_body_rate), 1, 1u << 30, .def = "4096" },
        { "", "workers", conf_parse_u32, F(workers), 1, 256, .def = "4" },
        /* rollouts (docs/fleet.md "Rollouts"); with replicas the elected one runs the scheduler */
        { "", "approvers", parse_approvers, F(approvers) },
        { "", "scheduler-interval", conf_parse_duration, F(scheduler_interval), 1, 3600, .def = "5" },
        { "", "silent-polls", conf_parse_u32, F(silent_polls), 1, 10000, .def = "3" },
        /* replicas (docs/fleet.md "Several servers") */
        { "", "replica-name", conf_parse_string, F(replica_name), 1, 64, .data = &replica_chars },
};
#undef F

/* Publishing into the Nix cache: the key list parses, and there is a cache to publish into. */
static int server_check(void *userdata, const struct conf_ctx *ctx) {
        struct server_config *c = userdata;
        int r;

        if (!c->nix_trusted_keys)
                return 0;
        r = nix_keys_check(c->nix_trusted_keys);
        if (r < 0)
                return conf_fail(ctx, r, "%s", ringil_detail());
        if (!c->nix_cache)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "nix-trusted-public-keys needs nix-cache (the directory to publish into)");
        return 0;
}

static const struct conf_schema server_schema = {
        .items = server_items,
        .n_items = ELEMENTSOF(server_items),
        .check = server_check,
};

int server_config_parse(const char *text, size_t len, struct server_config *c) {
        int r;

        *c = (struct server_config) {};
        r = conf_parse(text, len, NULL, &server_schema, c);
        if (r < 0)
                server_config_free(c);
        return r;
}

int server_config_load(const char *path, struct server_config *c) {
        int r;

        *c = (struct server_config) {};
        r = conf_load(path, &server_schema, c);
        if (r < 0)
                server_config_free(c);
        return r;
}
