/* test-strv.c: the string list: copies vs take-over, the NULL terminator through growth, lookup by
 * equality and by pattern, sort, join, and done() leaving a reusable empty list. */
#include "tests.h"

#include "strv.h"

static void test_push_copies_and_terminates(void **state) {
        _cleanup_strv_ struct strv s = {};
        char word[] = "alpha";
        (void) state;

        assert_null(s.v);
        assert_int_equal(strv_push(&s, word), 0);
        word[0] = 'X';   /* a copy was stored, not the caller's buffer */
        assert_string_equal(s.v[0], "alpha");
        assert_ptr_not_equal(s.v[0], word);
        assert_null(s.v[1]);
        /* Through several doublings the list stays NULL-terminated and in order. */
        for (int i = 0; i < 5000; i++) {
                char b[16];
                snprintf(b, sizeof(b), "w%d", i);
                assert_int_equal(strv_push(&s, b), 0);
                assert_null(s.v[s.n]);
                assert_true(s.alloc > s.n);
        }
        assert_int_equal(s.n, 5001);
        assert_string_equal(s.v[1], "w0");
        assert_string_equal(s.v[5000], "w4999");
}

static void test_consume_takes_ownership(void **state) {
        struct strv s = {};
        char *x = strdup("owned");
        (void) state;

        assert_non_null(x);
        assert_int_equal(strv_consume(&s, x), 0);
        assert_ptr_equal(s.v[0], x);   /* stored as is: no copy */
        /* NULL (a failed strdup) is -ENOMEM and leaves the list untouched. */
        assert_int_equal(strv_consume(&s, NULL), -ENOMEM);
        assert_int_equal(s.n, 1);
        assert_null(s.v[1]);
        strv_done(&s);
        assert_null(s.v);
        assert_int_equal(s.n, 0);
        assert_int_equal(s.alloc, 0);
        strv_done(&s);   /* twice: still fine */
        strv_done(NULL);
        /* reusable after done() */
        assert_int_equal(strv_push(&s, "again"), 0);
        assert_int_equal(s.n, 1);
        strv_done(&s);
}

static void test_contains_and_fnmatch(void **state) {
        _cleanup_strv_ struct strv s = {}, pat = {};
        (void) state;

        assert_false(strv_contains(&s, "x"));
        assert_false(strv_fnmatch(&s, "x"));
        assert_int_equal(strv_push(&s, "console=tty0"), 0);
        assert_int_equal(strv_push(&s, "quiet"), 0);
        assert_true(strv_contains(&s, "quiet"));
        assert_true(strv_contains(&s, "console=tty0"));
        assert_false(strv_contains(&s, "console"));        /* whole elements only */
        assert_false(strv_contains(&s, "quiet "));
        assert_false(strv_contains(&s, "QUIET"));
        /* Elements are patterns for strv_fnmatch: a literal element matches itself only. */
        assert_false(strv_fnmatch(&s, "console=ttyS0"));
        assert_int_equal(strv_push(&pat, "console=tty*"), 0);
        assert_int_equal(strv_push(&pat, "/dev/zram[0-9]"), 0);
        assert_true(strv_fnmatch(&pat, "console=ttyS0"));
        assert_true(strv_fnmatch(&pat, "/dev/zram3"));
        assert_false(strv_fnmatch(&pat, "/dev/zram10"));
        assert_false(strv_fnmatch(&pat, "xconsole=tty1"));
        /* The pattern is the element, never the argument. */
        assert_false(strv_contains(&pat, "console=ttyS0"));
}

static void test_sort_and_join(void **state) {
        _cleanup_strv_ struct strv s = {};
        char *j;
        (void) state;

        j = strv_join(&s, "|");
        assert_string_equal(j, "");
        free(j);
        strv_sort(&s);   /* empty: nothing to do */
        assert_int_equal(strv_push(&s, "b"), 0);
        j = strv_join(&s, ", ");
        assert_string_equal(j, "b");   /* no separator around one element */
        free(j);
        assert_int_equal(strv_push(&s, "a10"), 0);
        assert_int_equal(strv_push(&s, ""), 0);
        assert_int_equal(strv_push(&s, "a9"), 0);
        assert_int_equal(strv_push(&s, "B"), 0);
        strv_sort(&s);
        j = strv_join(&s, "|");
        assert_string_equal(j, "|B|a10|a9|b");   /* strcmp order: bytes, not numbers, not case-folded */
        free(j);
        assert_null(s.v[s.n]);
        j = strv_join(&s, "::");
        assert_string_equal(j, "::B::a10::a9::b");
        free(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_push_copies_and_terminates),
                cmocka_unit_test(test_consume_takes_ownership),
                cmocka_unit_test(test_contains_and_fnmatch),
                cmocka_unit_test(test_sort_and_join),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
