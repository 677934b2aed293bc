/* fetch.h: where ringild gets a bundle's bytes: a list of sources (the release's mirrors, then the server), each byte checked before it is handed on. */
#pragma once

#include <stdint.h>

#include "fleet-agentconf.h"
#include "fleet-client.h"
#include "fleet-msg.h"

/*
 * The sources of one assignment: its mirrors in the order the server gave them, then the server. A
 * mirror is any static HTTPS host and is trusted for nothing: its client has no client certificate
 * and the CA of `mirror-ca` (or the system's trust store), and every byte from it (from the server
 * too) is checked before it is handed on, unit by unit:
 *
 *   unit 0     the signed metadata: bytes [0, meta_size) (header, manifest, signature), against
 *              the assignment's meta_sha256 (from the server, over mutual TLS);
 *   unit 1…    each payload chunk, against its hash in that manifest.
 *
 * A source that serves a unit with the wrong bytes is dropped for this bundle; one that fails
 * otherwise (down, cut, an error status) is left for the next, and tried again after the others. The
 * install engine still verifies the signature and every chunk itself: this layer only makes sure
 * that a bad mirror costs a retry from the next source, not a failed install.
 *
 * Without the metadata hash (meta_size 0: a release registered before the server recorded it) the
 * mirrors are not used and the server's bytes are handed on as they come, as before.
 */
typedef struct fetcher fetcher;

/* server: the agent's client (borrowed; it must outlive the fetcher). */
int fetcher_new(const struct agent_config *c, fleet_client *server, const struct fleet_assignment *as, fetcher **ret);
void fetcher_free(fetcher *f);

/*
 * Hand bundle bytes from offset on to sink, in order: whole checked units, at most max_len bytes (at
 * least one unit). offset must be where a unit starts: 0, or any offset this fetcher handed out up to.
 * Returns the bytes handed on (> 0), or a negative errno when no source gave one unit: -EACCES when the
 * server no longer serves the release to this drone (403/404), -EINVAL for an offset inside a unit, the
 * sink's own error when it refused bytes, the last source's error otherwise (the caller retries later).
 */
int64_t fetcher_read(fetcher *f, uint64_t offset, uint64_t max_len, fleet_sink_t sink, void *userdata);

/*
 * Where a download holding `have` bytes (from an earlier process, cut anywhere) resumes: the start of
 * the unit that holds byte `have` (have itself when it is a unit's start or the end). Fetches the
 * metadata for the chunks' places when this fetcher has not seen it yet; its errors are
 * fetcher_read()'s.
 */
int fetcher_resume_at(fetcher *f, uint64_t have, uint64_t *ret);

/* Bytes handed on from the mirrors and from the server, and units refused for wrong bytes. */
void fetcher_stats(const fetcher *f, uint64_t *ret_mirrors, uint64_t *ret_server, unsigned *ret_refused);
