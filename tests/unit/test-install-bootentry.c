/* test-install-bootentry.c: entry names with boot counters, systemd-boot's order, bless/bad renames, loader.conf. */
#include <sys/stat.h>
#include <unistd.h>

#include "tests.h"

#include "install-bootentry.h"
#include "err.h"
#include "fileio.h"
#include "macro.h"

static void test_parse_name(void **state) {
        struct boot_entry e;
        (void) state;

        assert_int_equal(bootentry_parse_name("ringil-b-2.0+3.conf", "ringil", &e), 0);
        assert_string_equal(e.id, "ringil-b-2.0.conf");
        assert_string_equal(e.version, "2.0");
        assert_int_equal(e.slot, 1);
        assert_int_equal(e.tries_left, 3);
        assert_int_equal(e.tries_done, -1);
        assert_int_equal(bootentry_parse_name("ringil-a-1.2.10+0-3.conf", "ringil", &e), 0);
        assert_int_equal(e.tries_left, 0);
        assert_int_equal(e.tries_done, 3);
        assert_true(bootentry_is_bad(&e));
        assert_int_equal(bootentry_parse_name("ringil-a-1.0.conf", "ringil", &e), 0);
        assert_int_equal(e.tries_left, -1);
        assert_false(bootentry_is_bad(&e));

        static const char *const bad[] = { "ringil-c-1.0.conf", "ringil-a-1.0", "ringil-a-x.conf", "ringil-a-1.0+.conf",
                                           "ringil-a-1.0+1-.conf", "ringil-a-1.0+a.conf", "other-a-1.0.conf",
                                           "ringil-a-.conf", "ringil-a-1.0+2147483648.conf", "ringilx-a-1.0.conf" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(bootentry_parse_name(bad[i], "ringil", &e), -RINGIL_EMALFORMED);
}

static void touch(const char *dir, const char *name) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/loader/entries/%s", dir, name);
        assert_int_equal(atomic_write_file(p, "title x\n", 8, 0644, 0), 0);
}

/* Ids as systemd-boot reports them: counter kept (before 257.x) or stripped, suffix or not. */
static void test_parse_id(void **state) {
        struct boot_entry e;
        (void) state;

        assert_int_equal(bootentry_parse_id("ringil-b-2.0+3.conf", "ringil", &e), 0);
        assert_int_equal(e.slot, 1);
        assert_string_equal(e.version, "2.0");
        assert_string_equal(e.id, "ringil-b-2.0.conf");
        assert_string_equal(e.file, "");
        assert_int_equal(e.tries_left, 3);
        assert_int_equal(bootentry_parse_id("ringil-b-2.0+1-2", "ringil", &e), 0);
        assert_int_equal(e.tries_left, 1);
        assert_int_equal(e.tries_done, 2);
        assert_int_equal(bootentry_parse_id("ringil-a-10.0.conf", "ringil", &e), 0);
        assert_int_equal(e.tries_left, -1);
        assert_int_equal(bootentry_parse_id("ringil-a-10.0", "ringil", &e), 0);
        assert_int_equal(bootentry_parse_id("ringil-a-10.0.CONF", "ringil", &e), 0);
        /* Counters up to systemd-boot's INT_MAX (an entry booted past 9999 times by a loader that ignores 0 left). */
        assert_int_equal(bootentry_parse_id("ringil-a-1.0+0-2147483647.conf", "ringil", &e), 0);
        assert_int_equal(e.tries_done, 2147483647);

        static const char *const bad[] = { "ringil-b-2.0+x.conf", "ringil-b-2.0+.conf", "ringil-b-2.0+3-.conf",
                                           "ringil-b-2.0+3-1-1.conf", "ringil-b-2.0+-1.conf", "ringil-b-2.0+2147483648",
                                           "ringil-b-2.0.efi", "ringil-b-2.0+3.efi", "nixos-generation-3.conf",
                                           "ringil-c-1.0", "ringil-b-", "", "ringil-b-2.0+3+1.conf", "ringil-b-2.0 " };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(bootentry_parse_id(bad[i], "ringil", &e), -RINGIL_EMALFORMED);
        assert_int_equal(bootentry_parse_id("ringil-b-2.0+x.conf", "ringil", &e), -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "the `+' is not a boot counter"));
        assert_int_equal(bootentry_parse_id("ringil-b-2.0.efi", "ringil", &e), -RINGIL_EMALFORMED);
        assert_non_null(strstr(ringil_detail(), "Type #2"));
}

static void test_identify(void **state) {
        const char *d = *state;
        char p[4200];
        struct boot_entry e;

        snprintf(p, sizeof(p), "%s/loader/entries", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        assert_int_equal(bootentry_identify(d, "ringil", "ringil-b-2.0+3.conf", NULL, &e), -ENOENT);
        touch(d, "ringil-a-1.0.conf");
        touch(d, "ringil-b-2.0+1-2.conf");
        touch(d, "nixos-b-2.0.conf");
        assert_int_equal(bootentry_identify(d, "ringil", "ringil-b-2.0+3.conf", "\\loader\\entries\\ringil-b-2.0+1-2.conf", &e), 0);
        assert_string_equal(e.file, "ringil-b-2.0+1-2.conf");
        assert_int_equal(bootentry_identify(d, "ringil", "ringil-a-1.0+3.conf", NULL, &e), 0);
        assert_string_equal(e.file, "ringil-a-1.0.conf");
        /* The count path must be an entry of ours, for the same slot and version, under loader/entries. */
        assert_int_equal(bootentry_identify(d, "ringil", "ringil-b-2.0.conf", "\\EFI\\Linux\\ringil-b-2.0+1-2.conf", &e),
                         -RINGIL_EREFUSED);
        assert_int_equal(bootentry_identify(d, "ringil", "ringil-b-2.0.conf", "\\loader\\entries\\ringil-b-3.0+1-2.conf", &e),
                         -RINGIL_EREFUSED);
        /* Another version than the slot's file, then two files for one slot. */
        assert_int_equal(bootentry_identify(d, "ringil", "ringil-b-3.0.conf", NULL, &e), -RINGIL_EREFUSED);
        touch(d, "ringil-b-2.0.conf");
        assert_int_equal(bootentry_identify(d, "ringil", "ringil-b-2.0.conf", NULL, &e), -RINGIL_EREFUSED);
        assert_non_null(strstr(ringil_detail(), "two entry files for slot b"));
}


static void test_order_and_default(void **state) {
        const char *d = *state;
        char p[4200];
        _cleanup_free_ struct boot_entry *v = NULL;
        size_t n;

        snprintf(p, sizeof(p), "%s/loader/entries", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        touch(d, "ringil-a-1.0.conf");
        touch(d, "ringil-b-2.0+2-1.conf");
        touch(d, "unrelated.conf");
        assert_int_equal(bootentry_list(d, "ringil", &v, &n), 0);
        assert_int_equal(n, 2);
        /* The newer pending entry is tried first. */
        assert_string_equal(bootentry_default(v, n)->file, "ringil-b-2.0+2-1.conf");
        free(TAKE_PTR(v));

        /* Out of tries: it sorts behind the blessed older slot. */
        snprintf(p, sizeof(p), "%s/loader/entries/ringil-b-2.0+2-1.conf", d);
        unlink(p);
        touch(d, "ringil-b-2.0+0-3.conf");
        assert_int_equal(bootentry_list(d, "ringil", &v, &n), 0);
        assert_string_equal(bootentry_default(v, n)->file, "ringil-a-1.0.conf");

        /* Bless and mark bad are renames. */
        assert_int_equal(bootentry_mark_bad(d, &v[0]), 0);
        free(TAKE_PTR(v));
        assert_int_equal(bootentry_list(d, "ringil", &v, &n), 0);
        assert_true(bootentry_is_bad(&v[0]) && bootentry_is_bad(&v[1]));
        assert_string_equal(v[0].file, "ringil-b-2.0+0-3.conf");   /* all bad: newest first */
        assert_int_equal(bootentry_bless(d, &v[0]), 0);
        free(TAKE_PTR(v));
        assert_int_equal(bootentry_list(d, "ringil", &v, &n), 0);
        assert_string_equal(v[0].file, "ringil-b-2.0.conf");

        snprintf(p, sizeof(p), "%s/EFI/ringil", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        assert_int_equal(bootentry_put_file(d, "/EFI/ringil/ringil-b-2.0.efi", "MZ", 2), 0);
        assert_int_equal(bootentry_put_file(d, "/EFI/ringil/ringil-a-1.0.efi", "MZ", 2), 0);
        assert_int_equal(bootentry_remove_slot(d, "ringil", 1), 0);
        snprintf(p, sizeof(p), "%s/EFI/ringil/ringil-b-2.0.efi", d);
        assert_int_equal(access(p, F_OK), -1);
        snprintf(p, sizeof(p), "%s/EFI/ringil/ringil-a-1.0.efi", d);
        assert_int_equal(access(p, F_OK), 0);
        assert_int_equal(bootentry_put_file(d, "/EFI/../x", "MZ", 2), -EINVAL);
        free(TAKE_PTR(v));
        assert_int_equal(bootentry_list(d, "ringil", &v, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].slot, 0);
}

static void test_loader_conf(void **state) {
        const char *d = *state;
        char p[4200];
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;

        snprintf(p, sizeof(p), "%s/loader", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/loader/loader.conf", d);
        assert_int_equal(atomic_write_file(p, "timeout 0\ndefault nixos-*\neditor no\ndefault x\n", 46, 0644, 0), 0);
        assert_int_equal(bootentry_set_default(d, "ringil-*"), 0);
        assert_int_equal(read_full_file(p, 0, 4096, &data, &len), 0);
        assert_string_equal((char *) data, "timeout 0\ndefault ringil-*\neditor no\n");
}

static void test_selected(void **state) {
        static const unsigned char ok[] = { 6, 0, 0, 0, 'r', 0, '-', 0, 'a', 0, 0, 0 };
        static const unsigned char wide[] = { 6, 0, 0, 0, 'r', 1, 0, 0 };
        static const unsigned char odd[] = { 6, 0, 0, 0, 'r' };
        char *s = NULL;
        (void) state;

        assert_int_equal(bootentry_decode_selected(ok, sizeof(ok), &s), 0);
        assert_string_equal(s, "r-a");
        free(s);
        assert_int_equal(bootentry_decode_selected(wide, sizeof(wide), &s), -RINGIL_EMALFORMED);
        assert_int_equal(bootentry_decode_selected(odd, sizeof(odd), &s), -RINGIL_EMALFORMED);
        assert_int_equal(bootentry_selected("/nonexistent", &s), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_name),
                cmocka_unit_test(test_parse_id),
                cmocka_unit_test_setup_teardown(test_identify, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_order_and_default, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_loader_conf, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test(test_selected),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
