/* nix-closure.h: the signed closure listing of a generation-mode bundle: every store path of a system
 * with its NAR hash and size; parsed, formatted, read from `nix path-info` and compared. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "nix-narinfo.h"

#define NIX_CLOSURE_MAX 65536u            /* store paths of one toplevel's closure */

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
/* Calls add(userdata, path, entry) for each entry of `nix path-info --json` output, in either layout;
 * stops at add's first error. A listing that is not JSON, not an array or object, or empty is refused.
 * Returns the number of entries or a negative error. */
int nix_path_info_each(const char *json, size_t len, int (*add)(void *userdata, const char *path, json_t *entry),
                       void *userdata);
/* The canonical text of c into *ret (a buf the caller frees). */
int nix_closure_format(const struct nix_closure *c, struct buf *ret);
const struct nix_closure_entry *nix_closure_find(const struct nix_closure *c, const char *path);
/* 0 when a and b list the same paths with the same NarHash and NarSize; -RINGIL_EDIGEST naming the first
 * difference otherwise. */
int nix_closure_compare(const struct nix_closure *want, const struct nix_closure *got);
