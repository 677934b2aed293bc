/* fleet-fetch.h: fetching byte ranges of one bundle from a list of sources (mirrors, then the server), several requests in flight. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet-client.h"
#include "install-fetch.h"

/*
 * The agent's downloader for delta installs (libcurl multi): the ranges of a batch are cut into pieces of
 * at most FLEET_FETCH_PIECE bytes, up to `parallel` pieces are requested at once (each a single-range GET
 * on a kept-alive connection of its own), and the bytes are handed to the sink strictly in order, as
 * soon as they are (the first piece's bytes while it still arrives); memory
 * is bounded by parallel * FLEET_FETCH_PIECE. A piece cut off is asked for again from its first missing
 * byte; after FLEET_FETCH_TRIES failed tries without progress the next source URL is used (mirrors first,
 * the fleet server last: the same signed bundle, so any source will do). The first n_mirrors URLs are
 * static mirrors: their handles never carry the drone's certificate and trust mirror_ca (or the
 * system's store); the rest are the fleet server's replicas (mutual TLS, the fleet CA). What a source
 * sends is checked by the caller (ringild/source.c), which drops a source that sent wrong bytes
 * (fleet_fetch_drop_source) and asks again. Every answer must be a 206 whose
 * Content-Range names exactly the bytes asked for and the bundle's length, and must carry no byte more:
 * anything else is refused before a byte of it reaches the sink.
 */
#define FLEET_FETCH_PIECE (1u << 20)
#define FLEET_FETCH_MAX_PARALLEL 8u
#define FLEET_FETCH_MAX_URLS 16u   /* FLEET_MIRRORS_MAX mirrors and FLEET_CLIENT_MAX_SERVERS replicas */
#define FLEET_FETCH_TRIES 6u

struct fleet_fetch_opts {
        const char *const *urls;   /* NULL-terminated full URLs of the bundle, tried in order */
        const char *ca, *cert, *key;   /* the fleet server's (mutual TLS) */
        size_t n_mirrors;          /* the first n_mirrors URLs are mirrors: no client certificate */
        const char *mirror_ca;     /* the mirrors' CA file; NULL: the system's trust store */
        unsigned timeout;          /* seconds, per request (connect and low-speed limit) */
        unsigned parallel;         /* 1..FLEET_FETCH_MAX_PARALLEL */
        uint64_t size;             /* the bundle's length (Content-Range totals must say the same) */
};

struct fleet_fetch_stats {
        uint64_t bytes;            /* body bytes received (retries included) */
        uint64_t delivered;        /* bytes handed to the sink */
        uint64_t requests;
        uint64_t retries;
};

typedef struct fleet_fetch fleet_fetch;

int fleet_fetch_new(const struct fleet_fetch_opts *o, fleet_fetch **ret);
void fleet_fetch_free(fleet_fetch *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(fleet_fetch *, fleet_fetch_free)
const struct fleet_fetch_stats *fleet_fetch_stats(const fleet_fetch *f);
/* The source (index into urls) whose bytes the sink is being handed now. */
size_t fleet_fetch_delivering(const fleet_fetch *f);
/* Never use source i again (it sent wrong bytes); when it is the one in use, the next good one is. */
void fleet_fetch_drop_source(fleet_fetch *f, size_t i);
/* Does any source remain? */
bool fleet_fetch_has_source(const fleet_fetch *f);

/*
 * Deliver the bytes of r[0..n) (ascending, inside [0, size)) to sink, in order. Returns 0; -ERANGE when
 * every source answered a range request with the whole resource (no Range support: nothing of this
 * call was delivered; the caller downloads sequentially instead); -RINGIL_EDIGEST when an answer was not
 * the range asked for (wrong Content-Range or length) and no other source gave it; -EACCES when the last
 * source (the fleet server) answered 403 or 404 (the release is no longer this drone's); the sink's own
 * error when it refused (-EPIPE: the installer stopped reading); or a network/protocol error
 * (-ECONNRESET, -ETIMEDOUT, -EPROTO, …) once the tries ran out.
 */
int fleet_fetch_ranges(fleet_fetch *f, const struct fetch_range *r, size_t n, fleet_sink_t sink, void *userdata);

/*
 * The whole bundle with plain GETs (for a source without Range support), in order: after a cut it is
 * asked for again from the start and the bytes already delivered are dropped, so the sink sees one
 * continuous stream. The body must be exactly `size` bytes.
 */
int fleet_fetch_all(fleet_fetch *f, fleet_sink_t sink, void *userdata);
