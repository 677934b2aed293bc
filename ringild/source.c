/* source.c: a bundle's bytes from its sources (mirrors first, then the server), checked unit by unit before they are handed on. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "crypto.h"
#include "err.h"
#include "fleet-fetch.h"
#include "log.h"
#include "macro.h"
#include "source.h"

/* A checked piece of the bundle: the metadata, or one payload chunk. */
struct unit {
        uint64_t off, len;
        uint8_t sha256[SHA256_LEN];
};

struct source {
        fleet_fetch *ff;
        char *urls[FLEET_FETCH_MAX_URLS + 1];
        size_t n_urls, n_mirrors;
        uint64_t size;
        bool checked;          /* the metadata hash is known: every unit is checked */
        struct unit *units;    /* units[0] is the metadata; the chunks follow once it was checked */
        size_t n_units;
        bool layout;           /* the chunks are known */
        uint8_t *meta;         /* the checked metadata, once layout */
        uint8_t *buf;          /* the unit being put together */
        size_t buf_cap;
        struct source_stats st;
};

#define META_MAX ((uint64_t) BUNDLE_HEADER_SIZE + BUNDLE_MAX_MANIFEST + BUNDLE_MAX_SIGNATURE)

void source_free(source *s) {
        if (!s)
                return;
        fleet_fetch_free(s->ff);
        for (size_t i = 0; i < s->n_urls; i++)
                free(s->urls[i]);
        free(s->units);
        free(s->meta);
        free(s->buf);
        free(s);
}

static int add_url(source *s, const char *base, const char *path) {
        if (s->n_urls == FLEET_FETCH_MAX_URLS)
                return 0;   /* the list is full: the rest is not used */
        if (asprintf(&s->urls[s->n_urls], "%s%s", base, path) < 0)
                return -ENOMEM;
        s->n_urls++;
        return 0;
}

int source_new(const struct agent_config *c, fleet_client *server, const struct fleet_assignment *as, source **ret) {
        _cleanup_(source_freep) source *s = calloc(1, sizeof(*s));
        const char *bases[FLEET_CLIENT_MAX_SERVERS];
        char path[96];
        size_t n;
        int r;

        if (!s)
                return -ENOMEM;
        s->size = as->size;
        s->checked = as->meta_size > 0 && as->meta_size <= MIN(as->size, META_MAX) && as->meta_sha256[0];
        if (s->checked) {
                s->units = calloc(1, sizeof(*s->units));
                if (!s->units)
                        return -ENOMEM;
                if (hex_decode(as->meta_sha256, s->units[0].sha256, SHA256_LEN) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "assignment's meta_sha256 is not hex");
                s->units[0].len = as->meta_size;
                s->n_units = 1;
                /* Mirrors only when what they serve can be checked. */
                for (size_t i = 0; i < as->n_mirrors && i < FLEET_MIRRORS_MAX; i++) {
                        r = add_url(s, as->mirrors[i], "");
                        if (r < 0)
                                return r;
                }
                s->n_mirrors = s->n_urls;
        }
        /* then the server's replicas, the one in use first */
        snprintf(path, sizeof(path), "/api/v1/releases/%" PRId64 "/bundle", as->release);
        n = fleet_client_servers(server, bases, ELEMENTSOF(bases));
        for (size_t i = 0; i < n; i++) {
                r = add_url(s, bases[i], path);
                if (r < 0)
                        return r;
        }
        r = fleet_fetch_new(&(struct fleet_fetch_opts){ .urls = (const char *const *) s->urls, .ca = c->ca,
                                                         .cert = c->cert, .key = c->key, .n_mirrors = s->n_mirrors,
                                                         .mirror_ca = c->mirror_ca, .timeout = c->timeout,
                                                         .parallel = c->fetch_parallel, .size = as->size },
                            &s->ff);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

uint64_t source_received(const source *s) {
        return fleet_fetch_stats(s->ff)->bytes;
}

void source_stats(const source *s, struct source_stats *ret) {
        *ret = s->st;
        ret->received = fleet_fetch_stats(s->ff)->bytes;
}

static void manifest_freep(struct bundle_manifest **m) {
        if (*m)
                bundle_manifest_free(*m);
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/*
 * The checked metadata → the chunks. Its bytes matched the hash the server gave, so they are the
 * server's claim; the engine still verifies the signature over them before it writes anything.
 */
static int build_layout(source *s, const uint8_t *meta, uint64_t len) {
        _cleanup_(manifest_freep) struct bundle_manifest *m = NULL;
        uint64_t off = len, n = 1;
        uint32_t mlen;
        struct unit *u;
        int r;

        if (len < BUNDLE_HEADER_SIZE || memcmp(meta, "RINGILB\n", 8) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "the bundle's metadata does not start with a bundle header");
        mlen = be32(meta + 16);
        if ((uint64_t) BUNDLE_HEADER_SIZE + mlen + be32(meta + 20) != len)
                return ringil_fail(-RINGIL_EMALFORMED, "the bundle's header does not match its metadata size");
        r = bundle_manifest_parse(meta + BUNDLE_HEADER_SIZE, mlen, &m);
        if (r < 0)
                return r;
        for (size_t p = 0; p < m->n_payloads; p++)
                n += m->payloads[p].n_chunks;
        u = realloc(s->units, n * sizeof(*u));
        if (!u)
                return -ENOMEM;
        s->units = u;
        n = 1;
        for (size_t p = 0; p < m->n_payloads; p++) {
                const struct bundle_payload *pl = &m->payloads[p];
                for (uint64_t i = 0; i < pl->n_chunks; i++) {
                        u[n] = (struct unit) { .off = off + bundle_chunk_start(pl, i), .len = bundle_chunk_len(pl, i) };
                        memcpy(u[n].sha256, pl->chunk_sha256[i], SHA256_LEN);
                        n++;
                }
                off += pl->size;
        }
        if (off != s->size)
                return ringil_fail(-RINGIL_EMALFORMED, "the bundle's metadata describes %" PRIu64 " bytes, the assignment "
                                   "%" PRIu64, off, s->size);
        s->meta = malloc(len);
        if (!s->meta)
                return -ENOMEM;
        memcpy(s->meta, meta, len);
        s->n_units = n;
        s->layout = true;
        return 0;
}

/* The unit that holds byte off (units are in order and cover the bundle once the layout is known). */
static size_t unit_of(const source *s, uint64_t off) {
        size_t lo = 0, hi = s->n_units;

        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->units[mid].off <= off)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

static uint64_t unit_end(const source *s, size_t u) {
        return s->units[u].off + s->units[u].len;
}

/* Bytes on their way: the ranges fetched (whole units), checked unit by unit, the ranges asked for handed on. */
struct check {
        source *s;
        const struct fetch_range *want;   /* to hand on */
        size_t n_want, iw;
        const struct fetch_range *got;    /* being fetched: whole units */
        size_t n_got, ig;
        uint64_t pos;                     /* bundle offset of the next byte to arrive */
        size_t unit;                      /* being filled */
        uint64_t have;                    /* its bytes so far */
        fleet_sink_t sink;
        void *userdata;
        uint64_t handed_to;               /* every byte asked for below this was handed on */
        bool wrong;                       /* a unit did not match its hash */
};

static int hand_on(struct check *k, const uint8_t *unit_bytes, uint64_t u_off, uint64_t u_end) {
        source *s = k->s;

        while (k->iw < k->n_want) {
                const struct fetch_range *w = &k->want[k->iw];
                uint64_t a = MAX(w->offset, u_off), b = MIN(w->offset + w->len, u_end);
                if (w->offset >= u_end)
                        break;
                if (a < b) {
                        int r = k->sink(k->userdata, unit_bytes + (a - u_off), (size_t) (b - a));
                        if (r < 0)
                                return r;
                        if (fleet_fetch_delivering(s->ff) < s->n_mirrors)
                                s->st.from_mirrors += b - a;
                        else
                                s->st.from_server += b - a;
                        k->handed_to = b;
                }
                if (w->offset + w->len > u_end)
                        break;
                k->iw++;
        }
        return 0;
}

static int check_write(void *userdata, const void *p, size_t n) {
        struct check *k = userdata;
        source *s = k->s;
        const uint8_t *b = p;

        while (n > 0) {
                const struct unit *u;
                uint8_t digest[SHA256_LEN];
                uint64_t len, off;
                size_t take;
                int r;

                if (k->pos == k->got[k->ig].offset + k->got[k->ig].len) {
                        if (++k->ig == k->n_got)
                                return ringil_fail(-EFBIG, "more bytes than the ranges asked for");
                        k->pos = k->got[k->ig].offset;
                        k->unit = unit_of(s, k->pos);
                        k->have = 0;
                }
                u = &s->units[k->unit];
                if (u->len > s->buf_cap) {
                        uint8_t *nb = realloc(s->buf, u->len);
                        if (!nb)
                                return -ENOMEM;
                        s->buf = nb;
                        s->buf_cap = u->len;
                }
                take = (size_t) MIN((uint64_t) n, u->len - k->have);
                memcpy(s->buf + k->have, b, take);
                k->have += take;
                k->pos += take;
                b += take;
                n -= take;
                if (k->have < u->len)
                        break;
                /* INVARIANT: no byte is handed on before the whole unit it belongs to matched its hash. */
                r = crypto_sha256(s->buf, u->len, digest);
                if (r < 0)
                        return r;
                if (crypto_memcmp(digest, u->sha256, SHA256_LEN) != 0) {
                        k->wrong = true;
                        s->st.refused++;
                        return ringil_fail(-RINGIL_EDIGEST, "bytes %" PRIu64 "-%" PRIu64 " do not match their %s hash", u->off,
                                           u->off + u->len - 1, k->unit == 0 ? "metadata" : "chunk");
                }
                len = u->len;
                off = u->off;
                if (k->unit == 0 && !s->layout) {
                        r = build_layout(s, s->buf, len);   /* moves s->units: u is not used after this */
                        if (r < 0)
                                return r;
                }
                r = hand_on(k, s->buf, off, off + len);
                if (r < 0)
                        return r;
                k->unit++;
                k->have = 0;
        }
        return 0;
}

/* After wrong bytes: that source is not asked again; false when none is left. */
static bool drop_delivering(source *s) {
        size_t i = fleet_fetch_delivering(s->ff);

        log_warning("%s served bytes that do not match the release (%s): not used again for it",
                    i < s->n_mirrors ? "a mirror" : "the server", ringil_detail());
        fleet_fetch_drop_source(s->ff, i);
        return fleet_fetch_has_source(s->ff);
}

static int discard(void *userdata, const void *p, size_t n) {
        (void) userdata;
        (void) p;
        (void) n;
        return 0;
}

/* The metadata, checked, for the chunks' places. */
static int ensure_layout(source *s) {
        const struct fetch_range meta = { 0, s->units[0].len };

        while (!s->layout) {
                struct check k = { .s = s, .want = &meta, .n_want = 1, .got = &meta, .n_got = 1, .sink = discard };
                int r = fleet_fetch_ranges(s->ff, &meta, 1, check_write, &k);
                if (r >= 0 && !s->layout)
                        r = ringil_fail(-EPROTO, "no source gave the bundle's metadata");
                if (r < 0 && !(k.wrong && drop_delivering(s)))
                        return r;
        }
        return 0;
}

/* Count what the server alone sent (no checks possible). */
struct counted {
        source *s;
        fleet_sink_t sink;
        void *userdata;
        uint64_t skip;   /* bytes still to drop (source_all from an offset) */
};

static int count_write(void *userdata, const void *p, size_t n) {
        struct counted *c = userdata;
        size_t drop = (size_t) MIN((uint64_t) n, c->skip);

        c->skip -= drop;
        if (n == drop)
                return 0;
        c->s->st.from_server += n - drop;
        return c->sink(c->userdata, (const uint8_t *) p + drop, n - drop);
}

int source_ranges(source *s, const struct fetch_range *r, size_t n, fleet_sink_t sink, void *userdata) {
        _cleanup_free_ struct fetch_range *want = NULL, *got = NULL;
        uint64_t done = 0;
        int k;

        if (n == 0)
                return 0;
        if (!s->checked)
                return fleet_fetch_ranges(s->ff, r, n, count_write, &(struct counted){ .s = s, .sink = sink, .userdata = userdata });
        k = ensure_layout(s);
        if (k < 0)
                return k;
        want = calloc(n, sizeof(*want));
        got = calloc(n, sizeof(*got));
        if (!want || !got)
                return -ENOMEM;
        for (;;) {
                size_t nw = 0, ng = 0;
                struct check c;

                /* what is still to hand on: the ranges from `done` on */
                for (size_t i = 0; i < n; i++) {
                        uint64_t a = MAX(r[i].offset, done), e = r[i].offset + r[i].len;
                        if (a < e)
                                want[nw++] = (struct fetch_range) { a, e - a };
                }
                /* the metadata's bytes come from memory (checked once) */
                while (nw > 0 && want[0].offset < s->units[0].len) {
                        uint64_t e = MIN(want[0].offset + want[0].len, s->units[0].len);
                        k = sink(userdata, s->meta + want[0].offset, (size_t) (e - want[0].offset));
                        if (k < 0)
                                return k;
                        done = e;
                        if (e == want[0].offset + want[0].len) {
                                memmove(want, want + 1, --nw * sizeof(*want));
                        } else {
                                want[0].len -= e - want[0].offset;
                                want[0].offset = e;
                        }
                }
                if (nw == 0)
                        return 0;
                /* widened to whole units, overlaps merged */
                for (size_t i = 0; i < nw; i++) {
                        uint64_t a = s->units[unit_of(s, want[i].offset)].off;
                        uint64_t e = unit_end(s, unit_of(s, want[i].offset + want[i].len - 1));
                        if (ng > 0 && a <= got[ng - 1].offset + got[ng - 1].len)
                                got[ng - 1].len = MAX(got[ng - 1].offset + got[ng - 1].len, e) - got[ng - 1].offset;
                        else
                                got[ng++] = (struct fetch_range) { a, e - a };
                }
                c = (struct check) { .s = s, .want = want, .n_want = nw, .got = got, .n_got = ng, .pos = got[0].offset,
                                     .unit = unit_of(s, got[0].offset), .sink = sink, .userdata = userdata,
                                     .handed_to = done };
                k = fleet_fetch_ranges(s->ff, got, ng, check_write, &c);
                done = c.handed_to;
                if (k >= 0)
                        return 0;
                if (!c.wrong || !drop_delivering(s))
                        return k;
        }
}

int source_all(source *s, uint64_t from, fleet_sink_t sink, void *userdata) {
        const struct fetch_range all = { 0, s->size };

        if (!s->checked)
                return fleet_fetch_all(s->ff, count_write,
                                       &(struct counted){ .s = s, .sink = sink, .userdata = userdata, .skip = from });
        for (;;) {
                struct fetch_range want = { from, s->size - from };
                struct check c = { .s = s, .want = &want, .n_want = from < s->size, .got = &all, .n_got = 1, .sink = sink,
                                   .userdata = userdata, .handed_to = from };
                int k;

                if (from >= s->size)
                        return 0;
                k = fleet_fetch_all(s->ff, check_write, &c);
                from = MAX(from, c.handed_to);
                if (k >= 0)
                        return 0;
                if (!c.wrong || !drop_delivering(s))
                        return k;
        }
}
