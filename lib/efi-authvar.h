/* efi-authvar.h: time-based authenticated variable payloads (.auth files) for PK, KEK and db enrollment. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "crypto.h"
#include "efi-esl.h"

/*
 * An .auth file (UEFI 2.x §8.2.2, as sbctl/go-uefi and sbvarsign write it):
 *   EFI_TIME (16 bytes)
 *   WIN_CERTIFICATE_UEFI_GUID { u32 dwLength = 24 + len(sig); u16 wRevision = 0x0200;
 *                               u16 wCertificateType = 0x0EF1; EFI_GUID CertType = EFI_CERT_TYPE_PKCS7;
 *                               sig = DER PKCS#7 SignedData, outer ContentInfo stripped }
 *   the EFI_SIGNATURE_LIST(s) to store
 * The signature is detached, SHA-256, carries the signer certificate and the authenticated attributes
 * contentType, signingTime and messageDigest, over
 *   UTF-16LE(name, no NUL) || vendor GUID || u32 attributes || EFI_TIME || ESL.
 * Written to efivarfs behind the 4-byte attribute prefix, the firmware verifies it against PK (for PK
 * and KEK) or KEK (for db) — in Setup Mode the firmware accepts any signer for PK.
 */
#define EFI_TIME_SIZE 16
#define AUTH_ATTRIBUTES 0x27u   /* NV | BS | RT | TIME_BASED_AUTHENTICATED_WRITE_ACCESS */
#define AUTH_MAX_SIZE (1u << 20)

/* EFI_TIME for a Unix time, in UTC, nanoseconds/timezone/daylight zero. -ERANGE outside 1900..9999. */
int efi_time_from_unix(time_t t, uint8_t out[static EFI_TIME_SIZE]);

/* The bytes the signature covers. name is ASCII (variable names here are). */
int auth_signed_bytes(const char *name, const efi_guid *vendor, uint32_t attributes,
                      const uint8_t efi_time[static EFI_TIME_SIZE], const uint8_t *esl, size_t esl_len,
                      struct buf *out);

/* Append a complete .auth payload for variable name/vendor holding esl, signed by key/cert. */
int auth_build(const char *name, const efi_guid *vendor, uint32_t attributes, time_t t, const uint8_t *esl,
               size_t esl_len, EVP_PKEY *key, X509 *cert, struct buf *out);

struct auth_parts {
        const uint8_t *efi_time;   /* EFI_TIME_SIZE bytes */
        const uint8_t *sig;        /* PKCS#7: SignedData, or a full ContentInfo (efitools) */
        size_t sig_len;
        const uint8_t *esl;        /* may be empty (a deletion) */
        size_t esl_len;
};

/* Split an .auth payload; pointers go into p. -RINGIL_ETRUNCATED / -RINGIL_EMALFORMED / -RINGIL_ETOOBIG. */
int auth_parse(const uint8_t *p, size_t n, struct auth_parts *ret);

/*
 * Verify an .auth payload for name/vendor/attributes: it parses, its ESL parses, and its PKCS#7 signature
 * over the signed bytes verifies with exactly cert as the signer (no chain, as firmware does for PK/KEK
 * entries). 0 only when valid; -RINGIL_EBADSIG on a bad or foreign signature.
 */
int auth_verify(const uint8_t *p, size_t n, const char *name, const efi_guid *vendor, uint32_t attributes,
                X509 *cert);
