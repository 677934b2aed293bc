/* test-err.c: errno → exit code mapping and failure details. */
#include "tests.h"

#include "err.h"

static void test_exit_codes(void **state) {
        (void) state;
        assert_int_equal(exit_code_from_errno(0), EXIT_OK);
        assert_int_equal(exit_code_from_errno(5), EXIT_OK);
        assert_int_equal(exit_code_from_errno(-RINGIL_EMALFORMED), EXIT_MALFORMED);
        assert_int_equal(exit_code_from_errno(-RINGIL_ETRUNCATED), EXIT_MALFORMED);
        assert_int_equal(exit_code_from_errno(-RINGIL_ETOOBIG), EXIT_MALFORMED);
        assert_int_equal(exit_code_from_errno(-RINGIL_EBADSIG), EXIT_BADSIG);
        assert_int_equal(exit_code_from_errno(-RINGIL_EUNTRUSTED), EXIT_UNTRUSTED);
        assert_int_equal(exit_code_from_errno(-RINGIL_EEXPIRED), EXIT_EXPIRED);
        assert_int_equal(exit_code_from_errno(-RINGIL_EROLLBACK), EXIT_ROLLBACK);
        assert_int_equal(exit_code_from_errno(-RINGIL_EINCOMPAT), EXIT_INCOMPAT);
        assert_int_equal(exit_code_from_errno(-RINGIL_EDIGEST), EXIT_DIGEST);
        assert_int_equal(exit_code_from_errno(-EEXIST), EXIT_EXISTS);
        assert_int_equal(exit_code_from_errno(-ENOENT), EXIT_NOTFOUND);
        assert_int_equal(exit_code_from_errno(-EIO), EXIT_FAIL);
        /* talking to a server: unreachable vs. TLS/protocol, neither confused with a malformed input */
        assert_int_equal(exit_code_from_errno(-ECONNREFUSED), EXIT_NETWORK);
        assert_int_equal(exit_code_from_errno(-ETIMEDOUT), EXIT_NETWORK);
        assert_int_equal(exit_code_from_errno(-EHOSTUNREACH), EXIT_NETWORK);
        assert_int_equal(exit_code_from_errno(-ECONNRESET), EXIT_NETWORK);
        assert_int_equal(exit_code_from_errno(-EPROTO), EXIT_PROTOCOL);
}

static void test_distinct_codes(void **state) {
        static const int errs[] = { RINGIL_EMALFORMED, RINGIL_EBADSIG, RINGIL_EUNTRUSTED, RINGIL_EEXPIRED,
                                    RINGIL_EROLLBACK, RINGIL_EINCOMPAT, RINGIL_EDIGEST, RINGIL_EREFUSED };
        (void) state;
        /* Every verification failure kind must reach the user as its own exit code. */
        for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
                for (size_t j = i + 1; j < sizeof(errs) / sizeof(errs[0]); j++)
                        assert_int_not_equal(exit_code_from_errno(-errs[i]), exit_code_from_errno(-errs[j]));
}

static void test_detail(void **state) {
        (void) state;
        ringil_clear_detail();
        assert_string_equal(ringil_detail(), "");
        assert_int_equal(ringil_fail(-RINGIL_EBADSIG, "signer %s", "x"), -RINGIL_EBADSIG);
        assert_string_equal(ringil_detail(), "signer x");
        assert_string_equal(ringil_strerror(-RINGIL_EDIGEST), "hash mismatch");
        assert_non_null(ringil_strerror(-EIO));
}

static void test_detail_wraps_itself(void **state) {
        (void) state;
        /* The usual wrapping idiom formats the old detail into the new one. */
        assert_int_equal(ringil_fail(-EIO, "inner %s", "cause"), -EIO);
        assert_int_equal(ringil_fail(-EIO, "outer context: %s", ringil_detail()), -EIO);
        assert_string_equal(ringil_detail(), "outer context: inner cause");
        ringil_set_detail("%s / %s", ringil_detail(), ringil_detail());
        assert_string_equal(ringil_detail(), "outer context: inner cause / outer context: inner cause");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exit_codes),
                cmocka_unit_test(test_distinct_codes),
                cmocka_unit_test(test_detail),
                cmocka_unit_test(test_detail_wraps_itself),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
