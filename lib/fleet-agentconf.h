/* fleet-agentconf.h: ringild's configuration (/etc/ringil/ringild.conf): its schema and defaults. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_CONFIG_DEFAULT "/etc/ringil/ringild.conf"

#define AGENT_MAX_SERVERS 8

struct agent_config {
        char *server;          /* "https://host:port[,https://…]": one server or the replicas, required */
        char *enroll_server;   /* https://host:port of the server's enrollment port (`ringild enroll`) */
        char *ca;              /* PEM file of the CA that issued the server certificate (pinned) */
        char *cert, *key;      /* this drone's client certificate and key */
        char *device_config;   /* the install engine's config (default /etc/ringil/device.conf) */
        char *state_dir;       /* default /var/lib/ringild */
        char *ringil;          /* install engine binary: absolute path or a name in PATH (default ringil) */
        char *reboot_command;  /* run by /bin/sh -c after a successful install (default "systemctl reboot") */
        char *health_command;  /* after boot: exit 0 means healthy (default: none = healthy) */
        char *boot_id_file;    /* tells one boot from the next (default /proc/sys/kernel/random/boot_id) */
        uint32_t poll_interval;   /* seconds, default 300 */
        uint32_t poll_jitter;     /* percent of the interval, default 20 */
        uint32_t backoff_max;     /* seconds, default 3600 */
        uint32_t timeout;         /* per-request seconds, default 30 */
        char *mirror_ca;          /* PEM CA file for bundle mirrors; NULL: the system's trust store */
        bool delta;               /* fetch only the chunks the drone lacks (default yes) */
        uint32_t delta_full_above;   /* percent of the payload above which one sequential download is used */
        uint32_t fetch_parallel;  /* range requests in flight, default 4 */
        char *timezone;           /* zone of the maintenance windows, e.g. Europe/Paris (default: the system's) */
        char *download_dir;       /* where bundles wait for their window (default STATE-DIR/download) */
        bool audit;               /* run `ringil audit` at start and after each install (default yes) */
        char *audit_root;         /* audit this tree instead of the running system (default none) */
        char *audit_profile;      /* default prod */
        uint32_t audit_interval;  /* also every this many seconds; 0 (default): only at start and after installs */
        char *keys_dir;           /* pkiBundle for `ringil keys status` (default /etc/secure/keys) */
        char *efivarfs;           /* for `ringil keys status` (default /sys/firmware/efi/efivars) */
};

/* Frees the strings and zeroes *c; NULL is fine. */
void agent_config_free(struct agent_config *c);
/*
 * Parse an agent config (format: lib/conf.h; keys: docs/fleet.md): no sections, unknown and repeated
 * keys refused, server/ca/cert/key required, defaults applied. -RINGIL_EMALFORMED or -RINGIL_ETOOBIG
 * with a one-line detail (`line N: …`); *ret is untouched on failure.
 */
int agent_config_parse(const char *data, size_t len, struct agent_config *ret);
/* The same from a file; also the errors of conf_read_file(); every detail names the path once. */
int agent_config_load(const char *path, struct agent_config *ret);
