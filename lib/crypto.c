/* crypto.c: PEM loading, hashing and OpenSSL error capture, shared by keys, EFI signing and bundles. */
#include <ctype.h>
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "parse.h"
#include "err.h"
#include "fileio.h"
#include "secret.h"

int crypto_fail(int r, const char *what) {
        unsigned long e = ERR_peek_last_error();
        char msg[256] = "";

        if (e)
                ERR_error_string_n(e, msg, sizeof(msg));
        ERR_clear_error();
        ringil_set_detail("%s%s%s", what, e ? ": " : "", msg);
        return r;
}

int crypto_load_private_key(const char *path, EVP_PKEY **ret) {
        uint8_t *data = NULL;
        size_t len = 0;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        EVP_PKEY *pkey;
        int r;

        r = read_full_file(path, RFILE_SECRET, CRYPTO_MAX_PEM, &data, &len);
        if (r < 0)
                return ringil_fail(r, "cannot read key '%s'", path);
        bio = BIO_new_mem_buf(data, (int) len);
        if (!bio) {
                secret_free(data, len);
                return -ENOMEM;
        }
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        secret_free(data, len);
        if (!pkey)
                return crypto_fail(-RINGIL_EMALFORMED, "not a PEM private key");
        *ret = pkey;
        return 0;
}

int crypto_parse_pem_certs(const uint8_t *data, size_t len, STACK_OF(X509) *sk) {
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        int n = 0;

        if (len > CRYPTO_MAX_PEM)
                return -RINGIL_ETOOBIG;
        bio = BIO_new_mem_buf(data, (int) len);
        if (!bio)
                return -ENOMEM;
        for (;;) {
                X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                if (!x)
                        break;
                if (!sk_X509_push(sk, x)) {
                        X509_free(x);
                        return -ENOMEM;
                }
                n++;
        }
        ERR_clear_error();   /* the loop ends on "no start line": not an error */
        return n;
}

int crypto_load_cert(const char *path, X509 **ret) {
        _cleanup_x509_stack_ STACK_OF(X509) *sk = sk_X509_new_null();
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        if (!sk)
                return -ENOMEM;
        r = read_full_file(path, 0, CRYPTO_MAX_PEM, &data, &len);
        if (r < 0)
                return ringil_fail(r, "cannot read certificate '%s'", path);
        r = crypto_parse_pem_certs(data, len, sk);
        if (r < 0)
                return r;
        if (r == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "no PEM certificate in '%s'", path);
        *ret = sk_X509_shift(sk);
        return 0;
}

static int cert_name_filter(const struct dirent *de) {
        const char *dot = strrchr(de->d_name, '.');

        return de->d_name[0] != '.' && dot && (streq(dot, ".pem") || streq(dot, ".crt") || streq(dot, ".cer"));
}

int crypto_load_certs(const char *path, STACK_OF(X509) **ret) {
        _cleanup_x509_stack_ STACK_OF(X509) *sk = sk_X509_new_null();
        struct stat st;
        int r;

        if (!sk)
                return -ENOMEM;
        if (stat(path, &st) < 0)
                return ringil_fail(negative_errno(), "cannot open keyring '%s'", path);
        if (S_ISDIR(st.st_mode)) {
                struct dirent **names = NULL;
                int n = scandir(path, &names, cert_name_filter, alphasort);
                if (n < 0)
                        return negative_errno();
                r = 0;
                for (int i = 0; i < n; i++) {
                        _cleanup_free_ char *p = NULL;
                        _cleanup_free_ uint8_t *data = NULL;
                        size_t len;

                        if (r >= 0 && asprintf(&p, "%s/%s", path, names[i]->d_name) < 0)
                                r = -ENOMEM;
                        if (r >= 0)
                                r = read_full_file(p, 0, CRYPTO_MAX_PEM, &data, &len);
                        if (r >= 0)
                                r = crypto_parse_pem_certs(data, len, sk);
                        free(names[i]);
                }
                free(names);
                if (r < 0)
                        return r;
        } else {
                _cleanup_free_ uint8_t *data = NULL;
                size_t len;

                r = read_full_file(path, 0, CRYPTO_MAX_PEM, &data, &len);
                if (r < 0)
                        return ringil_fail(r, "cannot read keyring '%s'", path);
                r = crypto_parse_pem_certs(data, len, sk);
                if (r < 0)
                        return r;
        }
        if (sk_X509_num(sk) == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "no certificates in keyring '%s'", path);
        *ret = TAKE_PTR(sk);
        return 0;
}

int crypto_sha256(const void *data, size_t len, uint8_t out[static SHA256_LEN]) {
        unsigned n = 0;

        if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != SHA256_LEN)
                return crypto_fail(-EIO, "SHA-256");
        return 0;
}

int crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, uint8_t out[static SHA256_LEN]) {
        size_t n = 0;

        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, len, out, SHA256_LEN, &n) ||
            n != SHA256_LEN)
                return crypto_fail(-EIO, "HMAC-SHA256");
        return 0;
}

int crypto_cert_sha256(X509 *cert, uint8_t out[static SHA256_LEN]) {
        unsigned n = 0;

        if (!X509_digest(cert, EVP_sha256(), out, &n) || n != SHA256_LEN)
                return crypto_fail(-EIO, "certificate digest");
        return 0;
}

char *hex_encode(const uint8_t *p, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[p[i] >> 4];
                out[2 * i + 1] = digits[p[i] & 15];
        }
        out[2 * n] = '\0';
        return out;
}


int hex_decode(const char *s, uint8_t *out, size_t n) {
        if (!s || strlen(s) != 2 * n)
                return -RINGIL_EMALFORMED;
        for (size_t i = 0; i < n; i++) {
                int hi = unhexchar(s[2 * i]), lo = unhexchar(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -RINGIL_EMALFORMED;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

int crypto_random(void *p, size_t n) {
        if (n > INT32_MAX || RAND_bytes(p, (int) n) != 1)
                return crypto_fail(-EIO, "random bytes");
        return 0;
}

int crypto_memcmp(const void *a, const void *b, size_t n) {
        return CRYPTO_memcmp(a, b, n) == 0 ? 0 : 1;
}

int crypto_base64_decode(const char *s, size_t n, uint8_t *out, size_t want) {
        _cleanup_free_ uint8_t *tmp = NULL;
        size_t pad = 0;
        int k;

        /* EVP_DecodeBlock ignores nothing we care about but counts padding as data: check the shape first. */
        if (n == 0 || n % 4 != 0 || n > 4096 || n / 4 * 3 < want)
                return -RINGIL_EMALFORMED;
        for (size_t i = 0; i < n; i++)
                if (!(isalnum((unsigned char) s[i]) || s[i] == '+' || s[i] == '/' || (s[i] == '=' && i >= n - 2)))
                        return -RINGIL_EMALFORMED;
        if (s[n - 1] == '=')
                pad = s[n - 2] == '=' ? 2 : 1;
        else if (s[n - 2] == '=')
                return -RINGIL_EMALFORMED;
        if (n / 4 * 3 - pad != want)
                return -RINGIL_EMALFORMED;
        tmp = malloc(n / 4 * 3);
        if (!tmp)
                return -ENOMEM;
        k = EVP_DecodeBlock(tmp, (const unsigned char *) s, (int) n);
        if (k < 0 || (size_t) k != n / 4 * 3)
                return -RINGIL_EMALFORMED;
        /* Canonical only: the unused low bits before '=' must be zero, so one value has one spelling
         * (otherwise "…Dg==" and "…Dm==" decode to the same signature). */
        {
                _cleanup_free_ char *again = malloc(n + 1);
                if (!again)
                        return -ENOMEM;
                if (EVP_EncodeBlock((unsigned char *) again, tmp, (int) want) != (int) n || memcmp(again, s, n) != 0)
                        return -RINGIL_EMALFORMED;
        }
        memcpy(out, tmp, want);
        return 0;
}

int crypto_base64_encode(const uint8_t *p, size_t n, char *out, size_t cap) {
        if (n > 3072 || cap < (n + 2) / 3 * 4 + 1)
                return -ENOBUFS;
        return EVP_EncodeBlock((unsigned char *) out, p, (int) n) < 0 ? -EINVAL : 0;
}

int crypto_ed25519_public(const uint8_t seed[static 32], uint8_t ret[static 32]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
        size_t n = 32;

        if (!pk || EVP_PKEY_get_raw_public_key(pk, ret, &n) != 1 || n != 32) {
                ERR_clear_error();
                return crypto_fail(-EINVAL, "ed25519 key");
        }
        return 0;
}

int crypto_ed25519_verify(const uint8_t pub[static 32], const void *msg, size_t len, const uint8_t sig[static 64]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pk = NULL;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;

        pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
        ctx = EVP_MD_CTX_new();
        if (!pk || !ctx) {
                ERR_clear_error();
                return -ENOMEM;
        }
        /* INVARIANT: 0 only for a signature that verifies; every other outcome fails closed. */
        if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) != 1 ||
            EVP_DigestVerify(ctx, sig, 64, msg, len) != 1) {
                ERR_clear_error();
                return -RINGIL_EBADSIG;
        }
        return 0;
}

int crypto_sha256_begin(EVP_MD_CTX **ret) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(ctx);
                return crypto_fail(-ENOMEM, "SHA-256");
        }
        *ret = ctx;
        return 0;
}

int crypto_sha256_update(EVP_MD_CTX *ctx, const void *p, size_t n) {
        return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : crypto_fail(-EIO, "SHA-256");
}

int crypto_sha256_final(EVP_MD_CTX *ctx, uint8_t out[static SHA256_LEN]) {
        unsigned n = 0;
        int r = EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == SHA256_LEN ? 0 : crypto_fail(-EIO, "SHA-256");

        EVP_MD_CTX_free(ctx);
        return r;
}
