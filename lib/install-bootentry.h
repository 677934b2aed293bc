/* install-bootentry.h: Boot Loader Specification entries with systemd-boot boot counting, on the ESP. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * ringil writes one Type #1 entry per slot: ESP/loader/entries/<prefix>-<slot>-<version>[+LEFT[-DONE]].conf
 * with `sort-key <prefix>` and `version <version>`, pointing either at a UKI it placed under
 * ESP/EFI/<prefix>/ (under the `linux` key, which every systemd-boot version counts; see bootentry_write)
 * or at the configured kernel/initrd. systemd-boot decrements the counter
 * by renaming the file on every boot attempt; an entry with 0 tries left sorts last.
 *
 * Why loader.conf says `default <prefix>-*` and never an exact id: systemd-boot picks the first entry in
 * sorted order that matches the default pattern and does NOT skip entries with no tries left; an exact
 * id would keep booting a failed slot forever. With the glob, the order decides: entries that still have
 * tries (or are blessed) first, then the highest version, so a new pending slot is tried and a failed
 * one falls behind the slot that worked.
 */
#define BOOTENTRY_MAX_ENTRIES 64
#define BOOTENTRY_LOADER_CONF_MAX (16u * 1024u)

struct boot_entry {
        char id[256];        /* "<prefix>-<slot>-<version>.conf": the name without counter (systemd's id) */
        char file[256];      /* current file name under loader/entries */
        char version[128];
        int slot;            /* 0/1 */
        int tries_left;      /* -1: no counter (blessed) */
        int tries_done;      /* -1 when absent */
};

/*
 * Parse an entry file name of ours. -RINGIL_EMALFORMED if it is not "<prefix>-<a|b>-<version>[+LEFT[-DONE]].conf"
 * with a valid version, or a different prefix. The counter grammar is systemd-boot's: the last '+' of the
 * name, decimal LEFT, optionally '-' and decimal DONE (each at most INT_MAX), then the suffix. Pure; fuzzed.
 */
int bootentry_parse_name(const char *fname, const char *prefix, struct boot_entry *ret);

/*
 * Parse an entry id as a loader reports it (LoaderEntrySelected) or an operator types it (--booted):
 * "<prefix>-<a|b>-<version>", with or without the counter (systemd-boot before 257.x reports the name
 * as it was before its rename, counter included; later versions strip it) and with or without ".conf"
 * (any case). ret->file is left empty. -RINGIL_EMALFORMED with a detail naming the problem (a `+' that
 * is not a counter, a Type #2 ".efi" id, not our prefix). Pure; fuzzed.
 */
int bootentry_parse_id(const char *id, const char *prefix, struct boot_entry *ret);

/*
 * The booted slot's entry file: id (as above) confirmed against the ESP. count_path (LoaderBootCountPath,
 * a backslash path "<bs>loader<bs>entries<bs>FILE", or NULL) must name the same slot and version. Exactly
 * one entry file of ours must exist for that slot, with that version; ret is that file as it is now (after the loader's rename,
 * or blessed already). Errors, each with a detail: -RINGIL_EMALFORMED (id not ours), -ENOENT (no file),
 * -RINGIL_EREFUSED (two files for the slot, another version, count path disagreeing).
 */
int bootentry_identify(const char *esp, const char *prefix, const char *id, const char *count_path,
                       struct boot_entry *ret);

/* List our entries under ESP/loader/entries, in systemd-boot's boot order (see above). */
int bootentry_list(const char *esp, const char *prefix, struct boot_entry **ret, size_t *ret_n);

/* The entry systemd-boot would boot by default among ours, or NULL. */
const struct boot_entry *bootentry_default(const struct boot_entry *e, size_t n);

/* 0 if the entry is blessed or has tries left; "bad" means 0 tries left. */
static inline bool bootentry_is_bad(const struct boot_entry *e) {
        return e->tries_left == 0;
}

struct boot_entry_spec {
        const char *prefix, *title, *version;
        int slot;
        unsigned tries;
        const char *efi;       /* ESP-relative path of a UKI ("/EFI/ringil/…"), or NULL */
        const char *linux_path, *initrd, *options;   /* when efi is NULL */
};

/* Write the entry with "+tries" atomically (temp, fsync, rename, fsync dir). */
int bootentry_write(const char *esp, const struct boot_entry_spec *s);

/* Remove every entry of ours for slot (and its UKIs under EFI/<prefix>/), fsyncing the directories. */
int bootentry_remove_slot(const char *esp, const char *prefix, int slot);

/* Rename to the blessed name (no counter) / to "+0-DONE" (bad). Atomic rename + directory fsync. */
int bootentry_bless(const char *esp, const struct boot_entry *e);
int bootentry_mark_bad(const char *esp, const struct boot_entry *e);

/* Make loader.conf's `default` the pattern, keeping every other line; atomic. No-op if already so. */
int bootentry_set_default(const char *esp, const char *pattern);

/* Place bytes at ESP-relative path atomically (directories created), e.g. a verified UKI. */
int bootentry_put_file(const char *esp, const char *relpath, const void *data, size_t len);

/*
 * The booted entry id from the LoaderEntrySelected variable (vendor 4a67b082-0a4c-41cf-b6c7-440b29bb8c4f)
 * in an efivarfs directory: attributes, then a NUL-terminated UTF-16LE string. -ENOENT when absent,
 * -RINGIL_EMALFORMED when not a printable ASCII id of at most 255 characters.
 */
int bootentry_selected(const char *efivarfs, char **ret);
int bootentry_decode_selected(const unsigned char *raw, size_t len, char **ret);

/*
 * LoaderEntryDefault (set by `bootctl set-default`) overrides loader.conf's pattern; set to an exact id it
 * would defeat the fallback described above. Returns its id (to report it), -ENOENT when absent.
 */
int bootentry_efivar_default(const char *efivarfs, char **ret);

/* LoaderBootCountPath: the ESP path (backslashes) systemd-boot renamed the booted entry to on this boot;
 * -ENOENT when the boot was not counted. LoaderInfo: the loader's name and version ("systemd-boot 252.39-1~deb12u2"). */
int bootentry_count_path(const char *efivarfs, char **ret);
int bootentry_loader_info(const char *efivarfs, char **ret);
