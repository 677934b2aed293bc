/* test-parse.c: checked number and time parsing rejects everything that is not exactly a number. */
#include "tests.h"

#include "parse.h"

static void test_u64(void **state) {
        uint64_t v = 7;
        (void) state;
        assert_int_equal(parse_u64("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_u64("18446744073709551615", &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
        v = 7;
        assert_int_equal(parse_u64("-1", &v), -EINVAL);
        assert_int_equal(parse_u64(" 1", &v), -EINVAL);
        assert_int_equal(parse_u64("+1", &v), -EINVAL);
        assert_int_equal(parse_u64("1x", &v), -EINVAL);
        assert_int_equal(parse_u64("", &v), -EINVAL);
        assert_int_equal(parse_u64(NULL, &v), -EINVAL);
        assert_int_equal(v, 7); /* untouched on failure */
}

static void test_uint_range(void **state) {
        unsigned u;
        uint32_t w;
        (void) state;
        assert_int_equal(parse_uint("4294967295", &u), 0);
        assert_int_equal(parse_uint("4294967296", &u), -ERANGE);
        assert_int_equal(parse_u32_range("3", 1, 10, &w), 0);
        assert_int_equal(w, 3);
        assert_int_equal(parse_u32_range("0", 1, 10, &w), -ERANGE);
        assert_int_equal(parse_u32_range("11", 1, 10, &w), -ERANGE);
}

static void test_size(void **state) {
        uint64_t v;
        (void) state;
        assert_int_equal(parse_size("4K", &v), 0);
        assert_true(v == 4096);
        assert_int_equal(parse_size("1g", &v), 0);
        assert_true(v == 1073741824ULL);
        assert_int_equal(parse_size("17179869184T", &v), -ERANGE);
        assert_int_equal(parse_size("K", &v), -EINVAL);
        assert_int_equal(parse_size("1KB", &v), -EINVAL);
}

static void test_time(void **state) {
        int64_t t;
        char buf[21];
        (void) state;
        assert_int_equal(parse_time("@0", &t), 0);
        assert_true(t == 0);
        assert_int_equal(parse_time("2026-11-28", &t), 0);
        assert_true(t == 1795824000);
        assert_int_equal(parse_time("2026-11-28T01:02:03Z", &t), 0);
        assert_true(t == 1795824000 + 3723);
        assert_string_equal(format_time(t, buf), "2026-11-28T01:02:03Z");
        assert_int_equal(parse_time("2026-02-31", &t), -ERANGE);
        assert_int_equal(parse_time("2026-13-01", &t), -ERANGE);
        assert_int_equal(parse_time("2026-11-28T01:02:03", &t), -EINVAL);
        assert_int_equal(parse_time("yesterday", &t), -EINVAL);
        assert_int_equal(parse_time("@-5", &t), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_u64),
                cmocka_unit_test(test_uint_range),
                cmocka_unit_test(test_size),
                cmocka_unit_test(test_time),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
