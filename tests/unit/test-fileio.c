/* test-fileio.c: atomic replacement, bounded reads and symlink refusal. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests.h"

#include "fileio.h"
#include "macro.h"

static char *path_in(void **state, const char *name) {
        char *p;
        if (asprintf(&p, "%s/%s", (char *) *state, name) < 0)
                return NULL;
        return p;
}

static void test_atomic_write_and_read(void **state) {
        _cleanup_free_ char *p = path_in(state, "f");
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        struct stat st;

        assert_int_equal(atomic_write_file(p, "hello", 5, 0640, 0), 0);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        assert_int_equal(read_full_file(p, 0, 100, &data, &len), 0);
        assert_int_equal(len, 5);
        assert_memory_equal(data, "hello", 6);
        free(TAKE_PTR(data));

        assert_int_equal(atomic_write_file(p, "bye", 3, 0600, 0), 0);
        assert_int_equal(read_full_file(p, 0, 100, &data, &len), 0);
        assert_int_equal(len, 3);
        assert_int_equal(atomic_write_file(p, "x", 1, 0600, AW_NOREPLACE), -EEXIST);
}

static void test_no_temp_left(void **state) {
        _cleanup_free_ char *p = path_in(state, "g");
        DIR *d;
        struct dirent *de;
        int n = 0;

        assert_int_equal(atomic_write_file(p, "a", 1, 0600, 0), 0);
        d = opendir(*state);
        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
                        n++;
        closedir(d);
        assert_int_equal(n, 1);
}

static void test_read_cap(void **state) {
        _cleanup_free_ char *p = path_in(state, "big");
        uint8_t *data = NULL;
        size_t len = 0;

        assert_int_equal(atomic_write_file(p, "0123456789", 10, 0600, 0), 0);
        assert_int_equal(read_full_file(p, 0, 9, &data, &len), -EFBIG);
        assert_null(data);
        assert_int_equal(read_full_file(p, 0, 10, &data, &len), 0);
        free(data);
}

static void test_nofollow(void **state) {
        _cleanup_free_ char *p = path_in(state, "t"), *l = path_in(state, "l");
        uint8_t *data = NULL;
        size_t len;

        assert_int_equal(atomic_write_file(p, "x", 1, 0600, 0), 0);
        assert_int_equal(symlink(p, l), 0);
        assert_int_equal(read_full_file(l, RFILE_NOFOLLOW, 10, &data, &len), -ELOOP);
        assert_int_equal(read_full_file(l, 0, 10, &data, &len), 0);
        free(data);
}

static void test_read_exact_short(void **state) {
        _cleanup_free_ char *p = path_in(state, "s");
        _cleanup_close_ int fd = -EBADF;
        char b[8];

        assert_int_equal(atomic_write_file(p, "abc", 3, 0600, 0), 0);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(read_exact(fd, b, 8), -ENODATA);
}

/*
 * Durability cannot be observed by killing a process (the page cache survives SIGKILL), so the test
 * records which files are fsynced: this definition takes the place of libc's for every call in this
 * program, including the library's, and forwards to the system call.
 */
static char synced[16][PATH_MAX];
static size_t n_synced;

int fsync(int fd) {
        char link[64];
        ssize_t n;

        (void) snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        if (n_synced < ELEMENTSOF(synced) && (n = readlink(link, synced[n_synced], PATH_MAX - 1)) > 0)
                synced[n_synced++][n] = '\0';
        return (int) syscall(SYS_fsync, fd);
}

static bool was_synced(const char *path) {
        for (size_t i = 0; i < n_synced; i++)
                if (streq(synced[i], path))
                        return true;
        return false;
}

static void test_mkdir_p(void **state) {
        _cleanup_free_ char *p = path_in(state, "a/b/c"), *a = path_in(state, "a"), *ab = path_in(state, "a/b"),
                            *f = path_in(state, "f");
        struct stat st;

        n_synced = 0;
        assert_int_equal(mkdir_p(p, 0700), 0);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
        /* Every created directory and every parent that gained an entry is durable. */
        assert_true(was_synced(*state));
        assert_true(was_synced(a));
        assert_true(was_synced(ab));
        assert_true(was_synced(p));

        /* Existing directories are accepted, and nothing needs syncing then. */
        n_synced = 0;
        assert_int_equal(mkdir_p(p, 0700), 0);
        assert_int_equal(n_synced, 0);
        /* A new leaf under existing directories: the leaf and its parent only. */
        free(p);
        p = path_in(state, "a/b/d/");
        n_synced = 0;
        assert_int_equal(mkdir_p(p, 0700), 0);
        assert_int_equal(n_synced, 2);
        assert_true(was_synced(ab));

        /* A file in the way is not a directory, wherever it is. */
        assert_int_equal(atomic_write_file(f, "x", 1, 0600, 0), 0);
        assert_int_equal(mkdir_p(f, 0700), -ENOTDIR);
        free(p);
        p = path_in(state, "f/sub");
        assert_int_equal(mkdir_p(p, 0700), -ENOTDIR);
}

/* On vfat a renamed file's size and first cluster reach its new directory entry only when the inode is
 * written back: the file is synced again under its final name, then the directory (tests/vm caught a 0-byte
 * boot entry after a power cut without it). */
static void test_synced_at_final_name(void **state) {
        _cleanup_free_ char *f = path_in(state, "entry.conf");

        n_synced = 0;
        assert_int_equal(atomic_write_file(f, "title x\n", 8, 0644, 0), 0);
        assert_int_equal(n_synced, 3);
        assert_true(strstr(synced[0], "/.#entry.conf.") != NULL);   /* the data, before the rename */
        assert_string_equal(synced[1], f);                         /* the inode at its new entry */
        assert_string_equal(synced[2], (char *) *state);           /* the directory */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_synced_at_final_name, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_atomic_write_and_read, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_no_temp_left, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_read_cap, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_nofollow, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_read_exact_short, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_mkdir_p, test_setup_tmpdir, test_teardown_tmpdir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
