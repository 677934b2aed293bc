#!/usr/bin/env bash
# vm-loaders.sh: downloads the systemd-boot-efi .deb of each Debian suite the VM suite tests (bookworm,
# bookworm-backports, trixie, forky) into a cache directory, with a private apt configuration (the
# system's sources and lists are not touched; nothing is installed). Quick when the cache is complete.
# Usage: scripts/vm-loaders.sh [CACHE-DIR]   (default: tests/vm/cache/loaders)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${1:-tests/vm/cache/loaders}
suites=(bookworm bookworm-backports trixie forky)
mkdir -p "$cache"
have=0
for s in "${suites[@]}"; do
    compgen -G "$cache/$s/systemd-boot-efi_*.deb" >/dev/null && have=$((have + 1))
done
[[ $have -eq ${#suites[@]} ]] && exit 0

apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
for s in "${suites[@]}"; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main"
done > "$apt_dir/sources.list"
opts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$apt_dir/lists"
      -o Dir::Cache="$apt_dir/cache" -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
apt-get "${opts[@]}" update
for s in "${suites[@]}"; do
    compgen -G "$cache/$s/systemd-boot-efi_*.deb" >/dev/null && continue
    mkdir -p "$cache/$s"
    (cd "$cache/$s" && apt-get "${opts[@]}" download "systemd-boot-efi/$s")
    ls "$cache/$s"
done
