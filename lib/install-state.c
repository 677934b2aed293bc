/* install-state.c: the installer's state record, the two-copy anti-rollback floor and crash points. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "vercmp.h"
#include "err.h"
#include "fileio.h"
#include "install-conf.h"
#include "install-state.h"
#include "log.h"
#include "macro.h"
#include "parse.h"

static const char *const phase_names[] = {
        [PHASE_IDLE] = "idle",
        [PHASE_WRITING] = "writing",
        [PHASE_PENDING] = "pending",
};
static const char *const status_names[] = {
        [SLOT_EMPTY] = "empty",
        [SLOT_WRITING] = "writing",
        [SLOT_PENDING] = "pending",
        [SLOT_GOOD] = "good",
        [SLOT_BAD] = "bad",
};

const char *install_phase_to_string(enum install_phase p) {
        return (size_t) p < ELEMENTSOF(phase_names) ? phase_names[p] : "?";
}

const char *slot_status_to_string(enum slot_status s) {
        return (size_t) s < ELEMENTSOF(status_names) ? status_names[s] : "?";
}

void install_state_init(struct install_state *s) {
        *s = (struct install_state){ .slot = -1 };
}

void install_state_done(struct install_state *s) {
        if (!s)
                return;
        free(s->version);
        free(s->last_error);
        free(s->slots[0].version);
        free(s->slots[1].version);
        install_state_init(s);
}

int install_state_set_error(struct install_state *s, const char *msg) {
        char *c = NULL;

        if (msg) {
                c = strndup(msg, INSTALL_ERROR_MAX);
                if (!c)
                        return -ENOMEM;
                for (char *p = c; *p; p++)
                        if ((unsigned char) *p < 0x20 || *p == 0x7f)
                                *p = ' ';
                if (c[0] == '\0') {
                        free(c);
                        c = NULL;
                }
        }
        free(s->last_error);
        s->last_error = c;
        return 0;
}

static int lookup(const char *const *names, size_t n, const char *v) {
        for (size_t i = 0; i < n; i++)
                if (names[i] && streq(names[i], v))
                        return (int) i;
        return -1;
}

static int dup_version(char **dst, const char *v, unsigned line) {
        if (version_valid(v) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "state line %u: bad version `%s'", line, v);
        free(*dst);
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static int state_handler(void *userdata, const char *section, const char *key, const char *value,
                         unsigned line) {
        struct install_state *s = userdata;
        int i;

        if (streq(section, "install")) {
                if (streq(key, "phase")) {
                        if ((i = lookup(phase_names, ELEMENTSOF(phase_names), value)) < 0)
                                goto bad;
                        s->phase = (enum install_phase) i;
                        return 0;
                }
                if (streq(key, "digest")) {
                        if (strlen(value) != 2 * SHA256_LEN || hex_decode(value, s->digest, SHA256_LEN) < 0)
                                goto bad;
                        s->have_digest = true;
                        return 0;
                }
                if (streq(key, "version"))
                        return dup_version(&s->version, value, line);
                if (streq(key, "slot")) {
                        if ((s->slot = slot_from_string(value)) < 0)
                                goto bad;
                        return 0;
                }
                if (streq(key, "attempts"))
                        return parse_uint(value, &s->attempts) < 0 ? -RINGIL_EMALFORMED : 0;
                if (streq(key, "stalls"))
                        return parse_uint(value, &s->stalls) < 0 ? -RINGIL_EMALFORMED : 0;
                if (streq(key, "writes"))
                        return parse_u64(value, &s->writes) < 0 ? -RINGIL_EMALFORMED : 0;
                if (streq(key, "last-error"))
                        return install_state_set_error(s, value);
                if (streq(key, "time-floor")) {
                        uint64_t t;
                        if (parse_u64(value, &t) < 0 || t > (uint64_t) INT64_MAX)
                                goto bad;
                        s->time_floor = (int64_t) t;
                        return 0;
                }
                if (strncmp(key, "progress.", 9) == 0) {
                        uint32_t idx;
                        if (parse_u32_range(key + 9, 0, INSTALL_MAX_PAYLOADS - 1, &idx) < 0 ||
                            parse_u64(value, &s->progress[idx]) < 0)
                                goto bad;
                        s->n_progress = MAX(s->n_progress, (size_t) idx + 1);
                        return 0;
                }
        } else if (streq(section, "slot.a") || streq(section, "slot.b")) {
                struct slot_record *r = &s->slots[section[5] == 'a' ? 0 : 1];
                if (streq(key, "version"))
                        return dup_version(&r->version, value, line);
                if (streq(key, "status")) {
                        if ((i = lookup(status_names, ELEMENTSOF(status_names), value)) < 0)
                                goto bad;
                        r->status = (enum slot_status) i;
                        return 0;
                }
        }
bad:
        return ringil_fail(-RINGIL_EMALFORMED, "state line %u: unexpected `%s = %s' in [%s]", line, key, value,
                           section);
}

/* The state file is read by the configuration reader, with the same caps; keys are checked above. */
static int state_line(void *userdata, const struct conf_ctx *ctx, const char *value) {
        if (ctx->key)
                return state_handler(userdata, ctx->section, ctx->key, value, ctx->line);
        if (!streq(ctx->section, "install") && !streq(ctx->section, "slot.a") && !streq(ctx->section, "slot.b"))
                return ringil_fail(-RINGIL_EMALFORMED, "state line %u: unexpected section [%s]", ctx->line, ctx->section);
        return 0;
}

int install_state_parse(const char *text, size_t len, struct install_state *ret) {
        struct install_state s;
        int r;

        install_state_init(&s);
        r = conf_read(text, len, NULL, state_line, &s);
        if (r >= 0 && s.phase != PHASE_IDLE && (!s.have_digest || s.slot < 0 || !s.version))
                r = ringil_fail(-RINGIL_EMALFORMED, "state: phase %s without digest, slot and version",
                                install_phase_to_string(s.phase));
        if (r < 0) {
                install_state_done(&s);
                return r == -EEXIST ? -RINGIL_EMALFORMED : r;
        }
        *ret = s;
        return 0;
}

int install_state_format(const struct install_state *s, struct buf *out) {
        char hex[2 * SHA256_LEN + 1];
        int r;

        r = buf_printf(out, "# ringil install state; written atomically by ringil, do not edit\n[install]\nphase = %s\n",
                       install_phase_to_string(s->phase));
        if (r >= 0 && s->have_digest)
                r = buf_printf(out, "digest = %s\n", hex_encode(s->digest, SHA256_LEN, hex));
        if (r >= 0 && s->version)
                r = buf_printf(out, "version = %s\n", s->version);
        if (r >= 0 && s->slot >= 0)
                r = buf_printf(out, "slot = %c\n", slot_letter(s->slot));
        if (r >= 0)
                r = buf_printf(out, "attempts = %u\nstalls = %u\nwrites = %llu\n", s->attempts, s->stalls,
                               (unsigned long long) s->writes);
        for (size_t i = 0; r >= 0 && i < s->n_progress && i < INSTALL_MAX_PAYLOADS; i++)
                r = buf_printf(out, "progress.%zu = %llu\n", i, (unsigned long long) s->progress[i]);
        if (r >= 0 && s->time_floor > 0)
                r = buf_printf(out, "time-floor = %lld\n", (long long) s->time_floor);
        if (r >= 0 && s->last_error)
                r = buf_printf(out, "last-error = %s\n", s->last_error);
        for (int k = 0; r >= 0 && k < 2; k++) {
                r = buf_printf(out, "[slot.%c]\nstatus = %s\n", slot_letter(k), slot_status_to_string(s->slots[k].status));
                if (r >= 0 && s->slots[k].version)
                        r = buf_printf(out, "version = %s\n", s->slots[k].version);
        }
        return r < 0 ? r : 0;
}

static int join(const char *dir, const char *name, char **ret) {
        return asprintf(ret, "%s/%s", dir, name) < 0 ? -ENOMEM : 0;
}

int install_state_load(const char *state_dir, struct install_state *ret) {
        _cleanup_free_ char *p = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        r = join(state_dir, INSTALL_STATE_FILE, &p);
        if (r < 0)
                return r;
        r = read_full_file(p, RFILE_NOFOLLOW, CONF_MAX_SIZE, &data, &len);
        if (r == -ENOENT) {
                install_state_init(ret);
                return 0;
        }
        if (r == -EFBIG)
                return ringil_fail(-RINGIL_ETOOBIG, "%s: too large", p);
        if (r < 0)
                return ringil_fail(r, "%s: cannot read", p);
        return install_state_parse((const char *) data, len, ret);
}

int install_state_save(const char *state_dir, const struct install_state *s) {
        _cleanup_buf_ struct buf b = BUF_INIT(CONF_MAX_SIZE);
        _cleanup_free_ char *p = NULL;
        int r;

        r = mkdir_p(state_dir, 0700);
        if (r < 0)
                return ringil_fail(r, "cannot create state directory %s", state_dir);
        r = join(state_dir, INSTALL_STATE_FILE, &p);
        if (r >= 0)
                r = install_state_format(s, &b);
        if (r < 0)
                return r;
        crash_point("state write");
        r = atomic_write_file(p, b.data, b.len, 0600, 0);
        if (r < 0)
                return ringil_fail(r, "cannot write %s", p);
        crash_point("state written");
        return 0;
}

static int floor_read_one(const char *path, char **ret, int64_t *ret_time) {
        _cleanup_free_ uint8_t *data = NULL;
        char *nl, *rest;
        uint64_t t = 0;
        size_t len;
        int r;

        r = read_full_file(path, RFILE_NOFOLLOW, 256, &data, &len);
        if (r == -ENOENT) {
                *ret = NULL;
                *ret_time = 0;
                return 0;
        }
        if (r < 0)
                return ringil_fail(r == -EFBIG ? -RINGIL_EMALFORMED : r, "floor record %s unreadable", path);
        if (strlen((char *) data) != len)
                return ringil_fail(-RINGIL_EMALFORMED, "floor record %s is malformed", path);
        nl = strchr((char *) data, '\n');
        rest = nl ? nl + 1 : (char *) data + len;
        if (nl)
                *nl = '\0';
        if (version_valid((char *) data) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "floor record %s is malformed", path);
        if (*rest) {
                /* Exactly one more line: "time-floor SECONDS", newline optional. */
                size_t n = strlen(rest);
                if (rest[n - 1] == '\n')
                        rest[--n] = '\0';
                if (strncmp(rest, "time-floor ", 11) != 0 || parse_u64(rest + 11, &t) < 0 || t > (uint64_t) INT64_MAX)
                        return ringil_fail(-RINGIL_EMALFORMED, "floor record %s is malformed", path);
        }
        *ret = (char *) TAKE_PTR(data);
        *ret_time = (int64_t) t;
        return 0;
}

int floor_read(const char *state_dir, const char *floor_copy, char **ret, int64_t *ret_time) {
        _cleanup_free_ char *p = NULL, *a = NULL, *b = NULL;
        int64_t ta = 0, tb = 0;
        int r;

        r = join(state_dir, INSTALL_FLOOR_FILE, &p);
        if (r >= 0)
                r = floor_read_one(p, &a, &ta);
        if (r >= 0 && floor_copy)
                r = floor_read_one(floor_copy, &b, &tb);
        if (r < 0)
                return r;
        if (a && b)
                *ret = version_compare(a, b) >= 0 ? TAKE_PTR(a) : TAKE_PTR(b);
        else
                *ret = a ? TAKE_PTR(a) : TAKE_PTR(b);
        if (ret_time)
                *ret_time = MAX(ta, tb);
        return 0;
}

static int floor_write_one(const char *path, const char *version, int64_t time_floor, unsigned flags) {
        _cleanup_free_ char *dir = strdup(path), *text = NULL;
        char *slash;
        int r;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                r = mkdir_p(dir, 0700);
                if (r < 0)
                        return ringil_fail(r, "cannot create %s", dir);
        }
        r = time_floor > 0 ? asprintf(&text, "%s\ntime-floor %lld\n", version, (long long) time_floor)
                           : asprintf(&text, "%s\n", version);
        if (r < 0)
                return -ENOMEM;
        crash_point("floor write");
        r = atomic_write_file(path, text, strlen(text), 0644, flags);
        if (r < 0)
                return ringil_fail(r, "cannot write floor record %s", path);
        return 0;
}

int floor_raise(const char *state_dir, const char *floor_copy, const char *version, int64_t time_floor) {
        _cleanup_free_ char *cur = NULL, *p = NULL;
        int64_t cur_time = 0;
        int r;

        r = version_valid(version);
        if (r < 0)
                return ringil_fail(r, "floor: bad version `%s'", version);
        r = floor_read(state_dir, floor_copy, &cur, &cur_time);
        if (r < 0)
                return r;
        if (cur && version_compare(version, cur) <= 0)
                version = cur;   /* never lower; still rewrite both so a lost copy is restored */
        time_floor = MAX(time_floor, cur_time);
        r = mkdir_p(state_dir, 0700);
        if (r < 0)
                return r;
        r = join(state_dir, INSTALL_FLOOR_FILE, &p);
        if (r >= 0)
                r = floor_write_one(p, version, time_floor, 0);
        if (r >= 0 && floor_copy)
                r = floor_write_one(floor_copy, version, time_floor, AW_NOCHMOD);   /* on the ESP by default */
        return r;
}

void crash_point(const char *what) {
        static int armed = -1;
        static uint64_t at, n;

        if (armed < 0) {
                const char *e = getenv("RINGIL_TEST_CRASH_AT");
                armed = e && parse_u64(e, &at) >= 0 && at > 0;
        }
        n++;
        if (!armed)
                return;
        log_debug("crash point %llu: %s", (unsigned long long) n, what);
        if (n == at)
                (void) raise(SIGKILL);
}
