/* bundle-signature.c: a bundle's header, manifest and CMS signature: read once, the signature and chain
 * checked against the keyring, then compatibility, expiry and the anti-rollback floor. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bundle-internal.h"
#include "crypto.h"
#include "err.h"
#include "parse.h"

/* Reads the fixed header, then exactly manifest_len and sig_len bytes; nothing of the payloads. */
static int read_header_once(bundle *b) {
        uint8_t h[BUNDLE_HEADER_SIZE];
        int r;

        r = bundle_source_read(b, 0, h, sizeof(h), "header");
        if (r < 0)
                return r;
        if (memcmp(h, bundle_magic, sizeof(bundle_magic)) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "not a ringil bundle (bad magic)");
        if (get_be32(h + 8) != BUNDLE_FORMAT)
                return ringil_fail(-RINGIL_EMALFORMED, "unsupported bundle format %u", get_be32(h + 8));
        for (size_t i = 12; i < 16; i++)
                if (h[i] != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "header flags set");
        for (size_t i = 24; i < 32; i++)
                if (h[i] != 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "header reserved bytes set");
        b->manifest_len = get_be32(h + 16);
        b->sig_len = get_be32(h + 20);
        /* INVARIANT: both lengths are capped before anything is allocated or read with them. */
        if (b->manifest_len == 0 || b->manifest_len > BUNDLE_MAX_MANIFEST)
                return ringil_fail(b->manifest_len ? -RINGIL_ETOOBIG : -RINGIL_EMALFORMED,
                                   "manifest length %u outside 1..%u", b->manifest_len, BUNDLE_MAX_MANIFEST);
        if (b->sig_len == 0 || b->sig_len > BUNDLE_MAX_SIGNATURE)
                return ringil_fail(b->sig_len ? -RINGIL_ETOOBIG : -RINGIL_EMALFORMED,
                                   "signature length %u outside 1..%u", b->sig_len, BUNDLE_MAX_SIGNATURE);
        /* A known size shorter than the metadata fails before allocating for it. */
        if (b->src.size != UINT64_MAX &&
            b->src.size < (uint64_t) BUNDLE_HEADER_SIZE + b->manifest_len + b->sig_len)
                return ringil_fail(-RINGIL_ETRUNCATED, "bundle truncated: %llu bytes, metadata needs %llu",
                                   (unsigned long long) b->src.size,
                                   (unsigned long long) BUNDLE_HEADER_SIZE + b->manifest_len + b->sig_len);
        b->manifest_raw = malloc(b->manifest_len);
        b->sig_raw = malloc(b->sig_len);
        if (!b->manifest_raw || !b->sig_raw)
                return ringil_fail(-ENOMEM, "no memory for the bundle metadata");
        r = bundle_source_read(b, BUNDLE_HEADER_SIZE, b->manifest_raw, b->manifest_len, "manifest");
        if (r < 0)
                return r;
        return bundle_source_read(b, (uint64_t) BUNDLE_HEADER_SIZE + b->manifest_len, b->sig_raw, b->sig_len, "signature");
}

/*
 * The metadata is read once. A failure is final: the buffers are freed and the error cached, so a retry
 * (e.g. a second bundle_verify_manifest) neither allocates over them nor re-reads a stream from offset 0
 * (which a sequential source refuses with -ESPIPE): it returns the same error and detail.
 */
static int read_header(bundle *b) {
        int r;

        if (b->header_read)
                return 0;
        if (b->header_error < 0)
                return ringil_fail(b->header_error, "%s", b->header_detail ? b->header_detail : "cannot read the bundle metadata");
        r = read_header_once(b);
        if (r < 0) {
                free(TAKE_PTR(b->manifest_raw));
                free(TAKE_PTR(b->sig_raw));
                b->manifest_len = b->sig_len = 0;
                b->header_error = r;
                b->header_detail = strdup(ringil_detail());   /* NULL is handled above */
                return r;
        }
        b->header_read = true;
        return 0;
}

int bundle_read_unverified(bundle *b, const struct bundle_manifest **ret, uint32_t *ret_sig_len) {
        int r;

        if (!b->unverified) {
                r = read_header(b);
                if (r < 0)
                        return r;
                r = bundle_manifest_parse(b->manifest_raw, b->manifest_len, &b->unverified);
                if (r < 0)
                        return r;
        }
        *ret = b->unverified;
        if (ret_sig_len)
                *ret_sig_len = b->sig_len;
        return 0;
}

int bundle_unverified_size(bundle *b, uint64_t *ret_declared, uint64_t *ret_actual) {
        const struct bundle_manifest *m;
        uint64_t total;
        int r;

        r = bundle_read_unverified(b, &m, NULL);
        if (r < 0)
                return r;
        total = (uint64_t) BUNDLE_HEADER_SIZE + b->manifest_len + b->sig_len;
        for (size_t i = 0; i < m->n_payloads; i++)
                if (__builtin_add_overflow(total, m->payloads[i].size, &total) || total > (uint64_t) INT64_MAX)
                        return ringil_fail(-RINGIL_ETOOBIG, "payload sizes overflow the bundle length");
        *ret_declared = total;
        *ret_actual = b->src.size;
        return 0;
}

static int first_cn(X509 *cert, char *buf, size_t size) {
        X509_NAME *name = X509_get_subject_name(cert);
        int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        ASN1_STRING *s;
        unsigned char *utf8 = NULL;
        int n;

        if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
                return -RINGIL_EUNTRUSTED;   /* no CN, or several: ambiguous, refuse */
        s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        n = ASN1_STRING_to_UTF8(&utf8, s);
        if (n < 0)
                return -RINGIL_EUNTRUSTED;
        if ((size_t) n >= size || memchr(utf8, 0, (size_t) n)) {
                OPENSSL_free(utf8);
                return -RINGIL_EUNTRUSTED;
        }
        memcpy(buf, utf8, (size_t) n);
        buf[n] = '\0';
        OPENSSL_free(utf8);
        return 0;
}

static char *subject_oneline(X509 *cert) {
        _cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;

        if (!bio || X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
                return NULL;
        n = BIO_get_mem_data(bio, &data);
        if (n < 0 || n > 4096)
                return NULL;
        /* not strndup: the BIO's data is not NUL-terminated */
        s = malloc((size_t) n + 1);
        if (!s)
                return NULL;
        memcpy(s, data, (size_t) n);
        s[n] = '\0';
        return s;
}

/* A minimal DER reader for the few CMS fields OpenSSL parses but offers no getter for. */
struct der {
        const uint8_t *p, *end;
};

/* Next TLV at d: its tag and a reader over its contents; advances d past it. Definite lengths only. */
static bool der_next(struct der *d, uint8_t *ret_tag, struct der *ret_inner) {
        size_t len = 0, avail;
        uint8_t tag, l;

        if (d->end - d->p < 2)
                return false;
        tag = *d->p++;
        l = *d->p++;
        if ((tag & 0x1f) == 0x1f)
                return false;   /* high tag numbers never occur here */
        if (l < 0x80)
                len = l;
        else {
                unsigned n = l & 0x7f;
                if (n == 0 || n > 3 || d->end - d->p < (ptrdiff_t) n)
                        return false;
                for (unsigned i = 0; i < n; i++)
                        len = len << 8 | *d->p++;
        }
        avail = (size_t) (d->end - d->p);
        if (len > avail)
                return false;
        *ret_tag = tag;
        *ret_inner = (struct der){ d->p, d->p + len };
        d->p += len;
        return true;
}

static bool der_is_int(struct der *d, uint8_t value) {
        struct der v;
        uint8_t tag;

        return der_next(d, &tag, &v) && tag == 0x02 && v.end - v.p == 1 && v.p[0] == value;
}

/*
 * Fields of SignedData that CMS_verify() reads but does not authenticate: both version numbers and
 * the digestAlgorithms set. Pinned to what bundle_create writes (version 1, issuerAndSerialNumber,
 * exactly the signer's digest with absent parameters), so that no byte of the block is malleable.
 */
static bool cms_layout_ok(const uint8_t *data, size_t len, int digest_nid) {
        struct der top = { data, data + len }, ci, sd, x, set, alg;
        const uint8_t *last_start = NULL;
        struct der last = {};
        uint8_t tag;
        ASN1_OBJECT *obj = NULL;
        const unsigned char *op;
        int nid;

        if (!der_next(&top, &tag, &ci) || tag != 0x30)
                return false;
        if (!der_next(&ci, &tag, &x) || tag != 0x06)   /* contentType */
                return false;
        if (!der_next(&ci, &tag, &x) || tag != 0xa0)
                return false;
        if (!der_next(&x, &tag, &sd) || tag != 0x30)
                return false;
        if (!der_is_int(&sd, 1))
                return false;
        if (!der_next(&sd, &tag, &set) || tag != 0x31)   /* digestAlgorithms: exactly one */
                return false;
        if (!der_next(&set, &tag, &alg) || tag != 0x30 || set.p != set.end)
                return false;
        if (!der_next(&alg, &tag, &x) || tag != 0x06 || alg.p != alg.end)
                return false;
        op = x.p - 2;   /* re-read the OID with its header */
        if (x.end - x.p > 64 || !d2i_ASN1_OBJECT(&obj, &op, x.end - op))
                return false;
        nid = OBJ_obj2nid(obj);
        ASN1_OBJECT_free(obj);
        if (nid != digest_nid)
                return false;
        while (sd.p < sd.end) {   /* skip to the last element: signerInfos */
                last_start = sd.p;
                if (!der_next(&sd, &tag, &last))
                        return false;
        }
        if (!last_start || tag != 0x31 || !der_next(&last, &tag, &x) || tag != 0x30 || last.p != last.end)
                return false;
        return der_is_int(&x, 1);
}

static bool sigalg_matches(const X509_ALGOR *sigalg, int digest_nid) {
        static const struct {
                int digest, ecdsa;
        } table[] = {
                { NID_sha256, NID_ecdsa_with_SHA256 },
                { NID_sha384, NID_ecdsa_with_SHA384 },
                { NID_sha512, NID_ecdsa_with_SHA512 },
        };
        int nid, ptype;
        const void *pval;

        if (!sigalg)
                return false;
        nid = OBJ_obj2nid(sigalg->algorithm);
        X509_ALGOR_get0(NULL, &ptype, &pval, sigalg);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                if (table[i].digest != digest_nid)
                        continue;
                /* ECDSA: ecdsa-with-SHAn, absent parameters. RSA PKCS#1 v1.5: only rsaEncryption with NULL
                 * parameters, the spelling OpenSSL's CMS (and so bundle_create) writes. OpenSSL also verifies
                 * shaNWithRSAEncryption there, whose OID differs in one byte (1.1.1 vs 1.1.11): accepting it
                 * too would leave that byte malleable. */
                if (nid == table[i].ecdsa)
                        return ptype == V_ASN1_UNDEF;
                if (nid == NID_rsaEncryption)
                        return ptype == V_ASN1_NULL;
        }
        return false;
}

/*
 * Signature first (over the exact manifest bytes), then the chain to the keyring, then EKU/name
 * policy. Returns the signer subject.
 */
static int verify_signature(bundle *b, const struct bundle_policy *policy, int64_t now, char **ret_signer) {
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_free_allp) BIO *content = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *anchors = NULL, *certs = NULL;
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = NULL;
        STACK_OF(CMS_SignerInfo) *sis;
        STACK_OF(X509) *signers;
        const unsigned char *p = b->sig_raw;
        X509_ALGOR *digalg = NULL, *sigalg = NULL;
        X509 *signer;
        EVP_PKEY *pk;
        int r, nid;

        ERR_clear_error();
        cms = d2i_CMS_ContentInfo(NULL, &p, b->sig_len);
        if (!cms)
                return crypto_fail(-RINGIL_EMALFORMED, "signature is not CMS DER");
        /* INVARIANT: the DER spans exactly sig_len bytes: no unsigned slack hides behind it. */
        if (p != b->sig_raw + b->sig_len)
                return ringil_fail(-RINGIL_EMALFORMED, "trailing bytes after the CMS signature");
        if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
            OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data)
                return ringil_fail(-RINGIL_EMALFORMED, "signature is not CMS SignedData over data");
        {
                ASN1_OCTET_STRING **pos = CMS_get0_content(cms);
                if (pos && *pos)
                        return ringil_fail(-RINGIL_EMALFORMED, "signature is not detached");
        }
        sis = CMS_get0_SignerInfos(cms);
        if (sk_CMS_SignerInfo_num(sis) != 1)
                return ringil_fail(-RINGIL_EMALFORMED, "signature must have exactly one signer");
        CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(sis, 0), NULL, NULL, &digalg, &sigalg);
        nid = digalg ? OBJ_obj2nid(digalg->algorithm) : NID_undef;
        if (nid != NID_sha256 && nid != NID_sha384 && nid != NID_sha512)
                return ringil_fail(-RINGIL_EBADSIG, "signature digest %s is not SHA-256/384/512", OBJ_nid2sn(nid));
        /* The signature algorithm identifier is not itself signed: pin it to the one spelling ringil
         * writes for the key type and digest, so no byte of the signature block is malleable. */
        if (!sigalg_matches(sigalg, nid))
                return ringil_fail(-RINGIL_EBADSIG, "signature algorithm does not match the digest");
        if (!cms_layout_ok(b->sig_raw, b->sig_len, nid))
                return ringil_fail(-RINGIL_EBADSIG, "signature block is not in the canonical layout");
        if (CMS_unsigned_get_attr_count(sk_CMS_SignerInfo_value(sis, 0)) > 0)
                return ringil_fail(-RINGIL_EBADSIG, "signature carries unsigned attributes");
        {
                STACK_OF(X509_CRL) *crls = CMS_get1_crls(cms);
                int n = crls ? sk_X509_CRL_num(crls) : 0;
                sk_X509_CRL_pop_free(crls, X509_CRL_free);
                if (n > 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "signature carries CRLs");
        }

        content = BIO_new_mem_buf(b->manifest_raw, (int) b->manifest_len);
        if (!content)
                return -ENOMEM;
        /* The chain is checked below ourselves, so that a bad signature, an untrusted signer and an
         * expired certificate each get their own error. */
        if (CMS_verify(cms, NULL, NULL, content, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1)
                return crypto_fail(-RINGIL_EBADSIG, "signature does not verify over the manifest");

        signers = CMS_get0_signers(cms);
        signer = signers && sk_X509_num(signers) == 1 ? sk_X509_value(signers, 0) : NULL;
        sk_X509_free(signers);
        if (!signer)
                return ringil_fail(-RINGIL_EBADSIG, "no signer certificate in the signature");
        pk = X509_get0_pubkey(signer);
        if (!pk || EVP_PKEY_get_security_bits(pk) < 112)
                return ringil_fail(-RINGIL_EBADSIG, "signer key too weak");

        r = crypto_load_certs(policy->keyring, &anchors);
        if (r < 0)
                return r;
        store = X509_STORE_new();
        ctx = X509_STORE_CTX_new();
        certs = CMS_get1_certs(cms);   /* NULL when the CMS carries none */
        if (!certs)
                certs = sk_X509_new_null();
        if (!store || !ctx || !certs)
                return -ENOMEM;
        for (int i = 0; i < sk_X509_num(anchors); i++)
                if (!X509_STORE_add_cert(store, sk_X509_value(anchors, i)))
                        return crypto_fail(-ENOMEM, "keyring");
        if (!X509_STORE_CTX_init(ctx, store, signer, certs))
                return crypto_fail(-ENOMEM, "X509_STORE_CTX_init");
        /* Every keyring certificate is a trust anchor, even if not self-signed (a drone's keyring
         * may be just its db certificate). Time is the policy's "now", not the signing time, so an
         * expired signer cannot be revived by a forged signingTime. */
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t) now);
        if (X509_verify_cert(ctx) != 1) {
                int e = X509_STORE_CTX_get_error(ctx);
                ERR_clear_error();
                if (e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID)
                        return ringil_fail(-RINGIL_EEXPIRED, "signer chain: %s", X509_verify_cert_error_string(e));
                return ringil_fail(-RINGIL_EUNTRUSTED, "signer not trusted by keyring '%s': %s", policy->keyring,
                                   X509_verify_cert_error_string(e));
        }
        if (policy->require_codesigning &&
            (!(X509_get_extension_flags(signer) & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(signer) & XKU_CODE_SIGN)))
                return ringil_fail(-RINGIL_EUNTRUSTED, "signer certificate lacks the codeSigning extended key usage");
        if (policy->allowed_signers) {
                char cn[256];
                bool ok = false;
                if (first_cn(signer, cn, sizeof(cn)) < 0)
                        return ringil_fail(-RINGIL_EUNTRUSTED, "signer certificate has no single common name");
                for (const char *const *a = policy->allowed_signers; *a; a++)
                        if (streq(*a, cn))
                                ok = true;
                if (!ok)
                        return ringil_fail(-RINGIL_EUNTRUSTED, "signer '%s' is not an allowed signer", cn);
        }
        *ret_signer = subject_oneline(signer);
        return *ret_signer ? 0 : -ENOMEM;
}

/* Offsets of every payload and the total length, with overflow checks; manifest already capped. */
int bundle_compute_layout(const struct bundle_manifest *m, uint32_t manifest_len, uint32_t sig_len,
                          uint64_t **ret_offsets, uint64_t *ret_total) {
        _cleanup_free_ uint64_t *off = calloc(m->n_payloads, sizeof(uint64_t));
        uint64_t pos = (uint64_t) BUNDLE_HEADER_SIZE + manifest_len + sig_len;

        if (!off)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_payloads; i++) {
                off[i] = pos;
                if (__builtin_add_overflow(pos, m->payloads[i].size, &pos) || pos > (uint64_t) INT64_MAX)
                        return ringil_fail(-RINGIL_ETOOBIG, "payload sizes overflow the bundle length");
        }
        *ret_offsets = TAKE_PTR(off);
        *ret_total = pos;
        return 0;
}

int bundle_verify_manifest(bundle *b, const struct bundle_policy *policy) {
        _cleanup_(bundle_manifest_freep) struct bundle_manifest *m = NULL;
        _cleanup_free_ char *signer = NULL;
        _cleanup_free_ uint64_t *offsets = NULL;
        uint64_t total = 0;   /* set by bundle_compute_layout; GCC -O3 cannot see it */
        int64_t now;
        int r;

        if (!b || !policy || !policy->keyring)
                return -EINVAL;
        /* A second call re-verifies under the new policy (the metadata is cached): a stricter policy
         * must never be answered from an earlier, laxer success. Failure leaves b unverified. */
        bundle_manifest_free(TAKE_PTR(b->manifest));
        free(TAKE_PTR(b->payload_offset));
        now = policy->now ? policy->now : (int64_t) time(NULL);
        if (policy->min_version && version_valid(policy->min_version) < 0)
                return ringil_fail(-EINVAL, "minimum version '%s' is not dot-numeric", policy->min_version);

        r = read_header(b);
        if (r < 0)
                return r;
        /* The signature is checked before the manifest is parsed: untrusted JSON never reaches the
         * parser on a drone unless a trusted key signed it. */
        r = verify_signature(b, policy, now, &signer);
        if (r < 0)
                return r;
        r = bundle_manifest_parse(b->manifest_raw, b->manifest_len, &m);
        if (r < 0)
                return r;
        r = bundle_compute_layout(m, b->manifest_len, b->sig_len, &offsets, &total);
        if (r < 0)
                return r;
        if (b->src.size != UINT64_MAX && b->src.size < total)
                return ringil_fail(-RINGIL_ETRUNCATED, "bundle truncated: %llu bytes, manifest declares %llu",
                                   (unsigned long long) b->src.size, (unsigned long long) total);
        if (b->src.size != UINT64_MAX && b->src.size > total)
                return ringil_fail(-RINGIL_EMALFORMED, "%llu bytes appended after the last payload",
                                   (unsigned long long) (b->src.size - total));

        if (policy->compatible && !streq(policy->compatible, m->compatible))
                return ringil_fail(-RINGIL_EINCOMPAT, "bundle is for '%s', this device is '%s'", m->compatible,
                                   policy->compatible);
        if (now > m->expires) {
                char t[21];
                return ringil_fail(-RINGIL_EEXPIRED, "bundle expired at %s", format_time(m->expires, t));
        }
        if (m->created > now && m->created - now > BUNDLE_CLOCK_SKEW) {
                char t[21];
                return ringil_fail(-RINGIL_EEXPIRED, "bundle created in the future (%s)", format_time(m->created, t));
        }
        /* INVARIANT: anti-rollback: the version is strictly above the floor before anything is written. */
        if (policy->min_version && version_compare(m->version, policy->min_version) <= 0)
                return ringil_fail(-RINGIL_EROLLBACK, "version %s is not above the floor %s", m->version,
                                   policy->min_version);

        m->signer = TAKE_PTR(signer);
        b->payload_offset = TAKE_PTR(offsets);
        b->total = total;
        b->manifest = TAKE_PTR(m);
        return 0;
}

const struct bundle_manifest *bundle_get_manifest(const bundle *b) {
        return b ? b->manifest : NULL;
}

int bundle_total_size(const bundle *b, uint64_t *ret) {
        if (!b || !b->manifest)
                return -EINVAL;
        *ret = b->total;
        return 0;
}
