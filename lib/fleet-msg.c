/* fleet-msg.c: parsing and formatting of the agent ↔ server messages; Nix cache names. */
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "crypto.h"
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
        [FLEET_STATE_WAITING] = "waiting",
        [FLEET_STATE_RETRYING] = "retrying",
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

bool fleet_check_id_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= FLEET_CHECK_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

static bool is_hex64(const char *s);

/* A word from a closed set: keeps Prometheus labels and SQL rows to known values. */
static int copy_word(json_t *v, const char *key, const char *const *allowed, char *dst, size_t cap) {
        int r = copy_text(v, key, dst, cap);

        if (r < 0)
                return r;
        for (size_t i = 0; allowed[i]; i++)
                if (streq(dst, allowed[i]))
                        return 0;
        return ringil_fail(-RINGIL_EMALFORMED, "'%s' has an unknown value '%s'", key, dst);
}

/* [a-z0-9._-]{1,31}: a profile name ("prod", "dev") or a profile file's base name. */
static int copy_name(json_t *v, const char *key, char *dst, size_t cap) {
        int r = copy_text(v, key, dst, cap);

        if (r < 0)
                return r;
        if (!*dst)
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is empty", key);
        for (const char *p = dst; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
                        return ringil_fail(-RINGIL_EMALFORMED, "'%s' has a byte outside [a-z0-9._-]", key);
        return 0;
}

static int parse_audit(json_t *v, struct fleet_audit *a) {
        const char *k;
        json_t *x;
        uint64_t u = 0;
        int r = 0;   /* every branch sets both; initialised for the -O3 flow analysis */

        if (!json_is_object(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'audit' is not an object");
        *a = (struct fleet_audit) {};
        json_object_foreach(v, k, x) {
                uint32_t *counter = streq(k, "pass") ? &a->pass : streq(k, "fail") ? &a->fail
                                  : streq(k, "error") ? &a->error : streq(k, "waived") ? &a->waived
                                  : streq(k, "notapplicable") ? &a->notapplicable : NULL;
                if (counter) {
                        r = get_uint(x, k, UINT32_MAX, &u);
                        *counter = (uint32_t) u;
                } else if (streq(k, "profile"))
                        r = copy_name(x, "audit.profile", a->profile, sizeof(a->profile));
                else if (streq(k, "sha256")) {
                        r = copy_text(x, "audit.sha256", a->sha256, sizeof(a->sha256));
                        if (r >= 0 && !is_hex64(a->sha256))
                                r = ringil_fail(-RINGIL_EMALFORMED, "'audit.sha256' is not 64 hex digits");
                } else if (streq(k, "version"))
                        r = copy_text(x, "audit.version", a->version, sizeof(a->version));
                else if (streq(k, "time")) {
                        r = get_uint(x, k, INT64_MAX, &u);
                        a->time = (int64_t) u;
                } else if (streq(k, "failing")) {
                        size_t i;
                        json_t *id;
                        if (!json_is_array(x))
                                return ringil_fail(-RINGIL_EMALFORMED, "'audit.failing' is not an array");
                        if (json_array_size(x) > FLEET_AUDIT_MAX_IDS)
                                return ringil_fail(-RINGIL_ETOOBIG, "'audit.failing' has more than %d IDs",
                                                   FLEET_AUDIT_MAX_IDS);
                        json_array_foreach(x, i, id) {
                                r = copy_text(id, "audit.failing[]", a->failing[i], FLEET_CHECK_ID_MAX);
                                if (r < 0)
                                        return r;
                                if (!fleet_check_id_valid(a->failing[i]))
                                        return ringil_fail(-RINGIL_EMALFORMED, "'audit.failing' has a bad check ID");
                                for (size_t j = 0; j < i; j++)
                                        if (streq(a->failing[j], a->failing[i]))
                                                return ringil_fail(-RINGIL_EMALFORMED, "'audit.failing' lists '%s' twice",
                                                                   a->failing[i]);
                        }
                        a->n_failing = (uint32_t) json_array_size(x);
                } else
                        return ringil_fail(-RINGIL_EMALFORMED, "unknown key 'audit.%s'", k);
                if (r < 0)
                        return r;
        }
        if (a->n_failing > a->fail)
                return ringil_fail(-RINGIL_EMALFORMED, "'audit.failing' lists more IDs than 'audit.fail' counts");
        a->present = true;
        return 0;
}

static const char *const sb_modes[] = { "setup", "audit", "user", "deployed", "disabled", "unknown", NULL };
static const char *const sb_key_states[] = { "ok", "foreign", "missing", "unknown", NULL };

static int parse_secureboot(json_t *v, struct fleet_secureboot *sb) {
        bool have[4] = {};
        const char *k;
        json_t *x;
        int r;

        if (!json_is_object(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'secureboot' is not an object");
        *sb = (struct fleet_secureboot) {};
        json_object_foreach(v, k, x) {
                if (streq(k, "mode")) {
                        r = copy_word(x, "secureboot.mode", sb_modes, sb->mode, sizeof(sb->mode));
                        have[0] = true;
                } else if (streq(k, "pk")) {
                        r = copy_word(x, "secureboot.pk", sb_key_states, sb->pk, sizeof(sb->pk));
                        have[1] = true;
                } else if (streq(k, "kek")) {
                        r = copy_word(x, "secureboot.kek", sb_key_states, sb->kek, sizeof(sb->kek));
                        have[2] = true;
                } else if (streq(k, "db")) {
                        r = copy_word(x, "secureboot.db", sb_key_states, sb->db, sizeof(sb->db));
                        have[3] = true;
                } else
                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key 'secureboot.%s'", k);
                if (r < 0)
                        return r;
        }
        if (!have[0] || !have[1] || !have[2] || !have[3])
                return ringil_fail(-RINGIL_EMALFORMED, "'secureboot' needs mode, pk, kek and db");
        sb->present = true;
        return 0;
}

/* An IANA zone name as found under /usr/share/zoneinfo: [A-Za-z0-9/_+-], no "..", not absolute. */
static int copy_tz(json_t *v, char *dst, size_t cap) {
        int r = copy_text(v, "tz", dst, cap);

        if (r < 0)
                return r;
        if (dst[0] == '/' || strstr(dst, ".."))
                return ringil_fail(-RINGIL_EMALFORMED, "'tz' is not a zone name");
        for (const char *p = dst; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '/' || *p == '_' || *p == '+' || *p == '-'))
                        return ringil_fail(-RINGIL_EMALFORMED, "'tz' has a byte outside [A-Za-z0-9/_+-]");
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
                        r = parse_audit(v, &s.audit);
                else if (streq(k, "delta"))
                        r = parse_delta(v, &s);
                else if (streq(k, "secureboot"))
                        r = parse_secureboot(v, &s.sb);
                else if (streq(k, "system"))
                        r = copy_text(v, k, s.system, sizeof(s.system));
                else if (streq(k, "compliance")) {
                        r = copy_text(v, k, s.compliance, sizeof(s.compliance));
                        if (r >= 0 && !is_hex64(s.compliance))
                                r = ringil_fail(-RINGIL_EMALFORMED, "'compliance' is not 64 hex digits");
                }
                else if (streq(k, "tz"))
                        r = copy_tz(v, s.tz, sizeof(s.tz));
                else if (streq(k, "utc_offset")) {
                        json_int_t o = json_is_integer(v) ? json_integer_value(v) : INT64_MAX;
                        r = 0;
                        /* Real zones span UTC-12 to UTC+14. */
                        if (o < -14 * 3600 || o > 14 * 3600)
                                r = ringil_fail(-RINGIL_EMALFORMED, "'utc_offset' is not seconds within ±14 h");
                        s.utc_offset = (int32_t) o;
                        s.has_utc_offset = true;
                } else
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

static int add_compliance(json_t *j, const struct fleet_status *s);

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
        if (j && s->compliance[0])
                json_object_set_new(j, "compliance", json_string(s->compliance));
        if (j && add_compliance(j, s) < 0) {
                json_decref(j);
                return -ENOMEM;
        }
        return dump(j, ret);
}

bool fleet_status_has_compliance(const struct fleet_status *s) {
        return s->system[0] || s->tz[0] || s->has_utc_offset || s->audit.present || s->sb.present;
}

int fleet_compliance_digest(const struct fleet_status *s, char out[static 65]) {
        uint8_t d[SHA256_LEN];
        json_t *j = json_object();
        char *text;
        int r;

        if (!j || add_compliance(j, s) < 0) {
                json_decref(j);
                return -ENOMEM;
        }
        r = dump(j, &text);
        if (r < 0)
                return r;
        r = crypto_sha256(text, strlen(text), d);
        free(text);
        if (r < 0)
                return r;
        hex_encode(d, sizeof(d), out);
        return 0;
}

/* The compliance fields of s into j (shared by the status and its digest). */
static int add_compliance(json_t *j, const struct fleet_status *s) {
        if (s->system[0])
                json_object_set_new(j, "system", json_string(s->system));
        if (s->tz[0])
                json_object_set_new(j, "tz", json_string(s->tz));
        if (s->has_utc_offset)
                json_object_set_new(j, "utc_offset", json_integer(s->utc_offset));
        if (s->audit.present) {
                const struct fleet_audit *a = &s->audit;
                json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I}", "pass", (json_int_t) a->pass, "fail",
                                      (json_int_t) a->fail, "error", (json_int_t) a->error, "waived",
                                      (json_int_t) a->waived, "notapplicable", (json_int_t) a->notapplicable);
                json_t *ids = json_array();
                for (uint32_t i = 0; ids && i < a->n_failing && i < FLEET_AUDIT_MAX_IDS; i++)
                        json_array_append_new(ids, json_string(a->failing[i]));
                if (o && ids)
                        json_object_set_new(o, "failing", ids);
                else
                        json_decref(ids);
                if (o && a->profile[0])
                        json_object_set_new(o, "profile", json_string(a->profile));
                if (o && a->sha256[0])
                        json_object_set_new(o, "sha256", json_string(a->sha256));
                if (o && a->version[0])
                        json_object_set_new(o, "version", json_string(a->version));
                if (o && a->time > 0)
                        json_object_set_new(o, "time", json_integer(a->time));
                if (!o)
                        return -ENOMEM;
                json_object_set_new(j, "audit", o);
        }
        if (s->sb.present)
                json_object_set_new(j, "secureboot", json_pack("{s:s, s:s, s:s, s:s}", "mode", s->sb.mode, "pk",
                                                               s->sb.pk, "kek", s->sb.kek, "db", s->sb.db));
        return 0;
}

static bool is_hex64(const char *s) {
        if (strlen(s) != 64)
                return false;
        for (size_t i = 0; i < 64; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

bool fleet_mirror_url_valid(const char *url) {
        size_t n = strlen(url);

        if (n > FLEET_URL_MAX || strncmp(url, "https://", 8) != 0 || n == 8)
                return false;
        /* RFC 3986 characters, no space, quote, backslash or control byte: it goes into a list that is
         * stored space-separated and into log lines. */
        for (size_t i = 0; i < n; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%",
                            url[i]))
                        return false;
        return true;
}

static int parse_mirrors(json_t *v, struct fleet_assignment *a) {
        size_t i;
        json_t *u;

        if (!json_is_array(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'mirrors' is not an array");
        if (json_array_size(v) > FLEET_MIRRORS_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "more than %d mirrors", FLEET_MIRRORS_MAX);
        json_array_foreach(v, i, u) {
                int r = copy_text(u, "mirrors[]", a->mirrors[i], sizeof(a->mirrors[i]));
                if (r < 0)
                        return r;
                if (!fleet_mirror_url_valid(a->mirrors[i]))
                        return ringil_fail(-RINGIL_EMALFORMED, "mirror %zu is not an https:// URL", i + 1);
        }
        a->n_mirrors = json_array_size(v);
        return 0;
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
                                } else if (streq(k2, "retry")) {
                                        r = get_uint(v2, k2, UINT32_MAX, &u);
                                        a.retry = (uint32_t) u;
                                } else if (streq(k2, "rate")) {
                                        r = get_uint(v2, k2, INT64_MAX, &a.rate);
                                } else if (streq(k2, "rollout")) {
                                        r = get_uint(v2, k2, INT64_MAX, &u);
                                        a.rollout = (int64_t) u;
                                } else if (streq(k2, "sha256")) {
                                        r = copy_text(v2, k2, a.sha256, sizeof(a.sha256));
                                        if (r >= 0 && !is_hex64(a.sha256))
                                                r = ringil_fail(-RINGIL_EMALFORMED, "'sha256' is not 64 hex digits");
                                        have[3] = true;
                                } else if (streq(k2, "meta_size")) {
                                        r = get_uint(v2, k2, INT64_MAX, &a.meta_size);
                                } else if (streq(k2, "meta_sha256")) {
                                        r = copy_text(v2, k2, a.meta_sha256, sizeof(a.meta_sha256));
                                        if (r >= 0 && !is_hex64(a.meta_sha256))
                                                r = ringil_fail(-RINGIL_EMALFORMED, "'meta_sha256' is not 64 hex digits");
                                } else if (streq(k2, "mirrors")) {
                                        r = parse_mirrors(v2, &a);
                                } else
                                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key 'assignment.%s'", k2);
                                if (r < 0)
                                        return r;
                        }
                        if (!have[0] || !have[1] || !have[2] || !have[3] || a.release <= 0)
                                return ringil_fail(-RINGIL_EMALFORMED, "incomplete assignment");
                        /* metadata: both or neither, and inside the bundle */
                        if ((a.meta_size > 0) != (a.meta_sha256[0] != '\0') || a.meta_size > a.size)
                                return ringil_fail(-RINGIL_EMALFORMED, "'meta_size' and 'meta_sha256' do not fit the bundle");
                        a.assigned = true;
                } else if (streq(k, "compliance")) {
                        const char *t = json_string_value(v);
                        if (!t || !streq(t, "resend"))
                                return ringil_fail(-RINGIL_EMALFORMED, "'compliance' is not \"resend\"");
                        a.resend_compliance = true;
                } else if (streq(k, "windows")) {
                        size_t i;
                        json_t *w;
                        char text[FLEET_WINDOW_TEXT];
                        if (!json_is_array(v))
                                return ringil_fail(-RINGIL_EMALFORMED, "'windows' is not an array");
                        if (json_array_size(v) > FLEET_MAX_WINDOWS)
                                return ringil_fail(-RINGIL_ETOOBIG, "more than %d windows", FLEET_MAX_WINDOWS);
                        json_array_foreach(v, i, w) {
                                r = copy_text(w, "windows[]", text, sizeof(text));
                                if (r >= 0)
                                        r = fleet_window_parse(text, &a.windows[i]);
                                if (r < 0)
                                        return r;
                        }
                        a.n_windows = json_array_size(v);
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
        if (a->assigned) {
                json_t *o = json_pack("{s:I, s:s, s:I, s:s}", "release", (json_int_t) a->release, "version",
                                      a->version, "size", (json_int_t) a->size, "sha256", a->sha256);
                if (o && a->retry)
                        json_object_set_new(o, "retry", json_integer(a->retry));
                if (o && a->rate)
                        json_object_set_new(o, "rate", json_integer((json_int_t) a->rate));
                if (o && a->rollout)
                        json_object_set_new(o, "rollout", json_integer(a->rollout));
                if (!o) {
                        json_decref(j);
                        return -ENOMEM;
                }
                if (a->meta_size > 0) {
                        json_object_set_new(o, "meta_size", json_integer((json_int_t) a->meta_size));
                        json_object_set_new(o, "meta_sha256", json_string(a->meta_sha256));
                }
                if (a->n_mirrors > 0) {
                        json_t *m = json_array();
                        for (size_t i = 0; m && i < a->n_mirrors && i < FLEET_MIRRORS_MAX; i++)
                                json_array_append_new(m, json_string(a->mirrors[i]));
                        json_object_set_new(o, "mirrors", m);
                }
                json_object_set_new(j, "assignment", o);
        } else
                json_object_set_new(j, "assignment", json_null());
        if (a->resend_compliance)
                json_object_set_new(j, "compliance", json_string("resend"));
        if (a->n_windows) {
                json_t *w = json_array();
                char text[FLEET_WINDOW_TEXT];
                for (size_t i = 0; w && i < a->n_windows && i < FLEET_MAX_WINDOWS; i++) {
                        fleet_window_format(&a->windows[i], text);
                        json_array_append_new(w, json_string(text));
                }
                if (!w) {
                        json_decref(j);
                        return -ENOMEM;
                }
                json_object_set_new(j, "windows", w);
        }
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
