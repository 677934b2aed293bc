/* err.c: errno ↔ exit-code mapping and the per-thread failure detail. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "escape.h"

static _Thread_local char detail[512];

int exit_code_from_errno(int r) {
        if (r >= 0)
                return EXIT_OK;
        switch (-r) {
        case RINGIL_EMALFORMED:
        case RINGIL_ETRUNCATED:
        case RINGIL_ETOOBIG:
        case E2BIG:
        case EOVERFLOW:
                return EXIT_MALFORMED;
        case RINGIL_EBADSIG:
                return EXIT_BADSIG;
        case RINGIL_EUNTRUSTED:
                return EXIT_UNTRUSTED;
        case RINGIL_EEXPIRED:
                return EXIT_EXPIRED;
        case RINGIL_EROLLBACK:
                return EXIT_ROLLBACK;
        case RINGIL_EINCOMPAT:
                return EXIT_INCOMPAT;
        case RINGIL_EDIGEST:
                return EXIT_DIGEST;
        case EEXIST:
                return EXIT_EXISTS;
        case RINGIL_EREFUSED:
                return EXIT_REFUSED;
        case ENOENT:
                return EXIT_NOTFOUND;
        case EINVAL:
                return EXIT_USAGE;
        case ECONNREFUSED:
        case ENOTCONN:   /* a database server that cannot be reached (ringil-server's store) */
        case EHOSTUNREACH:
        case ENETUNREACH:
        case ETIMEDOUT:
        case ECONNRESET:
        case ECONNABORTED:
                return EXIT_NETWORK;
        case EPROTO:
                return EXIT_PROTOCOL;
        default:
                return EXIT_FAIL;
        }
}

const char *ringil_strerror(int r) {
        if (r < 0)
                r = -r;
        switch (r) {
        case 0:
                return "success";
        case RINGIL_EMALFORMED:
                return "malformed input";
        case RINGIL_ETRUNCATED:
                return "truncated input";
        case RINGIL_ETOOBIG:
                return "size limit exceeded";
        case RINGIL_EBADSIG:
                return "bad signature";
        case RINGIL_EUNTRUSTED:
                return "signer not trusted";
        case RINGIL_EEXPIRED:
                return "expired";
        case RINGIL_EROLLBACK:
                return "version not above the anti-rollback floor";
        case RINGIL_EINCOMPAT:
                return "incompatible";
        case RINGIL_EDIGEST:
                return "hash mismatch";
        case RINGIL_EREFUSED:
                return "refused";
        default:
                return strerror(r);
        }
}

/* Formatted through a copy: callers wrap the previous detail ("...: %s", ringil_detail()). Escaped
 * here, where every detail passes, so a name from input is printable whichever message embeds it. */
__attribute__((format(printf, 1, 0))) static void set_detail_v(const char *fmt, va_list ap) {
        char tmp[sizeof(detail)];

        (void) vsnprintf(tmp, sizeof(tmp), fmt, ap);
        escape_text(tmp, detail, sizeof(detail));
}

void ringil_set_detail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        set_detail_v(fmt, ap);
        va_end(ap);
}

const char *ringil_detail(void) {
        return detail;
}

void ringil_clear_detail(void) {
        detail[0] = '\0';
}

int ringil_fail(int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        set_detail_v(fmt, ap);
        va_end(ap);
        return r;
}
