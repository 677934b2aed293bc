"""test_units.py: the shipped systemd units (as the build configures them): exposure scores from
`systemd-analyze security --offline=true` under the threshold, and the boot-assessment units doing their
job under their own sandbox in a real systemd (Debian's, booted in a throwaway systemd-nspawn container)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, binary

UNITS = ("ringild.service", "ringil-health.service", "ringil-bless.service", "ringil-mark-bad.service")
THRESHOLD = 2.5
VENDOR = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"


def configured(unit: str) -> Path:
    p = BUILD / unit
    if not p.exists():
        pytest.fail(f"{unit} not configured in {BUILD} (meson configures data/systemd/*.service)")
    return p


def exposure(unit: Path) -> float:
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout + p.stderr)
    assert m, f"no score for {unit}: {p.stdout[-500:]}{p.stderr[-500:]}"
    return float(m.group(1))


@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_under_threshold(unit):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    score = exposure(configured(unit))
    assert score <= THRESHOLD, f"{unit}: exposure {score} > {THRESHOLD} (systemd-analyze security --offline=true)"


def test_threshold_is_not_vacuous(tmp_path):
    """The scorer tells a bare unit from ours: the same ExecStart without the sandbox scores far above."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    text = configured("ringil-bless.service").read_text()
    bare = "\n".join(line for line in text.splitlines()
                     if not line.startswith(("Private", "Protect", "Restrict", "SystemCall", "Capability",
                                             "NoNewPrivileges", "ReadWritePaths", "IPAddress", "LockPersonality",
                                             "MemoryDeny", "KeyringMode", "RemoveIPC", "ProcSubset", "UMask",
                                             "AmbientCapabilities")))
    (tmp_path / "ringil-bless.service").write_text(bare + "\n")
    assert exposure(tmp_path / "ringil-bless.service") > 9


# ---------------------------------------------------------------- the units at work, sandboxed, in real systemd

DEVICE_CONF = """[device]
compatible = drone-x1
keyring = /srv/db.pem
esp = /boot
state-dir = /var/lib/ringil
efivarfs = /srv/efivars
health-hook = /srv/health-hook.sh
[boot]
linux = /EFI/ringil/vmlinuz
options = root=PARTLABEL=root-@SLOT@ ro
[slot.rootfs.a]
device = /srv/slot-a
[slot.rootfs.b]
device = /srv/slot-b
"""

# What operators' health checks do (docs/install.md): each must work under the health unit's sandbox,
# and each write outside it must be refused.
HEALTH_HOOK = r"""#!/bin/sh
rc=0
chk() { if "$@" >/dev/null 2>&1; then echo "HOOK ok: $*"; else echo "HOOK FAILED: $*"; rc=1; fi; }
deny() { if "$@" >/dev/null 2>&1; then echo "HOOK NOT DENIED: $*"; rc=1; else echo "HOOK denied: $*"; fi; }
chk systemctl is-active systemd-journald.service
chk test -c /dev/null
chk test -e /dev/tty
chk cat /proc/uptime /proc/meminfo /proc/loadavg
chk ls /proc/1/
chk getent hosts localhost
chk ip -br link
chk sh -c 'echo x > /tmp/health-scratch && cat /tmp/health-scratch'
chk sh -c 'ulimit -n 512'
chk python3 -c 'import socket; socket.socket().close()'
deny sh -c 'echo x > /etc/ringil-health-wrote-here'
deny sh -c 'echo x > /boot/ringil-health-wrote-here'
deny sh -c 'echo x > /srv/ringil-health-wrote-here'
deny sh -c 'echo 1 > /proc/sys/kernel/sysrq'
deny unshare -n true
exit $rc
"""

# Runs unsandboxed in the container, as systemd-boot and the boot would: provision a, boot it (one try
# taken, LoaderEntrySelected set), health gate, bless; install b, boot it, mark it bad (which reboots).
DRIVER = r"""#!/bin/sh
exec > /srv/result.log 2>&1
R=@RINGIL@
C=/etc/ringil/device.conf
select() { python3 -c "import sys; open('/srv/efivars/LoaderEntrySelected-@VENDOR@','wb').write((7).to_bytes(4,'little')+(sys.argv[1]+'\0').encode('utf-16-le'))" "$1"; }
boot() {
        f=$(ls /boot/loader/entries/ | grep "^$1")
        n=$(echo "$f" | sed -n 's/.*+\([0-9]*\)\.conf$/\1/p')
        [ -n "$n" ] && mv "/boot/loader/entries/$f" "/boot/loader/entries/$1+$((n-1))-1.conf"
        select "$1.conf"
}
$R install --config $C --slot a /srv/v1.0.rb; echo "STEP install-a $?"
boot ringil-a-1.0
systemctl start ringil-health.service; echo "STEP health $?"
journalctl -u ringil-health.service --no-pager -o cat | grep HOOK
systemctl start ringil-bless.service; echo "STEP bless $?"
journalctl -u ringil-bless.service --no-pager -o cat | grep -v '^$'
$R install --config $C /srv/v2.0.rb; echo "STEP install-b $?"
boot ringil-b-2.0
echo "STEP mark-bad starting"
systemctl start ringil-mark-bad.service   # returns when the reboot job cancels it
sleep 60
echo "STEP no-reboot"
systemctl poweroff
"""

DRIVER_UNIT = "[Unit]\nAfter=multi-user.target\n[Service]\nType=oneshot\nExecStart=/srv/driver.sh\n"

# In a private mount namespace: a throwaway overlay of the host's root (writes land in a tmpfs), booted
# with systemd-nspawn. nspawn insists that /run/systemd/nspawn is a tmpfs: one is mounted there, privately.
RUN_NSPAWN = r"""#!/bin/sh
set -e
T=$1; shift
mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn
mkdir -p "$T/ov" && mount -t tmpfs tmpfs "$T/ov" && mkdir -p "$T/ov/upper" "$T/ov/work" "$T/ov/lower" "$T/root"
mount --bind / "$T/ov/lower"
mount -t overlay overlay -o "lowerdir=$T/ov/lower,upperdir=$T/ov/upper,workdir=$T/ov/work" "$T/root"
exec systemd-nspawn -q -D "$T/root" --register=no --keep-unit "$@"
"""


def _w(path: Path, text, mode=0o644):
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    path.chmod(mode)
    return path


@pytest.mark.slow
def test_units_work_under_their_sandbox(ringil, tmp_path):
    for tool in ("systemd-nspawn", "unshare", "systemd-analyze"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (scripts/deps.sh installs systemd-container)")
    if os.geteuid() != 0:
        pytest.skip("booting a systemd container needs root")
    units = {u: configured(u).read_text() for u in UNITS[1:]}
    exec_path = re.search(r"^ExecStart=(\S+) mark-good$", units["ringil-bless.service"], re.M).group(1)

    esp, srv, state, etc = (tmp_path / d for d in ("esp", "srv", "state", "etc-ringil"))
    for d in (esp, srv / "efivars", state, etc, tmp_path / "units"):
        d.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", srv / "db.key",
                    "-out", srv / "db.pem", "-days", "30", "-subj", "/CN=db"], check=True, capture_output=True)
    for v in ("1.0", "2.0"):
        _w(srv / f"img-{v}", os.urandom(20000))
        ringil("bundle", "create", "--key", srv / "db.key", "--cert", srv / "db.pem", "--compatible", "drone-x1",
               "--version", v, "--chunk-size", "4K", "--payload", f"rootfs:raw={srv / f'img-{v}'}",
               "--output", srv / f"v{v}.rb", check=0)
    for s in "ab":
        _w(srv / f"slot-{s}", b"\0" * 20480)
    _w(etc / "device.conf", DEVICE_CONF)
    _w(srv / "health-hook.sh", HEALTH_HOOK, 0o755)
    _w(srv / "driver.sh", DRIVER.replace("@RINGIL@", exec_path).replace("@VENDOR@", VENDOR), 0o755)
    binds = [f"--bind={esp}:/boot", f"--bind={srv}:/srv", f"--bind={state}:/var/lib/ringil",
             f"--bind-ro={etc}:/etc/ringil", f"--bind-ro={binary('ringil')}:{exec_path}"]
    for name, text in units.items():
        binds.append(f"--bind-ro={_w(tmp_path / 'units' / name, text)}:/etc/systemd/system/{name}")
    driver = _w(tmp_path / "units" / "ringil-test-driver.service", DRIVER_UNIT)
    binds.append(f"--bind-ro={driver}:/etc/systemd/system/ringil-test-driver.service")
    runner = _w(tmp_path / "run-nspawn.sh", RUN_NSPAWN, 0o755)
    p = subprocess.run(["unshare", "-m", runner, tmp_path / "mnt", *binds, "-b", "systemd.unit=multi-user.target",
                        "systemd.wants=ringil-test-driver.service"], capture_output=True, timeout=240)
    log = (srv / "result.log").read_text() if (srv / "result.log").exists() else ""
    if "STEP install-a" not in log:
        pytest.skip(f"systemd-nspawn could not boot a container here (exit {p.returncode}): "
                    f"{p.stderr.decode(errors='replace')[-300:]}")
    steps = dict(re.findall(r"^STEP (\S+) ?(\S*)$", log, re.M))
    assert steps.get("install-a") == "0" and steps.get("install-b") == "0", log
    # the health gate: the operator's checks ran and passed, writes outside the sandbox were refused
    assert steps.get("health") == "0", log
    assert "HOOK FAILED" not in log and "HOOK NOT DENIED" not in log, log
    assert log.count("HOOK ok:") == 10 and log.count("HOOK denied:") == 5, log
    # bless: the entry lost its counter on the ESP, the floor went up, the state says good
    assert steps.get("bless") == "0", log
    assert "blessed 1.0" in log
    entries = sorted(x.name for x in (esp / "loader" / "entries").iterdir())
    assert "ringil-a-1.0.conf" in entries, entries
    assert (esp / "loader" / "ringil" / "floor").exists()
    # mark-bad: b's entry spent (+0), and the reboot came from ExecStartPost (the driver never went on)
    assert "ringil-b-2.0+0-1.conf" in entries, entries
    assert "STEP no-reboot" not in log, log
    assert p.returncode == 133, f"container did not reboot (nspawn exit {p.returncode})"
