/* nix-mirror.h: the drone's side of the fleet's Nix binary cache: mirror the part of a closure the local
 * store lacks, through the fleet client, into a local file:// cache that Nix then substitutes from. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "nix-closure.h"
#include "nix-narinfo.h"

/*
 * Where the mirror reads from: the fleet client in ringil, a table in the unit tests. get() fetches a
 * small document (status and body; body capped at max); get_range() appends bytes [off, off+len) of
 * path to the sink and returns how many arrived (short when cut), as fleet_client_get_range().
 */
typedef int (*nixcache_sink_t)(void *userdata, const void *p, size_t n);
struct nixcache_source {
        int (*get)(void *userdata, const char *path, size_t max, long *ret_status, struct buf *ret_body);
        int64_t (*get_range)(void *userdata, const char *path, uint64_t off, uint64_t len, nixcache_sink_t sink,
                             void *sink_userdata, long *ret_status);
        void *userdata;
};

/*
 * Which of paths[0..n) are NOT valid in the local store: sets invalid[i]. A valid path's whole closure is
 * valid (Nix's invariant), so the walk stops there. Returns 0 or a negative errno.
 */
typedef int (*nixcache_invalid_t)(void *userdata, char *const *paths, size_t n, bool *invalid);

struct nixcache_stats {
        uint64_t paths_seen;       /* closure members looked at (valid ones included) */
        uint64_t paths_fetched;    /* narinfos fetched and verified (the missing paths) */
        uint64_t nars_fetched;     /* NAR files downloaded (or completed) this time */
        uint64_t bytes_fetched;    /* bytes received */
        uint64_t bytes_resumed;    /* bytes of partial NARs kept from an earlier, interrupted run */
};

/*
 * Mirror what the local store lacks of store_path's closure into dir (made 0700 if missing), in Nix's
 * file:// cache layout: nix-cache-info, HASH.narinfo, nar/FILE. INVARIANT: a narinfo is followed (its
 * References walked, its NAR fetched, the file written) only after its signature verified against
 * trusted_keys and its StorePath equals the path asked for; a NAR file gets its final name only once
 * its size and SHA-256 equal the narinfo's FileSize/FileHash. A partial NAR (nar/FILE.part) from an
 * interrupted run is resumed with a Range request. Nix then substitutes from file://dir with
 * require-sigs and checks every NarHash again.
 * pin (may be NULL): the bundle's closure listing: every narinfo's path must be in it with the same
 * NarHash and NarSize (checked right after its signature, before its NAR is fetched): -RINGIL_EDIGEST.
 * src[0..n_src) are independent connections to the same cache (at most NIXCACHE_MAX_SOURCES are used):
 * the missing paths of one level of the walk are fetched in parallel, one thread per source.
 * Errors: -ENOENT (the cache has no such path: 404), -RINGIL_EUNTRUSTED/-RINGIL_EBADSIG (signature),
 * -RINGIL_EDIGEST (a NAR does not match its FileHash), -RINGIL_EMALFORMED, -RINGIL_ETOOBIG (caps),
 * -EACCES (401/403), -EPROTO/-ECONNRESET... (transport, after retries), each with a detail.
 */
#define NIXCACHE_MAX_SOURCES 16
int nixcache_mirror(const struct nixcache_source *src, size_t n_src, const char *store_path, const char *trusted_keys,
                    const struct nix_closure *pin, nixcache_invalid_t invalid, void *invalid_userdata,
                    const char *dir, struct nixcache_stats *ret_stats);

/* Remove a mirror directory made by nixcache_mirror() (its files only; anything else is left). */
int nixcache_mirror_remove(const char *dir);
