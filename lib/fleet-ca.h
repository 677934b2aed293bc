/* fleet-ca.h: the fleet's device CA: EC P-256 keys and X.509 v3 certificates for drones, operators, servers. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "crypto.h"

/*
 * Layout of a CA directory: DIR/ca.key (PKCS#8 PEM, 0400, never overwritten) and DIR/ca.pem.
 * The device CA is separate from the Secure Boot PKI: it only says "this TLS peer is drone X" (or an
 * operator, or the fleet server). It never signs code; bundles are trusted through the bundle keyring.
 *
 * Certificate profiles (all EC P-256, ecdsa-with-SHA256, positive random 127-bit serial):
 *   CA       basicConstraints critical CA:TRUE, pathlen:0; keyUsage critical keyCertSign, cRLSign
 *   device   CN=NAME; CA:FALSE; keyUsage digitalSignature; EKU clientAuth
 *   operator CN=NAME, OU=operator; CA:FALSE; keyUsage digitalSignature; EKU clientAuth
 *   server   CN=NAME; SAN DNS:NAME or IP:NAME (+ extra SANs); EKU serverAuth
 * The fleet server tells operators from drones by OU=operator *and* the issuing CA, so a drone
 * certificate can never act as an operator even when one CA issues both.
 */

enum ca_profile {
        CA_PROFILE_DEVICE,
        CA_PROFILE_OPERATOR,
        CA_PROFILE_SERVER,
};

#define CA_NAME_MAX 64
#define CA_DEFAULT_DAYS 825u
#define CA_OPERATOR_OU "operator"

/* A drone/operator/server name: 1-64 of [A-Za-z0-9._-], starting with a letter or digit.
 * Returns 0 or -EINVAL. Names become file names and SQL keys, so nothing else is allowed. */
int ca_name_valid(const char *name);

/* Create DIR (0700) with a new CA key and self-signed certificate. -EEXIST if DIR/ca.key exists. */
int ca_create(const char *dir, const char *cn, unsigned days);

/* Load DIR/ca.key and DIR/ca.pem, checking that they belong together. */
int ca_load(const char *dir, EVP_PKEY **ret_key, X509 **ret_cert);

/*
 * Issue a certificate for `name` with a fresh key: writes OUT_DIR/NAME.key (0400, O_EXCL) and
 * OUT_DIR/NAME.pem. extra_sans: NULL-terminated "DNS:x"/"IP:y" strings (server profile), or NULL.
 * -EEXIST if either file exists; nothing is left behind on failure.
 */
int ca_issue(const char *dir, const char *name, enum ca_profile profile, const char *const *extra_sans,
             unsigned days, const char *out_dir);

/*
 * Sign a certificate for `name` over `pubkey` (which must be EC P-256) with the CA key and cert.
 * Nothing from a request is copied but the public key: subject and extensions are ours.
 */
int ca_sign(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *pubkey, const char *name, enum ca_profile profile,
            const char *const *extra_sans, unsigned days, X509 **ret);

/* A new EC P-256 key. */
int ca_generate_key(EVP_PKEY **ret);

/* Write a private key as PKCS#8 PEM to path, created O_EXCL|O_NOFOLLOW with mode; the PEM text is
 * wiped from memory afterwards. */
int ca_write_key(const char *path, EVP_PKEY *key, mode_t mode);
/* Write a certificate as PEM, created O_EXCL with mode 0444. */
int ca_write_cert(const char *path, X509 *cert);

/* PEM text of a certificate / of a CSR for `name` over key (malloc'd, NUL-terminated). */
int ca_cert_to_pem(X509 *cert, char **ret);
int ca_make_csr_pem(EVP_PKEY *key, const char *name, char **ret);

/* Parse a PEM CSR (at most 8 KiB), check its self-signature, and return its public key, which must
 * be EC P-256. -RINGIL_EMALFORMED / -RINGIL_EBADSIG / -RINGIL_EUNTRUSTED (wrong key type). */
int ca_csr_pubkey(const char *pem, size_t len, EVP_PKEY **ret);

/* CN of a certificate's subject into buf (CA_NAME_MAX+1); -RINGIL_EMALFORMED unless exactly one CN
 * that passes ca_name_valid(). */
int ca_cert_cn(X509 *cert, char buf[static CA_NAME_MAX + 1]);
/* The serial number as lowercase hex without leading zeros (BN_bn2hex's digits: "0" for zero, a '-'
 * before a negative one) into buf. -ENOMEM, or -ERANGE when longer than CA_SERIAL_HEX_MAX; buf is only
 * written on success. */
#define CA_SERIAL_HEX_MAX 64
int ca_cert_serial_hex(X509 *cert, char buf[static CA_SERIAL_HEX_MAX + 1]);
/* notAfter as Unix seconds (UTC); -RINGIL_EMALFORMED when it cannot be read. */
int ca_cert_not_after(X509 *cert, int64_t *ret);
/* Whether the subject carries OU=operator. */
bool ca_cert_is_operator(X509 *cert);
