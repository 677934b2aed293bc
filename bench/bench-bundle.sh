#!/usr/bin/env bash
# bench-bundle.sh: bundle verify/create speed against the SHA-256 limit (`openssl speed`) and RAUC,
# and peak memory while verifying (must not grow with the payload). Usage: bench/bench-bundle.sh [BUILD]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
ringil=$PWD/$build/ringil/ringil
[[ -x $ringil ]] || { echo "bench-bundle: build ringil first ($ringil)" >&2; exit 1; }
for t in hyperfine rauc mksquashfs /usr/bin/time openssl; do
    command -v "$t" >/dev/null || { echo "bench-bundle: missing $t (scripts/deps.sh bench)" >&2; exit 1; }
done
sizes=${BENCH_SIZES:-"256 1024"}   # MiB
runs=${BENCH_RUNS:-5}
w=$(mktemp -d /tmp/ringil-bench.XXXXXX)
trap 'rm -rf "$w"' EXIT
cd "$w"

# no EKU: RAUC 1.8 refuses a codeSigning-only certificate ("unsuitable certificate purpose")
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -subj "/CN=bench signer" -days 30 \
    2>/dev/null

# The SHA-256 limit of this machine, measured in the same run (16 KiB blocks, one thread), bytes/s.
sha_bps=$(openssl speed -evp sha256 -seconds 2 -bytes 16384 2>/dev/null | awk '/^sha256/ { sub("k","",$2); print $2 * 1000 }')
echo "SHA-256 limit (openssl speed -evp sha256, 16 KiB blocks): $(awk -v b="$sha_bps" 'BEGIN{printf "%.0f MB/s", b/1e6}')"
echo "CPUs: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

mean() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(min(r["times"]))' "$1"; }

printf '%-8s %-34s %10s %10s\n' size what "best s" "x limit"
for mib in $sizes; do
    bytes=$((mib * 1024 * 1024))
    openssl rand -out payload.img "$bytes" 2>/dev/null || head -c "$bytes" /dev/urandom > payload.img
    limit=$(awk -v n="$bytes" -v b="$sha_bps" 'BEGIN{print n/b}')

    # create
    hyperfine -N --runs 3 --prepare "rm -f ringil.rb" --export-json c1.json \
        "$ringil bundle create --key key.pem --cert cert.pem --compatible bench --version 1.0 --payload rootfs:raw=payload.img --output ringil.rb" >/dev/null
    mkdir -p content && cp payload.img content/rootfs.img
    printf '[update]\ncompatible=bench\nversion=1.0\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.img\n' > content/manifest.raucm
    hyperfine -N --runs 3 --prepare "rm -f rauc.raucb" --export-json c2.json \
        "rauc bundle --cert cert.pem --key key.pem content rauc.raucb" >/dev/null 2>&1
    rm -rf content
    "$ringil" bundle create --key key.pem --cert cert.pem --compatible bench --version 1.0 \
        --payload rootfs:raw=payload.img --output ringil.rb >/dev/null
    [[ -f rauc.raucb ]] || rauc bundle --cert cert.pem --key key.pem content rauc.raucb >/dev/null 2>&1

    # verify (page cache warm)
    hyperfine -N --warmup 1 --runs "$runs" --export-json v1.json \
        "$ringil bundle verify --keyring cert.pem --compatible bench ringil.rb" >/dev/null
    hyperfine -N --warmup 1 --runs "$runs" --export-json v2.json \
        "rauc info --keyring cert.pem rauc.raucb" >/dev/null 2>&1
    hyperfine -N --warmup 1 --runs "$runs" --export-json v3.json "openssl dgst -sha256 ringil.rb" >/dev/null

    rv=$(mean v1.json); ra=$(mean v2.json); od=$(mean v3.json); rc=$(mean c1.json); ac=$(mean c2.json)
    row() { printf '%-8s %-34s %10.3f %10.2f\n' "${mib}M" "$1" "$2" "$(awk -v l="$limit" -v t="$2" 'BEGIN{print l/t}')"; }
    printf '%-8s %-34s %10.3f %10s\n' "${mib}M" "SHA-256 limit (openssl speed)" "$limit" "1.00"
    row "ringil bundle verify" "$rv"
    row "rauc info --keyring (plain)" "$ra"
    row "openssl dgst -sha256 (file)" "$od"
    printf '%-8s %-34s %10.3f\n' "${mib}M" "ringil bundle create" "$rc"
    printf '%-8s %-34s %10.3f\n' "${mib}M" "rauc bundle (plain, squashfs)" "$ac"
    rss=$( { /usr/bin/time -f '%M' "$ringil" bundle verify --keyring cert.pem ringil.rb >/dev/null; } 2>&1 | tail -1)
    srss=$( { cat ringil.rb | /usr/bin/time -f '%M' "$ringil" bundle verify --keyring cert.pem - >/dev/null; } 2>&1 | tail -1)
    printf '%-8s %-34s %7s KiB   (through a pipe: %s KiB)\n' "${mib}M" "ringil verify peak RSS" "$rss" "$srss"
    cpu=$( { /usr/bin/time -f '%U %S' "$ringil" bundle verify --keyring cert.pem ringil.rb >/dev/null; } 2>&1 | tail -1)
    printf '%-8s %-34s %10s\n' "${mib}M" "ringil verify CPU (user sys)" "$cpu"
    rm -f payload.img ringil.rb rauc.raucb
    echo
done
