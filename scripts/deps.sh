#!/usr/bin/env bash
# deps.sh: installs the Debian packages ringil needs; idempotent, and quick when all are present.
# Usage: scripts/deps.sh [build|demo|test|bench|all]   (default: test; every set includes build)
#   build  compile (make, make install); the unit tests are built only when cmocka is there (test)
#   demo   build + what scripts/demo.sh and scripts/fleet-demo.sh run (sbverify, the EFI stub, python3,
#          cert-to-efi-sig-list for the audited drone image)
#   test   build + everything make check and make fuzz use
#   bench  build + the peers and tools bench/*.sh measure against
# scripts/deps.sh --list SET prints the packages of SET, one a line, and installs nothing.
set -euo pipefail

list=0
if [[ ${1:-} == --list ]]; then
    list=1
    shift
fi

build_pkgs=(gcc make meson ninja-build pkg-config libssl-dev libjansson-dev libcurl4-openssl-dev
            libsqlite3-dev openssl libevent-dev libpq-dev)
test_pkgs=(libcmocka-dev python3 python3-pytest python3-pytest-xdist clang sbsigntool efitools systemd-boot-efi
           faketime e2fsprogs dosfstools mtools util-linux)
demo_pkgs=(sbsigntool systemd-boot-efi python3 openssl efitools)
bench_pkgs=(hyperfine rauc squashfs-tools dbus time lynis python3 sbsigntool systemd-boot-efi curl)
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
nix_pkgs=(nix-bin wireguard-tools)
# replicas on PostgreSQL: libpq (build, above), a PostgreSQL server for the store's tests and the replica
# tests, nginx as a bundle mirror, haproxy as the load balancer in front of replicas
pg_pkgs=(postgresql-15 nginx-light haproxy)
pg_bench_pkgs=(postgresql-15)
# UKIs: a real kernel to wrap, binutils (x86-64 and aarch64) to read the result, and one OVMF boot of it;
# the arm64 stub and kernel come as .debs into the tests' cache (tests/integration/debcache.py)
uki_pkgs=(systemd-boot-efi linux-image-amd64 binutils binutils-aarch64-linux-gnu qemu-system-x86 ovmf
          busybox-static dosfstools mtools sbsigntool)
# the boot-assessment units: scored by systemd-analyze, run sandboxed in a systemd-nspawn container
units_pkgs=(systemd systemd-container iproute2)
# delta updates: the peers the delta bench measures against, and what builds its Debian image pairs
delta_bench_pkgs=(casync zchunk xdelta3 squashfs-tools e2fsprogs dpkg apt)
# the VM suite (tests/vm): firmware, emulators, the guest's kernel and busybox, a real vfat ESP on GPT
vm_pkgs=(qemu-system-x86 ovmf linux-image-amd64 busybox-static dosfstools mtools fdisk e2fsprogs
         qemu-system-arm qemu-efi-aarch64 systemd-boot-efi sbsigntool python3-pytest-xdist)
# rollouts: maintenance-window tests under libfaketime, in a real zone (Asia/Tokyo)
rollout_pkgs=(faketime tzdata)
# the operator dashboard: its tests drive Debian's headless Chromium with the operator's certificate in an
# NSS database (certutil, pk12util); DejaVu for the screenshots' text
dashboard_pkgs=(chromium libnss3-tools fonts-dejavu-core openssl)
test_pkgs+=("${keys_pkgs[@]}" "${efi_pkgs[@]}" "${bundle_pkgs[@]}" "${install_pkgs[@]}" "${audit_pkgs[@]}" "${fleet_pkgs[@]}" "${nix_pkgs[@]}"
            "${uki_pkgs[@]}" "${units_pkgs[@]}" "${server_load_pkgs[@]}" "${vm_pkgs[@]}" "${rollout_pkgs[@]}" "${dashboard_pkgs[@]}"
            "${pg_pkgs[@]}")
bench_pkgs+=("${server_load_bench_pkgs[@]}" "${dashboard_pkgs[@]}" "${delta_bench_pkgs[@]}" "${pg_bench_pkgs[@]}")

case "${1:-test}" in
build) want=("${build_pkgs[@]}") ;;
demo) want=("${build_pkgs[@]}" "${demo_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
all) want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
*) echo "usage: $0 [build|demo|test|bench|all]" >&2; exit 2 ;;
esac

if [[ $list -eq 1 ]]; then
    printf '%s\n' "${want[@]}" | sort -u
    exit 0
fi

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
