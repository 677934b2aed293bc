/* rollout.h: the rollout model, pure: states, group membership, conditions, soak, deadlines, drift gate. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet-msg.h"

/*
 * A rollout hands one release to a set of drones, group by group (docs/fleet.md "Rollouts"). This
 * module holds every rule and no I/O: the store (store-rollout.c) loads a snapshot, rollout_evaluate()
 * turns it into decisions, the store applies them in one transaction. The same function is what a
 * later elected replica runs; nothing here depends on SQLite, HTTP or the clock (time is a parameter).
 *
 * Lifecycle:   draft ──start──▶ running ◀──resume── paused
 *                │  (start --start-at)  ▲       │error condition, operator
 *                └──▶ scheduled ────────┘       ▼
 *              running ──all groups complete, none in flight──▶ finished
 *              draft|scheduled|running|paused ──abort──▶ aborted
 * A rollout that requires approval cannot leave draft before an operator other than its creator
 * approved it.
 */

#define ROLLOUT_MAX_GROUPS 16
#define ROLLOUT_MAX_MEMBERS 100000
#define ROLLOUT_MAX_LIST 10000            /* drones named in an explicit target list */
#define ROLLOUT_MAX_SPEC (1u << 20)       /* bytes of a creation request */
#define ROLLOUT_NAME_MAX 65
#define ROLLOUT_REASON_MAX 200
#define ROLLOUT_MAX_DEADLINE (30u * 86400u)
#define ROLLOUT_MAX_SOAK (30u * 86400u)

enum rollout_state {
        ROLLOUT_DRAFT,
        ROLLOUT_SCHEDULED,   /* started with a start time in the future */
        ROLLOUT_RUNNING,
        ROLLOUT_PAUSED,      /* by the error condition or an operator; resume continues */
        ROLLOUT_ABORTED,     /* final: nobody is handed the release any more; in-flight drones finish */
        ROLLOUT_FINISHED,    /* final: every group completed and no drone is in flight */
        _ROLLOUT_STATE_MAX,
};

const char *rollout_state_to_string(enum rollout_state s);
int rollout_state_from_string(const char *s, enum rollout_state *ret);
/* Does a rollout in this state claim its drones (one rollout per drone at a time)? */
bool rollout_state_holds(enum rollout_state s);

enum member_state {
        MEMBER_PENDING,       /* not handed the release yet */
        MEMBER_HANDED,        /* answered with the release at a check-in; no report about it yet */
        MEMBER_DOWNLOADING,
        MEMBER_WAITING,       /* downloaded; waiting for its maintenance window */
        MEMBER_INSTALLED,
        MEMBER_REBOOTING,
        MEMBER_RETRYING,      /* a fault of the link, the server or the drone: the drone retries */
        MEMBER_BLESSED,       /* booted it, health gate passed, marked good, drift gate passed */
        MEMBER_FAILED,        /* the drone refused the bundle (signature, compatible, floor, expiry, hash) */
        MEMBER_ROLLED_BACK,   /* health gate failed or the new slot did not boot */
        MEMBER_TIMED_OUT,     /* no sign of life within the deadline after it was handed the release */
        MEMBER_DRIFT,         /* blessed, but its post-update audit fails checks that passed before */
        MEMBER_SKIPPED,       /* never handed: the rollout ended first */
        MEMBER_REMOVED,       /* taken out by an operator (assignment cleared or overridden) */
        _MEMBER_STATE_MAX,
};

const char *member_state_to_string(enum member_state s);
int member_state_from_string(const char *s, enum member_state *ret);
bool member_in_flight(enum member_state s);   /* handed … retrying */
bool member_failure(enum member_state s);     /* failed, rolled-back, timed-out, drift */
bool member_settled(enum member_state s);     /* nothing more will happen without an operator */

/* ---- creation request (operator JSON, docs/fleet.md) ---- */

enum rollout_group_kind {
        GROUP_COUNT,
        GROUP_PERCENT,    /* of all drones in the target */
        GROUP_REST,       /* everything not in an earlier group */
};

struct rollout_conditions {
        uint32_t success_pct;   /* 1..100: blessed share of the group that completes it … */
        uint32_t soak;          /* … then this many seconds with no failure in the group */
        uint32_t error_count;   /* 0 = unused; failures in the group that pause the rollout */
        uint32_t error_pct;     /* 0 = unused; failed share of the group that pauses it */
};

struct rollout_group_spec {
        enum rollout_group_kind kind;
        uint32_t value;         /* count, or percent 1..100 */
        struct rollout_conditions cond;
};

enum rollout_target_kind {
        TARGET_FLEET,
        TARGET_GROUP,
        TARGET_TAG,
        TARGET_LIST,
};

struct rollout_spec {
        char name[ROLLOUT_NAME_MAX];
        int64_t release;
        enum rollout_target_kind target;
        char target_name[65];          /* group or tag */
        char **drones;                 /* TARGET_LIST, in the operator's order */
        size_t n_drones;
        struct rollout_group_spec groups[ROLLOUT_MAX_GROUPS];
        size_t n_groups;
        uint32_t deadline;             /* seconds of silence after which a handed drone has failed */
        uint64_t rate;                 /* per-drone download limit, bytes/s, 0 none */
        int64_t start_at;              /* 0: when started */
        bool require_approval;
        bool drift_gate;
};

/*
 * Parse and check a creation request. Defaults: groups [{count 1}, {rest}] (a canary of one),
 * success 100 %, soak 0, error count 1, deadline 1800 s, drift gate on. Unknown keys, duplicate keys,
 * out-of-range values and names outside [A-Za-z0-9._-] are -RINGIL_EMALFORMED with a detail; more than
 * ROLLOUT_MAX_SPEC bytes is -RINGIL_ETOOBIG.
 */
int rollout_spec_parse(const void *data, size_t len, struct rollout_spec *ret);
void rollout_spec_done(struct rollout_spec *s);
/* "group:G", "tag:T", "*" or "drones" (for an explicit list), for display and storage. */
void rollout_spec_target_string(const struct rollout_spec *s, char *buf, size_t cap);

/*
 * Split n drones into the groups of the spec: counts, then percentages of n rounded up (at least one
 * drone when n > 0), a "rest" group takes what is left; drones left after the last group form one
 * more group with the last group's conditions. Empty groups are dropped. ret_sizes and ret_cond get
 * at most ROLLOUT_MAX_GROUPS entries; returns the number of groups.
 */
size_t rollout_partition(size_t n, const struct rollout_group_spec *specs, size_t n_specs,
                         uint32_t ret_sizes[static ROLLOUT_MAX_GROUPS],
                         struct rollout_conditions ret_cond[static ROLLOUT_MAX_GROUPS]);

/*
 * Order of drones within a fleet, group or tag target: by SHA-256(rollout id ‖ drone id), so that the
 * canary is a random sample and drones enrolled together (one site, one shared link) are spread over
 * the groups instead of landing in one. An explicit list keeps the operator's order.
 */
void rollout_order_key(int64_t rollout_id, const char *drone, uint8_t ret[static 32]);

/* ---- evaluation (the scheduler pass) ---- */

struct rollout_member {
        uint32_t group;
        enum member_state state;
        int64_t handed_at;        /* 0: never */
        int64_t state_at;         /* when it entered its state */
        int64_t last_seen;        /* last check-in or report of the drone, 0 never */
};

struct rollout_group {
        uint32_t size;            /* members, as partitioned */
        struct rollout_conditions cond;
        int64_t success_since;    /* since when the success share holds with no failure, 0: not */
        int64_t completed_at;     /* 0: not yet */
        uint32_t failures_acked;  /* failures accepted by the last resume */
};

struct rollout_view {
        int64_t id;
        enum rollout_state state;
        int64_t start_at;
        uint32_t deadline;
        uint32_t current_group;   /* the group being rolled out; == n_groups when all completed */
        uint32_t n_groups;
        struct rollout_group groups[ROLLOUT_MAX_GROUPS];
        const struct rollout_member *members;
        size_t n_members;
        /*
         * The server's clock is not trusted before this time (the scheduler's start): silence while the
         * server itself was down is not a drone's fault, so deadlines count from here at the earliest.
         */
        int64_t not_before;
};

struct rollout_member_change {
        size_t index;
        enum member_state state;
};

struct rollout_counts {
        uint32_t size, pending, in_flight, blessed, failures, skipped, removed;
};

struct rollout_decision {
        bool changed;                   /* anything below differs from the view */
        enum rollout_state state;
        char reason[ROLLOUT_REASON_MAX];   /* why the state changed ("" when it did not) */
        uint32_t current_group;
        struct rollout_group groups[ROLLOUT_MAX_GROUPS];
        struct rollout_member_change *changes;   /* malloc'd */
        size_t n_changes;
        struct rollout_counts counts[ROLLOUT_MAX_GROUPS];   /* after the changes */
        /*
         * The earliest time at which evaluating the same rows again could decide something (a start
         * time, a deadline, the end of a soak); INT64_MAX: only a change of the rows can. The scheduler
         * may skip a rollout until then while nothing was written to it.
         */
        int64_t next_check;
};

/*
 * One evaluation at time now:
 *   1. scheduled and now ≥ start_at → running;
 *   2. every in-flight member silent for longer than the deadline → timed-out (in any state: a drone
 *      that was handed the release before a pause or an abort may still brick);
 *   3. running: for every started group, the error condition (failures since the last resume ≥
 *      error_count, or ≥ error_pct of the group) → paused; for the current group, the success share
 *      held with no failure for soak seconds → the group completes and the next one starts; a group
 *      whose members all settled below its success share → paused; all groups complete and nothing
 *      in flight → finished, with members never handed → skipped.
 * Returns 0, or -ENOMEM.
 */
int rollout_evaluate(const struct rollout_view *v, int64_t now, struct rollout_decision *ret);
void rollout_decision_done(struct rollout_decision *d);
/* Counts per group of the view as it is (no evaluation). */
void rollout_count(const struct rollout_view *v, struct rollout_counts ret[static ROLLOUT_MAX_GROUPS]);

/* ---- check-in and reports ---- */

/*
 * A check-in of a handed member that already runs the release (it ran it before it was handed, so
 * its agent has nothing to install and nothing to report): blessed. Otherwise unchanged.
 */
enum member_state rollout_member_on_checkin(enum member_state cur, bool runs_release);

enum rollout_checkin {
        CHECKIN_FOLLOW,   /* not governed by this rollout's holding: the normal assignment applies */
        CHECKIN_HAND,     /* hand the release now */
        CHECKIN_HOLD,     /* a member that must wait: no assignment at all */
};

/* What a check-in of a drone whose latest rollout membership is (state, group) gets. */
enum rollout_checkin rollout_checkin_decide(enum rollout_state state, uint32_t current_group, uint32_t group,
                                            enum member_state member);

/*
 * A report from a member about the rollout's release: its new state. `updated` becomes blessed, or
 * drift when the drift gate is on and drift_new (the post-update audit fails checks the baseline did
 * not) is set. Pending, skipped and removed members do not change: a report about a release the
 * rollout did not hand them is not the rollout's business.
 */
enum member_state rollout_member_on_report(enum member_state cur, enum fleet_state reported, bool drift_gate,
                                           bool drift_new);

/*
 * The drift gate's comparison. base and post are space-separated lists of failing check IDs;
 * base_known is false when the drone never sent an audit before it was handed the release. Writes the
 * IDs of post that are not in base (space-separated) to out and returns their number. Without a
 * baseline every failing ID counts (nothing proves it failed before); a missing post-update audit
 * while the baseline had one counts as one ("audit-missing"). No audit on either side returns 0: the
 * gate cannot apply to a drone that does not audit.
 */
size_t rollout_drift_new(bool base_known, const char *base, bool post_known, const char *post, char *out,
                         size_t cap);
