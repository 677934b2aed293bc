/* fleet-fetch.c: parallel, ordered, checked range downloads of one bundle from a list of sources. */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"
#include "fleet-fetch.h"
#include "fleet-http.h"
#include "log.h"
#include "macro.h"

struct piece {
        uint64_t offset, len, got;   /* bundle bytes [offset, offset+len); got of them received */
        uint64_t handed;             /* of those, handed to the sink (the head piece only) */
        uint64_t total;              /* the bundle's length, which Content-Range must name */
        uint8_t *buf;                /* len bytes */
        long status;
        bool range_ok;               /* Content-Range named exactly the bytes asked for */
        bool whole;                  /* the source answered 200: it ignores Range */
        int error;                   /* answer refused: -RINGIL_EDIGEST (not our range) or -EPROTO */
        unsigned tries;              /* consecutive tries without progress */
        int slot;                    /* handle in flight, -1 none */
        size_t src;                  /* the source it was last asked of */
        bool done;
        fleet_fetch *f;
};

struct fleet_fetch {
        CURLM *multi;
        CURL *handles[FLEET_FETCH_MAX_PARALLEL];
        struct piece *owner[FLEET_FETCH_MAX_PARALLEL];   /* piece a busy handle fetches, NULL when free */
        signed char conf[FLEET_FETCH_MAX_PARALLEL];   /* a handle's TLS setup: -1 none, 0 server, 1 mirror */
        char *urls[FLEET_FETCH_MAX_URLS];
        bool bad[FLEET_FETCH_MAX_URLS];   /* sent wrong bytes: never asked again */
        size_t n_urls, url;          /* sources; the one in use */
        size_t delivering;           /* the source of the bytes being handed to the sink */
        struct fleet_fetch_opts o;
        struct fleet_fetch_stats stats;
};

void fleet_fetch_free(fleet_fetch *f) {
        if (!f)
                return;
        for (unsigned i = 0; i < FLEET_FETCH_MAX_PARALLEL; i++)
                if (f->handles[i]) {
                        if (f->owner[i])
                                curl_multi_remove_handle(f->multi, f->handles[i]);
                        curl_easy_cleanup(f->handles[i]);
                }
        if (f->multi)
                curl_multi_cleanup(f->multi);
        for (size_t i = 0; i < f->n_urls; i++)
                free(f->urls[i]);
        free(f);
}

const struct fleet_fetch_stats *fleet_fetch_stats(const fleet_fetch *f) {
        return &f->stats;
}

size_t fleet_fetch_delivering(const fleet_fetch *f) {
        return f->delivering;
}

bool fleet_fetch_has_source(const fleet_fetch *f) {
        return f->url < f->n_urls && !f->bad[f->url];
}

/* The next source not dropped, after the one in use; false when there is none. */
static bool next_source(fleet_fetch *f) {
        for (size_t u = f->url + 1; u < f->n_urls; u++)
                if (!f->bad[u]) {
                        f->url = u;
                        return true;
                }
        return false;
}

void fleet_fetch_drop_source(fleet_fetch *f, size_t i) {
        if (i >= f->n_urls)
                return;
        f->bad[i] = true;
        if (i == f->url && !next_source(f))
                f->url = f->n_urls;   /* none left: every later call fails at once */
}

/* Give handle slot the TLS identity of the source in use: a mirror never sees the drone's certificate. */
static void setup_handle(fleet_fetch *f, unsigned slot) {
        bool mirror = f->url < f->o.n_mirrors;
        CURL *c = f->handles[slot];

        if (f->conf[slot] == (signed char) mirror)
                return;
        if (f->conf[slot] >= 0)
                curl_easy_reset(c);   /* drop the other identity's settings (the certificate above all) */
        if (mirror)
                fleet_client_easy_setup_mirror(c, f->o.mirror_ca, f->o.timeout);
        else
                fleet_client_easy_setup(c, f->o.ca, f->o.cert, f->o.key, f->o.timeout);
        f->conf[slot] = (signed char) mirror;
}

int fleet_fetch_new(const struct fleet_fetch_opts *o, fleet_fetch **ret) {
        _cleanup_(fleet_fetch_freep) fleet_fetch *f = calloc(1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        if (!o->urls || !o->urls[0] || o->parallel == 0 || o->parallel > FLEET_FETCH_MAX_PARALLEL || o->size == 0)
                return -EINVAL;
        f->o = *o;
        f->o.urls = NULL;   /* copied below */

        for (const char *const *u = o->urls; *u; u++) {
                if (f->n_urls == FLEET_FETCH_MAX_URLS)
                        return ringil_fail(-E2BIG, "more than %u bundle sources", FLEET_FETCH_MAX_URLS);
                if (strncmp(*u, "https://", 8) != 0)
                        return ringil_fail(-EINVAL, "bundle source '%s' is not https://", *u);
                f->urls[f->n_urls] = strdup(*u);
                if (!f->urls[f->n_urls++])
                        return -ENOMEM;
        }
        f->multi = curl_multi_init();
        if (!f->multi)
                return -ENOMEM;
        for (unsigned i = 0; i < o->parallel; i++) {
                f->handles[i] = curl_easy_init();
                if (!f->handles[i])
                        return -ENOMEM;
                f->conf[i] = -1;   /* set up for its source when first used */
        }
        if (o->n_mirrors > f->n_urls)
                return -EINVAL;
        *ret = TAKE_PTR(f);
        return 0;
}

/* Content-Range of a 206 must be exactly the bytes asked for, out of exactly the bundle's length. */
static size_t header_cb(char *p, size_t size, size_t n, void *userdata) {
        struct piece *pc = userdata;
        size_t len = size * n;

        if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
                /* A new response (e.g. after a 100 Continue): judge its headers afresh. */
                pc->range_ok = false;
                pc->error = 0;
        } else if (len > 14 && strncasecmp(p, "Content-Range:", 14) == 0) {
                const char *s = p + 14;
                size_t vl = len - 14;
                uint64_t a, b, t;
                char v[128];

                while (vl > 0 && (*s == ' ' || *s == '\t')) {
                        s++;
                        vl--;
                }
                while (vl > 0 && (s[vl - 1] == '\r' || s[vl - 1] == '\n' || s[vl - 1] == ' '))
                        vl--;
                pc->range_ok = false;
                if (vl < sizeof(v)) {
                        memcpy(v, s, vl);
                        v[vl] = '\0';
                        pc->range_ok = http_parse_content_range(v, &a, &b, &t) >= 0 && a == pc->offset + pc->got &&
                                       b == pc->offset + pc->len - 1 && t == pc->total;
                }
                if (!pc->range_ok)
                        pc->error = -RINGIL_EDIGEST;
        }
        return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *userdata) {
        struct piece *pc = userdata;
        size_t len = size * n;

        (void) curl_easy_getinfo(pc->f->handles[pc->slot], CURLINFO_RESPONSE_CODE, &pc->status);
        /* INVARIANT: nothing is kept unless the source answered exactly the range asked (206, exact
         * Content-Range, no byte more); the installer then checks each chunk against its signed hash. */
        if (pc->status == 200) {
                pc->whole = true;
                return 0;
        }
        if (pc->status != 206) {
                pc->error = pc->error ? pc->error : -EPROTO;
                return 0;
        }
        if (!pc->range_ok || pc->got + len > pc->len) {
                pc->error = -RINGIL_EDIGEST;
                return 0;
        }
        memcpy(pc->buf + pc->got, p, len);
        pc->got += len;
        pc->f->stats.bytes += len;
        return len;
}

static int start(fleet_fetch *f, struct piece *pc) {
        char range[64];
        int slot = -1;

        for (unsigned i = 0; i < f->o.parallel && slot < 0; i++)
                if (!f->owner[i])
                        slot = (int) i;
        if (slot < 0)
                return -EBUSY;
        if (!fleet_fetch_has_source(f))
                return ringil_fail(-ENOENT, "no source of the bundle is left");
        setup_handle(f, (unsigned) slot);
        CURL *c = f->handles[slot];
        (void) snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, pc->offset + pc->got, pc->offset + pc->len - 1);
        pc->slot = slot;
        pc->src = f->url;
        pc->range_ok = false;
        pc->whole = false;
        pc->error = 0;
        pc->status = 0;
        curl_easy_setopt(c, CURLOPT_URL, f->urls[f->url]);
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, pc);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, pc);
        if (curl_multi_add_handle(f->multi, c) != CURLM_OK)
                return -ENOMEM;
        f->owner[slot] = pc;
        f->stats.requests++;
        return 0;
}

static void stop_all(fleet_fetch *f) {
        for (unsigned i = 0; i < f->o.parallel; i++)
                if (f->owner[i]) {
                        curl_multi_remove_handle(f->multi, f->handles[i]);
                        f->owner[i]->slot = -1;
                        f->owner[i] = NULL;
                }
}

static int curl_to_errno(CURLcode cc) {
        switch ((int) cc) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
                return -ECONNREFUSED;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
                return -EPROTO;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -ECONNRESET;
        }
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/*
 * A finished transfer: complete, to be tried again (cut off, a 5xx), or failed for good. Returns 0 to go
 * on, or the error that ends the fetch.
 */
static int finished(fleet_fetch *f, struct piece *pc, CURLcode cc, uint64_t got_before) {
        int r;

        if (cc == CURLE_OK && pc->status == 206 && pc->range_ok && pc->got == pc->len) {
                pc->done = true;
                return 0;
        }
        if (pc->whole) {
                log_debug("fetch: %s answers range requests with the whole bundle (no Range support)", f->urls[f->url]);
                r = -ERANGE;
        } else if (pc->error == -RINGIL_EDIGEST || (cc == CURLE_OK && pc->status == 206 && pc->got < pc->len))
                r = ringil_fail(-RINGIL_EDIGEST, "%s answered bytes %" PRIu64 "-%" PRIu64 " with another range or length",
                                f->urls[f->url], pc->offset, pc->offset + pc->len - 1);
        else if (cc == CURLE_OK || cc == CURLE_WRITE_ERROR) {
                r = pc->status == 404 || pc->status == 403
                            ? ringil_fail(-EACCES, "%s answered HTTP %ld to a range request", f->urls[f->url], pc->status)
                    : pc->status == 416 || pc->status == 401
                            ? ringil_fail(-EPROTO, "%s answered HTTP %ld to a range request", f->urls[f->url], pc->status)
                            : -EAGAIN;   /* 5xx, 429: try again */
        } else {
                r = curl_to_errno(cc);
                if (r == -EPROTO || r == -ENOMEM)
                        return ringil_fail(r, "fetching %s: %s", f->urls[f->url], curl_easy_strerror(cc));
                r = -EAGAIN;
        }
        if (r == -EAGAIN) {
                pc->tries = pc->got > got_before ? 0 : pc->tries + 1;
                f->stats.retries++;
                if (pc->tries <= FLEET_FETCH_TRIES) {
                        log_debug("fetch: bytes %" PRIu64 "-%" PRIu64 " cut at %" PRIu64 " (%s, HTTP %ld); again", pc->offset,
                                  pc->offset + pc->len - 1, pc->offset + pc->got, curl_easy_strerror(cc), pc->status);
                        sleep_ms(MIN(50u << MIN(pc->tries, 6u), 2000u));
                        return 1;
                }
                r = ringil_fail(cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNRESET,
                                "%s: bytes %" PRIu64 "-%" PRIu64 " failed %u times in a row (%s)", f->urls[f->url], pc->offset,
                                pc->offset + pc->len - 1, pc->tries, curl_easy_strerror(cc));
        }
        /* This source is no good for this piece: the next one, if any, gets every piece from now on (a
         * piece of an earlier source that fails after the switch does not move it again). */
        if (pc->src < f->url && fleet_fetch_has_source(f)) {
                pc->tries = 0;
                return 1;
        }
        if (next_source(f)) {
                log_debug("fetch: %s failed (%s); trying %s", f->urls[pc->src], ringil_detail(), f->urls[f->url]);
                pc->tries = 0;
                return 1;
        }
        return r;
}

int fleet_fetch_ranges(fleet_fetch *f, const struct fetch_range *r, size_t n, fleet_sink_t sink, void *userdata) {
        struct piece win[FLEET_FETCH_MAX_PARALLEL] = {};
        uint64_t got_before[FLEET_FETCH_MAX_PARALLEL] = {};
        size_t ri = 0;          /* next range to cut pieces from */
        uint64_t rpos = 0;      /* position inside it */
        uint64_t head = 0, next = 0;   /* pieces delivered; pieces made */
        unsigned P = f->o.parallel;
        int ret = 0;

        for (size_t i = 0; i < n; i++)
                if (r[i].len == 0 || r[i].offset > f->o.size || r[i].len > f->o.size - r[i].offset ||
                    (i > 0 && r[i].offset < r[i - 1].offset + r[i - 1].len))
                        return -EINVAL;
        for (unsigned i = 0; i < P; i++) {
                win[i].slot = -1;
                win[i].buf = malloc(FLEET_FETCH_PIECE);
                if (!win[i].buf) {
                        ret = -ENOMEM;
                        goto out;
                }
        }
        for (;;) {
                int running = 0, k;
                CURLMsg *msg;

                /* Fill the window: at most P pieces exist, each started as a handle frees up. */
                while (next < head + P && ri < n) {
                        struct piece *pc = &win[next % P];
                        uint64_t len = MIN((uint64_t) FLEET_FETCH_PIECE, r[ri].len - rpos);
                        uint8_t *buf = pc->buf;
                        *pc = (struct piece){ .offset = r[ri].offset + rpos, .len = len, .total = f->o.size, .buf = buf,
                                              .slot = -1, .f = f };
                        rpos += len;
                        if (rpos == r[ri].len) {
                                ri++;
                                rpos = 0;
                        }
                        next++;
                }
                for (uint64_t q = head; q < next; q++) {
                        struct piece *pc = &win[q % P];
                        if (!pc->done && pc->slot < 0) {
                                got_before[q % P] = pc->got;
                                if (start(f, pc) < 0)
                                        break;
                        }
                }
                /* Deliver in order, as soon as bytes are in order: the head piece's bytes so far too, so a
                 * fetch that fails for good has handed on everything before the cut. */
                while (head < next) {
                        struct piece *pc = &win[head % P];
                        if (pc->got > pc->handed) {
                                int sr;
                                f->delivering = pc->src;
                                sr = sink(userdata, pc->buf + pc->handed, (size_t) (pc->got - pc->handed));
                                if (sr < 0) {
                                        ret = sr == -EPIPE ? ringil_fail(-EPIPE, "the installer stopped reading") : sr;
                                        goto out;
                                }
                                f->stats.delivered += pc->got - pc->handed;
                                pc->handed = pc->got;
                        }
                        if (!pc->done)
                                break;
                        head++;
                }
                if (head == next && ri == n)
                        break;
                if (curl_multi_perform(f->multi, &running) != CURLM_OK ||
                    curl_multi_poll(f->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
                        ret = -EIO;
                        goto out;
                }
                while ((msg = curl_multi_info_read(f->multi, &k))) {
                        struct piece *pc = NULL;
                        int x;
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        for (unsigned i = 0; i < P; i++)
                                if (f->handles[i] == msg->easy_handle)
                                        pc = f->owner[i];
                        if (!pc)
                                continue;
                        (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &pc->status);
                        curl_multi_remove_handle(f->multi, msg->easy_handle);
                        f->owner[pc->slot] = NULL;
                        pc->slot = -1;
                        x = finished(f, pc, msg->data.result, got_before[(size_t) (pc - win)]);
                        if (x < 0) {
                                ret = x;
                                goto out;
                        }
                }
        }
out:
        stop_all(f);
        for (unsigned i = 0; i < P; i++)
                free(win[i].buf);
        return ret;
}

struct all_ctx {
        fleet_fetch *f;
        fleet_sink_t sink;
        void *userdata;
        uint64_t pos, delivered;   /* bytes of this answer; bytes already handed on */
        long status;
        int error;
        int sink_error;            /* the sink refused: ends the call with its error */
};

static size_t all_write_cb(char *p, size_t size, size_t n, void *userdata) {
        struct all_ctx *a = userdata;
        size_t len = size * n, skip;

        (void) curl_easy_getinfo(a->f->handles[0], CURLINFO_RESPONSE_CODE, &a->status);
        if (a->status != 200) {
                a->error = -EPROTO;
                return 0;
        }
        if (a->pos + len > a->f->o.size) {
                a->error = -RINGIL_EDIGEST;   /* longer than the bundle: not it */
                return 0;
        }
        a->f->stats.bytes += len;
        /* Bytes an earlier, cut answer already handed on are dropped. */
        skip = a->delivered > a->pos ? (size_t) MIN((uint64_t) len, a->delivered - a->pos) : 0;
        if (len > skip) {
                int k = a->sink(a->userdata, p + skip, len - skip);
                if (k < 0) {
                        a->sink_error = k;
                        return 0;
                }
        }
        a->pos += len;
        if (a->pos > a->delivered) {
                a->f->stats.delivered += a->pos - a->delivered;
                a->delivered = a->pos;
        }
        return len;
}

int fleet_fetch_all(fleet_fetch *f, fleet_sink_t sink, void *userdata) {
        struct all_ctx a = { .f = f, .sink = sink, .userdata = userdata };
        CURL *c = f->handles[0];
        unsigned tries = 0;

        for (;;) {
                uint64_t before = a.delivered;
                CURLcode cc;

                if (!fleet_fetch_has_source(f))
                        return ringil_fail(-ENOENT, "no source of the bundle is left");
                setup_handle(f, 0);
                f->delivering = f->url;
                a.pos = 0;
                a.error = 0;
                a.status = 0;
                curl_easy_setopt(c, CURLOPT_URL, f->urls[f->url]);
                curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
                curl_easy_setopt(c, CURLOPT_RANGE, NULL);
                /* Both header options go: with HEADERDATA still set, libcurl would hand the headers to
                 * all_write_cb with the range fetch's (gone) piece as its userdata. */
                curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, NULL);
                curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, all_write_cb);
                curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
                f->stats.requests++;
                cc = curl_easy_perform(c);
                if (cc == CURLE_OK && a.status == 200 && a.pos == f->o.size)
                        return 0;
                if (a.sink_error < 0)
                        return a.sink_error == -EPIPE ? ringil_fail(-EPIPE, "the installer stopped reading") : a.sink_error;
                if (a.error == -RINGIL_EDIGEST || (cc == CURLE_OK && a.status == 200) || cc == CURLE_OK ||
                    curl_to_errno(cc) == -EPROTO) {
                        /* not the bundle, or refused: this source is no good; the next one, if any */
                        int r = a.error == -RINGIL_EDIGEST || (cc == CURLE_OK && a.status == 200)
                                        ? ringil_fail(-RINGIL_EDIGEST, "%s sent %" PRIu64 " bytes, the bundle has %" PRIu64,
                                                      f->urls[f->url], a.pos, f->o.size)
                                        : ringil_fail(a.status == 403 || a.status == 404 ? -EACCES : -EPROTO,
                                                      "%s: HTTP %ld (%s)", f->urls[f->url], a.status, curl_easy_strerror(cc));
                        if (next_source(f)) {
                                tries = 0;
                                continue;
                        }
                        return r;
                }
                tries = a.delivered > before ? 0 : tries + 1;
                f->stats.retries++;
                if (tries > FLEET_FETCH_TRIES) {
                        if (next_source(f)) {
                                tries = 0;
                                continue;
                        }
                        return ringil_fail(curl_to_errno(cc), "%s: download failed %u times in a row (%s)", f->urls[f->url],
                                           tries, curl_easy_strerror(cc));
                }
                sleep_ms(MIN(50u << MIN(tries, 6u), 2000u));
        }
}
