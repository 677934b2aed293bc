/* test-install.c: booted-slot detection, hooks and the Authenticode gate of the install engine. */
#include <sys/stat.h>
#include <unistd.h>

#include "tests.h"

#include "err.h"
#include "fileio.h"
#include "install.h"
#include "install-bootentry.h"
#include "macro.h"

static void conf_in(const char *d, struct device_conf *c) {
        char text[2048];

        snprintf(text, sizeof(text), "[device]\ncompatible = t\nesp = %s/esp\nstate-dir = %s/state\nefivarfs = %s/efi\n", d,
                 d, d);
        assert_int_equal(device_conf_parse(text, strlen(text), c), 0);
}

static void put_var(const char *d, const char *name, const char *value) {
        unsigned char raw[600] = { 6, 0, 0, 0 };
        size_t n = 4;
        char p[1024];

        for (const char *c = value; *c; c++) {
                raw[n++] = (unsigned char) *c;
                raw[n++] = 0;
        }
        raw[n++] = 0;
        raw[n++] = 0;
        snprintf(p, sizeof(p), "%s/efi", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/efi/%s-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", d, name);
        assert_int_equal(atomic_write_file(p, raw, n, 0644, 0), 0);
}

static void put_entry(const char *d, const char *name) {
        char p[1024];

        snprintf(p, sizeof(p), "%s/esp/loader/entries", d);
        assert_int_equal(mkdir_p(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/esp/loader/entries/%s", d, name);
        assert_int_equal(atomic_write_file(p, "title x\n", 8, 0644, 0), 0);
}

static void test_booted_slot(void **state) {
        const char *d = *state;
        struct device_conf c;
        struct install_state st;
        struct boot_entry e;
        enum booted_state bs;
        char *id = NULL;

        conf_in(d, &c);
        /* Nothing known: refuse to guess, and say where the variable was looked for and what to do. */
        assert_int_equal(install_find_booted(&c, NULL, &e, &id, &bs), -ENOENT);
        assert_int_equal(bs, BOOTED_UNKNOWN);
        assert_non_null(strstr(ringil_detail(), "/efi (efivarfs not mounted"));
        assert_non_null(strstr(ringil_detail(), "--booted ENTRY"));
        /* Override: the id with or without counter and suffix, confirmed against the ESP's one file. */
        put_entry(d, "ringil-a-1.0.conf");
        put_entry(d, "ringil-b-2.0+2-1.conf");
        static const char *const forms[] = { "ringil-b-2.0+2-1.conf", "ringil-b-2.0+3.conf", "ringil-b-2.0.conf",
                                             "ringil-b-2.0", "ringil-b-2.0+3", "ringil-b-2.0+3.CONF" };
        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                assert_int_equal(install_find_booted(&c, forms[i], &e, &id, &bs), 0);
                assert_int_equal(bs, BOOTED_OK);
                assert_int_equal(e.slot, 1);
                assert_string_equal(e.file, "ringil-b-2.0+2-1.conf");
                assert_string_equal(id, forms[i]);
                free(TAKE_PTR(id));
        }
        /* Not one of ours: refused as foreign, with the reason. */
        assert_int_equal(install_find_booted(&c, "nixos-generation-1.conf", &e, &id, &bs), -RINGIL_EREFUSED);
        assert_int_equal(bs, BOOTED_FOREIGN);
        assert_int_equal(install_find_booted(&c, "ringil-b-2.0+x.conf", &e, &id, &bs), -RINGIL_EREFUSED);
        assert_int_equal(bs, BOOTED_FOREIGN);
        assert_non_null(strstr(ringil_detail(), "is not a boot counter"));
        /* Ours, but the ESP disagrees: another version, or no file for the slot. */
        assert_int_equal(install_find_booted(&c, "ringil-b-3.0+3.conf", &e, &id, &bs), -RINGIL_EREFUSED);
        assert_int_equal(bs, BOOTED_INVALID);
        /* Without the efivar the state's single good slot is NOT taken for the booted one: booted into a
         * pending slot, that guess would name the other slot and make the running one the target. */
        install_state_init(&st);
        st.slots[1].status = SLOT_GOOD;
        assert_int_equal(install_state_save(c.state_dir, &st), 0);
        assert_int_equal(install_find_booted(&c, NULL, &e, &id, &bs), -ENOENT);
        assert_null(id);
        /* LoaderEntrySelected as systemd-boot 252 writes it (the name before its rename, counter included)
         * and LoaderBootCountPath (the name after it). */
        put_var(d, "LoaderEntrySelected", "ringil-b-2.0+3.conf");
        put_var(d, "LoaderBootCountPath", "\\loader\\entries\\ringil-b-2.0+2-1.conf");
        assert_int_equal(install_find_booted(&c, NULL, &e, &id, &bs), 0);
        assert_int_equal(e.slot, 1);
        assert_string_equal(id, "ringil-b-2.0+3.conf");
        free(TAKE_PTR(id));
        /* A count path naming another entry than the selected one is refused. */
        put_var(d, "LoaderBootCountPath", "\\loader\\entries\\ringil-a-1.0+2-1.conf");
        assert_int_equal(install_find_booted(&c, NULL, &e, &id, &bs), -RINGIL_EREFUSED);
        assert_non_null(strstr(ringil_detail(), "LoaderBootCountPath"));
        /* As 257.x and later write it (no counter), and two files for one slot. */
        put_var(d, "LoaderBootCountPath", "\\loader\\entries\\ringil-b-2.0+2-1.conf");
        put_var(d, "LoaderEntrySelected", "ringil-b-2.0.conf");
        assert_int_equal(install_find_booted(&c, NULL, &e, &id, &bs), 0);
        free(TAKE_PTR(id));
        put_entry(d, "ringil-b-2.0.conf");
        assert_int_equal(install_find_booted(&c, NULL, &e, &id, &bs), -RINGIL_EREFUSED);
        assert_non_null(strstr(ringil_detail(), "two entry files for slot b"));
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
