/* store-rollout.h: rollouts, tags, windows, retries and compliance reports in the server's store (SQLite or PostgreSQL). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "fleet-msg.h"
#include "rollout.h"
#include "store.h"

/*
 * Same conventions as store.c (store-internal.h): statements prepared once per connection, bound
 * parameters only, writes in the fleet-wide writer order, operator actions and everything a drone's
 * progress depends on committed durably before the answer. Errors: -ENOENT (no such rollout, drone or
 * release), -EEXIST (conflict, detail names it), -EPERM (not allowed in this state, detail says why),
 * -EBUSY/-EIO from the database, -ENOTCONN when it cannot be reached.
 */

/* ---- drones: tags, retry generation, clearing an assignment ---- */

/* Add or remove one tag ([A-Za-z0-9._-], 1..64). -ENOENT for an unknown drone. */
int store_drone_tag(store *s, const char *drone, const char *tag, bool add);
/* Raise the drone's retry generation: its agent tries again a release it failed. Returns the new one. */
int store_drone_retry(store *s, const char *drone, uint32_t *ret_generation);
/*
 * Delete the drone's own (drone:ID) assignment; a rollout that holds the drone marks it removed.
 * Returns 1 when something was cleared, 0 when there was nothing.
 */
int store_drone_clear(store *s, const char *drone, int64_t now);
/*
 * Before a static drone:ID assignment: -EEXIST when a rollout holds the drone (detail names it),
 * unless force, which marks the member removed.
 */
int store_rollout_assign_check(store *s, const char *drone, bool force, int64_t now);

/* ---- maintenance windows ---- */

/* target "group:G" or "drone:ID"; spec "HH:MM-HH:MM[,…]", NULL to clear. */
int store_window_set(store *s, const char *target, const char *spec);
int store_windows_json(store *s, json_t **ret);

/* ---- rollouts ---- */

/*
 * Create a rollout in draft: resolves the target to the drones registered now (revoked ones are not
 * part of a fleet), refuses when one of them is already claimed by a rollout in draft, scheduled,
 * running or paused (-EEXIST; the detail names the drones and the rollout), orders and partitions
 * them, and stores everything in one transaction. -ENOENT: no such release, or an explicitly listed
 * drone is not registered; -ENODATA: the target holds no drone.
 */
int store_rollout_create(store *s, const struct rollout_spec *spec, const char *request_json, const char *creator,
                         int64_t now, int64_t *ret_id);

enum rollout_action {
        ROLLOUT_APPROVE,
        ROLLOUT_START,    /* start_at > now: scheduled */
        ROLLOUT_PAUSE,
        ROLLOUT_RESUME,   /* accepts the failures seen so far (failures_acked) */
        ROLLOUT_ABORT,    /* pending members: skipped */
        ROLLOUT_RETRY,    /* failed members (all, or those in drones[]) pending again; their retry generation rises */
};

struct rollout_action_args {
        const char *operator_name;   /* CN of the operator certificate */
        int64_t start_at;            /* START: 0 keeps the stored one */
        const char *const *drones;   /* RETRY: NULL for every failed member */
        size_t n_drones;
};

/* Returns the number of members changed (RETRY), else 0; -EPERM with a detail when not allowed now. */
int store_rollout_action(store *s, int64_t id, enum rollout_action a, const struct rollout_action_args *args,
                         int64_t now);

int store_rollout_json(store *s, int64_t id, json_t **ret);   /* with groups, counts and members */
int store_rollout_json_brief(store *s, int64_t id, json_t **ret);   /* the same without "members" */
int store_rollouts_json(store *s, json_t **ret);              /* summaries */

/* ---- the drone's side ---- */

struct rollout_checkin_result {
        bool held;                     /* answer with no assignment at all */
        bool handed;                   /* this check-in handed the release */
        uint32_t retry;                /* the drone's retry generation */
        uint64_t rate;                 /* download limit of the rollout that handed the release, 0 none */
        int64_t rollout;               /* that rollout, 0 none */
        size_t n_windows;
        struct fleet_window windows[FLEET_MAX_WINDOWS];
};

/*
 * Everything a check-in needs beyond the static assignment, from what the dispatcher read with the
 * drone's record (auth->ro): hands the rollout's release to a member whose group is running (durably:
 * the hand is committed before the answer, so a crash cannot hand it twice), holds members that must
 * wait, blesses a handed member that already runs the release, and returns the drone's windows, retry
 * generation and rate. st is the check-in's status (the drift gate's baseline is its audit).
 */
int store_rollout_checkin(store *s, const char *drone, const struct drone_auth *auth, const struct fleet_status *st,
                          int64_t now, struct rollout_checkin_result *ret);
/* Does a rollout hold this drone (a member not handed yet)? Then it has no assignment at all. */
bool store_rollout_holds(const struct drone_auth *auth);
/* A stored report: moves the drone's member state (drift gate included). Idempotent. */
int store_rollout_report(store *s, const char *drone, const struct fleet_status *st, int64_t now);
/*
 * Keep the drone's compliance report (and a history row when it changed); cheap when unchanged. A
 * status with only the report's digest sets *ret_resend when the server does not hold that report.
 */
int store_compliance_update(store *s, const char *drone, const struct fleet_status *st, int64_t now, bool *ret_resend);
/* Last compliance report and its history (newest first, at most 100). */
int store_compliance_json(store *s, const char *drone, json_t **ret);
/* Tags, compliance and the latest rollout membership, added to a drone's JSON. */
int store_drone_decorate(store *s, const char *drone, json_t *j);

/* ---- the scheduler ---- */

struct rollout_pass_stats {
        unsigned rollouts;           /* evaluated */
        unsigned skipped;            /* nothing new since the last pass (cache) */
        unsigned changed;            /* with a decision applied */
        unsigned members;            /* members looked at */
        unsigned timed_out;
};

/*
 * What the scheduler remembers between passes (optional): per rollout, the last event it saw and when
 * time alone could change its decision (rollout_decision.next_check). Every write to a rollout or its
 * members adds a rollout event, so an unchanged last event and an earlier time mean nothing to do.
 */
struct rollout_pass_cache {
        struct rollout_pass_seen {
                int64_t id, last_event, next_check;
        } v[256];
        size_t n;
};

/*
 * One scheduler pass over every rollout that can still move (scheduled, running, paused, aborted with
 * members in flight): snapshot, rollout_evaluate(), and when it decided something, the same again in
 * one durable transaction that applies it. not_before: see struct rollout_view. cache (may be NULL)
 * skips rollouts with nothing new. Decisions are logged as rollout events; state changes also go
 * through log_cb (may be NULL).
 */
int store_rollout_pass(store *s, int64_t now, int64_t not_before, struct rollout_pass_cache *cache,
                       void (*log_cb)(int64_t id, enum rollout_state from, enum rollout_state to, const char *reason),
                       struct rollout_pass_stats *ret);

/* ---- reports ---- */

/* `ringil-server drift`: one entry per drone that drifted, with its kinds and reasons; and counts. */
int store_drift_json(store *s, int64_t now, uint32_t silent_after, json_t **ret);
/* Prometheus lines per rollout (state, members by state, current group) and per drift kind. */
int store_rollout_metrics(store *s, int64_t now, uint32_t silent_after, struct buf *b);
