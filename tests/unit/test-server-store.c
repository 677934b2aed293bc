/* test-server-store.c: the store: migration of an unversioned database, created time, assignment order, readers. */
#include "tests.h"

#include <sqlite3.h>
#include <time.h>

#include "store.h"

/* The schema version this server migrates to. */
#define SCHEMA_NOW 6   /* 3: rollouts, 4: compliance, 5: the dashboard's, 6: bytes fetched/reused */

/* The schema ringil-server created before the store kept a version (user_version 0). */
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

static char *db_path(char *dir) {
        char *p;
        assert_true(asprintf(&p, "%s/fleet.db", dir) > 0);
        return p;
}

static void exec_sql(const char *path, const char *sql) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

static void test_old_database_migrates(void **state) {
        char *dir = test_tmpdir(), *path = db_path(dir);
        struct drone_auth a;
        json_t *j = NULL;
        int64_t rid = 0;
        store *s;
        (void) state;

        exec_sql(path, old_schema);
        assert_int_equal(store_open(path, 2, &s), 0);
        assert_int_equal(store_schema_version(s), SCHEMA_NOW);
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
        store_close(s);
        /* opening again is a no-op */
        assert_int_equal(store_open(path, 1, &s), 0);
        assert_int_equal(store_schema_version(s), SCHEMA_NOW);
        store_close(s);
        test_rm_rf(dir);
        free(path);
        free(dir);
}

static void test_newer_database_refused(void **state) {
        char *dir = test_tmpdir(), *path = db_path(dir);
        store *s = NULL;
        (void) state;

        exec_sql(path, "CREATE TABLE drones(id TEXT); PRAGMA user_version = 99;");
        assert_int_equal(store_open(path, 1, &s), -EPROTO);
        assert_null(s);
        assert_int_equal(store_open("postgresql://fleet", 1, &s), -EPROTONOSUPPORT);
        test_rm_rf(dir);
        free(path);
        free(dir);
}

/* created is when the drone was registered, whatever the token's lifetime. */
static void test_created_time(void **state) {
        char *dir = test_tmpdir(), *path = db_path(dir);
        uint8_t hash[32] = { 1 };
        int64_t now = (int64_t) time(NULL);
        json_t *j = NULL;
        store *s;
        (void) state;

        assert_int_equal(store_open(path, 1, &s), 0);
        assert_int_equal(store_schema_version(s), SCHEMA_NOW);
        assert_int_equal(store_drone_add(s, "d-1", "default", hash, now, now + 3600), 0);
        assert_int_equal(store_drone_add(s, "d-1", "default", hash, now, now + 3600), -EEXIST);
        assert_int_equal(store_drone_json(s, "d-1", &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "created")), now);
        assert_int_equal(json_integer_value(json_object_get(j, "enrolled")), 0);
        json_decref(j);
        /* enrollment records its own time; the token works once */
        assert_int_equal(store_drone_enroll(s, "d-1", hash, now + 5, "ab12"), 0);
        assert_int_equal(store_drone_enroll(s, "d-1", hash, now + 6, "ab12"), -EACCES);
        assert_int_equal(store_drone_json(s, "d-1", &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "enrolled")), now + 5);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "active");
        json_decref(j);
        assert_int_equal(store_drone_json(s, "nobody", &j), -ENOENT);
        store_close(s);
        test_rm_rf(dir);
        free(path);
        free(dir);
}

static void test_assignment_order(void **state) {
        char *dir = test_tmpdir(), *path = db_path(dir);
        struct release rel = { .version = "1", .compatible = "x", .size = 1, .path = "/p" };
        int64_t r1, r2, r3, got = -1;
        store *s;
        (void) state;

        assert_int_equal(store_open(path, 3, &s), 0);
        assert_int_equal(store_assignment_for(s, "d", "g", &got), 0);
        assert_int_equal(got, 0);
        snprintf(rel.sha256, sizeof(rel.sha256), "a1");
        assert_int_equal(store_release_add(s, &rel, "", "", &r1), 0);
        snprintf(rel.sha256, sizeof(rel.sha256), "a2");
        assert_int_equal(store_release_add(s, &rel, "", "", &r2), 0);
        snprintf(rel.sha256, sizeof(rel.sha256), "a3");
        assert_int_equal(store_release_add(s, &rel, "", "", &r3), 0);
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
        test_rm_rf(dir);
        free(path);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_old_database_migrates),
                cmocka_unit_test(test_newer_database_refused),
                cmocka_unit_test(test_created_time),
                cmocka_unit_test(test_assignment_order),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
