/* test-fleet-client.c: the agent's HTTPS client against a real TLS server on loopback (OpenSSL, in a thread):
 * mutual TLS, the pinned CA, host name checks, the response cap, range requests answered right, wrongly
 * or cut, and uploads. */
#include "tests.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fleet-client.h"

/* ---- a scripted HTTPS server: each connection reads one request and writes the scripted answer ---- */

struct server {
        int lfd;
        uint16_t port;
        SSL_CTX *ctx;
        pthread_t thread;
        pthread_mutex_t mu;
        bool stop;
        /* script */
        char *answer;          /* raw HTTP response bytes */
        size_t answer_len;
        size_t cut_after;      /* close after this many bytes of the answer (0: send it all) */
        /* what the last request was */
        char request[8192];    /* request line and headers */
        char body[8192];
        size_t body_len;
        char peer_cn[128];     /* the client certificate's CN, "" when none */
        unsigned requests, handshake_failures;
};

static bool read_request(SSL *ssl, struct server *s) {
        char buf[16384];
        size_t len = 0, want_body = 0;
        char *end = NULL;

        while (!end) {
                int k = SSL_read(ssl, buf + len, (int) (sizeof(buf) - 1 - len));
                if (k <= 0)
                        return false;
                len += (size_t) k;
                buf[len] = '\0';
                end = strstr(buf, "\r\n\r\n");
                if (!end && len == sizeof(buf) - 1)
                        return false;
        }
        for (char *h = strstr(buf, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n"))
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                        want_body = strtoul(h + 17, NULL, 10);
        pthread_mutex_lock(&s->mu);
        snprintf(s->request, sizeof(s->request), "%.*s", (int) (end - buf), buf);
        s->body_len = 0;
        pthread_mutex_unlock(&s->mu);
        {
                size_t have = len - (size_t) (end + 4 - buf);
                char *body = malloc(want_body + 1);
                if (!body)
                        return false;
                memcpy(body, end + 4, MIN(have, want_body));
                while (have < want_body) {
                        int k = SSL_read(ssl, body + have, (int) (want_body - have));
                        if (k <= 0) {
                                free(body);
                                return false;
                        }
                        have += (size_t) k;
                }
                pthread_mutex_lock(&s->mu);
                s->body_len = MIN(want_body, sizeof(s->body));
                memcpy(s->body, body, s->body_len);
                pthread_mutex_unlock(&s->mu);
                free(body);
        }
        return true;
}

static void *serve(void *userdata) {
        struct server *s = userdata;

        for (;;) {
                int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
                SSL *ssl;
                bool stop;

                pthread_mutex_lock(&s->mu);
                stop = s->stop;
                pthread_mutex_unlock(&s->mu);
                if (stop) {
                        if (fd >= 0)
                                close(fd);
                        return NULL;
                }
                if (fd < 0)
                        continue;
                ssl = SSL_new(s->ctx);
                SSL_set_fd(ssl, fd);
                if (SSL_accept(ssl) != 1) {
                        pthread_mutex_lock(&s->mu);
                        s->handshake_failures++;
                        pthread_mutex_unlock(&s->mu);
                        ERR_clear_error();
                } else {
                        X509 *peer = SSL_get0_peer_certificate(ssl);
                        pthread_mutex_lock(&s->mu);
                        s->peer_cn[0] = '\0';
                        if (peer)
                                X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, s->peer_cn,
                                                          sizeof(s->peer_cn));
                        pthread_mutex_unlock(&s->mu);
                        if (read_request(ssl, s)) {
                                size_t n;
                                pthread_mutex_lock(&s->mu);
                                s->requests++;
                                n = s->cut_after ? MIN(s->cut_after, s->answer_len) : s->answer_len;
                                if (n)
                                        (void) SSL_write(ssl, s->answer, (int) n);
                                pthread_mutex_unlock(&s->mu);
                                if (!s->cut_after)
                                        (void) SSL_shutdown(ssl);
                        }
                        ERR_clear_error();
                }
                SSL_free(ssl);
                close(fd);
        }
}

/* Answer every request with this status, extra headers and body (Content-Length added, Connection: close). */
static void script(struct server *s, const char *status_line, const char *headers, const void *body, size_t len,
                   size_t cut_after) {
        char *head = NULL;
        int n = asprintf(&head, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n", status_line,
                         headers ? headers : "", len);

        assert_true(n > 0);
        pthread_mutex_lock(&s->mu);
        free(s->answer);
        s->answer = malloc((size_t) n + len);
        assert_non_null(s->answer);
        memcpy(s->answer, head, (size_t) n);
        memcpy(s->answer + n, body, len);
        s->answer_len = (size_t) n + len;
        s->cut_after = cut_after;
        pthread_mutex_unlock(&s->mu);
        free(head);
}

/* ---- the PKI: a fleet CA, a server and a client certificate from it, and a stranger CA ---- */

struct fx {
        char *dir, *ca, *other_ca, *client_cert, *client_key, *url;
        struct server srv;
};

static void start_server(struct fx *f, EVP_PKEY *ca_key, X509 *ca, const char *server_cn, unsigned flags) {
        struct server *s = &f->srv;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);
        EVP_PKEY *k = test_key_new(false);
        X509 *c = test_cert_new(k, server_cn, ca_key, ca, -3600, 86400, flags);
        X509_STORE *store;

        memset(s, 0, sizeof(*s));
        pthread_mutex_init(&s->mu, NULL);
        s->ctx = SSL_CTX_new(TLS_server_method());
        assert_non_null(s->ctx);
        assert_int_equal(SSL_CTX_use_certificate(s->ctx, c), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, k), 1);
        /* Clients resume TLS sessions across requests (curl does): with peer verification that needs a
         * session id context, as in ringil-server. */
        assert_int_equal(SSL_CTX_set_session_id_context(s->ctx, (const unsigned char *) "ringil-test", 11), 1);
        store = SSL_CTX_get_cert_store(s->ctx);
        assert_int_equal(X509_STORE_add_cert(store, ca), 1);
        /* Mutual TLS as the fleet server does it: a client certificate from the fleet CA, or no session. */
        SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->lfd >= 0);
        assert_int_equal(bind(s->lfd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(s->lfd, 16), 0);
        assert_int_equal(getsockname(s->lfd, (struct sockaddr *) &a, &al), 0);
        s->port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
        free(f->url);
        assert_true(asprintf(&f->url, "https://127.0.0.1:%u/", s->port) > 0);
        EVP_PKEY_free(k);
        X509_free(c);
}

static void stop_server(struct server *s) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(s->port) };
        int fd;

        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_mutex_unlock(&s->mu);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);   /* wake accept() */
        (void) connect(fd, (struct sockaddr *) &a, sizeof(a));
        pthread_join(s->thread, NULL);
        close(fd);
        close(s->lfd);
        SSL_CTX_free(s->ctx);
        free(s->answer);
        pthread_mutex_destroy(&s->mu);
}

static EVP_PKEY *ca_key;
static X509 *ca_cert;

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        EVP_PKEY *ok = test_key_new(false), *ck = test_key_new(false);
        X509 *other = test_cert_new(ok, "stranger CA", NULL, NULL, -3600, 86400, TEST_CERT_CA), *cc;

        f->dir = test_tmpdir();
        ca_key = test_key_new(false);
        ca_cert = test_cert_new(ca_key, "fleet CA", NULL, NULL, -3600, 86400, TEST_CERT_CA);
        cc = test_cert_new(ck, "drone-7", ca_key, ca_cert, -3600, 86400, TEST_CERT_CLIENT);
        test_write_cert_pem(f->ca = test_path(f->dir, "ca.pem"), ca_cert);
        test_write_cert_pem(f->other_ca = test_path(f->dir, "other.pem"), other);
        test_write_cert_pem(f->client_cert = test_path(f->dir, "client.pem"), cc);
        test_write_key_pem(f->client_key = test_path(f->dir, "client.key"), ck);
        start_server(f, ca_key, ca_cert, "fleet.example", TEST_CERT_SERVER);
        EVP_PKEY_free(ok);
        EVP_PKEY_free(ck);
        X509_free(other);
        X509_free(cc);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;

        stop_server(&f->srv);
        test_tmpdir_done(f->dir);
        free(f->ca);
        free(f->other_ca);
        free(f->client_cert);
        free(f->client_key);
        free(f->url);
        free(f);
        EVP_PKEY_free(ca_key);
        X509_free(ca_cert);
        return 0;
}

static fleet_client *client(struct fx *f, const char *ca, bool with_cert) {
        fleet_client *fc = NULL;
        int r = fleet_client_new(f->url, ca, with_cert ? f->client_cert : NULL, with_cert ? f->client_key : NULL, 10, &fc);
        assert_int_equal(r, 0);
        return fc;
}

/* ---- tests ---- */

static void test_request_roundtrip(void **state) {
        struct fx *f = *state;
        fleet_client *fc = client(f, f->ca, true);
        struct buf body = {};
        long status = 0;

        script(&f->srv, "200 OK", "Content-Type: application/json\r\n", "{\"ok\":true}", 11, 0);
        assert_int_equal(fleet_client_request(fc, "POST", "/api/v1/checkin", "{\"id\":\"drone-7\"}", 4096, &status, &body), 0);
        assert_int_equal(status, 200);
        assert_int_equal(body.len, 11);
        assert_memory_equal(body.data, "{\"ok\":true}", 11);
        buf_free(&body);
        /* What the server saw: the method and path on the base URL, the JSON body, our certificate. */
        assert_true(strncmp(f->srv.request, "POST /api/v1/checkin HTTP/1.1\r\n", 31) == 0);
        assert_non_null(strcasestr(f->srv.request, "Content-Type: application/json"));
        assert_int_equal(f->srv.body_len, 16);
        assert_memory_equal(f->srv.body, "{\"id\":\"drone-7\"}", 16);
        assert_string_equal(f->srv.peer_cn, "drone-7");

        /* Any HTTP answer is a result, not a transport error. */
        script(&f->srv, "404 Not Found", NULL, "no", 2, 0);
        assert_int_equal(fleet_client_request(fc, "GET", "/missing", NULL, 4096, &status, &body), 0);
        assert_int_equal(status, 404);
        assert_true(strncmp(f->srv.request, "GET /missing HTTP/1.1\r\n", 23) == 0);
        buf_free(&body);
        script(&f->srv, "200 OK", NULL, "", 0, 0);
        assert_int_equal(fleet_client_request(fc, "DELETE", "/api/v1/drones/x", NULL, 4096, &status, &body), 0);
        assert_true(strncmp(f->srv.request, "DELETE /api/v1/drones/x HTTP/1.1\r\n", 34) == 0);
        buf_free(&body);
        fleet_client_free(fc);
}

static void test_response_cap(void **state) {
        struct fx *f = *state;
        fleet_client *fc = client(f, f->ca, true);
        struct buf body = { .len = 77 };
        char big[5000];
        long status = 0;

        memset(big, 'x', sizeof(big));
        script(&f->srv, "200 OK", NULL, big, sizeof(big), 0);
        assert_int_equal(fleet_client_request(fc, "GET", "/big", NULL, 4999, &status, &body), -EPROTO);   /* over the cap: a protocol failure */
        assert_int_equal(body.len, 77);   /* untouched */
        assert_int_equal(fleet_client_request(fc, "GET", "/big", NULL, 5000, &status, &body), 0);
        assert_int_equal(body.len, 5000);
        buf_free(&body);
        fleet_client_free(fc);
}

/* The server must chain to our CA file alone, match the host, and we must present a certificate. */
static void test_tls_refusals(void **state) {
        struct fx *f = *state;
        fleet_client *fc;
        struct buf body = {};
        long status = 0;
        unsigned before;

        script(&f->srv, "200 OK", NULL, "secret", 6, 0);
        fc = client(f, f->other_ca, true);
        assert_int_equal(fleet_client_request(fc, "GET", "/x", NULL, 4096, &status, &body), -EPROTO);
        fleet_client_free(fc);
        /* Without a client certificate the server ends the handshake: no answer reaches us. */
        before = f->srv.requests;
        fc = client(f, f->ca, false);
        assert_true(fleet_client_request(fc, "GET", "/x", NULL, 4096, &status, &body) < 0);
        assert_int_equal(f->srv.requests, before);
        fleet_client_free(fc);
        /* A CA file that is not there: no fallback to the system store. */
        {
                char *missing = test_path(f->dir, "nope.pem");
                fc = client(f, missing, true);
                assert_int_equal(fleet_client_request(fc, "GET", "/x", NULL, 4096, &status, &body), -ENOENT);
                fleet_client_free(fc);
                free(missing);
        }
        /* A certificate from our CA but for another name (no 127.0.0.1 in it). */
        stop_server(&f->srv);
        start_server(f, ca_key, ca_cert, "elsewhere.example", 0);
        script(&f->srv, "200 OK", NULL, "secret", 6, 0);
        fc = client(f, f->ca, true);
        assert_int_equal(fleet_client_request(fc, "GET", "/x", NULL, 4096, &status, &body), -EPROTO);
        fleet_client_free(fc);
        stop_server(&f->srv);
        start_server(f, ca_key, ca_cert, "fleet.example", TEST_CERT_SERVER);

        /* Only https://, and a closed port is a refused connection. */
        assert_int_equal(fleet_client_new("http://127.0.0.1:1/", f->ca, NULL, NULL, 5, &fc), -EINVAL);
        {
                int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t al = sizeof(a);
                char url[64];
                assert_int_equal(bind(s, (struct sockaddr *) &a, sizeof(a)), 0);   /* bound, never listening */
                assert_int_equal(getsockname(s, (struct sockaddr *) &a, &al), 0);
                snprintf(url, sizeof(url), "https://127.0.0.1:%u", ntohs(a.sin_port));
                assert_int_equal(fleet_client_new(url, f->ca, f->client_cert, f->client_key, 5, &fc), 0);
                assert_int_equal(fleet_client_request(fc, "GET", "/x", NULL, 4096, &status, &body), -ECONNREFUSED);
                fleet_client_free(fc);
                close(s);
        }
}

struct sink {
        struct buf b;
        unsigned calls;
};

static int sink_cb(void *userdata, const void *p, size_t n) {
        struct sink *s = userdata;
        s->calls++;
        return buf_append(&s->b, p, n);
}

static void test_range(void **state) {
        struct fx *f = *state;
        fleet_client *fc = client(f, f->ca, true);
        struct sink s = { .b = BUF_INIT(1 << 20) };
        char data[100];
        long status = 0;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (char) ('a' + i % 26);
        /* The range asked for, answered exactly. */
        script(&f->srv, "206 Partial Content", "Content-Range: bytes 1000-1099/5000\r\n", data, 100, 0);
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 1000, 100, sink_cb, &s, &status), 100);
        assert_int_equal(status, 206);
        assert_int_equal(s.b.len, 100);
        assert_memory_equal(s.b.data, data, 100);
        assert_non_null(strcasestr(f->srv.request, "\r\nRange: bytes=1000-1099"));

        /* A server that ignores the range (200, the whole file), or answers another range: nothing reaches
         * the sink. */
        buf_reset(&s.b);
        s.calls = 0;
        script(&f->srv, "200 OK", NULL, data, 100, 0);
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 0, 100, sink_cb, &s, &status), -EPROTO);
        assert_int_equal(s.calls, 0);
        script(&f->srv, "206 Partial Content", "Content-Range: bytes 1001-1100/5000\r\n", data, 100, 0);
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 1000, 100, sink_cb, &s, &status), -EPROTO);
        assert_int_equal(s.calls, 0);
        script(&f->srv, "206 Partial Content", NULL, data, 100, 0);   /* no Content-Range at all */
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 0, 100, sink_cb, &s, &status), -EPROTO);
        assert_int_equal(s.calls, 0);
        /* More bytes than asked for (a lying Content-Length): refused, not written past the range. */
        script(&f->srv, "206 Partial Content", "Content-Range: bytes 0-49/5000\r\n", data, 100, 0);
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 0, 50, sink_cb, &s, &status), -EFBIG);
        assert_true(s.b.len <= 50);
        /* Cut after 40 body bytes: those 40 are delivered and counted, so the caller resumes there. */
        buf_reset(&s.b);
        script(&f->srv, "206 Partial Content", "Content-Range: bytes 0-99/5000\r\n", data, 100, 0);
        {
                size_t head = f->srv.answer_len - 100;
                script(&f->srv, "206 Partial Content", "Content-Range: bytes 0-99/5000\r\n", data, 100, head + 40);
        }
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 0, 100, sink_cb, &s, &status), 40);
        assert_int_equal(s.b.len, 40);
        assert_memory_equal(s.b.data, data, 40);
        /* A sink that refuses stops the transfer, with the sink's own reason (the buf's cap here). */
        buf_reset(&s.b);
        s.b.max = 10;
        script(&f->srv, "206 Partial Content", "Content-Range: bytes 0-99/5000\r\n", data, 100, 0);
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 0, 100, sink_cb, &s, &status), -EFBIG);
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 0, 0, sink_cb, &s, &status), 0);
        buf_free(&s.b);
        fleet_client_free(fc);
}

static void test_upload(void **state) {
        struct fx *f = *state;
        fleet_client *fc = client(f, f->ca, true);
        char *file = test_path(f->dir, "bundle.rb"), *missing = test_path(f->dir, "missing.rb");
        struct buf body = {};
        long status = 0;

        test_write_file(file, "RINGILB\nbundle bytes", 0644);
        script(&f->srv, "201 Created", NULL, "{\"id\":3}", 8, 0);
        assert_int_equal(fleet_client_upload(fc, "/api/v1/releases", file, 4096, &status, &body), 0);
        assert_int_equal(status, 201);
        assert_int_equal(f->srv.body_len, 20);
        assert_memory_equal(f->srv.body, "RINGILB\nbundle bytes", 20);
        assert_true(strncmp(f->srv.request, "POST /api/v1/releases HTTP/1.1\r\n", 32) == 0);
        assert_non_null(strcasestr(f->srv.request, "Content-Type: application/octet-stream"));
        assert_null(strcasestr(f->srv.request, "Expect:"));   /* no 100-continue round trip */
        buf_free(&body);
        assert_int_equal(fleet_client_upload(fc, "/api/v1/releases", missing, 4096, &status, &body), -ENOENT);
        free(file);
        free(missing);
        fleet_client_free(fc);
}

/* Replicas: a list of servers; the next is tried when one is down or answers 503, and the one that
 * answered stays in use. */
static void test_failover(void **state) {
        struct fx *f = *state, g = {};
        _cleanup_buf_ struct buf resp = {};
        struct sink s = { .b = BUF_INIT(1 << 20) };
        fleet_client *fc = NULL;
        char *urls = NULL;
        long status = 0;
        uint16_t closed;
        unsigned base = f->srv.requests;
        int fd;

        /* a port nobody listens on */
        {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t al = sizeof(a);
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
                assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &al), 0);
                closed = ntohs(a.sin_port);
                close(fd);
        }
        start_server(&g, ca_key, ca_cert, "fleet.example", TEST_CERT_SERVER);
        assert_true(asprintf(&urls, "https://127.0.0.1:%u, https://127.0.0.1:%u,https://127.0.0.1:%u/", closed,
                             f->srv.port, g.srv.port) > 0);
        assert_int_equal(fleet_client_new(urls, f->ca, f->client_cert, f->client_key, 10, &fc), 0);
        script(&f->srv, "503 Service Unavailable", "Retry-After: 7\r\n", "{}", 2, 0);
        script(&g.srv, "200 OK", NULL, "{\"ok\":1}", 8, 0);
        assert_int_equal(fleet_client_request(fc, "POST", "/api/v1/checkin", "{}", 1024, &status, &resp), 0);
        assert_int_equal(status, 200);
        assert_memory_equal(resp.data, "{\"ok\":1}", 8);   /* the 503's body is not part of the answer */
        assert_int_equal(f->srv.requests, base + 1);
        assert_int_equal(g.srv.requests, 1);
        assert_true(strncmp(g.url, fleet_client_url(fc), strlen(fleet_client_url(fc))) == 0);   /* without its '/' */
        buf_free(&resp);
        /* sticky: the next request goes straight to the server that answered */
        assert_int_equal(fleet_client_request(fc, "GET", "/x", NULL, 1024, &status, &resp), 0);
        assert_int_equal(status, 200);
        assert_int_equal(f->srv.requests, base + 1);
        assert_int_equal(g.srv.requests, 2);
        buf_free(&resp);
        /* every server unavailable: the last answer, with its Retry-After, for the caller's backoff */
        script(&g.srv, "503 Service Unavailable", "Retry-After: 7\r\n", "{}", 2, 0);
        assert_int_equal(fleet_client_request(fc, "GET", "/x", NULL, 1024, &status, &resp), 0);
        assert_int_equal(status, 503);
        assert_int_equal(fleet_client_retry_after(fc), 7);
        buf_free(&resp);
        /* a range: the unavailable server gives no byte, the next one gives all */
        script(&g.srv, "206 Partial Content", "Content-Range: bytes 0-9/100\r\n", "0123456789", 10, 0);
        assert_int_equal(fleet_client_get_range(fc, "/bundle", 0, 10, sink_cb, &s, &status), 10);
        assert_int_equal(status, 206);
        assert_memory_equal(s.b.data, "0123456789", 10);
        /* the list is checked: https only */
        fleet_client_free(fc);
        fc = NULL;
        assert_int_equal(fleet_client_new("https://a, http://b", f->ca, NULL, NULL, 10, &fc), -EINVAL);
        assert_int_equal(fleet_client_new(" , ", f->ca, NULL, NULL, 10, &fc), -EINVAL);
        buf_free(&s.b);
        free(urls);
        stop_server(&g.srv);
        free(g.url);
}

/* A mirror client sends no client certificate, and trusts the CA it is given (or the system's). */
static void test_mirror_client(void **state) {
        struct fx *f = *state;
        struct sink s = { .b = BUF_INIT(1 << 20) };
        fleet_client *fc = NULL;
        long status = 0;
        char *url = NULL;
        unsigned base = f->srv.requests, failed = f->srv.handshake_failures;

        assert_true(asprintf(&url, "https://127.0.0.1:%u/bundles/x.bundle", f->srv.port) > 0);
        script(&f->srv, "206 Partial Content", "Content-Range: bytes 0-9/100\r\n", "0123456789", 10, 0);
        /* our test server demands a client certificate: the handshake fails, because none is sent */
        assert_int_equal(fleet_client_new_mirror(url, f->ca, 10, &fc), 0);
        assert_true(fleet_client_get_range(fc, "", 0, 10, sink_cb, &s, &status) < 0);
        assert_int_equal(f->srv.requests, base);
        assert_true(f->srv.handshake_failures > failed);
        fleet_client_free(fc);
        /* the system's trust store does not know the test CA: not trusted, and said so */
        assert_int_equal(fleet_client_new_mirror(url, NULL, 10, &fc), 0);
        assert_int_equal(fleet_client_get_range(fc, "", 0, 10, sink_cb, &s, &status), -EPROTO);
        assert_true(strstr(ringil_detail(), "mirror") != NULL);
        fleet_client_free(fc);
        assert_int_equal(fleet_client_new_mirror("http://plain/x", NULL, 10, &fc), -EINVAL);
        buf_free(&s.b);
        free(url);
}

int main(void) {
        /* The scripted server writes to clients that may have hung up (a refused range). */
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_roundtrip),
                cmocka_unit_test(test_response_cap),
                cmocka_unit_test(test_tls_refusals),
                cmocka_unit_test(test_range),
                cmocka_unit_test(test_upload),
                cmocka_unit_test(test_failover),
                cmocka_unit_test(test_mirror_client),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
