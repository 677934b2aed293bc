#!/usr/bin/env bash
# deps.sh: installs the Debian packages ringil needs; idempotent, and quick when all are present.
# Usage: scripts/deps.sh [build|test|bench|all]   (default: test, which includes build)
set -euo pipefail

build_pkgs=(gcc make meson ninja-build pkg-config libssl-dev libjansson-dev libcurl4-openssl-dev
            libsqlite3-dev openssl libevent-dev)
test_pkgs=(libcmocka-dev python3 python3-pytest clang sbsigntool efitools systemd-boot-efi
           faketime e2fsprogs dosfstools mtools util-linux)
bench_pkgs=(hyperfine rauc squashfs-tools dbus time lynis)
# per-issue additions go below, one array each, so parallel work merges cleanly
keys_pkgs=(openssl efitools)
efi_pkgs=(sbsigntool systemd-boot-efi osslsigncode)
bundle_pkgs=(faketime time openssl)
install_pkgs=(openssl sbsigntool systemd-boot-efi)
audit_pkgs=(efitools openssl)
fleet_pkgs=()
# fleet server under load: libevent (build), systemd-analyze for the unit's exposure test, nginx as the bench's ceiling
server_load_pkgs=(libevent-dev systemd)
server_load_bench_pkgs=(nginx-light linux-perf)
nix_pkgs=(nix-bin)
# rollouts: maintenance-window tests under libfaketime, in a real zone (Asia/Tokyo)
rollout_pkgs=(faketime tzdata)
test_pkgs+=("${keys_pkgs[@]}" "${efi_pkgs[@]}" "${bundle_pkgs[@]}" "${install_pkgs[@]}" "${audit_pkgs[@]}" "${fleet_pkgs[@]}" "${nix_pkgs[@]}" "${server_load_pkgs[@]}" "${rollout_pkgs[@]}")
bench_pkgs+=("${server_load_bench_pkgs[@]}")

case "${1:-test}" in
build) want=("${build_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
all) want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
*) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$st" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "deps: installing ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
    echo "deps: not root; install these packages first: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
