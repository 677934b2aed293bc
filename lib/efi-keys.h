/* efi-keys.h: the sbctl-compatible Secure Boot key bundle (PK, KEK, db): layout, creation and loading. */
#pragma once

#include <stdbool.h>
#include <time.h>

#include "crypto.h"
#include "efi-esl.h"

/*
 * Layout (identical to `sbctl create-keys`, so lanzaboote's pkiBundle and sbctl can use it):
 *   DIR/GUID                         owner GUID, 36 lowercase characters, no newline, 0644
 *   DIR/keys/{PK,KEK,db}/NAME.key    RSA-4096 private key, unencrypted PKCS#8 PEM, 0400
 *   DIR/keys/{PK,KEK,db}/NAME.pem    self-signed X.509 v3 certificate, PEM, 0400
 * Directories we create are 0700 (sbctl uses 0755; nothing in the bundle needs to be world-readable).
 */
#define KEYS_DIR_DEFAULT "/etc/secure/keys"
#define KEYS_RSA_BITS 4096
#define KEYS_VALIDITY_YEARS 5

enum sb_key {
        SB_KEY_PK,
        SB_KEY_KEK,
        SB_KEY_DB,
        _SB_KEY_MAX,
};

const char *sb_key_name(enum sb_key k);         /* "PK", "KEK", "db": variable, directory and file name */
const char *sb_key_description(enum sb_key k);  /* certificate CN: "Platform Key", … */
const efi_guid *sb_key_vendor(enum sb_key k);   /* EFI global variable GUID, or image security db */
enum sb_key sb_key_signer(enum sb_key k);       /* PK signs PK and KEK; KEK signs db */

/* Paths inside a bundle (malloc'd). ext is "key" or "pem". */
int keys_path(const char *dir, enum sb_key k, const char *ext, char **ret);

/* Read DIR/GUID: exactly 36 characters (a trailing newline is rejected, as sbctl does). */
int keys_read_guid(const char *dir, efi_guid *ret);

/*
 * Generate one RSA-4096 key (e=65537) and its self-signed certificate: v3, sha256WithRSAEncryption,
 * positive random 128-bit serial, notBefore=now, notAfter=now+5 years (same calendar day), subject =
 * issuer = CN=<cn>, no extensions. Slow (about a second per key).
 */
int keys_generate(const char *cn, time_t now, EVP_PKEY **ret_key, X509 **ret_cert);

struct keys_create_result {
        efi_guid guid;
        bool guid_created;   /* false: an existing DIR/GUID was kept */
};

/*
 * Create the bundle in dir. An existing GUID file is kept (it must parse). If any of keys/PK, keys/KEK
 * or keys/db already exists nothing is generated or changed and -EEXIST is returned (with the GUID
 * already handled, as sbctl does: *ret is filled as soon as the GUID is settled, also on -EEXIST). Keys are written to a staging directory with O_EXCL files and moved
 * into place by rename; on failure the staging directory is removed, so no half bundle is left.
 * Private key material is serialized only into wiped memory.
 */
int keys_create(const char *dir, struct keys_create_result *ret);

/* Load a bundle member. ret_key may be NULL to load only the certificate. */
int keys_load(const char *dir, enum sb_key k, EVP_PKEY **ret_key, X509 **ret_cert);

/* Append k's certificate from the bundle as one X509 EFI_SIGNATURE_LIST owned by DIR/GUID. */
int keys_build_esl(const char *dir, enum sb_key k, struct buf *out);

/*
 * Append the .auth payload enrolling k's ESL, with EFI_TIME from t, signed by sb_key_signer(k)'s key
 * (PK for PK and KEK, KEK for db). Needs that private key in the bundle.
 */
int keys_build_auth(const char *dir, enum sb_key k, time_t t, struct buf *out);
