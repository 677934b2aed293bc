/* ui-actions.c: the operator action log: who (certificate CN and serial) did what to which object, when, with what result. */
#include <inttypes.h>
#include <string.h>

#include "err.h"
#include "parse.h"
#include "ui.h"

#define ACTIONS_PER_PAGE 50

static void actions_rows(struct ui_page *p, json_t *actions) {
        json_t *a;
        size_t i;

        html_raw(&p->h, "<table class=\"log\"><thead><tr><th>when</th><th>operator</th><th>action</th><th>object</th>"
                        "<th>result</th></tr></thead><tbody>");
        json_array_foreach(actions, i, a) {
                int status = (int) json_integer_value(json_object_get(a, "status"));
                const char *detail = json_string_value(json_object_get(a, "detail"));
                html_printf(&p->h, "<tr data-action=\"%lld\"><td>", (long long) json_integer_value(json_object_get(a, "id")));
                ui_time(p, json_integer_value(json_object_get(a, "time")));
                html_printf(&p->h, "</td><td><span class=\"op\">%s</span> <code class=\"serial\" title=\"certificate serial\">%s</code></td>"
                                   "<td>%s<div class=\"muted\">%s %s</div></td><td class=\"target\">%s</td>"
                                   "<td class=\"%s\">%d</td></tr>",
                            json_string_value(json_object_get(a, "operator")), json_string_value(json_object_get(a, "serial")),
                            detail[0] ? detail : json_string_value(json_object_get(a, "path")),
                            json_string_value(json_object_get(a, "method")), json_string_value(json_object_get(a, "path")),
                            json_string_value(json_object_get(a, "target")),
                            status >= 200 && status < 400 ? "good" : "bad", status);
        }
        if (json_array_size(actions) == 0)
                html_raw(&p->h, "<tr><td colspan=\"5\" class=\"muted\">No operator action recorded.</td></tr>");
        html_raw(&p->h, "</tbody></table>");
}

void ui_actions_table(struct ui_page *p, const char *target, uint32_t limit) {
        json_t *j = NULL;

        if (store_actions_json(p->x->srv->db, target, limit, 0, &j) < 0) {
                html_raw(&p->h, "<p class=\"error\">The action log could not be read.</p>");
                return;
        }
        actions_rows(p, json_object_get(j, "actions"));
        json_decref(j);
}

int ui_page_actions(struct ui_page *p) {
        uint32_t page = 1;
        uint64_t total, pages;
        json_t *j = NULL;
        int r;

        p->title = "Action log";
        p->nav = "actions";
        p->refresh = 30;
        if (ui_arg(p, "page")[0] && parse_u32_range(ui_arg(p, "page"), 1, 1000000, &page) < 0)
                page = 1;
        r = store_actions_json(p->x->srv->db, NULL, ACTIONS_PER_PAGE, (page - 1) * ACTIONS_PER_PAGE, &j);
        if (r < 0)
                return r;
        total = (uint64_t) json_integer_value(json_object_get(j, "total"));
        pages = total ? (total + ACTIONS_PER_PAGE - 1) / ACTIONS_PER_PAGE : 1;
        html_printf(&p->h, "<h1>Action log</h1><p class=\"lead\">Every request of an operator that changes something — from "
                           "this dashboard or the command line — with the certificate that made it and what the server "
                           "answered, newest first. %" PRIu64 " recorded.</p>",
                    total);
        actions_rows(p, json_object_get(j, "actions"));
        html_raw(&p->h, "<nav class=\"pages\">");
        if (page > 1)
                html_printf(&p->h, "<a href=\"/ui/actions?page=%u\" rel=\"prev\">‹ newer</a> ", page - 1);
        html_printf(&p->h, "<span>page %u of %" PRIu64 "</span>", page, pages);
        if (page < pages)
                html_printf(&p->h, " <a href=\"/ui/actions?page=%u\" rel=\"next\">older ›</a>", page + 1);
        html_raw(&p->h, "</nav>");
        json_decref(j);
        return 200;
}
