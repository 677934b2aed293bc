/* efi-authvar.c: building, splitting and verifying time-based authenticated variable (.auth) payloads. */
#include <stdbool.h>
#include <string.h>

#include "efi-authvar.h"
#include "err.h"
#include "macro.h"

#define WIN_CERT_HEADER_SIZE 24u   /* dwLength, wRevision, wCertificateType, CertType GUID */
#define WIN_CERT_REVISION 0x0200u
#define WIN_CERT_TYPE_EFI_GUID 0x0EF1u

static void put_le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
        put_le16(p, (uint16_t) v);
        put_le16(p + 2, (uint16_t) (v >> 16));
}

int efi_time_from_unix(time_t t, uint8_t out[static EFI_TIME_SIZE]) {
        struct tm tm;

        if (!gmtime_r(&t, &tm))
                return -ERANGE;
        if (tm.tm_year + 1900 < 1900 || tm.tm_year + 1900 > 9999)
                return -ERANGE;
        memset(out, 0, EFI_TIME_SIZE);
        put_le16(out, (uint16_t) (tm.tm_year + 1900));
        out[2] = (uint8_t) (tm.tm_mon + 1);
        out[3] = (uint8_t) tm.tm_mday;
        out[4] = (uint8_t) tm.tm_hour;
        out[5] = (uint8_t) tm.tm_min;
        out[6] = (uint8_t) MIN(tm.tm_sec, 59);   /* leap second: EFI_TIME allows 0..59 */
        /* Pad1, Nanosecond, TimeZone, Daylight, Pad2 stay 0, as firmware requires for auth variables. */
        return 0;
}

int auth_signed_bytes(const char *name, const efi_guid *vendor, uint32_t attributes,
                      const uint8_t efi_time[static EFI_TIME_SIZE], const uint8_t *esl, size_t esl_len,
                      struct buf *out) {
        uint8_t a[4];
        int r;

        if (!name || !*name || strlen(name) > 128)
                return -EINVAL;
        for (const char *c = name; *c; c++) {
                uint8_t u[2] = { (uint8_t) *c, 0 };
                if ((unsigned char) *c >= 0x80)
                        return -EINVAL;
                r = buf_append(out, u, 2);
                if (r < 0)
                        return r;
        }
        put_le32(a, attributes);
        r = buf_append(out, vendor->b, 16);
        if (r >= 0)
                r = buf_append(out, a, 4);
        if (r >= 0)
                r = buf_append(out, efi_time, EFI_TIME_SIZE);
        if (r >= 0 && esl_len > 0)
                r = buf_append(out, esl, esl_len);
        return r;
}

int auth_build(const char *name, const efi_guid *vendor, uint32_t attributes, time_t t, const uint8_t *esl,
               size_t esl_len, EVP_PKEY *key, X509 *cert, struct buf *out) {
        _cleanup_buf_ struct buf signed_bytes = BUF_INIT(AUTH_MAX_SIZE);
        _cleanup_(BIO_free_allp) BIO *in = NULL;
        _cleanup_(PKCS7_freep) PKCS7 *p7 = NULL;
        const int flags = PKCS7_DETACHED | PKCS7_BINARY | PKCS7_NOSMIMECAP | PKCS7_PARTIAL;
        uint8_t tm[EFI_TIME_SIZE], hdr[WIN_CERT_HEADER_SIZE];
        unsigned char *der = NULL;
        size_t old_len = out->len;
        int der_len, r;

        r = efi_time_from_unix(t, tm);
        if (r < 0)
                return r;
        r = auth_signed_bytes(name, vendor, attributes, tm, esl, esl_len, &signed_bytes);
        if (r < 0)
                return r;

        in = BIO_new_mem_buf(signed_bytes.data, (int) signed_bytes.len);
        if (!in)
                return -ENOMEM;
        p7 = PKCS7_sign(NULL, NULL, NULL, NULL, flags);
        if (!p7)
                return crypto_fail(-ENOMEM, "PKCS7_sign");
        if (!PKCS7_sign_add_signer(p7, cert, key, EVP_sha256(), flags))
                return crypto_fail(-EINVAL, "PKCS#7 signer");
        if (!PKCS7_final(p7, in, flags))
                return crypto_fail(-EIO, "PKCS#7 signature");
        /* Firmware (and sbctl, sbvarsign) expect the SignedData itself, not the ContentInfo around it. */
        der_len = i2d_PKCS7_SIGNED(p7->d.sign, &der);
        if (der_len <= 0)
                return crypto_fail(-EIO, "SignedData encoding");

        put_le32(hdr, WIN_CERT_HEADER_SIZE + (uint32_t) der_len);
        put_le16(hdr + 4, WIN_CERT_REVISION);
        put_le16(hdr + 6, WIN_CERT_TYPE_EFI_GUID);
        memcpy(hdr + 8, EFI_CERT_TYPE_PKCS7_GUID.b, 16);
        r = buf_append(out, tm, sizeof(tm));
        if (r >= 0)
                r = buf_append(out, hdr, sizeof(hdr));
        if (r >= 0)
                r = buf_append(out, der, (size_t) der_len);
        if (r >= 0 && esl_len > 0)
                r = buf_append(out, esl, esl_len);
        OPENSSL_free(der);
        if (r < 0) {
                out->len = old_len;
                if (out->data)
                        out->data[old_len] = 0;
        }
        return r;
}

int auth_parse(const uint8_t *p, size_t n, struct auth_parts *ret) {
        uint32_t len;
        uint16_t rev, type;

        if (n > AUTH_MAX_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, ".auth of %zu bytes exceeds %u", n, AUTH_MAX_SIZE);
        if (!p || n < EFI_TIME_SIZE + WIN_CERT_HEADER_SIZE)
                return ringil_fail(-RINGIL_ETRUNCATED, ".auth shorter than its headers");
        len = (uint32_t) p[16] | (uint32_t) p[17] << 8 | (uint32_t) p[18] << 16 | (uint32_t) p[19] << 24;
        rev = (uint16_t) (p[20] | p[21] << 8);
        type = (uint16_t) (p[22] | p[23] << 8);
        if (rev != WIN_CERT_REVISION || type != WIN_CERT_TYPE_EFI_GUID ||
            memcmp(p + 24, EFI_CERT_TYPE_PKCS7_GUID.b, 16) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, ".auth: not a WIN_CERTIFICATE_UEFI_GUID with PKCS#7");
        if (len <= WIN_CERT_HEADER_SIZE)
                return ringil_fail(-RINGIL_EMALFORMED, ".auth: empty signature");
        if (len > n - EFI_TIME_SIZE)
                return ringil_fail(-RINGIL_ETRUNCATED, ".auth: signature of %u bytes runs past the end", len);
        /* UEFI 2.x §8.2.2: Pad1, Nanosecond, TimeZone, Daylight and Pad2 are 0 in a time-based
         * authenticated write; firmware refuses anything else, so a verifier must too. */
        for (size_t i = 7; i < EFI_TIME_SIZE; i++)
                if (p[i] != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, ".auth: EFI_TIME padding/nanosecond/zone fields not zero");
        /* An all-zero time (efitools `sign-efi-sig-list -a`, used for appends) is valid as such. */
        if (memcmp(p, (const uint8_t[7]){}, 7) != 0 &&
            (p[2] < 1 || p[2] > 12 || p[3] < 1 || p[3] > 31 || p[4] > 23 || p[5] > 59 || p[6] > 59))
                return ringil_fail(-RINGIL_EMALFORMED, ".auth: EFI_TIME out of range");
        ret->efi_time = p;
        ret->sig = p + EFI_TIME_SIZE + WIN_CERT_HEADER_SIZE;
        ret->sig_len = len - WIN_CERT_HEADER_SIZE;
        ret->esl = p + EFI_TIME_SIZE + len;
        ret->esl_len = n - EFI_TIME_SIZE - len;
        return 0;
}

/* Turn the bare SignedData into a PKCS7 object; a full ContentInfo (efitools) is accepted as is. */
static int load_pkcs7(const uint8_t *sig, size_t len, PKCS7 **ret) {
        const unsigned char *q = sig;
        PKCS7_SIGNED *sd;
        PKCS7 *p7;

        if (len > LONG_MAX)
                return -RINGIL_ETOOBIG;
        p7 = d2i_PKCS7(NULL, &q, (long) len);
        if (p7 && q == sig + len && PKCS7_type_is_signed(p7) && p7->d.sign) {
                *ret = p7;
                return 0;
        }
        PKCS7_free(p7);
        ERR_clear_error();

        q = sig;
        sd = d2i_PKCS7_SIGNED(NULL, &q, (long) len);
        if (!sd || q != sig + len) {
                PKCS7_SIGNED_free(sd);
                return crypto_fail(-RINGIL_EMALFORMED, ".auth: PKCS#7 SignedData");
        }
        p7 = PKCS7_new();
        if (!p7) {
                PKCS7_SIGNED_free(sd);
                return -ENOMEM;
        }
        p7->type = OBJ_nid2obj(NID_pkcs7_signed);
        p7->d.sign = sd;
        *ret = p7;
        return 0;
}

/* AlgorithmIdentifier parameters absent or NULL, as for SHA-256 and RSA. */
static bool algor_params_null(const X509_ALGOR *a) {
        int ptype;

        X509_ALGOR_get0(NULL, &ptype, NULL, a);
        return ptype == V_ASN1_UNDEF || ptype == V_ASN1_NULL;
}

int auth_verify(const uint8_t *p, size_t n, const char *name, const efi_guid *vendor, uint32_t attributes,
                X509 *cert) {
        _cleanup_buf_ struct buf signed_bytes = BUF_INIT(AUTH_MAX_SIZE);
        _cleanup_(PKCS7_freep) PKCS7 *p7 = NULL;
        _cleanup_(BIO_free_allp) BIO *in = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *signers = NULL;
        _cleanup_free_ struct esl_entry *entries = NULL;
        struct auth_parts parts;
        STACK_OF(X509) *found;
        size_t count;
        int r;

        r = auth_parse(p, n, &parts);
        if (r < 0)
                return r;
        r = esl_parse(parts.esl, parts.esl_len, &entries, &count);
        if (r < 0)
                return r;
        r = auth_signed_bytes(name, vendor, attributes, parts.efi_time, parts.esl, parts.esl_len, &signed_bytes);
        if (r < 0)
                return r;
        r = load_pkcs7(parts.sig, parts.sig_len, &p7);
        if (r < 0)
                return r;

        /* Detached signature over plain data, as UEFI requires; anything else is not ours to judge. */
        if (!p7->d.sign->contents || OBJ_obj2nid(p7->d.sign->contents->type) != NID_pkcs7_data ||
            !PKCS7_get_detached(p7))
                return ringil_fail(-RINGIL_EMALFORMED, ".auth: PKCS#7 is not a detached signature over data");

        /*
         * One signer, SHA-256 over RSA, version 1 throughout. OpenSSL ignores some of these fields
         * when verifying; pinning them keeps a payload from carrying bytes nobody checked.
         */
        {
                STACK_OF(PKCS7_SIGNER_INFO) *sis = PKCS7_get_signer_info(p7);
                PKCS7_SIGNER_INFO *si;
                X509_ALGOR *dig, *enc;
                int enc_nid;

                STACK_OF(X509_ALGOR) *mds = p7->d.sign->md_algs;

                if (ASN1_INTEGER_get(p7->d.sign->version) != 1 || !sis || sk_PKCS7_SIGNER_INFO_num(sis) != 1)
                        return ringil_fail(-RINGIL_EMALFORMED, ".auth: expected exactly one PKCS#7 signer");
                if (!mds || sk_X509_ALGOR_num(mds) != 1 ||
                    OBJ_obj2nid(sk_X509_ALGOR_value(mds, 0)->algorithm) != NID_sha256 ||
                    !algor_params_null(sk_X509_ALGOR_value(mds, 0)))
                        return ringil_fail(-RINGIL_EMALFORMED, ".auth: digest algorithm is not SHA-256");
                si = sk_PKCS7_SIGNER_INFO_value(sis, 0);
                PKCS7_SIGNER_INFO_get0_algs(si, NULL, &dig, &enc);
                enc_nid = enc ? OBJ_obj2nid(enc->algorithm) : NID_undef;
                if (ASN1_INTEGER_get(si->version) != 1 || !dig || OBJ_obj2nid(dig->algorithm) != NID_sha256 ||
                    (enc_nid != NID_rsaEncryption && enc_nid != NID_sha256WithRSAEncryption) ||
                    !algor_params_null(dig) || !algor_params_null(enc) || si->unauth_attr)
                        return ringil_fail(-RINGIL_EMALFORMED, ".auth: signature is not SHA-256 with RSA");
        }

        signers = sk_X509_new_null();
        if (!signers || !sk_X509_push(signers, cert))
                return -ENOMEM;
        X509_up_ref(cert);
        in = BIO_new_mem_buf(signed_bytes.data, (int) signed_bytes.len);
        if (!in)
                return -ENOMEM;
        /*
         * INVARIANT: the signer is looked up only among `signers` (NOINTERN) and no chain is built
         * (NOVERIFY): the pinned certificate is the whole trust decision, as in firmware.
         */
        if (PKCS7_verify(p7, signers, NULL, in, NULL, PKCS7_NOINTERN | PKCS7_NOVERIFY | PKCS7_BINARY) != 1)
                return crypto_fail(-RINGIL_EBADSIG, ".auth signature");
        /*
         * The certificate carried inside must be byte-for-byte the pinned one: firmware chains the
         * embedded signer to the enrolled certificate, so a payload whose embedded copy was altered
         * would verify here but be rejected there (or worse, be judged on the altered copy).
         */
        found = PKCS7_get0_signers(p7, NULL, 0);
        if (!found || sk_X509_num(found) != 1 || X509_cmp(sk_X509_value(found, 0), cert) != 0) {
                sk_X509_free(found);
                ERR_clear_error();
                return ringil_fail(-RINGIL_EBADSIG, ".auth does not carry the expected signer certificate");
        }
        sk_X509_free(found);
        return 0;
}
