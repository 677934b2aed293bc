/* audit-parse.c: capped parsers for passwd/shadow, loader.conf, INI, udev data, /proc/net, LUKS2. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "audit-parse.h"
#include "crypto.h"
#include "err.h"
#include "macro.h"
#include "parse.h"

void kvlist_free(struct kvlist *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].key);
                free(l->v[i].value);
        }
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

int kvlist_add(struct kvlist *l, const char *key, const char *value) {
        struct kv *nv;

        if (l->n >= AUDIT_RECORDS_MAX * 4)
                return ringil_fail(-RINGIL_ETOOBIG, "too many entries");
        nv = reallocarray(l->v, l->n + 1, sizeof(*nv));
        if (!nv)
                return -ENOMEM;
        l->v = nv;
        nv[l->n].key = strdup(key);
        nv[l->n].value = strdup(value);
        if (!nv[l->n].key || !nv[l->n].value) {
                free(nv[l->n].key);
                free(nv[l->n].value);
                return -ENOMEM;
        }
        l->n++;
        return 0;
}

const char *kvlist_get(const struct kvlist *l, const char *key) {
        for (size_t i = l->n; i > 0; i--)
                if (streq(l->v[i - 1].key, key))
                        return l->v[i - 1].value;
        return NULL;
}

/* Copy input to a NUL-terminated string, refusing embedded NULs (never valid in these text files). */
static int text_dup(const char *p, size_t len, size_t max, char **ret) {
        char *s;

        if (len > max)
                return ringil_fail(-RINGIL_ETOOBIG, "file larger than %zu bytes", max);
        if (memchr(p, '\0', len))
                return ringil_fail(-RINGIL_EMALFORMED, "NUL byte in text file");
        s = malloc(len + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, p, len);
        s[len] = '\0';
        *ret = s;
        return 0;
}

static char *strip(char *s) {
        char *e;
        while (*s && isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = '\0';
        return s;
}

/* Iterate lines of a mutable buffer; counts them against the record cap. */
#define FOREACH_LINE(line, buf, save, count)                                           \
        for (char *line = strtok_r((buf), "\n", &(save)); line;                        \
             line = strtok_r(NULL, "\n", &(save)))                                     \
                if (++(count) > AUDIT_RECORDS_MAX)                                     \
                        return ringil_fail(-RINGIL_ETOOBIG, "more than %u lines", AUDIT_RECORDS_MAX); \
                else

int audit_parse_loader_conf(const char *p, size_t len, struct kvlist *ret) {
        _cleanup_free_ char *s = NULL;
        struct kvlist l = {};
        char *save = NULL;
        size_t count = 0;
        int r;

        r = text_dup(p, len, AUDIT_TEXT_MAX, &s);
        if (r < 0)
                return r;
        FOREACH_LINE(line, s, save, count) {
                char *t = strip(line), *v;
                if (!*t || *t == '#')
                        continue;
                v = t;
                while (*v && !isspace((unsigned char) *v))
                        v++;
                if (*v)
                        *v++ = '\0';
                r = kvlist_add(&l, t, strip(v));
                if (r < 0) {
                        kvlist_free(&l);
                        return r;
                }
        }
        *ret = l;
        return 0;
}

int audit_parse_udev_data(const char *p, size_t len, struct kvlist *ret) {
        _cleanup_free_ char *s = NULL;
        struct kvlist l = {};
        char *save = NULL;
        size_t count = 0;
        int r = 0;

        r = text_dup(p, len, AUDIT_TEXT_MAX, &s);
        if (r < 0)
                return r;
        FOREACH_LINE(line, s, save, count) {
                if (line[0] == 'E' && line[1] == ':') {
                        char *eq = strchr(line + 2, '=');
                        if (!eq || eq == line + 2) {
                                kvlist_free(&l);
                                return ringil_fail(-RINGIL_EMALFORMED, "udev E: line without '='");
                        }
                        *eq = '\0';
                        r = kvlist_add(&l, line + 2, eq + 1);
                } else if (line[0] == 'N' && line[1] == ':')
                        r = kvlist_add(&l, "N", line + 2);
                if (r < 0) {
                        kvlist_free(&l);
                        return r;
                }
        }
        *ret = l;
        return 0;
}

int audit_parse_ini_section(const char *p, size_t len, const char *section, struct kvlist *l) {
        _cleanup_free_ char *s = NULL;
        struct kvlist add = {};
        char *save = NULL;
        size_t count = 0;
        bool in = false, any_section = false;
        int r;

        r = text_dup(p, len, AUDIT_TEXT_MAX, &s);
        if (r < 0)
                return r;
        FOREACH_LINE(line, s, save, count) {
                char *t = strip(line), *eq;
                if (!*t || *t == '#' || *t == ';')
                        continue;
                if (*t == '[') {
                        char *e = strchr(t, ']');
                        if (!e || e[1] != '\0') {
                                kvlist_free(&add);
                                return ringil_fail(-RINGIL_EMALFORMED, "bad section header '%.64s'", t);
                        }
                        *e = '\0';
                        in = streq(t + 1, section);
                        any_section = true;
                        continue;
                }
                eq = strchr(t, '=');
                if (!eq || !any_section) {
                        kvlist_free(&add);
                        return ringil_fail(-RINGIL_EMALFORMED, "assignment outside a section or without '=': '%.64s'", t);
                }
                if (!in)
                        continue;
                *eq = '\0';
                r = kvlist_add(&add, strip(t), strip(eq + 1));
                if (r < 0) {
                        kvlist_free(&add);
                        return r;
                }
        }
        /* Only now touch the caller's list, so a malformed file changes nothing. */
        for (size_t i = 0; i < add.n; i++) {
                r = kvlist_add(l, add.v[i].key, add.v[i].value);
                if (r < 0)
                        break;
        }
        kvlist_free(&add);
        return r < 0 ? r : 0;
}

void pw_list_free(struct pw_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].name);
                free(l->v[i].passwd);
                free(l->v[i].shell);
        }
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

const struct pw_entry *pw_list_find(const struct pw_list *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->v[i].name, name))
                        return &l->v[i];
        return NULL;
}

/* Split line at ':' into at most max fields; returns the count. */
static size_t split_colon(char *line, char **f, size_t max) {
        size_t n = 0;
        f[n++] = line;
        for (char *c = line; *c && n < max; c++)
                if (*c == ':') {
                        *c = '\0';
                        f[n++] = c + 1;
                }
        return n;
}

static int parse_colon_file(const char *p, size_t len, bool shadow, struct pw_list *ret) {
        _cleanup_free_ char *s = NULL;
        struct pw_list l = {};
        char *save = NULL;
        size_t count = 0;
        int r;

        r = text_dup(p, len, AUDIT_TEXT_MAX, &s);
        if (r < 0)
                return r;
        FOREACH_LINE(line, s, save, count) {
                char *f[9];
                size_t nf;
                struct pw_entry e = {}, *nv;

                if (!*line || *line == '#')
                        continue;
                nf = split_colon(line, f, shadow ? 9 : 7);
                if ((shadow && nf < 2) || (!shadow && nf != 7) || !*f[0]) {
                        pw_list_free(&l);
                        return ringil_fail(-RINGIL_EMALFORMED, "%s line %zu has %zu fields",
                                           shadow ? "shadow" : "passwd", count, nf);
                }
                if (!shadow && parse_u32_range(f[2], 0, UINT32_MAX, &e.uid) < 0) {
                        pw_list_free(&l);
                        return ringil_fail(-RINGIL_EMALFORMED, "passwd line %zu: bad UID '%.16s'", count, f[2]);
                }
                nv = reallocarray(l.v, l.n + 1, sizeof(*nv));
                if (!nv) {
                        pw_list_free(&l);
                        return -ENOMEM;
                }
                l.v = nv;
                e.name = strdup(f[0]);
                e.passwd = strdup(f[1]);
                e.shell = strdup(shadow ? "" : f[6]);
                if (!e.name || !e.passwd || !e.shell) {
                        free(e.name);
                        free(e.passwd);
                        free(e.shell);
                        pw_list_free(&l);
                        return -ENOMEM;
                }
                l.v[l.n++] = e;
        }
        *ret = l;
        return 0;
}

int audit_parse_passwd(const char *p, size_t len, struct pw_list *ret) {
        return parse_colon_file(p, len, false, ret);
}

int audit_parse_shadow(const char *p, size_t len, struct pw_list *ret) {
        return parse_colon_file(p, len, true, ret);
}

void net_list_free(struct net_list *l) {
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* "  0: 0100007F:0277 00000000:0000 0A ..." — local address, remote address, state. */
int audit_parse_proc_net(const char *p, size_t len, struct net_list *ret) {
        struct net_list l = {};
        size_t pos = 0, lineno = 0;

        if (len > AUDIT_NET_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "/proc/net file larger than %u bytes", AUDIT_NET_MAX);
        while (pos < len) {
                const char *line = p + pos, *nl = memchr(line, '\n', len - pos), *c, *end;
                size_t ll = nl ? (size_t) (nl - line) : len - pos;
                unsigned port = 0;
                int st;

                pos += ll + 1;
                if (lineno++ == 0)
                        continue;   /* header */
                end = line + ll;
                c = line;
                while (c < end && *c == ' ')
                        c++;
                if (c == end)
                        continue;
                /* "N:" slot */
                while (c < end && isdigit((unsigned char) *c))
                        c++;
                if (c == end || *c != ':')
                        goto bad;
                c++;
                while (c < end && *c == ' ')
                        c++;
                /* local address: hex IP (8 or 32 digits) ':' 4 hex digits */
                {
                        const char *colon = memchr(c, ':', (size_t) (end - c));
                        size_t iplen = colon ? (size_t) (colon - c) : 0;
                        if (!colon || (iplen != 8 && iplen != 32) || end - colon < 5)
                                goto bad;
                        for (int i = 1; i <= 4; i++) {
                                int h = hexval(colon[i]);
                                if (h < 0)
                                        goto bad;
                                port = port * 16 + (unsigned) h;
                        }
                        c = colon + 5;
                }
                /* remote address, then state */
                while (c < end && *c == ' ')
                        c++;
                while (c < end && *c != ' ')
                        c++;
                while (c < end && *c == ' ')
                        c++;
                if (end - c < 2 || hexval(c[0]) < 0 || hexval(c[1]) < 0)
                        goto bad;
                st = hexval(c[0]) * 16 + hexval(c[1]);
                if (l.n >= AUDIT_NET_RECORDS_MAX) {
                        net_list_free(&l);
                        return ringil_fail(-RINGIL_ETOOBIG, "too many sockets");
                }
                {
                        struct net_sock *nv = reallocarray(l.v, l.n + 1, sizeof(*nv));
                        if (!nv) {
                                net_list_free(&l);
                                return -ENOMEM;
                        }
                        l.v = nv;
                        l.v[l.n++] = (struct net_sock){ .port = (uint16_t) port, .state = (uint8_t) st };
                }
                continue;
        bad:
                net_list_free(&l);
                return ringil_fail(-RINGIL_EMALFORMED, "/proc/net line %zu unparsable", lineno);
        }
        if (lineno == 0)
                return ringil_fail(-RINGIL_ETRUNCATED, "/proc/net file is empty (no header)");
        *ret = l;
        return 0;
}

/* n hex digits at p into out[n/2] (most significant first). */
static int hex_bytes(const char *p, size_t n, uint8_t *out) {
        for (size_t i = 0; i < n; i += 2) {
                int hi = hexval(p[i]), lo = hexval(p[i + 1]);
                if (hi < 0 || lo < 0)
                        return -1;
                out[i / 2] = (uint8_t) (hi * 16 + lo);
        }
        return 0;
}

/* Split one line into at most max whitespace-separated fields (pointers into line, lengths). */
static size_t fields(const char *line, size_t ll, const char **f, size_t *fl, size_t max) {
        size_t n = 0, i = 0;

        while (i < ll && n < max) {
                while (i < ll && (line[i] == ' ' || line[i] == '\t'))
                        i++;
                if (i == ll)
                        break;
                f[n] = line + i;
                while (i < ll && line[i] != ' ' && line[i] != '\t')
                        i++;
                fl[n] = (size_t) (line + i - f[n]);
                n++;
        }
        return n;
}

/* 1 when the first plen bits of a and b agree. */
static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned plen) {
        unsigned whole = plen / 8, rest = plen % 8;

        if (memcmp(a, b, whole) != 0)
                return false;
        return rest == 0 || ((a[whole] ^ b[whole]) & (uint8_t) (0xff << (8 - rest))) == 0;
}

int audit_route_lookup(const char *p, size_t len, int family, const uint8_t addr[static 16],
                       struct audit_route *ret) {
        struct audit_route best = { .prefix = -1 };
        size_t pos = 0, lineno = 0;
        bool v6 = family == 6;

        if (len > AUDIT_NET_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "routing table larger than %u bytes", AUDIT_NET_MAX);
        if (memchr(p, '\0', len))
                return ringil_fail(-RINGIL_EMALFORMED, "routing table contains a NUL byte");
        while (pos < len) {
                const char *line = p + pos, *nl = memchr(line, '\n', len - pos), *f[11];
                size_t ll = nl ? (size_t) (nl - line) : len - pos, fl[11], n;
                uint8_t dst[16] = {}, mask[4];
                uint32_t flags = 0, metric = 0;
                unsigned plen = 0;
                const char *ifname;
                size_t iflen;

                pos += ll + 1;
                lineno++;
                if (lineno > AUDIT_NET_RECORDS_MAX)
                        return ringil_fail(-RINGIL_ETOOBIG, "too many routes");
                n = fields(line, ll, f, fl, ELEMENTSOF(f));
                if (n == 0)
                        continue;
                if (!v6) {
                        /* Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT; hex words are
                         * the kernel's in-memory network-order addresses printed as host integers */
                        uint8_t tmp[4];
                        uint32_t d, m;
                        if (lineno == 1) {
                                if (fl[0] != 5 || memcmp(f[0], "Iface", 5) != 0)
                                        return ringil_fail(-RINGIL_EMALFORMED, "/proc/net/route has no header");
                                continue;
                        }
                        if (n < 8 || fl[1] != 8 || fl[3] != 4 || fl[7] != 8 || fl[6] > 8 || fl[0] > AUDIT_IFNAME_MAX ||
                            hex_bytes(f[1], 8, tmp) < 0 || hex_bytes(f[7], 8, mask) < 0)
                                goto bad;
                        /* the printed word is the host-order value of the network-order bytes (the table is
                         * read on the machine it describes: live mode) */
                        d = (uint32_t) tmp[0] << 24 | (uint32_t) tmp[1] << 16 | (uint32_t) tmp[2] << 8 | tmp[3];
                        m = (uint32_t) mask[0] << 24 | (uint32_t) mask[1] << 16 | (uint32_t) mask[2] << 8 | mask[3];
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                        d = __builtin_bswap32(d);
                        m = __builtin_bswap32(m);
#endif
                        for (int i = 0; i < 4; i++)
                                dst[i] = (uint8_t) (d >> (24 - 8 * i));
                        /* a netmask is contiguous ones */
                        if (m != 0 && (~m & (~m + 1)) != 0)
                                goto bad;
                        plen = (unsigned) __builtin_popcount(m);
                        for (int i = 0; i < 4; i++) {
                                int h = hexval(f[3][i]);
                                if (h < 0)
                                        goto bad;
                                flags = flags * 16 + (uint32_t) h;
                        }
                        for (size_t i = 0; i < fl[6]; i++) {
                                if (!isdigit((unsigned char) f[6][i]))
                                        goto bad;
                                metric = metric * 10 + (uint32_t) (f[6][i] - '0');
                        }
                        ifname = f[0];
                        iflen = fl[0];
                } else {
                        /* dst plen src plen nexthop metric refcnt use flags iface: hex, network order */
                        uint8_t b[4];
                        if (n < 10 || fl[0] != 32 || fl[1] != 2 || fl[5] != 8 || fl[8] != 8 || fl[9] > AUDIT_IFNAME_MAX ||
                            hex_bytes(f[0], 32, dst) < 0 || hex_bytes(f[1], 2, b) < 0)
                                goto bad;
                        plen = b[0];
                        if (plen > 128 || hex_bytes(f[5], 8, b) < 0)
                                goto bad;
                        metric = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
                        if (hex_bytes(f[8], 8, b) < 0)
                                goto bad;
                        flags = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
                        ifname = f[9];
                        iflen = fl[9];
                }
                /* RTF_UP; RTF_REJECT (0x0200) routes lead nowhere */
                if (!(flags & 0x1) || (flags & 0x0200) || !prefix_match(addr, dst, plen))
                        continue;
                if ((int) plen > best.prefix || ((int) plen == best.prefix && metric < best.metric)) {
                        best.prefix = (int) plen;
                        best.metric = metric;
                        memcpy(best.iface, ifname, iflen);
                        best.iface[iflen] = '\0';
                }
                continue;
        bad:
                return ringil_fail(-RINGIL_EMALFORMED, "routing table line %zu unparsable", lineno);
        }
        /* /proc/net/route always has its header; ipv6_route has none and is empty without IPv6 routes */
        if (lineno == 0 && !v6)
                return ringil_fail(-RINGIL_ETRUNCATED, "routing table is empty");
        if (best.prefix < 0)
                return -ENOENT;
        *ret = best;
        return 0;
}

int audit_parse_cmdline(const char *p, size_t len, struct strv *ret) {
        _cleanup_free_ char *word = NULL;
        struct strv s = {};
        size_t wl = 0;
        bool quoted = false, have = false;
        int r;

        if (len > AUDIT_CMDLINE_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "command line longer than %u bytes", AUDIT_CMDLINE_MAX);
        word = malloc(len + 1);
        if (!word)
                return -ENOMEM;
        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? p[i] : ' ';
                if (c == '\0')
                        c = ' ';   /* /proc/PID/cmdline style separators */
                if (c == '"') {
                        quoted = !quoted;
                        have = true;
                        continue;
                }
                if (!quoted && isspace((unsigned char) c)) {
                        if (have) {
                                word[wl] = '\0';
                                if (s.n >= AUDIT_CMDLINE_WORDS_MAX) {
                                        strv_done(&s);
                                        return ringil_fail(-RINGIL_ETOOBIG, "too many words");
                                }
                                r = strv_push(&s, word);
                                if (r < 0) {
                                        strv_done(&s);
                                        return r;
                                }
                        }
                        wl = 0;
                        have = false;
                        continue;
                }
                word[wl++] = c;
                have = true;
        }
        if (quoted) {
                strv_done(&s);
                return ringil_fail(-RINGIL_EMALFORMED, "unbalanced quote in command line");
        }
        *ret = s;
        return 0;
}

static uint64_t be64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = (v << 8) | p[i];
        return v;
}

int audit_luks2_header_size(const uint8_t *p, size_t len, size_t *ret) {
        static const uint8_t magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
        uint64_t hs;

        if (len < LUKS2_BIN_HDR_SIZE)
                return ringil_fail(-RINGIL_ETRUNCATED, "LUKS header shorter than 4096 bytes");
        if (memcmp(p, magic, 6) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "no LUKS magic");
        if (p[6] != 0 || p[7] != 2)
                return ringil_fail(-RINGIL_EMALFORMED, "LUKS version %u, not 2", (unsigned) (p[6] << 8 | p[7]));
        hs = be64(p + 8);
        /* The spec allows 16 KiB … 4 MiB, powers of two. */
        if (hs < 16384 || hs > LUKS2_HDR_MAX || (hs & (hs - 1)) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "LUKS2 hdr_size %llu not allowed", (unsigned long long) hs);
        *ret = (size_t) hs;
        return 0;
}

static int json_u32_string(json_t *o, uint32_t max, uint32_t *ret) {
        if (json_is_integer(o)) {
                json_int_t v = json_integer_value(o);
                if (v < 0 || (uint64_t) v > max)
                        return -ERANGE;
                *ret = (uint32_t) v;
                return 0;
        }
        if (json_is_string(o))
                return parse_u32_range(json_string_value(o), 0, max, ret);
        return -EINVAL;
}

static int parse_luks2_json(json_t *root, struct luks2_info *info) {
        json_t *ks = json_object_get(root, "keyslots"), *tok = json_object_get(root, "tokens"),
               *seg = json_object_get(root, "segments"), *s0, *v;
        const char *key;
        uint32_t id;

        if (!json_is_object(ks) || !json_is_object(tok) || !json_is_object(seg))
                return ringil_fail(-RINGIL_EMALFORMED, "LUKS2 JSON lacks keyslots/tokens/segments");
        info->n_segments = json_object_size(seg);
        s0 = json_object_get(seg, "0");
        if (s0) {
                v = json_object_get(s0, "encryption");
                if (json_is_string(v))
                        snprintf(info->cipher, sizeof(info->cipher), "%s", json_string_value(v));
                v = json_object_get(s0, "sector_size");
                if (v && json_u32_string(v, 65536, &info->sector_size) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "bad sector_size");
        }
        json_object_foreach(ks, key, v) {
                struct luks2_keyslot *k;
                json_t *kdf = json_object_get(v, "kdf"), *t;

                if (info->n_keyslots >= LUKS2_MAX_SLOTS)
                        return ringil_fail(-RINGIL_ETOOBIG, "too many keyslots");
                if (parse_u32_range(key, 0, LUKS2_MAX_SLOTS - 1, &id) < 0 || !json_is_object(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "bad keyslot '%.16s'", key);
                k = &info->keyslots[info->n_keyslots++];
                k->id = (int) id;
                k->token = -1;
                t = json_object_get(v, "key_size");
                if (!t || json_u32_string(t, 1024, &k->key_size) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "keyslot %u: bad key_size", id);
                t = kdf ? json_object_get(kdf, "type") : NULL;
                if (!json_is_string(t))
                        return ringil_fail(-RINGIL_EMALFORMED, "keyslot %u: no kdf type", id);
                snprintf(k->kdf, sizeof(k->kdf), "%s", json_string_value(t));
        }
        json_object_foreach(tok, key, v) {
                struct luks2_token *t;
                json_t *x, *slots;
                size_t i;

                if (info->n_tokens >= LUKS2_MAX_SLOTS)
                        return ringil_fail(-RINGIL_ETOOBIG, "too many tokens");
                if (parse_u32_range(key, 0, LUKS2_MAX_SLOTS - 1, &id) < 0 || !json_is_object(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "bad token '%.16s'", key);
                t = &info->tokens[info->n_tokens];
                t->id = (int) id;
                x = json_object_get(v, "type");
                if (!json_is_string(x))
                        return ringil_fail(-RINGIL_EMALFORMED, "token %u: no type", id);
                snprintf(t->type, sizeof(t->type), "%s", json_string_value(x));
                x = json_object_get(v, "tpm2-pcrs");
                if (json_is_array(x)) {
                        json_t *pcr;
                        json_array_foreach(x, i, pcr) {
                                uint32_t n;
                                if (json_u32_string(pcr, 23, &n) < 0)
                                        return ringil_fail(-RINGIL_EMALFORMED, "token %u: bad PCR", id);
                                t->pcr_mask |= 1u << n;
                        }
                }
                t->pin = json_is_true(json_object_get(v, "tpm2-pin"));
                t->pcrlock = json_is_true(json_object_get(v, "tpm2_pcrlock"));
                x = json_object_get(v, "tpm2_pubkey");
                t->pubkey = json_is_string(x) && json_string_length(x) > 0;
                x = json_object_get(v, "tpm2_srk");
                t->srk = json_is_string(x) && json_string_length(x) > 0;
                slots = json_object_get(v, "keyslots");
                if (!json_is_array(slots))
                        return ringil_fail(-RINGIL_EMALFORMED, "token %u: no keyslots", id);
                json_array_foreach(slots, i, x) {
                        uint32_t sid;
                        if (!json_is_string(x) || parse_u32_range(json_string_value(x), 0, LUKS2_MAX_SLOTS - 1, &sid) < 0)
                                return ringil_fail(-RINGIL_EMALFORMED, "token %u: bad keyslot ref", id);
                        for (size_t j = 0; j < info->n_keyslots; j++)
                                if (info->keyslots[j].id == (int) sid)
                                        info->keyslots[j].token = (int) info->n_tokens;
                }
                info->n_tokens++;
        }
        return 0;
}

int audit_parse_luks2(const uint8_t *p, size_t len, struct luks2_info *ret) {
        _cleanup_free_ uint8_t *copy = NULL;
        struct luks2_info info = {};
        uint8_t digest[SHA256_LEN];
        size_t hs, jlen;
        json_error_t jerr;
        json_t *root;
        int r;

        r = audit_luks2_header_size(p, len, &hs);
        if (r < 0)
                return r;
        if (len < hs)
                return ringil_fail(-RINGIL_ETRUNCATED, "LUKS2 header truncated (%zu of %zu bytes)", len, hs);
        /* csum_alg at 72, checksum at 448 (64 bytes), over the header with the checksum zeroed. */
        if (strncmp((const char *) p + 72, "sha256", 32) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "unsupported LUKS2 checksum algorithm");
        copy = malloc(hs);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, p, hs);
        memset(copy + 448, 0, 64);
        r = crypto_sha256(copy, hs, digest);
        if (r < 0)
                return r;
        if (crypto_memcmp(digest, p + 448, SHA256_LEN) != 0)
                return ringil_fail(-RINGIL_EDIGEST, "LUKS2 header checksum mismatch");
        memcpy(info.uuid, p + 168, sizeof(info.uuid) - 1);
        info.uuid[sizeof(info.uuid) - 1] = '\0';
        jlen = strnlen((const char *) p + LUKS2_BIN_HDR_SIZE, hs - LUKS2_BIN_HDR_SIZE);
        root = json_loadb((const char *) p + LUKS2_BIN_HDR_SIZE, jlen, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return ringil_fail(-RINGIL_EMALFORMED, "LUKS2 JSON: %s", jerr.text);
        r = json_is_object(root) ? parse_luks2_json(root, &info)
                                 : ringil_fail(-RINGIL_EMALFORMED, "LUKS2 JSON is not an object");
        json_decref(root);
        if (r < 0)
                return r;
        *ret = info;
        return 0;
}
