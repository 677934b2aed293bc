/* efi-esl.h: EFI GUIDs and EFI_SIGNATURE_LIST parsing/building (UEFI spec 2.x §32.4.1). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* An EFI_GUID in its on-disk byte order (first three fields little-endian, "mixed-endian"). */
typedef struct {
        uint8_t b[16];
} efi_guid;

#define EFI_GUID_STRING_MAX 37   /* 36 characters + NUL */

extern const efi_guid EFI_GLOBAL_VARIABLE_GUID;          /* 8be4df61-93ca-11d2-aa0d-00e098032b8c */
extern const efi_guid EFI_IMAGE_SECURITY_DATABASE_GUID;  /* d719b2cb-3d3a-4596-a3bc-dad00e67656f */
extern const efi_guid EFI_CERT_X509_GUID;                /* a5c059a1-94e4-4aa7-87b5-ab155c2bf072 */
extern const efi_guid EFI_CERT_SHA256_GUID;              /* c1c41626-504c-4092-aca9-41f936934328 */
extern const efi_guid EFI_CERT_TYPE_PKCS7_GUID;          /* 4aafd29d-68df-49ee-8aa9-347d375665a7 */
extern const efi_guid LOADER_GUID;                       /* 4a67b082-0a4c-41cf-b6c7-440b29bb8c4f */
extern const efi_guid MICROSOFT_OWNER_GUID;              /* 77fa9abd-0359-4d32-bd60-28f4e78f784b */

/* Parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case; nothing else accepted). */
int efi_guid_from_string(const char *s, efi_guid *ret);
/* Lowercase canonical form. */
char *efi_guid_to_string(const efi_guid *g, char out[static EFI_GUID_STRING_MAX]);
int efi_guid_equal(const efi_guid *a, const efi_guid *b);

#define ESL_MAX_SIZE (1u << 20)       /* a PK/KEK/db variable is far smaller in practice */
#define ESL_MAX_ENTRIES 4096

/* One EFI_SIGNATURE_DATA; data points into the buffer given to esl_parse(). */
struct esl_entry {
        efi_guid type;    /* the list's SignatureType */
        efi_guid owner;   /* SignatureOwner */
        const uint8_t *data;
        size_t len;
};

/*
 * Parse a concatenation of EFI_SIGNATURE_LISTs (a PK/KEK/db/dbx variable's data, without the
 * 4-byte efivarfs attribute prefix). Every size field is checked against the remaining input and the
 * caps above. On success *ret_entries is malloc'd (count may be 0 for empty input).
 * -RINGIL_EMALFORMED / -RINGIL_ETRUNCATED / -RINGIL_ETOOBIG otherwise.
 */
int esl_parse(const uint8_t *p, size_t n, struct esl_entry **ret_entries, size_t *ret_count);

/* Append one EFI_SIGNATURE_LIST of type X509 holding a single DER certificate owned by owner. */
int esl_append_x509(struct buf *out, const efi_guid *owner, const uint8_t *der, size_t der_len);
