/* test-fleet-form.c: form and query decoding (escapes, limits, repeated and hostile fields) and query encoding. */
#include "tests.h"

#include <string.h>

#include "err.h"
#include "fleet-form.h"

static int parse(const char *s, struct form *f) {
        return form_parse(s, strlen(s), f);
}

static void test_fields_are_decoded(void **state) {
        struct form f;
        (void) state;
        assert_int_equal(parse("id=drone-7&csrf=123.abc&q=a+b%2Fc%25&empty=", &f), 0);
        assert_int_equal(f.n, 4);
        assert_string_equal(form_get(&f, "id"), "drone-7");
        assert_string_equal(form_get(&f, "csrf"), "123.abc");
        assert_string_equal(form_get(&f, "q"), "a b/c%");
        assert_string_equal(form_get(&f, "empty"), "");
        assert_null(form_get(&f, "missing"));
        form_done(&f);
        /* empty fields are skipped; nothing at all is an empty form */
        assert_int_equal(parse("&a=1&&b=2&", &f), 0);
        assert_int_equal(f.n, 2);
        form_done(&f);
        assert_int_equal(form_parse("", 0, &f), 0);
        assert_int_equal(f.n, 0);
        form_done(&f);
        /* UTF-8 survives, hostile markup is only text to this layer */
        assert_int_equal(parse("q=%C3%BC%F0%9F%9A%81&x=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E", &f), 0);
        assert_string_equal(form_get(&f, "q"), "ü🚁");
        assert_string_equal(form_get(&f, "x"), "<img src=x onerror=alert(1)>");
        form_done(&f);
}

static void test_malformed_is_refused(void **state) {
        static const char *const bad[] = {
                "a",              /* no '=' */
                "=v",             /* empty name */
                "a b=1",          /* name charset */
                "a.b=1",
                "a=%",            /* cut escapes */
                "a=%4",
                "a=%4g",
                "a=%zz",
                "a=1&a=2",        /* one meaning per name */
                "a=%00",          /* a NUL would cut the value */
                "a=x%0Ay",        /* control bytes */
                "a=%1B%5B31m",
                "a=%7F",
                "a=%FF",          /* not UTF-8 */
                "a=%C3",
                "a=%E2%80%AE",    /* bidi override */
                "a=%E2%80%A8",    /* line separator */
        };
        struct form f;
        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(parse(bad[i], &f), -RINGIL_EMALFORMED);
                assert_int_equal(f.n, 0);
                assert_null(f.storage);
                form_done(&f);
        }
        /* the cut escape at the very end of a field, with a following field */
        assert_int_equal(parse("a=%4&b=1", &f), -RINGIL_EMALFORMED);
}

static void test_limits(void **state) {
        char big[FORM_MAX_INPUT + 2], name[FORM_MAX_NAME + 4];
        struct form f;
        size_t k = 0;
        (void) state;
        memset(big, 'a', sizeof(big));
        big[0] = 'v', big[1] = '=';
        assert_int_equal(form_parse(big, FORM_MAX_INPUT + 1, &f), -RINGIL_ETOOBIG);
        /* a value over FORM_MAX_VALUE */
        big[FORM_MAX_VALUE + 3] = '\0';
        assert_int_equal(parse(big, &f), -RINGIL_ETOOBIG);
        big[FORM_MAX_VALUE + 2] = '\0';
        assert_int_equal(parse(big, &f), 0);
        assert_int_equal(strlen(form_get(&f, "v")), FORM_MAX_VALUE);
        form_done(&f);
        /* names */
        memset(name, 'n', sizeof(name));
        strcpy(name + FORM_MAX_NAME + 1, "=");
        assert_int_equal(parse(name, &f), -RINGIL_EMALFORMED);
        strcpy(name + FORM_MAX_NAME, "=");
        assert_int_equal(parse(name, &f), 0);
        form_done(&f);
        /* fields */
        for (int i = 0; i <= FORM_MAX_FIELDS; i++)
                k += (size_t) snprintf(big + k, sizeof(big) - k, "f%d=1&", i);
        assert_int_equal(parse(big, &f), -RINGIL_ETOOBIG);
        big[k - strlen("f32=1&")] = '\0';
        assert_int_equal(parse(big, &f), 0);
        assert_int_equal(f.n, FORM_MAX_FIELDS);
        form_done(&f);
}

static void test_encode(void **state) {
        char out[64];
        struct form f;
        (void) state;
        assert_string_equal(form_encode("drone-7_a.b~", out, sizeof(out)), "drone-7_a.b~");
        assert_string_equal(form_encode("a b&c=d/<>\"'", out, sizeof(out)), "a%20b%26c%3Dd%2F%3C%3E%22%27");
        assert_string_equal(form_encode("ü", out, sizeof(out)), "%C3%BC");
        assert_null(form_encode("abc", out, 3));
        assert_string_equal(out, "");
        assert_non_null(form_encode("abc", out, 4));
        assert_null(form_encode("<", out, 3));
        /* round trip */
        char q[80];
        snprintf(q, sizeof(q), "v=%s", form_encode("<img src=x onerror=alert(1)>", out, sizeof(out)));
        assert_int_equal(parse(q, &f), 0);
        assert_string_equal(form_get(&f, "v"), "<img src=x onerror=alert(1)>");
        form_done(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fields_are_decoded),
                cmocka_unit_test(test_malformed_is_refused),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_encode),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
