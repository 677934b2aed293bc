/* fleet-msg.c: parsing and formatting of the agent ↔ server messages; Nix cache names. */
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "err.h"
#include "fleet-msg.h"
#include "macro.h"

static const char *const state_names[_FLEET_STATE_MAX] = {
        [FLEET_STATE_IDLE] = "idle",
        [FLEET_STATE_DOWNLOADING] = "downloading",
        [FLEET_STATE_INSTALLED] = "installed",
        [FLEET_STATE_REBOOTING] = "rebooting",
        [FLEET_STATE_UPDATED] = "updated",
        [FLEET_STATE_FAILED] = "failed",
        [FLEET_STATE_ROLLED_BACK] = "rolled-back",
};

const char *fleet_state_to_string(enum fleet_state s) {
        return (unsigned) s < _FLEET_STATE_MAX ? state_names[s] : "unknown";
}

int fleet_state_from_string(const char *s, enum fleet_state *ret) {
        for (unsigned i = 0; i < _FLEET_STATE_MAX; i++)
                if (streq(s, state_names[i])) {
                        *ret = (enum fleet_state) i;
                        return 0;
                }
        return -RINGIL_EMALFORMED;
}


/* Printable ASCII only: these strings end up in logs, SQL rows and Prometheus labels. */
static int copy_text(json_t *v, const char *key, char *dst, size_t cap) {
        const char *s;
        size_t n;

        if (!json_is_string(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is not a string", key);
        s = json_string_value(v);
        n = json_string_length(v);
        if (n >= cap)
                return ringil_fail(-RINGIL_ETOOBIG, "'%s' longer than %zu bytes", key, cap - 1);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
                        return ringil_fail(-RINGIL_EMALFORMED, "'%s' has a non-printable byte", key);
        memcpy(dst, s, n);
        dst[n] = '\0';
        return 0;
}

static int get_uint(json_t *v, const char *key, uint64_t max, uint64_t *ret) {
        json_int_t i;

        if (!json_is_integer(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is not an integer", key);
        i = json_integer_value(v);
        if (i < 0 || (uint64_t) i > max)
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' out of range", key);
        *ret = (uint64_t) i;
        return 0;
}

static int load_object(const void *data, size_t len, json_t **ret) {
        json_error_t e;
        json_t *j;

        if (len > FLEET_MAX_MESSAGE)
                return ringil_fail(-RINGIL_ETOOBIG, "message larger than %u bytes", FLEET_MAX_MESSAGE);
        j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
        if (!j)
                return ringil_fail(-RINGIL_EMALFORMED, "JSON: %s", e.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return ringil_fail(-RINGIL_EMALFORMED, "JSON message is not an object");
        }
        *ret = j;
        return 0;
}

static int parse_audit(json_t *v, struct fleet_status *s) {
        const char *k;
        json_t *x;
        uint64_t u = 0;
        int r = 0;   /* an unknown key reaches the else below with neither get_uint() run */

        if (!json_is_object(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'audit' is not an object");
        json_object_foreach(v, k, x) {
                if (streq(k, "pass") && (r = get_uint(x, k, UINT32_MAX, &u)) >= 0)
                        s->audit_pass = (uint32_t) u;
                else if (streq(k, "fail") && (r = get_uint(x, k, UINT32_MAX, &u)) >= 0)
                        s->audit_fail = (uint32_t) u;
                else
                        return r < 0 ? r : ringil_fail(-RINGIL_EMALFORMED, "unknown key 'audit.%s'", k);
        }
        s->has_audit = true;
        return 0;
}

/* "delta": {"fetched": N, "reused": N}: what the last install downloaded and found on the drone. */
static int parse_delta(json_t *v, struct fleet_status *s) {
        const char *k;
        json_t *x;
        int r = 0;

        if (!json_is_object(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'delta' is not an object");
        json_object_foreach(v, k, x) {
                if (streq(k, "fetched"))
                        r = get_uint(x, k, INT64_MAX, &s->bytes_fetched);
                else if (streq(k, "reused"))
                        r = get_uint(x, k, INT64_MAX, &s->bytes_reused);
                else
                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key 'delta.%s'", k);
                if (r < 0)
                        return r;
        }
        return 0;
}

int fleet_status_parse(const void *data, size_t len, struct fleet_status *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        struct fleet_status s = { .state = FLEET_STATE_IDLE };
        bool have_state = false;
        const char *k;
        json_t *v;
        uint64_t u = 0;
        int r;

        r = load_object(data, len, &j);
        if (r < 0)
                return r;
        json_object_foreach(j, k, v) {
                if (streq(k, "seq"))
                        r = get_uint(v, k, INT64_MAX, &s.seq);
                else if (streq(k, "version"))
                        r = copy_text(v, k, s.version, sizeof(s.version));
                else if (streq(k, "slot"))
                        r = copy_text(v, k, s.slot, sizeof(s.slot));
                else if (streq(k, "boot"))
                        r = copy_text(v, k, s.boot, sizeof(s.boot));
                else if (streq(k, "target"))
                        r = copy_text(v, k, s.target, sizeof(s.target));
                else if (streq(k, "error"))
                        r = copy_text(v, k, s.error, sizeof(s.error));
                else if (streq(k, "release")) {
                        r = get_uint(v, k, INT64_MAX, &u);
                        s.release = (int64_t) u;
                } else if (streq(k, "state")) {
                        char st[32];
                        r = copy_text(v, k, st, sizeof(st));
                        if (r >= 0 && fleet_state_from_string(st, &s.state) < 0)
                                r = ringil_fail(-RINGIL_EMALFORMED, "unknown state '%s'", st);
                        have_state = true;
                } else if (streq(k, "audit"))
                        r = parse_audit(v, &s);
                else if (streq(k, "delta"))
                        r = parse_delta(v, &s);
                else
                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key '%s'", k);
                if (r < 0)
                        return r;
        }
        if (!have_state)
                return ringil_fail(-RINGIL_EMALFORMED, "missing 'state'");
        *ret = s;
        return 0;
}

static int dump(json_t *j, char **ret) {
        char *s;

        if (!j)
                return -ENOMEM;
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int fleet_status_format(const struct fleet_status *s, char **ret) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}",
                              "version", s->version, "slot", s->slot, "boot", s->boot,
                              "state", fleet_state_to_string(s->state), "release", (json_int_t) s->release,
                              "target", s->target, "error", s->error);

        if (j && s->seq > 0)
                json_object_set_new(j, "seq", json_integer((json_int_t) s->seq));
        if (j && (s->bytes_fetched || s->bytes_reused))
                json_object_set_new(j, "delta", json_pack("{s:I, s:I}", "fetched", (json_int_t) s->bytes_fetched,
                                                          "reused", (json_int_t) s->bytes_reused));
        if (j && s->has_audit)
                json_object_set_new(j, "audit", json_pack("{s:I, s:I}", "pass", (json_int_t) s->audit_pass,
                                                          "fail", (json_int_t) s->audit_fail));
        return dump(j, ret);
}

static bool is_hex64(const char *s) {
        if (strlen(s) != 64)
                return false;
        for (size_t i = 0; i < 64; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int fleet_assignment_parse(const void *data, size_t len, struct fleet_assignment *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        struct fleet_assignment a = {};
        const char *k;
        json_t *v;
        uint64_t u = 0;
        int r;

        r = load_object(data, len, &j);
        if (r < 0)
                return r;
        json_object_foreach(j, k, v) {
                if (streq(k, "poll_interval")) {
                        r = get_uint(v, k, 86400 * 7, &u);
                        a.poll_interval = (uint32_t) u;
                } else if (streq(k, "assignment")) {
                        const char *k2;
                        json_t *v2;
                        bool have[4] = {};
                        if (json_is_null(v))
                                continue;
                        if (!json_is_object(v))
                                return ringil_fail(-RINGIL_EMALFORMED, "'assignment' is not an object");
                        json_object_foreach(v, k2, v2) {
                                if (streq(k2, "release")) {
                                        r = get_uint(v2, k2, INT64_MAX, &u);
                                        a.release = (int64_t) u;
                                        have[0] = true;
                                } else if (streq(k2, "version")) {
                                        r = copy_text(v2, k2, a.version, sizeof(a.version));
                                        have[1] = true;
                                } else if (streq(k2, "size")) {
                                        r = get_uint(v2, k2, INT64_MAX, &a.size);
                                        have[2] = true;
                                } else if (streq(k2, "sha256")) {
                                        r = copy_text(v2, k2, a.sha256, sizeof(a.sha256));
                                        if (r >= 0 && !is_hex64(a.sha256))
                                                r = ringil_fail(-RINGIL_EMALFORMED, "'sha256' is not 64 hex digits");
                                        have[3] = true;
                                } else
                                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key 'assignment.%s'", k2);
                                if (r < 0)
                                        return r;
                        }
                        if (!have[0] || !have[1] || !have[2] || !have[3] || a.release <= 0)
                                return ringil_fail(-RINGIL_EMALFORMED, "incomplete assignment");
                        a.assigned = true;
                } else
                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key '%s'", k);
                if (r < 0)
                        return r;
        }
        *ret = a;
        return 0;
}

int fleet_assignment_format(const struct fleet_assignment *a, char **ret) {
        json_t *j = json_pack("{s:I}", "poll_interval", (json_int_t) a->poll_interval);

        if (!j)
                return -ENOMEM;
        if (a->assigned)
                json_object_set_new(j, "assignment",
                                    json_pack("{s:I, s:s, s:I, s:s}", "release", (json_int_t) a->release,
                                              "version", a->version, "size", (json_int_t) a->size,
                                              "sha256", a->sha256));
        else
                json_object_set_new(j, "assignment", json_null());
        return dump(j, ret);
}

/* Nix's base32 alphabet: the digits and the lowercase letters but e, o, t and u. */
static bool nix32_char(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z' && c != 'e' && c != 'o' && c != 't' && c != 'u');
}

static bool nar_name_char(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

int fleet_nix_cache_file(const char *rel) {
        static const char *const compressions[] = { "", ".xz", ".bz2", ".zst", ".br", ".lz4", ".lzip", ".gz" };
        size_t n = 0;

        if (streq(rel, "nix-cache-info"))
                return FLEET_NIX_CACHE_INFO;
        if (strncmp(rel, "nar/", 4) == 0) {
                rel += 4;
                while (n < FLEET_NIX_NAR_NAME_MAX && nar_name_char(rel[n]))
                        n++;
                if (n == 0 || strncmp(rel + n, ".nar", 4) != 0)
                        return -ENOENT;
                for (size_t i = 0; i < ELEMENTSOF(compressions); i++)
                        if (streq(rel + n + 4, compressions[i]))
                                return FLEET_NIX_NAR;
                return -ENOENT;
        }
        while (n < 32 && nix32_char(rel[n]))
                n++;
        return n == 32 && streq(rel + n, ".narinfo") ? FLEET_NIX_NARINFO : -ENOENT;
}
