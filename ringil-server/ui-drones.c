/* ui-drones.c: the Drones table (filter, search, sort, pages) and the Drone view (identity, timeline, actions). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "drift.h"
#include "err.h"
#include "fleet-ca.h"
#include "log.h"
#include "parse.h"
#include "store-rollout.h"
#include "ui.h"

#define PER_PAGE_DEFAULT 50

static const char *const sort_names[_DRONE_SORT_MAX] = {
        [DRONE_SORT_ID] = "id",
        [DRONE_SORT_GROUP] = "group",
        [DRONE_SORT_VERSION] = "version",
        [DRONE_SORT_STATE] = "state",
        [DRONE_SORT_LAST_SEEN] = "last_seen",
};

static bool ui_state_valid(const char *s) {
        static const char *const states[] = { STORE_UI_STATES };
        for (size_t i = 0; i < ELEMENTSOF(states); i++)
                if (streq(states[i], s))
                        return true;
        return false;
}

static const char *const drift_kinds[] = { "release", "audit", "secureboot", "silent" };

static bool drift_kind_valid(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(drift_kinds); i++)
                if (streq(drift_kinds[i], s))
                        return true;
        return false;
}

struct drones_view {
        const char *q, *version, *group, *state, *tag, *drift;
        enum drone_sort sort;
        bool desc;
        uint32_t page, per;
};

/* Append "&name=value" (value percent-encoded) unless value is empty. */
static void q_add(struct buf *q, const char *name, const char *value) {
        char enc[3 * FORM_MAX_VALUE + 1];

        if (value[0] && form_encode(value, enc, sizeof(enc)))
                (void) buf_printf(q, "%s%s=%s", q->len > strlen("/ui/drones?") ? "&" : "", name, enc);
}

/* The address of the table with v's filters and the given sort, direction and page (in href, reset). */
static const char *drones_href(const struct drones_view *v, enum drone_sort sort, bool desc, uint32_t page,
                               struct buf *href) {
        char num[16];

        buf_reset(href);
        (void) buf_append_str(href, "/ui/drones?");
        q_add(href, "q", v->q);
        q_add(href, "version", v->version);
        q_add(href, "group", v->group);
        q_add(href, "state", v->state);
        q_add(href, "tag", v->tag);
        q_add(href, "drift", v->drift);
        if (sort != DRONE_SORT_ID)
                q_add(href, "sort", sort_names[sort]);
        if (desc)
                q_add(href, "dir", "desc");
        if (v->per != PER_PAGE_DEFAULT) {
                snprintf(num, sizeof(num), "%u", v->per);
                q_add(href, "per", num);
        }
        if (page > 1) {
                snprintf(num, sizeof(num), "%u", page);
                q_add(href, "page", num);
        }
        if (href->len == strlen("/ui/drones?"))
                href->data[--href->len] = '\0';   /* no query at all */
        return href->data ? (const char *) href->data : "/ui/drones";
}

static void select_box(struct html *h, const char *name, const char *label, json_t *values, const char *current,
                       const char *const *fixed, size_t n_fixed) {
        json_t *v;
        size_t i;

        html_printf(h, "<label>%s <select name=\"%s\"><option value=\"\">any</option>", label, name);
        json_array_foreach(values, i, v) {
                const char *s = json_string_value(v);
                html_printf(h, "<option%s>%s</option>", streq(s, current) ? " selected" : "", s);
        }
        for (i = 0; i < n_fixed; i++)
                html_printf(h, "<option%s>%s</option>", streq(fixed[i], current) ? " selected" : "", fixed[i]);
        html_raw(h, "</select></label> ");
}

static void th_sort(struct ui_page *p, const struct drones_view *v, enum drone_sort s, const char *label) {
        _cleanup_buf_ struct buf href = BUF_INIT(16384);
        bool here = v->sort == s, desc = here && !v->desc;

        html_printf(&p->h, "<th%s><a href=\"%s\">%s%s</a></th>",
                    here ? (v->desc ? " aria-sort=\"descending\"" : " aria-sort=\"ascending\"") : "",
                    drones_href(v, s, desc, 1, &href), label, here ? (v->desc ? " ▼" : " ▲") : "");
}

int ui_page_drones(struct ui_page *p) {
        static const char *const states[] = { STORE_UI_STATES };
        struct server *srv = p->x->srv;
        struct drones_view v = {
                .q = ui_arg(p, "q"),
                .version = ui_arg(p, "version"),
                .group = ui_arg(p, "group"),
                .state = ui_arg(p, "state"),
                .tag = ui_arg(p, "tag"),
                .drift = ui_arg(p, "drift"),
                .desc = streq(ui_arg(p, "dir"), "desc"),
                .page = 1,
                .per = PER_PAGE_DEFAULT,
        };
        json_t *facets = NULL, *page = NULL, *d;
        _cleanup_buf_ struct buf href = BUF_INIT(16384);
        uint64_t total, pages;
        size_t i;
        int r;

        p->title = "Drones";
        p->nav = "drones";
        for (int s = 0; s < _DRONE_SORT_MAX; s++)
                if (streq(ui_arg(p, "sort"), sort_names[s]))
                        v.sort = (enum drone_sort) s;
        if (ui_arg(p, "page")[0] && parse_u32_range(ui_arg(p, "page"), 1, 1000000, &v.page) < 0)
                v.page = 1;
        if (ui_arg(p, "per")[0] && parse_u32_range(ui_arg(p, "per"), 10, 500, &v.per) < 0)
                v.per = PER_PAGE_DEFAULT;
        if (v.state[0] && !ui_state_valid(v.state))
                v.state = "";
        if (v.drift[0] && !drift_kind_valid(v.drift))
                v.drift = "";

        r = store_drone_facets(srv->db, &facets);
        if (r >= 0)
                r = store_drones_page(srv->db,
                                      &(struct drone_query) {
                                              .search = v.q,
                                              .version = v.version,
                                              .group = v.group,
                                              .state = v.state,
                                              .tag = v.tag,
                                              .drift = v.drift,
                                              .sort = v.sort,
                                              .desc = v.desc,
                                              .limit = v.per,
                                              .offset = (v.page - 1) * v.per,
                                              .now = p->now,
                                              .silent_after = ui_silent_after(srv),
                                      },
                                      &page);
        if (r < 0) {
                json_decref(facets);
                return r;
        }
        total = (uint64_t) json_integer_value(json_object_get(page, "total"));
        pages = total ? (total + v.per - 1) / v.per : 1;

        html_raw(&p->h, "<h1>Drones</h1><form class=\"filters\" method=\"get\" action=\"/ui/drones\">");
        html_printf(&p->h, "<label>Search <input type=\"search\" name=\"q\" value=\"%s\" placeholder=\"id or error text\" "
                           "maxlength=\"200\"></label> ",
                    v.q);
        select_box(&p->h, "version", "Version", json_object_get(facets, "versions"), v.version, NULL, 0);
        select_box(&p->h, "group", "Group", json_object_get(facets, "groups"), v.group, NULL, 0);
        select_box(&p->h, "state", "State", NULL, v.state, states, ELEMENTSOF(states));
        select_box(&p->h, "tag", "Tag", json_object_get(facets, "tags"), v.tag, NULL, 0);
        select_box(&p->h, "drift", "Drift", NULL, v.drift, drift_kinds, ELEMENTSOF(drift_kinds));
        if (v.sort != DRONE_SORT_ID)
                html_printf(&p->h, "<input type=\"hidden\" name=\"sort\" value=\"%s\">", sort_names[v.sort]);
        if (v.desc)
                html_raw(&p->h, "<input type=\"hidden\" name=\"dir\" value=\"desc\">");
        if (v.per != PER_PAGE_DEFAULT)
                html_printf(&p->h, "<input type=\"hidden\" name=\"per\" value=\"%u\">", v.per);
        html_raw(&p->h, "<button type=\"submit\">Filter</button> <a href=\"/ui/drones\">clear</a></form>");

        html_printf(&p->h, "<p class=\"muted\" id=\"count\" data-total=\"%" PRIu64 "\">%" PRIu64 " drone%s", total, total,
                    total == 1 ? "" : "s");
        if (total > 0)
                html_printf(&p->h, ", %" PRIu64 "–%" PRIu64, (uint64_t) (v.page - 1) * v.per + 1,
                            MIN((uint64_t) v.page * v.per, total));
        html_raw(&p->h, "</p><table id=\"drones\"><thead><tr>");
        th_sort(p, &v, DRONE_SORT_ID, "drone");
        th_sort(p, &v, DRONE_SORT_GROUP, "group");
        th_sort(p, &v, DRONE_SORT_VERSION, "version");
        th_sort(p, &v, DRONE_SORT_STATE, "state");
        th_sort(p, &v, DRONE_SORT_LAST_SEEN, "last check-in");
        html_raw(&p->h, "<th>audit</th><th>last error</th></tr></thead><tbody>");
        json_array_foreach(json_object_get(page, "drones"), i, d) {
                json_t *audit = json_object_get(d, "audit");
                html_printf(&p->h, "<tr data-id=\"%s\"><td>", json_string_value(json_object_get(d, "id")));
                ui_drone_link(&p->h, json_string_value(json_object_get(d, "id")));
                html_printf(&p->h, "</td><td>%s</td><td>%s</td><td>", json_string_value(json_object_get(d, "group")),
                            json_string_value(json_object_get(d, "version")));
                ui_badge(&p->h, json_string_value(json_object_get(d, "ui_state")));
                html_raw(&p->h, "</td><td>");
                ui_time(p, json_integer_value(json_object_get(d, "last_seen")));
                if (audit)
                        html_printf(&p->h, "</td><td class=\"%s\">%lld fail / %lld pass", 
                                    json_integer_value(json_object_get(audit, "fail")) ? "bad" : "good",
                                    (long long) json_integer_value(json_object_get(audit, "fail")),
                                    (long long) json_integer_value(json_object_get(audit, "pass")));
                else
                        html_raw(&p->h, "</td><td class=\"muted\">–");
                html_printf(&p->h, "</td><td class=\"err\">%.120s</td></tr>", json_string_value(json_object_get(d, "error")));
        }
        if (total == 0)
                html_raw(&p->h, "<tr><td colspan=\"7\" class=\"muted\">No drone matches.</td></tr>");
        html_raw(&p->h, "</tbody></table><nav class=\"pages\" aria-label=\"pages\">");
        if (v.page > 1) {
                html_printf(&p->h, "<a href=\"%s\" rel=\"first\">« first</a> ", drones_href(&v, v.sort, v.desc, 1, &href));
                html_printf(&p->h, "<a href=\"%s\" rel=\"prev\">‹ previous</a> ", drones_href(&v, v.sort, v.desc, v.page - 1, &href));
        }
        html_printf(&p->h, "<span>page %u of %" PRIu64 "</span>", v.page, pages);
        if (v.page < pages) {
                html_printf(&p->h, " <a href=\"%s\" rel=\"next\">next ›</a>", drones_href(&v, v.sort, v.desc, v.page + 1, &href));
                html_printf(&p->h, " <a href=\"%s\" rel=\"last\">last »</a>",
                            drones_href(&v, v.sort, v.desc, (uint32_t) MIN(pages, (uint64_t) UINT32_MAX), &href));
        }
        html_raw(&p->h, "</nav>");
        json_decref(facets);
        json_decref(page);
        return 200;
}

/* ---- one drone ---- */

/* What a report's state means on the timeline. */
static const char *event_kind(const char *state) {
        static const struct {
                const char *state, *kind;
        } kinds[] = {
                { "downloading", "download" }, { "installed", "install" },   { "rebooting", "reboot" },
                { "updated", "bless" },        { "rolled-back", "rollback" }, { "failed", "failure" },
                { "waiting", "waiting" },      { "retrying", "retry" },      { "idle", "idle" },
        };
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (streq(kinds[i].state, state))
                        return kinds[i].kind;
        return "report";
}

static void identity_block(struct ui_page *p, json_t *d, const struct drone_identity *id) {
        char when[32];

        html_raw(&p->h, "<section><h2>Identity</h2><dl class=\"facts\" id=\"identity\">");
        html_printf(&p->h, "<dt>status</dt><dd>%s</dd><dt>group</dt><dd>%s</dd>",
                    json_string_value(json_object_get(d, "status")), json_string_value(json_object_get(d, "group")));
        if (id->cert_serial[0])
                html_printf(&p->h, "<dt>certificate serial</dt><dd><code id=\"serial\">%s</code></dd>", id->cert_serial);
        else
                html_raw(&p->h, "<dt>certificate serial</dt><dd class=\"muted\">not on record (issued offline with "
                                "<code>ringil ca issue</code>, or not enrolled yet)</dd>");
        html_raw(&p->h, "<dt>certificate expires</dt><dd id=\"expiry\">");
        if (id->cert_not_after > 0) {
                html_printf(&p->h, "%s (%s)", html_time(id->cert_not_after, when),
                            id->cert_not_after < p->now ? "expired" : "valid");
        } else
                html_raw(&p->h, "<span class=\"muted\">not on record</span>");
        html_raw(&p->h, "</dd><dt>registered</dt><dd>");
        ui_time(p, id->created);
        html_raw(&p->h, "</dd><dt>enrolled</dt><dd>");
        ui_time(p, id->enrolled);
        html_raw(&p->h, "</dd>");
        if (id->token_expires > 0) {
                html_raw(&p->h, "<dt>enrollment token</dt><dd>unused, expires ");
                ui_time(p, id->token_expires);
                html_raw(&p->h, "</dd>");
        }
        html_raw(&p->h, "</dl></section>");
}

static void state_block(struct ui_page *p, json_t *d) {
        json_t *audit = json_object_get(d, "audit");

        html_raw(&p->h, "<section><h2>Now</h2><dl class=\"facts\" id=\"now\">");
        html_printf(&p->h, "<dt>running</dt><dd id=\"version\">%s</dd><dt>slot</dt><dd>%s (boot %s)</dd>",
                    json_string_value(json_object_get(d, "version")), json_string_value(json_object_get(d, "slot")),
                    json_string_value(json_object_get(d, "boot")));
        html_printf(&p->h, "<dt>last report</dt><dd id=\"state\">%s", json_string_value(json_object_get(d, "state")));
        if (json_integer_value(json_object_get(d, "release")))
                html_printf(&p->h, " · release %lld", (long long) json_integer_value(json_object_get(d, "release")));
        if (json_string_value(json_object_get(d, "target"))[0])
                html_printf(&p->h, " → %s", json_string_value(json_object_get(d, "target")));
        html_raw(&p->h, "</dd><dt>last check-in</dt><dd>");
        ui_time(p, json_integer_value(json_object_get(d, "last_seen")));
        html_raw(&p->h, "</dd>");
        if (json_string_value(json_object_get(d, "error"))[0])
                html_printf(&p->h, "<dt>last error</dt><dd class=\"err\" id=\"error\">%s</dd>",
                            json_string_value(json_object_get(d, "error")));
        if (audit)
                html_printf(&p->h, "<dt>audit</dt><dd id=\"audit\">%lld failing, %lld passing checks</dd>",
                            (long long) json_integer_value(json_object_get(audit, "fail")),
                            (long long) json_integer_value(json_object_get(audit, "pass")));
        else
                html_raw(&p->h, "<dt>audit</dt><dd class=\"muted\" id=\"audit\">none reported</dd>");
        html_raw(&p->h, "</dl></section>");
}

/* The failing check IDs of a compliance report, space-separated (for drift_classify). */
static void failing_ids(json_t *audit, char *buf, size_t cap) {
        json_t *id;
        size_t i, o = 0;

        buf[0] = '\0';
        json_array_foreach(json_object_get(audit, "failing"), i, id)
                if (o < cap)
                        o += (size_t) snprintf(buf + o, cap - o, "%s%s", o ? " " : "", json_string_value(id));
}

/* What drift.c says about this drone, from the same inputs as the drift report. */
static void drift_block(struct ui_page *p, json_t *d, const struct drone_auth *auth) {
        json_t *c = json_object_get(d, "compliance"), *aud = json_object_get(c, "audit"), *sb = json_object_get(c, "secureboot");
        char failing[FLEET_AUDIT_MAX_IDS * FLEET_CHECK_ID_MAX];
        struct drift_result res;
        const char *why[] = { res.release, res.audit, res.secureboot, res.silent };

        failing_ids(aud, failing, sizeof(failing));
        drift_classify(&(struct drift_input) {
                               .last_seen = json_integer_value(json_object_get(d, "last_seen")),
                               .version = json_string_value(json_object_get(d, "version")),
                               .assigned_version = auth->assigned ? auth->release.version : NULL,
                               .held = store_rollout_holds(auth),
                               .audit_present = json_is_object(aud),
                               .audit_profile = json_string_value(json_object_get(aud, "profile")),
                               .audit_fail = (uint32_t) json_integer_value(json_object_get(aud, "fail")),
                               .audit_error = (uint32_t) json_integer_value(json_object_get(aud, "error")),
                               .audit_failing = failing,
                               .sb_present = json_is_object(sb),
                               .sb_mode = json_string_value(json_object_get(sb, "mode")),
                               .sb_pk = json_string_value(json_object_get(sb, "pk")),
                               .sb_kek = json_string_value(json_object_get(sb, "kek")),
                               .sb_db = json_string_value(json_object_get(sb, "db")),
                       },
                       p->now, ui_silent_after(p->x->srv), &res);
        html_raw(&p->h, "<dt>drift</dt><dd id=\"drift\">");
        if (!res.kinds)
                html_raw(&p->h, "<span class=\"good\">none</span>");
        for (unsigned b = 0; b < _DRIFT_KINDS; b++)
                if (res.kinds & (1u << b))
                        html_printf(&p->h, "<div data-drift=\"%s\"><span class=\"badge s-failed\">%s</span> %s</div>",
                                    drift_kind_to_string(1u << b), drift_kind_to_string(1u << b), why[b]);
        html_raw(&p->h, "</dd>");
}

/* The last compliance report: Secure Boot and the audit, each failing check with its remedy. */
static void compliance_block(struct ui_page *p, json_t *d, const struct drone_auth *auth) {
        json_t *c = json_object_get(d, "compliance"), *aud = json_object_get(c, "audit"), *sb = json_object_get(c, "secureboot");
        json_t *id, *tags = json_object_get(d, "tags"), *ro = json_object_get(d, "rollout");
        size_t i;

        html_raw(&p->h, "<section><h2>Compliance</h2><dl class=\"facts\" id=\"compliance\">");
        drift_block(p, d, auth);
        html_raw(&p->h, "<dt>Secure Boot</dt><dd id=\"secureboot\">");
        if (json_is_object(sb))
                html_printf(&p->h, "mode %s · PK %s · KEK %s · db %s", json_string_value(json_object_get(sb, "mode")),
                            json_string_value(json_object_get(sb, "pk")), json_string_value(json_object_get(sb, "kek")),
                            json_string_value(json_object_get(sb, "db")));
        else
                html_raw(&p->h, "<span class=\"muted\">not reported</span>");
        html_raw(&p->h, "</dd><dt>audit</dt><dd id=\"audit-report\">");
        if (json_is_object(aud)) {
                html_printf(&p->h, "profile %s: %lld pass, %lld fail, %lld could not be checked, %lld waived, %lld not "
                                   "applicable",
                            json_string_value(json_object_get(aud, "profile")),
                            (long long) json_integer_value(json_object_get(aud, "pass")),
                            (long long) json_integer_value(json_object_get(aud, "fail")),
                            (long long) json_integer_value(json_object_get(aud, "error")),
                            (long long) json_integer_value(json_object_get(aud, "waived")),
                            (long long) json_integer_value(json_object_get(aud, "notapplicable")));
                if (json_integer_value(json_object_get(aud, "time")) > 0) {
                        html_raw(&p->h, " · ran ");
                        ui_time(p, json_integer_value(json_object_get(aud, "time")));
                }
                if (json_string_value(json_object_get(aud, "sha256"))[0])
                        html_printf(&p->h, "<div class=\"muted\">report SHA-256 <code>%s</code></div>",
                                    json_string_value(json_object_get(aud, "sha256")));
        } else
                html_raw(&p->h, "<span class=\"muted\">not reported</span>");
        html_raw(&p->h, "</dd>");
        if (json_array_size(json_object_get(aud, "failing"))) {
                html_raw(&p->h, "<dt>failing checks</dt><dd><ul class=\"checks\" id=\"failing\">");
                json_array_foreach(json_object_get(aud, "failing"), i, id) {
                        const struct audit_check *chk = audit_check_find(json_string_value(id));
                        html_printf(&p->h, "<li data-check=\"%s\"><b>%s</b> ", json_string_value(id), json_string_value(id));
                        if (chk)
                                html_printf(&p->h, "%s <span class=\"badge s-failed\">%s</span><div class=\"remedy\">Fix: %s</div>",
                                            chk->title, audit_severity_to_string(chk->severity), chk->remediation);
                        else
                                html_raw(&p->h, "<span class=\"muted\">(not in this server's audit catalogue)</span>");
                        html_raw(&p->h, "</li>");
                }
                html_raw(&p->h, "</ul></dd>");
        }
        if (json_is_object(c) && json_string_value(json_object_get(c, "system"))[0])
                html_printf(&p->h, "<dt>NixOS system</dt><dd><code>%s</code></dd>", json_string_value(json_object_get(c, "system")));
        if (json_is_object(c) && json_string_value(json_object_get(c, "tz"))[0])
                html_printf(&p->h, "<dt>time zone</dt><dd>%s</dd>", json_string_value(json_object_get(c, "tz")));
        html_raw(&p->h, "<dt>tags</dt><dd id=\"tags\">");
        json_array_foreach(tags, i, id) {
                char enc[3 * 64 + 1];
                html_printf(&p->h, "<a class=\"tag\" href=\"/ui/drones?tag=%s\">%s</a> ",
                            form_encode(json_string_value(id), enc, sizeof(enc)) ? enc : "", json_string_value(id));
        }
        if (!json_array_size(tags))
                html_raw(&p->h, "<span class=\"muted\">none</span>");
        html_raw(&p->h, "</dd>");
        if (json_is_object(ro))
                html_printf(&p->h, "<dt>rollout</dt><dd id=\"rollout\"><a href=\"/ui/rollout?id=%lld\">#%lld</a> (%s), "
                                   "group %lld: %s%s%s</dd>",
                            (long long) json_integer_value(json_object_get(ro, "id")),
                            (long long) json_integer_value(json_object_get(ro, "id")),
                            json_string_value(json_object_get(ro, "state")),
                            (long long) json_integer_value(json_object_get(ro, "group")),
                            json_string_value(json_object_get(ro, "member")),
                            json_string_value(json_object_get(ro, "detail"))[0] ? " — " : "",
                            json_string_value(json_object_get(ro, "detail")));
        html_raw(&p->h, "</dl></section>");
}

/* One compliance history entry on the timeline: the audit's result and Secure Boot's state. */
static void timeline_audit(struct ui_page *p, json_t *h) {
        json_t *aud = json_object_get(h, "audit"), *sb = json_object_get(h, "secureboot"), *id;
        bool fail = json_is_object(aud) && (json_integer_value(json_object_get(aud, "fail")) > 0 ||
                                            json_integer_value(json_object_get(aud, "error")) > 0);
        size_t i;

        html_printf(&p->h, "<li class=\"k-audit-%s\" data-audit-time=\"%lld\"><span class=\"when\">", fail ? "fail" : "pass",
                    (long long) json_integer_value(json_object_get(h, "time")));
        ui_time(p, json_integer_value(json_object_get(h, "time")));
        html_raw(&p->h, "</span><span class=\"kind\">audit</span> ");
        if (json_is_object(aud)) {
                html_printf(&p->h, "%s on %s: %lld pass, %lld fail", json_string_value(json_object_get(aud, "profile")),
                            json_string_value(json_object_get(aud, "version")),
                            (long long) json_integer_value(json_object_get(aud, "pass")),
                            (long long) json_integer_value(json_object_get(aud, "fail")));
                json_array_foreach(json_object_get(aud, "failing"), i, id)
                        html_printf(&p->h, "%s<b>%s</b>", i ? ", " : " (", json_string_value(id));
                if (json_array_size(json_object_get(aud, "failing")))
                        html_raw(&p->h, ")");
        } else
                html_raw(&p->h, "no audit");
        if (json_is_object(sb))
                html_printf(&p->h, " · Secure Boot %s, PK %s, KEK %s, db %s", json_string_value(json_object_get(sb, "mode")),
                            json_string_value(json_object_get(sb, "pk")), json_string_value(json_object_get(sb, "kek")),
                            json_string_value(json_object_get(sb, "db")));
        html_raw(&p->h, "</li>");
}

static void timeline(struct ui_page *p, json_t *d, json_t *compliance) {
        json_t *e, *hist = json_object_get(compliance, "history");
        size_t i, k = 0;

        html_raw(&p->h, "<section><h2>Timeline</h2><ol class=\"timeline\" id=\"timeline\">");
        if (json_integer_value(json_object_get(d, "last_seen")) > 0) {
                html_raw(&p->h, "<li class=\"k-checkin\"><span class=\"when\">");
                ui_time(p, json_integer_value(json_object_get(d, "last_seen")));
                html_printf(&p->h, "</span><span class=\"kind\">check-in</span> running %s, slot %s",
                            json_string_value(json_object_get(d, "version")), json_string_value(json_object_get(d, "slot")));
                html_raw(&p->h, " <span class=\"muted\">(the latest; check-ins are not kept one by one)</span></li>");
        }
        json_array_foreach(json_object_get(d, "history"), i, e) {
                const char *state = json_string_value(json_object_get(e, "state"));
                /* both lists are newest first: the audits newer than this report come before it */
                for (; k < json_array_size(hist) &&
                       json_integer_value(json_object_get(json_array_get(hist, k), "time")) >
                               json_integer_value(json_object_get(e, "time"));
                     k++)
                        timeline_audit(p, json_array_get(hist, k));
                html_printf(&p->h, "<li class=\"k-%s\" data-seq=\"%lld\"><span class=\"when\">", event_kind(state),
                            (long long) json_integer_value(json_object_get(e, "seq")));
                ui_time(p, json_integer_value(json_object_get(e, "time")));
                html_printf(&p->h, "</span><span class=\"kind\">%s</span> %s", event_kind(state), state);
                if (json_integer_value(json_object_get(e, "release")))
                        html_printf(&p->h, " · release %lld", (long long) json_integer_value(json_object_get(e, "release")));
                if (json_string_value(json_object_get(e, "version"))[0])
                        html_printf(&p->h, " · running %s", json_string_value(json_object_get(e, "version")));
                if (json_string_value(json_object_get(e, "target"))[0])
                        html_printf(&p->h, " → %s", json_string_value(json_object_get(e, "target")));
                if (json_string_value(json_object_get(e, "error"))[0])
                        html_printf(&p->h, "<div class=\"err\">%s</div>", json_string_value(json_object_get(e, "error")));
                html_raw(&p->h, "</li>");
        }
        for (; k < json_array_size(hist); k++)
                timeline_audit(p, json_array_get(hist, k));
        if (json_array_size(json_object_get(d, "history")) == 0 && json_array_size(hist) == 0 &&
            json_integer_value(json_object_get(d, "last_seen")) == 0)
                html_raw(&p->h, "<li class=\"muted\">Nothing yet: the drone has not checked in.</li>");
        html_raw(&p->h, "</ol></section>");
}

int ui_page_drone(struct ui_page *p) {
        struct server *srv = p->x->srv;
        const char *id = ui_arg(p, "id"), *done = ui_arg(p, "done");
        struct drone_identity ident;
        struct drone_auth auth;
        char enc[3 * FORM_MAX_VALUE + 1], target[300];
        json_t *d = NULL, *compliance = NULL;
        const char *state;
        int r;

        p->title = "Drone";
        p->nav = "drones";
        p->refresh = 15;
        r = id[0] ? store_drone_json(srv->db, id, &d) : -ENOENT;
        if (r >= 0)
                r = store_drone_identity(srv->db, id, &ident);
        if (r >= 0)
                r = store_drone_decorate(srv->db, id, d);   /* tags, last compliance report, rollout */
        if (r >= 0)
                r = store_compliance_json(srv->db, id, &compliance);
        if (r >= 0)
                r = store_drone_auth(srv->db, id, &auth);
        if (r == -ENOENT) {
                json_decref(d);
                html_printf(&p->h, "<h1>No such drone</h1><p>No drone is registered as <code>%s</code>.</p>", id);
                return 404;
        }
        if (r < 0) {
                json_decref(d);
                json_decref(compliance);
                return r;
        }
        state = json_string_value(json_object_get(d, "state"));
        html_printf(&p->h, "<h1>Drone <span class=\"id\" id=\"drone-id\">%s</span> ", id);
        ui_badge(&p->h, json_string_value(json_object_get(d, "status")));
        html_raw(&p->h, "</h1>");
        if (streq(done, "retried"))
                html_raw(&p->h, "<p class=\"notice\" role=\"status\">Retry asked: at its next check-in the drone "
                                "tries its assigned release again.</p>");
        if (streq(done, "revoked"))
                html_raw(&p->h, "<p class=\"notice\" role=\"status\">Revoked. The drone is refused on every route from "
                                "its next request on.</p>");
        form_encode(id, enc, sizeof(enc));
        html_raw(&p->h, "<p class=\"actions\">");
        if (!streq(json_string_value(json_object_get(d, "status")), "revoked"))
                html_printf(&p->h, "<a class=\"button danger\" data-confirm href=\"/ui/drone/revoke?id=%s\">Revoke…</a> ", enc);
        if (streq(state, "failed") || streq(state, "rolled-back"))
                html_printf(&p->h, "<a class=\"button\" data-confirm href=\"/ui/drone/retry?id=%s\">Retry…</a> ", enc);
        if (ca_name_valid(id) == 0)
                html_printf(&p->h, "<a class=\"button\" href=\"/api/v1/drones/%s\">JSON</a>", id);
        html_raw(&p->h, "</p>");
        html_raw(&p->h, "<div class=\"split\">");
        state_block(p, d);
        identity_block(p, d, &ident);
        html_raw(&p->h, "</div>");
        compliance_block(p, d, &auth);
        timeline(p, d, compliance);
        html_raw(&p->h, "<section><h2>Operator actions on this drone</h2>");
        snprintf(target, sizeof(target), "drone:%s", id);
        ui_actions_table(p, target, 20);
        html_raw(&p->h, "</section>");
        json_decref(d);
        json_decref(compliance);
        return 200;
}

/* ---- revoke ---- */

int ui_page_drone_revoke(struct ui_page *p) {
        const char *id = ui_arg(p, "id");
        char enc[3 * FORM_MAX_VALUE + 1], back[3 * FORM_MAX_VALUE + 32];
        struct drone_auth a;
        int r;

        p->title = "Revoke drone";
        p->nav = "drones";
        r = id[0] ? store_drone_auth(p->x->srv->db, id, &a) : 0;
        if (r < 0)
                return r;
        if (!id[0] || !a.exists) {
                html_printf(&p->h, "<h1>No such drone</h1><p>No drone is registered as <code>%s</code>.</p>", id);
                return 404;
        }
        snprintf(back, sizeof(back), "/ui/drone?id=%s", form_encode(id, enc, sizeof(enc)) ? enc : "");
        html_printf(&p->h, "<h1>Revoke drone <span class=\"id\">%s</span>?</h1>", id);
        html_printf(&p->h, "<p>Group <b>%s</b>. From its next request on, the server refuses this drone on every route: "
                           "no check-ins, no reports, no downloads. <b>Revocation is final</b>: the id can never enroll "
                           "again; a replacement drone is registered under a new id.</p>",
                    a.group);
        ui_confirm_form(p, "/ui/drone/revoke", "id", id, "Revoke this drone", back);
        return 200;
}

int ui_post_drone_revoke(struct route_ctx *x) {
        char loc[3 * FORM_MAX_VALUE + 64], enc[3 * FORM_MAX_VALUE + 1];
        struct form f;
        const char *id;
        int r;

        r = ui_post_begin(x, "id", "drone:", &f);
        if (r < 0)
                return -r;
        id = form_get(&f, "id");
        snprintf(x->log_detail, sizeof(x->log_detail), "revoke drone");
        r = store_drone_revoke(x->srv->db, id);
        if (r == -ENOENT) {
                r = ui_error_page(x, 404, "No such drone", "No drone is registered under that id.");
        } else if (r < 0) {
                r = ui_error_page(x, 503, "Store busy", "The fleet database did not take the change; nothing was revoked.");
        } else {
                log_notice("dashboard: operator '%s' revoked drone '%s'", x->req->peer, id);
                snprintf(loc, sizeof(loc), "/ui/drone?id=%s&done=revoked", form_encode(id, enc, sizeof(enc)) ? enc : "");
                r = ui_redirect(x, loc);
        }
        form_done(&f);
        return r;
}

/* ---- retry ---- */

int ui_page_drone_retry(struct ui_page *p) {
        const char *id = ui_arg(p, "id");
        char enc[3 * FORM_MAX_VALUE + 1], back[3 * FORM_MAX_VALUE + 32];
        json_t *d = NULL;
        int r;

        p->title = "Retry";
        p->nav = "drones";
        r = id[0] ? store_drone_json(p->x->srv->db, id, &d) : -ENOENT;
        if (r == -ENOENT) {
                html_printf(&p->h, "<h1>No such drone</h1><p>No drone is registered as <code>%s</code>.</p>", id);
                return 404;
        }
        if (r < 0)
                return r;
        snprintf(back, sizeof(back), "/ui/drone?id=%s", form_encode(id, enc, sizeof(enc)) ? enc : "");
        html_printf(&p->h, "<h1>Let drone <span class=\"id\">%s</span> retry?</h1>", id);
        html_printf(&p->h, "<p>Its last report: <b>%s</b>%s%s. A drone does not try a release again that it refused or "
                           "rolled back; a fault that was the drone's (a full disk, a power cut during the health "
                           "gate) may deserve another attempt. At its next check-in it tries its assigned release "
                           "again, from the download on.</p>",
                    json_string_value(json_object_get(d, "state")), json_string_value(json_object_get(d, "error"))[0] ? ": " : "",
                    json_string_value(json_object_get(d, "error")));
        json_decref(d);
        ui_confirm_form(p, "/ui/drone/retry", "id", id, "Retry", back);
        return 200;
}

int ui_post_drone_retry(struct route_ctx *x) {
        char loc[3 * FORM_MAX_VALUE + 64], enc[3 * FORM_MAX_VALUE + 1];
        struct form f;
        uint32_t gen = 0;
        const char *id;
        int r;

        r = ui_post_begin(x, "id", "drone:", &f);
        if (r < 0)
                return -r;
        id = form_get(&f, "id");
        r = store_drone_retry(x->srv->db, id, &gen);
        snprintf(x->log_detail, sizeof(x->log_detail), "retry: the drone's retry generation is now %u", gen);
        if (r == -ENOENT)
                r = ui_error_page(x, 404, "No such drone", "No drone is registered under that id.");
        else if (r < 0)
                r = ui_error_page(x, 503, "Store busy", "The fleet database did not take the change; nothing was changed.");
        else {
                log_notice("dashboard: operator '%s' asked drone '%s' to retry (generation %u)", x->req->peer, id, gen);
                snprintf(loc, sizeof(loc), "/ui/drone?id=%s&done=retried", form_encode(id, enc, sizeof(enc)) ? enc : "");
                r = ui_redirect(x, loc);
        }
        form_done(&f);
        return r;
}
