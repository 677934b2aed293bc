/* replay.c: runs a fuzz target over every file of its corpus when libFuzzer is not available. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "fuzz.h"
#include "macro.h"

#define REPLAY_MAX_INPUT (64u << 20)

static int run_file(const char *path, unsigned *count) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r = read_full_file(path, 0, REPLAY_MAX_INPUT, &data, &len);

        if (r < 0) {
                fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        (void) LLVMFuzzerTestOneInput(data, len);
        (*count)++;
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;
        int failed = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *de;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "replay: %s: missing\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed |= run_file(argv[i], &count) < 0;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d)
                        return 1;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *p = NULL;
                        if (de->d_name[0] == '.')
                                continue;
                        if (asprintf(&p, "%s/%s", argv[i], de->d_name) < 0)
                                return 1;
                        failed |= run_file(p, &count) < 0;
                }
                closedir(d);
        }
        printf("replayed %u inputs\n", count);
        /* An empty corpus replays nothing and proves nothing: treat it as a failure. */
        return failed || count == 0 ? 1 : 0;
}
