/* test-server-routes.c: the route table: no route without a role, no overlap, matching, and the built-in table. */
#include "tests.h"

#include "server.h"

static int h(struct route_ctx *x) {
        (void) x;
        return 200;
}

static int h2(struct route_ctx *x) {
        (void) x;
        return 201;
}

static void test_no_route_without_a_role(void **state) {
        struct route_table t = {};
        /* a designated initializer that forgets .role leaves ROLE_UNSET */
        struct route r = { .methods = ROUTE_GET, .path = "/x", .handler = h };
        (void) state;
        assert_int_equal(route_table_add(&t, &r), -EINVAL);
        r.role = (enum route_role) 99;
        assert_int_equal(route_table_add(&t, &r), -EINVAL);
        r.role = ROLE_OPERATOR;
        r.handler = NULL;
        assert_int_equal(route_table_add(&t, &r), -EINVAL);
        r.handler = h;
        r.path = "x";
        assert_int_equal(route_table_add(&t, &r), -EINVAL);
        r.path = "/x";
        r.methods = 0;
        assert_int_equal(route_table_add(&t, &r), -EINVAL);
        r.methods = ROUTE_POST;
        r.body = TP_BODY_MEMORY;   /* without a size */
        assert_int_equal(route_table_add(&t, &r), -EINVAL);
        assert_int_equal(t.n, 0);
        r.max_body = 10;
        assert_int_equal(route_table_add(&t, &r), 0);
        assert_int_equal(t.n, 1);
}

static void test_overlap_refused(void **state) {
        struct route_table t = {};
        (void) state;
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_GET, "/a/*", ROLE_DRONE, h)), 0);
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_GET, "/a/b", ROLE_OPERATOR, h)), -EEXIST);
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_GET, "/a/**", ROLE_OPERATOR, h)), -EEXIST);
        /* another method on the same path is another route */
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_POST, "/a/*", ROLE_OPERATOR, h2)), 0);
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_GET, "/a/*/c", ROLE_OPERATOR, h)), 0);
}

static void test_match(void **state) {
        struct route_table t = {};
        char param[ROUTE_PARAM_MAX];
        unsigned methods;
        const struct route *r;
        (void) state;
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_GET, "/api/v1/drones/*", ROLE_SELF_OR_OPERATOR, h)), 0);
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_POST, "/api/v1/drones/*/revoke", ROLE_OPERATOR, h2)), 0);
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_GET, "/cache/**", ROLE_DRONE_OR_OPERATOR, h)), 0);

        r = route_match(&t, HTTP_GET, "/api/v1/drones/d-1", param, &methods);
        assert_non_null(r);
        assert_int_equal(r->role, ROLE_SELF_OR_OPERATOR);
        assert_string_equal(param, "d-1");
        r = route_match(&t, HTTP_HEAD, "/api/v1/drones/d-1", param, &methods);
        assert_non_null(r);
        r = route_match(&t, HTTP_POST, "/api/v1/drones/d-1/revoke", param, &methods);
        assert_non_null(r);
        assert_ptr_equal(r->handler, h2);
        assert_string_equal(param, "d-1");
        /* known path, other method: the methods it does take */
        assert_null(route_match(&t, HTTP_POST, "/api/v1/drones/d-1", param, &methods));
        assert_int_equal(methods, ROUTE_GET);
        assert_null(route_match(&t, HTTP_PUT, "/api/v1/drones/d-1", param, &methods));
        assert_null(route_match(&t, HTTP_GET, "/api/v1/drones/", param, &methods));
        assert_int_equal(methods, 0);
        assert_null(route_match(&t, HTTP_GET, "/api/v1/drones/a/b", param, &methods));
        assert_null(route_match(&t, HTTP_GET, "/api/v1/drone/a", param, &methods));
        r = route_match(&t, HTTP_GET, "/cache/nar/x.nar", param, &methods);
        assert_non_null(r);
        assert_string_equal(param, "nar/x.nar");
        assert_non_null(route_match(&t, HTTP_GET, "/cache/", param, &methods));
        assert_string_equal(param, "");
        assert_null(route_match(&t, HTTP_GET, "/cache", param, &methods));
}

/* The server's own table: it registers, every route has a role, enrollment is the only anonymous one. */
static void test_builtin_table(void **state) {
        struct route_table t = {};
        size_t anonymous = 0;
        (void) state;
        assert_int_equal(api_routes_register(&t, 1 << 20), 0);
        assert_true(t.n >= 13);
        for (size_t i = 0; i < t.n; i++) {
                assert_true(t.routes[i].role > ROLE_UNSET && t.routes[i].role < _ROLE_MAX);
                assert_non_null(route_role_to_string(t.routes[i].role));
                if (t.routes[i].role == ROLE_ENROLLING) {
                        anonymous++;
                        assert_string_equal(t.routes[i].path, "/api/v1/enroll");
                }
                if (strncmp(t.routes[i].path, "/api/v1/releases", 16) == 0 && t.routes[i].methods == ROUTE_POST &&
                    strcmp(t.routes[i].path, "/api/v1/releases") == 0)
                        assert_int_equal(t.routes[i].role, ROLE_OPERATOR);
        }
        assert_int_equal(anonymous, 1);
        /* publishing into the fleet's Nix cache decides what every drone may install: operators only,
         * the NAR spooled with the envelope on top of max-upload */
        {
                char param[ROUTE_PARAM_MAX];
                unsigned methods;
                const struct route *r = route_match(&t, HTTP_PUT, "/api/v1/nix-cache/0123456789abcdfghijklmnpqrsvwxyz", param,
                                                    &methods);
                assert_non_null(r);
                assert_int_equal(r->role, ROLE_OPERATOR);
                assert_int_equal(r->body, TP_BODY_SPOOL);
                assert_true(r->max_body > 1 << 20);
                r = route_match(&t, HTTP_POST, "/api/v1/nix-cache/missing", param, &methods);
                assert_non_null(r);
                assert_int_equal(r->role, ROLE_OPERATOR);
                assert_int_equal(r->body, TP_BODY_MEMORY);
                assert_true(r->max_body <= SERVER_MAX_MEMORY_BODY);
                assert_int_equal(api_nix_upload_max_body(UINT64_MAX), UINT64_MAX);
        }
        /* registering the table twice is refused route by route */
        assert_int_not_equal(api_routes_register(&t, 1 << 20), 0);
}

/* PUT is a method of the table like the others: matched, listed in Allow, and known to the table so the
 * dispatcher answers 405 (not 501) on a path that does not take it. */
static void test_put_and_allow(void **state) {
        struct route_table t = {};
        char param[ROUTE_PARAM_MAX], allow[32];
        unsigned methods;
        const struct route *r;
        (void) state;
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_POST, "/cache/missing", ROLE_OPERATOR, h)), 0);
        assert_int_equal(route_table_methods(&t), ROUTE_POST);
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_PUT, "/cache/*", ROLE_OPERATOR, h2, .body = TP_BODY_SPOOL)), 0);
        assert_int_equal(route_table_add(&t, &ROUTE(ROUTE_PUT, "/cache/x", ROLE_OPERATOR, h2)), -EEXIST);
        assert_int_equal(route_table_add(&t, &ROUTE(1u << 7, "/other", ROLE_OPERATOR, h2)), -EINVAL);
        assert_int_equal(route_table_methods(&t), ROUTE_POST | ROUTE_PUT);
        r = route_match(&t, HTTP_PUT, "/cache/abc", param, &methods);
        assert_non_null(r);
        assert_ptr_equal(r->handler, h2);
        assert_string_equal(param, "abc");
        r = route_match(&t, HTTP_PUT, "/cache/missing", param, &methods);
        assert_non_null(r);
        assert_ptr_equal(r->handler, h2);
        r = route_match(&t, HTTP_POST, "/cache/missing", param, &methods);
        assert_non_null(r);
        assert_ptr_equal(r->handler, h);
        assert_null(route_match(&t, HTTP_GET, "/cache/missing", param, &methods));
        assert_int_equal(methods, ROUTE_POST | ROUTE_PUT);
        route_methods_allow(methods, allow, sizeof(allow));
        assert_string_equal(allow, "POST, PUT");
        assert_null(route_match(&t, HTTP_DELETE, "/cache/abc", param, &methods));
        assert_int_equal(route_method_bit(HTTP_DELETE), 0);
        assert_int_equal(route_method_bit(HTTP_HEAD), ROUTE_GET);
        route_methods_allow(ROUTE_GET | ROUTE_POST | ROUTE_PUT, allow, sizeof(allow));
        assert_string_equal(allow, "GET, HEAD, POST, PUT");
        route_methods_allow(ROUTE_GET, allow, sizeof(allow));
        assert_string_equal(allow, "GET, HEAD");
        /* a short buffer keeps whole names only */
        route_methods_allow(ROUTE_GET | ROUTE_POST, allow, 12);
        assert_string_equal(allow, "GET, HEAD");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_route_without_a_role),
                cmocka_unit_test(test_overlap_refused),
                cmocka_unit_test(test_match),
                cmocka_unit_test(test_put_and_allow),
                cmocka_unit_test(test_builtin_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
