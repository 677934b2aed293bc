/* fleet-load.c: event-driven (epoll + OpenSSL) load and attack client for ringil-server; loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fleet-ca.h"
#include "fleet-msg.h"
#include "macro.h"

/*
 * Modes (one process; run several for more load):
 *   checkin  CONNS keep-alive mutual-TLS connections, each a distinct drone identity, closed loop for
 *            SECONDS: requests/s, p50/p99 latency. --new-conn: a new TLS connection per check-in;
 *            --rotate N: after N check-ins a connection reconnects as the next identity.
 *   idle     CONNS mutual-TLS connections, one check-in each, then held idle for SECONDS; prints how
 *            many the server still holds at the end.
 *   attack   CONNS anonymous connections of six kinds (below), re-opened when cut, for SECONDS; prints
 *            per kind how long the server let each live.
 * Identities: --ca-dir DIR (ca.pem + ca.key) makes --identities N drone certificates in memory, and
 * --operator CERT:KEY registers them with the server (409 for existing ones is fine).
 * Several servers (replicas): --url once per server, or URL,URL; connection i goes to server i mod n.
 * --reports N: every Nth request of a connection is a durable report (a new seq of its drone) instead
 * of a check-in. Only 127.0.0.0/8 targets are accepted.
 */

#define MAX_CONNS 20000
#define RESP_MAX 65536
#define MAX_TARGETS 8

enum kind { K_CHECKIN, K_TCP_IDLE, K_NO_CERT, K_HEAD_TRICKLE, K_BODY_TRICKLE, K_IDLE_TLS, K_GARBAGE, _K_MAX };
static const char *const kind_names[_K_MAX] = {
        "checkin", "tcp-idle", "no-cert", "head-trickle", "body-trickle", "idle-after-handshake", "garbage",
};

enum st { S_CONNECTING, S_HANDSHAKE, S_ACTIVE, S_DEAD };

struct conn {
        int fd;
        SSL *ssl;
        enum kind kind;
        enum st st;
        int ident;
        double opened, sent_at, next_at;
        size_t trickled;
        unsigned served;
        bool held, failed;
        char resp[RESP_MAX];
        size_t have;
        bool in_request;
        bool reporting;      /* the request in flight is a report */
        unsigned src;
};

struct stats {
        unsigned long opened, cut, refused_early, ok, errors;
        double *life;
        size_t n_life, cap_life;
};

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static void push(struct stats *s, double v) {
        if (s->n_life == s->cap_life) {
                s->cap_life = s->cap_life ? 2 * s->cap_life : 4096;
                s->life = realloc(s->life, s->cap_life * sizeof(double));
                if (!s->life)
                        abort();
        }
        s->life[s->n_life++] = v;
}

static double pct(struct stats *s, double p) {
        if (!s->n_life)
                return 0;
        qsort(s->life, s->n_life, sizeof(double), cmpd);
        return s->life[(size_t) ((double) (s->n_life - 1) * p)];
}

/* ---- options ---- */

static struct {
        const char *mode, *ca, *ca_dir, *op_cert, *op_key, *enroll_port_s;
        struct sockaddr_in addr, enroll_addr;
        struct sockaddr_in targets[MAX_TARGETS];
        int n_targets;
        int conns, identities, seconds, rotate, reports;
        bool new_conn;
} opt = { .conns = 32, .identities = 0, .seconds = 5 };
static uint64_t *report_seq;          /* per identity: the last report seq sent */
static unsigned long reports_ok;

static SSL_CTX *anon_ctx;
static SSL_CTX **id_ctx;
static int n_ids;
static int ep;
static struct conn *conns;
static struct stats stats[_K_MAX];
static const char checkin_req_fmt[] = "POST /api/v1/checkin HTTP/1.1\r\nHost: fleet\r\nContent-Type: application/json\r\n"
                                      "Content-Length: %zu\r\n\r\n%s";
static const char checkin_body[] = "{\"version\":\"1.0\",\"slot\":\"a\",\"boot\":\"good\",\"state\":\"idle\"}";
/* --report full: what ringild sends since it reports compliance (audit summary, Secure Boot, zone) */
static const char checkin_body_full[] =
        "{\"version\":\"1.0\",\"slot\":\"a\",\"boot\":\"good\",\"state\":\"idle\",\"release\":3,\"target\":\"\","
        "\"error\":\"\",\"tz\":\"Europe/Paris\",\"utc_offset\":3600,\"audit\":{\"pass\":58,\"fail\":2,\"error\":0,"
        "\"waived\":1,\"notapplicable\":3,\"failing\":[\"SVC-001\",\"LOG-003\"],\"profile\":\"prod\","
        "\"sha256\":\"5f1d3c0a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817065f4e\",\"version\":\"1.0\","
        "\"time\":1767225600},\"secureboot\":{\"mode\":\"deployed\",\"pk\":\"ok\",\"kek\":\"ok\",\"db\":\"ok\"}}";
static char checkin_req[2048];
static bool full_report, digest_report;
static char checkin_body_digest[256];
static int next_open;                 /* idle mode: connections scheduled so far */
#define IDLE_IN_FLIGHT 64             /* idle mode: handshakes at once (adapts the ramp to the machine) */

/* idle mode: one more connection may start (one was held or failed) */
static void schedule_next(double t) {
        if (next_open < opt.conns)
                conns[next_open++].next_at = t;
}
static size_t checkin_len;

static int parse_target(const char *url, struct sockaddr_in *sa) {
        char host[64];
        int port;

        if (sscanf(url, "https://%63[0-9.]:%d", host, &port) != 2 || port < 1 || port > 65535)
                return -1;
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t) port);
        if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || (ntohl(sa->sin_addr.s_addr) >> 24) != 127)
                return -1;   /* loopback only */
        return 0;
}

static SSL_CTX *client_ctx(const char *ca) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
                return NULL;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        /* every handshake is a full one: the bench measures the worst case, like nginx's figure */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        return ctx;
}

/* ---- identities ---- */

static int blocking_request(SSL_CTX *ctx, const char *req, size_t len, char *resp, size_t cap) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), code = -1;
        SSL *ssl = NULL;
        size_t have = 0;

        if (fd < 0 || connect(fd, (struct sockaddr *) &opt.addr, sizeof(opt.addr)) < 0)
                goto out;
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1 || SSL_write(ssl, req, (int) len) != (int) len)
                goto out;
        for (;;) {
                int k = SSL_read(ssl, resp + have, (int) (cap - 1 - have));
                if (k <= 0)
                        break;
                have += (size_t) k;
                resp[have] = '\0';
                if (strstr(resp, "\r\n\r\n"))
                        break;
        }
        resp[have] = '\0';
        if (sscanf(resp, "HTTP/1.1 %d", &code) != 1)
                code = -1;
out:
        if (ssl) {
                SSL_shutdown(ssl);
                SSL_free(ssl);
        }
        if (fd >= 0)
                close(fd);
        ERR_clear_error();
        return code;
}

static int make_identities(void) {
        EVP_PKEY *ca_key = NULL;
        X509 *ca_cert = NULL;
        SSL_CTX *op = NULL;

        if (ca_load(opt.ca_dir, &ca_key, &ca_cert) < 0) {
                fprintf(stderr, "fleet-load: cannot load the CA in %s\n", opt.ca_dir);
                return -1;
        }
        if (opt.op_cert) {
                op = client_ctx(opt.ca);
                if (!op || SSL_CTX_use_certificate_file(op, opt.op_cert, SSL_FILETYPE_PEM) != 1 ||
                    SSL_CTX_use_PrivateKey_file(op, opt.op_key, SSL_FILETYPE_PEM) != 1) {
                        fprintf(stderr, "fleet-load: bad operator certificate\n");
                        return -1;
                }
        }
        n_ids = opt.identities;
        id_ctx = calloc((size_t) n_ids, sizeof(*id_ctx));
        for (int i = 0; i < n_ids; i++) {
                EVP_PKEY *key = NULL;
                X509 *cert = NULL;
                char name[32], req[256], body[128], resp[2048];
                int code;

                snprintf(name, sizeof(name), "bench-%05d", i);
                if (ca_generate_key(&key) < 0 ||
                    ca_sign(ca_key, ca_cert, key, name, CA_PROFILE_DEVICE, NULL, 2, &cert) < 0)
                        return -1;
                id_ctx[i] = client_ctx(opt.ca);
                if (!id_ctx[i] || SSL_CTX_use_certificate(id_ctx[i], cert) != 1 || SSL_CTX_use_PrivateKey(id_ctx[i], key) != 1)
                        return -1;
                X509_free(cert);
                EVP_PKEY_free(key);
                if (!op)
                        continue;
                snprintf(body, sizeof(body), "{\"id\":\"%s\",\"group\":\"bench\"}", name);
                snprintf(req, sizeof(req),
                         "POST /api/v1/drones HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(body), body);
                code = blocking_request(op, req, strlen(req), resp, sizeof(resp));
                if (code != 201 && code != 409) {
                        fprintf(stderr, "fleet-load: registering %s: HTTP %d\n", name, code);
                        return -1;
                }
        }
        EVP_PKEY_free(ca_key);
        X509_free(ca_cert);
        SSL_CTX_free(op);
        return 0;
}

/* ---- connections ---- */

static void conn_close(struct conn *c) {
        if (c->ssl)
                SSL_free(c->ssl);
        if (c->fd >= 0)
                close(c->fd);
        c->ssl = NULL;
        c->fd = -1;
        c->st = S_DEAD;
        ERR_clear_error();
}

static void conn_open(struct conn *c, double t) {
        bool enroll = c->kind >= K_HEAD_TRICKLE;
        struct sockaddr_in src = { .sin_family = AF_INET };
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
        int one = 1;

        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                c->st = S_DEAD;
                c->next_at = t + 0.5;
                return;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (c->kind != K_CHECKIN) {
                /* attackers come from many loopback addresses, as from many hosts */
                src.sin_addr.s_addr = htonl(0x7f010000u + 1 + c->src % 60000);
                (void) bind(c->fd, (struct sockaddr *) &src, sizeof(src));
        }
        (void) connect(c->fd, (struct sockaddr *) (enroll ? &opt.enroll_addr
                                                   : c->kind == K_CHECKIN ? &opt.targets[c->src % (unsigned) opt.n_targets]
                                                                          : &opt.addr),
                       sizeof(opt.addr));
        c->opened = t;
        c->st = S_CONNECTING;
        c->have = 0;
        c->trickled = 0;
        c->in_request = false;
        stats[c->kind].opened++;
        if (c->kind == K_TCP_IDLE) {
                c->st = S_ACTIVE;
                ev.events = EPOLLIN | EPOLLRDHUP;
        } else {
                c->ssl = SSL_new(c->kind == K_CHECKIN || c->kind == K_NO_CERT
                                         ? (c->kind == K_CHECKIN ? id_ctx[c->ident % n_ids] : anon_ctx)
                                         : anon_ctx);
                SSL_set_fd(c->ssl, c->fd);
                SSL_set_connect_state(c->ssl);
        }
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* The server ended this connection: how long it lived, and whether before the handshake finished. */
static void ended(struct conn *c, double t, bool early) {
        struct stats *s = &stats[c->kind];

        if (c->kind == K_CHECKIN) {
                if (c->in_request)
                        s->errors++;
        } else {
                s->cut++;
                if (early)
                        s->refused_early++;
                else
                        push(s, t - c->opened);
        }
        conn_close(c);
        c->next_at = t + (c->kind == K_CHECKIN ? 0 : 1.0);   /* attackers come back a second later */
}

static void send_checkin(struct conn *c, double t) {
        char req[512];
        const char *what = checkin_req;
        size_t len = checkin_len;
        int k;

        c->reporting = opt.reports && (c->served + 1) % (unsigned) opt.reports == 0;
        if (c->reporting) {
                char body[160];
                int n = snprintf(body, sizeof(body), "{\"seq\":%llu,\"state\":\"downloading\",\"release\":1,"
                                 "\"version\":\"1.0\",\"target\":\"2.0\"}",
                                 (unsigned long long) ++report_seq[c->ident % n_ids]);
                len = (size_t) snprintf(req, sizeof(req), "POST /api/v1/report HTTP/1.1\r\nHost: fleet\r\n"
                                        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", n, body);
                what = req;
        }
        k = SSL_write(c->ssl, what, (int) len);
        if (k != (int) len) {
                stats[K_CHECKIN].errors++;
                conn_close(c);
                c->next_at = t;
                return;
        }
        c->sent_at = t;
        c->in_request = true;
        c->have = 0;
}

static void after_handshake(struct conn *c, double t) {
        static const char head[] = "POST /api/v1/enroll HTTP/1.1\r\nHost: fleet\r\nContent-Length: 16000\r\n\r\n";
        char junk[512];

        c->st = S_ACTIVE;
        switch (c->kind) {
        case K_CHECKIN:
                send_checkin(c, t);
                break;
        case K_BODY_TRICKLE:
                (void) SSL_write(c->ssl, head, (int) strlen(head));
                c->next_at = t + 1;
                break;
        case K_HEAD_TRICKLE:
                c->next_at = t + 0.01;
                break;
        case K_GARBAGE:
                for (size_t i = 0; i < sizeof(junk); i++)
                        junk[i] = (char) (rand() & 0xff);
                (void) SSL_write(c->ssl, junk, (int) sizeof(junk));
                break;
        case K_NO_CERT:
        case K_IDLE_TLS:
        case K_TCP_IDLE:
        case _K_MAX:
                break;
        }
        ERR_clear_error();
}

static void on_readable(struct conn *c, double t) {
        if (c->st == S_CONNECTING || c->st == S_HANDSHAKE) {
                int r = SSL_do_handshake(c->ssl);
                if (r == 1) {
                        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                        after_handshake(c, t);
                        return;
                }
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                        struct epoll_event ev = { .events = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, .data.ptr = c };
                        c->st = S_HANDSHAKE;
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                        return;
                }
                if (c->kind == K_CHECKIN) {
                        stats[K_CHECKIN].errors++;
                        conn_close(c);
                        if (streq(opt.mode, "idle")) {
                                c->failed = true;
                                c->next_at = 0;
                                schedule_next(t);
                                return;
                        }
                        c->next_at = t + 0.1;
                        return;
                }
                ended(c, t, true);
                return;
        }
        if (c->kind == K_TCP_IDLE) {
                char b[64];
                ssize_t k = read(c->fd, b, sizeof(b));
                if (k == 0 || (k < 0 && errno != EAGAIN))
                        ended(c, t, false);
                return;
        }
        for (;;) {
                int k = SSL_read(c->ssl, c->resp + c->have, (int) (sizeof(c->resp) - 1 - c->have));
                if (k <= 0) {
                        int e = SSL_get_error(c->ssl, k);
                        if (e == SSL_ERROR_WANT_READ)
                                return;
                        if (c->kind == K_CHECKIN) {
                                stats[K_CHECKIN].errors += c->in_request;
                                conn_close(c);
                                /* idle mode counts what the server holds: no reconnecting */
                                c->next_at = streq(opt.mode, "idle") ? 0 : t;
                                if (streq(opt.mode, "idle") && !c->held && !c->failed) {
                                        c->failed = true;
                                        schedule_next(t);
                                }
                                return;
                        }
                        ended(c, t, false);
                        return;
                }
                c->have += (size_t) k;
                c->resp[c->have] = '\0';
                if (c->kind != K_CHECKIN) {
                        c->have = 0;   /* an answer (400, 408): the close follows */
                        continue;
                }
                char *end = strstr(c->resp, "\r\n\r\n"), *cl;
                size_t body;
                int code = 0;
                if (!end)
                        continue;
                cl = strcasestr(c->resp, "\r\nContent-Length:");
                body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
                if (c->have < (size_t) (end + 4 - c->resp) + body)
                        continue;
                sscanf(c->resp, "HTTP/1.1 %d", &code);
                c->in_request = false;
                if (code == 200) {
                        stats[K_CHECKIN].ok++;
                        reports_ok += c->reporting;
                        push(&stats[K_CHECKIN], t - c->sent_at);
                } else {
                        stats[K_CHECKIN].errors++;
                        if (stats[K_CHECKIN].errors < 5)
                                fprintf(stderr, "fleet-load: HTTP %d: %.200s\n", code, end + 4);
                }
                c->have = 0;
                if (strcmp(opt.mode, "idle") == 0) {
                        c->held = true;   /* held idle from now on */
                        schedule_next(t);
                        return;
                }
                ++c->served;
                if (opt.rotate && c->served % (unsigned) opt.rotate == 0) {
                        /* the next drone identity: many drones, mostly keep-alive */
                        c->ident = (c->ident + opt.conns) % n_ids;
                        conn_close(c);
                        c->next_at = t;
                        return;
                }
                if (opt.new_conn || strcasestr(c->resp, "Connection: close")) {
                        conn_close(c);
                        c->next_at = t;
                        return;
                }
                send_checkin(c, t);
                return;
        }
}

static void on_timer(struct conn *c, double t) {
        if (c->st == S_DEAD) {
                conn_open(c, t);
                if (c->kind != K_TCP_IDLE)
                        on_readable(c, t);   /* start the handshake */
                return;
        }
        if (c->st != S_ACTIVE)
                return;
        if (c->kind == K_HEAD_TRICKLE) {
                static const char head[] = "POST /api/v1/enroll HTTP/1.1\r\nHost: fleet\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                char b = head[c->trickled % (sizeof(head) - 1)];
                c->trickled++;
                (void) SSL_write(c->ssl, &b, 1);
                c->next_at = t + 1;
        } else if (c->kind == K_BODY_TRICKLE) {
                (void) SSL_write(c->ssl, "x", 1);
                c->next_at = t + 1;
        }
        ERR_clear_error();
}

static void usage(void) {
        fprintf(stderr, "usage: fleet-load checkin|idle|attack --url https://127.0.0.1:PORT --ca CA.pem\n"
                        "       [--enroll-url URL] [--ca-dir DIR --identities N [--operator CERT:KEY]]\n"
                        "       [--conns N] [--seconds S] [--new-conn] [--rotate N] [--report full|digest] [--reports N]\n"
                        "       (--url again, or URL,URL: several servers, connections spread over them)\n");
        exit(2);
}

int main(int argc, char *argv[]) {
        struct epoll_event evs[256];
        struct rlimit rl;
        double t0, t_end;
        int n;

        if (argc < 2)
                usage();
        opt.mode = argv[1];
        for (int i = 2; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (streq(a, "--new-conn")) {
                        opt.new_conn = true;
                        continue;
                }
                if (!v)
                        usage();
                i++;
                if (streq(a, "--url")) {
                        char list[512], *save = NULL;
                        snprintf(list, sizeof(list), "%s", v);
                        for (char *u = strtok_r(list, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
                                if (opt.n_targets == MAX_TARGETS || parse_target(u, &opt.targets[opt.n_targets]) < 0)
                                        usage();
                                opt.n_targets++;
                        }
                        opt.addr = opt.targets[0];
                } else if (streq(a, "--enroll-url")) {
                        if (parse_target(v, &opt.enroll_addr) < 0)
                                usage();
                } else if (streq(a, "--ca"))
                        opt.ca = v;
                else if (streq(a, "--ca-dir"))
                        opt.ca_dir = v;
                else if (streq(a, "--operator")) {
                        char *colon = strchr(v, ':');
                        if (!colon)
                                usage();
                        *colon = '\0';
                        opt.op_cert = v;
                        opt.op_key = colon + 1;
                } else if (streq(a, "--identities"))
                        opt.identities = atoi(v);
                else if (streq(a, "--conns"))
                        opt.conns = atoi(v);
                else if (streq(a, "--seconds"))
                        opt.seconds = atoi(v);
                else if (streq(a, "--rotate"))
                        opt.rotate = atoi(v);
                else if (streq(a, "--reports"))
                        opt.reports = atoi(v);
                else if (streq(a, "--report")) {
                        full_report = streq(v, "full");
                        digest_report = streq(v, "digest");
                }
                else
                        usage();
        }
        if (!opt.ca || !opt.addr.sin_family || opt.conns < 1 || opt.conns > MAX_CONNS || opt.seconds < 1 ||
            opt.seconds > 3600)
                usage();
        bool attack = streq(opt.mode, "attack");
        if (!attack && !streq(opt.mode, "checkin") && !streq(opt.mode, "idle"))
                usage();
        if (attack && !opt.enroll_addr.sin_family)
                usage();
        if (!attack && (!opt.ca_dir || opt.identities < 1))
                usage();
        signal(SIGPIPE, SIG_IGN);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t) opt.conns + 64) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        anon_ctx = client_ctx(opt.ca);
        if (!anon_ctx)
                return 1;
        if (!attack && make_identities() < 0)
                return 1;
        /* report seqs above every earlier run's: microseconds since the epoch */
        report_seq = calloc((size_t) (n_ids > 0 ? n_ids : 1), sizeof(*report_seq));
        {
                struct timespec rt;
                clock_gettime(CLOCK_REALTIME, &rt);
                for (int i = 0; i < n_ids; i++)
                        report_seq[i] = (uint64_t) rt.tv_sec * 1000000u + (uint64_t) rt.tv_nsec / 1000u;
        }
        if (digest_report) {
                /* what ringild sends once the server holds its report: the report's digest only */
                struct fleet_status st;
                char digest[65];
                if (fleet_status_parse(checkin_body_full, strlen(checkin_body_full), &st) < 0 ||
                    fleet_compliance_digest(&st, digest) < 0)
                        return 1;
                snprintf(checkin_body_digest, sizeof(checkin_body_digest),
                         "{\"version\":\"1.0\",\"slot\":\"a\",\"boot\":\"good\",\"state\":\"idle\",\"release\":3,"
                         "\"target\":\"\",\"error\":\"\",\"compliance\":\"%s\"}", digest);
        }
        {
                const char *body = full_report ? checkin_body_full : digest_report ? checkin_body_digest : checkin_body;
                checkin_len = (size_t) snprintf(checkin_req, sizeof(checkin_req), checkin_req_fmt, strlen(body), body);
        }
        ep = epoll_create1(EPOLL_CLOEXEC);
        conns = calloc((size_t) opt.conns, sizeof(*conns));
        t0 = now();
        for (int i = 0; i < opt.conns; i++) {
                struct conn *c = &conns[i];
                c->fd = -1;
                c->st = S_DEAD;
                c->ident = i;
                c->src = (unsigned) i;
                c->kind = attack ? (enum kind) (K_TCP_IDLE + i % (_K_MAX - K_TCP_IDLE)) : K_CHECKIN;
                /* attack: opening spread over 1 s so the listen backlog is not the test; idle: at
                 * most IDLE_IN_FLIGHT handshakes at once, the next starts when one is held */
                c->next_at = attack ? t0 + (double) i / opt.conns : 0;
                if (!attack && (!streq(opt.mode, "idle") || i < IDLE_IN_FLIGHT)) {
                        c->next_at = t0;
                        next_open = i + 1;
                }
        }
        t_end = t0 + opt.seconds;
        bool reported = false;
        for (;;) {
                double t = now();
                if (t >= t_end)
                        break;
                if (!reported && streq(opt.mode, "idle") && next_open == opt.conns) {
                        unsigned long held = 0, failed = 0, settled = 0;
                        for (int i = 0; i < opt.conns; i++) {
                                held += conns[i].held && conns[i].st == S_ACTIVE;
                                failed += conns[i].failed;
                                settled += conns[i].held || conns[i].failed;
                        }
                        if (settled == (unsigned long) opt.conns) {
                                /* the bench samples the server now */
                                printf("idle: all opened: held=%lu of %d failed=%lu after %.1f s\n", held, opt.conns,
                                       failed, t - t0);
                                fflush(stdout);
                                reported = true;
                        }
                }
                n = epoll_wait(ep, evs, 256, 5);
                t = now();
                for (int i = 0; i < n; i++) {
                        struct conn *c = evs[i].data.ptr;
                        if (c->st != S_DEAD)
                                on_readable(c, t);
                }
                for (int i = 0; i < opt.conns; i++)
                        if (conns[i].next_at > 0 && conns[i].next_at <= t) {
                                conns[i].next_at = 0;
                                on_timer(&conns[i], t);
                        }
        }
        t_end = now() - t0;
        if (attack) {
                printf("attack: %d connections for %.1f s\n", opt.conns, t_end);
                for (int k = K_TCP_IDLE; k < _K_MAX; k++) {
                        struct stats *s = &stats[k];
                        unsigned long alive = 0;
                        double oldest = 0, tn = now();
                        for (int i = 0; i < opt.conns; i++)
                                if (conns[i].kind == (enum kind) k && conns[i].st != S_DEAD) {
                                        alive++;
                                        oldest = tn - conns[i].opened > oldest ? tn - conns[i].opened : oldest;
                                }
                        printf("attack kind=%s opened=%lu cut=%lu refused_early=%lu alive_at_end=%lu "
                               "oldest_alive_s=%.2f life_p50_s=%.2f life_max_s=%.2f\n",
                               kind_names[k], s->opened, s->cut, s->refused_early, alive, oldest, pct(s, 0.5),
                               pct(s, 1.0));
                }
                return 0;
        }
        if (streq(opt.mode, "idle")) {
                unsigned long held = 0;
                for (int i = 0; i < opt.conns; i++)
                        held += conns[i].st == S_ACTIVE;
                printf("idle: at the end: held=%lu of %d errors=%lu checkins=%lu\n", held, opt.conns,
                       stats[K_CHECKIN].errors, stats[K_CHECKIN].ok);
                fflush(stdout);
                return held == (unsigned long) opt.conns ? 0 : 1;
        }
        printf("requests=%lu errors=%lu seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f identities=%d "
               "reports=%lu servers=%d\n",
               stats[K_CHECKIN].ok, stats[K_CHECKIN].errors, t_end, (double) stats[K_CHECKIN].ok / t_end,
               pct(&stats[K_CHECKIN], 0.5) * 1e3, pct(&stats[K_CHECKIN], 0.99) * 1e3, pct(&stats[K_CHECKIN], 1.0) * 1e3,
               n_ids, reports_ok, opt.n_targets);
        return stats[K_CHECKIN].errors ? 1 : 0;
}
