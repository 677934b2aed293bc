#!/usr/bin/env bash
# vm-loaders.sh: downloads the systemd-boot-efi .deb of each Debian suite the VM suite tests (bookworm,
# bookworm-backports, trixie, forky), and for the aarch64 boot Debian 12's arm64 kernel, busybox-static
# and systemd-boot-efi, into a cache directory, with a private apt configuration (the system's sources,
# lists and dpkg status are not touched; nothing is installed). Quick when the cache is complete.
# Usage: scripts/vm-loaders.sh [CACHE-DIR]   (default: tests/vm/cache/loaders)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${1:-tests/vm/cache/loaders}
suites=(bookworm bookworm-backports trixie forky)
mkdir -p "$cache"
arm=$cache/arm64
have=0
for s in "${suites[@]}"; do
    compgen -G "$cache/$s/systemd-boot-efi_*.deb" >/dev/null && have=$((have + 1))
done
for p in systemd-boot-efi busybox-static linux-image-; do
    compgen -G "$arm/${p}*_arm64.deb" >/dev/null && have=$((have + 1))
done
[[ $have -eq $((${#suites[@]} + 3)) ]] && exit 0

apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
for s in "${suites[@]}"; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main"
done > "$apt_dir/sources.list"
opts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$apt_dir/lists"
      -o Dir::Cache="$apt_dir/cache" -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Dir::State::status=/dev/null -qq)
apt-get "${opts[@]}" update
for s in "${suites[@]}"; do
    compgen -G "$cache/$s/systemd-boot-efi_*.deb" >/dev/null && continue
    mkdir -p "$cache/$s"
    (cd "$cache/$s" && apt-get "${opts[@]}" download "systemd-boot-efi/$s")
    ls "$cache/$s"
done

# arm64: a second private configuration for that architecture (Debian 12 and its security updates).
mkdir -p "$arm" "$apt_dir/arm/lists/partial" "$apt_dir/arm/cache/archives/partial"
{
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main"
} > "$apt_dir/arm/sources.list"
aopts=(-o Dir::Etc::sourcelist="$apt_dir/arm/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$apt_dir/arm/lists"
       -o Dir::Cache="$apt_dir/arm/cache" -o Dir::State::status=/dev/null -o APT::Architecture=arm64
       -o APT::Architectures::=arm64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
apt-get "${aopts[@]}" update
kernel=$(apt-cache "${aopts[@]}" depends linux-image-arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-arm64\)$/\1/p' | head -1)
[[ -n "$kernel" ]] || { echo "vm-loaders: no arm64 kernel package found" >&2; exit 1; }
for p in systemd-boot-efi busybox-static "$kernel"; do
    compgen -G "$arm/${p}_*_arm64.deb" >/dev/null && continue
    (cd "$arm" && apt-get "${aopts[@]}" download "$p:arm64")
done
ls "$arm"
