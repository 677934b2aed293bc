/* fetch.c: a bundle's bytes from its sources (mirrors first, then the server), checked unit by unit before they are handed on. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "crypto.h"
#include "err.h"
#include "fetch.h"
#include "log.h"
#include "macro.h"

struct source {
        fleet_client *fc;      /* a mirror's own client; the server's is borrowed */
        const char *path;      /* "" for a mirror (its URL names the file), the bundle route for the server */
        char name[FLEET_URL_MAX + 1];
        bool server;
        bool bad;              /* served wrong bytes: not asked again for this bundle */
        bool announced;        /* its first use was logged */
};

/* A checked piece of the bundle: the metadata, or one payload chunk. */
struct unit {
        uint64_t off, len;
        uint8_t sha256[SHA256_LEN];
};

struct fetcher {
        struct source src[FLEET_MIRRORS_MAX + 1];
        size_t n, cur;
        char server_path[96];
        uint64_t size;
        bool checked;          /* the metadata hash is known: every unit is checked */
        struct unit *units;    /* units[0] is the metadata; the chunks follow once it was checked */
        size_t n_units;
        bool layout;           /* the chunks are known */
        uint8_t *buf;          /* the unit being put together */
        size_t buf_cap;
        uint64_t from_mirrors, from_server;
        unsigned refused;
};

#define META_MAX ((uint64_t) BUNDLE_HEADER_SIZE + BUNDLE_MAX_MANIFEST + BUNDLE_MAX_SIGNATURE)

void fetcher_free(fetcher *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->n; i++)
                if (!f->src[i].server)
                        fleet_client_free(f->src[i].fc);
        free(f->units);
        free(f->buf);
        free(f);
}

int fetcher_new(const struct agent_config *c, fleet_client *server, const struct fleet_assignment *as, fetcher **ret) {
        fetcher *f = calloc(1, sizeof(*f));
        int r;

        if (!f)
                return -ENOMEM;
        f->size = as->size;
        f->checked = as->meta_size > 0 && as->meta_size <= MIN(as->size, META_MAX) && as->meta_sha256[0];
        snprintf(f->server_path, sizeof(f->server_path), "/api/v1/releases/%" PRId64 "/bundle", as->release);
        if (f->checked) {
                f->units = calloc(1, sizeof(*f->units));
                if (!f->units) {
                        fetcher_free(f);
                        return -ENOMEM;
                }
                if (hex_decode(as->meta_sha256, f->units[0].sha256, SHA256_LEN) < 0) {
                        fetcher_free(f);
                        return ringil_fail(-RINGIL_EMALFORMED, "assignment's meta_sha256 is not hex");
                }
                f->units[0].len = as->meta_size;
                f->n_units = 1;
                /* Mirrors only when what they serve can be checked. */
                for (size_t i = 0; i < as->n_mirrors && i < FLEET_MIRRORS_MAX; i++) {
                        struct source *s = &f->src[f->n];
                        r = fleet_client_new_mirror(as->mirrors[i], c->mirror_ca, c->timeout, &s->fc);
                        if (r < 0) {
                                log_warning_errno(r, "Mirror %s not used: %s", as->mirrors[i], ringil_detail());
                                continue;
                        }
                        s->path = "";
                        snprintf(s->name, sizeof(s->name), "mirror %s", as->mirrors[i]);
                        f->n++;
                }
        }
        f->src[f->n] = (struct source) { .fc = server, .path = f->server_path, .server = true };
        snprintf(f->src[f->n].name, sizeof(f->src[f->n].name), "the server");
        f->n++;
        *ret = f;
        return 0;
}

void fetcher_stats(const fetcher *f, uint64_t *ret_mirrors, uint64_t *ret_server, unsigned *ret_refused) {
        *ret_mirrors = f->from_mirrors;
        *ret_server = f->from_server;
        *ret_refused = f->refused;
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
static int build_layout(fetcher *f, const uint8_t *meta, uint64_t len) {
        _cleanup_(manifest_freep) struct bundle_manifest *m = NULL;
        uint64_t off = len, n = 1;
        uint32_t mlen;
        struct unit *u;
        int r;

        if (len < BUNDLE_HEADER_SIZE || memcmp(meta, "RINGILB\n", 8) != 0 || be32(meta + 8) != BUNDLE_FORMAT)
                return ringil_fail(-RINGIL_EMALFORMED, "the bundle's metadata does not start with a bundle header");
        mlen = be32(meta + 16);
        if ((uint64_t) BUNDLE_HEADER_SIZE + mlen + be32(meta + 20) != len)
                return ringil_fail(-RINGIL_EMALFORMED, "the bundle's header does not match its metadata size");
        r = bundle_manifest_parse(meta + BUNDLE_HEADER_SIZE, mlen, &m);
        if (r < 0)
                return r;
        for (size_t p = 0; p < m->n_payloads; p++)
                n += m->payloads[p].n_chunks;
        u = realloc(f->units, n * sizeof(*u));
        if (!u)
                return -ENOMEM;
        f->units = u;
        n = 1;
        for (size_t p = 0; p < m->n_payloads; p++) {
                const struct bundle_payload *pl = &m->payloads[p];
                for (uint64_t i = 0; i < pl->n_chunks; i++) {
                        u[n] = (struct unit) { .off = off + i * pl->chunk_size,
                                               .len = MIN((uint64_t) pl->chunk_size, pl->size - i * pl->chunk_size) };
                        memcpy(u[n].sha256, pl->chunk_sha256[i], SHA256_LEN);
                        n++;
                }
                off += pl->size;
        }
        if (off != f->size)
                return ringil_fail(-RINGIL_EMALFORMED, "the bundle's metadata describes %" PRIu64 " bytes, the assignment "
                                   "%" PRIu64, off, f->size);
        f->n_units = n;
        f->layout = true;
        return 0;
}

/* The unit that starts at off (binary search: units are in order). */
static int unit_at(const fetcher *f, uint64_t off, size_t *ret) {
        size_t lo = 0, hi = f->n_units;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (f->units[mid].off < off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == f->n_units || f->units[lo].off != off)
                return -EINVAL;
        *ret = lo;
        return 0;
}

struct assembly {
        fetcher *f;
        size_t unit;           /* being filled */
        uint64_t have;         /* its bytes so far */
        size_t end;            /* one past the last unit asked for */
        bool deliver;          /* false: the metadata is fetched for its layout only */
        fleet_sink_t sink;
        void *userdata;
        uint64_t delivered;
        bool wrong;            /* a unit did not match its hash */
        int sink_error;        /* the outer sink refused */
};

static int assemble(void *userdata, const void *p, size_t n) {
        struct assembly *a = userdata;
        fetcher *f = a->f;
        const uint8_t *b = p;

        while (n > 0) {
                const struct unit *u;
                uint8_t digest[SHA256_LEN];
                uint64_t len;
                size_t take;
                int r;

                if (a->unit >= a->end)
                        return ringil_fail(-EFBIG, "more bytes than the units asked for");
                u = &f->units[a->unit];
                if (u->len > f->buf_cap) {
                        uint8_t *nb = realloc(f->buf, u->len);
                        if (!nb)
                                return -ENOMEM;
                        f->buf = nb;
                        f->buf_cap = u->len;
                }
                take = (size_t) MIN((uint64_t) n, u->len - a->have);
                memcpy(f->buf + a->have, b, take);
                a->have += take;
                b += take;
                n -= take;
                if (a->have < u->len)
                        break;
                /* INVARIANT: no byte is handed on before the whole unit matched its hash. */
                r = crypto_sha256(f->buf, u->len, digest);
                if (r < 0)
                        return r;
                if (crypto_memcmp(digest, u->sha256, SHA256_LEN) != 0) {
                        a->wrong = true;
                        return ringil_fail(-RINGIL_EDIGEST, "bytes %" PRIu64 "-%" PRIu64 " do not match their %s hash",
                                           u->off, u->off + u->len - 1, a->unit == 0 ? "metadata" : "chunk");
                }
                len = u->len;
                if (a->unit == 0 && !f->layout) {
                        r = build_layout(f, f->buf, len);   /* moves f->units: u is not used after this */
                        if (r < 0)
                                return r;
                        a->end = MIN(a->end, f->n_units);
                }
                if (a->deliver) {
                        r = a->sink(a->userdata, f->buf, len);
                        if (r < 0) {
                                a->sink_error = r;
                                return r;
                        }
                        a->delivered += len;
                }
                a->unit++;
                a->have = 0;
        }
        return 0;
}

/*
 * Units [first, end) from the sources, starting with the one in use. Returns the bytes handed on, or
 * the error of the last source tried when none gave a whole unit.
 */
static int64_t fetch_units(fetcher *f, size_t first, size_t end, bool deliver, fleet_sink_t sink, void *userdata) {
        uint64_t off = f->units[first].off, len = f->units[end - 1].off + f->units[end - 1].len - off;
        int64_t r = -ENOENT;

        for (size_t tried = 0; tried < f->n; tried++, f->cur = (f->cur + 1) % f->n) {
                struct source *s = &f->src[f->cur];
                struct assembly a = { .f = f, .unit = first, .end = end, .deliver = deliver, .sink = sink,
                                      .userdata = userdata };
                long status = 0;

                if (s->bad)
                        continue;
                if (!s->announced && deliver) {
                        log_info("fetching from %s", s->name);
                        s->announced = true;
                }
                r = fleet_client_get_range(s->fc, s->path, off, len, assemble, &a, &status);
                if (s->server)
                        f->from_server += a.delivered;
                else
                        f->from_mirrors += a.delivered;
                if (a.sink_error < 0)
                        return a.sink_error;   /* the engine stopped taking bytes: nothing to retry */
                if (a.wrong) {
                        /* the source is wrong, not the bundle: the next source gives the right bytes */
                        f->refused++;
                        s->bad = true;
                        log_warning("%s served bytes that do not match the release (%s): not used again for it", s->name,
                                    ringil_detail());
                }
                if (a.delivered > 0 || (!deliver && a.unit > first)) {
                        if (a.wrong || r < 0)
                                f->cur = (f->cur + 1) % f->n;   /* cut or wrong after some units: the next one next */
                        return deliver ? (int64_t) a.delivered : 0;
                }
                if (s->server && r < 0 && (status == 403 || status == 404))
                        return ringil_fail(-EACCES, "the server no longer serves release bytes to this drone (HTTP %ld)",
                                           status);
                if (!a.wrong)
                        log_debug("%s gave nothing at byte %" PRIu64 " (HTTP %ld): %s", s->name, off, status,
                                  ringil_detail());
                if (r >= 0)
                        r = -EPROTO;
        }
        return r;
}

int64_t fetcher_read(fetcher *f, uint64_t offset, uint64_t max_len, fleet_sink_t sink, void *userdata) {
        size_t first, end;
        uint64_t total = 0;
        int64_t r;

        if (max_len == 0 || offset >= f->size)
                return 0;
        if (!f->checked) {
                /* nothing to check against: the server only, bytes as they come (the engine checks them) */
                long status = 0;
                struct source *s = &f->src[f->n - 1];
                r = fleet_client_get_range(s->fc, s->path, offset, MIN(max_len, f->size - offset), sink, userdata, &status);
                if (r > 0)
                        f->from_server += (uint64_t) r;
                if (r < 0 && (status == 403 || status == 404))
                        return ringil_fail(-EACCES, "the server no longer serves release bytes to this drone (HTTP %ld)",
                                           status);
                return r;
        }
        if (offset > 0 && !f->layout) {
                /* resuming in a new fetcher: the metadata again, for the chunks' places (not handed on) */
                r = fetch_units(f, 0, 1, false, NULL, NULL);
                if (r < 0)
                        return r;
                if (!f->layout)
                        return ringil_fail(-EPROTO, "no source gave the bundle's metadata");
        }
        if (unit_at(f, offset, &first) < 0)
                return ringil_fail(-EINVAL, "byte %" PRIu64 " is not where a checked unit starts", offset);
        /* as many whole units as fit in max_len, at least one (before the layout: the metadata) */
        end = first + 1;
        total = f->units[first].len;
        while (f->layout && end < f->n_units && total + f->units[end].len <= max_len) {
                total += f->units[end].len;
                end++;
        }
        if (!f->layout) {
                /* the metadata, then (same request) as much as max_len allows: the chunks' places are
                 * learnt as soon as the metadata is checked */
                r = fetch_units(f, 0, 1, true, sink, userdata);
                return r;
        }
        return fetch_units(f, first, end, true, sink, userdata);
}

int fetcher_resume_at(fetcher *f, uint64_t have, uint64_t *ret) {
        size_t lo = 0, hi;
        int64_t r;

        if (!f->checked || have == 0 || have >= f->size) {
                *ret = MIN(have, f->size);
                return 0;
        }
        if (!f->layout) {
                r = fetch_units(f, 0, 1, false, NULL, NULL);
                if (r < 0)
                        return (int) r;
                if (!f->layout)
                        return ringil_fail(-EPROTO, "no source gave the bundle's metadata");
        }
        /* the last unit that starts at or before have */
        hi = f->n_units;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (f->units[mid].off <= have)
                        lo = mid;
                else
                        hi = mid;
        }
        *ret = f->units[lo].off;
        return 0;
}
