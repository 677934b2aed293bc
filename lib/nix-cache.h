/* nix-cache.h: the drone's side of a Nix binary cache: narinfo parsing, ed25519 signature checks, and
 * mirroring the missing part of a closure through the fleet client into a local file:// cache. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

/* Caps on what a cache may make us parse, follow or download. */
#define NARINFO_MAX (64u * 1024)          /* bytes of one .narinfo */
#define NARINFO_MAX_REFS 4096u            /* References of one path */
#define NARINFO_MAX_SIGS 16u              /* Sig lines of one path */
#define NIX_CLOSURE_MAX 65536u            /* store paths followed for one toplevel */
#define NIX_STORE_PATH_MAX (11 + 32 + 1 + 211)
#define NIX32_SHA256_LEN 52               /* Nix base32 of a SHA-256 */

/* ^/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$ (Nix base32; name not starting with '.'). */
bool nix_store_path_valid(const char *s);

/* Nix's base32 ("nix32": alphabet 0-9a-z without e o u t, least significant bits first) of n bytes into
 * out, which holds (n * 8 + 4) / 5 + 1 bytes. */
void nix32_encode(const uint8_t *p, size_t n, char *out);
/* Strict inverse for exactly (n * 8 + 4) / 5 characters; -RINGIL_EMALFORMED otherwise. */
int nix32_decode(const char *s, uint8_t *out, size_t n);
/* A SHA-256 as Nix prints it anywhere: "sha256:NIX32", "sha256:HEX" or SRI "sha256-BASE64". */
int nix_hash_parse(const char *v, uint8_t out[static 32]);

struct narinfo {
        char *store_path;          /* /nix/store/HASH-NAME, checked with nix_store_path_valid() */
        char *url;                 /* relative: nar/FILE (checked: no scheme, no '..', no '/' inside FILE) */
        char *compression;         /* "none", "xz", "bzip2", "zstd", "br", "lz4", "lzip", "gzip"; default bzip2 */
        bool has_file_hash;
        uint8_t file_hash[32];     /* SHA-256 of the file at url: NOT covered by the signature */
        bool has_file_size;
        uint64_t file_size;        /* NOT covered by the signature */
        uint8_t nar_hash[32];      /* SHA-256 of the NAR: signed */
        uint64_t nar_size;         /* signed; > 0 */
        char **refs;               /* basenames HASH-NAME, sorted as given; signed */
        size_t n_refs;
        char *sigs[NARINFO_MAX_SIGS];   /* "keyname:base64" */
        size_t n_sigs;
        char *deriver;
        char *ca;                  /* content address; ringil refuses CA paths (unsigned in Nix) */
};

/*
 * Parse narinfo text (at most NARINFO_MAX bytes, "Key: value" lines). Nix's required fields (StorePath,
 * URL, NarHash, NarSize > 0) must be present; hashes must be "sha256:" + nix32 or base16; every field
 * at most once except Sig; unknown keys are skipped as Nix does. Errors: -RINGIL_EMALFORMED with a
 * detail naming the line, -RINGIL_ETOOBIG. *ret is untouched on failure.
 */
int narinfo_parse(const char *text, size_t len, struct narinfo *ret);
void narinfo_done(struct narinfo *ni);

/* Nix's fingerprint of a path: "1;STOREPATH;sha256:NIX32;NARSIZE;REF,REF..." (full paths, sorted). */
int narinfo_fingerprint(const struct narinfo *ni, char **ret);

/*
 * 0 only if one Sig line is a valid ed25519 signature of the fingerprint by a key in trusted_keys
 * ("name:base64(32 bytes)" separated by spaces, as Nix's trusted-public-keys). -RINGIL_EUNTRUSTED when
 * no signature is by a trusted key name, -RINGIL_EBADSIG when one is but does not verify,
 * -RINGIL_EMALFORMED for a malformed key list.
 */
int narinfo_verify(const struct narinfo *ni, const char *trusted_keys);

/*
 * Where the mirror reads from: the fleet client in ringil, a table in the unit tests. get() fetches a
 * small document (status and body; body capped at max); get_range() appends bytes [off, off+len) of
 * path to the sink and returns how many arrived (short when cut), as fleet_client_get_range().
 */
typedef int (*nixcache_sink_t)(void *userdata, const void *p, size_t n);
struct nixcache_source {
        int (*get)(void *userdata, const char *path, size_t max, long *ret_status, struct buf *ret_body);
        int64_t (*get_range)(void *userdata, const char *path, uint64_t off, uint64_t len, nixcache_sink_t sink,
                             void *sink_userdata, long *ret_status);
        void *userdata;
};

/*
 * Which of paths[0..n) are NOT valid in the local store: sets invalid[i]. A valid path's whole closure is
 * valid (Nix's invariant), so the walk stops there. Returns 0 or a negative errno.
 */
typedef int (*nixcache_invalid_t)(void *userdata, char *const *paths, size_t n, bool *invalid);

struct nixcache_stats {
        uint64_t paths_seen;       /* closure members looked at (valid ones included) */
        uint64_t paths_fetched;    /* narinfos fetched and verified (the missing paths) */
        uint64_t nars_fetched;     /* NAR files downloaded (or completed) this time */
        uint64_t bytes_fetched;    /* bytes received */
        uint64_t bytes_resumed;    /* bytes of partial NARs kept from an earlier, interrupted run */
};

/*
 * Mirror what the local store lacks of store_path's closure into dir (made 0700 if missing), in Nix's
 * file:// cache layout: nix-cache-info, HASH.narinfo, nar/FILE. INVARIANT: a narinfo is followed (its
 * References walked, its NAR fetched, the file written) only after its signature verified against
 * trusted_keys and its StorePath equals the path asked for; a NAR file gets its final name only once
 * its size and SHA-256 equal the narinfo's FileSize/FileHash. A partial NAR (nar/FILE.part) from an
 * interrupted run is resumed with a Range request. Nix then substitutes from file://dir with
 * require-sigs and checks every NarHash again.
 * pin (may be NULL): the bundle's closure listing: every narinfo's path must be in it with the same
 * NarHash and NarSize (checked right after its signature, before its NAR is fetched): -RINGIL_EDIGEST.
 * src[0..n_src) are independent connections to the same cache (at most NIXCACHE_MAX_SOURCES are used):
 * the missing paths of one level of the walk are fetched in parallel, one thread per source.
 * Errors: -ENOENT (the cache has no such path: 404), -RINGIL_EUNTRUSTED/-RINGIL_EBADSIG (signature),
 * -RINGIL_EDIGEST (a NAR does not match its FileHash), -RINGIL_EMALFORMED, -RINGIL_ETOOBIG (caps),
 * -EACCES (401/403), -EPROTO/-ECONNRESET... (transport, after retries), each with a detail.
 */
#define NIXCACHE_MAX_SOURCES 16
struct nix_closure;
int nixcache_mirror(const struct nixcache_source *src, size_t n_src, const char *store_path, const char *trusted_keys,
                    const struct nix_closure *pin, nixcache_invalid_t invalid, void *invalid_userdata,
                    const char *dir, struct nixcache_stats *ret_stats);

/*
 * The closure listing a generation-mode bundle carries as its nixos payload's bytes (signed with the
 * bundle): every path of the toplevel's closure with its NarHash and NarSize, so that the bundle, not
 * just the fleet's Nix key, decides the exact contents installed. Canonical text form:
 *   "ringil-nix-closure 1\n" then per path, sorted strictly ascending: "PATH sha256:NIX32 NARSIZE\n"
 */
#define NIX_CLOSURE_LIST_MAX (24u << 20)
struct nix_closure_entry {
        char path[NIX_STORE_PATH_MAX + 1];
        uint8_t nar_hash[32];
        uint64_t nar_size;
};
struct nix_closure {
        struct nix_closure_entry *v;   /* sorted by path */
        size_t n;
};
void nix_closure_done(struct nix_closure *c);
/* Strict parser of the canonical form (≤ NIX_CLOSURE_LIST_MAX bytes, ≤ NIX_CLOSURE_MAX paths). */
int nix_closure_parse(const char *text, size_t len, struct nix_closure *ret);
/* From `nix path-info --json -r` output (Nix 2.8's array or newer Nix's object; NarHash as sha256:NIX32,
 * sha256:HEX or SRI sha256-BASE64). */
int nix_closure_from_path_info(const char *json, size_t len, struct nix_closure *ret);
/* The canonical text of c into *ret (a buf the caller frees). */
int nix_closure_format(const struct nix_closure *c, struct buf *ret);
const struct nix_closure_entry *nix_closure_find(const struct nix_closure *c, const char *path);
/* 0 when a and b list the same paths with the same NarHash and NarSize; -RINGIL_EDIGEST naming the first
 * difference otherwise. */
int nix_closure_compare(const struct nix_closure *want, const struct nix_closure *got);

/* Remove a mirror directory made by nixcache_mirror() (its files only; anything else is left). */
int nixcache_mirror_remove(const char *dir);
