/* store-rollout-pass.c: rollouts in the store, the drones' side: hand at check-in, reports, the scheduler pass. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "macro.h"
#include "store-internal.h"
#include "store-rollout.h"

/* The rollout part of the drone's record, as the rollout model's types; false when there is none. */
static bool membership_of(const struct drone_auth *auth, enum rollout_state *ret_state, enum member_state *ret_member) {
        return auth->ro.rollout > 0 && rollout_state_from_string(auth->ro.state, ret_state) >= 0 &&
               member_state_from_string(auth->ro.member, ret_member) >= 0;
}

bool store_rollout_holds(const struct drone_auth *auth) {
        enum rollout_state state;
        enum member_state member;

        if (!membership_of(auth, &state, &member))
                return false;
        /* a member that could be handed now is not handed yet either: its bundle is not its to fetch */
        return rollout_checkin_decide(state, auth->ro.current_group, auth->ro.group, member) != CHECKIN_FOLLOW;
}

static int attempt_row(const struct sql_row *q, void *userdata) {
        *(int64_t *) userdata = row_int(q, 0);
        return 1;
}

/* Hand the rollout's release to a pending member of a running group, in one durable transaction. */
static int hand(store *s, const char *drone, const struct drone_auth *auth, int64_t now, bool *ret_handed) {
        int64_t attempt = 0;
        struct sqlconn *c;
        int r;

        *ret_handed = false;
        r = store_tx(s, true, &c);
        if (r < 0)
                return r;
        /* Guarded by the member's and the rollout's state as they are now, not as the dispatcher read
         * them: two check-ins racing, or a pause in between, hand nothing. The drift gate's baseline is
         * the drone's compliance report as stored when it is handed the release (this check-in's, when
         * it carried one: it was stored just before). */
        r = store_sql(c, "UPDATE rollout_members SET state = 'handed', attempt = attempt + 1, handed_at = ?4, "
                         "state_at = ?4, detail = '', "
                         "baseline_known = COALESCE((SELECT audit_present FROM compliance WHERE drone = ?5), 0), "
                         "baseline = COALESCE((SELECT audit_failing FROM compliance WHERE drone = ?5), '') "
                         "WHERE rollout = ?1 AND ord = ?2 AND state = 'pending' AND EXISTS (SELECT 1 FROM rollouts r "
                         "WHERE r.id = ?1 AND r.state = 'running' AND r.current_group >= ?3) RETURNING attempt",
                      ARGS(INT(auth->ro.rollout), INT(auth->ro.ord), INT(auth->ro.group), INT(now), TEXT(drone)),
                      attempt_row, &attempt);
        if (r > 0) {
                *ret_handed = true;
                r = store_sql(c, "INSERT INTO assignments(target, release, created) VALUES ('drone:' || ?1, ?2, ?3) "
                                 "ON CONFLICT(target) DO UPDATE SET release = excluded.release, created = excluded.created",
                              ARGS(TEXT(drone), INT(auth->ro.release), INT(now)), NULL, NULL);
                if (r >= 0)
                        r = store_rollout_event(c, auth->ro.rollout, now, drone, "handed", attempt, auth->ro.version);
        }
        /* INVARIANT: the hand is committed (synchronous=FULL) before the check-in is answered. */
        return store_tx_end(s, r);
}

int store_rollout_checkin(store *s, const char *drone, const struct drone_auth *auth, const struct fleet_status *st,
                          int64_t now, struct rollout_checkin_result *ret) {
        struct rollout_checkin_result res = { .retry = auth->ro.retry };
        enum rollout_state state;
        enum member_state member;
        bool handed;
        int r = 0;

        if (auth->ro.windows[0] && fleet_windows_parse(auth->ro.windows, res.windows, &res.n_windows) < 0)
                res.n_windows = 0;   /* validated when stored; a damaged row means "any time" */
        if (!membership_of(auth, &state, &member)) {
                *ret = res;
                return 0;
        }
        switch (rollout_checkin_decide(state, auth->ro.current_group, auth->ro.group, member)) {
        case CHECKIN_HAND:
                r = hand(s, drone, auth, now, &handed);
                if (r >= 0 && handed) {
                        res.handed = true;
                        res.rollout = auth->ro.rollout;
                        res.rate = auth->ro.rate;
                } else
                        res.held = true;
                break;
        case CHECKIN_HOLD:
                res.held = true;
                break;
        case CHECKIN_FOLLOW:
                if (member_in_flight(member) || member == MEMBER_BLESSED) {
                        res.rollout = auth->ro.rollout;
                        res.rate = member_in_flight(member) ? auth->ro.rate : 0;
                }
                if (member == MEMBER_HANDED) {
                        /* handed a release it already ran: its agent has nothing to do or report */
                        bool runs = streq(st->version, auth->ro.version) && streq(st->boot, "good") &&
                                    (st->state == FLEET_STATE_IDLE || st->state == FLEET_STATE_UPDATED);
                        if (rollout_member_on_checkin(member, runs) == MEMBER_BLESSED) {
                                struct sqlconn *c;
                                r = store_tx(s, true, &c);
                                if (r >= 0) {
                                        r = store_rollout_set_member(c, auth->ro.rollout, auth->ro.ord, MEMBER_BLESSED, now,
                                                                     "already ran the release");
                                        if (r >= 0)
                                                r = store_rollout_event(c, auth->ro.rollout, now, drone, "blessed", 0,
                                                                        "already ran the release");
                                        r = store_tx_end(s, r);
                                }
                        }
                }
                break;
        }
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

int store_rollout_report(store *s, const char *drone, const struct fleet_status *st, int64_t now) {
        char post[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX], new_ids[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX],
                detail[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX + 64];
        struct rollout_membership m;
        enum member_state to;
        struct sqlconn *c;
        size_t n_new = 0;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_rollout_membership(c, drone, &m);
        if (r <= 0 || m.release != st->release)
                return store_tx_end(s, r < 0 ? r : 0);
        if (st->state == FLEET_STATE_UPDATED) {
                store_audit_failing_join(&st->audit, post, sizeof(post));
                n_new = rollout_drift_new(m.baseline_known, m.baseline, st->audit.present, post, new_ids, sizeof(new_ids));
        }
        to = rollout_member_on_report(m.member, st->state, m.drift_gate, n_new > 0);
        if (to == m.member)
                return store_tx_end(s, 0);
        if (to == MEMBER_DRIFT)
                snprintf(detail, sizeof(detail), "drift gate: new failing checks: %s", new_ids);
        else
                snprintf(detail, sizeof(detail), "%s", st->error);
        r = store_rollout_set_member(c, m.rollout, m.ord, to, now, detail);
        if (r >= 0)
                r = store_rollout_event(c, m.rollout, now, drone, member_state_to_string(to), 0, detail);
        return store_tx_end(s, r);
}

/* ---- the scheduler pass ---- */

struct ids {
        int64_t *v;
        size_t n, cap;
};

static int id_row(const struct sql_row *q, void *userdata) {
        struct ids *ids = userdata;

        if (ids->n == ids->cap) {
                size_t ncap = ids->cap ? ids->cap * 2 : 16;
                int64_t *nv = realloc(ids->v, ncap * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                ids->v = nv;
                ids->cap = ncap;
        }
        ids->v[ids->n++] = row_int(q, 0);
        return 0;
}

struct snapshot {
        struct rollout_view v;
        struct rollout_member *members;
        int64_t *ords;
        size_t cap;
};

static void snapshot_done(struct snapshot *sn) {
        free(sn->members);
        free(sn->ords);
}

static int view_row(const struct sql_row *q, void *userdata) {
        struct rollout_view *v = userdata;

        if (rollout_state_from_string(row_text(q, 0), &v->state) < 0)
                return ringil_fail(-EIO, "rollout %" PRId64 ": unknown state", v->id);
        v->start_at = row_int(q, 1);
        v->deadline = (uint32_t) row_int(q, 2);
        v->current_group = (uint32_t) row_int(q, 3);
        v->n_groups = (uint32_t) MIN(row_int(q, 4), (int64_t) ROLLOUT_MAX_GROUPS);
        return 1;
}

static int group_row(const struct sql_row *q, void *userdata) {
        struct rollout_view *v = userdata;
        int64_t g = row_int(q, 0);

        if (g < 0 || g >= ROLLOUT_MAX_GROUPS)
                return 0;
        v->groups[g] = (struct rollout_group) {
                .size = (uint32_t) row_int(q, 1),
                .cond = { .success_pct = (uint32_t) row_int(q, 2),
                          .soak = (uint32_t) row_int(q, 3),
                          .error_count = (uint32_t) row_int(q, 4),
                          .error_pct = (uint32_t) row_int(q, 5) },
                .success_since = row_int(q, 6),
                .completed_at = row_int(q, 7),
                .failures_acked = (uint32_t) row_int(q, 8),
        };
        return 0;
}

static int member_row(const struct sql_row *q, void *userdata) {
        struct snapshot *sn = userdata;
        size_t i = sn->v.n_members;

        if (i == sn->cap) {
                size_t ncap = sn->cap ? sn->cap * 2 : 256;
                struct rollout_member *nm = realloc(sn->members, ncap * sizeof(*nm));
                int64_t *no;
                if (!nm)
                        return -ENOMEM;
                sn->members = nm;
                no = realloc(sn->ords, ncap * sizeof(*no));
                if (!no)
                        return -ENOMEM;
                sn->ords = no;
                sn->cap = ncap;
        }
        sn->ords[i] = row_int(q, 0);
        sn->members[i] = (struct rollout_member) {
                .group = (uint32_t) row_int(q, 1),
                .handed_at = row_int(q, 3),
                .state_at = row_int(q, 4),
                .last_seen = row_int(q, 5),
        };
        if (member_state_from_string(row_text(q, 2), &sn->members[i].state) < 0)
                return ringil_fail(-EIO, "rollout %" PRId64 ": unknown member state", sn->v.id);
        sn->v.n_members = i + 1;
        return 0;
}

static int load_snapshot(struct sqlconn *c, int64_t id, int64_t not_before, struct snapshot *sn) {
        int r;

        sn->v = (struct rollout_view) { .id = id, .not_before = not_before };
        r = store_sql(c, "SELECT state, start_at, deadline, current_group, n_groups FROM rollouts WHERE id = ?1",
                      ARGS(INT(id)), view_row, &sn->v);
        if (r == 0)
                return -ENOENT;
        if (r >= 0)
                r = store_sql(c, "SELECT idx, size, success_pct, soak, error_count, error_pct, success_since, completed_at, "
                                 "failures_acked FROM rollout_groups WHERE rollout = ?1 ORDER BY idx",
                              ARGS(INT(id)), group_row, &sn->v);
        if (r >= 0)
                /* last_seen matters only for a deadline: looked up for members in flight only */
                r = store_sql(c, "SELECT m.ord, m.grp, m.state, m.handed_at, m.state_at, "
                                 "CASE WHEN m.state IN " SQL_IN_FLIGHT " THEN "
                                 "COALESCE((SELECT last_seen FROM drones WHERE id = m.drone), 0) ELSE 0 END "
                                 "FROM rollout_members m WHERE m.rollout = ?1 ORDER BY m.ord",
                              ARGS(INT(id)), member_row, sn);
        sn->v.members = sn->members;
        return r < 0 ? r : 0;
}

static int name_row(const struct sql_row *q, void *userdata) {
        row_text_copy(q, 0, userdata, 65);
        return 1;
}

static int apply_decision(struct sqlconn *c, const struct snapshot *sn, const struct rollout_decision *d, int64_t now) {
        char drone[65], detail[ROLLOUT_REASON_MAX + 8], what[64];
        int64_t id = sn->v.id;
        int r = 0;

        if (d->state != sn->v.state) {
                r = store_rollout_set_state(c, id, d->state, d->reason, now);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, NULL, rollout_state_to_string(d->state), 0, d->reason);
        }
        if (r >= 0 && d->current_group != sn->v.current_group) {
                r = store_sql(c, "UPDATE rollouts SET current_group = ?2 WHERE id = ?1", ARGS(INT(id), INT(d->current_group)),
                              NULL, NULL);
                for (uint32_t g = sn->v.current_group; r >= 0 && g < d->current_group && g < sn->v.n_groups; g++) {
                        snprintf(what, sizeof(what), "group %u completed", g + 1);
                        r = store_rollout_event(c, id, now, NULL, "group-completed", 0, what);
                }
        }
        for (uint32_t g = 0; r >= 0 && g < sn->v.n_groups; g++)
                if (d->groups[g].success_since != sn->v.groups[g].success_since ||
                    d->groups[g].completed_at != sn->v.groups[g].completed_at)
                        r = store_sql(c, "UPDATE rollout_groups SET success_since = ?3, completed_at = ?4 "
                                         "WHERE rollout = ?1 AND idx = ?2",
                                      ARGS(INT(id), INT(g), INT(d->groups[g].success_since), INT(d->groups[g].completed_at)),
                                      NULL, NULL);
        for (size_t i = 0; r >= 0 && i < d->n_changes; i++) {
                const struct rollout_member_change *ch = &d->changes[i];
                if (ch->state == MEMBER_TIMED_OUT)
                        snprintf(detail, sizeof(detail), "no sign of life for more than %u s", sn->v.deadline);
                else
                        snprintf(detail, sizeof(detail), "%s", d->reason);
                r = store_rollout_set_member(c, id, sn->ords[ch->index], ch->state, now, detail);
                drone[0] = '\0';
                if (r >= 0)
                        r = store_sql(c, "SELECT drone FROM rollout_members WHERE rollout = ?1 AND ord = ?2",
                                      ARGS(INT(id), INT(sn->ords[ch->index])), name_row, drone);
                if (r >= 0)
                        r = store_rollout_event(c, id, now, drone, member_state_to_string(ch->state), 0, detail);
        }
        return r;
}

static struct rollout_pass_seen *seen_slot(struct rollout_pass_cache *cache, int64_t id) {
        size_t oldest = 0;

        if (!cache)
                return NULL;
        for (size_t i = 0; i < cache->n; i++)
                if (cache->v[i].id == id)
                        return &cache->v[i];
        if (cache->n < ELEMENTSOF(cache->v)) {
                cache->v[cache->n] = (struct rollout_pass_seen) { .id = id, .last_event = -1 };
                return &cache->v[cache->n++];
        }
        for (size_t i = 1; i < cache->n; i++)
                if (cache->v[i].id < cache->v[oldest].id)
                        oldest = i;
        cache->v[oldest] = (struct rollout_pass_seen) { .id = id, .last_event = -1 };
        return &cache->v[oldest];
}

static int last_event_row(const struct sql_row *q, void *userdata) {
        *(int64_t *) userdata = row_int(q, 0);
        return 1;
}

int store_rollout_pass(store *s, int64_t now, int64_t not_before, struct rollout_pass_cache *cache,
                       void (*log_cb)(int64_t id, enum rollout_state from, enum rollout_state to, const char *reason),
                       struct rollout_pass_stats *ret) {
        struct rollout_pass_stats st = {};
        struct ids ids = {};
        struct sqlconn *c;
        int r;

        c = store_reader(s);
        r = store_sql(c, "SELECT id FROM rollouts WHERE state IN ('scheduled', 'running', 'paused') OR (state = 'aborted' "
                         "AND EXISTS (SELECT 1 FROM rollout_members m WHERE m.rollout = rollouts.id AND m.state IN "
                         SQL_IN_FLIGHT ")) ORDER BY id",
                      NOARGS, id_row, &ids);
        store_reader_done(c);
        for (size_t i = 0; r >= 0 && i < ids.n; i++) {
                struct rollout_pass_seen *seen = seen_slot(cache, ids.v[i]);
                struct snapshot sn = {};
                struct rollout_decision d = {};
                int64_t last_event = 0;
                /* First on a reader: most passes decide nothing, and then the writer (every check-in's
                 * commit) is never held for the snapshot. */
                c = store_reader(s);
                r = store_sql(c, "SELECT COALESCE(max(id), 0) FROM rollout_events WHERE rollout = ?1", ARGS(INT(ids.v[i])),
                              last_event_row, &last_event);
                if (r >= 0 && seen && seen->last_event == last_event && now < seen->next_check) {
                        store_reader_done(c);
                        st.skipped++;
                        continue;   /* nothing written to it, and no time it waits for has come */
                }
                if (r >= 0)
                        r = load_snapshot(c, ids.v[i], not_before, &sn);
                store_reader_done(c);
                if (r >= 0)
                        r = rollout_evaluate(&sn.v, now, &d);
                if (r >= 0 && d.changed) {
                        /* Something to write: snapshot, decision and application again, in one transaction
                         * on the writer, so a report that arrived meanwhile is seen, not overwritten. */
                        rollout_decision_done(&d);
                        snapshot_done(&sn);
                        sn = (struct snapshot) {};
                        d = (struct rollout_decision) {};
                        r = store_tx(s, true, &c);
                        if (r < 0)
                                break;
                        r = load_snapshot(c, ids.v[i], not_before, &sn);
                        if (r >= 0)
                                r = rollout_evaluate(&sn.v, now, &d);
                        if (r >= 0 && d.changed)
                                r = apply_decision(c, &sn, &d, now);
                        r = store_tx_end(s, r);
                }
                if (r >= 0 && seen) {
                        /* what this pass saw, unless it just wrote (then the next pass looks again) */
                        seen->last_event = d.changed ? -1 : last_event;
                        seen->next_check = d.next_check;
                }
                if (r >= 0) {
                        st.rollouts++;
                        st.members += (unsigned) sn.v.n_members;
                        st.changed += d.changed;
                        for (size_t k = 0; k < d.n_changes; k++)
                                st.timed_out += d.changes[k].state == MEMBER_TIMED_OUT;
                        if (log_cb && d.state != sn.v.state)
                                log_cb(ids.v[i], sn.v.state, d.state, d.reason);
                }
                rollout_decision_done(&d);
                snapshot_done(&sn);
                if (r == -ENOENT)
                        r = 0;
        }
        free(ids.v);
        if (r < 0)
                return r;
        if (ret)
                *ret = st;
        return 0;
}
