#!/usr/bin/env bash
# bench-efi.sh: ringil efi sign/verify against sbsign/sbverify, on the Linux EFI stub and a 64 MiB PE.
# Usage: bench/bench-efi.sh [BUILD-DIR]. Needs hyperfine, sbsigntool, systemd-boot-efi, openssl.
set -euo pipefail
build=${1:-build}
ringil=$(realpath "$build/ringil/ringil")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# An RSA-4096 db key, as `ringil keys create` / sbctl make.
openssl req -x509 -newkey rsa:4096 -nodes -keyout "$work/db.key" -out "$work/db.pem" \
    -subj "/CN=bench db" -days 30 2>/dev/null

cp /usr/lib/systemd/boot/efi/linuxx64.efi.stub "$work/stub.efi"
# A 64 MiB PE32+ image: headers plus one section of random data (like a UKI with a large initrd).
python3 - "$work/big.efi" <<'PY'
import os, struct, sys
sec = 64 << 20
b = bytearray(0x200)
b[0:2] = b"MZ"; struct.pack_into("<I", b, 0x3C, 0x40); b[0x40:0x44] = b"PE\0\0"
struct.pack_into("<HH", b, 0x44, 0x8664, 1); struct.pack_into("<H", b, 0x54, 240)
struct.pack_into("<H", b, 0x58, 0x20B); struct.pack_into("<I", b, 0x58 + 60, 0x200)
struct.pack_into("<I", b, 0x58 + 108, 16)
s = 0x58 + 240; b[s:s + 5] = b".data"; struct.pack_into("<IIII", b, s + 8, sec, 0x1000, sec, 0x200)
with open(sys.argv[1], "wb") as f:
    f.write(b); f.write(os.urandom(sec))
PY

for img in stub big; do
    f="$work/$img.efi"
    sbsign --key "$work/db.key" --cert "$work/db.pem" --output "$f.sbsign" "$f" 2>/dev/null
    "$ringil" efi sign --key "$work/db.key" --cert "$work/db.pem" --output "$f.ringil" "$f" 2>/dev/null
    echo "== $img ($(stat -c %s "$f") bytes)"
    hyperfine -N --warmup 2 --runs "${RUNS:-10}" --export-markdown "$work/$img-sign.md" \
        -n "ringil efi sign" "$ringil efi sign --key $work/db.key --cert $work/db.pem --output $f.r2 $f" \
        -n "sbsign" "sbsign --key $work/db.key --cert $work/db.pem --output $f.s2 $f" >/dev/null 2>&1
    hyperfine -N --warmup 2 --runs "${RUNS:-10}" --export-markdown "$work/$img-verify.md" \
        -n "ringil efi verify" "$ringil efi verify --cert $work/db.pem $f.ringil" \
        -n "sbverify" "sbverify --cert $work/db.pem $f.sbsign" >/dev/null 2>&1
    cat "$work/$img-sign.md" "$work/$img-verify.md"
done
# The floor: SHA-256 throughput of this machine.
openssl speed -evp sha256 -bytes 16384 -seconds 1 2>/dev/null | tail -1
