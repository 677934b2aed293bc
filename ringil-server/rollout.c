/* rollout.c: the rollout model: creation requests, group membership, evaluation, check-in and drift rules. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "fleet-ca.h"
#include "macro.h"
#include "rollout.h"

static const char *const rollout_state_names[_ROLLOUT_STATE_MAX] = {
        [ROLLOUT_DRAFT] = "draft",
        [ROLLOUT_SCHEDULED] = "scheduled",
        [ROLLOUT_RUNNING] = "running",
        [ROLLOUT_PAUSED] = "paused",
        [ROLLOUT_ABORTED] = "aborted",
        [ROLLOUT_FINISHED] = "finished",
};

static const char *const member_state_names[_MEMBER_STATE_MAX] = {
        [MEMBER_PENDING] = "pending",
        [MEMBER_HANDED] = "handed",
        [MEMBER_DOWNLOADING] = "downloading",
        [MEMBER_WAITING] = "waiting",
        [MEMBER_INSTALLED] = "installed",
        [MEMBER_REBOOTING] = "rebooting",
        [MEMBER_RETRYING] = "retrying",
        [MEMBER_BLESSED] = "blessed",
        [MEMBER_FAILED] = "failed",
        [MEMBER_ROLLED_BACK] = "rolled-back",
        [MEMBER_TIMED_OUT] = "timed-out",
        [MEMBER_DRIFT] = "drift",
        [MEMBER_SKIPPED] = "skipped",
        [MEMBER_REMOVED] = "removed",
};

const char *rollout_state_to_string(enum rollout_state s) {
        return (unsigned) s < _ROLLOUT_STATE_MAX ? rollout_state_names[s] : "unknown";
}

int rollout_state_from_string(const char *s, enum rollout_state *ret) {
        for (unsigned i = 0; i < _ROLLOUT_STATE_MAX; i++)
                if (streq(s, rollout_state_names[i])) {
                        *ret = (enum rollout_state) i;
                        return 0;
                }
        return -RINGIL_EMALFORMED;
}

bool rollout_state_holds(enum rollout_state s) {
        return s == ROLLOUT_DRAFT || s == ROLLOUT_SCHEDULED || s == ROLLOUT_RUNNING || s == ROLLOUT_PAUSED;
}

const char *member_state_to_string(enum member_state s) {
        return (unsigned) s < _MEMBER_STATE_MAX ? member_state_names[s] : "unknown";
}

int member_state_from_string(const char *s, enum member_state *ret) {
        /* the scheduler parses every member of a rollout each pass: compare the first byte first */
        for (unsigned i = 0; i < _MEMBER_STATE_MAX; i++)
                if (s[0] == member_state_names[i][0] && streq(s, member_state_names[i])) {
                        *ret = (enum member_state) i;
                        return 0;
                }
        return -RINGIL_EMALFORMED;
}

bool member_in_flight(enum member_state s) {
        return s >= MEMBER_HANDED && s <= MEMBER_RETRYING;
}

bool member_failure(enum member_state s) {
        return s == MEMBER_FAILED || s == MEMBER_ROLLED_BACK || s == MEMBER_TIMED_OUT || s == MEMBER_DRIFT;
}

bool member_settled(enum member_state s) {
        return s == MEMBER_BLESSED || member_failure(s) || s == MEMBER_SKIPPED || s == MEMBER_REMOVED;
}

/* ---- creation request ---- */

void rollout_spec_done(struct rollout_spec *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n_drones; i++)
                free(s->drones[i]);
        free(s->drones);
        s->drones = NULL;
        s->n_drones = 0;
}

static int get_u32(json_t *v, const char *key, uint32_t min, uint32_t max, uint32_t *ret) {
        json_int_t i;

        if (!json_is_integer(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is not an integer", key);
        i = json_integer_value(v);
        if (i < (json_int_t) min || i > (json_int_t) max)
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is %" JSON_INTEGER_FORMAT ", not in %u..%u", key, i,
                                   min, max);
        *ret = (uint32_t) i;
        return 0;
}

static int get_bool(json_t *v, const char *key, bool *ret) {
        if (!json_is_boolean(v))
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is not true or false", key);
        *ret = json_is_true(v);
        return 0;
}

/* A name as the rest of the fleet uses them: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
static int get_name(json_t *v, const char *key, char *dst, size_t cap) {
        const char *s = json_string_value(v);

        if (!s || ca_name_valid(s) < 0 || strlen(s) >= cap)
                return ringil_fail(-RINGIL_EMALFORMED, "'%s' is not a name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})", key);
        memcpy(dst, s, strlen(s) + 1);
        return 0;
}

/* Condition keys shared by the request's top level (defaults) and each group (overrides). */
static int condition_key(const char *k, json_t *v, struct rollout_conditions *c, bool *ret_matched) {
        *ret_matched = true;
        if (streq(k, "success_percent"))
                return get_u32(v, k, 1, 100, &c->success_pct);
        if (streq(k, "soak"))
                return get_u32(v, k, 0, ROLLOUT_MAX_SOAK, &c->soak);
        if (streq(k, "error_count"))
                return get_u32(v, k, 0, ROLLOUT_MAX_MEMBERS, &c->error_count);
        if (streq(k, "error_percent"))
                return get_u32(v, k, 0, 100, &c->error_pct);
        *ret_matched = false;
        return 0;
}

static int parse_group(json_t *g, size_t idx, bool last, const struct rollout_conditions *defaults,
                       struct rollout_group_spec *ret) {
        struct rollout_group_spec s = { .cond = *defaults };
        bool have_size = false, set_error = false, matched;
        const char *k;
        json_t *v;
        int r;

        if (!json_is_object(g))
                return ringil_fail(-RINGIL_EMALFORMED, "group %zu is not an object", idx + 1);
        json_object_foreach(g, k, v) {
                r = condition_key(k, v, &s.cond, &matched);
                if (matched) {
                        if (r < 0)
                                return r;
                        if (streq(k, "error_count") || streq(k, "error_percent")) {
                                /* An override names the group's whole error condition. */
                                if (!set_error) {
                                        s.cond.error_count = streq(k, "error_count") ? s.cond.error_count : 0;
                                        s.cond.error_pct = streq(k, "error_percent") ? s.cond.error_pct : 0;
                                }
                                set_error = true;
                        }
                        continue;
                }
                if (have_size && (streq(k, "count") || streq(k, "percent") || streq(k, "rest")))
                        return ringil_fail(-RINGIL_EMALFORMED, "group %zu has more than one of count, percent, rest",
                                           idx + 1);
                if (streq(k, "count")) {
                        s.kind = GROUP_COUNT;
                        r = get_u32(v, "count", 1, ROLLOUT_MAX_MEMBERS, &s.value);
                } else if (streq(k, "percent")) {
                        s.kind = GROUP_PERCENT;
                        r = get_u32(v, "percent", 1, 100, &s.value);
                } else if (streq(k, "rest")) {
                        bool b = false;
                        s.kind = GROUP_REST;
                        r = get_bool(v, "rest", &b);
                        if (r >= 0 && !b)
                                r = ringil_fail(-RINGIL_EMALFORMED, "group %zu: 'rest' can only be true", idx + 1);
                } else
                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key 'groups[%zu].%s'", idx, k);
                if (r < 0)
                        return r;
                have_size = true;
        }
        if (!have_size)
                return ringil_fail(-RINGIL_EMALFORMED, "group %zu needs count, percent or rest", idx + 1);
        if (s.kind == GROUP_REST && !last)
                return ringil_fail(-RINGIL_EMALFORMED, "only the last group can be 'rest'");
        if (s.cond.error_count == 0 && s.cond.error_pct == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "group %zu has no error condition (error_count or error_percent)",
                                   idx + 1);
        *ret = s;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int parse_drones(json_t *v, struct rollout_spec *s) {
        _cleanup_free_ char **sorted = NULL;
        size_t i, n;
        json_t *x;

        if (!json_is_array(v) || json_array_size(v) == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "'drones' is not a non-empty array");
        n = json_array_size(v);
        if (n > ROLLOUT_MAX_LIST)
                return ringil_fail(-RINGIL_ETOOBIG, "'drones' lists more than %d drones", ROLLOUT_MAX_LIST);
        s->drones = calloc(n, sizeof(char *));
        if (!s->drones)
                return -ENOMEM;
        json_array_foreach(v, i, x) {
                const char *id = json_string_value(x);
                if (!id || ca_name_valid(id) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "'drones[%zu]' is not a drone name", i);
                s->drones[i] = strdup(id);
                if (!s->drones[i])
                        return -ENOMEM;
                s->n_drones = i + 1;
        }
        sorted = malloc(n * sizeof(char *));
        if (!sorted)
                return -ENOMEM;
        memcpy(sorted, s->drones, n * sizeof(char *));
        qsort(sorted, n, sizeof(char *), cmp_str);
        for (i = 1; i < n; i++)
                if (streq(sorted[i - 1], sorted[i]))
                        return ringil_fail(-RINGIL_EMALFORMED, "'drones' names '%s' twice", sorted[i]);
        return 0;
}

static int parse_target(const char *t, struct rollout_spec *s) {
        const char *name = NULL;

        if (streq(t, "*"))
                s->target = TARGET_FLEET;
        else if (streq(t, "drones"))
                s->target = TARGET_LIST;
        else if (strncmp(t, "group:", 6) == 0) {
                s->target = TARGET_GROUP;
                name = t + 6;
        } else if (strncmp(t, "tag:", 4) == 0) {
                s->target = TARGET_TAG;
                name = t + 4;
        } else
                return ringil_fail(-RINGIL_EMALFORMED, "'target' is not \"*\", \"group:G\", \"tag:T\" or \"drones\"");
        if (name) {
                if (ca_name_valid(name) < 0 || strlen(name) >= sizeof(s->target_name))
                        return ringil_fail(-RINGIL_EMALFORMED, "'target' names an invalid group or tag");
                memcpy(s->target_name, name, strlen(name) + 1);
        }
        return 0;
}

int rollout_spec_parse(const void *data, size_t len, struct rollout_spec *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        struct rollout_spec s = { .deadline = 1800, .drift_gate = true };
        struct rollout_conditions defaults = { .success_pct = 100 };
        json_t *groups = NULL, *drones = NULL, *v;
        const char *k, *target = NULL;
        json_error_t e;
        bool matched;
        int r = 0;

        if (len > ROLLOUT_MAX_SPEC)
                return ringil_fail(-RINGIL_ETOOBIG, "rollout request larger than %u bytes", ROLLOUT_MAX_SPEC);
        j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
        if (!j)
                return ringil_fail(-RINGIL_EMALFORMED, "JSON: %s", e.text);
        if (!json_is_object(j))
                return ringil_fail(-RINGIL_EMALFORMED, "rollout request is not an object");
        json_object_foreach(j, k, v) {
                r = condition_key(k, v, &defaults, &matched);
                if (matched) {
                        if (r < 0)
                                goto fail;
                        continue;
                }
                if (streq(k, "name"))
                        r = get_name(v, k, s.name, sizeof(s.name));
                else if (streq(k, "release")) {
                        if (!json_is_integer(v) || json_integer_value(v) <= 0)
                                r = ringil_fail(-RINGIL_EMALFORMED, "'release' is not a release id");
                        else
                                s.release = json_integer_value(v);
                } else if (streq(k, "target")) {
                        target = json_string_value(v);
                        if (!target)
                                r = ringil_fail(-RINGIL_EMALFORMED, "'target' is not a string");
                } else if (streq(k, "drones"))
                        drones = v;
                else if (streq(k, "groups"))
                        groups = v;
                else if (streq(k, "deadline"))
                        r = get_u32(v, k, 1, ROLLOUT_MAX_DEADLINE, &s.deadline);
                else if (streq(k, "rate")) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                            (json_integer_value(v) > 0 && json_integer_value(v) < 1024))
                                r = ringil_fail(-RINGIL_EMALFORMED, "'rate' is not 0 or at least 1024 bytes/s");
                        else
                                s.rate = (uint64_t) json_integer_value(v);
                } else if (streq(k, "start_at")) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0)
                                r = ringil_fail(-RINGIL_EMALFORMED, "'start_at' is not a Unix time");
                        else
                                s.start_at = json_integer_value(v);
                } else if (streq(k, "require_approval"))
                        r = get_bool(v, k, &s.require_approval);
                else if (streq(k, "drift_gate"))
                        r = get_bool(v, k, &s.drift_gate);
                else
                        r = ringil_fail(-RINGIL_EMALFORMED, "unknown key '%s'", k);
                if (r < 0)
                        goto fail;
        }
        if (s.release == 0 || !target) {
                r = ringil_fail(-RINGIL_EMALFORMED, "a rollout needs 'release' and 'target'");
                goto fail;
        }
        r = parse_target(target, &s);
        if (r < 0)
                goto fail;
        if ((s.target == TARGET_LIST) != !!drones) {
                r = ringil_fail(-RINGIL_EMALFORMED, "'drones' goes with \"target\": \"drones\", and only with it");
                goto fail;
        }
        if (drones && (r = parse_drones(drones, &s)) < 0)
                goto fail;
        if (defaults.error_count == 0 && defaults.error_pct == 0)
                defaults.error_count = 1;
        if (!groups) {
                s.groups[0] = (struct rollout_group_spec) { .kind = GROUP_COUNT, .value = 1, .cond = defaults };
                s.groups[1] = (struct rollout_group_spec) { .kind = GROUP_REST, .cond = defaults };
                s.n_groups = 2;
        } else {
                size_t i;
                json_t *g;
                if (!json_is_array(groups) || json_array_size(groups) == 0 ||
                    json_array_size(groups) > ROLLOUT_MAX_GROUPS) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "'groups' is not an array of 1..%d groups", ROLLOUT_MAX_GROUPS);
                        goto fail;
                }
                json_array_foreach(groups, i, g) {
                        r = parse_group(g, i, i + 1 == json_array_size(groups), &defaults, &s.groups[i]);
                        if (r < 0)
                                goto fail;
                }
                s.n_groups = json_array_size(groups);
        }
        *ret = s;
        return 0;
fail:
        rollout_spec_done(&s);
        return r;
}

void rollout_spec_target_string(const struct rollout_spec *s, char *buf, size_t cap) {
        switch (s->target) {
        case TARGET_FLEET:
                snprintf(buf, cap, "*");
                break;
        case TARGET_GROUP:
                snprintf(buf, cap, "group:%s", s->target_name);
                break;
        case TARGET_TAG:
                snprintf(buf, cap, "tag:%s", s->target_name);
                break;
        case TARGET_LIST:
                snprintf(buf, cap, "drones");
                break;
        }
}

/* ---- membership ---- */

size_t rollout_partition(size_t n, const struct rollout_group_spec *specs, size_t n_specs,
                         uint32_t ret_sizes[static ROLLOUT_MAX_GROUPS],
                         struct rollout_conditions ret_cond[static ROLLOUT_MAX_GROUPS]) {
        size_t left = n, out = 0;

        for (size_t i = 0; i < n_specs && i < ROLLOUT_MAX_GROUPS && left > 0; i++) {
                uint64_t want;
                switch (specs[i].kind) {
                case GROUP_COUNT:
                        want = specs[i].value;
                        break;
                case GROUP_PERCENT:
                        /* rounded up: 5 % of 10 drones is one drone, never none */
                        want = ((uint64_t) n * specs[i].value + 99) / 100;
                        break;
                case GROUP_REST:
                default:
                        want = left;
                        break;
                }
                want = MIN(MAX(want, 1u), (uint64_t) left);
                ret_sizes[out] = (uint32_t) want;
                ret_cond[out] = specs[i].cond;
                out++;
                left -= want;
        }
        if (left > 0) {
                /* The listed groups did not cover the target: the remainder is one more group. */
                if (out == ROLLOUT_MAX_GROUPS)
                        ret_sizes[out - 1] += (uint32_t) left;
                else {
                        ret_sizes[out] = (uint32_t) left;
                        ret_cond[out] = n_specs ? specs[MIN(n_specs, (size_t) ROLLOUT_MAX_GROUPS) - 1].cond
                                                : (struct rollout_conditions) { .success_pct = 100, .error_count = 1 };
                        out++;
                }
        }
        return out;
}

void rollout_order_key(int64_t rollout_id, const char *drone, uint8_t ret[static 32]) {
        uint8_t buf[8 + 65];
        size_t n = strlen(drone);

        n = MIN(n, (size_t) 64);
        for (int i = 0; i < 8; i++)
                buf[i] = (uint8_t) ((uint64_t) rollout_id >> (8 * (7 - i)));
        memcpy(buf + 8, drone, n);
        (void) crypto_sha256(buf, 8 + n, ret);
}

/* ---- evaluation ---- */

void rollout_decision_done(struct rollout_decision *d) {
        if (!d)
                return;
        free(d->changes);
        d->changes = NULL;
        d->n_changes = 0;
}

static void count_one(struct rollout_counts *c, enum member_state s) {
        c->size++;
        if (s == MEMBER_PENDING)
                c->pending++;
        else if (member_in_flight(s))
                c->in_flight++;
        else if (s == MEMBER_BLESSED)
                c->blessed++;
        else if (member_failure(s))
                c->failures++;
        else if (s == MEMBER_SKIPPED)
                c->skipped++;
        else if (s == MEMBER_REMOVED)
                c->removed++;
}

void rollout_count(const struct rollout_view *v, struct rollout_counts ret[static ROLLOUT_MAX_GROUPS]) {
        memset(ret, 0, sizeof(struct rollout_counts) * ROLLOUT_MAX_GROUPS);
        for (size_t i = 0; i < v->n_members; i++)
                if (v->members[i].group < ROLLOUT_MAX_GROUPS)
                        count_one(&ret[v->members[i].group], v->members[i].state);
}

static int add_change(struct rollout_decision *d, size_t *cap, size_t index, enum member_state s) {
        if (d->n_changes == *cap) {
                size_t ncap = *cap ? *cap * 2 : 64;
                struct rollout_member_change *n = realloc(d->changes, ncap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                d->changes = n;
                *cap = ncap;
        }
        d->changes[d->n_changes++] = (struct rollout_member_change) { .index = index, .state = s };
        d->changed = true;
        return 0;
}

static void set_state(struct rollout_decision *d, enum rollout_state s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_state(struct rollout_decision *d, enum rollout_state s, const char *fmt, ...) {
        va_list ap;

        d->state = s;
        d->changed = true;
        va_start(ap, fmt);
        vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
        va_end(ap);
}

/* Members of the group that count: removed ones left the rollout. */
static uint32_t effective_size(const struct rollout_counts *c) {
        return c->size - c->removed;
}

/* The error condition of group g, on failures since the last resume. */
static bool error_condition(const struct rollout_group *g, const struct rollout_counts *c, uint32_t *ret_failures) {
        uint32_t f = c->failures > g->failures_acked ? c->failures - g->failures_acked : 0;
        uint32_t size = effective_size(c);

        *ret_failures = f;
        if (g->cond.error_count && f >= g->cond.error_count)
                return true;
        return g->cond.error_pct && size && (uint64_t) f * 100 >= (uint64_t) g->cond.error_pct * size;
}

int rollout_evaluate(const struct rollout_view *v, int64_t now, struct rollout_decision *ret) {
        struct rollout_decision d = {
                .state = v->state,
                .current_group = v->current_group,
        };
        _cleanup_free_ uint8_t *eff = NULL;      /* member states after this pass's changes */
        _cleanup_free_ int64_t *fail_at = NULL;  /* when each failed member failed */
        uint32_t n_groups = MIN(v->n_groups, (uint32_t) ROLLOUT_MAX_GROUPS);
        size_t cap = 0;
        int r;

        memcpy(d.groups, v->groups, sizeof(d.groups));
        eff = malloc(v->n_members ? v->n_members : 1);
        fail_at = malloc(sizeof(int64_t) * (v->n_members ? v->n_members : 1));
        if (!eff || !fail_at)
                return -ENOMEM;

        if (d.state == ROLLOUT_SCHEDULED && now >= v->start_at)
                set_state(&d, ROLLOUT_RUNNING, "started at its scheduled time");

        /* Deadlines: a handed drone that went silent has failed, whatever the rollout's state. A drone
         * that bricks stops reporting; without this it would hold its group "in flight" forever. */
        for (size_t i = 0; i < v->n_members; i++) {
                const struct rollout_member *m = &v->members[i];
                eff[i] = (uint8_t) m->state;
                fail_at[i] = m->state_at;
                if (v->deadline && member_in_flight(m->state) && d.state != ROLLOUT_DRAFT) {
                        int64_t last = MAX(MAX(m->handed_at, m->state_at), MAX(m->last_seen, v->not_before));
                        if (now - last > (int64_t) v->deadline) {
                                r = add_change(&d, &cap, i, MEMBER_TIMED_OUT);
                                if (r < 0) {
                                        rollout_decision_done(&d);
                                        return r;
                                }
                                eff[i] = MEMBER_TIMED_OUT;
                                fail_at[i] = now;
                        }
                }
        }
        memset(d.counts, 0, sizeof(d.counts));
        for (size_t i = 0; i < v->n_members; i++)
                if (v->members[i].group < ROLLOUT_MAX_GROUPS)
                        count_one(&d.counts[v->members[i].group], (enum member_state) eff[i]);

        if (d.state == ROLLOUT_RUNNING) {
                /* Error condition, on every group started so far: drones of a completed group that are
                 * still in flight can fail after the next group began, and that must stop it too. */
                for (uint32_t g = 0; g < n_groups && g <= d.current_group; g++) {
                        uint32_t f;
                        if (error_condition(&d.groups[g], &d.counts[g], &f)) {
                                set_state(&d, ROLLOUT_PAUSED,
                                          "group %u: %u of %u drones failed (error condition: %u drones or %u %% failed)",
                                          g + 1, f, effective_size(&d.counts[g]), d.groups[g].cond.error_count,
                                          d.groups[g].cond.error_pct);
                                break;
                        }
                }
        }
        while (d.state == ROLLOUT_RUNNING && d.current_group < n_groups) {
                uint32_t g = d.current_group;
                struct rollout_group *gr = &d.groups[g];
                const struct rollout_counts *c = &d.counts[g];
                uint32_t size = effective_size(c);
                int64_t last_failure = 0;

                for (size_t i = 0; i < v->n_members; i++)
                        if (v->members[i].group == g && member_failure((enum member_state) eff[i]))
                                last_failure = MAX(last_failure, fail_at[i]);
                if ((uint64_t) c->blessed * 100 >= (uint64_t) gr->cond.success_pct * size) {
                        /* Soak: the share must hold with no failure in the group for `soak` seconds; a
                         * failure (a blessed drone that rolled back, one that timed out) restarts it. */
                        int64_t since = gr->success_since ? gr->success_since : now;
                        since = MAX(since, last_failure);
                        if (since != gr->success_since) {
                                gr->success_since = since;
                                d.changed = true;
                        }
                        if (now < since + (int64_t) gr->cond.soak)
                                break;
                        gr->completed_at = now;
                        d.current_group = g + 1;
                        d.changed = true;
                        snprintf(d.reason, sizeof(d.reason), "group %u completed: %u of %u blessed", g + 1,
                                 c->blessed, size);
                        continue;
                }
                if (gr->success_since) {
                        gr->success_since = 0;
                        d.changed = true;
                }
                if (c->pending == 0 && c->in_flight == 0 && size > 0)
                        set_state(&d, ROLLOUT_PAUSED,
                                  "group %u settled with %u of %u blessed, below its success condition (%u %%)",
                                  g + 1, c->blessed, size, gr->cond.success_pct);
                break;
        }
        if (d.state == ROLLOUT_RUNNING && d.current_group >= n_groups) {
                bool busy = false;
                for (uint32_t g = 0; g < n_groups; g++)
                        busy = busy || d.counts[g].in_flight || d.counts[g].pending;
                if (!busy)
                        set_state(&d, ROLLOUT_FINISHED, "all %u groups completed", n_groups);
        }

        /* When time alone could change the decision: a scheduled start, a deadline, a soak's end. */
        d.next_check = INT64_MAX;
        if (d.state == ROLLOUT_SCHEDULED)
                d.next_check = v->start_at;
        if (v->deadline && d.state != ROLLOUT_DRAFT)
                for (size_t i = 0; i < v->n_members; i++) {
                        const struct rollout_member *m = &v->members[i];
                        if (member_in_flight((enum member_state) eff[i])) {
                                int64_t last = MAX(MAX(m->handed_at, m->state_at), MAX(m->last_seen, v->not_before));
                                d.next_check = MIN(d.next_check, last + (int64_t) v->deadline + 1);
                        }
                }
        if (d.state == ROLLOUT_RUNNING && d.current_group < n_groups && d.groups[d.current_group].success_since)
                d.next_check = MIN(d.next_check, d.groups[d.current_group].success_since +
                                                         (int64_t) d.groups[d.current_group].cond.soak);
        *ret = d;
        return 0;
}

/* ---- check-in and reports ---- */

enum rollout_checkin rollout_checkin_decide(enum rollout_state state, uint32_t current_group, uint32_t group,
                                            enum member_state member) {
        if (member != MEMBER_PENDING)
                /* Handed earlier (its drone:ID assignment stands: in-flight drones finish even after an
                 * abort), skipped or removed: the rollout no longer decides. */
                return CHECKIN_FOLLOW;
        if (state == ROLLOUT_RUNNING && group <= current_group)
                return CHECKIN_HAND;
        /* INVARIANT: a member not yet handed gets nothing while its rollout is scheduled, running or
         * paused: neither the release early nor an older static assignment around the rollout. */
        if (state == ROLLOUT_SCHEDULED || state == ROLLOUT_RUNNING || state == ROLLOUT_PAUSED)
                return CHECKIN_HOLD;
        return CHECKIN_FOLLOW;
}

enum member_state rollout_member_on_checkin(enum member_state cur, bool runs_release) {
        return cur == MEMBER_HANDED && runs_release ? MEMBER_BLESSED : cur;
}

enum member_state rollout_member_on_report(enum member_state cur, enum fleet_state reported, bool drift_gate,
                                           bool drift_new) {
        if (cur == MEMBER_PENDING || cur == MEMBER_SKIPPED || cur == MEMBER_REMOVED)
                return cur;
        switch (reported) {
        case FLEET_STATE_DOWNLOADING:
                return MEMBER_DOWNLOADING;
        case FLEET_STATE_WAITING:
                return MEMBER_WAITING;
        case FLEET_STATE_INSTALLED:
                return MEMBER_INSTALLED;
        case FLEET_STATE_REBOOTING:
                return MEMBER_REBOOTING;
        case FLEET_STATE_RETRYING:
                return MEMBER_RETRYING;
        case FLEET_STATE_UPDATED:
                /* INVARIANT: with the drift gate on, a drone counts as blessed only when its audit after
                 * the update fails no check that passed before it. */
                return drift_gate && drift_new ? MEMBER_DRIFT : MEMBER_BLESSED;
        case FLEET_STATE_FAILED:
                return MEMBER_FAILED;
        case FLEET_STATE_ROLLED_BACK:
                return MEMBER_ROLLED_BACK;
        case FLEET_STATE_IDLE:
        case _FLEET_STATE_MAX:
        default:
                return cur;
        }
}

static bool list_has(const char *list, const char *id, size_t n) {
        for (const char *p = list; p && *p;) {
                const char *sp = strchr(p, ' ');
                size_t len = sp ? (size_t) (sp - p) : strlen(p);
                if (len == n && memcmp(p, id, n) == 0)
                        return true;
                if (!sp)
                        break;
                p = sp + 1;
        }
        return false;
}

size_t rollout_drift_new(bool base_known, const char *base, bool post_known, const char *post, char *out,
                         size_t cap) {
        size_t count = 0, o = 0;

        if (cap)
                out[0] = '\0';
        if (!post_known) {
                if (!base_known)
                        return 0;
                if (cap)
                        snprintf(out, cap, "audit-missing");
                return 1;
        }
        for (const char *p = post ? post : ""; *p;) {
                const char *sp = strchr(p, ' ');
                size_t len = sp ? (size_t) (sp - p) : strlen(p);
                if (len > 0 && (!base_known || !list_has(base, p, len))) {
                        count++;
                        if (o + len + 2 <= cap) {
                                if (o)
                                        out[o++] = ' ';
                                memcpy(out + o, p, len);
                                o += len;
                                out[o] = '\0';
                        }
                }
                if (!sp)
                        break;
                p = sp + 1;
        }
        return count;
}
