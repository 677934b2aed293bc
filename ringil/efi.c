/* efi.c: `ringil efi sign|verify|hash|uki`: Authenticode for EFI binaries (a drop-in for sbsign/sbverify) and UKI builds. */
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "efi-authenticode.h"
#include "efi-uki.h"
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
static int read_file_capped(const char *path, size_t max, uint8_t **ret, size_t *ret_len) {
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
                r = read_full_fd(fd, max, ret, ret_len);
                if (r == -EFBIG)
                        return ringil_fail(-RINGIL_ETOOBIG, "larger than the %zu %s limit", max >= (1u << 20) ? max >> 20 : max >> 10,
                                           max >= (1u << 20) ? "MiB" : "KiB");
                return r;
        }
        if ((uint64_t) st.st_size > max)
                return ringil_fail(-RINGIL_ETOOBIG, "%jd bytes, larger than the %zu %s limit", (intmax_t) st.st_size,
                                   max >= (1u << 20) ? max >> 20 : max >> 10, max >= (1u << 20) ? "MiB" : "KiB");
        data = malloc((size_t) st.st_size + 1);
        if (!data)
                return -ENOMEM;
        n = read_full(fd, data, (size_t) st.st_size);
        if (n < 0)
                return (int) n;
        /* A file that shrinks or grows under us is not the file we were asked about. */
        if ((size_t) n != (size_t) st.st_size || read_full(fd, &extra, 1) != 0)
                return ringil_fail(-EIO, "file changed while being read");
        data[n] = 0;   /* text inputs (os-release, command line) are read through here too */
        *ret_len = (size_t) n;
        *ret = TAKE_PTR(data);
        return 0;
}

static int read_image(const char *path, uint8_t **ret, size_t *ret_len) {
        return read_file_capped(path, PE_MAX_IMAGE_SIZE, ret, ret_len);
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
        /* A public binary, often written straight to the ESP, whose vfat mount options fix the mode and
         * refuse fchmod: the mode comes from the creation (0644 under the umask). */
        r = atomic_write_file(output, signed_image, signed_len, 0644, AW_NOCHMOD);
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

#define UKI_STUB_DIR "/usr/lib/systemd/boot/efi"

static const char uki_usage[] =
        "Usage: ringil efi uki --linux KERNEL --output OUT [--stub STUB] [--initrd FILE]...\n"
        "                      [--cmdline TEXT|@FILE] [--os-release TEXT|@FILE] [--devicetree DTB]...\n"
        "                      [--uname RELEASE] [--splash BMP] [--section NAME:FILE]...\n"
        "                      [--key KEY --cert CERT]\n"
        "\n"
        "Build a Unified Kernel Image (UAPI \"Unified Kernel Image\" specification): systemd's EFI stub\n"
        "with the kernel, initrd(s), command line, os-release, devicetree and kernel release appended as\n"
        "PE sections, laid out as systemd's ukify does: .osrel .cmdline .dtb .uname .splash .initrd,\n"
        "extra sections, then .linux, each at the stub's SectionAlignment in memory and FileAlignment in\n"
        "the file, after the stub's own sections. Several initrds are concatenated (each padded to 4\n"
        "bytes). With --key/--cert the UKI is signed in the same step (Authenticode, as `ringil efi sign`),\n"
        "and the signature is verified against CERT before anything is written. The output is written\n"
        "atomically; on any error nothing is written. `ringil bundle create` takes it as an efi payload.\n"
        "\n"
        "Inputs are checked, each failure one line: the stub must be an unsigned EFI application whose\n"
        "sections do not overlap, with header room for the new section headers and no section we add;\n"
        "the kernel an EFI-stub kernel (x86 bzImage, arm64/riscv64 Image or EFI zboot; not a gzip'd\n"
        "vmlinuz or an ELF vmlinux) for the stub's machine; initrds cpio archives (plain or compressed);\n"
        "devicetrees flattened .dtb files; the command line one line of printable ASCII (at most 2047\n"
        "bytes, what the kernel keeps); os-release KEY=VALUE lines.\n"
        "\n"
        "Options:\n"
        "  -l, --linux KERNEL     the kernel (.linux); also --kernel\n"
        "  -s, --stub STUB        systemd-stub (default: " UKI_STUB_DIR "/linux<arch>.efi.stub\n"
        "                         for the kernel's architecture: x64, aa64, ia32, riscv64, loongarch64)\n"
        "  -i, --initrd FILE      an initrd (.initrd), repeatable, concatenated in order; put a microcode\n"
        "                         cpio first\n"
        "  -C, --cmdline TEXT     the kernel command line (.cmdline); @FILE reads it from FILE (trailing\n"
        "                         newlines dropped). Under Secure Boot the stub then ignores options\n"
        "                         from the boot loader; without it, it takes them even under Secure\n"
        "                         Boot: a hardened image carries one.\n"
        "  -r, --os-release TEXT  os-release contents (.osrel); @FILE reads FILE, e.g. @/etc/os-release\n"
        "                         of the image being built. systemd-boot lists a UKI placed in\n"
        "                         EFI/Linux/ only when it has one.\n"
        "  -d, --devicetree DTB   a devicetree (.dtb), repeatable (Jetson: the board's .dtb)\n"
        "  -u, --uname RELEASE    the kernel release (.uname); default: read from the kernel (the bzImage\n"
        "                         header, or the banner of an uncompressed Image); none for a zboot image\n"
        "  -S, --splash BMP       a boot splash (.splash)\n"
        "  -x, --section NAME:FILE  an extra section (NAME is '.' and up to 7 characters; names the\n"
        "                         stub reads, or that start with one, are refused); repeatable\n"
        "  -k, --key KEY          sign with this PEM private key (e.g. db.key) ...\n"
        "  -c, --cert CERT        ... and this certificate (e.g. db.pem)\n"
        "  -o, --output OUT       where to write the UKI\n"
        "  -h, --help             this help\n"
        "\n"
        "Prints the appended sections (name, RVA, VirtualSize, file offset, SizeOfRawData).\n"
        "\n"
        "Exit codes: 0 written, 1 I/O error, 2 usage (or KEY does not match CERT), 3 an input malformed,\n"
        "            over a limit, or no header room, 8 stub and kernel for different machines,\n"
        "            12 an input file not found.\n";

/* A file given on the command line, read whole and kept until exit. */
struct uki_file {
        const char *path;
        uint8_t *data;
        size_t size;
};

static void uki_files_free(struct uki_file *f, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(f[i].data);
}

static int uki_read(struct uki_file *f, size_t max, const char *what) {
        int r = read_file_capped(f->path, max, &f->data, &f->size);
        if (r < 0)
                return fail(r, what, f->path);
        return 0;
}

/* TEXT or @FILE (ukify's convention). *ret_owned is set when a file was read. */
static int text_or_file(const char *arg, size_t max, const char *what, char **ret_owned, const char **ret,
                        size_t *ret_len) {
        struct uki_file f = { .path = arg + 1 };
        int r;

        if (arg[0] != '@') {
                *ret = arg;
                *ret_len = strlen(arg);
                return 0;
        }
        r = uki_read(&f, max, what);
        if (r != 0)
                return r;
        *ret_owned = (char *) f.data;
        *ret = (const char *) f.data;
        *ret_len = f.size;
        return 0;
}

static void print_uki_sections(const uint8_t *image, size_t len, unsigned first) {
        struct pe_image pe;
        struct pe_section s;

        if (pe_parse(image, len, &pe) < 0)
                return;
        printf("  %-9s %-10s %-10s %-10s %-10s\n", "section", "rva", "vsize", "offset", "rawsize");
        for (unsigned i = first; pe_section_get(&pe, i, &s) == 0; i++)
                printf("  %-9s 0x%08x 0x%08x 0x%08x 0x%08x\n", s.name, s.virtual_address, s.virtual_size,
                       s.raw_offset, s.raw_size);
}

enum {
        ARG_KERNEL = 0x100,
};

static int efi_uki(int argc, char *argv[]) {
        static const struct option options[] = {
                { "linux", required_argument, NULL, 'l' },
                { "kernel", required_argument, NULL, ARG_KERNEL },
                { "stub", required_argument, NULL, 's' },
                { "initrd", required_argument, NULL, 'i' },
                { "cmdline", required_argument, NULL, 'C' },
                { "os-release", required_argument, NULL, 'r' },
                { "devicetree", required_argument, NULL, 'd' },
                { "uname", required_argument, NULL, 'u' },
                { "splash", required_argument, NULL, 'S' },
                { "section", required_argument, NULL, 'x' },
                { "key", required_argument, NULL, 'k' },
                { "cert", required_argument, NULL, 'c' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct uki_file kernel = {}, stub = {}, splash = {}, initrds[UKI_MAX_INITRDS] = {}, dtbs[UKI_MAX_DTBS] = {},
                        extras[UKI_MAX_EXTRA] = {};
        struct uki_blob initrd_blobs[UKI_MAX_INITRDS], dtb_blobs[UKI_MAX_DTBS];
        struct uki_extra_section extra_secs[UKI_MAX_EXTRA];
        char extra_names[UKI_MAX_EXTRA][PE_SECTION_NAME_MAX + 2];
        size_t n_initrds = 0, n_dtbs = 0, n_extras = 0, len, out_len, signed_len, osrel_len = 0, cmd_len = 0;
        const char *cmdline_arg = NULL, *osrel_arg = NULL, *uname = NULL, *key_path = NULL, *cert_path = NULL,
                   *output = NULL, *cmdline = NULL, *osrel = NULL;
        _cleanup_free_ char *cmdline_owned = NULL, *osrel_owned = NULL, *cmdline_copy = NULL, *stub_default = NULL;
        _cleanup_free_ uint8_t *image = NULL, *signed_image = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct uki_kernel kinfo;
        struct uki_info info;
        struct uki_params params;
        struct authenticode_info ainfo = {};
        char hex[2 * SHA256_LEN + 1];
        const uint8_t *result;
        int c, r, ret = EXIT_FAIL;

        while ((c = getopt_long(argc, argv, "l:s:i:C:r:d:u:S:x:k:c:o:h", options, NULL)) >= 0)
                switch (c) {
                case 'l':
                case ARG_KERNEL:
                        kernel.path = optarg;
                        break;
                case 's':
                        stub.path = optarg;
                        break;
                case 'i':
                        if (n_initrds >= UKI_MAX_INITRDS)
                                return usage_error("efi uki: at most %u --initrd", UKI_MAX_INITRDS);
                        initrds[n_initrds++].path = optarg;
                        break;
                case 'C':
                        cmdline_arg = optarg;
                        break;
                case 'r':
                        osrel_arg = optarg;
                        break;
                case 'd':
                        if (n_dtbs >= UKI_MAX_DTBS)
                                return usage_error("efi uki: at most %u --devicetree", UKI_MAX_DTBS);
                        dtbs[n_dtbs++].path = optarg;
                        break;
                case 'u':
                        uname = optarg;
                        break;
                case 'S':
                        splash.path = optarg;
                        break;
                case 'x': {
                        const char *colon = strchr(optarg, ':');
                        size_t nl = colon ? (size_t) (colon - optarg) : 0;
                        if (n_extras >= UKI_MAX_EXTRA)
                                return usage_error("efi uki: at most %u --section", UKI_MAX_EXTRA);
                        if (!colon || nl == 0 || nl > PE_SECTION_NAME_MAX || colon[1] == '\0')
                                return usage_error("efi uki: bad --section '%s' (expected NAME:FILE, NAME at most 8 "
                                                   "characters)", optarg);
                        memcpy(extra_names[n_extras], optarg, nl);
                        extra_names[n_extras][nl] = '\0';
                        extras[n_extras++].path = colon + 1;
                        break;
                }
                case 'k':
                        key_path = optarg;
                        break;
                case 'c':
                        cert_path = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        fputs(uki_usage, stdout);
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (optind != argc)
                return usage_error("efi uki: unexpected argument '%s'", argv[optind]);
        if (!kernel.path || !output)
                return usage_error("efi uki: --linux and --output are required");
        if (!key_path != !cert_path)
                return usage_error("efi uki: --key and --cert go together");

        /* Keys first: a typo in a key path should not cost a read of a 100 MiB initrd. */
        if (key_path) {
                r = crypto_load_private_key(key_path, &key);
                if (r < 0)
                        return fail(r, "Failed to load key", key_path);
                r = crypto_load_cert(cert_path, &cert);
                if (r < 0)
                        return fail(r, "Failed to load certificate", cert_path);
        }

        r = uki_read(&kernel, UKI_MAX_KERNEL, "Failed to read kernel");
        if (r != 0)
                goto out_r;
        ringil_clear_detail();
        r = uki_kernel_inspect(kernel.data, kernel.size, &kinfo);
        if (r < 0) {
                ret = fail(r, "Unusable kernel", kernel.path);
                goto out;
        }
        if (!stub.path) {
                /* The stub for the kernel's machine, as ukify picks the host's. */
                if (asprintf(&stub_default, UKI_STUB_DIR "/linux%s.efi.stub", uki_machine_efi_suffix(kinfo.machine)) < 0) {
                        ret = fail(-ENOMEM, "Failed to name the stub for", kernel.path);
                        goto out;
                }
                stub.path = stub_default;
        }
        if (stub_default && access(stub_default, F_OK) < 0 && errno == ENOENT) {
                log_error("No stub for the %s kernel at '%s': install systemd-boot-efi for %s, or pass --stub.",
                          uki_machine_name(kinfo.machine), stub_default, uki_machine_name(kinfo.machine));
                ret = EXIT_NOTFOUND;
                goto out;
        }
        r = uki_read(&stub, UKI_MAX_STUB, "Failed to read stub");
        if (r != 0)
                goto out_r;
        for (size_t i = 0; i < n_initrds; i++) {
                r = uki_read(&initrds[i], PE_MAX_IMAGE_SIZE, "Failed to read initrd");
                if (r != 0)
                        goto out_r;
                initrd_blobs[i] = (struct uki_blob){ initrds[i].data, initrds[i].size, initrds[i].path };
        }
        for (size_t i = 0; i < n_dtbs; i++) {
                r = uki_read(&dtbs[i], 16u << 20, "Failed to read devicetree");
                if (r != 0)
                        goto out_r;
                dtb_blobs[i] = (struct uki_blob){ dtbs[i].data, dtbs[i].size, dtbs[i].path };
        }
        for (size_t i = 0; i < n_extras; i++) {
                r = uki_read(&extras[i], PE_MAX_IMAGE_SIZE, "Failed to read section");
                if (r != 0)
                        goto out_r;
                extra_secs[i] = (struct uki_extra_section){
                        .name = extra_names[i],
                        .content = { extras[i].data, extras[i].size, extras[i].path },
                };
        }
        if (splash.path) {
                r = uki_read(&splash, 32u << 20, "Failed to read splash");
                if (r != 0)
                        goto out_r;
        }
        if (cmdline_arg) {
                r = text_or_file(cmdline_arg, 64u << 10, "Failed to read command line", &cmdline_owned, &cmdline,
                                 &cmd_len);
                if (r != 0)
                        goto out_r;
                /* A file ends with a newline; the kernel would get it. Drop trailing line ends only. */
                while (cmd_len > 0 && (cmdline[cmd_len - 1] == '\n' || cmdline[cmd_len - 1] == '\r'))
                        cmd_len--;
                if (memchr(cmdline, '\0', cmd_len)) {
                        log_error("Command line '%s' contains a NUL byte", cmdline_arg);
                        ret = EXIT_MALFORMED;
                        goto out;
                }
                cmdline_copy = strndup(cmdline, cmd_len);
                if (!cmdline_copy) {
                        ret = fail(-ENOMEM, "Failed to copy", "command line");
                        goto out;
                }
        }
        if (osrel_arg) {
                r = text_or_file(osrel_arg, UKI_MAX_OSREL, "Failed to read os-release", &osrel_owned, &osrel,
                                 &osrel_len);
                if (r != 0)
                        goto out_r;
        }

        params = (struct uki_params){
                .stub = { stub.data, stub.size, stub.path },
                .kernel = { kernel.data, kernel.size, kernel.path },
                .initrds = initrd_blobs,
                .n_initrds = n_initrds,
                .cmdline = cmdline_copy,
                .os_release = { (const uint8_t *) osrel, osrel_len, osrel_arg && osrel_arg[0] == '@' ? osrel_arg + 1 : "os-release" },
                .uname = uname,
                .dtbs = dtb_blobs,
                .n_dtbs = n_dtbs,
                .splash = { splash.data, splash.size, splash.path },
                .extra = extra_secs,
                .n_extra = n_extras,
        };
        r = uki_build(&params, &image, &len, &info);
        if (r < 0) {
                ret = fail(r, "Cannot build UKI", output);
                goto out;
        }
        result = image;
        out_len = len;
        if (key) {
                r = authenticode_sign(image, len, key, cert, 0, &signed_image, &signed_len, NULL);
                if (r < 0) {
                        ret = fail(r, "Failed to sign the UKI for", output);
                        goto out;
                }
                /* INVARIANT: a signed UKI is written only if it verifies against the certificate given. */
                r = authenticode_verify(signed_image, signed_len, cert, &ainfo);
                if (r < 0) {
                        ret = fail(r, "The signed UKI does not verify, not writing", output);
                        goto out;
                }
                result = signed_image;
                out_len = signed_len;
        }
        r = atomic_write_file(output, result, out_len, 0644, AW_NOCHMOD);   /* see efi_sign */
        if (r < 0) {
                ret = fail(r, "Failed to write", output);
                goto out;
        }

        if (!osrel_arg)
                log_notice("No --os-release: systemd-boot will not list this UKI from EFI/Linux/ (Type #2 entries need .osrel).");
        if (!info.uname[0])
                log_notice("No .uname: the kernel release could not be read from '%s'; pass --uname to add one.",
                           kernel.path);
        printf("%s: %s UKI, %zu bytes, kernel %s, stub %s%s\n", output, uki_machine_name(info.machine), out_len,
               info.uname[0] ? info.uname : "(release unknown)", info.stub_version[0] ? "systemd-stub " : "",
               info.stub_version[0] ? info.stub_version : "(not systemd-stub)");
        if (key)
                printf("  signed by %s, image sha256 %s\n", ainfo.signer, hex_encode(ainfo.image_hash, SHA256_LEN, hex));
        print_uki_sections(result, out_len, info.first_new_section);
        ret = EXIT_OK;
        goto out;
out_r:
        ret = r;
out:
        uki_files_free(&kernel, 1);
        uki_files_free(&stub, 1);
        uki_files_free(&splash, 1);
        uki_files_free(initrds, n_initrds);
        uki_files_free(dtbs, n_dtbs);
        uki_files_free(extras, n_extras);
        return ret;
}

static const struct verb efi_verbs[] = {
        VERB("sign", efi_sign, "sign an EFI binary (Authenticode, like sbsign)", sign_usage),
        VERB("verify", efi_verify, "verify an EFI binary's signature (like sbverify)", verify_usage),
        VERB("hash", efi_hash, "print the Authenticode SHA-256 of an EFI binary", hash_usage),
        VERB("uki", efi_uki, "build a Unified Kernel Image on systemd-stub, signed if asked", uki_usage),
};

const struct verb_group efi_group = {
        .usage = "Usage: ringil efi COMMAND [OPTIONS] FILE\n\n"
                 "Authenticode signing and verification of PE/COFF EFI binaries (systemd-boot, UKIs, stubs),\n"
                 "byte-compatible with sbsign/sbverify, and Unified Kernel Images built on systemd-stub.\n"
                 "See docs/efi-signing.md.\n\n",
        .verbs = efi_verbs,
        .n = ELEMENTSOF(efi_verbs),
};
