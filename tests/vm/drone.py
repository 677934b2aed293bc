"""drone.py: a VM set up as a ringil drone (real systemd-boot on a vfat ESP, slots a/b and a state partition
as virtio partitions), and the guest's boot pipeline: ringil-health, ringil-bless (mark-good), installs."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import vmlib
from conftest import record

PROVISION_ENTRY = "provision.conf"


def slot_image(path: Path, version: str, health="ok", size=1 << 20, seed=None):
    """A slot payload: a header the guest's health hook reads, then pseudo-random bytes."""
    head = f"RINGILVM version={version} health={health}\n".encode()
    with open(path, "wb") as f:
        f.write(head)
        left = size - len(head)
        while left > 0:
            n = min(left, 1 << 24)
            f.write(os.urandom(n))
            left -= n
    return path


HEALTH_HOOK = """#!/bin/sh
# The slot's own health gate: the booted slot's payload says whether this "system" is healthy.
s=$(ringil status --json | sed -n 's/^  "booted": "\\([ab]\\)",$/\\1/p')
[ -n "$s" ] || { echo "health: booted slot unknown"; exit 1; }
head -c 64 /dev/ringil/slot-$s | grep -q 'health=ok' && exit 0
echo "health: slot $s reports failure"
exit 1
"""


class Drone:
    def __init__(self, env, workdir: Path, loader, secure=False, vars_template=None, slot_mib=8, tries=3,
                 name="drone", max_attempts=5):
        self.env, self.workdir, self.name = env, Path(workdir), name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.loader_efi, self.stub, self.loader_version = loader
        self.secure, self.tries, self.max_attempts = secure, tries, max_attempts
        self.disk = vmlib.Disk(self.workdir / "disk.img", slot_mib=slot_mib)
        self.vm = vmlib.VM(self.workdir / "vm", self.disk, env.tools,
                           vars_template=vars_template or vmlib.OVMF_VARS)
        boot = self.loader_efi
        if secure:
            boot = env.sign(self.loader_efi, self.workdir / "BOOTX64.signed.efi")
        self.disk.esp_put("EFI/BOOT/BOOTX64.EFI", boot.read_bytes())
        self.disk.esp_put("vmlinuz", (env.signed_kernel if secure else env.kernel).read_bytes())
        self.disk.esp_put("initrd.img", env.initrd.read_bytes())
        self.disk.esp_put("loader/loader.conf", b"timeout 0\neditor no\ndefault provision*\n")
        self.disk.esp_put(f"loader/entries/{PROVISION_ENTRY}",
                          b"title provisioning\nlinux /vmlinuz\ninitrd /initrd.img\noptions console=ttyS0 quiet panic=-1 no_timer_check\n")
        self.files = {"hooks/health": HEALTH_HOOK, "keys/db.pem": env.db_pem.read_bytes()}

    def conf(self, tries=None):
        return f"""[device]
compatible = vm-drone
keyring = /ctl/keys/db.pem
esp = /boot
state-dir = /var/lib/ringil/state
efivarfs = /sys/firmware/efi/efivars
boot-tries = {tries or self.tries}
checkpoint = 8M
max-attempts = {self.max_attempts}
health-hook = /ctl/hooks/health
[boot]
linux = /vmlinuz
initrd = /initrd.img
options = console=ttyS0 quiet panic=-1 no_timer_check ringil.slot=@SLOT@
[slot.rootfs.a]
device = /dev/ringil/slot-a
[slot.rootfs.b]
device = /dev/ringil/slot-b
"""

    def boot(self, what, steps=(), files=None, tries=None, expect_userspace=True, **kw):
        """One boot; steps run in order after the boot is reported: ("bless",), ("mark-bad",),
        ("install", bundle_path[, slot]), ("sh", text)."""
        script = ["cp /ctl/device.conf /etc/ringil/device.conf", "mkdir -p /var/lib/ringil/state", "report_boot",
                  "ringil status > /tmp/st.txt 2>&1; dump status-before /tmp/st.txt"]
        f = dict(self.files)
        f["device.conf"] = self.conf(tries)
        for step in steps:
            if step[0] == "bless":
                # ringil-health.service (RequiredBy=boot-complete.target), then ringil-bless.service.
                script.append('if ringil health; then ringil mark-good; rep bless $?; else rep bless health-failed; fi')
            elif step[0] == "mark-bad":
                script.append("ringil mark-bad; rep markbad $?")
            elif step[0] == "install":
                name = Path(step[1]).name
                f[name] = Path(step[1])
                slot = f" --slot {step[2]}" if len(step) > 2 else ""
                script.append(f"echo @@install-start; ringil install{slot} /ctl/{name}; rep install $?")
                if slot:
                    script.append("rm -f /boot/loader/entries/provision*.conf")
            elif step[0] == "sh":
                script.append(step[1])
        script += ["ringil status --json > /tmp/st.json 2>&1; dump status /tmp/st.json",
                   'rep entries-after "$(ls /boot/loader/entries | tr \'\\n\' \' \')"', "sync"]
        f.update(files or {})
        b = self.vm.boot("\n".join(script) + "\n", f, expect_userspace=expect_userspace, **kw)
        record(self.name, what, b)
        b.status = json.loads(b.block_bytes("status")) if "status" in b.blocks else None
        return b

    def entries(self):
        return self.disk.esp_ls("loader/entries")

    def entry_text(self, name):
        data = self.disk.esp_get(f"loader/entries/{name}")
        return data.decode() if data is not None else None
