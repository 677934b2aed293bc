/* efi-authenticode.c: PKCS#7 Authenticode signatures in the PE certificate table: build, embed, verify. */
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "efi-authenticode.h"
#include "err.h"

/*
 * SpcIndirectDataContent as sbsign (and signtool for EFI images) emits it, with the 32-byte SHA-256
 * image hash at IDC_DIGEST_OFFSET. Every length is fixed, so it is a template rather than built:
 *
 *   SEQUENCE {                                           -- SpcIndirectDataContent
 *     SEQUENCE {                                         -- SpcAttributeTypeAndOptionalValue
 *       OBJECT IDENTIFIER 1.3.6.1.4.1.311.2.1.15         -- SPC_PE_IMAGE_DATA_OBJID
 *       SEQUENCE {                                       -- SpcPeImageData
 *         BIT STRING ''                                  -- flags
 *         [0] { [2] { [0] IMPLICIT BMPString "<<<Obsolete>>>" } } }   -- SpcLink.file
 *     }
 *     SEQUENCE {                                         -- DigestInfo
 *       SEQUENCE { OBJECT IDENTIFIER sha256, NULL }
 *       OCTET STRING (32 bytes)
 *     }
 *   }
 */
static const uint8_t idc_template[] = {
        0x30, 0x68,
        0x30, 0x33,
        0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0f,
        0x30, 0x25,
        0x03, 0x01, 0x00,
        0xa0, 0x20, 0xa2, 0x1e, 0x80, 0x1c,
        0x00, '<', 0x00, '<', 0x00, '<', 0x00, 'O', 0x00, 'b', 0x00, 's', 0x00, 'o',
        0x00, 'l', 0x00, 'e', 0x00, 't', 0x00, 'e', 0x00, '>', 0x00, '>', 0x00, '>',
        0x30, 0x31,
        0x30, 0x0d,
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00,
        0x04, 0x20,
        /* 32 bytes of image hash follow */
};
#define IDC_DIGEST_OFFSET sizeof(idc_template)
#define IDC_LEN (IDC_DIGEST_OFFSET + SHA256_LEN)
/* What messageDigest covers: the content octets of the outer SEQUENCE, without its tag and length. */
#define IDC_HEADER_LEN 2

/* Decoding side: accept any well-formed SpcIndirectDataContent, then check what matters. */
typedef struct {
        ASN1_OBJECT *type;
        ASN1_TYPE *value;
} SPC_ATTRIBUTE;

ASN1_SEQUENCE(SPC_ATTRIBUTE) = {
        ASN1_SIMPLE(SPC_ATTRIBUTE, type, ASN1_OBJECT),
        ASN1_OPT(SPC_ATTRIBUTE, value, ASN1_ANY),
} static_ASN1_SEQUENCE_END(SPC_ATTRIBUTE)

typedef struct {
        X509_ALGOR *algorithm;
        ASN1_OCTET_STRING *digest;
} SPC_DIGEST_INFO;

ASN1_SEQUENCE(SPC_DIGEST_INFO) = {
        ASN1_SIMPLE(SPC_DIGEST_INFO, algorithm, X509_ALGOR),
        ASN1_SIMPLE(SPC_DIGEST_INFO, digest, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(SPC_DIGEST_INFO)

typedef struct {
        SPC_ATTRIBUTE *data;
        SPC_DIGEST_INFO *message_digest;
} SPC_INDIRECT_DATA;

ASN1_SEQUENCE(SPC_INDIRECT_DATA) = {
        ASN1_SIMPLE(SPC_INDIRECT_DATA, data, SPC_ATTRIBUTE),
        ASN1_SIMPLE(SPC_INDIRECT_DATA, message_digest, SPC_DIGEST_INFO),
} static_ASN1_SEQUENCE_END(SPC_INDIRECT_DATA)

static void spc_indirect_data_free(SPC_INDIRECT_DATA *p) {
        ASN1_item_free((ASN1_VALUE *) p, ASN1_ITEM_rptr(SPC_INDIRECT_DATA));
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SPC_INDIRECT_DATA *, spc_indirect_data_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_OBJECT *, ASN1_OBJECT_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_TYPE *, ASN1_TYPE_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_STRING *, ASN1_STRING_free)

static void sk_X509_freep(STACK_OF(X509) **p) {
        sk_X509_free(*p);   /* the stack only, not the certificates it borrows */
}

static int spc_object(const char *oid, ASN1_OBJECT **ret) {
        ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);

        if (!o)
                return crypto_fail(-ENOMEM, "OID");
        *ret = o;
        return 0;
}

static size_t align8(size_t n) {
        return (n + (WIN_CERT_ALIGN - 1)) & ~(size_t) (WIN_CERT_ALIGN - 1);
}

/* PKCS#7 SignedData over the SpcIndirectDataContent for hash; sbsign's construction. */
static int build_signature(const uint8_t hash[static SHA256_LEN], EVP_PKEY *key, X509 *cert, uint8_t **ret_der,
                           size_t *ret_len) {
        _cleanup_(PKCS7_freep) PKCS7 *p7 = NULL, *inner = NULL;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *ct = NULL;
        _cleanup_(ASN1_TYPE_freep) ASN1_TYPE *content = NULL;
        _cleanup_(ASN1_STRING_freep) ASN1_STRING *seq = NULL;
        PKCS7_SIGNER_INFO *si;
        uint8_t idc[IDC_LEN], *der = NULL;
        int r, n;

        memcpy(idc, idc_template, sizeof(idc_template));
        memcpy(idc + IDC_DIGEST_OFFSET, hash, SHA256_LEN);

        p7 = PKCS7_new();
        if (!p7 || !PKCS7_set_type(p7, NID_pkcs7_signed))
                return crypto_fail(-ENOMEM, "PKCS#7 SignedData");
        /* Adds the signer certificate, contentType and SMIMECapabilities signed attributes. */
        si = PKCS7_sign_add_signer(p7, cert, key, EVP_sha256(), PKCS7_BINARY);
        if (!si)
                return crypto_fail(-EINVAL, "PKCS#7 signer");
        r = spc_object(AUTHENTICODE_OID_SPC_INDIRECT_DATA, &ct);
        if (r < 0)
                return r;
        /* Replaces contentType = data with SpcIndirectDataContent; takes ct on success. */
        if (!PKCS7_add_signed_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT, ct))
                return crypto_fail(-ENOMEM, "contentType attribute");
        ct = NULL;

        /* Sign the content octets (messageDigest, signingTime are added here) as plain data first... */
        if (!PKCS7_content_new(p7, NID_pkcs7_data))
                return crypto_fail(-ENOMEM, "PKCS#7 content");
        bio = PKCS7_dataInit(p7, NULL);
        if (!bio)
                return crypto_fail(-ENOMEM, "PKCS#7 data");
        if (BIO_write(bio, idc + IDC_HEADER_LEN, (int) (IDC_LEN - IDC_HEADER_LEN)) != (int) (IDC_LEN - IDC_HEADER_LEN))
                return crypto_fail(-EIO, "PKCS#7 data write");
        if (!PKCS7_dataFinal(p7, bio))
                return crypto_fail(-EIO, "PKCS#7 signing");

        /* ...then make the content what Authenticode says it is: SpcIndirectDataContent, not data. */
        inner = PKCS7_new();
        content = ASN1_TYPE_new();
        seq = ASN1_STRING_new();
        if (!inner || !content || !seq || !ASN1_STRING_set(seq, idc, (int) IDC_LEN))
                return crypto_fail(-ENOMEM, "SpcIndirectDataContent");
        ASN1_TYPE_set(content, V_ASN1_SEQUENCE, TAKE_PTR(seq));
        r = spc_object(AUTHENTICODE_OID_SPC_INDIRECT_DATA, &inner->type);
        if (r < 0)
                return r;
        inner->d.other = TAKE_PTR(content);
        if (!PKCS7_set_content(p7, inner))
                return crypto_fail(-ENOMEM, "PKCS#7 content");
        inner = NULL;

        n = i2d_PKCS7(p7, &der);
        if (n <= 0)
                return crypto_fail(-EIO, "PKCS#7 encoding");
        *ret_der = der;
        *ret_len = (size_t) n;
        return 0;
}

int authenticode_image_hash(const uint8_t *image, size_t size, uint8_t out[static SHA256_LEN]) {
        struct pe_image pe;
        int r = pe_parse(image, size, &pe);

        if (r < 0)
                return r;
        return pe_authenticode_sha256(&pe, out);
}

int authenticode_sign(const uint8_t *image, size_t size, EVP_PKEY *key, X509 *cert, unsigned flags,
                      uint8_t **ret_image, size_t *ret_size, unsigned *ret_replaced) {
        _cleanup_free_ uint8_t *out = NULL;
        uint8_t *der = NULL;
        size_t der_len = 0, data_len, keep_table, table_len, out_len, entry_len;
        struct pe_image pe, padded;
        uint8_t hash[SHA256_LEN];
        int r;

        if (X509_check_private_key(cert, key) != 1)
                return crypto_fail(-EINVAL, "the private key does not belong to the certificate");

        r = pe_parse(image, size, &pe);
        if (r < 0)
                return r;
        keep_table = (flags & AUTHENTICODE_SIGN_APPEND) ? pe.cert_size : 0;
        if (keep_table > 0 && pe.n_certs >= PE_MAX_CERT_ENTRIES)
                return ringil_fail(-RINGIL_ETOOBIG, "image already has %u signatures", pe.n_certs);

        /*
         * The signed part is the image up to its certificate table, zero-padded to 8 bytes so the table
         * starts aligned (UEFI multi-signature checking insists). The padding is hashed as trailing
         * data, as sbsign does; a table start is always aligned already (pe_parse checked).
         */
        data_len = (pe.signed_end + (WIN_CERT_ALIGN - 1)) & ~(size_t) (WIN_CERT_ALIGN - 1);
        if (data_len > PE_MAX_IMAGE_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, "padded image exceeds the size limit");
        out = calloc(1, data_len);
        if (!out)
                return -ENOMEM;
        memcpy(out, image, pe.signed_end);
        /* Not hashed; cleared so that the unsigned view of the image parses. */
        memset(out + pe.cert_dir_offset, 0, 8);
        r = pe_parse(out, data_len, &padded);
        if (r < 0)
                return r;
        r = pe_authenticode_sha256(&padded, hash);
        if (r < 0)
                return r;

        r = build_signature(hash, key, cert, &der, &der_len);
        if (r < 0)
                return r;
        entry_len = WIN_CERT_HEADER_SIZE + der_len;
        table_len = keep_table + align8(entry_len);
        if (table_len > PE_MAX_CERT_TABLE || data_len + table_len > PE_MAX_IMAGE_SIZE) {
                OPENSSL_free(der);
                return ringil_fail(-RINGIL_ETOOBIG, "certificate table of %zu bytes would exceed its limit",
                                   table_len);
        }
        out_len = data_len + table_len;
        {
                uint8_t *grown = realloc(out, out_len);
                if (!grown) {
                        OPENSSL_free(der);
                        return -ENOMEM;
                }
                out = grown;
        }
        memcpy(out + data_len, image + pe.signed_end, keep_table);
        {
                uint8_t *e = out + data_len + keep_table;

                memset(e, 0, align8(entry_len));
                pe_put32(e, (uint32_t) entry_len);           /* dwLength excludes the padding, like sbsign */
                pe_put16(e + 4, WIN_CERT_REVISION_2_0);
                pe_put16(e + 6, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
                memcpy(e + WIN_CERT_HEADER_SIZE, der, der_len);
        }
        OPENSSL_free(der);
        pe_put32(out + pe.cert_dir_offset, (uint32_t) data_len);
        pe_put32(out + pe.cert_dir_offset + 4, (uint32_t) table_len);
        pe_put32(out + pe.checksum_offset, pe_checksum(out, out_len, pe.checksum_offset));

        /* INVARIANT: never hand out an image that does not verify with the certificate it was signed for. */
        r = authenticode_verify(out, out_len, cert, NULL);
        if (r < 0)
                return r;

        if (ret_replaced)
                *ret_replaced = keep_table ? 0 : pe.n_certs;
        *ret_size = out_len;
        *ret_image = TAKE_PTR(out);
        return 0;
}

/* Accept the X.509 errors that UEFI firmware and sbverify accept, nothing else. */
static int verify_cb(int ok, X509_STORE_CTX *ctx) {
        if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_INVALID_PURPOSE) {
                X509 *c = X509_STORE_CTX_get_current_cert(ctx);

                /* A code-signing certificate fails the S/MIME purpose PKCS#7 checks by default. */
                if (c && (X509_get_extension_flags(c) & EXFLAG_XKUSAGE) &&
                    (X509_get_extended_key_usage(c) & XKU_CODE_SIGN))
                        return 1;
        }
        return ok;
}

static int check_chain(PKCS7 *p7, X509 *signer, X509 *trust) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();

        if (!store || !ctx || !X509_STORE_add_cert(store, trust))
                return crypto_fail(-ENOMEM, "trust store");
        /*
         * PARTIAL_CHAIN: the given certificate is the anchor even if it is not self-signed (a db entry
         * may be an intermediate). NO_CHECK_TIME: firmware has no trustworthy clock and does not check
         * validity dates, so neither do we (sbverify agrees).
         */
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
        X509_STORE_set_verify_cb(store, verify_cb);
        if (!X509_STORE_CTX_init(ctx, store, signer, p7->d.sign->cert))
                return crypto_fail(-ENOMEM, "verification context");
        if (!X509_STORE_CTX_set_default(ctx, "smime_sign"))
                return crypto_fail(-EIO, "verification purpose");
        if (X509_verify_cert(ctx) != 1) {
                int e = X509_STORE_CTX_get_error(ctx);
                ERR_clear_error();
                return ringil_fail(-RINGIL_EUNTRUSTED, "signer does not chain to the trusted certificate: %s",
                                   X509_verify_cert_error_string(e));
        }
        return 0;
}

/* Verify one WIN_CERTIFICATE. -ENOTSUP: not a PKCS#7 entry, skipped. */
static int verify_entry(const struct pe_cert *c, const uint8_t hash[static SHA256_LEN], X509 *trust,
                        char *signer_name, size_t signer_size) {
        _cleanup_(PKCS7_freep) PKCS7 *p7 = NULL;
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *spc = NULL, *pe_data = NULL;
        _cleanup_(spc_indirect_data_freep) SPC_INDIRECT_DATA *idc = NULL;
        _cleanup_(sk_X509_freep) STACK_OF(X509) *extra = NULL, *signers = NULL;
        _cleanup_(BIO_free_allp) BIO *indata = NULL;
        STACK_OF(X509_ATTRIBUTE) *attrs;
        PKCS7_SIGNER_INFO *si;
        ASN1_TYPE *ct;
        const uint8_t *p, *der, *body;
        long body_len;
        int tag, cls, ret, der_len, r;
        size_t used;

        if (c->revision != WIN_CERT_REVISION_2_0)
                return ringil_fail(-RINGIL_EMALFORMED, "WIN_CERTIFICATE revision 0x%04x, expected 0x0200",
                                   c->revision);
        if (c->type != WIN_CERT_TYPE_PKCS_SIGNED_DATA)
                return -ENOTSUP;
        if (c->data_len > INT32_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "signature too large");

        p = c->data;
        p7 = d2i_PKCS7(NULL, &p, (long) c->data_len);
        if (!p7)
                return crypto_fail(-RINGIL_EMALFORMED, "signature is not DER PKCS#7");
        /* Signers pad dwLength differently; up to 7 zero bytes after the DER are fine, nothing else. */
        used = (size_t) (p - c->data);
        if (c->data_len - used >= WIN_CERT_ALIGN)
                return ringil_fail(-RINGIL_EMALFORMED, "%zu bytes after the PKCS#7 structure", c->data_len - used);
        for (size_t i = used; i < c->data_len; i++)
                if (c->data[i] != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "non-zero bytes after the PKCS#7 structure");

        if (!PKCS7_type_is_signed(p7) || !p7->d.sign || !p7->d.sign->contents || !p7->d.sign->contents->type)
                return ringil_fail(-RINGIL_EMALFORMED, "signature is not a PKCS#7 SignedData with content");
        r = spc_object(AUTHENTICODE_OID_SPC_INDIRECT_DATA, &spc);
        if (r < 0)
                return r;
        r = spc_object(AUTHENTICODE_OID_SPC_PE_IMAGE_DATA, &pe_data);
        if (r < 0)
                return r;
        if (OBJ_cmp(p7->d.sign->contents->type, spc) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "signed content is not SpcIndirectDataContent");
        ct = p7->d.sign->contents->d.other;
        if (!ct || ct->type != V_ASN1_SEQUENCE || !ct->value.sequence)
                return ringil_fail(-RINGIL_EMALFORMED, "SpcIndirectDataContent is not a SEQUENCE");

        /* The content is the whole DER SEQUENCE; messageDigest covers its body, without tag and length. */
        der = ASN1_STRING_get0_data(ct->value.sequence);
        der_len = ASN1_STRING_length(ct->value.sequence);
        body = der;
        ret = ASN1_get_object(&body, &body_len, &tag, &cls, der_len);
        if (ret != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL ||
            (body - der) + body_len != der_len) {
                ERR_clear_error();
                return ringil_fail(-RINGIL_EMALFORMED, "SpcIndirectDataContent is not a definite-length SEQUENCE");
        }
        p = der;
        idc = (SPC_INDIRECT_DATA *) ASN1_item_d2i(NULL, &p, der_len, ASN1_ITEM_rptr(SPC_INDIRECT_DATA));
        if (!idc || p != der + der_len)
                return crypto_fail(-RINGIL_EMALFORMED, "SpcIndirectDataContent does not parse");
        if (OBJ_cmp(idc->data->type, pe_data) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "SpcIndirectDataContent is not for a PE image");
        if (OBJ_obj2nid(idc->message_digest->algorithm->algorithm) != NID_sha256)
                return ringil_fail(-RINGIL_EMALFORMED, "image digest algorithm %s is not supported (SHA-256 only)",
                                   OBJ_nid2sn(OBJ_obj2nid(idc->message_digest->algorithm->algorithm)));
        if (ASN1_STRING_length(idc->message_digest->digest) != SHA256_LEN)
                return ringil_fail(-RINGIL_EMALFORMED, "image digest is %d bytes, not 32",
                                   ASN1_STRING_length(idc->message_digest->digest));

        /* Exactly one signer, with signed attributes naming the content type. */
        if (sk_PKCS7_SIGNER_INFO_num(PKCS7_get_signer_info(p7)) != 1)
                return ringil_fail(-RINGIL_EMALFORMED, "signature has %d SignerInfos, expected 1",
                                   sk_PKCS7_SIGNER_INFO_num(PKCS7_get_signer_info(p7)));
        si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0);
        /*
         * One known digest algorithm, for the SignerInfo too. Besides being what Authenticode
         * specifies, this keeps PKCS7_verify() off its error paths that leak (OpenSSL 3.0).
         */
        if (sk_X509_ALGOR_num(p7->d.sign->md_algs) != 1 ||
            !EVP_get_digestbyobj(sk_X509_ALGOR_value(p7->d.sign->md_algs, 0)->algorithm) || !si->digest_alg ||
            !EVP_get_digestbyobj(si->digest_alg->algorithm))
                return ringil_fail(-RINGIL_EMALFORMED, "signature uses an unknown digest algorithm, or several");
        attrs = PKCS7_get_signed_attributes(si);
        if (!attrs || sk_X509_ATTRIBUTE_num(attrs) == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "signature has no signed attributes");
        {
                ASN1_TYPE *a = PKCS7_get_signed_attribute(si, NID_pkcs9_contentType);
                if (!a || a->type != V_ASN1_OBJECT || OBJ_cmp(a->value.object, spc) != 0)
                        return ringil_fail(-RINGIL_EMALFORMED,
                                           "contentType attribute is not SpcIndirectDataContent");
        }

        /* The signer certificate: carried in the signature, or the trusted one itself. */
        extra = sk_X509_new_null();
        if (!extra || !sk_X509_push(extra, trust))
                return -ENOMEM;
        signers = PKCS7_get0_signers(p7, extra, 0);
        if (!signers || sk_X509_num(signers) != 1)
                return crypto_fail(-RINGIL_EUNTRUSTED, "signer certificate not found");
        if (signer_name)
                X509_NAME_oneline(X509_get_subject_name(sk_X509_value(signers, 0)), signer_name, (int) signer_size);

        /* 1. The signature over the signed attributes, and messageDigest over the content. */
        /*
         * Behind a buffer BIO: PKCS7_verify() copies a bare memory BIO into a second one it then leaks
         * when PKCS7_dataInit() fails; with any other BIO type it uses ours, which we free.
         */
        indata = BIO_new(BIO_f_buffer());
        if (!indata)
                return -ENOMEM;
        {
                BIO *mem = BIO_new_mem_buf(body, (int) body_len);
                if (!mem)
                        return -ENOMEM;
                BIO_push(indata, mem);
        }
        if (PKCS7_verify(p7, extra, NULL, indata, NULL, PKCS7_BINARY | PKCS7_NOVERIFY) != 1)
                return crypto_fail(-RINGIL_EBADSIG, "signature does not verify");

        /* 2. The signer chains to the trusted certificate. */
        r = check_chain(p7, sk_X509_value(signers, 0), trust);
        if (r < 0)
                return r;

        /* 3. What was signed is this image. */
        if (crypto_memcmp(ASN1_STRING_get0_data(idc->message_digest->digest), hash, SHA256_LEN) != 0)
                return ringil_fail(-RINGIL_EDIGEST, "image hash does not match the signed hash (image changed "
                                                    "after signing)");
        return 0;
}

int authenticode_verify(const uint8_t *image, size_t size, X509 *trust, struct authenticode_info *ret_info) {
        struct authenticode_info info = {};
        char first_detail[512] = "";
        int first_err = 0, r;
        struct pe_image pe;

        r = pe_parse(image, size, &pe);
        if (r < 0)
                return r;
        r = pe_authenticode_sha256(&pe, info.image_hash);
        if (r < 0)
                return r;
        info.n_signatures = pe.n_certs;
        if (pe.n_certs == 0)
                return ringil_fail(-RINGIL_EBADSIG, "image is not signed (no certificate table)");

        for (unsigned i = 0; i < pe.n_certs; i++) {
                struct pe_cert c;

                r = pe_cert_get(&pe, i, &c);
                if (r < 0)
                        return r;
                r = verify_entry(&c, info.image_hash, trust, info.signer, sizeof(info.signer));
                if (r == 0) {
                        info.valid_index = i;
                        ringil_clear_detail();
                        if (ret_info)
                                *ret_info = info;
                        return 0;
                }
                if (r == -ENOTSUP || first_err != 0)
                        continue;
                first_err = r;
                (void) snprintf(first_detail, sizeof(first_detail), "signature %u of %u: %s", i + 1, pe.n_certs,
                                ringil_detail());
        }
        if (first_err == 0)
                return ringil_fail(-RINGIL_EBADSIG, "no PKCS#7 signature among %u certificate table entries",
                                   pe.n_certs);
        return ringil_fail(first_err, "%s", first_detail);
}
