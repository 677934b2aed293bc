/* efi-var.h: UEFI variables through efivarfs (or a directory standing in for it), and Secure Boot mode. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "efi-esl.h"

#define EFIVARFS_DEFAULT "/sys/firmware/efi/efivars"
#define EFIVAR_MAX_SIZE (1u << 20)

#define EFI_VARIABLE_NON_VOLATILE 0x1u
#define EFI_VARIABLE_BOOTSERVICE_ACCESS 0x2u
#define EFI_VARIABLE_RUNTIME_ACCESS 0x4u
#define EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS 0x20u

/* efivarfs file name: "<Name>-<guid>". */
int efivar_path(const char *efivarfs, const char *name, const efi_guid *vendor, char **ret);

/*
 * Decode an efivarfs file's bytes: 4-byte little-endian attributes, then the data. Returns a pointer
 * into the input. -RINGIL_ETRUNCATED when shorter than 4 bytes.
 */
int efivar_decode(const uint8_t *raw, size_t raw_len, uint32_t *ret_attr, const uint8_t **ret_data,
                  size_t *ret_len);

/* Read a variable (capped at EFIVAR_MAX_SIZE). -ENOENT when absent. */
int efivar_read(const char *efivarfs, const char *name, const efi_guid *vendor, uint32_t *ret_attr,
                uint8_t **ret_data, size_t *ret_len);

/*
 * Write a variable: the 4-byte attributes then data, in a single write() as efivarfs requires. Clears
 * the immutable attribute of an existing file first (the kernel sets it on most variables).
 */
int efivar_write(const char *efivarfs, const char *name, const efi_guid *vendor, uint32_t attr,
                 const uint8_t *data, size_t len);

/*
 * A one-byte boolean variable's data (SecureBoot, SetupMode, AuditMode, DeployedMode…), strictly: 0 or 1;
 * -RINGIL_ETRUNCATED for no byte, -RINGIL_EMALFORMED for more than one byte or a value other than 0/1.
 */
int efivar_bool_decode(const uint8_t *data, size_t len);
/* Read a one-byte boolean global variable: 0/1, -ENOENT when absent, else efivar_read()'s and
 * efivar_bool_decode()'s errors. */
int efivar_read_bool(const char *efivarfs, const char *name);

enum sb_mode {
        SB_MODE_UNKNOWN,
        SB_MODE_SETUP,
        SB_MODE_AUDIT,
        SB_MODE_USER,
        SB_MODE_DEPLOYED,
        SB_MODE_DISABLED,
};

/*
 * Secure Boot mode from the four one-byte variables; each argument is 0/1, or -1 when the variable is
 * missing, truncated or not 0/1. Anything inconsistent or missing decodes to SB_MODE_UNKNOWN, never to a
 * "good" mode. AuditMode/DeployedMode may be absent on pre-2.5 firmware (treated as 0).
 */
enum sb_mode sb_mode_decode(int secure_boot, int setup_mode, int audit_mode, int deployed_mode);
const char *sb_mode_to_string(enum sb_mode m);

/* Read SecureBoot/SetupMode/AuditMode/DeployedMode from efivarfs and decode them. */
int efivar_secure_boot_mode(const char *efivarfs, enum sb_mode *ret);
