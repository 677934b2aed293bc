/* drift.h: which drones drifted from what the fleet expects, and why — pure rules, no I/O. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * Four kinds (docs/fleet.md "Drift and compliance"), each a bit:
 *   release     runs another version than the release assigned to it (not while a rollout holds it);
 *   audit       its last audit is not a clean pass of the prod profile (failing or unevaluated
 *               checks, another profile, or no audit at all);
 *   secureboot  Secure Boot is not enforced (mode other than user or deployed) or PK, KEK or db do
 *               not hold exactly the fleet's keys, or no status was reported;
 *   silent      no check-in for longer than the silence limit (or never).
 */
enum drift_kind {
        DRIFT_RELEASE = 1 << 0,
        DRIFT_AUDIT = 1 << 1,
        DRIFT_SECUREBOOT = 1 << 2,
        DRIFT_SILENT = 1 << 3,
        _DRIFT_KINDS = 4,
};

const char *drift_kind_to_string(unsigned bit);

struct drift_input {
        int64_t last_seen;               /* 0: never */
        const char *version;             /* running, "" unknown */
        const char *assigned_version;    /* NULL: nothing assigned */
        bool held;                       /* a rollout holds it (not handed yet) */
        bool audit_present;
        const char *audit_profile;
        uint32_t audit_fail, audit_error;
        const char *audit_failing;       /* space-separated check IDs */
        bool sb_present;
        const char *sb_mode, *sb_pk, *sb_kek, *sb_db;
};

struct drift_result {
        unsigned kinds;
        char release[160], audit[400], secureboot[160], silent[96];   /* why, per kind ("" when clean) */
};

/* silent_after: seconds without a check-in after which a drone is silent. */
void drift_classify(const struct drift_input *in, int64_t now, uint32_t silent_after, struct drift_result *ret);
