/* bundle.h: signed update bundles: create; open from a file, stream or any byte source; verify the
 * signed manifest; then read payload chunks that are each verified before they are handed out. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "vercmp.h"   /* manifest versions and the policy floor follow its syntax and order */

/*
 * API contract shared by the bundle implementation, the installer and the fleet server/agent. The
 * on-disk format is specified in docs/bundle-format.md. Functions may be added; the ones below keep
 * their meaning.
 */

enum bundle_payload_type {
        BUNDLE_PAYLOAD_RAW,     /* raw slot image ("raw") */
        BUNDLE_PAYLOAD_EFI,     /* EFI binary / UKI ("efi") */
        BUNDLE_PAYLOAD_NIXOS,   /* NixOS system closure reference ("nixos"): store path + cache */
};

struct bundle_payload {
        char *name;
        enum bundle_payload_type type;
        uint64_t size;                         /* payload bytes carried in the bundle */
        uint8_t sha256[SHA256_LEN];            /* of all `size` bytes (see bundle_verify_payloads) */
        uint32_t chunk_size;                   /* every chunk but the last is exactly this long */
        uint64_t n_chunks;
        uint8_t (*chunk_sha256)[SHA256_LEN];   /* n_chunks entries */
        char *store_path;                      /* nixos only: /nix/store/…-nixos-system-… */
        char *cache_url;                       /* nixos only: binary cache it comes from (may be NULL) */
        /* Content-defined chunking (manifest format 2, docs/bundle-format.md): chunk boundaries come from
         * the signed chunk sizes; chunk_size is then the largest chunk (cdc_max), a reader's buffer size. */
        bool cdc;
        uint32_t cdc_min, cdc_avg, cdc_max;
        uint64_t *chunk_end;                   /* cdc only: end offset of each chunk (n_chunks entries) */
};

/* Where chunk i of a payload starts and ends (fixed: i * chunk_size; cdc: from the signed sizes). */
static inline uint64_t bundle_chunk_start(const struct bundle_payload *p, uint64_t i) {
        if (p->chunk_end)
                return i ? p->chunk_end[i - 1] : 0;
        return i * p->chunk_size;
}
static inline uint64_t bundle_chunk_end(const struct bundle_payload *p, uint64_t i) {
        uint64_t e;

        if (p->chunk_end)
                return p->chunk_end[i];
        e = (i + 1) * p->chunk_size;
        return e < p->size ? e : p->size;
}
static inline size_t bundle_chunk_len(const struct bundle_payload *p, uint64_t i) {
        return (size_t) (bundle_chunk_end(p, i) - bundle_chunk_start(p, i));
}

struct bundle_manifest {
        uint32_t format;
        char *compatible;
        char *version;
        int64_t created;                       /* Unix seconds, UTC */
        int64_t expires;
        size_t n_payloads;
        struct bundle_payload *payloads;
        uint8_t digest[SHA256_LEN];            /* SHA-256 of the exact signed manifest bytes */
        char *signer;                          /* signer certificate subject, one line */
};

struct bundle_policy {
        const char *keyring;                   /* PEM file or directory of trust anchors; required */
        const char *compatible;                /* NULL: not checked */
        const char *min_version;               /* version must be strictly above; NULL: no floor */
        int64_t now;                           /* 0: the current time */
        bool require_codesigning;              /* signer must carry the codeSigning EKU */
        const char *const *allowed_signers;    /* NULL-terminated subject CNs; NULL: any */
};

/*
 * A byte source: read exactly len bytes at offset into buf. Returns 0, -ENODATA past the end, or a
 * negative errno. A sequential source (pipe, socket) only supports offsets at or after its position
 * (it skips forward by reading) and returns -ESPIPE for offsets behind it. size is UINT64_MAX when
 * unknown. close may be NULL.
 */
struct bundle_source {
        int (*read_at)(void *userdata, uint64_t offset, void *buf, size_t len);
        void (*close)(void *userdata);
        void *userdata;
        uint64_t size;
};

typedef struct bundle bundle;

int bundle_open(const char *path, bundle **ret);            /* "-" is stdin, read as a stream */
int bundle_open_fd(int fd, bundle **ret);                   /* takes ownership of fd */
int bundle_open_source(const struct bundle_source *src, bundle **ret);
void bundle_free(bundle *b);
static inline void bundle_freep(bundle **b) {
        if (*b)
                bundle_free(*b);
}
#define _cleanup_bundle_ __attribute__((cleanup(bundle_freep)))

/*
 * Read the header, manifest and signature (and no payload byte), verify the CMS signature and chain
 * against policy->keyring, then compatible, expiry and the version floor. Returns 0 only when all
 * hold; otherwise -RINGIL_EBADSIG, -RINGIL_EUNTRUSTED, -RINGIL_EEXPIRED, -RINGIL_EROLLBACK,
 * -RINGIL_EINCOMPAT, -RINGIL_EMALFORMED, -RINGIL_ETRUNCATED, -RINGIL_ETOOBIG, with a detail recorded.
 * INVARIANT: callers write nothing anywhere before this returned 0.
 */
int bundle_verify_manifest(bundle *b, const struct bundle_policy *policy);

/* The verified manifest; NULL until bundle_verify_manifest() returned 0. Owned by b. */
const struct bundle_manifest *bundle_get_manifest(const bundle *b);

/*
 * Read chunk `index` of payload `p` into buf (at least chunk_size bytes) and check it against the
 * signed chunk hash before returning; *ret_len is the chunk's length. -RINGIL_EDIGEST on mismatch
 * (buf contents are then undefined and must not be used). Only after a successful verify_manifest.
 */
int bundle_read_chunk(bundle *b, size_t p, uint64_t index, uint8_t *buf, size_t *ret_len);

/*
 * Read every payload byte and check it against its signed chunk hash, then that no byte follows the last
 * payload; 0 only when all hold, else -RINGIL_EDIGEST, -RINGIL_ETRUNCATED, -RINGIL_EMALFORMED or an errno.
 * The chunk list alone binds every byte to the signature (its length is fixed by size, each chunk's
 * extent by its index). So for a regular file the whole-payload SHA-256 is NOT recomputed (chunks are
 * checked in parallel); a stream, read once in order, checks it as well. The whole digest is computed by
 * bundle_create (which re-checks the bytes it wrote) and, for size 0, pinned by the parser to the SHA-256
 * of ""; otherwise it is informational: signed, but for a file not proven consistent with the chunks by
 * this call. Security decisions rest on the chunk hashes (bundle_read_chunk).
 */
int bundle_verify_payloads(bundle *b);

/* Offset of a payload chunk inside the bundle file (for HTTP Range requests and resume). */
int bundle_chunk_offset(const bundle *b, size_t p, uint64_t index, uint64_t *ret_offset);

struct bundle_create_payload {
        const char *name;
        enum bundle_payload_type type;
        const char *path;          /* file with the payload bytes (NULL for a pure nixos reference) */
        const char *store_path;    /* nixos */
        const char *cache_url;     /* nixos, optional */
};

struct bundle_create_opts {
        const char *key;                        /* PEM private key of the signer */
        const char *cert;                       /* PEM signer certificate */
        const char *const *intermediates;       /* NULL-terminated PEM files, or NULL */
        const char *compatible;
        const char *version;
        int64_t created;                        /* 0: now */
        int64_t expires;                        /* required, > created */
        uint32_t chunk_size;                    /* 0: default */
        uint32_t cdc_min, cdc_avg, cdc_max;     /* all 0: fixed chunk_size; else content-defined chunking
                                                   of the raw payloads (manifest format 2) */
        const struct bundle_create_payload *payloads;
        size_t n_payloads;
};

/* Write a signed bundle to output atomically (temp, fsync, rename). The payload bytes written are checked
 * against the chunk hashes just signed before the rename: an input changed between hashing and copying
 * fails with -EIO ("changed while the bundle was made") and leaves output untouched. */
int bundle_create(const struct bundle_create_opts *o, const char *output);

/*
 * Added by the bundle implementation; the meanings above are unchanged.
 * Notes on the functions above: calling bundle_verify_manifest() again re-verifies under the new
 * policy (a failure leaves the bundle unverified: no manifest, no chunk reads); the header, manifest
 * and signature are read once, and a failure to read them is final (every later call returns the same
 * error and detail, a stream is never re-read from offset 0). A regular file is
 * read by offset (chunks in any order), a pipe in order; "-" that is a regular file is read as one.
 */

/* Hard caps (docs/bundle-format.md). Every length read from a bundle is checked against these before
 * it is used to allocate, read or compute an offset. */
#define BUNDLE_FORMAT 1u                        /* header format, and manifest format without CDC */
#define BUNDLE_FORMAT_CDC 2u                    /* manifest format with a content-defined payload */
#define BUNDLE_HEADER_SIZE 32u
#define BUNDLE_MAX_MANIFEST (16u << 20)         /* manifest bytes */
#define BUNDLE_MAX_SIGNATURE (64u << 10)        /* CMS DER bytes, certificates included */
#define BUNDLE_MAX_PAYLOADS 64u
#define BUNDLE_MAX_CHUNKS (128u << 10)          /* per bundle, all payloads together */
#define BUNDLE_MIN_CHUNK_SIZE (4u << 10)        /* chunk sizes are powers of two in [4 KiB, 64 MiB] */
#define BUNDLE_MAX_CHUNK_SIZE (64u << 20)
#define BUNDLE_DEFAULT_CHUNK_SIZE (1u << 20)
#define BUNDLE_MAX_NAME 64u
#define BUNDLE_MAX_COMPATIBLE 128u
#define BUNDLE_MAX_VERSION VERSION_MAX
#define BUNDLE_MAX_STORE_PATH 256u
#define BUNDLE_MAX_URL 512u
#define BUNDLE_CLOCK_SKEW (24 * 3600)           /* created may be this far ahead of now */

/*
 * Strictly parse manifest bytes (no trust decision: the caller checks the signature over the same
 * bytes first). On success *ret is a new manifest (digest set, signer NULL); free with
 * bundle_manifest_free(). -RINGIL_EMALFORMED or -RINGIL_ETOOBIG with a detail.
 */
int bundle_manifest_parse(const uint8_t *data, size_t len, struct bundle_manifest **ret);
void bundle_manifest_free(struct bundle_manifest *m);
const char *bundle_payload_type_to_string(enum bundle_payload_type t);
int bundle_payload_type_from_string(const char *s, enum bundle_payload_type *ret);

/*
 * For `bundle info`: read the header and parse the manifest WITHOUT checking the signature. The result
 * says nothing about authenticity and must never drive an install. Owned by b; *ret_sig_len may be NULL.
 */
int bundle_read_unverified(bundle *b, const struct bundle_manifest **ret, uint32_t *ret_sig_len);

/*
 * For `bundle info`: the length the header and the UNVERIFIED manifest declare for the whole bundle
 * (header, manifest, signature, payloads), and the bytes the source holds (UINT64_MAX when unknown, e.g.
 * a pipe). Says nothing about authenticity. -RINGIL_ETOOBIG when the declared sizes overflow.
 */
int bundle_unverified_size(bundle *b, uint64_t *ret_declared, uint64_t *ret_actual);

/* Total length of the bundle file as declared by its (verified) manifest. */
int bundle_total_size(const bundle *b, uint64_t *ret);
