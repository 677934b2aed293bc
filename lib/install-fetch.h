/* install-fetch.h: the installer's side of the fetch protocol: it asks for byte ranges, the agent fetches them. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "bundle.h"

/*
 * `ringil install --fetch-stdio -` installs a bundle that is not on the drone: the networked agent
 * (ringild) fetches what the installer asks for, and the installer, which verifies and writes, never
 * talks to the network. The installer writes requests on its stdout, one line each:
 *
 *   fetch OFFSET LENGTH     a byte range of the bundle (decimal, LENGTH > 0)
 *   end                     end of a batch: the agent now sends the bytes of every range of the
 *                           batch on stdin, concatenated, in the order asked
 *   plan LOCAL FETCH TOTAL MODE
 *                           information: payload bytes found locally, to fetch, in total; MODE is
 *                           "delta" (ranges of the missing chunks) or "full" (one sequential range)
 *
 * Any other line is the installer's ordinary output. Batches come one after another: the header
 * (32 bytes), the manifest and signature, then per payload the ranges of its missing chunks (adjacent
 * chunks coalesced; ascending), then, if a chunk read from local storage no longer matched its hash,
 * a batch with those chunks. The agent's bytes are untrusted: the metadata is checked by its signature
 * and every chunk by its signed hash before it is written, exactly as for a bundle file.
 */
#define FETCH_MAX_RANGES (BUNDLE_MAX_CHUNKS + 2)   /* per batch: every chunk apart, at most */
#define FETCH_LINE_MAX 96

struct fetch_range {
        uint64_t offset, len;
};

typedef struct fetch_stream fetch_stream;

/* in_fd: where the agent's bytes arrive; out_fd: where requests go. size: the bundle's length as the
 * agent was told (UINT64_MAX unknown; only ever used for extra checks). Neither fd is owned. */
int fetch_stream_new(int in_fd, int out_fd, uint64_t size, fetch_stream **ret);
void fetch_stream_free(fetch_stream *fs);
static inline void fetch_stream_freep(fetch_stream **fs) {
        fetch_stream_free(*fs);
}

/* A bundle source reading through fs: an offset outside the pending batch is requested on its own
 * (the metadata); otherwise reads go forward through the batch, skipping what is not asked for. */
struct bundle_source fetch_stream_source(fetch_stream *fs);

/* Ask for a batch of ascending, non-overlapping ranges (n <= FETCH_MAX_RANGES); whatever the previous
 * batch still holds is read and dropped first. n == 0 asks for nothing. */
int fetch_stream_request(fetch_stream *fs, const struct fetch_range *r, size_t n);

/* Write one informational line ("plan …") for the agent. */
int fetch_stream_note(fetch_stream *fs, const char *line);

/* Bytes received from the agent so far (metadata, chunks, and anything skipped). */
uint64_t fetch_stream_received(const fetch_stream *fs);
