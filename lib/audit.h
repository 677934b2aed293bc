/* audit.h: the hardening auditor: check catalogue, profiles (data), waivers, results and reports. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit-fs.h"
#include "audit-parse.h"

enum audit_status {
        AUDIT_PASS,
        AUDIT_FAIL,
        AUDIT_ERROR,            /* input missing, truncated, unreadable or malformed: never a pass */
        AUDIT_NOTAPPLICABLE,    /* the check's scope does not cover this mode (live/offline) */
        AUDIT_WAIVED,           /* fail or error covered by a valid, unexpired waiver */
        _AUDIT_STATUS_MAX,
        /*
         * Internal: what a check starts with. A check must record its verdict (audit_pass, audit_fail or
         * audit_error); the runner turns a result still unset after run() into an error. Never reported.
         */
        _AUDIT_STATUS_UNSET,
};

enum audit_severity {
        AUDIT_SEV_INFO,
        AUDIT_SEV_LOW,
        AUDIT_SEV_MEDIUM,
        AUDIT_SEV_HIGH,
        AUDIT_SEV_CRITICAL,
        _AUDIT_SEV_MAX,
};

enum audit_scope {
        AUDIT_SCOPE_LIVE = 1,      /* needs the running kernel's /proc, /sys, efivarfs */
        AUDIT_SCOPE_OFFLINE = 2,   /* only files of an image */
        AUDIT_SCOPE_BOTH = 3,
};

struct audit_ctx;
struct audit_result;

struct audit_check {
        const char *id;            /* stable: never renumbered, never reused */
        const char *area;
        const char *title;
        const char *serves;        /* threat (T1 UEFI recovery, T2 cold boot, T3 TPM sniffing) or seed line */
        enum audit_scope scope;
        enum audit_severity severity;   /* default; the profile may override */
        const char *remediation;
        const char *arg;           /* fixed input of a generic check (e.g. the sysctl it reads) */
        /* params: the profile's "params" object for this check (never NULL; may be empty). */
        void (*run)(struct audit_ctx *ctx, struct audit_result *res, json_t *params);
};

extern const struct audit_check audit_checks[];
extern const size_t audit_n_checks;
const struct audit_check *audit_check_find(const char *id);

#define AUDIT_MAX_EVIDENCE 24

struct audit_evidence {
        char *path;
        char *observed;
        char *expected;
};

struct audit_result {
        const struct audit_check *check;
        enum audit_status status;
        enum audit_severity severity;
        char *message;
        struct audit_evidence ev[AUDIT_MAX_EVIDENCE];
        size_t n_ev;
        bool ev_truncated;
        char *waiver_rationale;    /* set when a waiver matched (valid or expired) */
        int64_t waiver_expires;
        bool waiver_expired;
};

/* Record evidence (copies; NULL fields allowed). Extra evidence beyond the cap is counted, not kept. */
void audit_evidence(struct audit_result *res, const char *path, const char *observed, const char *expected);
/*
 * Status changes: fail wins over error, error over pass. The first message set is kept.
 * audit_pass records the pass (and its evidence, when given) only if nothing else was recorded yet:
 * INVARIANT: a check passes only by calling audit_pass; returning without a verdict is an error.
 */
void audit_pass(struct audit_result *res, const char *path, const char *observed, const char *expected);
void audit_fail(struct audit_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void audit_error(struct audit_result *res, int r, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
void audit_note(struct audit_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Profiles: JSON text, see docs/audit.md. Built-ins "prod" and "dev" are compiled in. */
struct audit_profile {
        char *name;
        json_t *doc;               /* fully merged (base applied) */
        char sha256[65];           /* of the merged document, compact and key-sorted */
};
/* name_or_path: "prod", "dev", or a file. */
int audit_profile_load(const char *name_or_path, struct audit_profile *ret);
void audit_profile_done(struct audit_profile *p);
const char *audit_builtin_profile(const char *name);   /* JSON text or NULL */

/* Waivers file: {"waivers":[{"id","rationale","expires"}]}. Unknown IDs are -RINGIL_EMALFORMED. */
struct audit_waiver {
        char *id;
        char *rationale;
        int64_t expires;
};
struct audit_waivers {
        struct audit_waiver *v;
        size_t n;
};
#define AUDIT_WAIVERS_MAX_SIZE (256u << 10)
int audit_waivers_parse(const char *text, size_t len, struct audit_waivers *ret);
void audit_waivers_done(struct audit_waivers *w);

enum audit_mode {
        AUDIT_MODE_AUTO,
        AUDIT_MODE_LIVE,
        AUDIT_MODE_OFFLINE,
};

struct audit_run {
        char *root;
        enum audit_mode mode;          /* resolved: LIVE or OFFLINE */
        int64_t started;
        uint64_t duration_us;
        char *profile_name;
        char profile_sha256[65];
        struct audit_result *results;  /* enabled checks only, in catalogue order */
        size_t n_results;
        size_t counts[_AUDIT_STATUS_MAX];
        bool openat2;
};

/* Run every enabled check. Waivers (may be NULL) are applied at time now. */
int audit_run(const char *root, enum audit_mode mode, const struct audit_profile *profile,
              const struct audit_waivers *waivers, int64_t now, struct audit_run *ret);
void audit_run_done(struct audit_run *run);

/* Exit code of `ringil audit`: 0 compliant, 2 a fail at or above fail_on, 3 something unchecked. */
enum {
        AUDIT_EXIT_OK = 0,
        AUDIT_EXIT_USAGE = 1,
        AUDIT_EXIT_FAIL = 2,
        AUDIT_EXIT_UNCHECKED = 3,
};
int audit_exit_code(const struct audit_run *run, enum audit_severity fail_on);

const char *audit_status_to_string(enum audit_status s);
const char *audit_severity_to_string(enum audit_severity s);
int audit_severity_from_string(const char *s, enum audit_severity *ret);
const char *audit_scope_to_string(enum audit_scope s);

/* Reports: the whole document as a malloc'd string. */
enum audit_format {
        AUDIT_FORMAT_TEXT,
        AUDIT_FORMAT_JSON,
        AUDIT_FORMAT_JUNIT,
        AUDIT_FORMAT_SARIF,
};
int audit_report(const struct audit_run *run, enum audit_format fmt, enum audit_severity fail_on, char **ret);

/* ---- for check implementations (audit-checks.c) ---- */
struct audit_ctx;
/* Run one check on res (status starts unset); an unset verdict afterwards becomes an error. */
void audit_run_check(struct audit_ctx *ctx, const struct audit_check *c, struct audit_result *res, json_t *params);

struct audit_ctx {
        struct audit_fs *fs;
        bool live;
        /* lazily loaded, shared between checks; *_r holds the load result (0 ok, <0 error) */
        bool cmdline_loaded;
        int cmdline_r;
        char *cmdline_path;
        struct strv cmdline;
        bool pw_loaded;
        int passwd_r, shadow_r;
        struct pw_list passwd, shadow;
};
