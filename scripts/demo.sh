#!/usr/bin/env bash
# demo.sh: ringil's main job on its embedded default, in a scratch directory that is removed at the end:
# fleet Secure Boot keys → signed EFI binary → signed update bundles → A/B install with boot counting,
# bless and refusal of forgeries and downgrades → audit; then the fleet demo when it is built.
set -euo pipefail
build=${1:-build}
top=$PWD
ringil="$top/$build/ringil/ringil"
work=$(mktemp -d /tmp/ringil-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s|$ringil|ringil|g; s|$work/||g"; "$@"; }
expect_fail() {   # expect_fail CODE CMD…: the command must fail with exactly CODE
    local want=$1 rc=0
    shift
    printf '$ %s   # must fail with exit %s\n' "$*" "$want" | sed "s|$ringil|ringil|g; s|$work/||g"
    "$@" || rc=$?
    [[ $rc -eq $want ]] || { echo "demo: expected exit $want, got $rc" >&2; exit 1; }
    echo "   -> refused (exit $rc)"
}
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
# What systemd-boot does when it boots an entry: count one try down in the file name
# (+3 → +2-1) and tell the OS which entry it booted (LoaderEntrySelected, UTF-16LE).
boot() {
    local f=$1 id=${1%%+*}
    id=${id%.conf}.conf
    if [[ $f =~ ^(.*)\+([0-9]+)(-([0-9]+))?\.conf$ ]]; then
        mv "esp/loader/entries/$f" \
            "esp/loader/entries/${BASH_REMATCH[1]}+$((BASH_REMATCH[2] - 1))-$((${BASH_REMATCH[4]:-0} + 1)).conf"
    fi
    { printf '\x06\x00\x00\x00'; printf '%s\0' "$id" | iconv -f UTF-8 -t UTF-16LE; } \
        > "efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    echo "   (systemd-boot boots $f)"
}

step "$("$ringil" --version)"

step "1. Fleet Secure Boot keys (drop-in for 'sbctl create-keys'; lanzaboote pkiBundle layout)"
run "$ringil" keys create --dir pki
find pki -type f -printf '   %M %p\n' | sort
run "$ringil" keys export --dir pki --output-dir sb
ls sb | sed 's/^/   /'

step "2. Enroll into a firmware in setup mode (a directory standing in for efivarfs)"
mkdir efivars
gv=8be4df61-93ca-11d2-aa0d-00e098032b8c
printf '\x06\x00\x00\x00\x01' > "efivars/SetupMode-$gv"
printf '\x06\x00\x00\x00\x00' > "efivars/SecureBoot-$gv"
run "$ringil" keys enroll --dir pki --efivarfs efivars
# What the firmware does next: it checks each .auth, stores the signature list behind the attributes,
# leaves setup mode once PK is set, and enforces Secure Boot from the next boot on.
for v in PK KEK db; do
    vendor=$gv
    [[ $v == db ]] && vendor=d719b2cb-3d3a-4596-a3bc-dad00e67656f
    { printf '\x27\x00\x00\x00'; cat "sb/$v.esl"; } > "efivars/$v-$vendor"
done
printf '\x06\x00\x00\x00\x00' > "efivars/SetupMode-$gv"
printf '\x06\x00\x00\x00\x01' > "efivars/SecureBoot-$gv"
run "$ringil" keys status --dir pki --efivarfs efivars

step "3. Sign an EFI binary with db (Authenticode, as sbsign) and check it with the real sbverify"
run "$ringil" efi sign --key pki/keys/db/db.key --cert pki/keys/db/db.pem --output uki-v1.efi "$stub"
run sbverify --cert pki/keys/db/db.pem uki-v1.efi
cp uki-v1.efi uki-v2.efi
printf 'v2' | dd of=uki-v2.efi bs=1 seek=1024 conv=notrunc status=none   # a different build
run "$ringil" efi sign --key pki/keys/db/db.key --cert pki/keys/db/db.pem --output uki-v2.efi uki-v2.efi
cp uki-v2.efi tampered.efi
printf 'X' | dd of=tampered.efi bs=1 seek=4660 conv=notrunc status=none
expect_fail 9 "$ringil" efi verify --cert pki/keys/db/db.pem tampered.efi

step "4. Signed update bundles, signed with the same db key"
head -c $((8 << 20)) /dev/urandom > rootfs-v1.img
head -c $((8 << 20)) /dev/urandom > rootfs-v2.img
for v in 1 2; do
    run "$ringil" bundle create --key pki/keys/db/db.key --cert pki/keys/db/db.pem \
        --compatible drone-x1 --version "$v.0" --valid-for 30 \
        --payload "rootfs:raw=rootfs-v$v.img" --payload "uki:efi=uki-v$v.efi" --output "v$v.rb"
done
run "$ringil" bundle verify --keyring pki/keys/db/db.pem --compatible drone-x1 v2.rb
run "$ringil" bundle info v2.rb
cp v2.rb flipped.rb
printf 'X' | dd of=flipped.rb bs=1 seek=$(( $(stat -c %s flipped.rb) - 100 )) conv=notrunc status=none
expect_fail 9 "$ringil" bundle verify --keyring pki/keys/db/db.pem flipped.rb
expect_fail 8 "$ringil" bundle verify --keyring pki/keys/db/db.pem --compatible other-hw v2.rb
expect_fail 6 "$ringil" bundle verify --keyring pki/keys/db/db.pem --now 2040-01-01 v2.rb

step "5. A/B install with systemd-boot boot counting (file-backed slots, a directory as the ESP)"
mkdir -p esp state
truncate -s 16M slot-a.img slot-b.img
cat > device.conf <<CONF
[device]
compatible = drone-x1
keyring = $work/pki/keys/db/db.pem
esp = $work/esp
state-dir = $work/state
efivarfs = $work/efivars
[slot.rootfs.a]
device = $work/slot-a.img
[slot.rootfs.b]
device = $work/slot-b.img
CONF
run "$ringil" install --config device.conf --slot a v1.rb
boot ringil-a-1.0+3.conf
run "$ringil" mark-good --config device.conf
run "$ringil" install --config device.conf v2.rb
(cd esp && find . -type f | sort | sed 's/^/   /')
run "$ringil" status --config device.conf
boot ringil-b-2.0+3.conf
echo "   (the health gate passes, boot-complete.target is reached, ringil-bless.service runs:)"
run "$ringil" mark-good --config device.conf
run "$ringil" status --config device.conf
expect_fail 7 "$ringil" install --config device.conf v1.rb

step "6. Hardening audit: a prod drone image passes, one drift is caught, and why this machine fails"
# The drone image is the golden prod root of the audit tests (tests/integration/audit_fixture.py):
# efivars, ESP, LUKS2 header, accounts, units and NixOS links as a locked-down drone has them.
PYTHONPATH="$top/tests/integration" /usr/bin/python3 - "$work" "$ringil" <<'PY'
import collections, json, subprocess, sys
from pathlib import Path
import audit_fixture as fx

work, ringil = Path(sys.argv[1]), sys.argv[2]

def audit(*args):
    p = subprocess.run([ringil, "audit", "--format", "json", *args], capture_output=True, text=True)
    return p.returncode, json.loads(p.stdout)

def summary(d):
    s = d["summary"]
    return (f"{s['total']} checks: {s['pass']} pass, {s['fail']} fail, {s['error']} could not be checked, "
            f"{s['notapplicable']} not applicable")

root = work / "drone-root"
root.mkdir()
(work / "drone-certs").mkdir()
fx.build_golden(root, fx.Certs(work / "drone-certs"))
print("$ ringil audit --root drone-root            # offline, on the drone's image")
rc, d = audit("--root", root)
print(f"   {summary(d)} -> exit {rc} (compliant)")
by_area = collections.Counter(r["area"] for r in d["results"] if r["status"] == "pass")
print("   passing, by area: " + ", ".join(f"{a} {n}" for a, n in sorted(by_area.items())))
na = [r["id"] for r in d["results"] if r["status"] == "notapplicable"]
if na:
    print(f"   not applicable offline (need the running firmware/kernel): {' '.join(na)}")
assert rc == 0, f"the golden drone image must be compliant, got exit {rc}"

fx.MUTATIONS["SVC-001"](root, None)
print("\n$ ringil audit --root drone-root            # after enabling an SSH unit in the image")
rc, d = audit("--root", root)
for r in d["results"]:
    if r["status"] == "fail":
        print(f"   fail {r['severity']} {r['id']} {r['title']}: {r['message']}")
print(f"   {summary(d)} -> exit {rc} (a failure at or above --fail-on high)")
assert rc == 2

print("\n$ ringil audit                              # live, on this build machine, which is not a drone")
rc, d = audit()
print(f"   {summary(d)} -> exit {rc}")
fails = [r for r in d["results"] if r["status"] == "fail"]
print(f"   fails here, as expected on a machine that is not in prod mode ({len(fails)}):")
for r in sorted(fails, key=lambda r: ["critical", "high", "medium", "low", "info"].index(r["severity"]))[:8]:
    print(f"     {r['severity']:<8} {r['id']:<8} {r['title']}")
if len(fails) > 8:
    print(f"     … and {len(fails) - 8} more (ringil audit --format text lists each with its fix)")
errors = collections.Counter()
for r in d["results"]:
    if r["status"] == "error":
        ev = r["evidence"][0]["path"] if r.get("evidence") and r["evidence"][0].get("path") else "?"
        errors[ev] += 1
print("   could not be checked: what a NixOS drone has and this machine lacks (an error is never a pass):")
for path, n in errors.most_common(6):
    print(f"     {n:>2} {'checks need' if n > 1 else 'check needs'} {path}")
passes = [r["id"] for r in d["results"] if r["status"] == "pass"]
print(f"   pass here too ({len(passes)}): {' '.join(passes)}")
PY
echo "   exit codes of ringil audit: 0 compliant, 2 a failure at or above --fail-on, 3 something unchecked"

if [[ -x "$top/scripts/fleet-demo.sh" ]]; then
    step "7. The fleet: server, device CA, drones pulling v1 → v2 over mutual TLS; then \`ringil release\` of NixOS systems"
    # The fleet signs its bundles with the same Secure Boot db key as in step 1.
    RINGIL_DEMO_DB_KEY=$work/pki/keys/db/db.key RINGIL_DEMO_DB_CERT=$work/pki/keys/db/db.pem \
        "$top/scripts/fleet-demo.sh" "$top/$build"
fi

printf '\ndemo: done — keys, enrollment, signed EFI, bundles, A/B install, audit%s all worked (scratch dirs removed)\n' "$([[ -x $top/scripts/fleet-demo.sh ]] && echo ', fleet v1 → v2 canary rollout and drift report, NixOS release → generation')"
