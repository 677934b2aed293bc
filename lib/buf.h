/* buf.h: growable byte buffer with a hard cap, so no untrusted length can grow memory without bound. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
        uint8_t *data;  /* always NUL-terminated past len, for convenience with text */
        size_t len;
        size_t alloc;
        size_t max;     /* hard cap on len; appends beyond it fail with -EFBIG and change nothing */
        bool secret;    /* wipe on every reallocation and on free */
};

#define BUF_INIT(cap) ((struct buf){ .max = (cap) })
#define BUF_INIT_SECRET(cap) ((struct buf){ .max = (cap), .secret = true })

int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_reserve(struct buf *b, size_t n);   /* room for n more bytes */
void buf_reset(struct buf *b);              /* len = 0, memory kept (wiped if secret) */
void buf_free(struct buf *b);               /* wipes if secret; safe on a zeroed buf */
/* Hands the data out (caller frees), leaving b empty. *ret_len may be NULL. */
uint8_t *buf_steal(struct buf *b, size_t *ret_len);

static inline void buf_freep(struct buf *b) {
        buf_free(b);
}
#define _cleanup_buf_ __attribute__((cleanup(buf_freep)))
