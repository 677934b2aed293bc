/* buf.c: capped growable buffers (curl's dynbuf idea: every buffer knows its maximum). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "macro.h"
#include "secret.h"

int buf_reserve(struct buf *b, size_t n) {
        size_t need, na;
        uint8_t *p;

        if (size_add(b->len, n, &need) < 0 || need > b->max)
                return -EFBIG;
        if (need + 1 <= b->alloc)
                return 0;
        na = b->alloc ? b->alloc : 64;
        while (na < need + 1)
                na = na > SIZE_MAX / 2 ? need + 1 : na * 2;
        if (b->max < SIZE_MAX && na > b->max + 1)
                na = b->max + 1;
        if (b->secret) {
                /* realloc would leave a copy of the secret in freed memory: move it by hand. */
                p = malloc(na);
                if (!p)
                        return -ENOMEM;
                if (b->data) {
                        memcpy(p, b->data, b->len + 1);
                        secret_wipe(b->data, b->alloc);
                        free(b->data);
                }
        } else {
                p = realloc(b->data, na);
                if (!p)
                        return -ENOMEM;
        }
        if (!b->data)
                p[0] = '\0';
        b->data = p;
        b->alloc = na;
        return 0;
}

int buf_append(struct buf *b, const void *p, size_t n) {
        int r = buf_reserve(b, n);

        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int buf_append_str(struct buf *b, const char *s) {
        return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...) {
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        r = buf_reserve(b, (size_t) n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        (void) vsnprintf((char *) b->data + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
        return 0;
}

void buf_reset(struct buf *b) {
        if (b->data && b->secret)
                secret_wipe(b->data, b->alloc);
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void buf_free(struct buf *b) {
        if (!b->data)
                return;
        if (b->secret)
                secret_wipe(b->data, b->alloc);
        free(b->data);
        b->data = NULL;
        b->len = b->alloc = 0;
}

uint8_t *buf_steal(struct buf *b, size_t *ret_len) {
        uint8_t *p = b->data;

        if (ret_len)
                *ret_len = b->len;
        b->data = NULL;
        b->len = b->alloc = 0;
        return p;
}
