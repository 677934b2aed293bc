/* test-efi-var.c: efivarfs read/write against a plain directory standing in for it, the strict boolean
 * reader, and mode decoding. */
#include "tests.h"

#include <stdbool.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "efi-var.h"
#include "err.h"
#include "fileio.h"
#include "macro.h"

static void put_var(const char *dir, const char *name, const uint8_t *raw, size_t len) {
        char *p = NULL;
        assert_int_equal(efivar_path(dir, name, &EFI_GLOBAL_VARIABLE_GUID, &p), 0);
        assert_int_equal(atomic_write_file(p, raw, len, 0644, 0), 0);
        free(p);
}

static void put_bool(const char *dir, const char *name, uint8_t v) {
        const uint8_t raw[5] = { 0x06, 0, 0, 0, v };
        put_var(dir, name, raw, sizeof(raw));
}

static void test_var_path(void **state) {
        char *p = NULL;
        (void) state;
        assert_int_equal(efivar_path("/x", "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, &p), 0);
        assert_string_equal(p, "/x/db-d719b2cb-3d3a-4596-a3bc-dad00e67656f");
        free(p);
        assert_int_equal(efivar_path("/x", "a/b", &LOADER_GUID, &p), -EINVAL);
        assert_int_equal(efivar_path("/x", "", &LOADER_GUID, &p), -EINVAL);
}

static void test_decode(void **state) {
        const uint8_t raw[] = { 0x27, 0, 0, 0, 'x', 'y' };
        const uint8_t *d;
        uint32_t a = 0;
        size_t n = 0;
        (void) state;
        assert_int_equal(efivar_decode(raw, sizeof(raw), &a, &d, &n), 0);
        assert_int_equal(a, 0x27);
        assert_int_equal(n, 2);
        assert_ptr_equal(d, raw + 4);
        assert_int_equal(efivar_decode(raw, 4, &a, &d, &n), 0);
        assert_int_equal(n, 0);
        for (size_t k = 0; k < 4; k++)
                assert_int_equal(efivar_decode(raw, k, &a, &d, &n), -RINGIL_ETRUNCATED);
}

static void test_write_read(void **state) {
        const char *dir = *state;
        uint8_t *data = NULL;
        uint32_t attr;
        size_t len;

        assert_int_equal(efivar_read(dir, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, &attr, &data, &len), -ENOENT);
        assert_int_equal(efivar_write(dir, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, 0x27,
                                      (const uint8_t *) "hello world", 11), 0);
        assert_int_equal(efivar_read(dir, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, &attr, &data, &len), 0);
        assert_int_equal(attr, 0x27);
        assert_int_equal(len, 11);
        assert_memory_equal(data, "hello world", 11);
        free(data);

        /* A shorter rewrite leaves no stale tail behind. */
        assert_int_equal(efivar_write(dir, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, 0x7, (const uint8_t *) "hi", 2), 0);
        assert_int_equal(efivar_read(dir, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, &attr, &data, &len), 0);
        assert_int_equal(attr, 0x7);
        assert_int_equal(len, 2);
        assert_memory_equal(data, "hi", 2);
        free(data);

        /* Truncated variable. */
        put_var(dir, "PK", (const uint8_t *) "\x27\x00", 2);
        assert_int_equal(efivar_read(dir, "PK", &EFI_GLOBAL_VARIABLE_GUID, &attr, &data, &len), -RINGIL_ETRUNCATED);
}

static void test_oversized(void **state) {
        const char *dir = *state;
        uint8_t *big = calloc(1, EFIVAR_MAX_SIZE + 5), *data = NULL;
        uint32_t attr;
        size_t len;
        assert_non_null(big);
        put_var(dir, "dbx", big, EFIVAR_MAX_SIZE + 5);
        assert_int_equal(efivar_read(dir, "dbx", &EFI_GLOBAL_VARIABLE_GUID, &attr, &data, &len), -RINGIL_ETOOBIG);
        put_var(dir, "dbx", big, EFIVAR_MAX_SIZE + 4);
        assert_int_equal(efivar_read(dir, "dbx", &EFI_GLOBAL_VARIABLE_GUID, &attr, &data, &len), 0);
        assert_int_equal(len, EFIVAR_MAX_SIZE);
        free(data);
        assert_int_equal(efivar_write(dir, "x", &LOADER_GUID, 7, big, EFIVAR_MAX_SIZE + 1), -EINVAL);
        free(big);
}

static void test_mode_from_dir(void **state) {
        const char *dir = *state;
        enum sb_mode m;

        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_UNKNOWN);   /* nothing there */
        put_bool(dir, "SecureBoot", 0);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_UNKNOWN);   /* SetupMode missing */
        put_bool(dir, "SetupMode", 1);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_SETUP);     /* pre-2.5 firmware: no AuditMode/DeployedMode */
        put_bool(dir, "AuditMode", 1);
        put_bool(dir, "DeployedMode", 0);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_AUDIT);
        put_bool(dir, "AuditMode", 0);
        put_bool(dir, "SetupMode", 0);
        put_bool(dir, "SecureBoot", 1);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_USER);
        put_bool(dir, "DeployedMode", 1);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_DEPLOYED);
        put_bool(dir, "DeployedMode", 0);
        put_bool(dir, "SecureBoot", 0);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_DISABLED);

        /* Truncated, over-long or non-boolean SecureBoot: unknown, never user. */
        put_bool(dir, "SecureBoot", 1);
        put_var(dir, "SecureBoot", (const uint8_t *) "\x06\x00\x00\x00", 4);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_UNKNOWN);
        put_var(dir, "SecureBoot", (const uint8_t *) "\x06\x00\x00\x00\x01\x01", 6);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_UNKNOWN);
        put_bool(dir, "SecureBoot", 2);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_UNKNOWN);
        put_bool(dir, "SecureBoot", 1);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), 0);
        assert_int_equal(m, SB_MODE_USER);

        test_rm_rf(dir);
        assert_int_equal(efivar_secure_boot_mode(dir, &m), -ENOENT);
}

/* Set or clear FS_IMMUTABLE_FL; returns -1 where the file system cannot (then the test is skipped). */
static int set_immutable(const char *path, bool on) {
        int fd = open(path, O_RDONLY | O_CLOEXEC), flags, r = -1;
        if (fd < 0)
                return -1;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
                flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
                r = ioctl(fd, FS_IOC_SETFLAGS, &flags);
        }
        close(fd);
        return r;
}

static void test_write_immutable(void **state) {
        const char *dir = *state;
        char *p = NULL;
        uint8_t *data = NULL;
        uint32_t attr;
        size_t len;
        int fd;
        assert_int_equal(efivar_write(dir, "KEK", &EFI_GLOBAL_VARIABLE_GUID, 0x27, (const uint8_t *) "old", 3), 0);
        assert_int_equal(efivar_path(dir, "KEK", &EFI_GLOBAL_VARIABLE_GUID, &p), 0);
        if (set_immutable(p, true) < 0) {
                free(p);
                skip();
        }
        /* The kernel refuses to open an immutable file for writing: proves the flag is in effect. */
        fd = open(p, O_WRONLY | O_CLOEXEC);
        assert_int_equal(fd, -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(efivar_write(dir, "KEK", &EFI_GLOBAL_VARIABLE_GUID, 0x27, (const uint8_t *) "new!", 4), 0);
        assert_int_equal(efivar_read(dir, "KEK", &EFI_GLOBAL_VARIABLE_GUID, &attr, &data, &len), 0);
        assert_int_equal(len, 4);
        assert_memory_equal(data, "new!", 4);
        free(data);
        /* The flag is back: the variable cannot be deleted or rewritten behind our back. */
        fd = open(p, O_WRONLY | O_CLOEXEC);
        assert_int_equal(fd, -1);
        assert_int_equal(errno, EPERM);
        (void) set_immutable(p, false);
        free(p);
}

/* The strict boolean reader shared by the mode decoder, `ringil keys` and the auditor. */
static void test_read_bool(void **state) {
        const char *dir = *state;

        assert_int_equal(efivar_bool_decode((const uint8_t *) "", 0), -RINGIL_ETRUNCATED);
        assert_int_equal(efivar_bool_decode((const uint8_t *) "\0", 1), 0);
        assert_int_equal(efivar_bool_decode((const uint8_t *) "\1", 1), 1);
        assert_int_equal(efivar_bool_decode((const uint8_t *) "\2", 1), -RINGIL_EMALFORMED);
        assert_int_equal(efivar_bool_decode((const uint8_t *) "\xff", 1), -RINGIL_EMALFORMED);
        assert_int_equal(efivar_bool_decode((const uint8_t *) "\1\0", 2), -RINGIL_EMALFORMED);   /* no trailing byte */
        assert_int_equal(efivar_bool_decode((const uint8_t *) "\0\0", 2), -RINGIL_EMALFORMED);

        assert_int_equal(efivar_read_bool(dir, "SetupMode"), -ENOENT);
        put_bool(dir, "SetupMode", 1);
        assert_int_equal(efivar_read_bool(dir, "SetupMode"), 1);
        put_bool(dir, "SetupMode", 0);
        assert_int_equal(efivar_read_bool(dir, "SetupMode"), 0);
        put_bool(dir, "SetupMode", 2);
        assert_int_equal(efivar_read_bool(dir, "SetupMode"), -RINGIL_EMALFORMED);
        put_var(dir, "SetupMode", (const uint8_t *) "\x06\x00\x00\x00", 4);   /* attributes, no data */
        assert_int_equal(efivar_read_bool(dir, "SetupMode"), -RINGIL_ETRUNCATED);
        put_var(dir, "SetupMode", (const uint8_t *) "\x06\x00", 2);             /* not even the attributes */
        assert_int_equal(efivar_read_bool(dir, "SetupMode"), -RINGIL_ETRUNCATED);
        put_var(dir, "SetupMode", (const uint8_t *) "\x06\x00\x00\x00\x01\x00", 6);
        assert_int_equal(efivar_read_bool(dir, "SetupMode"), -RINGIL_EMALFORMED);
        /* Only the global GUID is read: the same name under another vendor is not SetupMode. */
        {
                char *p = NULL;
                assert_int_equal(efivar_path(dir, "SecureBoot", &LOADER_GUID, &p), 0);
                assert_int_equal(atomic_write_file(p, "\x06\x00\x00\x00\x01", 5, 0644, 0), 0);
                free(p);
                assert_int_equal(efivar_read_bool(dir, "SecureBoot"), -ENOENT);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_var_path),
                cmocka_unit_test(test_decode),
                cmocka_unit_test_setup_teardown(test_write_read, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_oversized, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_write_immutable, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mode_from_dir, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_read_bool, test_setup_tmpdir, test_teardown_tmpdir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
