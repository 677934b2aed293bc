/* cdc.c: content-defined chunking with a gear rolling hash, min/avg/max sizes and normalized cuts. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "cdc.h"
#include "crypto.h"
#include "macro.h"

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;
static int gear_error;

static void gear_init(void) {
        for (unsigned i = 0; i < 256; i++) {
                uint8_t in[16] = "ringil-cdc-gear", md[SHA256_LEN];
                uint64_t v = 0;

                in[15] = (uint8_t) i;
                if (crypto_sha256(in, sizeof(in), md) < 0) {
                        gear_error = -EIO;
                        return;
                }
                for (unsigned k = 0; k < 8; k++)
                        v = v << 8 | md[k];
                gear[i] = v;
        }
}

static bool pow2_in_range(uint32_t v) {
        return v >= CDC_MIN_SIZE && v <= CDC_MAX_SIZE && (v & (v - 1)) == 0;
}

int cdc_init(struct cdc *c, uint32_t min, uint32_t avg, uint32_t max) {
        unsigned bits;

        if (!pow2_in_range(min) || !pow2_in_range(avg) || !pow2_in_range(max) || !(min < avg && avg < max))
                return -EINVAL;
        pthread_once(&gear_once, gear_init);
        if (gear_error < 0)
                return gear_error;
        bits = (unsigned) __builtin_ctz(avg);
        *c = (struct cdc){
                .min = min, .avg = avg, .max = max,
                /* top bits: the ones that depend on the whole 64-byte window */
                .mask_s = ~UINT64_C(0) << (64 - (bits + 1)),
                .mask_l = ~UINT64_C(0) << (64 - (bits - 1)),
        };
        return 0;
}

size_t cdc_next(const struct cdc *c, const uint8_t *data, size_t len, bool final) {
        size_t n = MIN(len, (size_t) c->max), normal = MIN(n, (size_t) c->avg), i;
        uint64_t h = 0;

        if (n <= c->min)
                return final ? n : 0;   /* a chunk is never shorter than min, except the last */
        /* The first min bytes are never a cut; the hash starts 64 bytes before the first candidate
         * so that every candidate sees a full window. */
        for (i = c->min - 64; i < c->min; i++)
                h = (h << 1) + gear[data[i]];
        for (; i < normal; i++) {
                h = (h << 1) + gear[data[i]];
                if (!(h & c->mask_s))
                        return i + 1;
        }
        for (; i < n; i++) {
                h = (h << 1) + gear[data[i]];
                if (!(h & c->mask_l))
                        return i + 1;
        }
        if (n == c->max || final)
                return n;
        return 0;
}
