/* install-state.h: the installer's crash-safe state file, the anti-rollback floor and fault injection. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"

/*
 * <state-dir>/install.state, INI text (install-conf.h's reader, so the same caps and fuzz target apply),
 * replaced only through atomic_write_file: after a crash it holds the previous or the next record,
 * never a mix. The floor is kept in two more files, <state-dir>/floor and the configured floor copy
 * (on the ESP by default), so that losing the state directory does not lower it.
 */
#define INSTALL_STATE_FILE "install.state"
#define INSTALL_FLOOR_FILE "floor"
#define INSTALL_MAX_PAYLOADS 16
#define INSTALL_ERROR_MAX 200

enum install_phase {
        PHASE_IDLE,      /* nothing in flight */
        PHASE_WRITING,   /* verified manifest accepted; chunks of `slot` being written */
        PHASE_PENDING,   /* slot complete, boot entry with tries installed; awaiting mark-good */
};

enum slot_status {
        SLOT_EMPTY,      /* nothing known */
        SLOT_WRITING,    /* partially written: never bootable */
        SLOT_PENDING,    /* complete, entry has boot tries left */
        SLOT_GOOD,       /* blessed */
        SLOT_BAD,        /* failed its tries, or marked bad */
};

struct slot_record {
        char *version;           /* NULL when unknown */
        enum slot_status status;
};

struct install_state {
        enum install_phase phase;
        bool have_digest;
        uint8_t digest[SHA256_LEN];   /* manifest digest of the bundle being installed */
        char *version;
        int slot;                     /* 0/1, -1 when none */
        unsigned attempts;            /* runs of `ringil install` for this digest (informational) */
        unsigned stalls;              /* runs in a row that added no durable progress: cut short before a
                                         checkpoint, or failed; bounded by max-attempts */
        uint64_t writes;              /* chunk writes for this digest over all runs (resume proof) */
        size_t n_progress;
        uint64_t progress[INSTALL_MAX_PAYLOADS];   /* chunks verified, written and fsynced */
        char *last_error;             /* one line, or NULL */
        int64_t time_floor;           /* trusted-time floor: latest `created` of an authenticated bundle, 0 none */
        struct slot_record slots[2];
};

const char *install_phase_to_string(enum install_phase p);
const char *slot_status_to_string(enum slot_status s);

/* Parse/format the state text. Parse: -RINGIL_EMALFORMED/-RINGIL_ETOOBIG with a detail. */
int install_state_parse(const char *text, size_t len, struct install_state *ret);
int install_state_format(const struct install_state *s, struct buf *out);
/* Load from the state dir: a missing file gives an empty state (phase idle, slot -1). */
int install_state_load(const char *state_dir, struct install_state *ret);
int install_state_save(const char *state_dir, const struct install_state *s);
void install_state_init(struct install_state *s);
void install_state_done(struct install_state *s);
/* Replace the last error (one line, control characters replaced, capped); NULL clears it. */
int install_state_set_error(struct install_state *s, const char *msg);

/*
 * A floor record is "VERSION\n", optionally followed by "time-floor SECONDS\n": the trusted-time floor
 * (the `created` time of the newest authenticated bundle; the clock is never believed to be earlier).
 * The effective floor: the highest valid version and the highest time among <state-dir>/floor and the
 * floor copy (missing files are skipped). *ret is NULL when no floor exists; *ret_time (optional) is 0
 * when no time is recorded. A present but malformed record fails closed (-RINGIL_EMALFORMED): neither
 * floor is ever silently lowered.
 */
int floor_read(const char *state_dir, const char *floor_copy, char **ret, int64_t *ret_time);
/* Raise both records to version and time_floor where they are above the current ones; never lowers. */
int floor_raise(const char *state_dir, const char *floor_copy, const char *version, int64_t time_floor);

/*
 * Fault injection for the crash-consistency tests. RINGIL_TEST_CRASH_AT=N (read once) makes the Nth
 * call SIGKILL the process; every call is logged at debug level as "crash point N: what". Without
 * the variable this is a counter increment. Killing oneself grants nothing an attacker with the
 * environment of a root process does not already have.
 */
void crash_point(const char *what);
