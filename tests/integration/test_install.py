"""test_install.py: A/B install, systemd-boot boot counting (simulated), bless/rollback, crash consistency,
TOCTOU on the bundle, anti-rollback (also after losing the state dir) and refusals before any write."""
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, binary, run_on_tty

CHUNK = 4096
SLOT_SIZE = 64 * CHUNK + 123          # 65 chunks, the last one short
VENDOR = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
ENTRY_RE = re.compile(r"^(ringil-([ab])-([0-9.]+))(?:\+(\d+)(?:-(\d+))?)?\.conf$")


# ---------------------------------------------------------------- fixtures: PKI, images, bundles

@pytest.fixture(scope="session")
def world(tmp_path_factory, ringil):
    d = tmp_path_factory.mktemp("install-world")
    for name in ("db", "other"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / f"{name}.key",
                        "-out", d / f"{name}.pem", "-days", "30", "-subj", f"/CN={name} key"],
                       check=True, capture_output=True)
    rnd = random.Random(5)
    imgs = {}
    for v in ("0.9", "1.0", "2.0", "3.0"):
        data = bytes(rnd.getrandbits(8) for _ in range(SLOT_SIZE))
        (d / f"img-{v}").write_bytes(data)
        imgs[v] = data

    def make(out, version, compatible="drone-x1", key="db", extra=()):
        ringil("bundle", "create", "--key", d / f"{key}.key", "--cert", d / f"{key}.pem", "--compatible", compatible,
               "--version", version, "--chunk-size", "4K", "--payload", f"rootfs:raw={d / ('img-' + version)}",
               *extra, "--output", d / out, check=0)
        return d / out

    b = {v: make(f"b-{v}.rb", v) for v in imgs}
    b["wrong-compat"] = make("wc.rb", "2.0", compatible="drone-x2")
    b["wrong-key"] = make("wk.rb", "2.0", key="other")
    b["expired"] = make("exp.rb", "2.0", extra=("--created", "2020-01-01", "--valid-for", "1"))
    return {"dir": d, "imgs": imgs, "bundles": b}


# What each real systemd-boot does, as tests/vm/test_loaders.py observed it under OVMF (docs/install.md):
# whether LoaderEntrySelected keeps the +LEFT-DONE counter (the entry's name before the loader renamed it),
# and whether an entry with the `efi` key is counted at all.
LOADERS = {
    "252": dict(id_counter=True, counts_efi=True),     # Debian 12
    "254": dict(id_counter=True, counts_efi=True),     # bookworm-backports
    "257": dict(id_counter=False, counts_efi=True),    # trixie (257.13: counter stripped, backported fix)
    "262": dict(id_counter=False, counts_efi=False),   # forky: only linux/uki/Type #2 entries are counted
}


class Device:
    """File-backed slots, a directory ESP and efivarfs, and a Python model of systemd-boot (one of LOADERS)."""

    def __init__(self, root: Path, world, ringil, extra_conf="", loader="262"):
        self.root, self.world, self.ringil = root, world, ringil
        self.loader = LOADERS[loader]
        self.esp, self.efi, self.state = root / "esp", root / "efivars", root / "state"
        for p in (self.esp, self.efi):
            p.mkdir(parents=True, exist_ok=True)
        self.slot = {"a": root / "slot-a", "b": root / "slot-b"}
        for p in self.slot.values():
            p.write_bytes(b"\0" * SLOT_SIZE)
        self.conf = root / "device.conf"
        self.conf.write_text(f"""[device]
compatible = drone-x1
keyring = {world['dir'] / 'db.pem'}
esp = {self.esp}
state-dir = {self.state}
efivarfs = {self.efi}
checkpoint = 8K
max-attempts = 100
{extra_conf}
[boot]
linux = /EFI/ringil/vmlinuz
options = root=PARTLABEL=root-@SLOT@ ro
[slot.rootfs.a]
device = {self.slot['a']}
[slot.rootfs.b]
device = {self.slot['b']}
""")

    def run(self, verb, *args, env=None, input=None, check=None):
        return self.ringil(verb, "--config", self.conf, *args, env=env, input=input, check=check)

    def install(self, version_or_path, *args, **kw):
        b = self.world["bundles"].get(version_or_path, version_or_path)
        return self.run("install", *args, b, **kw)

    def status(self):
        return json.loads(self.run("status", "--json", check=0).out)

    def entries(self):
        d = self.esp / "loader" / "entries"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    # systemd-boot, as src/boot/efi/boot.c does it: sort (0 tries last, then sort-key, version desc, id
    # desc), pick the first entry matching loader.conf's default glob, bump its counter by renaming.
    def boot_order(self):
        es = []
        for name in self.entries():
            m = ENTRY_RE.match(name)
            assert m, f"foreign file in entries: {name}"
            left = int(m.group(4)) if m.group(4) is not None else -1
            done = int(m.group(5)) if m.group(5) is not None else -1
            text = (self.esp / "loader" / "entries" / name).read_text()
            ver = re.search(r"^version (\S+)$", text, re.M).group(1)
            es.append(dict(file=name, id=m.group(1) + ".conf", slot=m.group(2), version=ver, left=left, done=done))
        vkey = lambda e: tuple(int(x) for x in e["version"].split("."))
        es.sort(key=lambda e: (e["left"] == 0, tuple(-x for x in vkey(e)), [-ord(c) for c in e["id"]]))
        return es

    def default_entry(self):
        es = self.boot_order()
        var = self.efi / f"LoaderEntryDefault-{VENDOR}"
        if var.exists():
            # An exact id overrides loader.conf and is taken even with 0 tries left (config_entry_find).
            want = var.read_bytes()[4:].decode("utf-16-le").rstrip("\0")
            for e in es:
                if (e["file"] if self.loader["id_counter"] else e["id"]) == want:
                    return e
        conf = self.esp / "loader" / "loader.conf"
        pat = None
        if conf.exists():
            for line in conf.read_text().splitlines():
                if line.startswith("default "):
                    pat = line.split(None, 1)[1].strip()
        for e in es:
            if pat and fnmatch.fnmatchcase(e["id"], pat):
                return e
        return es[0] if es else None

    def boot(self):
        """One boot as the modelled loader does it: pick the default, count it if this loader counts its kind
        (renaming the file and setting LoaderBootCountPath), report LoaderEntrySelected its way."""
        e = self.default_entry()
        assert e, "nothing to boot"
        d = self.esp / "loader" / "entries"
        text = (d / e["file"]).read_text()
        kind = "efi" if re.search(r"^efi ", text, re.M) else "linux"
        counted = e["left"] >= 0 and (kind != "efi" or self.loader["counts_efi"])
        count_path = self.efi / f"LoaderBootCountPath-{VENDOR}"
        if count_path.exists():
            count_path.unlink()   # volatile: set anew on each counted boot
        if counted:
            new = f"{e['id'][:-5]}+{max(e['left'] - 1, 0)}-{e['done'] + 1 if e['done'] >= 0 else 1}.conf"
            (d / e["file"]).rename(d / new)
            self.write_var("LoaderBootCountPath", f"\\loader\\entries\\{new}")
        self.select(e["file"] if self.loader["id_counter"] else e["id"])
        e["counted"] = counted
        return e

    def write_var(self, name, value):
        raw = (6).to_bytes(4, "little") + (value + "\0").encode("utf-16-le")
        (self.efi / f"{name}-{VENDOR}").write_bytes(raw)

    def select(self, entry_id):
        raw = (7).to_bytes(4, "little") + (entry_id + "\0").encode("utf-16-le")
        (self.efi / f"LoaderEntrySelected-{VENDOR}").write_bytes(raw)

    def slot_is(self, slot, version):
        return self.slot[slot].read_bytes() == self.world["imgs"][version]

    def assert_default_complete(self):
        """The invariant after any crash: the default entry boots a complete, verified slot."""
        e = self.default_entry()
        assert e is not None
        assert self.slot_is(e["slot"], e["version"]), f"default {e['file']} names an incomplete slot"
        return e

    def snapshot(self):
        files = {}
        for base in (self.esp, self.state, self.root / "slot-a", self.root / "slot-b"):
            paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
            for p in paths:
                files[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        return files


@pytest.fixture
def dev(tmp_path, world, ringil):
    return Device(tmp_path / "dev", world, ringil)


@pytest.fixture(params=sorted(LOADERS))
def ldev(request, tmp_path, world, ringil):
    """The same device under each modelled loader version."""
    return Device(tmp_path / "dev", world, ringil, loader=request.param)


def provision(dev, version="1.0"):
    """First install into slot a, booted once and blessed: the state of a freshly flashed drone."""
    dev.install(version, "--slot", "a", check=0)
    assert dev.boot()["slot"] == "a"
    dev.run("mark-good", check=0)


# ---------------------------------------------------------------- behaviour

def test_readme_walkthrough_works_on_a_fresh_device(dev):
    """The README's install lines, in their order, on a fresh device: the first install names its slot
    (nothing blessed, booted slot unknown: never guessed), every later one does not need to."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## What it does, in the seed's order", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    steps = [line.split("#")[0].split() for line in block.splitlines()
             if re.match(r"ringil (install|mark-good)\b", line) and "g3.rb" not in line]
    assert steps[0][:2] == ["ringil", "install"] and "--slot" in steps[0], steps
    # without --slot, the first install says what to do
    before = dev.snapshot()
    p = dev.install("1.0")
    assert p.returncode == 11 and "first install on this device" in p.err and "--slot a" in p.err, p.err
    assert dev.snapshot() == before
    versions = iter(["1.0", "2.0"])
    for args in steps:
        if args[1] == "install":
            extra = args[2:-1]
            p = dev.install(next(versions), *extra)
            assert p.returncode == 0, (args, p.err)
            dev.boot()   # "reboot": systemd-boot tries the new entry
        else:
            dev.run("mark-good", check=0)
    assert dev.status()["booted"] == "b" and dev.slot_is("b", "2.0")


def test_happy_path_a_to_b_and_bless(ldev):
    dev = ldev
    provision(dev)
    assert dev.entries() == ["ringil-a-1.0.conf"]
    assert dev.status()["floor"] == "1.0"
    p = dev.install("2.0", check=0)
    assert "into slot b: 65 chunks written, 0 already done" in p.out
    assert dev.slot_is("b", "2.0") and dev.slot_is("a", "1.0")
    assert "ringil-b-2.0+3.conf" in dev.entries()
    assert (dev.esp / "loader" / "loader.conf").read_text() == "default ringil-*\n"
    s = dev.status()
    assert s["slots"]["b"]["state"] == "pending" and s["slots"]["b"]["tries_left"] == 3
    assert s["default_entry"] == "ringil-b-2.0+3.conf" and s["floor"] == "1.0"

    e = dev.boot()
    assert e["slot"] == "b" and "ringil-b-2.0+2-1.conf" in dev.entries()
    sel = (dev.efi / f"LoaderEntrySelected-{VENDOR}").read_bytes()[4:].decode("utf-16-le").rstrip("\0")
    assert sel == ("ringil-b-2.0+3.conf" if dev.loader["id_counter"] else "ringil-b-2.0.conf")
    dev.run("mark-good", check=0)
    assert "ringil-b-2.0.conf" in dev.entries()
    s = dev.status()
    assert s["booted"] == "b" and s["slots"]["b"]["state"] == "good" and s["floor"] == "2.0"
    assert s["phase"] == "idle" and not s["rollback"] and s["last_error"] is None
    # Next update goes to a, and a blessed b stays the fallback.
    dev.install("3.0", check=0)
    assert dev.boot()["slot"] == "a" and dev.slot_is("a", "3.0")


def test_bad_slot_counts_down_and_rolls_back(ldev):
    dev = ldev
    provision(dev)
    dev.install("2.0", check=0)
    seen = []
    for _ in range(3):   # the new slot never reaches boot-complete.target: no mark-good
        e = dev.boot()
        assert e["slot"] == "b"
        seen.append(next(n for n in dev.entries() if n.startswith("ringil-b")))
    assert seen == ["ringil-b-2.0+2-1.conf", "ringil-b-2.0+1-2.conf", "ringil-b-2.0+0-3.conf"]
    e = dev.boot()   # out of tries: systemd-boot sorts it last and falls back
    assert e["slot"] == "a" and e["file"] == "ringil-a-1.0.conf"
    s = dev.status()
    assert s["rollback"] is True and s["slots"]["b"]["state"] == "bad" and s["booted"] == "a"
    assert s["floor"] == "1.0"
    dev.run("mark-good", check=0)
    s = dev.status()
    assert s["rollback"] is True and s["last_error"].startswith("rollback: slot b (2.0)")
    assert s["floor"] == "1.0" and s["phase"] == "idle"
    assert dev.boot()["slot"] == "a"   # and it stays there: no boot loop
    # A fixed release installs over the bad slot.
    dev.install("3.0", check=0)
    assert dev.boot()["slot"] == "b"


def test_mark_bad_switches_to_other_slot(ldev):
    dev = ldev
    provision(dev)
    dev.install("2.0", check=0)
    assert dev.boot()["slot"] == "b"
    dev.run("mark-bad", check=0)
    assert dev.status()["slots"]["b"]["state"] == "bad"
    assert dev.status()["efivar_default_override"] is None
    raw = (7).to_bytes(4, "little") + "ringil-b-2.0.conf\0".encode("utf-16-le")
    (dev.efi / f"LoaderEntryDefault-{VENDOR}").write_bytes(raw)
    assert dev.status()["efivar_default_override"] == "ringil-b-2.0.conf"
    assert "overrides loader.conf" in dev.run("status", check=0).out
    (dev.efi / f"LoaderEntryDefault-{VENDOR}").unlink()
    assert dev.boot()["slot"] == "a"
    assert dev.status()["floor"] == "1.0"


def test_install_progress_on_stderr(dev, world):
    """A line per payload off a terminal, a redrawn meter on one, nothing with --quiet; stdout unchanged."""
    provision(dev)
    p = dev.install("2.0", check=0)
    assert p.out.startswith("installed 2.0 into slot b")
    assert re.search(r"^ringil: writing 'rootfs' to slot b: 256 KiB in \d+\.\d s( \(.+/s\))?$", p.err, re.M), p.err
    dev.boot()
    dev.run("mark-good", check=0)
    p = dev.install("3.0", "--quiet", check=0)
    assert p.err == "" and p.out.startswith("installed 3.0 into slot a")
    json.loads(dev.run("status", "--json", check=0).out)   # JSON on stdout, nothing else there
    dev.boot()
    dev.run("mark-good", check=0)
    rc, out, tty = run_on_tty([dev.ringil.exe, "install", "--config", dev.conf, world["bundles"]["2.0"]])
    assert rc == 7   # 2.0 is below the floor now: refused before any write, so no meter at all
    assert "writing" not in tty and "not above the floor" in tty
    fresh = Device(dev.root.parent / "fresh", world, dev.ringil)
    rc, out, tty = run_on_tty([fresh.ringil.exe, "install", "--config", fresh.conf, "--slot", "a",
                               world["bundles"]["1.0"]])
    assert rc == 0 and out.startswith("installed 1.0 into slot a")
    assert "\r\x1b[Kringil: writing 'rootfs' to slot a: 0 B of 256 KiB (0%)" in tty, repr(tty)


def test_stream_from_stdin(dev, world):
    provision(dev)
    p = dev.run("install", "-", input=world["bundles"]["2.0"].read_bytes(), check=0)
    assert "65 chunks written" in p.out and dev.slot_is("b", "2.0")


# ---------------------------------------------------------------- refused before any write

@pytest.mark.parametrize("which,code", [("wrong-compat", 8), ("expired", 6), ("wrong-key", 5)])
def test_refused_before_any_write(dev, which, code):
    provision(dev)
    before = dev.snapshot()
    p = dev.install(which)
    assert p.returncode == code, p.err
    assert dev.snapshot() == before


def test_older_bundle_refused_even_after_state_dir_lost(dev):
    provision(dev)
    dev.install("2.0", check=0)
    dev.boot()
    dev.run("mark-good", check=0)
    before = dev.snapshot()
    assert dev.install("1.0").returncode == 7   # same-age and older: not above the floor
    assert dev.install("2.0").returncode == 7
    assert dev.snapshot() == before
    shutil.rmtree(dev.state)
    before = dev.snapshot()
    p = dev.install("0.9", "--slot", "a")
    assert p.returncode == 7 and "floor 2.0" in p.err
    assert dev.snapshot() == before
    assert dev.status()["floor"] == "2.0"


def test_tampered_bundle_and_bad_config(dev, world, tmp_path):
    provision(dev)
    bad = tmp_path / "bad.rb"
    data = bytearray(world["bundles"]["2.0"].read_bytes())
    data[200] ^= 1   # inside the signed manifest
    bad.write_bytes(bytes(data))
    before = dev.snapshot()
    assert dev.install(bad).returncode in (3, 4)
    assert dev.snapshot() == before
    dev.conf.write_text(dev.conf.read_text() + "[device]\n")
    assert dev.install("2.0").returncode == 3


# ---------------------------------------------------------------- resume and TOCTOU

def payload_offset(bundle: Path, img: bytes, chunk: int) -> int:
    """Where chunk `chunk` of the image sits in the bundle file (payload bytes are stored as is)."""
    blob = bundle.read_bytes()
    off = blob.find(img[chunk * CHUNK:(chunk + 1) * CHUNK])
    assert off > 0
    return off


def crash_points(dev, version):
    p = dev.ringil("-v", "install", "--config", dev.conf, dev.world["bundles"][version],
                   env={"RINGIL_TEST_CRASH_AT": "1000000000"}, check=0)
    return re.findall(r"crash point (\d+): (.*)", p.err)


def test_cut_between_entry_and_state_then_boot_and_bless(dev):
    """The power goes after the new entry is in place but before the state says pending: the loader boots
    the new (complete) slot, and mark-good must bless it rather than leave the install half-recorded."""
    provision(dev)
    probe = Device(dev.root.parent / "probe", dev.world, dev.ringil)
    provision(probe)
    pts = crash_points(probe, "2.0")
    k = next(int(n) for n, what in reversed(pts) if what == "ESP file renamed")
    p = dev.install("2.0", env={"RINGIL_TEST_CRASH_AT": str(k)})
    assert p.returncode == -9
    assert dev.status()["phase"] == "writing" and "ringil-b-2.0+3.conf" in dev.entries()
    assert dev.boot()["slot"] == "b" and dev.slot_is("b", "2.0")
    dev.run("mark-good", check=0)
    s = dev.status()
    assert s["phase"] == "idle" and s["slots"]["b"]["state"] == "good" and s["floor"] == "2.0", s


def test_resume_does_not_rewrite_verified_chunks(dev):
    provision(dev)
    p = dev.install("2.0", env={"RINGIL_TEST_CRASH_AT": "60"})
    assert p.returncode == -9
    st = dev.status()
    assert st["phase"] == "writing" and st["slots"]["b"]["state"] == "incomplete"
    assert "ringil-b" not in " ".join(dev.entries())
    written_before = st["chunk_writes"]
    p = dev.install("2.0", check=0)
    m = re.search(r"(\d+) chunks written, (\d+) already done \(resumed\)", p.out)
    assert m, p.out
    again, skipped = int(m.group(1)), int(m.group(2))
    assert skipped > 10 and again + skipped == 65
    # Every chunk is written once, plus at most the ones after the last checkpoint (8K = 2 chunks).
    assert dev.status()["chunk_writes"] <= 65 + 2
    assert dev.status()["chunk_writes"] == written_before + again
    assert dev.slot_is("b", "2.0")


def test_rerun_without_progress_is_not_called_resumed(dev):
    """Killed before the first checkpoint: the rerun writes everything and does not claim a resume."""
    provision(dev)
    points = crash_points(dev, "2.0")
    first_write = next(int(n) for n, what in points if what == "chunk write")
    dev = Device(dev.root.parent / "dev2", dev.world, dev.ringil)
    provision(dev)
    assert dev.install("2.0", env={"RINGIL_TEST_CRASH_AT": str(first_write)}).returncode == -9
    assert dev.status()["phase"] == "writing"
    p = dev.install("2.0", check=0)
    assert "65 chunks written, 0 already done;" in p.out and "resumed" not in p.out, p.out


def test_different_bundle_starts_clean(dev):
    provision(dev)
    assert dev.install("2.0", env={"RINGIL_TEST_CRASH_AT": "60"}).returncode == -9
    p = dev.install("3.0", check=0)
    assert "65 chunks written, 0 already done" in p.out and "resumed" not in p.out
    assert dev.slot_is("b", "3.0")


def test_bundle_modified_between_runs(dev, world, tmp_path):
    provision(dev)
    b = tmp_path / "b.rb"
    shutil.copy(world["bundles"]["2.0"], b)
    assert dev.install(b, env={"RINGIL_TEST_CRASH_AT": "40"}).returncode == -9
    done = dev.status()
    off = payload_offset(b, world["imgs"]["2.0"], 50)
    with open(b, "r+b") as f:   # flip a byte of chunk 50 under the resuming installer
        f.seek(off + 7)
        c = f.read(1)
        f.seek(off + 7)
        f.write(bytes([c[0] ^ 0x40]))
    before_slot = dev.slot["b"].read_bytes()
    p = dev.install(b)
    assert p.returncode == 9, p.err
    after = dev.slot["b"].read_bytes()
    # Chunks before the flipped one were written; the flipped chunk and everything after were not.
    assert after[50 * CHUNK:] == before_slot[50 * CHUNK:]
    assert after[50 * CHUNK:51 * CHUNK] != world["imgs"]["2.0"][50 * CHUNK:51 * CHUNK]
    st = dev.status()
    assert "hash mismatch" in st["last_error"] and st["phase"] == "writing"
    assert st["chunk_writes"] > done["chunk_writes"]
    assert dev.default_entry()["slot"] == "a"
    dev.assert_default_complete()


def test_bundle_modified_while_streaming(dev, world):
    """Bytes flipped in the stream after the installer started reading (RAUC CVE-2020-25860)."""
    provision(dev)
    data = bytearray(world["bundles"]["2.0"].read_bytes())
    off = payload_offset(world["bundles"]["2.0"], world["imgs"]["2.0"], 30)
    data[off + 100] ^= 1
    p = dev.run("install", "-", input=bytes(data))
    assert p.returncode == 9
    slot = dev.slot["b"].read_bytes()
    assert slot[:30 * CHUNK] == world["imgs"]["2.0"][:30 * CHUNK]
    assert slot[30 * CHUNK:] == b"\0" * (SLOT_SIZE - 30 * CHUNK)   # nothing unverified written
    assert dev.default_entry()["slot"] == "a"


def first_point(dev, what):
    """The crash point number of the first `what` of an install of 2.0 on a fresh copy of dev's device."""
    probe = Device(dev.root.parent / f"probe-{what.replace(' ', '-')}", dev.world, dev.ringil)
    provision(probe)
    return next(int(n) for n, w in crash_points(probe, "2.0") if w == what)


def test_retry_loop_is_bounded(dev, world):
    """A run that dies at the same place every time, before anything more is durable (a bad sector, a
    kernel that kills the machine there), is refused after max-attempts such runs in a row: no endless
    reboot-and-rewrite loop. A different bundle starts over."""
    provision(dev)
    k = first_point(dev, "chunk write")
    dev.conf.write_text(dev.conf.read_text().replace("max-attempts = 100", "max-attempts = 2"))
    for stalls in (1, 2):
        assert dev.install("2.0", env={"RINGIL_TEST_CRASH_AT": str(k)}).returncode == -9
        assert dev.status()["stalls"] == stalls
    before = dev.snapshot()
    p = dev.install("2.0")
    assert p.returncode == 11 and "gave up on 2.0: 2 runs in a row added nothing durable" in p.err, p.err
    assert "max-attempts" in dev.status()["last_error"]
    assert {k: v for k, v in dev.snapshot().items() if "install.state" not in k} == \
        {k: v for k, v in before.items() if "install.state" not in k}   # the slot untouched
    assert dev.install("2.0").returncode == 11                        # and it stays refused
    assert dev.default_entry()["slot"] == "a"
    assert dev.install("3.0").returncode == 0   # a different bundle starts over


def test_power_cut_again_and_again_never_gives_up_a_good_update(dev, world, tmp_path):
    """The power goes far more often than max-attempts during one install: a run that made one more
    checkpoint durable is not stuck, so the drone resumes every time and finishes. (The old bound counted
    runs and refused this good update for good after max-attempts cuts.)"""
    provision(dev)
    dev.conf.write_text(dev.conf.read_text().replace("max-attempts = 100", "max-attempts = 2"))
    cuts = 8
    for i in range(cuts):
        # Where this run will pass its first checkpoint (the state written after the first slot fsync),
        # learnt from a copy of the device as it is now.
        pts = crash_points(relocate(dev, tmp_path / f"probe-{i}"), "2.0")
        fsync = next(j for j, (_, w) in enumerate(pts) if w == "slot fsync")
        k = next(int(n) for n, w in pts[fsync:] if w == "state written")
        assert dev.install("2.0", env={"RINGIL_TEST_CRASH_AT": str(k)}).returncode == -9
        st = dev.status()
        assert st["phase"] == "writing" and st.get("stalls", 0) == 0 and st["attempts"] == i + 1, st
        dev.assert_default_complete()
    p = dev.install("2.0", check=0)
    assert p.returncode == 0 and "(resumed)" in p.out, p.err
    st = dev.status()
    assert st["phase"] == "pending" and st["attempts"] == cuts + 1 and st["stalls"] == 0, st
    assert dev.slot_is("b", "2.0") and dev.boot()["slot"] == "b"


def test_crash_consistency_at_50_plus_points(tmp_path, world, ringil):
    """kill -9 at sampled crash points of an install of 3.0 over a pending, never-booted 2.0 in slot b
    (the hard case: b's old entry sorts first, so it must be gone before b's first byte changes)."""
    template = Device(tmp_path / "template", world, ringil)
    provision(template)
    template.install("2.0", check=0)
    assert template.default_entry()["file"] == "ringil-b-2.0+3.conf"
    points = crash_points(relocate(template, tmp_path / "probe"), "3.0")
    kinds = {w for _, w in points}
    assert {"chunk write", "slot fsync", "state write", "state written", "ESP file write", "ESP file renamed",
            "ESP unlink"} <= kinds, kinds
    n = len(points)
    assert n >= 60, n
    picks = sorted(random.Random(42).sample(range(1, n + 1), min(n, 60)) + [1, n])
    for k in picks:
        d = relocate(template, tmp_path / f"crash-{k}")
        p = d.install("3.0", env={"RINGIL_TEST_CRASH_AT": str(k)})
        assert p.returncode == -9, f"crash point {k} did not fire: {p.err}"
        e = d.assert_default_complete()
        assert (e["slot"], e["version"]) in (("a", "1.0"), ("b", "2.0"), ("b", "3.0")), e
        p = d.install("3.0", check=0)
        assert d.slot_is("b", "3.0")
        e = d.boot()
        assert e["slot"] == "b" and e["version"] == "3.0", f"after crash {k}: {e}"
        d.run("mark-good", check=0)
        assert d.status()["floor"] == "3.0"
        shutil.rmtree(d.root)


def relocate(template, new_root):
    """A copy of a provisioned device (paths in device.conf and the floor copy follow the move)."""
    shutil.copytree(template.root, new_root)
    d = Device.__new__(Device)
    d.__dict__.update(template.__dict__)
    d.root = new_root
    d.esp, d.efi, d.state = new_root / "esp", new_root / "efivars", new_root / "state"
    d.slot = {"a": new_root / "slot-a", "b": new_root / "slot-b"}
    d.conf = new_root / "device.conf"
    d.conf.write_text(d.conf.read_text().replace(str(template.root), str(new_root)))
    return d


# ---------------------------------------------------------------- CLI surface and units

def test_usage_and_units(ringil, dev):
    for verb in ("install", "mark-good", "mark-bad", "status", "health"):
        p = ringil(verb, "--help", check=0)
        assert p.out.startswith(f"Usage: ringil {verb}") and "Exit codes:" in p.out
    assert ringil("install", "--config", dev.conf).returncode == 2
    assert ringil("install", "--config", dev.conf, "--slot", "c", "x").returncode == 2
    assert ringil("status", "--config", "/nonexistent/device.conf").returncode == 12
    # The units as the build configures them for installation (absolute paths from the prefix).
    from conftest import BUILD
    health = (BUILD / "ringil-health.service").read_text()
    bless = (BUILD / "ringil-bless.service").read_text()
    assert "Before=boot-complete.target" in health and "RequiredBy=boot-complete.target" in health
    assert "After=boot-complete.target" in bless
    assert re.search(r"^ExecStart=/\S*/bin/ringil mark-good$", bless, re.M)
    assert re.search(r"^ExecStart=/\S*/bin/ringil health$", health, re.M)


def test_mark_good_needs_booted_entry(dev):
    provision(dev)
    (dev.efi / f"LoaderEntrySelected-{VENDOR}").unlink()
    for verb in ("mark-good", "mark-bad"):
        p = dev.run(verb)
        # What is missing, where it was looked for, what to do; a refusal (11), not a bare ENOENT.
        assert p.returncode == 11, p.err
        assert f"no LoaderEntrySelected-{VENDOR} in {dev.efi}" in p.err and "--booted ENTRY" in p.err
        assert "No such file" not in p.err
    assert dev.run("mark-good", "--booted", "nixos-generation-3.conf").returncode == 11
    # The id in any form a loader or an operator gives it: with or without counter and suffix.
    for form in ("ringil-a-1.0+3.conf", "ringil-a-1.0+2-1", "ringil-a-1.0", "ringil-a-1.0.conf"):
        assert dev.run("mark-good", "--booted", form).returncode == 0, form
    p = dev.run("mark-good", "--booted", "ringil-a-1.0+x.conf")
    assert p.returncode == 11 and "is not a boot counter" in p.err
    p = dev.run("mark-good", "--booted", "ringil-a-9.0.conf")
    assert p.returncode == 11 and "ringil-a-1.0.conf" in p.err
    assert "with or without the" in dev.run("mark-good", "--help", check=0).out
    s = dev.run("status", check=0).out
    assert f"booted:     unknown: no LoaderEntrySelected-{VENDOR} in {dev.efi}" in s
    assert dev.status()["booted_unknown_reason"].startswith("no LoaderEntrySelected")


def test_health_hook(dev, tmp_path):
    hook = tmp_path / "health"
    hook.write_text("#!/bin/sh\n[ \"$RINGIL_PHASE\" = health ] && exit 3\n")
    hook.chmod(0o755)
    assert dev.run("health").returncode == 0
    dev.conf.write_text(dev.conf.read_text().replace("[boot]", f"health-hook = {hook}\n[boot]"))
    assert dev.run("health").returncode == 11


STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")


@pytest.fixture(scope="session")
def ukis(world, ringil, tmp_path_factory):
    """A real PE image (systemd's EFI stub) unsigned, signed with db, and signed with another key."""
    if not STUB.exists():
        pytest.skip("systemd-boot-efi not installed")
    d, out = world["dir"], tmp_path_factory.mktemp("ukis")
    res = {"unsigned": out / "unsigned.efi"}
    shutil.copy(STUB, res["unsigned"])
    for key in ("db", "other"):
        res[key] = out / f"{key}.efi"
        ringil("efi", "sign", "--key", d / f"{key}.key", "--cert", d / f"{key}.pem", "--output", res[key], STUB,
               check=0)
    bundles = {}
    for name, path in res.items():
        bundles[name] = out / f"{name}.rb"
        ringil("bundle", "create", "--key", d / "db.key", "--cert", d / "db.pem", "--compatible", "drone-x1",
               "--version", "2.0", "--chunk-size", "4K", "--payload", f"rootfs:raw={d / 'img-2.0'}",
               "--payload", f"uki:efi={path}", "--output", bundles[name], check=0)
    return res, bundles


def test_signed_uki_lands_on_esp_and_boots(ldev, ukis, world):
    dev = ldev
    images, bundles = ukis
    provision(dev)
    dev.install(bundles["db"], check=0)
    placed = dev.esp / "EFI" / "ringil" / "ringil-b-2.0.efi"
    assert placed.read_bytes() == images["db"].read_bytes()
    entry = (dev.esp / "loader" / "entries" / "ringil-b-2.0+3.conf").read_text()
    # `linux', not `efi': current systemd-boot never counts `efi' entries (tests/vm/test_loaders.py).
    assert "linux /EFI/ringil/ringil-b-2.0.efi\n" in entry and "\nefi " not in entry and "initrd" not in entry
    # The real peer agrees with what we placed.
    if shutil.which("sbverify"):
        subprocess.run(["sbverify", "--cert", world["dir"] / "db.pem", placed], check=True, capture_output=True)
    e = dev.boot()
    assert e["slot"] == "b" and e["counted"], "every loader must count a UKI slot"
    assert "ringil-b-2.0+2-1.conf" in dev.entries()
    assert not list(dev.state.glob("staging-*"))
    dev.run("mark-good", check=0)
    assert dev.status()["slots"]["b"]["state"] == "good"


def test_exact_loader_entry_default_is_refused(tmp_path, world, ringil):
    """LoaderEntryDefault naming a slot entry (bootctl set-default) outranks the glob and is booted with 0
    tries left; with counter-less ids (257.x and later) it keeps matching the spent entry: a bad slot boots
    forever. ringil refuses to install while it is set."""
    dev = Device(tmp_path / "dev", world, ringil, loader="262")
    provision(dev)
    dev.install("2.0", check=0)
    dev.write_var("LoaderEntryDefault", "ringil-b-2.0.conf")
    for _ in range(6):
        assert dev.boot()["slot"] == "b"          # 3 tries spent, and still b: never falls back
    assert "ringil-b-2.0+0-6.conf" in dev.entries()   # "keeps on increasing the tries done counter" (40192)
    before = dev.snapshot()
    p = dev.install("3.0", "--booted", "ringil-a-1.0.conf")
    assert p.returncode == 11 and "LoaderEntryDefault `ringil-b-2.0.conf'" in p.err and "bootctl set-default" in p.err
    assert dev.snapshot() == before


def test_efi_key_entry_is_never_counted_on_current_loaders(tmp_path, world, ringil):
    """Why UKIs go under `linux': an `efi` entry (what ringil wrote before) that fails is retried forever by
    systemd-boot 262, never renamed, never falling back to the blessed slot."""
    dev = Device(tmp_path / "dev", world, ringil, loader="262")
    provision(dev)
    d = dev.esp / "loader" / "entries"
    (d / "ringil-b-2.0+3.conf").write_text("title x\nsort-key ringil\nversion 2.0\nefi /EFI/ringil/ringil-b-2.0.efi\n")
    for _ in range(5):
        e = dev.boot()
        assert e["slot"] == "b" and not e["counted"]
    assert "ringil-b-2.0+3.conf" in dev.entries()


@pytest.mark.parametrize("which,code", [("unsigned", 4), ("other", 5)])
def test_uki_failing_authenticode_never_reaches_esp(dev, ukis, which, code):
    images, bundles = ukis
    provision(dev)
    esp_before = {p: p.read_bytes() for p in dev.esp.rglob("*") if p.is_file()}
    p = dev.install(bundles[which])
    assert p.returncode == code, p.err
    assert "Authenticode" in p.err
    assert {p: p.read_bytes() for p in dev.esp.rglob("*") if p.is_file()} == esp_before
    assert not (dev.esp / "EFI").exists()
    assert dev.default_entry()["slot"] == "a"
    assert "Authenticode" in dev.status()["last_error"]


def test_pre_install_hook_can_veto(dev, tmp_path):
    provision(dev)
    hook = tmp_path / "pre"
    hook.write_text("#!/bin/sh\n[ \"$RINGIL_PHASE\" = pre-install ] && [ \"$RINGIL_SLOT\" = b ] && exit 1\nexit 0\n")
    hook.chmod(0o755)
    dev.conf.write_text(dev.conf.read_text().replace("[boot]", f"pre-install-hook = {hook}\n[boot]"))
    slot_before = dev.slot["b"].read_bytes()
    p = dev.install("2.0")
    assert p.returncode == 11 and "pre-install hook" in p.err
    assert dev.slot["b"].read_bytes() == slot_before
    assert dev.default_entry()["slot"] == "a"


# ---------------------------------------------------------------- security review regressions

def drop_selected(dev):
    (dev.efi / f"LoaderEntrySelected-{VENDOR}").unlink()


def test_unknown_booted_slot_is_never_guessed(dev):
    """Booted into a pending b with efivarfs gone: the state's good slot (a) must not be taken for the
    booted one, which would make the running b the target."""
    provision(dev)
    dev.install("2.0", check=0)
    assert dev.boot()["slot"] == "b"
    drop_selected(dev)
    before = dev.snapshot()
    p = dev.install("3.0")
    assert p.returncode == 11, p.err
    assert "LoaderEntrySelected" in p.err and "--booted" in p.err
    assert dev.snapshot() == before and dev.slot_is("b", "2.0") and dev.slot_is("a", "1.0")
    # --slot is first provisioning only: a blessed slot exists, so it does not bypass the check.
    p = dev.install("3.0", "--slot", "a")
    assert p.returncode == 11, p.err
    assert dev.snapshot() == before
    # Told what is booted, the installer applies its normal rules (b is not blessed: refused) ...
    p = dev.install("3.0", "--booted", "ringil-b-2.0.conf")
    assert p.returncode == 11 and "not blessed" in p.err
    assert dev.snapshot() == before
    # ... and once b is blessed, the update goes to a.
    dev.run("mark-good", "--booted", "ringil-b-2.0.conf", check=0)
    assert "into slot a" in dev.install("3.0", "--booted", "ringil-b-2.0.conf", check=0).out
    assert dev.slot_is("a", "3.0") and dev.slot_is("b", "2.0")


def test_no_install_from_an_unblessed_slot(dev):
    """Booted into a pending b: a is the last blessed slot and must survive; installing over it and then
    blessing b would also have marked the new a bad with a false rollback."""
    provision(dev)
    dev.install("2.0", check=0)
    assert dev.boot()["slot"] == "b"
    before = dev.snapshot()
    for args in ((), ("--slot", "a")):
        p = dev.install("3.0", *args)
        assert p.returncode == 11, p.err
        assert "slot b is pending, not blessed" in p.err
        assert dev.snapshot() == before
    assert dev.slot_is("a", "1.0")
    s = dev.status()
    assert s["slots"]["a"]["state"] == "good" and s["phase"] == "pending" and s["last_error"] is None
    dev.run("mark-good", check=0)
    s = dev.status()
    assert s["slots"]["b"]["state"] == "good" and not s["rollback"] and s["last_error"] is None
    dev.install("3.0", check=0)
    assert dev.slot_is("a", "3.0")
    e = dev.boot()
    assert e["slot"] == "a"
    dev.run("mark-good", check=0)
    s = dev.status()
    assert s["slots"]["a"]["state"] == "good" and s["slots"]["b"]["state"] == "good" and not s["rollback"]


def test_bundle_must_cover_every_slot_class(tmp_path, world, ringil):
    d = world["dir"]
    data = {"a": tmp_path / "data-a", "b": tmp_path / "data-b"}
    for p in data.values():
        p.write_bytes(b"\xee" * SLOT_SIZE)
    dev = Device(tmp_path / "dev", world, ringil)
    dev.conf.write_text(dev.conf.read_text() +
                        f"[slot.data.a]\ndevice = {data['a']}\n[slot.data.b]\ndevice = {data['b']}\n")
    before = dev.snapshot()
    p = dev.install("1.0", "--slot", "a")   # rootfs only: data.a would keep stale content under a new entry
    assert p.returncode == 8, p.err
    assert "no raw payload `data'" in p.err
    assert dev.snapshot() == before and dev.entries() == []
    assert data["a"].read_bytes() == b"\xee" * SLOT_SIZE
    both = tmp_path / "both.rb"
    ringil("bundle", "create", "--key", d / "db.key", "--cert", d / "db.pem", "--compatible", "drone-x1",
           "--version", "1.0", "--chunk-size", "4K", "--payload", f"rootfs:raw={d / 'img-1.0'}",
           "--payload", f"data:raw={d / 'img-0.9'}", "--output", both, check=0)
    dev.install(both, "--slot", "a", check=0)
    assert dev.slot_is("a", "1.0") and data["a"].read_bytes() == world["imgs"]["0.9"]
    assert dev.entries() == ["ringil-a-1.0+3.conf"]


# ---------------------------------------------------------------- slot size

def test_payload_larger_than_file_slot_is_refused_before_any_write(dev, world):
    """A slot file one byte too small: refused (exit 3), nothing written, the file does not grow."""
    provision(dev)
    with open(dev.slot["b"], "r+b") as f:
        f.truncate(SLOT_SIZE - 1)
    before = dev.snapshot()
    p = dev.install("2.0")
    assert p.returncode == 3, p.err
    assert "does not fit slot" in p.err and f"({SLOT_SIZE} bytes)" in p.err and f"({SLOT_SIZE - 1} bytes)" in p.err
    assert dev.snapshot() == before
    assert dev.slot["b"].stat().st_size == SLOT_SIZE - 1
    assert "ringil-b" not in " ".join(dev.entries())
    # first provisioning into a small slot: the same refusal, no entry, no state written
    fresh = Device(dev.root.parent / "fresh", world, dev.ringil)
    with open(fresh.slot["a"], "r+b") as f:
        f.truncate(1 << 12)
    before = fresh.snapshot()
    assert fresh.install("1.0", "--slot", "a").returncode == 3
    assert fresh.snapshot() == before and fresh.slot["a"].stat().st_size == 1 << 12
    # a slot larger than the payload is fine and keeps its length
    with open(dev.slot["b"], "r+b") as f:
        f.truncate(2 * SLOT_SIZE)
    dev.install("2.0", check=0)
    assert dev.slot["b"].stat().st_size == 2 * SLOT_SIZE
    assert dev.slot["b"].read_bytes()[:SLOT_SIZE] == world["imgs"]["2.0"]


def losetup(backing):
    p = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return p.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup"), reason="needs root and losetup")
def test_payload_larger_than_block_device_slot_is_refused(dev, world, tmp_path):
    """The same rule for a block device, sized with BLKGETSIZE64 (a loop device over a file)."""
    provision(dev)
    small, big = tmp_path / "small.img", tmp_path / "big.img"
    small.write_bytes(b"\x5a" * (SLOT_SIZE // 512 * 512))          # a few bytes short of the payload
    big.write_bytes(b"\x5a" * ((SLOT_SIZE // 512 + 1) * 512))
    loops = []
    try:
        for img in (small, big):
            loop = losetup(img)
            if not loop:
                pytest.skip("no loop device available")
            loops.append(loop)
        conf = dev.conf.read_text()
        dev.conf.write_text(conf.replace(f"device = {dev.slot['b']}", f"device = {loops[0]}"))
        before = dev.snapshot()
        p = dev.install("2.0")
        assert p.returncode == 3, p.err
        assert "does not fit slot" in p.err and loops[0] in p.err
        assert dev.snapshot() == before and small.read_bytes() == b"\x5a" * (SLOT_SIZE // 512 * 512)
        dev.conf.write_text(conf.replace(f"device = {dev.slot['b']}", f"device = {loops[1]}"))
        dev.install("2.0", check=0)
        with open(loops[1], "rb") as f:
            assert f.read(SLOT_SIZE) == world["imgs"]["2.0"]
    finally:
        for loop in loops:
            subprocess.run(["losetup", "--detach", loop], capture_output=True)


@pytest.fixture(scope="session")
def signers(world, ringil):
    """A signer with the codeSigning EKU next to db (which has none), both trusted by one keyring."""
    d = world["dir"]
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "cs.key", "-out",
                    d / "cs.pem", "-days", "30", "-subj", "/CN=cs key", "-addext", "extendedKeyUsage=codeSigning"],
                   check=True, capture_output=True)
    (d / "both.pem").write_bytes((d / "db.pem").read_bytes() + (d / "cs.pem").read_bytes())
    out = {}
    for key in ("db", "cs"):
        out[key] = d / f"signed-by-{key}.rb"
        ringil("bundle", "create", "--key", d / f"{key}.key", "--cert", d / f"{key}.pem", "--compatible",
               "drone-x1", "--version", "1.0", "--chunk-size", "4K", "--payload", f"rootfs:raw={d / 'img-1.0'}",
               "--output", out[key], check=0)
    return out


@pytest.mark.parametrize("policy,refused,accepted,why", [
    ("require-codesigning = yes", "db", "cs", "lacks the codeSigning extended key usage"),
    ("allowed-signer = cs key", "db", "cs", "signer 'db key' is not an allowed signer"),
    ("require-codesigning = no\nallowed-signer = other key, db key", "cs", "db", "signer 'cs key' is not an allowed"),
])
def test_signer_policy_from_device_conf(tmp_path, world, ringil, signers, policy, refused, accepted, why):
    dev = Device(tmp_path / "dev", world, ringil, extra_conf=policy)
    dev.conf.write_text(dev.conf.read_text().replace(str(world["dir"] / "db.pem"), str(world["dir"] / "both.pem")))
    before = dev.snapshot()
    p = dev.install(signers[refused], "--slot", "a")
    assert p.returncode == 5, p.err
    assert why in p.err
    assert dev.snapshot() == before
    dev.install(signers[accepted], "--slot", "a", check=0)
    assert dev.slot_is("a", "1.0")


def faked(ringil, when, *args):
    """ringil with its clock set back by libfaketime (the sanitizer runtime tolerates the preload)."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    p = subprocess.run(["faketime", when, str(ringil.exe), *map(str, args)], env=env, capture_output=True, timeout=120)
    p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    return p


@pytest.fixture(scope="session")
def old_signer(world, ringil):
    """A signer valid 2019..2029, a current bundle and one that expired on 2020-01-02."""
    if not shutil.which("faketime"):
        pytest.skip("faketime not installed")
    d = world["dir"]
    subprocess.run(["faketime", "2019-06-01 00:00:00", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", d / "old.key", "-out", d / "old.pem", "-days", "3650", "-subj", "/CN=old key"],
                   check=True, capture_output=True)
    b = {}
    for name, version, extra in (("now", "1.0", ()), ("expired", "2.0", ("--created", "2020-01-01", "--valid-for", "1"))):
        b[name] = d / f"old-{name}.rb"
        ringil("bundle", "create", "--key", d / "old.key", "--cert", d / "old.pem", "--compatible", "drone-x1",
               "--version", version, "--chunk-size", "4K", "--payload", f"rootfs:raw={d / ('img-' + version)}",
               *extra, "--output", b[name], check=0)
    return b


def test_clock_set_back_cannot_revive_expired_bundle(tmp_path, world, ringil, old_signer):
    def device(name):
        dev = Device(tmp_path / name, world, ringil)
        dev.conf.write_text(dev.conf.read_text().replace(str(world["dir"] / "db.pem"), str(world["dir"] / "old.pem")))
        return dev

    # Control: on a device with no history, at a clock of 2020-01-01 the bundle is in date and installs.
    fresh = device("fresh")
    p = faked(ringil, "2020-01-01 12:00:00", "install", "--config", fresh.conf, "--slot", "a", old_signer["expired"])
    assert p.returncode == 0, p.err
    assert fresh.slot_is("a", "2.0")

    # A device that installed a current bundle knows the time is at least that bundle's creation.
    dev = device("dev")
    dev.install(old_signer["now"], "--slot", "a", check=0)
    assert dev.boot()["slot"] == "a"
    dev.run("mark-good", check=0)
    before = dev.snapshot()
    p = faked(ringil, "2020-01-01 12:00:00", "install", "--config", dev.conf, old_signer["expired"])
    assert p.returncode == 6, p.err
    assert "expired" in p.err
    assert dev.snapshot() == before
    created = dev.status()["time_floor"]
    assert created and created > 1700000000
    assert f"time-floor {created}\n" in (dev.esp / "loader" / "ringil" / "floor").read_text()
    # Losing the state directory keeps the floor copy on the ESP, and with it the time floor.
    shutil.rmtree(dev.state)
    before = dev.snapshot()
    p = faked(ringil, "2020-01-01 12:00:00", "install", "--config", dev.conf, "--slot", "b", old_signer["expired"])
    assert p.returncode == 6, p.err
    assert dev.snapshot() == before


# ---------------------------------------------------------------- delta installs (chunk reuse, fetch protocol)

import ctypes
import struct

from deltafetch import fetch_install


@pytest.fixture(scope="session")
def delta_world(tmp_path_factory, ringil, world):
    """v1 and v2 images that share most content: v2 = v1 with 300 bytes inserted at 70000 (everything
    after shifts) and one 4 KiB block rewritten, as fixed-chunk and content-defined bundles."""
    d = tmp_path_factory.mktemp("delta-world")
    rnd = random.Random(11)
    v1 = bytes(rnd.getrandbits(8) for _ in range(SLOT_SIZE))
    v2 = bytearray(v1[:70000] + bytes(rnd.getrandbits(8) for _ in range(300)) + v1[70000:])[:SLOT_SIZE]
    v2[200000:204096] = bytes(rnd.getrandbits(8) for _ in range(4096))
    imgs = {"1.0": v1, "2.0": bytes(v2)}
    out = {}
    for v, data in imgs.items():
        (d / f"img-{v}").write_bytes(data)
        for kind, args in (("cdc", ("--chunking", "cdc:4K:8K:16K")), ("fixed", ("--chunk-size", "4K"))):
            p = d / f"{kind}-{v}.rb"
            ringil("bundle", "create", "--key", world["dir"] / "db.key", "--cert", world["dir"] / "db.pem",
                   "--compatible", "drone-x1", "--version", v, *args, "--payload", f"rootfs:raw={d / ('img-' + v)}",
                   "--output", p, check=0)
            out[(kind, v)] = p
    return {"dir": d, "imgs": imgs, "bundles": out}


def delta_device(tmp_path, world, ringil, delta_world, kind="cdc"):
    dev = Device(tmp_path / "ddev", world, ringil)
    dev.install(delta_world["bundles"][(kind, "1.0")], "--slot", "a", check=0)
    assert dev.boot()["slot"] == "a"
    dev.run("mark-good", check=0)
    return dev


def bundle_meta_end(path):
    h = Path(path).read_bytes()[:32]
    return 32 + int.from_bytes(h[16:20], "big") + int.from_bytes(h[20:24], "big")


def slot_has(dev, slot, data):
    return dev.slot[slot].read_bytes()[: len(data)] == data


@pytest.mark.parametrize("kind", ["cdc", "fixed"])
def test_delta_install_fetches_only_missing_chunks(tmp_path, world, ringil, delta_world, kind):
    dev = delta_device(tmp_path, world, ringil, delta_world, kind)
    b = delta_world["bundles"][(kind, "2.0")]
    r = fetch_install(ringil.exe, dev.conf, b, "--full-above", "100")
    assert r.returncode == 0, r.err
    assert slot_has(dev, "b", delta_world["imgs"]["2.0"])
    local, fetch, total, mode = r.plans[0].split()[1:]
    assert mode == "delta" and int(local) + int(fetch) == int(total) == SLOT_SIZE
    fetched = sum(n for _, n in r.payload_ranges)
    print(f"{kind}: fetched {fetched} of {SLOT_SIZE} payload bytes in {len(r.payload_ranges)} ranges")
    if kind == "cdc":
        # the insertion shifts everything after it: content-defined chunks find it again
        assert fetched < SLOT_SIZE // 4, fetched
    else:
        # fixed chunks only find what did not move (before the insertion)
        assert fetched < SLOT_SIZE, fetched
    # ranges are coalesced and ascending, inside the payload
    offs = [o for o, _ in r.payload_ranges]
    assert offs == sorted(offs)
    assert all(a[0] + a[1] < b_[0] for a, b_ in zip(r.payload_ranges, r.payload_ranges[1:]))
    assert "delta:" in r.out
    assert dev.boot()["slot"] == "b"


def test_delta_threshold_gives_one_sequential_download(tmp_path, world, ringil, delta_world):
    dev = delta_device(tmp_path, world, ringil, delta_world, "fixed")
    r = fetch_install(ringil.exe, dev.conf, delta_world["bundles"][("fixed", "2.0")], "--full-above", "0")
    assert r.returncode == 0, r.err
    assert r.plans[0].endswith(" full") and len(r.payload_ranges) == 1
    size = os.path.getsize(delta_world["bundles"][("fixed", "2.0")])
    off, n = r.payload_ranges[0]
    assert off + n == size
    assert slot_has(dev, "b", delta_world["imgs"]["2.0"])


def test_delta_reused_chunk_that_no_longer_hashes_is_fetched(tmp_path, world, ringil, delta_world):
    """The booted slot changes between the scan and the copy (bit rot): that chunk is fetched instead."""
    dev = delta_device(tmp_path, world, ringil, delta_world)
    state = {"done": False}
    meta_end = bundle_meta_end(delta_world["bundles"][("cdc", "2.0")])

    def rot(off, data):
        if not state["done"] and off >= meta_end:
            # the scan is over (the installer asks for the payload's ranges) and the installer waits for
            # the first missing chunk (the insertion at 70000): rot a part of the booted slot it copies later
            with open(dev.slot["a"], "r+b") as f:
                f.seek(120000)
                f.write(bytes(4096))
            state["done"] = True
        return data

    r = fetch_install(ringil.exe, dev.conf, delta_world["bundles"][("cdc", "2.0")], "--full-above", "100", tamper=rot)
    assert state["done"]
    assert r.returncode == 0, r.err
    assert slot_has(dev, "b", delta_world["imgs"]["2.0"])
    m = re.search(r"(\d+) local chunks? failed the hash", r.out)
    assert m and int(m.group(1)) >= 1, r.out
    # the rotten chunk came in a batch of its own, after the planned ranges (which went forward)
    offs = [o for o, _ in r.payload_ranges]
    assert offs != sorted(offs), r.payload_ranges


@pytest.mark.parametrize("how", ["bytes", "length"])
def test_delta_wrong_range_answer_refused_before_write(tmp_path, world, ringil, delta_world, how):
    dev = delta_device(tmp_path, world, ringil, delta_world)
    before = dev.slot["b"].read_bytes()
    hit = {}
    meta_end = bundle_meta_end(delta_world["bundles"][("cdc", "2.0")])

    def bad(off, data):
        if off >= meta_end and not hit:   # the first payload range
            hit["off"] = off
            if how == "bytes":
                return data[:10] + bytes([data[10] ^ 1]) + data[11:]
            return data[1:] + b"\0"       # shifted by one: the answer to another range
        return data

    r = fetch_install(ringil.exe, dev.conf, delta_world["bundles"][("cdc", "2.0")], "--full-above", "100", tamper=bad)
    assert r.returncode == 9, (r.returncode, r.err)
    assert "does not match its signed hash" in r.err
    # nothing of the bad answer reached the slot: it holds no chunk of v2 that is not v2's
    after = dev.slot["b"].read_bytes()
    v2 = delta_world["imgs"]["2.0"]
    assert hit
    bad_bytes = [i for i in range(SLOT_SIZE) if after[i] != before[i] and after[i] != v2[i]]
    assert not bad_bytes, bad_bytes[:10]
    assert dev.status()["booted"] == "a"
    assert not any("-b-" in e for e in dev.entries())


def test_delta_interrupted_resumes(tmp_path, world, ringil, delta_world):
    dev = delta_device(tmp_path, world, ringil, delta_world)
    b = delta_world["bundles"][("cdc", "2.0")]
    r = fetch_install(ringil.exe, dev.conf, b, "--full-above", "100", stop_after=8000)
    assert r.returncode == 3 and "truncated" in r.err, (r.returncode, r.err)
    r2 = fetch_install(ringil.exe, dev.conf, b, "--full-above", "100")
    assert r2.returncode == 0, r2.err
    assert slot_has(dev, "b", delta_world["imgs"]["2.0"])
    e = dev.boot()
    assert e["slot"] == "b" and e["version"] == "2.0"


IN_MODIFY, IN_CLOSE_WRITE, IN_CLOSE_NOWRITE, IN_OPEN = 0x2, 0x8, 0x10, 0x20


def inotify_events(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(65536)
    seen = 0
    while True:
        n = libc.read(fd, buf, len(buf))
        if n <= 0:
            return seen
        pos = 0
        while pos < n:
            _, mask, _, ln = struct.unpack_from("iIII", buf.raw, pos)
            seen |= mask
            pos += 16 + ln


def test_delta_never_opens_the_booted_slot_for_writing(tmp_path, world, ringil, delta_world):
    dev = delta_device(tmp_path, world, ringil, delta_world)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    assert fd >= 0
    wd = libc.inotify_add_watch(fd, str(dev.slot["a"]).encode(), IN_MODIFY | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN)
    assert wd >= 0
    booted = dev.slot["a"].read_bytes()
    inotify_events(fd)   # drop the read above
    r = fetch_install(ringil.exe, dev.conf, delta_world["bundles"][("cdc", "2.0")], "--full-above", "100")
    assert r.returncode == 0, r.err
    seen = inotify_events(fd)
    os.close(fd)
    assert seen & IN_OPEN and seen & IN_CLOSE_NOWRITE, hex(seen)   # it was read (chunks reused from it)
    assert not seen & (IN_CLOSE_WRITE | IN_MODIFY), hex(seen)       # never opened for writing
    assert dev.slot["a"].read_bytes() == booted
    assert int(r.plans[0].split()[1]) > 0


def test_delta_crash_consistency(tmp_path, world, ringil, delta_world):
    """kill -9 at sampled crash points of a delta install (fetch protocol, chunks from both slots); after
    each, the default entry boots a complete slot and a rerun completes."""
    template = delta_device(tmp_path, world, ringil, delta_world)
    b = delta_world["bundles"][("cdc", "2.0")]
    v1, v2 = delta_world["imgs"]["1.0"], delta_world["imgs"]["2.0"]
    probe = relocate(template, tmp_path / "dprobe")
    r = fetch_install(ringil.exe, probe.conf, b, "--full-above", "100",
                      env=dict(os.environ, RINGIL_TEST_CRASH_AT="1000000000", RINGIL_LOG_LEVEL="debug"))
    assert r.returncode == 0, r.err
    n = len(re.findall(r"crash point \d+:", r.err))
    assert n >= 10, r.err
    for k in sorted(set(random.Random(3).sample(range(1, n + 1), min(n, 15)) + [1, n])):
        d = relocate(template, tmp_path / f"dcrash-{k}")
        r = fetch_install(ringil.exe, d.conf, b, "--full-above", "100", env=dict(os.environ, RINGIL_TEST_CRASH_AT=str(k)))
        assert r.returncode == -9, f"crash point {k} did not fire: {r.err}"
        e = d.default_entry()
        assert (e["slot"], e["version"]) in (("a", "1.0"), ("b", "2.0")), e
        assert slot_has(d, e["slot"], v1 if e["version"] == "1.0" else v2), f"default {e} names an incomplete slot"
        r = fetch_install(ringil.exe, d.conf, b, "--full-above", "100")
        assert r.returncode == 0, (k, r.err)
        assert slot_has(d, "b", v2)
        e = d.boot()
        assert (e["slot"], e["version"]) == ("b", "2.0"), f"after crash {k}: {e}"
        shutil.rmtree(d.root)


@pytest.mark.parametrize("kind", ["cdc", "fixed"])
def test_bundle_info_shows_chunk_statistics(ringil, delta_world, kind):
    """`ringil bundle info` names the chunker and its parameters, and the chunk count and sizes as signed."""
    b = delta_world["bundles"][(kind, "2.0")]
    j = json.loads(ringil("bundle", "info", "--json", b, check=0).out)
    p = j["payloads"][0]
    ch = p["chunking"]
    assert ch["chunker"] == kind and ch["count"] == p["chunks"]
    if kind == "cdc":
        assert (ch["min"], ch["avg"], ch["max"]) == (4096, 8192, 16384)
        # every chunk but the last is within min..max; the mean is near avg for random data
        assert ch["largest"] <= 16384 and ch["smallest"] >= 1
        assert 4096 <= ch["mean"] <= 16384 and ch["count"] > SLOT_SIZE // 16384
    else:
        assert ch["size"] == 4096 and ch["largest"] == 4096 and ch["count"] == -(-SLOT_SIZE // 4096)
        assert ch["smallest"] == (SLOT_SIZE % 4096 or 4096)
    assert ch["mean"] == SLOT_SIZE // ch["count"]
    out = ringil("bundle", "info", b, check=0).out
    want = (f"chunker cdc 4096:8192:16384; chunk sizes smallest {ch['smallest']}, mean {ch['mean']}, largest {ch['largest']}"
            if kind == "cdc" else
            f"chunker fixed 4096; chunk sizes smallest {ch['smallest']}, mean {ch['mean']}, largest {ch['largest']}")
    assert want in out, out
