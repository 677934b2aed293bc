/* install-bootentry.c: BLS Type #1 entries with boot counting, loader.conf's default and UKIs on the ESP. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "install-bootentry.h"
#include "buf.h"
#include "vercmp.h"
#include "efi-var.h"
#include "err.h"
#include "fileio.h"
#include "install-conf.h"
#include "install-state.h"
#include "macro.h"
#include "parse.h"

#define LOADER_VENDOR "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

/*
 * systemd-boot's boot counter (boot.c): after the LAST '+' of the name, decimal LEFT, optionally '-' and
 * decimal DONE, each at most INT_MAX, then nothing but the suffix. s[0..n) starts at that '+'.
 */
static int parse_counter(const char *s, size_t n, int *ret_left, int *ret_done) {
        uint64_t v[2] = { 0, 0 };
        size_t i = 1, digits;

        if (n < 2 || s[0] != '+')
                return -RINGIL_EMALFORMED;
        for (int k = 0; k < 2; k++) {
                for (digits = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
                        v[k] = v[k] * 10 + (uint64_t) (s[i] - '0');
                        if (v[k] > INT_MAX)
                                return -RINGIL_EMALFORMED;
                }
                if (digits == 0)
                        return -RINGIL_EMALFORMED;
                if (i == n) {
                        *ret_left = (int) v[0];
                        *ret_done = k == 1 ? (int) v[1] : -1;
                        return 0;
                }
                if (k == 1 || s[i] != '-')
                        return -RINGIL_EMALFORMED;
                i++;
        }
        return -RINGIL_EMALFORMED;
}

/* "<prefix>-<a|b>-<version>[+LEFT[-DONE]]" (name[0..n), no suffix) into e: slot, version, counter, id. */
static int parse_stem(const char *name, size_t n, const char *prefix, struct boot_entry *e) {
        size_t pl = strlen(prefix), base = n;
        const char *plus = NULL;
        int r;

        for (size_t i = 0; i < n; i++)
                if (name[i] == '+')
                        plus = name + i;   /* the last '+', as systemd-boot takes it */
        e->tries_left = e->tries_done = -1;
        if (plus) {
                r = parse_counter(plus, n - (size_t) (plus - name), &e->tries_left, &e->tries_done);
                if (r < 0)
                        return r;
                base = (size_t) (plus - name);
        }
        if (base < pl + 4 || strncmp(name, prefix, pl) != 0 || name[pl] != '-' ||
            (name[pl + 1] != 'a' && name[pl + 1] != 'b') || name[pl + 2] != '-')
                return -RINGIL_EMALFORMED;
        if (base - pl - 3 >= sizeof(e->version) || base + 6 > sizeof(e->id))
                return -RINGIL_EMALFORMED;
        memcpy(e->version, name + pl + 3, base - pl - 3);
        e->version[base - pl - 3] = '\0';
        if (version_valid(e->version) < 0)
                return -RINGIL_EMALFORMED;
        e->slot = name[pl + 1] == 'a' ? 0 : 1;
        memcpy(e->id, name, base);
        memcpy(e->id + base, ".conf", 6);
        return 0;
}

int bootentry_parse_name(const char *fname, const char *prefix, struct boot_entry *ret) {
        struct boot_entry e = {};
        size_t n = strlen(fname);
        int r;

        if (n < 5 || n >= sizeof(e.file) || strcmp(fname + n - 5, ".conf") != 0)
                return -RINGIL_EMALFORMED;
        r = parse_stem(fname, n - 5, prefix, &e);
        if (r < 0)
                return r;
        memcpy(e.file, fname, n + 1);
        *ret = e;
        return 0;
}

static bool ends_with_nocase(const char *s, size_t n, const char *suffix) {
        size_t k = strlen(suffix);
        return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

int bootentry_parse_id(const char *id, const char *prefix, struct boot_entry *ret) {
        struct boot_entry e = {};
        size_t n = strnlen(id, sizeof(e.file));
        const char *plus;
        int r;

        if (n == 0 || n >= sizeof(e.file))
                return ringil_fail(-RINGIL_EMALFORMED, "entry id empty or over %zu bytes", sizeof(e.file) - 1);
        /* systemd-boot matches the suffix case-insensitively and lowercases ids; ours are lowercase. */
        if (ends_with_nocase(id, n, ".conf"))
                n -= 5;
        else if (ends_with_nocase(id, n, ".efi"))
                return ringil_fail(-RINGIL_EMALFORMED, "`%s' names a Type #2 (.efi) entry; %s slots are .conf entries", id,
                                   prefix);
        plus = memrchr(id, '+', n);
        if (plus && parse_counter(plus, n - (size_t) (plus - id), &e.tries_left, &e.tries_done) < 0)
                return ringil_fail(-RINGIL_EMALFORMED,
                                   "in `%s' the `+' is not a boot counter (systemd-boot's +LEFT or +LEFT-DONE, decimal)", id);
        r = parse_stem(id, n, prefix, &e);
        if (r < 0)
                return ringil_fail(r, "`%s' is not a %s slot entry (%s-a|b-VERSION[+LEFT[-DONE]][.conf])", id, prefix,
                                   prefix);
        *ret = e;
        return 0;
}

/* systemd-boot's order restricted to our entries (same sort-key, no machine-id): see install-bootentry.h. */
static int entry_cmp(const void *pa, const void *pb) {
        const struct boot_entry *a = pa, *b = pb;
        int r;

        r = (int) bootentry_is_bad(a) - (int) bootentry_is_bad(b);
        if (r != 0)
                return r;
        r = -version_compare(a->version, b->version);
        if (r != 0)
                return r;
        r = -strverscmp(a->id, b->id);
        if (r != 0)
                return r;
        if (a->tries_left < 0 || b->tries_left < 0)
                return 0;
        r = b->tries_left - a->tries_left;
        return r != 0 ? r : a->tries_done - b->tries_done;
}

static int entries_dir(const char *esp, char **ret) {
        return asprintf(ret, "%s/loader/entries", esp) < 0 ? -ENOMEM : 0;
}

int bootentry_list(const char *esp, const char *prefix, struct boot_entry **ret, size_t *ret_n) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ struct boot_entry *v = NULL;
        size_t n = 0;
        DIR *d;
        struct dirent *de;
        int r;

        r = entries_dir(esp, &dir);
        if (r < 0)
                return r;
        v = calloc(BOOTENTRY_MAX_ENTRIES, sizeof(*v));
        if (!v)
                return -ENOMEM;
        d = opendir(dir);
        if (!d && errno != ENOENT)
                return ringil_fail(negative_errno(), "cannot read %s", dir);
        while (d && (de = readdir(d))) {
                struct boot_entry e;
                if (bootentry_parse_name(de->d_name, prefix, &e) < 0)
                        continue;
                if (n >= BOOTENTRY_MAX_ENTRIES) {
                        closedir(d);
                        return ringil_fail(-RINGIL_ETOOBIG, "more than %u entries in %s", BOOTENTRY_MAX_ENTRIES, dir);
                }
                v[n++] = e;
        }
        if (d)
                closedir(d);
        qsort(v, n, sizeof(*v), entry_cmp);
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

const struct boot_entry *bootentry_default(const struct boot_entry *e, size_t n) {
        return n > 0 ? &e[0] : NULL;
}

static int fsync_dir(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        return fsync(fd) < 0 ? negative_errno() : 0;
}

int bootentry_put_file(const char *esp, const char *relpath, const void *data, size_t len) {
        _cleanup_free_ char *p = NULL, *dir = NULL;
        int r;

        if (relpath[0] != '/' || strstr(relpath, ".."))
                return -EINVAL;
        if (asprintf(&p, "%s%s", esp, relpath) < 0)
                return -ENOMEM;
        dir = strdup(p);
        if (!dir)
                return -ENOMEM;
        *strrchr(dir, '/') = '\0';
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return ringil_fail(r, "cannot create %s", dir);
        crash_point("ESP file write");
        r = atomic_write_file(p, data, len, 0644, AW_NOCHMOD);
        if (r < 0)
                return ringil_fail(r, "cannot write %s", p);
        crash_point("ESP file renamed");
        return 0;
}

static char *subst_slot(const char *s, int slot) {
        _cleanup_buf_ struct buf b = BUF_INIT(4096);

        for (const char *p = s; *p;) {
                if (strncmp(p, "@SLOT@", 6) == 0) {
                        if (buf_printf(&b, "%c", slot_letter(slot)) < 0)
                                return NULL;
                        p += 6;
                } else {
                        if (buf_append(&b, p, 1) < 0)
                                return NULL;
                        p++;
                }
        }
        if (buf_reserve(&b, 0) < 0)
                return NULL;
        return (char *) buf_steal(&b, NULL);
}

int bootentry_write(const char *esp, const struct boot_entry_spec *s) {
        _cleanup_buf_ struct buf b = BUF_INIT(8192);
        _cleanup_free_ char *rel = NULL, *opts = NULL;
        int r;

        if (s->tries < 1 || s->tries > 9999 || version_valid(s->version) < 0)
                return -EINVAL;
        r = buf_printf(&b, "# written by ringil install; boot counting renames this file\n"
                           "title %s (%c, %s)\nsort-key %s\nversion %s\n",
                       s->title, slot_letter(s->slot), s->version, s->prefix, s->version);
        /* A UKI goes under the `linux' key, not `efi': systemd-boot counts boot attempts only for `linux',
         * `uki' and Type #2 entries since 258 (an `efi' entry boots forever however often it fails), `uki' is
         * unknown before 257 (and not booted by 257.13), and a Type #2 entry would take its order from the
         * UKI's os-release instead of our sort-key/version. `linux' loads the UKI through LoadImage (so the
         * firmware checks its signature) and passes no options, so its own .cmdline applies. Proven on
         * 252, 254, 257 and 262 by tests/vm/test_loaders.py. */
        if (r >= 0 && s->efi)
                r = buf_printf(&b, "linux %s\n", s->efi);
        else if (r >= 0) {
                if (!s->linux_path)
                        return ringil_fail(-EINVAL, "no EFI payload and no [boot] linux configured");
                r = buf_printf(&b, "linux %s\n", s->linux_path);
                if (r >= 0 && s->initrd) {
                        _cleanup_free_ char *i = subst_slot(s->initrd, s->slot);
                        r = i ? buf_printf(&b, "initrd %s\n", i) : -ENOMEM;
                }
                if (r >= 0 && s->options) {
                        opts = subst_slot(s->options, s->slot);
                        r = opts ? buf_printf(&b, "options %s\n", opts) : -ENOMEM;
                }
        }
        if (r < 0)
                return r;
        if (asprintf(&rel, "/loader/entries/%s-%c-%s+%u.conf", s->prefix, slot_letter(s->slot), s->version,
                     s->tries) < 0)
                return -ENOMEM;
        return bootentry_put_file(esp, rel, b.data, b.len);
}

static int remove_matching(const char *dir, const char *prefix, int slot, const char *suffix, bool conf) {
        char head[80];
        DIR *d;
        struct dirent *de;
        bool removed = false;
        int r = 0;

        (void) snprintf(head, sizeof(head), "%s-%c-", prefix, slot_letter(slot));
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : ringil_fail(negative_errno(), "cannot read %s", dir);
        while ((de = readdir(d))) {
                struct boot_entry e;
                size_t n = strlen(de->d_name);
                if (conf ? bootentry_parse_name(de->d_name, prefix, &e) < 0 || e.slot != slot
                         : strncmp(de->d_name, head, strlen(head)) != 0 || n < strlen(suffix) ||
                                   strcmp(de->d_name + n - strlen(suffix), suffix) != 0)
                        continue;
                crash_point("ESP unlink");
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
                        r = ringil_fail(negative_errno(), "cannot remove %s/%s", dir, de->d_name);
                        break;
                }
                removed = true;
        }
        closedir(d);
        if (r >= 0 && removed) {
                r = fsync_dir(dir);
                crash_point("ESP unlink synced");
        }
        return r;
}

int bootentry_remove_slot(const char *esp, const char *prefix, int slot) {
        _cleanup_free_ char *dir = NULL, *uki = NULL;
        int r;

        r = entries_dir(esp, &dir);
        if (r < 0)
                return r;
        /* The entry first: a UKI without an entry is never booted; an entry without its UKI fails to boot. */
        r = remove_matching(dir, prefix, slot, ".conf", true);
        if (r < 0)
                return r;
        if (asprintf(&uki, "%s/EFI/%s", esp, prefix) < 0)
                return -ENOMEM;
        return remove_matching(uki, prefix, slot, ".efi", false);
}

static int rename_entry(const char *esp, const struct boot_entry *e, const char *newname) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int dfd = -EBADF;
        int r;

        r = entries_dir(esp, &dir);
        if (r < 0)
                return r;
        if (streq(e->file, newname))
                return 0;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ringil_fail(negative_errno(), "cannot open %s", dir);
        crash_point("ESP rename");
        if (renameat(dfd, e->file, dfd, newname) < 0)
                return ringil_fail(negative_errno(), "cannot rename %s to %s", e->file, newname);
        {
                /* vfat writes a renamed file's size and first cluster into its new directory entry only when
                 * the inode is written back: fsync the file at its new name, then the directory (see
                 * atomic_write_file). */
                _cleanup_close_ int fd = openat(dfd, newname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 || fsync(fd) < 0)
                        return ringil_fail(negative_errno(), "cannot sync %s/%s", dir, newname);
        }
        if (fsync(dfd) < 0)
                return negative_errno();
        crash_point("ESP renamed");
        return 0;
}

int bootentry_bless(const char *esp, const struct boot_entry *e) {
        char name[256];

        (void) snprintf(name, sizeof(name), "%s", e->id);
        return rename_entry(esp, e, name);
}

int bootentry_mark_bad(const char *esp, const struct boot_entry *e) {
        char name[300];
        size_t n = strlen(e->id) - 5;   /* id ends in ".conf" */

        (void) snprintf(name, sizeof(name), "%.*s+0-%d.conf", (int) n, e->id, e->tries_done > 0 ? e->tries_done : 1);
        return rename_entry(esp, e, name);
}

int bootentry_set_default(const char *esp, const char *pattern) {
        _cleanup_free_ char *p = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_buf_ struct buf b = BUF_INIT(BOOTENTRY_LOADER_CONF_MAX + 512);
        size_t len = 0;
        bool done = false, changed = true;
        int r;

        if (asprintf(&p, "%s/loader/loader.conf", esp) < 0)
                return -ENOMEM;
        r = read_full_file(p, RFILE_NOFOLLOW, BOOTENTRY_LOADER_CONF_MAX, &data, &len);
        if (r < 0 && r != -ENOENT)
                return ringil_fail(r, "cannot read %s", p);
        for (size_t pos = 0; data && pos < len;) {
                const char *line = (const char *) data + pos, *nl = memchr(line, '\n', len - pos);
                size_t n = nl ? (size_t) (nl - line) : len - pos;
                pos += n + (nl ? 1 : 0);
                if (n >= 8 && strncmp(line, "default", 7) == 0 && (line[7] == ' ' || line[7] == '\t')) {
                        const char *v = line + 8;
                        while (v < line + n && (*v == ' ' || *v == '\t'))
                                v++;
                        if (done)
                                continue;   /* drop duplicates */
                        if ((size_t) (line + n - v) == strlen(pattern) && strncmp(v, pattern, strlen(pattern)) == 0)
                                changed = false;
                        r = buf_printf(&b, "default %s\n", pattern);
                        done = true;
                } else {
                        r = buf_append(&b, line, n);
                        if (r >= 0)
                                r = buf_append(&b, "\n", 1);
                }
                if (r < 0)
                        return r;
        }
        if (!done) {
                r = buf_printf(&b, "default %s\n", pattern);
                if (r < 0)
                        return r;
        }
        if (done && !changed)
                return 0;
        return bootentry_put_file(esp, "/loader/loader.conf", b.data, b.len);
}

/*
 * A loader variable holding one NUL-terminated UTF-16LE string. Loader ids and paths are printable ASCII
 * (systemd-boot lowercases ids), so anything else is refused rather than converted; `/' never appears in
 * an id, and a backslash only in a path (allow_path).
 */
static int decode_string_var(const unsigned char *raw, size_t len, const char *what, bool allow_path, char **ret) {
        _cleanup_free_ char *s = NULL;
        const uint8_t *data;
        size_t dlen, n = 0;
        uint32_t attr;
        int r;

        r = efivar_decode(raw, len, &attr, &data, &dlen);
        if (r < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "%s: shorter than its attribute header", what);
        if (dlen < 2 || dlen % 2 != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "%s: bad length %zu", what, dlen);
        if (dlen > 2 * 512)
                return ringil_fail(-RINGIL_ETOOBIG, "%s: longer than 512 characters", what);
        s = malloc(dlen / 2 + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i + 1 < dlen; i += 2) {
                unsigned c = data[i] | (unsigned) data[i + 1] << 8;
                if (c == 0)
                        break;
                if (c < 0x20 || c > 0x7e || c == '/' || (c == '\\' && !allow_path))
                        return ringil_fail(-RINGIL_EMALFORMED, "%s: not a printable ASCII %s", what,
                                           allow_path ? "path" : "id");
                s[n++] = (char) c;
        }
        if (n == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "%s: empty", what);
        s[n] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

int bootentry_decode_selected(const unsigned char *raw, size_t len, char **ret) {
        return decode_string_var(raw, len, "LoaderEntrySelected", false, ret);
}

static int read_string_var(const char *efivarfs, const char *name, bool allow_path, char **ret) {
        _cleanup_free_ char *p = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r;

        if (asprintf(&p, "%s/%s-%s", efivarfs, name, LOADER_VENDOR) < 0)
                return -ENOMEM;
        r = read_full_file(p, RFILE_NOFOLLOW, 4096, &data, &len);
        if (r < 0)
                return r == -EFBIG ? -RINGIL_ETOOBIG : r;
        return decode_string_var(data, len, name, allow_path, ret);
}

int bootentry_selected(const char *efivarfs, char **ret) {
        return read_string_var(efivarfs, "LoaderEntrySelected", false, ret);
}

int bootentry_efivar_default(const char *efivarfs, char **ret) {
        return read_string_var(efivarfs, "LoaderEntryDefault", false, ret);
}

int bootentry_count_path(const char *efivarfs, char **ret) {
        return read_string_var(efivarfs, "LoaderBootCountPath", true, ret);
}

int bootentry_loader_info(const char *efivarfs, char **ret) {
        return read_string_var(efivarfs, "LoaderInfo", false, ret);
}

int bootentry_identify(const char *esp, const char *prefix, const char *id, const char *count_path,
                       struct boot_entry *ret) {
        _cleanup_free_ struct boot_entry *v = NULL;
        const struct boot_entry *found = NULL;
        struct boot_entry want;
        size_t n;
        int r;

        r = bootentry_parse_id(id, prefix, &want);
        if (r < 0)
                return r;
        if (count_path) {
                /* Set by systemd-boot only when it renamed an entry on this boot: the file as renamed. */
                static const char dir[] = "\\loader\\entries\\";
                struct boot_entry counted;
                if (strncasecmp(count_path, dir, sizeof(dir) - 1) != 0 ||
                    bootentry_parse_name(count_path + sizeof(dir) - 1, prefix, &counted) < 0 ||
                    counted.slot != want.slot || !streq(counted.version, want.version))
                        return ringil_fail(-RINGIL_EREFUSED,
                                           "LoaderBootCountPath `%s' and LoaderEntrySelected `%s' name different entries",
                                           count_path, id);
        }
        r = bootentry_list(esp, prefix, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (v[i].slot != want.slot)
                        continue;
                if (found)
                        /* bootentry_remove_slot() leaves none before a write, so two are someone else's doing. */
                        return ringil_fail(-RINGIL_EREFUSED,
                                           "two entry files for slot %c under %s/loader/entries: %s and %s; remove the stale one",
                                           slot_letter(want.slot), esp, found->file, v[i].file);
                found = &v[i];
        }
        if (!found)
                return ringil_fail(-ENOENT, "booted entry `%s' matches no file under %s/loader/entries", id, esp);
        if (!streq(found->version, want.version))
                return ringil_fail(-RINGIL_EREFUSED, "booted entry `%s' is version %s, but slot %c's entry file is %s",
                                   id, want.version, slot_letter(want.slot), found->file);
        *ret = *found;
        return 0;
}
