/* fleet-http.c: strict HTTP/1.1 request-head and Range parsing; everything outside the grammar is refused. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "fleet-http.h"
#include "macro.h"
#include "parse.h"

size_t http_head_length(const char *data, size_t len) {
        for (size_t i = 3; i < len; i++)
                if (data[i] == '\n' && data[i - 1] == '\r' && data[i - 2] == '\n' && data[i - 3] == '\r')
                        return i + 1;
        return 0;
}

static bool token_char(char c);

int http_head_scan(const char *data, size_t len, size_t *ret_len) {
        bool in_method = true;

        for (size_t i = 0; i < len && i < HTTP_MAX_HEAD; i++) {
                unsigned char c = (unsigned char) data[i];

                if (in_method) {
                        if (c == ' ' && i > 0)
                                in_method = false;
                        else if (!token_char((char) c) || i >= 32)
                                return -EBADMSG;
                        continue;
                }
                if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
                        return -EBADMSG;
                if (c == '\n' && data[i - 1] != '\r')
                        return -EBADMSG;   /* bare LF */
                if (i > 0 && data[i - 1] == '\r' && c != '\n')
                        return -EBADMSG;   /* CR without LF */
                if (c == '\n' && i >= 3 && data[i - 2] == '\n' && data[i - 3] == '\r') {
                        *ret_len = i + 1;
                        return 1;
                }
        }
        if (len >= HTTP_MAX_HEAD)
                return -EMSGSIZE;
        return 0;
}

static bool path_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
               c == '.' || c == '_' || c == '~' || c == '-';
}

static bool query_char_ok(char c) {
        return path_char_ok(c) || c == '=' || c == '&' || c == '%' || c == '+';
}

static bool token_char(char c) {
        return isalnum((unsigned char) c) || strchr("!#$%&'*+-.^_`|~", c);
}

static int parse_request_line(const char *line, size_t n, struct http_request *req) {
        static const struct {
                const char *name;
                enum http_method m;
        } methods[] = {
                { "GET", HTTP_GET }, { "HEAD", HTTP_HEAD }, { "POST", HTTP_POST },
                { "PUT", HTTP_PUT }, { "DELETE", HTTP_DELETE },
        };
        const char *sp1, *sp2, *target, *q;
        size_t mlen, tlen, plen;
        bool found = false;

        if (n > HTTP_MAX_REQUEST_LINE)
                return -E2BIG;
        sp1 = memchr(line, ' ', n);
        if (!sp1)
                return -EBADMSG;
        mlen = (size_t) (sp1 - line);
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (strlen(methods[i].name) == mlen && memcmp(methods[i].name, line, mlen) == 0) {
                        req->method = methods[i].m;
                        found = true;
                }
        if (!found) {
                for (size_t i = 0; i < mlen; i++)
                        if (!token_char(line[i]))
                                return -EBADMSG;
                return mlen ? -ENOSYS : -EBADMSG;
        }
        target = sp1 + 1;
        sp2 = memchr(target, ' ', n - (size_t) (target - line));
        if (!sp2)
                return -EBADMSG;
        tlen = (size_t) (sp2 - target);
        if (tlen == 0 || target[0] != '/')
                return -EBADMSG;
        q = memchr(target, '?', tlen);
        plen = q ? (size_t) (q - target) : tlen;
        if (plen >= sizeof(req->path) || (q && tlen - plen - 1 >= sizeof(req->query)))
                return -E2BIG;
        for (size_t i = 0; i < plen; i++)
                if (!path_char_ok(target[i]))
                        return -EBADMSG;
        memcpy(req->path, target, plen);
        req->path[plen] = '\0';
        /* INVARIANT: no ".." segment reaches a handler; routes match literal paths only anyway.
         * (Checked on the NUL-terminated copy: the request buffer itself is not terminated.) */
        if (strstr(req->path, "/../") || (plen >= 3 && memcmp(req->path + plen - 3, "/..", 3) == 0))
                return -EBADMSG;
        if (q) {
                size_t ql = tlen - plen - 1;
                for (size_t i = 0; i < ql; i++)
                        if (!query_char_ok(q[1 + i]))
                                return -EBADMSG;
                memcpy(req->query, q + 1, ql);
                req->query[ql] = '\0';
        }
        n -= (size_t) (sp2 + 1 - line);
        if (n == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0)
                req->http10 = false;
        else if (n == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
                req->http10 = true;
        else
                return -EBADMSG;
        return 0;
}

static bool header_is(const char *name, size_t nlen, const char *want) {
        return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

static int copy_value(char *dst, size_t cap, const char *v, size_t vlen) {
        if (vlen >= cap)
                return -EMSGSIZE;
        memcpy(dst, v, vlen);
        dst[vlen] = '\0';
        return 0;
}

int http_parse_head(const char *data, size_t len, struct http_request *ret) {
        struct http_request req = { .keep_alive = true };
        const char *p = data, *end = data + len, *eol;
        unsigned n_headers = 0;
        bool conn_close = false, conn_keep = false, seen_cl = false;
        int r;

        if (len > HTTP_MAX_HEAD)
                return -EMSGSIZE;
        if (len < 4 || memcmp(end - 4, "\r\n\r\n", 4) != 0)
                return -EBADMSG;
        /* Control bytes (other than CR LF, and HT in values) are never valid in a head. */
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) data[i];
                if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
                        return -EBADMSG;
                if (c == '\n' && (i == 0 || data[i - 1] != '\r'))
                        return -EBADMSG;   /* bare LF: request smuggling material */
                if (c == '\r' && (i + 1 >= len || data[i + 1] != '\n'))
                        return -EBADMSG;
        }
        eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        r = parse_request_line(p, (size_t) (eol - p), &req);
        if (r < 0)
                return r;
        p = eol + 2;
        while (p < end - 2) {
                const char *colon, *v, *ve;
                size_t nlen;

                eol = memmem(p, (size_t) (end - p), "\r\n", 2);
                if (!eol)
                        return -EBADMSG;
                if (++n_headers > HTTP_MAX_HEADERS)
                        return -EMSGSIZE;
                if (*p == ' ' || *p == '\t')
                        return -EBADMSG;   /* obs-fold */
                colon = memchr(p, ':', (size_t) (eol - p));
                if (!colon || colon == p)
                        return -EBADMSG;
                nlen = (size_t) (colon - p);
                for (size_t i = 0; i < nlen; i++)
                        if (!token_char(p[i]))
                                return -EBADMSG;
                v = colon + 1;
                ve = eol;
                while (v < ve && (*v == ' ' || *v == '\t'))
                        v++;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                        ve--;

                if (header_is(p, nlen, "Content-Length")) {
                        char num[21];
                        if (seen_cl || copy_value(num, sizeof(num), v, (size_t) (ve - v)) < 0 ||
                            parse_u64(num, &req.content_length) < 0)
                                return -EBADMSG;
                        seen_cl = req.has_content_length = true;
                } else if (header_is(p, nlen, "Transfer-Encoding")) {
                        return -ENOSYS;
                } else if (header_is(p, nlen, "Range")) {
                        if (req.has_range)
                                return -EBADMSG;
                        if (copy_value(req.range, sizeof(req.range), v, (size_t) (ve - v)) < 0)
                                return -EBADMSG;
                        req.has_range = true;
                } else if (header_is(p, nlen, "Connection")) {
                        char val[64];
                        if (copy_value(val, sizeof(val), v, (size_t) (ve - v)) < 0)
                                return -EBADMSG;
                        if (strcasecmp(val, "close") == 0)
                                conn_close = true;
                        else if (strcasecmp(val, "keep-alive") == 0)
                                conn_keep = true;
                } else if (header_is(p, nlen, "Authorization")) {
                        if (copy_value(req.authorization, sizeof(req.authorization), v, (size_t) (ve - v)) < 0)
                                return -EMSGSIZE;
                } else if (header_is(p, nlen, "Expect")) {
                        if ((size_t) (ve - v) == 12 && strncasecmp(v, "100-continue", 12) == 0)
                                req.expect_continue = true;
                        else
                                return -EBADMSG;
                }
                p = eol + 2;
        }
        req.keep_alive = req.http10 ? conn_keep && !conn_close : !conn_close;
        *ret = req;
        return 0;
}

static int parse_u64_n(const char *s, size_t n, uint64_t *ret) {
        char num[21];

        if (n == 0 || n >= sizeof(num))
                return -EINVAL;
        memcpy(num, s, n);
        num[n] = '\0';
        return parse_u64(num, ret);
}

int http_parse_range(const char *value, uint64_t size, uint64_t *ret_first, uint64_t *ret_last) {
        const char *spec, *dash;
        uint64_t a, b;
        size_t n;

        if (strncmp(value, "bytes=", 6) != 0)
                return -EINVAL;
        spec = value + 6;
        n = strlen(spec);
        if (strchr(spec, ','))
                return -EINVAL;   /* multipart ranges: never needed by the agent */
        dash = strchr(spec, '-');
        if (!dash)
                return -EINVAL;
        if (dash == spec) {   /* suffix: the last N bytes */
                if (parse_u64_n(dash + 1, n - 1, &b) < 0)
                        return -EINVAL;
                if (b == 0 || size == 0)
                        return -ERANGE;
                *ret_first = b >= size ? 0 : size - b;
                *ret_last = size - 1;
                return 0;
        }
        if (parse_u64_n(spec, (size_t) (dash - spec), &a) < 0)
                return -EINVAL;
        if (dash[1] == '\0')
                b = UINT64_MAX;
        else if (parse_u64_n(dash + 1, strlen(dash + 1), &b) < 0)
                return -EINVAL;
        if (b < a)
                return -EINVAL;
        if (a >= size)
                return -ERANGE;
        *ret_first = a;
        *ret_last = MIN(b, size - 1);
        return 0;
}

int http_parse_content_range(const char *value, uint64_t *ret_first, uint64_t *ret_last,
                             uint64_t *ret_total) {
        const char *dash, *slash;
        uint64_t a, b, t;

        if (strncmp(value, "bytes ", 6) != 0)
                return -EINVAL;
        value += 6;
        dash = strchr(value, '-');
        slash = dash ? strchr(dash, '/') : NULL;
        if (!dash || !slash)
                return -EINVAL;
        if (parse_u64_n(value, (size_t) (dash - value), &a) < 0 ||
            parse_u64_n(dash + 1, (size_t) (slash - dash - 1), &b) < 0 ||
            parse_u64_n(slash + 1, strlen(slash + 1), &t) < 0)
                return -EINVAL;
        if (b < a || b >= t)
                return -EINVAL;
        *ret_first = a;
        *ret_last = b;
        *ret_total = t;
        return 0;
}

const char *http_status_text(int status) {
        switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 204: return "No Content";
        case 206: return "Partial Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 416: return "Range Not Satisfiable";
        case 422: return "Unprocessable Content";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        default: return "Unknown";
        }
}
