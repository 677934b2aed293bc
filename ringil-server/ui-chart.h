/* ui-chart.h: charts drawn as SVG on the server (no script, no inline style: classes from style.css). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "html.h"

#define CHART_MAX_SERIES 10

struct chart_series {
        const char *label;
        const char *cls;          /* CSS class of its colour ("c0".."c9", "s-failed", …) */
        const double *values;     /* n_points values */
};

/*
 * A chart of n_series over n_points times (Unix seconds, increasing), as areas stacked bottom-up in
 * the given order, with a value grid, time labels and a legend naming each series with its last
 * value. title is the chart's accessible name. Nothing is drawn for n_points < 2.
 */
void ui_chart_stacked(struct html *h, const char *title, const int64_t *times, size_t n_points,
                      const struct chart_series *series, size_t n_series);

/* A horizontal bar of segments (e.g. a rollout group's blessed/failed/in flight/pending), widths
 * proportional to values over total, with a text label per segment in its <title>. */
struct bar_segment {
        const char *label;
        const char *cls;
        double value;
};
void ui_chart_bar(struct html *h, const struct bar_segment *seg, size_t n, double total);

/* Drone ids to small numbers 0, 1, 2… in the order first seen (for the charts' sweeps over events). */
struct ui_idmap {
        char **keys;
        uint32_t *idx;
        size_t cap, n;
};
int ui_idmap_get(struct ui_idmap *m, const char *id, uint32_t *ret);
void ui_idmap_free(struct ui_idmap *m);
