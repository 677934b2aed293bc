/* install-conf.c: strict INI reader and the device.conf schema (defaults, caps, validation). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileio.h"
#include "install-conf.h"
#include "macro.h"
#include "parse.h"

static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '-';
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                *--e = '\0';
        return s;
}

static bool valid_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > INI_MAX_NAME)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!name_char(s[i]))
                        return false;
        return true;
}

/* Sections and keys seen so far, to refuse duplicates (a second `device =` must not silently win). */
struct seen {
        char (*names)[2 * INI_MAX_NAME + 2];
        size_t n;
};

static int seen_add(struct seen *s, const char *section, const char *key) {
        char tmp[2 * INI_MAX_NAME + 2];

        (void) snprintf(tmp, sizeof(tmp), "%s\n%s", section, key);
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->names[i], tmp))
                        return -EEXIST;
        if (s->n >= INI_MAX_ENTRIES)
                return -RINGIL_ETOOBIG;
        memcpy(s->names[s->n++], tmp, sizeof(tmp));
        return 0;
}

int ini_parse(const char *text, size_t len, ini_handler handler, void *userdata) {
        _cleanup_free_ void *names = NULL;
        struct seen seen = {};
        char section[INI_MAX_NAME + 1] = "";
        char line[INI_MAX_LINE + 1];
        unsigned lineno = 0;
        size_t pos = 0;
        int r;

        if (len > INI_MAX_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, "configuration larger than %u bytes", INI_MAX_SIZE);
        names = calloc(INI_MAX_ENTRIES, sizeof(*seen.names));
        if (!names)
                return -ENOMEM;
        seen.names = names;

        while (pos < len) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t n = nl ? (size_t) (nl - (text + pos)) : len - pos;
                char *s, *eq, *key, *value;

                lineno++;
                if (n > INI_MAX_LINE)
                        return ringil_fail(-RINGIL_ETOOBIG, "line %u longer than %u bytes", lineno,
                                           INI_MAX_LINE);
                if (memchr(text + pos, '\0', n))
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: NUL byte", lineno);
                memcpy(line, text + pos, n);
                line[n] = '\0';
                pos += n + (nl ? 1 : 0);
                if (n > 0 && line[n - 1] == '\r')
                        line[n - 1] = '\0';
                for (char *c = line; *c; c++)
                        if ((unsigned char) *c < 0x20 && *c != '\t')
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: control character",
                                                   lineno);
                s = strip(line);
                if (*s == '\0' || *s == '#' || *s == ';')
                        continue;
                if (*s == '[') {
                        char *end = strchr(s, ']');
                        if (!end || strip(end + 1)[0] != '\0')
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad section header",
                                                   lineno);
                        *end = '\0';
                        s = strip(s + 1);
                        if (!valid_name(s))
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad section name `%s'",
                                                   lineno, s);
                        if (seen_add(&seen, s, "") < 0)
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: duplicate section `%s'",
                                                   lineno, s);
                        memcpy(section, s, strlen(s) + 1);
                        continue;
                }
                eq = strchr(s, '=');
                if (!eq)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: expected `key = value'", lineno);
                *eq = '\0';
                key = strip(s);
                value = strip(eq + 1);
                if (!valid_name(key))
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad key `%s'", lineno, key);
                r = seen_add(&seen, section, key);
                if (r == -EEXIST)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: duplicate key `%s'", lineno, key);
                if (r < 0)
                        return ringil_fail(r, "more than %u keys", INI_MAX_ENTRIES);
                r = handler(userdata, section, key, value, lineno);
                if (r < 0)
                        return r;
        }
        return 0;
}

int slot_from_string(const char *s) {
        if (s && streq(s, "a"))
                return 0;
        if (s && streq(s, "b"))
                return 1;
        return -EINVAL;
}

static int set_str(char **dst, const char *value, const char *key, unsigned line) {
        if (value[0] == '\0')
                return ringil_fail(-RINGIL_EMALFORMED, "line %u: empty value for `%s'", line, key);
        free(*dst);
        *dst = strdup(value);
        return *dst ? 0 : -ENOMEM;
}

static int set_path(char **dst, const char *value, const char *key, unsigned line) {
        if (value[0] != '/' || strlen(value) > 1024 || strstr(value, "/../") ||
            (strlen(value) >= 3 && streq(value + strlen(value) - 3, "/..")))
                return ringil_fail(-RINGIL_EMALFORMED, "line %u: `%s' must be an absolute path without `..'",
                                   line, key);
        return set_str(dst, value, key, line);
}

/* "yes"/"no" (also true/false, 1/0): a typo is an error, never a silent default. */
static int set_bool(bool *dst, const char *value, const char *key, unsigned line) {
        if (streq(value, "yes") || streq(value, "true") || streq(value, "1"))
                *dst = true;
        else if (streq(value, "no") || streq(value, "false") || streq(value, "0"))
                *dst = false;
        else
                return ringil_fail(-RINGIL_EMALFORMED, "line %u: `%s' must be yes or no, not `%s'", line, key, value);
        return 0;
}

/* allowed-signer = CN[, CN...]: the INI reader refuses repeated keys, so the list is comma-separated
 * (a CN containing a comma cannot be listed). Items are trimmed; empty items and duplicates are errors. */
static int set_signers(struct device_conf *c, const char *value, unsigned line) {
        const char *p = value;
        size_t n = 0;

        for (;;) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t) (end - p) : strlen(p);
                char *cn;

                while (len > 0 && (*p == ' ' || *p == '\t'))
                        p++, len--;
                while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                        len--;
                if (len == 0 || len > INSTALL_SIGNER_MAX)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: allowed-signer: empty or overlong name", line);
                if (n >= INSTALL_MAX_SIGNERS)
                        return ringil_fail(-RINGIL_ETOOBIG, "line %u: more than %u allowed signers", line,
                                           INSTALL_MAX_SIGNERS);
                cn = strndup(p, len);
                if (!cn)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        if (streq(c->allowed_signers[i], cn)) {
                                free(cn);
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: allowed-signer `%.*s' listed twice",
                                                   line, (int) len, p);
                        }
                c->allowed_signers[n++] = cn;
                if (!end)
                        return 0;
                p = end + 1;
        }
}

static int conf_handler(void *userdata, const char *section, const char *key, const char *value,
                        unsigned line) {
        struct device_conf *c = userdata;
        int r;

        if (streq(section, "device")) {
                if (streq(key, "compatible"))
                        return set_str(&c->compatible, value, key, line);
                if (streq(key, "keyring"))
                        return set_path(&c->keyring, value, key, line);
                if (streq(key, "require-codesigning"))
                        return set_bool(&c->require_codesigning, value, key, line);
                if (streq(key, "allowed-signer"))
                        return set_signers(c, value, line);
                if (streq(key, "esp"))
                        return set_path(&c->esp, value, key, line);
                if (streq(key, "state-dir"))
                        return set_path(&c->state_dir, value, key, line);
                if (streq(key, "floor-copy"))
                        return set_path(&c->floor_copy, value, key, line);
                if (streq(key, "efivarfs"))
                        return set_path(&c->efivarfs, value, key, line);
                if (streq(key, "pre-install-hook"))
                        return set_path(&c->pre_install_hook, value, key, line);
                if (streq(key, "post-install-hook"))
                        return set_path(&c->post_install_hook, value, key, line);
                if (streq(key, "health-hook"))
                        return set_path(&c->health_hook, value, key, line);
                if (streq(key, "boot-tries")) {
                        uint32_t v;
                        if (parse_u32_range(value, 1, INSTALL_TRIES_MAX, &v) < 0)
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: boot-tries `%s' not in 1..%u",
                                                   line, value, INSTALL_TRIES_MAX);
                        c->boot_tries = v;
                        return 0;
                }
                if (streq(key, "max-attempts")) {
                        uint32_t v;
                        if (parse_u32_range(value, 1, 1000, &v) < 0)
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: max-attempts `%s' not in 1..1000",
                                                   line, value);
                        c->max_attempts = v;
                        return 0;
                }
                if (streq(key, "checkpoint") || streq(key, "efi-max")) {
                        uint64_t v;
                        if (parse_size(value, &v) < 0 || v == 0 || v > (UINT64_C(1) << 40))
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad size `%s'", line, value);
                        *(streq(key, "checkpoint") ? &c->checkpoint_bytes : &c->efi_max) = v;
                        return 0;
                }
        } else if (streq(section, "boot")) {
                if (streq(key, "entry-name")) {
                        if (strlen(value) > 32 || value[0] == '\0' ||
                            strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(value))
                                return ringil_fail(-RINGIL_EMALFORMED,
                                                   "line %u: entry-name `%s' must be [a-z0-9_]{1,32}", line, value);
                        return set_str(&c->entry_name, value, key, line);
                }
                if (streq(key, "title")) {
                        if (strlen(value) > 128)
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: title too long", line);
                        return set_str(&c->title, value, key, line);
                }
                if (streq(key, "linux"))
                        return set_path(&c->linux_path, value, key, line);
                if (streq(key, "initrd"))
                        return set_path(&c->initrd_path, value, key, line);
                if (streq(key, "options"))
                        return set_str(&c->options, value, key, line);
        } else if (streq(section, "nix")) {
                c->nix_generation = true;
                if (streq(key, "profile"))
                        return set_path(&c->nix_profile, value, key, line);
                if (streq(key, "store"))
                        return set_path(&c->nix_store, value, key, line);
                if (streq(key, "current-system"))
                        return set_path(&c->nix_current_system, value, key, line);
                if (streq(key, "tls-ca"))
                        return set_path(&c->nix_tls_ca, value, key, line);
                if (streq(key, "tls-cert"))
                        return set_path(&c->nix_tls_cert, value, key, line);
                if (streq(key, "tls-key"))
                        return set_path(&c->nix_tls_key, value, key, line);
                if (streq(key, "substituter")) {
                        if (!nix_url_valid(value))
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: substituter `%s' is not an https://, http:// or file:/// URL",
                                                   line, value);
                        return set_str(&c->nix_substituter, value, key, line);
                }
                if (streq(key, "trusted-public-keys")) {
                        if (!nix_keys_valid(value))
                                return ringil_fail(-RINGIL_EMALFORMED, "line %u: trusted-public-keys must be NAME:BASE64 separated by spaces",
                                                   line);
                        return set_str(&c->nix_trusted_keys, value, key, line);
                }
        } else if (strncmp(section, "slot.", 5) == 0) {
                const char *cls = section + 5, *dot = strrchr(cls, '.');
                size_t n = dot ? (size_t) (dot - cls) : 0;
                struct slot_class *sc = NULL;
                int idx;

                if (!dot || n == 0 || n > 32 || (idx = slot_from_string(dot + 1)) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: section `%s' is not [slot.NAME.a|b]",
                                           line, section);
                if (!streq(key, "device"))
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: unknown key `%s' in [%s]", line, key,
                                           section);
                for (size_t i = 0; i < c->n_classes; i++)
                        if (strlen(c->classes[i].name) == n && strncmp(c->classes[i].name, cls, n) == 0)
                                sc = &c->classes[i];
                if (!sc) {
                        if (c->n_classes >= INSTALL_MAX_SLOT_CLASSES)
                                return ringil_fail(-RINGIL_ETOOBIG, "line %u: more than %u slot classes", line,
                                                   INSTALL_MAX_SLOT_CLASSES);
                        sc = &c->classes[c->n_classes];
                        sc->name = strndup(cls, n);
                        if (!sc->name)
                                return -ENOMEM;
                        c->n_classes++;
                }
                r = set_path(&sc->device[idx], value, key, line);
                return r;
        }
        return ringil_fail(-RINGIL_EMALFORMED, "line %u: unknown key `%s' in section [%s]", line, key, section);
}

bool nix_url_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 512 || !(strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0 || strncmp(s, "file:///", 8) == 0))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%", s[i]))
                        return false;
        return true;
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

int device_conf_parse(const char *text, size_t len, struct device_conf *ret) {
        struct device_conf c = {
                .boot_tries = 3,
                .max_attempts = 5,
                .checkpoint_bytes = UINT64_C(32) << 20,
                .efi_max = UINT64_C(256) << 20,
        };
        int r;

        r = ini_parse(text, len, conf_handler, &c);
        if (r >= 0)
                r = default_str(&c.keyring, "/etc/secure/keys/keys/db/db.pem");
        if (r >= 0)
                r = default_str(&c.esp, "/boot");
        if (r >= 0)
                r = default_str(&c.state_dir, "/var/lib/ringil");
        if (r >= 0)
                r = default_str(&c.efivarfs, "/sys/firmware/efi/efivars");
        if (r >= 0)
                r = default_str(&c.entry_name, "ringil");
        if (r >= 0)
                r = default_str(&c.title, "ringil");
        if (r >= 0 && !c.floor_copy)
                r = asprintf(&c.floor_copy, "%s/loader/ringil/floor", c.esp) < 0 ? -ENOMEM : 0;
        if (r >= 0 && !c.compatible)
                r = ringil_fail(-RINGIL_EMALFORMED, "[device] compatible is required");
        if (r >= 0 && c.nix_generation) {
                r = default_str(&c.nix_profile, "/nix/var/nix/profiles/system");
                if (r >= 0)
                        r = default_str(&c.nix_current_system, "/run/current-system");
                /* INVARIANT: generation mode never runs with Nix's own trust settings: the fleet key is required. */
                if (r >= 0 && !c.nix_trusted_keys)
                        r = ringil_fail(-RINGIL_EMALFORMED, "[nix] trusted-public-keys is required");
                if (r >= 0 && c.n_classes > 0)
                        r = ringil_fail(-RINGIL_EMALFORMED, "[nix] (generation mode) and [slot.*] sections exclude each other");
                if (r >= 0 && (!c.nix_tls_ca != !c.nix_tls_cert || !c.nix_tls_cert != !c.nix_tls_key))
                        r = ringil_fail(-RINGIL_EMALFORMED, "[nix] tls-ca, tls-cert and tls-key go together");
        }
        for (size_t i = 0; r >= 0 && i < c.n_classes; i++) {
                struct slot_class *sc = &c.classes[i];
                if (!sc->device[0] || !sc->device[1])
                        r = ringil_fail(-RINGIL_EMALFORMED, "slot class `%s' needs both [slot.%s.a] and [slot.%s.b]",
                                        sc->name, sc->name, sc->name);
                else if (streq(sc->device[0], sc->device[1]))
                        r = ringil_fail(-RINGIL_EMALFORMED, "slot class `%s': a and b are the same device",
                                        sc->name);
                /* The state must outlive a slot being rewritten: never keep it on or under a slot. */
                for (int k = 0; r >= 0 && k < 2; k++)
                        if (path_under(c.state_dir, sc->device[k]) || path_under(sc->device[k], c.state_dir))
                                r = ringil_fail(-RINGIL_EMALFORMED, "state-dir overlaps slot `%s'", sc->device[k]);
        }
        if (r < 0) {
                device_conf_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int device_conf_load(const char *path, struct device_conf *ret) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        r = read_full_file(path, RFILE_NOFOLLOW, INI_MAX_SIZE, &data, &len);
        if (r == -EFBIG)
                return ringil_fail(-RINGIL_ETOOBIG, "%s: larger than %u bytes", path, INI_MAX_SIZE);
        if (r < 0)
                return ringil_fail(r, "%s: cannot read", path);
        return device_conf_parse((const char *) data, len, ret);
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
        for (size_t i = 0; i < INSTALL_MAX_SIGNERS && c->allowed_signers[i]; i++)
                free(c->allowed_signers[i]);
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
