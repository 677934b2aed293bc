/* fleet-ca.c: the device CA: EC P-256 key generation, certificate profiles, CSR signing for enrollment. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fleet-ca.h"
#include "err.h"
#include "fileio.h"
#include "secret.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(X509_REQ *, X509_REQ_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_EXTENSION *, X509_EXTENSION_free)

#define CA_MAX_CSR 8192

int ca_name_valid(const char *name) {
        size_t n;

        if (!name)
                return -EINVAL;
        n = strlen(name);
        if (n == 0 || n > CA_NAME_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
                        return -EINVAL;
        }
        return 0;
}

int ca_generate_key(EVP_PKEY **ret) {
        EVP_PKEY *k = EVP_EC_gen("P-256");

        if (!k)
                return crypto_fail(-EIO, "EC P-256 key generation");
        *ret = k;
        return 0;
}

static bool is_p256(EVP_PKEY *k) {
        char group[64] = "";
        size_t len = 0;

        if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
                return false;
        if (!EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &len))
                return false;
        return streq(group, "prime256v1") || streq(group, "P-256");
}

static int create_excl(const char *path, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode);

        if (fd < 0)
                return negative_errno();
        return fd;
}

static int write_bio_excl(const char *path, BIO *bio, mode_t mode, bool secret) {
        _cleanup_close_ int fd = -EBADF;
        char *p = NULL;
        long n = BIO_get_mem_data(bio, &p);
        int r;

        if (n <= 0)
                return -EIO;
        fd = create_excl(path, mode);
        if (fd < 0)
                return ringil_fail(fd, "cannot create '%s'", path);
        r = write_all(fd, p, (size_t) n);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (secret)
                secret_wipe(p, (size_t) n);
        if (r < 0) {
                (void) unlink(path);
                return ringil_fail(r, "cannot write '%s'", path);
        }
        /* fchmod: the umask may have narrowed the mode; 0400 keys must stay exactly 0400. */
        if (fchmod(fd, mode) < 0)
                return negative_errno();
        return fsync_parent_dir(path);
}

/* A NUL-terminated copy of a memory BIO's bytes (which are not NUL-terminated: no strndup). */
static int bio_to_string(BIO *bio, char **ret) {
        char *p = NULL, *s;
        long n = BIO_get_mem_data(bio, &p);

        if (n <= 0)
                return -EIO;
        s = malloc((size_t) n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, p, (size_t) n);
        s[n] = '\0';
        *ret = s;
        return 0;
}

int ca_write_key(const char *path, EVP_PKEY *key, mode_t mode) {
        _cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_secmem());

        if (!bio)
                return -ENOMEM;
        if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
                return crypto_fail(-EIO, "PEM encode key");
        return write_bio_excl(path, bio, mode, true);
}

int ca_write_cert(const char *path, X509 *cert) {
        _cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());

        if (!bio)
                return -ENOMEM;
        if (!PEM_write_bio_X509(bio, cert))
                return crypto_fail(-EIO, "PEM encode certificate");
        return write_bio_excl(path, bio, 0444, false);
}

int ca_cert_to_pem(X509 *cert, char **ret) {
        _cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());

        if (!bio)
                return -ENOMEM;
        if (!PEM_write_bio_X509(bio, cert))
                return crypto_fail(-EIO, "PEM encode certificate");
        return bio_to_string(bio, ret);
}

static int add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value) {
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);

        if (!ext)
                return crypto_fail(-EINVAL, "certificate extension");
        if (!X509_add_ext(cert, ext, -1))
                return crypto_fail(-ENOMEM, "add extension");
        return 0;
}

static int random_serial(X509 *cert) {
        uint8_t raw[16];
        _cleanup_(BN_freep) BIGNUM *bn = NULL;
        int r = crypto_random(raw, sizeof(raw));

        if (r < 0)
                return r;
        raw[0] &= 0x7f;   /* positive, and DER keeps 16 bytes */
        raw[0] |= 0x40;
        bn = BN_bin2bn(raw, sizeof(raw), NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
                return crypto_fail(-ENOMEM, "serial");
        return 0;
}

static int build_san(const char *name, const char *const *extra, char **ret) {
        char buf[1024];
        size_t off = 0;
        unsigned char ip[16];
        int n;

        if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
                n = snprintf(buf, sizeof(buf), "IP:%s", name);
        else
                n = snprintf(buf, sizeof(buf), "DNS:%s", name);
        if (n < 0 || (size_t) n >= sizeof(buf))
                return -EINVAL;
        off = (size_t) n;
        for (size_t i = 0; extra && extra[i]; i++) {
                const char *s = extra[i];
                if (strncmp(s, "DNS:", 4) != 0 && strncmp(s, "IP:", 3) != 0)
                        return ringil_fail(-EINVAL, "SAN '%s' is not DNS:… or IP:…", s);
                if (strchr(s, ','))
                        return ringil_fail(-EINVAL, "SAN '%s' contains a comma", s);
                n = snprintf(buf + off, sizeof(buf) - off, ",%s", s);
                if (n < 0 || (size_t) n >= sizeof(buf) - off)
                        return -E2BIG;
                off += (size_t) n;
        }
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* Build and sign one certificate. issuer_cert NULL means self-signed (the CA itself). */
static int make_cert(EVP_PKEY *sign_key, X509 *issuer_cert, EVP_PKEY *pubkey, const char *cn,
                     enum ca_profile profile, bool is_ca, const char *const *extra_sans, unsigned days,
                     X509 **ret) {
        _cleanup_(X509_freep) X509 *cert = X509_new();
        X509_NAME *subj;
        X509V3_CTX ctx;
        int r;

        if (!cert)
                return -ENOMEM;
        if (days == 0 || days > 36500)
                return ringil_fail(-EINVAL, "validity of %u days out of range", days);
        if (!X509_set_version(cert, X509_VERSION_3))
                return -ENOMEM;
        r = random_serial(cert);
        if (r < 0)
                return r;
        /* Backdate a little: a drone whose clock lags the server by minutes must still accept it. */
        if (!X509_gmtime_adj(X509_getm_notBefore(cert), -300) ||
            !X509_time_adj_ex(X509_getm_notAfter(cert), (int) days, 0, NULL))
                return -ENOMEM;
        subj = X509_get_subject_name(cert);
        if (!is_ca && profile == CA_PROFILE_OPERATOR &&
            !X509_NAME_add_entry_by_txt(subj, "OU", MBSTRING_UTF8, (const unsigned char *) CA_OPERATOR_OU,
                                        -1, -1, 0))
                return -ENOMEM;
        if (!X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0))
                return -ENOMEM;
        if (!X509_set_issuer_name(cert, issuer_cert ? X509_get_subject_name(issuer_cert) : subj))
                return -ENOMEM;
        if (!X509_set_pubkey(cert, pubkey))
                return crypto_fail(-EINVAL, "set public key");

        X509V3_set_ctx(&ctx, issuer_cert ? issuer_cert : cert, cert, NULL, NULL, 0);
        if (is_ca) {
                if ((r = add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) < 0 ||
                    (r = add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
                    (r = add_ext(cert, &ctx, NID_subject_key_identifier, "hash")) < 0)
                        return r;
        } else {
                if ((r = add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
                    (r = add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature")) < 0 ||
                    (r = add_ext(cert, &ctx, NID_ext_key_usage,
                                 profile == CA_PROFILE_SERVER ? "serverAuth" : "clientAuth")) < 0 ||
                    (r = add_ext(cert, &ctx, NID_subject_key_identifier, "hash")) < 0 ||
                    (r = add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always")) < 0)
                        return r;
                if (profile == CA_PROFILE_SERVER) {
                        _cleanup_free_ char *san = NULL;
                        r = build_san(cn, extra_sans, &san);
                        if (r < 0)
                                return r;
                        r = add_ext(cert, &ctx, NID_subject_alt_name, san);
                        if (r < 0)
                                return r;
                }
        }
        if (X509_sign(cert, sign_key, EVP_sha256()) <= 0)
                return crypto_fail(-EIO, "sign certificate");
        *ret = TAKE_PTR(cert);
        return 0;
}

int ca_sign(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *pubkey, const char *name, enum ca_profile profile,
            const char *const *extra_sans, unsigned days, X509 **ret) {
        if (ca_name_valid(name) < 0)
                return ringil_fail(-EINVAL, "invalid name '%s'", name ? name : "");
        if (!is_p256(pubkey))
                return ringil_fail(-RINGIL_EUNTRUSTED, "public key is not EC P-256");
        return make_cert(ca_key, ca_cert, pubkey, name, profile, false, extra_sans, days, ret);
}

static int path_join(const char *dir, const char *name, const char *suffix, char **ret) {
        return asprintf(ret, "%s/%s%s", dir, name, suffix) < 0 ? -ENOMEM : 0;
}

int ca_create(const char *dir, const char *cn, unsigned days) {
        _cleanup_free_ char *kp = NULL, *cp = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        int r;

        r = mkdir_p(dir, 0700);
        if (r < 0)
                return ringil_fail(r, "cannot create '%s'", dir);
        if (path_join(dir, "ca", ".key", &kp) < 0 || path_join(dir, "ca", ".pem", &cp) < 0)
                return -ENOMEM;
        if (access(kp, F_OK) == 0 || access(cp, F_OK) == 0)
                return ringil_fail(-EEXIST, "'%s' already holds a CA", dir);
        r = ca_generate_key(&key);
        if (r < 0)
                return r;
        r = make_cert(key, NULL, key, cn ? cn : "ringil device CA", CA_PROFILE_DEVICE, true, NULL,
                      days ? days : 3650, &cert);
        if (r < 0)
                return r;
        r = ca_write_key(kp, key, 0400);
        if (r < 0)
                return r;
        r = ca_write_cert(cp, cert);
        if (r < 0) {
                (void) unlink(kp);
                return r;
        }
        return 0;
}

int ca_load(const char *dir, EVP_PKEY **ret_key, X509 **ret_cert) {
        _cleanup_free_ char *kp = NULL, *cp = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        int r;

        if (path_join(dir, "ca", ".key", &kp) < 0 || path_join(dir, "ca", ".pem", &cp) < 0)
                return -ENOMEM;
        r = crypto_load_private_key(kp, &key);
        if (r < 0)
                return r;
        r = crypto_load_cert(cp, &cert);
        if (r < 0)
                return r;
        if (X509_check_private_key(cert, key) != 1)
                return crypto_fail(-RINGIL_EMALFORMED, "CA key does not match ca.pem");
        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

int ca_issue(const char *dir, const char *name, enum ca_profile profile, const char *const *extra_sans,
             unsigned days, const char *out_dir) {
        _cleanup_free_ char *kp = NULL, *cp = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = NULL, *key = NULL;
        _cleanup_(X509_freep) X509 *ca_cert = NULL, *cert = NULL;
        int r;

        if (ca_name_valid(name) < 0)
                return ringil_fail(-EINVAL, "invalid name '%s' (1-64 of A-Z a-z 0-9 . _ -)", name);
        r = ca_load(dir, &ca_key, &ca_cert);
        if (r < 0)
                return r;
        r = mkdir_p(out_dir, 0700);
        if (r < 0)
                return ringil_fail(r, "cannot create '%s'", out_dir);
        if (path_join(out_dir, name, ".key", &kp) < 0 || path_join(out_dir, name, ".pem", &cp) < 0)
                return -ENOMEM;
        if (access(kp, F_OK) == 0 || access(cp, F_OK) == 0)
                return ringil_fail(-EEXIST, "'%s' already has a key or certificate for '%s'", out_dir, name);
        r = ca_generate_key(&key);
        if (r < 0)
                return r;
        r = ca_sign(ca_key, ca_cert, key, name, profile, extra_sans, days ? days : CA_DEFAULT_DAYS, &cert);
        if (r < 0)
                return r;
        r = ca_write_key(kp, key, 0400);
        if (r < 0)
                return r;
        r = ca_write_cert(cp, cert);
        if (r < 0) {
                (void) unlink(kp);
                return r;
        }
        return 0;
}

int ca_make_csr_pem(EVP_PKEY *key, const char *name, char **ret) {
        _cleanup_(X509_REQ_freep) X509_REQ *req = X509_REQ_new();
        _cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());

        if (!req || !bio)
                return -ENOMEM;
        if (ca_name_valid(name) < 0)
                return ringil_fail(-EINVAL, "invalid name '%s'", name);
        if (!X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                        (const unsigned char *) name, -1, -1, 0) ||
            !X509_REQ_set_pubkey(req, key) || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
            !PEM_write_bio_X509_REQ(bio, req))
                return crypto_fail(-EIO, "make CSR");
        return bio_to_string(bio, ret);
}

int ca_csr_pubkey(const char *pem, size_t len, EVP_PKEY **ret) {
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        _cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk = NULL;

        if (len > CA_MAX_CSR)
                return ringil_fail(-RINGIL_ETOOBIG, "CSR larger than %u bytes", CA_MAX_CSR);
        bio = BIO_new_mem_buf(pem, (int) len);
        if (!bio)
                return -ENOMEM;
        req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
        if (!req)
                return crypto_fail(-RINGIL_EMALFORMED, "not a PEM CSR");
        pk = X509_REQ_get_pubkey(req);
        if (!pk)
                return crypto_fail(-RINGIL_EMALFORMED, "CSR public key");
        /* Proof of possession: the requester holds the private key it asks us to certify. */
        if (X509_REQ_verify(req, pk) != 1)
                return crypto_fail(-RINGIL_EBADSIG, "CSR self-signature");
        if (!is_p256(pk))
                return ringil_fail(-RINGIL_EUNTRUSTED, "CSR key is not EC P-256");
        *ret = TAKE_PTR(pk);
        return 0;
}

int ca_cert_cn(X509 *cert, char buf[static CA_NAME_MAX + 1]) {
        X509_NAME *subj = X509_get_subject_name(cert);
        int idx, n;
        const ASN1_STRING *s;

        idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (idx < 0 || X509_NAME_get_index_by_NID(subj, NID_commonName, idx) >= 0)
                return ringil_fail(-RINGIL_EMALFORMED, "certificate needs exactly one CN");
        s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
        n = ASN1_STRING_length(s);
        if (n <= 0 || n > CA_NAME_MAX)
                return ringil_fail(-RINGIL_EMALFORMED, "certificate CN length");
        memcpy(buf, ASN1_STRING_get0_data(s), (size_t) n);
        buf[n] = '\0';
        /* An embedded NUL would make the C string differ from the certificate's name. */
        if (strlen(buf) != (size_t) n || ca_name_valid(buf) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "certificate CN is not a valid name");
        return 0;
}

int ca_cert_serial_hex(X509 *cert, char buf[static CA_SERIAL_HEX_MAX + 1]) {
        _cleanup_(BN_freep) BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        size_t n;

        if (!hex)
                return -ENOMEM;
        n = strlen(hex);
        if (n > CA_SERIAL_HEX_MAX) {
                OPENSSL_free(hex);
                return -ERANGE;
        }
        for (size_t i = 0; i <= n; i++)
                buf[i] = (char) (hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
        OPENSSL_free(hex);
        return 0;
}

int ca_cert_not_after(X509 *cert, int64_t *ret) {
        const ASN1_TIME *t = X509_get0_notAfter(cert);
        struct tm tm = {};

        if (!t || !ASN1_TIME_to_tm(t, &tm))
                return ringil_fail(-RINGIL_EMALFORMED, "certificate has no readable notAfter");
        *ret = (int64_t) timegm(&tm);
        return 0;
}

bool ca_cert_is_operator(X509 *cert) {
        X509_NAME *subj = X509_get_subject_name(cert);
        int idx = -1;

        while ((idx = X509_NAME_get_index_by_NID(subj, NID_organizationalUnitName, idx)) >= 0) {
                const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
                if (ASN1_STRING_length(s) == (int) strlen(CA_OPERATOR_OU) &&
                    memcmp(ASN1_STRING_get0_data(s), CA_OPERATOR_OU, strlen(CA_OPERATOR_OU)) == 0)
                        return true;
        }
        return false;
}
