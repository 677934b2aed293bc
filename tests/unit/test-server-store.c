/* test-server-store.c: the store on both backends (SQLite, PostgreSQL): schema, drones, reports, releases, threads, election, copy, reconnect. */
#include "tests.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "macro.h"
#include "store-rollout.h"
#include "store.h"

/*
 * Every test that is not about one backend's files runs twice: on a fresh SQLite file and on a fresh
 * PostgreSQL database. The PostgreSQL server comes from tests/unit/with-postgres.py (meson runs this
 * test through it), which sets RINGIL_TEST_PG to a URL of its `postgres` database; each test creates
 * its own database there.
 */
struct backend {
        bool pg;
        char *dir;   /* SQLite: the test's directory */
        char *db;    /* the store's `db`: a path or a URL */
};

static const char *pg_base(void) {
        const char *u = getenv("RINGIL_TEST_PG");
        if (!u || !*u)
                fail_msg("RINGIL_TEST_PG is not set: run this test through tests/unit/with-postgres.py");
        return u;
}

/* One statement on the test server's database `db` ("postgres" for CREATE DATABASE). */
static void pg_admin(const char *db, const char *sql) {
        char url[512], *slash;
        PGconn *c;
        PGresult *res;

        snprintf(url, sizeof(url), "%s", pg_base());
        slash = strrchr(url, '/');
        assert_non_null(slash);
        snprintf(slash + 1, sizeof(url) - (size_t) (slash + 1 - url), "%s", db);
        c = PQconnectdb(url);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
                fail_msg("%s: %s", sql, PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
}

static int setup(void **state, bool pg) {
        static unsigned n;
        struct backend *b = calloc(1, sizeof(*b));

        assert_non_null(b);
        b->pg = pg;
        if (pg) {
                char name[64], sql[128];
                const char *slash;
                snprintf(name, sizeof(name), "unit%d_%u", (int) getpid(), ++n);
                snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
                pg_admin("postgres", sql);
                slash = strrchr(pg_base(), '/');
                assert_non_null(slash);
                assert_true(asprintf(&b->db, "%.*s/%s", (int) (slash - pg_base()), pg_base(), name) > 0);
        } else {
                b->dir = test_tmpdir();
                b->db = test_path(b->dir, "fleet.db");
        }
        *state = b;
        return 0;
}

static int setup_sqlite(void **state) {
        return setup(state, false);
}

static int setup_pg(void **state) {
        return setup(state, true);
}

static int teardown(void **state) {
        struct backend *b = *state;

        if (b->dir)
                test_tmpdir_done(b->dir);
        free(b->db);
        free(b);
        return 0;
}

/* The database name of a PostgreSQL backend's URL. */
static const char *pg_dbname(const struct backend *b) {
        return strrchr(b->db, '/') + 1;
}

static store *open_store(const struct backend *b, unsigned n) {
        store *s = NULL;
        int r = store_open(b->db, n, &s);
        if (r < 0)
                fail_msg("store_open(%s): %d", b->db, r);
        return s;
}

/* ---- SQLite's own: the database the server kept before it had schema versions ---- */

static const char old_schema[] =
        "CREATE TABLE drones(id TEXT PRIMARY KEY, grp TEXT NOT NULL, status INTEGER NOT NULL,"
        " token_hash BLOB, token_expires INTEGER, cert_serial TEXT, created INTEGER NOT NULL,"
        " last_seen INTEGER, version TEXT, slot TEXT, boot TEXT, state TEXT, release INTEGER,"
        " target TEXT, error TEXT, audit_pass INTEGER, audit_fail INTEGER, last_seq INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE releases(id INTEGER PRIMARY KEY, version TEXT NOT NULL, compatible TEXT NOT NULL,"
        " size INTEGER NOT NULL, sha256 TEXT NOT NULL UNIQUE, path TEXT NOT NULL, signer TEXT, manifest_digest TEXT,"
        " created INTEGER NOT NULL);"
        "CREATE TABLE assignments(target TEXT PRIMARY KEY, release INTEGER NOT NULL REFERENCES releases(id), created INTEGER);"
        "CREATE TABLE events(id INTEGER PRIMARY KEY, drone TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL,"
        " state TEXT NOT NULL, release INTEGER, version TEXT, target TEXT, error TEXT, UNIQUE(drone, seq));"
        "PRAGMA journal_mode=WAL;"
        "INSERT INTO drones(id, grp, status, created, last_seq, version) VALUES ('old-1', 'g', 1, 1000, 3, '1.0');"
        "INSERT INTO events(drone, seq, time, state) VALUES ('old-1', 3, 1001, 'updated');"
        "INSERT INTO releases(id, version, compatible, size, sha256, path, created) VALUES (7, '2.0', 'x', 10, 'ab', '/p', 5);"
        "INSERT INTO assignments(target, release) VALUES ('group:g', 7);";

static void exec_sql(const char *path, const char *sql) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

static void test_old_database_migrates(void **state) {
        struct backend *b = *state;
        struct drone_auth a;
        json_t *j = NULL;
        int64_t rid = 0;
        store *s;

        exec_sql(b->db, old_schema);
        s = open_store(b, 2);
        assert_int_equal(store_schema_version(s), 7);   /* 3 rollouts, 4 compliance, 5 dashboard, 6 bytes fetched/reused, 7 mirrors */
        /* everything kept */
        assert_int_equal(store_drone_auth(s, "old-1", &a), 0);
        assert_true(a.exists);
        assert_string_equal(a.group, "g");
        assert_int_equal(store_drone_json(s, "old-1", &j), 0);
        assert_string_equal(json_string_value(json_object_get(j, "version")), "1.0");
        assert_int_equal(json_array_size(json_object_get(j, "history")), 1);
        assert_int_equal(json_integer_value(json_object_get(j, "created")), 1000);
        json_decref(j);
        assert_int_equal(store_assignment_for(s, "old-1", "g", &rid), 0);
        assert_int_equal(rid, 7);
        /* a release from before the metadata hash: known as not known */
        assert_true(a.assigned);
        assert_int_equal(a.release.meta_size, 0);
        assert_string_equal(a.release.mirrors, "");
        store_close(s);
        /* opening again is a no-op */
        s = open_store(b, 1);
        assert_int_equal(store_schema_version(s), 7);   /* 3 rollouts, 4 compliance, 5 dashboard, 6 bytes fetched/reused, 7 mirrors */
        store_close(s);
}

/* ---- both backends ---- */

static void test_schema_and_reopen(void **state) {
        struct backend *b = *state;
        store *s = open_store(b, 1), *s2;

        assert_int_equal(store_schema_version(s), 7);   /* 3 rollouts, 4 compliance, 5 dashboard, 6 bytes fetched/reused, 7 mirrors */
        assert_string_equal(store_backend_name(s), b->pg ? "postgresql" : "sqlite");
        /* a second store on the same database (another replica, or a restart) finds the work done */
        s2 = open_store(b, 1);
        assert_int_equal(store_schema_version(s2), 7);
        store_close(s2);
        store_close(s);
}

static void test_newer_database_refused(void **state) {
        struct backend *b = *state;
        store *s = NULL;

        if (b->pg) {
                store_close(open_store(b, 1));
                pg_admin(pg_dbname(b), "UPDATE ringil_schema SET version = 99");
        } else
                exec_sql(b->db, "CREATE TABLE drones(id TEXT); PRAGMA user_version = 99;");
        assert_int_equal(store_open(b->db, 1, &s), -EPROTO);
        assert_null(s);
        assert_true(strstr(ringil_detail(), "newer than this server") != NULL);
        assert_int_equal(store_open("fleet.db", 1, &s), -EPROTONOSUPPORT);
        assert_int_equal(store_open("mysql://x/y", 1, &s), -EPROTONOSUPPORT);
}

/* created is when the drone was registered, whatever the token's lifetime. */
static void test_created_time(void **state) {
        struct backend *b = *state;
        uint8_t hash[32] = { 1 }, other[32] = { 2 };
        int64_t now = (int64_t) time(NULL);
        json_t *j = NULL;
        store *s = open_store(b, 1);

        assert_int_equal(store_drone_add(s, "d-1", "default", hash, now, now + 3600), 0);
        assert_int_equal(store_drone_add(s, "d-1", "default", hash, now, now + 3600), -EEXIST);
        assert_int_equal(store_drone_json(s, "d-1", &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "created")), now);
        assert_int_equal(json_integer_value(json_object_get(j, "enrolled")), 0);
        json_decref(j);
        /* a wrong token, then the right one; it works once */
        assert_int_equal(store_drone_enroll(s, "d-1", other, now + 5, "ab12"), -EACCES);
        assert_int_equal(store_drone_enroll(s, "nobody", hash, now + 5, "ab12"), -ENOENT);
        assert_int_equal(store_drone_enroll(s, "d-1", hash, now + 5, "ab12"), 0);
        assert_int_equal(store_drone_enroll(s, "d-1", hash, now + 6, "ab12"), -EACCES);
        assert_int_equal(store_drone_json(s, "d-1", &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "enrolled")), now + 5);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "active");
        json_decref(j);
        assert_int_equal(store_drone_json(s, "nobody", &j), -ENOENT);
        store_close(s);
}

static void test_tokens(void **state) {
        struct backend *b = *state;
        uint8_t hash[32] = { 3 }, again[32] = { 4 }, late[32] = { 5 };
        int64_t now = (int64_t) time(NULL);
        struct drone_auth a;
        store *s = open_store(b, 2);

        assert_int_equal(store_drone_add(s, "d-t", "g", hash, now, now + 60), 0);
        /* a re-issued token replaces the first */
        assert_int_equal(store_drone_reissue(s, "d-t", again, now + 60), 0);
        assert_int_equal(store_drone_enroll(s, "d-t", hash, now, "01"), -EACCES);
        assert_int_equal(store_drone_enroll(s, "d-t", again, now, "01"), 0);
        assert_int_equal(store_drone_auth(s, "d-t", &a), 0);
        assert_true(a.exists);
        assert_int_equal(a.status, DRONE_ACTIVE);
        assert_string_equal(a.cert_serial, "01");
        assert_int_equal(store_drone_reissue(s, "nobody", again, now), -ENOENT);
        /* expired tokens are cleared by the sweep, live ones stay */
        assert_int_equal(store_drone_add(s, "d-x", "g", late, now - 100, now - 10), 0);
        assert_int_equal(store_drone_add(s, "d-y", "g", late, now, now + 100), 0);
        assert_int_equal(store_tokens_expire(s, now), 1);
        assert_int_equal(store_tokens_expire(s, now), 0);
        assert_int_equal(store_drone_enroll(s, "d-y", late, now, "02"), 0);
        /* revocation is final */
        assert_int_equal(store_drone_revoke(s, "d-t"), 0);
        assert_int_equal(store_drone_revoke(s, "nobody"), -ENOENT);
        assert_int_equal(store_drone_reissue(s, "d-t", again, now + 60), -RINGIL_EREFUSED);
        assert_int_equal(store_drone_auth(s, "d-t", &a), 0);
        assert_int_equal(a.status, DRONE_REVOKED);
        assert_int_equal(store_drone_auth(s, "nobody", &a), 0);
        assert_false(a.exists);
        store_close(s);
}

static void test_reports(void **state) {
        struct backend *b = *state;
        uint8_t hash[32] = { 6 };
        int64_t now = (int64_t) time(NULL);
        struct fleet_status st = { .state = FLEET_STATE_DOWNLOADING, .release = 4, .version = "1.0", .target = "2.0" };
        json_t *j = NULL, *h;
        store *s = open_store(b, 1);

        assert_int_equal(store_drone_add(s, "d-r", "g", hash, now, now + 60), 0);
        st.seq = 1;
        assert_int_equal(store_report(s, "d-r", &st, now), 1);
        assert_int_equal(store_report(s, "d-r", &st, now), 0);   /* the retry of a lost acknowledgement */
        st.seq = 2;
        st.state = FLEET_STATE_UPDATED;
        snprintf(st.version, sizeof(st.version), "2.0");
        assert_int_equal(store_report(s, "d-r", &st, now + 1), 1);
        st.seq = 1;
        assert_int_equal(store_report(s, "d-r", &st, now + 2), -ESTALE);
        assert_int_equal(store_report(s, "nobody", &st, now), -ENOENT);
        assert_int_equal(store_drone_json(s, "d-r", &j), 0);
        assert_string_equal(json_string_value(json_object_get(j, "state")), "updated");
        assert_string_equal(json_string_value(json_object_get(j, "version")), "2.0");
        h = json_object_get(j, "history");
        assert_int_equal(json_array_size(h), 2);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 0), "seq")), 2);
        json_decref(j);
        /* a heartbeat with and without audit counts */
        st = (struct fleet_status) { .version = "2.0", .slot = "b", .boot = "good",
                                     .audit = { .present = true, .pass = 9, .fail = 1 } };
        assert_int_equal(store_checkin(s, "d-r", &st, now + 3), 0);
        assert_int_equal(store_drone_json(s, "d-r", &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "last_seen")), now + 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "audit"), "fail")), 1);
        assert_string_equal(json_string_value(json_object_get(j, "slot")), "b");
        json_decref(j);
        /* without counts (the report named by its digest only): the stored ones stay */
        st.audit.present = false;
        assert_int_equal(store_checkin(s, "d-r", &st, now + 4), 0);
        assert_int_equal(store_drone_json(s, "d-r", &j), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "audit"), "fail")), 1);
        json_decref(j);
        assert_int_equal(store_state_counts(s, &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "updated")), 1);
        json_decref(j);
        store_close(s);
}

static void test_assignment_order(void **state) {
        struct backend *b = *state;
        struct release rel = { .version = "1", .compatible = "x", .size = 1, .path = "/p" };
        int64_t r1, r2, r3, got = -1;
        store *s = open_store(b, 3);

        assert_int_equal(store_assignment_for(s, "d", "g", &got), 0);
        assert_int_equal(got, 0);
        snprintf(rel.sha256, sizeof(rel.sha256), "a1");
        assert_int_equal(store_release_add(s, &rel, "", "", &r1), 0);
        snprintf(rel.sha256, sizeof(rel.sha256), "a2");
        assert_int_equal(store_release_add(s, &rel, "", "", &r2), 0);
        snprintf(rel.sha256, sizeof(rel.sha256), "a3");
        assert_int_equal(store_release_add(s, &rel, "", "", &r3), 0);
        assert_true(r1 > 0 && r2 > r1 && r3 > r2);
        assert_int_equal(store_release_add(s, &rel, "", "", &got), -EEXIST);   /* the same bundle twice */
        assert_int_equal(store_assign(s, "*", r1), 0);
        assert_int_equal(store_assignment_for(s, "d", "g", &got), 0);
        assert_int_equal(got, r1);
        assert_int_equal(store_assign(s, "group:g", r2), 0);
        assert_int_equal(store_assignment_for(s, "d", "g", &got), 0);
        assert_int_equal(got, r2);
        assert_int_equal(store_assignment_for(s, "d", "other", &got), 0);
        assert_int_equal(got, r1);
        assert_int_equal(store_assign(s, "drone:d", r3), 0);
        assert_int_equal(store_assignment_for(s, "d", "g", &got), 0);
        assert_int_equal(got, r3);
        assert_int_equal(store_assign(s, "drone:d", 999), -ENOENT);
        store_close(s);
}

static void test_release_mirrors(void **state) {
        struct backend *b = *state;
        struct release rel = { .version = "2.0", .compatible = "x", .size = 4096, .path = "",
                               .sha256 = "c0ffee", .meta_size = 1000, .meta_sha256 = "beef",
                               .mirrors = "https://a.example/x.bundle https://b.example/x.bundle" }, got;
        uint8_t hash[32] = { 7 };
        struct drone_auth a;
        json_t *j = NULL, *e;
        int64_t id = 0, now = (int64_t) time(NULL);
        store *s = open_store(b, 1);

        assert_int_equal(store_release_add(s, &rel, "CN=signer", "00", &id), 0);
        assert_int_equal(store_release_get(s, id, &got), 0);
        assert_string_equal(got.mirrors, rel.mirrors);
        assert_int_equal(got.meta_size, 1000);
        assert_string_equal(got.meta_sha256, "beef");
        assert_string_equal(got.path, "");
        assert_int_equal(store_release_get(s, id + 100, &got), -ENOENT);
        /* the drone's record carries them, read with its assignment */
        assert_int_equal(store_drone_add(s, "d-m", "g", hash, now, now + 60), 0);
        assert_int_equal(store_assign(s, "group:g", id), 0);
        assert_int_equal(store_drone_auth(s, "d-m", &a), 0);
        assert_true(a.assigned);
        assert_int_equal(a.release.id, id);
        assert_string_equal(a.release.mirrors, rel.mirrors);
        assert_int_equal(a.release.meta_size, 1000);
        /* replaced, and the list view shows them */
        assert_int_equal(store_release_set_mirrors(s, id, "https://c.example/y", 0, ""), 0);
        assert_int_equal(store_release_set_mirrors(s, id + 100, "", 0, ""), -ENOENT);
        assert_int_equal(store_releases_json(s, &j), 0);
        e = json_array_get(j, 0);
        assert_int_equal(json_array_size(json_object_get(e, "mirrors")), 1);
        assert_string_equal(json_string_value(json_array_get(json_object_get(e, "mirrors"), 0)), "https://c.example/y");
        assert_false(json_is_true(json_object_get(e, "stored")));
        assert_string_equal(json_string_value(json_object_get(e, "assigned")), "group:g");
        json_decref(j);
        store_close(s);
}

/* ---- threads: each worker its own connection (PostgreSQL) or reader (SQLite) ---- */

#define THREADS 6
#define ROUNDS 40

struct worker {
        store *s;
        int id;
        int failures;
};

static void *worker_main(void *userdata) {
        struct worker *w = userdata;
        char name[32];
        struct drone_auth a;
        int64_t now = (int64_t) time(NULL);

        snprintf(name, sizeof(name), "d-%d", w->id);
        for (int i = 1; i <= ROUNDS; i++) {
                struct fleet_status st = { .seq = (uint64_t) i, .state = FLEET_STATE_DOWNLOADING, .version = "1.0" };
                if (store_checkin(w->s, name, &st, now + i) < 0 || store_report(w->s, name, &st, now + i) != 1 ||
                    store_drone_auth(w->s, name, &a) < 0 || !a.exists)
                        w->failures++;
        }
        return NULL;
}

static void test_threads(void **state) {
        struct backend *b = *state;
        struct worker w[THREADS];
        pthread_t t[THREADS];
        uint8_t hash[32] = { 8 };
        int64_t now = (int64_t) time(NULL);
        json_t *j = NULL;
        store *s = open_store(b, THREADS);

        for (int i = 0; i < THREADS; i++) {
                char name[32];
                snprintf(name, sizeof(name), "d-%d", i);
                assert_int_equal(store_drone_add(s, name, "g", hash, now, now + 60), 0);
                w[i] = (struct worker) { .s = s, .id = i };
        }
        for (int i = 0; i < THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
        for (int i = 0; i < THREADS; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(w[i].failures, 0);
        }
        for (int i = 0; i < THREADS; i++) {
                char name[32];
                snprintf(name, sizeof(name), "d-%d", i);
                assert_int_equal(store_drone_json(s, name, &j), 0);
                assert_int_equal(json_array_size(json_object_get(j, "history")), ROUNDS);
                json_decref(j);
        }
        store_close(s);
}

/* Two replicas take the reports of one drone at once (a retry that went to the other one): each seq
 * is stored once, nothing older overwrites anything newer. */
struct racer {
        store *s;
        int stored[ROUNDS + 1];
        int failures;
};

static void *racer_main(void *userdata) {
        struct racer *x = userdata;

        for (int i = 1; i <= ROUNDS; i++) {
                struct fleet_status st = { .seq = (uint64_t) i, .state = FLEET_STATE_DOWNLOADING, .release = i };
                int r = store_report(x->s, "d-race", &st, 1000 + i);
                if (r == 1)
                        x->stored[i] = 1;
                else if (r != 0 && r != -ESTALE && r != -EBUSY)
                        x->failures++;
        }
        return NULL;
}

static void test_two_replicas_one_drone(void **state) {
        struct backend *b = *state;
        struct racer x[2] = { { .s = open_store(b, 2) }, { .s = open_store(b, 2) } };
        pthread_t t[2];
        uint8_t hash[32] = { 12 };
        json_t *j = NULL;
        int once = 0;

        assert_int_equal(store_drone_add(x[0].s, "d-race", "g", hash, 1, 100), 0);
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&t[i], NULL, racer_main, &x[i]), 0);
        for (int i = 0; i < 2; i++)
                pthread_join(t[i], NULL);
        assert_int_equal(x[0].failures + x[1].failures, 0);
        for (int i = 1; i <= ROUNDS; i++) {
                assert_false(x[0].stored[i] && x[1].stored[i]);
                once += x[0].stored[i] || x[1].stored[i];
        }
        assert_int_equal(store_drone_json(x[1].s, "d-race", &j), 0);
        assert_int_equal(json_array_size(json_object_get(j, "history")), MIN(once, 100));
        /* the drone's state is its newest report's */
        assert_int_equal(json_integer_value(json_object_get(j, "release")), ROUNDS);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "history"), 0), "seq")),
                         ROUNDS);
        json_decref(j);
        store_close(x[0].s);
        store_close(x[1].s);
}

/* ---- the scheduler's election ---- */

static void test_leader(void **state) {
        struct backend *b = *state;
        store *s1 = open_store(b, 1), *s2 = open_store(b, 1);
        bool l1 = false, l2 = false;
        json_t *j = NULL;

        assert_int_equal(store_leader_acquire(s1, "replica-1", &l1), 0);
        assert_int_equal(store_leader_acquire(s2, "replica-2", &l2), 0);
        if (!b->pg) {
                /* one SQLite server: always its own scheduler */
                assert_true(l1 && l2);
        } else {
                assert_true(l1);
                assert_false(l2);
                /* held across calls */
                assert_int_equal(store_leader_acquire(s1, "replica-1", &l1), 0);
                assert_true(l1);
                assert_int_equal(store_leader_note(s1, "replica-1", 100), 0);
                assert_int_equal(store_leader_note(s1, "replica-1", 105), 0);
                assert_int_equal(store_leader_json(s2, &j), 0);
                assert_string_equal(json_string_value(json_object_get(j, "holder")), "replica-1");
                assert_int_equal(json_integer_value(json_object_get(j, "since")), 100);
                assert_int_equal(json_integer_value(json_object_get(j, "seen")), 105);
                json_decref(j);
                /* the holder goes away: its session ends, the other takes over at its next call */
                store_close(s1);
                s1 = NULL;
                for (int i = 0; i < 50 && !l2; i++) {
                        assert_int_equal(store_leader_acquire(s2, "replica-2", &l2), 0);
                        if (!l2)
                                usleep(100 * 1000);
                }
                assert_true(l2);
                assert_int_equal(store_leader_note(s2, "replica-2", 110), 0);
                assert_int_equal(store_leader_json(s2, &j), 0);
                assert_string_equal(json_string_value(json_object_get(j, "holder")), "replica-2");
                assert_int_equal(json_integer_value(json_object_get(j, "since")), 110);
                json_decref(j);
                /* its session killed by the database: it is no longer the holder, then takes it again */
                pg_admin("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE "
                                     "'%(scheduler)'");
                assert_int_equal(store_leader_acquire(s2, "replica-2", &l2), -ENOTCONN);
                assert_false(l2);
                for (int i = 0; i < 50 && !l2; i++) {
                        (void) store_leader_acquire(s2, "replica-2", &l2);
                        if (!l2)
                                usleep(100 * 1000);
                }
                assert_true(l2);
        }
        store_close(s1);
        store_close(s2);
}

/* ---- PostgreSQL's own: sessions that break, a server that is not there ---- */

static void test_pg_reconnect(void **state) {
        struct backend *b = *state;
        uint8_t hash[32] = { 9 };
        int64_t now = (int64_t) time(NULL);
        struct fleet_status st = { .seq = 1, .state = FLEET_STATE_IDLE };
        struct drone_auth a;
        char sql[256];
        store *s = open_store(b, 1), *dead = NULL;
        json_t *j = NULL;

        assert_int_equal(store_drone_add(s, "d-c", "g", hash, now, now + 60), 0);
        /* every session of the database killed (a restart looks the same to a client): the next read
         * and the next transaction go through on new sessions */
        snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND "
                                   "pid <> pg_backend_pid()", pg_dbname(b));
        pg_admin("postgres", sql);
        assert_int_equal(store_drone_auth(s, "d-c", &a), 0);
        assert_true(a.exists);
        pg_admin("postgres", sql);
        assert_int_equal(store_report(s, "d-c", &st, now), 1);
        assert_int_equal(store_drone_json(s, "d-c", &j), 0);
        assert_int_equal(json_array_size(json_object_get(j, "history")), 1);
        json_decref(j);
        /* a server that is not there: -ENOTCONN at once, with libpq's reason */
        assert_int_equal(store_open("postgresql://ringil@127.0.0.1:1/none?connect_timeout=2", 1, &dead), -ENOTCONN);
        assert_null(dead);
        assert_true(strstr(ringil_detail(), "PostgreSQL") != NULL);
        store_close(s);
}

/* Kill, from a child process after 300 ms, the sessions of b's database that wait for a lock. */
static pid_t kill_lock_waiters_soon(const struct backend *b) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                char sql[300];
                PGconn *k;
                usleep(300 * 1000);
                snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND "
                                           "wait_event_type = 'Lock'", pg_dbname(b));
                k = PQconnectdb(b->db);
                PQclear(PQexec(k, sql));
                PQfinish(k);
                _exit(0);
        }
        return pid;
}

/* A transaction cut in the middle leaves nothing behind (the server rolls it back), and the caller
 * hears -ENOTCONN (the API answers 503). Cut here while it waits for a lock held from outside: a
 * report for its drone's row, an assignment for the writer order. */
static void test_pg_cut_transaction(void **state) {
        struct backend *b = *state;
        struct release rel = { .version = "1", .compatible = "x", .size = 1, .path = "/p", .sha256 = "ee" };
        uint8_t hash[32] = { 10 };
        int64_t now = (int64_t) time(NULL), rid = 0, got = -1;
        struct fleet_status st = { .seq = 5, .state = FLEET_STATE_FAILED, .error = "x" };
        json_t *j = NULL;
        store *s = open_store(b, 1);
        PGconn *hold;

        assert_int_equal(store_drone_add(s, "d-h", "g", hash, now, now + 60), 0);
        assert_int_equal(store_release_add(s, &rel, "", "", &rid), 0);
        hold = PQconnectdb(b->db);
        assert_int_equal(PQstatus(hold), CONNECTION_OK);

        /* the drone's row locked elsewhere: the report waits in its UPDATE and is killed there */
        PQclear(PQexec(hold, "BEGIN"));
        PQclear(PQexec(hold, "SELECT id FROM drones WHERE id = 'd-h' FOR UPDATE"));
        kill_lock_waiters_soon(b);
        assert_int_equal(store_report(s, "d-h", &st, now), -ENOTCONN);
        PQclear(PQexec(hold, "COMMIT"));
        while (wait(NULL) > 0)
                ;
        assert_int_equal(store_drone_json(s, "d-h", &j), 0);
        assert_int_equal(json_array_size(json_object_get(j, "history")), 0);
        assert_string_equal(json_string_value(json_object_get(j, "state")), "");
        json_decref(j);

        /* the writer order held elsewhere: the assignment waits for it and is killed */
        PQclear(PQexec(hold, "BEGIN"));
        PQclear(PQexec(hold, "SELECT pg_advisory_xact_lock(72667, 2)"));
        kill_lock_waiters_soon(b);
        assert_int_equal(store_assign(s, "*", rid), -ENOTCONN);
        PQclear(PQexec(hold, "COMMIT"));
        while (wait(NULL) > 0)
                ;
        assert_int_equal(store_assignment_for(s, "d-h", "g", &got), 0);
        assert_int_equal(got, 0);
        /* and the store goes on on new sessions */
        assert_int_equal(store_report(s, "d-h", &st, now), 1);
        assert_int_equal(store_assign(s, "*", rid), 0);
        PQfinish(hold);
        store_close(s);
}

/* ---- migrate: SQLite → PostgreSQL → SQLite ---- */

static void fill(store *s) {
        struct release rel = { .version = "1.0", .compatible = "x", .size = 10, .path = "/b/1", .sha256 = "aa",
                               .meta_size = 5, .meta_sha256 = "bb", .mirrors = "https://m.example/1" };
        uint8_t hash[32] = { 11 };
        int64_t id = 0, now = (int64_t) time(NULL);
        struct fleet_status st = { .state = FLEET_STATE_UPDATED, .version = "1.0" };

        assert_int_equal(store_release_add(s, &rel, "CN=s", "cc", &id), 0);
        snprintf(rel.sha256, sizeof(rel.sha256), "ab");
        assert_int_equal(store_release_add(s, &rel, "CN=s", "cd", &id), 0);
        assert_int_equal(store_assign(s, "*", id), 0);
        for (int i = 0; i < 5; i++) {
                char name[16];
                snprintf(name, sizeof(name), "m-%d", i);
                assert_int_equal(store_drone_add(s, name, i % 2 ? "odd" : "even", hash, now, now + 60), 0);
                for (int k = 1; k <= i; k++) {
                        st.seq = (uint64_t) k;
                        assert_int_equal(store_report(s, name, &st, now + k), 1);
                }
        }
        assert_int_equal(store_drone_enroll(s, "m-0", hash, now, "fe"), 0);
        /* rollouts, tags, windows, retries, compliance */
        {
                static const char req[] = "{\"release\": 2, \"target\": \"*\", \"groups\": [{\"count\": 1}, "
                                          "{\"rest\": true}]}";
                struct fleet_status cst = { .state = FLEET_STATE_IDLE, .version = "1.0", .tz = "UTC",
                                            .audit = { .present = true, .pass = 5, .fail = 0, .time = 1 } };
                struct rollout_checkin_result res;
                struct rollout_spec spec;
                struct drone_auth a;
                int64_t ro = 0;
                bool resend;

                assert_int_equal(store_drone_tag(s, "m-1", "north", true), 0);
                assert_int_equal(store_window_set(s, "group:odd", "02:00-04:00"), 0);
                assert_int_equal(store_drone_retry(s, "m-2", NULL), 0);
                assert_int_equal(store_compliance_update(s, "m-3", &cst, now, &resend), 0);
                assert_int_equal(rollout_spec_parse(req, strlen(req), &spec), 0);
                assert_int_equal(store_rollout_create(s, &spec, req, "alice", now, &ro), 0);
                rollout_spec_done(&spec);
                assert_int_equal(store_rollout_action(s, ro, ROLLOUT_START,
                                                      &(struct rollout_action_args) { .operator_name = "alice" }, now), 0);
                for (int i = 0; i < 5; i++) {
                        char name[16];
                        snprintf(name, sizeof(name), "m-%d", i);
                        assert_int_equal(store_drone_auth(s, name, &a), 0);
                        assert_int_equal(store_rollout_checkin(s, name, &a, &cst, now, &res), 0);
                }
        }
}

/* ---- rollouts on the store ---- */

/* A check-in's rollout part on store s, as the API runs it: the record, then the rollout's decision. */
static int rollout_checkin(store *s, const char *drone, const char *version, int64_t now,
                           struct rollout_checkin_result *ret) {
        struct fleet_status st = { .state = FLEET_STATE_IDLE };
        struct drone_auth a;
        int r = store_drone_auth(s, drone, &a);

        snprintf(st.version, sizeof(st.version), "%s", version);
        return r < 0 ? r : store_rollout_checkin(s, drone, &a, &st, now, ret);
}

struct hander {
        store *s;
        int64_t now;
        int handed, failures;
};

static void *hander_main(void *userdata) {
        struct hander *h = userdata;
        struct rollout_checkin_result res;

        for (int i = 0; i < 20; i++) {
                int r = rollout_checkin(h->s, "r-0", "1.0", h->now, &res);
                if (r < 0 && r != -EBUSY)
                        h->failures++;
                else if (r >= 0)
                        h->handed += res.handed;
        }
        return NULL;
}

/*
 * A staged rollout (a canary of one, then the rest) through two stores on one database (two replicas):
 * both take the canary's check-ins at once and hand it the release once; the other drone is held;
 * the canary's report blesses it on one store, the scheduler's pass on the other starts the next
 * group; the rollout finishes; migrate carries it.
 */
static void test_rollout_two_replicas(void **state) {
        struct backend *b = *state;
        static const char req_fmt[] = "{\"release\": %" PRId64 ", \"target\": \"drones\", \"drones\": [\"r-0\", \"r-1\"], "
                                      "\"groups\": [{\"count\": 1}, {\"rest\": true}]}";
        struct release rel = { .version = "2.0", .compatible = "x", .size = 1, .path = "/p", .sha256 = "e1" };
        struct hander h[2] = { { .s = open_store(b, 2) }, { .s = open_store(b, 2) } };
        struct rollout_checkin_result res;
        struct rollout_pass_stats ps;
        struct rollout_spec spec;
        struct fleet_status st = { .seq = 1, .state = FLEET_STATE_UPDATED, .release = 0 };
        uint8_t hash[32] = { 13 };
        int64_t now = (int64_t) time(NULL), rid = 0, ro = 0;
        json_t *j = NULL;
        pthread_t t[2];
        char req[256];

        for (int i = 0; i < 2; i++) {
                char id[8];
                snprintf(id, sizeof(id), "r-%d", i);
                assert_int_equal(store_drone_add(h[0].s, id, "g", hash, now, now + 60), 0);
        }
        assert_int_equal(store_release_add(h[0].s, &rel, "", "", &rid), 0);
        snprintf(req, sizeof(req), req_fmt, rid);
        assert_int_equal(rollout_spec_parse(req, strlen(req), &spec), 0);
        assert_int_equal(store_rollout_create(h[0].s, &spec, req, "alice", now, &ro), 0);
        rollout_spec_done(&spec);
        /* one rollout per drone: a second one over the same drones is refused */
        assert_int_equal(rollout_spec_parse(req, strlen(req), &spec), 0);
        assert_int_equal(store_rollout_create(h[1].s, &spec, req, "bob", now, &(int64_t) { 0 }), -EEXIST);
        rollout_spec_done(&spec);
        assert_int_equal(store_rollout_action(h[1].s, ro, ROLLOUT_START,
                                              &(struct rollout_action_args) { .operator_name = "alice" }, now), 0);

        /* the canary's check-ins on both replicas at once: handed once */
        for (int i = 0; i < 2; i++) {
                h[i].now = now;
                assert_int_equal(pthread_create(&t[i], NULL, hander_main, &h[i]), 0);
        }
        for (int i = 0; i < 2; i++)
                pthread_join(t[i], NULL);
        assert_int_equal(h[0].failures + h[1].failures, 0);
        assert_int_equal(h[0].handed + h[1].handed, 1);
        /* the rest waits for the canary, with no assignment at all */
        assert_int_equal(rollout_checkin(h[1].s, "r-1", "1.0", now, &res), 0);
        assert_true(res.held);
        assert_false(res.handed);

        /* the canary updates (its report through one replica), the pass of the other starts the rest */
        st.release = rid;
        snprintf(st.version, sizeof(st.version), "2.0");
        assert_int_equal(store_report(h[0].s, "r-0", &st, now + 1), 1);
        assert_int_equal(store_rollout_report(h[0].s, "r-0", &st, now + 1), 0);
        assert_int_equal(store_rollout_pass(h[1].s, now + 2, now, NULL, NULL, &ps), 0);
        assert_int_equal(rollout_checkin(h[0].s, "r-1", "1.0", now + 3, &res), 0);
        assert_true(res.handed);
        assert_int_equal(res.rollout, ro);
        assert_int_equal(store_report(h[1].s, "r-1", &st, now + 4), 1);
        assert_int_equal(store_rollout_report(h[1].s, "r-1", &st, now + 4), 0);
        assert_int_equal(store_rollout_pass(h[0].s, now + 5, now, NULL, NULL, &ps), 0);

        assert_int_equal(store_rollout_json(h[1].s, ro, &j), 0);
        assert_string_equal(json_string_value(json_object_get(j, "state")), "finished");
        assert_int_equal(json_array_size(json_object_get(j, "members")), 2);
        for (size_t i = 0; i < 2; i++)
                assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "members"), i),
                                                                      "state")), "blessed");
        json_decref(j);
        store_close(h[0].s);
        store_close(h[1].s);
}

static void test_copy(void **state) {
        struct backend *b = *state;
        char *dir = test_tmpdir(), *from_path = test_path(dir, "from.db"), *back_path = test_path(dir, "back.db");
        store *from, *to, *back;
        json_t *counts = NULL, *j = NULL;
        struct drone_auth a;
        struct release rel;
        int64_t id = 0;
        uint8_t hash[32] = { 11 };

        assert_int_equal(store_open(from_path, 1, &from), 0);
        fill(from);
        to = open_store(b, 1);
        assert_int_equal(store_copy(from, to, &counts), 0);
        assert_int_equal(json_integer_value(json_object_get(counts, "drones")), 5);
        assert_int_equal(json_integer_value(json_object_get(counts, "releases")), 2);
        assert_int_equal(json_integer_value(json_object_get(counts, "assignments")), 2);   /* the fleet's, and the hand's drone:ID */
        assert_int_equal(json_integer_value(json_object_get(counts, "events")), 0 + 1 + 2 + 3 + 4);
        assert_int_equal(json_integer_value(json_object_get(counts, "rollouts")), 1);
        assert_int_equal(json_integer_value(json_object_get(counts, "rollout_groups")), 2);
        assert_int_equal(json_integer_value(json_object_get(counts, "rollout_members")), 5);
        assert_true(json_integer_value(json_object_get(counts, "rollout_events")) >= 2);   /* created, started, handed */
        assert_int_equal(json_integer_value(json_object_get(counts, "drone_tags")), 1);
        assert_int_equal(json_integer_value(json_object_get(counts, "windows")), 1);
        assert_int_equal(json_integer_value(json_object_get(counts, "drone_ctl")), 1);
        assert_int_equal(json_integer_value(json_object_get(counts, "compliance")), 1);
        assert_int_equal(json_integer_value(json_object_get(counts, "compliance_history")), 1);
        json_decref(counts);
        /* the rollout goes on where it was: one member handed, the rest waits */
        assert_int_equal(store_rollout_json(to, 1, &j), 0);
        assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
        {
                size_t handed = 0;
                for (size_t i = 0; i < json_array_size(json_object_get(j, "members")); i++)
                        handed += streq(json_string_value(json_object_get(json_array_get(json_object_get(j, "members"), i),
                                                                          "state")), "handed");
                assert_int_equal(handed, 1);
        }
        json_decref(j);
        /* the state works as it did: identities, tokens (hashes), assignments, history */
        assert_int_equal(store_drone_auth(to, "m-0", &a), 0);
        assert_int_equal(a.status, DRONE_ACTIVE);
        assert_string_equal(a.cert_serial, "fe");
        assert_true(a.assigned);
        assert_string_equal(a.release.mirrors, "https://m.example/1");
        assert_int_equal(store_drone_enroll(to, "m-1", hash, (int64_t) time(NULL), "fd"), 0);
        assert_int_equal(store_drone_json(to, "m-4", &j), 0);
        assert_int_equal(json_array_size(json_object_get(j, "history")), 4);
        json_decref(j);
        /* new rows continue after the copied ids */
        rel = (struct release) { .version = "3.0", .compatible = "x", .size = 1, .path = "/b/3", .sha256 = "ac" };
        assert_int_equal(store_release_add(to, &rel, "", "", &id), 0);
        assert_int_equal(id, 3);
        /* never into a database that holds a fleet */
        assert_int_equal(store_copy(from, to, &counts), -ENOTEMPTY);
        /* and back again */
        assert_int_equal(store_open(back_path, 1, &back), 0);
        assert_int_equal(store_copy(to, back, &counts), 0);
        assert_int_equal(json_integer_value(json_object_get(counts, "releases")), 3);
        json_decref(counts);
        assert_int_equal(store_drone_auth(back, "m-1", &a), 0);
        assert_int_equal(a.status, DRONE_ACTIVE);
        store_close(back);
        store_close(to);
        store_close(from);
        free(from_path);
        free(back_path);
        test_tmpdir_done(dir);
}

#define BOTH(f)                                                                 \
        { "sqlite: " #f, f, setup_sqlite, teardown, NULL },                     \
        { "postgresql: " #f, f, setup_pg, teardown, NULL }

int main(void) {
        const struct CMUnitTest tests[] = {
                { "sqlite: test_old_database_migrates", test_old_database_migrates, setup_sqlite, teardown, NULL },
                BOTH(test_schema_and_reopen),
                BOTH(test_newer_database_refused),
                BOTH(test_created_time),
                BOTH(test_tokens),
                BOTH(test_reports),
                BOTH(test_assignment_order),
                BOTH(test_release_mirrors),
                BOTH(test_threads),
                BOTH(test_two_replicas_one_drone),
                BOTH(test_leader),
                BOTH(test_rollout_two_replicas),
                BOTH(test_copy),
                { "postgresql: test_pg_reconnect", test_pg_reconnect, setup_pg, teardown, NULL },
                { "postgresql: test_pg_cut_transaction", test_pg_cut_transaction, setup_pg, teardown, NULL },
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
