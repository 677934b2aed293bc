/* install.c: verify a bundle, stream its verified chunks into the inactive slot, then add the boot entry. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "efi-authenticode.h"
#include "install-bootentry.h"
#include "bundle.h"
#include "err.h"
#include "fileio.h"
#include "install.h"
#include "install-delta.h"
#include "install-fetch.h"
#include "install-nix.h"
#include "log.h"
#include "macro.h"
#include "process.h"
#include "progress.h"

#define CHUNK_MAX (64u << 20)

int install_find_booted(const struct device_conf *c, const char *booted, struct boot_entry *ret, char **ret_reported,
                        enum booted_state *ret_state) {
        _cleanup_free_ char *id = NULL, *count_path = NULL;
        struct boot_entry e;
        int r;

        *ret_state = BOOTED_INVALID;
        if (booted) {
                id = strdup(booted);
                if (!id)
                        return -ENOMEM;
        } else {
                /* INVARIANT: the booted slot is never guessed (not even from the state's good slot: booted
                 * into a pending slot, that guess names the other one, and the running slot is overwritten). */
                r = bootentry_selected(c->efivarfs, &id);
                if (r == -ENOENT) {
                        *ret_state = BOOTED_UNKNOWN;
                        return ringil_fail(-ENOENT,
                                           "no LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f in %s (efivarfs not "
                                           "mounted there, or not booted by systemd-boot), so the booted slot is unknown; pass "
                                           "--booted ENTRY (its file name under %s/loader/entries, with or without the "
                                           "+LEFT-DONE counter)",
                                           c->efivarfs, c->esp);
                }
                if (r < 0)
                        return r;
                /* Only the loader's own word on this boot: an operator's --booted is checked against the ESP alone. */
                r = bootentry_count_path(c->efivarfs, &count_path);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        r = bootentry_parse_id(id, c->entry_name, &e);
        if (r < 0) {
                *ret_state = BOOTED_FOREIGN;
                return ringil_fail(-RINGIL_EREFUSED, "booted entry is not a %s slot: %s", c->entry_name, ringil_detail());
        }
        r = bootentry_identify(c->esp, c->entry_name, id, count_path, &e);
        if (r < 0)
                return r == -ENOENT ? -RINGIL_EREFUSED : r;
        *ret = e;
        *ret_state = BOOTED_OK;
        if (ret_reported)
                *ret_reported = TAKE_PTR(id);
        return 0;
}

int install_run_hook(const char *path, const char *phase, int slot, const char *version) {
        char e_phase[64], e_slot[32], e_version[160];
        char *const argv[] = { (char *) path, (char *) phase, NULL };
        char *const envp[] = { (char *) "PATH=/run/current-system/sw/bin:/usr/bin:/bin", e_phase, e_slot, e_version, NULL };

        (void) snprintf(e_phase, sizeof(e_phase), "RINGIL_PHASE=%s", phase);
        (void) snprintf(e_slot, sizeof(e_slot), "RINGIL_SLOT=%c", slot >= 0 ? slot_letter(slot) : '-');
        (void) snprintf(e_version, sizeof(e_version), "RINGIL_VERSION=%s", version ? version : "");
        return process_run(argv, &(struct process_opts) { .envp = envp, .exact_path = true }, NULL);
}

bool install_efi_verifier_available(void) {
        return true;
}

int install_efi_verify(const char *keyring, const uint8_t *data, size_t len) {
        _cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
        int r, first = -RINGIL_EUNTRUSTED;

        /* INVARIANT: no EFI binary reaches the ESP without an Authenticode check against db. */
        r = crypto_load_certs(keyring, &certs);
        if (r < 0)
                return ringil_fail(r, "cannot load keyring %s", keyring);
        for (int i = 0; i < sk_X509_num(certs); i++) {
                r = authenticode_verify(data, len, sk_X509_value(certs, i), NULL);
                if (r == 0)
                        return 0;
                /* Report the most telling failure: a bad image or signature over "not this anchor". */
                if (i == 0 || r != -RINGIL_EUNTRUSTED)
                        first = r;
        }
        return ringil_fail(first, "EFI payload fails Authenticode against %s", keyring);
}

/* Bytes a slot can hold: a block device's size (BLKGETSIZE64) or a regular file's length. */
static int fd_capacity(int fd, const char *path, uint64_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return ringil_fail(negative_errno(), "cannot stat slot '%s'", path);
        if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, ret) < 0)
                        return ringil_fail(negative_errno(), "cannot read the size of block device '%s'", path);
                return 0;
        }
        if (!S_ISREG(st.st_mode))
                return ringil_fail(-RINGIL_EREFUSED, "slot '%s' is neither a block device nor a regular file", path);
        *ret = (uint64_t) st.st_size;
        return 0;
}

static int slot_capacity(const char *path, uint64_t *ret) {
        /* O_PATH would not do for the ioctl; O_RDONLY|O_NONBLOCK opens a device without side effects. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return ringil_fail(negative_errno(), "cannot open slot '%s'", path);
        return fd_capacity(fd, path, ret);
}

/* Everything that can be checked about the target without writing: before the first write. */
static int preflight(const struct device_conf *c, const struct bundle_manifest *m, int target, int *ret_efi) {
        int efi = -1;

        if (m->n_payloads == 0 || m->n_payloads > INSTALL_MAX_PAYLOADS)
                return ringil_fail(-RINGIL_EREFUSED, "bundle has %zu payloads (1..%u supported)", m->n_payloads,
                                   INSTALL_MAX_PAYLOADS);
        for (size_t i = 0; i < m->n_payloads; i++) {
                const struct bundle_payload *p = &m->payloads[i];
                const struct slot_class *sc;
                uint64_t cap;
                int r;

                if (p->chunk_size == 0 || p->chunk_size > CHUNK_MAX)
                        return ringil_fail(-RINGIL_ETOOBIG, "payload `%s': chunk size %u unsupported", p->name,
                                           p->chunk_size);
                switch (p->type) {
                case BUNDLE_PAYLOAD_RAW:
                        sc = device_conf_find_class(c, p->name);
                        if (!sc)
                                return ringil_fail(-RINGIL_EINCOMPAT, "no [slot.%s.a/b] for payload `%s'", p->name,
                                                   p->name);
                        r = slot_capacity(sc->device[target], &cap);
                        if (r < 0)
                                return r;
                        /* INVARIANT: a payload larger than its slot is refused here, before the first write
                         * anywhere; a file-backed slot is never grown (pwrite past its end would). */
                        if (p->size > cap)
                                return ringil_fail(-RINGIL_ETOOBIG,
                                                   "payload '%s' (%llu bytes) does not fit slot '%s' (%llu bytes): "
                                                   "the slot must be at least as large as the image",
                                                   p->name, (unsigned long long) p->size, sc->device[target],
                                                   (unsigned long long) cap);
                        break;
                case BUNDLE_PAYLOAD_EFI:
                        if (efi >= 0)
                                return ringil_fail(-RINGIL_EREFUSED, "more than one EFI payload");
                        if (!install_efi_verifier_available())
                                return ringil_fail(-RINGIL_EREFUSED,
                                                   "EFI payload `%s' refused: this build has no Authenticode verifier",
                                                   p->name);
                        if (p->size > c->efi_max)
                                return ringil_fail(-RINGIL_ETOOBIG, "EFI payload `%s' over efi-max", p->name);
                        efi = (int) i;
                        break;
                case BUNDLE_PAYLOAD_NIXOS:
                        return ringil_fail(-RINGIL_EREFUSED, "payload `%s': nixos closures are installed by the agent, not into a slot",
                                           p->name);
                }
        }
        /* INVARIANT: every configured slot class is rewritten by a bundle, or nothing is: a class the bundle
         * leaves out would keep stale (or half-written) content under a new boot entry. */
        for (size_t k = 0; k < c->n_classes; k++) {
                bool found = false;
                for (size_t i = 0; i < m->n_payloads && !found; i++)
                        found = m->payloads[i].type == BUNDLE_PAYLOAD_RAW && streq(m->payloads[i].name, c->classes[k].name);
                if (!found)
                        return ringil_fail(-RINGIL_EINCOMPAT, "bundle has no raw payload `%s' for configured slot class [slot.%s]",
                                           c->classes[k].name, c->classes[k].name);
        }
        if (efi < 0 && !c->linux_path)
                return ringil_fail(-RINGIL_EREFUSED, "bundle has no EFI payload and [boot] linux is not configured");
        *ret_efi = efi;
        return 0;
}

static int staging_path(const struct device_conf *c, int slot, size_t idx, char **ret) {
        return asprintf(ret, "%s/staging-%c-%zu.efi", c->state_dir, slot_letter(slot), idx) < 0 ? -ENOMEM : 0;
}

/*
 * A second thread writes chunk i while this one reads and hashes chunk i+1, so an install runs at the
 * speed of the slower of hashing and writing, not of their sum. Two buffers; a buffer is handed over
 * only after bundle_read_chunk() verified it, and the writer never sees anything else.
 */
struct writer {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int fd;
        uint8_t *buf[2];
        size_t len[2];
        uint64_t off[2];
        bool full[2];
        bool quit;
        int err;
        uint64_t written;   /* chunks written so far */
};

static void *writer_main(void *userdata) {
        struct writer *w = userdata;
        unsigned k = 0;

        for (;;) {
                int r;

                pthread_mutex_lock(&w->lock);
                while (!w->full[k] && !w->quit)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (!w->full[k]) {
                        pthread_mutex_unlock(&w->lock);
                        return NULL;
                }
                pthread_mutex_unlock(&w->lock);

                r = pwrite_all(w->fd, w->buf[k], w->len[k], (off_t) w->off[k]);
                if (r >= 0) {
                        crash_point("chunk write");
                        /* Start writeback now so the checkpoint's fdatasync has little left to do. */
                        (void) sync_file_range(w->fd, (off_t) w->off[k], (off_t) w->len[k], SYNC_FILE_RANGE_WRITE);
                }

                pthread_mutex_lock(&w->lock);
                w->full[k] = false;
                if (r < 0 && w->err == 0)
                        w->err = r;
                else if (r >= 0)
                        w->written++;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                if (r < 0)
                        return NULL;
                k ^= 1;
        }
}

/* Wait until buffer k is free (or, k < 0, until both are): the writer's error, if any. */
static int writer_wait(struct writer *w, int k) {
        int r;

        pthread_mutex_lock(&w->lock);
        while (w->err == 0 && (k >= 0 ? w->full[k] : (w->full[0] || w->full[1])))
                pthread_cond_wait(&w->cond, &w->lock);
        r = w->err;
        pthread_mutex_unlock(&w->lock);
        return r;
}

/* Where the chunks of one payload come from in this run (delta installs; all NULL: the bundle). */
struct chunk_sources {
        const struct delta_plan *plan;        /* local locations; NULL: every chunk from the bundle */
        const struct delta_source *srcs;
        fetch_stream *fs;                     /* fetch protocol: ask for the missing chunks first */
        bool request;                         /* ask for this payload's batch (delta mode) */
};

/* Ask the agent for chunks [from, n) that the plan does not find locally (all with no plan), adjacent
 * chunks coalesced into one range; or, with `only`, for exactly those chunks. */
static int request_chunks(bundle *b, fetch_stream *fs, size_t idx, const struct bundle_payload *p, uint64_t from,
                          const struct delta_plan *plan, const uint64_t *only, size_t n_only) {
        _cleanup_free_ struct fetch_range *r = NULL;
        size_t n = 0, cap = 0;

        for (uint64_t j = 0; j < (only ? n_only : p->n_chunks - MIN(from, p->n_chunks)); j++) {
                uint64_t i = only ? only[j] : from + j, off;
                size_t len = bundle_chunk_len(p, i);
                int k;

                if (!only && plan && plan->src[i] != DELTA_FETCH)
                        continue;
                k = bundle_chunk_offset(b, idx, i, &off);
                if (k < 0)
                        return k;
                if (n > 0 && r[n - 1].offset + r[n - 1].len == off) {
                        r[n - 1].len += len;
                        continue;
                }
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 256;
                        void *t = reallocarray(r, nc, sizeof(*r));
                        if (!t)
                                return -ENOMEM;
                        r = t;
                        cap = nc;
                }
                r[n++] = (struct fetch_range){ off, len };
        }
        return fetch_stream_request(fs, r, n);
}

/* Hand buffer k (len bytes for offset off) to the writer thread. */
static void writer_put(struct writer *w, unsigned k, size_t len, uint64_t off) {
        pthread_mutex_lock(&w->lock);
        w->len[k] = len;
        w->off[k] = off;
        w->full[k] = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

/*
 * Stream chunks [progress, n) of payload idx to fd; record progress every `checkpoint` bytes after
 * fdatasync. A chunk comes from the bundle (verified by bundle_read_chunk) or, with a plan, from local
 * storage (verified by delta_read_local); a local chunk that fails its hash is fetched after the others
 * ("deferred"), and progress never passes it until it is written.
 */
static int write_payload(const struct device_conf *c, bundle *b, size_t idx, const struct bundle_payload *p, int fd,
                         const struct chunk_sources *cs, struct install_state *st, struct install_result *res) {
        struct writer w = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .fd = fd };
        uint64_t since = 0, base, first_deferred = UINT64_MAX;
        _cleanup_free_ uint64_t *deferred = NULL;
        size_t n_deferred = 0, cap_deferred = 0;
        pthread_t thread;
        unsigned k = 0;
        int r = 0, rw;

        if (st->progress[idx] > p->n_chunks)
                return ringil_fail(-RINGIL_EMALFORMED, "state progress beyond payload `%s'", p->name);
        res->chunks_skipped += st->progress[idx];
        if (cs->fs && cs->request) {
                r = request_chunks(b, cs->fs, idx, p, st->progress[idx], cs->plan, NULL, 0);
                if (r < 0)
                        return r;
        }
        w.buf[0] = malloc(p->chunk_size);
        w.buf[1] = malloc(p->chunk_size);
        if (!w.buf[0] || !w.buf[1]) {
                free(w.buf[0]);
                free(w.buf[1]);
                return -ENOMEM;
        }
        r = -pthread_create(&thread, NULL, writer_main, &w);
        if (r < 0) {
                free(w.buf[0]);
                free(w.buf[1]);
                return r;
        }
        base = st->writes;
        {
                char what[128];
                uint64_t from = bundle_chunk_start(p, st->progress[idx]);
                (void) snprintf(what, sizeof(what), "writing '%s' to %s %c", p->name,
                                p->type == BUNDLE_PAYLOAD_EFI ? "staging for slot" : "slot", slot_letter(st->slot));
                progress_step(what, p->size > from ? p->size - from : 0);
        }
        /* Pass 0: every chunk from where the last run stopped; pass 1: the deferred ones, fetched. */
        const uint64_t from = st->progress[idx];   /* checkpoints move st->progress on */
        for (int pass = 0; r >= 0 && pass < 2; pass++) {
                uint64_t n = pass == 0 ? p->n_chunks - from : n_deferred;

                if (pass == 1) {
                        if (n_deferred == 0)
                                break;
                        log_debug("reuse: %zu chunk(s) of '%s' changed on local storage since the scan; fetching them", n_deferred,
                                  p->name);
                        if (cs->fs) {
                                r = request_chunks(b, cs->fs, idx, p, 0, NULL, deferred, n_deferred);
                                if (r < 0)
                                        break;
                        }
                }
                for (uint64_t j = 0; j < n; j++) {
                        uint64_t i = pass == 0 ? from + j : deferred[j];
                        bool local = pass == 0 && cs->plan && cs->plan->src[i] != DELTA_FETCH, last = j + 1 == n;
                        size_t len;

                        r = writer_wait(&w, (int) k);
                        if (r < 0)
                                break;
                        if (local) {
                                const struct delta_source *src = &cs->srcs[cs->plan->src[i]];
                                r = delta_read_local(p, i, cs->plan, cs->srcs, w.buf[k], &len);
                                if (r == -ENOMEM)
                                        break;
                                if (r < 0) {
                                        /* Not what the scan saw (bit rot, a modified slot, a read error): fetch it. */
                                        if (n_deferred == cap_deferred) {
                                                size_t nc = cap_deferred ? cap_deferred * 2 : 64;
                                                void *t = reallocarray(deferred, nc, sizeof(uint64_t));
                                                if (!t) {
                                                        r = -ENOMEM;
                                                        break;
                                                }
                                                deferred = t;
                                                cap_deferred = nc;
                                        }
                                        deferred[n_deferred++] = i;
                                        first_deferred = MIN(first_deferred, i);
                                        res->chunks_refetched++;
                                        r = 0;
                                        len = 0;
                                } else {
                                        res->bytes_local += len;
                                        if (src->is_target && cs->plan->off[i] == bundle_chunk_start(p, i))
                                                res->bytes_inplace += len;   /* already in place: nothing to write */
                                        else {
                                                writer_put(&w, k, len, bundle_chunk_start(p, i));
                                                k ^= 1;
                                        }
                                }
                        } else {
                                /* INVARIANT: only a chunk whose hash matched the signed manifest is written. */
                                r = bundle_read_chunk(b, idx, i, w.buf[k], &len);
                                if (r < 0)
                                        break;
                                if (cs->fs)
                                        res->bytes_fetched += len;
                                writer_put(&w, k, len, bundle_chunk_start(p, i));
                                k ^= 1;
                        }
                        progress_add(len);
                        since += len;
                        if (since < c->checkpoint_bytes && !last)
                                continue;
                        since = 0;
                        r = writer_wait(&w, -1);
                        if (r < 0)
                                break;
                        if (fdatasync(fd) < 0) {
                                r = ringil_fail(negative_errno(), "fdatasync of slot failed");
                                break;
                        }
                        crash_point("slot fsync");
                        /* Progress only ever names chunks that are verified and durable: in-place chunks
                         * were verified by reading them, and the fdatasync above covers every dirty page of
                         * the slot, including ones an interrupted earlier run left. */
                        if (pass == 0) {
                                uint64_t np = MIN(i + 1, first_deferred);
                                if (np > st->progress[idx])
                                        st->stalls = 0;   /* this run got further: it is not stuck */
                                st->progress[idx] = np;
                        }
                        st->writes = base + w.written;
                        r = install_state_save(c->state_dir, st);
                        if (r < 0)
                                break;
                }
        }
        rw = writer_wait(&w, -1);
        pthread_mutex_lock(&w.lock);
        w.quit = true;
        pthread_cond_broadcast(&w.cond);
        pthread_mutex_unlock(&w.lock);
        (void) pthread_join(thread, NULL);
        st->writes = base + w.written;
        res->chunks_written += w.written;
        free(w.buf[0]);
        free(w.buf[1]);
        if (r >= 0 && rw < 0)
                r = ringil_fail(rw, "write to slot failed");
        if (r < 0) {
                progress_abort();
                return r;
        }
        progress_done();
        if (p->n_chunks == 0 || st->progress[idx] != p->n_chunks) {
                if (fsync(fd) < 0)
                        return ringil_fail(negative_errno(), "fsync of slot failed");
                st->progress[idx] = p->n_chunks;
                r = install_state_save(c->state_dir, st);
        }
        return r < 0 ? r : 0;
}

static int open_target(const struct device_conf *c, const struct bundle_payload *p, size_t idx, int target,
                       bool fresh, int *ret_fd) {
        _cleanup_free_ char *path = NULL;
        int fd;

        if (p->type == BUNDLE_PAYLOAD_EFI) {
                int r = staging_path(c, target, idx, &path);
                if (r < 0)
                        return r;
                fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (fresh ? O_TRUNC : 0), 0600);
        } else {
                const struct slot_class *sc = device_conf_find_class(c, p->name);
                path = strdup(sc->device[target]);
                if (!path)
                        return -ENOMEM;
                fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        }
        if (fd < 0)
                return ringil_fail(negative_errno(), "cannot open '%s'", path);
        if (p->type == BUNDLE_PAYLOAD_RAW) {
                /* Checked again on the descriptor that is written: the path may name another file now. */
                uint64_t cap;
                int r = fd_capacity(fd, path, &cap);
                if (r >= 0 && p->size > cap)
                        r = ringil_fail(-RINGIL_ETOOBIG, "payload '%s' (%llu bytes) does not fit slot '%s' (%llu bytes)",
                                        p->name, (unsigned long long) p->size, path, (unsigned long long) cap);
                if (r < 0) {
                        safe_close(fd);
                        return r;
                }
        }
        *ret_fd = fd;
        return 0;
}

static int place_efi(const struct device_conf *c, const struct bundle_payload *p, size_t idx, int target,
                     const char *version, char **ret_rel) {
        _cleanup_free_ char *path = NULL, *rel = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        uint8_t md[SHA256_LEN];
        size_t len;
        int r;

        r = staging_path(c, target, idx, &path);
        if (r < 0)
                return r;
        r = read_full_file(path, RFILE_NOFOLLOW, c->efi_max, &data, &len);
        if (r < 0)
                return ringil_fail(r, "cannot read staged EFI payload %s", path);
        /* The staged file sat on disk between runs: check the exact bytes that will be placed. */
        r = crypto_sha256(data, len, md);
        if (r < 0)
                return r;
        if (len != p->size || crypto_memcmp(md, p->sha256, SHA256_LEN) != 0)
                return ringil_fail(-RINGIL_EDIGEST, "staged EFI payload `%s' does not match the manifest", p->name);
        /* INVARIANT: Authenticode against db before the image reaches the ESP. */
        r = install_efi_verify(c->keyring, data, len);
        if (r < 0)
                return r;
        if (asprintf(&rel, "/EFI/%s/%s-%c-%s.efi", c->entry_name, c->entry_name, slot_letter(target), version) < 0)
                return -ENOMEM;
        r = bootentry_put_file(c->esp, rel, data, len);
        if (r < 0)
                return r;
        /* The staged copy stays until the state says pending: a rerun after a crash needs it. */
        *ret_rel = TAKE_PTR(rel);
        return 0;
}

/* Chunk reuse for one install: per payload the local sources and the plan (install-delta.h). */
struct reuse {
        bool active;                          /* plans are valid and used */
        bool full;                            /* fetch protocol: one sequential range instead */
        struct delta_plan plan[INSTALL_MAX_PAYLOADS];
        struct delta_source srcs[INSTALL_MAX_PAYLOADS][DELTA_MAX_SOURCES];
        size_t n_srcs[INSTALL_MAX_PAYLOADS];
        char labels[INSTALL_MAX_PAYLOADS][2][64];
};

static void reuse_done(struct reuse *u) {
        for (size_t i = 0; i < INSTALL_MAX_PAYLOADS; i++) {
                delta_plan_done(&u->plan[i]);
                for (size_t s = 0; s < u->n_srcs[i]; s++)
                        safe_close(u->srcs[i][s].fd);
                u->n_srcs[i] = 0;
        }
        u->active = false;
}

/* Open a local source read-only; its size capped at what an old image of this payload could cover. */
static int reuse_open(struct reuse *u, size_t i, const struct bundle_payload *p, const char *path, const char *label,
                      bool is_target) {
        uint64_t cap, limit = MAX(2 * p->size, p->size + (UINT64_C(256) << 20));
        int fd, r;

        if (u->n_srcs[i] >= DELTA_MAX_SOURCES)
                return 0;
        /* INVARIANT: a reuse source is opened O_RDONLY: the booted slot and seeds are never opened for
         * writing (the target's writes go through open_target()'s own descriptor). */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                log_debug("reuse: cannot open %s '%s': %m (skipped)", label, path);
                return 0;
        }
        r = fd_capacity(fd, path, &cap);
        if (r < 0) {
                safe_close(fd);
                log_debug("reuse: %s (skipped)", ringil_detail());
                return 0;
        }
        u->srcs[i][u->n_srcs[i]++] = (struct delta_source){ .fd = fd, .label = label, .size = MIN(cap, limit),
                                                             .is_target = is_target };
        return 0;
}

/*
 * Before the first chunk is written: look for every remaining chunk of every raw payload in the target
 * slot (its previous content, or what an interrupted run left), the other slot (read-only) and the
 * seeds; then, for the fetch protocol, choose between fetching only the missing chunks and one
 * sequential download (when more than full_above percent would be fetched anyway).
 */
static int reuse_plan(const struct device_conf *c, const struct install_opts *o, bundle *b, const struct bundle_manifest *m,
                      int target, int booted, const struct install_state *st, fetch_stream *fs, struct reuse *u,
                      struct install_result *res) {
        uint64_t fetch = 0, local = 0, total = 0;
        char note[160];
        int r;

        for (size_t i = 0; i < m->n_payloads; i++) {
                const struct bundle_payload *p = &m->payloads[i];
                uint64_t left = p->size - MIN(p->size, bundle_chunk_start(p, MIN(st->progress[i], p->n_chunks)));

                total += left;
                if (!o->reuse || p->type != BUNDLE_PAYLOAD_RAW || p->n_chunks == 0) {
                        fetch += left;
                        continue;
                }
                const struct slot_class *sc = device_conf_find_class(c, p->name);
                (void) snprintf(u->labels[i][0], sizeof(u->labels[i][0]), "slot %c (target)", slot_letter(target));
                (void) snprintf(u->labels[i][1], sizeof(u->labels[i][1]), "slot %c%s", slot_letter(1 - target),
                                booted == 1 - target ? " (booted)" : "");
                r = reuse_open(u, i, p, sc->device[target], u->labels[i][0], true);
                if (r >= 0)
                        r = reuse_open(u, i, p, sc->device[1 - target], u->labels[i][1], false);
                for (const char *const *seed = o->seeds; r >= 0 && seed && *seed; seed++)
                        r = reuse_open(u, i, p, *seed, *seed, false);
                if (r < 0)
                        return r;
                r = delta_plan_payload(p, st->progress[i], u->srcs[i], u->n_srcs[i], &u->plan[i]);
                if (r < 0)
                        return r;
                fetch += u->plan[i].bytes_fetch;
                local += u->plan[i].bytes_local;
                log_debug("reuse: payload '%s': %llu bytes found locally (%llu in place), %llu to fetch", p->name,
                          (unsigned long long) u->plan[i].bytes_local, (unsigned long long) u->plan[i].bytes_inplace,
                          (unsigned long long) u->plan[i].bytes_fetch);
        }
        u->active = o->reuse;
        res->bytes_planned_local = local;
        res->bytes_planned_fetch = fetch;
        if (!fs)
                return 0;
        /* INVARIANT (cheapest path): past the threshold a plain sequential download is used; it never
         * costs more than the bundle, so a delta never costs more than a full download plus its plan. */
        u->full = total > 0 && fetch * 100 > (uint64_t) o->full_above * total;
        (void) snprintf(note, sizeof(note), "plan %llu %llu %llu %s", (unsigned long long) (u->full ? 0 : local),
                        (unsigned long long) (u->full ? total : fetch), (unsigned long long) total, u->full ? "full" : "delta");
        r = fetch_stream_note(fs, note);
        if (r < 0)
                return r;
        if (u->full) {
                /* Everything from the first chunk not yet done to the end of the bundle, in one range. */
                uint64_t from = UINT64_MAX, end;
                res->full_download = true;
                for (size_t i = 0; i < m->n_payloads && from == UINT64_MAX; i++)
                        if (st->progress[i] < m->payloads[i].n_chunks)
                                (void) bundle_chunk_offset(b, i, st->progress[i], &from);
                r = bundle_total_size(b, &end);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < m->n_payloads; i++)
                        delta_plan_done(&u->plan[i]);
                u->active = false;
                if (from != UINT64_MAX)
                        return fetch_stream_request(fs, &(struct fetch_range){ from, end - from }, 1);
        }
        return 0;
}

static int record_failure(const struct device_conf *c, struct install_state *st, int r) {
        char msg[INSTALL_ERROR_MAX + 1];
        int saved = r;
        _cleanup_free_ char *detail = strdup(ringil_detail());

        (void) snprintf(msg, sizeof(msg), "install %s: %s%s%s", st->version ? st->version : "?", ringil_strerror(r),
                        detail && detail[0] ? ": " : "", detail ? detail : "");
        if (install_state_set_error(st, msg) >= 0)
                (void) install_state_save(c->state_dir, st);
        if (detail && detail[0])
                ringil_set_detail("%s", detail);   /* the save may have replaced it */
        return saved;
}

int install_run(const struct device_conf *c, const struct install_opts *o, struct install_result *ret) {
        _cleanup_bundle_ bundle *b = NULL;
        _cleanup_free_ char *floor = NULL, *efi_rel = NULL, *pattern = NULL;
        struct install_state st;
        struct install_result res = { .slot = -1 };
        _cleanup_(reuse_done) struct reuse reuse = {};
        _cleanup_(fetch_stream_freep) fetch_stream *fs = NULL;
        const struct bundle_manifest *m;
        struct bundle_policy policy;
        int64_t time_floor = 0, now;
        struct boot_entry be;
        enum booted_state bstate;
        int r, booted = -1, target, efi = -1;
        bool resume, provisioning;

        r = install_state_load(c->state_dir, &st);
        if (r < 0)
                return r;
        r = floor_read(c->state_dir, c->floor_copy, &floor, &time_floor);
        if (r < 0)
                goto out;
        /* INVARIANT: the clock is never believed to be earlier than the newest authenticated bundle's
         * creation time (state or floor records, which survive losing the state dir): a clock set back
         * cannot revive an expired bundle or signer certificate. */
        time_floor = MAX(time_floor, st.time_floor);
        now = o->now ? o->now : (int64_t) time(NULL);
        now = MAX(now, time_floor);

        if (o->fetch_stdio) {
                struct bundle_source src;
                r = fetch_stream_new(STDIN_FILENO, STDOUT_FILENO, o->fetch_size ? o->fetch_size : UINT64_MAX, &fs);
                if (r < 0)
                        goto out;
                src = fetch_stream_source(fs);
                r = bundle_open_source(&src, &b);
        } else
                r = bundle_open(o->bundle, &b);
        if (r < 0)
                goto out;
        policy = (struct bundle_policy){
                .keyring = c->keyring,
                .compatible = c->compatible,
                .min_version = floor,
                .now = now,
                .require_codesigning = c->require_codesigning,
                .allowed_signers = c->allowed_signers[0] ? (const char *const *) c->allowed_signers : NULL,
        };
        /* INVARIANT: signature, chain, compatible, expiry and the anti-rollback floor are checked before
         * anything is written anywhere: slot, ESP or state. */
        r = bundle_verify_manifest(b, &policy);
        if (r < 0)
                goto out;
        m = bundle_get_manifest(b);

        if (c->nix_generation) {
                /* Generation mode: no slots; the closure comes from the Nix cache, checked by the fleet key. */
                r = install_nix_generation(c, b, m, &st, time_floor);
                if (r < 0)
                        goto fail;
                res.slot = 0;
                (void) snprintf(res.version, sizeof(res.version), "%s", m->version);
                goto out;
        }

        /* First provisioning: nothing is blessed yet, so there is no known-good slot to protect. */
        provisioning = st.slots[0].status != SLOT_GOOD && st.slots[1].status != SLOT_GOOD;
        r = install_find_booted(c, o->booted, &be, NULL, &bstate);
        if (r < 0 && (bstate == BOOTED_UNKNOWN || bstate == BOOTED_FOREIGN)) {
                /* INVARIANT: without a booted entry of ours (LoaderEntrySelected or --booted) the booted slot is
                 * unknown, and only an explicit --slot on a device with nothing blessed may proceed. */
                if (o->slot < 0 && provisioning) {
                        /* The advice first: the reason after it may be long (paths) and is cut at the cap. */
                        r = ringil_fail(-RINGIL_EREFUSED,
                                        "first install on this device: no slot is blessed yet and the booted slot is "
                                        "unknown, so ringil will not guess which slot to overwrite; name it with "
                                        "--slot a or --slot b (not the running one). Why unknown: %s",
                                        ringil_detail());
                        goto out;
                }
                if (o->slot < 0 || !provisioning) {
                        r = ringil_fail(-RINGIL_EREFUSED, "%s", ringil_detail());
                        goto out;
                }
                booted = -1;
        } else if (r < 0)
                goto out;
        else
                booted = be.slot;
        if (booted >= 0 && st.slots[booted].status != SLOT_GOOD && !(o->slot >= 0 && provisioning)) {
                /* INVARIANT: install only from a blessed slot. From an unblessed one the other slot is the
                 * last known-good one: overwriting it leaves nothing to fall back to. */
                r = ringil_fail(-RINGIL_EREFUSED,
                                "booted slot %c is %s, not blessed: run `ringil mark-good` once it is healthy (or "
                                "reboot into the good slot) before installing",
                                slot_letter(booted), slot_status_to_string(st.slots[booted].status));
                goto out;
        }
        {
                /* INVARIANT: nothing overrides loader.conf's pattern. systemd-boot boots an exact default even
                 * with 0 tries left, and since 257.x/258 an id has no counter, so LoaderEntryDefault naming a
                 * slot entry keeps booting that slot after its tries are spent (systemd issue 40192). */
                _cleanup_free_ char *efi_default = NULL;
                r = bootentry_efivar_default(c->efivarfs, &efi_default);
                if (r >= 0 || (r != -ENOENT && r != -ENOMEM)) {
                        r = ringil_fail(-RINGIL_EREFUSED,
                                        "LoaderEntryDefault%s%s%s in %s overrides loader.conf's `default %s-*': systemd-boot "
                                        "boots an exact default even after its tries are spent, so a failed update would "
                                        "never fall back; remove it (`bootctl set-default \"\"`) before installing",
                                        efi_default ? " `" : "", efi_default ? efi_default : "", efi_default ? "'" : "",
                                        c->efivarfs, c->entry_name);
                        goto out;
                }
                if (r == -ENOMEM)
                        goto out;
        }
        target = o->slot >= 0 ? o->slot : 1 - booted;
        /* INVARIANT: the running slot is never written. */
        if (target == booted) {
                r = ringil_fail(-RINGIL_EREFUSED, "slot %c is the booted slot", slot_letter(target));
                goto out;
        }
        r = preflight(c, m, target, &efi);
        if (r < 0)
                goto out;

        resume = st.phase == PHASE_WRITING && st.have_digest && st.slot == target &&
                 memcmp(st.digest, m->digest, SHA256_LEN) == 0 && st.n_progress == m->n_payloads;
        if (!resume) {
                /* A different bundle (or target) starts clean: no progress carries over. */
                memcpy(st.digest, m->digest, SHA256_LEN);
                st.have_digest = true;
                free(st.version);
                st.version = strdup(m->version);
                if (!st.version) {
                        r = -ENOMEM;
                        goto out;
                }
                st.slot = target;
                st.attempts = 0;
                st.stalls = 0;
                st.writes = 0;
                st.n_progress = m->n_payloads;
                memset(st.progress, 0, sizeof(st.progress));
        }
        /* The bundle is authenticated: its creation time is a lower bound on the current time. */
        st.time_floor = MAX(time_floor, m->created);
        st.phase = PHASE_WRITING;
        /*
         * INVARIANT: the install loop is bounded, and a power cut never makes a good update unwelcome. A run
         * counts as stalled from its start; the first checkpoint that makes more chunks durable clears the
         * count (write_payload). So a drone whose power is cut any number of times during one install
         * resumes every time and finishes (each cut costs at most one checkpoint of work), while a run that
         * fails, or dies, at the same place again and again (a bad sector, a bundle that no longer matches,
         * a hook or a kernel that kills the machine) is refused after max-attempts such runs in a row,
         * instead of rebooting and rewriting forever. Only a different bundle starts over.
         */
        if (st.stalls >= c->max_attempts) {
                r = ringil_fail(-RINGIL_EREFUSED,
                                "gave up on %s: %u runs in a row added nothing durable (max-attempts); a new bundle "
                                "starts over",
                                m->version, st.stalls);
                goto fail;
        }
        st.attempts++;
        st.stalls++;
        free(st.slots[target].version);
        st.slots[target].version = NULL;
        st.slots[target].status = SLOT_WRITING;

        /* INVARIANT: the target slot loses its boot entry before its first byte changes, so the default
         * entry always names a complete, verified slot. */
        r = bootentry_remove_slot(c->esp, c->entry_name, target);
        if (r < 0)
                goto fail;
        r = install_state_save(c->state_dir, &st);
        if (r < 0)
                goto fail;
        if (c->pre_install_hook) {
                r = install_run_hook(c->pre_install_hook, "pre-install", target, m->version);
                if (r != 0) {
                        r = ringil_fail(r < 0 ? r : -RINGIL_EREFUSED, "pre-install hook failed (%d)", r);
                        goto fail;
                }
        }

        if (o->reuse || fs) {
                r = reuse_plan(c, o, b, m, target, booted, &st, fs, &reuse, &res);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < m->n_payloads; i++) {
                _cleanup_close_ int fd = -EBADF;
                struct chunk_sources cs = {
                        .plan = reuse.active && m->payloads[i].type == BUNDLE_PAYLOAD_RAW && m->payloads[i].n_chunks > 0
                                        ? &reuse.plan[i] : NULL,
                        .srcs = reuse.srcs[i],
                        .fs = fs,
                        .request = !reuse.full,
                };
                res.chunks_total += m->payloads[i].n_chunks;
                r = open_target(c, &m->payloads[i], i, target, st.progress[i] == 0, &fd);
                if (r < 0)
                        goto fail;
                r = write_payload(c, b, i, &m->payloads[i], fd, &cs, &st, &res);
                if (r < 0)
                        goto fail;
        }
        if (fs)
                res.bytes_received = fetch_stream_received(fs);
        /* Resumed only when an earlier run left verified, durable chunks that this one did not rewrite. */
        res.resumed = resume && res.chunks_skipped > 0;
        if (efi >= 0) {
                r = place_efi(c, &m->payloads[efi], (size_t) efi, target, m->version, &efi_rel);
                if (r < 0)
                        goto fail;
        }

        /* Only now, with every payload complete and durable, does the slot become bootable. The run
         * began by removing every entry and UKI of the target, so no stale entry can exist here. */
        if (asprintf(&pattern, "%s-*", c->entry_name) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        r = bootentry_set_default(c->esp, pattern);
        if (r < 0)
                goto fail;
        {
                struct boot_entry_spec spec = {
                        .prefix = c->entry_name,
                        .title = c->title,
                        .version = m->version,
                        .slot = target,
                        .tries = c->boot_tries,
                        .efi = efi_rel,
                        .linux_path = c->linux_path,
                        .initrd = c->initrd_path,
                        .options = c->options,
                };
                r = bootentry_write(c->esp, &spec);
                if (r < 0)
                        goto fail;
        }
        st.phase = PHASE_PENDING;
        st.stalls = 0;
        st.slots[target].status = SLOT_PENDING;
        st.slots[target].version = strdup(m->version);
        if (!st.slots[target].version) {
                r = -ENOMEM;
                goto fail;
        }
        (void) install_state_set_error(&st, NULL);
        r = install_state_save(c->state_dir, &st);
        if (r < 0)
                goto fail;
        if (efi >= 0) {
                _cleanup_free_ char *sp = NULL;
                if (staging_path(c, target, (size_t) efi, &sp) >= 0)
                        (void) unlink(sp);
        }
        if (c->post_install_hook) {
                int h = install_run_hook(c->post_install_hook, "post-install", target, m->version);
                if (h != 0)
                        log_debug("post-install hook returned %d (install stays pending)", h);
        }
        res.slot = target;
        (void) snprintf(res.version, sizeof(res.version), "%s", m->version);
        r = 0;
        goto out;

fail:
        r = record_failure(c, &st, r);
out:
        install_state_done(&st);
        if (r >= 0 && ret)
                *ret = res;
        return r;
}

/* The booted entry (required: blessing must name exactly what was booted) as it is on the ESP. Whatever
 * keeps it from being known is a refusal (exit 11) that says what is missing and what to do. */
static int find_booted(const struct device_conf *c, const char *booted, struct boot_entry *ret) {
        enum booted_state bs;
        int r = install_find_booted(c, booted, ret, NULL, &bs);

        return r < 0 && bs != BOOTED_INVALID ? -RINGIL_EREFUSED : r;
}

int install_mark_good(const struct device_conf *c, const char *booted, char **ret_version) {
        _cleanup_free_ char *pattern = NULL;
        struct install_state st;
        struct boot_entry e;
        int r;

        if (c->nix_generation)
                return install_nix_mark_good(c, ret_version);
        r = find_booted(c, booted, &e);
        if (r < 0)
                return r;
        r = install_state_load(c->state_dir, &st);
        if (r < 0)
                return r;
        if (st.phase == PHASE_PENDING && st.slot != e.slot) {
                /* The boot loader fell back: the pending slot used up its tries (or was never picked). */
                char msg[INSTALL_ERROR_MAX];
                st.slots[st.slot].status = SLOT_BAD;
                (void) snprintf(msg, sizeof(msg), "rollback: slot %c (%s) did not become good; running slot %c (%s)",
                                slot_letter(st.slot), st.version, slot_letter(e.slot), e.version);
                (void) install_state_set_error(&st, msg);
                st.phase = PHASE_IDLE;
        } else if ((st.phase == PHASE_PENDING || st.phase == PHASE_WRITING) && st.slot == e.slot) {
                /* WRITING here means the power went between the entry going in and the state saying pending
                 * (tests/vm caught it): the entry is written only after every payload is complete and
                 * durable, and removed before the first byte changes, so an entry for the target proves it
                 * complete. The loader booted it; it is the pending slot. */
                st.phase = PHASE_IDLE;
                (void) install_state_set_error(&st, NULL);
        }
        /* Order: bless, then floor, then state; each step is idempotent, so a crash is fixed by a rerun
         * (the bless service runs on every boot). */
        r = bootentry_bless(c->esp, &e);
        if (r >= 0)
                r = floor_raise(c->state_dir, c->floor_copy, e.version, st.time_floor);
        if (r >= 0 && asprintf(&pattern, "%s-*", c->entry_name) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = bootentry_set_default(c->esp, pattern);
        if (r >= 0) {
                free(st.slots[e.slot].version);
                st.slots[e.slot].version = strdup(e.version);
                st.slots[e.slot].status = SLOT_GOOD;
                r = st.slots[e.slot].version ? install_state_save(c->state_dir, &st) : -ENOMEM;
        }
        if (r >= 0 && ret_version)
                *ret_version = strdup(e.version);
        install_state_done(&st);
        return r;
}

int install_mark_bad(const struct device_conf *c, const char *booted) {
        struct install_state st;
        struct boot_entry e;
        char msg[INSTALL_ERROR_MAX];
        int r;

        if (c->nix_generation)
                return install_nix_mark_bad(c);
        r = find_booted(c, booted, &e);
        if (r < 0)
                return r;
        r = install_state_load(c->state_dir, &st);
        if (r < 0)
                return r;
        r = bootentry_mark_bad(c->esp, &e);
        if (r >= 0) {
                if (st.phase == PHASE_PENDING && st.slot == e.slot)
                        st.phase = PHASE_IDLE;
                st.slots[e.slot].status = SLOT_BAD;
                (void) snprintf(msg, sizeof(msg), "slot %c (%s) marked bad", slot_letter(e.slot), e.version);
                (void) install_state_set_error(&st, msg);
                r = install_state_save(c->state_dir, &st);
        }
        install_state_done(&st);
        return r;
}
