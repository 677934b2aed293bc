/* keys.c: `ringil keys create|export|enroll|status`: the Secure Boot PK/KEK/db bundle on disk and in firmware. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "efi-authvar.h"
#include "efi-var.h"
#include "err.h"
#include "escape.h"
#include "efi-esl.h"
#include "fileio.h"
#include "efi-keys.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "verb.h"
#include "verbs.h"

/* Log once, with the library's recorded detail, and map to an exit code. */
static int fail(int r, const char *what, const char *arg) {
        const char *d = ringil_detail();
        log_error_errno(r, "%s '%s': %m%s%s", what, arg, *d ? ": " : "", d);
        return exit_code_from_errno(r);
}

/* --- create ----------------------------------------------------------------------------------- */

static int keys_create_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                {},
        };
        struct keys_create_result res = {};
        const char *dir = KEYS_DIR_DEFAULT;
        char g[EFI_GUID_STRING_MAX];
        int c, r;

        while ((c = getopt_long(argc, argv, "d:", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);

        ringil_clear_detail();
        r = keys_create(dir, &res);
        if (r >= 0 || r == -EEXIST)
                printf("%s Owner UUID %s\n", res.guid_created ? "Created" : "Using existing",
                       efi_guid_to_string(&res.guid, g));
        if (r == -EEXIST) {
                log_error("Secure boot keys have already been created in '%s' (%s); refusing to overwrite.", dir,
                          ringil_detail());
                return EXIT_EXISTS;
        }
        if (r < 0)
                return fail(r, "Failed to create secure boot keys in", dir);
        printf("Creating secure boot keys...✓\nSecure boot keys created!\n");
        return EXIT_OK;
}

/* --- export ----------------------------------------------------------------------------------- */

static int parse_time_opt(const char *s, time_t *ret) {
        int64_t t;

        if (parse_time(s, &t) < 0 || t < 0)
                return usage_error("invalid time '%s'", s);
        *ret = (time_t) t;
        return 0;
}

static int keys_export_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "output-dir", required_argument, NULL, 'o' },
                { "time", required_argument, NULL, 't' },
                {},
        };
        const char *dir = KEYS_DIR_DEFAULT, *out = NULL;
        time_t t = time(NULL);
        int c, r;

        while ((c = getopt_long(argc, argv, "d:o:t:", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 't':
                        if (parse_time_opt(optarg, &t) != 0)
                                return EXIT_USAGE;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (!out)
                return usage_error("--output-dir is required");

        r = mkdir_p(out, 0755);
        if (r < 0)
                return fail(r, "Failed to create", out);
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                _cleanup_buf_ struct buf esl = BUF_INIT(ESL_MAX_SIZE), auth = BUF_INIT(AUTH_MAX_SIZE);
                _cleanup_free_ char *esl_path = NULL, *auth_path = NULL;

                ringil_clear_detail();
                r = keys_build_esl(dir, k, &esl);
                if (r >= 0)
                        r = keys_build_auth(dir, k, t, &auth);
                if (r < 0)
                        return fail(r, "Failed to build signature lists from", dir);
                if (asprintf(&esl_path, "%s/%s.esl", out, sb_key_name(k)) < 0 ||
                    asprintf(&auth_path, "%s/%s.auth", out, sb_key_name(k)) < 0)
                        return fail(-ENOMEM, "Failed to export", out);
                r = atomic_write_file(esl_path, esl.data, esl.len, 0644, 0);
                if (r < 0)
                        return fail(r, "Failed to write", esl_path);
                r = atomic_write_file(auth_path, auth.data, auth.len, 0644, 0);
                if (r < 0)
                        return fail(r, "Failed to write", auth_path);
                printf("Wrote %s and %s\n", ESCAPED(esl_path), ESCAPED(auth_path));
        }
        return EXIT_OK;
}

/* --- enroll ----------------------------------------------------------------------------------- */

static int keys_enroll_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "efivarfs", required_argument, NULL, 'e' },
                { "auth-dir", required_argument, NULL, 'a' },
                {},
        };
        /* Order matters: PK last, because writing PK ends Setup Mode. */
        static const enum sb_key order[] = { SB_KEY_DB, SB_KEY_KEK, SB_KEY_PK };
        struct buf payload[_SB_KEY_MAX] = {};
        const char *dir = KEYS_DIR_DEFAULT, *efivarfs = EFIVARFS_DEFAULT, *auth_dir = NULL;
        struct stat st;
        int c, r, ret = EXIT_OK;

        while ((c = getopt_long(argc, argv, "d:e:a:", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'e':
                        efivarfs = optarg;
                        break;
                case 'a':
                        auth_dir = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);

        if (stat(efivarfs, &st) < 0 || !S_ISDIR(st.st_mode)) {
                log_error("'%s' is not a directory: system is not booted with UEFI?", efivarfs);
                return EXIT_NOTFOUND;
        }
        /* INVARIANT: nothing is written unless the firmware says it is in Setup Mode. */
        r = efivar_read_bool(efivarfs, "SetupMode");
        if (r != 1) {
                log_error("Refusing to enroll: firmware is %s (SetupMode-%s).",
                          r == 0 ? "not in Setup Mode" : "in an unknown mode",
                          "8be4df61-93ca-11d2-aa0d-00e098032b8c");
                return EXIT_REFUSED;
        }

        /* Build (or load) and check all three payloads before writing any. */
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                _cleanup_(X509_freep) X509 *signer = NULL;

                payload[k] = BUF_INIT(AUTH_MAX_SIZE);
                ringil_clear_detail();
                if (auth_dir) {
                        _cleanup_free_ char *p = NULL;
                        uint8_t *data;
                        size_t len;

                        if (asprintf(&p, "%s/%s.auth", auth_dir, sb_key_name(k)) < 0) {
                                ret = fail(-ENOMEM, "Failed to read", auth_dir);
                                goto out;
                        }
                        r = read_full_file(p, RFILE_NOFOLLOW, AUTH_MAX_SIZE, &data, &len);
                        if (r < 0) {
                                ret = fail(r, "Failed to read", p);
                                goto out;
                        }
                        payload[k].data = data;
                        payload[k].len = payload[k].alloc = len;
                } else {
                        r = keys_build_auth(dir, k, time(NULL), &payload[k]);
                        if (r < 0) {
                                ret = fail(r, "Failed to build .auth payloads from", dir);
                                goto out;
                        }
                }
                /* The payload must carry our certificate and be signed by its parent from DIR. */
                r = keys_load(dir, sb_key_signer(k), NULL, &signer);
                if (r >= 0)
                        r = auth_verify(payload[k].data, payload[k].len, sb_key_name(k), sb_key_vendor(k),
                                        AUTH_ATTRIBUTES, signer);
                if (r < 0) {
                        ret = fail(r, "Refusing to enroll: payload does not verify for", sb_key_name(k));
                        goto out;
                }
        }

        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                enum sb_key k = order[i];
                r = efivar_write(efivarfs, sb_key_name(k), sb_key_vendor(k), AUTH_ATTRIBUTES, payload[k].data,
                                 payload[k].len);
                if (r < 0) {
                        ret = fail(r, "Failed to write EFI variable", sb_key_name(k));
                        goto out;
                }
                printf("Enrolled %s\n", sb_key_name(k));
        }
        printf("Enrolled keys to the EFI variables!\n");
out:
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++)
                buf_free(&payload[k]);
        return ret;
}

/* --- status ----------------------------------------------------------------------------------- */

struct var_status {
        const char *state;   /* ok | foreign | missing | unknown */
        const char *reason;
        size_t entries;
        size_t microsoft;
};

static void check_var(const char *efivarfs, const char *dir, bool have_guid, const efi_guid *guid, enum sb_key k,
                      struct var_status *ret) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ struct esl_entry *e = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        uint8_t want[SHA256_LEN], got[SHA256_LEN];
        size_t len, n;
        uint32_t attr;
        bool ours = false;
        int r;

        *ret = (struct var_status){ .state = "unknown" };
        r = efivar_read(efivarfs, sb_key_name(k), sb_key_vendor(k), &attr, &data, &len);
        if (r == -ENOENT) {
                *ret = (struct var_status){ .state = "missing", .reason = "variable not present" };
                return;
        }
        if (r < 0) {
                ret->reason = "variable unreadable or truncated";
                return;
        }
        if (esl_parse(data, len, &e, &n) < 0) {
                ret->reason = "variable is not a valid signature list";
                return;
        }
        if (n == 0) {
                ret->reason = "variable is empty";
                return;
        }
        ret->entries = n;
        for (size_t i = 0; i < n; i++)
                if (efi_guid_equal(&e[i].owner, &MICROSOFT_OWNER_GUID))
                        ret->microsoft++;
        if (!have_guid || keys_load(dir, k, NULL, &cert) < 0 || crypto_cert_sha256(cert, want) < 0) {
                ret->reason = "no local certificate to compare with";
                return;
        }
        for (size_t i = 0; i < n && !ours; i++)
                if (efi_guid_equal(&e[i].type, &EFI_CERT_X509_GUID) && efi_guid_equal(&e[i].owner, guid) &&
                    crypto_sha256(e[i].data, e[i].len, got) >= 0 && crypto_memcmp(got, want, SHA256_LEN) == 0)
                        ours = true;
        ret->state = ours ? "ok" : "foreign";
        ret->reason = ours ? "holds our certificate" : "does not hold our certificate with our owner GUID";
}

static json_t *json_bool_or_null(int v) {
        return v < 0 ? json_null() : json_boolean(v);
}

static int keys_status_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "efivarfs", required_argument, NULL, 'e' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        const char *dir = KEYS_DIR_DEFAULT, *efivarfs = EFIVARFS_DEFAULT;
        struct var_status vs[_SB_KEY_MAX];
        char gs[EFI_GUID_STRING_MAX];
        bool json = false, have_guid;
        enum sb_mode mode;
        efi_guid guid;
        int c, r, secure_boot, setup_mode;

        while ((c = getopt_long(argc, argv, "d:e:j", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'e':
                        efivarfs = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);

        r = efivar_secure_boot_mode(efivarfs, &mode);
        if (r < 0) {
                log_error_errno(r, "Cannot read '%s': %m: system is not booted with UEFI?", efivarfs);
                return exit_code_from_errno(r);
        }
        secure_boot = efivar_read_bool(efivarfs, "SecureBoot");
        setup_mode = efivar_read_bool(efivarfs, "SetupMode");
        have_guid = keys_read_guid(dir, &guid) >= 0;
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++)
                check_var(efivarfs, dir, have_guid, &guid, k, &vs[k]);

        if (json) {
                json_t *root = json_object(), *vars = json_object();
                char *s;

                if (!root || !vars)
                        return fail(-ENOMEM, "Failed to format", "json");
                json_object_set_new(root, "efivarfs", json_string(efivarfs));
                json_object_set_new(root, "mode", json_string(sb_mode_to_string(mode)));
                json_object_set_new(root, "secure_boot", json_bool_or_null(secure_boot));
                json_object_set_new(root, "setup_mode", json_bool_or_null(setup_mode));
                json_object_set_new(root, "keys_dir", json_string(dir));
                json_object_set_new(root, "guid", have_guid ? json_string(efi_guid_to_string(&guid, gs)) : json_null());
                for (enum sb_key k = 0; k < _SB_KEY_MAX; k++)
                        json_object_set_new(vars, sb_key_name(k),
                                            json_pack("{s:s, s:s, s:I, s:I}", "state", vs[k].state, "reason",
                                                      vs[k].reason ? vs[k].reason : "", "entries",
                                                      (json_int_t) vs[k].entries, "microsoft",
                                                      (json_int_t) vs[k].microsoft));
                json_object_set_new(root, "variables", vars);
                s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                json_decref(root);
                if (!s)
                        return fail(-ENOMEM, "Failed to format", "json");
                printf("%s\n", s);
                free(s);
                return EXIT_OK;
        }

        printf("Keys:          %s%s%s\n", ESCAPED(dir), have_guid ? ", owner " : " (no GUID: not installed)",
               have_guid ? efi_guid_to_string(&guid, gs) : "");
        printf("Mode:          %s\n", sb_mode_to_string(mode));
        printf("Secure Boot:   %s\n", secure_boot < 0 ? "unknown" : secure_boot ? "enabled" : "disabled");
        printf("Setup Mode:    %s\n", setup_mode < 0 ? "unknown" : setup_mode ? "enabled" : "disabled");
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                printf("%-4s           %s (%s", sb_key_name(k), vs[k].state, vs[k].reason);
                if (vs[k].entries)
                        printf("; %zu entr%s", vs[k].entries, vs[k].entries == 1 ? "y" : "ies");
                if (vs[k].microsoft)
                        printf(", %zu Microsoft", vs[k].microsoft);
                printf(")\n");
        }
        return EXIT_OK;
}

/* --- dispatch --------------------------------------------------------------------------------- */

static const struct verb keys_verbs[] = {
        VERB("create", keys_create_main, "create the PK/KEK/db key bundle (sbctl layout)",
             "Usage: ringil keys create [--dir DIR]\n\n"
             "Create an sbctl-compatible Secure Boot key bundle, usable as lanzaboote's pkiBundle:\n"
             "  DIR/GUID                        owner GUID (kept if present), 0644\n"
             "  DIR/keys/{PK,KEK,db}/NAME.key   RSA-4096 PKCS#8 PEM private key, 0400\n"
             "  DIR/keys/{PK,KEK,db}/NAME.pem   self-signed X.509 v3 certificate (5 years), 0400\n"
             "Existing keys are never overwritten: if any of keys/PK, keys/KEK, keys/db exists the\n"
             "command changes nothing and exits 10.\n\n"
             "Options:\n"
             "  -d, --dir DIR   bundle directory (default " KEYS_DIR_DEFAULT ")\n\n"
             "Exit codes: 0 created, 1 I/O error, 2 usage, 3 malformed GUID file, 10 keys exist.\n"),
        VERB("export", keys_export_main, "write {PK,KEK,db}.esl and .auth for enrollment",
             "Usage: ringil keys export [--dir DIR] --output-dir OUT [--time TIME]\n\n"
             "Write OUT/{PK,KEK,db}.esl (one X509 EFI_SIGNATURE_LIST, owner = DIR/GUID; the same bytes\n"
             "as efitools cert-to-efi-sig-list) and OUT/{PK,KEK,db}.auth (time-based authenticated\n"
             "variable payloads: PK signs PK and KEK, KEK signs db), for systemd-boot's\n"
             "ESP/loader/keys/auto/, efi-updatevar, firmware setup menus or the Jetson UEFI DTBO.\n\n"
             "Options:\n"
             "  -d, --dir DIR          bundle directory (default " KEYS_DIR_DEFAULT ")\n"
             "  -o, --output-dir OUT   where to write the six files (created if missing)\n"
             "  -t, --time TIME        EFI_TIME of the .auth files (@EPOCH, YYYY-MM-DD or\n"
             "                         YYYY-MM-DDTHH:MM:SSZ; default now)\n\n"
             "Exit codes: 0 written, 1 I/O error, 2 usage, 3 malformed bundle file, 12 bundle file missing.\n"),
        VERB("enroll", keys_enroll_main, "write db, KEK and PK into firmware in Setup Mode",
             "Usage: ringil keys enroll [--dir DIR] [--efivarfs PATH] [--auth-dir DIR]\n\n"
             "Enroll the bundle's db, KEK and then PK (writing PK ends Setup Mode) through efivarfs.\n"
             "Refuses (exit 11) unless SetupMode is 1. Clears the immutable flag on existing variable\n"
             "files. Every payload is verified against the bundle's certificates before anything is\n"
             "written.\n\n"
             "Options:\n"
             "  -d, --dir DIR        bundle directory (default " KEYS_DIR_DEFAULT ")\n"
             "  -e, --efivarfs PATH  efivarfs mount (default " EFIVARFS_DEFAULT ")\n"
             "  -a, --auth-dir DIR   enroll DIR/{db,KEK,PK}.auth from `keys export` instead of signing\n"
             "                       here; then only the certificates need to be on this machine\n\n"
             "Exit codes: 0 enrolled, 1 I/O or firmware error, 2 usage, 3 malformed payload,\n"
             "            4 payload signature does not verify, 11 not in Setup Mode, 12 no efivarfs/file.\n"),
        VERB("status", keys_status_main, "show Secure Boot mode and whether our keys are enrolled",
             "Usage: ringil keys status [--dir DIR] [--efivarfs PATH] [--json]\n\n"
             "Show the Secure Boot mode (setup, audit, user, deployed, disabled or unknown) and, for\n"
             "PK, KEK and db, whether the variable holds the bundle's certificate with the bundle's\n"
             "owner GUID (ok), only other entries (foreign), is absent (missing) or cannot be read\n"
             "or parsed (unknown). Missing or malformed mode variables give mode unknown.\n\n"
             "Options:\n"
             "  -d, --dir DIR        bundle directory (default " KEYS_DIR_DEFAULT ")\n"
             "  -e, --efivarfs PATH  efivarfs mount (default " EFIVARFS_DEFAULT ")\n"
             "  -j, --json           machine-readable output\n\n"
             "Exit codes: 0 status shown (whatever it is), 1 I/O error, 2 usage, 12 no efivarfs.\n"),
};

const struct verb_group keys_group = {
        .usage = "Usage: ringil keys COMMAND [OPTIONS]\n\n"
                 "Secure Boot key bundle (PK, KEK, db) compatible with sbctl and lanzaboote.\n\n",
        .verbs = keys_verbs,
        .n = ELEMENTSOF(keys_verbs),
};
