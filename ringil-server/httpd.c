/* httpd.c: the HTTPS front of ringil-server: mutual TLS, peer identity, bounded HTTP/1.1 keep-alive. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "server.h"

static volatile sig_atomic_t stopping;

static void on_stop(int sig) {
        (void) sig;
        stopping = 1;
}

int conn_write(struct conn *c, const void *p, size_t n) {
        const uint8_t *b = p;

        while (n > 0) {
                int k = SSL_write(c->ssl, b, (int) MIN(n, (size_t) INT32_MAX));
                if (k <= 0) {
                        ERR_clear_error();
                        return -EPIPE;
                }
                b += k;
                n -= (size_t) k;
        }
        return 0;
}

/* One SSL_read into p; -ETIMEDOUT/-ECONNRESET on failure, 0 on clean EOF. */
static int conn_read_some(struct conn *c, void *p, size_t n) {
        int k = SSL_read(c->ssl, p, (int) MIN(n, (size_t) INT32_MAX));

        if (k > 0)
                return k;
        switch (SSL_get_error(c->ssl, k)) {
        case SSL_ERROR_ZERO_RETURN:
                ERR_clear_error();
                return 0;
        case SSL_ERROR_SYSCALL:
                ERR_clear_error();
                return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : 0;
        default:
                ERR_clear_error();
                return -ECONNRESET;
        }
}

int conn_read(struct conn *c, void *p, size_t n) {
        uint8_t *b = p;
        size_t take = MIN(n, c->have);

        if (take) {
                memcpy(b, c->buf, take);
                memmove(c->buf, c->buf + take, c->have - take);
                c->have -= take;
                b += take;
                n -= take;
        }
        while (n > 0) {
                int k = conn_read_some(c, b, n);
                if (k < 0)
                        return k;
                if (k == 0)
                        return -ECONNRESET;
                b += k;
                n -= (size_t) k;
        }
        return 0;
}

int conn_respond(struct conn *c, int status, const char *ctype, const char *extra_headers, const void *body,
                 size_t len) {
        char head[1024];
        int n;

        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: ringil-server\r\nContent-Length: %zu\r\n%s%s%s"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n",
                     status, http_status_text(status), len, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", extra_headers ? extra_headers : "",
                     c->close_after ? "Connection: close\r\n" : "");
        if (n < 0 || (size_t) n >= sizeof(head))
                return -EIO;
        if (status >= 500)
                atomic_fetch_add(&c->srv->m.errors_5xx, 1);
        else if (status >= 400)
                atomic_fetch_add(&c->srv->m.errors_4xx, 1);
        /* A body after a HEAD answer would be read as the next response on a keep-alive connection. */
        if (c->head_only)
                body = NULL;
        /* One record for small answers: a check-in round trip is then one TLS write each way. */
        if (body && len > 0 && len <= 16384 - (size_t) n) {
                char out[16384];
                memcpy(out, head, (size_t) n);
                memcpy(out + n, body, len);
                return conn_write(c, out, (size_t) n + len);
        }
        n = conn_write(c, head, (size_t) n);
        if (n < 0 || !body || len == 0)
                return n;
        return conn_write(c, body, len);
}

int conn_error(struct conn *c, int status, const char *fmt, ...) {
        char msg[300];
        json_t *j;
        char *s;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        j = json_pack("{s:s, s:i}", "error", msg, "status", status);
        s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (conn_respond(c, status, "application/json", NULL, s ? s : "{}", s ? strlen(s) : 2) < 0)
                c->close_after = true;
        free(s);
        return status;
}

static void identify_peer(struct conn *c) {
        X509 *peer = SSL_get0_peer_certificate(c->ssl);
        STACK_OF(X509) *chain;
        X509_STORE_CTX *vctx;
        X509 *root;
        bool operator_root, device_root;

        c->role = PEER_NONE;
        if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK)
                return;
        /* Verify the chain ourselves on every connection: a resumed TLS session carries the peer
         * certificate but not the verified chain, and the role depends on which anchor it reaches. */
        vctx = X509_STORE_CTX_new();
        if (!vctx || X509_STORE_CTX_init(vctx, SSL_CTX_get_cert_store(c->srv->ssl), peer,
                                         SSL_get_peer_cert_chain(c->ssl)) != 1 ||
            X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_CLIENT) != 1 || X509_verify_cert(vctx) != 1) {
                X509_STORE_CTX_free(vctx);
                ERR_clear_error();
                return;
        }
        chain = X509_STORE_CTX_get0_chain(vctx);
        if (!chain || sk_X509_num(chain) < 2) {
                X509_STORE_CTX_free(vctx);
                return;   /* a self-signed leaf is never an identity */
        }
        root = sk_X509_value(chain, sk_X509_num(chain) - 1);
        operator_root = c->srv->operator_ca_cert && X509_cmp(root, c->srv->operator_ca_cert) == 0;
        device_root = X509_cmp(root, c->srv->device_ca_cert) == 0;
        X509_STORE_CTX_free(vctx);
        if (ca_cert_cn(peer, c->peer) < 0)
                return;
        if (ca_cert_serial_hex(peer, c->serial) < 0)
                return;
        /* INVARIANT: the role comes from the anchor that verified the chain *and* the OU, so a drone
         * certificate is never an operator even when one CA issues both. */
        if (ca_cert_is_operator(peer)) {
                if (operator_root)
                        c->role = PEER_OPERATOR;
        } else if (device_root)
                c->role = PEER_DRONE;
}

static int status_for_parse_error(int r) {
        switch (r) {
        case -E2BIG:
                return 414;
        case -EMSGSIZE:
                return 431;
        case -ENOSYS:
                return 501;
        default:
                return 400;
        }
}

/* Read one request head; returns its length (the head is at c->buf), 0 on clean close, < 0 error. */
static int read_head(struct conn *c, size_t *ret_len) {
        time_t start = time(NULL);

        for (;;) {
                size_t n = http_head_length(c->buf, c->have);
                int k;

                if (n > 0) {
                        *ret_len = n;
                        return 1;
                }
                if (c->have >= sizeof(c->buf))
                        return -EMSGSIZE;
                /* A slow client gets SERVER_IO_TIMEOUT_SEC for the whole head, not per byte. */
                if (c->have > 0 && time(NULL) - start > SERVER_IO_TIMEOUT_SEC)
                        return -ETIMEDOUT;
                k = conn_read_some(c, c->buf + c->have, sizeof(c->buf) - c->have);
                if (k < 0)
                        return k;
                if (k == 0)
                        return c->have ? -ECONNRESET : 0;
                c->have += (size_t) k;
        }
}

static void serve_connection(struct conn *c) {
        for (;;) {
                struct http_request req;
                size_t hl = 0;
                int r;

                c->head_only = false;   /* until a HEAD is parsed: a 400 or 431 carries its body */
                r = read_head(c, &hl);
                if (r == 0)
                        return;
                if (r < 0) {
                        if (r == -EMSGSIZE) {
                                c->close_after = true;
                                (void) conn_error(c, 431, "request head larger than %u bytes", HTTP_MAX_HEAD);
                        }
                        return;
                }
                atomic_fetch_add(&c->srv->m.requests, 1);
                r = http_parse_head(c->buf, hl, &req);
                memmove(c->buf, c->buf + hl, c->have - hl);
                c->have -= hl;
                if (r < 0) {
                        c->close_after = true;
                        (void) conn_error(c, status_for_parse_error(r), "malformed request");
                        return;
                }
                c->close_after = !req.keep_alive;
                c->head_only = req.method == HTTP_HEAD;
                if (req.expect_continue &&
                    conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
                        return;
                r = api_handle(c, &req);
                if (r < 0 || c->close_after)
                        return;
        }
}

static void *conn_thread(void *userdata) {
        struct conn *c = userdata;
        struct server *srv = c->srv;

        ERR_clear_error();
        if (SSL_accept(c->ssl) != 1) {
                atomic_fetch_add(&srv->m.tls_failures, 1);
                log_debug("TLS handshake failed");
                ERR_clear_error();
        } else {
                identify_peer(c);
                serve_connection(c);
                (void) SSL_shutdown(c->ssl);
        }
        ERR_clear_error();
        SSL_free(c->ssl);
        close(c->fd);
        free(c);
        atomic_fetch_sub(&srv->m.connections_active, 1);
        OPENSSL_thread_stop();
        return NULL;
}

static int verify_cb(int ok, X509_STORE_CTX *ctx) {
        (void) ctx;
        return ok;
}

static int setup_tls(struct server *srv) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        X509_STORE *st;

        if (!ctx)
                return crypto_fail(-ENOMEM, "SSL_CTX_new");
        srv->ssl = ctx;
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                         SSL_OP_NO_COMPRESSION);
        if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
                return crypto_fail(-EINVAL, "cipher list");
        if (SSL_CTX_use_certificate_chain_file(ctx, srv->cfg.cert) != 1)
                return crypto_fail(-EINVAL, "server certificate");
        if (SSL_CTX_use_PrivateKey_file(ctx, srv->cfg.key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1)
                return crypto_fail(-EINVAL, "server key");
        st = SSL_CTX_get_cert_store(ctx);
        if (X509_STORE_add_cert(st, srv->device_ca_cert) != 1)
                return crypto_fail(-EINVAL, "device CA");
        if (srv->operator_ca_cert && X509_cmp(srv->operator_ca_cert, srv->device_ca_cert) != 0 &&
            X509_STORE_add_cert(st, srv->operator_ca_cert) != 1)
                return crypto_fail(-EINVAL, "operator CA");
        /* Ask for a client certificate; refuse a bad one in the handshake. Having none is allowed
         * at the TLS layer only so that a drone can enroll with a token; every other route refuses. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, verify_cb);
        SSL_CTX_set_verify_depth(ctx, 2);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *) "ringil", 6);
        return 0;
}

static int listen_on(const char *spec, int *ret_fd) {
        _cleanup_free_ char *host = strdup(spec);
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
        struct addrinfo *ai = NULL;
        char *port;
        int fd, one = 1, rc;

        if (!host)
                return -ENOMEM;
        port = strrchr(host, ':');
        if (!port)
                return ringil_fail(-EINVAL, "listen '%s' is not HOST:PORT", spec);
        *port++ = '\0';
        if (host[0] == '[' && port - host > 2 && port[-2] == ']') {
                port[-2] = '\0';
                memmove(host, host + 1, strlen(host));
        }
        rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
        if (rc != 0)
                return ringil_fail(-EINVAL, "listen '%s': %s", spec, gai_strerror(rc));
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                freeaddrinfo(ai);
                return negative_errno();
        }
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
                int r = negative_errno();
                freeaddrinfo(ai);
                close(fd);
                return ringil_fail(r, "cannot listen on '%s'", spec);
        }
        freeaddrinfo(ai);
        *ret_fd = fd;
        return 0;
}

int server_run(struct server *srv) {
        _cleanup_close_ int lfd = -EBADF;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        char host[NI_MAXHOST], port[NI_MAXSERV];
        struct sigaction act = { .sa_handler = on_stop };
        pthread_attr_t attr;
        int r;

        r = setup_tls(srv);
        if (r < 0)
                return r;
        r = listen_on(srv->cfg.listen, &lfd);
        if (r < 0)
                return r;
        if (getsockname(lfd, (struct sockaddr *) &sa, &sl) < 0 ||
            getnameinfo((struct sockaddr *) &sa, sl, host, sizeof(host), port, sizeof(port),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
                return -EIO;
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGINT, &act, NULL);
        signal(SIGPIPE, SIG_IGN);
        /* The one line on stdout: tests and scripts read the port from it when listen used port 0. */
        printf("listening on %s:%s\n", host, port);
        fflush(stdout);
        log_info("listening on %s:%s", host, port);

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 512 * 1024);   /* handlers keep 64 KiB I/O buffers on the stack */
        while (!stopping) {
                struct pollfd p = { .fd = lfd, .events = POLLIN };
                struct timeval tv = { .tv_sec = SERVER_IO_TIMEOUT_SEC };
                struct conn *c;
                pthread_t t;
                int fd, one = 1;

                if (poll(&p, 1, 500) <= 0)
                        continue;
                fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                atomic_fetch_add(&srv->m.connections_total, 1);
                if (atomic_fetch_add(&srv->m.connections_active, 1) >= (int) srv->cfg.max_connections) {
                        /* Over the cap: close at once rather than queue unbounded threads. */
                        atomic_fetch_sub(&srv->m.connections_active, 1);
                        close(fd);
                        continue;
                }
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c = calloc(1, sizeof(*c));
                if (c)
                        c->ssl = SSL_new(srv->ssl);
                if (!c || !c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                        if (c)
                                SSL_free(c->ssl);
                        free(c);
                        close(fd);
                        atomic_fetch_sub(&srv->m.connections_active, 1);
                        continue;
                }
                c->srv = srv;
                c->fd = fd;
                if (pthread_create(&t, &attr, conn_thread, c) != 0) {
                        SSL_free(c->ssl);
                        close(fd);
                        free(c);
                        atomic_fetch_sub(&srv->m.connections_active, 1);
                }
        }
        pthread_attr_destroy(&attr);
        log_info("stopping");
        return 0;
}
