/* test-buf.c: capped buffers never grow past their cap and stay unchanged on failure. */
#include "tests.h"

#include "buf.h"

static void test_cap(void **state) {
        _cleanup_buf_ struct buf b = BUF_INIT(10);
        (void) state;
        assert_int_equal(buf_append(&b, "12345", 5), 0);
        assert_int_equal(buf_append(&b, "67890", 5), 0);
        assert_int_equal(b.len, 10);
        assert_int_equal(buf_append(&b, "x", 1), -EFBIG);
        assert_int_equal(b.len, 10);
        assert_memory_equal(b.data, "1234567890", 11);
        assert_int_equal(buf_append(&b, "", 0), 0);
}

static void test_overflow(void **state) {
        _cleanup_buf_ struct buf b = BUF_INIT(SIZE_MAX);
        (void) state;
        assert_int_equal(buf_append(&b, "a", 1), 0);
        /* len + n wraps: must fail, not allocate a tiny buffer. */
        assert_int_equal(buf_reserve(&b, SIZE_MAX), -EFBIG);
}

static void test_printf_steal(void **state) {
        _cleanup_buf_ struct buf b = BUF_INIT(64);
        size_t n;
        uint8_t *p;
        (void) state;
        assert_int_equal(buf_printf(&b, "%s-%d", "x", 42), 0);
        assert_string_equal((char *) b.data, "x-42");
        assert_int_equal(buf_printf(&b, "%0100d", 1), -EFBIG);
        assert_string_equal((char *) b.data, "x-42");
        p = buf_steal(&b, &n);
        assert_int_equal(n, 4);
        assert_null(b.data);
        free(p);
}

static void test_secret_growth(void **state) {
        _cleanup_buf_ struct buf b = BUF_INIT_SECRET(1 << 20);
        uint8_t block[1000];
        (void) state;
        memset(block, 0xA5, sizeof(block));
        for (int i = 0; i < 100; i++)
                assert_int_equal(buf_append(&b, block, sizeof(block)), 0);
        assert_int_equal(b.len, 100000);
        assert_int_equal(b.data[99999], 0xA5);
        buf_reset(&b);
        assert_int_equal(b.len, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cap),
                cmocka_unit_test(test_overflow),
                cmocka_unit_test(test_printf_steal),
                cmocka_unit_test(test_secret_growth),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
