"""test_nixgen.py: NixOS-generation install mode against a real Nix (Debian nix-bin) and file:// binary caches.

Each device gets its own chroot store (device.conf [nix] store = DIR, `nix --store DIR`), so the
machine's /nix is never written. The test "system" closures are built once per session in another
chroot store by a derivation whose builder is /bin/sh; their bin/switch-to-configuration appends
"$0 $*" to a log file.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NIX = ["nix", "--extra-experimental-features", "nix-command"]
# A build machine here has no nixbld group and no network: build as root without build users, and ask no
# substituter (cache.nixos.org) about anything.
NIX_OFFLINE = ["--option", "build-users-group", "", "--option", "substituters", ""]

pytestmark = pytest.mark.skipif(shutil.which("nix-build") is None or os.geteuid() != 0,
                                reason="needs nix-bin (scripts/deps.sh nix_pkgs) and root")

SYSTEM_NIX = r"""
{ v, log }: derivation {
  name = "nixos-system-drone-${v}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  args = [ "-c" "mkdir -p $out/bin; printf '#!/bin/sh\\necho \"$0 $*\" >> ${log}\\n' > $out/bin/switch-to-configuration; chmod +x $out/bin/switch-to-configuration" ];
}
"""


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw).stdout.strip()


@pytest.fixture(scope="session")
def nixworld(tmp_path_factory, ringil):
    d = tmp_path_factory.mktemp("nixgen")
    build, log = d / "build-store", d / "switch.log"
    (d / "system.nix").write_text(SYSTEM_NIX)
    log.write_text("")
    paths = {}
    for v in ("1.0", "2.0", "3.0"):
        paths[v] = sh("nix-build", "--store", build, *NIX_OFFLINE, "--option", "sandbox-paths", "/bin /lib /lib64 /usr",
                      "--no-out-link", d / "system.nix", "--argstr", "v", v, "--argstr", "log", log)
        assert re.fullmatch(r"/nix/store/[a-z0-9]{32}-nixos-system-drone-" + re.escape(v), paths[v])
    for name in ("fleet", "other"):
        sh("nix-store", "--generate-binary-cache-key", f"{name}-1", d / f"{name}.sk", d / f"{name}.pk")
    caches = {}

    def publish(label):
        caches[label] = d / f"cache-{label}"
        sh(*NIX, "--store", build, "copy", "--to", f"file://{caches[label]}?compression=none", *paths.values())

    publish("unsigned")
    for name in ("other", "fleet"):   # signatures accumulate in the build store: other first
        sh(*NIX, "--store", build, "store", "sign", "--key-file", d / f"{name}.sk", *paths.values())
        publish(name)
    for name in ("db", "other"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / f"{name}.key",
                        "-out", d / f"{name}.pem", "-days", "30", "-subj", f"/CN={name} key"],
                       check=True, capture_output=True)

    def bundle(version, cache="fleet"):
        out = d / f"b-{version}-{cache}.rb"
        if not out.exists():
            ringil("bundle", "create", "--key", d / "db.key", "--cert", d / "db.pem", "--compatible", "drone-x1",
                   "--version", version, "--payload", f"system:nixos={paths[version]}@file://{caches[cache]}",
                   "--output", out, check=0)
        return out

    return {"dir": d, "paths": paths, "log": log, "caches": caches, "bundle": bundle,
            "fleet_pk": (d / "fleet.pk").read_text().strip()}


class Drone:
    def __init__(self, root: Path, w, ringil):
        self.root, self.w, self.ringil = root, w, ringil
        self.store, self.state, self.esp = root / "store", root / "state", root / "esp"
        self.profile, self.current = root / "profiles" / "system", root / "current-system"
        for p in (self.state, self.esp, self.profile.parent):
            p.mkdir(parents=True)
        self.conf = root / "device.conf"
        self.conf.write_text(f"""[device]
compatible = drone-x1
keyring = {w['dir'] / 'db.pem'}
esp = {self.esp}
state-dir = {self.state}

[nix]
profile = {self.profile}
trusted-public-keys = {w['fleet_pk']}
store = {self.store}
current-system = {self.current}
""")

    def run(self, *args, check=None):
        return self.ringil(*args, "-c", self.conf, env={"RINGIL_LOG_LEVEL": "debug"}, check=check)

    def install(self, version, check=0, **kw):
        return self.run("install", self.w["bundle"](version, **kw), check=check)

    def system(self):
        return os.readlink(self.profile.parent / os.readlink(self.profile))

    def in_store(self, version):
        """A valid path of the drone's store (a refused download may leave an unregistered directory)."""
        if not self.store.exists():
            return False
        return subprocess.run(["nix-store", "--store", str(self.store), "--check-validity", self.w["paths"][version]],
                              capture_output=True).returncode == 0

    def boot(self):
        """The boot loader starts the profile's generation: /run/current-system points at it."""
        if self.current.is_symlink():
            self.current.unlink()
        self.current.symlink_to(self.system())

    def log_lines(self):
        return self.w["log"].read_text().splitlines()


@pytest.fixture
def drone(tmp_path, nixworld, ringil):
    return Drone(tmp_path, nixworld, ringil)


def test_happy_path_pending_then_blessed(drone, nixworld):
    before = len(drone.log_lines())
    p = drone.install("1.0")
    assert "running nix-store --store" in p.err
    assert "pending until mark-good" in p.out
    path = nixworld["paths"]["1.0"]
    assert drone.system() == path
    calls = drone.log_lines()[before:]
    assert calls == [f"{drone.store}{path}/bin/switch-to-configuration boot"]
    st = drone.run("status", "--json", check=0).out
    assert '"phase": "pending"' in st and '"generation": "pending"' in st and '"floor": null' in st
    assert f'"system": "{path}"' in st
    # Blessing needs the pending generation to be the running one.
    # (here nothing older exists to fall back to, so an unknown running system is refused)
    drone.current.symlink_to("/nix/store/00000000000000000000000000000000-nixos-system-other")
    drone.run("mark-good", check=11)
    assert drone.system() == path
    drone.boot()
    drone.run("mark-good", check=0)
    st = drone.run("status", "--json", check=0).out
    assert '"phase": "idle"' in st and '"generation": "good"' in st and '"floor": "1.0"' in st
    assert (drone.state / "floor").read_text().startswith("1.0\n")
    # The floor now refuses a re-install of 1.0 before any nix command runs.
    p = drone.install("1.0", check=7)
    assert "running nix" not in p.err


def test_refused_unsigned_narinfo(drone):
    p = drone.install("1.0", cache="unsigned", check=4)
    assert "nix-store --realise" in p.err and "is not signed by any of the keys" in p.err
    assert not drone.in_store("1.0") and not drone.profile.is_symlink()
    assert "refused" in drone.run("status", check=0).out


def test_refused_signed_by_other_key(drone):
    drone.install("1.0", cache="other", check=4)
    assert not drone.in_store("1.0") and not drone.profile.is_symlink()


def test_refused_below_floor_before_any_nix_command(drone, nixworld):
    (drone.state / "floor").write_text("1.5\n")
    before = len(drone.log_lines())
    p = drone.install("1.0", check=7)
    assert "running" not in p.err
    assert not drone.store.exists() and not drone.profile.is_symlink()
    assert drone.log_lines()[before:] == []


def test_refused_tampered_nar(drone, nixworld, tmp_path):
    # A copy of the fleet cache whose NAR for 1.0 has one byte changed (same length): the narinfo and its
    # signature are intact, the content does not match the signed NarHash.
    cache = tmp_path / "cache-tampered"
    shutil.copytree(nixworld["caches"]["fleet"], cache)
    h = nixworld["paths"]["1.0"][11:43]
    nar = re.search(r"^URL: (\S+)$", (cache / f"{h}.narinfo").read_text(), re.M).group(1)
    data = bytearray((cache / nar).read_bytes())
    i = data.index(b"switch.log")
    data[i] ^= 0x01
    (cache / nar).write_bytes(bytes(data))
    b2 = tmp_path / "t.rb"
    drone.ringil("bundle", "create", "--key", nixworld["dir"] / "db.key", "--cert", nixworld["dir"] / "db.pem",
                 "--compatible", "drone-x1", "--version", "1.0", "--payload",
                 f"system:nixos={nixworld['paths']['1.0']}@file://{cache}", "--output", b2, check=0)
    p = drone.run("install", b2, check=4)
    assert "hash mismatch" in p.err or "NAR hash" in p.err, p.err
    assert not drone.in_store("1.0") and not drone.profile.is_symlink()


def test_mark_bad_rolls_back_to_previous_generation(drone, nixworld):
    drone.install("1.0")
    drone.boot()
    drone.run("mark-good", check=0)
    drone.install("2.0")
    assert drone.system() == nixworld["paths"]["2.0"]
    # One generation at a time: nothing is installed over a pending one.
    p = drone.install("3.0", check=11)
    assert "pending" in p.err and "running nix" not in p.err
    before = len(drone.log_lines())
    p = drone.run("mark-bad", check=0)
    assert "rolled the profile back" in p.out
    assert drone.system() == nixworld["paths"]["1.0"]
    assert drone.log_lines()[before:] == [f"{drone.store}{nixworld['paths']['1.0']}/bin/switch-to-configuration boot"]
    st = drone.run("status", "--json", check=0).out
    assert '"generation": "bad"' in st and '"rollback": true' in st and '"floor": "1.0"' in st
    drone.run("mark-bad", check=11)   # nothing pending any more


def test_config_checks(tmp_path, nixworld, ringil):
    base = f"[device]\ncompatible = x\nstate-dir = {tmp_path}\n\n[nix]\n"
    for body, ok in ((f"trusted-public-keys = {nixworld['fleet_pk']}\n", True),
                     ("profile = /nix/var/nix/profiles/system\n", False),            # key required
                     ("trusted-public-keys = fleet-1\n", False),
                     (f"trusted-public-keys = {nixworld['fleet_pk']}\nsubstituter = ftp://x\n", False),
                     (f"trusted-public-keys = {nixworld['fleet_pk']}\nsubstituter = https://a b\n", False),
                     (f"trusted-public-keys = {nixworld['fleet_pk']}\n[slot.rootfs.a]\ndevice = /dev/a\n"
                      "[slot.rootfs.b]\ndevice = /dev/b\n", False)):
        (tmp_path / "d.conf").write_text(base + body)
        p = ringil("status", "-c", tmp_path / "d.conf")
        assert (p.returncode == 0) == ok, (body, p.out, p.err)


def test_fallback_boot_is_recorded_as_rollback(drone, nixworld):
    drone.install("1.0")
    drone.boot()
    drone.run("mark-good", check=0)
    drone.install("2.0")
    before = len(drone.log_lines())
    # The boot loader fell back: generation 1.0 is still the running system when the bless unit runs.
    p = drone.run("mark-good", check=0)
    assert "rolled the profile back" in p.out
    assert drone.system() == nixworld["paths"]["1.0"]
    assert drone.log_lines()[before:] == [f"{drone.store}{nixworld['paths']['1.0']}/bin/switch-to-configuration boot"]
    st = drone.run("status", "--json", check=0).out
    assert '"generation": "bad"' in st and '"rollback": true' in st and '"floor": "1.0"' in st
    assert "did not become the running system" in st
