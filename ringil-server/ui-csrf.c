/* ui-csrf.c: CSRF tokens bound to the operator's certificate, checked in constant time. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "parse.h"
#include "secret.h"
#include "ui-csrf.h"

static uint8_t csrf_key[32];
static bool csrf_ready;

int ui_csrf_init(const uint8_t *key) {
        int r = 0;

        if (key)
                memcpy(csrf_key, key, sizeof(csrf_key));
        else
                r = crypto_random(csrf_key, sizeof(csrf_key));
        csrf_ready = r >= 0;
        return r;
}

static int mac(const char *cn, const char *serial, const char *expiry, uint8_t out[static SHA256_LEN]) {
        _cleanup_buf_ struct buf m = BUF_INIT(1024);
        static const char label[] = "ringil-ui-csrf";

        if (!csrf_ready)
                return -EINVAL;
        /* NUL-separated, and neither CN nor serial can hold a NUL: no two identities share a message */
        if (buf_append(&m, label, sizeof(label)) < 0 || buf_append(&m, cn, strlen(cn) + 1) < 0 ||
            buf_append(&m, serial, strlen(serial) + 1) < 0 || buf_append_str(&m, expiry) < 0)
                return -RINGIL_ETOOBIG;
        return crypto_hmac_sha256(csrf_key, sizeof(csrf_key), m.data, m.len, out);
}

int ui_csrf_make(const char *cn, const char *serial, int64_t now, char buf[static UI_CSRF_MAX]) {
        uint8_t h[SHA256_LEN];
        char expiry[24], hex[2 * SHA256_LEN + 1];
        int r;

        snprintf(expiry, sizeof(expiry), "%" PRId64, now + UI_CSRF_LIFETIME);
        r = mac(cn, serial, expiry, h);
        if (r < 0)
                return r;
        snprintf(buf, UI_CSRF_MAX, "%s.%s", expiry, hex_encode(h, sizeof(h), hex));
        return 0;
}

int ui_csrf_check(const char *token, const char *cn, const char *serial, int64_t now) {
        uint8_t want[SHA256_LEN], got[SHA256_LEN];
        char expiry[24];
        const char *dot;
        uint64_t e;
        size_t n;
        int r;

        if (!token || !(dot = strchr(token, '.')))
                return -RINGIL_EMALFORMED;
        n = (size_t) (dot - token);
        if (n == 0 || n >= sizeof(expiry) || strlen(dot + 1) != 2 * SHA256_LEN)
                return -RINGIL_EMALFORMED;
        memcpy(expiry, token, n);
        expiry[n] = '\0';
        if (parse_u64(expiry, &e) < 0 || e > INT64_MAX || hex_decode(dot + 1, got, sizeof(got)) < 0)
                return -RINGIL_EMALFORMED;
        r = mac(cn, serial, expiry, want);
        if (r < 0)
                return r;
        if (crypto_memcmp(want, got, sizeof(want)) != 0)
                return -RINGIL_EBADSIG;
        /* checked after the MAC, so an expiry is only judged when this server wrote it */
        if ((int64_t) e < now || (int64_t) e > now + UI_CSRF_LIFETIME)
                return -RINGIL_EEXPIRED;
        return 0;
}
