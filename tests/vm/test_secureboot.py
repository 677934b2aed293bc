"""test_secureboot.py: Secure Boot on the firmware itself: `ringil keys enroll` from Linux in Setup Mode into
OVMF's real variables, User Mode and enforcement on the next boot (seen by `ringil keys status` and
`ringil audit` in the guest), and only images signed by our db key boot."""
import json

import vmlib
from drone import Drone, PROVISION_ENTRY

REFUSED = r"(?i)access denied|security violation|error loading|failed to (execute|load|start)"


def test_enrollment_from_linux_in_setup_mode(enrolled):
    b = enrolled.boot
    before = json.loads(b.block_bytes("keys-before"))
    assert before["mode"] == "setup", before
    assert b.marks["enroll"] == "0", b.tail()
    after = json.loads(b.block_bytes("keys-after"))
    # PK written: Setup Mode ends at once; enforcement (SecureBoot=1) starts with the next boot (checked by
    # test_only_our_signature_boots, which boots from these variables).
    assert after["setup_mode"] is False and after["secure_boot"] is False and after["mode"] == "disabled", after
    for k in ("PK", "KEK", "db"):
        assert after["variables"][k]["state"] == "ok", after
        # The kernel marks the new variable files immutable: an unlink is refused before the firmware sees it.
        assert b.marks[f"rm-{k}"] == "Operation not permitted" and b.marks[f"present-{k}"] == "yes", b.marks


def _keys_json(boot):
    return json.loads(boot.block_bytes("keys"))


def test_only_our_signature_boots(env, enrolled, tmp_path):
    loader = (vmlib.SD_BOOT, vmlib.STUB, vmlib.sdmagic_version(vmlib.SD_BOOT))
    d = Drone(env, tmp_path / "sig", loader, secure=True, vars_template=enrolled.vars, name="signatures 252 SB")
    d.disk.esp_rm(f"loader/entries/{PROVISION_ENTRY}")
    ukis = {"ours": env.uki(loader[1], tmp_path / "ours.efi"),
            "unsigned": env.uki(loader[1], tmp_path / "unsigned.efi", sign=False),
            "foreign": env.uki(loader[1], tmp_path / "foreign.efi", key=env.foreign_key, cert=env.foreign_pem)}
    # Highest version first: the unsigned one is tried first, then the foreign one, then ours.
    for name, version, counter in (("unsigned", "3", "+1"), ("foreign", "2", "+1"), ("ours", "1", "")):
        d.disk.esp_put(f"EFI/sig/{name}.efi", ukis[name].read_bytes())
        d.disk.esp_put(f"loader/entries/sig-{version}{counter}.conf",
                       f"title {name}\nsort-key sig\nversion {version}\nlinux /EFI/sig/{name}.efi\n".encode())
    d.disk.esp_put("loader/loader.conf", b"timeout 0\neditor no\ndefault sig-*\n")

    b = d.boot("unsigned UKI: firmware refuses", stop_on=REFUSED, expect_userspace=False)
    assert b.exit_reason == "stopped" and not b.reached_userspace, b.tail()
    assert "sig-3+0-1.conf" in d.entries()     # counted before the attempt: it will not be tried again
    b = d.boot("UKI signed by a foreign key: firmware refuses", stop_on=REFUSED, expect_userspace=False)
    assert b.exit_reason == "stopped" and not b.reached_userspace, b.tail()
    assert "sig-2+0-1.conf" in d.entries()

    b = d.boot("our signed UKI boots; keys status and audit in the guest", [("sh", """
mkdir -p /etc/secure && cp -r /ctl/pki /etc/secure/keys
ringil keys status --dir /etc/secure/keys --json > /tmp/k.json 2>&1; dump keys /tmp/k.json
rep secureboot "$(tail -c +5 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c | od -An -tu1 | tr -d ' ')"
ringil audit --format json > /tmp/audit.json 2>/tmp/audit.err; rep audit $?; dump audit /tmp/audit.json
""")], files={f"pki/{p.relative_to(env.keys)}": p for p in env.keys.rglob("*.pem")} | {
        f"pki/GUID": env.keys / "GUID"})
    assert b.marks["selected"] in ("sig-1.conf",), b.tail()
    assert b.marks["secureboot"] == "1"
    audit = json.loads(b.block_bytes("audit"))
    results = {c["id"]: c["status"] for c in audit["results"]}
    keys = _keys_json(b)
    assert keys["mode"] == "user" and all(keys["variables"][k]["state"] == "ok" for k in ("PK", "KEK", "db")), keys
    for cid in ("SB-001", "SB-002", "SB-003", "SB-004", "SB-005", "SB-006", "SB-007"):
        assert results.get(cid) == "pass", (cid, results.get(cid))

    # The loader itself: replaced by an unsigned build, the firmware refuses it.
    d.disk.esp_put("EFI/BOOT/BOOTX64.EFI", vmlib.SD_BOOT.read_bytes())
    b = d.boot("unsigned systemd-boot: firmware refuses", stop_on=REFUSED, expect_userspace=False, timeout=180)
    assert not b.reached_userspace and b.exit_reason == "stopped", b.tail()
