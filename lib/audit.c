/* audit.c: runs the catalogue: profile loading and merging, waivers, result bookkeeping, exit code. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "crypto.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "macro.h"
#include "parse.h"

#define AUDIT_PROFILE_MAX_SIZE (256u << 10)

static const char *const status_names[_AUDIT_STATUS_MAX] = {
        [AUDIT_PASS] = "pass",
        [AUDIT_FAIL] = "fail",
        [AUDIT_ERROR] = "error",
        [AUDIT_NOTAPPLICABLE] = "notapplicable",
        [AUDIT_WAIVED] = "waived",
};
static const char *const severity_names[_AUDIT_SEV_MAX] = {
        [AUDIT_SEV_INFO] = "info",
        [AUDIT_SEV_LOW] = "low",
        [AUDIT_SEV_MEDIUM] = "medium",
        [AUDIT_SEV_HIGH] = "high",
        [AUDIT_SEV_CRITICAL] = "critical",
};

const char *audit_status_to_string(enum audit_status s) {
        return (unsigned) s < _AUDIT_STATUS_MAX ? status_names[s] : "unknown";
}

const char *audit_severity_to_string(enum audit_severity s) {
        return (unsigned) s < _AUDIT_SEV_MAX ? severity_names[s] : "unknown";
}

int audit_severity_from_string(const char *s, enum audit_severity *ret) {
        for (unsigned i = 0; i < _AUDIT_SEV_MAX; i++)
                if (streq(s, severity_names[i])) {
                        *ret = (enum audit_severity) i;
                        return 0;
                }
        return -EINVAL;
}

const char *audit_scope_to_string(enum audit_scope s) {
        switch (s) {
        case AUDIT_SCOPE_LIVE:
                return "live";
        case AUDIT_SCOPE_OFFLINE:
                return "offline";
        case AUDIT_SCOPE_BOTH:
                return "both";
        }
        return "unknown";
}

const struct audit_check *audit_check_find(const char *id) {
        for (size_t i = 0; i < audit_n_checks; i++)
                if (streq(audit_checks[i].id, id))
                        return &audit_checks[i];
        return NULL;
}

/* Evidence strings come from hostile files: keep them short and printable (escape.h). */
static char *sanitize(const char *s) {
        char buf[513];

        if (!s)
                return NULL;
        return strdup(escape_text(s, buf, sizeof(buf)));
}

void audit_evidence(struct audit_result *res, const char *path, const char *observed, const char *expected) {
        struct audit_evidence *e;

        if (res->n_ev >= AUDIT_MAX_EVIDENCE) {
                res->ev_truncated = true;
                return;
        }
        e = &res->ev[res->n_ev++];
        /* Paths are shown as seen inside the root: always absolute. */
        if (path && path[0] && path[0] != '/' && path[0] != '(') {
                char *p = NULL;
                if (asprintf(&p, "/%s", path) >= 0) {
                        e->path = sanitize(p);
                        free(p);
                }
        } else
                e->path = sanitize(path);
        e->observed = sanitize(observed);
        e->expected = sanitize(expected);
}

__attribute__((format(printf, 2, 0))) static void set_message(struct audit_result *res, const char *fmt, va_list ap) {
        char *m = NULL;
        if (res->message)
                return;
        if (vasprintf(&m, fmt, ap) < 0)
                return;
        res->message = sanitize(m);
        free(m);
}

void audit_fail(struct audit_result *res, const char *fmt, ...) {
        va_list ap;

        if (res->status != AUDIT_FAIL) {
                /* A definite violation outranks "could not check": replace an error's message. */
                free(res->message);
                res->message = NULL;
        }
        res->status = AUDIT_FAIL;
        va_start(ap, fmt);
        set_message(res, fmt, ap);
        va_end(ap);
}

/* audit-fs.h gives two errno values a meaning of its own; say it instead of the C library's words for
 * them ("File descriptor in bad state", "Link has been severed"), which describe something else. */
static const char *audit_strerror(int r) {
        switch (-r) {
        case EBADFD:
                return "not a regular file (a FIFO, socket or device: not opened)";
        case ENOLINK:
                return "dangling symlink: its target does not exist inside the audited root (links resolve "
                       "inside --root, never on the host)";
        case ELOOP:
                return "too many levels of symlinks inside the audited root";
        default:
                return ringil_strerror(r);
        }
}

void audit_error(struct audit_result *res, int r, const char *path, const char *fmt, ...) {
        va_list ap;
        char *m = NULL, *full = NULL;

        if (res->status == AUDIT_FAIL)
                return;
        res->status = AUDIT_ERROR;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (asprintf(&full, "%s: %s%s%s", m ? m : "error", audit_strerror(r), *ringil_detail() ? ": " : "",
                     ringil_detail()) < 0)
                full = NULL;
        ringil_clear_detail();
        audit_evidence(res, path, full ? full : "unreadable", NULL);
        if (!res->message)
                res->message = sanitize(full ? full : "error");
        free(m);
        free(full);
}

void audit_pass(struct audit_result *res, const char *path, const char *observed, const char *expected) {
        if (res->status != _AUDIT_STATUS_UNSET)
                return;
        res->status = AUDIT_PASS;
        if (path || observed || expected)
                audit_evidence(res, path, observed, expected);
}

void audit_note(struct audit_result *res, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        set_message(res, fmt, ap);
        va_end(ap);
}

/* ---- profiles ---- */

static int profile_parse_text(const char *text, size_t len, json_t **ret) {
        json_error_t jerr;
        json_t *j;

        if (len > AUDIT_PROFILE_MAX_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, "profile larger than %u bytes", AUDIT_PROFILE_MAX_SIZE);
        j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return ringil_fail(-RINGIL_EMALFORMED, "profile JSON line %d: %s", jerr.line, jerr.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return ringil_fail(-RINGIL_EMALFORMED, "profile is not a JSON object");
        }
        *ret = j;
        return 0;
}

/* Validate the merged profile: known check IDs, known severities, well-typed fields. */
static int profile_validate(json_t *doc) {
        json_t *checks = json_object_get(doc, "checks"), *v, *d = json_object_get(doc, "default");
        const char *id;

        if (!json_is_string(json_object_get(doc, "name")))
                return ringil_fail(-RINGIL_EMALFORMED, "profile has no \"name\"");
        if (d && !(json_is_string(d) && (streq(json_string_value(d), "enabled") ||
                                         streq(json_string_value(d), "disabled"))))
                return ringil_fail(-RINGIL_EMALFORMED, "profile \"default\" must be \"enabled\" or \"disabled\"");
        if (!json_is_object(checks))
                return ringil_fail(-RINGIL_EMALFORMED, "profile has no \"checks\" object");
        json_object_foreach(checks, id, v) {
                json_t *x;
                enum audit_severity sev;

                if (!audit_check_find(id))
                        return ringil_fail(-RINGIL_EMALFORMED, "profile names unknown check '%.32s'", id);
                if (!json_is_object(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "profile entry for %s is not an object", id);
                x = json_object_get(v, "enabled");
                if (x && !json_is_boolean(x))
                        return ringil_fail(-RINGIL_EMALFORMED, "%s: \"enabled\" must be a boolean", id);
                x = json_object_get(v, "severity");
                if (x && (!json_is_string(x) || audit_severity_from_string(json_string_value(x), &sev) < 0))
                        return ringil_fail(-RINGIL_EMALFORMED, "%s: bad \"severity\"", id);
                x = json_object_get(v, "params");
                if (x && !json_is_object(x))
                        return ringil_fail(-RINGIL_EMALFORMED, "%s: \"params\" must be an object", id);
        }
        return 0;
}

int audit_profile_load(const char *name_or_path, struct audit_profile *ret) {
        _cleanup_free_ uint8_t *file = NULL;
        _cleanup_free_ char *dump = NULL;
        const char *text = audit_builtin_profile(name_or_path);
        json_t *doc = NULL, *base_doc = NULL, *base;
        uint8_t digest[SHA256_LEN];
        size_t len;
        int r;

        if (text)
                r = profile_parse_text(text, strlen(text), &doc);
        else {
                r = read_full_file(name_or_path, 0, AUDIT_PROFILE_MAX_SIZE, &file, &len);
                if (r < 0)
                        return ringil_fail(r, "cannot read profile '%.200s'", name_or_path);
                r = profile_parse_text((const char *) file, len, &doc);
        }
        if (r < 0)
                return r;
        /* "base": a built-in to start from; the file's entries are merged over it per check. */
        base = json_object_get(doc, "base");
        if (base) {
                const char *bt = json_is_string(base) ? audit_builtin_profile(json_string_value(base)) : NULL;
                json_t *bc, *dc, *v;
                const char *id;

                if (!bt) {
                        json_decref(doc);
                        return ringil_fail(-RINGIL_EMALFORMED, "profile \"base\" must name a built-in profile");
                }
                r = profile_parse_text(bt, strlen(bt), &base_doc);
                if (r < 0) {
                        json_decref(doc);
                        return r;
                }
                json_object_del(base_doc, "base");
                bc = json_object_get(base_doc, "checks");
                dc = json_object_get(doc, "checks");
                if (json_is_object(bc) && json_is_object(dc))
                        json_object_foreach(dc, id, v) {
                                json_t *have = json_object_get(bc, id);
                                if (have && json_is_object(have) && json_is_object(v)) {
                                        json_t *hp = json_object_get(have, "params"), *vp = json_object_get(v, "params");
                                        if (json_is_object(hp) && json_is_object(vp))
                                                json_object_update(hp, vp);   /* param-level override */
                                        json_object_update_missing(v, have);
                                        if (json_is_object(hp))
                                                json_object_set(v, "params", hp);
                                }
                                json_object_set(bc, id, v);
                        }
                json_object_del(doc, "checks");
                json_object_update(base_doc, doc);
                json_object_del(base_doc, "base");
                json_decref(doc);
                doc = base_doc;
        }
        r = profile_validate(doc);
        if (r < 0) {
                json_decref(doc);
                return r;
        }
        dump = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        if (!dump || crypto_sha256(dump, strlen(dump), digest) < 0) {
                json_decref(doc);
                return -ENOMEM;
        }
        ret->name = strdup(json_string_value(json_object_get(doc, "name")));
        if (!ret->name) {
                json_decref(doc);
                return -ENOMEM;
        }
        ret->doc = doc;
        hex_encode(digest, SHA256_LEN, ret->sha256);
        return 0;
}

void audit_profile_done(struct audit_profile *p) {
        free(p->name);
        json_decref(p->doc);
        *p = (struct audit_profile){};
}

/* ---- waivers ---- */

void audit_waivers_done(struct audit_waivers *w) {
        for (size_t i = 0; i < w->n; i++) {
                free(w->v[i].id);
                free(w->v[i].rationale);
        }
        free(w->v);
        *w = (struct audit_waivers){};
}

int audit_waivers_parse(const char *text, size_t len, struct audit_waivers *ret) {
        struct audit_waivers w = {};
        json_error_t jerr;
        json_t *doc, *arr, *e;
        size_t i;
        int r = 0;

        if (len > AUDIT_WAIVERS_MAX_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, "waivers file too large");
        doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return ringil_fail(-RINGIL_EMALFORMED, "waivers JSON line %d: %s", jerr.line, jerr.text);
        arr = json_object_get(doc, "waivers");
        if (!json_is_array(arr)) {
                json_decref(doc);
                return ringil_fail(-RINGIL_EMALFORMED, "waivers file needs a \"waivers\" array");
        }
        w.v = calloc(json_array_size(arr) + 1, sizeof(*w.v));
        if (!w.v) {
                json_decref(doc);
                return -ENOMEM;
        }
        json_array_foreach(arr, i, e) {
                json_t *id = json_object_get(e, "id"), *ra = json_object_get(e, "rationale"),
                       *ex = json_object_get(e, "expires");
                int64_t t;

                if (!json_is_string(id) || !audit_check_find(json_string_value(id))) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "waiver %zu: unknown or missing check id", i);
                        break;
                }
                /* A waiver without a reason or an end date is a silent permanent exception: refuse. */
                if (!json_is_string(ra) || json_string_length(ra) == 0) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "waiver %zu (%s): missing rationale", i, json_string_value(id));
                        break;
                }
                if (!json_is_string(ex) || parse_time(json_string_value(ex), &t) < 0) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "waiver %zu (%s): missing or bad expires (YYYY-MM-DD)", i,
                                        json_string_value(id));
                        break;
                }
                w.v[w.n].id = strdup(json_string_value(id));
                w.v[w.n].rationale = strdup(json_string_value(ra));
                w.v[w.n].expires = t;
                w.n++;
                if (!w.v[w.n - 1].id || !w.v[w.n - 1].rationale) {
                        r = -ENOMEM;
                        break;
                }
        }
        json_decref(doc);
        if (r < 0) {
                audit_waivers_done(&w);
                return r;
        }
        *ret = w;
        return 0;
}

/* ---- running ---- */

static void result_done(struct audit_result *res) {
        free(res->message);
        for (size_t i = 0; i < res->n_ev; i++) {
                free(res->ev[i].path);
                free(res->ev[i].observed);
                free(res->ev[i].expected);
        }
        free(res->waiver_rationale);
}

void audit_run_done(struct audit_run *run) {
        for (size_t i = 0; i < run->n_results; i++)
                result_done(&run->results[i]);
        free(run->results);
        free(run->root);
        free(run->profile_name);
        *run = (struct audit_run){};
}

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void ctx_done(struct audit_ctx *ctx) {
        strv_done(&ctx->cmdline);
        free(ctx->cmdline_path);
        pw_list_free(&ctx->passwd);
        pw_list_free(&ctx->shadow);
        audit_fs_free(ctx->fs);
}

void audit_run_check(struct audit_ctx *ctx, const struct audit_check *c, struct audit_result *res, json_t *params) {
        /* INVARIANT: no implicit pass: a check that records nothing (an early return, an allocation
         * failure) is reported as an error, never as compliant. */
        res->status = _AUDIT_STATUS_UNSET;
        ringil_clear_detail();
        c->run(ctx, res, params);
        if (res->status == _AUDIT_STATUS_UNSET)
                audit_error(res, -EIO, NULL, "check recorded no verdict (out of memory or internal error)");
}

int audit_run(const char *root, enum audit_mode mode, const struct audit_profile *profile,
              const struct audit_waivers *waivers, int64_t now, struct audit_run *ret) {
        struct audit_ctx ctx = {};
        struct audit_run run = {};
        json_t *checks = json_object_get(profile->doc, "checks");
        const char *dflt = json_string_value(json_object_get(profile->doc, "default"));
        bool default_on = !dflt || streq(dflt, "enabled");
        uint64_t t0 = now_us();
        int r;

        r = audit_fs_new(root, &ctx.fs);
        if (r < 0)
                return ringil_fail(r, "cannot open root '%.200s'", root ? root : "/");
        if (mode == AUDIT_MODE_AUTO) {
                /* A root that carries the running kernel's /proc (or a snapshot of it) is audited live. */
                int e = audit_fs_exists(ctx.fs, "proc/cmdline");
                mode = e > 0 ? AUDIT_MODE_LIVE : AUDIT_MODE_OFFLINE;
        }
        ctx.live = mode == AUDIT_MODE_LIVE;
        run.mode = mode;
        run.openat2 = audit_fs_uses_openat2(ctx.fs);
        run.started = now;
        run.root = strdup(root ? root : "/");
        run.profile_name = strdup(profile->name);
        memcpy(run.profile_sha256, profile->sha256, sizeof(run.profile_sha256));
        run.results = calloc(audit_n_checks, sizeof(*run.results));
        if (!run.root || !run.profile_name || !run.results) {
                ctx_done(&ctx);
                audit_run_done(&run);
                return -ENOMEM;
        }
        for (size_t i = 0; i < audit_n_checks; i++) {
                const struct audit_check *c = &audit_checks[i];
                json_t *entry = json_object_get(checks, c->id), *en, *sev, *params;
                struct audit_result *res;
                json_t *empty = NULL;

                en = entry ? json_object_get(entry, "enabled") : NULL;
                if (!(en ? json_is_true(en) : default_on))
                        continue;
                res = &run.results[run.n_results++];
                res->check = c;
                res->severity = c->severity;
                sev = entry ? json_object_get(entry, "severity") : NULL;
                if (sev)
                        (void) audit_severity_from_string(json_string_value(sev), &res->severity);
                if (!(c->scope & (ctx.live ? AUDIT_SCOPE_LIVE : AUDIT_SCOPE_OFFLINE))) {
                        res->status = AUDIT_NOTAPPLICABLE;
                        audit_note(res, "%s-only check in %s mode", audit_scope_to_string(c->scope),
                                   ctx.live ? "live" : "offline");
                        continue;
                }
                params = entry ? json_object_get(entry, "params") : NULL;
                if (!params)
                        params = empty = json_object();
                audit_run_check(&ctx, c, res, params);
                json_decref(empty);
                if ((res->status == AUDIT_FAIL || res->status == AUDIT_ERROR) && waivers)
                        for (size_t w = 0; w < waivers->n; w++) {
                                if (!streq(waivers->v[w].id, c->id))
                                        continue;
                                res->waiver_rationale = strdup(waivers->v[w].rationale);
                                res->waiver_expires = waivers->v[w].expires;
                                /* An expired waiver waives nothing; it is reported so it gets renewed or fixed. */
                                res->waiver_expired = waivers->v[w].expires <= now;
                                if (!res->waiver_expired)
                                        res->status = AUDIT_WAIVED;
                                break;
                        }
        }
        for (size_t i = 0; i < run.n_results; i++)
                run.counts[run.results[i].status]++;
        run.duration_us = now_us() - t0;
        ctx_done(&ctx);
        *ret = run;
        return 0;
}

int audit_exit_code(const struct audit_run *run, enum audit_severity fail_on) {
        bool failed = false, unchecked = false;

        for (size_t i = 0; i < run->n_results; i++) {
                const struct audit_result *res = &run->results[i];
                if (res->status == AUDIT_FAIL && res->severity >= fail_on)
                        failed = true;
                if (res->status == AUDIT_ERROR)
                        unchecked = true;
        }
        if (failed)
                return AUDIT_EXIT_FAIL;
        return unchecked ? AUDIT_EXIT_UNCHECKED : AUDIT_EXIT_OK;
}
