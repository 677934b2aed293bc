/* install-conf.c: the device.conf schema: one table of keys, defaults and caps, then the cross-key checks. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "conf.h"
#include "err.h"
#include "install-conf.h"
#include "macro.h"

int slot_from_string(const char *s) {
        if (s && streq(s, "a"))
                return 0;
        if (s && streq(s, "b"))
                return 1;
        return -EINVAL;
}

static const char *const nix_schemes[] = { "https://", "http://", "file:///", NULL };

bool nix_url_valid(const char *s) {
        return s && strlen(s) <= BUNDLE_MAX_URL && conf_url_valid(s, nix_schemes);
}

bool nix_keys_valid(const char *s) {
        size_t n = strlen(s);
        bool colon = false, any = false;

        if (n == 0 || n > 1000)
                return false;
        for (size_t i = 0; i <= n; i++) {
                char ch = s[i];
                if (ch == ' ' || ch == '\0') {
                        if (any && !colon)
                                return false;
                        if (any && s[i - 1] == ':')
                                return false;
                        colon = any = false;
                } else if (ch == ':') {
                        if (!any || colon)
                                return false;
                        colon = true;
                } else if (!strchr(colon ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" :
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", ch))
                        return false;
                else
                        any = true;
        }
        return true;
}

static int parse_nix_keys(const struct conf_ctx *ctx, const char *value, void *dst) {
        if (!nix_keys_valid(value))
                return conf_fail(ctx, -RINGIL_EMALFORMED, "`%s' is not NAME:BASE64 keys separated by spaces", value);
        return conf_parse_string(ctx, value, dst);
}

/* [slot.NAME.a] / [slot.NAME.b]: the class is created at its first header; the base is that side's device. */
static int open_section(void *userdata, const struct conf_ctx *ctx, void **ret_base) {
        struct device_conf *c = userdata;
        const char *cls, *dot;
        struct slot_class *sc = NULL;
        size_t n;
        int idx;

        if (streq(ctx->section, "nix")) {
                /* INVARIANT: the section alone selects generation mode, so its required key is checked. */
                c->nix_generation = true;
                return 0;
        }
        if (strncmp(ctx->section, "slot.", 5) != 0)
                return 0;
        cls = ctx->section + 5;
        dot = strrchr(cls, '.');
        n = dot ? (size_t) (dot - cls) : 0;
        if (!dot || n == 0 || n > 32 || (idx = slot_from_string(dot + 1)) < 0)
                return conf_fail(ctx, -RINGIL_EMALFORMED, "section [%s] is not [slot.NAME.a] or [slot.NAME.b]",
                                 ctx->section);
        for (size_t i = 0; i < c->n_classes; i++)
                if (strlen(c->classes[i].name) == n && strncmp(c->classes[i].name, cls, n) == 0)
                        sc = &c->classes[i];
        if (!sc) {
                if (c->n_classes >= INSTALL_MAX_SLOT_CLASSES)
                        return conf_fail(ctx, -RINGIL_ETOOBIG, "more than %u slot classes", INSTALL_MAX_SLOT_CLASSES);
                sc = &c->classes[c->n_classes];
                sc->name = strndup(cls, n);
                if (!sc->name)
                        return -ENOMEM;
                c->n_classes++;
        }
        *ret_base = &sc->device[idx];
        return 0;
}

static const struct conf_charset compatible_chars = {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:+-", "A-Z a-z 0-9 . _ : + -",
};
static const struct conf_charset entry_name_chars = { "abcdefghijklmnopqrstuvwxyz0123456789_", "a-z 0-9 _" };
static const struct conf_list signer_list = { .separator = ',', .item_max = INSTALL_SIGNER_MAX };

#define F(field) offsetof(struct device_conf, field)
/* docs/install.md lists the same keys; a key is accepted only if it is here. */
static const struct conf_item device_items[] = {
        { "device", "compatible", conf_parse_string, F(compatible), .max = BUNDLE_MAX_COMPATIBLE,
          .data = &compatible_chars, .flags = CONF_REQUIRED },
        { "device", "keyring", conf_parse_path, F(keyring), .def = "/etc/secure/keys/keys/db/db.pem" },
        { "device", "require-codesigning", conf_parse_bool, F(require_codesigning) },
        /* Comma-separated: keys cannot repeat, so a CN containing a comma cannot be listed. */
        { "device", "allowed-signer", conf_parse_list, F(allowed_signers), 1, INSTALL_MAX_SIGNERS, &signer_list },
        { "device", "esp", conf_parse_path, F(esp), .def = "/boot" },
        { "device", "state-dir", conf_parse_path, F(state_dir), .def = "/var/lib/ringil" },
        { "device", "floor-copy", conf_parse_path, F(floor_copy) },   /* default <esp>/loader/ringil/floor */
        { "device", "efivarfs", conf_parse_path, F(efivarfs), .def = "/sys/firmware/efi/efivars" },
        { "device", "pre-install-hook", conf_parse_path, F(pre_install_hook) },
        { "device", "post-install-hook", conf_parse_path, F(post_install_hook) },
        { "device", "health-hook", conf_parse_path, F(health_hook) },
        { "device", "boot-tries", conf_parse_u32, F(boot_tries), 1, INSTALL_TRIES_MAX, .def = "3" },
        { "device", "max-attempts", conf_parse_u32, F(max_attempts), 1, 1000, .def = "5" },
        { "device", "checkpoint", conf_parse_size, F(checkpoint_bytes), 1, UINT64_C(1) << 40, .def = "32M" },
        { "device", "efi-max", conf_parse_size, F(efi_max), 1, UINT64_C(1) << 40, .def = "256M" },
        { "boot", "entry-name", conf_parse_string, F(entry_name), 1, 32, &entry_name_chars, .def = "ringil" },
        { "boot", "title", conf_parse_string, F(title), 1, 128, .def = "ringil" },
        { "boot", "linux", conf_parse_path, F(linux_path) },
        { "boot", "initrd", conf_parse_path, F(initrd_path) },
        { "boot", "options", conf_parse_string, F(options) },
        /* [nix] defaults (profile, current-system) apply only in generation mode: set in device_check(). */
        { "nix", "trusted-public-keys", parse_nix_keys, F(nix_trusted_keys) },
        { "nix", "substituter", conf_parse_url, F(nix_substituter), .max = BUNDLE_MAX_URL, .data = nix_schemes },
        { "nix", "profile", conf_parse_path, F(nix_profile) },
        { "nix", "current-system", conf_parse_path, F(nix_current_system) },
        { "nix", "store", conf_parse_path, F(nix_store) },
        { "nix", "tls-ca", conf_parse_path, F(nix_tls_ca) },
        { "nix", "tls-cert", conf_parse_path, F(nix_tls_cert) },
        { "nix", "tls-key", conf_parse_path, F(nix_tls_key) },
        /* Offset 0 of the base open_section() returns: the char * of that side's device. */
        { "slot.*", "device", conf_parse_path, 0, .flags = CONF_REQUIRED },
};
#undef F

static int default_str(char **dst, const char *v) {
        if (*dst)
                return 0;
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static bool path_under(const char *path, const char *dir) {
        size_t n = strlen(dir);

        while (n > 1 && dir[n - 1] == '/')
                n--;
        return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int device_check(void *userdata, const struct conf_ctx *ctx) {
        struct device_conf *c = userdata;
        int r = 0;

        if (!c->floor_copy && asprintf(&c->floor_copy, "%s/loader/ringil/floor", c->esp) < 0) {
                c->floor_copy = NULL;
                return -ENOMEM;
        }
        if (c->nix_generation) {
                r = default_str(&c->nix_profile, "/nix/var/nix/profiles/system");
                if (r >= 0)
                        r = default_str(&c->nix_current_system, "/run/current-system");
                if (r < 0)
                        return r;
                /* INVARIANT: generation mode never runs with Nix's own trust settings: the fleet key is required. */
                if (!c->nix_trusted_keys)
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "[nix] trusted-public-keys is required");
                if (c->n_classes > 0)
                        return conf_fail(ctx, -RINGIL_EMALFORMED,
                                         "[nix] (generation mode) and [slot.*] sections exclude each other");
                if (!c->nix_tls_ca != !c->nix_tls_cert || !c->nix_tls_cert != !c->nix_tls_key)
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "[nix] tls-ca, tls-cert and tls-key go together");
        }
        for (size_t i = 0; i < c->n_classes; i++) {
                struct slot_class *sc = &c->classes[i];
                if (!sc->device[0] || !sc->device[1])
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "slot class `%s' needs both [slot.%s.a] and [slot.%s.b]",
                                         sc->name, sc->name, sc->name);
                if (streq(sc->device[0], sc->device[1]))
                        return conf_fail(ctx, -RINGIL_EMALFORMED, "slot class `%s': a and b are the same device `%s'",
                                         sc->name, sc->device[0]);
                /* The state must outlive a slot being rewritten: never keep it on or under a slot. */
                for (int k = 0; k < 2; k++)
                        if (path_under(c->state_dir, sc->device[k]) || path_under(sc->device[k], c->state_dir))
                                return conf_fail(ctx, -RINGIL_EMALFORMED, "state-dir `%s' overlaps slot `%s'",
                                                 c->state_dir, sc->device[k]);
        }
        return 0;
}

static const struct conf_schema device_schema = {
        .items = device_items,
        .n_items = ELEMENTSOF(device_items),
        .open = open_section,
        .check = device_check,
};

static int parse_named(const char *text, size_t len, const char *file, struct device_conf *ret) {
        struct device_conf c = {};
        int r;

        r = file ? conf_load(file, &device_schema, &c) : conf_parse(text, len, NULL, &device_schema, &c);
        if (r < 0) {
                device_conf_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int device_conf_parse(const char *text, size_t len, struct device_conf *ret) {
        return parse_named(text, len, NULL, ret);
}

int device_conf_load(const char *path, struct device_conf *ret) {
        return parse_named(NULL, 0, path, ret);
}

void device_conf_done(struct device_conf *c) {
        if (!c)
                return;
        free(c->compatible);
        free(c->keyring);
        free(c->esp);
        free(c->state_dir);
        free(c->floor_copy);
        free(c->efivarfs);
        free(c->entry_name);
        free(c->title);
        free(c->linux_path);
        free(c->initrd_path);
        free(c->options);
        free(c->pre_install_hook);
        free(c->post_install_hook);
        free(c->health_hook);
        free(c->nix_profile);
        free(c->nix_substituter);
        free(c->nix_trusted_keys);
        free(c->nix_store);
        free(c->nix_current_system);
        free(c->nix_tls_ca);
        free(c->nix_tls_cert);
        free(c->nix_tls_key);
        conf_list_free(c->allowed_signers);
        for (size_t i = 0; i < c->n_classes; i++) {
                free(c->classes[i].name);
                free(c->classes[i].device[0]);
                free(c->classes[i].device[1]);
        }
        *c = (struct device_conf){};
}

const struct slot_class *device_conf_find_class(const struct device_conf *c, const char *name) {
        for (size_t i = 0; i < c->n_classes; i++)
                if (streq(c->classes[i].name, name))
                        return &c->classes[i];
        return NULL;
}
