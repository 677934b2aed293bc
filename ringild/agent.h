/* agent.h: ringild's pieces: persistent agent state, the install-engine bridge, the poll loop. */
#pragma once

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
};

struct agent_state {
        enum agent_phase phase;
        uint64_t seq;             /* of the last state change */
        bool acked;               /* server stored report `seq` */
        enum fleet_state state;
        int64_t release;
        int64_t failed_release;   /* do not retry this release (refused, rolled back) */
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
};

int engine_status(const struct agent_config *c, struct engine_status *ret);
int engine_mark(const struct agent_config *c, bool good, char *err, size_t errlen);
/* Run a shell command line (reboot, health gate) and return its exit status or negative errno. */
int run_command(const char *cmdline);

/*
 * Stream release `release` (size bytes) from the server into `ringil install -`, resuming with Range
 * requests after cuts. Returns 0 when the engine accepted and wrote the bundle; otherwise the
 * engine's exit code mapped to a negative errno, with its last error line in err.
 */
int engine_install_from_server(const struct agent_config *c, fleet_client *fc, int64_t release, uint64_t size,
                               char *err, size_t errlen, uint64_t *ret_downloaded);

/* What a delta install fetched and reused (ringild/fetch.c). */
struct engine_delta_result {
        uint64_t fetched;         /* bytes received from the network, retries included */
        uint64_t reused;          /* payload bytes the engine planned to take from local storage */
        uint64_t planned_fetch;   /* payload bytes it planned to fetch */
        uint64_t payload;         /* payload bytes the install still needed */
        bool full;                /* one sequential download (threshold, or no Range support) */
        bool no_range;            /* the source ignored Range requests */
};

/*
 * Install through the fetch protocol: `ringil install --fetch-stdio` asks for the byte ranges it cannot
 * find on the drone and this fetches them from urls (NULL-terminated, tried in order) with parallel Range
 * requests; a source without Range support gets one sequential download instead. Returns as
 * engine_install_from_server() does.
 */
int engine_install_delta(const struct agent_config *c, const char *const *urls, uint64_t size, char *err, size_t errlen,
                         struct engine_delta_result *ret);

int agent_run(const struct agent_config *c, bool once);
int agent_enroll(const struct agent_config *c, const char *id, const char *token);
