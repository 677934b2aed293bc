/* ui.h: the operator dashboard (/ui/): its one registration hook, and what its page files share. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fleet-form.h"
#include "html.h"
#include "server.h"
#include "ui-csrf.h"

/*
 * Server-rendered HTML for operators (docs/fleet.md "Operator dashboard"). Every page is in the route
 * table under one operator-only GET route (/ui/ and below, dispatched here by a second table of pages);
 * every state change is its own POST route in the route table, so the dispatcher checks its role
 * like any API route, and the handler checks the CSRF token before anything else. Pages work without
 * JavaScript; /ui/static/app.js only adds live refresh and in-page confirmation dialogs. The strict
 * headers (ui_security_headers) go on every answer under /ui/.
 */

/* The dashboard's routes and GET /api/v1/actions; -EINVAL/-EEXIST/-ENOSPC as route_table_add(). */
int ui_routes_register(struct route_table *t);

#define UI_PAGE_MAX (8u << 20)

struct ui_page {
        struct route_ctx *x;
        struct html h;             /* the content of <main> */
        const char *title;
        const char *nav;           /* the tab to highlight: "fleet", "drones", "releases", "rollouts", "actions" */
        int64_t now;
        unsigned refresh;          /* > 0: app.js reloads the content every this many seconds */
        struct form query;         /* the query string, decoded */
        char csrf[UI_CSRF_MAX];    /* a token for this operator's forms */
};

/* A page handler fills p->h (and title, nav); returns an HTTP status (200), or < 0 for a store error. */
typedef int (*ui_page_fn)(struct ui_page *p);

/* The query value of name, "" when absent. */
const char *ui_arg(const struct ui_page *p, const char *name);
/* Seconds without a check-in after which a drone is silent: server.conf's silent-polls × poll-interval. */
uint32_t ui_silent_after(const struct server *srv);

/* Pages (ui-fleet.c, ui-drones.c, ui-releases.c, ui-rollouts.c, ui-actions.c). */
int ui_page_fleet(struct ui_page *p);
int ui_page_drones(struct ui_page *p);
int ui_page_drone(struct ui_page *p);
int ui_page_drone_revoke(struct ui_page *p);    /* the confirmation step */
int ui_page_drone_retry(struct ui_page *p);
int ui_page_releases(struct ui_page *p);
int ui_page_rollouts(struct ui_page *p);
int ui_page_rollout(struct ui_page *p);
int ui_page_rollout_action(struct ui_page *p);   /* the confirmation step of /ui/rollout/ACTION */
int ui_page_actions(struct ui_page *p);

/* POST handlers (route_fn). */
int ui_post_drone_revoke(struct route_ctx *x);
int ui_post_drone_retry(struct route_ctx *x);
int ui_post_rollout_action(struct route_ctx *x);   /* POST /ui/rollout/ACTION */

/* The action log of one target ("drone:ID", …) as a table, for the object's page. */
void ui_actions_table(struct ui_page *p, const char *target, uint32_t limit);

/* ---- shared pieces of markup ---- */

/* A state word (store.h STORE_UI_STATES) as a badge. */
void ui_badge(struct html *h, const char *word);
/* The link to a drone's page: /ui/drone?id=ID (the id percent-encoded), the id as its text. */
void ui_drone_link(struct html *h, const char *id);
/* A time as "2026-12-05 14:03 UTC" with "(3 min ago)" after it, in a <time> element. */
void ui_time(struct ui_page *p, int64_t t);
/* The confirmation step of an action: the POST form with the token, and a way back (cancel_href). */
void ui_confirm_form(struct ui_page *p, const char *action_path, const char *field, const char *value,
                     const char *button, const char *cancel_href);

/*
 * The end of a POST handler: the operator's form checked (token, confirm field) into *ret_form, or
 * an HTML error page answered and < 0 returned. Sets the action log's target to target_prefix + the
 * form's field `key`.
 */
int ui_post_begin(struct route_ctx *x, const char *key, const char *target_prefix, struct form *ret_form);
/* 303 to location (a path of ours) after a successful POST. */
int ui_redirect(struct route_ctx *x, const char *location);
/* An HTML error page (status, message), as the answer to a POST or a bad GET. */
int ui_error_page(struct route_ctx *x, int status, const char *title, const char *message);
