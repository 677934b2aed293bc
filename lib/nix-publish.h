/* nix-publish.h: publishing a signed closure to the fleet's Nix cache: path infos, narinfo text, the upload envelope. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"
#include "nix-cache.h"

/* One store path as `nix path-info --json --recursive --sigs` describes it. */
struct nix_path_info {
        char path[NIX_STORE_PATH_MAX + 1];
        uint8_t nar_hash[32];
        uint64_t nar_size;
        char **refs;               /* full store paths, sorted, self included when Nix lists it */
        size_t n_refs;
        char *deriver;             /* full path or NULL */
        char **sigs;               /* "keyname:base64" */
        size_t n_sigs;
        bool ca;                   /* content-addressed: ringil publishes only input-addressed paths */
};
struct nix_path_infos {
        struct nix_path_info *v;
        size_t n;
};
void nix_path_infos_done(struct nix_path_infos *p);

/*
 * Parse `nix path-info --json --recursive --sigs` (Nix 2.8's array or newer Nix's object keyed by path;
 * references as full paths or basenames). At most NIX_CLOSURE_MAX paths, NARINFO_MAX_REFS references and
 * NARINFO_MAX_SIGS signatures each. Errors: -RINGIL_EMALFORMED (naming the entry), -RINGIL_ETOOBIG.
 */
int nix_path_infos_parse(const char *json, size_t len, struct nix_path_infos *ret);

/*
 * Order the paths so that every path comes after all of its references (the order a cache that only
 * accepts closed sets must receive them in). -RINGIL_EMALFORMED when a reference is not in the set
 * (not a closure) or the references form a cycle.
 */
int nix_path_infos_toposort(struct nix_path_infos *p);

/*
 * The narinfo of a path published uncompressed (Compression: none, so FileHash/FileSize are the NAR's):
 * StorePath, URL nar/NIX32(NarHash).nar, Compression, FileHash, FileSize, NarHash, NarSize, References
 * (basenames), Deriver (basename, if any), one Sig line per signature.
 */
int nix_narinfo_format(const struct nix_path_info *p, struct buf *ret);

/*
 * The body of one publish request (PUT /api/v1/nix-cache/HASHPART, operator only):
 *   "ringil-nix-upload 1 N\n", then N bytes of narinfo, then the NAR (NarSize bytes, uncompressed).
 * nix_upload_header writes the first line into buf (at least NIX_UPLOAD_HEADER_MAX bytes) and returns its
 * length. nix_upload_header_parse reads it from the first `len` bytes of p: the header's length in
 * *ret_consumed and N in *ret_narinfo_len; -EAGAIN when no full line yet, -RINGIL_EMALFORMED otherwise.
 */
#define NIX_UPLOAD_HEADER_MAX 48
#define NIX_UPLOAD_MAGIC "ringil-nix-upload 1 "
size_t nix_upload_header(size_t narinfo_len, char buf[static NIX_UPLOAD_HEADER_MAX]);
int nix_upload_header_parse(const char *p, size_t len, size_t *ret_consumed, size_t *ret_narinfo_len);

/* "name:base64(64-byte secret)" (a Nix secret key file's content) → "name:base64(public half)". */
int nix_secret_key_public(const char *secret, size_t len, char **ret_public);

/* A trusted-public-keys list (ringil-server's nix-trusted-public-keys): one or more `name:base64(32 bytes)'
 * separated by blanks. 0, or -RINGIL_EMALFORMED naming the bad entry. */
int nix_keys_check(const char *keys);
