/* audit-checks.c: the check catalogue. Expected values come from the profile's params, never from code. */
#include <arpa/inet.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "crypto.h"
#include "efi-var.h"
#include "err.h"
#include "efi-esl.h"
#include "macro.h"
#include "parse.h"

#define EFIVARS "sys/firmware/efi/efivars"
#define MOR_GUID "e20939be-32d4-41be-a150-897f85d49829"
#define PROC_SCAN_MAX 32768

/* ---- params ---- */

static const char *param_str(json_t *params, const char *key) {
        return json_string_value(json_object_get(params, key));
}

/* Array of strings → strv; missing key is an error of the profile, reported as a check error. */
static int param_strv(struct audit_result *res, json_t *params, const char *key, struct strv *ret) {
        json_t *a = json_object_get(params, key), *v;
        struct strv s = {};
        size_t i;

        if (!json_is_array(a)) {
                audit_error(res, -EINVAL, NULL, "profile param \"%s\" missing or not a list", key);
                return -EINVAL;
        }
        json_array_foreach(a, i, v) {
                char buf[32];
                const char *x = json_string_value(v);
                if (json_is_integer(v)) {
                        snprintf(buf, sizeof(buf), "%lld", (long long) json_integer_value(v));
                        x = buf;
                }
                if (!x || strv_push(&s, x) < 0) {
                        strv_done(&s);
                        audit_error(res, -EINVAL, NULL, "profile param \"%s\" has a non-string entry", key);
                        return -EINVAL;
                }
        }
        *ret = s;
        return 0;
}

static void kvlistp(struct kvlist *l) {
        kvlist_free(l);
}
#define _cleanup_kvlist_ __attribute__((cleanup(kvlistp)))

/* ---- reading ---- */

static int read_text(struct audit_ctx *ctx, struct audit_result *res, const char *path, char **ret, size_t *ret_len) {
        int r = audit_fs_read(ctx->fs, path, AUDIT_TEXT_MAX, ret, ret_len);
        if (r < 0)
                audit_error(res, r, path, "cannot read");
        return r;
}

/* First line without trailing whitespace. */
static int read_line(struct audit_ctx *ctx, struct audit_result *res, const char *path, char **ret) {
        char *s;
        size_t len;
        int r = read_text(ctx, res, path, &s, &len);
        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = '\0';
        len = strlen(s);
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
                s[--len] = '\0';
        if (len == 0) {
                free(s);
                audit_error(res, -RINGIL_ETRUNCATED, path, "empty");
                return -RINGIL_ETRUNCATED;
        }
        *ret = s;
        return 0;
}

static char *efivar_file(const char *name, const char *guid) {
        char *p;
        return asprintf(&p, EFIVARS "/%s-%s", name, guid) < 0 ? NULL : p;
}

/*
 * Read an EFI variable through the resolver and strip the 4-byte attributes. Returns -ENOENT when
 * absent (not recorded: absence means different things to different checks); other errors recorded.
 */
static int read_efivar(struct audit_ctx *ctx, struct audit_result *res, const char *name, const char *guid,
                       char **ret_path, uint8_t **ret_data, size_t *ret_len) {
        _cleanup_free_ char *path = efivar_file(name, guid);
        _cleanup_free_ char *raw = NULL;
        const uint8_t *data;
        size_t raw_len, len;
        uint32_t attr;
        uint8_t *copy;
        int r;

        if (!path)
                return -ENOMEM;
        r = audit_fs_read(ctx->fs, path, EFIVAR_MAX_SIZE, &raw, &raw_len);
        if (r == -ENOENT) {
                /* Distinguish "variable absent" from "no efivarfs at all". */
                int e = audit_fs_exists(ctx->fs, EFIVARS);
                if (e <= 0) {
                        audit_error(res, e < 0 ? e : -ENOENT, EFIVARS, "efivarfs not available");
                        return e < 0 ? e : -ENOTDIR;
                }
                *ret_path = TAKE_PTR(path);
                return -ENOENT;
        }
        if (r < 0) {
                audit_error(res, r, path, "cannot read EFI variable");
                return r;
        }
        r = efivar_decode((const uint8_t *) raw, raw_len, &attr, &data, &len);
        if (r < 0) {
                audit_error(res, r, path, "bad EFI variable");
                return r;
        }
        copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, len);
        *ret_data = copy;
        *ret_len = len;
        *ret_path = TAKE_PTR(path);
        return 0;
}

/* A one-byte boolean variable: 0/1, -ENOENT if absent; truncated or other values are errors. */
static int read_efi_bool(struct audit_ctx *ctx, struct audit_result *res, const char *name, char **ret_path,
                         int *ret) {
        _cleanup_free_ uint8_t *d = NULL;
        size_t len;
        int r = read_efivar(ctx, res, name, "8be4df61-93ca-11d2-aa0d-00e098032b8c", ret_path, &d, &len);
        if (r < 0)
                return r;
        r = efivar_bool_decode(d, len);
        if (r < 0) {
                if (len != 1)
                        audit_error(res, r, *ret_path, "expected 1 data byte, found %zu", len);
                else
                        audit_error(res, r, *ret_path, "value %u is not 0/1", d[0]);
                return -RINGIL_EMALFORMED;
        }
        *ret = r;
        return 0;
}

/* The kernel command line: /proc/cmdline live, the system's bootspec kernelParams offline. */
static int ctx_cmdline(struct audit_ctx *ctx, struct audit_result *res, const struct strv **ret) {
        if (!ctx->cmdline_loaded) {
                _cleanup_free_ char *s = NULL;
                size_t len;
                int r;

                ctx->cmdline_loaded = true;
                if (ctx->live) {
                        ctx->cmdline_path = strdup("/proc/cmdline");
                        r = audit_fs_read(ctx->fs, "proc/cmdline", AUDIT_CMDLINE_MAX, &s, &len);
                        /* The kernel always ends /proc/cmdline with a newline: without it, it was cut. */
                        if (r >= 0 && (len == 0 || s[len - 1] != '\n'))
                                r = ringil_fail(-RINGIL_ETRUNCATED, "no trailing newline");
                        if (r >= 0)
                                r = audit_parse_cmdline(s, len, &ctx->cmdline);
                } else {
                        json_t *doc, *kp, *v;
                        json_error_t jerr;
                        size_t i;

                        ctx->cmdline_path = strdup("/nix/var/nix/profiles/system/boot.json");
                        r = audit_fs_read(ctx->fs, ctx->cmdline_path, AUDIT_TEXT_MAX, &s, &len);
                        if (r >= 0) {
                                doc = json_loadb(s, len, 0, &jerr);
                                kp = json_object_get(json_object_get(doc, "org.nixos.bootspec.v1"), "kernelParams");
                                if (!json_is_array(kp))
                                        r = ringil_fail(-RINGIL_EMALFORMED, "bootspec without kernelParams");
                                else
                                        json_array_foreach(kp, i, v) {
                                                if (!json_is_string(v) || i >= AUDIT_CMDLINE_WORDS_MAX ||
                                                    strv_push(&ctx->cmdline, json_string_value(v)) < 0) {
                                                        r = ringil_fail(-RINGIL_EMALFORMED, "bad kernelParams");
                                                        break;
                                                }
                                        }
                                json_decref(doc);
                        }
                }
                /* A booted NixOS always has words (init=, loglevel=): none means a truncated input,
                 * and "no forbidden word" must not be concluded from it. */
                if (r >= 0 && ctx->cmdline.n == 0)
                        r = ringil_fail(-RINGIL_ETRUNCATED, "empty kernel command line");
                ctx->cmdline_r = r;
        }
        if (ctx->cmdline_r < 0) {
                audit_error(res, ctx->cmdline_r, ctx->cmdline_path, "cannot read kernel command line");
                return ctx->cmdline_r;
        }
        *ret = &ctx->cmdline;
        return 0;
}

static const char *cmdline_value(const struct strv *cl, const char *key) {
        size_t kl = strlen(key);
        const char *v = NULL;
        for (size_t i = 0; i < cl->n; i++)
                if (strncmp(cl->v[i], key, kl) == 0 && cl->v[i][kl] == '=')
                        v = cl->v[i] + kl + 1;   /* the kernel honours the last one */
        return v;
}

static int ctx_accounts(struct audit_ctx *ctx, struct audit_result *res, bool need_shadow) {
        if (!ctx->pw_loaded) {
                _cleanup_free_ char *a = NULL, *b = NULL;
                size_t la, lb;
                ctx->pw_loaded = true;
                ctx->passwd_r = audit_fs_read(ctx->fs, "etc/passwd", AUDIT_TEXT_MAX, &a, &la);
                if (ctx->passwd_r >= 0)
                        ctx->passwd_r = audit_parse_passwd(a, la, &ctx->passwd);
                ctx->shadow_r = audit_fs_read(ctx->fs, "etc/shadow", AUDIT_TEXT_MAX, &b, &lb);
                if (ctx->shadow_r >= 0)
                        ctx->shadow_r = audit_parse_shadow(b, lb, &ctx->shadow);
        }
        if (ctx->passwd_r < 0) {
                audit_error(res, ctx->passwd_r, "/etc/passwd", "cannot read");
                return ctx->passwd_r;
        }
        if (need_shadow && ctx->shadow_r < 0) {
                audit_error(res, ctx->shadow_r, "/etc/shadow", "cannot read");
                return ctx->shadow_r;
        }
        return 0;
}

/* Where the system closure is: the running one live, the default profile in an image. */
static const char *system_dir(struct audit_ctx *ctx) {
        return ctx->live ? "run/current-system" : "nix/var/nix/profiles/system";
}

/* Expand a leading "@system" in a profile path. */
static char *expand_path(struct audit_ctx *ctx, const char *p) {
        char *o;
        if (strncmp(p, "@system", 7) == 0)
                return asprintf(&o, "%s%s", system_dir(ctx), p + 7) < 0 ? NULL : o;
        return strdup(p);
}

/*
 * systemd configuration with drop-ins (journald.conf(5), systemd.unit(5) "Configuration
 * Directories and Precedence"): the main file is the first found of /etc, /run, /usr/local/lib,
 * /usr/lib; then *.conf from every FILE.d directory, a name in an earlier directory masking the same
 * name in later ones, applied in lexical order of the names, later assignments winning. A drop-in
 * linked to /dev/null (or empty) is masked.
 */
static const char *const conf_dirs[] = { "etc", "run", "usr/local/lib", "usr/lib" };

static int conf_merge(struct audit_ctx *ctx, struct audit_result *res, const char *file, const char *section,
                      struct kvlist *out, struct strv *sources) {
        struct strv names = {};
        int r;

        for (size_t d = 0; d < ELEMENTSOF(conf_dirs); d++) {
                _cleanup_free_ char *p = NULL, *s = NULL;
                size_t len;

                if (asprintf(&p, "%s/%s", conf_dirs[d], file) < 0)
                        return -ENOMEM;
                r = audit_fs_read(ctx->fs, p, AUDIT_TEXT_MAX, &s, &len);
                if (r == -ENOENT)
                        continue;
                if (r < 0 || (r = audit_parse_ini_section(s, len, section, out)) < 0) {
                        audit_error(res, r, p, "cannot read configuration");
                        return r;
                }
                {
                        _cleanup_free_ char *abs = NULL;
                        if (asprintf(&abs, "/%s", p) >= 0)
                                (void) strv_push(sources, abs);
                }
                break;
        }
        for (size_t d = 0; d < ELEMENTSOF(conf_dirs); d++) {
                _cleanup_free_ char *dir = NULL;
                struct strv v = {};

                if (asprintf(&dir, "%s/%s.d", conf_dirs[d], file) < 0)
                        return -ENOMEM;
                r = audit_fs_list(ctx->fs, dir, &v);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0) {
                        strv_done(&names);
                        audit_error(res, r, dir, "cannot list drop-ins");
                        return r;
                }
                for (size_t i = 0; i < v.n; i++) {
                        size_t l = strlen(v.v[i]);
                        if (l > 5 && streq(v.v[i] + l - 5, ".conf") && !strv_contains(&names, v.v[i]))
                                (void) strv_push(&names, v.v[i]);
                }
                strv_done(&v);
        }
        strv_sort(&names);
        for (size_t i = 0; i < names.n; i++)
                for (size_t d = 0; d < ELEMENTSOF(conf_dirs); d++) {
                        _cleanup_free_ char *p = NULL, *s = NULL, *link = NULL;
                        size_t len;

                        if (asprintf(&p, "%s/%s.d/%s", conf_dirs[d], file, names.v[i]) < 0) {
                                strv_done(&names);
                                return -ENOMEM;
                        }
                        if (audit_fs_readlink(ctx->fs, p, &link) >= 0 && streq(link, "/dev/null"))
                                break;   /* masked */
                        r = audit_fs_read(ctx->fs, p, AUDIT_TEXT_MAX, &s, &len);
                        if (r == -ENOENT)
                                continue;
                        if (r < 0 || (r = audit_parse_ini_section(s, len, section, out)) < 0) {
                                audit_error(res, r, p, "cannot read drop-in");
                                strv_done(&names);
                                return r;
                        }
                        {
                        _cleanup_free_ char *abs = NULL;
                        if (asprintf(&abs, "/%s", p) >= 0)
                                (void) strv_push(sources, abs);
                }
                        break;   /* the highest-priority directory's copy masks the others */
                }
        strv_done(&names);
        return 0;
}

/* ---- units ---- */

static const char *const unit_dirs[] = {
        "etc/systemd/system", "run/systemd/system", "run/systemd/generator", "run/systemd/generator.early",
        "run/systemd/generator.late", "usr/local/lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/system",
};

/* 1 if unit is masked in etc/ or run/ (link to /dev/null or empty file). */
static int unit_masked(struct audit_ctx *ctx, const char *unit) {
        for (size_t d = 0; d < 2; d++) {
                _cleanup_free_ char *p = NULL, *link = NULL;
                struct stat st;
                if (asprintf(&p, "%s/%s", unit_dirs[d], unit) < 0)
                        return -ENOMEM;
                if (audit_fs_readlink(ctx->fs, p, &link) >= 0 && streq(link, "/dev/null"))
                        return 1;
                if (audit_fs_lstat(ctx->fs, p, &st) >= 0 && S_ISREG(st.st_mode) && st.st_size == 0)
                        return 1;
        }
        return 0;
}

/* Where a unit is defined (first unit dir holding it), NULL if nowhere or masked. */
static int unit_find(struct audit_ctx *ctx, const char *unit, char **ret_path) {
        int r = unit_masked(ctx, unit);
        if (r != 0)
                return r < 0 ? r : 0;
        for (size_t d = 0; d < ELEMENTSOF(unit_dirs); d++) {
                _cleanup_free_ char *p = NULL;
                struct stat st;
                if (asprintf(&p, "%s/%s", unit_dirs[d], unit) < 0)
                        return -ENOMEM;
                r = audit_fs_lstat(ctx->fs, p, &st);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0)
                        return r;
                *ret_path = TAKE_PTR(p);
                return 1;
        }
        return 0;
}

/* Is unit pulled in by a *.wants/ or *.requires/ link in any unit directory? */
static int unit_enabled(struct audit_ctx *ctx, const char *unit, char **ret_path) {
        int r = unit_masked(ctx, unit);
        if (r != 0)
                return r < 0 ? r : 0;
        for (size_t d = 0; d < ELEMENTSOF(unit_dirs); d++) {
                struct strv v = {};
                r = audit_fs_list(ctx->fs, unit_dirs[d], &v);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0)
                        return r;
                for (size_t i = 0; i < v.n; i++) {
                        size_t l = strlen(v.v[i]);
                        _cleanup_free_ char *p = NULL;
                        struct stat st;
                        if (!((l > 6 && streq(v.v[i] + l - 6, ".wants")) || (l > 9 && streq(v.v[i] + l - 9, ".requires"))))
                                continue;
                        if (asprintf(&p, "%s/%s/%s", unit_dirs[d], v.v[i], unit) < 0) {
                                strv_done(&v);
                                return -ENOMEM;
                        }
                        r = audit_fs_lstat(ctx->fs, p, &st);
                        if (r == -ENOENT || r == -ENOTDIR)
                                continue;
                        strv_done(&v);
                        if (r < 0)
                                return r;   /* e.g. a dangling *.wants link: cannot tell */
                        *ret_path = TAKE_PTR(p);
                        return 1;
                }
                strv_done(&v);
        }
        return 0;
}

/* ============================== Secure Boot ============================== */

static void check_uefi(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *s = NULL;
        (void) params;
        int e = audit_fs_exists(ctx->fs, "sys/firmware/efi");
        if (e == 0) {
                audit_evidence(res, "/sys/firmware/efi", "absent", "present");
                return audit_fail(res, "not booted via UEFI");
        }
        if (read_line(ctx, res, "sys/firmware/efi/fw_platform_size", &s) < 0)
                return;
        audit_evidence(res, "/sys/firmware/efi/fw_platform_size", s, "64|32");
        if (!streq(s, "64") && !streq(s, "32"))
                audit_fail(res, "firmware platform size %s", s);
        audit_pass(res, NULL, NULL, NULL);
}

/* SB-002/003: a one-byte global variable must hold the profile's value. */
static void check_efi_bool(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *path = NULL;
        const char *want = param_str(params, "expect");
        char obs[8];
        int v, r;

        if (!want)
                return audit_error(res, -EINVAL, NULL, "profile param \"expect\" missing");
        r = read_efi_bool(ctx, res, res->check->arg, &path, &v);
        if (r == -ENOENT)
                return audit_error(res, r, path, "%s variable missing", res->check->arg);
        if (r < 0)
                return;
        snprintf(obs, sizeof(obs), "%d", v);
        audit_evidence(res, path, obs, want);
        if (!streq(obs, want))
                audit_fail(res, "%s=%s, expected %s", res->check->arg, obs, want);
        audit_pass(res, NULL, NULL, NULL);
}

static void check_sb_mode(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *pa = NULL, *pd = NULL, *ps = NULL, *pu = NULL;
        int audit = -1, deployed = -1, sb = -1, setup = -1, r;
        bool need_deployed = json_is_true(json_object_get(params, "require_deployed"));
        char obs[64];

        r = read_efi_bool(ctx, res, "AuditMode", &pa, &audit);
        if (r < 0 && r != -ENOENT)
                return;
        r = read_efi_bool(ctx, res, "DeployedMode", &pd, &deployed);
        if (r < 0 && r != -ENOENT)
                return;
        /* SecureBoot/SetupMode are judged by SB-002/003; read here only to name the decoded mode. */
        {
                struct audit_result scratch = {};
                (void) read_efi_bool(ctx, &scratch, "SecureBoot", &ps, &sb);
                (void) read_efi_bool(ctx, &scratch, "SetupMode", &pu, &setup);
                free(scratch.message);
                for (size_t i = 0; i < scratch.n_ev; i++) {
                        free(scratch.ev[i].path);
                        free(scratch.ev[i].observed);
                        free(scratch.ev[i].expected);
                }
        }
        snprintf(obs, sizeof(obs), "AuditMode=%d DeployedMode=%d (mode %s)", audit, deployed,
                 sb_mode_to_string(sb_mode_decode(sb, setup, audit, deployed)));
        audit_evidence(res, pa, obs, need_deployed ? "AuditMode=0|absent DeployedMode=1" : "AuditMode=0|absent");
        if (audit == 1)
                return audit_fail(res, "firmware is in audit mode: signatures are logged, not enforced");
        if (need_deployed && deployed != 1)
                return audit_fail(res, "firmware is not in deployed mode");
        audit_pass(res, NULL, NULL, NULL);
}

struct bundle_cert {
        uint8_t sha[SHA256_LEN];
        char hex[2 * SHA256_LEN + 1];
};

static int load_bundle(struct audit_ctx *ctx, struct audit_result *res, json_t *params, const char *which,
                       efi_guid *ret_owner, struct bundle_cert *ret_cert) {
        _cleanup_free_ char *gp = NULL, *cp = NULL, *g = NULL, *pem = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *sk = NULL;
        const char *bundle = param_str(params, "bundle");
        size_t len;
        int r;

        if (!bundle) {
                audit_error(res, -EINVAL, NULL, "profile param \"bundle\" missing");
                return -EINVAL;
        }
        if (asprintf(&gp, "%s/GUID", bundle) < 0 || asprintf(&cp, "%s/keys/%s/%s.pem", bundle, which, which) < 0)
                return -ENOMEM;
        r = read_text(ctx, res, gp, &g, &len);
        if (r < 0)
                return r;
        if (efi_guid_from_string(g, ret_owner) < 0) {
                audit_error(res, -RINGIL_EMALFORMED, gp, "not a GUID (36 characters, no newline)");
                return -RINGIL_EMALFORMED;
        }
        r = audit_fs_read(ctx->fs, cp, CRYPTO_MAX_PEM, &pem, &len);
        if (r < 0) {
                audit_error(res, r, cp, "cannot read fleet certificate");
                return r;
        }
        sk = sk_X509_new_null();
        if (!sk)
                return -ENOMEM;
        r = crypto_parse_pem_certs((const uint8_t *) pem, len, sk);
        if (r <= 0) {
                audit_error(res, r < 0 ? r : -RINGIL_EMALFORMED, cp, "no certificate");
                return -RINGIL_EMALFORMED;
        }
        r = crypto_cert_sha256(sk_X509_value(sk, 0), ret_cert->sha);
        if (r < 0) {
                audit_error(res, r, cp, "cannot hash certificate");
                return r;
        }
        hex_encode(ret_cert->sha, SHA256_LEN, ret_cert->hex);
        return 0;
}

/*
 * SB-005/006/007: the enrolled key list holds the fleet's certificate (owner = pkiBundle GUID) and
 * nothing else except hashes the profile allows. arg = "VAR:vendor-guid:bundle-dir".
 */
static void check_keylist(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *arg = strdup(res->check->arg), *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ struct esl_entry *ents = NULL;
        _cleanup_strv_ struct strv extra = {};
        struct bundle_cert fleet;
        efi_guid owner;
        char *var, *guid, *which, gs[EFI_GUID_STRING_MAX], exp[200];
        bool found = false, exclusive = !json_is_false(json_object_get(params, "exclusive"));
        size_t len, n;
        int r;

        if (!arg)
                return;
        var = arg;
        guid = strchr(var, ':');
        *guid++ = '\0';
        which = strchr(guid, ':');
        *which++ = '\0';
        if (json_object_get(params, "extra_sha256") && param_strv(res, params, "extra_sha256", &extra) < 0)
                return;
        if (load_bundle(ctx, res, params, which, &owner, &fleet) < 0)
                return;
        r = read_efivar(ctx, res, var, guid, &path, &data, &len);
        if (r == -ENOENT)
                return audit_error(res, r, path, "%s is not enrolled", var);
        if (r < 0)
                return;
        r = esl_parse(data, len, &ents, &n);
        if (r < 0)
                return audit_error(res, r, path, "bad EFI_SIGNATURE_LIST");
        snprintf(exp, sizeof(exp), "x509 sha256 %s owner %s", fleet.hex, efi_guid_to_string(&owner, gs));
        if (n == 0) {
                audit_evidence(res, path, "empty", exp);
                return audit_fail(res, "%s is empty", var);
        }
        for (size_t i = 0; i < n; i++) {
                uint8_t sha[SHA256_LEN];
                char hex[2 * SHA256_LEN + 1], obs[200], og[EFI_GUID_STRING_MAX];
                bool is_x509 = efi_guid_equal(&ents[i].type, &EFI_CERT_X509_GUID);

                if (crypto_sha256(ents[i].data, ents[i].len, sha) < 0)
                        return audit_error(res, -EIO, path, "hash");
                hex_encode(sha, SHA256_LEN, hex);
                efi_guid_to_string(&ents[i].owner, og);
                snprintf(obs, sizeof(obs), "%s sha256 %s owner %s", is_x509 ? "x509" : "non-x509", hex, og);
                if (is_x509 && memcmp(sha, fleet.sha, SHA256_LEN) == 0) {
                        audit_evidence(res, path, obs, exp);
                        if (!efi_guid_equal(&ents[i].owner, &owner))
                                audit_fail(res, "fleet certificate in %s has owner %s, not the bundle GUID", var, og);
                        found = true;
                } else if (exclusive && !strv_contains(&extra, hex)) {
                        audit_evidence(res, path, obs, exp);
                        audit_fail(res, "%s holds a certificate that is not the fleet's (sha256 %.16s…)", var, hex);
                }
        }
        if (!found) {
                audit_evidence(res, path, "fleet certificate absent", exp);
                audit_fail(res, "%s does not hold the fleet certificate", var);
        }
        audit_pass(res, NULL, NULL, NULL);
}

static void check_dbx(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ struct esl_entry *ents = NULL;
        size_t len, n, min = 1;
        char obs[64];
        int r;
        json_t *m = json_object_get(params, "min_entries");

        if (json_is_integer(m) && json_integer_value(m) >= 0)
                min = (size_t) json_integer_value(m);
        r = read_efivar(ctx, res, "dbx", "d719b2cb-3d3a-4596-a3bc-dad00e67656f", &path, &data, &len);
        if (r == -ENOENT) {
                audit_evidence(res, path, "absent", "revocation list present");
                return audit_fail(res, "no dbx: nothing is revoked");
        }
        if (r < 0)
                return;
        r = esl_parse(data, len, &ents, &n);
        if (r < 0)
                return audit_error(res, r, path, "bad EFI_SIGNATURE_LIST");
        snprintf(obs, sizeof(obs), "%zu entries", n);
        audit_evidence(res, path, obs, ">= min_entries");
        if (n < min)
                audit_fail(res, "dbx has %zu entries, fewer than %zu", n, min);
        audit_pass(res, NULL, NULL, NULL);
}

/* SB-009: private keys in the bundle are root-only; directories not writable by others. */
static void check_bundle_perms(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        const char *bundle = param_str(params, "bundle");
        static const char *const sub[] = { "PK", "KEK", "db" };
        bool any = false, dirs = false;

        if (!bundle)
                return audit_error(res, -EINVAL, NULL, "profile param \"bundle\" missing");
        for (size_t i = 0; i < ELEMENTSOF(sub); i++) {
                _cleanup_free_ char *d = NULL;
                struct strv v = {};
                struct stat st;
                int r;

                if (asprintf(&d, "%s/keys/%s", bundle, sub[i]) < 0)
                        return audit_error(res, -ENOMEM, bundle, "out of memory");
                r = audit_fs_stat(ctx->fs, d, &st);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return audit_error(res, r, d, "cannot stat");
                dirs = true;
                if (st.st_uid != 0 || (st.st_mode & 022)) {
                        char obs[64];
                        snprintf(obs, sizeof(obs), "uid %u mode %04o", (unsigned) st.st_uid, st.st_mode & 07777);
                        audit_evidence(res, d, obs, "uid 0, not group/other writable");
                        audit_fail(res, "key directory %s is not protected", d);
                }
                r = audit_fs_list(ctx->fs, d, &v);
                if (r < 0)
                        return audit_error(res, r, d, "cannot list");
                for (size_t j = 0; j < v.n; j++) {
                        _cleanup_free_ char *f = NULL;
                        size_t l = strlen(v.v[j]);
                        if (l < 4 || !streq(v.v[j] + l - 4, ".key"))
                                continue;
                        if (asprintf(&f, "%s/%s", d, v.v[j]) < 0) {
                                audit_error(res, -ENOMEM, d, "out of memory");
                                break;
                        }
                        any = true;
                        r = audit_fs_stat(ctx->fs, f, &st);
                        if (r < 0) {
                                /* A key that cannot be judged is not a root-only key. */
                                audit_error(res, r, f, "cannot stat private key");
                                continue;
                        }
                        if (st.st_uid != 0 || (st.st_mode & 077)) {
                                char obs[64];
                                snprintf(obs, sizeof(obs), "uid %u mode %04o", (unsigned) st.st_uid, st.st_mode & 07777);
                                audit_evidence(res, f, obs, "uid 0 mode 0400|0600");
                                audit_fail(res, "private key %s readable by others", f);
                        }
                }
                strv_done(&v);
        }
        if (!dirs)
                return audit_error(res, -ENOENT, bundle, "pkiBundle not found");
        audit_pass(res, bundle, any ? "private keys root-only" : "no private keys", "root-only");
}

/* Generic: none of params.paths exists (files an attacker or a dev build would leave). */
static void check_paths_absent(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv paths = {}, units = {};
        bool have_units = json_object_get(params, "units") != NULL;

        if (param_strv(res, params, "paths", &paths) < 0)
                return;
        if (have_units && param_strv(res, params, "units", &units) < 0)
                return;
        for (size_t i = 0; i < paths.n; i++) {
                _cleanup_free_ char *p = expand_path(ctx, paths.v[i]);
                struct stat st;
                int r;
                if (!p)
                        return;
                r = audit_fs_lstat(ctx->fs, p, &st);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0)
                        return audit_error(res, r, p, "cannot stat");
                audit_evidence(res, p, "present", "absent");
                audit_fail(res, "%s is present", p);
        }
        for (size_t i = 0; i < units.n; i++) {
                _cleanup_free_ char *where = NULL;
                int r = unit_find(ctx, units.v[i], &where);
                if (r < 0)
                        return audit_error(res, r, units.v[i], "cannot look up unit");
                if (r > 0) {
                        audit_evidence(res, where, "unit present", "absent or masked");
                        audit_fail(res, "unit %s is installed", units.v[i]);
                }
        }
        {
                _cleanup_free_ char *p = expand_path(ctx, paths.n ? paths.v[0] : "/");
                if (p)
                        audit_pass(res, p, "absent", "absent");
        }
}

static void check_stubinfo(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *d = NULL;
        const char *prefix = param_str(params, "prefix");
        char s[128];
        size_t len, k = 0;
        int r;

        if (!prefix)
                return audit_error(res, -EINVAL, NULL, "profile param \"prefix\" missing");
        r = read_efivar(ctx, res, "StubInfo", "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", &path, &d, &len);
        if (r == -ENOENT) {
                audit_evidence(res, path, "absent", prefix);
                return audit_fail(res, "not booted through a stub that locks the command line");
        }
        if (r < 0)
                return;
        /* UTF-16LE, NUL-terminated; only ASCII is expected. */
        for (size_t i = 0; i + 1 < len && k + 1 < sizeof(s); i += 2) {
                uint16_t c = (uint16_t) (d[i] | d[i + 1] << 8);
                if (c == 0)
                        break;
                s[k++] = c < 0x80 ? (char) c : '?';
        }
        s[k] = '\0';
        audit_evidence(res, path, s, prefix);
        if (strncmp(s, prefix, strlen(prefix)) != 0)
                audit_fail(res, "stub is '%s', not %s", s, prefix);
        audit_pass(res, NULL, NULL, NULL);
}

/* ============================== Boot loader ============================== */

static int load_loader_conf(struct audit_ctx *ctx, struct audit_result *res, json_t *params, struct kvlist *ret,
                            char **ret_path) {
        _cleanup_strv_ struct strv esps = {};
        if (param_strv(res, params, "esp", &esps) < 0)
                return -EINVAL;
        for (size_t i = 0; i < esps.n; i++) {
                _cleanup_free_ char *p = NULL, *s = NULL;
                size_t len;
                int r;
                if (asprintf(&p, "%s/loader/loader.conf", esps.v[i]) < 0)
                        return -ENOMEM;
                r = audit_fs_read(ctx->fs, p, AUDIT_TEXT_MAX, &s, &len);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0 || (r = audit_parse_loader_conf(s, len, ret)) < 0) {
                        audit_error(res, r, p, "cannot read loader.conf");
                        return r;
                }
                *ret_path = TAKE_PTR(p);
                return 0;
        }
        audit_error(res, -ENOENT, "loader/loader.conf", "no loader.conf on any ESP candidate");
        return -ENOENT;
}

/* BL-001..003: a loader.conf key (arg) takes one of params.allowed; absent counts as params.default. */
static void check_loader_key(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_kvlist_ struct kvlist l = {};
        _cleanup_strv_ struct strv allowed = {};
        _cleanup_free_ char *path = NULL, *exp = NULL;
        const char *v, *dflt = param_str(params, "default");

        if (param_strv(res, params, "allowed", &allowed) < 0 || load_loader_conf(ctx, res, params, &l, &path) < 0)
                return;
        v = kvlist_get(&l, res->check->arg);
        exp = strv_join(&allowed, "|");
        audit_evidence(res, path, v ? v : (dflt ? dflt : "(unset)"), exp);
        if (!v)
                v = dflt;
        if (!v || !strv_contains(&allowed, v))
                audit_fail(res, "loader.conf %s is %s", res->check->arg, v ? v : "unset");
        audit_pass(res, NULL, NULL, NULL);
}

static void check_loader_efivars(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv vars = {};
        if (param_strv(res, params, "variables", &vars) < 0)
                return;
        for (size_t i = 0; i < vars.n; i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_free_ uint8_t *d = NULL;
                size_t len;
                int r = read_efivar(ctx, res, vars.v[i], "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", &path, &d, &len);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return;
                audit_evidence(res, path, "present", "absent");
                audit_fail(res, "EFI variable %s overrides loader.conf", vars.v[i]);
        }
        audit_pass(res, "/" EFIVARS, "no Loader* overrides", "absent");
}

/* ============================== Kernel command line ============================== */

static void check_cmdline_require(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv req = {};
        const struct strv *cl;
        if (param_strv(res, params, "require", &req) < 0 || ctx_cmdline(ctx, res, &cl) < 0)
                return;
        for (size_t i = 0; i < req.n; i++)
                if (!strv_contains(cl, req.v[i])) {
                        audit_evidence(res, ctx->cmdline_path, "absent", req.v[i]);
                        audit_fail(res, "'%s' missing from the kernel command line", req.v[i]);
                }
        audit_pass(res, ctx->cmdline_path, "present", "all required words");
}

static void check_loglevel(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        const struct strv *cl;
        json_t *m = json_object_get(params, "max");
        const char *v;
        unsigned lv;
        char exp[32];

        if (!json_is_integer(m))
                return audit_error(res, -EINVAL, NULL, "profile param \"max\" missing");
        if (ctx_cmdline(ctx, res, &cl) < 0)
                return;
        snprintf(exp, sizeof(exp), "loglevel<=%lld", (long long) json_integer_value(m));
        v = cmdline_value(cl, "loglevel");
        audit_evidence(res, ctx->cmdline_path, v ? v : "unset", exp);
        if (!v || parse_uint(v, &lv) < 0 || (long long) lv > json_integer_value(m))
                audit_fail(res, "kernel loglevel %s", v ? v : "unset");
        audit_pass(res, NULL, NULL, NULL);
}

static void check_cmdline_console(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv bad = {};
        const struct strv *cl;
        if (param_strv(res, params, "forbidden", &bad) < 0 || ctx_cmdline(ctx, res, &cl) < 0)
                return;
        for (size_t i = 0; i < cl->n; i++) {
                const char *w = cl->v[i];
                if (strncmp(w, "console=", 8) != 0 && strncmp(w, "earlycon", 8) != 0)
                        continue;
                if (strncmp(w, "earlycon", 8) == 0 || strv_fnmatch(&bad, w + 8)) {
                        audit_evidence(res, ctx->cmdline_path, w, "no serial console");
                        audit_fail(res, "serial console on the command line: %s", w);
                }
        }
        audit_pass(res, ctx->cmdline_path, "no serial console", "no serial console");
}

static void check_cmdline_forbidden(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv bad = {}, allow = {};
        const struct strv *cl;
        if (param_strv(res, params, "forbidden", &bad) < 0 || param_strv(res, params, "allow", &allow) < 0 ||
            ctx_cmdline(ctx, res, &cl) < 0)
                return;
        for (size_t i = 0; i < cl->n; i++)
                if (!strv_fnmatch(&allow, cl->v[i]) && strv_fnmatch(&bad, cl->v[i])) {
                        audit_evidence(res, ctx->cmdline_path, cl->v[i], "no shell/debug parameter");
                        audit_fail(res, "kernel command line has '%s'", cl->v[i]);
                }
        audit_pass(res, ctx->cmdline_path, "none", "no shell/debug parameter");
}

/* ============================== Kernel state ============================== */

/* Generic: a /proc or /sys value (arg) is one of params.allowed; for printk only the first field. */
static void check_value_in(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv allowed = {};
        _cleanup_free_ char *s = NULL, *exp = NULL, *path = NULL;
        char *v;

        if (param_strv(res, params, "allowed", &allowed) < 0 || read_line(ctx, res, res->check->arg, &s) < 0)
                return;
        if (asprintf(&path, "/%s", res->check->arg) < 0)
                return;
        v = s;
        if (json_is_true(json_object_get(params, "first_field")))
                v[strcspn(v, " \t")] = '\0';
        if (json_is_true(json_object_get(params, "bracketed"))) {
                /* "none [integrity] confidentiality": the bracketed word is the active one */
                char *o = strchr(s, '['), *c = o ? strchr(o, ']') : NULL;
                if (!o || !c)
                        return audit_error(res, -RINGIL_EMALFORMED, path, "no [active] value");
                *c = '\0';
                v = o + 1;
        }
        exp = strv_join(&allowed, "|");
        audit_evidence(res, path, v, exp);
        if (!strv_contains(&allowed, v))
                audit_fail(res, "%s is %s, expected %s", path, v, exp);
        audit_pass(res, NULL, NULL, NULL);
}

static void check_sysctl_map(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        json_t *m = json_object_get(params, "sysctls"), *v;
        const char *key;

        if (!json_is_object(m))
                return audit_error(res, -EINVAL, NULL, "profile param \"sysctls\" missing");
        json_object_foreach(m, key, v) {
                _cleanup_free_ char *p = NULL, *s = NULL;
                if (!json_is_string(v))
                        return audit_error(res, -EINVAL, NULL, "sysctl %s: expected value must be a string", key);
                if (asprintf(&p, "proc/sys/%s", key) < 0)
                        return;
                if (read_line(ctx, res, p, &s) < 0)
                        continue;
                if (!streq(s, json_string_value(v))) {
                        audit_evidence(res, p, s, json_string_value(v));
                        audit_fail(res, "%s is %s, expected %s", key, s, json_string_value(v));
                }
        }
        audit_pass(res, "/proc/sys", "all match", "profile sysctls");
}

/* ============================== Disks ============================== */

struct blockdev {
        char devnum[32];    /* "259:2" */
        char name[64];      /* "nvme0n1p2" (udev N:) */
        char fstype[32];
        char version[8];
};

static int load_blockdevs(struct audit_ctx *ctx, struct audit_result *res, struct blockdev **ret, size_t *ret_n) {
        struct strv v = {};
        size_t k = 0;
        struct blockdev *b;
        int r = audit_fs_list(ctx->fs, "run/udev/data", &v);

        if (r < 0) {
                audit_error(res, r, "/run/udev/data", "cannot list udev database");
                return r;
        }
        b = calloc(v.n + 1, sizeof(*b));
        if (!b) {
                strv_done(&v);
                return -ENOMEM;
        }
        for (size_t i = 0; i < v.n; i++) {
                _cleanup_free_ char *p = NULL, *s = NULL;
                _cleanup_kvlist_ struct kvlist l = {};
                size_t len;
                const char *x;

                if (v.v[i][0] != 'b' || !strchr(v.v[i], ':') || strlen(v.v[i]) >= sizeof(b[k].devnum))
                        continue;
                if (asprintf(&p, "run/udev/data/%s", v.v[i]) < 0)
                        break;
                r = audit_fs_read(ctx->fs, p, AUDIT_TEXT_MAX, &s, &len);
                if (r < 0 || (r = audit_parse_udev_data(s, len, &l)) < 0) {
                        audit_error(res, r, p, "cannot read udev record");
                        strv_done(&v);
                        free(b);
                        return r;
                }
                snprintf(b[k].devnum, sizeof(b[k].devnum), "%s", v.v[i] + 1);
                x = kvlist_get(&l, "N");
                snprintf(b[k].name, sizeof(b[k].name), "%s", x ? x : "");
                x = kvlist_get(&l, "ID_FS_TYPE");
                snprintf(b[k].fstype, sizeof(b[k].fstype), "%s", x ? x : "");
                x = kvlist_get(&l, "ID_FS_VERSION");
                snprintf(b[k].version, sizeof(b[k].version), "%s", x ? x : "");
                k++;
        }
        strv_done(&v);
        *ret = b;
        *ret_n = k;
        return 0;
}

/* dm/uuid of a block device by major:minor (sys/dev/block/M:N/dm/uuid); -ENOENT if not device-mapper. */
static int dm_uuid(struct audit_ctx *ctx, const char *devnum, char **ret) {
        _cleanup_free_ char *p = NULL, *s = NULL;
        size_t len;
        int r;
        if (asprintf(&p, "sys/dev/block/%s/dm/uuid", devnum) < 0)
                return -ENOMEM;
        r = audit_fs_read(ctx->fs, p, 4096, &s, &len);
        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

static void check_data_on_luks(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv types = {};
        _cleanup_free_ struct blockdev *b = NULL;
        size_t n, seen = 0;

        if (param_strv(res, params, "data_types", &types) < 0 || load_blockdevs(ctx, res, &b, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *u = NULL, *p = NULL;
                int r;
                if (!strv_contains(&types, b[i].fstype))
                        continue;
                seen++;
                if (asprintf(&p, "/sys/dev/block/%s/dm/uuid", b[i].devnum) < 0)
                        return;
                r = dm_uuid(ctx, b[i].devnum, &u);
                if (r == -ENOENT || r == -ENOTDIR) {
                        audit_evidence(res, p, "not a device-mapper device", "CRYPT-LUKS2-*");
                        audit_fail(res, "%s (%s) is not on LUKS2", b[i].name, b[i].fstype);
                        continue;
                }
                if (r < 0)
                        return audit_error(res, r, p, "cannot read");
                audit_evidence(res, p, u, "CRYPT-LUKS2-*");
                if (strncmp(u, "CRYPT-LUKS2-", 12) != 0)
                        audit_fail(res, "%s (%s) sits on %s, not LUKS2", b[i].name, b[i].fstype, u);
        }
        if (seen == 0)
                audit_error(res, -ENOENT, "/run/udev/data", "no data file system found to check");
        audit_pass(res, NULL, NULL, NULL);
}

static void check_luks_version(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ struct blockdev *b = NULL;
        size_t n, seen = 0;
        (void) params;

        if (load_blockdevs(ctx, res, &b, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = NULL;
                if (!streq(b[i].fstype, "crypto_LUKS"))
                        continue;
                seen++;
                if (asprintf(&p, "/run/udev/data/b%s", b[i].devnum) < 0)
                        return;
                audit_evidence(res, p, b[i].version[0] ? b[i].version : "unknown", "2");
                if (!streq(b[i].version, "2"))
                        audit_fail(res, "%s is LUKS version %s", b[i].name, b[i].version[0] ? b[i].version : "unknown");
        }
        if (seen == 0)
                audit_error(res, -ENOENT, "/run/udev/data", "no crypto_LUKS device found");
        audit_pass(res, NULL, NULL, NULL);
}

struct luks_dev {
        char path[96];
        struct luks2_info info;
};

/* Headers of every crypto_LUKS device, read from /dev/<name> (a block device live, a file in fixtures). */
static int load_luks(struct audit_ctx *ctx, struct audit_result *res, struct luks_dev **ret, size_t *ret_n) {
        _cleanup_free_ struct blockdev *b = NULL;
        _cleanup_free_ struct luks_dev *d = NULL;
        size_t n, k = 0;

        if (load_blockdevs(ctx, res, &b, &n) < 0)
                return -EIO;
        d = calloc(n + 1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ uint8_t *h = NULL, *full = NULL;
                size_t hs;
                int r;
                /* The version udev reports is CR-002's business; the header itself says LUKS2 or fails. */
                if (!streq(b[i].fstype, "crypto_LUKS"))
                        continue;
                if (!b[i].name[0] || strchr(b[i].name, '/') || strstr(b[i].name, "..")) {
                        audit_error(res, -RINGIL_EMALFORMED, "/run/udev/data", "bad device name");
                        return -RINGIL_EMALFORMED;
                }
                snprintf(d[k].path, sizeof(d[k].path), "/dev/%s", b[i].name);
                r = audit_fs_read_head(ctx->fs, d[k].path, LUKS2_BIN_HDR_SIZE, &h);
                if (r >= 0)
                        r = audit_luks2_header_size(h, LUKS2_BIN_HDR_SIZE, &hs);
                if (r >= 0)
                        r = audit_fs_read_head(ctx->fs, d[k].path, hs, &full);
                if (r >= 0)
                        r = audit_parse_luks2(full, hs, &d[k].info);
                if (r < 0) {
                        audit_error(res, r, d[k].path, "cannot read LUKS2 header");
                        return r;
                }
                k++;
        }
        if (k == 0) {
                audit_error(res, -ENOENT, "/run/udev/data", "no LUKS2 device found");
                return -ENOENT;
        }
        *ret = TAKE_PTR(d);
        *ret_n = k;
        return 0;
}

/* Only these token types keep a random key sealed in hardware; others (custom, plugin) prove nothing. */
static bool keyslot_hardware_token(const struct luks2_info *f, const struct luks2_keyslot *ks) {
        static const char *const hw[] = { "systemd-tpm2", "systemd-fido2", "systemd-pkcs11" };
        if (ks->token < 0 || (size_t) ks->token >= f->n_tokens)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(hw); i++)
                if (streq(f->tokens[ks->token].type, hw[i]))
                        return true;
        return false;
}

static void check_luks_policy(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ struct luks_dev *d = NULL;
        _cleanup_strv_ struct strv ciphers = {}, kdfs = {};
        json_t *mk = json_object_get(params, "min_key_bytes"), *ms = json_object_get(params, "max_keyslots");
        size_t n;

        if (param_strv(res, params, "ciphers", &ciphers) < 0 || param_strv(res, params, "kdf", &kdfs) < 0)
                return;
        if (!json_is_integer(mk) || !json_is_integer(ms))
                return audit_error(res, -EINVAL, NULL, "profile params min_key_bytes/max_keyslots missing");
        if (load_luks(ctx, res, &d, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                struct luks2_info *f = &d[i].info;
                char obs[160];
                snprintf(obs, sizeof(obs), "cipher %s, %zu keyslots", f->cipher, f->n_keyslots);
                audit_evidence(res, d[i].path, obs, "policy cipher, key size, kdf, keyslot count");
                if (!strv_contains(&ciphers, f->cipher))
                        audit_fail(res, "%s: cipher %s not allowed", d[i].path, f->cipher);
                if ((long long) f->n_keyslots > json_integer_value(ms))
                        audit_fail(res, "%s: %zu keyslots (stray keyslot?)", d[i].path, f->n_keyslots);
                for (size_t k = 0; k < f->n_keyslots; k++) {
                        if ((long long) f->keyslots[k].key_size < json_integer_value(mk))
                                audit_fail(res, "%s: keyslot %d key size %u bytes", d[i].path, f->keyslots[k].id,
                                           f->keyslots[k].key_size);
                        /* Keyslots of a hardware token hold a random key and use PBKDF2 by design; any
                         * other keyslot may be a passphrase and needs a hard KDF. */
                        if (!keyslot_hardware_token(f, &f->keyslots[k]) && !strv_contains(&kdfs, f->keyslots[k].kdf))
                                audit_fail(res, "%s: passphrase keyslot %d uses %s", d[i].path, f->keyslots[k].id,
                                           f->keyslots[k].kdf);
                }
        }
        audit_pass(res, NULL, NULL, NULL);
}

/* CR-004..006: property of every systemd-tpm2 token (arg: "pcr", "pin", "srk"). */
static void check_tpm_token(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ struct luks_dev *d = NULL;
        const char *what = res->check->arg;
        size_t n;
        uint32_t need = 0;

        if (streq(what, "pcr")) {
                _cleanup_strv_ struct strv pcrs = {};
                if (param_strv(res, params, "pcrs", &pcrs) < 0)
                        return;
                for (size_t i = 0; i < pcrs.n; i++) {
                        uint32_t v;
                        if (parse_u32_range(pcrs.v[i], 0, 23, &v) < 0)
                                return audit_error(res, -EINVAL, NULL, "bad PCR in profile");
                        need |= 1u << v;
                }
        }
        if (load_luks(ctx, res, &d, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                size_t tpm = 0;
                for (size_t t = 0; t < d[i].info.n_tokens; t++) {
                        const struct luks2_token *tk = &d[i].info.tokens[t];
                        char obs[128];
                        bool ok;
                        if (!streq(tk->type, "systemd-tpm2"))
                                continue;
                        tpm++;
                        if (streq(what, "pcr")) {
                                ok = (tk->pcr_mask & need) == need || tk->pcrlock || tk->pubkey;
                                snprintf(obs, sizeof(obs), "token %d pcr mask 0x%x pcrlock %s pubkey %s", tk->id,
                                         tk->pcr_mask, tk->pcrlock ? "yes" : "no", tk->pubkey ? "yes" : "no");
                                audit_evidence(res, d[i].path, obs, "PCR 7 (profile pcrs) or pcrlock/pubkey policy");
                        } else if (streq(what, "pin")) {
                                ok = tk->pin;
                                snprintf(obs, sizeof(obs), "token %d tpm2-pin %s", tk->id, tk->pin ? "true" : "false");
                                audit_evidence(res, d[i].path, obs, "tpm2-pin true");
                        } else {
                                ok = tk->srk;
                                snprintf(obs, sizeof(obs), "token %d tpm2_srk %s", tk->id, tk->srk ? "pinned" : "absent");
                                audit_evidence(res, d[i].path, obs, "tpm2_srk pinned");
                        }
                        if (!ok)
                                audit_fail(res, "%s: TPM2 token %d lacks %s binding", d[i].path, tk->id, what);
                }
                if (tpm == 0) {
                        audit_evidence(res, d[i].path, "no systemd-tpm2 token", "systemd-tpm2 token");
                        audit_fail(res, "%s has no TPM2 token", d[i].path);
                }
        }
        audit_pass(res, NULL, NULL, NULL);
}

static void check_swap(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *s = NULL;
        _cleanup_strv_ struct strv allow = {};
        char *save = NULL;
        size_t len, lineno = 0;

        if (param_strv(res, params, "allow", &allow) < 0 || read_text(ctx, res, "proc/swaps", &s, &len) < 0)
                return;
        /* The kernel always writes the header line: without it the table is truncated or not /proc/swaps. */
        if (strncmp(s, "Filename", 8) != 0 || !strchr(s, '\n'))
                return audit_error(res, -RINGIL_ETRUNCATED, "/proc/swaps", "no \"Filename\" header line");
        for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                _cleanup_free_ char *u = NULL;
                char *dev = line, *e;
                if (lineno++ == 0)
                        continue;   /* header */
                if (lineno > AUDIT_RECORDS_MAX)
                        return audit_error(res, -RINGIL_ETOOBIG, "/proc/swaps", "too many lines");
                e = dev + strcspn(dev, " \t");
                *e = '\0';
                if (strv_fnmatch(&allow, dev))
                        continue;
                if (strncmp(dev, "/dev/dm-", 8) == 0) {
                        _cleanup_free_ char *p = NULL;
                        if (asprintf(&p, "sys/block/%s/dm/uuid", dev + 5) < 0)
                                return audit_error(res, -ENOMEM, "/proc/swaps", "out of memory");
                        if (audit_fs_read(ctx->fs, p, 4096, &u, &len) >= 0 && strncmp(u, "CRYPT-", 6) == 0)
                                continue;
                }
                audit_evidence(res, "/proc/swaps", dev, "no swap, zram or dm-crypt");
                audit_fail(res, "unencrypted swap on %s", dev);
        }
        audit_pass(res, "/proc/swaps", "no unencrypted swap", "no swap, zram or dm-crypt");
}

/* Generic: merged systemd configuration (arg "file|Section") has params.expect {Key: [allowed]}. */
static void check_conf(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *arg = strdup(res->check->arg), *where = NULL;
        _cleanup_kvlist_ struct kvlist l = {};
        _cleanup_strv_ struct strv src = {};
        json_t *exp = json_object_get(params, "expect"), *v;
        const char *key;
        char *section;

        if (!arg)
                return;
        section = strchr(arg, '|');
        *section++ = '\0';
        if (!json_is_object(exp))
                return audit_error(res, -EINVAL, NULL, "profile param \"expect\" missing");
        if (conf_merge(ctx, res, arg, section, &l, &src) < 0)
                return;
        where = src.n ? strv_join(&src, "|") : strdup("(no configuration: built-in defaults)");
        json_object_foreach(exp, key, v) {
                _cleanup_strv_ struct strv allowed = {};
                _cleanup_free_ char *e = NULL;
                const char *got = kvlist_get(&l, key);
                json_t *wrap = json_pack("{sO}", "a", v);
                int r = param_strv(res, wrap, "a", &allowed);
                json_decref(wrap);
                if (r < 0)
                        return;
                e = strv_join(&allowed, "|");
                audit_evidence(res, where, got && *got ? got : "(default)", e);
                if (!got || !strv_contains(&allowed, got))
                        audit_fail(res, "%s %s=%s, expected %s", arg, key, got && *got ? got : "(default)", e);
        }
        audit_pass(res, NULL, NULL, NULL);
}

static void check_hibernation(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        const struct strv *cl;
        if (ctx_cmdline(ctx, res, &cl) < 0)
                return;
        for (size_t i = 0; i < cl->n; i++)
                if (strncmp(cl->v[i], "resume=", 7) == 0 || strncmp(cl->v[i], "resume_offset=", 14) == 0) {
                        audit_evidence(res, ctx->cmdline_path, cl->v[i], "no resume=");
                        audit_fail(res, "hibernation resume device configured: %s", cl->v[i]);
                }
        check_conf(ctx, res, params);
}

/* ============================== TPM, cold boot ============================== */

static void check_mor(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *d = NULL;
        size_t len;
        int r;
        (void) params;

        r = read_efivar(ctx, res, "MemoryOverwriteRequestControl", MOR_GUID, &path, &d, &len);
        if (r == -ENOENT) {
                audit_evidence(res, path, "absent", "bit 0 set");
                return audit_fail(res, "firmware does not offer MOR: RAM is not wiped after a reset");
        }
        if (r < 0)
                return;
        if (len < 1)
                return audit_error(res, -RINGIL_ETRUNCATED, path, "no data byte");
        audit_evidence(res, path, (d[0] & 1) ? "1" : "0", "1");
        if (!(d[0] & 1))
                audit_fail(res, "MemoryOverwriteRequest bit is clear");
        audit_pass(res, NULL, NULL, NULL);
}

/* MEM-004/005: a state directory (arg) holds no files, and the generic conf check passes. */
static void check_dir_empty_and_conf(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        struct strv v = {};
        const char *dir = param_str(params, "dir");
        int r;

        if (!dir)
                return audit_error(res, -EINVAL, NULL, "profile param \"dir\" missing");
        r = audit_fs_list(ctx->fs, dir, &v);
        if (r >= 0) {
                if (v.n > 0) {
                        audit_evidence(res, dir, v.v[0], "empty");
                        audit_fail(res, "%s holds %zu entries", dir, v.n);
                }
                strv_done(&v);
        } else if (r != -ENOENT)
                return audit_error(res, r, dir, "cannot list");
        check_conf(ctx, res, params);
}

static void check_core_pattern(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *s = NULL;
        if (ctx->live) {
                if (read_line(ctx, res, "proc/sys/kernel/core_pattern", &s) < 0)
                        return;
                audit_evidence(res, "/proc/sys/kernel/core_pattern", s, "|pipe (no file on disk)");
                if (s[0] != '|')
                        audit_fail(res, "core dumps are written to files (%s)", s);
        }
        check_dir_empty_and_conf(ctx, res, params);
}

/* ============================== Accounts ============================== */

static void check_root_locked(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv allowed = {};
        const struct pw_entry *e, *pw;
        if (param_strv(res, params, "allowed", &allowed) < 0 || ctx_accounts(ctx, res, true) < 0)
                return;
        /*
         * pam_unix reads the hash from shadow only when the passwd field is "x" or "##root"; anything
         * else in /etc/passwd is the hash itself. So that field must defer to shadow or be locked.
         */
        pw = pw_list_find(&ctx->passwd, "root");
        if (!pw)
                return audit_error(res, -ENOENT, "/etc/passwd", "no root entry");
        if (!streq(pw->passwd, "x") && !streq(pw->passwd, "##root")) {
                bool locked = strv_contains(&allowed, pw->passwd);
                audit_evidence(res, "/etc/passwd", locked ? pw->passwd : "(a password hash)", "x|!");
                if (!locked)
                        return audit_fail(res, "root has a usable password hash in /etc/passwd");
                return audit_pass(res, NULL, NULL, NULL);
        }
        e = pw_list_find(&ctx->shadow, "root");
        if (!e)
                return audit_error(res, -ENOENT, "/etc/shadow", "no root entry");
        audit_evidence(res, "/etc/shadow", strv_contains(&allowed, e->passwd) ? e->passwd : "(a password hash)", "!");
        if (!strv_contains(&allowed, e->passwd))
                audit_fail(res, "root has a usable password");
        audit_pass(res, NULL, NULL, NULL);
}

static void check_empty_passwords(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        (void) params;
        if (ctx_accounts(ctx, res, true) < 0)
                return;
        for (size_t i = 0; i < ctx->shadow.n; i++)
                if (ctx->shadow.v[i].passwd[0] == '\0') {
                        audit_evidence(res, "/etc/shadow", ctx->shadow.v[i].name, "no empty password");
                        audit_fail(res, "%s has an empty password", ctx->shadow.v[i].name);
                }
        for (size_t i = 0; i < ctx->passwd.n; i++)
                if (ctx->passwd.v[i].passwd[0] == '\0') {
                        audit_evidence(res, "/etc/passwd", ctx->passwd.v[i].name, "no empty password field");
                        audit_fail(res, "%s has an empty password field in passwd", ctx->passwd.v[i].name);
                }
        audit_pass(res, "/etc/shadow", "none empty", "no empty password");
}

static void check_uid0(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        size_t n0 = 0;
        (void) params;
        if (ctx_accounts(ctx, res, false) < 0)
                return;
        for (size_t i = 0; i < ctx->passwd.n; i++)
                if (ctx->passwd.v[i].uid == 0) {
                        n0++;
                        if (!streq(ctx->passwd.v[i].name, "root")) {
                                audit_evidence(res, "/etc/passwd", ctx->passwd.v[i].name, "only root has UID 0");
                                audit_fail(res, "%s has UID 0", ctx->passwd.v[i].name);
                        }
                }
        if (n0 != 1 && res->status != AUDIT_FAIL) {
                audit_evidence(res, "/etc/passwd", n0 ? "several root entries" : "no UID 0", "exactly one");
                audit_fail(res, "%zu UID 0 accounts", n0);
        }
        audit_pass(res, "/etc/passwd", "root only", "only root has UID 0");
}

static void check_login_shells(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv nologin = {};
        if (param_strv(res, params, "nologin", &nologin) < 0 || ctx_accounts(ctx, res, false) < 0)
                return;
        /* root is covered by ACC-001 (its password is locked); every other account must not log in. */
        for (size_t i = 0; i < ctx->passwd.n; i++) {
                const struct pw_entry *e = &ctx->passwd.v[i];
                if (e->uid == 0 && streq(e->name, "root"))
                        continue;
                if (!strv_fnmatch(&nologin, e->shell)) {
                        char obs[160];
                        snprintf(obs, sizeof(obs), "%s: %s", e->name, e->shell);
                        audit_evidence(res, "/etc/passwd", obs, "nologin shell");
                        audit_fail(res, "%s has login shell %s", e->name, e->shell);
                }
        }
        audit_pass(res, "/etc/passwd", "no login shells", "nologin shell");
}

/* Live: running processes whose argv[0] basename matches and that name one of the ttys. */
static void scan_processes(struct audit_ctx *ctx, struct audit_result *res, const char *exe, const struct strv *args) {
        struct strv v = {};
        int r = audit_fs_list(ctx->fs, "proc", &v);
        if (r < 0)
                return audit_error(res, r, "/proc", "cannot list processes");
        if (v.n > PROC_SCAN_MAX) {
                strv_done(&v);
                return audit_error(res, -RINGIL_ETOOBIG, "/proc", "more than %d entries: processes not all scanned",
                                   PROC_SCAN_MAX);
        }
        for (size_t i = 0; i < v.n; i++) {
                _cleanup_free_ char *p = NULL, *s = NULL;
                size_t len;
                const char *base;
                if (v.v[i][0] < '0' || v.v[i][0] > '9')
                        continue;
                if (asprintf(&p, "proc/%s/cmdline", v.v[i]) < 0) {
                        audit_error(res, -ENOMEM, "/proc", "out of memory");
                        break;
                }
                if (audit_fs_read(ctx->fs, p, 65536, &s, &len) < 0 || len == 0)
                        continue;   /* processes come and go */
                base = strrchr(s, '/') ? strrchr(s, '/') + 1 : s;
                if (!streq(base, exe))
                        continue;
                for (size_t off = strlen(s) + 1; off < len; off += strlen(s + off) + 1)
                        if (!args || strv_contains(args, s + off)) {
                                audit_evidence(res, p, s + off, "not running");
                                audit_fail(res, "%s runs on %s (pid %s)", exe, s + off, v.v[i]);
                                break;
                        }
        }
        strv_done(&v);
}

static void check_serial_getty(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv ttys = {};
        if (param_strv(res, params, "ttys", &ttys) < 0)
                return;
        for (size_t i = 0; i < ttys.n; i++) {
                _cleanup_free_ char *unit = NULL, *where = NULL;
                int r;
                if (asprintf(&unit, "serial-getty@%s.service", ttys.v[i]) < 0)
                        return;
                r = unit_enabled(ctx, unit, &where);
                if (r < 0)
                        return audit_error(res, r, unit, "cannot look up unit");
                if (r > 0) {
                        audit_evidence(res, where, "enabled", "masked or not enabled");
                        audit_fail(res, "%s is enabled", unit);
                }
        }
        if (ctx->live)
                scan_processes(ctx, res, "agetty", &ttys);
        audit_pass(res, "/etc/systemd/system", "no serial getty", "masked or not enabled");
}

static void check_sulogin_force(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv files = {}, dirs = {};
        const char *needle = "SYSTEMD_SULOGIN_FORCE";

        if (param_strv(res, params, "files", &files) < 0 || param_strv(res, params, "dirs", &dirs) < 0)
                return;
        for (size_t i = 0; i < dirs.n; i++) {
                struct strv v = {};
                int r = audit_fs_list(ctx->fs, dirs.v[i], &v);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0)
                        return audit_error(res, r, dirs.v[i], "cannot list");
                for (size_t j = 0; j < v.n; j++) {
                        char *p;
                        if (asprintf(&p, "%s/%s", dirs.v[i], v.v[j]) < 0)
                                break;
                        if (strv_push(&files, p) < 0) {
                                free(p);
                                break;
                        }
                        free(p);
                }
                strv_done(&v);
        }
        for (size_t i = 0; i < files.n; i++) {
                _cleanup_free_ char *s = NULL;
                size_t len;
                int r = audit_fs_read(ctx->fs, files.v[i], AUDIT_TEXT_MAX, &s, &len);
                if (r == -ENOENT || r == -ENOTDIR || r == -EBADFD)
                        continue;
                if (r < 0)
                        return audit_error(res, r, files.v[i], "cannot read");
                if (memmem(s, len, needle, strlen(needle))) {
                        audit_evidence(res, files.v[i], needle, "absent");
                        audit_fail(res, "%s sets %s: emergency shell without a password", files.v[i], needle);
                }
        }
        audit_pass(res, "/etc/systemd", "not set", "no SYSTEMD_SULOGIN_FORCE");
}

static void check_unit_not_enabled(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv units = {};
        if (param_strv(res, params, "units", &units) < 0)
                return;
        for (size_t i = 0; i < units.n; i++) {
                _cleanup_free_ char *where = NULL;
                int r = unit_enabled(ctx, units.v[i], &where);
                if (r < 0)
                        return audit_error(res, r, units.v[i], "cannot look up unit");
                if (r > 0) {
                        audit_evidence(res, where, "enabled", "not enabled");
                        audit_fail(res, "%s is enabled", units.v[i]);
                }
        }
        audit_pass(res, "/etc/systemd/system", "not enabled", "not enabled");
}

/* ============================== Network ============================== */

static int load_sockets(struct audit_ctx *ctx, struct audit_result *res, const char *file, bool optional,
                        struct net_list *ret) {
        _cleanup_free_ char *s = NULL;
        size_t len;
        int r = audit_fs_read(ctx->fs, file, AUDIT_NET_MAX, &s, &len);
        /* tcp6/udp6 vanish when IPv6 is disabled: that is an answer, not a failure to check. */
        if (r == -ENOENT && optional)
                return 0;
        if (r >= 0)
                r = audit_parse_proc_net(s, len, ret);
        if (r < 0)
                audit_error(res, r, file, "cannot read socket table");
        return r;
}

static bool json_int_in(json_t *arr, unsigned v) {
        size_t i;
        json_t *x;
        json_array_foreach(arr, i, x)
                if (json_is_integer(x) && json_integer_value(x) == (json_int_t) v)
                        return true;
        return false;
}

/* params: tcp/udp allowlists (null = anything not excluded fails? no: absent list = check nothing). */
static void check_listeners(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        static const struct {
                const char *file;
                const char *proto;
                uint8_t state;
                bool optional;
        } tables[] = {
                { "proc/net/tcp", "tcp", 0x0A, false },
                { "proc/net/tcp6", "tcp", 0x0A, true },
                { "proc/net/udp", "udp", 0x07, false },
                { "proc/net/udp6", "udp", 0x07, true },
        };
        json_t *exclude = json_object_get(params, "exclude");
        bool forbid_mode = json_is_array(json_object_get(params, "forbidden"));

        for (size_t t = 0; t < ELEMENTSOF(tables); t++) {
                struct net_list l = {};
                json_t *allow = json_object_get(params, tables[t].proto);
                if (!forbid_mode && !json_is_array(allow))
                        continue;
                if (forbid_mode && !streq(tables[t].proto, "tcp"))
                        continue;
                if (load_sockets(ctx, res, tables[t].file, tables[t].optional, &l) < 0)
                        return;
                for (size_t i = 0; i < l.n; i++) {
                        char obs[64], path[32];
                        bool bad;
                        if (l.v[i].state != tables[t].state)
                                continue;
                        if (forbid_mode)
                                bad = json_int_in(json_object_get(params, "forbidden"), l.v[i].port);
                        else
                                bad = !json_int_in(allow, l.v[i].port) && !json_int_in(exclude, l.v[i].port);
                        if (!bad)
                                continue;
                        snprintf(obs, sizeof(obs), "%s port %u listening", tables[t].proto, l.v[i].port);
                        snprintf(path, sizeof(path), "/%s", tables[t].file);
                        audit_evidence(res, path, obs, forbid_mode ? "not listening" : "in the profile allowlist");
                        audit_fail(res, "%s port %u is listening", tables[t].proto, l.v[i].port);
                }
                net_list_free(&l);
        }
        audit_pass(res, "/proc/net/tcp", "no unexpected listener", "profile allowlist");
}

/* ============================== Tunnel ============================== */

/*
 * The host of "https://HOST[:PORT][/…]" as an address: 4 or 6 with addr set when HOST is an IPv4 or a
 * bracketed IPv6 literal, 0 when it is a name. host (hostcap bytes) gets HOST for messages.
 */
static int url_host_address(const char *url, uint8_t addr[static 16], char *host, size_t hostcap) {
        const char *h, *e;
        size_t n;

        if (strncmp(url, "https://", 8) != 0)
                return -EINVAL;
        h = url + 8;
        if (*h == '[') {
                e = strchr(h, ']');
                if (!e)
                        return -EINVAL;
                h++;
        } else
                e = h + strcspn(h, ":/");
        n = (size_t) (e - h);
        if (n == 0 || n >= hostcap)
                return -EINVAL;
        memcpy(host, h, n);
        host[n] = '\0';
        memset(addr, 0, 16);
        if (inet_pton(AF_INET, host, addr) == 1)
                return 4;
        if (inet_pton(AF_INET6, host, addr) == 1)
                return 6;
        return h[-1] == '[' ? -EINVAL : 0;
}

/* The `server` of the agent's flat "key = value" configuration (docs/fleet.md). */
static int agent_server(struct audit_ctx *ctx, struct audit_result *res, const char *path, char **ret) {
        _cleanup_free_ char *s = NULL;
        char *save = NULL, *found = NULL;
        size_t len;
        int r = read_text(ctx, res, path, &s, &len);

        if (r < 0)
                return r;
        for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *t = line + strspn(line, " \t"), *eq;
                if (strncmp(t, "server", 6) != 0)
                        continue;
                eq = t + 6 + strspn(t + 6, " \t");
                if (*eq != '=')
                        continue;
                eq++;
                eq += strspn(eq, " \t");
                eq[strcspn(eq, " \t\r")] = '\0';
                free(found);
                found = strdup(eq);   /* the last assignment wins, as the agent reads it */
                if (!found) {
                        audit_error(res, -ENOMEM, path, "out of memory");
                        return -ENOMEM;
                }
        }
        if (!found) {
                audit_error(res, -ENOENT, path, "no `server =' in the agent configuration");
                return -ENOENT;
        }
        *ret = found;
        return 0;
}

/*
 * TUN-001: the agent reaches the fleet server only through the tunnel. The agent's server is an address
 * literal (a name could resolve anywhere); its unit may use only loopback and the tunnel interface
 * (RestrictNetworkInterfaces=, drop-ins included); live, the kernel routes the server's address into
 * that interface and the interface is a WireGuard device. params: interface, agent_config, unit.
 */
static void check_tunnel_route(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        const char *ifname = param_str(params, "interface"), *conf = param_str(params, "agent_config"),
                   *unit = param_str(params, "unit");
        _cleanup_free_ char *server = NULL, *unitfile = NULL, *allowed = NULL;
        _cleanup_kvlist_ struct kvlist kv = {};
        _cleanup_strv_ struct strv sources = {}, names = {};
        bool restricted = false, inverted = false;
        uint8_t addr[16];
        char host[64];
        int family, r;

        if (!ifname || !conf || !unit)
                return audit_error(res, -EINVAL, NULL, "profile params \"interface\", \"agent_config\" and \"unit\" are required");
        if (agent_server(ctx, res, conf, &server) < 0)
                return;
        family = url_host_address(server, addr, host, sizeof(host));
        if (family < 0)
                return audit_error(res, -RINGIL_EMALFORMED, conf, "server `%.80s' is not an https:// URL", server);
        if (family == 0) {
                audit_evidence(res, conf, server, "an address inside the tunnel");
                return audit_fail(res, "the agent's server `%s' is a host name: where it resolves is not bound to the tunnel", host);
        }
        audit_evidence(res, conf, server, "an address inside the tunnel");

        /* the unit's interface allowlist: assignments accumulate, an empty one resets, '~' denies */
        if (asprintf(&unitfile, "systemd/system/%s", unit) < 0)
                return audit_error(res, -ENOMEM, unit, "out of memory");
        r = conf_merge(ctx, res, unitfile, "Service", &kv, &sources);
        if (r < 0)
                return;
        if (sources.n == 0) {
                audit_evidence(res, "/etc/systemd/system", "no unit", unit);
                return audit_fail(res, "the agent unit %s is not installed", unit);
        }
        for (size_t i = 0; i < kv.n; i++) {
                char *save = NULL, *v;
                _cleanup_free_ char *copy = NULL;
                if (!streq(kv.v[i].key, "RestrictNetworkInterfaces"))
                        continue;
                if (!*kv.v[i].value) {
                        strv_done(&names);
                        restricted = inverted = false;
                        continue;
                }
                copy = strdup(kv.v[i].value);
                if (!copy)
                        return audit_error(res, -ENOMEM, unit, "out of memory");
                v = copy;
                if (*v == '~') {
                        inverted = true;
                        v++;
                }
                restricted = true;
                for (char *w = strtok_r(v, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                        if (!strv_contains(&names, w) && strv_push(&names, w) < 0)
                                return audit_error(res, -ENOMEM, unit, "out of memory");
        }
        allowed = strv_join(&names, "|");
        if (!allowed)
                return audit_error(res, -ENOMEM, unit, "out of memory");
        audit_evidence(res, sources.v[0], restricted ? allowed : "(unrestricted)", "RestrictNetworkInterfaces=lo <interface>");
        if (!restricted || inverted)
                audit_fail(res, "%s may use every network interface%s", unit, inverted ? " but a deny list" : "");
        else if (!strv_contains(&names, ifname))
                audit_fail(res, "%s may not use the tunnel interface %s", unit, ifname);
        else
                for (size_t i = 0; i < names.n; i++)
                        if (!streq(names.v[i], "lo") && !streq(names.v[i], ifname))
                                audit_fail(res, "%s may also use interface %s", unit, names.v[i]);

        if (ctx->live) {
                const char *table = family == 4 ? "proc/net/route" : "proc/net/ipv6_route";
                _cleanup_free_ char *t = NULL, *ue = NULL, *uevent = NULL;
                struct audit_route route;
                size_t len;

                r = audit_fs_read(ctx->fs, table, AUDIT_NET_MAX, &t, &len);
                if (r >= 0)
                        r = audit_route_lookup(t, len, family, addr, &route);
                if (r == -ENOENT) {
                        audit_evidence(res, table, "no route", ifname);
                        return audit_fail(res, "no route to %s", host);
                }
                if (r < 0)
                        return audit_error(res, r, table, "cannot read the routing table");
                audit_evidence(res, table, route.iface, ifname);
                if (!streq(route.iface, ifname))
                        return audit_fail(res, "%s is routed through %s, not the tunnel %s", host, route.iface, ifname);
                if (asprintf(&uevent, "sys/class/net/%s/uevent", ifname) < 0)
                        return audit_error(res, -ENOMEM, ifname, "out of memory");
                r = audit_fs_read(ctx->fs, uevent, AUDIT_TEXT_MAX, &ue, &len);
                if (r < 0)
                        return audit_error(res, r, uevent, "cannot read the interface");
                if (!strstr(ue, "DEVTYPE=wireguard\n")) {
                        audit_evidence(res, uevent, "not DEVTYPE=wireguard", "DEVTYPE=wireguard");
                        return audit_fail(res, "%s is not a WireGuard interface", ifname);
                }
        } else
                audit_note(res, "offline: the route is not observable; the unit's interface allowlist is");
        audit_pass(res, NULL, NULL, NULL);
}

/*
 * TUN-002: the drone's WireGuard private key is a root-only regular file (not a link), in a directory
 * only root may change, and not in the Nix store or on the unencrypted ESP. params: key, forbidden (path
 * prefixes the resolved key must not be under).
 */
static void check_tunnel_key(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        const char *key = param_str(params, "key");
        _cleanup_strv_ struct strv forbidden = {};
        _cleanup_free_ char *real = NULL, *dir = NULL;
        struct stat st;
        char obs[64];
        int r;

        if (!key)
                return audit_error(res, -EINVAL, NULL, "profile param \"key\" missing");
        if (param_strv(res, params, "forbidden", &forbidden) < 0)
                return;
        r = audit_fs_lstat(ctx->fs, key, &st);
        if (r == -ENOENT) {
                audit_evidence(res, key, "absent", "root-only key file");
                return audit_fail(res, "no tunnel key at %s", key);
        }
        if (r < 0)
                return audit_error(res, r, key, "cannot stat");
        if (S_ISLNK(st.st_mode)) {
                audit_evidence(res, key, "symlink", "regular file");
                return audit_fail(res, "%s is a symlink", key);
        }
        if (!S_ISREG(st.st_mode)) {
                audit_evidence(res, key, "not a regular file", "regular file");
                return audit_fail(res, "%s is not a regular file", key);
        }
        snprintf(obs, sizeof(obs), "uid %u mode %04o", (unsigned) st.st_uid, st.st_mode & 07777);
        audit_evidence(res, key, obs, "uid 0 mode 0400|0600");
        if (st.st_uid != 0 || (st.st_mode & 077))
                audit_fail(res, "tunnel key %s is readable or writable by others", key);
        r = audit_fs_resolve(ctx->fs, key, &real);
        if (r < 0)
                return audit_error(res, r, key, "cannot resolve");
        for (size_t i = 0; i < forbidden.n; i++)
                if (strncmp(real, forbidden.v[i], strlen(forbidden.v[i])) == 0) {
                        audit_evidence(res, real, "resolved path", "not under a forbidden prefix");
                        audit_fail(res, "tunnel key %s is under %s", real, forbidden.v[i]);
                }
        dir = strdup(real);
        if (!dir)
                return audit_error(res, -ENOMEM, key, "out of memory");
        *strrchr(dir, '/') = '\0';
        r = audit_fs_stat(ctx->fs, *dir ? dir : "/", &st);
        if (r < 0)
                return audit_error(res, r, dir, "cannot stat");
        if (st.st_uid != 0 || (st.st_mode & 022)) {
                snprintf(obs, sizeof(obs), "uid %u mode %04o", (unsigned) st.st_uid, st.st_mode & 07777);
                audit_evidence(res, dir, obs, "uid 0, not group/other writable");
                audit_fail(res, "the key's directory %s can be changed by others", dir);
        }
        audit_pass(res, NULL, NULL, NULL);
}

/* ============================== Logs ============================== */

static void check_runtime_max_use(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_kvlist_ struct kvlist l = {};
        _cleanup_strv_ struct strv src = {};
        _cleanup_free_ char *where = NULL;
        const char *want = param_str(params, "max"), *got;
        uint64_t w, g;

        if (!want || parse_size(want, &w) < 0)
                return audit_error(res, -EINVAL, NULL, "profile param \"max\" missing or not a size");
        if (conf_merge(ctx, res, "systemd/journald.conf", "Journal", &l, &src) < 0)
                return;
        where = src.n ? strv_join(&src, "|") : strdup("(no configuration)");
        got = kvlist_get(&l, "RuntimeMaxUse");
        audit_evidence(res, where, got && *got ? got : "(default: 10% of /run)", want);
        if (!got || !*got || parse_size(got, &g) < 0 || g != w)
                audit_fail(res, "journald RuntimeMaxUse=%s, expected %s", got && *got ? got : "(default)", want);
        audit_pass(res, NULL, NULL, NULL);
}

#define FIND_FILES_MAX_DEPTH 4

/* Files with content under dir (recursing a few levels; deeper directories are errors), skipping
 * params.skip names at the top. */
static int find_files(struct audit_ctx *ctx, struct audit_result *res, const char *dir, const struct strv *skip,
                      unsigned depth) {
        struct strv v = {};
        int r = audit_fs_list(ctx->fs, dir, &v);
        if (r == -ENOENT || r == -ENOTDIR)
                return 0;
        if (r < 0) {
                audit_error(res, r, dir, "cannot list");
                return r;
        }
        for (size_t i = 0; i < v.n; i++) {
                _cleanup_free_ char *p = NULL;
                struct stat st;
                if (depth == 0 && strv_contains(skip, v.v[i]))
                        continue;
                if (asprintf(&p, "%s/%s", dir, v.v[i]) < 0) {
                        audit_error(res, -ENOMEM, dir, "out of memory");
                        break;
                }
                r = audit_fs_lstat(ctx->fs, p, &st);
                if (r < 0) {
                        audit_error(res, r, p, "cannot stat");
                        continue;
                }
                if (S_ISDIR(st.st_mode) && depth < FIND_FILES_MAX_DEPTH)
                        (void) find_files(ctx, res, p, skip, depth + 1);
                else if (S_ISDIR(st.st_mode))
                        /* Not descended, so not known to be free of logs. */
                        audit_error(res, -RINGIL_ETOOBIG, p, "directory nested deeper than %d levels not checked",
                                    FIND_FILES_MAX_DEPTH);
                else if (S_ISREG(st.st_mode) && st.st_size > 0) {
                        audit_evidence(res, p, "file with content", "no logs on disk");
                        audit_fail(res, "log data on disk: %s", p);
                }
        }
        strv_done(&v);
        return 0;
}

static void check_no_disk_logs(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv dirs = {}, skip = {};
        if (param_strv(res, params, "dirs", &dirs) < 0 || param_strv(res, params, "skip", &skip) < 0)
                return;
        for (size_t i = 0; i < dirs.n; i++)
                if (find_files(ctx, res, dirs.v[i], &skip, 0) < 0)
                        return;
        audit_pass(res, dirs.n ? dirs.v[0] : "/var/log", "no files with content", "no logs on disk");
}

static void check_journal_dir(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        struct strv v = {};
        int r;
        (void) params;
        r = audit_fs_list(ctx->fs, "var/log/journal", &v);
        if (r == -ENOENT || r == -ENOTDIR)
                return audit_pass(res, "/var/log/journal", "absent", "absent");
        if (r < 0)
                return audit_error(res, r, "/var/log/journal", "cannot list");
        /* Its mere existence makes journald with Storage=auto persist: fail even when empty. */
        audit_evidence(res, "/var/log/journal", v.n ? "present, not empty" : "present", "absent");
        strv_done(&v);
        audit_fail(res, "/var/log/journal exists");
}

/* ============================== NixOS ============================== */

static void check_booted_current(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *b = NULL, *c = NULL;
        int r;
        (void) params;
        r = audit_fs_resolve(ctx->fs, "run/booted-system", &b);
        if (r < 0)
                return audit_error(res, r, "/run/booted-system", "cannot resolve");
        r = audit_fs_resolve(ctx->fs, "run/current-system", &c);
        if (r < 0)
                return audit_error(res, r, "/run/current-system", "cannot resolve");
        audit_evidence(res, "/run/current-system", c, b);
        if (!streq(b, c))
                audit_fail(res, "running system %s differs from booted %s", c, b);
        audit_pass(res, NULL, NULL, NULL);
}

static void check_etc_managed(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_strv_ struct strv paths = {};
        const char *store = param_str(params, "store");
        if (!store)
                return audit_error(res, -EINVAL, NULL, "profile param \"store\" missing");
        if (param_strv(res, params, "paths", &paths) < 0)
                return;
        for (size_t i = 0; i < paths.n; i++) {
                _cleanup_free_ char *t = NULL;
                int r = audit_fs_resolve(ctx->fs, paths.v[i], &t);
                if (r < 0) {
                        audit_error(res, r, paths.v[i], "cannot resolve");
                        continue;
                }
                if (strncmp(t, store, strlen(store)) != 0 || t[strlen(store)] != '/') {
                        audit_evidence(res, paths.v[i], t, "inside the Nix store");
                        audit_fail(res, "%s is not managed by the system closure (%s)", paths.v[i], t);
                }
        }
        audit_pass(res, "/etc", "all resolve into the store", store);
}

static void check_etc_static(struct audit_ctx *ctx, struct audit_result *res, json_t *params) {
        _cleanup_free_ char *a = NULL, *b = NULL, *sys = NULL;
        int r;
        (void) params;
        if (asprintf(&sys, "%s/etc", system_dir(ctx)) < 0)
                return;
        r = audit_fs_resolve(ctx->fs, "etc/static", &a);
        if (r < 0)
                return audit_error(res, r, "/etc/static", "cannot resolve");
        r = audit_fs_resolve(ctx->fs, sys, &b);
        if (r < 0)
                return audit_error(res, r, sys, "cannot resolve");
        audit_evidence(res, "/etc/static", a, b);
        if (!streq(a, b))
                audit_fail(res, "/etc/static is %s, not the system's %s", a, b);
        audit_pass(res, NULL, NULL, NULL);
}

/* ============================== The catalogue ============================== */

#define T1 "T1 UEFI recovery"
#define T2 "T2 cold boot"
#define T3 "T3 TPM sniffing"
#define CHECK(i, a, t, sv, sc, sev, fn, ar, rem) \
        { .id = i, .area = a, .title = t, .serves = sv, .scope = sc, .severity = sev, .run = fn, .arg = ar, .remediation = rem }
#define LIVE AUDIT_SCOPE_LIVE
#define BOTH AUDIT_SCOPE_BOTH
#define CRIT AUDIT_SEV_CRITICAL
#define HIGH AUDIT_SEV_HIGH
#define MED AUDIT_SEV_MEDIUM
#define LOW AUDIT_SEV_LOW

const struct audit_check audit_checks[] = {
        CHECK("SB-001", "secureboot", "Booted via UEFI", "seed: boot.loader.efi / lanzaboote", LIVE, HIGH, check_uefi, NULL,
              "Boot the drone in UEFI mode; legacy boot has no Secure Boot."),
        CHECK("SB-002", "secureboot", "Secure Boot enforcing (SecureBoot=1)", T1, LIVE, CRIT, check_efi_bool, "SecureBoot",
              "Enable Secure Boot in the firmware setup after enrolling the fleet keys; set a supervisor password."),
        CHECK("SB-003", "secureboot", "Not in setup mode (SetupMode=0)", T1, LIVE, CRIT, check_efi_bool, "SetupMode",
              "Enroll a PK (ringil keys enroll / sbctl enroll-keys): setup mode lets anyone replace the keys."),
        CHECK("SB-004", "secureboot", "Secure Boot mode is user or deployed (AuditMode=0)", T1, LIVE, HIGH, check_sb_mode, NULL,
              "Leave audit mode in the firmware; with require_deployed, switch to deployed mode."),
        CHECK("SB-005", "secureboot", "PK is the fleet's platform key", T1, LIVE, CRIT, check_keylist,
              "PK:8be4df61-93ca-11d2-aa0d-00e098032b8c:PK",
              "Enroll the fleet PK from the pkiBundle (owner = bundle GUID); remove vendor PKs."),
        CHECK("SB-006", "secureboot", "KEK holds only the fleet's KEK", T1, LIVE, HIGH, check_keylist,
              "KEK:8be4df61-93ca-11d2-aa0d-00e098032b8c:KEK",
              "Re-enroll KEK from the pkiBundle; remove foreign KEKs (or list them in extra_sha256)."),
        CHECK("SB-007", "secureboot", "db holds only the fleet's signing key", T1, LIVE, HIGH, check_keylist,
              "db:d719b2cb-3d3a-4596-a3bc-dad00e67656f:db",
              "Re-enroll db from the pkiBundle; remove Microsoft/vendor certificates unless waived (option ROMs)."),
        CHECK("SB-008", "secureboot", "dbx revocation list present", T1, LIVE, MED, check_dbx, NULL,
              "Enroll the current UEFI revocation list (dbx)."),
        CHECK("SB-009", "secureboot", "pkiBundle private keys root-only", T1, BOTH, HIGH, check_bundle_perms, NULL,
              "chown -R root:root the bundle; chmod 0700 directories and 0400 *.key."),
        CHECK("SB-010", "secureboot", "PK/KEK private keys not on the drone", T1, BOTH, MED, check_paths_absent, NULL,
              "Keep PK.key and KEK.key offline; the drone only needs db.key to sign its generations."),
        CHECK("SB-011", "secureboot", "Booted through the lanzaboote stub (locked command line)", "seed: boot.lanzaboote", LIVE, HIGH,
              check_stubinfo, NULL, "Enable boot.lanzaboote so the kernel command line is inside the signed stub."),
        CHECK("BL-001", "bootloader", "Boot menu editor disabled", "seed: boot.loader.systemd-boot.editor = false", BOTH, HIGH,
              check_loader_key, "editor", "Set boot.loader.systemd-boot.editor = false (loader.conf: editor no)."),
        CHECK("BL-002", "bootloader", "Boot menu timeout 0", "seed: boot.loader.timeout = 0", BOTH, MED, check_loader_key, "timeout",
              "Set boot.loader.timeout = 0 (loader.conf: timeout 0)."),
        CHECK("BL-003", "bootloader", "No reboot-into-firmware entry", T1, BOTH, MED, check_loader_key, "auto-firmware",
              "Add 'auto-firmware no' to loader.conf (lanzaboote settings)."),
        CHECK("BL-004", "bootloader", "No EFI variable overrides of loader.conf", "seed: boot.loader.timeout = 0", LIVE, MED,
              check_loader_efivars, NULL, "Delete LoaderConfigTimeout*/LoaderEntryOneShot/LoaderEntryDefault (bootctl set-timeout '')."),
        CHECK("KC-001", "cmdline", "Quiet boot", "seed: boot.kernelParams quiet", BOTH, LOW, check_cmdline_require, NULL,
              "Add \"quiet\" to boot.kernelParams."),
        CHECK("KC-002", "cmdline", "Kernel log level", "seed: boot.kernelParams loglevel=0", BOTH, LOW, check_loglevel, NULL,
              "Add \"loglevel=0\" to boot.kernelParams."),
        CHECK("KC-003", "cmdline", "No serial console", "seed: console=tty0 / serial-getty@ttyS0 disabled", BOTH, HIGH,
              check_cmdline_console, NULL, "Use console=tty0 only; remove console=ttyS*/ttyTCU*/ttyAMA*/hvc*."),
        CHECK("KC-004", "cmdline", "No shell or debug parameters", "seed: boot.initrd.systemd.emergencyAccess = false", BOTH, CRIT,
              check_cmdline_forbidden, NULL, "Remove init=, rd.shell, rd.break, boot.shell_on_fail, debug shells, SYSTEMD_SULOGIN_FORCE."),
        CHECK("KC-005", "cmdline", "Console printk level", "seed: boot.kernelParams loglevel=0", LIVE, LOW, check_value_in,
              "proc/sys/kernel/printk", "Set loglevel=0 (or boot.consoleLogLevel = 0)."),
        CHECK("KH-001", "kernel", "Kernel lockdown active", T1 ", " T2, LIVE, HIGH, check_value_in, "sys/kernel/security/lockdown",
              "Boot with lockdown=integrity (Secure Boot with a lockdown-enabled kernel enables it)."),
        CHECK("KH-002", "kernel", "kptr_restrict", "hardening baseline (ANSSI R9)", LIVE, MED, check_value_in,
              "proc/sys/kernel/kptr_restrict", "boot.kernel.sysctl.\"kernel.kptr_restrict\" = 2."),
        CHECK("KH-003", "kernel", "dmesg_restrict", "seed: nothing to learn from a captured drone", LIVE, MED, check_value_in,
              "proc/sys/kernel/dmesg_restrict", "boot.kernel.sysctl.\"kernel.dmesg_restrict\" = 1."),
        CHECK("KH-004", "kernel", "Unprivileged BPF disabled", "hardening baseline (ANSSI R9)", LIVE, MED, check_value_in,
              "proc/sys/kernel/unprivileged_bpf_disabled", "boot.kernel.sysctl.\"kernel.unprivileged_bpf_disabled\" = 1."),
        CHECK("KH-005", "kernel", "kexec disabled", T1 ", " T2, LIVE, HIGH, check_value_in, "proc/sys/kernel/kexec_load_disabled",
              "boot.kernel.sysctl.\"kernel.kexec_load_disabled\" = 1 (kexec would bypass Secure Boot and keep RAM)."),
        CHECK("KH-006", "kernel", "ptrace restricted", "hardening baseline (ANSSI R11)", LIVE, MED, check_value_in,
              "proc/sys/kernel/yama/ptrace_scope", "boot.kernel.sysctl.\"kernel.yama.ptrace_scope\" = 2."),
        CHECK("KH-007", "kernel", "Magic SysRq disabled", T2, LIVE, MED, check_value_in, "proc/sys/kernel/sysrq",
              "boot.kernel.sysctl.\"kernel.sysrq\" = 0."),
        CHECK("KH-008", "kernel", "sysctl baseline", "hardening baseline (Lynis KRNL-6000)", LIVE, MED, check_sysctl_map, NULL,
              "Set the listed sysctls in boot.kernel.sysctl."),
        CHECK("CR-001", "disk", "Data file systems on LUKS2", "seed: LUKS on the NVMe (disko)", LIVE, CRIT, check_data_on_luks, NULL,
              "Put every ZFS vdev and data file system inside a LUKS2 container (disko type = \"luks\")."),
        CHECK("CR-002", "disk", "Encrypted devices are LUKS2", "seed: LUKS on the NVMe (disko)", LIVE, HIGH, check_luks_version, NULL,
              "cryptsetup convert --type luks2 (LUKS1 has no tokens and weak PBKDF)."),
        CHECK("CR-003", "disk", "LUKS2 cipher, KDF and keyslot policy", "seed: LUKS on the NVMe (disko)", LIVE, HIGH,
              check_luks_policy, NULL, "Re-encrypt with aes-xts-plain64/512-bit keys; argon2id passphrases; remove stray keyslots."),
        CHECK("CR-004", "disk", "TPM2 unlock bound to Secure Boot state (PCR 7 or pcrlock)", T1, LIVE, HIGH, check_tpm_token, "pcr",
              "systemd-cryptenroll --tpm2-device=auto --tpm2-pcrs=7 (or --tpm2-pcrlock)."),
        CHECK("CR-005", "disk", "TPM2 unlock needs a PIN", T3 ", " T2, LIVE, HIGH, check_tpm_token, "pin",
              "systemd-cryptenroll --tpm2-with-pin=yes."),
        CHECK("CR-006", "disk", "TPM2 storage root key pinned", T3, LIVE, HIGH, check_tpm_token, "srk",
              "Re-enroll with systemd >= 255 so the token pins tpm2_srk."),
        CHECK("CR-007", "disk", "No unencrypted swap", T2, LIVE, HIGH, check_swap, NULL,
              "Disable swap, or use zram / a dm-crypt swap with a random key."),
        CHECK("CR-008", "disk", "No hibernation", T2, BOTH, HIGH, check_hibernation, "systemd/sleep.conf|Sleep",
              "Remove resume=; systemd.sleep.settings.Sleep.AllowHibernation = \"no\"."),
        CHECK("TPM-001", "tpm", "TPM 2.0 present", T3, LIVE, HIGH, check_value_in, "sys/class/tpm/tpm0/tpm_version_major",
              "Enable the (f)TPM (Jetson Orin: OP-TEE fTPM with early supplicant)."),
        CHECK("MEM-001", "coldboot", "Memory overwrite request (MOR) set", T2, LIVE, HIGH, check_mor, NULL,
              "Build the kernel with CONFIG_RESET_ATTACK_MITIGATION=y so the EFI stub sets MOR each boot."),
        CHECK("MEM-002", "coldboot", "Freed memory is zeroed (init_on_free=1)", T2, BOTH, MED, check_cmdline_require, NULL,
              "Add init_on_free=1 to boot.kernelParams."),
        CHECK("MEM-003", "coldboot", "No suspend to RAM", T2, BOTH, MED, check_conf, "systemd/sleep.conf|Sleep",
              "systemd.sleep.settings.Sleep: AllowSuspend, AllowHybridSleep, AllowSuspendThenHibernate = \"no\"."),
        CHECK("MEM-004", "coldboot", "No core dumps on disk", T2 ", seed: nothing stored on disk", BOTH, MED, check_core_pattern,
              "systemd/coredump.conf|Coredump", "systemd.coredump.settings.Coredump.Storage = \"none\"; empty /var/lib/systemd/coredump."),
        CHECK("MEM-005", "coldboot", "No pstore archive on disk", T2 ", seed: nothing stored on disk", BOTH, MED,
              check_dir_empty_and_conf, "systemd/pstore.conf|PStore", "pstore.conf Storage=none; empty /var/lib/systemd/pstore."),
        CHECK("ACC-001", "accounts", "root password locked", "seed: users.users.root.hashedPassword = \"!\"", BOTH, CRIT,
              check_root_locked, NULL, "users.users.root.hashedPassword = lib.mkForce \"!\"; users.mutableUsers = false."),
        CHECK("ACC-002", "accounts", "No empty passwords", "seed: users.users.root.hashedPassword = \"!\"", BOTH, CRIT,
              check_empty_passwords, NULL, "Lock every account (hashedPassword = \"!\")."),
        CHECK("ACC-003", "accounts", "Only root has UID 0", "seed: no one can access the shell", BOTH, CRIT, check_uid0, NULL,
              "Remove extra UID 0 accounts."),
        CHECK("ACC-004", "accounts", "No login shells", "seed: no one can access the shell", BOTH, HIGH, check_login_shells, NULL,
              "Give every non-root account a nologin shell (no normal users on a drone)."),
        CHECK("ACC-005", "accounts", "No serial getty (ttyS0, ttyTCU0)", "seed: systemd.services.\"serial-getty@ttyS0\".enable = false",
              BOTH, HIGH, check_serial_getty, NULL, "systemd.services.\"serial-getty@ttyS0\".enable = false; same for ttyTCU0 on Jetson."),
        CHECK("ACC-006", "accounts", "No passwordless emergency shell (SYSTEMD_SULOGIN_FORCE)",
              "seed: boot.initrd.systemd.emergencyAccess = false", BOTH, CRIT, check_sulogin_force, NULL,
              "Remove SYSTEMD_SULOGIN_FORCE from unit environments and system.conf."),
        CHECK("ACC-007", "accounts", "Debug shell not enabled", "seed: no one can access the shell", BOTH, CRIT,
              check_unit_not_enabled, NULL, "Do not enable debug-shell.service (boot.debug1, systemd.debug_shell)."),
        CHECK("SVC-001", "services", "No SSH service unit", "seed: services.openssh.enable = false", BOTH, CRIT, check_paths_absent,
              NULL, "services.openssh.enable = false."),
        CHECK("SVC-002", "services", "No SSH server binary or configuration", "seed: services.openssh.enable = false", BOTH, HIGH,
              check_paths_absent, NULL, "Remove openssh from environment.systemPackages; services.openssh.enable = false."),
        CHECK("SVC-003", "services", "Nothing listening on the SSH port", "seed: services.openssh.enable = false", LIVE, CRIT,
              check_listeners, NULL, "Stop whatever listens on port 22."),
        CHECK("SVC-004", "services", "udisks2 absent", "seed: services.udisks2.enable = false", BOTH, MED, check_paths_absent, NULL,
              "services.udisks2.enable = false."),
        CHECK("SVC-005", "services", "X server absent", "seed: services.xserver.enable = false", BOTH, MED, check_paths_absent, NULL,
              "services.xserver.enable = false."),
        CHECK("SVC-006", "services", "Documentation absent", "seed: documentation.enable = false", BOTH, LOW, check_paths_absent, NULL,
              "documentation.enable = false; documentation.nixos.enable = false."),
        CHECK("SVC-007", "services", "Listening ports within the allowlist", "attack surface of a captured drone", LIVE, HIGH,
              check_listeners, NULL, "Stop the listed services or add the port to the profile allowlist."),
        CHECK("TUN-001", "tunnel", "Fleet server reached only through the tunnel", "seed: the drones connect to the server via a tunnel",
              BOTH, HIGH, check_tunnel_route, NULL,
              "services.ringild.tunnel.enable = true (serverUrl inside the tunnel, restrictAgent = true); or disable TUN-001 in a fleet without a tunnel."),
        CHECK("TUN-002", "tunnel", "Tunnel private key root-only, off the store and the ESP",
              "seed: tunnel (a copied key lets anyone pose as the drone)", BOTH, HIGH, check_tunnel_key, NULL,
              "chmod 0400 the key, root-owned, in a 0700 directory on the encrypted root (ringil-tunnel-key.service does)."),
        CHECK("LOG-001", "logs", "Journal kept in RAM (Storage=volatile)", "seed: services.journald.extraConfig Storage=volatile",
              BOTH, HIGH, check_conf, "systemd/journald.conf|Journal", "services.journald.extraConfig = \"Storage=volatile\"."),
        CHECK("LOG-002", "logs", "Journal RAM cap (RuntimeMaxUse)", "seed: services.journald.extraConfig RuntimeMaxUse=50M", BOTH, LOW,
              check_runtime_max_use, NULL, "services.journald.extraConfig: RuntimeMaxUse=50M."),
        CHECK("LOG-003", "logs", "No persistent journal directory", "seed: logs are stored in memory rather than on disk", BOTH,
              HIGH, check_journal_dir, NULL, "rm -rf /var/log/journal (its existence makes Storage=auto persist)."),
        CHECK("LOG-004", "logs", "No log files on disk", "seed: logs are stored in memory rather than on disk", BOTH, MED,
              check_no_disk_logs, NULL, "Remove log files under /var/log; send nothing to on-disk syslog."),
        CHECK("NIX-001", "nixos", "Running system is the booted system", "seed: every drone receives the exact same upgrade", LIVE, MED,
              check_booted_current, NULL, "Reboot into the activated generation (switch-to-configuration boot, then reboot)."),
        CHECK("NIX-002", "nixos", "/etc managed by the system closure", "seed: configuration drift", BOTH, MED, check_etc_managed,
              NULL, "Remove hand-made files from /etc; declare them in the NixOS configuration."),
        CHECK("NIX-003", "nixos", "/etc/static is the current system's etc", "seed: configuration drift", BOTH, MED,
              check_etc_static, NULL, "Run switch-to-configuration for the current generation."),
};
const size_t audit_n_checks = ELEMENTSOF(audit_checks);
