/* transport.c: libevent loop for accept, TLS, deadlines and HTTP heads/bodies; a worker pool for the handlers. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "transport.h"

#define DRAIN_MAX 16384               /* a body nobody wants is read and dropped up to this size */
#define RATE_WINDOW_MS 5000           /* min-body-rate is checked over windows of this length */
#define FILE_CHUNK 65536              /* file bodies are read in chunks as the socket drains */
#define READ_HIGH_WATER (256u << 10)  /* unread input per connection before reading pauses */
#define ADDR_SLOTS 1024               /* enrollment per-address table */
#define ADDR_PROBE 16
#define LOG_BURST 10                  /* refusal log lines per LOG_INTERVAL_MS, the rest counted */
#define LOG_INTERVAL_MS 10000

enum cstate {
        C_HANDSHAKE,
        C_IDLE,      /* between requests (keep-alive) */
        C_HEAD,
        C_BODY,
        C_DRAIN,     /* reading a body only to drop it, then answer x->early */
        C_WORKER,    /* the handler runs; no reading, no deadline */
        C_WRITE,
};

struct addr_slot {
        bool used;
        uint8_t key[16];
        uint32_t active;
        double tokens;
        uint64_t last_ms;
};

struct exchange {
        struct http_request req;
        struct tp_plan plan;
        struct buf body;
        uint64_t body_left;
        int spool_fd;
        char *spool_path;
        EVP_MD_CTX *md;
        uint8_t sha256[32];
        struct tp_response resp;
        uint64_t file_off, file_end;
        bool early;            /* resp was made by the transport; no handler runs */
};

struct conn {
        transport *t;
        struct bufferevent *bev;
        struct event *timer;
        enum tp_listener listener;
        enum cstate state;
        enum peer_role role;
        char peer[CA_NAME_MAX + 1];
        char serial[65];
        char addr[INET6_ADDRSTRLEN];
        struct addr_slot *slot;
        uint64_t accepted_ms, deadline_ms, window_ms, window_bytes;
        struct exchange *x;
        bool close_after;
        struct list *on;                      /* the list it is on (idle or handshaking), or NULL */
        struct conn *idle_prev, *idle_next;
        struct conn *all_prev, *all_next;
        struct conn *q_next;
};

struct list {
        struct conn *head, *tail;
};

struct queue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct conn *head, *tail;
};

/*
 * A refused handshake's socket after its connection is gone: OpenSSL wrote the alert that says why
 * (no certificate, unknown CA), but close() on a socket with unread input makes the kernel answer
 * with a reset, which can reach the peer before it reads the alert, and then destroys it: a browser
 * shows "connection reset" instead of "the server did not accept your certificate". So the socket
 * stops writing, reads and discards what the peer still sends, and is closed at its EOF or after
 * LINGER_MS. At most LINGER_MAX at a time (past that: closed at once, as before).
 */
#define LINGER_MS 1000
#define LINGER_MAX 256

struct tls_linger {
        transport *t;
        int fd;
        struct event *ev;
        struct tls_linger *prev, *next;
};

struct transport {
        struct tp_config cfg;
        struct tp_stats stats;
        struct event_base *base;
        SSL_CTX *ssl[_TP_LISTENER_MAX];
        struct evconnlistener *listener[_TP_LISTENER_MAX];
        char address[_TP_LISTENER_MAX][NI_MAXHOST + NI_MAXSERV + 4];
        struct event *sig_term, *sig_int, *done_ev, *stop_ev, *resume_ev;
        int done_fd, stop_fd;
        struct queue jobs, done;
        bool stopping;
        pthread_t *workers;
        unsigned n_workers;
        struct list idle;                     /* keep-alive connections between requests, longest idle first */
        struct list handshaking;              /* fleet port, TLS handshake not done yet, oldest first */
        struct conn *all;
        struct addr_slot addrs[ADDR_SLOTS];
        uint64_t log_window_ms;
        unsigned log_count, log_suppressed;
        struct tls_linger *lingering;             /* refused handshakes closing gently */
        unsigned n_lingering;
};

static const char *const refusal_names[_TP_REFUSED_MAX] = {
        [TP_REFUSED_CAP] = "cap",
        [TP_REFUSED_PER_ADDRESS] = "per_address",
        [TP_REFUSED_RATE] = "rate",
        [TP_REFUSED_NO_CERTIFICATE] = "no_certificate",
        [TP_REFUSED_TLS] = "tls",
        [TP_REFUSED_HANDSHAKE_TIMEOUT] = "handshake_timeout",
        [TP_REFUSED_REQUEST_TIMEOUT] = "request_timeout",
        [TP_REFUSED_SLOW_BODY] = "slow_body",
        [TP_REFUSED_MALFORMED] = "malformed",
};

const char *tp_refusal_to_string(enum tp_refusal r) {
        return r < _TP_REFUSED_MAX ? refusal_names[r] : NULL;
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- responses (used by handlers in workers and by the transport itself) ---- */

static void response_clear(struct tp_response *r) {
        buf_free(&r->headers);
        buf_free(&r->body);
        r->file_fd = safe_close(r->file_fd);
}

int tp_respond(struct tp_response *r, int status, const char *ctype, const void *body, size_t len) {
        r->status = status;
        r->ctype = ctype;
        buf_reset(&r->body);
        r->file_fd = safe_close(r->file_fd);
        return len ? buf_append(&r->body, body, len) : 0;
}

int tp_respond_errorv(struct tp_response *r, int status, const char *fmt, va_list ap) {
        char msg[300];
        json_t *j;
        char *s;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        j = json_pack("{s:s, s:i}", "error", msg, "status", status);
        s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (tp_respond(r, status, "application/json", s ? s : "{}", s ? strlen(s) : 2) < 0)
                r->close = true;
        free(s);
        return status;
}

int tp_respond_error(struct tp_response *r, int status, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        tp_respond_errorv(r, status, fmt, ap);
        va_end(ap);
        return status;
}

int tp_header(struct tp_response *r, const char *name, const char *fmt, ...) {
        char v[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(v, sizeof(v), fmt, ap);
        va_end(ap);
        if (!r->headers.max)
                r->headers.max = 4096;
        return buf_printf(&r->headers, "%s: %s\r\n", name, v);
}

int tp_respond_file(struct tp_response *r, int status, const char *ctype, int fd, uint64_t first, uint64_t len,
                    atomic_uint_fast64_t *sent) {
        r->status = status;
        r->ctype = ctype;
        buf_reset(&r->body);
        safe_close(r->file_fd);
        r->file_fd = fd;
        r->file_first = first;
        r->file_len = len;
        r->file_sent = sent;
        return 0;
}

static void response_init(struct tp_response *r) {
        *r = (struct tp_response) { .file_fd = -EBADF, .headers = BUF_INIT(4096), .body = BUF_INIT(64u << 20) };
}

/* ---- refusals, logged at a bounded rate ---- */

static void refuse(transport *t, enum tp_refusal why, const char *addr) {
        uint64_t now = now_ms();

        atomic_fetch_add(&t->stats.refused[why], 1);
        if (now - t->log_window_ms >= LOG_INTERVAL_MS) {
                if (t->log_suppressed)
                        log_notice("%u more refused connections were not logged", t->log_suppressed);
                t->log_window_ms = now;
                t->log_count = t->log_suppressed = 0;
        }
        if (t->log_count < LOG_BURST) {
                t->log_count++;
                log_notice("refused connection from %s: %s", addr, refusal_names[why]);
        } else
                t->log_suppressed++;
}

/* ---- enrollment: per-address cap and token bucket ---- */

static void addr_key(const struct sockaddr *sa, uint8_t key[static 16]) {
        /* copied out, not cast: a struct sockaddr pointer promises no sockaddr_in alignment */
        memset(key, 0, 16);
        if (sa->sa_family == AF_INET) {
                struct sockaddr_in in;
                memcpy(&in, sa, sizeof(in));
                key[10] = key[11] = 0xff;
                memcpy(key + 12, &in.sin_addr, 4);
        } else if (sa->sa_family == AF_INET6) {
                struct sockaddr_in6 in6;
                memcpy(&in6, sa, sizeof(in6));
                memcpy(key, &in6.sin6_addr, 16);
        }
}

static struct addr_slot *addr_lookup(transport *t, const uint8_t key[static 16], uint64_t now) {
        uint32_t h = 2166136261u;
        struct addr_slot *pick = NULL;

        for (size_t i = 0; i < 16; i++)
                h = (h ^ key[i]) * 16777619u;
        for (unsigned k = 0; k < ADDR_PROBE; k++) {
                struct addr_slot *s = &t->addrs[(h + k) % ADDR_SLOTS];
                if (s->used && memcmp(s->key, key, 16) == 0)
                        return s;
                /* Prefer a free slot, then the idle entry seen longest ago (its rate state is the
                 * least informative; the listener's own cap still bounds everything). */
                if (!s->used)
                        pick = !pick || pick->used ? s : pick;
                else if (s->active == 0 && (!pick || (pick->used && s->last_ms < pick->last_ms)))
                        pick = s;
        }
        if (!pick)
                return NULL;
        *pick = (struct addr_slot) { .used = true, .tokens = t->cfg.limits.enroll_rate, .last_ms = now };
        memcpy(pick->key, key, 16);
        return pick;
}

/* ---- connection lifecycle ---- */

static void list_unlink(struct conn *c) {
        struct list *l = c->on;

        if (!l)
                return;
        if (c->idle_prev)
                c->idle_prev->idle_next = c->idle_next;
        else
                l->head = c->idle_next;
        if (c->idle_next)
                c->idle_next->idle_prev = c->idle_prev;
        else
                l->tail = c->idle_prev;
        c->idle_prev = c->idle_next = NULL;
        c->on = NULL;
}

static void list_push(struct list *l, struct conn *c) {
        list_unlink(c);
        c->idle_prev = l->tail;
        c->idle_next = NULL;
        if (l->tail)
                l->tail->idle_next = c;
        else
                l->head = c;
        l->tail = c;
        c->on = l;
}

static void exchange_free(struct exchange *x) {
        if (!x)
                return;
        buf_free(&x->body);
        if (x->spool_path) {
                (void) unlink(x->spool_path);
                free(x->spool_path);
        }
        safe_close(x->spool_fd);
        EVP_MD_CTX_free(x->md);
        response_clear(&x->resp);
        free(x);
}

static void conn_free(struct conn *c) {
        transport *t = c->t;

        list_unlink(c);
        if (c->all_prev)
                c->all_prev->all_next = c->all_next;
        else
                t->all = c->all_next;
        if (c->all_next)
                c->all_next->all_prev = c->all_prev;
        if (c->slot) {
                c->slot->active--;
                c->slot->last_ms = now_ms();
        }
        if (c->timer)
                event_free(c->timer);
        if (c->bev) {
                SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
                /* close_notify once, without waiting: a peer that reads it knows the end is deliberate */
                if (ssl && c->state != C_HANDSHAKE)
                        (void) SSL_shutdown(ssl);
                ERR_clear_error();
                bufferevent_free(c->bev);   /* BEV_OPT_CLOSE_ON_FREE: SSL and socket too */
        }
        exchange_free(c->x);
        atomic_fetch_sub(&t->stats.active[c->listener], 1);
        free(c);
}

static void arm_timer(struct conn *c, uint64_t at_ms) {
        uint64_t now = now_ms(), d = at_ms > now ? at_ms - now : 0;
        struct timeval tv = { .tv_sec = (time_t) (d / 1000), .tv_usec = (suseconds_t) (d % 1000) * 1000 };

        evtimer_add(c->timer, &tv);
}

static void set_deadline(struct conn *c, uint64_t at_ms) {
        c->deadline_ms = at_ms;
        arm_timer(c, at_ms);
}

/* The deadline of a request that started now: the enrollment port has one for its whole exchange. */
static uint64_t request_deadline(struct conn *c, uint64_t start, uint64_t body_len) {
        const struct tp_limits *l = &c->t->cfg.limits;

        if (c->listener == TP_ENROLL)
                return c->accepted_ms + l->enroll_timeout_ms;
        return start + l->request_timeout_ms + (l->min_body_rate ? body_len * 1000 / l->min_body_rate : 0);
}

static void start_write(struct conn *c);
static void on_read(struct bufferevent *bev, void *userdata);

static const char *reason_phrase(int status) {
        return http_status_text(status);
}

/* Queue the head (and a memory body) of x->resp; a file body follows in on_write(). */
static void write_response(struct conn *c) {
        struct exchange *x = c->x;
        struct tp_response *r = &x->resp;
        struct evbuffer *out = bufferevent_get_output(c->bev);
        uint64_t len = r->file_fd >= 0 ? r->file_len : r->body.len;
        bool head_only = x->req.method == HTTP_HEAD;

        if (r->close || !x->req.keep_alive || c->t->stopping || c->listener == TP_ENROLL)
                c->close_after = true;
        if (r->status >= 500)
                atomic_fetch_add(&c->t->stats.responses_5xx, 1);
        else if (r->status >= 400)
                atomic_fetch_add(&c->t->stats.responses_4xx, 1);
        evbuffer_add_printf(out,
                            "HTTP/1.1 %d %s\r\nServer: ringil-server\r\nContent-Length: %" PRIu64 "\r\n%s%s%s"
                            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
                            r->status, reason_phrase(r->status), len, r->ctype ? "Content-Type: " : "",
                            r->ctype ? r->ctype : "", r->ctype ? "\r\n" : "");
        if (r->headers.len)
                evbuffer_add(out, r->headers.data, r->headers.len);
        evbuffer_add(out, c->close_after ? "Connection: close\r\n\r\n" : "\r\n", c->close_after ? 21 : 2);
        /* A body after a HEAD answer would be read as the next response on a keep-alive connection. */
        if (!head_only && r->file_fd < 0 && r->body.len)
                evbuffer_add(out, r->body.data, r->body.len);
        if (!head_only && r->file_fd >= 0) {
                x->file_off = r->file_first;
                x->file_end = r->file_first + r->file_len;
        } else
                x->file_off = x->file_end = 0;
        start_write(c);
}

/* An answer from the transport itself (parse errors, deadlines, refusals by admit()). */
static void early_answer(struct conn *c, int status, bool close, const char *allow, const char *fmt, ...)
        _printf_(5, 6);
static void early_answer(struct conn *c, int status, bool close, const char *allow, const char *fmt, ...) {
        struct exchange *x = c->x;
        va_list ap;

        va_start(ap, fmt);
        tp_respond_errorv(&x->resp, status, fmt, ap);
        va_end(ap);
        if (allow && *allow)
                tp_header(&x->resp, "Allow", "%s", allow);
        x->resp.close = x->resp.close || close;
        x->early = true;
        write_response(c);
}

static void start_write(struct conn *c) {
        c->state = C_WRITE;
        bufferevent_setwatermark(c->bev, EV_WRITE, c->x && c->x->file_off < c->x->file_end ? FILE_CHUNK : 0, 0);
        bufferevent_enable(c->bev, EV_WRITE);
        /* a reader that takes nothing for request-timeout is cut; every drained chunk renews it */
        set_deadline(c, now_ms() + c->t->cfg.limits.request_timeout_ms);
}

static void finish_exchange(struct conn *c) {
        transport *t = c->t;

        exchange_free(c->x);
        c->x = NULL;
        if (c->close_after) {
                conn_free(c);
                return;
        }
        c->state = C_IDLE;
        list_push(&t->idle, c);
        set_deadline(c, now_ms() + t->cfg.limits.keepalive_timeout_ms);
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        /* a pipelined request may already be here */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
                on_read(c->bev, c);
}

static void on_write(struct bufferevent *bev, void *userdata) {
        struct conn *c = userdata;
        struct exchange *x = c->x;
        struct evbuffer *out = bufferevent_get_output(bev);

        if (c->state != C_WRITE || !x)
                return;
        set_deadline(c, now_ms() + c->t->cfg.limits.request_timeout_ms);
        while (x->file_off < x->file_end && evbuffer_get_length(out) < 4 * FILE_CHUNK) {
                struct evbuffer_iovec v;
                size_t want = (size_t) MIN((uint64_t) FILE_CHUNK, x->file_end - x->file_off);
                ssize_t k;

                if (evbuffer_reserve_space(out, (ev_ssize_t) want, &v, 1) < 1) {
                        conn_free(c);
                        return;
                }
                k = pread(x->resp.file_fd, v.iov_base, MIN(want, v.iov_len), (off_t) x->file_off);
                if (k <= 0) {
                        /* the file shrank under us: the length is promised, so only a cut is honest */
                        conn_free(c);
                        return;
                }
                v.iov_len = (size_t) k;
                evbuffer_commit_space(out, &v, 1);
                x->file_off += (uint64_t) k;
                if (x->resp.file_sent)
                        atomic_fetch_add(x->resp.file_sent, (uint64_t) k);
        }
        if (x->file_off >= x->file_end) {
                bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
                if (evbuffer_get_length(out) == 0)
                        finish_exchange(c);
        }
}

/* ---- worker pool ---- */

static void queue_push(struct queue *q, struct conn *c) {
        c->q_next = NULL;
        if (q->tail)
                q->tail->q_next = c;
        else
                q->head = c;
        q->tail = c;
}

static struct conn *queue_take_all(struct queue *q) {
        struct conn *c = q->head;
        q->head = q->tail = NULL;
        return c;
}

static void *worker_main(void *userdata) {
        transport *t = userdata;

        for (;;) {
                struct conn *c;
                struct exchange *x;
                struct tp_request req;
                bool was_empty;

                pthread_mutex_lock(&t->jobs.lock);
                while (!t->jobs.head && !t->stopping)
                        pthread_cond_wait(&t->jobs.cond, &t->jobs.lock);
                c = t->jobs.head;
                if (!c) {
                        pthread_mutex_unlock(&t->jobs.lock);
                        break;
                }
                t->jobs.head = c->q_next;
                if (!t->jobs.head)
                        t->jobs.tail = NULL;
                pthread_mutex_unlock(&t->jobs.lock);

                /* INVARIANT: while a connection is C_WORKER the loop thread touches neither it nor
                 * its exchange; the done queue hands both back. */
                x = c->x;
                req = (struct tp_request) {
                        .http = &x->req,
                        .listener = c->listener,
                        .role = c->role,
                        .peer = c->peer,
                        .serial = c->serial,
                        .addr = c->addr,
                        .route = x->plan.route,
                        .body = x->plan.body == TP_BODY_MEMORY ? (const char *) x->body.data : NULL,
                        .body_len = x->plan.body == TP_BODY_MEMORY ? x->body.len : 0,
                        .spool_fd = x->spool_fd,
                        .spool_path = x->spool_path,
                        .spool_len = x->req.content_length,
                };
                if (x->plan.body == TP_BODY_MEMORY && !x->body.data)
                        req.body = "";
                memcpy(req.spool_sha256, x->sha256, 32);
                t->cfg.app.handle(t->cfg.app.userdata, &req, &x->resp);
                if (!x->resp.status)
                        tp_respond_error(&x->resp, 500, "no answer");

                pthread_mutex_lock(&t->done.lock);
                was_empty = !t->done.head;
                queue_push(&t->done, c);
                pthread_mutex_unlock(&t->done.lock);
                if (was_empty) {
                        uint64_t one = 1;
                        (void) !write(t->done_fd, &one, sizeof(one));
                }
        }
        OPENSSL_thread_stop();
        return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *userdata) {
        transport *t = userdata;
        uint64_t n;
        struct conn *c, *next;

        (void) what;
        (void) !read(fd, &n, sizeof(n));
        pthread_mutex_lock(&t->done.lock);
        c = queue_take_all(&t->done);
        pthread_mutex_unlock(&t->done.lock);
        for (; c; c = next) {
                next = c->q_next;
                /* the spooled upload is no longer needed once the handler linked what it keeps */
                if (c->x->spool_path) {
                        (void) unlink(c->x->spool_path);
                        free(c->x->spool_path);
                        c->x->spool_path = NULL;
                }
                c->x->spool_fd = safe_close(c->x->spool_fd);
                write_response(c);
        }
}

static void dispatch(struct conn *c) {
        transport *t = c->t;
        struct exchange *x = c->x;

        if (x->md) {
                unsigned len = 0;
                (void) EVP_DigestFinal_ex(x->md, x->sha256, &len);
                if (x->spool_fd >= 0 && lseek(x->spool_fd, 0, SEEK_SET) < 0) {
                        early_answer(c, 500, true, NULL, "cannot rewind the upload");
                        return;
                }
        }
        /* Reading stays enabled (no epoll_ctl per request): bytes that arrive meanwhile wait in the
         * input buffer, which the read high-watermark bounds. */
        c->state = C_WORKER;
        evtimer_del(c->timer);
        pthread_mutex_lock(&t->jobs.lock);
        queue_push(&t->jobs, c);
        pthread_cond_signal(&t->jobs.cond);
        pthread_mutex_unlock(&t->jobs.lock);
}

/* ---- reading: head, then body ---- */

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

static int spool_open(struct conn *c) {
        struct exchange *x = c->x;
        char *p;
        int fd;

        if (asprintf(&p, "%s/.upload.XXXXXX", c->t->cfg.spool_dir) < 0)
                return -ENOMEM;
        fd = mkostemp(p, O_CLOEXEC);
        if (fd < 0) {
                int r = negative_errno();
                free(p);
                return r;
        }
        x->spool_fd = fd;
        x->spool_path = p;
        return 0;
}

/* The head is parsed: ask the application, then read, drop or refuse the body. */
static void begin_request(struct conn *c) {
        transport *t = c->t;
        struct exchange *x = c->x;
        const struct http_request *h = &x->req;
        struct tp_request req = {
                .http = h, .listener = c->listener, .role = c->role, .peer = c->peer, .serial = c->serial,
                .addr = c->addr, .spool_fd = -EBADF,
        };
        uint64_t cl = h->has_content_length ? h->content_length : 0;

        atomic_fetch_add(&t->stats.requests, 1);
        t->cfg.app.admit(t->cfg.app.userdata, &req, &x->plan);
        if (x->plan.status) {
                /* refused before any body is read; drop a small body so keep-alive stays in step */
                tp_respond_error(&x->resp, x->plan.status, "%s", x->plan.message);
                if (x->plan.allow[0])
                        tp_header(&x->resp, "Allow", "%s", x->plan.allow);
                x->early = true;
                if (cl > DRAIN_MAX)
                        x->resp.close = true;
                else if (cl > 0) {
                        x->body_left = cl;
                        c->state = C_DRAIN;
                        set_deadline(c, request_deadline(c, now_ms(), cl));
                        return;
                }
                write_response(c);
                return;
        }
        if (x->plan.body == TP_BODY_NONE) {
                if (cl > DRAIN_MAX) {
                        early_answer(c, 413, true, NULL, "this route takes no body");
                        return;
                }
                if (cl == 0) {
                        dispatch(c);
                        return;
                }
                /* handled after the unwanted body is dropped */
                x->body_left = cl;
                c->state = C_BODY;
                x->plan.max_body = 0;
        } else {
                if (!h->has_content_length) {
                        early_answer(c, 411, true, NULL, "Content-Length required");
                        return;
                }
                if (cl > x->plan.max_body || (x->plan.body == TP_BODY_MEMORY && cl > t->cfg.limits.max_memory_body)) {
                        tp_respond_error(&x->resp, 413, "body larger than %" PRIu64 " bytes", x->plan.max_body);
                        x->resp.close = true;
                        x->early = true;
                        /* Drop a modestly oversized body so the client, still sending, sees the 413
                         * instead of a reset; a huge one is not read at all. */
                        if (x->plan.body == TP_BODY_MEMORY && cl <= 64 * x->plan.max_body) {
                                x->body_left = cl;
                                c->state = C_DRAIN;
                                set_deadline(c, request_deadline(c, now_ms(), cl));
                        } else
                                write_response(c);
                        return;
                }
                if (x->plan.body == TP_BODY_SPOOL) {
                        int r = spool_open(c);
                        x->md = EVP_MD_CTX_new();
                        if (r < 0 || !x->md || EVP_DigestInit_ex(x->md, EVP_sha256(), NULL) != 1) {
                                early_answer(c, 500, true, NULL, "cannot create a temporary file");
                                return;
                        }
                } else
                        x->body = BUF_INIT(x->plan.max_body);
                x->body_left = cl;
                c->state = C_BODY;
                if (cl == 0) {
                        dispatch(c);
                        return;
                }
        }
        if (h->expect_continue)
                evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        c->window_ms = now_ms();
        c->window_bytes = 0;
        set_deadline(c, request_deadline(c, c->window_ms, cl));
        arm_timer(c, MIN(c->deadline_ms, c->window_ms + RATE_WINDOW_MS));
}

static void read_body(struct conn *c, struct evbuffer *in) {
        struct exchange *x = c->x;

        while (x->body_left > 0) {
                size_t avail = evbuffer_get_length(in), n;
                const uint8_t *p;

                if (avail == 0)
                        return;
                n = (size_t) MIN((uint64_t) avail, x->body_left);
                n = MIN(n, (size_t) FILE_CHUNK);
                p = evbuffer_pullup(in, (ev_ssize_t) n);
                if (!p) {
                        conn_free(c);
                        return;
                }
                if (c->state == C_BODY && x->plan.body == TP_BODY_MEMORY) {
                        if (buf_append(&x->body, p, n) < 0) {
                                conn_free(c);
                                return;
                        }
                } else if (c->state == C_BODY && x->plan.body == TP_BODY_SPOOL) {
                        /* writes go to the page cache; a full disk is the handler's 507 */
                        if (write_all(x->spool_fd, p, n) < 0) {
                                evbuffer_drain(in, n);
                                early_answer(c, 507, true, NULL, "store full");
                                return;
                        }
                        EVP_DigestUpdate(x->md, p, n);
                }
                evbuffer_drain(in, n);
                x->body_left -= n;
                c->window_bytes += n;
        }
        if (c->state == C_DRAIN) {
                write_response(c);
                return;
        }
        if (x->plan.body == TP_BODY_MEMORY && !x->body.data)
                (void) buf_reserve(&x->body, 1);   /* the handler gets "" for an empty body */
        dispatch(c);
}

static void on_read(struct bufferevent *bev, void *userdata) {
        struct conn *c = userdata;
        transport *t = c->t;
        struct evbuffer *in = bufferevent_get_input(bev);

        if (c->state == C_WORKER || c->state == C_WRITE || c->state == C_HANDSHAKE)
                return;   /* the next request waits until this answer is out */
        if (c->state == C_IDLE) {
                if (evbuffer_get_length(in) == 0)
                        return;
                list_unlink(c);
                c->state = C_HEAD;
                c->x = calloc(1, sizeof(*c->x));
                if (!c->x) {
                        conn_free(c);
                        return;
                }
                c->x->spool_fd = -EBADF;
                response_init(&c->x->resp);
                set_deadline(c, request_deadline(c, now_ms(), 0));
        }
        if (c->state == C_HEAD) {
                size_t have = evbuffer_get_length(in), n = MIN(have, (size_t) HTTP_MAX_HEAD), hl = 0;
                const char *p = (const char *) evbuffer_pullup(in, (ev_ssize_t) n);
                int r = p ? http_head_scan(p, n, &hl) : -ENOMEM;

                if (r == 0)
                        return;
                if (r < 0) {
                        refuse(t, TP_REFUSED_MALFORMED, c->addr);
                        evbuffer_drain(in, have);
                        if (r == -EMSGSIZE)
                                early_answer(c, 431, true, NULL, "request head larger than %u bytes", HTTP_MAX_HEAD);
                        else
                                early_answer(c, 400, true, NULL, "malformed request");
                        return;
                }
                r = http_parse_head(p, hl, &c->x->req);
                evbuffer_drain(in, hl);
                if (r < 0) {
                        refuse(t, TP_REFUSED_MALFORMED, c->addr);
                        evbuffer_drain(in, evbuffer_get_length(in));
                        early_answer(c, status_for_parse_error(r), true, NULL,
                                     r == -ENOSYS ? "method or Transfer-Encoding not implemented" : "malformed request");
                        return;
                }
                begin_request(c);
                if (c->state != C_BODY && c->state != C_DRAIN)
                        return;
        }
        if (c->state == C_BODY || c->state == C_DRAIN)
                read_body(c, in);
}

/* The client certificate's role: which anchor verified it, and its OU. */
static void identify_peer(struct conn *c, SSL *ssl) {
        transport *t = c->t;
        X509 *peer = SSL_get0_peer_certificate(ssl);
        X509_STORE_CTX *vctx;
        STACK_OF(X509) *chain;
        X509 *root;
        bool operator_root, device_root;
        BIGNUM *bn;
        char *hex;

        c->role = PEER_NONE;
        if (!peer || SSL_get_verify_result(ssl) != X509_V_OK)
                return;
        /* Verify the chain ourselves on every connection: a resumed TLS session carries the peer
         * certificate but not the verified chain, and the role depends on which anchor it reaches. */
        vctx = X509_STORE_CTX_new();
        if (!vctx ||
            X509_STORE_CTX_init(vctx, SSL_CTX_get_cert_store(t->ssl[TP_FLEET]), peer, SSL_get_peer_cert_chain(ssl)) != 1 ||
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
        operator_root = t->cfg.operator_ca && X509_cmp(root, t->cfg.operator_ca) == 0;
        device_root = X509_cmp(root, t->cfg.device_ca) == 0;
        X509_STORE_CTX_free(vctx);
        if (ca_cert_cn(peer, c->peer) < 0) {
                c->peer[0] = '\0';
                return;
        }
        bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL);
        hex = bn ? BN_bn2hex(bn) : NULL;
        BN_free(bn);
        if (!hex || strlen(hex) >= sizeof(c->serial)) {
                OPENSSL_free(hex);
                return;
        }
        for (size_t i = 0; hex[i]; i++)
                c->serial[i] = (char) (hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
        c->serial[strlen(hex)] = '\0';
        OPENSSL_free(hex);
        /* INVARIANT: the role comes from the anchor that verified the chain *and* the OU, so a drone
         * certificate is never an operator even when one CA issues both. */
        if (ca_cert_is_operator(peer)) {
                if (operator_root)
                        c->role = PEER_OPERATOR;
        } else if (device_root)
                c->role = PEER_DRONE;
}

static bool error_is_no_certificate(unsigned long e) {
        return ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE;
}

static void linger_free(struct tls_linger *l) {
        transport *t = l->t;

        if (l->prev)
                l->prev->next = l->next;
        else
                t->lingering = l->next;
        if (l->next)
                l->next->prev = l->prev;
        t->n_lingering--;
        event_free(l->ev);
        safe_close(l->fd);
        free(l);
}

static void on_linger(evutil_socket_t fd, short what, void *userdata) {
        char buf[4096];
        ssize_t n;

        if (what & EV_READ) {
                while ((n = read(fd, buf, sizeof(buf))) > 0)
                        ;
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;   /* more may come before the peer's EOF or our time-out */
        }
        linger_free(userdata);
}

/* Keep the refused handshake's socket open a moment longer, on a duplicate descriptor (the
 * bufferevent closes its own when it is freed). Best effort: any failure closes at once. */
static void linger_close(transport *t, struct bufferevent *bev) {
        struct timeval tv = { .tv_sec = LINGER_MS / 1000, .tv_usec = (LINGER_MS % 1000) * 1000 };
        int fd = bufferevent_getfd(bev);
        struct tls_linger *l;

        if (fd < 0 || t->n_lingering >= LINGER_MAX || !(l = calloc(1, sizeof(*l))))
                return;
        *l = (struct tls_linger) { .t = t, .fd = fcntl(fd, F_DUPFD_CLOEXEC, 3) };
        l->ev = l->fd >= 0 ? event_new(t->base, l->fd, EV_READ | EV_PERSIST, on_linger, l) : NULL;
        if (!l->ev || event_add(l->ev, &tv) < 0 || shutdown(l->fd, SHUT_WR) < 0) {
                if (l->ev)
                        event_free(l->ev);
                safe_close(l->fd);
                free(l);
                return;
        }
        l->next = t->lingering;
        if (l->next)
                l->next->prev = l;
        t->lingering = l;
        t->n_lingering++;
}

static void on_event(struct bufferevent *bev, short what, void *userdata) {
        struct conn *c = userdata;
        transport *t = c->t;

        if (what & BEV_EVENT_CONNECTED) {
                identify_peer(c, bufferevent_openssl_get_ssl(bev));
                list_unlink(c);   /* off the handshaking list */
                c->state = C_IDLE;
                /* The first request is due within request-timeout (enrollment: its one deadline);
                 * a handshake followed by silence is no keep-alive client. */
                set_deadline(c, c->listener == TP_ENROLL ? c->accepted_ms + t->cfg.limits.enroll_timeout_ms
                                                         : now_ms() + t->cfg.limits.request_timeout_ms);
                if (c->listener == TP_FLEET)
                        list_push(&t->idle, c);
                if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
                        on_read(bev, c);
                return;
        }
        if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
                if (c->state == C_HANDSHAKE) {
                        unsigned long e, no_cert = 0;
                        while ((e = bufferevent_get_openssl_error(bev)))
                                no_cert |= error_is_no_certificate(e);
                        refuse(t, no_cert ? TP_REFUSED_NO_CERTIFICATE : TP_REFUSED_TLS, c->addr);
                        if (what & BEV_EVENT_ERROR)
                                linger_close(t, bev);   /* so the peer reads the alert that says why */
                }
                if (c->state == C_WORKER)
                        return;   /* the worker's answer comes back through the done queue */
                ERR_clear_error();
                conn_free(c);
        }
}

static void on_timer(evutil_socket_t fd, short what, void *userdata) {
        struct conn *c = userdata;
        transport *t = c->t;
        uint64_t now = now_ms();

        (void) fd;
        (void) what;
        switch (c->state) {
        case C_HANDSHAKE:
                refuse(t, TP_REFUSED_HANDSHAKE_TIMEOUT, c->addr);
                conn_free(c);
                return;
        case C_IDLE:
                if (c->listener == TP_ENROLL)
                        refuse(t, TP_REFUSED_REQUEST_TIMEOUT, c->addr);
                else
                        atomic_fetch_add(&t->stats.idle_closed, 1);
                conn_free(c);
                return;
        case C_HEAD:
        case C_BODY:
        case C_DRAIN:
                if (now >= c->deadline_ms) {
                        refuse(t, TP_REFUSED_REQUEST_TIMEOUT, c->addr);
                        early_answer(c, 408, true, NULL, "request not complete in time");
                        return;
                }
                if (c->state != C_HEAD && now - c->window_ms >= RATE_WINDOW_MS) {
                        uint64_t need = (uint64_t) t->cfg.limits.min_body_rate * (now - c->window_ms) / 1000;
                        if (c->window_bytes < need) {
                                refuse(t, TP_REFUSED_SLOW_BODY, c->addr);
                                early_answer(c, 408, true, NULL, "body slower than %u bytes/s",
                                             t->cfg.limits.min_body_rate);
                                return;
                        }
                        c->window_ms = now;
                        c->window_bytes = 0;
                }
                arm_timer(c, c->state == C_HEAD ? c->deadline_ms : MIN(c->deadline_ms, c->window_ms + RATE_WINDOW_MS));
                return;
        case C_WRITE:
                conn_free(c);   /* the reader took nothing for request-timeout */
                return;
        case C_WORKER:
                return;
        }
}

/* ---- accept and admission ---- */

static void close_oldest_idle(transport *t) {
        struct conn *c = t->idle.head;

        if (!c)
                return;
        atomic_fetch_add(&t->stats.idle_closed, 1);
        conn_free(c);
}

/*
 * At the cap with nobody idle: a handshake still unfinished after HANDSHAKE_GRACE_MS is far slower
 * than any real client's (a few ms) — most likely a connection opened only to hold a slot — so it
 * makes room before a new client is turned away.
 */
#define HANDSHAKE_GRACE_MS 1000
static bool close_stalled_handshake(transport *t, uint64_t now) {
        struct conn *c = t->handshaking.head;

        if (!c || now - c->accepted_ms < HANDSHAKE_GRACE_MS)
                return false;
        refuse(t, TP_REFUSED_HANDSHAKE_TIMEOUT, c->addr);
        conn_free(c);
        return true;
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen, void *userdata) {
        transport *t = userdata;
        enum tp_listener which = lis == t->listener[TP_ENROLL] ? TP_ENROLL : TP_FLEET;
        const struct tp_limits *l = &t->cfg.limits;
        uint32_t cap = which == TP_ENROLL ? l->enroll_max_connections : l->max_connections;
        char addr[INET6_ADDRSTRLEN] = "?";
        struct addr_slot *slot = NULL;
        struct conn *c;
        SSL *ssl;
        uint64_t now = now_ms();
        int one = 1;

        if (sa->sa_family == AF_INET && (size_t) salen >= sizeof(struct sockaddr_in)) {
                struct sockaddr_in in;
                memcpy(&in, sa, sizeof(in));
                inet_ntop(AF_INET, &in.sin_addr, addr, sizeof(addr));
        } else if (sa->sa_family == AF_INET6 && (size_t) salen >= sizeof(struct sockaddr_in6)) {
                struct sockaddr_in6 in6;
                memcpy(&in6, sa, sizeof(in6));
                inet_ntop(AF_INET6, &in6.sin6_addr, addr, sizeof(addr));
        }
        atomic_fetch_add(&t->stats.connections_total, 1);

        /* Near the cap (90 %), make room by closing the connection idle the longest: a keep-alive
         * client reconnects at its next poll, a new client would otherwise be turned away. */
        if (which == TP_FLEET) {
                while (t->idle.head && (uint32_t) atomic_load(&t->stats.active[TP_FLEET]) >= cap - cap / 10)
                        close_oldest_idle(t);
                while ((uint32_t) atomic_load(&t->stats.active[TP_FLEET]) >= cap && close_stalled_handshake(t, now))
                        ;
        }
        if ((uint32_t) atomic_load(&t->stats.active[which]) >= cap) {
                refuse(t, TP_REFUSED_CAP, addr);
                close(fd);
                return;
        }
        if (which == TP_ENROLL) {
                uint8_t key[16];
                addr_key(sa, key);
                slot = addr_lookup(t, key, now);
                if (!slot || slot->active >= l->enroll_per_address) {
                        refuse(t, TP_REFUSED_PER_ADDRESS, addr);
                        close(fd);
                        return;
                }
                slot->tokens = MIN((double) l->enroll_rate,
                                   slot->tokens + (double) (now - slot->last_ms) * l->enroll_rate / 60000.0);
                slot->last_ms = now;
                if (slot->tokens < 1.0) {
                        refuse(t, TP_REFUSED_RATE, addr);
                        close(fd);
                        return;
                }
                slot->tokens -= 1.0;
        }
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        ssl = c ? SSL_new(t->ssl[which]) : NULL;
        if (!ssl) {
                free(c);
                close(fd);
                return;
        }
        c->t = t;
        c->listener = which;
        c->accepted_ms = now;
        snprintf(c->addr, sizeof(c->addr), "%s", addr);
        c->bev = bufferevent_openssl_socket_new(t->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
        c->timer = c->bev ? evtimer_new(t->base, on_timer, c) : NULL;
        if (!c->bev || !c->timer) {
                if (c->bev)
                        bufferevent_free(c->bev);
                else {
                        SSL_free(ssl);
                        close(fd);
                }
                free(c);
                return;
        }
        atomic_fetch_add(&t->stats.active[which], 1);
        c->all_next = t->all;
        if (t->all)
                t->all->all_prev = c;
        t->all = c;
        if (slot) {
                c->slot = slot;
                slot->active++;
        }
        c->state = C_HANDSHAKE;
        if (which == TP_FLEET)
                list_push(&t->handshaking, c);
        /* at most this much unread input per connection while a request is being handled */
        bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WATER);
        /* libevent moves 16 KiB per wakeup by default: a download would take a loop turn per record */
        (void) bufferevent_set_max_single_write(c->bev, 4 * FILE_CHUNK);
        (void) bufferevent_set_max_single_read(c->bev, FILE_CHUNK);
        bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        set_deadline(c, which == TP_ENROLL ? now + MIN(l->handshake_timeout_ms, l->enroll_timeout_ms)
                                           : now + l->handshake_timeout_ms);
}

static void on_resume(evutil_socket_t fd, short what, void *userdata) {
        transport *t = userdata;
        (void) fd;
        (void) what;
        for (int i = 0; i < _TP_LISTENER_MAX; i++)
                if (t->listener[i])
                        evconnlistener_enable(t->listener[i]);
}

static void on_accept_error(struct evconnlistener *lis, void *userdata) {
        transport *t = userdata;
        struct timeval tv = { .tv_usec = 100000 };
        int e = EVUTIL_SOCKET_ERROR();

        (void) lis;
        /* Out of descriptors: pause accepting for 100 ms instead of spinning on a ready listener. */
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                for (int i = 0; i < _TP_LISTENER_MAX; i++)
                        if (t->listener[i])
                                evconnlistener_disable(t->listener[i]);
                evtimer_add(t->resume_ev, &tv);
                refuse(t, TP_REFUSED_CAP, "(accept failed: out of file descriptors)");
        }
}

/* ---- setup ---- */

static int verify_cb(int ok, X509_STORE_CTX *ctx) {
        (void) ctx;
        return ok;
}

static int setup_tls(transport *t, enum tp_listener which) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        X509_STORE *st;

        if (!ctx)
                return crypto_fail(-ENOMEM, "SSL_CTX_new");
        t->ssl[which] = ctx;
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
        /* idle connections give their record buffers back: 10,000 held connections cost little */
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
                return crypto_fail(-EINVAL, "cipher list");
        if (SSL_CTX_use_certificate_chain_file(ctx, t->cfg.cert) != 1)
                return crypto_fail(-EINVAL, "server certificate");
        if (SSL_CTX_use_PrivateKey_file(ctx, t->cfg.key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)
                return crypto_fail(-EINVAL, "server key");
        if (which == TP_ENROLL) {
                /* INVARIANT: the enrollment port asks for no certificate and serves nothing but
                 * enrollment (the application's admit() enforces the route). */
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
                SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
                SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
                return 0;
        }
        st = SSL_CTX_get_cert_store(ctx);
        if (X509_STORE_add_cert(st, t->cfg.device_ca) != 1)
                return crypto_fail(-EINVAL, "device CA");
        if (t->cfg.operator_ca && X509_cmp(t->cfg.operator_ca, t->cfg.device_ca) != 0 &&
            X509_STORE_add_cert(st, t->cfg.operator_ca) != 1)
                return crypto_fail(-EINVAL, "operator CA");
        /* INVARIANT: no client certificate chaining to our CAs, no handshake, no HTTP. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE, verify_cb);
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
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                rc = negative_errno();
                freeaddrinfo(ai);
                return ringil_fail(rc, "cannot listen on '%s'", spec);
        }
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
                int r = negative_errno();
                freeaddrinfo(ai);
                close(fd);
                return ringil_fail(r, "cannot listen on '%s'", spec);
        }
        freeaddrinfo(ai);
        *ret_fd = fd;
        return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *userdata) {
        transport *t = userdata;
        (void) sig;
        (void) what;
        event_base_loopbreak(t->base);
}

static void on_stop(evutil_socket_t fd, short what, void *userdata) {
        uint64_t n;
        (void) what;
        (void) !read(fd, &n, sizeof(n));
        on_signal(0, 0, userdata);
}

static void queue_init(struct queue *q) {
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        q->head = q->tail = NULL;
}

int tp_new(const struct tp_config *cfg, transport **ret) {
        transport *t = calloc(1, sizeof(*t));
        pthread_attr_t attr;
        int r;

        if (!t)
                return -ENOMEM;
        t->cfg = *cfg;
        t->done_fd = t->stop_fd = -EBADF;
        queue_init(&t->jobs);
        queue_init(&t->done);
        if (t->cfg.limits.workers == 0)
                t->cfg.limits.workers = 1;
        t->base = event_base_new();
        if (!t->base) {
                tp_free(t);
                return -ENOMEM;
        }
        for (int i = 0; i < _TP_LISTENER_MAX; i++) {
                int fd = -EBADF;
                struct sockaddr_storage sa;
                socklen_t sl = sizeof(sa);
                char host[NI_MAXHOST], port[NI_MAXSERV];

                if (!cfg->listen[i])
                        continue;
                r = setup_tls(t, (enum tp_listener) i);
                if (r >= 0)
                        r = listen_on(cfg->listen[i], &fd);
                if (r < 0) {
                        tp_free(t);
                        return r;
                }
                if (getsockname(fd, (struct sockaddr *) &sa, &sl) < 0 ||
                    getnameinfo((struct sockaddr *) &sa, sl, host, sizeof(host), port, sizeof(port),
                                NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
                        close(fd);
                        tp_free(t);
                        return -EIO;
                }
                snprintf(t->address[i], sizeof(t->address[i]), "%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
                         strchr(host, ':') ? "]" : "", port);
                t->listener[i] = evconnlistener_new(t->base, on_accept, t, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                    -1, fd);
                if (!t->listener[i]) {
                        close(fd);
                        tp_free(t);
                        return -ENOMEM;
                }
                evconnlistener_set_error_cb(t->listener[i], on_accept_error);
        }
        t->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (t->done_fd < 0 || t->stop_fd < 0) {
                tp_free(t);
                return -EMFILE;
        }
        t->done_ev = event_new(t->base, t->done_fd, EV_READ | EV_PERSIST, on_done, t);
        t->stop_ev = event_new(t->base, t->stop_fd, EV_READ | EV_PERSIST, on_stop, t);
        t->resume_ev = evtimer_new(t->base, on_resume, t);
        t->sig_term = evsignal_new(t->base, SIGTERM, on_signal, t);
        t->sig_int = evsignal_new(t->base, SIGINT, on_signal, t);
        if (!t->done_ev || !t->stop_ev || !t->resume_ev || !t->sig_term || !t->sig_int ||
            event_add(t->done_ev, NULL) < 0 || event_add(t->stop_ev, NULL) < 0 || event_add(t->sig_term, NULL) < 0 ||
            event_add(t->sig_int, NULL) < 0) {
                tp_free(t);
                return -ENOMEM;
        }
        signal(SIGPIPE, SIG_IGN);

        t->workers = calloc(t->cfg.limits.workers, sizeof(pthread_t));
        if (!t->workers) {
                tp_free(t);
                return -ENOMEM;
        }
        pthread_attr_init(&attr);
        /* handlers keep no big buffers on the stack; a fixed pool means no per-request stack mmap */
        pthread_attr_setstacksize(&attr, 1u << 20);
        for (unsigned i = 0; i < t->cfg.limits.workers; i++) {
                if (pthread_create(&t->workers[i], &attr, worker_main, t) != 0) {
                        pthread_attr_destroy(&attr);
                        tp_free(t);
                        return -EAGAIN;
                }
                t->n_workers++;
        }
        pthread_attr_destroy(&attr);
        *ret = t;
        return 0;
}

int tp_address(transport *t, enum tp_listener l, char *buf, size_t n) {
        if (!t->listener[l])
                return -ENOENT;
        snprintf(buf, n, "%s", t->address[l]);
        return 0;
}

struct tp_stats *tp_get_stats(transport *t) {
        return &t->stats;
}

int tp_run(transport *t) {
        int r = event_base_dispatch(t->base);
        return r < 0 ? -EIO : 0;
}

void tp_stop(transport *t) {
        uint64_t one = 1;
        (void) !write(t->stop_fd, &one, sizeof(one));
}

static void stop_workers(transport *t) {
        pthread_mutex_lock(&t->jobs.lock);
        t->stopping = true;
        pthread_cond_broadcast(&t->jobs.cond);
        pthread_mutex_unlock(&t->jobs.lock);
        for (unsigned i = 0; i < t->n_workers; i++)
                pthread_join(t->workers[i], NULL);
        t->n_workers = 0;
}

void tp_free(transport *t) {
        struct conn *c;

        if (!t)
                return;
        /* Workers finish the handler they run (their answers are dropped with the connections);
         * queued jobs are not started: stopping is checked before a job is taken only when the queue
         * is empty, so drain it first. */
        pthread_mutex_lock(&t->jobs.lock);
        t->jobs.head = t->jobs.tail = NULL;
        pthread_mutex_unlock(&t->jobs.lock);
        stop_workers(t);
        free(t->workers);
        while ((c = t->all)) {
                c->state = C_IDLE;
                conn_free(c);
        }
        while (t->lingering)
                linger_free(t->lingering);
        for (int i = 0; i < _TP_LISTENER_MAX; i++) {
                if (t->listener[i])
                        evconnlistener_free(t->listener[i]);
                SSL_CTX_free(t->ssl[i]);
        }
        if (t->done_ev)
                event_free(t->done_ev);
        if (t->stop_ev)
                event_free(t->stop_ev);
        if (t->resume_ev)
                event_free(t->resume_ev);
        if (t->sig_term)
                event_free(t->sig_term);
        if (t->sig_int)
                event_free(t->sig_int);
        if (t->base)
                event_base_free(t->base);
        safe_close(t->done_fd);
        safe_close(t->stop_fd);
        pthread_mutex_destroy(&t->jobs.lock);
        pthread_cond_destroy(&t->jobs.cond);
        pthread_mutex_destroy(&t->done.lock);
        pthread_cond_destroy(&t->done.cond);
        free(t);
}
