/* test-fleet-http.c: the request-head parser refuses everything outside its grammar; Range arithmetic. */
#include "tests.h"

#include "fleet-http.h"

static int parse(const char *s, struct http_request *r) {
        return http_parse_head(s, strlen(s), r);
}

static void test_head_ok(void **state) {
        struct http_request r;
        (void) state;
        assert_int_equal(parse("POST /api/v1/checkin?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
                               "Range: bytes=0-9\r\n\r\n", &r), 0);
        assert_int_equal(r.method, HTTP_POST);
        assert_string_equal(r.path, "/api/v1/checkin");
        assert_string_equal(r.query, "x=1");
        assert_true(r.has_content_length);
        assert_int_equal(r.content_length, 12);
        assert_true(r.keep_alive);
        assert_string_equal(r.range, "bytes=0-9");
        assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &r), 0);
        assert_false(r.keep_alive);
        assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r), 0);
        assert_false(r.keep_alive);
}

static void test_head_refused(void **state) {
        struct http_request r;
        char big[HTTP_MAX_HEAD + 64];
        (void) state;
        assert_int_equal(parse("GET / HTTP/1.1\n\r\n", &r), -EBADMSG);                  /* bare LF */
        assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET  / HTTP/1.1\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET relative HTTP/1.1\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET /a/../b HTTP/1.1\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET /a%20b HTTP/1.1\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("BREW / HTTP/1.1\r\n\r\n", &r), -ENOSYS);
        assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r), -ENOSYS);
        assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET / HTTP/1.1\r\nNo colon\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET / HTTP/1.1\r\nA: \x01\r\n\r\n", &r), -EBADMSG);
        assert_int_equal(parse("GET / HTTP/1.1\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n", &r), -EBADMSG);
        /* request line over the cap */
        memset(big, 'a', sizeof(big));
        memcpy(big, "GET /", 5);
        memcpy(big + HTTP_MAX_REQUEST_LINE + 10, " HTTP/1.1\r\n\r\n", 13);
        assert_int_equal(http_parse_head(big, HTTP_MAX_REQUEST_LINE + 23, &r), -E2BIG);
        assert_int_equal(http_parse_head(big, HTTP_MAX_HEAD + 1, &r), -EMSGSIZE);
}

static void test_too_many_headers(void **state) {
        char buf[4096] = "GET / HTTP/1.1\r\n";
        struct http_request r;
        (void) state;
        for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
                strcat(buf, "X-A: b\r\n");
        strcat(buf, "\r\n");
        assert_int_equal(parse(buf, &r), -EMSGSIZE);
}

static void test_head_length(void **state) {
        (void) state;
        assert_int_equal(http_head_length("GET / HTTP/1.1\r\n\r\nBODY", 22), 18);
        assert_int_equal(http_head_length("GET / HTTP/1.1\r\n", 16), 0);
}

static int scan(const char *s, size_t *n) {
        return http_head_scan(s, strlen(s), n);
}

/* Incomplete heads wait; anything that cannot become a head is refused at the first bad byte. */
static void test_head_scan(void **state) {
        char big[HTTP_MAX_HEAD + 8];
        size_t n = 0;
        (void) state;
        assert_int_equal(scan("GET / HTTP/1.1\r\n\r\nBODY", &n), 1);
        assert_int_equal(n, 18);
        assert_int_equal(scan("", &n), 0);
        assert_int_equal(scan("GE", &n), 0);
        assert_int_equal(scan("GET / HTTP/1.1\r\nHost: a\r\n", &n), 0);
        assert_int_equal(scan("GET / HTTP/1.1\r", &n), 0);
        assert_int_equal(scan("GET / HTTP/1.1\n", &n), -EBADMSG);            /* bare LF, before any end */
        assert_int_equal(scan("GET / HTTP/1.1\r\nA: b\n\n", &n), -EBADMSG);
        assert_int_equal(scan("GET / HTTP/1.1\rX", &n), -EBADMSG);
        assert_int_equal(scan("\x16\x03\x01\x02", &n), -EBADMSG);           /* a TLS record in plain HTTP */
        assert_int_equal(scan(" GET", &n), -EBADMSG);
        assert_int_equal(scan("G\x01", &n), -EBADMSG);
        assert_int_equal(scan("GET /\x7f", &n), -EBADMSG);
        assert_int_equal(http_head_scan("GET /\0", 6, &n), -EBADMSG);
        memset(big, 'A', sizeof(big));
        assert_int_equal(http_head_scan(big, 40, &n), -EBADMSG);                /* a method of 40 bytes */
        memcpy(big, "GET /", 5);
        assert_int_equal(http_head_scan(big, HTTP_MAX_HEAD, &n), -EMSGSIZE);
}

static void test_range(void **state) {
        uint64_t a, b;
        (void) state;
        assert_int_equal(http_parse_range("bytes=0-99", 1000, &a, &b), 0);
        assert_int_equal(a, 0);
        assert_int_equal(b, 99);
        assert_int_equal(http_parse_range("bytes=900-", 1000, &a, &b), 0);
        assert_int_equal(b, 999);
        assert_int_equal(http_parse_range("bytes=900-5000", 1000, &a, &b), 0);
        assert_int_equal(b, 999);
        assert_int_equal(http_parse_range("bytes=-100", 1000, &a, &b), 0);
        assert_int_equal(a, 900);
        assert_int_equal(http_parse_range("bytes=-5000", 1000, &a, &b), 0);
        assert_int_equal(a, 0);
        assert_int_equal(http_parse_range("bytes=1000-", 1000, &a, &b), -ERANGE);
        assert_int_equal(http_parse_range("bytes=-0", 1000, &a, &b), -ERANGE);
        assert_int_equal(http_parse_range("bytes=5-4", 1000, &a, &b), -EINVAL);
        assert_int_equal(http_parse_range("bytes=0-1,5-6", 1000, &a, &b), -EINVAL);
        assert_int_equal(http_parse_range("items=0-1", 1000, &a, &b), -EINVAL);
        assert_int_equal(http_parse_range("bytes=+1-2", 1000, &a, &b), -EINVAL);
        assert_int_equal(http_parse_range("bytes= 1-2", 1000, &a, &b), -EINVAL);
        assert_int_equal(http_parse_range("bytes=18446744073709551616-", 1000, &a, &b), -EINVAL);
        assert_int_equal(http_parse_range("bytes=-", 1000, &a, &b), -EINVAL);
}

static void test_content_range(void **state) {
        uint64_t a, b, t;
        (void) state;
        assert_int_equal(http_parse_content_range("bytes 10-19/100", &a, &b, &t), 0);
        assert_int_equal(a, 10);
        assert_int_equal(b, 19);
        assert_int_equal(t, 100);
        assert_int_equal(http_parse_content_range("bytes 10-100/100", &a, &b, &t), -EINVAL);
        assert_int_equal(http_parse_content_range("bytes 10-9/100", &a, &b, &t), -EINVAL);
        assert_int_equal(http_parse_content_range("bytes */100", &a, &b, &t), -EINVAL);
        assert_int_equal(http_parse_content_range("bytes 1-2/*", &a, &b, &t), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_head_ok),
                cmocka_unit_test(test_head_scan),
                cmocka_unit_test(test_head_refused),
                cmocka_unit_test(test_too_many_headers),
                cmocka_unit_test(test_head_length),
                cmocka_unit_test(test_range),
                cmocka_unit_test(test_content_range),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
