"""test_nixgen.py: NixOS-generation install mode against a real Nix (Debian nix-bin) and file:// binary caches.

Each device gets its own chroot store (device.conf [nix] store = DIR, `nix --store DIR`), so the
machine's /nix is never written. The test "system" closures are built once per session in another
chroot store by a derivation whose builder is /bin/sh; their bin/switch-to-configuration appends
"$0 $*" to a log file.
"""
import hashlib
import json
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
{ v, log }:
let
  # Shared by every version, as a real system shares its kernel and libc: a second install fetches only
  # what changed.
  base = derivation {
    name = "drone-base";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    args = [ "-c" "mkdir -p $out; echo 'the unchanged part of the system' > $out/README" ];
  };
in derivation {
  name = "nixos-system-drone-${v}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  inherit base;
  args = [ "-c" "mkdir -p $out/bin; echo $base > $out/base; printf '#!/bin/sh\\necho \"$0 $*\" >> ${log}\\n' > $out/bin/switch-to-configuration; chmod +x $out/bin/switch-to-configuration" ];
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
        sh(*NIX, "--store", build, "store", "sign", "-r", "--key-file", d / f"{name}.sk", *paths.values())
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
                   "--nix-store", build,
                   "--output", out, check=0)
        return out

    return {"dir": d, "build": build, "paths": paths, "log": log, "caches": caches, "bundle": bundle,
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
                 f"system:nixos={nixworld['paths']['1.0']}@file://{cache}", "--nix-store", nixworld["build"],
                 "--output", b2, check=0)
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


# ---- the fleet server's cache: ringil-server serves the cache directory, drones fetch with their identity ----

from conftest import binary  # noqa: E402
from fleetsim import Pki, Server, run  # noqa: E402


@pytest.fixture(scope="session")
def fleetpki(nixworld, ringil, tmp_path_factory):
    """Device CA and TLS certificates; releases are signed with the drones' db key."""
    d = tmp_path_factory.mktemp("nixfleet")
    return Pki(binary("ringil"), d / "pki", signer=(nixworld["dir"] / "db.key", nixworld["dir"] / "db.pem"))


class FleetDrone(Drone):
    """A generation-mode drone enrolled with a ringil-server, running the real ringild."""

    def __init__(self, root, w, ringil, srv, pki, name="drone-n1", health="true"):
        super().__init__(root, w, ringil)
        self.srv, self.pki, self.name = srv, pki, name
        self.agentdir = root / "agent"
        self.agentdir.mkdir()
        self.conf.write_text(self.conf.read_text() +
                             f"tls-ca = {pki.ca}\ntls-cert = {self.agentdir / 'cert.pem'}\n"
                             f"tls-key = {self.agentdir / 'key.pem'}\n")
        self.agentconf = root / "ringild.conf"
        self.agentconf.write_text(
            f"server = {srv.url}\nenroll-server = {srv.enroll_url}\nca = {pki.ca}\ncert = {self.agentdir / 'cert.pem'}\n"
            f"key = {self.agentdir / 'key.pem'}\ndevice-config = {self.conf}\n"
            f"state-dir = {self.agentdir / 'state'}\nringil = {binary('ringil')}\n"
            f"reboot-command = touch {root / 'reboot-requested'}\nhealth-command = {health}\n"
            f"boot-id-file = {root / 'boot_id'}\npoll-interval = 1\ntimeout = 10\n")
        (root / "boot_id").write_text(os.urandom(16).hex() + "\n")
        token = srv.op("enroll", name).out.strip()
        run([binary("ringild"), "enroll", "--config", self.agentconf, "--id", name, "--token", token])

    def agent(self):
        p = run([binary("ringild"), "--config", self.agentconf, "--once", "--verbose"], check=False)
        self.agent_log = p.err
        return p

    def reboot(self):
        """Acknowledge the agent's reboot request with a new boot id; boot() then picks the generation."""
        req = self.root / "reboot-requested"
        assert req.exists(), "the agent did not ask for a reboot"
        req.unlink()
        (self.root / "boot_id").write_text(os.urandom(16).hex() + "\n")


@pytest.fixture
def fleetcache(nixworld, fleetpki, tmp_path):
    """A running ringil-server serving a copy of the fleet-signed cache; returns (server, cache dir)."""
    cache = tmp_path / "served-cache"
    shutil.copytree(nixworld["caches"]["fleet"], cache)
    srv = Server(binary("ringil-server"), fleetpki, tmp_path / "server", extra=f"nix-cache = {cache}\n").start()
    yield srv, cache
    srv.stop()


def fleet_bundle(nixworld, srv, version, tmp_path, tag="", closure=None):
    out = tmp_path / f"fleet-{version}{tag}.rb"
    src = ["--closure", closure] if closure else ["--nix-store", nixworld["build"]]
    run([binary("ringil"), "bundle", "create", "--key", nixworld["dir"] / "db.key", "--cert",
         nixworld["dir"] / "db.pem", "--compatible", "drone-x1", "--version", version, "--payload",
         f"system:nixos={nixworld['paths'][version]}@{srv.url}/nix-cache", *src, "--output", out])
    return out


def altered_closure(nixworld, version, tmp_path):
    """The true closure listing of `version` with the toplevel's NarHash changed: what a bundle would say
    if the fleet key had also signed a second, different build of the same store path."""
    p = run([binary("ringil"), "bundle", "create", "--key", nixworld["dir"] / "db.key", "--cert",
             nixworld["dir"] / "db.pem", "--compatible", "drone-x1", "--version", version, "--payload",
             f"system:nixos={nixworld['paths'][version]}", "--nix-store", nixworld["build"],
             "--output", tmp_path / "probe.rb"])
    info = json.loads(run([binary("ringil"), "bundle", "info", "--json", tmp_path / "probe.rb"]).out)
    size = info["payloads"][0]["size"]
    # The payload (the listing ringil made from Nix) is the bundle's last `size` bytes.
    listing = (tmp_path / "probe.rb").read_bytes()[-size:].decode()
    assert listing.startswith("ringil-nix-closure 1\n")
    top = nixworld["paths"][version]
    out = []
    for line in listing.splitlines()[1:]:
        if line.startswith(top + " "):
            path, h, size = line.split(" ")
            h = h[:-1] + ("1" if h[-1] != "1" else "2")   # the lowest 5 bits: still canonical nix32
            line = f"{path} {h} {size}"
        out.append(line)
    f = tmp_path / f"closure-{version}-altered"
    f.write_text("ringil-nix-closure 1\n" + "".join(l + "\n" for l in out))
    return f


def release(srv, bundle):
    rid = srv.op("upload", bundle).out.strip()
    srv.op("release", rid, "--fleet")
    return rid


def cache_hits(srv):
    for line in srv.op("metrics").out.splitlines():
        if line.startswith('ringil_nix_cache_requests_total{result="hit"}'):
            return int(float(line.split()[1]))
    raise AssertionError("no nix cache metric")


def test_fleet_generations_through_ringild(tmp_path, nixworld, fleetcache, fleetpki, ringil):
    """ringild pulls each release, the engine fetches the closure from ringil-server's cache with the drone's
    certificate, switch-to-configuration boot runs, the reboot is judged, and the server hears about it."""
    srv, _ = fleetcache
    dr = FleetDrone(tmp_path / "d", nixworld, ringil, srv, fleetpki, health=str(tmp_path / "health"))
    health = tmp_path / "health"
    health.write_text("#!/bin/sh\nexit 0\n")
    health.chmod(0o755)
    paths = nixworld["paths"]

    for version in ("1.0", "2.0"):
        before = len(dr.log_lines())
        release(srv, fleet_bundle(nixworld, srv, version, tmp_path))
        dr.agent()
        assert dr.system() == paths[version], dr.agent_log
        assert dr.log_lines()[before:] == [f"{dr.store}{paths[version]}/bin/switch-to-configuration boot"]
        assert not (dr.state / "nix-mirror").exists(), "the mirror is removed once the store has the closure"
        dr.reboot()
        dr.boot()
        dr.agent()
        d = srv.drone(dr.name)
        assert d["state"] == "updated" and d["version"] == version, (d, dr.agent_log)
        st = dr.run("status", "--json", check=0).out
        assert '"generation": "good"' in st and f'"floor": "{version}"' in st and f'"running_version": "{version}"' in st

    # 3.0 boots but fails its health gate: marked bad, profile back to 2.0, reported rolled back.
    health.write_text("#!/bin/sh\nexit 1\n")
    release(srv, fleet_bundle(nixworld, srv, "3.0", tmp_path))
    dr.agent()
    assert dr.system() == paths["3.0"]
    dr.reboot()
    dr.boot()
    before = len(dr.log_lines())
    dr.agent()
    assert dr.system() == paths["2.0"], dr.agent_log
    assert dr.log_lines()[before:] == [f"{dr.store}{paths['2.0']}/bin/switch-to-configuration boot"]
    dr.reboot()
    dr.boot()
    dr.agent()
    d = srv.drone(dr.name)
    assert d["state"] == "rolled-back" and "health gate failed" in d["error"] and d["version"] == "2.0", d
    assert '"running_version": "2.0"' in dr.run("status", "--json", check=0).out


def test_fleet_fallback_boot_rolls_the_profile_back(tmp_path, nixworld, fleetcache, fleetpki, ringil):
    """The new generation never starts (the boot loader fell back): ringild reports it and resets the profile."""
    srv, _ = fleetcache
    dr = FleetDrone(tmp_path / "d", nixworld, ringil, srv, fleetpki)
    release(srv, fleet_bundle(nixworld, srv, "1.0", tmp_path))
    dr.agent()
    dr.reboot()
    dr.boot()
    dr.agent()
    assert srv.drone(dr.name)["state"] == "updated"
    release(srv, fleet_bundle(nixworld, srv, "2.0", tmp_path))
    dr.agent()
    assert dr.system() == nixworld["paths"]["2.0"]
    dr.reboot()            # ... but 1.0 keeps running: no boot() into the new generation
    dr.agent()
    d = srv.drone(dr.name)
    assert d["state"] == "rolled-back" and "new generation did not boot" in d["error"], (d, dr.agent_log)
    assert dr.system() == nixworld["paths"]["1.0"]
    assert '"generation": "bad"' in dr.run("status", "--json", check=0).out


def test_fleet_cache_fetches_only_what_the_store_lacks(tmp_path, nixworld, fleetcache, fleetpki, ringil):
    srv, _ = fleetcache
    dr = FleetDrone(tmp_path / "d", nixworld, ringil, srv, fleetpki)
    h0 = cache_hits(srv)
    p = dr.run("install", fleet_bundle(nixworld, srv, "1.0", tmp_path), check=0)
    assert "2 of 2 closure paths missing here and fetched" in p.err, p.err
    assert cache_hits(srv) - h0 == 4          # two narinfos, two NARs
    dr.boot()
    dr.run("mark-good", check=0)
    h1 = cache_hits(srv)
    p = dr.run("install", fleet_bundle(nixworld, srv, "2.0", tmp_path), check=0)
    # The shared base is in the store: only the new toplevel's narinfo is asked for. (Its NAR happens to
    # be byte-identical to 1.0's, so the NAR is fetched once more.)
    assert "1 of 2 closure paths missing here and fetched" in p.err, p.err
    assert cache_hits(srv) - h1 == 2
    assert dr.system() == nixworld["paths"]["2.0"]


@pytest.mark.parametrize("label,code,msg", [("unsigned", 5, "is not signed by any key in trusted-public-keys"),
                                            ("other", 5, "is not signed by any key in trusted-public-keys")])
def test_fleet_cache_refuses_unsigned_or_foreign(tmp_path, nixworld, fleetpki, ringil, label, code, msg):
    cache = tmp_path / "served"
    shutil.copytree(nixworld["caches"][label], cache)
    srv = Server(binary("ringil-server"), fleetpki, tmp_path / "server", extra=f"nix-cache = {cache}\n").start()
    try:
        dr = FleetDrone(tmp_path / "d", nixworld, ringil, srv, fleetpki)
        p = dr.run("install", fleet_bundle(nixworld, srv, "1.0", tmp_path), check=code)
        assert msg in p.err, p.err
        assert not dr.in_store("1.0") and not dr.profile.is_symlink()
        # Refused at the first narinfo: no NAR was downloaded, no reference followed.
        assert list((dr.state / "nix-mirror" / "nar").iterdir()) == []
        assert cache_hits(srv) == 1
    finally:
        srv.stop()


def test_fleet_cache_refuses_corrupt_nar(tmp_path, nixworld, fleetcache, fleetpki, ringil):
    srv, cache = fleetcache
    h = nixworld["paths"]["1.0"][11:43]
    ni = cache / f"{h}.narinfo"
    nar = cache / re.search(r"^URL: (\S+)$", ni.read_text(), re.M).group(1)
    data = bytearray(nar.read_bytes())
    data[data.index(b"switch.log")] ^= 0x01
    nar.write_bytes(bytes(data))
    dr = FleetDrone(tmp_path / "d", nixworld, ringil, srv, fleetpki)
    b = fleet_bundle(nixworld, srv, "1.0", tmp_path)
    # The served file no longer matches its FileHash: refused by ringil before Nix sees it.
    p = dr.run("install", b, check=9)
    assert "does not match the FileHash" in p.err, p.err
    assert not dr.in_store("1.0") and not dr.profile.is_symlink()
    # FileHash (unsigned) rewritten to match: the NAR still differs from the signed NarHash, and Nix refuses.
    fh = hashlib.sha256(bytes(data)).digest()
    text = ni.read_text()
    old = re.search(r"^FileHash: sha256:(\S+)$", text, re.M).group(1)
    new = sh("nix-hash", "--type", "sha256", "--to-base32", fh.hex())
    # (uncompressed here, so the signed NarHash has the same value as FileHash: change only the unsigned lines)
    text = re.sub(r"^FileHash: .*$", f"FileHash: sha256:{new}", text, flags=re.M)
    text = re.sub(r"^URL: .*$", f"URL: nar/{new}.nar", text, flags=re.M)
    ni.write_text(text)
    nar.rename(nar.with_name(f"{new}.nar"))
    p = dr.run("install", b, check=4)
    assert "hash mismatch" in p.err, p.err
    assert not dr.in_store("1.0") and not dr.profile.is_symlink()


def test_fleet_cache_nothing_fetched_below_floor_or_when_revoked(tmp_path, nixworld, fleetcache, fleetpki, ringil):
    srv, _ = fleetcache
    dr = FleetDrone(tmp_path / "d", nixworld, ringil, srv, fleetpki)
    (dr.state / "floor").write_text("1.5\n")
    h0 = cache_hits(srv)
    dr.run("install", fleet_bundle(nixworld, srv, "1.0", tmp_path), check=7)
    assert cache_hits(srv) == h0 and not (dr.state / "nix-mirror").exists()
    # A revoked drone's certificate no longer opens the cache.
    srv.op("revoke", dr.name)
    p = dr.run("install", fleet_bundle(nixworld, srv, "2.0", tmp_path))
    assert p.returncode != 0 and "HTTP 403" in p.err, p.err
    assert not dr.in_store("2.0") and not dr.profile.is_symlink()


def test_refused_when_closure_hash_differs_from_bundle(drone, nixworld, tmp_path):
    """The cache's closure is validly signed by the fleet key but is not the one the bundle lists: the
    installed closure is compared with the signed listing before the profile changes."""
    b = tmp_path / "alt.rb"
    drone.ringil("bundle", "create", "--key", nixworld["dir"] / "db.key", "--cert", nixworld["dir"] / "db.pem",
                 "--compatible", "drone-x1", "--version", "1.0", "--payload",
                 f"system:nixos={nixworld['paths']['1.0']}@file://{nixworld['caches']['fleet']}",
                 "--closure", altered_closure(nixworld, "1.0", tmp_path), "--output", b, check=0)
    before = len(drone.log_lines())
    p = drone.run("install", b, check=9)
    assert "differs from the signed closure" in p.err, p.err
    assert not drone.profile.is_symlink() and drone.log_lines()[before:] == []
    assert "NAR hash differs from the signed" in drone.run("status", check=0).out   # the recorded last error


def test_fleet_cache_refuses_closure_not_in_bundle(tmp_path, nixworld, fleetcache, fleetpki, ringil):
    """Through the mirror the same mismatch is caught at the narinfo, before any NAR is downloaded."""
    srv, _ = fleetcache
    dr = FleetDrone(tmp_path / "d", nixworld, ringil, srv, fleetpki)
    h0 = cache_hits(srv)
    p = dr.run("install", fleet_bundle(nixworld, srv, "1.0", tmp_path, closure=altered_closure(nixworld, "1.0", tmp_path)),
               check=9)
    assert "differ from the bundle's signed closure" in p.err, p.err
    assert cache_hits(srv) - h0 == 1 and list((dr.state / "nix-mirror" / "nar").iterdir()) == []
    assert not dr.in_store("1.0") and not dr.profile.is_symlink()
