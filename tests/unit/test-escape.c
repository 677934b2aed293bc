/* test-escape.c: escape_text(): control bytes, DEL, invalid UTF-8, line and bidi controls; idempotence,
 * truncation; and the sinks (ringil_fail details, log lines) that apply it to every message. */
#include "tests.h"

#include <fcntl.h>
#include <unistd.h>

#include "err.h"
#include "escape.h"
#include "log.h"

static const char *esc(const char *s) {
        static char buf[256];
        return escape_text(s, buf, sizeof(buf));
}

static void test_plain_text_is_kept(void **state) {
        (void) state;
        assert_string_equal(esc("v2.rb"), "v2.rb");
        assert_string_equal(esc(""), "");
        assert_string_equal(esc(NULL), "");
        assert_string_equal(esc("drone-017 ünïcödé ✓ 🚁"), "drone-017 ünïcödé ✓ 🚁");
        assert_string_equal(esc("back\\slash"), "back\\slash");
        assert_false(escape_needed("drone-017 ünïcödé ✓"));
}

static void test_controls_are_escaped(void **state) {
        (void) state;
        assert_string_equal(esc("a\nb"), "a\\nb");
        assert_string_equal(esc("a\r\tb"), "a\\r\\tb");
        assert_string_equal(esc("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_string_equal(esc("del\x7f"), "del\\x7f");
        assert_string_equal(esc("\x01\x1f"), "\\x01\\x1f");
        assert_true(escape_needed("x\n"));
        assert_true(escape_needed("\x1b"));
}

static void test_invalid_utf8_is_escaped_bytewise(void **state) {
        (void) state;
        assert_string_equal(esc("x\xff" "y"), "x\\xffy");
        assert_string_equal(esc("\xc3"), "\\xc3");                     /* cut sequence */
        assert_string_equal(esc("\xc0\xaf"), "\\xc0\\xaf");            /* overlong '/' */
        assert_string_equal(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80");   /* surrogate */
        assert_string_equal(esc("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");   /* above U+10FFFF */
        assert_true(escape_needed("\xff"));
}

static void test_c1_line_and_bidi_controls(void **state) {
        (void) state;
        assert_string_equal(esc("a\xc2\x9b" "31m"), "a\\u009b31m");      /* CSI as a C1 control */
        assert_string_equal(esc("a\xe2\x80\xa8" "b"), "a\\u2028b");      /* LINE SEPARATOR */
        assert_string_equal(esc("evil\xe2\x80\xae" "fdp.exe"), "evil\\u202efdp.exe");   /* RLO */
        assert_string_equal(esc("\xe2\x81\xa6"), "\\u2066");
}

static void test_idempotent(void **state) {
        static const char *const inputs[] = { "a\nb\x1b[1m", "\xff\xfe", "x\xe2\x80\xae", "plain", "\\x1b" };
        char once[256], twice[256];
        (void) state;
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
                escape_text(inputs[i], once, sizeof(once));
                escape_text(once, twice, sizeof(twice));
                assert_string_equal(once, twice);
                assert_false(escape_needed(once));
        }
}

static void test_truncation(void **state) {
        char small[8];
        (void) state;
        assert_string_equal(escape_text("abcdefghij", small, sizeof(small)), "abcd...");
        assert_string_equal(escape_text("abcdefg", small, sizeof(small)), "abcdefg");
        /* never cut inside an escape or a UTF-8 sequence */
        assert_string_equal(escape_text("ab\n\ncdef", small, sizeof(small)), "ab\\n...");
        assert_string_equal(escape_text("ü€üxyzzz", small, sizeof(small)), "ü...");
        assert_string_equal(escape_text("abc", small, 1), "");
}

static void test_detail_sink_escapes(void **state) {
        (void) state;
        ringil_fail(-ENOENT, "cannot open bundle '%s'", "bad\nringil: OK\x1b[31m.rb");
        assert_string_equal(ringil_detail(), "cannot open bundle 'bad\\nringil: OK\\x1b[31m.rb'");
        /* wrapping an escaped detail changes nothing further */
        ringil_fail(-ENOENT, "install: %s", ringil_detail());
        assert_string_equal(ringil_detail(), "install: cannot open bundle 'bad\\nringil: OK\\x1b[31m.rb'");
}

static void test_log_sink_escapes(void **state) {
        char out[512] = "";
        int saved, fds[2];
        ssize_t n;
        (void) state;

        assert_int_equal(pipe(fds), 0);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
        log_setup("test");
        log_error("Failed to read '%s'", "a\nfake: line\x1b]0;title\x07\xff");
        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        close(fds[1]);
        n = read(fds[0], out, sizeof(out) - 1);
        close(fds[0]);
        assert_true(n > 0);
        out[n] = '\0';
        assert_string_equal(out, "test: Failed to read 'a\\nfake: line\\x1b]0;title\\x07\\xff'\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain_text_is_kept),
                cmocka_unit_test(test_controls_are_escaped),
                cmocka_unit_test(test_invalid_utf8_is_escaped_bytewise),
                cmocka_unit_test(test_c1_line_and_bidi_controls),
                cmocka_unit_test(test_idempotent),
                cmocka_unit_test(test_truncation),
                cmocka_unit_test(test_detail_sink_escapes),
                cmocka_unit_test(test_log_sink_escapes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
