/* install-delta.h: chunk reuse: find a payload's signed chunks in what the drone already has. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bundle.h"

/*
 * Before an install fetches anything, each chunk of a (verified) payload is looked for, by its signed
 * SHA-256, in local sources: the other slot (the booted one: opened O_RDONLY, never written), the target
 * slot's previous content (what an earlier or interrupted install left there) and any extra seed files.
 * Sources are chunked the way the payload is: fixed payloads at multiples of chunk_size, content-defined
 * ones with the payload's own chunker, so shifted content is found. A match says only where to look:
 * the installer reads the chunk again and hashes it before use (install.c), and a chunk that no longer
 * matches is fetched instead.
 *
 * The target slot is being overwritten in ascending chunk order, so a chunk of the target is a usable
 * source only where the writes before it cannot have reached it: at its own position (in place: nothing
 * to write at all) or further on (source offset >= destination offset). Memory is bounded by the
 * manifest (a hash table of the chunks still needed), not by the size of the sources, which are read
 * through one window.
 */
#define DELTA_MAX_SOURCES 8
#define DELTA_FETCH (-1)

struct delta_source {
        int fd;                 /* open for reading; the target's fd may also be the one written */
        const char *label;      /* for messages: "slot a (booted)", a seed path */
        uint64_t size;          /* bytes that may be read (the caller caps it) */
        bool is_target;         /* the slot being written: in-place and forward rules apply */
};

struct delta_plan {
        uint64_t n_chunks;
        int8_t *src;            /* per chunk: source index, or DELTA_FETCH */
        uint64_t *off;          /* per chunk: offset in that source */
        uint64_t bytes_local;   /* chunks found locally (in place included) */
        uint64_t bytes_inplace; /* of which already at their place in the target */
        uint64_t bytes_fetch;   /* chunks to fetch */
};

void delta_plan_done(struct delta_plan *p);

/*
 * Find chunks [first, n_chunks) of payload pl in the sources (chunks before `first` are done and not
 * looked for: they stay DELTA_FETCH and are never read). *ret is set up by this call. A source that
 * cannot be read is skipped (logged at debug), never an error: reuse is an optimisation.
 * Returns 0 or -ENOMEM.
 */
int delta_plan_payload(const struct bundle_payload *pl, uint64_t first, const struct delta_source *srcs, size_t n_srcs,
                       struct delta_plan *ret);

/*
 * Read chunk i of pl from the source the plan names into buf and check it against the signed hash:
 * 0 when it matches, -RINGIL_EDIGEST when it does not (bit rot, a source modified since the scan:
 * the caller fetches the chunk instead), or a read error.
 */
int delta_read_local(const struct bundle_payload *pl, uint64_t i, const struct delta_plan *plan,
                     const struct delta_source *srcs, uint8_t *buf, size_t *ret_len);
