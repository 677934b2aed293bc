/* install-nix.h: NixOS-generation install mode (device.conf [nix]; docs/nixos.md §10). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bundle.h"
#include "install-conf.h"
#include "install-state.h"
#include "nix-cache.h"


/*
 * Called by install_run() after bundle_verify_manifest() accepted the manifest (signature, compatible,
 * expiry, floor). Runs, without a shell: nix copy --from CACHE STORE_PATH with require-sigs and only the
 * [nix] trusted-public-keys; checks the path is in the store; nix-env --profile P --set STORE_PATH;
 * STORE_PATH/bin/switch-to-configuration boot (on failure the profile is rolled back). The state records
 * the generation in slot a: writing, then pending. Errors: -RINGIL_EREFUSED (payload kinds, a failed
 * step), -RINGIL_EBADSIG (nix copy refused: unsigned, other key, corrupt NAR), -RINGIL_EMALFORMED.
 */
int install_nix_generation(const struct device_conf *c, bundle *b, const struct bundle_manifest *m,
                           struct install_state *st, int64_t time_floor);
/*
 * Bless the pending generation if it is the running one ([nix] current-system link): raise the floor,
 * return 0 with *ret_version. If another system runs (the boot loader fell back), the pending generation
 * is recorded bad, the profile rolled back (it must then name the running system) and its
 * switch-to-configuration boot run: returns 1, *ret_version untouched. -RINGIL_EREFUSED when nothing
 * is pending.
 */
int install_nix_mark_good(const struct device_conf *c, char **ret_version);
/* Roll the profile back to the previous generation and run its switch-to-configuration boot. */
int install_nix_mark_bad(const struct device_conf *c);
/*
 * The version of the running generation (the [nix] current-system link) as far as ringil installed it:
 * the newest generation's when it runs, else the previous good one's. -ENOENT when unknown (e.g. the
 * factory generation, never installed by ringil).
 */
int install_nix_running_version(const struct device_conf *c, const struct install_state *st, char **ret);
/*
 * The closure of store_path as the store knows it (`nix path-info --json --recursive`, with --store
 * STORE when not NULL: a chroot store dir or a cache URL such as file:///srv/ringil/nix-cache). Used by
 * `ringil bundle create` to list it (home NULL: Nix runs in the operator's environment) and by the
 * installer to check what it installed (home = its state dir, a fixed environment).
 */
int nix_store_closure(const char *store, const char *home, const char *store_path, struct nix_closure *ret);
/* The store path the [nix] profile points at now (*ret allocated); -ENOENT without a profile. */
int install_nix_profile_target(const struct device_conf *c, char **ret);
