/* nix-narinfo.h: Nix binary-cache metadata: store paths, nix32, .narinfo parsing and the ed25519
 * signatures of a cache's key (as Nix's trusted-public-keys checks them). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps on what a cache may make us parse. */
#define NARINFO_MAX (64u * 1024)          /* bytes of one .narinfo */
#define NARINFO_MAX_REFS 4096u            /* References of one path */
#define NARINFO_MAX_SIGS 16u              /* Sig lines of one path */
#define NIX_STORE_PATH_MAX (11 + 32 + 1 + 211)
#define NIX32_SHA256_LEN 52               /* Nix base32 of a SHA-256 */

/* ^/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$ (Nix base32; name not starting with '.'). */
bool nix_store_path_valid(const char *s);

/* Nix's base32 ("nix32": alphabet 0-9a-z without e o u t, least significant bits first) of n bytes into
 * out, which holds (n * 8 + 4) / 5 + 1 bytes. */
void nix32_encode(const uint8_t *p, size_t n, char *out);
/* Strict inverse for exactly (n * 8 + 4) / 5 characters; -RINGIL_EMALFORMED otherwise. */
int nix32_decode(const char *s, uint8_t *out, size_t n);

/* The value 0..31 of one nix32 character, -1 for any other character. */
int nix32_digit(char c);
/* "sha256:" + 52 nix32 or 64 hex characters (a narinfo's NarHash/FileHash) into out; -RINGIL_EMALFORMED. */
int nix_sha256_parse(const char *v, uint8_t out[static 32]);
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
