/* ui-chart.c: server-side SVG: stacked area charts over time and segmented progress bars. */
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ui-chart.h"

#define W 720.0
#define H 220.0
#define PAD_L 44.0
#define PAD_R 8.0
#define PAD_T 10.0
#define PAD_B 24.0

/* A round step for about four grid lines up to max. */
static double grid_step(double max) {
        double raw = max / 4, mag = pow(10, floor(log10(raw))), f = raw / mag;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void time_label(int64_t t, int64_t span, char buf[static 32]) {
        struct tm tm;
        time_t tt = (time_t) t;

        if (!gmtime_r(&tt, &tm) || strftime(buf, 32, span > 2 * 86400 ? "%m-%d" : "%H:%M", &tm) == 0)
                snprintf(buf, 32, "?");
}

void ui_chart_stacked(struct html *h, const char *title, const int64_t *times, size_t n_points,
                      const struct chart_series *series, size_t n_series) {
        double top[CHART_MAX_SERIES + 1][256], max = 0, step;
        int64_t t0, span;

        if (n_points < 2 || n_points > 256 || n_series == 0 || n_series > CHART_MAX_SERIES)
                return;
        t0 = times[0];
        span = times[n_points - 1] - t0;
        if (span <= 0)
                return;
        /* cumulative tops: top[k][i] is the upper edge of series k-1 at point i */
        for (size_t i = 0; i < n_points; i++) {
                top[0][i] = 0;
                for (size_t k = 0; k < n_series; k++)
                        top[k + 1][i] = top[k][i] + (series[k].values[i] > 0 ? series[k].values[i] : 0);
                if (top[n_series][i] > max)
                        max = top[n_series][i];
        }
        if (max <= 0)
                max = 1;
        step = grid_step(max);
        max = ceil(max / step) * step;

#define X(i) (PAD_L + (W - PAD_L - PAD_R) * (double) (times[i] - t0) / (double) span)
#define Y(v) (PAD_T + (H - PAD_T - PAD_B) * (1.0 - (v) / max))
        html_printf(h, "<figure class=\"chart\"><svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                       "preserveAspectRatio=\"none\"><title>%s</title><g class=\"grid\">",
                    W, H, title);
        for (double v = 0; v <= max + step / 2; v += step)
                html_printf(h, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/><text x=\"%.1f\" y=\"%.1f\">%.0f</text>",
                            PAD_L, W - PAD_R, Y(v), Y(v), PAD_L - 6, Y(v) + 4, v);
        html_raw(h, "</g>");
        for (size_t k = 0; k < n_series; k++) {
                html_printf(h, "<path class=\"area %s\" d=\"M%.1f %.1f", series[k].cls, X(0), Y(top[k + 1][0]));
                for (size_t i = 1; i < n_points; i++)
                        html_printf(h, "L%.1f %.1f", X(i), Y(top[k + 1][i]));
                for (size_t i = n_points; i-- > 0;)
                        html_printf(h, "L%.1f %.1f", X(i), Y(top[k][i]));
                html_printf(h, "Z\"><title>%s</title></path>", series[k].label);
        }
        html_raw(h, "<g class=\"axis\">");
        for (size_t j = 0; j < 5; j++) {
                size_t i = (n_points - 1) * j / 4;
                char lab[32];
                time_label(times[i], span, lab);
                html_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"%s\">%s</text>", X(i), H - 6,
                            j == 0 ? "start" : j == 4 ? "end" : "mid", lab);
        }
#undef X
#undef Y
        html_raw(h, "</g></svg><figcaption>");
        for (size_t k = n_series; k-- > 0;)
                html_printf(h, "<span class=\"key\"><svg width=\"10\" height=\"10\" aria-hidden=\"true\"><rect class=\"%s\" "
                               "width=\"10\" height=\"10\"/></svg> %s <b>%.0f</b></span>",
                            series[k].cls, series[k].label, series[k].values[n_points - 1]);
        html_raw(h, "</figcaption></figure>");
}

void ui_chart_bar(struct html *h, const struct bar_segment *seg, size_t n, double total) {
        double x = 0;

        html_raw(h, "<svg class=\"bar\" viewBox=\"0 0 100 6\" preserveAspectRatio=\"none\" role=\"img\">");
        html_raw(h, "<rect class=\"track\" width=\"100\" height=\"6\"/>");
        for (size_t i = 0; i < n && total > 0; i++) {
                double w = 100.0 * seg[i].value / total;
                if (w <= 0)
                        continue;
                html_printf(h, "<rect class=\"%s\" x=\"%.2f\" width=\"%.2f\" height=\"6\"><title>%s: %.0f</title></rect>",
                            seg[i].cls, x, w, seg[i].label, seg[i].value);
                x += w;
        }
        html_raw(h, "</svg>");
}

/* ---- the id map: open addressing over FNV-1a, grown at half full ---- */

static uint64_t fnv1a(const char *s) {
        uint64_t h = 1469598103934665603ull;
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 1099511628211ull;
        return h;
}

int ui_idmap_get(struct ui_idmap *m, const char *id, uint32_t *ret) {
        size_t i;

        if (2 * (m->n + 1) > m->cap) {
                struct ui_idmap g = { .cap = m->cap ? 2 * m->cap : 1024 };
                g.keys = calloc(g.cap, sizeof(*g.keys));
                g.idx = calloc(g.cap, sizeof(*g.idx));
                if (!g.keys || !g.idx) {
                        free(g.keys);
                        free(g.idx);
                        return -ENOMEM;
                }
                for (size_t k = 0; k < m->cap; k++)
                        if (m->keys[k]) {
                                for (i = fnv1a(m->keys[k]) & (g.cap - 1); g.keys[i]; i = (i + 1) & (g.cap - 1))
                                        ;
                                g.keys[i] = m->keys[k];
                                g.idx[i] = m->idx[k];
                        }
                g.n = m->n;
                free(m->keys);
                free(m->idx);
                *m = g;
        }
        for (i = fnv1a(id) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1))
                if (strcmp(m->keys[i], id) == 0) {
                        *ret = m->idx[i];
                        return 0;
                }
        m->keys[i] = strdup(id);
        if (!m->keys[i])
                return -ENOMEM;
        m->idx[i] = (uint32_t) m->n++;
        *ret = m->idx[i];
        return 0;
}

void ui_idmap_free(struct ui_idmap *m) {
        for (size_t i = 0; i < m->cap; i++)
                free(m->keys[i]);
        free(m->keys);
        free(m->idx);
        *m = (struct ui_idmap) {};
}
