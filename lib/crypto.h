/* crypto.h: the OpenSSL boundary: cleanup helpers, PEM loading with caps, hashing, error capture. */
#pragma once

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
/* keys: PEM encoding, serial numbers, the error queue */
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/*
 * Every other module that needs OpenSSL includes this header, not <openssl/…> directly, so the
 * policy (caps, wiping, error capture) lives in one place.
 */

#define CRYPTO_MAX_PEM (1u << 20)       /* a key/cert/keyring file is never larger than 1 MiB */
#define SHA256_LEN 32

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_NAME *, X509_NAME_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all)
DEFINE_TRIVIAL_CLEANUP_FUNC(PKCS7 *, PKCS7_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(CMS_ContentInfo *, CMS_ContentInfo_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_INTEGER *, ASN1_INTEGER_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free)

static inline void sk_X509_pop_freep(STACK_OF(X509) **p) {
        if (*p)
                sk_X509_pop_free(*p, X509_free);
}
#define _cleanup_x509_stack_ _cleanup_(sk_X509_pop_freep)

/*
 * Record OpenSSL's error queue (first entry) as the failure detail, prefixed with `what`, clear the
 * queue, and return r. For `return crypto_fail(-RINGIL_EBADSIG, "CMS verify")`.
 */
int crypto_fail(int r, const char *what);

/*
 * Load a PEM private key (PKCS#8 or PKCS#1, unencrypted). The file is read into a wiped buffer so no
 * copy of the key outlives the call. -ENOENT, -EFBIG, -RINGIL_EMALFORMED.
 */
int crypto_load_private_key(const char *path, EVP_PKEY **ret);

/* Load the first PEM certificate from a file. */
int crypto_load_cert(const char *path, X509 **ret);

/*
 * Load every PEM certificate from a file, or from every regular file in a directory (sorted, not
 * recursive; names ending .pem, .crt or .cer). Fails with -RINGIL_EMALFORMED if nothing was found.
 */
int crypto_load_certs(const char *path, STACK_OF(X509) **ret);

/* Parse certificates from PEM bytes into an existing stack. Returns the number added. */
int crypto_parse_pem_certs(const uint8_t *data, size_t len, STACK_OF(X509) *sk);

/* SHA-256 of a buffer. */
int crypto_sha256(const void *data, size_t len, uint8_t out[static SHA256_LEN]);

/* SHA-256 of a certificate's DER encoding (the "certificate hash" used for matching). */
int crypto_cert_sha256(X509 *cert, uint8_t out[static SHA256_LEN]);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
char *hex_encode(const uint8_t *p, size_t n, char *out);
/* Strict hex decode of exactly 2n characters into n bytes. */
int hex_decode(const char *s, uint8_t *out, size_t n);

/* HMAC-SHA256 of data under key. */
int crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, uint8_t out[static SHA256_LEN]);

/* Fill with cryptographically secure random bytes. */
int crypto_random(void *p, size_t n);

/* Constant-time compare; 0 when equal. */
int crypto_memcmp(const void *a, const void *b, size_t n);

/* nix: Nix's signatures and hashes */
/* Strict standard base64 (with padding) of s[0..n) into out; exactly want bytes must result. */
int crypto_base64_decode(const char *s, size_t n, uint8_t *out, size_t want);
/* Standard base64 (with padding, NUL-terminated) of p[0..n) into out (cap bytes; -ENOBUFS if short). */
int crypto_base64_encode(const uint8_t *p, size_t n, char *out, size_t cap);
/* The ed25519 public key of a 32-byte private seed. */
int crypto_ed25519_public(const uint8_t seed[static 32], uint8_t ret[static 32]);
/* 0 only when sig is a valid ed25519 signature of msg by pub; -RINGIL_EBADSIG otherwise. */
int crypto_ed25519_verify(const uint8_t pub[static 32], const void *msg, size_t len, const uint8_t sig[static 64]);
/* Incremental SHA-256: begin → update… → final (which frees the context). */
int crypto_sha256_begin(EVP_MD_CTX **ret);
int crypto_sha256_update(EVP_MD_CTX *ctx, const void *p, size_t n);
int crypto_sha256_final(EVP_MD_CTX *ctx, uint8_t out[static SHA256_LEN]);
