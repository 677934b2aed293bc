/* audit-parse.h: capped parsers for the text and binary inputs the auditor reads from a drone. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strv.h"

/*
 * Every parser takes untrusted bytes (len need not be NUL-terminated) with a hard size cap and a cap
 * on the number of records; over a cap is -RINGIL_ETOOBIG, bad syntax -RINGIL_EMALFORMED. Results are
 * malloc'd and freed with the matching *_free(). Outputs are untouched on failure.
 */

#define AUDIT_TEXT_MAX (1u << 20)        /* passwd, shadow, loader.conf, *.conf, udev data */
#define AUDIT_RECORDS_MAX 8192           /* lines/entries per file */
#define AUDIT_NET_MAX (16u << 20)        /* /proc/net/tcp on a busy host */
#define AUDIT_NET_RECORDS_MAX 262144
#define AUDIT_CMDLINE_MAX 65536
#define AUDIT_CMDLINE_WORDS_MAX 1024

/* A list of key/value pairs in file order; lookups return the LAST occurrence (later wins). */
struct kv {
        char *key;
        char *value;
};
struct kvlist {
        struct kv *v;
        size_t n;
};
void kvlist_free(struct kvlist *l);
int kvlist_add(struct kvlist *l, const char *key, const char *value);   /* copies both */
const char *kvlist_get(const struct kvlist *l, const char *key);

/* loader.conf(5): "key value" lines, '#' comments; a key alone has value "". */
int audit_parse_loader_conf(const char *p, size_t len, struct kvlist *ret);
/* udev database file: "E:KEY=VALUE" lines become KEY/VALUE; "N:name" becomes key "N". */
int audit_parse_udev_data(const char *p, size_t len, struct kvlist *ret);
/*
 * systemd INI (journald.conf, sleep.conf, …): appends the assignments of [section] to *l in file
 * order (so applying files in precedence order and reading the last value gives systemd's merge).
 * Assignments outside any section or with no '=' are -RINGIL_EMALFORMED. An empty value resets.
 */
int audit_parse_ini_section(const char *p, size_t len, const char *section, struct kvlist *l);

/* passwd(5) / shadow(5). */
struct pw_entry {
        char *name;
        char *passwd;   /* field 2 of passwd, or the hash for shadow */
        uint32_t uid;   /* passwd only */
        char *shell;    /* passwd only */
};
struct pw_list {
        struct pw_entry *v;
        size_t n;
};
void pw_list_free(struct pw_list *l);
int audit_parse_passwd(const char *p, size_t len, struct pw_list *ret);
int audit_parse_shadow(const char *p, size_t len, struct pw_list *ret);
const struct pw_entry *pw_list_find(const struct pw_list *l, const char *name);

/* /proc/net/{tcp,tcp6,udp,udp6}. */
struct net_sock {
        uint16_t port;
        uint8_t state;   /* 0x0A = TCP_LISTEN; 0x07 = unconnected UDP */
};
struct net_list {
        struct net_sock *v;
        size_t n;
};
void net_list_free(struct net_list *l);
int audit_parse_proc_net(const char *p, size_t len, struct net_list *ret);

/*
 * The route the kernel's main table gives addr: /proc/net/route (family 4, addr's first 4 bytes) or
 * /proc/net/ipv6_route (family 6). Longest prefix wins, then the lowest metric; routes that are down or
 * reject are skipped. 0 with *ret set, -ENOENT when no route matches, -RINGIL_EMALFORMED/-RINGIL_ETOOBIG
 * for a table that is not the kernel's format or too large.
 */
#define AUDIT_IFNAME_MAX 15
struct audit_route {
        char iface[AUDIT_IFNAME_MAX + 1];
        int prefix;
        uint32_t metric;
};
int audit_route_lookup(const char *p, size_t len, int family, const uint8_t addr[static 16], struct audit_route *ret);

/* Kernel command line words; double quotes group, and are removed. */
int audit_parse_cmdline(const char *p, size_t len, struct strv *ret);

/* LUKS2 on-disk header: 4096-byte binary header, then the JSON area (LUKS2 spec §2-3). */
#define LUKS2_BIN_HDR_SIZE 4096
#define LUKS2_HDR_MAX (4u << 20)        /* largest hdr_size cryptsetup allows */
#define LUKS2_MAX_SLOTS 32

struct luks2_keyslot {
        int id;
        char kdf[16];        /* argon2id, argon2i, pbkdf2 */
        uint32_t key_size;   /* bytes */
        int token;           /* index into tokens[] of a token that uses this slot, or -1 */
};
struct luks2_token {
        int id;
        char type[32];       /* "systemd-tpm2", "systemd-fido2", … */
        uint32_t pcr_mask;   /* tpm2-pcrs */
        bool pin;            /* tpm2-pin */
        bool pcrlock;        /* tpm2_pcrlock */
        bool pubkey;         /* tpm2_pubkey (signed PCR policy) */
        bool srk;            /* tpm2_srk (pinned storage root key) */
};
struct luks2_info {
        char uuid[40];
        char cipher[64];     /* segment 0 encryption */
        uint32_t sector_size;
        size_t n_segments;
        struct luks2_keyslot keyslots[LUKS2_MAX_SLOTS];
        size_t n_keyslots;
        struct luks2_token tokens[LUKS2_MAX_SLOTS];
        size_t n_tokens;
};
/*
 * Size of the whole header (binary + JSON) from the first 4096 bytes; validates magic, version 2 and
 * that hdr_size is one of the sizes the spec allows.
 */
int audit_luks2_header_size(const uint8_t *p, size_t len, size_t *ret);
/* Parse a complete header (len >= hdr_size); the binary header's SHA-256 checksum is verified. */
int audit_parse_luks2(const uint8_t *p, size_t len, struct luks2_info *ret);
