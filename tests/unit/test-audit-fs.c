/* test-audit-fs.c: the auditor's root-confined resolver, with openat2 and with the component walk. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests.h"

#include "audit-fs.h"
#include "macro.h"

struct env {
        char *dir;    /* tmp dir: holds root/ and outside/ */
        char *root;
};

static void put(const char *base, const char *rel, const char *content) {
        char *p = test_path(base, "%s", rel);
        test_write_file(p, content, 0644);
        free(p);
}

static void ln(const char *base, const char *rel, const char *target) {
        char *p = test_path(base, "%s", rel);
        test_symlink(target, p);
        free(p);
}

static int setup(void **state) {
        struct env *e = calloc(1, sizeof(*e));
        char abs_out[4200];
        e->dir = test_tmpdir();
        if (asprintf(&e->root, "%s/root", e->dir) < 0)
                return -1;
        put(e->dir, "outside/secret", "outside\n");
        put(e->root, "nix/store/abc-etc/etc/os-release", "inside\n");
        ln(e->root, "etc/static", "/nix/store/abc-etc/etc");
        ln(e->root, "etc/os-release", "/etc/static/os-release");
        ln(e->root, "etc/rel-escape", "../../../../../outside/secret");
        snprintf(abs_out, sizeof(abs_out), "%s/outside/secret", e->dir);
        ln(e->root, "etc/abs-escape", abs_out);
        ln(e->root, "etc/loop", "/etc/loop");
        ln(e->root, "etc/dotdot", "/etc/../../../etc/static/os-release");
        put(e->root, "big", "0123456789");
        /* an offline image whose /nix/store is not there: links on the way dangle */
        ln(e->root, "img/etc/systemd/system", "/nix/store/missing-units/lib/systemd/system");
        ln(e->root, "img/etc/shadow", "/nix/store/missing-etc/etc/shadow");
        ln(e->root, "img/etc/chain", "/etc/static/nope/deeper");
        ln(e->root, "img/etc/ok", "/etc/static");
        assert_int_equal(mkfifo(strcat(strcpy(abs_out, e->root), "/fifo"), 0600), 0);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        struct env *e = *state;
        test_tmpdir_done(e->dir);
        free(e->root);
        free(e);
        return 0;
}

static void run_cases(struct env *e, bool walk) {
        struct audit_fs *fs = NULL;
        char *s = NULL;
        size_t len;
        struct stat st;

        assert_int_equal(audit_fs_new(e->root, &fs), 0);
        if (walk)
                audit_fs_set_walk_only(fs, true);
        /* NixOS: absolute link chain resolves inside the root */
        assert_int_equal(audit_fs_read(fs, "/etc/os-release", 4096, &s, &len), 0);
        assert_string_equal(s, "inside\n");
        free(s);
        assert_int_equal(audit_fs_read(fs, "etc/dotdot", 4096, &s, &len), 0);
        assert_string_equal(s, "inside\n");
        free(s);
        /* escapes: relative "..", absolute path of a real outside file; inside the root both links
         * dangle, which is reported as such (-ENOLINK), not as a plain missing file */
        assert_int_equal(audit_fs_read(fs, "etc/rel-escape", 4096, &s, &len), -ENOLINK);
        assert_int_equal(audit_fs_read(fs, "etc/abs-escape", 4096, &s, &len), -ENOLINK);
        assert_int_equal(audit_fs_read(fs, "../outside/secret", 4096, &s, &len), -ENOENT);
        assert_int_equal(audit_fs_read(fs, "etc/loop", 4096, &s, &len), -ELOOP);
        /* caps and types */
        assert_int_equal(audit_fs_read(fs, "big", 4, &s, &len), -EFBIG);
        assert_int_equal(audit_fs_read(fs, "etc", 4096, &s, &len), -EISDIR);
        assert_int_equal(audit_fs_read(fs, "fifo", 4096, &s, &len), -EBADFD);   /* and did not hang */
        /* resolve / readlink / lstat */
        assert_int_equal(audit_fs_resolve(fs, "etc/os-release", &s), 0);
        assert_string_equal(s, "/nix/store/abc-etc/etc/os-release");
        free(s);
        assert_int_equal(audit_fs_readlink(fs, "etc/static", &s), 0);
        assert_string_equal(s, "/nix/store/abc-etc/etc");
        free(s);
        assert_int_equal(audit_fs_readlink(fs, "big", &s), -EINVAL);
        assert_int_equal(audit_fs_lstat(fs, "etc/static", &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(audit_fs_stat(fs, "etc/static", &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(audit_fs_exists(fs, "etc/abs-escape"), -ENOLINK);
        assert_int_equal(audit_fs_exists(fs, "etc/static/nope"), 0);
        assert_int_equal(audit_fs_exists(fs, "etc/static/os-release"), 1);
        audit_fs_free(fs);
}

static void dangling_cases(struct env *e, bool walk) {
        struct audit_fs *fs = NULL;
        struct strv v = {};
        char *s = NULL;
        size_t len;
        struct stat st;

        assert_int_equal(audit_fs_new(e->root, &fs), 0);
        if (walk)
                audit_fs_set_walk_only(fs, true);
        /* a dangling link on the way is not an absent file */
        assert_int_equal(audit_fs_list(fs, "img/etc/systemd/system", &v), -ENOLINK);
        assert_int_equal(audit_fs_lstat(fs, "img/etc/systemd/system/sshd.service", &st), -ENOLINK);
        assert_int_equal(audit_fs_stat(fs, "img/etc/systemd/system/sshd.service", &st), -ENOLINK);
        assert_int_equal(audit_fs_read(fs, "img/etc/shadow", 4096, &s, &len), -ENOLINK);
        assert_int_equal(audit_fs_exists(fs, "img/etc/shadow"), -ENOLINK);
        assert_int_equal(audit_fs_read(fs, "img/etc/chain", 4096, &s, &len), -ENOLINK);
        assert_int_equal(audit_fs_resolve(fs, "img/etc/chain", &s), -ENOLINK);
        /* …while the link itself is there, and a name missing behind a good link is just absent */
        assert_int_equal(audit_fs_lstat(fs, "img/etc/shadow", &st), 0);
        assert_int_equal(audit_fs_lstat(fs, "img/etc/ok/nope", &st), -ENOENT);
        assert_int_equal(audit_fs_read(fs, "img/etc/ok/nope/deeper", 4096, &s, &len), -ENOENT);
        assert_int_equal(audit_fs_exists(fs, "img/etc/ok/nope"), 0);
        assert_int_equal(audit_fs_list(fs, "img/nope", &v), -ENOENT);
        audit_fs_free(fs);
}

static bool have_openat2(void) {
        struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
        long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));
        if (fd < 0)
                return false;
        close((int) fd);
        return true;
}

static void test_openat2(void **state) {
        struct audit_fs *fs = NULL;
        struct env *e = *state;

        if (!have_openat2())
                skip();
        /* the openat2 path must really be the one under test */
        assert_int_equal(audit_fs_new(e->root, &fs), 0);
        assert_true(audit_fs_uses_openat2(fs));
        audit_fs_free(fs);
        run_cases(*state, false);
        dangling_cases(*state, false);
}

static void test_dangling_walk(void **state) {
        dangling_cases(*state, true);
}

/* Reading a FIFO (or a device) must not open it at all: no IN_OPEN event may reach a watcher. */
static void test_no_open_of_special_files(void **state) {
        struct env *e = *state;
        struct audit_fs *fs = NULL;
        char p[4200], ev[4096], *s = NULL;
        uint8_t *d = NULL;
        size_t len;
        int in, fd;

        snprintf(p, sizeof(p), "%s/fifo", e->root);
        in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        assert_true(in >= 0);
        assert_true(inotify_add_watch(in, p, IN_OPEN) >= 0);
        /* kernels that report O_PATH opens cannot tell the two apart: skip there */
        fd = open(p, O_PATH | O_CLOEXEC);
        assert_true(fd >= 0);
        close(fd);
        if (read(in, ev, sizeof(ev)) > 0) {
                close(in);
                skip();
        }
        for (int walk = 0; walk < 2; walk++) {
                assert_int_equal(audit_fs_new(e->root, &fs), 0);
                audit_fs_set_walk_only(fs, walk);
                assert_int_equal(audit_fs_read(fs, "fifo", 4096, &s, &len), -EBADFD);
                assert_int_equal(audit_fs_read_head(fs, "fifo", 1, &d), -EBADFD);
                audit_fs_free(fs);
                assert_int_equal(read(in, ev, sizeof(ev)), -1);
                assert_int_equal(errno, EAGAIN);
        }
        /* the watch itself works: a regular file read is an open */
        snprintf(p, sizeof(p), "%s/big", e->root);
        assert_true(inotify_add_watch(in, p, IN_OPEN) >= 0);
        assert_int_equal(audit_fs_new(e->root, &fs), 0);
        assert_int_equal(audit_fs_read(fs, "big", 4096, &s, &len), 0);
        assert_string_equal(s, "0123456789");
        free(s);
        audit_fs_free(fs);
        assert_true(read(in, ev, sizeof(ev)) > 0);
        close(in);
}

static void test_walk(void **state) {
        run_cases(*state, true);
}

static void test_list_sorted(void **state) {
        struct env *e = *state;
        struct audit_fs *fs = NULL;
        struct strv v = {};

        assert_int_equal(audit_fs_new(e->root, &fs), 0);
        assert_int_equal(audit_fs_list(fs, "etc", &v), 0);
        assert_int_equal(v.n, 6);
        assert_string_equal(v.v[0], "abs-escape");
        assert_string_equal(v.v[5], "static");
        assert_null(v.v[6]);
        strv_done(&v);
        assert_int_equal(audit_fs_list(fs, "nope", &v), -ENOENT);
        audit_fs_free(fs);
}

static void test_read_head(void **state) {
        struct env *e = *state;
        struct audit_fs *fs = NULL;
        uint8_t *d = NULL;

        assert_int_equal(audit_fs_new(e->root, &fs), 0);
        assert_int_equal(audit_fs_read_head(fs, "big", 4, &d), 0);
        assert_memory_equal(d, "0123", 4);
        free(d);
        assert_int_equal(audit_fs_read_head(fs, "big", 40, &d), -ENODATA);
        audit_fs_free(fs);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_openat2, setup, teardown),
                cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dangling_walk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_open_of_special_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_sorted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_head, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
