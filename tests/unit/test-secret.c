/* test-secret.c: wiping really zeroes and tolerates NULL. */
#include "tests.h"

#include "secret.h"

static void test_wipe(void **state) {
        uint8_t k[32];
        (void) state;
        memset(k, 0x5a, sizeof(k));
        secret_wipe(k, sizeof(k));
        for (size_t i = 0; i < sizeof(k); i++)
                assert_int_equal(k[i], 0);
        secret_wipe(NULL, 10);
        secret_free(NULL, 10);
        secret_free_str(NULL);
}

static void test_free_str(void **state) {
        _cleanup_secret_str_ char *s = strdup("hunter2");
        (void) state;
        assert_non_null(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_wipe),
                cmocka_unit_test(test_free_str),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
