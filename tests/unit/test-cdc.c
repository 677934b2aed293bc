/* test-cdc.c: content-defined chunking: parameters, size bounds, determinism, resynchronisation after a shift. */
#include "tests.h"

#include <stdlib.h>
#include <string.h>

#include "cdc.h"

static uint8_t *random_bytes(size_t n, unsigned seed) {
        uint8_t *p = malloc(n);
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; p && i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (uint8_t) x;
        }
        return p;
}

/* Cut all of data; cut offsets (chunk ends) into ends, their count returned. */
static size_t cut_all(const struct cdc *c, const uint8_t *data, size_t len, size_t *ends, size_t cap) {
        size_t pos = 0, n = 0;
        while (pos < len && n < cap) {
                size_t k = cdc_next(c, data + pos, len - pos, true);
                assert_true(k > 0);
                pos += k;
                ends[n++] = pos;
        }
        return n;
}

static void test_params(void **state) {
        struct cdc c;
        (void) state;
        assert_int_equal(cdc_init(&c, 16384, 65536, 262144), 0);
        assert_int_equal(cdc_init(&c, 4096, 8192, 16384), 0);
        assert_int_equal(cdc_init(&c, 2048, 8192, 16384), -EINVAL);      /* min below 4 KiB */
        assert_int_equal(cdc_init(&c, 16384, 16384, 262144), -EINVAL);   /* min == avg */
        assert_int_equal(cdc_init(&c, 16384, 65536, 65536), -EINVAL);    /* avg == max */
        assert_int_equal(cdc_init(&c, 16384, 60000, 262144), -EINVAL);   /* not a power of two */
        assert_int_equal(cdc_init(&c, 16384, 65536, 128u << 20), -EINVAL);
}

static void test_bounds_and_average(void **state) {
        size_t len = 16u << 20, *ends = malloc(4096 * sizeof(size_t)), n, prev = 0;
        uint8_t *d = random_bytes(len, 1);
        struct cdc c;
        (void) state;
        assert_non_null(d);
        assert_int_equal(cdc_init(&c, 16384, 65536, 262144), 0);
        n = cut_all(&c, d, len, ends, 4096);
        assert_true(ends[n - 1] == len);
        for (size_t i = 0; i < n; i++) {
                size_t sz = ends[i] - prev;
                assert_true(sz <= 262144);
                if (i + 1 < n)
                        assert_true(sz >= 16384);
                prev = ends[i];
        }
        /* normalized chunking keeps the mean near avg */
        assert_true(len / n > 40000 && len / n < 100000);
        /* not final and fewer than max bytes without a cut: needs more data */
        assert_int_equal(cdc_next(&c, d, 10000, false), 0);
        assert_int_equal(cdc_next(&c, d, 10000, true), 10000);
        free(d);
        free(ends);
}

static void test_shift_resynchronises(void **state) {
        size_t len = 4u << 20, *a = malloc(1024 * sizeof(size_t)), *b = malloc(1024 * sizeof(size_t)), na, nb, common = 0;
        uint8_t *d = random_bytes(len + 777, 2), *shifted = malloc(len + 777);
        struct cdc c;
        (void) state;
        assert_int_equal(cdc_init(&c, 16384, 65536, 262144), 0);
        /* 777 bytes inserted at the front: every boundary after the first few moves by exactly 777 */
        memcpy(shifted, d + len, 777);
        memcpy(shifted + 777, d, len);
        na = cut_all(&c, d, len, a, 1024);
        nb = cut_all(&c, shifted, len + 777, b, 1024);
        for (size_t i = 0; i < na; i++)
                for (size_t j = 0; j < nb; j++)
                        if (b[j] == a[i] + 777)
                                common++;
        assert_true(common + 3 >= na);
        /* deterministic */
        assert_int_equal(cut_all(&c, d, len, b, 1024), na);
        free(d);
        free(shifted);
        free(a);
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_params),
                cmocka_unit_test(test_bounds_and_average),
                cmocka_unit_test(test_shift_resynchronises),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
