"""conftest.py: the VM suite's shared parts: prerequisites (a reported skip naming what is missing), the guest
initramfs and tools disk, the Secure Boot keys, the systemd-boot versions, and per-boot timings."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import vmlib  # noqa: E402

ROOT = vmlib.ROOT
BUILD = Path(os.environ.get("RINGIL_BUILD", ROOT / "build"))
LOADER_CACHE = Path(os.environ.get("RINGIL_VM_LOADERS", ROOT / "tests" / "vm" / "cache" / "loaders"))
SUITES = ["bookworm", "bookworm-backports", "trixie", "forky"]
TIMINGS = []


def missing_prerequisites():
    need = {"qemu-system-x86_64 (qemu-system-x86)": shutil.which("qemu-system-x86_64"),
            "OVMF_CODE_4M.secboot.fd (ovmf)": vmlib.OVMF_CODE.exists(),
            "busybox-static": Path("/bin/busybox").exists(),
            "mkfs.vfat/fsck.vfat (dosfstools)": shutil.which("mkfs.vfat") and shutil.which("fsck.vfat"),
            "mtools": shutil.which("mcopy"), "sfdisk (fdisk)": shutil.which("sfdisk"),
            "mkfs.ext4/debugfs (e2fsprogs)": shutil.which("mkfs.ext4") and shutil.which("debugfs"),
            "systemd-boot-efi": vmlib.SD_BOOT.exists()}
    try:
        vmlib.kernel_version()
    except FileNotFoundError:
        need["linux-image-amd64"] = False
    return [k for k, v in need.items() if not v]


def run(*args, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    return subprocess.run([str(a) for a in args], **kw)


class Env:
    """What every VM of the session shares; built once."""

    def __init__(self, root: Path):
        self.root = root
        self.ringil = BUILD / "ringil" / "ringil"
        self.kver = vmlib.kernel_version()
        self.kernel = Path(f"/boot/vmlinuz-{self.kver}")
        t = time.monotonic()
        self.initrd = vmlib.build_initramfs(root / "initrd.img")
        self.tools = vmlib.build_tools(root / "tools.tar", [self.ringil, BUILD / "ringild" / "ringild"])
        self.prep_seconds = time.monotonic() - t
        # The fleet's Secure Boot keys (what `ringil keys enroll` puts into the firmware) and a stranger's.
        self.keys = root / "keys"
        run(self.ringil, "keys", "create", "--dir", self.keys)
        self.db_key, self.db_pem = self.keys / "keys/db/db.key", self.keys / "keys/db/db.pem"
        self.foreign_key, self.foreign_pem = root / "foreign.key", root / "foreign.pem"
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.foreign_key, "-out",
            self.foreign_pem, "-days", "30", "-subj", "/CN=not the fleet")
        self.signed_kernel = self.sign(self.kernel, root / "vmlinuz.signed")

    def sign(self, src: Path, out: Path, key=None, cert=None):
        run(self.ringil, "efi", "sign", "--key", key or self.db_key, "--cert", cert or self.db_pem, "--output", out, src)
        return out

    def uki(self, stub: Path, out: Path, cmdline="console=ttyS0 quiet panic=-1 no_timer_check", osrel="ID=ringilvm\nVERSION_ID=1\n",
            sign=True, key=None, cert=None, kernel=None, initrd=None):
        """A UKI built by `ringil efi uki` on the given stub, signed in the same step (db key by default)."""
        args = [self.ringil, "efi", "uki", "--stub", stub, "--linux", kernel or self.kernel, "--initrd",
                initrd or self.initrd, "--cmdline", cmdline, "--os-release", osrel, "--output", out]
        if sign:
            args += ["--key", key or self.db_key, "--cert", cert or self.db_pem]
        run(*args)
        return out

    def loader(self, suite: str):
        """(systemd-bootx64.efi, linuxx64.efi.stub, version) of a suite's systemd-boot-efi .deb."""
        debs = sorted((LOADER_CACHE / suite).glob("systemd-boot-efi_*.deb"))
        if not debs:
            return None
        dest = self.root / "loaders" / suite
        boot, stub = vmlib.deb_systemd_boot(debs[-1], dest)
        return boot, stub, vmlib.sdmagic_version(boot)

    def bundle(self, out: Path, version: str, image: Path, uki: Path = None, compatible="vm-drone", chunk="1M"):
        args = [self.ringil, "bundle", "create", "--key", self.db_key, "--cert", self.db_pem, "--compatible", compatible,
                "--version", version, "--chunk-size", chunk, "--payload", f"rootfs:raw={image}"]
        if uki:
            args += ["--payload", f"uki:efi={uki}"]
        run(*args, "--output", out)
        return out


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    miss = missing_prerequisites()
    if miss:
        pytest.skip("VM suite cannot run here: missing " + ", ".join(miss) + " (scripts/deps.sh test installs them)")
    if not (BUILD / "ringil" / "ringil").exists():
        pytest.skip(f"no ringil build under {BUILD}")
    return Env(tmp_path_factory.mktemp("vmenv"))


def record(test, what, boot):
    TIMINGS.append(dict(test=test, boot=what, seconds=round(boot.seconds, 1), outcome=boot.exit_reason,
                        milestones=getattr(boot, "milestones", {})))


def merge_json(path, update):
    """Read-modify-write a JSON file under an exclusive lock: pytest-xdist workers each add their part."""
    import fcntl
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        doc = json.loads(text) if text.strip() else {}
        update(doc)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(doc, indent=1) + "\n")


def timings_path():
    return Path(os.environ.get("RINGIL_VM_TIMINGS") or BUILD / "vm-timings.json")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):    # the controller (or a run without xdist)
        timings_path().unlink(missing_ok=True)


def pytest_sessionfinish(session, exitstatus):
    if TIMINGS:
        def add(d):
            d.setdefault("boots", []).extend(TIMINGS)
            d["load_average"] = os.getloadavg()
            d["total_boot_seconds"] = round(sum(t["seconds"] for t in d["boots"]), 1)
        merge_json(timings_path(), add)
    if hasattr(session.config, "workerinput") or not timings_path().exists():
        return
    doc = json.loads(timings_path().read_text())
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr:
        load = os.getloadavg()
        tr.write_line(f"VM boots: {len(doc['boots'])}, {doc['total_boot_seconds']} s of boots in all (load average "
                      f"now {load[0]:.1f}); per boot, with the seconds at which the loader and the guest's "
                      f"userspace started:")
        for t in doc["boots"]:
            ms = " ".join(f"{k}@{v}" for k, v in t.get("milestones", {}).items())
            tr.write_line(f"  {t['seconds']:6.1f} s  {t['outcome']:10s} {t['test']}: {t['boot']}  [{ms}]")


@pytest.fixture(scope="session")
def enrolled(env, tmp_path_factory):
    """One boot in Setup Mode in which `ringil keys enroll` writes db, KEK and PK through the guest's real
    efivarfs. Its pflash variables (our keys, User Mode from the next boot on) are the starting point of
    every Secure Boot VM of the session."""
    from types import SimpleNamespace
    from drone import Drone
    w = tmp_path_factory.mktemp("enroll")
    d = Drone(env, w, (vmlib.SD_BOOT, vmlib.STUB, vmlib.sdmagic_version(vmlib.SD_BOOT)), name="enrollment")
    files = {f"pki/{p.relative_to(env.keys)}": p for p in env.keys.rglob("*") if p.is_file()}
    ev = "/sys/firmware/efi/efivars"
    script = f"""
ringil keys status --dir /ctl/pki --json > /tmp/k0.json 2>&1; rep keys-status-before $?; dump keys-before /tmp/k0.json
ringil keys enroll --dir /ctl/pki --efivarfs {ev}; rep enroll $?
# busybox has no lsattr: an unlink that the kernel refuses with EPERM is the immutable flag at work (the
# firmware itself would refuse an unauthenticated delete with a different error).
for v in PK-{vmlib.GLOBAL_GUID} KEK-{vmlib.GLOBAL_GUID} db-d719b2cb-3d3a-4596-a3bc-dad00e67656f; do
    rep "rm-${{v%%-*}}" "$(rm -f {ev}/$v 2>&1 | sed 's/.*: //')"
    rep "present-${{v%%-*}}" "$([ -e {ev}/$v ] && echo yes || echo no)"
done
ringil keys status --dir /ctl/pki --json > /tmp/k1.json 2>&1; dump keys-after /tmp/k1.json
"""
    b = d.boot("Setup Mode: ringil keys enroll (db, KEK, PK)", [("sh", script)], files=files)
    snapshot = w / "OVMF_VARS.enrolled.fd"
    shutil.copy(d.vm.vars, snapshot)
    return SimpleNamespace(vars=snapshot, boot=b)
