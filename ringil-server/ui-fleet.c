/* ui-fleet.c: the Fleet view: drones by state, version and audit compliance, and versions over time. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fleet-form.h"
#include "ui-chart.h"
#include "ui.h"
#include "vercmp.h"

#define VH_POINTS 48
#define VH_SHOWN 8                  /* newest versions drawn; older ones are one "older" band */
#define VH_MAX_VERSIONS 256         /* distinct versions kept apart; more are counted as "other" */
#define VH_MAX_CHANGES (4u << 20)   /* a bound on memory: 16 bytes each */
#define VH_CACHE_SECONDS 30         /* the chart is drawn at most this often (a point is ≥ 75 s wide) */

struct vh_change {
        int64_t t;
        uint32_t drone;             /* index into the drone table below */
        uint16_t v;
};

struct vhist {
        char *versions[VH_MAX_VERSIONS];
        size_t n_versions;
        struct vh_change *ch;
        size_t n, cap;
        struct ui_idmap drones;
        int64_t t_min;
};

static int version_index(struct vhist *vh, const char *v) {
        for (size_t i = 0; i < vh->n_versions; i++)
                if (streq(vh->versions[i], v))
                        return (int) i;
        if (vh->n_versions == VH_MAX_VERSIONS)
                return VH_MAX_VERSIONS - 1;   /* the last slot doubles as "other" */
        vh->versions[vh->n_versions] = strdup(v);
        if (!vh->versions[vh->n_versions])
                return -ENOMEM;
        return (int) vh->n_versions++;
}

static int vh_add(int64_t t, const char *drone, const char *version, void *userdata) {
        struct vhist *vh = userdata;
        uint32_t d;
        int v, r;

        if (vh->n == VH_MAX_CHANGES)
                return ringil_fail(-RINGIL_ETOOBIG, "more than %u version changes", VH_MAX_CHANGES);
        if (vh->n == vh->cap) {
                size_t cap = vh->cap ? 2 * vh->cap : 4096;
                struct vh_change *p = reallocarray(vh->ch, cap, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                vh->ch = p;
                vh->cap = cap;
        }
        r = ui_idmap_get(&vh->drones, drone, &d);
        if (r < 0)
                return r;
        v = version_index(vh, version);
        if (v < 0)
                return v;
        vh->ch[vh->n++] = (struct vh_change) { .t = t, .drone = d, .v = (uint16_t) v };
        if (vh->t_min == 0 || t < vh->t_min)
                vh->t_min = t;
        return 0;
}

static void vh_free(struct vhist *vh) {
        for (size_t i = 0; i < vh->n_versions; i++)
                free(vh->versions[i]);
        ui_idmap_free(&vh->drones);
        free(vh->ch);
}

static int cmp_change(const void *a, const void *b) {
        const struct vh_change *x = a, *y = b;
        if (x->drone != y->drone)
                return x->drone < y->drone ? -1 : 1;
        return x->t < y->t ? -1 : x->t > y->t;
}

/* Valid versions in numeric order, then anything else a drone reported, by bytes. */
static int cmp_version(const char *a, const char *b) {
        bool va = version_valid(a) == 0, vb = version_valid(b) == 0;

        if (va && vb)
                return version_compare(a, b);
        if (va != vb)
                return va ? -1 : 1;
        return strcmp(a, b);
}

static int cmp_index(const void *a, const void *b, void *versions) {
        char **v = versions;
        return cmp_version(v[*(const size_t *) a], v[*(const size_t *) b]);
}

/*
 * Drones per version at VH_POINTS times from the first change to now: the changes sorted by drone,
 * then time; for each drone, the version of its last change at or before each point.
 */
static void versions_chart(struct ui_page *p, struct vhist *vh) {
        double values[VH_SHOWN + 1][VH_POINTS] = {};
        struct chart_series series[VH_SHOWN + 1];
        int64_t times[VH_POINTS], t0 = vh->t_min, span;
        size_t order[VH_MAX_VERSIONS], shown, older;

        if (vh->n == 0) {
                html_raw(&p->h, "<p class=\"muted\">No drone has reported a version yet.</p>");
                return;
        }
        span = p->now - t0;
        if (span < 3600) {
                span = 3600;
                t0 = p->now - span;
        }
        for (size_t i = 0; i < VH_POINTS; i++)
                times[i] = t0 + span * (int64_t) i / (VH_POINTS - 1);
        qsort(vh->ch, vh->n, sizeof(vh->ch[0]), cmp_change);

        double(*c)[VH_POINTS] = calloc(vh->n_versions, sizeof(*c));
        if (!c) {
                p->h.err = -ENOMEM;
                return;
        }
        for (size_t i = 0; i < vh->n;) {
                size_t j = i, b = 0;
                /* the drone's run is ch[i..j) */
                while (j < vh->n && vh->ch[j].drone == vh->ch[i].drone)
                        j++;
                for (size_t k = i; b < VH_POINTS;) {
                        /* advance k to the last change at or before times[b] */
                        while (k + 1 < j && vh->ch[k + 1].t <= times[b])
                                k++;
                        if (vh->ch[k].t <= times[b])
                                c[vh->ch[k].v][b] += 1;
                        b++;
                }
                i = j;
        }
        for (size_t i = 0; i < vh->n_versions; i++)
                order[i] = i;
        qsort_r(order, vh->n_versions, sizeof(order[0]), cmp_index, vh->versions);
        shown = MIN(vh->n_versions, (size_t) VH_SHOWN);
        older = vh->n_versions - shown;
        size_t n_series = 0;
        if (older) {
                for (size_t i = 0; i < older; i++)
                        for (size_t b = 0; b < VH_POINTS; b++)
                                values[0][b] += c[order[i]][b];
                series[n_series++] = (struct chart_series) { .label = "older", .cls = "c-older", .values = values[0] };
        }
        static const char *const cls[VH_SHOWN] = { "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7" };
        for (size_t i = older; i < vh->n_versions; i++) {
                memcpy(values[n_series], c[order[i]], sizeof(values[0]));
                series[n_series] = (struct chart_series) {
                        .label = vh->versions[order[i]],
                        .cls = cls[(i - older) % VH_SHOWN],
                        .values = values[n_series],
                };
                n_series++;
        }
        ui_chart_stacked(&p->h, "Drones by running version over time", times, VH_POINTS, series, n_series);
        free(c);
}

/*
 * The chart reads every report the fleet ever sent (76,000 for 10,000 drones over a month: ~40 ms of
 * CPU), so it is drawn once per VH_CACHE_SECONDS and the markup kept; one drawing at a time, and a
 * page that finds one under way waits for it rather than starting another.
 */
static pthread_mutex_t chart_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        const struct server *srv;
        int64_t at;
        struct html h;
} chart_cache;

static int versions_section(struct ui_page *p) {
        struct vhist vh = {};
        int r = 0;

        pthread_mutex_lock(&chart_lock);
        if (chart_cache.srv != p->x->srv || p->now - chart_cache.at >= VH_CACHE_SECONDS || p->now < chart_cache.at ||
            chart_cache.h.err < 0) {
                html_free(&chart_cache.h);
                chart_cache.h = HTML_INIT(1 << 20);
                chart_cache.srv = NULL;
                r = store_version_changes(p->x->srv->db, vh_add, &vh);
                if (r >= 0) {
                        struct ui_page tmp = *p;
                        tmp.h = chart_cache.h;
                        versions_chart(&tmp, &vh);
                        chart_cache.h = tmp.h;
                        chart_cache.at = p->now;
                        chart_cache.srv = p->x->srv;
                }
                vh_free(&vh);
        }
        if (r >= 0)
                html_append(&p->h, &chart_cache.h);
        pthread_mutex_unlock(&chart_lock);
        return r;
}

static json_int_t count_of(json_t *o, const char *k) {
        return json_integer_value(json_object_get(o, k));
}

int ui_page_fleet(struct ui_page *p) {
        static const char *const states[] = { STORE_UI_STATES };
        struct server *srv = p->x->srv;
        json_t *sum = NULL, *v;
        const char *k;
        json_int_t total, live;
        int r;

        p->title = "Fleet";
        p->nav = "fleet";
        p->refresh = 15;
        r = store_fleet_summary(srv->db, p->now, ui_silent_after(srv), &sum);
        if (r < 0)
                return r;
        total = json_integer_value(json_object_get(sum, "total"));
        live = total - count_of(json_object_get(sum, "state"), "revoked");
        html_printf(&p->h, "<h1>Fleet</h1><p class=\"lead\"><b id=\"total\">%lld</b> drones", (long long) total);
        if (total != live)
                html_printf(&p->h, " (%lld revoked)", (long long) (total - live));
        html_printf(&p->h, " · silent after %u s without a check-in (%u poll intervals)</p>", ui_silent_after(srv),
                    srv->cfg.silent_polls);

        /* by state: each a link to the drones in it */
        html_raw(&p->h, "<section><h2>By state</h2><ul class=\"cards\" id=\"states\">");
        for (size_t i = 0; i < ELEMENTSOF(states); i++)
                html_printf(&p->h,
                            "<li class=\"card s-%s\" data-state=\"%s\"><a href=\"/ui/drones?state=%s\">"
                            "<span class=\"n\">%lld</span><span class=\"l\">%s</span></a></li>",
                            states[i], states[i], states[i], (long long) count_of(json_object_get(sum, "state"), states[i]),
                            states[i]);
        html_raw(&p->h, "</ul></section>");

        /* by running version */
        html_raw(&p->h, "<section class=\"split\"><div><h2>Running versions</h2><table id=\"versions\"><thead><tr>"
                        "<th>version</th><th class=\"num\">drones</th><th>share</th></tr></thead><tbody>");
        {
                json_t *ver = json_object_get(sum, "version");
                const char *names[256];
                size_t n = 0;
                json_object_foreach(ver, k, v)
                        if (n < ELEMENTSOF(names))
                                names[n++] = k;
                /* newest first */
                for (size_t i = 1; i < n; i++)
                        for (size_t j = i; j > 0 && cmp_version(names[j - 1], names[j]) < 0; j--) {
                                const char *t = names[j];
                                names[j] = names[j - 1];
                                names[j - 1] = t;
                        }
                for (size_t i = 0; i < n; i++) {
                        json_int_t c = count_of(ver, names[i]);
                        char enc[3 * 64 + 1];
                        struct bar_segment seg = { names[i][0] ? names[i] : "unknown", "s-blessed", (double) c };
                        if (names[i][0] && form_encode(names[i], enc, sizeof(enc)))
                                html_printf(&p->h, "<tr data-version=\"%s\"><td><a href=\"/ui/drones?version=%s\">%s</a></td>",
                                            names[i], enc, names[i]);
                        else
                                html_printf(&p->h, "<tr data-version=\"%s\"><td class=\"muted\">%s</td>", names[i],
                                            names[i][0] ? names[i] : "not reported");
                        html_printf(&p->h, "<td class=\"num\">%lld</td><td>", (long long) c);
                        ui_chart_bar(&p->h, &seg, 1, (double) (live > 0 ? live : 1));
                        html_raw(&p->h, "</td></tr>");
                }
                if (n == 0)
                        html_raw(&p->h, "<tr><td colspan=\"3\" class=\"muted\">no drones</td></tr>");
        }
        html_raw(&p->h, "</tbody></table></div>");

        /* compliance: the drones' own audit and Secure Boot reports, by the drift rules */
        {
                json_t *aud = json_object_get(sum, "audit"), *sb = json_object_get(sum, "secureboot");
                static const struct {
                        const char *key, *label, *cls;
                } audit_rows[] = {
                        { "compliant", "clean pass of the prod profile", "s-blessed" },
                        { "failing", "failing checks", "s-failed" },
                        { "unevaluated", "checks that could not be evaluated", "s-pending" },
                        { "other-profile", "audited against another profile", "s-rolled-back" },
                        { "unknown", "no audit reported", "s-silent" },
                }, sb_rows[] = {
                        { "enforced", "enforced, the fleet's PK, KEK and db", "s-blessed" },
                        { "foreign-keys", "enforced, a foreign or missing key", "s-failed" },
                        { "not-enforced", "not enforced (setup, audit or disabled mode)", "s-failed" },
                        { "unknown", "no status reported", "s-silent" },
                };
                struct bar_segment seg[ELEMENTSOF(audit_rows)];

                html_raw(&p->h, "<div><h2>Audit compliance</h2><table id=\"audit\"><tbody>");
                for (size_t i = 0; i < ELEMENTSOF(audit_rows); i++) {
                        seg[i] = (struct bar_segment) { audit_rows[i].label, audit_rows[i].cls,
                                                        (double) count_of(aud, audit_rows[i].key) };
                        html_printf(&p->h, "<tr data-audit=\"%s\"><td>%s</td><td class=\"num\">%lld</td></tr>",
                                    audit_rows[i].key, audit_rows[i].label, (long long) count_of(aud, audit_rows[i].key));
                }
                html_raw(&p->h, "</tbody></table>");
                ui_chart_bar(&p->h, seg, ELEMENTSOF(audit_rows), (double) (live > 0 ? live : 1));
                html_raw(&p->h, "<h2>Secure Boot</h2><table id=\"secureboot\"><tbody>");
                for (size_t i = 0; i < ELEMENTSOF(sb_rows); i++) {
                        seg[i] = (struct bar_segment) { sb_rows[i].label, sb_rows[i].cls,
                                                        (double) count_of(sb, sb_rows[i].key) };
                        html_printf(&p->h, "<tr data-secureboot=\"%s\"><td>%s</td><td class=\"num\">%lld</td></tr>",
                                    sb_rows[i].key, sb_rows[i].label, (long long) count_of(sb, sb_rows[i].key));
                }
                html_raw(&p->h, "</tbody></table>");
                ui_chart_bar(&p->h, seg, ELEMENTSOF(sb_rows), (double) (live > 0 ? live : 1));
                html_raw(&p->h, "<p class=\"muted\">From each drone's last compliance report (<code>ringil audit</code> and "
                                "<code>ringil keys status</code> on the drone, sent with its check-ins).</p></div></section>");
        }

        /* drift, each kind a link to the drones that have it */
        {
                static const char *const kinds[] = { "release", "audit", "secureboot", "silent" };
                json_t *drift = json_object_get(sum, "drift");
                html_raw(&p->h, "<section><h2>Drift</h2><ul class=\"cards\" id=\"drift\">");
                for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                        html_printf(&p->h,
                                    "<li class=\"card %s\" data-drift=\"%s\"><a href=\"/ui/drones?drift=%s\">"
                                    "<span class=\"n\">%lld</span><span class=\"l\">%s</span></a></li>",
                                    count_of(drift, kinds[i]) ? "s-failed" : "s-blessed", kinds[i], kinds[i],
                                    (long long) count_of(drift, kinds[i]), kinds[i]);
                html_raw(&p->h, "</ul><p class=\"muted\">Drones that run another release than assigned, fail the prod "
                                "audit, lack enforced Secure Boot with the fleet's keys, or went silent (the drift "
                                "report, <code>ringil-server drift</code>).</p></section>");
        }
        json_decref(sum);

        /* versions over time */
        html_printf(&p->h, "<section><h2>Versions over time</h2>");
        r = versions_section(p);
        html_printf(&p->h, "<p class=\"muted\">Drones by the version they ran, from their reports and last check-ins "
                           "(revoked drones left out); drawn at most every %d s.</p></section>",
                    VH_CACHE_SECONDS);
        return r < 0 ? r : 200;
}
