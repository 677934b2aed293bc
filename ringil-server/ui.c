/* ui.c: the dashboard's routes, its page table and layout, static assets, security headers, POST plumbing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "err.h"
#include "log.h"
#include "parse.h"
#include "ui.h"
#include "ui-assets.h"

/*
 * Sent with every answer under /ui/. No inline script or style anywhere (the SVG charts use
 * presentation attributes and classes from style.css), nothing from another origin, no framing,
 * nothing cached but the versioned static files.
 */
static const char ui_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                             "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static void security_headers(struct tp_response *resp, bool cacheable) {
        tp_header(resp, "Content-Security-Policy", "%s", ui_csp);
        tp_header(resp, "X-Content-Type-Options", "nosniff");
        tp_header(resp, "X-Frame-Options", "DENY");
        tp_header(resp, "Referrer-Policy", "no-referrer");
        tp_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
        tp_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
        tp_header(resp, "Permissions-Policy", "camera=(), microphone=(), geolocation=(), usb=(), serial=()");
        tp_header(resp, "Cache-Control", "%s", cacheable ? "private, max-age=31536000, immutable" : "no-store");
}

/* ---- static assets (data/ui/, embedded at build time) ---- */

struct asset {
        const char *name;
        const char *ctype;
        const char *data;
        char version[13];   /* the first 12 hex digits of its SHA-256: the ?v= of its URL */
};

static struct asset assets[] = {
        { "style.css", "text/css; charset=utf-8", ui_asset_style, "" },
        { "app.js", "text/javascript; charset=utf-8", ui_asset_app, "" },
        { "icon.svg", "image/svg+xml", ui_asset_icon, "" },
};

static int assets_init(void) {
        for (size_t i = 0; i < ELEMENTSOF(assets); i++) {
                uint8_t h[SHA256_LEN];
                char hex[2 * SHA256_LEN + 1];
                int r = crypto_sha256(assets[i].data, strlen(assets[i].data), h);
                if (r < 0)
                        return r;
                snprintf(assets[i].version, sizeof(assets[i].version), "%.12s", hex_encode(h, sizeof(h), hex));
        }
        return 0;
}

static int serve_asset(struct route_ctx *x, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(assets); i++)
                if (streq(assets[i].name, name)) {
                        security_headers(x->resp, true);
                        if (tp_respond(x->resp, 200, assets[i].ctype, assets[i].data, strlen(assets[i].data)) < 0)
                                return tp_respond_error(x->resp, 500, "out of memory");
                        return 200;
                }
        return ui_error_page(x, 404, "Not found", "There is no such file.");
}

/* ---- shared markup ---- */

const char *ui_arg(const struct ui_page *p, const char *name) {
        const char *v = form_get(&p->query, name);
        return v ? v : "";
}

uint32_t ui_silent_after(const struct server *srv) {
        return srv->cfg.silent_polls * srv->cfg.poll_interval;   /* the drift report's silence */
}

void ui_badge(struct html *h, const char *word) {
        html_printf(h, "<span class=\"badge s-%s\">%s</span>", word, word);
}

void ui_drone_link(struct html *h, const char *id) {
        char enc[3 * 256 + 1];

        if (!form_encode(id, enc, sizeof(enc)))
                return html_text(h, id);   /* longer than any id the store takes: shown, not linked */
        html_printf(h, "<a class=\"drone\" href=\"/ui/drone?id=%s\">%s</a>", enc, id);
}

void ui_time(struct ui_page *p, int64_t t) {
        char when[32], ago[32];

        if (t <= 0)
                return html_raw(&p->h, "<span class=\"muted\">never</span>");
        html_printf(&p->h, "<time datetime=\"%" PRId64 "\" title=\"%s\">%s</time>", t, html_time(t, when),
                    html_ago(t, p->now, ago));
}

void ui_confirm_form(struct ui_page *p, const char *action_path, const char *field, const char *value,
                     const char *button, const char *cancel_href) {
        html_printf(&p->h,
                    "<form class=\"confirm\" method=\"post\" action=\"%s\">"
                    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
                    "<input type=\"hidden\" name=\"confirm\" value=\"yes\">"
                    "<input type=\"hidden\" name=\"%s\" value=\"%s\">"
                    "<button type=\"submit\" class=\"danger\">%s</button> "
                    "<a class=\"button\" href=\"%s\" data-cancel>Cancel</a></form>",
                    action_path, p->csrf, field, value, button, cancel_href);
}

/* ---- layout ---- */

static const struct {
        const char *id, *href, *label;
} nav_items[] = {
        { "fleet", "/ui/", "Fleet" },
        { "drones", "/ui/drones", "Drones" },
        { "releases", "/ui/releases", "Releases" },
        { "rollouts", "/ui/rollouts", "Rollouts" },
        { "actions", "/ui/actions", "Action log" },
};

static const char *asset_version(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(assets); i++)
                if (streq(assets[i].name, name))
                        return assets[i].version;
        return "";
}

static void layout(struct ui_page *p, struct html *out) {
        const struct tp_request *req = p->x->req;
        char when[32];

        html_printf(out,
                    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                    "<title>%s · ringil fleet</title>"
                    "<link rel=\"stylesheet\" href=\"/ui/static/style.css?v=%s\">"
                    "<link rel=\"icon\" href=\"/ui/static/icon.svg?v=%s\">"
                    "<script src=\"/ui/static/app.js?v=%s\" defer></script></head>",
                    p->title ? p->title : "", asset_version("style.css"), asset_version("icon.svg"),
                    asset_version("app.js"));
        if (p->refresh)
                html_printf(out, "<body data-refresh=\"%u\">", p->refresh);
        else
                html_raw(out, "<body>");
        html_raw(out, "<header><a class=\"brand\" href=\"/ui/\">ringil fleet</a><nav>");
        for (size_t i = 0; i < ELEMENTSOF(nav_items); i++)
                html_printf(out, "<a href=\"%s\"%s>%s</a>", nav_items[i].href,
                            p->nav && streq(p->nav, nav_items[i].id) ? " class=\"here\" aria-current=\"page\"" : "",
                            nav_items[i].label);
        html_printf(out, "</nav><span class=\"who\" title=\"certificate serial %s\">%s</span></header>\n<main id=\"main\">",
                    req->serial, req->peer);
        html_append(out, &p->h);
        html_printf(out, "</main>\n<footer>ringil-server %s · rendered %s", RINGIL_VERSION, html_time(p->now, when));
        if (p->refresh)
                html_printf(out, " · <span class=\"live\" data-live>updates every %u s</span>", p->refresh);
        html_raw(out, "</footer></body></html>\n");
}

static int respond_html(struct route_ctx *x, int status, struct html *doc) {
        if (doc->err < 0)
                return tp_respond_error(x->resp, 500, "page too large or out of memory");
        security_headers(x->resp, false);
        if (tp_respond(x->resp, status, "text/html; charset=utf-8", doc->b.data, doc->b.len) < 0)
                return tp_respond_error(x->resp, 500, "out of memory");
        return status;
}

static int page_init(struct route_ctx *x, struct ui_page *p) {
        int r;

        *p = (struct ui_page) { .x = x, .h = HTML_INIT(UI_PAGE_MAX), .now = (int64_t) time(NULL) };
        r = form_parse(x->http->query, strlen(x->http->query), &p->query);
        if (r >= 0)
                r = ui_csrf_make(x->req->peer, x->req->serial, p->now, p->csrf);
        return r;
}

static void page_done(struct ui_page *p) {
        html_free(&p->h);
        form_done(&p->query);
}

int ui_error_page(struct route_ctx *x, int status, const char *title, const char *message) {
        struct ui_page p = { .x = x, .h = HTML_INIT(1 << 16), .now = (int64_t) time(NULL), .title = title };
        _cleanup_html_ struct html doc = HTML_INIT(1 << 17);

        html_printf(&p.h, "<h1>%s</h1><p class=\"error\">%s</p><p><a href=\"/ui/\">Back to the fleet</a></p>", title,
                    message);
        layout(&p, &doc);
        html_free(&p.h);
        return respond_html(x, status, &doc);
}

/* ---- GET /ui/…: the page table ---- */

static const struct {
        const char *path;      /* below /ui/ */
        ui_page_fn fn;
} pages[] = {
        { "", ui_page_fleet },
        { "drones", ui_page_drones },
        { "drone", ui_page_drone },
        { "drone/revoke", ui_page_drone_revoke },
        { "drone/retry", ui_page_drone_retry },
        { "releases", ui_page_releases },
        { "rollouts", ui_page_rollouts },
        { "rollout", ui_page_rollout },
        { "rollout/approve", ui_page_rollout_action },
        { "rollout/start", ui_page_rollout_action },
        { "rollout/pause", ui_page_rollout_action },
        { "rollout/resume", ui_page_rollout_action },
        { "rollout/abort", ui_page_rollout_action },
        { "rollout/retry", ui_page_rollout_action },
        { "actions", ui_page_actions },
};

static int route_ui_get(struct route_ctx *x) {
        _cleanup_html_ struct html doc = HTML_INIT(UI_PAGE_MAX + 16384);
        struct ui_page p;
        ui_page_fn fn = NULL;
        int status;

        if (strncmp(x->param, "static/", 7) == 0)
                return serve_asset(x, x->param + 7);
        for (size_t i = 0; i < ELEMENTSOF(pages) && !fn; i++)
                if (streq(pages[i].path, x->param))
                        fn = pages[i].fn;
        if (!fn)
                return ui_error_page(x, 404, "Not found", "There is no such page.");
        if (page_init(x, &p) < 0) {
                page_done(&p);
                return ui_error_page(x, 400, "Bad request", "The query string of this address is malformed.");
        }
        status = fn(&p);
        if (status < 0) {
                log_warning_errno(status, "dashboard page '/ui/%s': %s", x->param, ringil_detail());
                page_done(&p);
                return ui_error_page(x, 503, "Store busy", "The fleet database did not answer; try again.");
        }
        layout(&p, &doc);
        page_done(&p);
        return respond_html(x, status, &doc);
}

static int route_ui_root(struct route_ctx *x) {
        return ui_redirect(x, "/ui/");
}

/* ---- POST plumbing ---- */

int ui_redirect(struct route_ctx *x, const char *location) {
        security_headers(x->resp, false);
        tp_header(x->resp, "Location", "%s", location);
        if (tp_respond(x->resp, 303, "text/plain; charset=utf-8", "See Other\n", 10) < 0)
                return tp_respond_error(x->resp, 500, "out of memory");
        return 303;
}

int ui_post_begin(struct route_ctx *x, const char *key, const char *target_prefix, struct form *ret_form) {
        struct form f;
        const char *v;
        int r;

        r = form_parse(x->req->body ? x->req->body : "", x->req->body_len, &f);
        if (r < 0)
                return -ui_error_page(x, 400, "Bad request", "The form is malformed.");
        v = form_get(&f, key);
        if (v)
                snprintf(x->log_target, sizeof(x->log_target), "%s%s", target_prefix, v);
        /* INVARIANT: the token is checked before the form's values are acted on, for every POST. */
        r = ui_csrf_check(form_get(&f, "csrf"), x->req->peer, x->req->serial, (int64_t) time(NULL));
        if (r < 0) {
                snprintf(x->log_detail, sizeof(x->log_detail), "refused: %s CSRF token",
                         r == -RINGIL_EEXPIRED ? "expired" : r == -RINGIL_EMALFORMED ? "missing or malformed" : "invalid");
                form_done(&f);
                log_notice("dashboard: %s from operator '%s' %s", x->http->path, x->req->peer, x->log_detail);
                return -ui_error_page(x, 403, "Form expired",
                                      "This form was not made for your certificate by this server, or it is too old "
                                      "(forms last 8 hours and do not survive a server restart). Nothing was changed: "
                                      "go back, reload the page and try again.");
        }
        if (!v || !form_get(&f, "confirm") || !streq(form_get(&f, "confirm"), "yes")) {
                form_done(&f);
                return -ui_error_page(x, 400, "Bad request", "The form lacks its confirmation or its subject.");
        }
        *ret_form = f;
        return 0;
}

/* ---- the action log as JSON (the API's view of what the dashboard shows) ---- */

static int route_actions_json(struct route_ctx *x) {
        struct form q;
        const char *v;
        uint32_t limit = 100, offset = 0;
        json_t *j = NULL;
        char *s;
        int r;

        if (form_parse(x->http->query, strlen(x->http->query), &q) < 0)
                return tp_respond_error(x->resp, 400, "malformed query string");
        if (((v = form_get(&q, "limit")) && parse_u32_range(v, 1, 1000, &limit) < 0) ||
            ((v = form_get(&q, "offset")) && parse_u32_range(v, 0, UINT32_MAX, &offset) < 0)) {
                form_done(&q);
                return tp_respond_error(x->resp, 400, "limit must be 1..1000, offset a number");
        }
        r = store_actions_json(x->srv->db, form_get(&q, "target"), limit, offset, &j);
        form_done(&q);
        if (r < 0)
                return tp_respond_error(x->resp, 503, "store: %s", ringil_detail());
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        if (!s || tp_respond(x->resp, 200, "application/json", s, strlen(s)) < 0) {
                free(s);
                return tp_respond_error(x->resp, 500, "out of memory");
        }
        free(s);
        return 200;
}

/* ---- registration ---- */

int ui_routes_register(struct route_table *t) {
        const struct route routes[] = {
                ROUTE(ROUTE_GET, "/ui", ROLE_OPERATOR, route_ui_root),
                ROUTE(ROUTE_GET, "/ui/**", ROLE_OPERATOR, route_ui_get),
                ROUTE(ROUTE_POST, "/ui/drone/revoke", ROLE_OPERATOR, ui_post_drone_revoke, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                ROUTE(ROUTE_POST, "/ui/drone/retry", ROLE_OPERATOR, ui_post_drone_retry, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                /* approval is the dispatcher's to check, as for the API: an approver, not the creator */
                ROUTE(ROUTE_POST, "/ui/rollout/approve", ROLE_APPROVER, ui_post_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                ROUTE(ROUTE_POST, "/ui/rollout/start", ROLE_OPERATOR, ui_post_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                ROUTE(ROUTE_POST, "/ui/rollout/pause", ROLE_OPERATOR, ui_post_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                ROUTE(ROUTE_POST, "/ui/rollout/resume", ROLE_OPERATOR, ui_post_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                ROUTE(ROUTE_POST, "/ui/rollout/abort", ROLE_OPERATOR, ui_post_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                ROUTE(ROUTE_POST, "/ui/rollout/retry", ROLE_OPERATOR, ui_post_rollout_action, .body = TP_BODY_MEMORY,
                      .max_body = FORM_MAX_INPUT),
                ROUTE(ROUTE_GET, "/api/v1/actions", ROLE_OPERATOR, route_actions_json),
        };
        int r;

        r = assets_init();
        if (r >= 0)
                r = ui_csrf_init(NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                r = route_table_add(t, &routes[i]);
                if (r < 0)
                        return ringil_fail(r, "route '%s' cannot be registered", routes[i].path);
        }
        return 0;
}
