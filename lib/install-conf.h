/* install-conf.h: the device configuration (/etc/ringil/device.conf): its schema, defaults and cross-key checks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INSTALL_MAX_SLOT_CLASSES 8
#define INSTALL_TRIES_MAX 32u
#define INSTALL_MAX_SIGNERS 16
#define INSTALL_SIGNER_MAX 64u   /* X.520 ub-common-name */

struct slot_class {
        char *name;          /* payload name in the bundle, e.g. "rootfs" */
        char *device[2];     /* [0] = slot a, [1] = slot b: block device or regular file */
};

struct device_conf {
        char *compatible;
        char *keyring;               /* default /etc/secure/keys/keys/db/db.pem */
        bool require_codesigning;    /* bundle signer must carry the codeSigning EKU; default no */
        char *allowed_signers[INSTALL_MAX_SIGNERS + 1];   /* subject CNs, NULL-terminated; empty: any */
        char *esp;                   /* ESP mount point, default /boot */
        char *state_dir;             /* default /var/lib/ringil; must not be inside a slot */
        char *floor_copy;            /* second floor record; default <esp>/loader/ringil/floor */
        char *efivarfs;              /* default /sys/firmware/efi/efivars */
        char *entry_name;            /* entry id prefix, default "ringil"; [a-z0-9_] only */
        char *title;                 /* menu title, default "ringil" */
        uint32_t boot_tries;         /* 1..INSTALL_TRIES_MAX, default 3 */
        uint32_t max_attempts;       /* runs of one bundle in a row without durable progress before it is refused, default 5 */
        uint64_t checkpoint_bytes;   /* progress recorded after this many bytes, default 32 MiB */
        uint64_t efi_max;            /* cap on an EFI payload, default 256 MiB */
        char *linux_path;            /* [boot] linux/initrd/options for bundles without an EFI payload */
        char *initrd_path;
        char *options;               /* "@SLOT@" is replaced by a or b */
        char *pre_install_hook;      /* executables, run without a shell; optional */
        char *post_install_hook;
        char *health_hook;
        size_t n_classes;
        struct slot_class classes[INSTALL_MAX_SLOT_CLASSES];
        /* [nix]: NixOS-generation mode (docs/nixos.md §10) when present; no [slot.*] sections then. */
        bool nix_generation;
        char *nix_profile;           /* default /nix/var/nix/profiles/system */
        char *nix_substituter;       /* cache URL when the bundle names none */
        char *nix_trusted_keys;      /* name:base64[ name:base64...]; required */
        char *nix_store;             /* tests: a chroot store root (nix --store DIR); NULL: the real /nix */
        char *nix_current_system;    /* link to the running system, default /run/current-system */
        /* The fleet server's cache needs the drone's mutual-TLS identity, which Nix cannot present: with
         * these set, an https:// cache is mirrored through ringil's client first (lib/nix-cache.h). */
        char *nix_tls_ca;            /* the fleet server's CA (pinned; not the system store) */
        char *nix_tls_cert;          /* the drone's client certificate */
        char *nix_tls_key;           /* its private key */
};

#define DEVICE_CONF_DEFAULT "/etc/ringil/device.conf"

/*
 * Parse config text (format: lib/conf.h, keys: docs/install.md) into *ret: defaults applied, then the
 * cross-key checks. Caller frees with device_conf_done. -RINGIL_EMALFORMED or -RINGIL_ETOOBIG with a
 * one-line detail (`line N: …`); *ret is untouched on failure.
 */
int device_conf_parse(const char *text, size_t len, struct device_conf *ret);
/* The same from a file: also the errors of conf_read_file(); every detail names the path once. */
int device_conf_load(const char *path, struct device_conf *ret);
void device_conf_done(struct device_conf *c);

/* [nix] value checks: a cache URL (https://, http://, file:///; URL characters only, no spaces) and a
 * space-separated list of NAME:BASE64 Nix public keys. */
bool nix_url_valid(const char *s);
bool nix_keys_valid(const char *s);

/* The slot class for a payload name, or NULL. */
const struct slot_class *device_conf_find_class(const struct device_conf *c, const char *name);

static inline char slot_letter(int idx) {
        return idx == 0 ? 'a' : 'b';
}
/* 'a'/"a" → 0, 'b' → 1, else -EINVAL. */
int slot_from_string(const char *s);
