/* fleet-http.h: strict HTTP/1.1 request-head and Range parsing for the fleet server and agent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Hard limits. A request whose line or head exceeds them is refused (414/431) before any handler
 * runs; the server reads at most HTTP_MAX_HEAD bytes before it has a parsed head.
 */
#define HTTP_MAX_REQUEST_LINE 2048
#define HTTP_MAX_HEAD 8192
#define HTTP_MAX_HEADERS 32
#define HTTP_MAX_PATH 512

enum http_method {
        HTTP_GET,
        HTTP_HEAD,
        HTTP_POST,
        HTTP_PUT,
        HTTP_DELETE,
};

struct http_request {
        enum http_method method;
        char path[HTTP_MAX_PATH];     /* without the query string; only [A-Za-z0-9/._~-] */
        char query[HTTP_MAX_PATH];    /* after '?', may be empty */
        bool http10;
        bool keep_alive;              /* HTTP/1.1 default, unless "Connection: close" */
        bool has_content_length;
        uint64_t content_length;
        bool has_range;
        char range[128];              /* the Range value, parsed by http_parse_range() */
        char authorization[256];      /* unused by mTLS routes; kept for tooling */
        bool expect_continue;
};

/*
 * Parse a request head: exactly `len` bytes ending in "\r\n\r\n". Returns 0, or a negative errno that
 * maps to a status: -E2BIG (request line too long: 414), -EMSGSIZE (head/headers too large: 431),
 * -ENOSYS (Transfer-Encoding or an unknown method: 501), -EBADMSG (anything else malformed: 400).
 * Duplicate Content-Length or Range headers are malformed; bare LF, obs-fold, control bytes too.
 */
int http_parse_head(const char *data, size_t len, struct http_request *ret);

/* Find the end of a head ("\r\n\r\n") in data; returns the head length including it, or 0. */
size_t http_head_length(const char *data, size_t len);

/*
 * Look at the first `len` bytes received for a request head, which may be incomplete. Returns the head
 * 1 with *ret_len = the head length once "\r\n\r\n" is there; 0 while what arrived can still become a valid head; or
 * -EBADMSG as soon as it cannot: a bare LF, a CR not followed by LF, a control byte, a method that is
 * not a token, or a head already HTTP_MAX_HEAD bytes long without an end (-EMSGSIZE). So garbage and
 * bare-LF requests are answered at once instead of waiting for a terminator that never comes.
 */
int http_head_scan(const char *data, size_t len, size_t *ret_len);

/*
 * A single byte range "bytes=A-B", "bytes=A-" or "bytes=-N" against a resource of `size` bytes.
 * On success [*ret_first, *ret_last] is inclusive and inside the resource. -EINVAL: not a single
 * well-formed byte range (the server answers 400); -ERANGE: unsatisfiable (416).
 */
int http_parse_range(const char *value, uint64_t size, uint64_t *ret_first, uint64_t *ret_last);

/* "bytes A-B/T" from a 206 response (the agent checks the server answered the range it asked). */
int http_parse_content_range(const char *value, uint64_t *ret_first, uint64_t *ret_last,
                             uint64_t *ret_total);

const char *http_status_text(int status);
