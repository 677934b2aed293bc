/* test-fleet-window.c: maintenance windows: strict parsing, midnight crossing, waits. */
#include "tests.h"

#include "err.h"
#include "fleet-window.h"

static void test_parse(void **state) {
        static const char *const bad[] = {
                "", "2:00-04:00", "02:00-4:00", "02:00 - 04:00", "02:00-04:60", "25:00-26:00", "24:00-01:00",
                "02:00-24:01", "02:00-02:00", "00:00-00:00", "0a:00-04:00", "02:00-04:00 ", "02:00_04:00",
                "02-00-04:00", "02:00-04:00,", "99:99-99:99",
        };
        struct fleet_window w[FLEET_MAX_WINDOWS];
        char text[FLEET_WINDOWS_TEXT_MAX];
        size_t n;
        (void) state;
        assert_int_equal(fleet_window_parse("02:00-04:00", &w[0]), 0);
        assert_int_equal(w[0].start, 120);
        assert_int_equal(w[0].end, 240);
        assert_int_equal(fleet_window_parse("00:00-24:00", &w[0]), 0);
        assert_int_equal(w[0].end, 1440);
        assert_int_equal(fleet_window_parse("23:30-00:30", &w[0]), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (fleet_window_parse(bad[i], &w[0]) >= 0)
                        fail_msg("accepted `%s'", bad[i]);
        assert_int_equal(fleet_windows_parse("02:00-04:00,13:15-14:45", w, &n), 0);
        assert_int_equal(n, 2);
        fleet_windows_format(w, n, text, sizeof(text));
        assert_string_equal(text, "02:00-04:00,13:15-14:45");
        assert_int_equal(fleet_windows_parse("", w, &n), -RINGIL_EMALFORMED);
        assert_int_equal(fleet_windows_parse("02:00-04:00,", w, &n), -RINGIL_EMALFORMED);
        assert_int_equal(fleet_windows_parse("02:00-04:00;05:00-06:00", w, &n), -RINGIL_EMALFORMED);
        assert_int_equal(fleet_windows_parse("01:00-02:00,01:00-02:00,01:00-02:00,01:00-02:00,01:00-02:00,"
                                             "01:00-02:00,01:00-02:00,01:00-02:00,01:00-02:00", w, &n),
                         -RINGIL_EMALFORMED);
}

static void test_open(void **state) {
        struct fleet_window w[FLEET_MAX_WINDOWS];
        size_t n;
        (void) state;
        assert_true(fleet_windows_open(NULL, 0, 700));    /* no windows: any time */
        assert_int_equal(fleet_windows_parse("02:00-04:00", w, &n), 0);
        assert_false(fleet_windows_open(w, n, 119));
        assert_true(fleet_windows_open(w, n, 120));
        assert_true(fleet_windows_open(w, n, 239));
        assert_false(fleet_windows_open(w, n, 240));      /* end is exclusive */
        assert_int_equal(fleet_windows_wait(w, n, 60), 60);
        assert_int_equal(fleet_windows_wait(w, n, 240), 1320);
        assert_int_equal(fleet_windows_wait(w, n, 130), 0);
        assert_int_equal(fleet_windows_parse("22:00-02:00,12:00-12:30", w, &n), 0);
        assert_true(fleet_windows_open(w, n, 1380));
        assert_true(fleet_windows_open(w, n, 0));
        assert_true(fleet_windows_open(w, n, 119));
        assert_false(fleet_windows_open(w, n, 120));
        assert_true(fleet_windows_open(w, n, 725));
        assert_int_equal(fleet_windows_wait(w, n, 120), 600);
        assert_int_equal(fleet_windows_wait(w, n, 750), 570);
        assert_int_equal(fleet_windows_parse("00:00-24:00", w, &n), 0);
        for (unsigned m = 0; m < 1440; m++)
                assert_true(fleet_windows_open(w, n, m));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_open),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
