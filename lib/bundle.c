/* bundle.c: the bundle container: byte sources, header, CMS signature and policy checks, verified
 * chunk reads, full payload verification and bundle creation. Format: docs/bundle-format.md. */
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "bundle-internal.h"
#include "bundle.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "parse.h"
#include "progress.h"

static const uint8_t bundle_magic[8] = { 'R', 'I', 'N', 'G', 'I', 'L', 'B', '\n' };

struct bundle {
        struct bundle_source src;
        int fd;                         /* >= 0 when src reads a regular file we own (fast path) */
        bool header_read;
        int header_error;               /* < 0: read_header failed once; every retry returns this */
        char *header_detail;            /* ... with this detail (may be NULL) */
        uint32_t manifest_len, sig_len;
        uint8_t *manifest_raw;
        uint8_t *sig_raw;
        struct bundle_manifest *unverified;   /* parsed for `info` only, never trusted */
        struct bundle_manifest *manifest;     /* set only by a successful bundle_verify_manifest() */
        uint64_t *payload_offset;             /* per payload, valid with manifest */
        uint64_t total;                       /* header + manifest + signature + payloads */
};

/* ---- byte sources ---- */

struct fd_source {
        int fd;
        bool seekable;
        uint64_t pos;   /* sequential sources: bytes consumed so far */
};

static int fd_read_at(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct fd_source *s = userdata;
        uint8_t *p = buf;

        if (s->seekable) {
                while (len > 0) {
                        ssize_t k;
                        if (offset > (uint64_t) INT64_MAX)
                                return -ENODATA;
                        k = pread(s->fd, p, len, (off_t) offset);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return negative_errno();
                        }
                        if (k == 0)
                                return -ENODATA;
                        p += k;
                        len -= (size_t) k;
                        offset += (uint64_t) k;
                }
                return 0;
        }
        if (offset < s->pos)
                return -ESPIPE;
        while (s->pos < offset) {
                uint8_t scratch[16384];
                size_t n = (size_t) MIN((uint64_t) sizeof(scratch), offset - s->pos);
                ssize_t k = read_full(s->fd, scratch, n);
                if (k < 0)
                        return (int) k;
                s->pos += (uint64_t) k;
                if ((size_t) k < n)
                        return -ENODATA;
        }
        ssize_t k = read_full(s->fd, p, len);
        if (k < 0)
                return (int) k;
        s->pos += (uint64_t) k;
        return (size_t) k == len ? 0 : -ENODATA;
}

static void fd_close(void *userdata) {
        struct fd_source *s = userdata;

        safe_close(s->fd);
        free(s);
}

void bundle_free(bundle *b) {
        if (!b)
                return;
        if (b->src.close)
                b->src.close(b->src.userdata);
        free(b->manifest_raw);
        free(b->sig_raw);
        free(b->header_detail);
        bundle_manifest_free(b->unverified);
        bundle_manifest_free(b->manifest);
        free(b->payload_offset);
        free(b);
}

int bundle_open_source(const struct bundle_source *src, bundle **ret) {
        bundle *b;

        if (!src || !src->read_at)
                return -EINVAL;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->src = *src;
        b->fd = -EBADF;
        *ret = b;
        return 0;
}

int bundle_open_fd(int fd, bundle **ret) {
        _cleanup_close_ int owned = fd;
        struct fd_source *s;
        struct stat st;
        bundle *b;
        int r;

        if (fd < 0)
                return -EBADF;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = fd;
        s->seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
        if (s->seekable)
                (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        r = bundle_open_source(&(struct bundle_source){ .read_at = fd_read_at, .close = fd_close, .userdata = s,
                                                       .size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : UINT64_MAX },
                               &b);
        if (r < 0) {
                free(s);
                return r;
        }
        TAKE_FD(owned);   /* now owned by the source */
        if (S_ISREG(st.st_mode))
                b->fd = fd;
        *ret = b;
        return 0;
}

int bundle_open(const char *path, bundle **ret) {
        int fd;

        if (streq(path, "-"))
                fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        else
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ringil_fail(negative_errno(), "cannot open bundle '%s'", path);
        return bundle_open_fd(fd, ret);
}

/* ---- header, manifest and signature ---- */

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static int source_read(bundle *b, uint64_t offset, void *buf, size_t len, const char *what) {
        int r = b->src.read_at(b->src.userdata, offset, buf, len);

        if (r == -ENODATA)
                return ringil_fail(-RINGIL_ETRUNCATED, "bundle truncated in %s", what);
        if (r < 0)
                return ringil_fail(r, "cannot read %s: %s", what, strerror(-r));
        return 0;
}

/* Reads the fixed header, then exactly manifest_len and sig_len bytes; nothing of the payloads. */
static int read_header_once(bundle *b) {
        uint8_t h[BUNDLE_HEADER_SIZE];
        int r;

        r = source_read(b, 0, h, sizeof(h), "header");
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
        r = source_read(b, BUNDLE_HEADER_SIZE, b->manifest_raw, b->manifest_len, "manifest");
        if (r < 0)
                return r;
        return source_read(b, (uint64_t) BUNDLE_HEADER_SIZE + b->manifest_len, b->sig_raw, b->sig_len, "signature");
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
static int compute_layout(const struct bundle_manifest *m, uint32_t manifest_len, uint32_t sig_len,
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
        uint64_t total;
        int64_t now;
        int r;

        if (!b || !policy || !policy->keyring)
                return -EINVAL;
        /* A second call re-verifies under the new policy (the metadata is cached): a stricter policy
         * must never be answered from an earlier, laxer success. Failure leaves b unverified. */
        bundle_manifest_free(TAKE_PTR(b->manifest));
        free(TAKE_PTR(b->payload_offset));
        now = policy->now ? policy->now : (int64_t) time(NULL);
        if (policy->min_version && bundle_version_valid(policy->min_version) < 0)
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
        r = compute_layout(m, b->manifest_len, b->sig_len, &offsets, &total);
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
        if (policy->min_version && bundle_version_compare(m->version, policy->min_version) <= 0)
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

/* ---- payload reads ---- */

int bundle_chunk_offset(const bundle *b, size_t p, uint64_t index, uint64_t *ret_offset) {
        const struct bundle_payload *pl;

        if (!b || !b->manifest || p >= b->manifest->n_payloads)
                return -EINVAL;
        pl = &b->manifest->payloads[p];
        if (index >= pl->n_chunks)
                return -EINVAL;
        /* index < n_chunks = ceil(size/chunk_size), so index*chunk_size < size: no overflow. */
        *ret_offset = b->payload_offset[p] + index * pl->chunk_size;
        return 0;
}

static size_t chunk_len(const struct bundle_payload *pl, uint64_t index) {
        uint64_t start = index * pl->chunk_size;
        return (size_t) MIN((uint64_t) pl->chunk_size, pl->size - start);
}

int bundle_read_chunk(bundle *b, size_t p, uint64_t index, uint8_t *buf, size_t *ret_len) {
        const struct bundle_payload *pl;
        uint8_t md[SHA256_LEN];
        uint64_t off;
        size_t len;
        int r;

        r = bundle_chunk_offset(b, p, index, &off);
        if (r < 0)
                return r;
        pl = &b->manifest->payloads[p];
        len = chunk_len(pl, index);
        r = source_read(b, off, buf, len, "payload");
        if (r < 0)
                return r;
        /* INVARIANT: the hash is computed over the caller's buffer itself, after the read: what the
         * caller gets is exactly what matched the signed chunk hash (no TOCTOU through the file). */
        r = crypto_sha256(buf, len, md);
        if (r < 0)
                return r;
        if (crypto_memcmp(md, pl->chunk_sha256[index], SHA256_LEN) != 0)
                return ringil_fail(-RINGIL_EDIGEST, "payload '%s' chunk %llu does not match its signed hash", pl->name,
                                   (unsigned long long) index);
        *ret_len = len;
        return 0;
}

/*
 * Hashing a payload: chunk hashes and the whole-payload SHA-256 over the same bytes, in one pass of
 * wall time. The calling thread maps (or reads) window after window, faults it in and hashes its
 * chunks; a second thread runs one window behind and feeds the whole-payload digest, so that the
 * serial whole-payload hash never waits for I/O or page faults. At most PIPE_SLOTS windows exist at
 * once: memory use is bounded by PIPE_SLOTS * WINDOW, whatever the payload size.
 */
#define WINDOW (4u << 20)    /* a multiple of every chunk size up to 4 MiB; larger chunks: one per window */
#define PIPE_SLOTS 3u
#define PIPE_MIN (4u << 20)  /* smaller payloads are hashed on one thread */

struct window {
        const uint8_t *data;
        size_t len;
        void *map;           /* MAP_FAILED when data points into a buffer */
        size_t map_len;
};

struct hash_pipe {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct window q[PIPE_SLOTS];
        unsigned head, count;
        bool done, abort;
        EVP_MD_CTX *whole;
        int r;
};

static void window_release(struct window *w) {
        if (w->map != MAP_FAILED)
                (void) munmap(w->map, w->map_len);
        w->map = MAP_FAILED;
}

static void *whole_worker(void *arg) {
        struct hash_pipe *p = arg;

        for (;;) {
                struct window *w;
                bool skip;

                pthread_mutex_lock(&p->mu);
                while (p->count == 0 && !p->done)
                        pthread_cond_wait(&p->cv, &p->mu);
                if (p->count == 0) {
                        pthread_mutex_unlock(&p->mu);
                        return NULL;
                }
                w = &p->q[p->head];
                skip = p->abort || p->r < 0;
                pthread_mutex_unlock(&p->mu);

                if (!skip && EVP_DigestUpdate(p->whole, w->data, w->len) != 1)
                        p->r = -EIO;   /* only this thread writes r until it is joined */
                window_release(w);

                pthread_mutex_lock(&p->mu);
                p->head = (p->head + 1) % PIPE_SLOTS;
                p->count--;
                pthread_cond_broadcast(&p->cv);
                pthread_mutex_unlock(&p->mu);
        }
}

/* Chunk hashes of the chunks [first, …) in w: into out (create) or compared with the signed list. */
static int hash_chunks(const struct bundle_payload *pl, const struct window *w, uint64_t first,
                       uint8_t (*out)[SHA256_LEN]) {
        for (size_t pos = 0, i = 0; pos < w->len; i++) {
                size_t n = MIN((size_t) pl->chunk_size, w->len - pos);
                uint8_t md[SHA256_LEN];
                int r = crypto_sha256(w->data + pos, n, out ? out[first + i] : md);

                if (r < 0)
                        return r;
                if (!out && crypto_memcmp(md, pl->chunk_sha256[first + i], SHA256_LEN) != 0)
                        return ringil_fail(-RINGIL_EDIGEST, "payload '%s' chunk %llu does not match its signed hash",
                                           pl->name, (unsigned long long) (first + i));
                pos += n;
        }
        return 0;
}

/* Map len bytes of fd at offset (any alignment) and fault them in; false if mapping is impossible. */
static bool window_map(int fd, uint64_t offset, size_t len, struct window *w) {
        static long pagesize;
        size_t skew;
        void *map;

        if (fd < 0)
                return false;
        if (!pagesize)
                pagesize = sysconf(_SC_PAGESIZE);
        skew = (size_t) (offset % (uint64_t) pagesize);
        map = mmap(NULL, len + skew, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, (off_t) (offset - skew));
        if (map == MAP_FAILED)
                return false;
        (void) madvise(map, len + skew, MADV_SEQUENTIAL);
        *w = (struct window){ .data = (const uint8_t *) map + skew, .len = len, .map = map, .map_len = len + skew };
        return true;
}

/*
 * Hash all `size` bytes of a payload at `offset`: from fd by mmap (no copy) when it is a regular
 * file, else from b's source through bounded buffers (streams read strictly in order).
 */
static int hash_payload(bundle *b, int fd, uint64_t offset, const struct bundle_payload *pl, uint8_t (*out)[SHA256_LEN],
                        uint8_t ret_whole[static SHA256_LEN]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *whole = EVP_MD_CTX_new();
        size_t window = MAX(WINDOW, pl->chunk_size);
        uint8_t *bufs[PIPE_SLOTS] = {};
        struct hash_pipe p = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
        bool threaded;
        pthread_t t;
        unsigned tail = 0;
        unsigned mdlen = 0;
        int r = 0;

        if (!whole || EVP_DigestInit_ex(whole, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        p.whole = whole;
        threaded = pl->size >= PIPE_MIN && pthread_create(&t, NULL, whole_worker, &p) == 0;

        for (uint64_t done = 0; r >= 0 && done < pl->size;) {
                size_t len = (size_t) MIN((uint64_t) window, pl->size - done);
                struct window *w;

                pthread_mutex_lock(&p.mu);
                while (p.count == PIPE_SLOTS)
                        pthread_cond_wait(&p.cv, &p.mu);
                pthread_mutex_unlock(&p.mu);
                /* Slot `tail` is free: the worker only touches the `count` slots from `head`. */
                w = &p.q[tail];
                if (!window_map(fd, offset + done, len, w)) {
                        if (!b) {
                                r = fd >= 0 ? -EIO : -EINVAL;
                                break;
                        }
                        if (!bufs[tail] && !(bufs[tail] = malloc(window))) {
                                r = -ENOMEM;
                                break;
                        }
                        r = source_read(b, offset + done, bufs[tail], len, "payload");
                        if (r < 0)
                                break;
                        *w = (struct window){ .data = bufs[tail], .len = len, .map = MAP_FAILED };
                }
                r = hash_chunks(pl, w, done / pl->chunk_size, out);
                if (r < 0) {
                        window_release(w);
                        break;
                }
                progress_add(len);
                if (threaded) {
                        pthread_mutex_lock(&p.mu);
                        p.count++;
                        pthread_cond_broadcast(&p.cv);
                        pthread_mutex_unlock(&p.mu);
                } else {
                        if (EVP_DigestUpdate(whole, w->data, w->len) != 1)
                                r = -EIO;
                        window_release(w);
                }
                tail = (tail + 1) % PIPE_SLOTS;
                done += len;
        }
        if (threaded) {
                pthread_mutex_lock(&p.mu);
                p.done = true;
                p.abort = r < 0;
                pthread_cond_broadcast(&p.cv);
                pthread_mutex_unlock(&p.mu);
                pthread_join(t, NULL);
        }
        for (unsigned i = 0; i < PIPE_SLOTS; i++)
                free(bufs[i]);
        if (r < 0)
                return r;
        if (p.r < 0)
                return crypto_fail(p.r, "SHA-256");
        if (EVP_DigestFinal_ex(whole, ret_whole, &mdlen) != 1 || mdlen != SHA256_LEN)
                return crypto_fail(-EIO, "SHA-256");
        return 0;
}

/*
 * Parallel verification of a payload in a regular file: windows are read with pread (a file truncated
 * underneath gives an error, never SIGBUS) and their chunks checked against the signed list, window k by
 * worker k % n. The chunk list covers every byte, so the whole-payload digest adds nothing here and is not
 * recomputed (streams, read once in order, still check it). Memory: one window per worker.
 */
#define VERIFY_MAX_WORKERS 4u

struct verify_job {
        int fd;
        uint64_t offset;
        const struct bundle_payload *pl;
        size_t window;
        unsigned n_workers;
        pthread_mutex_t mu;
        uint64_t bad_chunk;   /* lowest failing chunk, UINT64_MAX when none */
        int r;                /* first error that is not a digest mismatch */
};

struct verify_worker {
        struct verify_job *job;
        unsigned index;
};

/* Read exactly len bytes at offset: -RINGIL_ETRUNCATED if the file ends (or was cut) before. */
static int pread_exact(int fd, uint8_t *buf, size_t len, uint64_t offset) {
        for (size_t done = 0; done < len;) {
                ssize_t k = pread(fd, buf + done, len - done, (off_t) (offset + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -RINGIL_ETRUNCATED;
                done += (size_t) k;
        }
        return 0;
}

static void *verify_worker_main(void *arg) {
        struct verify_worker *w = arg;
        struct verify_job *j = w->job;
        const struct bundle_payload *pl = j->pl;
        uint8_t *buf = malloc(j->window);
        int r = buf ? 0 : -ENOMEM;

        for (uint64_t k = w->index; r >= 0 && k * j->window < pl->size; k += j->n_workers) {
                uint64_t start = k * j->window, first = start / pl->chunk_size;
                size_t len = (size_t) MIN((uint64_t) j->window, pl->size - start);

                pthread_mutex_lock(&j->mu);
                r = j->r < 0 || j->bad_chunk < first ? -ECANCELED : 0;   /* someone already failed earlier */
                pthread_mutex_unlock(&j->mu);
                if (r < 0)
                        break;
                r = pread_exact(j->fd, buf, len, j->offset + start);
                if (r < 0) {
                        pthread_mutex_lock(&j->mu);
                        if (j->r >= 0)
                                j->r = r;
                        pthread_mutex_unlock(&j->mu);
                        break;
                }
                for (size_t pos = 0, i = 0; pos < len; i++) {
                        size_t n = MIN((size_t) pl->chunk_size, len - pos);
                        uint8_t md[SHA256_LEN];
                        unsigned mdlen = 0;

                        if (EVP_Digest(buf + pos, n, md, &mdlen, EVP_sha256(), NULL) != 1) {
                                r = -EIO;
                                pthread_mutex_lock(&j->mu);
                                if (j->r >= 0)
                                        j->r = r;
                                pthread_mutex_unlock(&j->mu);
                                break;
                        }
                        if (crypto_memcmp(md, pl->chunk_sha256[first + i], SHA256_LEN) != 0) {
                                pthread_mutex_lock(&j->mu);
                                j->bad_chunk = MIN(j->bad_chunk, first + i);
                                pthread_mutex_unlock(&j->mu);
                                r = -RINGIL_EDIGEST;
                                break;
                        }
                        pos += n;
                }
                if (r >= 0)
                        progress_add(len);
        }
        free(buf);
        return NULL;
}

static int verify_payload_file(int fd, uint64_t offset, const struct bundle_payload *pl) {
        struct verify_job j = {
                .fd = fd, .offset = offset, .pl = pl, .window = MAX(WINDOW, pl->chunk_size),
                .mu = PTHREAD_MUTEX_INITIALIZER, .bad_chunk = UINT64_MAX,
        };
        struct verify_worker workers[VERIFY_MAX_WORKERS];
        pthread_t threads[VERIFY_MAX_WORKERS];
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned started = 0;

        j.n_workers = (unsigned) MIN((uint64_t) MAX(cpus, 1L), (uint64_t) VERIFY_MAX_WORKERS);
        if (pl->size <= j.window)
                j.n_workers = 1;
        for (unsigned i = 0; i < j.n_workers; i++) {
                workers[i] = (struct verify_worker){ .job = &j, .index = i };
                if (i > 0 && pthread_create(&threads[i], NULL, verify_worker_main, &workers[i]) != 0)
                        break;   /* fewer threads: the windows of the missing ones are redistributed below */
                started++;
        }
        if (started < j.n_workers) {
                /* Could not start every worker: join those that started, then redo with one. */
                for (unsigned i = 1; i < started; i++)
                        pthread_join(threads[i], NULL);
                j.n_workers = 1;
                j.bad_chunk = UINT64_MAX;
                j.r = 0;
                started = 1;
        }
        verify_worker_main(&workers[0]);
        for (unsigned i = 1; i < started; i++)
                pthread_join(threads[i], NULL);
        pthread_mutex_destroy(&j.mu);

        if (j.bad_chunk != UINT64_MAX)
                return ringil_fail(-RINGIL_EDIGEST, "payload '%s' chunk %llu does not match its signed hash", pl->name,
                                   (unsigned long long) j.bad_chunk);
        if (j.r < 0)
                return ringil_fail(j.r, "cannot read payload '%s': %s", pl->name, ringil_strerror(j.r));
        return 0;
}

int bundle_verify_payloads(bundle *b) {
        const struct bundle_manifest *m;
        uint8_t probe;
        int r;

        if (!b || !b->manifest)
                return ringil_fail(-EINVAL, "payloads verified before the manifest");
        m = b->manifest;
        for (size_t i = 0; i < m->n_payloads; i++) {
                const struct bundle_payload *pl = &m->payloads[i];
                uint8_t whole[SHA256_LEN];

                if (b->fd >= 0) {
                        r = verify_payload_file(b->fd, b->payload_offset[i], pl);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = hash_payload(b, -EBADF, b->payload_offset[i], pl, NULL, whole);
                if (r < 0)
                        return r;
                if (crypto_memcmp(whole, pl->sha256, SHA256_LEN) != 0)
                        return ringil_fail(-RINGIL_EDIGEST, "payload '%s' does not match its signed SHA-256", pl->name);
        }
        /* INVARIANT: nothing follows the last payload, also on streams of unknown size. */
        r = b->src.read_at(b->src.userdata, b->total, &probe, 1);
        if (r == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "bytes appended after the last payload");
        if (r != -ENODATA)
                return ringil_fail(r, "cannot read the end of the bundle: %s", strerror(-r));
        return 0;
}

/* ---- creation ---- */

static int sign_manifest(const struct bundle_create_opts *o, const char *manifest, size_t len, uint8_t **ret,
                         size_t *ret_len) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *extra = sk_X509_new_null();
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_free_allp) BIO *in = NULL;
        const unsigned flags = CMS_BINARY | CMS_DETACHED | CMS_PARTIAL | CMS_NOSMIMECAP;
        unsigned char *der = NULL;
        int r, n;

        if (!extra)
                return -ENOMEM;
        r = crypto_load_private_key(o->key, &key);
        if (r < 0)
                return r;
        r = crypto_load_cert(o->cert, &cert);
        if (r < 0)
                return r;
        if (X509_check_private_key(cert, key) != 1)
                return crypto_fail(-RINGIL_EMALFORMED, "signing key does not match the certificate");
        for (const char *const *i = o->intermediates; i && *i; i++) {
                _cleanup_x509_stack_ STACK_OF(X509) *sk = NULL;
                r = crypto_load_certs(*i, &sk);
                if (r < 0)
                        return r;
                while (sk_X509_num(sk) > 0) {
                        X509 *x = sk_X509_shift(sk);
                        if (!sk_X509_push(extra, x)) {
                                X509_free(x);
                                return -ENOMEM;
                        }
                }
        }
        in = BIO_new_mem_buf(manifest, (int) len);
        if (!in)
                return -ENOMEM;
        cms = CMS_sign(NULL, NULL, extra, NULL, flags);
        if (!cms)
                return crypto_fail(-EIO, "CMS_sign");
        if (!CMS_add1_signer(cms, cert, key, EVP_sha256(), flags))
                return crypto_fail(-EIO, "CMS_add1_signer");
        if (CMS_final(cms, in, NULL, flags) != 1)
                return crypto_fail(-EIO, "CMS_final");
        n = i2d_CMS_ContentInfo(cms, &der);
        if (n <= 0)
                return crypto_fail(-EIO, "CMS encoding");
        if ((size_t) n > BUNDLE_MAX_SIGNATURE) {
                OPENSSL_free(der);
                return ringil_fail(-RINGIL_ETOOBIG, "signature with certificates is %d bytes, cap %u", n,
                                   BUNDLE_MAX_SIGNATURE);
        }
        *ret = malloc((size_t) n);
        if (!*ret) {
                OPENSSL_free(der);
                return -ENOMEM;
        }
        memcpy(*ret, der, (size_t) n);
        OPENSSL_free(der);
        *ret_len = (size_t) n;
        return 0;
}

/* Copy len bytes of in (from 0) to out at base, skipping holes so a sparse payload stays sparse. */
static int copy_sparse(int in, int out, uint64_t base, uint64_t len) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t off = 0;

        while (off < len) {
                off_t data = lseek(in, (off_t) off, SEEK_DATA), hole;
                if (data < 0) {
                        if (errno == ENXIO) {
                                progress_add(len - off);
                                break;   /* only a hole remains: ftruncate makes it */
                        }
                        if (errno != EINVAL)
                                return negative_errno();
                        data = (off_t) off;   /* no SEEK_DATA on this fs: copy everything */
                        hole = (off_t) len;
                } else {
                        hole = lseek(in, data, SEEK_HOLE);
                        if (hole < 0)
                                return negative_errno();
                }
                if ((uint64_t) hole > len)
                        hole = (off_t) len;
                if ((uint64_t) data > off)
                        progress_add(MIN((uint64_t) data, len) - off);   /* a hole: nothing to copy, but done */
                while (data < hole) {
                        loff_t src = data, dst = (loff_t) (base + (uint64_t) data);
                        ssize_t k = copy_file_range(in, &src, out, &dst, (size_t) MIN((uint64_t) (hole - data), 1u << 30), 0);
                        if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                                size_t n = (size_t) MIN((uint64_t) (hole - data), (uint64_t) WINDOW);
                                ssize_t got;
                                int r;
                                if (!buf && !(buf = malloc(WINDOW)))
                                        return -ENOMEM;
                                got = pread(in, buf, n, data);
                                if (got <= 0)
                                        return got < 0 ? negative_errno() : -EIO;
                                r = pwrite_all(out, buf, (size_t) got, (off_t) (base + (uint64_t) data));
                                if (r < 0)
                                        return r;
                                k = got;
                        } else if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return negative_errno();
                        } else if (k == 0)
                                return -EIO;   /* the input shrank under us */
                        progress_add((uint64_t) k);
                        data += k;
                }
                off = (uint64_t) hole;
        }
        return 0;
}

static bool valid_chars(const char *s, size_t max, const char *extra) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      strchr(extra, s[i])))
                        return false;
        return true;
}

struct create_state {
        struct bundle_manifest m;
        int *fds;
};

static void create_state_done(struct create_state *s) {
        for (size_t i = 0; i < s->m.n_payloads; i++) {
                safe_close(s->fds[i]);
                free(s->m.payloads[i].chunk_sha256);
        }
        free(s->m.payloads);
        free(s->fds);
}

static int write_bundle(const char *output, const uint8_t *header, const char *manifest, size_t mlen,
                        const uint8_t *sig, size_t slen, struct create_state *s, uint64_t total) {
        _cleanup_free_ char *dir = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *slash = strrchr(output, '/');
        bool detailed = false;   /* r's detail is already recorded and more precise than "cannot write" */
        uint64_t pos;
        int r;

        dir = slash ? strndup(output, (size_t) (slash - output) + 1) : strdup("./");
        if (!dir || asprintf(&tmp, "%s.#bundle.XXXXXX", dir) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return ringil_fail(negative_errno(), "cannot create a temporary file next to '%s'", output);
        r = write_all(fd, header, BUNDLE_HEADER_SIZE);
        if (r >= 0)
                r = write_all(fd, manifest, mlen);
        if (r >= 0)
                r = write_all(fd, sig, slen);
        pos = BUNDLE_HEADER_SIZE + mlen + slen;
        progress_step("copying the payloads", total - pos);
        for (size_t i = 0; r >= 0 && i < s->m.n_payloads; i++) {
                struct stat st;
                if (s->fds[i] < 0)
                        continue;
                /* The input must not have changed size since it was hashed. */
                if (fstat(s->fds[i], &st) < 0)
                        r = negative_errno();
                else if ((uint64_t) st.st_size != s->m.payloads[i].size) {
                        r = ringil_fail(-EIO, "payload '%s' changed while the bundle was made", s->m.payloads[i].name);
                        detailed = true;
                } else
                        r = copy_sparse(s->fds[i], fd, pos, s->m.payloads[i].size);
                pos += s->m.payloads[i].size;
        }
        if (r >= 0 && ftruncate(fd, (off_t) total) < 0)
                r = negative_errno();
        /* INVARIANT: a bundle is renamed into place only after its written payload bytes were checked
         * against the chunk hashes just signed. The input was hashed in one pass and copied in another:
         * a same-size rewrite in between would otherwise give a bundle that fails its own signature. */
        pos = BUNDLE_HEADER_SIZE + mlen + slen;
        if (r >= 0)
                progress_step("checking the written payloads against their hashes", total - pos);
        for (size_t i = 0; r >= 0 && i < s->m.n_payloads; i++) {
                const struct bundle_payload *pl = &s->m.payloads[i];
                if (pl->size > 0) {
                        r = verify_payload_file(fd, pos, pl);
                        if (r < 0) {
                                char why[256];   /* not ringil_detail() itself: ringil_fail writes there */
                                snprintf(why, sizeof(why), "%s", ringil_detail());
                                r = ringil_fail(r == -RINGIL_EDIGEST ? -EIO : r, "payload '%s' changed while the bundle was made: %s",
                                                pl->name, why);
                                detailed = true;
                        }
                }
                pos += pl->size;
        }
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, output) < 0)
                r = negative_errno();
        if (r < 0) {
                progress_abort();
                (void) unlink(tmp);
                return detailed ? r : ringil_fail(r, "cannot write '%s': %s", output, strerror(-r));
        }
        progress_done();
        return fsync_parent_dir(output);
}

int bundle_create(const struct bundle_create_opts *o, const char *output) {
        _cleanup_(create_state_done) struct create_state s = {};
        _cleanup_(bundle_manifest_freep) struct bundle_manifest *check = NULL;
        _cleanup_free_ char *manifest = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        _cleanup_free_ uint64_t *offsets = NULL;
        uint8_t header[BUNDLE_HEADER_SIZE] = {};
        uint32_t cs = o->chunk_size ? o->chunk_size : BUNDLE_DEFAULT_CHUNK_SIZE;
        uint64_t chunks_left = BUNDLE_MAX_CHUNKS, total;
        size_t mlen = 0, slen = 0;
        int r;

        if (!o->key || !o->cert || !output)
                return ringil_fail(-EINVAL, "key, certificate and output are required");
        if (!valid_chars(o->compatible, BUNDLE_MAX_COMPATIBLE, "._:+-"))
                return ringil_fail(-EINVAL, "compatible must be 1..%u of [A-Za-z0-9._:+-]", BUNDLE_MAX_COMPATIBLE);
        if (bundle_version_valid(o->version) < 0)
                return ringil_fail(-EINVAL, "version '%s' is not dot-numeric (e.g. 1.2.10)", o->version ? o->version : "");
        if (cs < BUNDLE_MIN_CHUNK_SIZE || cs > BUNDLE_MAX_CHUNK_SIZE || (cs & (cs - 1)) != 0)
                return ringil_fail(-EINVAL, "chunk size %u is not a power of two in [4 KiB, 64 MiB]", cs);
        if (o->n_payloads == 0 || o->n_payloads > BUNDLE_MAX_PAYLOADS)
                return ringil_fail(-EINVAL, "1..%u payloads required", BUNDLE_MAX_PAYLOADS);

        s.m.format = BUNDLE_FORMAT;
        s.m.compatible = (char *) o->compatible;
        s.m.version = (char *) o->version;
        s.m.created = o->created ? o->created : (int64_t) time(NULL);
        s.m.expires = o->expires;
        if (s.m.created < 0 || s.m.expires <= s.m.created)
                return ringil_fail(-EINVAL, "expiry must be after the creation time");
        s.m.payloads = calloc(o->n_payloads, sizeof(*s.m.payloads));
        s.fds = malloc(o->n_payloads * sizeof(int));
        if (!s.m.payloads || !s.fds)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_payloads; i++) {
                const struct bundle_create_payload *cp = &o->payloads[i];
                struct bundle_payload *pl = &s.m.payloads[i];
                struct stat st;

                s.fds[i] = -EBADF;
                s.m.n_payloads = i + 1;
                if (!valid_chars(cp->name, BUNDLE_MAX_NAME, "._-"))
                        return ringil_fail(-EINVAL, "payload name '%s' must be 1..%u of [A-Za-z0-9._-]", cp->name ? cp->name : "",
                                           BUNDLE_MAX_NAME);
                for (size_t j = 0; j < i; j++)
                        if (streq(o->payloads[j].name, cp->name))
                                return ringil_fail(-EINVAL, "duplicate payload name '%s'", cp->name);
                pl->name = (char *) cp->name;
                pl->type = cp->type;
                pl->chunk_size = cs;
                pl->store_path = (char *) cp->store_path;
                pl->cache_url = (char *) cp->cache_url;
                if (!cp->path) {
                        if (cp->type != BUNDLE_PAYLOAD_NIXOS)
                                return ringil_fail(-EINVAL, "payload '%s' needs a file", cp->name);
                        r = crypto_sha256("", 0, pl->sha256);
                        if (r < 0)
                                return r;
                        continue;
                }
                s.fds[i] = open(cp->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (s.fds[i] < 0)
                        return ringil_fail(negative_errno(), "cannot open payload '%s'", cp->path);
                if (fstat(s.fds[i], &st) < 0)
                        return negative_errno();
                if (!S_ISREG(st.st_mode))
                        return ringil_fail(-EINVAL, "payload '%s' is not a regular file", cp->path);
                pl->size = (uint64_t) st.st_size;
                pl->n_chunks = bundle_chunks_for(pl->size, cs);
                if (pl->n_chunks > chunks_left)
                        return ringil_fail(-RINGIL_ETOOBIG, "payloads need more than %u chunks; use a larger --chunk-size",
                                           BUNDLE_MAX_CHUNKS);
                chunks_left -= pl->n_chunks;
                if (pl->n_chunks > 0) {
                        pl->chunk_sha256 = calloc(pl->n_chunks, SHA256_LEN);
                        if (!pl->chunk_sha256)
                                return -ENOMEM;
                }
                (void) posix_fadvise(s.fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
                {
                        char what[128];
                        (void) snprintf(what, sizeof(what), "hashing payload '%s'", cp->name);
                        progress_step(what, pl->size);
                }
                r = hash_payload(NULL, s.fds[i], 0, pl, pl->chunk_sha256, pl->sha256);
                if (r >= 0)
                        progress_done();
                else
                        progress_abort();
                if (r < 0) {
                        char why[256];   /* not ringil_detail() itself: ringil_fail writes there */
                        snprintf(why, sizeof(why), "%s", ringil_detail());
                        return ringil_fail(r, "cannot hash payload '%s': %s", cp->path, why);
                }
        }
        r = bundle_manifest_format(&s.m, &manifest, &mlen);
        if (r < 0)
                return r;
        /* Never emit what verification would refuse: parse our own output with the strict parser. */
        r = bundle_manifest_parse((const uint8_t *) manifest, mlen, &check);
        if (r < 0)
                return r;
        r = sign_manifest(o, manifest, mlen, &sig, &slen);
        if (r < 0)
                return r;
        r = compute_layout(&s.m, (uint32_t) mlen, (uint32_t) slen, &offsets, &total);
        if (r < 0)
                return r;
        memcpy(header, bundle_magic, sizeof(bundle_magic));
        put_be32(header + 8, BUNDLE_FORMAT);
        put_be32(header + 16, (uint32_t) mlen);
        put_be32(header + 20, (uint32_t) slen);
        return write_bundle(output, header, manifest, mlen, sig, slen, &s, total);
}
