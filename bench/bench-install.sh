#!/usr/bin/env bash
# bench-install.sh: `ringil install` of a 1 GiB raw image into a file slot, against the limit measured in
# the same run — min(SHA-256 speed, dd conv=fsync) — and against `rauc install` (plain bundle, file slots,
# bootloader=noop) when RAUC can run here. Usage: bench/bench-install.sh [BUILD] (env: SIZE_MIB, REPS).
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
ringil=$PWD/$build/ringil/ringil
size_mib=${SIZE_MIB:-1024}
reps=${REPS:-3}
work=$(mktemp -d /var/tmp/ringil-bench-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN { print $* }"; }
secs() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); calc "$t1 - $t0"; }

echo "preparing a ${size_mib} MiB image and a signed bundle in $work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 30 -subj "/CN=bench db" 2>/dev/null
head -c $((size_mib << 20)) /dev/urandom >img
"$ringil" bundle create --key key.pem --cert cert.pem --compatible bench --version 1.0 \
    --payload rootfs:raw=img --output b.rb >/dev/null
# Slots are block devices on a drone: overwrite fully allocated files, never measure block allocation.
for f in slota slotb ddslot; do dd if=img of=$f bs=1M conv=fsync status=none; done
mkdir -p esp efivars
cat >device.conf <<CONF
[device]
compatible = bench
keyring = $work/cert.pem
esp = $work/esp
state-dir = $work/state
efivarfs = $work/efivars
[boot]
linux = /EFI/ringil/vmlinuz
[slot.rootfs.a]
device = $work/slota
[slot.rootfs.b]
device = $work/slotb
CONF

sha_rate=$(openssl speed -evp sha256 -seconds 2 -bytes 16384 2>/dev/null | awk '/^sha256/ {sub(/k$/,"",$2); print $2*1000}')
sha_s=$(calc "($size_mib * 1048576) / $sha_rate")

dd_t=() ri_t=()
for i in $(seq "$reps"); do
    dd_t+=("$(secs dd if=img of=ddslot bs=1M conv=fsync)")
    rm -rf state esp/loader
    dd if=/dev/zero of=slotb bs=1M count=1 conv=notrunc,fsync status=none
    ri_t+=("$(secs "$ringil" install --config device.conf --slot b b.rb)")
done
[[ -f state/install.state ]] && grep -q 'phase = pending' state/install.state || { echo "ringil install failed"; exit 1; }
cmp -s img slotb || { echo "slot b differs from the image"; exit 1; }
dd_s=$(printf '%s\n' "${dd_t[@]}" | median)
ri_s=$(printf '%s\n' "${ri_t[@]}" | median)
limit_s=$(calc "($sha_s > $dd_s) ? $sha_s : $dd_s")

printf 'sha256 (openssl speed, 16 KiB):  %6.3f s  (%.0f MB/s)\n' "$sha_s" "$(calc "$sha_rate / 1000000")"
printf 'dd conv=fsync (median of %d):     %6.3f s   runs: %s\n' "$reps" "$dd_s" "${dd_t[*]}"
printf 'limit = slower of the two:        %6.3f s\n' "$limit_s"
printf 'ringil install (median of %d):    %6.3f s   runs: %s\n' "$reps" "$ri_s" "${ri_t[*]}"
printf 'ringil vs limit:                  %6.2fx  (goal >= 0.85x)\n' "$(calc "$limit_s / $ri_s")"

# RAUC: plain bundle (verity needs device-mapper), file slots, noop bootloader, private D-Bus.
if command -v rauc >/dev/null && command -v mksquashfs >/dev/null && command -v dbus-run-session >/dev/null; then
    mkdir -p rauc/content rauc/data rauc/mnt
    cp img rauc/content/rootfs.img
    printf '[update]\ncompatible=bench\nversion=1.0\n[bundle]\nformat=plain\n[image.rootfs]\nfilename=rootfs.img\n' \
        >rauc/content/manifest.raucm
    printf '[system]\ncompatible=bench\nbootloader=noop\nbundle-formats=plain\ndata-directory=%s\n[keyring]\npath=%s\n[slot.rootfs.0]\ndevice=%s\ntype=raw\nbootname=A\n[slot.rootfs.1]\ndevice=%s\ntype=raw\nbootname=B\n' \
        "$work/rauc/data" "$work/cert.pem" "$work/slota" "$work/slotb" >rauc/system.conf
    if rauc bundle --cert cert.pem --key key.pem rauc/content rauc/b.raucb >rauc/bundle.log 2>&1; then
        ra_t=()
        for i in $(seq "$reps"); do
            # clobber slot b's head so the check below proves RAUC (not an earlier run) wrote it
            dd if=/dev/zero of=slotb bs=1M count=1 conv=notrunc,fsync status=none
            t=$(secs dbus-run-session -- sh -c "export DBUS_SYSTEM_BUS_ADDRESS=\$DBUS_SESSION_BUS_ADDRESS; \
                rauc service --conf=$work/rauc/system.conf --mount=$work/rauc/mnt --override-boot-slot=A & \
                sleep 1; rauc install $work/rauc/b.raucb >$work/rauc/install.log 2>&1; echo \$? >$work/rauc/rc; kill %1")
            # the fixed 1 s wait for the service to come up is not RAUC's install time
            ra_t+=("$(calc "$t - 1")")
        done
        if [[ "$(cat rauc/rc 2>/dev/null)" == 0 ]] && cmp -s img slotb; then
            ra_s=$(printf '%s\n' "${ra_t[@]}" | median)
            printf 'rauc install plain (median of %d): %6.3f s   runs: %s\n' "$reps" "$ra_s" "${ra_t[*]}"
            printf 'ringil vs rauc:                   %6.2fx faster\n' "$(calc "$ra_s / $ri_s")"
        else
            echo "rauc install did not complete here: $(tail -2 rauc/install.log 2>/dev/null | tr '\n' ' ')"
        fi
    else
        echo "rauc bundle failed: $(tail -1 rauc/bundle.log)"
    fi
else
    echo "rauc not installed (scripts/deps.sh bench)"
fi
