"""test_aarch64.py: the Jetson's architecture: an arm64 UKI (Debian 12's linuxaa64.efi.stub and arm64 kernel,
a busybox initramfs) booted by Debian's arm64 systemd-boot under qemu-system-aarch64 with AAVMF (TCG).
First boot in Setup Mode: systemd-boot enrolls our PK/KEK/db from loader/keys/auto (`ringil keys export`)
and resets; second boot: our signed loader and signed UKI, with Secure Boot enforced if AAVMF does so."""
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import vmlib
from conftest import LOADER_CACHE, record, run

AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
insmod /efivarfs.ko 2>/dev/null
mount -t efivarfs efivarfs /sys/firmware/efi/efivars
v=/sys/firmware/efi/efivars
echo "@@arch=$(uname -m)"
echo "@@secureboot=$(tail -c +5 $v/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | od -An -tu1 | tr -d ' ')"
echo "@@selected=$(tail -c +5 $v/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f 2>/dev/null | tr -d '\000')"
echo "@@countpath=$(tail -c +5 $v/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f 2>/dev/null | tr -d '\000')"
echo "@@ready uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"""


def boot_aarch64(workdir, disk, vars_fd, timeout=900):
    serial = workdir / f"serial-{time.monotonic_ns()}.log"
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "1024", "-smp", "1",
            "-drive", f"if=pflash,format=raw,unit=0,file={AAVMF_CODE},readonly=on",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
            "-drive", f"if=none,id=d0,format=raw,file={disk.path}", "-device", "virtio-blk-pci,drive=d0",
            "-display", "none", "-nodefaults", "-no-reboot", "-serial", f"file:{serial}", "-nic", "none"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        p.wait(timeout=timeout)
        reason = "poweroff"
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        reason = "timeout"
    b = vmlib.Boot(serial.read_text(errors="replace"), time.monotonic() - t0, reason)
    if reason == "timeout":
        raise vmlib.BootTimeout(f"arm64 VM did not power off within {timeout} s; last 40 lines:\n{b.tail()}")
    return b


def test_arm64_uki_boots_under_aavmf(env, tmp_path):
    if not shutil.which("qemu-system-aarch64") or not AAVMF_CODE.exists():
        pytest.skip("aarch64 boot cannot run here: qemu-system-arm / qemu-efi-aarch64 not installed")
    debs = {k: sorted((LOADER_CACHE / "arm64").glob(f"{k}*_arm64.deb")) for k in
            ("systemd-boot-efi", "busybox-static", "linux-image-")}
    missing = [k for k, v in debs.items() if not v]
    if missing:
        pytest.skip(f"aarch64 boot cannot run here: no arm64 .deb of {', '.join(missing)} "
                    "(scripts/vm-loaders.sh fetches them from deb.debian.org)")
    x = tmp_path / "x"
    for v in debs.values():
        run("dpkg-deb", "-x", v[-1], x)
    kernel = next((x / "boot").glob("vmlinuz-*-arm64"))
    efivarfs = next((x / "lib/modules").rglob("efivarfs.ko"))
    c = vmlib.Cpio()
    c.file("init", INIT.encode(), 0o755)
    c.file("bin/busybox", (x / "bin/busybox").read_bytes(), 0o755)
    c.file("efivarfs.ko", efivarfs.read_bytes())
    import gzip
    initrd = gzip.compress(c.finish(), compresslevel=9, mtime=0)
    stub = x / "usr/lib/systemd/boot/efi/linuxaa64.efi.stub"
    sdboot = x / "usr/lib/systemd/boot/efi/systemd-bootaa64.efi"
    (tmp_path / "initrd-arm64.img").write_bytes(initrd)
    uki = env.uki(stub, tmp_path / "arm64.efi", cmdline="console=ttyAMA0 quiet panic=-1", kernel=kernel,
                  initrd=tmp_path / "initrd-arm64.img")
    auth = tmp_path / "auth"
    run(env.ringil, "keys", "export", "--dir", env.keys, "--output-dir", auth)

    disk = vmlib.Disk(tmp_path / "disk.img", esp_mib=96, state_mib=8, slot_mib=1)
    disk.esp_put("EFI/BOOT/BOOTAA64.EFI", env.sign(sdboot, tmp_path / "sdboot.efi").read_bytes())
    disk.esp_put("EFI/ringil/ringil-a-1.0.efi", uki.read_bytes())
    disk.esp_put("loader/entries/ringil-a-1.0+3.conf",
                 b"title arm64\nsort-key ringil\nversion 1.0\nlinux /EFI/ringil/ringil-a-1.0.efi\n")
    disk.esp_put("loader/loader.conf", b"timeout 0\neditor no\ndefault ringil-*\nsecure-boot-enroll force\n")
    for k in ("PK", "KEK", "db"):
        disk.esp_put(f"loader/keys/auto/{k}.auth", (auth / f"{k}.auth").read_bytes())
    vars_fd = tmp_path / "AAVMF_VARS.fd"
    shutil.copy(AAVMF_VARS, vars_fd)

    b1 = boot_aarch64(tmp_path, disk, vars_fd)
    record("aarch64", "Setup Mode: systemd-boot enrolls loader/keys/auto, resets", b1)
    if b1.reached_userspace:
        # The loader booted the UKI instead of enrolling (no enrollment support): still one arm64 boot.
        b2 = b1
    else:
        b2 = boot_aarch64(tmp_path, disk, vars_fd)
        record("aarch64", "signed systemd-boot + signed arm64 UKI", b2)
    assert b2.reached_userspace, f"arm64 UKI did not reach its initramfs:\n{b2.tail()}"
    assert b2.marks["arch"] == "aarch64"
    assert b2.marks["selected"] in ("ringil-a-1.0+3.conf", "ringil-a-1.0.conf")
    # Enrollment happens before any entry is chosen: the boot into the UKI is the entry's first try.
    assert b2.marks["countpath"] == "\\loader\\entries\\ringil-a-1.0+2-1.conf", b2.marks
    print(f"aarch64: Secure Boot {'enforced' if b2.marks['secureboot'] == '1' else 'NOT enforced'}; "
          f"boots {b1.seconds:.0f} s + {b2.seconds:.0f} s")
    if b2.marks["secureboot"] != "1":
        pytest.skip(f"the arm64 UKI boots (in {b2.seconds:.0f} s), but Secure Boot was not enforced after "
                    f"systemd-boot's enrollment with the packaged AAVMF (SecureBoot={b2.marks['secureboot']!r})")
