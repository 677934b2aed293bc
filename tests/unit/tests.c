/* tests.c: fixtures shared by the unit tests: temporary directories, files, a throw-away PKI. */
#include "tests.h"

#include "efi-pe.h"   /* pe_put16/pe_put32 and the PE constants only */

#include <fcntl.h>
#include <ftw.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX "ringil-test."

char *test_tmpdir(void) {
        const char *base = getenv("TMPDIR");
        char *t = NULL, *d;

        if (!base || base[0] != '/')
                base = "/tmp";
        assert_true(asprintf(&t, "%s/" TMP_PREFIX "XXXXXX", base) > 0);
        d = mkdtemp(t);
        if (!d)
                fail_msg("mkdtemp under %s: %s", base, strerror(errno));
        return d;
}

static int make_writable(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        (void) ftw;
        if (flag == FTW_D && (st->st_mode & 0700) != 0700)
                (void) chmod(p, (st->st_mode & 07777) | 0700);
        return 0;
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (flag == FTW_DP ? rmdir(p) < 0 : unlink(p) < 0)
                fprintf(stderr, "warning: cannot remove %s: %s\n", p, strerror(errno));
        return 0;
}

void test_rm_rf(const char *path) {
        if (!path)
                return;
        /* Only inside what test_tmpdir() made: a slip in a test must never become `rm -rf` of something else. */
        if (path[0] != '/' || !strstr(path, "/" TMP_PREFIX) || strstr(path, "/..")) {
                fprintf(stderr, "warning: not removing %s: not inside a test directory\n", path);
                return;
        }
        /* Directories a test made unreadable are opened up first (pre-order), then everything goes
         * depth-first; symlinks are removed, never followed. */
        (void) nftw(path, make_writable, 16, FTW_PHYS);
        (void) nftw(path, remove_one, 16, FTW_PHYS | FTW_DEPTH);
}

void test_tmpdir_done(char *dir) {
        if (dir && getenv("KEEP"))
                fprintf(stderr, "KEEP: %s left in place\n", dir);
        else
                test_rm_rf(dir);
        free(dir);
}

int test_setup_tmpdir(void **state) {
        *state = test_tmpdir();
        return *state ? 0 : -1;
}

int test_teardown_tmpdir(void **state) {
        test_tmpdir_done(*state);
        *state = NULL;
        return 0;
}

char *test_path(const char *dir, const char *fmt, ...) {
        char *name = NULL, *p = NULL;
        va_list ap;

        va_start(ap, fmt);
        assert_true(vasprintf(&name, fmt, ap) >= 0);
        va_end(ap);
        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        free(name);
        return p;
}

static void mkdir_parents(const char *path) {
        char *p = strdup(path);

        assert_non_null(p);
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        fail_msg("mkdir %s: %s", p, strerror(errno));
                *s = '/';
        }
        free(p);
}

void test_write_bytes(const char *path, const void *data, size_t len, mode_t mode) {
        int fd;

        mkdir_parents(path);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                fail_msg("open %s: %s", path, strerror(errno));
        for (size_t done = 0; done < len;) {
                ssize_t k = write(fd, (const char *) data + done, len - done);
                if (k <= 0)
                        fail_msg("write %s: %s", path, strerror(errno));
                done += (size_t) k;
        }
        assert_int_equal(fchmod(fd, mode), 0);   /* exactly mode, whatever the umask */
        assert_int_equal(close(fd), 0);
}

void test_write_file(const char *path, const char *text, mode_t mode) {
        test_write_bytes(path, text, strlen(text), mode);
}

void test_symlink(const char *target, const char *path) {
        mkdir_parents(path);
        if (symlink(target, path) < 0)
                fail_msg("symlink %s -> %s: %s", path, target, strerror(errno));
}

char *test_read_file(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *data = NULL;
        size_t len = 0, cap = 0;

        if (!f)
                fail_msg("open %s: %s", path, strerror(errno));
        for (;;) {
                size_t k;
                if (len + 4096 + 1 > cap) {
                        cap = (cap ? cap * 2 : 8192);
                        data = realloc(data, cap);
                        assert_non_null(data);
                }
                k = fread(data + len, 1, cap - len - 1, f);
                len += k;
                if (k == 0)
                        break;
        }
        assert_false(ferror(f));
        fclose(f);
        data[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return data;
}

char *test_replace(const char *s, const char *from, const char *to) {
        const char *at = strstr(s, from);
        char *out;

        if (!at)
                fail_msg("`%s' not found", from);
        assert_true(asprintf(&out, "%.*s%s%s", (int) (at - s), s, to, at + strlen(from)) > 0);
        return out;
}

EVP_PKEY *test_key_new(bool rsa) {
        EVP_PKEY *k = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048) : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

        assert_non_null(k);
        return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *e;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        assert_non_null(e);
        assert_true(X509_add_ext(x, e, -1));
        X509_EXTENSION_free(e);
}

X509 *test_cert_new(EVP_PKEY *key, const char *cn, EVP_PKEY *issuer_key, X509 *issuer, long not_before, long not_after,
                    unsigned flags) {
        static long serial = 1;
        X509 *x = X509_new();

        assert_non_null(x);
        assert_true((issuer_key == NULL) == (issuer == NULL));
        assert_true(X509_set_version(x, 2));
        assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), not_before));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), not_after));
        assert_true(X509_set_pubkey(x, key));
        assert_true(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0));
        assert_true(X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x)));
        add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
        if (flags & TEST_CERT_CA) {
                add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
                add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
        } else
                add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:FALSE");
        if (issuer)
                add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
        if (flags & (TEST_CERT_CODESIGN | TEST_CERT_SERVER | TEST_CERT_CLIENT)) {
                char eku[96] = "";
                if (flags & TEST_CERT_CODESIGN)
                        strcat(eku, "codeSigning,");
                if (flags & TEST_CERT_SERVER)
                        strcat(eku, "serverAuth,");
                if (flags & TEST_CERT_CLIENT)
                        strcat(eku, "clientAuth,");
                eku[strlen(eku) - 1] = '\0';
                add_ext(x, issuer ? issuer : x, NID_ext_key_usage, eku);
        }
        if (flags & TEST_CERT_SERVER)
                add_ext(x, issuer ? issuer : x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
        return x;
}

void test_write_key_pem(const char *path, EVP_PKEY *key) {
        FILE *f;

        mkdir_parents(path);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
        assert_int_equal(fclose(f), 0);
}

void test_write_cert_pem(const char *path, X509 *cert) {
        FILE *f;

        mkdir_parents(path);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_true(PEM_write_X509(f, cert));
        assert_int_equal(fclose(f), 0);
}

void test_pe_section(uint8_t *buf, size_t sectab, unsigned i, const char *name, uint32_t ptr, uint32_t size) {
        uint8_t *s = buf + sectab + 40u * i;
        memcpy(s, name, strlen(name));
        pe_put32(s + 8, size);          /* VirtualSize */
        pe_put32(s + 12, 0x1000u * (i + 1));
        pe_put32(s + 16, size);
        pe_put32(s + 20, ptr);
}

size_t test_pe64(uint8_t *buf) {
        memset(buf, 0, TEST_PE_BUF_SIZE);
        buf[0] = 'M';
        buf[1] = 'Z';
        pe_put32(buf + 0x3c, TEST_PE_LFANEW);
        memcpy(buf + TEST_PE_LFANEW, "PE\0\0", 4);
        pe_put16(buf + TEST_PE_LFANEW + 4, 0x8664);
        pe_put16(buf + TEST_PE_LFANEW + 6, 2);
        pe_put32(buf + TEST_PE_LFANEW + 8, 0x5eed1234);  /* TimeDateStamp */
        pe_put16(buf + TEST_PE_LFANEW + 20, TEST_PE_OPT_SIZE_64);
        pe_put16(buf + TEST_PE_OPT, PE_OPT_MAGIC_PE32PLUS);
        pe_put32(buf + TEST_PE_OPT + 60, TEST_PE_HEADERS);
        pe_put32(buf + TEST_PE_CHECKSUM, 0xdeadbeef);
        pe_put32(buf + TEST_PE_OPT + 108, 16);
        test_pe_section(buf, TEST_PE_SECTAB, 0, ".text", 0x200, 0x200);
        test_pe_section(buf, TEST_PE_SECTAB, 1, ".data", 0x400, 0x200);
        for (size_t i = TEST_PE_HEADERS; i < TEST_PE_IMAGE_SIZE; i++)
                buf[i] = (uint8_t) (i * 7 + 3);
        return TEST_PE_IMAGE_SIZE;
}

void test_pe64_hash(const uint8_t *buf, size_t signed_end, uint8_t out[static 32]) {
        static uint8_t cat[TEST_PE_BUF_SIZE];
        unsigned len = 0;
        size_t n = 0;

        memcpy(cat + n, buf, TEST_PE_CHECKSUM);
        n += TEST_PE_CHECKSUM;
        memcpy(cat + n, buf + TEST_PE_CHECKSUM + 4, TEST_PE_CERT_DIR_64 - TEST_PE_CHECKSUM - 4);
        n += TEST_PE_CERT_DIR_64 - TEST_PE_CHECKSUM - 4;
        memcpy(cat + n, buf + TEST_PE_CERT_DIR_64 + 8, TEST_PE_HEADERS - TEST_PE_CERT_DIR_64 - 8);
        n += TEST_PE_HEADERS - TEST_PE_CERT_DIR_64 - 8;
        memcpy(cat + n, buf + 0x200, 0x400);   /* both sections, contiguous */
        n += 0x400;
        memcpy(cat + n, buf + 0x600, signed_end - 0x600);
        n += signed_end - 0x600;
        assert_true(EVP_Digest(cat, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32);
}
