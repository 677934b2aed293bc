/* agent.c: ringild's poll loop: check in, download, wait for the window, install, reboot, health gate, report. */
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "conf.h"
#include "fleet-ca.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "parse.h"
#include "secret.h"

#define AGENT_STATE_FILE "agent.state"
#define AGENT_MAX_RESPONSE 65536

/* ---- persistent state ---- */

static int state_kv(void *userdata, const struct conf_ctx *ctx, const char *value) {
        struct agent_state *s = userdata;
        const char *key = ctx->key;
        unsigned line = ctx->line;
        uint64_t u;

        if (!key)   /* the state file has no sections */
                return ringil_fail(-RINGIL_EMALFORMED, "line %u: unexpected section [%s]", line, ctx->section);

        if (streq(key, "phase")) {
                if (streq(value, "idle"))
                        s->phase = AGENT_IDLE;
                else if (streq(value, "rebooting"))
                        s->phase = AGENT_REBOOTING;
                else if (streq(value, "installed"))
                        s->phase = AGENT_INSTALLED;
                else
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad phase", line);
        } else if (streq(key, "state")) {
                if (fleet_state_from_string(value, &s->state) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad state", line);
        } else if (streq(key, "bytes-fetched") || streq(key, "bytes-reused")) {
                if (parse_u64(value, &u) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad %s", line, key);
                *(streq(key, "bytes-fetched") ? &s->bytes_fetched : &s->bytes_reused) = u;
        } else if (streq(key, "seq") || streq(key, "release") || streq(key, "failed-release") ||
                   streq(key, "acked") || streq(key, "failed-retry")) {
                if (parse_u64(value, &u) < 0 || u > INT64_MAX)
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: bad %s", line, key);
                if (streq(key, "seq"))
                        s->seq = u;
                else if (streq(key, "release"))
                        s->release = (int64_t) u;
                else if (streq(key, "failed-release"))
                        s->failed_release = (int64_t) u;
                else if (streq(key, "failed-retry"))
                        s->failed_retry = (uint32_t) MIN(u, (uint64_t) UINT32_MAX);
                else
                        s->acked = u != 0;
        } else if (streq(key, "target")) {
                if (strlen(value) >= sizeof(s->target))
                        return ringil_fail(-RINGIL_EMALFORMED, "line %u: target too long", line);
                strcpy(s->target, value);
        } else if (streq(key, "boot-id")) {
                snprintf(s->boot_id, sizeof(s->boot_id), "%s", value);
        } else if (streq(key, "error")) {
                snprintf(s->error, sizeof(s->error), "%s", value);
        } else
                return ringil_fail(-RINGIL_EMALFORMED, "line %u: unknown key '%s'", line, key);
        return 0;
}

int agent_state_parse(const char *text, size_t len, struct agent_state *ret) {
        struct agent_state s = { .acked = true };
        int r = conf_read(text, len, NULL, state_kv, &s);

        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

int agent_state_load(const char *dir, struct agent_state *ret) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        if (asprintf(&path, "%s/" AGENT_STATE_FILE, dir) < 0)
                return -ENOMEM;
        r = read_full_file(path, RFILE_NOFOLLOW, CONF_MAX_SIZE, &data, &len);
        if (r == -ENOENT) {
                *ret = (struct agent_state) { .acked = true };
                return 0;
        }
        if (r < 0)
                return r;
        return agent_state_parse((const char *) data, len, ret);
}

int agent_state_save(const char *dir, const struct agent_state *s) {
        _cleanup_free_ char *path = NULL;
        _cleanup_buf_ struct buf b = BUF_INIT(CONF_MAX_SIZE);
        char err[FLEET_TEXT_MAX];
        int r;

        if (asprintf(&path, "%s/" AGENT_STATE_FILE, dir) < 0)
                return -ENOMEM;
        /* Errors come from other programs: keep them on one printable line. */
        snprintf(err, sizeof(err), "%s", s->error);
        for (char *p = err; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        *p = '?';
        r = buf_printf(&b,
                       "# ringild state: written by ringild, do not edit\n"
                       "phase = %s\nseq = %" PRIu64 "\nacked = %d\nstate = %s\nrelease = %" PRId64 "\n"
                       "failed-release = %" PRId64 "\nfailed-retry = %" PRIu32 "\ntarget = %s\nerror = %s\n"
                       "boot-id = %s\nbytes-fetched = %" PRIu64 "\nbytes-reused = %" PRIu64 "\n",
                       s->phase == AGENT_REBOOTING ? "rebooting" : s->phase == AGENT_INSTALLED ? "installed" : "idle",
                       s->seq, s->acked ? 1 : 0, fleet_state_to_string(s->state), s->release, s->failed_release,
                       s->failed_retry, s->target, err, s->boot_id, s->bytes_fetched, s->bytes_reused);
        if (r < 0)
                return r;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        return atomic_write_file(path, b.data, b.len, 0600, 0);
}

/* ---- reporting ---- */

struct agent {
        const struct agent_config *cfg;
        fleet_client *fc;
        struct agent_state st;
        struct engine_status eng;
        struct fleet_audit audit;        /* last audit summary (memory only) */
        struct fleet_secureboot sb;
        int64_t audit_at;                /* when it ran, 0: never */
        char tz[64];                     /* reported time zone name */
        char server_compliance[65];      /* digest of the compliance report the server holds, "" unknown */
        uint32_t server_poll;
        time_t last_contact;             /* last answered check-in or report */
        time_t work_after;               /* earliest retry of a failed download or install */
        unsigned work_failures;
        bool in_poll;                    /* a progress check-in must not run inside another request */
};

static void fill_status(const struct agent *a, struct fleet_status *s) {
        time_t now = time(NULL);
        struct tm tm;

        *s = (struct fleet_status) {
                .state = a->st.state,
                .release = a->st.release,
                .audit = a->audit,
                .sb = a->sb,
        };
        snprintf(s->version, sizeof(s->version), "%s", a->eng.version);
        snprintf(s->slot, sizeof(s->slot), "%s", a->eng.slot);
        snprintf(s->boot, sizeof(s->boot), "%s", a->eng.boot);
        snprintf(s->target, sizeof(s->target), "%s", a->st.target);
        snprintf(s->error, sizeof(s->error), "%s", a->st.error);
        s->bytes_fetched = a->st.bytes_fetched;
        s->bytes_reused = a->st.bytes_reused;
        snprintf(s->system, sizeof(s->system), "%s", a->eng.system);
        snprintf(s->tz, sizeof(s->tz), "%s", a->tz);
        if (localtime_r(&now, &tm)) {
                s->has_utc_offset = true;
                s->utc_offset = (int32_t) MAX(MIN(tm.tm_gmtoff, 14L * 3600), -14L * 3600);
        }
}

/* Send the last state change until the server acknowledges it (or give up for this round). */
static int flush_report(struct agent *a) {
        struct fleet_status s;
        _cleanup_free_ char *body = NULL;
        _cleanup_buf_ struct buf resp = {};
        long status = 0;
        int r;

        if (a->st.acked || a->st.seq == 0)
                return 0;
        fill_status(a, &s);
        s.seq = a->st.seq;
        r = fleet_status_format(&s, &body);
        if (r < 0)
                return r;
        r = fleet_client_request(a->fc, "POST", "/api/v1/report", body, AGENT_MAX_RESPONSE, &status, &resp);
        if (r < 0)
                return log_warning_errno(r, "Report %" PRIu64 " not delivered: %s", a->st.seq, ringil_detail());
        if (status == 409) {
                /* The server holds a newer report than ours: our counter went back (state wiped);
                 * jump past it rather than report forever into the void. */
                a->st.seq += 1000;
                return -EAGAIN;
        }
        if (status != 200)
                return log_warning_errno(-EPROTO, "Report %" PRIu64 " refused with HTTP %ld", a->st.seq, status);
        a->last_contact = time(NULL);
        a->st.acked = true;
        return agent_state_save(a->cfg->state_dir, &a->st);
}

/* Record a state change durably, then report it. */
static int transition(struct agent *a, enum fleet_state state, int64_t release, const char *target,
                      const char *error) {
        char t[FLEET_VERSION_MAX], e[FLEET_TEXT_MAX];
        int r;

        /* copies first: callers pass a->st.target or a->st.error themselves */
        snprintf(t, sizeof(t), "%s", target ? target : "");
        snprintf(e, sizeof(e), "%s", error ? error : "");
        a->st.state = state;
        a->st.release = release;
        memcpy(a->st.target, t, sizeof(t));
        memcpy(a->st.error, e, sizeof(e));
        target = a->st.target;
        error = a->st.error;
        a->st.seq++;
        a->st.acked = false;
        r = agent_state_save(a->cfg->state_dir, &a->st);
        if (r < 0)
                return log_error_errno(r, "Cannot save agent state: %m");
        log_info("state %s (release %" PRId64 "%s%s)%s%s", fleet_state_to_string(state), release,
                 target && *target ? ", target " : "", target ? target : "", error && *error ? ": " : "",
                 error ? error : "");
        (void) flush_report(a);
        return 0;
}

/* Audit and Secure Boot state of the running system, for the next check-in (never written to disk). */
static void refresh_compliance(struct agent *a) {
        int r;

        if (!a->cfg->audit)
                return;
        r = compliance_audit(a->cfg, a->eng.version, &a->audit);
        if (r < 0) {
                log_warning_errno(r, "Audit failed: %s", ringil_detail());
                a->audit = (struct fleet_audit) {};
        } else
                log_info("audit (%s): %" PRIu32 " pass, %" PRIu32 " fail, %" PRIu32 " error", a->audit.profile,
                         a->audit.pass, a->audit.fail, a->audit.error);
        r = compliance_secureboot(a->cfg, &a->sb);
        if (r < 0) {
                log_warning_errno(r, "Secure Boot status failed: %s", ringil_detail());
                a->sb = (struct fleet_secureboot) {};
        }
        a->audit_at = (int64_t) time(NULL);
}

/* ---- after a reboot: health gate ---- */

static void read_boot_id(const struct agent_config *c, char buf[static 64]) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0, o = 0;

        buf[0] = '\0';
        if (read_full_file(c->boot_id_file, 0, 256, &data, &len) < 0)
                return;
        for (size_t i = 0; i < len && o < 63; i++)
                if ((data[i] >= '0' && data[i] <= '9') || (data[i] >= 'a' && data[i] <= 'f') || data[i] == '-')
                        buf[o++] = (char) data[i];
        buf[o] = '\0';
}

static int request_reboot(struct agent *a) {
        int r;

        a->st.phase = AGENT_REBOOTING;
        read_boot_id(a->cfg, a->st.boot_id);
        r = transition(a, FLEET_STATE_REBOOTING, a->st.release, a->st.target, NULL);
        if (r < 0)
                return r;
        r = run_command(a->cfg->reboot_command);
        if (r != 0)
                log_error("reboot command exited %d", r);
        return 1;   /* rebooting: stop polling */
}

static int finish_reboot(struct agent *a) {
        char err[FLEET_TEXT_MAX] = "", boot_id[64];
        int r;

        read_boot_id(a->cfg, boot_id);
        if (boot_id[0] && streq(boot_id, a->st.boot_id)) {
                /* Same boot: the agent restarted before the reboot happened. Ask again; judging the
                 * new slot now would report a rollback that did not occur. */
                log_notice("reboot into %s still pending; requesting it again", a->st.target);
                r = run_command(a->cfg->reboot_command);
                if (r != 0)
                        log_error("reboot command exited %d", r);
                return 1;
        }

        if (!streq(a->eng.version, a->st.target)) {
                /* The boot loader fell back (tries exhausted) or the new slot never booted. */
                snprintf(err, sizeof(err), "booted version '%s' instead of '%s': new %s did not boot",
                         a->eng.version[0] ? a->eng.version : "unknown", a->st.target,
                         a->eng.generation ? "generation" : "slot");
                /* Generation mode: roll the profile back now, so that no later switch-to-configuration
                 * (or the boot loader's default) brings the failed generation back; refused harmlessly
                 * when the bless unit already did it. Slot mode needs nothing: the entry is out of tries. */
                if (a->eng.generation)
                        (void) engine_mark(a->cfg, false, NULL, 0);
                a->st.phase = AGENT_IDLE;
                a->st.failed_release = a->st.release;
                a->st.failed_retry = UINT32_MAX;   /* set from the assignment at the next poll */
                refresh_compliance(a);
                return transition(a, FLEET_STATE_ROLLED_BACK, a->st.release, a->st.target, err);
        }
        r = a->cfg->health_command ? run_command(a->cfg->health_command) : 0;
        if (r == 0) {
                r = engine_mark(a->cfg, true, err, sizeof(err));
                if (r < 0)
                        return log_error_errno(r, "mark-good failed: %s", err);
                (void) engine_status(a->cfg, &a->eng);
                a->st.phase = AGENT_IDLE;
                /* The audit after the install: the report that says "updated" carries it, so the server's
                 * drift gate judges the system the drone actually runs now. */
                refresh_compliance(a);
                return transition(a, FLEET_STATE_UPDATED, a->st.release, a->st.target, NULL);
        }
        snprintf(err, sizeof(err), "health gate failed (%s exited %d)", a->cfg->health_command, r);
        log_error("%s: marking the new slot bad and rolling back", err);
        (void) engine_mark(a->cfg, false, NULL, 0);
        a->st.phase = AGENT_IDLE;
        a->st.failed_release = a->st.release;
        a->st.failed_retry = UINT32_MAX;
        r = transition(a, FLEET_STATE_ROLLED_BACK, a->st.release, a->st.target, err);
        if (r < 0)
                return r;
        /* Back to the slot we came from (at once, window or not: it is the known-good one); a later
         * start reports its version. */
        r = run_command(a->cfg->reboot_command);
        if (r != 0)
                log_error("reboot command exited %d", r);
        return 1;
}

/* ---- one poll ---- */

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) {
        (void) sig;
        stop_requested = 1;
}

static int checkin(struct agent *a, struct fleet_assignment *ret) {
        struct fleet_assignment ignored;
        struct fleet_status s;
        bool sent_full;
        _cleanup_free_ char *body = NULL;
        _cleanup_buf_ struct buf resp = {};
        long status = 0;
        int r;

        fill_status(a, &s);
        r = fleet_compliance_digest(&s, s.compliance);
        if (r < 0)
                return r;
        /* The report itself only when the server does not hold it yet (after a change, a restart of
         * either side, or when it asks): every other check-in names it by its digest. */
        sent_full = !streq(s.compliance, a->server_compliance);
        if (!sent_full) {
                s.system[0] = s.tz[0] = '\0';
                s.has_utc_offset = false;
                s.audit = (struct fleet_audit) {};
                s.sb = (struct fleet_secureboot) {};
        }
        r = fleet_status_format(&s, &body);
        if (r < 0)
                return r;
        r = fleet_client_request(a->fc, "POST", "/api/v1/checkin", body, AGENT_MAX_RESPONSE, &status, &resp);
        if (r < 0)
                return log_warning_errno(r, "Check-in failed: %s", ringil_detail());
        if (status != 200) {
                json_error_t e;
                json_t *j = json_loadb((const char *) resp.data, resp.len, 0, &e);
                const char *why = j ? json_string_value(json_object_get(j, "error")) : NULL;
                r = log_warning_errno(-EPROTO, "Check-in refused by %s: HTTP %ld: %s%s", fleet_client_url(a->fc), status,
                                      why ? why : "(no detail)",
                                      status == 401 || status == 403 ? " (the server does not accept this drone's "
                                                                       "certificate: not registered, replaced or "
                                                                       "revoked; ask the operator)" : "");
                json_decref(j);
                return r;
        }
        a->last_contact = time(NULL);
        /* INVARIANT: the server's answer only schedules; what gets installed is decided by the engine's
         * own verification of the bundle against the drone's keyring, floor and compatible. */
        r = fleet_assignment_parse(resp.data, resp.len, ret ? ret : &ignored);
        if (r < 0)
                return log_warning_errno(r, "Malformed assignment: %s", ringil_detail());
        if ((ret ? ret : &ignored)->resend_compliance)
                a->server_compliance[0] = '\0';
        else if (sent_full)
                memcpy(a->server_compliance, s.compliance, sizeof(a->server_compliance));
        return 0;
}

/* Between download ranges: a check-in every poll interval, so the server's deadline sees a live drone. */
static void download_tick(void *userdata) {
        struct agent *a = userdata;
        uint32_t every = a->server_poll ? a->server_poll : a->cfg->poll_interval;

        if (time(NULL) - a->last_contact >= (time_t) every)
                (void) checkin(a, NULL);
}

static bool window_open(const struct fleet_assignment *as, unsigned *ret_wait) {
        time_t now = time(NULL);
        struct tm tm;
        unsigned m;

        if (as->n_windows == 0)
                return true;
        if (!localtime_r(&now, &tm))
                return false;
        m = (unsigned) (tm.tm_hour * 60 + tm.tm_min);
        *ret_wait = fleet_windows_wait(as->windows, as->n_windows, m);
        return fleet_windows_open(as->windows, as->n_windows, m);
}

/*
 * A fault that is not the release's: the download was cut, the server refused or went away, the drone
 * is not in a state to install (slot unknown or not blessed), its disk is full, the engine was killed.
 * The release is kept, the download resumes, and the work is retried with backoff while the drone
 * keeps checking in (so its rollout sees it alive). Reported once per distinct reason.
 */
static int retry_later(struct agent *a, const struct fleet_assignment *as, int r, const char *why) {
        uint64_t backoff;

        a->work_failures++;
        backoff = (uint64_t) MIN(a->cfg->poll_interval, 30u) << MIN(a->work_failures, 16u);
        a->work_after = time(NULL) + (time_t) MIN(backoff, (uint64_t) a->cfg->backoff_max);
        if (a->st.state != FLEET_STATE_RETRYING || a->st.release != as->release || !streq(a->st.error, why))
                (void) transition(a, FLEET_STATE_RETRYING, as->release, as->version, why);
        log_notice("release %" PRId64 ": %s; retrying in %" PRId64 " s", as->release, why,
                   (int64_t) (a->work_after - time(NULL)));
        return r < 0 ? r : -EAGAIN;
}

static int fail_release(struct agent *a, const struct fleet_assignment *as, const char *why) {
        a->st.failed_release = as->release;
        a->st.failed_retry = as->retry;
        a->work_failures = 0;
        download_forget(a->cfg, as);
        return transition(a, FLEET_STATE_FAILED, as->release, as->version, why);
}

/*
 * A delta install: the engine fetches, through us, only the chunks the drone lacks, and writes the slot
 * as they come (ringild/fetch.c); the bytes come from the release's sources (mirrors, then the server).
 */
static int install_delta(struct agent *a, const struct fleet_assignment *as, char *err, size_t errlen) {
        struct engine_delta_result d = {};
        int r;

        r = engine_install_delta(a->cfg,
                                 &(struct engine_delta_opts){ .fc = a->fc, .as = as, .rate = as->rate,
                                                              .tick = download_tick, .userdata = a,
                                                              .stop = &stop_requested },
                                 err, errlen, &d);
        a->st.bytes_fetched = d.fetched;
        a->st.bytes_reused = d.reused;
        log_info("release %" PRId64 ": %" PRIu64 " bytes fetched, %" PRIu64 " payload bytes reused from the slots%s",
                 as->release, d.fetched, d.reused,
                 d.no_range ? " (no Range support: whole bundle)" : d.full ? " (one sequential download)" : "");
        return r;
}

static int install(struct agent *a, const struct fleet_assignment *as) {
        _cleanup_free_ char *path = NULL;
        char err[FLEET_TEXT_MAX] = "", msg[2 * FLEET_TEXT_MAX];
        uint64_t fetched = 0;
        unsigned wait = 0;
        bool delta;
        int r;

        if (a->st.release != as->release ||
            (a->st.state != FLEET_STATE_DOWNLOADING && a->st.state != FLEET_STATE_WAITING &&
             a->st.state != FLEET_STATE_RETRYING)) {
                r = transition(a, FLEET_STATE_DOWNLOADING, as->release, as->version, NULL);
                if (r < 0)
                        return r;
        }
        /* A delta install fetches while it writes the slot, so it runs only inside the window; outside
         * it the whole bundle is downloaded now and installed later, and a download that already began
         * that way is finished that way. */
        delta = a->cfg->delta && window_open(as, &wait) && !download_started(a->cfg, as);
        if (!delta) {
                /* 1. Download, at any time (rate-limited when the rollout says so). */
                r = download_bundle(a->cfg, a->fc, as, &stop_requested, download_tick, a, &path, &fetched, err, sizeof(err));
                log_info("fetched %" PRIu64 " bytes of release %" PRId64 " (%" PRIu64 " bytes)", fetched, as->release,
                         as->size);
                if (r == -EINTR)
                        return 0;   /* stopping: the partial download stays for the next start */
                if (r == -EACCES) {
                        log_notice("%s", err);
                        return 0;   /* reassigned meanwhile: the next check-in says what to do */
                }
                if (r < 0)
                        return retry_later(a, as, r, err[0] ? err : ringil_strerror(r));

                /* 2. Install and reboot only inside the maintenance window ("download now, install later"). */
                if (!window_open(as, &wait)) {
                        char why[FLEET_TEXT_MAX];
                        snprintf(why, sizeof(why), "downloaded; waiting for the maintenance window (opens in %u min)", wait);
                        a->work_failures = 0;
                        if (a->st.state != FLEET_STATE_WAITING || a->st.release != as->release)
                                return transition(a, FLEET_STATE_WAITING, as->release, as->version, why);
                        return 0;
                }
        }

        /* 3. The drone's own state must allow an install: that is not the release's fault. */
        r = engine_status(a->cfg, &a->eng);
        if (r < 0)
                return retry_later(a, as, r, "cannot read the install engine's status");
        if (!a->eng.ready) {
                snprintf(msg, sizeof(msg), "drone not ready to install: %s", a->eng.not_ready);
                return retry_later(a, as, -RINGIL_EREFUSED, msg);
        }

        /* 4. The engine verifies everything before it writes. */
        if (delta) {
                r = install_delta(a, as, err, sizeof(err));
                if (r == -EINTR)
                        return 0;   /* stopping: the engine's own state resumes the install next time */
        } else {
                r = engine_install_file(a->cfg, path, err, sizeof(err));
                /* the whole bundle came over the network (in this run or earlier ones) */
                a->st.bytes_fetched = as->size;
                a->st.bytes_reused = 0;
        }
        if (r < 0) {
                snprintf(msg, sizeof(msg), "%s: %s", ringil_strerror(r), err);
                /* INVARIANT: only a refusal of the bundle itself is final for a release; the drone's
                 * state, a killed engine or an I/O error are retried. */
                if (engine_refused_bundle(r))
                        return fail_release(a, as, msg);
                if (r == -RINGIL_EREFUSED) {
                        (void) engine_status(a->cfg, &a->eng);
                        if (a->eng.ready)
                                return fail_release(a, as, msg);   /* refused for what the bundle carries */
                        snprintf(msg, sizeof(msg), "drone not ready to install: %s", a->eng.not_ready);
                }
                return retry_later(a, as, r, msg);
        }
        a->work_failures = 0;
        download_forget(a->cfg, as);
        a->st.phase = AGENT_INSTALLED;
        read_boot_id(a->cfg, a->st.boot_id);
        r = transition(a, FLEET_STATE_INSTALLED, as->release, as->version, NULL);
        if (r < 0)
                return r;

        /* 5. Reboot, if the window is still open (else at its next opening). */
        if (!window_open(as, &wait)) {
                log_notice("installed after the window closed: rebooting when it opens again (in %u min)", wait);
                return 0;
        }
        return request_reboot(a);
}

static int poll_once(struct agent *a) {
        struct fleet_assignment as;
        unsigned wait = 0;
        int r;

        r = flush_report(a);
        if (r < 0 && r != -EAGAIN && !a->st.acked)
                return r;
        r = checkin(a, &as);
        if (r < 0)
                return r;
        a->server_poll = as.poll_interval;
        if (a->st.phase == AGENT_INSTALLED) {
                /* Installed, waiting for the window to reboot into it. */
                if (window_open(&as, &wait))
                        return request_reboot(a);
                log_debug("reboot into %s waits for the window (%u min)", a->st.target, wait);
                return 0;
        }
        if (!as.assigned || streq(as.version, a->eng.version)) {
                download_cleanup(a->cfg, NULL);
                if (a->st.state == FLEET_STATE_DOWNLOADING || a->st.state == FLEET_STATE_WAITING ||
                    a->st.state == FLEET_STATE_RETRYING)
                        /* the assignment was withdrawn (cleared, reassigned) before we installed it */
                        return transition(a, FLEET_STATE_IDLE, a->st.release, a->st.target, "assignment withdrawn");
                return 0;
        }
        download_cleanup(a->cfg, &as);
        if (as.release == a->st.failed_release && a->st.failed_retry == UINT32_MAX) {
                /* a rollback recorded before we knew the retry generation it happened at */
                a->st.failed_retry = as.retry;
                (void) agent_state_save(a->cfg->state_dir, &a->st);
        }
        if (as.release == a->st.failed_release && as.retry <= a->st.failed_retry) {
                log_debug("release %" PRId64 " failed before; waiting for a new one or a retry", as.release);
                return 0;
        }
        if (time(NULL) < a->work_after && a->st.release == as.release) {
                log_debug("release %" PRId64 ": next attempt in %" PRId64 " s", as.release,
                          (int64_t) (a->work_after - time(NULL)));
                return 0;
        }
        log_info("assignment: release %" PRId64 ", version %s (%" PRIu64 " bytes)%s%s", as.release, as.version, as.size,
                 as.retry > a->st.failed_retry && as.release == a->st.failed_release ? ", retry" : "",
                 as.rate ? ", download rate-limited" : "");
        if (as.rate)
                log_debug("download limit %" PRIu64 " bytes/s", as.rate);
        return install(a, &as);
}

static uint32_t jittered(uint32_t base, uint32_t pct) {
        uint32_t rnd = 0, span;

        if (pct == 0 || base == 0)
                return base;
        span = (uint32_t) ((uint64_t) base * pct / 100);
        (void) crypto_random(&rnd, sizeof(rnd));
        /* Uniform in [base - span, base + span]: spreads a fleet's check-ins after an outage. */
        return base - span + (span ? rnd % (2 * span + 1) : 0);
}

/* The zone maintenance windows are read in: the configured one, else the system's /etc/localtime. */
static int setup_timezone(const struct agent_config *c, char tz[static 64]) {
        char link[PATH_MAX];
        ssize_t n;

        tz[0] = '\0';
        if (c->timezone) {
                const char *dir = getenv("TZDIR") ?: "/usr/share/zoneinfo";
                _cleanup_free_ char *path = NULL;
                struct stat st;
                if (asprintf(&path, "%s/%s", dir, c->timezone) < 0)
                        return -ENOMEM;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        return ringil_fail(-ENOENT, "timezone '%s': no %s", c->timezone, path);
                if (setenv("TZ", c->timezone, 1) < 0)
                        return negative_errno();
                snprintf(tz, 64, "%s", c->timezone);
        } else {
                n = readlink("/etc/localtime", link, sizeof(link) - 1);
                if (n > 0) {
                        const char *z;
                        link[n] = '\0';
                        z = strstr(link, "zoneinfo/");
                        if (z && strlen(z + 9) < 64)
                                snprintf(tz, 64, "%s", z + 9);
                }
        }
        tzset();
        return 0;
}

int agent_run(const struct agent_config *c, bool once) {
        struct agent a = { .cfg = c };
        struct sigaction act = { .sa_handler = on_stop };
        unsigned failures = 0;
        int r;

        signal(SIGPIPE, SIG_IGN);
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGINT, &act, NULL);
        r = setup_timezone(c, a.tz);
        if (r < 0)
                return log_error_errno(r, "Invalid timezone: %s", ringil_detail());
        r = agent_state_load(c->state_dir, &a.st);
        if (r < 0)
                return log_error_errno(r, "Cannot read agent state in '%s': %s", c->state_dir, ringil_detail());
        r = fleet_client_new(c->server, c->ca, c->cert, c->key, c->timeout, &a.fc);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the HTTPS client: %s", ringil_detail());
        /* SIGTERM (systemctl stop) ends a transfer at once; the partial download is kept. */
        fleet_client_set_abort(a.fc, &stop_requested);
        r = engine_status(c, &a.eng);
        if (r < 0)
                log_warning_errno(r, "Cannot read the install engine's status: %s", ringil_detail());
        log_info("running version '%s' (slot %s, %s)", a.eng.version, a.eng.slot, a.eng.boot);

        if (a.st.phase == AGENT_INSTALLED) {
                char boot_id[64];
                read_boot_id(c, boot_id);
                /* Installed but waiting for its window, and the drone rebooted anyway: it booted the new
                 * slot (or fell back); judge it as after a requested reboot. */
                if (boot_id[0] && !streq(boot_id, a.st.boot_id))
                        a.st.phase = AGENT_REBOOTING;
        }
        if (a.st.phase == AGENT_REBOOTING) {
                r = finish_reboot(&a);
                if (r != 0) {
                        fleet_client_free(a.fc);
                        return r < 0 ? r : 0;
                }
        }
        /* At boot (start): the audit runs once; finish_reboot() ran it already after an update. */
        if (!a.audit_at)
                refresh_compliance(&a);
        for (;;) {
                time_t started = time(NULL);
                uint32_t wait;

                r = poll_once(&a);
                if (r > 0 || once || stop_requested)
                        break;
                /* Only a failed exchange with the server backs the polls off; a failed download or
                 * install has its own backoff (retry_later) and the drone keeps checking in. */
                if (r < 0 && a.last_contact < started)
                        failures++;
                else
                        failures = 0;
                wait = a.server_poll ? a.server_poll : c->poll_interval;
                if (failures > 0) {
                        /* Exponential backoff, capped: a fleet must not hammer a recovering server. Every
                         * server of the list was tried in this round (fleet-client.c); a server that said
                         * when to come back (Retry-After, e.g. its database restarting) is waited for. */
                        uint64_t b = (uint64_t) MIN(c->poll_interval, 30u) << MIN(failures, 16u);
                        wait = (uint32_t) MIN(b, (uint64_t) c->backoff_max);
                        wait = (uint32_t) MIN(MAX((long) wait, fleet_client_retry_after(a.fc)), (long) c->backoff_max);
                }
                wait = jittered(wait, c->poll_jitter);
                log_debug("next poll in %u s", wait);
                for (uint32_t i = 0; i < wait && !stop_requested; i++)
                        sleep(1);
                if (stop_requested)
                        break;
                if (c->audit_interval && (int64_t) time(NULL) - a.audit_at >= (int64_t) c->audit_interval)
                        refresh_compliance(&a);
        }
        fleet_client_free(a.fc);
        if (stop_requested)
                log_info("stopping");
        return r < 0 && once ? r : 0;
}

/* ---- enrollment ---- */

/* The certificate we were given must be for our key and our name, and chain to the pinned CA. */
static int check_issued(const struct agent_config *c, EVP_PKEY *key, const char *id, const char *pem) {
        _cleanup_x509_stack_ STACK_OF(X509) *got = sk_X509_new_null(), *anchors = NULL;
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        char cn[CA_NAME_MAX + 1];
        X509 *cert;
        int r;

        if (!got || !store || !ctx)
                return -ENOMEM;
        if (crypto_parse_pem_certs((const uint8_t *) pem, strlen(pem), got) != 1)
                return ringil_fail(-RINGIL_EMALFORMED, "enrollment answer is not one certificate");
        cert = sk_X509_value(got, 0);
        r = crypto_load_certs(c->ca, &anchors);
        if (r < 0)
                return r;
        for (int i = 0; i < sk_X509_num(anchors); i++)
                if (X509_STORE_add_cert(store, sk_X509_value(anchors, i)) != 1)
                        return crypto_fail(-ENOMEM, "CA store");
        if (X509_check_private_key(cert, key) != 1 || ca_cert_cn(cert, cn) < 0 || !streq(cn, id))
                return crypto_fail(-RINGIL_EUNTRUSTED, "issued certificate is not for this key and name");
        if (X509_STORE_CTX_init(ctx, store, cert, NULL) != 1 ||
            X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1 || X509_verify_cert(ctx) != 1)
                return crypto_fail(-RINGIL_EUNTRUSTED, "issued certificate does not chain to the pinned CA");
        return 0;
}

int agent_enroll(const struct agent_config *c, const char *id, const char *token) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ char *csr = NULL, *body = NULL;
        _cleanup_buf_ struct buf resp = {};
        fleet_client *fc = NULL;
        json_t *j;
        json_error_t e;
        const char *cert;
        long status = 0;
        int r;

        if (!c->enroll_server)
                return ringil_fail(-EINVAL, "the config has no enroll-server (the server's enrollment port)");
        if (access(c->key, F_OK) == 0 || access(c->cert, F_OK) == 0)
                return ringil_fail(-EEXIST, "'%s' or '%s' exists already (to enroll again with a re-issued token, "
                                   "move both away first)", c->key, c->cert);
        r = ca_generate_key(&key);
        if (r >= 0)
                r = ca_make_csr_pem(key, id, &csr);
        if (r < 0)
                return r;
        j = json_pack("{s:s, s:s, s:s}", "id", id, "token", token, "csr", csr);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!body)
                return -ENOMEM;
        /* No client certificate yet: the token is the credential, over a TLS channel to the pinned CA. */
        r = fleet_client_new(c->enroll_server, c->ca, NULL, NULL, c->timeout, &fc);
        if (r >= 0)
                r = fleet_client_request(fc, "POST", "/api/v1/enroll", body, AGENT_MAX_RESPONSE, &status, &resp);
        fleet_client_free(fc);
        secret_wipe(body, strlen(body));
        if (r < 0)
                return r;
        if (status != 200) {
                _cleanup_free_ char *why = NULL;
                j = json_loadb((const char *) resp.data, resp.len, 0, &e);
                why = strdup(j && json_is_string(json_object_get(j, "error")) ? json_string_value(json_object_get(j, "error"))
                                                                               : "no detail");
                json_decref(j);
                if (status == 403)
                        return ringil_fail(-RINGIL_EREFUSED,
                                           "%s refused the enrollment of '%s' (HTTP 403: %s): the token is wrong, used or "
                                           "expired, or the drone is revoked; ask the operator for a new token "
                                           "(ringil-server reissue-token %s)", c->server, id, why ? why : "?", id);
                if (status == 501)
                        return ringil_fail(-RINGIL_EREFUSED,
                                           "%s does not sign certificates (no ca.key): install one from `ringil ca issue` "
                                           "as `cert` and `key` instead", c->server);
                return ringil_fail(-EPROTO, "%s answered HTTP %ld to the enrollment: %s", c->server, status,
                                   why ? why : "?");
        }
        j = json_loadb((const char *) resp.data, resp.len, 0, &e);
        cert = j ? json_string_value(json_object_get(j, "cert")) : NULL;
        if (!cert) {
                json_decref(j);
                return ringil_fail(-RINGIL_EMALFORMED, "enrollment answer has no certificate");
        }
        r = check_issued(c, key, id, cert);
        if (r < 0) {
                json_decref(j);
                return r;
        }
        {
                _cleanup_free_ char *dir = strdup(c->key);
                char *slash = dir ? strrchr(dir, '/') : NULL;
                if (slash && slash != dir) {
                        *slash = '\0';
                        (void) mkdir_p(dir, 0700);
                }
        }
        r = ca_write_key(c->key, key, 0400);
        if (r >= 0) {
                r = atomic_write_file(c->cert, cert, strlen(cert), 0444, AW_NOREPLACE);
                if (r < 0)
                        (void) unlink(c->key);
        }
        json_decref(j);
        return r;
}
