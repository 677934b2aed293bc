/* agent.h: ringild's pieces: persistent agent state, the install-engine bridge, the poll loop. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet-agentconf.h"
#include "fleet-msg.h"
#include "fleet-client.h"

/*
 * STATE_DIR/agent.state ("key = value", replaced atomically). It holds the last state change and
 * whether the server acknowledged it, so a report survives agent restarts and reboots and is resent
 * until the server answers 200; and the phase, so that after a reboot the agent knows it must run
 * the health gate for `target`.
 */
enum agent_phase {
        AGENT_IDLE,
        AGENT_REBOOTING,   /* new slot installed, reboot requested: next start runs the health gate */
        AGENT_INSTALLED,   /* new slot installed after the window closed: reboot when it opens again */
};

struct agent_state {
        enum agent_phase phase;
        uint64_t seq;             /* of the last state change */
        bool acked;               /* server stored report `seq` */
        enum fleet_state state;
        int64_t release;
        int64_t failed_release;   /* do not retry this release (refused, rolled back) … */
        uint32_t failed_retry;    /* … unless the server's retry generation rises above this one */
        char target[FLEET_VERSION_MAX];
        char error[FLEET_TEXT_MAX];
        char boot_id[64];         /* boot in which the reboot was requested */
        uint64_t bytes_fetched;   /* last install of `release`: bytes downloaded */
        uint64_t bytes_reused;    /* … and payload bytes taken from the drone's own slots */
};

int agent_state_load(const char *dir, struct agent_state *ret);
int agent_state_save(const char *dir, const struct agent_state *s);
int agent_state_parse(const char *text, size_t len, struct agent_state *ret);

/* What the install engine says about the running system (`ringil status --json`). */
struct engine_status {
        char version[FLEET_VERSION_MAX];   /* booted slot's version, "" unknown */
        char slot[16];
        char boot[16];                     /* good / pending / bad / unknown */
        bool generation;                   /* NixOS-generation mode ([nix] in device.conf) */
        char system[FLEET_TEXT_MAX];       /* generation mode: the running system's store path */
        /*
         * Can the engine install now? Not when the booted slot is unknown (no LoaderEntrySelected) or not
         * blessed, or a generation is pending: the drone's own state, so a refusal for it is retried.
         */
        bool ready;
        char not_ready[160];
};

int engine_status(const struct agent_config *c, struct engine_status *ret);
int engine_mark(const struct agent_config *c, bool good, char *err, size_t errlen);
/* Run a shell command line (reboot, health gate) and return its exit status or negative errno. */
int run_command(const char *cmdline);
/* Run argv (no shell) with stdout to out_fd and stderr to ours; its exit status (128+N for signal N). */
int agent_spawn_wait(const char *const argv[], int out_fd);

/*
 * `ringil install FILE`: the engine verifies the bundle completely before it writes anything. Returns
 * 0, or the engine's exit code mapped to a negative errno with its last error line in err.
 */
int engine_install_file(const struct agent_config *c, const char *path, char *err, size_t errlen);
/* The engine's exit code as a negative errno (0 for 0; a negative code is passed through). */
int engine_exit_to_errno(int code);
/* The last non-empty line of an engine's output (memfd fd) into err, every line to our log under `what`. */
void engine_collect_output(int fd, const char *what, char *err, size_t errlen);
/* Is r the engine refusing the bundle itself (signature, trust, expiry, floor, compatible, digest, format)? */
bool engine_refused_bundle(int r);

/* download.c: the assigned bundle into download-dir, resumable (see there). */
typedef void (*download_tick_fn)(void *userdata);
/*
 * Returns 0 with *ret_path (malloc'd) naming the complete file whose SHA-256 is the assignment's;
 * -EINTR when *stop was set; -EACCES when the server no longer serves the release to this drone;
 * any other negative errno is a fault of the link, the server or this drone (err says which): retry.
 * tick runs between ranges (progress reports).
 */
int download_bundle(const struct agent_config *c, fleet_client *fc, const struct fleet_assignment *as,
                    const volatile sig_atomic_t *stop, download_tick_fn tick, void *userdata, char **ret_path,
                    uint64_t *ret_fetched, char *err, size_t errlen);
/* Has a download of this assignment begun (a part or a complete file in download-dir)? */
bool download_started(const struct agent_config *c, const struct fleet_assignment *as);
/* A rate limit for a stream of deliveries: sleeps (until stop) so that the bytes stay under rate/s. */
struct download_pacer {
        uint64_t rate;                     /* bytes/s, 0: none */
        uint64_t start_ms, bytes;          /* the limiter's clock (0: starts at the first call), bytes since */
        const volatile sig_atomic_t *stop;
};
void download_pace(struct download_pacer *p, size_t n);
/* Remove downloads of every release but keep's (keep NULL or unassigned: all). */
void download_cleanup(const struct agent_config *c, const struct fleet_assignment *keep);
/* Remove the download of this assignment. */
void download_forget(const struct agent_config *c, const struct fleet_assignment *as);

/* compliance.c: `ringil audit` and `ringil keys status` summaries (memory only, see there). */
int compliance_audit(const struct agent_config *c, const char *running_version, struct fleet_audit *ret);
int compliance_secureboot(const struct agent_config *c, struct fleet_secureboot *ret);

/* What a delta install fetched and reused (ringild/fetch.c). */
struct engine_delta_result {
        uint64_t fetched;         /* bytes received from the network, retries included */
        uint64_t reused;          /* payload bytes the engine planned to take from local storage */
        uint64_t planned_fetch;   /* payload bytes it planned to fetch */
        uint64_t payload;         /* payload bytes the install still needed */
        bool full;                /* one sequential download (threshold, or no Range support) */
        bool no_range;            /* the source ignored Range requests */
};

struct engine_delta_opts {
        fleet_client *fc;                  /* the agent's client: the server list and credentials */
        const struct fleet_assignment *as; /* the bundle: its size, mirrors and metadata hash (source.h) */
        uint64_t rate;                     /* bytes/s over the network, 0: none (a rollout's limit) */
        download_tick_fn tick;             /* after each delivery (progress check-ins), or NULL */
        void *userdata;
        const volatile sig_atomic_t *stop; /* set: the fetch ends, the engine is stopped (-EINTR) */
};

/*
 * Install through the fetch protocol: `ringil install --fetch-stdio` asks for the byte ranges it cannot
 * find on the drone and this fetches them from the release's sources (source.h: mirrors, then the server;
 * parallel Range requests, every unit checked before it is handed on);
 * a source without Range support gets one sequential download into `ringil install -` instead. Nothing
 * touches the download directory: the engine writes the slot as the bytes come (resumable by its own
 * state). Returns 0; -EINTR when *o->stop was set; a network error (-ECONNRESET, -ETIMEDOUT, -EPROTO …,
 * err says which) after the fetcher's tries; -RINGIL_EDIGEST for an answer that was not the range asked;
 * or the engine's exit code as a negative errno (engine_refused_bundle() tells a refused bundle), err
 * its last line. *ret is filled in every case.
 */
int engine_install_delta(const struct agent_config *c, const struct engine_delta_opts *o, char *err, size_t errlen,
                         struct engine_delta_result *ret);

int agent_run(const struct agent_config *c, bool once);
int agent_enroll(const struct agent_config *c, const char *id, const char *token);
