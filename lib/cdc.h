/* cdc.h: content-defined chunking (FastCDC-style gear hash): where a chunk of a byte stream ends. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Cut points depend only on the bytes, so an insertion or a deletion moves the boundaries near it and
 * no others: a stream that shifted still yields the same chunks further on. The rolling hash is the
 * gear hash h = (h << 1) + gear[byte] (its top bits depend on the last 64 bytes only), restarted at each
 * chunk start; no cut is made in the first `min` bytes, a cut is forced at `max`; between `min` and
 * `avg` a cut needs the top log2(avg)+1 bits of h to be 0, after `avg` only the top log2(avg)-1 bits
 * ("normalized chunking": sizes cluster around avg). gear[i] is the first 8 bytes (big-endian) of
 * SHA-256("ringil-cdc-gear" || i) for the byte i. docs/bundle-format.md specifies the same; the
 * bundle creator and the drone must agree bit for bit, so none of this may change without a new
 * chunker name.
 */
#define CDC_NAME "gear"
#define CDC_MIN_SIZE (4u << 10)        /* bounds on min/avg/max (powers of two) */
#define CDC_MAX_SIZE (64u << 20)
#define CDC_DEFAULT_MIN (16u << 10)
#define CDC_DEFAULT_AVG (64u << 10)
#define CDC_DEFAULT_MAX (256u << 10)

struct cdc {
        uint32_t min, avg, max;
        uint64_t mask_s, mask_l;
};

/* Check min < avg < max, each a power of two in [CDC_MIN_SIZE, CDC_MAX_SIZE]; -EINVAL otherwise. */
int cdc_init(struct cdc *c, uint32_t min, uint32_t avg, uint32_t max);

/*
 * Length of the chunk starting at data[0]: the first cut point in data[0..len). Returns 0 when no cut
 * is found in len < max bytes and !final (more data needed); with final, the rest (at most max) is one
 * chunk. len 0 returns 0.
 */
size_t cdc_next(const struct cdc *c, const uint8_t *data, size_t len, bool final);
