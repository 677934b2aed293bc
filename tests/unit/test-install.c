/* test-install.c: booted-slot detection, hooks and the Authenticode gate of the install engine. */
#include <sys/stat.h>
#include <unistd.h>

#include "tests.h"

#include "err.h"
#include "fileio.h"
#include "install.h"
#include "macro.h"

static void conf_in(const char *d, struct device_conf *c) {
        char text[2048];

        snprintf(text, sizeof(text), "[device]\ncompatible = t\nesp = %s/esp\nstate-dir = %s/state\nefivarfs = %s/efi\n", d,
                 d, d);
        assert_int_equal(device_conf_parse(text, strlen(text), c), 0);
}

static void test_booted_slot(void **state) {
        const char *d = *state;
        struct device_conf c;
        struct install_state st;
        char p[1024];
        char *id = NULL;
        int slot = -1;
        static const unsigned char sel[] = { 6, 0, 0, 0, 'r', 0, 'i', 0, 'n', 0, 'g', 0, 'i', 0, 'l', 0, '-', 0, 'b', 0,
                                             '-', 0, '1', 0, '.', 0, 'c', 0, 'o', 0, 'n', 0, 'f', 0, 0, 0 };

        conf_in(d, &c);
        /* Nothing known: refuse to guess. */
        assert_int_equal(install_booted_slot(&c, NULL, &slot, &id), -ENOENT);
        /* Override. */
        assert_int_equal(install_booted_slot(&c, "ringil-a-1.0.conf", &slot, &id), 0);
        assert_int_equal(slot, 0);
        assert_string_equal(id, "ringil-a-1.0.conf");
        free(TAKE_PTR(id));
        /* Not one of ours, or with a counter (ids never carry one): refused. */
        assert_int_equal(install_booted_slot(&c, "nixos-generation-1.conf", &slot, &id), -RINGIL_EREFUSED);
        assert_int_equal(install_booted_slot(&c, "ringil-a-1.0+3.conf", &slot, &id), -RINGIL_EREFUSED);
        /* Without the efivar the state's single good slot is NOT taken for the booted one: booted into a
         * pending slot, that guess would name the other slot and make the running one the target. */
        install_state_init(&st);
        st.slots[1].status = SLOT_GOOD;
        assert_int_equal(install_state_save(c.state_dir, &st), 0);
        slot = -1;
        assert_int_equal(install_booted_slot(&c, NULL, &slot, &id), -ENOENT);
        assert_int_equal(slot, -1);
        assert_null(id);
        /* LoaderEntrySelected wins. */
        snprintf(p, sizeof(p), "%s/efi", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/efi/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", d);
        assert_int_equal(atomic_write_file(p, sel, sizeof(sel), 0644, 0), 0);
        assert_int_equal(install_booted_slot(&c, NULL, &slot, &id), 0);
        assert_int_equal(slot, 1);
        assert_string_equal(id, "ringil-b-1.conf");
        free(id);
        device_conf_done(&c);
}

static void test_hook(void **state) {
        char p[1024];
        FILE *f;

        snprintf(p, sizeof(p), "%s/hook", (char *) *state);
        f = fopen(p, "w");
        assert_non_null(f);
        fputs("#!/bin/sh\n[ \"$RINGIL_SLOT\" = b ] && [ \"$RINGIL_VERSION\" = 2.0 ] && exit 7\nexit 0\n", f);
        fclose(f);
        assert_int_equal(chmod(p, 0755), 0);
        assert_int_equal(install_run_hook(p, "pre-install", 1, "2.0"), 7);
        assert_int_equal(install_run_hook(p, "pre-install", 0, "2.0"), 0);
        assert_int_equal(install_run_hook("/nonexistent/hook", "x", 0, NULL), 127);
}

static void test_efi_gate_fails_closed(void **state) {
        uint8_t junk[512] = { 'M', 'Z' };
        (void) state;

        assert_true(install_efi_verifier_available());
        /* Not a PE, no keyring, empty: never 0. */
        assert_true(install_efi_verify("/nonexistent.pem", junk, sizeof(junk)) < 0);
        assert_true(install_efi_verify("/etc/ssl/certs/ca-certificates.crt", junk, sizeof(junk)) < 0);
        assert_true(install_efi_verify("/etc/ssl/certs/ca-certificates.crt", junk, 0) < 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_booted_slot, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_hook, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test(test_efi_gate_fails_closed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
