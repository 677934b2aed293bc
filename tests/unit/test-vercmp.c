/* test-vercmp.c: the version syntax (every malformed spelling refused, caps exact) and the numeric order
 * anti-rollback rests on (golden ordered list, all pairs, antisymmetry, no overflow at the digit cap). */
#include "tests.h"

#include "err.h"
#include "vercmp.h"

static void test_version_valid(void **state) {
        (void) state;
        assert_int_equal(version_valid("1"), 0);
        assert_int_equal(version_valid("1.2.10"), 0);
        assert_int_equal(version_valid("0.0.0"), 0);
        assert_int_equal(version_valid("007"), 0);
        assert_int_equal(version_valid("999999999999999999"), 0);
        assert_int_equal(version_valid("9999999999999999999"), -RINGIL_EMALFORMED);   /* 19 digits */
        assert_int_equal(version_valid("1.9999999999999999999"), -RINGIL_EMALFORMED);   /* in any component */
        assert_int_equal(version_valid(""), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("."), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("1."), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid(".1"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("1..2"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("1.2-rc1"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("v1"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid(" 1"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("1 "), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("+1"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("-1"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("1,2"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("1.2\n"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid("\xd9\xa1"), -RINGIL_EMALFORMED);   /* ARABIC-INDIC DIGIT ONE */
        assert_int_equal(version_valid("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16"), 0);
        assert_int_equal(version_valid("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17"), -RINGIL_EMALFORMED);
        assert_int_equal(version_valid(NULL), -RINGIL_EMALFORMED);
}

/* The length cap is exact: VERSION_MAX characters pass, one more does not (whatever the components). */
static void test_version_length_cap(void **state) {
        char v[VERSION_MAX + 2];
        (void) state;

        /* 16 components: 15 of 3 digits + dots (60 characters), then a last one filling up to the cap. */
        memset(v, 0, sizeof(v));
        for (size_t i = 0; i < 15; i++)
                memcpy(v + 4 * i, "123.", 4);
        memset(v + 60, '9', VERSION_MAX - 60);
        assert_int_equal(strlen(v), VERSION_MAX);
        assert_int_equal(version_valid(v), 0);
        v[VERSION_MAX] = '9';
        assert_int_equal(version_valid(v), -RINGIL_EMALFORMED);
}

static void test_version_compare(void **state) {
        (void) state;
        assert_true(version_compare("1.2.10", "1.2.9") > 0);   /* numeric, not lexical */
        assert_true(version_compare("1.2.9", "1.2.10") < 0);
        assert_true(version_compare("10", "9") > 0);
        assert_int_equal(version_compare("1.2", "1.2.0"), 0);
        assert_int_equal(version_compare("1.2.0.0", "1.2"), 0);
        assert_int_equal(version_compare("01.002", "1.2"), 0);
        assert_true(version_compare("2", "1.99.99") > 0);
        assert_true(version_compare("1.0.1", "1") > 0);
        assert_true(version_compare("1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1") < 0);
        assert_true(version_compare("999999999999999999", "999999999999999998") > 0);
        assert_true(version_compare("999999999999999999", "1.0") > 0);
        assert_int_equal(version_compare("0", "0.0.0"), 0);
        assert_int_equal(version_compare("000000000000000000", "0"), 0);
}

/* A golden list in strictly ascending order (equal spellings grouped): every pair must compare as its
 * positions do, in both directions. */
static void test_version_order_all_pairs(void **state) {
        static const char *const ordered[][3] = {
                { "0", "0.0", "00.000.0" },
                { "0.0.1", "0.0.01", NULL },
                { "0.1", "0.1.0", NULL },
                { "0.9", NULL, NULL },
                { "0.10", "0.010", NULL },
                { "1", "1.0", "1.0.0.0" },
                { "1.0.0.1", NULL, NULL },
                { "1.2", NULL, NULL },
                { "1.2.9", NULL, NULL },
                { "1.2.10", NULL, NULL },
                { "1.10", NULL, NULL },
                { "2", "2.0", NULL },
                { "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1", NULL, NULL },
                { "10", NULL, NULL },
                { "18446744073709551", NULL, NULL },
                { "999999999999999999", NULL, NULL },
                { "999999999999999999.1", NULL, NULL },
        };
        size_t n = sizeof(ordered) / sizeof(ordered[0]);
        (void) state;

        for (size_t i = 0; i < n; i++)
                for (size_t a = 0; a < 3 && ordered[i][a]; a++) {
                        assert_int_equal(version_valid(ordered[i][a]), 0);
                        for (size_t j = 0; j < n; j++)
                                for (size_t b = 0; b < 3 && ordered[j][b]; b++) {
                                        int c = version_compare(ordered[i][a], ordered[j][b]);
                                        int want = i < j ? -1 : i > j ? 1 : 0;
                                        if ((c > 0) - (c < 0) != want)
                                                fail_msg("%s vs %s: %d, want %d", ordered[i][a], ordered[j][b], c, want);
                                }
                }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_version_valid),
                cmocka_unit_test(test_version_length_cap),
                cmocka_unit_test(test_version_compare),
                cmocka_unit_test(test_version_order_all_pairs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
