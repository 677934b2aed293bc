/* fuzz-bundle.c: the bundle container on arbitrary bytes: header, CMS signature, manifest, policy and
 * every payload chunk, from a memory source, against a fixed keyring. The corpus holds real bundles
 * signed by the key of the certificate below (the key itself was discarded), so mutations of the
 * payload region reach the chunk checks behind a valid signature. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "fuzz.h"

static const char keyring_pem[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIBpjCCAUygAwIBAgIUOgHsUaH98UNlZt5GvsnW9bUxd4wwCgYIKoZIzj0EAwIw\n"
        "HTEbMBkGA1UEAwwScmluZ2lsIGZ1enogc2lnbmVyMCAXDTI1MDEwMTAwMDAwMFoY\n"
        "DzIxMjQxMjA4MDAwMDAwWjAdMRswGQYDVQQDDBJyaW5naWwgZnV6eiBzaWduZXIw\n"
        "WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATnjlEiozi/l5tUmrrsl50+q59lyqy9\n"
        "hGnnYU6/6OuwDLNB6JZ9lZGb4zT6EMO3sGiH+W+o+6d5L4aGWnsQz/H2o2gwZjAd\n"
        "BgNVHQ4EFgQULfXrOgy6T+mHuaTDuw/70hYsDuAwHwYDVR0jBBgwFoAULfXrOgy6\n"
        "T+mHuaTDuw/70hYsDuAwDwYDVR0TAQH/BAUwAwEB/zATBgNVHSUEDDAKBggrBgEF\n"
        "BQcDAzAKBggqhkjOPQQDAgNIADBFAiEAgxppZPkC9ZXTem6wyMD+mWkJYLF1zNqZ\n"
        "fHLyitvc8eoCIC5btGdfD9HW8eTSgMfJCKNk1nP657jZjeF67fR1uMTF\n"
        "-----END CERTIFICATE-----\n";

static char keyring_path[64];

static void remove_keyring(void) {
        (void) unlink(keyring_path);
}

static const char *keyring(void) {
        if (!keyring_path[0]) {
                int fd;
                strcpy(keyring_path, "/tmp/ringil-fuzz-keyring.XXXXXX");
                fd = mkstemp(keyring_path);
                if (fd < 0 || write(fd, keyring_pem, sizeof(keyring_pem) - 1) != (ssize_t) sizeof(keyring_pem) - 1)
                        abort();
                close(fd);
                atexit(remove_keyring);
        }
        return keyring_path;
}

struct mem {
        const uint8_t *data;
        size_t len;
        uint64_t pos;
        int sequential;
};

static int mem_read_at(void *u, uint64_t off, void *buf, size_t len) {
        struct mem *m = u;

        if (m->sequential && off < m->pos)
                return -ESPIPE;
        if (off > m->len || len > m->len - off)
                return -ENODATA;
        memcpy(buf, m->data + off, len);
        m->pos = off + len;
        return 0;
}

static void run(const uint8_t *data, size_t size, int sequential) {
        struct mem m = { data, size, 0, sequential };
        struct bundle_source src = { .read_at = mem_read_at, .userdata = &m, .size = sequential ? UINT64_MAX : size };
        struct bundle_policy policy = { .keyring = keyring(), .compatible = "fuzz", .min_version = "1",
                                        .now = 1800000000 /* 2027-01-15 */ };
        bundle *b = NULL;

        if (bundle_open_source(&src, &b) < 0)
                return;
        if (bundle_verify_manifest(b, &policy) >= 0) {
                const struct bundle_manifest *man = bundle_get_manifest(b);
                if (sequential) {
                        (void) bundle_verify_payloads(b);
                } else {
                        uint8_t *buf = malloc(man->payloads[0].chunk_size);
                        size_t n;
                        uint64_t off;
                        if (buf && man->payloads[0].n_chunks > 0) {
                                uint64_t last = man->payloads[0].n_chunks - 1;
                                (void) bundle_read_chunk(b, 0, last, buf, &n);
                                (void) bundle_read_chunk(b, 0, 0, buf, &n);
                                (void) bundle_chunk_offset(b, 0, last, &off);
                        }
                        free(buf);
                        (void) bundle_verify_payloads(b);
                }
        }
        bundle_free(b);

        /* and the unverified path of `bundle info` */
        m.pos = 0;
        if (bundle_open_source(&src, &b) >= 0) {
                const struct bundle_manifest *man;
                (void) bundle_read_unverified(b, &man, NULL);
                bundle_free(b);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > (1u << 20))
                return 0;
        run(data, size, 0);
        run(data, size, 1);
        return 0;
}
