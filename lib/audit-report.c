/* audit-report.c: renders an audit run as text, JSON (ringil.audit.v1), JUnit XML or SARIF 2.1.0. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "config.h"
#include "macro.h"
#include "parse.h"

#define REPORT_MAX (64u << 20)

/* Order for humans and JUnit: what needs action first. */
static int status_rank(enum audit_status s) {
        switch (s) {
        case AUDIT_FAIL:
                return 0;
        case AUDIT_ERROR:
                return 1;
        case AUDIT_WAIVED:
                return 2;
        case AUDIT_PASS:
                return 3;
        case AUDIT_NOTAPPLICABLE:
        case _AUDIT_STATUS_MAX:
        case _AUDIT_STATUS_UNSET:
                break;
        }
        return 4;
}

static int cmp_result(const void *a, const void *b) {
        const struct audit_result *x = *(const struct audit_result *const *) a, *y = *(const struct audit_result *const *) b;
        int d = status_rank(x->status) - status_rank(y->status);
        if (d)
                return d;
        d = (int) y->severity - (int) x->severity;
        if (d)
                return d;
        return (int) (x->check - y->check);
}

static int render_text(const struct audit_run *run, enum audit_severity fail_on, struct buf *b) {
        _cleanup_free_ const struct audit_result **sorted = calloc(run->n_results + 1, sizeof(*sorted));
        int r = 0;

        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < run->n_results; i++)
                sorted[i] = &run->results[i];
        qsort(sorted, run->n_results, sizeof(*sorted), cmp_result);
        for (size_t i = 0; i < run->n_results && r >= 0; i++) {
                const struct audit_result *res = sorted[i];
                const struct audit_evidence *e = res->n_ev ? &res->ev[0] : NULL;
                r = buf_printf(b, "%-13s %-8s %-8s %s", audit_status_to_string(res->status),
                               audit_severity_to_string(res->severity), res->check->id, res->check->title);
                if (r >= 0 && res->status != AUDIT_PASS && res->message)
                        r = buf_printf(b, " — %s", res->message);
                if (r >= 0 && res->status == AUDIT_FAIL && e && e->observed)
                        r = buf_printf(b, " [observed %s, expected %s]", e->observed, e->expected ? e->expected : "-");
                if (r >= 0 && e && e->path && res->status != AUDIT_NOTAPPLICABLE)
                        r = buf_printf(b, " (%s)", e->path);
                if (r >= 0 && res->waiver_rationale) {
                        char t[21];
                        r = buf_printf(b, " {waiver%s until %s: %s}", res->waiver_expired ? " EXPIRED" : "",
                                       format_time(res->waiver_expires, t), res->waiver_rationale);
                }
                if (r >= 0 && res->status == AUDIT_FAIL)
                        r = buf_printf(b, "\n              fix: %s", res->check->remediation);
                if (r >= 0)
                        r = buf_append_str(b, "\n");
        }
        if (r >= 0)
                r = buf_printf(b,
                               "\n%zu checks (profile %s, %s, root %s): %zu pass, %zu fail, %zu error, %zu waived, "
                               "%zu not applicable; fail-on %s → exit %d\n",
                               run->n_results, run->profile_name, run->mode == AUDIT_MODE_LIVE ? "live" : "offline",
                               run->root, run->counts[AUDIT_PASS], run->counts[AUDIT_FAIL], run->counts[AUDIT_ERROR],
                               run->counts[AUDIT_WAIVED], run->counts[AUDIT_NOTAPPLICABLE],
                               audit_severity_to_string(fail_on), audit_exit_code(run, fail_on));
        return r;
}

static json_t *evidence_json(const struct audit_result *res) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < res->n_ev; i++)
                json_array_append_new(a, json_pack("{s:s?, s:s?, s:s?}", "path", res->ev[i].path, "observed",
                                                   res->ev[i].observed, "expected", res->ev[i].expected));
        return a;
}

static json_t *render_json(const struct audit_run *run, enum audit_severity fail_on) {
        json_t *doc, *results = json_array(), *summary;
        char t[21];

        for (size_t i = 0; results && i < run->n_results; i++) {
                const struct audit_result *res = &run->results[i];
                json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:o, s:b, s:s}",
                                      "id", res->check->id, "area", res->check->area, "title", res->check->title,
                                      "status", audit_status_to_string(res->status),
                                      "severity", audit_severity_to_string(res->severity),
                                      "serves", res->check->serves, "scope", audit_scope_to_string(res->check->scope),
                                      "message", res->message, "evidence", evidence_json(res),
                                      "evidence_truncated", res->ev_truncated, "remediation", res->check->remediation);
                if (o && res->waiver_rationale)
                        json_object_set_new(o, "waiver",
                                            json_pack("{s:s, s:s, s:b}", "rationale", res->waiver_rationale, "expires",
                                                      format_time(res->waiver_expires, t), "expired", res->waiver_expired));
                json_array_append_new(results, o);
        }
        summary = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t) run->n_results,
                            "pass", (json_int_t) run->counts[AUDIT_PASS], "fail", (json_int_t) run->counts[AUDIT_FAIL],
                            "error", (json_int_t) run->counts[AUDIT_ERROR],
                            "notapplicable", (json_int_t) run->counts[AUDIT_NOTAPPLICABLE],
                            "waived", (json_int_t) run->counts[AUDIT_WAIVED]);
        doc = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:I, s:{s:s, s:s}, s:s, s:i, s:o, s:o}",
                        "schema", "ringil.audit.v1",
                        "tool", "name", "ringil", "version", RINGIL_VERSION,
                        "root", run->root,
                        "mode", run->mode == AUDIT_MODE_LIVE ? "live" : "offline",
                        "started", format_time(run->started, t),
                        "duration_us", (json_int_t) run->duration_us,
                        "profile", "name", run->profile_name, "sha256", run->profile_sha256,
                        "fail_on", audit_severity_to_string(fail_on),
                        "exit_code", audit_exit_code(run, fail_on),
                        "summary", summary, "results", results);
        return doc;
}

static int xml_escape(struct buf *b, const char *s) {
        int r = 0;
        for (; s && *s && r >= 0; s++)
                switch (*s) {
                case '<':
                        r = buf_append_str(b, "&lt;");
                        break;
                case '>':
                        r = buf_append_str(b, "&gt;");
                        break;
                case '&':
                        r = buf_append_str(b, "&amp;");
                        break;
                case '"':
                        r = buf_append_str(b, "&quot;");
                        break;
                default:
                        r = buf_append(b, s, 1);
                }
        return r;
}

/* Has an earlier result the same area? (each area becomes one testsuite, in catalogue order; a list of
 * areas here would silently drop the checks of an area it lacks) */
static bool area_seen_before(const struct audit_run *run, size_t k) {
        for (size_t i = 0; i < k; i++)
                if (streq(run->results[i].check->area, run->results[k].check->area))
                        return true;
        return false;
}

static int render_junit(const struct audit_run *run, struct buf *b) {
        int r = buf_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ringil audit\" tests=\"%zu\" "
                              "failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\">\n",
                           run->n_results, run->counts[AUDIT_FAIL], run->counts[AUDIT_ERROR],
                           run->counts[AUDIT_WAIVED] + run->counts[AUDIT_NOTAPPLICABLE]);

        for (size_t k = 0; k < run->n_results && r >= 0; k++) {
                const char *area = run->results[k].check->area;
                size_t c[_AUDIT_STATUS_MAX] = {}, n = 0;
                if (area_seen_before(run, k))
                        continue;
                for (size_t i = 0; i < run->n_results; i++)
                        if (streq(run->results[i].check->area, area)) {
                                c[run->results[i].status]++;
                                n++;
                        }
                if (n == 0)
                        continue;
                r = buf_printf(b, "  <testsuite name=\"%s\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\">\n",
                               area, n, c[AUDIT_FAIL], c[AUDIT_ERROR], c[AUDIT_WAIVED] + c[AUDIT_NOTAPPLICABLE]);
                for (size_t i = 0; i < run->n_results && r >= 0; i++) {
                        const struct audit_result *res = &run->results[i];
                        const char *tag = NULL;
                        if (!streq(res->check->area, area))
                                continue;
                        r = buf_printf(b, "    <testcase classname=\"audit.%s\" name=\"%s ", area, res->check->id);
                        if (r >= 0)
                                r = xml_escape(b, res->check->title);
                        if (r >= 0)
                                r = buf_append_str(b, "\"");
                        switch (res->status) {
                        case AUDIT_FAIL:
                                tag = "failure";
                                break;
                        case AUDIT_ERROR:
                                tag = "error";
                                break;
                        case AUDIT_WAIVED:
                        case AUDIT_NOTAPPLICABLE:
                                tag = "skipped";
                                break;
                        case AUDIT_PASS:
                        case _AUDIT_STATUS_MAX:
                        case _AUDIT_STATUS_UNSET:
                                break;
                        }
                        if (!tag) {
                                if (r >= 0)
                                        r = buf_append_str(b, "/>\n");
                                continue;
                        }
                        if (r >= 0)
                                r = buf_printf(b, ">\n      <%s type=\"%s\" message=\"", tag, audit_severity_to_string(res->severity));
                        if (r >= 0)
                                r = xml_escape(b, res->status == AUDIT_WAIVED ? res->waiver_rationale : res->message);
                        if (r >= 0)
                                r = buf_append_str(b, "\">");
                        for (size_t e = 0; e < res->n_ev && r >= 0; e++) {
                                r = buf_printf(b, "%s", e ? "\n" : "");
                                if (r >= 0)
                                        r = xml_escape(b, res->ev[e].path);
                                if (r >= 0)
                                        r = buf_append_str(b, ": observed ");
                                if (r >= 0)
                                        r = xml_escape(b, res->ev[e].observed ? res->ev[e].observed : "-");
                                if (r >= 0)
                                        r = buf_append_str(b, ", expected ");
                                if (r >= 0)
                                        r = xml_escape(b, res->ev[e].expected ? res->ev[e].expected : "-");
                        }
                        if (r >= 0)
                                r = buf_printf(b, "</%s>\n    </testcase>\n", tag);
                }
                if (r >= 0)
                        r = buf_append_str(b, "  </testsuite>\n");
        }
        if (r >= 0)
                r = buf_append_str(b, "</testsuites>\n");
        return r;
}

static const char *sarif_level(enum audit_severity s) {
        switch (s) {
        case AUDIT_SEV_CRITICAL:
        case AUDIT_SEV_HIGH:
                return "error";
        case AUDIT_SEV_MEDIUM:
                return "warning";
        case AUDIT_SEV_LOW:
        case AUDIT_SEV_INFO:
        case _AUDIT_SEV_MAX:
                break;
        }
        return "note";
}

static json_t *render_sarif(const struct audit_run *run) {
        json_t *rules = json_array(), *results = json_array();

        for (size_t i = 0; i < run->n_results; i++) {
                const struct audit_result *res = &run->results[i];
                const char *kind = "pass", *level = "none", *uri = "/";
                json_t *o;
                char txt[1024];

                json_array_append_new(rules, json_pack("{s:s, s:s, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:s, s:s, s:s}}",
                        "id", res->check->id, "name", res->check->id,
                        "shortDescription", "text", res->check->title,
                        "fullDescription", "text", res->check->serves,
                        "help", "text", res->check->remediation,
                        "defaultConfiguration", "level", sarif_level(res->severity),
                        "properties", "area", res->check->area, "severity", audit_severity_to_string(res->severity),
                        "serves", res->check->serves, "scope", audit_scope_to_string(res->check->scope)));
                switch (res->status) {
                case AUDIT_FAIL:
                case AUDIT_WAIVED:
                        kind = "fail";
                        level = sarif_level(res->severity);
                        break;
                case AUDIT_ERROR:
                        kind = "open";   /* SARIF: the tool could not determine whether the rule holds */
                        break;
                case AUDIT_NOTAPPLICABLE:
                        kind = "notApplicable";
                        break;
                case AUDIT_PASS:
                case _AUDIT_STATUS_MAX:
                case _AUDIT_STATUS_UNSET:
                        break;
                }
                for (size_t e = 0; e < res->n_ev; e++)
                        if (res->ev[e].path && res->ev[e].path[0] == '/') {
                                uri = res->ev[e].path;
                                break;
                        }
                snprintf(txt, sizeof(txt), "%s: %s", res->check->title,
                         res->message ? res->message : audit_status_to_string(res->status));
                o = json_pack("{s:s, s:I, s:s, s:s, s:{s:s}, s:[{s:{s:{s:s, s:s}}}]}",
                              "ruleId", res->check->id, "ruleIndex", (json_int_t) i, "kind", kind, "level", level,
                              "message", "text", txt,
                              "locations", "physicalLocation", "artifactLocation", "uri", uri + 1, "uriBaseId", "ROOT");
                if (o && res->status == AUDIT_WAIVED)
                        json_object_set_new(o, "suppressions",
                                            json_pack("[{s:s, s:s}]", "kind", "external", "justification", res->waiver_rationale));
                if (o && res->n_ev)
                        json_object_set_new(o, "properties", json_pack("{s:o}", "evidence", evidence_json(res)));
                json_array_append_new(results, o);
        }
        char base[AUDIT_FS_MAX_PATH + 16];
        snprintf(base, sizeof(base), "file://%s%s", run->root, run->root[strlen(run->root) - 1] == '/' ? "" : "/");
        return json_pack("{s:s, s:s, s:[{s:{s:{s:s, s:s, s:o}}, s:{s:{s:s}}, s:o}]}",
                         "version", "2.1.0",
                         "$schema", "https://json.schemastore.org/sarif-2.1.0.json",
                         "runs", "tool", "driver", "name", "ringil-audit", "version", RINGIL_VERSION,
                         "rules", rules,
                         "originalUriBaseIds", "ROOT", "uri", base,
                         "results", results);
}

int audit_report(const struct audit_run *run, enum audit_format fmt, enum audit_severity fail_on, char **ret) {
        _cleanup_buf_ struct buf b = BUF_INIT(REPORT_MAX);
        json_t *doc = NULL;
        char *s;
        int r;

        switch (fmt) {
        case AUDIT_FORMAT_TEXT:
                r = render_text(run, fail_on, &b);
                if (r < 0)
                        return r;
                *ret = (char *) buf_steal(&b, NULL);
                return 0;
        case AUDIT_FORMAT_JUNIT:
                r = render_junit(run, &b);
                if (r < 0)
                        return r;
                *ret = (char *) buf_steal(&b, NULL);
                return 0;
        case AUDIT_FORMAT_JSON:
                doc = render_json(run, fail_on);
                break;
        case AUDIT_FORMAT_SARIF:
                doc = render_sarif(run);
                break;
        }
        if (!doc)
                return -ENOMEM;
        s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(doc);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
