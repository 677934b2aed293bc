/* bundle-internal.h: what the bundle modules share (source, signature, read, create, manifest); not a public API. */
#pragma once

#include <stdbool.h>

#include "buf.h"
#include "bundle.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct bundle_manifest *, bundle_manifest_free)

/* The first 8 bytes of every bundle (docs/bundle-format.md). */
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

/* Payload bytes are mapped, read and hashed in windows of this size (a multiple of every chunk size up to
 * 4 MiB; larger chunks: one chunk per window). */
#define BUNDLE_WINDOW (4u << 20)

/* Whole chunks per window: as many as BUNDLE_WINDOW holds, at least one (chunk_size is the largest
 * chunk, so a window of MAX(BUNDLE_WINDOW, chunk_size) bytes always holds them). */
static inline uint64_t bundle_window_chunks(const struct bundle_payload *pl) {
        return MAX(UINT64_C(1), (uint64_t) (BUNDLE_WINDOW / pl->chunk_size));
}

static inline uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

/* ceil(size / chunk_size); chunk_size is never 0 here. */
static inline uint64_t bundle_chunks_for(uint64_t size, uint32_t chunk_size) {
        return size / chunk_size + (size % chunk_size != 0);
}

/* bundle-source.c: read exactly len bytes at offset from b's source; -RINGIL_ETRUNCATED past its end,
 * else the source's error, with a detail naming `what`. */
int bundle_source_read(bundle *b, uint64_t offset, void *buf, size_t len, const char *what);

/* bundle-manifest.c: serialize a manifest into its canonical JSON bytes (compact, sorted keys); *ret is malloc'd. */
int bundle_manifest_format(const struct bundle_manifest *m, char **ret, size_t *ret_len);

/* bundle-signature.c: offsets of every payload and the total bundle length, with overflow checks
 * (-RINGIL_ETOOBIG); the manifest is already capped. *ret_offsets is malloc'd. */
int bundle_compute_layout(const struct bundle_manifest *m, uint32_t manifest_len, uint32_t sig_len,
                          uint64_t **ret_offsets, uint64_t *ret_total);

/*
 * bundle-read.c: hash all `size` bytes of payload pl at `offset`: from fd by mmap when it is a regular
 * file, else from b's source (streams read strictly in order). out set: the chunk hashes are written
 * there (create); NULL: each is compared with pl's signed list (-RINGIL_EDIGEST). The whole-payload
 * SHA-256 goes to ret_whole.
 */
int bundle_hash_payload(bundle *b, int fd, uint64_t offset, const struct bundle_payload *pl, uint8_t (*out)[SHA256_LEN],
                        uint8_t ret_whole[static SHA256_LEN]);

/* bundle-read.c: check every chunk of payload pl at `offset` of the regular file fd against its signed
 * hash, in parallel: 0, -RINGIL_EDIGEST (naming the lowest bad chunk), -RINGIL_ETRUNCATED or an errno. */
int bundle_verify_payload_file(int fd, uint64_t offset, const struct bundle_payload *pl);
