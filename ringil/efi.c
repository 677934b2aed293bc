/* efi.c: `ringil efi sign|verify|hash`: Authenticode for EFI binaries, a drop-in for sbsign/sbverify. */
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "efi-authenticode.h"
#include "crypto.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "log.h"
#include "efi-pe.h"
#include "verb.h"
#include "verbs.h"

/* Log the failure once with its recorded detail; return the exit code. */
static int fail(int r, const char *what, const char *path) {
        const char *d = ringil_detail();

        log_error_errno(r, "%s '%s': %m%s%s", what, path, *d ? ": " : "", d);
        return exit_code_from_errno(r);
}

/*
 * Read a whole image. A regular file is read in one piece into a buffer of its size (UKIs run to
 * hundreds of MiB; growing a buffer chunk by chunk doubled verification time); anything else (a pipe)
 * goes through the capped incremental reader.
 */
static int read_image(const char *path, uint8_t **ret, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *data = NULL;
        struct stat st;
        ssize_t n;
        uint8_t extra;
        int r;

        ringil_clear_detail();
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode)) {
                r = read_full_fd(fd, PE_MAX_IMAGE_SIZE, ret, ret_len);
                if (r == -EFBIG)
                        return ringil_fail(-RINGIL_ETOOBIG, "larger than the %u MiB limit", PE_MAX_IMAGE_SIZE >> 20);
                return r;
        }
        if ((uint64_t) st.st_size > PE_MAX_IMAGE_SIZE)
                return ringil_fail(-RINGIL_ETOOBIG, "%jd bytes, larger than the %u MiB limit", (intmax_t) st.st_size,
                                   PE_MAX_IMAGE_SIZE >> 20);
        data = malloc((size_t) st.st_size + 1);
        if (!data)
                return -ENOMEM;
        n = read_full(fd, data, (size_t) st.st_size);
        if (n < 0)
                return (int) n;
        /* A file that shrinks or grows under us is not the file we were asked about. */
        if ((size_t) n != (size_t) st.st_size || read_full(fd, &extra, 1) != 0)
                return ringil_fail(-EIO, "file changed while being read");
        *ret_len = (size_t) n;
        *ret = TAKE_PTR(data);
        return 0;
}

static const char sign_usage[] =
        "Usage: ringil efi sign --key KEY --cert CERT [--output OUT] [--append] FILE\n"
        "\n"
        "Sign the EFI binary FILE (PE/COFF) with an Authenticode signature, as sbsign does: the SHA-256\n"
        "image hash in an SpcIndirectDataContent, signed with PKCS#7 by KEY, stored in the certificate\n"
        "table with CERT. UEFI firmware accepts the result when CERT (or a CA above it) is in db;\n"
        "`sbverify --cert CERT` and `ringil efi verify --cert CERT` accept it too.\n"
        "\n"
        "An existing signature is REPLACED, so a signature by a retired key does not survive re-signing;\n"
        "--append keeps it and adds ours (sbsign always appends). The output is written atomically.\n"
        "\n"
        "Options:\n"
        "  -k, --key KEY      PEM private key (PKCS#8 or PKCS#1, unencrypted), e.g. db.key\n"
        "  -c, --cert CERT    PEM certificate matching KEY, e.g. db.pem\n"
        "  -o, --output OUT   where to write the signed image (default FILE.signed, as sbsign;\n"
        "                     OUT may be FILE itself)\n"
        "  -a, --append       keep existing signatures and add this one after them\n"
        "  -h, --help         this help\n"
        "\n"
        "Exit codes: 0 signed, 1 I/O error, 2 usage (or KEY does not match CERT), 3 FILE malformed,\n"
        "            truncated or too big (or KEY/CERT unreadable), 12 FILE/KEY/CERT not found.\n";

static int efi_sign(int argc, char *argv[]) {
        static const struct option options[] = {
                { "key", required_argument, NULL, 'k' },
                { "cert", required_argument, NULL, 'c' },
                { "output", required_argument, NULL, 'o' },
                { "append", no_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *key_path = NULL, *cert_path = NULL, *output = NULL, *file;
        _cleanup_free_ char *default_output = NULL;
        _cleanup_free_ uint8_t *image = NULL, *signed_image = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        size_t len, signed_len;
        unsigned flags = 0, replaced = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "k:c:o:ah", options, NULL)) >= 0)
                switch (c) {
                case 'k':
                        key_path = optarg;
                        break;
                case 'c':
                        cert_path = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'a':
                        flags |= AUTHENTICODE_SIGN_APPEND;
                        break;
                case 'h':
                        fputs(sign_usage, stdout);
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (!key_path || !cert_path)
                return usage_error("efi sign: --key and --cert are required");
        if (optind + 1 != argc)
                return usage_error("efi sign: expected exactly one FILE");
        file = argv[optind];
        if (!output) {
                if (asprintf(&default_output, "%s.signed", file) < 0)
                        return fail(-ENOMEM, "Failed to name the output for", file);
                output = default_output;
        }

        r = crypto_load_private_key(key_path, &key);
        if (r < 0)
                return fail(r, "Failed to load key", key_path);
        r = crypto_load_cert(cert_path, &cert);
        if (r < 0)
                return fail(r, "Failed to load certificate", cert_path);
        r = read_image(file, &image, &len);
        if (r < 0)
                return fail(r, "Failed to read", file);
        r = authenticode_sign(image, len, key, cert, flags, &signed_image, &signed_len, &replaced);
        if (r < 0)
                return fail(r, "Failed to sign", file);
        r = atomic_write_file(output, signed_image, signed_len, 0644, 0);
        if (r < 0)
                return fail(r, "Failed to write", output);
        if (replaced > 0)
                log_notice("Replaced %u existing signature%s of '%s'.", replaced, replaced == 1 ? "" : "s", file);
        log_info("Signed '%s' -> '%s'.", file, output);
        return EXIT_OK;
}

static const char verify_usage[] =
        "Usage: ringil efi verify --cert CERT FILE\n"
        "\n"
        "Verify the Authenticode signature of the EFI binary FILE against CERT, as UEFI firmware checks\n"
        "an image against db and as `sbverify --cert CERT` does: the image hash is recomputed and must\n"
        "equal the signed one, the PKCS#7 signature must verify, and the signer must be CERT or chain to\n"
        "it through certificates carried in the signature. CERT is the only trust anchor. Validity dates\n"
        "are not checked: firmware has no trustworthy clock, and neither sbverify nor firmware do.\n"
        "With several signatures the image is valid when one of them is.\n"
        "\n"
        "Prints one line: FILE: OK, which signature, the signer and the image hash.\n"
        "\n"
        "Options:\n"
        "  -c, --cert CERT    PEM certificate to trust, e.g. db.pem\n"
        "  -h, --help         this help\n"
        "\n"
        "Exit codes: 0 valid (only then), 1 I/O error, 2 usage, 3 FILE malformed, truncated or too big,\n"
        "            4 unsigned or bad signature, 5 signer not trusted, 9 image changed after signing,\n"
        "            12 FILE/CERT not found.\n";

static int efi_verify(int argc, char *argv[]) {
        static const struct option options[] = {
                { "cert", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *cert_path = NULL, *file;
        _cleanup_free_ uint8_t *image = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct authenticode_info info;
        char hex[2 * SHA256_LEN + 1];
        size_t len;
        int c, r;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        cert_path = optarg;
                        break;
                case 'h':
                        fputs(verify_usage, stdout);
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (!cert_path)
                return usage_error("efi verify: --cert is required");
        if (optind + 1 != argc)
                return usage_error("efi verify: expected exactly one FILE");
        file = argv[optind];

        r = crypto_load_cert(cert_path, &cert);
        if (r < 0)
                return fail(r, "Failed to load certificate", cert_path);
        r = read_image(file, &image, &len);
        if (r < 0)
                return fail(r, "Failed to read", file);
        r = authenticode_verify(image, len, cert, &info);
        if (r < 0)
                return fail(r, "Verification failed for", file);
        printf("%s: OK (signature %u of %u, signer %s, image sha256 %s)\n", ESCAPED(file), info.valid_index + 1,
               info.n_signatures, ESCAPED(info.signer), hex_encode(info.image_hash, SHA256_LEN, hex));
        return EXIT_OK;
}

static const char hash_usage[] =
        "Usage: ringil efi hash FILE\n"
        "\n"
        "Print the Authenticode SHA-256 image hash of the EFI binary FILE (what a signature signs and\n"
        "what dbx/db hash entries list), in lowercase hex. Checksum, certificate-table entry and\n"
        "certificate table are excluded, so it is the same before and after signing — except that sbsign\n"
        "and `ringil efi sign` zero-pad an unsigned image to 8 bytes first, which changes the hash of an\n"
        "unsigned image whose size is not a multiple of 8.\n"
        "\n"
        "Options:\n"
        "  -h, --help         this help\n"
        "\n"
        "Exit codes: 0 printed, 1 I/O error, 2 usage, 3 FILE malformed, truncated or too big,\n"
        "            12 FILE not found.\n";

static int efi_hash(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ uint8_t *image = NULL;
        uint8_t hash[SHA256_LEN];
        char hex[2 * SHA256_LEN + 1];
        const char *file;
        size_t len;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(hash_usage, stdout);
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (optind + 1 != argc)
                return usage_error("efi hash: expected exactly one FILE");
        file = argv[optind];
        r = read_image(file, &image, &len);
        if (r < 0)
                return fail(r, "Failed to read", file);
        r = authenticode_image_hash(image, len, hash);
        if (r < 0)
                return fail(r, "Failed to hash", file);
        printf("%s  %s\n", hex_encode(hash, SHA256_LEN, hex), ESCAPED(file));
        return EXIT_OK;
}

static const struct verb efi_verbs[] = {
        VERB("sign", efi_sign, "sign an EFI binary (Authenticode, like sbsign)", sign_usage),
        VERB("verify", efi_verify, "verify an EFI binary's signature (like sbverify)", verify_usage),
        VERB("hash", efi_hash, "print the Authenticode SHA-256 of an EFI binary", hash_usage),
};

const struct verb_group efi_group = {
        .usage = "Usage: ringil efi COMMAND [OPTIONS] FILE\n\n"
                 "Authenticode signing and verification of PE/COFF EFI binaries (systemd-boot, UKIs, stubs),\n"
                 "byte-compatible with sbsign/sbverify. See docs/efi-signing.md.\n\n",
        .verbs = efi_verbs,
        .n = ELEMENTSOF(efi_verbs),
};
