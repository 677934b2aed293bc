/* source.h: where ringild gets a bundle's bytes: the release's mirrors, then the server, each byte checked before it is handed on. */
#pragma once

#include <stdint.h>

#include "fleet-agentconf.h"
#include "fleet-client.h"
#include "fleet-msg.h"
#include "install-fetch.h"

/*
 * The one fetch layer of the agent, for the whole-bundle download (download.c) and for delta installs
 * (fetch.c, the engine's fetch protocol). The sources of one assignment are its mirrors in the order
 * the server gave them, then the server's replicas (the one in use first); the bytes move through
 * lib/fleet-fetch.h (parallel Range requests, a cut piece asked for again, the next source after
 * repeated failures). A mirror is any static HTTPS host and is trusted for nothing: its requests carry
 * no client certificate and trust `mirror-ca` (or the system's store), and every byte from any source
 * is checked before it is handed on, unit by unit:
 *
 *   unit 0     the signed metadata: bytes [0, meta_size) (header, manifest, signature), against
 *              the assignment's meta_sha256 (from the server, over mutual TLS);
 *   unit 1…    each payload chunk, against its hash in that manifest.
 *
 * A range asked for is widened to whole units, the units are checked, and only the bytes asked for are
 * handed on. A source that sends a unit with wrong bytes is dropped for this bundle and the rest comes
 * from the next one, so a bad mirror costs a retry from the next source, never a failed install; the
 * install engine still verifies the signature and every chunk itself.
 *
 * Without the metadata hash (meta_size 0: a release registered before the server recorded it) the
 * mirrors are not used and the server's bytes are handed on as they come (the engine checks them).
 */
typedef struct source source;

/* server: the agent's client (its server list and credentials; borrowed, it must outlive s). */
int source_new(const struct agent_config *c, fleet_client *server, const struct fleet_assignment *as, source **ret);
void source_free(source *s);
static inline void source_freep(source **s) {
        source_free(*s);
}

/*
 * Hand exactly the bytes of r[0..n) (ascending, not overlapping, inside the bundle) to sink, in order,
 * every one checked first. Returns 0, or: -ERANGE when every source answered a range request with the
 * whole bundle (nothing of this call was handed on; source_all() then); -EACCES when the server no
 * longer serves the release to this drone (403/404); -RINGIL_EDIGEST when no source gave the right
 * bytes; the sink's own error when it refused; a network error once the sources' tries ran out.
 */
int source_ranges(source *s, const struct fetch_range *r, size_t n, fleet_sink_t sink, void *userdata);

/* The bytes [from, size) by plain GETs of the whole bundle (sources without Range), checked alike. */
int source_all(source *s, uint64_t from, fleet_sink_t sink, void *userdata);

struct source_stats {
        uint64_t from_mirrors, from_server;   /* bytes handed on */
        uint64_t received;                    /* bytes received, retries and widening included */
        unsigned refused;                     /* units refused for wrong bytes */
};
void source_stats(const source *s, struct source_stats *ret);
/* Bytes received so far (retries and widening included). */
uint64_t source_received(const source *s);
