/* tests.h: cmocka includes in the order it needs them, plus helpers shared by the unit tests. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fresh temporary directory per test; removed with everything in it. */
static inline char *test_mkdtemp_impl(void) {
        char tmpl[] = "/tmp/ringil-test.XXXXXX";
        char *d = mkdtemp(tmpl);
        return d ? strdup(d) : NULL;
}
#define test_mkdtemp() test_mkdtemp_impl()
static inline void test_rm_rf_impl(const char *path) {
        char cmd[4200];
        if (!path || strncmp(path, "/tmp/ringil-test.", 17) != 0)
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", path);
        if (system(cmd) != 0)
                fprintf(stderr, "warning: could not remove %s\n", path);
}
#define test_rm_rf(p) test_rm_rf_impl(p)
