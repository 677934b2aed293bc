/* tests.h: cmocka includes in the order it needs them, plus the fixtures shared by the unit tests (tests.c). */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/*
 * Temporary directories. test_tmpdir() makes a fresh "ringil-test.XXXXXX" under $TMPDIR (or /tmp) and
 * returns its malloc'd path. test_rm_rf() removes a path inside such a directory (or the directory
 * itself) with everything in it, whatever the modes inside, and refuses any other path.
 * test_tmpdir_done() removes and frees a test_tmpdir(), unless KEEP=1 is in the environment (then it is
 * left for a post-mortem and named on stderr). The fixture pair sets *state to a fresh directory and
 * disposes of it after the test, failed or not.
 */
char *test_tmpdir(void);
void test_rm_rf(const char *path);
void test_tmpdir_done(char *dir);
int test_setup_tmpdir(void **state);
int test_teardown_tmpdir(void **state);

/* "dir/<formatted name>", malloc'd (the test fails if it cannot be). */
char *test_path(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write a file (parent directories made 0755 as needed) or fail the test. */
void test_write_bytes(const char *path, const void *data, size_t len, mode_t mode);
void test_write_file(const char *path, const char *text, mode_t mode);
/* A symbolic link at path pointing to target (parent directories made as needed) or fail the test. */
void test_symlink(const char *target, const char *path);
/* The whole file, NUL-terminated, malloc'd; *ret_len may be NULL. Fails the test if it cannot be read. */
char *test_read_file(const char *path, size_t *ret_len);

/* s with its first occurrence of `from` replaced by `to`, malloc'd; fails the test if `from` is absent. */
char *test_replace(const char *s, const char *from, const char *to);

/*
 * A throw-away PKI. test_key_new(): an EC P-256 key, or RSA-2048 when rsa. test_cert_new(): a v3
 * certificate for key with subject CN=cn, valid from now+not_before to now+not_after (seconds, may be
 * negative), signed by issuer_key/issuer (both NULL: self-signed) with SHA-256. Fails the test on error.
 */
enum {
        TEST_CERT_CA = 1 << 0,         /* basicConstraints CA:TRUE, keyUsage keyCertSign, cRLSign */
        TEST_CERT_CODESIGN = 1 << 1,   /* extendedKeyUsage codeSigning */
        TEST_CERT_SERVER = 1 << 2,     /* extendedKeyUsage serverAuth, subjectAltName DNS:localhost, IP:127.0.0.1 */
        TEST_CERT_CLIENT = 1 << 3,     /* extendedKeyUsage clientAuth */
};
EVP_PKEY *test_key_new(bool rsa);
X509 *test_cert_new(EVP_PKEY *key, const char *cn, EVP_PKEY *issuer_key, X509 *issuer, long not_before, long not_after,
                    unsigned flags);
void test_write_key_pem(const char *path, EVP_PKEY *key);
void test_write_cert_pem(const char *path, X509 *cert);

/*
 * A minimal PE32+ image (x86-64): DOS header, PE header at 0x40, 2 sections, SizeOfHeaders 0x200, .text at
 * [0x200, 0x400), .data at [0x400, 0x600), then TEST_PE_TRAILER bytes of unsectioned data; CheckSum
 * 0xdeadbeef, no certificate table. test_pe64() writes it into buf (TEST_PE_BUF_SIZE bytes, zeroed first:
 * room to append a certificate table) and returns its size; test_pe_section() (re)writes section header i
 * of the table at sectab. test_pe64_hash() is the Authenticode SHA-256 of such an image signed up to
 * signed_end, assembled by hand for this layout (independent of efi-pe.c).
 */
#define TEST_PE_LFANEW 0x40u
#define TEST_PE_OPT (TEST_PE_LFANEW + 24u)
#define TEST_PE_OPT_SIZE_64 240u
#define TEST_PE_SECTAB (TEST_PE_OPT + TEST_PE_OPT_SIZE_64)
#define TEST_PE_HEADERS 0x200u
#define TEST_PE_TRAILER 0x10u
#define TEST_PE_IMAGE_SIZE (0x600u + TEST_PE_TRAILER)
#define TEST_PE_CERT_DIR_64 (TEST_PE_OPT + 112u + 4u * 8u)
#define TEST_PE_CHECKSUM (TEST_PE_OPT + 64u)
#define TEST_PE_BUF_SIZE (TEST_PE_IMAGE_SIZE + 4096u)
size_t test_pe64(uint8_t *buf);
void test_pe_section(uint8_t *buf, size_t sectab, unsigned i, const char *name, uint32_t ptr, uint32_t size);
void test_pe64_hash(const uint8_t *buf, size_t signed_end, uint8_t out[static 32]);
