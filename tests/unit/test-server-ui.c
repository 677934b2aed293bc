/* test-server-ui.c: the dashboard's HTML writer (escaping), CSRF tokens, and its store queries and action log. */
#include "tests.h"

#include <libpq-fe.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "html.h"
#include "rollout.h"
#include "store-rollout.h"
#include "store.h"
#include "ui-csrf.h"

static const char hostile[] = "<img src=x onerror=alert(1)>";

static const char *text_of(struct html *h) {
        assert_int_equal(h->err, 0);
        return h->b.data ? (const char *) h->b.data : "";
}

static void test_values_are_escaped(void **state) {
        struct html h = HTML_INIT(1 << 16);
        (void) state;

        html_printf(&h, "<td title=\"%s\">%s</td>", hostile, "a&b \"q\" 'a'");
        assert_string_equal(text_of(&h), "<td title=\"&lt;img src=x onerror=alert(1)&gt;\">a&amp;b &quot;q&quot; &#39;a&#39;</td>");
        html_free(&h);
        h = HTML_INIT(1 << 16);
        html_text(&h, hostile);
        assert_string_equal(text_of(&h), "&lt;img src=x onerror=alert(1)&gt;");
        html_free(&h);
        /* control bytes, bidi overrides and invalid UTF-8 are made visible before the entities */
        h = HTML_INIT(1 << 16);
        html_printf(&h, "%s|%s|%s|", "a\nb", "evil\xe2\x80\xae" "fdp", "x\xff<");
        html_text(&h, NULL);
        assert_string_equal(text_of(&h), "a\\nb|evil\\u202efdp|x\\xff&lt;|");
        html_free(&h);
        /* %c is a value too */
        h = HTML_INIT(1 << 16);
        html_printf(&h, "%c%c", '<', 'a');
        assert_string_equal(text_of(&h), "&lt;a");
        html_free(&h);
}

static void test_numbers_and_precision(void **state) {
        struct html h = HTML_INIT(1 << 16);
        (void) state;

        html_printf(&h, "%d %5u %lld %" PRId64 " %zu %x %.1f %% %-3d|", -4, 7u, -9LL, (int64_t) 1 << 40, (size_t) 12, 255u,
                    2.25, 5);
        assert_string_equal(text_of(&h), "-4     7 -9 1099511627776 12 ff 2.2 % 5  |");
        html_free(&h);
        /* precision cuts the value at a character boundary and says so */
        h = HTML_INIT(1 << 16);
        html_printf(&h, "%.3s|%.4s|%.10s", "abcdef", "ab\xc3\xbc" "cd", "<<<");
        assert_string_equal(text_of(&h), "abc\xe2\x80\xa6|ab\xc3\xbc\xe2\x80\xa6|&lt;&lt;&lt;");
        html_free(&h);
}

/* html_vprintf without the macro's literal check, to hand it a conversion it refuses */
static void unchecked_printf(struct html *h, const char *fmt, ...) _printf_(2, 3);
static void unchecked_printf(struct html *h, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        html_vprintf(h, fmt, ap);
        va_end(ap);
}

static void test_errors_are_sticky(void **state) {
        struct html h = HTML_INIT(16), inner = HTML_INIT(1024);
        (void) state;

        html_raw(&h, "0123456789");
        html_printf(&h, "%s", "0123456789");   /* over the cap */
        assert_int_equal(h.err, -EFBIG);
        html_raw(&h, "x");
        assert_int_equal(h.b.len, 10);
        html_free(&h);
        /* a conversion the writer does not support fails the page instead of printing something else */
        h = HTML_INIT(1024);
        unchecked_printf(&h, "%p", (void *) &h);
        assert_int_equal(h.err, -EINVAL);
        html_free(&h);
        /* append carries markup and errors */
        h = HTML_INIT(1024);
        html_printf(&inner, "<b>%s</b>", "<");
        html_append(&h, &inner);
        assert_string_equal(text_of(&h), "<b>&lt;</b>");
        html_free(&h);
        html_free(&inner);
}

static void test_formatting_helpers(void **state) {
        char b[32];
        (void) state;

        assert_string_equal(html_time(0, b), "never");
        assert_string_equal(html_time(86400 * 365, b), "1971-01-01 00:00 UTC");
        assert_string_equal(html_ago(1000, 1005, b), "just now");
        assert_string_equal(html_ago(1000, 1090, b), "90 s ago");
        assert_string_equal(html_ago(1000, 1000 + 600, b), "10 min ago");
        assert_string_equal(html_ago(1000 + 7200, 1000, b), "in 2 h");
        assert_string_equal(html_ago(1000, 1000 + 3 * 86400, b), "3 d ago");
        assert_string_equal(html_size(17, b), "17 B");
        assert_string_equal(html_size(1536, b), "1.5 KiB");
        assert_string_equal(html_size(300u << 20, b), "300 MiB");
}

static void test_csrf(void **state) {
        static const uint8_t key[32] = { 1, 2, 3 }, other[32] = { 9 };
        char t[UI_CSRF_MAX], forged[UI_CSRF_MAX];
        int64_t now = 1700000000;
        (void) state;

        assert_int_equal(ui_csrf_init(key), 0);
        assert_int_equal(ui_csrf_make("alice", "1a2b", now, t), 0);
        assert_int_equal(ui_csrf_check(t, "alice", "1a2b", now), 0);
        assert_int_equal(ui_csrf_check(t, "alice", "1a2b", now + UI_CSRF_LIFETIME), 0);
        /* bound to the certificate: another operator, or a re-issued certificate of the same name */
        assert_int_equal(ui_csrf_check(t, "bob", "1a2b", now), -RINGIL_EBADSIG);
        assert_int_equal(ui_csrf_check(t, "alice", "1a2c", now), -RINGIL_EBADSIG);
        /* "alice\0" "1a2b" must not equal "alice1\0" "a2b": the fields are separated */
        assert_int_equal(ui_csrf_check(t, "alice1", "a2b", now), -RINGIL_EBADSIG);
        /* expired, and an expiry moved by hand fails the MAC first */
        assert_int_equal(ui_csrf_check(t, "alice", "1a2b", now + UI_CSRF_LIFETIME + 1), -RINGIL_EEXPIRED);
        snprintf(forged, sizeof(forged), "%lld%s", (long long) now + 2 * UI_CSRF_LIFETIME, strchr(t, '.'));
        assert_int_equal(ui_csrf_check(forged, "alice", "1a2b", now), -RINGIL_EBADSIG);
        /* a flipped MAC digit */
        snprintf(forged, sizeof(forged), "%s", t);
        forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == '0' ? '1' : '0';
        assert_int_equal(ui_csrf_check(forged, "alice", "1a2b", now), -RINGIL_EBADSIG);
        /* malformed */
        assert_int_equal(ui_csrf_check(NULL, "alice", "1a2b", now), -RINGIL_EMALFORMED);
        assert_int_equal(ui_csrf_check("", "alice", "1a2b", now), -RINGIL_EMALFORMED);
        assert_int_equal(ui_csrf_check("123", "alice", "1a2b", now), -RINGIL_EMALFORMED);
        assert_int_equal(ui_csrf_check("-1.00", "alice", "1a2b", now), -RINGIL_EMALFORMED);
        assert_int_equal(ui_csrf_check(".abcd", "alice", "1a2b", now), -RINGIL_EMALFORMED);
        /* another server (another key) */
        assert_int_equal(ui_csrf_init(other), 0);
        assert_int_equal(ui_csrf_check(t, "alice", "1a2b", now), -RINGIL_EBADSIG);
        /* random keys differ */
        assert_int_equal(ui_csrf_init(NULL), 0);
        assert_int_equal(ui_csrf_check(t, "alice", "1a2b", now), -RINGIL_EBADSIG);
}

/* ---- the store ---- */

/*
 * Every store test runs on SQLite and on PostgreSQL: a fresh database of the throw-away server of
 * tests/unit/with-postgres.py (meson runs this test through it; RINGIL_TEST_PG is its URL).
 */
struct fixture {
        char *dir, *path;   /* path: the store's `db`, a file or a URL */
        store *s;
};

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        f->dir = test_tmpdir();
        assert_true(asprintf(&f->path, "%s/fleet.db", f->dir) > 0);
        assert_int_equal(store_open(f->path, 2, &f->s), 0);
        *state = f;
        return 0;
}

static int setup_pg(void **state) {
        static unsigned n;
        const char *base = getenv("RINGIL_TEST_PG");
        struct fixture *f = calloc(1, sizeof(*f));
        char sql[128], name[64];
        const char *slash;
        PGconn *c;

        if (!base || !*base)
                fail_msg("RINGIL_TEST_PG is not set: run this test through tests/unit/with-postgres.py");
        snprintf(name, sizeof(name), "ui%d_%u", (int) getpid(), ++n);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
        c = PQconnectdb(base);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PQclear(PQexec(c, sql));
        PQfinish(c);
        slash = strrchr(base, '/');
        assert_non_null(slash);
        assert_true(asprintf(&f->path, "%.*s/%s", (int) (slash - base), base, name) > 0);
        assert_int_equal(store_open(f->path, 2, &f->s), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        store_close(f->s);
        if (f->dir)
                test_rm_rf(f->dir);
        free(f->dir);
        free(f->path);
        free(f);
        return 0;
}

static void add_drone(store *s, const char *id, const char *group, int64_t now) {
        uint8_t hash[32] = { 0 };
        snprintf((char *) hash, sizeof(hash), "%s", id);
        assert_int_equal(store_drone_add(s, id, group, hash, now, now + 3600), 0);
}

/* A check-in with a compliance report: fail < 0 no audit; sb NULL no Secure Boot status, else its mode
 * with the fleet's keys ("user", "setup") or "foreign" (user mode, a foreign db). */
static void checkin_full(store *s, const char *id, const char *version, int64_t now, int fail, const char *profile,
                         const char *sb) {
        struct fleet_status st = { .state = FLEET_STATE_IDLE,
                                   .audit = { .present = fail >= 0, .pass = 40, .fail = fail >= 0 ? (uint32_t) fail : 0 } };
        bool resend = false;

        snprintf(st.version, sizeof(st.version), "%s", version);
        snprintf(st.slot, sizeof(st.slot), "a");
        snprintf(st.audit.profile, sizeof(st.audit.profile), "%s", profile);
        for (int i = 0; i < fail && i < 2; i++) {
                snprintf(st.audit.failing[i], sizeof(st.audit.failing[i]), "CHK-%03d", i);
                st.audit.n_failing++;
        }
        if (sb) {
                bool foreign = streq(sb, "foreign");
                st.sb.present = true;
                snprintf(st.sb.mode, sizeof(st.sb.mode), "%s", foreign ? "user" : sb);
                snprintf(st.sb.pk, sizeof(st.sb.pk), "ok");
                snprintf(st.sb.kek, sizeof(st.sb.kek), "ok");
                snprintf(st.sb.db, sizeof(st.sb.db), "%s", foreign ? "foreign" : "ok");
        }
        assert_int_equal(store_checkin(s, id, &st, now), 0);
        assert_int_equal(store_compliance_update(s, id, &st, now, &resend), 0);
}

static void checkin(store *s, const char *id, const char *version, int64_t now, int fail) {
        checkin_full(s, id, version, now, fail, "prod", "user");
}

static void report(store *s, const char *id, uint64_t seq, enum fleet_state state, const char *version, int64_t now) {
        struct fleet_status st = { .seq = seq, .state = state, .release = 1 };
        snprintf(st.version, sizeof(st.version), "%s", version);
        assert_int_equal(store_report(s, id, &st, now), 1);
}

static json_int_t num(json_t *o, const char *k) {
        return json_integer_value(json_object_get(o, k));
}

static void test_fleet_summary_and_states(void **state) {
        struct fixture *f = *state;
        int64_t now = (int64_t) time(NULL);
        json_t *j = NULL;

        add_drone(f->s, "d-idle", "a", now);
        add_drone(f->s, "d-blessed", "a", now);
        add_drone(f->s, "d-pending", "b", now);
        add_drone(f->s, "d-failed", "b", now);
        add_drone(f->s, "d-silent", "b", now);
        add_drone(f->s, "d-never", "b", now);
        add_drone(f->s, "d-revoked", "b", now);
        checkin(f->s, "d-idle", "1.0", now, 0);
        checkin(f->s, "d-blessed", "2.0", now, 3);
        report(f->s, "d-blessed", 1, FLEET_STATE_DOWNLOADING, "1.0", now - 100);
        report(f->s, "d-blessed", 2, FLEET_STATE_UPDATED, "2.0", now - 50);
        checkin(f->s, "d-pending", "1.0", now, -1);
        report(f->s, "d-pending", 1, FLEET_STATE_REBOOTING, "1.0", now - 10);
        checkin(f->s, "d-failed", "1.0", now, 0);
        report(f->s, "d-failed", 1, FLEET_STATE_FAILED, "1.0", now - 5);
        checkin(f->s, "d-silent", "1.0", now - 1000, 0);
        checkin(f->s, "d-revoked", "1.0", now, 0);
        assert_int_equal(store_drone_revoke(f->s, "d-revoked"), 0);

        assert_int_equal(store_fleet_summary(f->s, now, 300, &j), 0);
        assert_int_equal(num(j, "total"), 7);
        json_t *st = json_object_get(j, "state");
        assert_int_equal(num(st, "idle"), 1);
        assert_int_equal(num(st, "blessed"), 1);
        assert_int_equal(num(st, "pending"), 1);
        assert_int_equal(num(st, "failed"), 1);
        assert_int_equal(num(st, "silent"), 2);   /* silent for 1000 s, and never seen */
        assert_int_equal(num(st, "revoked"), 1);
        /* versions and audit count the drones that are not revoked */
        assert_int_equal(num(json_object_get(j, "version"), "1.0"), 4);
        assert_int_equal(num(json_object_get(j, "version"), "2.0"), 1);
        assert_int_equal(num(json_object_get(j, "version"), ""), 1);
        assert_int_equal(num(json_object_get(j, "audit"), "compliant"), 3);
        assert_int_equal(num(json_object_get(j, "audit"), "failing"), 1);
        assert_int_equal(num(json_object_get(j, "audit"), "unknown"), 2);   /* no audit, never seen */
        assert_int_equal(num(json_object_get(j, "secureboot"), "enforced"), 5);
        assert_int_equal(num(json_object_get(j, "secureboot"), "unknown"), 1);
        json_decref(j);

        /* the other words: another profile, checks not evaluated, Secure Boot in setup mode or with a foreign db */
        checkin_full(f->s, "d-idle", "1.0", now, 0, "dev", "setup");
        checkin_full(f->s, "d-never", "1.0", now, 0, "prod", "foreign");
        assert_int_equal(store_fleet_summary(f->s, now, 300, &j), 0);
        assert_int_equal(num(json_object_get(j, "audit"), "other-profile"), 1);
        assert_int_equal(num(json_object_get(j, "audit"), "compliant"), 3);
        assert_int_equal(num(json_object_get(j, "secureboot"), "not-enforced"), 1);
        assert_int_equal(num(json_object_get(j, "secureboot"), "foreign-keys"), 1);
        assert_int_equal(num(json_object_get(j, "secureboot"), "enforced"), 4);
        assert_null(json_object_get(json_object_get(j, "secureboot"), "unknown"));
        json_decref(j);
}

static void test_drone_pages(void **state) {
        struct fixture *f = *state;
        int64_t now = (int64_t) time(NULL);
        char id[32];
        json_t *j = NULL, *d;

        for (int i = 0; i < 250; i++) {
                snprintf(id, sizeof(id), "drone-%03d", i);
                add_drone(f->s, id, i % 2 ? "odd" : "even", now);
                checkin(f->s, id, i < 200 ? "1.0" : "2.0", now - i, 0);
        }
        struct drone_query q = { .search = "", .version = "", .group = "", .state = "", .limit = 50, .now = now,
                                 .silent_after = 300 };
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(num(j, "total"), 250);
        assert_int_equal(json_array_size(json_object_get(j, "drones")), 50);
        d = json_array_get(json_object_get(j, "drones"), 0);
        assert_string_equal(json_string_value(json_object_get(d, "id")), "drone-000");
        assert_string_equal(json_string_value(json_object_get(d, "ui_state")), "idle");
        json_decref(j);
        /* the last page, descending */
        q.desc = true;
        q.offset = 200;
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(json_array_size(json_object_get(j, "drones")), 50);
        d = json_array_get(json_object_get(j, "drones"), 49);
        assert_string_equal(json_string_value(json_object_get(d, "id")), "drone-000");
        json_decref(j);
        /* filters combine */
        q = (struct drone_query) { .search = "DRONE-2", .version = "2.0", .group = "odd", .state = "", .limit = 100,
                                   .now = now, .silent_after = 300 };
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(num(j, "total"), 25);   /* 201, 203, … 249 */
        json_decref(j);
        /* sort by last check-in: the oldest first */
        q = (struct drone_query) { .search = "", .version = "", .group = "", .state = "", .sort = DRONE_SORT_LAST_SEEN,
                                   .limit = 1, .now = now, .silent_after = 300 };
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        d = json_array_get(json_object_get(j, "drones"), 0);
        assert_string_equal(json_string_value(json_object_get(d, "id")), "drone-249");
        json_decref(j);
        /* a state filter, with the silence limit moving drones into "silent" */
        q = (struct drone_query) { .search = "", .version = "", .group = "", .state = "silent", .limit = 10, .now = now,
                                   .silent_after = 100 };
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(num(j, "total"), 150);   /* last seen 100..249 s ago */
        json_decref(j);
        /* a hostile search term is only a term */
        q = (struct drone_query) { .search = "%' OR 1=1 --", .version = "", .group = "", .state = "", .limit = 10,
                                   .now = now, .silent_after = 100 };
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(num(j, "total"), 0);
        json_decref(j);
        /* a tag */
        assert_int_equal(store_drone_tag(f->s, "drone-007", "lab", true), 0);
        assert_int_equal(store_drone_tag(f->s, "drone-100", "lab", true), 0);
        assert_int_equal(store_drone_tag(f->s, "drone-101", "field", true), 0);
        q = (struct drone_query) { .search = "", .version = "", .group = "", .state = "", .tag = "lab", .limit = 10,
                                   .now = now, .silent_after = 300 };
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(num(j, "total"), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "drones"), 1), "id")),
                            "drone-100");
        json_decref(j);
        /* a drift kind: the drones the drift report names for it (here: silent after 100 s) */
        q = (struct drone_query) { .search = "", .version = "", .group = "", .state = "", .drift = "silent", .limit = 10,
                                   .now = now, .silent_after = 100 };
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(num(j, "total"), 149);   /* last seen 101..249 s ago: more than 100 s */
        json_decref(j);
        q.drift = "audit";   /* every drone passed the prod profile */
        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
        assert_int_equal(num(j, "total"), 0);
        json_decref(j);
        q.drift = NULL;
        q.sort = _DRONE_SORT_MAX;
        assert_int_equal(store_drones_page(f->s, &q, &j), -EINVAL);
        /* facets */
        assert_int_equal(store_drone_facets(f->s, &j), 0);
        assert_int_equal(json_array_size(json_object_get(j, "versions")), 2);
        assert_string_equal(json_string_value(json_array_get(json_object_get(j, "groups"), 0)), "even");
        assert_int_equal(json_array_size(json_object_get(j, "tags")), 2);
        assert_string_equal(json_string_value(json_array_get(json_object_get(j, "tags"), 0)), "field");
        json_decref(j);
}

/* The drones of one drift kind by the drones table's filter, as "a b c " (id order). */
static void filtered(store *s, const char *kind, int64_t now, char *out, size_t cap) {
        struct drone_query q = { .search = "", .version = "", .group = "", .state = "", .tag = "", .drift = kind,
                                 .limit = 500, .now = now, .silent_after = 300 };
        json_t *j = NULL, *d;
        size_t i, o = 0;

        assert_int_equal(store_drones_page(s, &q, &j), 0);
        out[0] = '\0';
        json_array_foreach(json_object_get(j, "drones"), i, d)
                o += (size_t) snprintf(out + o, cap - o, "%s ", json_string_value(json_object_get(d, "id")));
        assert_int_equal(num(j, "total"), (json_int_t) json_array_size(json_object_get(j, "drones")));
        json_decref(j);
}

/* The same from the drift report (drift_classify() over every drone). */
static void reported(json_t *report, const char *kind, char *out, size_t cap) {
        json_t *d, *k;
        size_t i, x, o = 0;

        out[0] = '\0';
        json_array_foreach(json_object_get(report, "drones"), i, d)
                json_array_foreach(json_object_get(d, "kinds"), x, k)
                        if (streq(json_string_value(k), kind))
                                o += (size_t) snprintf(out + o, cap - o, "%s ", json_string_value(json_object_get(d, "id")));
}

/* The dashboard's SQL form of the drift rules picks exactly the drones drift_classify() names, kind by kind. */
static void test_drift_filter_is_the_drift_report(void **state) {
        struct fixture *f = *state;
        int64_t now = (int64_t) time(NULL), r1, r2, rid;
        struct release rel = { .version = "2.0", .compatible = "x", .size = 1, .path = "/p" };
        static const char *const kinds[] = { "release", "audit", "secureboot", "silent" };
        struct rollout_spec spec;
        static const char req[] = "{\"release\": 2, \"target\": \"group:held\"}";
        char a[4096], b[4096];
        json_t *report = NULL, *sum = NULL;

        snprintf(rel.sha256, sizeof(rel.sha256), "b1");
        assert_int_equal(store_release_add(f->s, &rel, "", "", &r1), 0);
        snprintf(rel.version, sizeof(rel.version), "3.0");
        snprintf(rel.sha256, sizeof(rel.sha256), "b2");
        assert_int_equal(store_release_add(f->s, &rel, "", "", &r2), 0);
        assert_int_equal(r2, 2);
        assert_int_equal(store_assign(f->s, "group:g", r1), 0);           /* 2.0 for group g */
        assert_int_equal(store_assign(f->s, "drone:g-override", r2), 0);  /* 3.0 for one of them */

        add_drone(f->s, "g-on-2.0", "g", now);
        checkin(f->s, "g-on-2.0", "2.0", now, 0);
        add_drone(f->s, "g-on-1.0", "g", now);                            /* release drift */
        checkin(f->s, "g-on-1.0", "1.0", now, 0);
        add_drone(f->s, "g-override", "g", now);                          /* runs 2.0, assigned 3.0 */
        checkin(f->s, "g-override", "2.0", now, 0);
        add_drone(f->s, "n-none", "n", now);                              /* no assignment: never release drift */
        checkin(f->s, "n-none", "0.1", now, 0);
        add_drone(f->s, "a-fail", "n", now);
        checkin(f->s, "a-fail", "1.0", now, 2);
        add_drone(f->s, "a-dev", "n", now);
        checkin_full(f->s, "a-dev", "1.0", now, 0, "dev", "deployed");
        add_drone(f->s, "a-none", "n", now);
        checkin_full(f->s, "a-none", "1.0", now, -1, "", NULL);           /* no audit, no Secure Boot status */
        add_drone(f->s, "s-setup", "n", now);
        checkin_full(f->s, "s-setup", "1.0", now, 0, "prod", "setup");
        add_drone(f->s, "s-foreign", "n", now);
        checkin_full(f->s, "s-foreign", "1.0", now, 0, "prod", "foreign");
        add_drone(f->s, "z-silent", "n", now);
        checkin(f->s, "z-silent", "1.0", now - 301, 0);
        add_drone(f->s, "z-edge", "n", now);                              /* exactly at the limit: not silent */
        checkin(f->s, "z-edge", "1.0", now - 300, 0);
        add_drone(f->s, "z-never", "n", now);
        add_drone(f->s, "z-revoked", "g", now);                           /* revoked: in no drift */
        checkin_full(f->s, "z-revoked", "0.9", now - 1000, 3, "dev", "setup");
        assert_int_equal(store_drone_revoke(f->s, "z-revoked"), 0);
        /* held by a running rollout (not handed yet): not release drift though it runs 1.0 of 2.0 */
        add_drone(f->s, "h-held", "held", now);
        checkin(f->s, "h-held", "1.0", now, 0);
        assert_int_equal(store_assign(f->s, "group:held", r1), 0);
        assert_int_equal(rollout_spec_parse(req, strlen(req), &spec), 0);
        assert_int_equal(store_rollout_create(f->s, &spec, req, "alice", now, &rid), 0);
        assert_int_equal(store_rollout_action(f->s, rid, ROLLOUT_START, &(struct rollout_action_args) { .operator_name = "alice" },
                                              now), 0);

        assert_int_equal(store_drift_json(f->s, now, 300, &report), 0);
        assert_int_equal(store_fleet_summary(f->s, now, 300, &sum), 0);
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                filtered(f->s, kinds[i], now, a, sizeof(a));
                reported(report, kinds[i], b, sizeof(b));
                assert_string_equal(a, b);
                assert_int_equal(num(json_object_get(sum, "drift"), kinds[i]),
                                 num(json_object_get(report, "counts"), kinds[i]));
        }
        /* and the sets are what the rules say */
        filtered(f->s, "release", now, a, sizeof(a));
        assert_string_equal(a, "g-on-1.0 g-override ");
        filtered(f->s, "audit", now, a, sizeof(a));
        assert_string_equal(a, "a-dev a-fail a-none z-never ");
        filtered(f->s, "secureboot", now, a, sizeof(a));
        assert_string_equal(a, "a-none s-foreign s-setup z-never ");
        filtered(f->s, "silent", now, a, sizeof(a));
        assert_string_equal(a, "z-never z-silent ");
        filtered(f->s, "nonsense", now, a, sizeof(a));
        assert_string_equal(a, "");
        json_decref(report);
        json_decref(sum);
}

/* A page in the second half is read from the far end: the same rows, in the same order. */
static void test_pages_from_either_end(void **state) {
        struct fixture *f = *state;
        int64_t now = (int64_t) time(NULL);
        char id[32];
        json_t *all = NULL, *j = NULL;

        for (int i = 0; i < 101; i++) {
                snprintf(id, sizeof(id), "p-%03d", (i * 37) % 101);
                add_drone(f->s, id, i % 3 ? "x" : "y", now);
                checkin(f->s, id, i % 4 ? "1.0" : "2.0", now - (i % 7) * 10, 0);   /* ties in time and version */
        }
        for (int sort = 0; sort < _DRONE_SORT_MAX; sort++)
                for (int desc = 0; desc < 2; desc++) {
                        struct drone_query q = { .search = "", .version = "", .group = "", .state = "", .sort = sort,
                                                 .desc = desc, .limit = 500, .now = now, .silent_after = 300 };
                        assert_int_equal(store_drones_page(f->s, &q, &all), 0);
                        assert_int_equal(json_array_size(json_object_get(all, "drones")), 101);
                        for (uint32_t off = 0; off <= 105; off += 7)
                                for (uint32_t lim = 1; lim <= 30; lim += 9) {
                                        q.offset = off;
                                        q.limit = lim;
                                        assert_int_equal(store_drones_page(f->s, &q, &j), 0);
                                        assert_int_equal(num(j, "total"), 101);
                                        json_t *got = json_object_get(j, "drones");
                                        assert_int_equal(json_array_size(got), off >= 101 ? 0 : MIN(lim, 101 - off));
                                        for (size_t k = 0; k < json_array_size(got); k++)
                                                assert_string_equal(
                                                        json_string_value(json_object_get(json_array_get(got, k), "id")),
                                                        json_string_value(json_object_get(
                                                                json_array_get(json_object_get(all, "drones"), off + k), "id")));
                                        json_decref(j);
                                }
                        json_decref(all);
                }
}

struct changes {
        char log[1024];
};

static int on_change(int64_t t, const char *drone, const char *version, void *userdata) {
        struct changes *c = userdata;
        size_t n = strlen(c->log);
        snprintf(c->log + n, sizeof(c->log) - n, "%lld %s %s;", (long long) t, drone, version);
        return 0;
}

static void test_version_changes(void **state) {
        struct fixture *f = *state;
        struct changes c = { "" };

        add_drone(f->s, "a", "g", 100);
        add_drone(f->s, "b", "g", 100);
        add_drone(f->s, "r", "g", 100);
        report(f->s, "a", 1, FLEET_STATE_DOWNLOADING, "1.0", 1000);
        report(f->s, "a", 2, FLEET_STATE_INSTALLED, "1.0", 1010);
        report(f->s, "a", 3, FLEET_STATE_UPDATED, "2.0", 1100);
        report(f->s, "a", 4, FLEET_STATE_DOWNLOADING, "2.0", 1200);
        checkin(f->s, "a", "2.0", 1300, 0);
        checkin(f->s, "b", "1.0", 1400, 0);   /* never reported */
        report(f->s, "r", 1, FLEET_STATE_UPDATED, "9.0", 1000);
        assert_int_equal(store_drone_revoke(f->s, "r"), 0);
        assert_int_equal(store_version_changes(f->s, on_change, &c), 0);
        assert_string_equal(c.log, "1000 a 1.0;1100 a 2.0;1300 a 2.0;1400 b 1.0;");
}

static void test_action_log_and_identity(void **state) {
        struct fixture *f = *state;
        struct drone_identity id;
        json_t *j = NULL, *a;
        int64_t now = (int64_t) time(NULL);

        for (int i = 0; i < 5; i++)
                assert_int_equal(store_action_add(f->s, &(struct operator_action) {
                                         .time = now + i, .operator_name = "alice", .serial = "1a2b", .method = "POST",
                                         .path = "/ui/drone/revoke", .target = i % 2 ? "drone:x" : "drone:y",
                                         .detail = hostile, .status = i == 4 ? 403 : 303 }),
                                 0);
        assert_int_equal(store_actions_json(f->s, NULL, 2, 0, &j), 0);
        assert_int_equal(num(j, "total"), 5);
        assert_int_equal(json_array_size(json_object_get(j, "actions")), 2);
        a = json_array_get(json_object_get(j, "actions"), 0);
        assert_int_equal(num(a, "time"), now + 4);   /* newest first */
        assert_int_equal(num(a, "status"), 403);
        assert_string_equal(json_string_value(json_object_get(a, "operator")), "alice");
        assert_string_equal(json_string_value(json_object_get(a, "serial")), "1a2b");
        assert_string_equal(json_string_value(json_object_get(a, "detail")), hostile);
        json_decref(j);
        assert_int_equal(store_actions_json(f->s, "drone:x", 10, 0, &j), 0);
        assert_int_equal(num(j, "total"), 2);
        json_decref(j);
        assert_int_equal(store_actions_json(f->s, NULL, 10, 4, &j), 0);
        assert_int_equal(json_array_size(json_object_get(j, "actions")), 1);
        json_decref(j);

        /* identity: the expiry is recorded only for the certificate on record */
        uint8_t hash[32] = { 7 };
        assert_int_equal(store_drone_add(f->s, "d", "g", hash, now, now + 60), 0);
        assert_int_equal(store_drone_identity(f->s, "d", &id), 0);
        assert_int_equal(id.token_expires, now + 60);
        assert_string_equal(id.cert_serial, "");
        assert_int_equal(store_drone_enroll(f->s, "d", hash, now, "abcd"), 0);
        assert_int_equal(store_drone_cert_expiry(f->s, "d", "ffff", now + 10), 0);
        assert_int_equal(store_drone_identity(f->s, "d", &id), 0);
        assert_int_equal(id.cert_not_after, 0);
        assert_int_equal(store_drone_cert_expiry(f->s, "d", "abcd", now + 86400), 0);
        assert_int_equal(store_drone_identity(f->s, "d", &id), 0);
        assert_string_equal(id.cert_serial, "abcd");
        assert_int_equal(id.cert_not_after, now + 86400);
        assert_int_equal(id.enrolled, now);
        assert_int_equal(id.token_expires, 0);
        assert_int_equal(store_drone_identity(f->s, "nobody", &id), -ENOENT);
}

static void test_release_details(void **state) {
        struct fixture *f = *state;
        struct release rel = { .size = 10 };
        int64_t rid;
        json_t *j = NULL, *r;

        snprintf(rel.version, sizeof(rel.version), "2.0");
        snprintf(rel.compatible, sizeof(rel.compatible), "drone-x1");
        snprintf(rel.sha256, sizeof(rel.sha256), "%064d", 1);
        snprintf(rel.path, sizeof(rel.path), "/nonexistent");
        assert_int_equal(store_release_add(f->s, &rel, "CN=fleet sign", "00", &rid), 0);
        assert_int_equal(store_releases_json(f->s, &j), 0);
        assert_null(json_object_get(json_array_get(j, 0), "payloads"));   /* not recorded */
        json_decref(j);
        assert_int_equal(store_release_details(f->s, rid, 1000, 2000, "[{\"name\":\"rootfs\",\"type\":\"raw\",\"size\":9}]"), 0);
        assert_int_equal(store_release_details(f->s, rid + 1, 1, 2, "[]"), -ENOENT);
        assert_int_equal(store_releases_json(f->s, &j), 0);
        r = json_array_get(j, 0);
        assert_int_equal(num(r, "built"), 1000);
        assert_int_equal(num(r, "expires"), 2000);
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "payloads"), 0), "name")),
                            "rootfs");
        json_decref(j);
        /* a row that does not hold an array is not shown as payloads */
        assert_int_equal(store_release_details(f->s, rid, 1000, 2000, "{\"x\":1}"), 0);
        assert_int_equal(store_releases_json(f->s, &j), 0);
        assert_null(json_object_get(json_array_get(j, 0), "payloads"));
        json_decref(j);
}

#define BOTH(f)                                                                                              \
        { "sqlite: " #f, f, setup, teardown, NULL }, { "postgresql: " #f, f, setup_pg, teardown, NULL }

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_values_are_escaped),
                cmocka_unit_test(test_numbers_and_precision),
                cmocka_unit_test(test_errors_are_sticky),
                cmocka_unit_test(test_formatting_helpers),
                cmocka_unit_test(test_csrf),
                BOTH(test_fleet_summary_and_states),
                BOTH(test_drone_pages),
                BOTH(test_drift_filter_is_the_drift_report),
                BOTH(test_pages_from_either_end),
                BOTH(test_version_changes),
                BOTH(test_action_log_and_identity),
                BOTH(test_release_details),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
