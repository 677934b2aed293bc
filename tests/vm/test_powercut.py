"""test_powercut.py: power cuts during `ringil install` of a 128 MiB payload in the VM. The guest's disk sits
behind a write-back cache (vmlib.WritebackDisk, an NBD server) that loses every write the guest did not flush
when the power goes, which is what a disk with a volatile cache does. qemu is SIGKILLed at random crash points
of the install (logged on the serial line); after every cut the ESP must pass fsck.vfat -n, the default entry
must name a complete, verified slot (and the next boot runs it), and a rerun resumes; the finished slot is
byte-identical to the payload."""
import fnmatch
import random
import re
import subprocess

import pytest

import vmlib
from drone import Drone, slot_image

PAYLOAD = 128 << 20
CUTS = 10
ENTRY = re.compile(r"^ringil-([ab])-([0-9.]+)(?:\+(\d+)(?:-(\d+))?)?\.conf$")


def vkey(v):
    return tuple(int(x) for x in v.split("."))


def default_entry(disk):
    """What systemd-boot will boot: loader.conf's default glob over our entries in its order (0 tries last,
    then newest version)."""
    conf = (disk.esp_get("loader/loader.conf") or b"").decode()
    pat = next((l.split(None, 1)[1].strip() for l in conf.splitlines() if l.startswith("default ")), "*")
    es = []
    for name in disk.esp_ls("loader/entries"):
        m = ENTRY.match(name)
        if m and fnmatch.fnmatchcase(name, pat):
            es.append((m.group(3) == "0", tuple(-x for x in vkey(m.group(2))), name, m.group(1), m.group(2)))
    es.sort()
    return es[0] if es else None


def count_crash_points(env, tmp_path, bundle, size):
    """Run the same install on the host (file slots) to learn how many crash points it passes."""
    d = tmp_path / "count"
    (d / "esp").mkdir(parents=True)
    for s in "ab":
        (d / f"slot-{s}").write_bytes(b"")
        with open(d / f"slot-{s}", "r+b") as f:
            f.truncate(size)
    conf = d / "device.conf"
    conf.write_text(f"[device]\ncompatible = vm-drone\nkeyring = {env.db_pem}\nesp = {d}/esp\nstate-dir = {d}/state\n"
                    f"efivarfs = {d}/ev\ncheckpoint = 8M\n[boot]\nlinux = /vmlinuz\n[slot.rootfs.a]\ndevice = {d}/slot-a\n"
                    f"[slot.rootfs.b]\ndevice = {d}/slot-b\n")
    p = subprocess.run([str(env.ringil), "--verbose", "install", "--config", str(conf), "--slot", "b", str(bundle)],
                       capture_output=True, text=True, env={"RINGIL_TEST_CRASH_AT": "999999999", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    return len(re.findall(r"crash point \d+:", p.stderr))


def test_power_cuts_during_install(env, tmp_path):
    rng = random.Random(13)
    loader = (vmlib.SD_BOOT, vmlib.STUB, vmlib.sdmagic_version(vmlib.SD_BOOT))
    # Every cut is one more `ringil install` run of the same bundle: above the default bound of 5 runs.
    d = Drone(env, tmp_path / "pc", loader, slot_mib=136, name="power cut", max_attempts=CUTS + 2)
    cache = d.vm.writeback_cache()
    v1 = env.bundle(tmp_path / "v1.rb", "1.0", slot_image(tmp_path / "img-1", "1.0"))
    img2 = slot_image(tmp_path / "img-2", "2.0", size=PAYLOAD)
    v2 = env.bundle(tmp_path / "v2.rb", "2.0", img2, chunk="1M")
    payload = img2.read_bytes()
    points = count_crash_points(env, tmp_path, v2, 136 << 20)

    b = d.boot("provision a v1.0", [("install", v1, "a")])
    assert b.marks["install"] == "0", b.tail()
    b = d.boot("boot a, bless", [("bless",)])
    assert b.marks["bless"] == "0", b.tail()

    payloads = {"1.0": (tmp_path / "img-1").read_bytes(), "2.0": payload}
    bundles = {"2.0": v2}

    def next_install(n):
        """The n-th install cut in turn: v2.0 into b, then (once it is in and blessed) v3.0 into a, v4.0 into b,
        … as many as the cuts need (a cut late in a run lets that install finish)."""
        v = f"{n + 2}.0"
        if v not in bundles:
            img = slot_image(tmp_path / f"img-{n + 2}", v, size=PAYLOAD)
            bundles[v] = env.bundle(tmp_path / f"v{v}.rb", v, img, chunk="1M")
            payloads[v] = img.read_bytes()
        return v, bundles[v], "ba"[n % 2]

    def install_step(bundle):
        return ("sh", f"echo @@install-start; RINGIL_TEST_CRASH_AT=999999999 ringil --verbose install /ctl/{bundle.name}; "
                      "rep install $?")

    cuts = []
    chunks = PAYLOAD >> 20
    installs = 0
    version, bundle, target = next_install(installs)
    while len(cuts) < CUTS:
        e = default_entry(d.disk)
        if e[3] == target and e[4] == version:
            # A cut landed after the entry went in: the slot is complete, the loader boots it, mark-good
            # finishes the install's record (also when the state still said writing); the next install
            # goes to the other slot.
            b = d.boot(f"{version} is in: the loader boots slot {target}, bless", [("bless",)])
            assert b.marks["selected"].startswith(f"ringil-{target}-{version}") and b.marks["bless"] == "0", b.tail()
            assert b.status["phase"] == "idle" and b.status["slots"][target]["state"] == "good", b.status
            installs += 1
            version, bundle, target = next_install(installs)
        # A resumed run skips the chunks already durable, so it passes fewer crash points: pick the cut
        # among those this run will pass (the durable progress is read from the state partition).
        st = d.disk.state_file(tmp_path, "/state/install.state") or ""
        m = re.search(r"^progress\.0 = (\d+)$", st, re.M)
        done = int(m.group(1)) if m and "phase = writing" in st and f"version = {version}" in st else 0
        left = max(1, round(points * (chunks - done) / chunks) - 8)
        k = rng.randint(1, left)
        b = d.boot(f"install v{version} (128 MiB, {done} MiB durable), power cut at crash point {k}/{left}",
                   [install_step(bundle)], files={bundle.name: bundle},
                   cut_marker=f"crash point {k}:", cut_after=rng.uniform(0, 0.3), timeout=900)
        # The boot itself ran a complete, verified slot (the one systemd-boot chose).
        sel = ENTRY.match(b.marks["selected"] if b.marks["selected"].endswith(".conf") else b.marks["selected"] + ".conf")
        assert sel, b.tail()
        assert d.disk.read_part(f"slot-{sel.group(1)}", PAYLOAD if sel.group(2) != "1.0" else len(payloads["1.0"])) \
            == payloads[sel.group(2)], f"booted {b.marks['selected']}, an incomplete slot"
        if b.exit_reason != "power-cut":
            pytest.fail(f"install finished before crash point {k} was seen: {b.tail()}")
        clean, out = d.disk.fsck_esp(tmp_path)
        assert clean, f"ESP damaged after the cut at crash point {k}:\n{out}"
        e = default_entry(d.disk)
        assert e is not None, d.disk.esp_ls("loader/entries")
        want = payloads[e[4]]
        assert d.disk.read_part(f"slot-{e[3]}", len(want)) == want, f"default {e[2]} names an incomplete slot"
        cuts.append(dict(install=version, point=k, of=left, chunks_durable_before=done, lost_sectors=b.lost_sectors,
                         default=e[2], seconds=round(b.seconds, 1)))

    e = default_entry(d.disk)
    if e[3] == target and e[4] == version:
        b = d.boot(f"the last cut left {version}'s entry in: slot {target} boots, bless", [("bless",)])
        assert b.marks["bless"] == "0" and b.status["phase"] == "idle", b.tail()
    else:
        b = d.boot("rerun: resumes and completes", [install_step(bundle)], files={bundle.name: bundle}, timeout=900)
        assert b.marks["install"] == "0", b.tail()
        assert re.search(r"[1-9]\d* already done \(resumed\)", b.log), b.tail()
        b = d.boot(f"next boot: the new slot {target}", [("bless",)])
        assert b.marks["selected"].startswith(f"ringil-{target}-{version}") and b.marks["bless"] == "0", b.tail()
    assert d.disk.read_part(f"slot-{target}", PAYLOAD) == payloads[version]
    assert d.disk.fsck_esp(tmp_path)[0]
    print("power cuts:", cuts)
