/* test-server-transport.c: the transport alone (no store, no routes): TLS admission, deadlines, early answers, keep-alive. */
#include "tests.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "fleet-ca.h"
#include "transport.h"

struct fixture {
        char *dir;
        X509 *ca;
        transport *t;
        pthread_t loop;
        int port, enroll_port;
        atomic_int handled;
};

/* The fake application: every route is "/echo" (memory body) or "/file"; "/deny" is refused in admit. */
static void app_admit(void *userdata, const struct tp_request *req, struct tp_plan *ret) {
        (void) userdata;
        *ret = (struct tp_plan) {};
        if (strcmp(req->http->path, "/deny") == 0) {
                ret->status = 403;
                snprintf(ret->message, sizeof(ret->message), "denied");
                return;
        }
        ret->route = req->http->path;
        ret->body = req->http->method == HTTP_POST ? TP_BODY_MEMORY : TP_BODY_NONE;
        ret->max_body = 1024;
}

static void app_handle(void *userdata, const struct tp_request *req, struct tp_response *resp) {
        struct fixture *f = userdata;
        char out[256];

        atomic_fetch_add(&f->handled, 1);
        snprintf(out, sizeof(out), "role=%d peer=%s len=%zu body=%s", req->role, req->peer, req->body_len,
                 req->body ? req->body : "");
        tp_respond(resp, 200, "text/plain", out, strlen(out));
}

static void *loop_main(void *userdata) {
        struct fixture *f = userdata;
        (void) tp_run(f->t);
        return NULL;
}

static int port_of(transport *t, enum tp_listener l) {
        char a[128];
        assert_int_equal(tp_address(t, l, a, sizeof(a)), 0);
        return atoi(strrchr(a, ':') + 1);
}

static uint32_t handshake_timeout_ms = 600;

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        char ca[4096], cert[4200], key[4200], out[4096];
        struct tp_config cfg = {
                .listen = { [TP_FLEET] = "127.0.0.1:0", [TP_ENROLL] = "127.0.0.1:0" },
                .limits = {
                        .max_connections = 4,
                        .enroll_max_connections = 8,
                        .enroll_per_address = 2,
                        .enroll_rate = 600,
                        .enroll_timeout_ms = 800,
                        .handshake_timeout_ms = handshake_timeout_ms,
                        .request_timeout_ms = 700,
                        .keepalive_timeout_ms = 5000,
                        .min_body_rate = 100,
                        .workers = 2,
                        .max_memory_body = 4096,
                },
        };

        f->dir = test_tmpdir();
        snprintf(ca, sizeof(ca), "%s/ca", f->dir);
        snprintf(out, sizeof(out), "%s/out", f->dir);
        assert_int_equal(ca_create(ca, "test CA", 2), 0);
        assert_int_equal(ca_issue(ca, "127.0.0.1", CA_PROFILE_SERVER, NULL, 2, out), 0);
        assert_int_equal(ca_issue(ca, "drone-1", CA_PROFILE_DEVICE, NULL, 2, out), 0);
        assert_int_equal(ca_issue(ca, "alice", CA_PROFILE_OPERATOR, NULL, 2, out), 0);
        snprintf(cert, sizeof(cert), "%s/127.0.0.1.pem", out);
        snprintf(key, sizeof(key), "%s/127.0.0.1.key", out);
        snprintf(ca, sizeof(ca), "%s/ca/ca.pem", f->dir);
        assert_int_equal(crypto_load_cert(ca, &f->ca), 0);
        cfg.cert = cert;
        cfg.key = key;
        cfg.device_ca = cfg.operator_ca = f->ca;
        cfg.spool_dir = f->dir;
        cfg.app = (struct tp_app) { .userdata = f, .admit = app_admit, .handle = app_handle };
        assert_int_equal(tp_new(&cfg, &f->t), 0);
        f->port = port_of(f->t, TP_FLEET);
        f->enroll_port = port_of(f->t, TP_ENROLL);
        assert_int_equal(pthread_create(&f->loop, NULL, loop_main, f), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        tp_stop(f->t);
        pthread_join(f->loop, NULL);
        tp_free(f->t);
        X509_free(f->ca);
        test_rm_rf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int tcp(int port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        return fd;
}

/* A TLS client; who: "drone-1", "alice" or NULL (no certificate). NULL on a failed handshake. */
static SSL *tls(struct fixture *f, int port, const char *who, int *ret_fd) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        char path[4200];
        SSL *ssl;
        int fd = tcp(port);

        snprintf(path, sizeof(path), "%s/ca/ca.pem", f->dir);
        assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
        if (who) {
                snprintf(path, sizeof(path), "%s/out/%s.pem", f->dir, who);
                assert_int_equal(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
                snprintf(path, sizeof(path), "%s/out/%s.key", f->dir, who);
                assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
        }
        ssl = SSL_new(ctx);
        SSL_CTX_free(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1) {
                SSL_free(ssl);
                close(fd);
                ERR_clear_error();
                return NULL;
        }
        *ret_fd = fd;
        return ssl;
}

static void tls_close(SSL *ssl, int fd) {
        SSL_free(ssl);
        close(fd);
        ERR_clear_error();
}

/* Read until the server closes or one full response (head + Content-Length) arrived. */
static int read_response_mode(SSL *ssl, char *buf, size_t cap, bool until_close, bool head_only) {
        size_t have = 0;
        for (;;) {
                int k = SSL_read(ssl, buf + have, (int) (cap - 1 - have));
                char *end, *cl;
                if (k <= 0)
                        break;
                have += (size_t) k;
                buf[have] = '\0';
                end = strstr(buf, "\r\n\r\n");
                if (until_close || !end)
                        continue;
                if (head_only)
                        break;
                cl = strstr(buf, "Content-Length: ");
                if (cl && have >= (size_t) (end + 4 - buf) + strtoul(cl + 16, NULL, 10))
                        break;
        }
        buf[have] = '\0';
        ERR_clear_error();
        return (int) have;
}

static int read_response(SSL *ssl, char *buf, size_t cap, bool until_close) {
        return read_response_mode(ssl, buf, cap, until_close, false);
}

static int status_of(const char *resp) {
        int s = 0;
        return sscanf(resp, "HTTP/1.1 %d", &s) == 1 ? s : -1;
}

static void test_no_certificate_no_http(void **state) {
        struct fixture *f = *state;
        char buf[4096];
        int fd;
        SSL *ssl = tls(f, f->port, NULL, &fd);

        /* TLS 1.3: the client may finish before the server refuses; nothing HTTP ever comes back */
        if (ssl) {
                SSL_write(ssl, "GET /x HTTP/1.1\r\n\r\n", 19);
                assert_int_equal(read_response(ssl, buf, sizeof(buf), true), 0);
                tls_close(ssl, fd);
        }
        assert_int_equal(atomic_load(&f->handled), 0);
        /* the client may see the alert before the loop thread has counted it */
        for (int i = 0; i < 200 && atomic_load(&tp_get_stats(f->t)->refused[TP_REFUSED_NO_CERTIFICATE]) < 1; i++)
                usleep(10000);
        assert_true(atomic_load(&tp_get_stats(f->t)->refused[TP_REFUSED_NO_CERTIFICATE]) >= 1);
}

static void test_roles_and_keep_alive(void **state) {
        struct fixture *f = *state;
        static const char two[] = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /echo HTTP/1.1\r\n\r\n";
        char buf[4096];
        int fd;
        SSL *ssl = tls(f, f->port, "drone-1", &fd);

        assert_non_null(ssl);
        /* two pipelined requests on one connection: both answered, in order */
        SSL_write(ssl, two, (int) strlen(two));
        read_response(ssl, buf, sizeof(buf), false);
        assert_int_equal(status_of(buf), 200);
        assert_non_null(strstr(buf, "role=1 peer=drone-1 len=5 body=hello"));
        read_response(ssl, buf, sizeof(buf), false);
        assert_int_equal(status_of(buf), 200);
        assert_non_null(strstr(buf, "len=0"));
        /* HEAD: the head only */
        SSL_write(ssl, "HEAD /echo HTTP/1.1\r\n\r\n", 23);
        read_response_mode(ssl, buf, sizeof(buf), false, true);
        assert_int_equal(status_of(buf), 200);
        assert_non_null(strstr(buf, "\r\n\r\n"));
        assert_string_equal(strstr(buf, "\r\n\r\n"), "\r\n\r\n");
        /* refused in admit: the body is dropped, the connection stays usable */
        SSL_write(ssl, "POST /deny HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 45);
        read_response(ssl, buf, sizeof(buf), false);
        assert_int_equal(status_of(buf), 403);
        assert_non_null(strstr(buf, "{\"error\":\"denied\",\"status\":403}"));
        SSL_write(ssl, "GET /echo HTTP/1.1\r\n\r\n", 22);
        read_response(ssl, buf, sizeof(buf), false);
        assert_int_equal(status_of(buf), 200);
        tls_close(ssl, fd);

        ssl = tls(f, f->port, "alice", &fd);
        assert_non_null(ssl);
        SSL_write(ssl, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n", 41);
        read_response(ssl, buf, sizeof(buf), true);
        assert_non_null(strstr(buf, "role=2 peer=alice"));
        assert_non_null(strstr(buf, "Connection: close"));
        tls_close(ssl, fd);
}

static void test_early_answers(void **state) {
        struct fixture *f = *state;
        static const char *const bad[] = {
                "GET /echo HTTP/1.1\n\n",                       /* bare LF: 400 at once */
                "\x01\x02garbage",
                "GET /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "POST /echo HTTP/1.1\r\n\r\n",                   /* no Content-Length: 411 */
                "POST /echo HTTP/1.1\r\nContent-Length: 99999\r\n\r\n",
        };
        static const int want[] = { 400, 400, 501, 411, 413 };
        char buf[4096];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int fd;
                SSL *ssl = tls(f, f->port, "drone-1", &fd);
                double t0 = now();
                assert_non_null(ssl);
                SSL_write(ssl, bad[i], (int) strlen(bad[i]));
                read_response(ssl, buf, sizeof(buf), true);
                assert_int_equal(status_of(buf), want[i]);
                /* the status itself proves it came before the deadline (which would be 408) */
                assert_non_null(strstr(buf, "\"status\":"));
                (void) t0;
                tls_close(ssl, fd);
        }
}

static void test_deadlines(void **state) {
        struct fixture *f = *state;
        char buf[4096];
        double t0;
        int fd, raw;
        SSL *ssl;

        /* TCP without a handshake: cut at the handshake deadline */
        raw = tcp(f->port);
        t0 = now();
        {
                struct pollfd p = { .fd = raw, .events = POLLIN };
                assert_int_equal(poll(&p, 1, 5000), 1);
                assert_int_equal(read(raw, buf, sizeof(buf)), 0);
        }
        assert_true(now() - t0 >= 0.5 && now() - t0 < 5.0);
        close(raw);

        /* a head trickled in: 408 at the request deadline, not a byte later than needed */
        ssl = tls(f, f->port, "drone-1", &fd);
        assert_non_null(ssl);
        t0 = now();
        SSL_write(ssl, "GET /echo HTTP/1.1\r\n", 20);
        read_response(ssl, buf, sizeof(buf), true);
        assert_int_equal(status_of(buf), 408);
        assert_true(now() - t0 >= 0.6 && now() - t0 < 5.0);
        tls_close(ssl, fd);

        /* a body trickled: also cut (deadline 700 ms + 100 bytes / 100 B/s) */
        ssl = tls(f, f->port, "drone-1", &fd);
        assert_non_null(ssl);
        t0 = now();
        SSL_write(ssl, "POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nab", 46);
        read_response(ssl, buf, sizeof(buf), true);
        assert_int_equal(status_of(buf), 408);
        assert_true(now() - t0 >= 1.5 && now() - t0 < 6.0);
        tls_close(ssl, fd);

        /* enrollment port: one deadline for the whole exchange, silence included */
        ssl = tls(f, f->enroll_port, NULL, &fd);
        assert_non_null(ssl);
        t0 = now();
        read_response(ssl, buf, sizeof(buf), true);
        assert_true(now() - t0 < 5.0);
        tls_close(ssl, fd);
        assert_true(atomic_load(&tp_get_stats(f->t)->refused[TP_REFUSED_REQUEST_TIMEOUT]) >= 3);
        assert_true(atomic_load(&tp_get_stats(f->t)->refused[TP_REFUSED_HANDSHAKE_TIMEOUT]) >= 1);
}

static void test_enrollment_per_address_cap(void **state) {
        struct fixture *f = *state;
        int fd[3];
        SSL *ssl[3];

        ssl[0] = tls(f, f->enroll_port, NULL, &fd[0]);
        ssl[1] = tls(f, f->enroll_port, NULL, &fd[1]);
        assert_non_null(ssl[0]);
        assert_non_null(ssl[1]);
        ssl[2] = tls(f, f->enroll_port, NULL, &fd[2]);   /* a third from 127.0.0.1: closed at accept */
        assert_null(ssl[2]);
        assert_true(atomic_load(&tp_get_stats(f->t)->refused[TP_REFUSED_PER_ADDRESS]) >= 1);
        tls_close(ssl[0], fd[0]);
        tls_close(ssl[1], fd[1]);
}

/* At the cap, the connection idle the longest makes room for a new one. */
static void test_idle_closed_first_near_the_cap(void **state) {
        struct fixture *f = *state;
        char buf[4096];
        int fd[5];
        SSL *ssl[5];

        for (int i = 0; i < 4; i++) {
                ssl[i] = tls(f, f->port, "drone-1", &fd[i]);
                assert_non_null(ssl[i]);
                SSL_write(ssl[i], "GET /echo HTTP/1.1\r\n\r\n", 22);
                read_response(ssl[i], buf, sizeof(buf), false);
                assert_int_equal(status_of(buf), 200);
        }
        ssl[4] = tls(f, f->port, "drone-1", &fd[4]);
        assert_non_null(ssl[4]);
        SSL_write(ssl[4], "GET /echo HTTP/1.1\r\n\r\n", 22);
        read_response(ssl[4], buf, sizeof(buf), false);
        assert_int_equal(status_of(buf), 200);
        /* the oldest idle one was closed */
        assert_int_equal(read_response(ssl[0], buf, sizeof(buf), true), 0);
        assert_true(atomic_load(&tp_get_stats(f->t)->idle_closed) >= 1);
        for (int i = 0; i < 5; i++)
                tls_close(ssl[i], fd[i]);
}

/* The same server with a handshake deadline far longer than the test. */
static int setup_slow_handshake(void **state) {
        int r;
        handshake_timeout_ms = 20000;
        r = setup(state);
        handshake_timeout_ms = 600;
        return r;
}

/* Connections that never start TLS hold no slot a real client needs once the cap is reached. */
static void test_stalled_handshakes_make_room(void **state) {
        struct fixture *f = *state;
        char buf[4096];
        int raw[4], fd;
        SSL *ssl;

        for (int i = 0; i < 4; i++)
                raw[i] = tcp(f->port);
        usleep(1200 * 1000);   /* older than the grace a real handshake needs */
        ssl = tls(f, f->port, "drone-1", &fd);
        assert_non_null(ssl);
        SSL_write(ssl, "GET /echo HTTP/1.1\r\n\r\n", 22);
        read_response(ssl, buf, sizeof(buf), false);
        assert_int_equal(status_of(buf), 200);
        tls_close(ssl, fd);
        /* the oldest stalled one made room, long before its own deadline */
        assert_true(atomic_load(&tp_get_stats(f->t)->refused[TP_REFUSED_HANDSHAKE_TIMEOUT]) >= 1);
        for (int i = 0; i < 4; i++)
                close(raw[i]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_no_certificate_no_http, setup, teardown),
                cmocka_unit_test_setup_teardown(test_roles_and_keep_alive, setup, teardown),
                cmocka_unit_test_setup_teardown(test_early_answers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deadlines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_enrollment_per_address_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_closed_first_near_the_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stalled_handshakes_make_room, setup_slow_handshake, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
