/* efi-authenticode.h: signing and verifying EFI binaries the way UEFI firmware, sbsign and sbverify do. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "efi-pe.h"

/*
 * The signature is a PKCS#7 SignedData whose content is an SpcIndirectDataContent
 * (1.3.6.1.4.1.311.2.1.4) holding SpcPeImageData (1.3.6.1.4.1.311.2.1.15) and the SHA-256
 * Authenticode hash of the image (efi-pe.h). One SignerInfo, SHA-256, signed attributes contentType (=
 * SpcIndirectDataContent), signingTime, SMIMECapabilities and messageDigest, the signer certificate
 * included: the structure sbsign produces. It is stored as a WIN_CERTIFICATE (revision 0x0200, type
 * PKCS_SIGNED_DATA, padded to 8 bytes) in the certificate table at the end of the file.
 */

#define AUTHENTICODE_OID_SPC_INDIRECT_DATA "1.3.6.1.4.1.311.2.1.4"
#define AUTHENTICODE_OID_SPC_PE_IMAGE_DATA "1.3.6.1.4.1.311.2.1.15"

enum {
        /* Keep existing signatures and add ours after them (sbsign's behaviour). The default replaces
         * them, so that a signature by a retired key does not outlive a re-signing. */
        AUTHENTICODE_SIGN_APPEND = 1 << 0,
};

/*
 * Sign image (size bytes) with key/cert. On success *ret_image is a malloc'd new image (caller frees):
 * the input cut at its certificate table (or zero-padded to 8 bytes if unsigned — the padding is
 * hashed, as sbsign does), the new table appended, data directory 4 and CheckSum updated.
 * *ret_replaced (may be NULL) is the number of signatures dropped. -EINVAL if the key does not match
 * the certificate; pe_parse() errors for a bad image; -RINGIL_ETOOBIG if the table would exceed its cap.
 */
int authenticode_sign(const uint8_t *image, size_t size, EVP_PKEY *key, X509 *cert, unsigned flags,
                      uint8_t **ret_image, size_t *ret_size, unsigned *ret_replaced);

struct authenticode_info {
        uint8_t image_hash[SHA256_LEN];  /* computed from the file */
        unsigned n_signatures;           /* WIN_CERTIFICATE entries in the table */
        unsigned valid_index;            /* which one verified (0-based) */
        char signer[256];                /* subject of the signer certificate, one line */
};

/*
 * Verify image against trust, the only trust anchor (a self-signed db certificate, or a CA that
 * issued the signer; chains through certificates carried in the signature are followed). Like UEFI
 * firmware and sbverify, certificate validity dates are NOT checked: firmware has no trustworthy clock,
 * and a db certificate that expired still verifies on the device. Like sbverify, a signer that fails
 * the S/MIME signing purpose is accepted when its extended key usage has code signing.
 *
 * Every WIN_CERTIFICATE is examined in turn; the image is valid when one PKCS_SIGNED_DATA entry is:
 *   a well-formed SignedData with exactly one SignerInfo and signed attributes, whose contentType
 *   attribute and content are SpcIndirectDataContent; the signature over them verifies (else
 *   -RINGIL_EBADSIG); the signer chains to trust (else -RINGIL_EUNTRUSTED); and the SHA-256 digest
 *   inside equals the image hash recomputed now, compared in constant time (else -RINGIL_EDIGEST).
 * An unsigned image, or one without a usable entry, is -RINGIL_EBADSIG; a bad image or entry is
 * -RINGIL_EMALFORMED/-RINGIL_ETRUNCATED/-RINGIL_ETOOBIG. When no entry is valid the error of the first
 * PKCS entry is returned. Returns 0 ONLY when valid; *ret_info (may be NULL) is filled only then.
 */
int authenticode_verify(const uint8_t *image, size_t size, X509 *trust, struct authenticode_info *ret_info);

/* The Authenticode SHA-256 of an image (signed or not), for `ringil efi hash`. */
int authenticode_image_hash(const uint8_t *image, size_t size, uint8_t out[static SHA256_LEN]);
