/* ui-rollouts.c: the Rollouts views: each group's progress, its conditions and how close each is, the history as a chart, and the operator's actions. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "parse.h"
#include "store-rollout.h"
#include "ui-chart.h"
#include "ui.h"

/* ---- the actions: what each does, when it is offered, who may ---- */

struct rollout_act {
        const char *name;
        enum rollout_action a;
        const char *button, *explain;
        bool danger;
};

static const struct rollout_act acts[] = {
        { "approve", ROLLOUT_APPROVE, "Approve",
          "Approving lets the rollout be started. You must be an approver, and not the operator who created it.", false },
        { "start", ROLLOUT_START, "Start",
          "The scheduler begins with the first group (the canary) at its next pass, or at the rollout's start "
          "time when one was set.", false },
        { "pause", ROLLOUT_PAUSE, "Pause",
          "No drone is handed the release while the rollout is paused. Drones already installing finish and "
          "report; deadlines keep counting for them.", true },
        { "resume", ROLLOUT_RESUME, "Resume",
          "The rollout continues where it stopped. The failures seen so far are accepted: the error "
          "conditions count only failures from now on.", false },
        { "abort", ROLLOUT_ABORT, "Abort",
          "Final: no drone is handed the release any more (members not handed yet are skipped). Drones "
          "already installing finish and report. An aborted rollout cannot be resumed.", true },
        { "retry", ROLLOUT_RETRY, "Retry failed drones",
          "Every failed member (failed, rolled back, timed out, drift) becomes pending again with a new retry "
          "generation, so its agent tries the release once more.", false },
};

static const struct rollout_act *act_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(acts); i++)
                if (streq(acts[i].name, name))
                        return &acts[i];
        return NULL;
}

/* Whether the rollout's state (and approval) allows the action; the store decides again when it is asked. */
static bool act_offered(const struct rollout_act *a, json_t *ro) {
        const char *st = json_string_value(json_object_get(ro, "state"));
        bool approval_needed = json_is_true(json_object_get(ro, "require_approval")) && !json_object_get(ro, "approved_by");

        switch (a->a) {
        case ROLLOUT_APPROVE:
                return streq(st, "draft") && approval_needed;
        case ROLLOUT_START:
                return streq(st, "draft") && !approval_needed;
        case ROLLOUT_PAUSE:
                return streq(st, "running") || streq(st, "scheduled");
        case ROLLOUT_RESUME:
                return streq(st, "paused");
        case ROLLOUT_ABORT:
                return streq(st, "draft") || streq(st, "scheduled") || streq(st, "running") || streq(st, "paused");
        case ROLLOUT_RETRY: {
                json_t *c = json_object_get(ro, "counts");
                json_int_t failed = json_integer_value(json_object_get(c, "failed")) +
                                    json_integer_value(json_object_get(c, "rolled-back")) +
                                    json_integer_value(json_object_get(c, "timed-out")) +
                                    json_integer_value(json_object_get(c, "drift"));
                return failed > 0 && (streq(st, "running") || streq(st, "paused") || streq(st, "finished"));
        }
        }
        return false;
}

static bool parse_rollout_id(const char *s, int64_t *ret) {
        uint64_t v;
        if (parse_u64(s, &v) < 0 || v == 0 || v > INT64_MAX)
                return false;
        *ret = (int64_t) v;
        return true;
}

/* ---- the list ---- */

static json_int_t count_of(json_t *o, const char *k) {
        return json_integer_value(json_object_get(o, k));
}

static void counts_of(json_t *counts, json_int_t *blessed, json_int_t *failed, json_int_t *in_flight, json_int_t *pending) {
        *blessed = count_of(counts, "blessed");
        *failed = count_of(counts, "failed") + count_of(counts, "rolled-back") + count_of(counts, "timed-out") +
                  count_of(counts, "drift");
        *in_flight = count_of(counts, "handed") + count_of(counts, "downloading") + count_of(counts, "waiting") +
                     count_of(counts, "installed") + count_of(counts, "rebooting") + count_of(counts, "retrying");
        *pending = count_of(counts, "pending");
}

int ui_page_rollouts(struct ui_page *p) {
        json_t *all = NULL, *ro;
        size_t i;
        int r;

        p->title = "Rollouts";
        p->nav = "rollouts";
        p->refresh = 15;
        r = store_rollouts_json(p->x->srv->db, &all);
        if (r < 0)
                return r;
        html_printf(&p->h, "<h1>Rollouts</h1><p class=\"lead\">%zu rollouts. They are created on the command line "
                           "(<code>ringil-server rollout create</code>) and driven from here or there.</p>",
                    json_array_size(all));
        html_raw(&p->h, "<table id=\"rollouts\"><thead><tr><th class=\"num\">id</th><th>name</th><th>release</th>"
                        "<th>target</th><th>state</th><th>group</th><th>progress</th><th class=\"num\">blessed</th>"
                        "<th class=\"num\">failed</th><th class=\"num\">in flight</th><th class=\"num\">pending</th>"
                        "<th>created</th></tr></thead><tbody>");
        for (i = json_array_size(all); i-- > 0;) {
                json_int_t b, f, fl, pe, size = 0;
                json_t *v;
                const char *k;

                ro = json_array_get(all, i);
                json_object_foreach(json_object_get(ro, "counts"), k, v)
                        size += json_integer_value(v);
                counts_of(json_object_get(ro, "counts"), &b, &f, &fl, &pe);
                struct bar_segment seg[] = {
                        { "blessed", "s-blessed", (double) b },
                        { "failed", "s-failed", (double) f },
                        { "in flight", "s-downloading", (double) fl },
                };
                html_printf(&p->h, "<tr data-rollout=\"%lld\"><td class=\"num\"><a href=\"/ui/rollout?id=%lld\">%lld</a></td>"
                                   "<td><a href=\"/ui/rollout?id=%lld\">%s</a></td><td>%s (#%lld)</td><td>%s</td><td>",
                            (long long) count_of(ro, "id"), (long long) count_of(ro, "id"), (long long) count_of(ro, "id"),
                            (long long) count_of(ro, "id"), json_string_value(json_object_get(ro, "name")),
                            json_string_value(json_object_get(ro, "version")), (long long) count_of(ro, "release"),
                            json_string_value(json_object_get(ro, "target")));
                ui_badge(&p->h, json_string_value(json_object_get(ro, "state")));
                html_printf(&p->h, "</td><td>%lld of %lld</td><td>", (long long) count_of(ro, "current_group"),
                            (long long) count_of(ro, "groups_total"));
                ui_chart_bar(&p->h, seg, ELEMENTSOF(seg), (double) (size > 0 ? size : 1));
                html_printf(&p->h, "</td><td class=\"num\">%lld</td><td class=\"num\">%lld</td><td class=\"num\">%lld</td>"
                                   "<td class=\"num\">%lld</td><td>",
                            (long long) b, (long long) f, (long long) fl, (long long) pe);
                ui_time(p, count_of(ro, "created"));
                html_printf(&p->h, " by %s</td></tr>", json_string_value(json_object_get(ro, "created_by")));
        }
        if (json_array_size(all) == 0)
                html_raw(&p->h, "<tr><td colspan=\"12\" class=\"muted\">No rollout yet.</td></tr>");
        html_raw(&p->h, "</tbody></table>");
        json_decref(all);
        return 200;
}

/* ---- one rollout ---- */

#define MEMBERS_SHOWN 200

/* Members over time, replayed from the rollout's events: each drone's class after its last event. */
enum { C_BLESSED, C_FAILED, C_FLIGHT, C_OUT, _C_MAX };

struct history {
        int64_t t0, t1;
        int64_t times[48];
        double v[_C_MAX][48];
        unsigned counts[_C_MAX];
        uint8_t *cls;           /* per drone: its class + 1, 0 = pending */
        size_t n_cls;
        struct ui_idmap ids;
        size_t next;            /* the next point to record */
};

static int event_class(const char *e) {
        static const char *const flight[] = { "handed", "downloading", "waiting", "installed", "rebooting", "retrying" };
        static const char *const failed[] = { "failed", "rolled-back", "timed-out", "drift" };

        if (streq(e, "blessed"))
                return C_BLESSED;
        for (size_t i = 0; i < ELEMENTSOF(failed); i++)
                if (streq(e, failed[i]))
                        return C_FAILED;
        for (size_t i = 0; i < ELEMENTSOF(flight); i++)
                if (streq(e, flight[i]))
                        return C_FLIGHT;
        if (streq(e, "removed") || streq(e, "skipped"))
                return C_OUT;
        if (streq(e, "retry") || streq(e, "pending"))
                return -1;   /* pending again */
        return -2;           /* not a member state: ignored */
}

static void history_record_until(struct history *h, int64_t t) {
        for (; h->next < ELEMENTSOF(h->times) && h->times[h->next] < t; h->next++)
                for (int c = 0; c < _C_MAX; c++)
                        h->v[c][h->next] = h->counts[c];
}

static int history_event(int64_t t, const char *drone, const char *event, void *userdata) {
        struct history *h = userdata;
        int c = event_class(event), r;
        uint32_t d;

        if (c == -2)
                return 0;
        history_record_until(h, t);
        r = ui_idmap_get(&h->ids, drone, &d);
        if (r < 0)
                return r;
        if (d >= h->n_cls) {
                size_t n = MAX(2 * h->n_cls, (size_t) d + 1024);
                uint8_t *p = realloc(h->cls, n);
                if (!p)
                        return -ENOMEM;
                memset(p + h->n_cls, 0, n - h->n_cls);
                h->cls = p;
                h->n_cls = n;
        }
        if (h->cls[d])
                h->counts[h->cls[d] - 1]--;
        h->cls[d] = (uint8_t) (c >= 0 ? c + 1 : 0);
        if (c >= 0)
                h->counts[c]++;
        return 0;
}

static int history_chart(struct ui_page *p, int64_t id, json_t *ro, json_int_t members) {
        struct history h = {};
        int64_t start = count_of(ro, "started_at") ? count_of(ro, "started_at") : count_of(ro, "created");
        int64_t end = count_of(ro, "ended_at") ? count_of(ro, "ended_at") : p->now;
        double pending[48];
        int r;

        if (end - start < 60)
                start = end - 60;
        for (size_t i = 0; i < ELEMENTSOF(h.times); i++)
                h.times[i] = start + (end - start) * (int64_t) i / (int64_t) (ELEMENTSOF(h.times) - 1);
        h.times[ELEMENTSOF(h.times) - 1] = end + 1;   /* the last point holds every event up to now */
        r = store_rollout_history(p->x->srv->db, id, history_event, &h);
        if (r >= 0) {
                history_record_until(&h, INT64_MAX);
                h.times[ELEMENTSOF(h.times) - 1] = end;
                for (size_t i = 0; i < ELEMENTSOF(h.times); i++) {
                        double v = (double) members - h.v[C_BLESSED][i] - h.v[C_FAILED][i] - h.v[C_FLIGHT][i] - h.v[C_OUT][i];
                        pending[i] = v > 0 ? v : 0;
                }
                struct chart_series series[] = {
                        { "blessed", "s-blessed", h.v[C_BLESSED] },
                        { "failed", "s-failed", h.v[C_FAILED] },
                        { "in flight", "s-downloading", h.v[C_FLIGHT] },
                        { "not handed yet", "s-silent", pending },
                };
                ui_chart_stacked(&p->h, "Members by state over time", h.times, ELEMENTSOF(h.times), series,
                                 ELEMENTSOF(series));
        }
        ui_idmap_free(&h.ids);
        free(h.cls);
        return r;
}

/* A group: its bar, and each condition with how close it is. */
static void group_block(struct ui_page *p, json_t *g, json_int_t current, bool completed_all) {
        json_int_t k = count_of(g, "group"), size = count_of(g, "size"), blessed = count_of(g, "blessed"),
                   failed = count_of(g, "failed"), flight = count_of(g, "in_flight"), pending = count_of(g, "pending");
        json_int_t spct = count_of(g, "success_percent"), need = (size * spct + 99) / 100;
        json_int_t ecount = count_of(g, "error_count"), epct = count_of(g, "error_percent");
        json_int_t since_resume = failed - count_of(g, "failures_accepted");
        json_int_t elimit = 0;
        int64_t done_at = count_of(g, "completed_at"), soak_since = count_of(g, "success_since"), soak = count_of(g, "soak");
        const char *phase = done_at ? "completed" : k == current && !completed_all ? "current" : k < current ? "completed" : "waiting";
        struct bar_segment seg[] = {
                { "blessed", "s-blessed", (double) blessed },
                { "failed", "s-failed", (double) failed },
                { "in flight", "s-downloading", (double) flight },
                { "pending", "s-silent", (double) pending },
        };
        char when[32];

        if (ecount > 0)
                elimit = ecount;
        if (epct > 0) {
                json_int_t by_pct = (size * epct + 99) / 100;
                elimit = elimit > 0 ? MIN(elimit, by_pct) : by_pct;
        }
        html_printf(&p->h, "<li class=\"group g-%s\" data-group=\"%lld\" data-blessed=\"%lld\" data-failed=\"%lld\" "
                           "data-in-flight=\"%lld\" data-pending=\"%lld\"><div class=\"gh\"><b>Group %lld</b>%s · %lld "
                           "drone%s · <span class=\"phase\">%s</span></div>",
                    phase, (long long) k, (long long) blessed, (long long) failed, (long long) flight, (long long) pending,
                    (long long) k, k == 1 ? " (canary)" : "", (long long) size, size == 1 ? "" : "s", phase);
        ui_chart_bar(&p->h, seg, ELEMENTSOF(seg), (double) (size > 0 ? size : 1));
        html_printf(&p->h, "<div class=\"muted\">%lld blessed · %lld failed · %lld in flight · %lld pending</div>",
                    (long long) blessed, (long long) failed, (long long) flight, (long long) pending);
        /* success: the share, then the soak */
        html_printf(&p->h, "<div class=\"cond success\">success: <meter min=\"0\" max=\"%lld\" value=\"%lld\"></meter> "
                           "%lld of %lld blessed needed (%lld %%)",
                    (long long) (need > 0 ? need : 1), (long long) MIN(blessed, need), (long long) blessed, (long long) need,
                    (long long) spct);
        if (soak > 0)
                html_printf(&p->h, ", then %lld s without a failure", (long long) soak);
        if (done_at)
                html_printf(&p->h, " — <b>met</b>, completed %s", html_time(done_at, when));
        else if (soak_since > 0)
                html_printf(&p->h, " — <b>soaking</b> since %s, done at %s if nothing fails", html_time(soak_since, when),
                            html_time(soak_since + soak, (char[32]) {}));
        html_raw(&p->h, "</div>");
        /* error: failures since the last resume, against the smaller of the count and the share */
        if (elimit > 0)
                html_printf(&p->h, "<div class=\"cond error\">error: <meter min=\"0\" max=\"%lld\" low=\"%lld\" high=\"%lld\" "
                                   "optimum=\"0\" value=\"%lld\"></meter> %lld of %lld failures pause the rollout",
                            (long long) elimit, (long long) (elimit > 1 ? elimit - 1 : 0), (long long) elimit,
                            (long long) MIN(MAX(since_resume, 0), elimit), (long long) MAX(since_resume, 0),
                            (long long) elimit);
        else
                html_raw(&p->h, "<div class=\"cond error\">error: no condition");
        if (ecount > 0 && epct > 0)
                html_printf(&p->h, " (%lld drones or %lld %%)", (long long) ecount, (long long) epct);
        else if (epct > 0)
                html_printf(&p->h, " (%lld %%)", (long long) epct);
        if (count_of(g, "failures_accepted"))
                html_printf(&p->h, "; %lld earlier failures accepted at a resume", (long long) count_of(g, "failures_accepted"));
        html_raw(&p->h, "</div></li>");
}

int ui_page_rollout(struct ui_page *p) {
        const char *done = ui_arg(p, "done"), *me = p->x->req->peer;
        json_t *ro = NULL, *look = NULL, *g, *m, *e;
        json_int_t members = 0, b, f, fl, pe;
        int64_t id;
        size_t i;
        const char *k;
        json_t *v;
        int r;

        p->title = "Rollout";
        p->nav = "rollouts";
        p->refresh = 10;
        if (!parse_rollout_id(ui_arg(p, "id"), &id)) {
                html_raw(&p->h, "<h1>No such rollout</h1>");
                return 404;
        }
        r = store_rollout_json_brief(p->x->srv->db, id, &ro);
        if (r == -ENOENT) {
                html_printf(&p->h, "<h1>No such rollout</h1><p>There is no rollout %lld.</p>", (long long) id);
                return 404;
        }
        if (r < 0)
                return r;
        json_object_foreach(json_object_get(ro, "counts"), k, v)
                members += json_integer_value(v);
        counts_of(json_object_get(ro, "counts"), &b, &f, &fl, &pe);

        html_printf(&p->h, "<h1>Rollout %lld <span class=\"id\">%s</span> <span id=\"state\" data-state=\"%s\">",
                    (long long) id, json_string_value(json_object_get(ro, "name")),
                    json_string_value(json_object_get(ro, "state")));
        ui_badge(&p->h, json_string_value(json_object_get(ro, "state")));
        html_raw(&p->h, "</span></h1>");
        if (json_string_value(json_object_get(ro, "reason"))[0])
                html_printf(&p->h, "<p class=\"lead\" id=\"reason\">%s</p>", json_string_value(json_object_get(ro, "reason")));
        if (done[0] && act_find(done))
                html_printf(&p->h, "<p class=\"notice\" role=\"status\">Done: %s.</p>", act_find(done)->button);

        /* actions: a link to each offered action's confirmation */
        html_raw(&p->h, "<p class=\"actions\" id=\"rollout-actions\">");
        for (size_t a = 0; a < ELEMENTSOF(acts); a++) {
                if (!act_offered(&acts[a], ro))
                        continue;
                /* approval needs an approver other than the creator: do not offer what will be refused */
                if (acts[a].a == ROLLOUT_APPROVE &&
                    (!api_is_approver(p->x->srv, me) || streq(me, json_string_value(json_object_get(ro, "created_by")))))
                        continue;
                html_printf(&p->h, "<a class=\"button%s\" data-confirm data-action=\"%s\" href=\"/ui/rollout/%s?id=%lld\">%s…</a> ",
                            acts[a].danger ? " danger" : "", acts[a].name, acts[a].name, (long long) id, acts[a].button);
        }
        html_printf(&p->h, "<a class=\"button\" href=\"/api/v1/rollouts/%lld\">JSON</a></p>", (long long) id);

        /* facts */
        html_raw(&p->h, "<div class=\"split\"><dl class=\"facts\" id=\"facts\">");
        html_printf(&p->h, "<dt>release</dt><dd><a href=\"/ui/releases\">%s</a> (#%lld)</dd><dt>target</dt><dd>%s, %lld drones</dd>",
                    json_string_value(json_object_get(ro, "version")), (long long) count_of(ro, "release"),
                    json_string_value(json_object_get(ro, "target")), (long long) members);
        html_printf(&p->h, "<dt>created</dt><dd>by %s, ", json_string_value(json_object_get(ro, "created_by")));
        ui_time(p, count_of(ro, "created"));
        html_raw(&p->h, "</dd><dt>approval</dt><dd>");
        if (!json_is_true(json_object_get(ro, "require_approval")))
                html_raw(&p->h, "not required");
        else if (json_object_get(ro, "approved_by"))
                html_printf(&p->h, "approved by %s", json_string_value(json_object_get(ro, "approved_by")));
        else
                html_raw(&p->h, "<b>required</b>, not given yet");
        html_raw(&p->h, "</dd><dt>started</dt><dd>");
        if (count_of(ro, "started_at"))
                ui_time(p, count_of(ro, "started_at"));
        else if (count_of(ro, "start_at")) {
                html_raw(&p->h, "scheduled for ");
                ui_time(p, count_of(ro, "start_at"));
        } else
                html_raw(&p->h, "<span class=\"muted\">not yet</span>");
        if (count_of(ro, "ended_at")) {
                html_raw(&p->h, "</dd><dt>ended</dt><dd>");
                ui_time(p, count_of(ro, "ended_at"));
        }
        html_printf(&p->h, "</dd><dt>deadline</dt><dd>%lld s of silence after a drone was handed the release is a failure</dd>"
                           "<dt>download rate</dt><dd>",
                    (long long) count_of(ro, "deadline"));
        if (count_of(ro, "rate")) {
                char sz[32];
                html_printf(&p->h, "%s/s per drone", html_size((uint64_t) count_of(ro, "rate"), sz));
        } else
                html_raw(&p->h, "unlimited");
        html_printf(&p->h, "</dd><dt>drift gate</dt><dd>%s</dd></dl><div><dl class=\"facts\" id=\"totals\">"
                           "<dt>blessed</dt><dd data-n=\"blessed\">%lld</dd><dt>failed</dt><dd data-n=\"failed\">%lld</dd>"
                           "<dt>in flight</dt><dd data-n=\"in-flight\">%lld</dd><dt>pending</dt><dd data-n=\"pending\">%lld</dd>",
                    json_is_true(json_object_get(ro, "drift_gate"))
                            ? "on: a drone whose audit after the update fails checks that passed before counts as a failure"
                            : "off",
                    (long long) b, (long long) f, (long long) fl, (long long) pe);
        if (count_of(json_object_get(ro, "counts"), "skipped") || count_of(json_object_get(ro, "counts"), "removed"))
                html_printf(&p->h, "<dt>skipped, removed</dt><dd>%lld, %lld</dd>",
                            (long long) count_of(json_object_get(ro, "counts"), "skipped"),
                            (long long) count_of(json_object_get(ro, "counts"), "removed"));
        html_raw(&p->h, "</dl></div></div>");

        /* groups */
        html_printf(&p->h, "<section><h2>Groups</h2><ol class=\"groups\" id=\"groups\">");
        json_array_foreach(json_object_get(ro, "groups"), i, g)
                group_block(p, g, count_of(ro, "current_group"), json_is_true(json_object_get(ro, "completed")));
        html_raw(&p->h, "</ol></section>");

        /* history */
        html_raw(&p->h, "<section><h2>Over time</h2>");
        r = history_chart(p, id, ro, members);
        html_raw(&p->h, "</section>");

        /* members that need a look: failures first, then those in flight */
        if (r >= 0)
                r = store_rollout_attention(p->x->srv->db, id, MEMBERS_SHOWN, &look);
        html_raw(&p->h, "<section><h2>Failed and in-flight members</h2><table id=\"members\"><thead><tr><th>drone</th>"
                        "<th class=\"num\">group</th><th>state</th><th class=\"num\">attempt</th><th>handed</th><th>since</th>"
                        "<th>detail</th></tr></thead><tbody>");
        json_array_foreach(json_object_get(look, "members"), i, m) {
                html_printf(&p->h, "<tr data-member=\"%s\"><td>", json_string_value(json_object_get(m, "drone")));
                ui_drone_link(&p->h, json_string_value(json_object_get(m, "drone")));
                html_printf(&p->h, "</td><td class=\"num\">%lld</td><td>%s</td><td class=\"num\">%lld</td><td>",
                            (long long) count_of(m, "group"), json_string_value(json_object_get(m, "state")),
                            (long long) count_of(m, "attempt"));
                ui_time(p, count_of(m, "handed_at"));
                html_raw(&p->h, "</td><td>");
                ui_time(p, count_of(m, "state_at"));
                html_printf(&p->h, "</td><td class=\"err\">%s</td></tr>", json_string_value(json_object_get(m, "detail")));
        }
        if (json_array_size(json_object_get(look, "members")) == 0)
                html_raw(&p->h, "<tr><td colspan=\"7\" class=\"muted\">None.</td></tr>");
        if (count_of(look, "total") > (json_int_t) json_array_size(json_object_get(look, "members")))
                html_printf(&p->h, "<tr><td colspan=\"7\" class=\"muted\">… and %lld more (the JSON has every member).</td></tr>",
                            (long long) (count_of(look, "total") - (json_int_t) json_array_size(json_object_get(look, "members"))));
        json_decref(look);
        html_raw(&p->h, "</tbody></table></section>");

        /* the newest events */
        html_raw(&p->h, "<section><h2>Events</h2><ol class=\"timeline\" id=\"events\">");
        json_array_foreach(json_object_get(ro, "events"), i, e) {
                if (i >= 40)
                        break;
                html_printf(&p->h, "<li class=\"k-%s\"><span class=\"when\">", json_string_value(json_object_get(e, "event")));
                ui_time(p, count_of(e, "time"));
                html_printf(&p->h, "</span><span class=\"kind\">%s</span> ", json_string_value(json_object_get(e, "event")));
                if (json_string_value(json_object_get(e, "drone"))[0])
                        ui_drone_link(&p->h, json_string_value(json_object_get(e, "drone")));
                html_printf(&p->h, " %s</li>", json_string_value(json_object_get(e, "detail")));
        }
        html_raw(&p->h, "</ol></section><section><h2>Operator actions on this rollout</h2>");
        {
                char target[40];
                snprintf(target, sizeof(target), "rollout:%lld", (long long) id);
                ui_actions_table(p, target, 20);
        }
        html_raw(&p->h, "</section>");
        json_decref(ro);
        return r < 0 ? r : 200;
}

/* ---- confirmation and POST ---- */

int ui_page_rollout_action(struct ui_page *p) {
        const struct rollout_act *a = act_find(strchr(p->x->param, '/') + 1);
        char path[64], back[64];
        json_t *ro = NULL;
        json_int_t members = 0;
        json_t *v;
        const char *k;
        int64_t id;
        int r;

        p->title = "Rollout";
        p->nav = "rollouts";
        if (!a || !parse_rollout_id(ui_arg(p, "id"), &id)) {
                html_raw(&p->h, "<h1>No such rollout or action</h1>");
                return 404;
        }
        r = store_rollout_json_brief(p->x->srv->db, id, &ro);
        if (r == -ENOENT) {
                html_printf(&p->h, "<h1>No such rollout</h1><p>There is no rollout %lld.</p>", (long long) id);
                return 404;
        }
        if (r < 0)
                return r;
        json_object_foreach(json_object_get(ro, "counts"), k, v)
                members += json_integer_value(v);
        html_printf(&p->h, "<h1>%s rollout %lld <span class=\"id\">%s</span>?</h1>", a->button, (long long) id,
                    json_string_value(json_object_get(ro, "name")));
        html_printf(&p->h, "<p>Release %s to %s (%lld drones), now <b>%s</b>, group %lld of %lld.</p><p>%s</p>",
                    json_string_value(json_object_get(ro, "version")), json_string_value(json_object_get(ro, "target")),
                    (long long) members, json_string_value(json_object_get(ro, "state")),
                    (long long) count_of(ro, "current_group"), (long long) count_of(ro, "groups_total"), a->explain);
        if (!act_offered(a, ro))
                html_printf(&p->h, "<p class=\"error\">In its state (%s) the server will refuse this.</p>",
                            json_string_value(json_object_get(ro, "state")));
        json_decref(ro);
        snprintf(path, sizeof(path), "/ui/rollout/%s", a->name);
        snprintf(back, sizeof(back), "/ui/rollout?id=%lld", (long long) id);
        {
                char idtext[24];
                snprintf(idtext, sizeof(idtext), "%lld", (long long) id);
                ui_confirm_form(p, path, "id", idtext, a->button, back);
        }
        return 200;
}

int ui_post_rollout_action(struct route_ctx *x) {
        const struct rollout_act *a = act_find(strrchr(x->http->path, '/') + 1);   /* the routes end in the action */
        char loc[96];
        struct form f;
        int64_t id;
        int r;

        if (!a)
                return ui_error_page(x, 404, "Not found", "There is no such action.");
        r = ui_post_begin(x, "id", "rollout:", &f);
        if (r < 0)
                return -r;
        snprintf(x->log_detail, sizeof(x->log_detail), "%s rollout", a->name);
        if (!parse_rollout_id(form_get(&f, "id"), &id)) {
                form_done(&f);
                return ui_error_page(x, 404, "No such rollout", "The form names no rollout.");
        }
        form_done(&f);
        r = store_rollout_action(x->srv->db, id, a->a, &(struct rollout_action_args) { .operator_name = x->req->peer },
                                 (int64_t) time(NULL));
        if (r == -ENOENT)
                return ui_error_page(x, 404, "No such rollout", "There is no such rollout.");
        /* the store's refusals, answered as the API answers them (api-rollout.c) */
        if (r == -EPERM || r == -EEXIST || r == -EACCES || r == -ENODATA) {
                snprintf(x->log_detail, sizeof(x->log_detail), "%s rollout: refused: %s", a->name, ringil_detail());
                return ui_error_page(x, r == -EACCES ? 403 : r == -ENODATA ? 422 : 409, "Refused", ringil_detail());
        }
        if (r < 0)
                return ui_error_page(x, 503, "Store busy", "The fleet database did not take the change; nothing was changed.");
        log_info("rollout %" PRId64 ": %s by '%s' (dashboard)", id, a->name, x->req->peer);
        snprintf(loc, sizeof(loc), "/ui/rollout?id=%" PRId64 "&done=%s", id, a->name);
        return ui_redirect(x, loc);
}
