/* config-check.c: ringil-server's start-up checks of a parsed config: addresses, certificates for their role, files. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-check.h"
#include "crypto.h"
#include "err.h"
#include "log.h"
#include "parse.h"

struct check {
        const char *file;
        unsigned errors;
};

static void bad(struct check *k, const char *fmt, ...) _printf_(2, 3);
static void bad(struct check *k, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_error("%s: %s", k->file, msg);
        k->errors++;
}

/* HOST:PORT with a numeric port 0..65535 (0: the kernel picks one, printed on stdout). */
int server_check_listen(const char *spec, uint32_t *ret_port) {
        const char *colon = strrchr(spec, ':');
        uint32_t port;

        if (!colon || colon == spec)
                return -EINVAL;
        if (spec[0] == '[' && colon[-1] != ']')
                return -EINVAL;
        if (parse_u32_range(colon + 1, 0, 65535, &port) < 0)
                return -ERANGE;
        if (ret_port)
                *ret_port = port;
        return 0;
}

static void check_listen(struct check *k, const char *key, const char *spec) {
        int r = server_check_listen(spec, NULL);

        if (r == -ERANGE)
                bad(k, "%s '%s': the port must be a number from 1 to 65535 (0: any free port)", key, spec);
        else if (r < 0)
                bad(k, "%s '%s' is not HOST:PORT", key, spec);
}

/* Readable by this process, and of the expected kind. */
static bool check_file(struct check *k, const char *key, const char *path, bool want_dir) {
        struct stat st;

        if (stat(path, &st) < 0) {
                bad(k, "%s '%s': %s", key, path, strerror(errno));
                return false;
        }
        if (want_dir && !S_ISDIR(st.st_mode)) {
                bad(k, "%s '%s' is not a directory", key, path);
                return false;
        }
        if (!want_dir && !S_ISREG(st.st_mode)) {
                bad(k, "%s '%s' is not a regular file", key, path);
                return false;
        }
        if (access(path, want_dir ? R_OK | X_OK : R_OK) < 0) {
                bad(k, "%s '%s' is not readable: %s", key, path, strerror(errno));
                return false;
        }
        return true;
}

static X509 *load_cert(struct check *k, const char *key, const char *path) {
        X509 *x = NULL;

        if (!check_file(k, key, path, false))
                return NULL;
        if (crypto_load_cert(path, &x) < 0) {
                ERR_clear_error();
                bad(k, "%s '%s' is not a PEM certificate", key, path);
                return NULL;
        }
        if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
                bad(k, "%s '%s' has expired", key, path);
        else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
                bad(k, "%s '%s' is not valid yet", key, path);
        return x;
}

static void check_ca(struct check *k, const char *key, const char *path) {
        X509 *x = load_cert(k, key, path);

        /* X509_check_ca: 1 for basicConstraints CA:TRUE (and keyCertSign when keyUsage is present) */
        if (x && X509_check_ca(x) != 1)
                bad(k, "%s '%s' is not a CA certificate (no basicConstraints CA:TRUE or keyCertSign)", key, path);
        X509_free(x);
}

static void check_key_matches(struct check *k, const char *key, const char *path, X509 *cert, const char *cert_path) {
        EVP_PKEY *pk = NULL;

        if (!check_file(k, key, path, false))
                return;
        if (crypto_load_private_key(path, &pk) < 0) {
                ERR_clear_error();
                bad(k, "%s '%s' is not a PEM private key", key, path);
                return;
        }
        if (cert && X509_check_private_key(cert, pk) != 1)
                bad(k, "%s '%s' does not belong to the certificate '%s'", key, path, cert_path);
        ERR_clear_error();
        EVP_PKEY_free(pk);
}

int server_config_check(const char *file, const struct server_config *c) {
        struct check k = { .file = file };
        uint32_t p1 = 0, p2 = 0;
        X509 *cert;

        check_listen(&k, "listen", c->listen);
        if (c->enroll_listen) {
                check_listen(&k, "enroll-listen", c->enroll_listen);
                if (server_check_listen(c->listen, &p1) >= 0 && server_check_listen(c->enroll_listen, &p2) >= 0 &&
                    p1 != 0 && streq(c->listen, c->enroll_listen))
                        bad(&k, "listen and enroll-listen are both '%s'", c->listen);
        }

        /* INVARIANT: the server's certificate can serve TLS: serverAuth in its EKU, its key matches.
         * A client-only certificate here would make every drone's handshake fail. */
        cert = load_cert(&k, "cert", c->cert);
        if (cert) {
                uint32_t flags = X509_get_extension_flags(cert);
                if (!(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER))
                        bad(&k, "cert '%s' has no serverAuth extended key usage (not a server certificate)", c->cert);
                else if (X509_check_ca(cert) == 1)
                        bad(&k, "cert '%s' is a CA certificate, not a server certificate", c->cert);
        }
        check_key_matches(&k, "key", c->key, cert, c->cert);
        X509_free(cert);

        if (check_file(&k, "device-ca", c->device_ca, true)) {
                char pem[4096], key[4096];
                snprintf(pem, sizeof(pem), "%s/ca.pem", c->device_ca);
                snprintf(key, sizeof(key), "%s/ca.key", c->device_ca);
                check_ca(&k, "device-ca", pem);
                if (access(key, F_OK) == 0) {
                        X509 *ca = NULL;
                        if (crypto_load_cert(pem, &ca) < 0)
                                ERR_clear_error();
                        check_key_matches(&k, "device-ca", key, ca, pem);
                        X509_free(ca);
                } else if (c->enroll_listen)
                        bad(&k, "enroll-listen is set but '%s' does not exist: the server could not sign enrollment "
                                "certificates", key);
        }
        if (c->operator_ca)
                check_ca(&k, "operator-ca", c->operator_ca);
        {
                struct stat st;
                if (stat(c->keyring, &st) < 0)
                        bad(&k, "keyring '%s': %s", c->keyring, strerror(errno));
                else
                        (void) check_file(&k, "keyring", c->keyring, S_ISDIR(st.st_mode));
        }
        {
                /* the database and the store are created if missing: their parent must exist */
                const char *paths[] = { c->db, c->store_dir };
                const char *keys[] = { "db", "store" };
                for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                        char parent[4096];
                        char *slash;
                        if (paths[i][0] != '/')
                                continue;   /* a PostgreSQL URL: checked when the store connects */
                        snprintf(parent, sizeof(parent), "%s", paths[i]);
                        slash = strrchr(parent, '/');
                        if (!slash)
                                continue;
                        if (slash == parent)
                                slash[1] = '\0';
                        else
                                *slash = '\0';
                        if (access(parent, W_OK | X_OK) < 0)
                                bad(&k, "%s '%s': its directory '%s' is not writable: %s", keys[i], paths[i], parent,
                                    strerror(errno));
                }
        }
        return k.errors ? -EINVAL : 0;
}
