/* bundle-internal.h: declarations shared by bundle.c and bundle-manifest.c only (not a public API). */
#pragma once

#include "buf.h"
#include "bundle.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct bundle_manifest *, bundle_manifest_free)

/* Serialize a manifest into its canonical JSON bytes (compact, sorted keys); *ret is malloc'd. */
int bundle_manifest_format(const struct bundle_manifest *m, char **ret, size_t *ret_len);

/* ceil(size / chunk_size), or -EOVERFLOW-free: chunk_size is never 0 here. */
static inline uint64_t bundle_chunks_for(uint64_t size, uint32_t chunk_size) {
        return size / chunk_size + (size % chunk_size != 0);
}
