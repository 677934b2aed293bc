/* fleet-msg.h: the agent ↔ server protocol messages (JSON), parsed strictly, and the file names of the Nix
 * binary cache the server may serve. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet-window.h"

/*
 * Wire format (docs/fleet.md): the drone POSTs a status object to /api/v1/checkin (heartbeat) and to
 * /api/v1/report (a state change, with a sequence number, stored durably before the 200); the
 * server answers a check-in with the drone's assignment. Every string has a cap and a charset; a
 * message over FLEET_MAX_MESSAGE bytes, with duplicate keys, unknown keys or wrong types is refused
 * with -RINGIL_EMALFORMED (or -RINGIL_ETOOBIG).
 */
#define FLEET_MAX_MESSAGE 8192
#define FLEET_VERSION_MAX 64
#define FLEET_TEXT_MAX 256
/* Bundle mirrors named by a release (docs/fleet.md "Bundles from mirrors"): https:// URLs of the whole
 * bundle file, each at most FLEET_URL_MAX bytes of URL characters, at most FLEET_MIRRORS_MAX. */
#define FLEET_MIRRORS_MAX 8
#define FLEET_URL_MAX 512
#define FLEET_MIRRORS_TEXT_MAX (FLEET_MIRRORS_MAX * (FLEET_URL_MAX + 1))

enum fleet_state {
        FLEET_STATE_IDLE,          /* running its assigned (or only) version, nothing to do */
        FLEET_STATE_DOWNLOADING,   /* streaming the assigned bundle into the inactive slot */
        FLEET_STATE_INSTALLED,     /* slot written and verified, about to reboot */
        FLEET_STATE_REBOOTING,
        FLEET_STATE_UPDATED,       /* booted the new slot, health gate passed, marked good */
        FLEET_STATE_FAILED,        /* refused or failed before reboot (bad signature, rollback…) */
        FLEET_STATE_ROLLED_BACK,   /* new slot failed its health gate or did not boot */
        FLEET_STATE_WAITING,       /* bundle downloaded and checked; waiting for the maintenance window */
        FLEET_STATE_RETRYING,      /* a fault that is not the release's (link, server, drone state): retried */
        _FLEET_STATE_MAX,
};

const char *fleet_state_to_string(enum fleet_state s);
int fleet_state_from_string(const char *s, enum fleet_state *ret);

/*
 * Compliance (docs/fleet.md "Drift and compliance"): what `ringil audit` and `ringil keys status` said
 * about the running system. The drone sends a summary; the full audit report never leaves it, only its
 * SHA-256 (an operator who audits the drone by hand can compare).
 */
#define FLEET_AUDIT_MAX_IDS 64
#define FLEET_CHECK_ID_MAX 16                  /* "SVC-001": [A-Z0-9-], 1..15 bytes */
#define FLEET_PROFILE_MAX 32

struct fleet_audit {
        bool present;
        char profile[FLEET_PROFILE_MAX];       /* "prod", "dev" or a profile file's name */
        uint32_t pass, fail, error, waived, notapplicable;
        uint32_t n_failing;                    /* IDs listed below (fail status), at most FLEET_AUDIT_MAX_IDS */
        char failing[FLEET_AUDIT_MAX_IDS][FLEET_CHECK_ID_MAX];
        char sha256[65];                       /* of the full JSON report, "" unknown */
        char version[FLEET_VERSION_MAX];       /* running version when the audit ran */
        int64_t time;                          /* when it ran (Unix seconds, drone clock), 0 unknown */
};

/* `ringil keys status`: mode setup|audit|user|deployed|disabled|unknown; keys ok|foreign|missing|unknown. */
struct fleet_secureboot {
        bool present;
        char mode[16];
        char pk[16], kek[16], db[16];
};

struct fleet_status {
        uint64_t seq;                          /* reports: > 0, strictly increasing per drone */
        char version[FLEET_VERSION_MAX];       /* running version ("" unknown) */
        char slot[16];                         /* booted slot name ("" unknown) */
        char boot[16];                         /* "good", "pending", "bad", "unknown" */
        enum fleet_state state;
        int64_t release;                       /* release the state refers to, 0 none */
        char target[FLEET_VERSION_MAX];        /* version being installed, "" none */
        char error[FLEET_TEXT_MAX];            /* last error, "" none */
        char system[FLEET_TEXT_MAX];           /* running NixOS system store path (generation mode), "" none */
        char tz[64];                           /* drone's time zone name, "" unknown */
        bool has_utc_offset;
        int32_t utc_offset;                    /* seconds east of UTC, now */
        struct fleet_audit audit;
        struct fleet_secureboot sb;
        /*
         * fleet_compliance_digest() of the compliance fields above (system, tz, utc_offset, audit,
         * secureboot). A check-in whose compliance the server already holds sends only this digest:
         * the report itself goes once after every change (and in every report), not every poll.
         */
        char compliance[65];
        uint64_t bytes_fetched;                /* last install: bytes downloaded ("delta" object; 0 with */
        uint64_t bytes_reused;                 /* … payload bytes found on the drone   both: omitted) */
};

/* Does s carry compliance fields (as opposed to none, or only their digest)? */
bool fleet_status_has_compliance(const struct fleet_status *s);
/* SHA-256 (lowercase hex) of s's compliance fields in canonical JSON (sorted keys, compact). */
int fleet_compliance_digest(const struct fleet_status *s, char out[static 65]);

/* Is s a check ID ([A-Z0-9-], 1..15 bytes)? */
bool fleet_check_id_valid(const char *s);

int fleet_status_parse(const void *data, size_t len, struct fleet_status *ret);
/* JSON text (malloc'd). */
int fleet_status_format(const struct fleet_status *s, char **ret);

struct fleet_assignment {
        uint32_t poll_interval;                /* seconds the server asks the drone to wait, 0: default */
        bool assigned;
        int64_t release;                       /* > 0 */
        char version[FLEET_VERSION_MAX];
        uint64_t size;                         /* bundle bytes */
        char sha256[65];                       /* of the whole bundle file, lowercase hex */
        /*
         * The bundle's signed metadata (header, manifest, signature: bytes [0, meta_size)) and its
         * SHA-256, from the server: with them the agent checks what a mirror serves, the metadata by
         * this hash and every payload chunk by the manifest's chunk hashes. meta_size 0: not known
         * (a release registered before the server recorded it); then only the server is used.
         */
        uint64_t meta_size;
        char meta_sha256[65];
        size_t n_mirrors;                      /* tried in order, before the server */
        char mirrors[FLEET_MIRRORS_MAX][FLEET_URL_MAX + 1];
        uint32_t retry;                        /* operator's retry generation: above the one a release
                                                  failed at, the drone tries that release again */
        uint64_t rate;                         /* download limit, bytes/s, 0 none */
        int64_t rollout;                       /* the rollout that handed it, 0 none */
        size_t n_windows;                      /* install/reboot only inside these (drone local time); */
        struct fleet_window windows[FLEET_MAX_WINDOWS];   /* none: any time */
        bool resend_compliance;                /* the server lacks the compliance the digest names */
};

int fleet_assignment_parse(const void *data, size_t len, struct fleet_assignment *ret);
/* A mirror URL as the protocol accepts it: https://, URL characters only, at most FLEET_URL_MAX bytes. */
bool fleet_mirror_url_valid(const char *url);
int fleet_assignment_format(const struct fleet_assignment *a, char **ret);

/*
 * The Nix binary cache the server serves under FLEET_NIX_CACHE_PREFIX (docs/fleet.md): the rest of the
 * request path must name one of three shapes, and nothing else is a file of the cache:
 *   "nix-cache-info"
 *   "<32 chars of Nix base32 [0-9a-z without e o t u]>.narinfo"
 *   "nar/<[0-9a-z]{1,64}>.nar" + optionally ".xz", ".bz2", ".zst", ".br", ".lz4", ".lzip" or ".gz"
 * Returns the kind (>= 0), or -ENOENT for any other string (the server answers 404, which Nix reads as
 * "not in this cache"). INVARIANT: an accepted name has no '/' but the one after "nar" and no '.' but
 * the suffix's, so it is a plain file name relative to the cache directory and cannot leave it.
 */
#define FLEET_NIX_CACHE_PREFIX "/nix-cache/"
#define FLEET_NIX_NAR_NAME_MAX 64
enum fleet_nix_file {
        FLEET_NIX_CACHE_INFO,
        FLEET_NIX_NARINFO,
        FLEET_NIX_NAR,
};
int fleet_nix_cache_file(const char *rel);
