/* efi-keys.c: generating, writing and loading the sbctl-compatible PK/KEK/db key bundle. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "efi-authvar.h"
#include "err.h"
#include "fileio.h"
#include "efi-keys.h"
#include "macro.h"
#include "secret.h"

static const struct {
        const char *name;
        const char *description;
} key_info[_SB_KEY_MAX] = {
        [SB_KEY_PK] = { "PK", "Platform Key" },
        [SB_KEY_KEK] = { "KEK", "Key Exchange Key" },
        [SB_KEY_DB] = { "db", "Database Key" },
};

const char *sb_key_name(enum sb_key k) {
        return k < _SB_KEY_MAX ? key_info[k].name : "?";
}

const char *sb_key_description(enum sb_key k) {
        return k < _SB_KEY_MAX ? key_info[k].description : "?";
}

const efi_guid *sb_key_vendor(enum sb_key k) {
        return k == SB_KEY_DB ? &EFI_IMAGE_SECURITY_DATABASE_GUID : &EFI_GLOBAL_VARIABLE_GUID;
}

enum sb_key sb_key_signer(enum sb_key k) {
        return k == SB_KEY_DB ? SB_KEY_KEK : SB_KEY_PK;
}

int keys_path(const char *dir, enum sb_key k, const char *ext, char **ret) {
        char *p;

        if (k >= _SB_KEY_MAX)
                return -EINVAL;
        if (asprintf(&p, "%s/keys/%s/%s.%s", dir, sb_key_name(k), sb_key_name(k), ext) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int keys_read_guid(const char *dir, efi_guid *ret) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        if (asprintf(&path, "%s/GUID", dir) < 0)
                return -ENOMEM;
        r = read_full_file(path, RFILE_NOFOLLOW, 64, &data, &len);
        if (r == -EFBIG)
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is not a 36-character GUID", path);
        if (r < 0)
                return r;
        /* sbctl parses the file with uuid.ParseBytes: 36 bytes exactly, a newline breaks it. */
        if (len != 36 || memchr(data, '\0', len) || efi_guid_from_string((const char *) data, ret) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is not a 36-character GUID", path);
        return 0;
}

static int guid_create(const char *dir, efi_guid *ret) {
        _cleanup_free_ char *path = NULL;
        char s[EFI_GUID_STRING_MAX];
        uint8_t u[16];
        efi_guid g;
        int r;

        /* RFC 4122 version 4: random, with the version and variant bits set (text byte order). */
        r = crypto_random(u, sizeof(u));
        if (r < 0)
                return r;
        u[6] = (uint8_t) ((u[6] & 0x0f) | 0x40);
        u[8] = (uint8_t) ((u[8] & 0x3f) | 0x80);
        snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
        r = efi_guid_from_string(s, &g);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/GUID", dir) < 0)
                return -ENOMEM;
        r = atomic_write_file(path, s, 36, 0644, AW_NOREPLACE);
        if (r < 0)
                return r;
        *ret = g;
        return 0;
}

/* notAfter = the same calendar date KEYS_VALIDITY_YEARS later, as Go's AddDate(5, 0, 0). */
static time_t add_years(time_t t, int years) {
        struct tm tm;

        if (!gmtime_r(&t, &tm))
                return (time_t) -1;
        tm.tm_year += years;
        return timegm(&tm);
}

int keys_generate(const char *cn, time_t now, EVP_PKEY **ret_key, X509 **ret_cert) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_(BN_freep) BIGNUM *bn = NULL;
        X509_NAME *name;
        uint8_t serial[16];
        time_t until;
        int r;

        if (!cn || strlen(cn) > 64)
                return -EINVAL;
        until = add_years(now, KEYS_VALIDITY_YEARS);
        if (until == (time_t) -1)
                return -ERANGE;

        key = EVP_RSA_gen(KEYS_RSA_BITS);   /* public exponent 65537 */
        if (!key)
                return crypto_fail(-ENOMEM, "RSA key generation");

        x = X509_new();
        if (!x)
                return -ENOMEM;
        if (!X509_set_version(x, X509_VERSION_3))
                return crypto_fail(-EIO, "X509_set_version");

        /* A positive, non-zero 128-bit random serial (Go's parser rejects negative serials). */
        do {
                r = crypto_random(serial, sizeof(serial));
                if (r < 0)
                        return r;
                BN_free(bn);
                bn = BN_bin2bn(serial, sizeof(serial), NULL);
                if (!bn)
                        return -ENOMEM;
        } while (BN_is_zero(bn));
        if (!BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
                return crypto_fail(-ENOMEM, "serial number");

        if (!ASN1_TIME_set(X509_getm_notBefore(x), now) || !ASN1_TIME_set(X509_getm_notAfter(x), until))
                return crypto_fail(-EIO, "certificate validity");

        name = X509_get_subject_name(x);
        /* PrintableString, as Go's encoder writes it. */
        if (!X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_PRINTABLESTRING, (const unsigned char *) cn,
                                        -1, -1, 0))
                return crypto_fail(-EINVAL, "certificate subject");
        if (!X509_set_issuer_name(x, name))
                return crypto_fail(-ENOMEM, "certificate issuer");
        if (!X509_set_pubkey(x, key))
                return crypto_fail(-ENOMEM, "certificate key");
        if (X509_sign(x, key, EVP_sha256()) <= 0)
                return crypto_fail(-EIO, "certificate signature");

        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(x);
        return 0;
}

/* Create dir/name with O_EXCL at mode, write data, fsync. */
static int write_new_file(int dfd, const char *name, const void *data, size_t len, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, mode) < 0)   /* umask must not change it */
                return negative_errno();
        r = write_all(fd, data, len);
        if (r < 0)
                return r;
        return fsync(fd) < 0 ? negative_errno() : 0;
}

/* Write NAME.key and NAME.pem into a fresh directory parent/NAME. */
static int write_member(int parent_fd, enum sb_key k, EVP_PKEY *key, X509 *cert) {
        _cleanup_(BIO_free_allp) BIO *kb = NULL, *cb = NULL;
        _cleanup_close_ int dfd = -EBADF;
        char fname[16];
        char *p;
        long n;
        int r;

        if (mkdirat(parent_fd, sb_key_name(k), 0700) < 0)
                return negative_errno();
        dfd = openat(parent_fd, sb_key_name(k), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                return negative_errno();
        if (fchmod(dfd, 0700) < 0)
                return negative_errno();

        /* INVARIANT: the PEM private key only ever lives in a secure-heap BIO, cleared when freed. */
        kb = BIO_new(BIO_s_secmem());
        cb = BIO_new(BIO_s_mem());
        if (!kb || !cb)
                return -ENOMEM;
        if (!PEM_write_bio_PKCS8PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL))
                return crypto_fail(-EIO, "PKCS#8 encoding");
        if (!PEM_write_bio_X509(cb, cert))
                return crypto_fail(-EIO, "certificate encoding");

        snprintf(fname, sizeof(fname), "%s.key", sb_key_name(k));
        n = BIO_get_mem_data(kb, &p);
        if (n <= 0)
                return -EIO;
        r = write_new_file(dfd, fname, p, (size_t) n, 0400);
        if (r < 0)
                return r;
        snprintf(fname, sizeof(fname), "%s.pem", sb_key_name(k));
        n = BIO_get_mem_data(cb, &p);
        if (n <= 0)
                return -EIO;
        r = write_new_file(dfd, fname, p, (size_t) n, 0400);
        if (r < 0)
                return r;
        return fsync(dfd) < 0 ? negative_errno() : 0;
}

/* Remove what write_member() may have created under dir; nothing else. */
static void remove_members(const char *dir) {
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s/%s.key", dir, sb_key_name(k), sb_key_name(k));
                (void) unlink(p);
                snprintf(p, sizeof(p), "%s/%s/%s.pem", dir, sb_key_name(k), sb_key_name(k));
                (void) unlink(p);
                snprintf(p, sizeof(p), "%s/%s", dir, sb_key_name(k));
                (void) rmdir(p);
        }
}

static int any_member_exists(const char *keysdir) {
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                _cleanup_free_ char *p = NULL;
                struct stat st;

                if (asprintf(&p, "%s/%s", keysdir, sb_key_name(k)) < 0)
                        return -ENOMEM;
                if (lstat(p, &st) >= 0)
                        return ringil_fail(-EEXIST, "'%s' already exists; not touching existing keys", p);
                if (errno != ENOENT)
                        return negative_errno();
        }
        return 0;
}

struct generated {
        EVP_PKEY *key[_SB_KEY_MAX];
        X509 *cert[_SB_KEY_MAX];
};

static void generated_free(struct generated *g) {
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                EVP_PKEY_free(g->key[k]);   /* OpenSSL clears RSA private components on free */
                X509_free(g->cert[k]);
        }
}

static int stage_all(const char *staging, const struct generated *g) {
        _cleanup_close_ int sfd = -EBADF;
        int r;

        sfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (sfd < 0)
                return negative_errno();
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                r = write_member(sfd, k, g->key[k], g->cert[k]);
                if (r < 0)
                        return r;
        }
        return fsync(sfd) < 0 ? negative_errno() : 0;
}

int keys_create(const char *dir, struct keys_create_result *ret) {
        _cleanup_(generated_free) struct generated g = {};
        _cleanup_free_ char *keysdir = NULL, *staging = NULL;
        struct keys_create_result res = {};
        struct stat st;
        bool keysdir_exists;
        time_t now;
        int r;

        /* Leaves room for every path built below in fixed buffers, so none can be truncated. */
        if (strlen(dir) > 4096 - 64)
                return ringil_fail(-ENAMETOOLONG, "directory name too long");
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return ringil_fail(r, "cannot create '%s'", dir);

        r = keys_read_guid(dir, &res.guid);
        if (r == -ENOENT) {
                r = guid_create(dir, &res.guid);
                if (r == -EEXIST)   /* lost a race: use the winner's */
                        r = keys_read_guid(dir, &res.guid);
                else if (r >= 0)
                        res.guid_created = true;
        }
        if (r < 0)
                return r;
        *ret = res;   /* the GUID is settled even if the keys are refused below */

        if (asprintf(&keysdir, "%s/keys", dir) < 0)
                return -ENOMEM;
        if (lstat(keysdir, &st) >= 0) {
                if (!S_ISDIR(st.st_mode))
                        return ringil_fail(-ENOTDIR, "'%s' is not a directory", keysdir);
                keysdir_exists = true;
        } else if (errno == ENOENT)
                keysdir_exists = false;
        else
                return negative_errno();
        if (keysdir_exists) {
                r = any_member_exists(keysdir);
                if (r < 0)
                        return r;
        }

        now = time(NULL);
        for (enum sb_key k = 0; k < _SB_KEY_MAX; k++) {
                r = keys_generate(sb_key_description(k), now, &g.key[k], &g.cert[k]);
                if (r < 0)
                        return r;
        }

        /*
         * Without keys/ yet, the whole of it is staged and appears with one rename: a crash leaves
         * either no keys/ or a complete one. Into an existing keys/ (e.g. holding dbx) the three
         * members are renamed one by one, and removed again if a later one fails.
         */
        if (asprintf(&staging, keysdir_exists ? "%s/keys/.staging.XXXXXX" : "%s/.keys.XXXXXX", dir) < 0)
                return -ENOMEM;
        if (!mkdtemp(staging))
                return negative_errno();
        r = stage_all(staging, &g);
        if (r >= 0 && !keysdir_exists) {
                if (renameat2(AT_FDCWD, staging, AT_FDCWD, keysdir, RENAME_NOREPLACE) < 0)
                        r = negative_errno();
                else
                        return fsync_path(dir);
        } else if (r >= 0) {
                enum sb_key moved = 0;
                for (; moved < _SB_KEY_MAX; moved++) {
                        char from[4096], to[4096];
                        snprintf(from, sizeof(from), "%s/%s", staging, sb_key_name(moved));
                        snprintf(to, sizeof(to), "%s/%s", keysdir, sb_key_name(moved));
                        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
                                r = negative_errno();
                                break;
                        }
                }
                if (r < 0) {
                        /* Only the members this call just moved; anything else was refused above. */
                        for (enum sb_key k = 0; k < moved; k++) {
                                char from[4096], to[4096];
                                snprintf(from, sizeof(from), "%s/%s", staging, sb_key_name(k));
                                snprintf(to, sizeof(to), "%s/%s", keysdir, sb_key_name(k));
                                (void) rename(to, from);
                        }
                } else {
                        (void) rmdir(staging);
                        return fsync_path(keysdir);
                }
        }
        remove_members(staging);
        (void) rmdir(staging);
        return r;
}

int keys_load(const char *dir, enum sb_key k, EVP_PKEY **ret_key, X509 **ret_cert) {
        _cleanup_free_ char *kp = NULL, *cp = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        int r;

        r = keys_path(dir, k, "pem", &cp);
        if (r < 0)
                return r;
        r = crypto_load_cert(cp, &cert);
        if (r < 0)
                return r;
        if (ret_key) {
                r = keys_path(dir, k, "key", &kp);
                if (r < 0)
                        return r;
                r = crypto_load_private_key(kp, &key);
                if (r < 0)
                        return r;
                if (X509_check_private_key(cert, key) != 1)
                        return crypto_fail(-RINGIL_EMALFORMED, "key does not match its certificate");
                *ret_key = TAKE_PTR(key);
        }
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

int keys_build_esl(const char *dir, enum sb_key k, struct buf *out) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        unsigned char *der = NULL;
        efi_guid owner;
        int len, r;

        r = keys_read_guid(dir, &owner);
        if (r < 0)
                return r;
        r = keys_load(dir, k, NULL, &cert);
        if (r < 0)
                return r;
        len = i2d_X509(cert, &der);
        if (len <= 0)
                return crypto_fail(-EIO, "certificate encoding");
        r = esl_append_x509(out, &owner, der, (size_t) len);
        OPENSSL_free(der);
        return r;
}

int keys_build_auth(const char *dir, enum sb_key k, time_t t, struct buf *out) {
        _cleanup_buf_ struct buf esl = BUF_INIT(ESL_MAX_SIZE);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        int r;

        r = keys_build_esl(dir, k, &esl);
        if (r < 0)
                return r;
        r = keys_load(dir, sb_key_signer(k), &key, &cert);
        if (r < 0)
                return r;
        return auth_build(sb_key_name(k), sb_key_vendor(k), AUTH_ATTRIBUTES, t, esl.data, esl.len, key, cert, out);
}
