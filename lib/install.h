/* install.h: the A/B install engine: verify, stream verified chunks to the inactive slot, boot entry. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "install-conf.h"
#include "install-state.h"

/*
 * State machine and crash-safety argument: docs/install.md. Errors are negative errno / err.h codes
 * with a detail recorded; the failure reason is also stored as last-error in the state file (when the
 * manifest verified, so an unauthenticated bundle cannot write the state).
 */

struct install_opts {
        const char *bundle;      /* path, or "-" for stdin */
        int slot;                /* force the target slot (0/1), -1: the one not booted */
        const char *booted;      /* booted entry id override (tests, recovery); NULL: LoaderEntrySelected */
        int64_t now;             /* 0: current time; raised to the trusted-time floor either way */
        /* Delta installs (docs/install.md "Delta updates"): */
        bool reuse;              /* take chunks found in the slots (and seeds) instead of the bundle */
        const char *const *seeds;   /* NULL-terminated extra read-only files to look in, or NULL */
        bool fetch_stdio;        /* the bundle comes through the fetch protocol (install-fetch.h) */
        uint64_t fetch_size;     /* its length as the agent was told; 0 unknown */
        unsigned full_above;     /* fetch protocol: one sequential download when more than this percentage
                                    of the payload bytes would be fetched (0..100) */
};

struct install_result {
        int slot;
        char version[128];
        bool resumed;              /* chunks_skipped > 0: an earlier run of this bundle left progress */
        uint64_t chunks_total;
        uint64_t chunks_written;   /* in this run */
        uint64_t chunks_skipped;   /* already verified, written and fsynced by an earlier run */
        /* Delta installs: */
        uint64_t bytes_planned_local, bytes_planned_fetch;   /* what the scan found / left to fetch */
        uint64_t bytes_local;      /* payload bytes taken from local storage after re-hashing */
        uint64_t bytes_inplace;    /* of which already in place in the target (not rewritten) */
        uint64_t bytes_fetched;    /* chunk bytes that came through the fetch protocol */
        uint64_t bytes_received;   /* everything received through it (metadata and skipped bytes too) */
        uint64_t chunks_refetched; /* local chunks that failed their hash on use and were fetched */
        bool full_download;        /* fetch protocol: one sequential range */
};

int install_run(const struct device_conf *c, const struct install_opts *o, struct install_result *ret);

enum booted_state {
        BOOTED_OK,
        BOOTED_UNKNOWN,   /* no --booted and no LoaderEntrySelected */
        BOOTED_FOREIGN,   /* the booted entry is not one of our slots (e.g. an installer's) */
        BOOTED_INVALID,   /* ours, but the ESP disagrees (no file, two files, another version), or I/O */
};

/*
 * The booted slot's entry, never guessed from the state: the id from the `booted` override or
 * LoaderEntrySelected, as any systemd-boot version reports it (with or without the +LEFT-DONE counter
 * and the .conf suffix), cross-checked with LoaderBootCountPath when the loader set it, and confirmed
 * against the ESP (bootentry_identify()). *ret is the entry file as it is now; *ret_reported (optional)
 * the id as reported. On failure *ret_state says why and the detail says what to do: -ENOENT
 * (BOOTED_UNKNOWN), -RINGIL_EREFUSED (FOREIGN, or INVALID), or an I/O / malformed-variable error.
 *
 * install_run() refuses (-RINGIL_EREFUSED) unless the booted slot is known and recorded good, or --slot
 * is given while no slot is recorded good (first provisioning; the booted slot may then be unknown or
 * not ours).
 */
struct boot_entry;
int install_find_booted(const struct device_conf *c, const char *booted, struct boot_entry *ret, char **ret_reported,
                        enum booted_state *ret_state);

/* Bless the booted entry, raise the floor to its version, record it good. Generation mode: see
 * install_nix_mark_good() (returns 1 when it recorded a rollback instead). */
int install_mark_good(const struct device_conf *c, const char *booted, char **ret_version);
/* Mark the booted entry bad (0 tries left, so it sorts behind the other slot), record it bad. */
int install_mark_bad(const struct device_conf *c, const char *booted);

/* Run a hook executable (no shell) with RINGIL_* environment; its exit status, or a negative errno. */
int install_run_hook(const char *path, const char *phase, int slot, const char *version);

/*
 * Authenticode check of an EFI payload against the db certificate(s) in keyring, before it may be
 * placed on the ESP. Returns 0 only when the image verifies; -RINGIL_EREFUSED when this build has no
 * Authenticode verifier (the payload is then refused, never placed unchecked).
 */
int install_efi_verify(const char *keyring, const uint8_t *data, size_t len);
bool install_efi_verifier_available(void);
