/* efi-var.c: reading and writing UEFI variables through efivarfs, and decoding the Secure Boot mode. */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "efi-var.h"
#include "err.h"
#include "fileio.h"
#include "macro.h"

#define EFIVARFS_MAGIC_NUMBER 0xde5e81e4u
#define EFIVAR_NAME_MAX 128

int efivar_path(const char *efivarfs, const char *name, const efi_guid *vendor, char **ret) {
        char g[EFI_GUID_STRING_MAX];
        char *p;

        if (!efivarfs || !name || !*name || strlen(name) > EFIVAR_NAME_MAX || strchr(name, '/'))
                return -EINVAL;
        if (asprintf(&p, "%s/%s-%s", efivarfs, name, efi_guid_to_string(vendor, g)) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int efivar_decode(const uint8_t *raw, size_t raw_len, uint32_t *ret_attr, const uint8_t **ret_data,
                  size_t *ret_len) {
        if (!raw || raw_len < 4)
                return ringil_fail(-RINGIL_ETRUNCATED, "variable shorter than its 4-byte attribute header");
        *ret_attr = (uint32_t) raw[0] | (uint32_t) raw[1] << 8 | (uint32_t) raw[2] << 16 |
                    (uint32_t) raw[3] << 24;
        *ret_data = raw + 4;
        *ret_len = raw_len - 4;
        return 0;
}

int efivar_read(const char *efivarfs, const char *name, const efi_guid *vendor, uint32_t *ret_attr,
                uint8_t **ret_data, size_t *ret_len) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *raw = NULL;
        const uint8_t *data;
        uint8_t *copy;
        size_t raw_len, len;
        uint32_t attr;
        int r;

        r = efivar_path(efivarfs, name, vendor, &path);
        if (r < 0)
                return r;
        r = read_full_file(path, RFILE_NOFOLLOW, EFIVAR_MAX_SIZE + 4, &raw, &raw_len);
        if (r == -EFBIG)
                return ringil_fail(-RINGIL_ETOOBIG, "variable %s larger than %u bytes", name, EFIVAR_MAX_SIZE);
        if (r < 0)
                return r;
        r = efivar_decode(raw, raw_len, &attr, &data, &len);
        if (r < 0)
                return r;
        /* Copy out so the caller owns exactly the data (NUL-terminated for convenience). */
        copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, len);
        copy[len] = 0;
        *ret_attr = attr;
        *ret_data = copy;
        *ret_len = len;
        return 0;
}

/*
 * The kernel marks most efivarfs files immutable so that `rm -rf /` cannot brick a machine; clear
 * that flag before writing. A plain directory (tests) may not support the ioctl at all.
 */
static int clear_immutable(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        int flags;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0) {
                if (errno == ENOTTY || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)
                        return 0;
                return negative_errno();
        }
        if (!(flags & FS_IMMUTABLE_FL))
                return 0;
        flags &= ~FS_IMMUTABLE_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                return negative_errno();
        return 1;
}

/* Put the immutable flag back after a write, as systemd does, so the variable cannot be deleted. */
static int restore_immutable(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        int flags;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();   /* an empty write deletes the variable */
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                return negative_errno();
        flags |= FS_IMMUTABLE_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                return negative_errno();
        return 0;
}

static int efivar_write_raw(const char *path, uint32_t attr, const uint8_t *data, size_t len);

int efivar_write(const char *efivarfs, const char *name, const efi_guid *vendor, uint32_t attr,
                 const uint8_t *data, size_t len) {
        _cleanup_free_ char *path = NULL;
        int r, was_immutable;

        if (len > EFIVAR_MAX_SIZE || (len > 0 && !data))
                return -EINVAL;
        r = efivar_path(efivarfs, name, vendor, &path);
        if (r < 0)
                return r;
        was_immutable = clear_immutable(path);
        if (was_immutable < 0)
                return was_immutable;
        r = efivar_write_raw(path, attr, data, len);
        /* Restore the flag whether or not the write went through; the write's error comes first. */
        if (was_immutable > 0) {
                int k = restore_immutable(path);
                if (r >= 0 && k < 0)
                        r = k;
        }
        return r;
}

static int efivar_write_raw(const char *path, uint32_t attr, const uint8_t *data, size_t len) {
        _cleanup_free_ uint8_t *raw = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct statfs sfs;
        ssize_t k;

        raw = malloc(len + 4);
        if (!raw)
                return -ENOMEM;
        raw[0] = (uint8_t) attr;
        raw[1] = (uint8_t) (attr >> 8);
        raw[2] = (uint8_t) (attr >> 16);
        raw[3] = (uint8_t) (attr >> 24);
        if (len > 0)
                memcpy(raw + 4, data, len);

        /* No O_TRUNC: efivarfs replaces the variable on write() and does not support truncation. */
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (fd < 0)
                return negative_errno();
        /* efivarfs hands each write() to SetVariable() as a whole: it must be a single call. */
        k = write(fd, raw, len + 4);
        if (k < 0)
                return negative_errno();
        if ((size_t) k != len + 4)
                return -EIO;
        if (fstatfs(fd, &sfs) < 0)
                return negative_errno();
        if ((uint32_t) sfs.f_type != EFIVARFS_MAGIC_NUMBER) {
                /* A directory standing in for efivarfs: make the file hold exactly what was written. */
                if (ftruncate(fd, (off_t) (len + 4)) < 0)
                        return negative_errno();
        }
        return 0;
}

enum sb_mode sb_mode_decode(int secure_boot, int setup_mode, int audit_mode, int deployed_mode) {
        /* Pre-2.5 firmware has no AuditMode/DeployedMode; reading them as 0 only ever weakens the claim. */
        if (audit_mode == -1)
                audit_mode = 0;
        if (deployed_mode == -1)
                deployed_mode = 0;
        if ((secure_boot != 0 && secure_boot != 1) || (setup_mode != 0 && setup_mode != 1) ||
            (audit_mode != 0 && audit_mode != 1) || (deployed_mode != 0 && deployed_mode != 1))
                return SB_MODE_UNKNOWN;

        if (setup_mode == 1) {
                /* Setup and Audit mode never enforce; SecureBoot=1 here is inconsistent. */
                if (secure_boot || deployed_mode)
                        return SB_MODE_UNKNOWN;
                return audit_mode ? SB_MODE_AUDIT : SB_MODE_SETUP;
        }
        if (audit_mode)   /* AuditMode=1 implies SetupMode=1 */
                return SB_MODE_UNKNOWN;
        if (deployed_mode)
                return secure_boot ? SB_MODE_DEPLOYED : SB_MODE_UNKNOWN;
        return secure_boot ? SB_MODE_USER : SB_MODE_DISABLED;
}

const char *sb_mode_to_string(enum sb_mode m) {
        switch (m) {
        case SB_MODE_SETUP:
                return "setup";
        case SB_MODE_AUDIT:
                return "audit";
        case SB_MODE_USER:
                return "user";
        case SB_MODE_DEPLOYED:
                return "deployed";
        case SB_MODE_DISABLED:
                return "disabled";
        case SB_MODE_UNKNOWN:
                break;
        }
        return "unknown";
}

int efivar_bool_decode(const uint8_t *data, size_t len) {
        if (len == 0)
                return -RINGIL_ETRUNCATED;
        if (len != 1 || data[0] > 1)
                return -RINGIL_EMALFORMED;
        return data[0];
}

int efivar_read_bool(const char *efivarfs, const char *name) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        uint32_t attr;
        int r;

        r = efivar_read(efivarfs, name, &EFI_GLOBAL_VARIABLE_GUID, &attr, &data, &len);
        if (r < 0)
                return r;
        return efivar_bool_decode(data, len);
}

/* sb_mode_decode() takes -1 for a variable that is missing, truncated or not 0/1. */
static int read_bool_or_unknown(const char *efivarfs, const char *name) {
        int v = efivar_read_bool(efivarfs, name);
        return v < 0 ? -1 : v;
}

int efivar_secure_boot_mode(const char *efivarfs, enum sb_mode *ret) {
        struct stat st;

        if (stat(efivarfs, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        *ret = sb_mode_decode(read_bool_or_unknown(efivarfs, "SecureBoot"), read_bool_or_unknown(efivarfs, "SetupMode"),
                              read_bool_or_unknown(efivarfs, "AuditMode"), read_bool_or_unknown(efivarfs, "DeployedMode"));
        return 0;
}
