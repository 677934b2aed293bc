"""test_nix.py: the NixOS modules, evaluated by the real nix-instantiate against the real upstream sources.

What is real: Nix (Debian's nix-bin, offline, a throw-away store), the nixpkgs lib (module system, types,
priorities, conflict detection) and the lanzaboote v1.1.0, disko and jetpack-nixos modules, all from
../shared/nix-upstream/ (its README names the revisions). What is declared by hand: the NixOS core options
those modules and ours use (tests/integration/nix/nixos-core-options.nix, each with the upstream type it
copies) and named stand-in packages (nix/pkgs.nix); nothing is built. tests/integration/nix/eval.nix runs
the evaluation; `unevaluated` lists every defined option whose value does not evaluate (conflicts, type
errors), so "no errors and no conflicting definitions" is checked over the whole system.
The tests fail, never skip, when the upstream sources are missing.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Nix evaluation only: no ringil binary runs here, so the sanitizer pass of make check has nothing to
# find in it and skips it (-m "not slow"); the normal pass runs all of it (~80 s on a loaded 2-core box).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NIXDIR = ROOT / "nix"
HERE = Path(__file__).resolve().parent / "nix"
AUDIT_DOC = ROOT / "docs" / "audit.md"
AUDIT_MAP = NIXDIR / "audit-map.md"
UPSTREAM_DIRS = ("nixpkgs-lib-2505", "nixpkgs-lib-master", "lanzaboote", "disko", "jetpack-nixos")


def find_upstream():
    """The unmodified upstream sources (never copied into this repository): RINGIL_NIX_UPSTREAM, else the
    shared folder beside the checkout, else the team's shared folder."""
    if os.environ.get("RINGIL_NIX_UPSTREAM"):
        return [Path(os.environ["RINGIL_NIX_UPSTREAM"])]
    return [ROOT.parent / "shared" / "nix-upstream", Path("/work/shared/nix-upstream")]

ALL = "env,disko,ringild,tunnel,jetson"
PROD = {"ringil": {"env": {"mode": "prod", "hostId": "8425e349"}}}
DEV = {"ringil": {"env": {"mode": "dev", "hostId": "8425e349",
                          "dev": {"authorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake dev"]}}}}
SERVER_KEY = "hS4B3Rz0mC2ka+6k1Q4E0nOXU9zLkqgIHNpm4B0ZxWM="
AGENT = {
    "enable": True,
    "serverUrl": "https://fleet.example:8443",
    "caFile": "/etc/secure/ringil/fleet-ca.pem",
    "compatible": "orin-agx-drone",
    "slots": {"payload": {"a": "/dev/zvol/zroot/payload-a", "b": "/dev/zvol/zroot/payload-b"}},
}
TUNNEL = {"enable": True, "addresses": ["10.77.0.12/32"],
          "server": {"publicKey": SERVER_KEY, "endpoint": "192.0.2.1:51820", "addresses": ["10.77.0.1/32"]}}
# A prod drone on a board whose TPM sits behind tpm_tis/tpm_crb (no jetpack-nixos), agent behind the tunnel.
GENERIC = {**PROD, "services": {"ringild": {**AGENT, "serverUrl": "https://10.77.0.1:8443", "tunnel": TUNNEL}}}


def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="session")
def upstream():
    tried = []
    for up in find_upstream():
        missing = [d for d in UPSTREAM_DIRS if not (up / d).is_dir()]
        if not missing and (up / "README.md").is_file():
            return up
        tried.append(f"{up} lacks {', '.join(missing) or 'README.md'}")
    # Environment, not product: they are evaluated wherever the sources are; said in the summary.
    pytest.skip("the upstream Nix sources (nixpkgs lib, lanzaboote, disko, jetpack-nixos) are not on this machine "
                f"({'; '.join(tried)}); set RINGIL_NIX_UPSTREAM to their directory")


@pytest.fixture(scope="session")
def nix(tmp_path_factory):
    """Runs nix-instantiate against a throw-away local store, never a daemon or /nix."""
    exe = shutil.which("nix-instantiate")
    assert exe, "nix-instantiate not found: scripts/deps.sh installs nix-bin"
    tmp = tmp_path_factory.mktemp("nixstore")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIX_")}
    env.update(HOME=str(tmp), XDG_CACHE_HOME=str(tmp / "cache"))
    store = ["--store", f"local?root={tmp}/root", "--option", "build-users-group", ""]

    def run(*args, check=True):
        p = subprocess.run([exe, *store, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)
        if check:
            assert p.returncode == 0, f"nix-instantiate {' '.join(map(str, args))} failed:\n{p.stderr}"
        return p

    return run


class Eval:
    """One evaluation's JSON: failed assertions, warnings, `unevaluated` options, values, /etc files."""

    def __init__(self, nix, upstream, modules=ALL, settings=None, host="", paths=(), defined="", lib="master",
                 flake_host="", overrides=None, system="aarch64-linux"):
        self.nix = nix
        self.argv = {"upstream": upstream, "modules": modules, "settings": json.dumps(settings or {}), "lib": lib,
                     "system": system, "host": host, "defined": defined, "flakeHost": flake_host,
                     "overrides": json.dumps(overrides or {})}
        self.proc = self.run(paths)
        self.ok = self.proc.returncode == 0
        self.err = self.proc.stderr
        self.data = json.loads(self.proc.stdout) if self.ok else None
        if self.ok:
            self.values = dict(zip(paths, self.data["values"]))

    def run(self, paths):
        args = ["--eval", "--strict", "--json", HERE / "eval.nix", "--argstr", "paths", json.dumps([split(p) for p in paths])]
        for k, v in self.argv.items():
            args += ["--argstr", k, v]
        return self.nix(*args, check=False)

    def error_of(self, option):
        """Nix's own message for one option's value."""
        p = self.run([option])
        assert p.returncode != 0, f"{option} evaluates"
        return p.stderr

    def __getitem__(self, k):
        assert self.ok, f"evaluation failed:\n{self.err}"
        return self.data[k]

    def __call__(self, path):
        return self.values[path]

    def clean(self):
        """No failed assertion, no warning, and every defined option's value evaluates."""
        assert self.ok, f"evaluation failed:\n{self.err}"
        assert self["assertions"] == [], self["assertions"]
        assert self["warnings"] == [], self["warnings"]
        if self["unevaluated"]:
            one = self["unevaluated"][0]
            pytest.fail(f"options that do not evaluate: {self['unevaluated']}\n{self.error_of(one)}")
        return self


def split(dotted):
    """'a.b."c.d"' → ['a', 'b', 'c.d']"""
    return [p.strip('"') for p in re.findall(r'"[^"]*"|[^.]+', dotted)]


@pytest.fixture(scope="session")
def ev(nix, upstream):
    return lambda **kw: Eval(nix, upstream, **kw)


def failed_eval(e, *words):
    assert not e.ok, "the evaluation should have failed"
    for w in words:
        assert w in e.err, f"{w!r} not in:\n{e.err}"


def refused(e, *words):
    """The configuration does not evaluate: the evaluation itself fails, or options whose value it did not
    need do not evaluate (a definition of an option is only checked when its value is read); either way
    Nix's message has every word."""
    if not e.ok:
        return failed_eval(e, *words)
    assert e["unevaluated"], "every option evaluates"
    msgs = "\n".join(e.error_of(o) for o in e["unevaluated"])
    for w in words:
        assert w in msgs, f"{w!r} not in:\n{msgs}"


# --- sources, pins, Nix versions -------------------------------------------------------------------------

def test_every_nix_file_parses(nix):
    files = sorted(NIXDIR.rglob("*.nix")) + sorted(HERE.glob("*.nix"))
    assert len(files) >= 13
    for f in files:
        nix("--parse", f)


def test_parse_rejects_broken_nix(nix, tmp_path):
    bad = tmp_path / "bad.nix"
    bad.write_text("{ a = 1; b = ; }\n")
    assert nix("--parse", bad, check=False).returncode != 0


def upstream_revisions(upstream):
    revs = {}
    for line in (upstream / "README.md").read_text().splitlines():
        m = re.match(r"^\| `([\w.-]+)/` \| ([^|]+) \| ([0-9a-f]{40}) \|", line)
        if m:
            revs[m.group(1)] = (m.group(2).strip(), m.group(3))
    return revs


def test_flake_pins_are_the_evaluated_sources(nix, upstream):
    """The flake pins exactly what these tests evaluate: a combination known to evaluate together."""
    f = json.loads(nix("--eval", "--strict", "--json", HERE / "flake-eval.nix", "--argstr", "upstream", upstream).stdout)
    revs = upstream_revisions(upstream)
    assert {"lanzaboote", "disko", "jetpack-nixos"} <= set(revs), revs
    urls = f["inputs"]
    assert set(urls) == {"nixpkgs", "lanzaboote", "disko", "jetpack-nixos"}
    assert urls["lanzaboote"] == "github:nix-community/lanzaboote/v1.1.0" and "tag v1.1.0" in revs["lanzaboote"][0]
    assert urls["disko"] == f"github:nix-community/disko/{revs['disko'][1]}"
    assert urls["jetpack-nixos"] == f"github:anduril/jetpack-nixos/{revs['jetpack-nixos'][1]}"
    # nixpkgs: the nixos-26.05 revision jetpack-nixos's own lock file pins (it targets nixos-26.05)
    lock = json.loads((upstream / "jetpack-nixos" / "flake.lock").read_text())["nodes"]["nixpkgs"]
    assert lock["original"]["ref"] == "nixos-26.05"
    assert urls["nixpkgs"] == f"github:NixOS/nixpkgs/{lock['locked']['rev']}"
    assert all(f["follows"][i] == "nixpkgs" for i in ("lanzaboote", "disko", "jetpack-nixos"))


def test_flake_outputs(nix, upstream):
    f = json.loads(nix("--eval", "--strict", "--json", HERE / "flake-eval.nix", "--argstr", "upstream", upstream).stdout)
    assert f["packages"] == {s: ["default", "ringil"] for s in ("aarch64-linux", "x86_64-linux")}
    assert f["packageSrcIsPath"]
    assert f["modules"]["ringil-env"] == ["lanzaboote/flake.nix", "env.nix"]
    assert f["modules"]["ringil-disko"] == ["module.nix", "disko.nix"]
    assert f["modules"]["ringild"] == ["ringild.nix", "tunnel.nix"]
    assert f["modules"]["ringil-jetson"] == ["modules/default.nix", "jetson.nix"]
    assert len(f["modules"]["default"]) == 3
    assert f["ringildPackageDefault"] == "ringil"
    assert f["drone"] == {"system": "aarch64-linux", "modules": ["function", "function", "orin-drone.nix"]}


def test_lanzaboote_needs_the_lib_of_nixpkgs_2511(ev):
    """lanzaboote v1.1.0 types pkiBundle with lib.types.externalPath (nixpkgs >= 25.11): the 25.05 lib fails."""
    old = ev(modules="env", settings=PROD, lib="2505")
    failed_eval(old, "attribute 'externalPath' missing", "lanzaboote/nix/modules/lanzaboote.nix")
    new = ev(modules="env", settings=PROD, paths=["boot.lanzaboote.pkiBundle"])
    assert new.ok and new("boot.lanzaboote.pkiBundle") == "/etc/secure/keys"
    assert new["libVersion"].startswith("26.")


def test_what_this_nix_can_do(nix, upstream):
    """Debian's Nix evaluates the lib and the modules (every test here), but nixpkgs 26.05 itself requires
    a newer Nix (lib/minfeatures.nix, checked when nixpkgs is imported): building the system needs it."""
    expr = (f"let m = import {upstream}/nixpkgs-lib-master/lib/minfeatures.nix; in "
            "{ version = builtins.nixVersion; missing = map (f: f.description) m.missing; }")
    r = json.loads(nix("--eval", "--strict", "--json", "-E", expr).stdout)
    major, minor = (int(x) for x in r["version"].split(".")[:2])
    if (major, minor) < (2, 18):
        assert any("2.18" in m for m in r["missing"]), r
    else:
        assert r["missing"] == [], r


# --- the whole drone: the flake's own module graph ------------------------------------------------------

DRONE_PATHS = ["boot.kernelParams", "boot.initrd.systemd.tpm2.enable", "boot.initrd.systemd.enable",
               "hardware.nvidia-jetpack.firmware.optee.ftpm.enable",
               "hardware.nvidia-jetpack.firmware.optee.supplicant.earlyBoot.enable",
               "boot.initrd.systemd.services", "boot.initrd.systemd.additionalUpstreamUnits",
               "boot.initrd.systemd.storePaths", "boot.initrd.availableKernelModules",
               "boot.initrd.luks.devices", "boot.lanzaboote.enable", "boot.lanzaboote.installCommand",
               "fileSystems", "systemd.services.ringild", "systemd.services.ringil-tunnel-key",
               "networking.wireguard.interfaces", "users.users.root.hashedPassword", "services.openssh.enable",
               "disko.devices.zpool.zroot.datasets.payload-a.type"]


@pytest.fixture(scope="module")
def drone(ev):
    return ev(flake_host="orin-drone", paths=DRONE_PATHS).clean()


def test_drone_evaluates_cleanly_with_jetpack(drone):
    """nixosConfigurations.orin-drone as the flake wires it: jetpack-nixos, lanzaboote and disko included."""
    params = drone("boot.kernelParams")
    # jetpack-nixos's own parameter stays; its consoles do not; the seed's three are there
    assert "nvidia.rm_firmware_active=all" in params
    assert not any("ttyTCU" in p for p in params) and params.count("console=tty0") == 1
    assert {"quiet", "loglevel=0", "lockdown=confidentiality", "init_on_free=1"} <= set(params)
    assert drone("boot.lanzaboote.enable") is True
    assert "--bootcounting-initial-tries 0" in drone("boot.lanzaboote.installCommand")
    assert drone("users.users.root.hashedPassword") == "!" and drone("services.openssh.enable") is False
    assert drone("disko.devices.zpool.zroot.datasets.payload-a.type") == "zfs_volume"
    fs = drone("fileSystems")
    assert fs["/"]["fsType"] == "zfs" and fs["/boot"]["options"] == ["umask=0077"]
    assert drone("boot.initrd.luks.devices")["crypted"]["device"] == "/dev/disk/by-partlabel/disk-main-luks"


def test_drone_tpm_is_the_optee_ftpm_in_stage_1(drone):
    """The decision for Orin (docs/nixos.md "TPM on Orin"): NixOS's stage-1 TPM support stays off (its drivers
    are not in JetPack's kernel), jetpack-nixos's fTPM runs in the initrd and the root waits for it."""
    assert drone("boot.initrd.systemd.tpm2.enable") is False
    assert drone("boot.initrd.systemd.enable") is True
    assert drone("hardware.nvidia-jetpack.firmware.optee.ftpm.enable") is True
    assert drone("hardware.nvidia-jetpack.firmware.optee.supplicant.earlyBoot.enable") is True
    mods = drone("boot.initrd.availableKernelModules")
    assert "tpm_ftpm_tee" in mods and "tpm-tis" not in mods and "tpm-crb" not in mods
    units = drone("boot.initrd.systemd.services")
    assert {"tee-supplicant", "ftpm-driver"} <= set(units)
    assert "tpm2.target" in units["ftpm-driver"]["before"] and units["ftpm-driver"]["wantedBy"] == ["tpm2.target"]
    crypt = units["systemd-cryptsetup@crypted"]
    assert crypt["overrideStrategy"] == "asDropin" and crypt["wants"] == ["tpm2.target"] and crypt["after"] == ["tpm2.target"]
    assert "tpm2.target" in drone("boot.initrd.systemd.additionalUpstreamUnits")
    assert any(p.endswith("-tpm2-tss") for p in drone("boot.initrd.systemd.storePaths"))
    assert drone("boot.initrd.luks.devices")["crypted"]["crypttabExtraOpts"] == ["tpm2-device=auto"]


def test_drone_agent_goes_through_the_tunnel(drone):
    wg = drone("networking.wireguard.interfaces")["ringil0"]
    assert wg["ips"] == ["10.77.0.12/32"] and wg["privateKeyFile"] == "/var/lib/ringil/tunnel/private.key"
    assert wg["privateKey"] is None and wg["generatePrivateKeyFile"] is False
    (peer,) = wg["peers"]
    assert peer["allowedIPs"] == ["10.77.0.1/32"] and peer["endpoint"] == "fleet.example.org:51820"
    assert peer["dynamicEndpointRefreshSeconds"] > 0 and peer["persistentKeepalive"] == 25
    agent = drone("systemd.services.ringild")
    assert "wireguard-ringil0.service" in agent["requires"] and "wireguard-ringil0.service" in agent["after"]
    sc = agent["serviceConfig"]
    assert sc["RestrictNetworkInterfaces"] == ["lo", "ringil0"]
    assert sc["IPAddressDeny"] == "any" and sc["IPAddressAllow"] == ["localhost", "10.77.0.1"]
    key = drone("systemd.services.ringil-tunnel-key")
    assert key["requiredBy"] == ["wireguard-ringil0.service"] and key["before"] == ["wireguard-ringil0.service"]
    assert key["serviceConfig"]["ReadWritePaths"] == ["/var/lib/ringil/tunnel"]


# --- env.nix ---------------------------------------------------------------------------------------------

def test_prod_applies_the_seed(ev):
    seed = {
        "users.allowNoPasswordLogin": True,
        "services.openssh.enable": False,
        "users.users.root.hashedPassword": "!",
        "services.journald.extraConfig": "Storage=volatile\nRuntimeMaxUse=50M\n",
        'systemd.services."serial-getty@ttyS0".enable': False,
        'systemd.services."serial-getty@ttyTCU0".enable': False,
        "services.udisks2.enable": False,
        "services.xserver.enable": False,
        "documentation.enable": False,
        "documentation.nixos.enable": False,
        "boot.loader.timeout": 0,
        "boot.loader.systemd-boot.editor": False,
        "boot.loader.systemd-boot.enable": False,
        "boot.loader.efi.canTouchEfiVariables": True,
        "boot.initrd.systemd.emergencyAccess": False,
        "boot.initrd.systemd.enable": True,
        "boot.initrd.systemd.tpm2.enable": True,
        "boot.lanzaboote.enable": True,
        "boot.lanzaboote.pkiBundle": "/etc/secure/keys",
        "boot.lanzaboote.settings": {"auto-firmware": False, "console-mode": "keep", "default": "nixos-*",
                                     "editor": False, "timeout": 0},
        "swapDevices": [],
        "users.mutableUsers": False,
        "networking.hostId": "8425e349",
        "boot.initrd.luks.devices.crypted.crypttabExtraOpts": ["tpm2-device=auto"],
        "systemd.sleep.settings.Sleep": {"AllowSuspend": "no", "AllowHibernation": "no", "AllowHybridSleep": "no",
                                         "AllowSuspendThenHibernate": "no"},
        "systemd.coredump.settings.Coredump": {"Storage": "none", "ProcessSizeMax": "0"},
        "systemd.coredump.enable": False,
    }
    extra = ["boot.kernelParams", "boot.kernel.sysctl", "systemd.services.ringil-tpm-enroll"]
    e = ev(modules="env,disko", settings=PROD, paths=list(seed) + extra, system="x86_64-linux").clean()
    for k, v in seed.items():
        assert e(k) == v, f"{k} = {e(k)!r}, want {v!r}"
    assert e("boot.kernelParams")[:3] == ["quiet", "loglevel=0", "console=tty0"]
    for p in ("nohibernate", "init_on_free=1", "lockdown=confidentiality"):
        assert p in e("boot.kernelParams")
    sysctl = e("boot.kernel.sysctl")
    assert sysctl["kernel.kptr_restrict"] == 2 and sysctl["kernel.dmesg_restrict"] == 1
    assert sysctl["kernel.unprivileged_bpf_disabled"] == 1 and sysctl["kernel.kexec_load_disabled"] == 1
    assert sysctl["kernel.yama.ptrace_scope"] == 2 and sysctl["kernel.core_pattern"] == "|/bin/false"
    enroll = e("systemd.services.ringil-tpm-enroll")
    assert enroll["unitConfig"]["ConditionPathExists"] == "/etc/secure/luks-enroll.key"
    assert enroll["serviceConfig"]["ExecStart"].endswith("-ringil-tpm-enroll") and "tpm2.target" in enroll["after"]


def test_prod_keeps_other_modules_parameters_but_no_serial_console(ev):
    """Only what the seed removes goes: other modules' kernel parameters stay, a serial console fails."""
    keep = {"boot": {"kernelParams": ["iommu.passthrough=0", "fbcon=map:0", "console=tty1"]}}
    e = ev(modules="env,disko", settings=merge(PROD, keep), paths=["boot.kernelParams"], system="x86_64-linux").clean()
    assert {"iommu.passthrough=0", "fbcon=map:0", "quiet", "console=tty0"} <= set(e("boot.kernelParams"))
    for bad in ("console=ttyS0,115200", "console=ttyTCU0,115200", "console=ttyAMA0", "console=hvc0", "earlycon",
                "earlycon=uart8250,mmio32,0x3100000", "earlyprintk=serial", "netconsole=@/,@10.0.0.1/"):
        e = ev(modules="env,disko", settings=merge(PROD, {"boot": {"kernelParams": [bad]}}), system="x86_64-linux")
        assert any("serial or early console" in m and bad in m for m in e["assertions"]), (bad, e["assertions"])
    # dev mode keeps whatever consoles the board wants
    e = ev(modules="env,disko", settings=merge(DEV, {"boot": {"kernelParams": ["console=ttyS0,115200"]}}),
           paths=["boot.kernelParams"], system="x86_64-linux").clean()
    assert "console=ttyS0,115200" in e("boot.kernelParams")


def test_prod_mkforce_beats_other_modules(ev):
    other = {"boot": {"loader": {"systemd-boot": {"enable": True}}},
             "users": {"users": {"root": {"hashedPassword": "$6$x"}}},
             "swapDevices": [{"device": "/swapfile"}]}
    paths = ["boot.loader.systemd-boot.enable", "users.users.root.hashedPassword", "swapDevices"]
    e = ev(modules="env,disko", settings=merge(PROD, other), paths=paths, system="x86_64-linux").clean()
    assert e("boot.loader.systemd-boot.enable") is False
    assert e("users.users.root.hashedPassword") == "!" and e("swapDevices") == []
    # the same definitions in dev are kept: dev does not force anything
    d = ev(modules="env,disko", settings=merge(DEV, other), paths=paths, system="x86_64-linux").clean()
    assert d("users.users.root.hashedPassword") == "$6$x" and d("swapDevices") == [{"device": "/swapfile", "size": None}]


def test_prod_extra_params_and_lockdown_level(ev):
    s = merge(PROD, {"ringil": {"env": {"lockdown": "integrity", "extraKernelParams": ["iommu.passthrough=0"]}}})
    params = ev(modules="env,disko", settings=s, paths=["boot.kernelParams"], system="x86_64-linux").clean()("boot.kernelParams")
    assert "lockdown=integrity" in params and "iommu.passthrough=0" in params
    assert "lockdown=confidentiality" not in params


def test_removed_26_05_options_are_refused(ev):
    """nixos-26.05 replaced systemd.sleep/coredump extraConfig by settings: defining the old ones fails there."""
    e = ev(modules="env,disko", settings=merge(PROD, {"systemd": {"sleep": {"extraConfig": "AllowSuspend=no"}}}),
           system="x86_64-linux")
    assert any("systemd.sleep.extraConfig" in m and "no longer has any effect" in m for m in e["assertions"])


def test_dev_keeps_systemd_boot_and_key_only_ssh(ev):
    paths = ["services.openssh.enable", "services.openssh.settings", "boot.loader.systemd-boot.enable",
             "boot.lanzaboote.enable", "users.users.root.hashedPassword", "users.users.root.openssh.authorizedKeys.keys"]
    e = ev(modules="env,disko", settings=DEV, paths=paths, system="x86_64-linux").clean()
    assert e("services.openssh.enable") is True
    ssh = e("services.openssh.settings")
    assert ssh["PasswordAuthentication"] is False and ssh["KbdInteractiveAuthentication"] is False
    assert ssh["PermitRootLogin"] == "prohibit-password"
    assert e("boot.loader.systemd-boot.enable") is True and e("boot.lanzaboote.enable") is False
    assert e("users.users.root.hashedPassword") is None
    assert e("users.users.root.openssh.authorizedKeys.keys") == DEV["ringil"]["env"]["dev"]["authorizedKeys"]


def test_dev_without_keys_fails_its_assertion(ev):
    e = ev(modules="env,disko", settings={"ringil": {"env": {"mode": "dev", "hostId": "8425e349"}}})
    assert any("authorizedKeys" in m for m in e["assertions"])


@pytest.mark.parametrize("settings,words", [
    ({"ringil": {"env": {"mode": "test"}}}, ["ringil.env.mode", "is not of type", "one of"]),
    ({"ringil": {"env": {"lockdown": "none"}}}, ["ringil.env.lockdown", "is not of type"]),
    ({"ringil": {"env": {"hostId": "not-hex!"}}}, ["ringil.env.hostId", "is not of type"]),
    ({"ringil": {"env": {"luks": {"tpm": "fTPM"}}}}, ["ringil.env.luks.tpm", "is not of type"]),
    ({"ringil": {"env": {"mode": "prod", "lockdownn": "integrity"}}}, ["ringil.env.lockdownn", "does not exist"]),
])
def test_env_rejects_bad_values(ev, settings, words):
    refused(ev(modules="env", settings=settings), *words)


# --- the TPM decision ----------------------------------------------------------------------------------

def test_tpm_generic_board_uses_nixos_stage1_tpm(ev):
    e = ev(modules="env,disko,ringild,tunnel", settings=GENERIC, system="x86_64-linux",
           paths=["boot.initrd.systemd.tpm2.enable", "security.tpm2.enable", "ringil.env.luks.tpm"]).clean()
    assert e("ringil.env.luks.tpm") == "tis-crb" and e("boot.initrd.systemd.tpm2.enable") is True
    assert e("security.tpm2.enable") is True


def test_tpm_problem_found_without_the_jetson_module(ev):
    """jetpack-nixos imported without jetson.nix: what used to be a conflicting definition is now refused
    with a message, as is its serial console in prod."""
    s = {"hardware": {"nvidia-jetpack": {"enable": True, "som": "orin-agx", "carrierBoard": "devkit"}}}
    e = ev(modules="env,disko,ringild,tunnel", host="orin-drone", settings=s)
    msgs = "\n".join(e["assertions"])
    assert "import the flake's nixosModules.ringil-jetson" in msgs and "console=ttyTCU0,115200" in msgs
    # and forcing tis-crb on the Jetson is refused by jetson.nix itself
    e = ev(host="orin-drone", settings={"ringil": {"env": {"luks": {"tpm": "tis-crb"}}}})
    assert any("JetPack's kernel has no tpm_tis/tpm_crb" in m for m in e["assertions"]), e["assertions"]


def test_tpm_conflict_is_detected_by_the_evaluation(ev):
    """A second definition at the same priority is a real conflict, reported as an option that does not evaluate."""
    e = ev(host="orin-drone", settings={"boot": {"initrd": {"systemd": {"tpm2": {"enable": True}}}}})
    assert "boot.initrd.systemd.tpm2.enable" in e["unevaluated"]


def test_tpm_without_luks_sets_nothing(ev):
    e = ev(host="orin-drone", settings={"ringil": {"env": {"luks": {"enable": False}}}},
           paths=["hardware.nvidia-jetpack.firmware.optee.ftpm.enable", "boot.initrd.systemd.tpm2.enable"]).clean()
    # jetpack-nixos's own choice (off) stands; no fTPM is forced onto a drone that unlocks otherwise
    assert e("hardware.nvidia-jetpack.firmware.optee.ftpm.enable") is False
    assert e("boot.initrd.systemd.tpm2.enable") is False


# --- disko.nix -------------------------------------------------------------------------------------------

def test_disko_layout(ev):
    e = ev(modules="env,disko", settings=PROD, system="x86_64-linux",
           paths=["disko.devices.disk.main", "disko.devices.zpool.zroot", "fileSystems", "boot.initrd.luks.devices"]).clean()
    disk = e("disko.devices.disk.main")
    assert disk["device"] == "/dev/nvme0n1" and disk["content"]["type"] == "gpt"
    esp = disk["content"]["partitions"]["ESP"]
    assert esp["type"] == "EF00" and esp["content"]["format"] == "vfat"
    assert esp["content"]["mountOptions"] == ["umask=0077"]
    luks = disk["content"]["partitions"]["luks"]["content"]
    assert luks["type"] == "luks" and luks["name"] == "crypted"
    assert luks["extraFormatArgs"][:2] == ["--type", "luks2"]
    assert luks["content"]["type"] == "zfs" and luks["content"]["pool"] == "zroot"
    pool = e("disko.devices.zpool.zroot")
    assert pool["datasets"]["root"]["mountpoint"] == "/"
    assert pool["datasets"]["root/nix"]["mountpoint"] == "/nix"
    assert pool["rootFsOptions"]["mountpoint"] == "none"
    # what disko derives for NixOS from it (its _config): the mounts and the LUKS device
    fs = e("fileSystems")
    assert fs["/"] == {"device": "zroot/root", "fsType": "zfs", "options": ["defaults", "zfsutil"], "mountPoint": "/",
                       "autoFormat": False, "formatOptions": None, "neededForBoot": False} or fs["/"]["fsType"] == "zfs"
    assert fs["/nix"]["fsType"] == "zfs" and fs["/boot"]["fsType"] == "vfat"
    dev = e("boot.initrd.luks.devices")["crypted"]
    assert dev["device"] == "/dev/disk/by-partlabel/disk-main-luks" and dev["allowDiscards"] is True


def test_disko_emmc_and_xavier(ev):
    emmc = merge(PROD, {"ringil": {"disko": {"target": "emmc"}}})
    e = ev(modules="env,disko", settings=emmc, paths=["disko.devices.disk.main.device"], system="x86_64-linux")
    assert e("disko.devices.disk.main.device") == "/dev/mmcblk0"
    assert any("Xavier" in w for w in e["warnings"]) and e["assertions"] == []
    xavier = merge(emmc, {"hardware": {"nvidia-jetpack": {"som": "xavier-agx"}}})
    e = ev(modules="env,disko", settings=xavier)
    assert any("eMMC" in m for m in e["assertions"])


def test_disko_needs_host_id(ev):
    e = ev(modules="env,disko", settings={"ringil": {"env": {"mode": "prod"}}})
    assert any("hostId" in m for m in e["assertions"])


# --- ringild.nix -----------------------------------------------------------------------------------------

def ini(text):
    sections, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            cur = line[1:-1]
            assert cur not in sections, f"duplicate section {cur}"
            sections[cur] = {}
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        assert k not in sections[cur], f"duplicate key {k}"
        sections[cur][k] = v
    return sections


def agent_conf(text):
    agent = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = (x.strip() for x in line.split("=", 1))
            assert k not in agent
            agent[k] = v
    return agent


def test_ringild_slots_config_and_units(ev):
    units = ["systemd.services.ringil-health", "systemd.services.ringil-bless", "systemd.services.ringild", "nix.settings"]
    e = ev(modules="ringild", settings={"services": {"ringild": {**AGENT, "healthCommands": ["true"]}}}, paths=units).clean()
    dev = ini(e["etc"]["ringil/device.conf"])
    assert dev["device"]["compatible"] == "orin-agx-drone"
    assert dev["device"]["keyring"] == "/etc/secure/keys/keys/db/db.pem"
    assert dev["device"]["esp"] == "/boot" and dev["device"]["state-dir"] == "/var/lib/ringil"
    assert dev["device"]["health-hook"].endswith("-ringil-health-commands")
    assert dev["slot.payload.a"] == {"device": "/dev/zvol/zroot/payload-a"}
    assert dev["slot.payload.b"] == {"device": "/dev/zvol/zroot/payload-b"}
    assert "nix" not in dev
    agent = agent_conf(e["etc"]["ringil/ringild.conf"])
    assert agent["server"] == AGENT["serverUrl"] and agent["ca"] == AGENT["caFile"]
    assert agent["cert"] == "/etc/secure/ringil/device.pem" and agent["key"] == "/etc/secure/ringil/device.key"
    assert agent["device-config"] == "/etc/ringil/device.conf" and agent["poll-interval"] == "300"
    assert agent["ringil"].endswith("-ringil/bin/ringil")
    assert "enroll-server" not in agent   # enrollServerUrl = null: provisioned otherwise
    e1 = ev(modules="ringild", settings={"services": {"ringild": {**AGENT, "enrollServerUrl": "https://fleet.example:8444"}}})
    assert agent_conf(e1.clean()["etc"]["ringil/ringild.conf"])["enroll-server"] == "https://fleet.example:8444"

    health, bless, agentu = (e(u) for u in units[:3])
    assert health["before"] == ["boot-complete.target"] and health["requiredBy"] == ["boot-complete.target"]
    assert health["serviceConfig"]["ExecStart"].endswith("/bin/ringil health")
    assert health["onFailure"] == ["ringil-mark-bad.service"]
    # the health gate is sandboxed as data/systemd/ringil-health.service (operator checks keep network/devices)
    hs = health["serviceConfig"]
    assert hs["ProtectSystem"] == "strict" and hs["CapabilityBoundingSet"] == "" and "AF_INET" in hs["RestrictAddressFamilies"]
    assert bless["after"] == ["boot-complete.target"] and bless["requires"] == ["boot-complete.target"]
    assert bless["serviceConfig"]["ExecStart"].endswith("/bin/ringil mark-good")
    sc = agentu["serviceConfig"]
    assert sc["ProtectSystem"] == "strict" and sc["PrivateTmp"] is True and sc["NoNewPrivileges"] is True
    assert sc["CapabilityBoundingSet"] == "" and sc["SystemCallFilter"][0] == "@system-service"
    assert set(sc["RestrictAddressFamilies"]) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert {"/var/lib/ringil", "/boot", "/var/lib/ringild"} <= set(sc["ReadWritePaths"])
    assert sc["DevicePolicy"] == "closed"
    assert sc["DeviceAllow"] == ["/dev/zvol/zroot/payload-a rw", "/dev/zvol/zroot/payload-b rw"]
    assert "RestrictNetworkInterfaces" not in sc and "wireguard-ringil0.service" not in agentu["after"]
    assert e("nix.settings")["substituters"] == []


def test_ringild_health_script_runs_every_command(ev, tmp_path):
    marker = tmp_path / "ran"
    cmds = [f"touch {marker}", "false", f"rm {marker}"]
    e = ev(modules="ringild", settings={"services": {"ringild": {**AGENT, "healthCommands": cmds}}}).clean()
    script = tmp_path / "health.sh"
    script.write_text(e["etc"]["ringil/health-commands.sh"])
    p = subprocess.run(["bash", str(script)], capture_output=True, timeout=30)
    assert p.returncode != 0 and marker.exists(), "a failing health command must fail the gate and stop it"
    ok = ev(modules="ringild", settings={"services": {"ringild": {**AGENT, "healthCommands": [f"touch {marker}.ok"]}}})
    script.write_text(ok["etc"]["ringil/health-commands.sh"])
    assert subprocess.run(["bash", str(script)], timeout=30).returncode == 0
    assert Path(f"{marker}.ok").exists()


def test_ringild_generation_mode(ev):
    key = "fleet-1:" + "A" * 43 + "="
    s = {"services": {"ringild": {**AGENT, "slots": {}, "mode": "generation", "generation": {"trustedPublicKeys": [key]}}}}
    paths = ["nix.settings", "boot.lanzaboote.bootCounting.initialTries", "systemd.services.ringild.serviceConfig.Environment",
             "systemd.services.ringil-bless.serviceConfig.Environment"]
    e = ev(modules="env,disko,ringild", settings=merge(PROD, s), paths=paths).clean()
    dev = ini(e["etc"]["ringil/device.conf"])
    # The cache is the fleet server's: fetched with the drone's own TLS identity, Nix has no substituter.
    assert dev["nix"] == {"profile": "/nix/var/nix/profiles/system",
                          "substituter": "https://fleet.example:8443/nix-cache",
                          "trusted-public-keys": key,
                          "tls-ca": AGENT["caFile"], "tls-cert": "/etc/secure/ringil/device.pem",
                          "tls-key": "/etc/secure/ringil/device.key"}
    assert not any(k.startswith("slot.") for k in dev)
    assert e("nix.settings") == {"require-sigs": True, "substituters": [], "trusted-public-keys": [key]}
    assert e("boot.lanzaboote.bootCounting.initialTries") == 3
    # Store writes through nix-daemon: the sandbox keeps /nix/store read-only.
    assert e("systemd.services.ringild.serviceConfig.Environment") == ["NIX_REMOTE=daemon"]
    assert e("systemd.services.ringil-bless.serviceConfig.Environment") == ["NIX_REMOTE=daemon"]
    # Another cache (plain https): Nix fetches it itself.
    s2 = merge(s, {"services": {"ringild": {"generation": {"substituter": "https://cache.fleet.example/"}}}})
    e2 = ev(modules="env,disko,ringild", settings=merge(PROD, s2), paths=["nix.settings"]).clean()
    dev2 = ini(e2["etc"]["ringil/device.conf"])
    assert "tls-cert" not in dev2["nix"] and dev2["nix"]["substituter"] == "https://cache.fleet.example/"
    assert e2("nix.settings")["substituters"] == ["https://cache.fleet.example/"]
    # without a Nix key the generation mode refuses to build
    s3 = merge(s, {"services": {"ringild": {"generation": {"trustedPublicKeys": []}}}})
    assert any("trustedPublicKeys" in m for m in ev(modules="env,disko,ringild", settings=merge(PROD, s3))["assertions"])


@pytest.mark.parametrize("bad", [{"serverUrl": "http://fleet:80"}, {"enrollServerUrl": "http://fleet:8444"},
                                 {"bootTries": 0}, {"mode": "ab"},
                                 {"slots": {"p": {"a": "relative", "b": "/dev/x"}}}, {"healthCommands": ["a\nb"]}])
def test_ringild_rejects_bad_values(ev, bad):
    refused(ev(modules="ringild", settings={"services": {"ringild": {**AGENT, **bad}}}), "services.ringild", "is not of type")


def test_ringild_slots_needed(ev):
    e = ev(modules="ringild", settings={"services": {"ringild": {**AGENT, "slots": {}}}})
    assert any("slots" in m for m in e["assertions"])


# --- tunnel.nix ------------------------------------------------------------------------------------------

def tunnel_eval(ev, tunnel=None, agent=None, **kw):
    s = merge(GENERIC, {"services": {"ringild": merge(agent or {}, {"tunnel": tunnel or {}})}})
    return ev(modules="env,disko,ringild,tunnel", settings=s, system="x86_64-linux", **kw)


def test_tunnel_generic_drone_evaluates(ev):
    e = tunnel_eval(ev, paths=["networking.wireguard.interfaces.ringil0", "systemd.services.ringild.serviceConfig"]).clean()
    wg = e("networking.wireguard.interfaces.ringil0")
    # an IP endpoint is not re-resolved; a DNS one (the Orin drone's) is
    assert wg["peers"][0]["dynamicEndpointRefreshSeconds"] == 0
    assert e("systemd.services.ringild.serviceConfig")["RestrictNetworkInterfaces"] == ["lo", "ringil0"]


def test_tunnel_server_url_must_be_inside(ev):
    for url in ("https://fleet.example:8443", "https://10.77.0.2:8443", "https://192.0.2.1:8443"):
        e = tunnel_eval(ev, agent={"serverUrl": url})
        assert any("must name an address inside the tunnel" in m for m in e["assertions"]), (url, e["assertions"])
    # a whole tunnel subnet routed to the server side: any address in it is inside
    e = tunnel_eval(ev, tunnel={"server": {"addresses": ["10.77.0.0/24"]}}, agent={"serverUrl": "https://10.77.0.9:8443/"})
    assert e["assertions"] == []
    e = tunnel_eval(ev, tunnel={"server": {"addresses": ["fd77::1/128"]}}, agent={"serverUrl": "https://[fd77::1]:8443"})
    assert e["assertions"] == []
    # the enrollment port too: the drone's first exchange with the server goes through the tunnel
    e = tunnel_eval(ev, agent={"enrollServerUrl": "https://fleet.example:8444"})
    assert any("enrollServerUrl (https://fleet.example:8444) must name an address inside" in m for m in e["assertions"])
    e = tunnel_eval(ev, agent={"enrollServerUrl": "https://10.77.0.1:8444"})
    assert e["assertions"] == []


@pytest.mark.parametrize("key", ["/nix/store/00000000000000000000000000000000-wg/private.key", "/boot/wg.key"])
def test_tunnel_key_never_in_store_or_esp(ev, key):
    e = tunnel_eval(ev, tunnel={"privateKeyFile": key})
    assert any("must be on the encrypted root" in m for m in e["assertions"])


@pytest.mark.parametrize("bad,word", [
    ({"server": {"publicKey": "not-a-key"}}, "tunnel.server.publicKey"),
    ({"server": {"endpoint": "fleet.example.org"}}, "tunnel.server.endpoint"),
    ({"addresses": ["10.77.0.12"]}, "tunnel.addresses"),
    ({"addresses": []}, "tunnel.addresses"),
    ({"persistentKeepalive": 0}, "tunnel.persistentKeepalive"),
    ({"privateKeyFile": "relative.key"}, "tunnel.privateKeyFile"),
    ({"interface": "Wg0"}, "tunnel.interface"),
])
def test_tunnel_rejects_bad_values(ev, bad, word):
    refused(tunnel_eval(ev, tunnel=bad), word, "is not of type")


def test_tunnel_unrestricted_agent_and_networkd(ev):
    e = tunnel_eval(ev, tunnel={"restrictAgent": False}, paths=["systemd.services.ringild"]).clean()
    sc = e("systemd.services.ringild")["serviceConfig"]
    assert "RestrictNetworkInterfaces" not in sc and "IPAddressDeny" not in sc
    assert "wireguard-ringil0.service" in e("systemd.services.ringild")["requires"]
    s = merge(GENERIC, {"networking": {"wireguard": {"useNetworkd": True}}})
    e = ev(modules="env,disko,ringild,tunnel", settings=s, system="x86_64-linux")
    assert any("script backend" in m for m in e["assertions"])


def test_tunnel_key_unit_makes_a_root_only_key_once(ev, tmp_path):
    """The first-boot key script, run for real with Debian's wireguard-tools (`wg`): 0400 in a 0700 directory,
    kept on the next boot, its public key written and logged."""
    wg = shutil.which("wg")
    assert wg, "wg not found: scripts/deps.sh installs wireguard-tools"
    key = tmp_path / "var" / "lib" / "ringil" / "tunnel" / "private.key"
    e = tunnel_eval(ev, tunnel={"privateKeyFile": str(key)}, paths=["systemd.services.ringil-tunnel-key"]).clean()
    unit = e("systemd.services.ringil-tunnel-key")
    assert unit["serviceConfig"]["ReadWritePaths"] == [str(key.parent)] and unit["serviceConfig"]["UMask"] == "0077"
    # the unit's script, run as systemd would (NixOS wraps it in `set -e` bash with the unit's path)
    script = tmp_path / "keygen.sh"
    script.write_text(unit["script"])
    for _ in range(2):
        r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        assert "this drone's public key is " in r.stdout
    st = key.stat()
    assert st.st_mode & 0o777 == 0o400 and st.st_uid == 0
    assert key.parent.stat().st_mode & 0o777 == 0o700
    pub = subprocess.run([wg, "pubkey"], input=key.read_text(), capture_output=True, text=True).stdout.strip()
    assert (key.parent / "public.key").read_text().strip() == pub and pub in r.stdout
    first = key.read_text()
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=\n", first)
    # a second boot keeps the drone's identity
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and key.read_text() == first
    assert [f.name for f in key.parent.iterdir() if f.name.startswith(".")] == []


# --- mutation tests: a wrong option name, type or enum value in each module fails ------------------------

MUTATIONS = [
    # (module, original text, mutated text, words the error must contain)
    ("env", "services.openssh.enable = false;", "services.openssh.enabled = false;", ["services.openssh.enabled", "does not exist"]),
    ("env", "boot.loader.timeout = 0;", 'boot.loader.timeout = "0";', ["boot.loader.timeout", "is not of type"]),
    ("env", 'type = "hard";', 'type = "hardest";', ["security.pam.loginLimits", "is not of type"]),
    ("env", 'boot.lanzaboote = {', 'boot.lanzaboote = { logLevel = "verbose";', ["boot.lanzaboote.logLevel", "is not of type"]),
    ("disko", 'mountOptions = [ "umask=0077" ];', 'mountOption = [ "umask=0077" ];', ["mountOption", "does not exist"]),
    ("disko", 'options.ashift = "12";', "options.ashift = 12;", ["ashift", "is not of type"]),
    # (disko's partition contents are a union tagged by `type`: its own message names the bad tag)
    ("disko", 'type = "filesystem";', 'type = "filesytem";', ["filesytem", "Did you mean filesystem?"]),
    ("ringild", "restartTriggers = [ deviceConf agentConf ];", "restartTrigger = [ deviceConf agentConf ];",
     ["restartTrigger", "does not exist"]),
    ("ringild", 'requiredBy = [ "boot-complete.target" ];', 'requiredBy = "boot-complete.target";',
     ["requiredBy", "is not of type"]),
    ("ringild", 'types.enum [ "slots" "generation" ]', 'types.enum [ "slot" "generation" ]',
     ["services.ringild.mode", "is not of type"]),
    ("tunnel", "generatePrivateKeyFile = false;", "generatePrivateKeys = false;", ["generatePrivateKeys", "does not exist"]),
    ("tunnel", "inherit (cfg) persistentKeepalive;", 'persistentKeepalive = "25";', ["persistentKeepalive", "is not of type"]),
    ("jetson", "hardware.nvidia-jetpack.console.enable = false;", "hardware.nvidia-jetpack.consoles.enable = false;",
     ["hardware.nvidia-jetpack.consoles", "does not exist"]),
    ("jetson", "ftpm.enable = true;", 'ftpm.enable = "yes";', ["ftpm.enable", "is not of type"]),
    ("jetson", 'ringil.env.luks.tpm = mkDefault "optee-ftpm";', 'ringil.env.luks.tpm = mkDefault "optee";',
     ["ringil.env.luks.tpm", "is not of type"]),
    ("jetson", 'overrideStrategy = "asDropin";', 'overrideStrategy = "dropin";', ["overrideStrategy", "is not of type"]),
]


@pytest.mark.parametrize("module,old,new,words", MUTATIONS, ids=[f"{m[0]}:{m[3][0]}" for m in MUTATIONS])
def test_mutation_fails_evaluation(ev, tmp_path, module, old, new, words):
    src = (NIXDIR / "modules" / f"{module}.nix").read_text()
    assert src.count(old) == 1, f"{old!r} must occur once in {module}.nix"
    mutated = tmp_path / f"{module}.nix"
    mutated.write_text(src.replace(old, new))
    refused(ev(host="orin-drone", overrides={module: str(mutated)}), *words)


def test_mutations_cover_every_module():
    kinds = {}
    for module, _, _, words in MUTATIONS:
        kinds.setdefault(module, set()).add("name" if "does not exist" in words else "type")
    assert set(kinds) == {"env", "disko", "ringild", "tunnel", "jetson"}
    assert all(k == {"name", "type"} for k in kinds.values()), kinds


def test_unmutated_modules_evaluate(ev, tmp_path):
    """The control: the same evaluation with unmodified copies of every module is clean."""
    overrides = {}
    for m in ("env", "disko", "ringild", "tunnel", "jetson"):
        (tmp_path / f"{m}.nix").write_text((NIXDIR / "modules" / f"{m}.nix").read_text())
        overrides[m] = str(tmp_path / f"{m}.nix")
    ev(host="orin-drone", overrides=overrides).clean()


# --- audit map -------------------------------------------------------------------------------------------

def audit_map():
    rows = []
    for line in AUDIT_MAP.read_text().splitlines():
        m = re.match(r"^\| `(.+?)` \| `(.+?)` \| (\w+) \| ([^|]+) \| (.*) \|$", line.replace("\\|", "\x00"))
        if m:
            setting, value, module, checks, note = (x.replace("\x00", "|") for x in m.groups())
            ids = [] if checks.strip() == "—" else [c.strip() for c in checks.split(",")]
            rows.append(dict(setting=setting, value=value, module=module, ids=ids, note=note.strip()))
    return rows


def comp(c):
    return c if re.fullmatch(r"[\w-]+", c) else json.dumps(c)


def settings_of(defined):
    """A module's settings as map rows: one per leaf; a unit the module creates (it sets its ExecStart or
    script) is one row; kernel parameters are one row each."""
    created = {tuple(d["path"][:3]) for d in defined
               if d["path"][:1] == ["systemd"] and (d["path"][3:4] == ["script"] or d["path"][3:5] == ["serviceConfig", "ExecStart"])}
    out = {}
    for d in defined:
        path = d["path"]
        if tuple(path[:3]) in created:
            out[".".join(comp(c) for c in path[:3])] = ("(unit)", None)
        elif path == ["boot", "kernelParams"]:
            for x in d["own"]:
                out[f"boot.kernelParams ∋ {x}"] = (x, d["value"])
        else:
            out[".".join(comp(c) for c in path)] = (d["own"], d["value"])
    return out


MAPPED = ("env", "disko", "jetson", "tunnel")


@pytest.fixture(scope="module")
def prod_settings(ev):
    """What each module sets in the two prod evaluations: generic board and the Orin drone."""
    out = {}
    for name, kw in (("generic", dict(modules="env,disko,ringild,tunnel", settings=GENERIC, system="x86_64-linux")),
                     ("orin", dict(host="orin-drone"))):
        for m in MAPPED:
            out[(name, m)] = settings_of(ev(defined=m, **kw)["defined"])
    return out


def test_audit_map_matches_the_modules(prod_settings):
    rows = audit_map()
    assert len(rows) >= 90
    sources = {m: (NIXDIR / "modules" / f"{m}.nix").read_text() for m in MAPPED}
    seen = set()
    for row in rows:
        assert row["module"] in MAPPED, row
        assert row["ids"] or row["note"], f"{row['setting']}: no check and no reason"
        key = (row["setting"], row["module"])
        assert key not in seen, f"duplicate row {key}"
        seen.add(key)
        # the option is written in the module's source (its last component, or the kernel parameter)
        if " ∋ " in row["setting"]:
            needle = '"' + row["setting"].split(" ∋ ")[1].split("=")[0]
        else:
            needle = split(row["setting"])[-1]
        assert needle in sources[row["module"]], f"{row['setting']} not in {row['module']}.nix"
        where = [n for n in ("generic", "orin") if row["setting"] in prod_settings[(n, row["module"])]]
        assert where, f"{row['setting']}: {row['module']}.nix does not set it in either prod evaluation"
        for n in where:
            own, final = prod_settings[(n, row["module"])][row["setting"]]
            if row["value"] in ("(unit)", "(set)"):
                continue
            want = json.loads(row["value"])
            assert own == want, f"{row['setting']} ({n}): {row['module']}.nix sets {own!r}, the map says {want!r}"
            if " ∋ " in row["setting"]:
                assert own in final, f"{row['setting']} ({n}) is not in the final kernel command line"
            elif isinstance(own, list) and isinstance(final, list):
                assert all(x in final for x in own), f"{row['setting']} ({n}): {own!r} not all in {final!r}"
            else:
                assert final == own, f"{row['setting']} ({n}): overridden to {final!r} in the system"
    # complete for the hardening modules: every setting they make in either evaluation has a row
    missing = sorted({(s, m) for (n, m), settings in prod_settings.items() if m != "disko"
                      for s in settings if (s, m) not in seen})
    assert not missing, f"settings made by the modules but absent from nix/audit-map.md: {missing}"


def test_audit_map_check_ids_exist_in_catalogue():
    ids = sorted({i for row in audit_map() for i in row["ids"]})
    assert ids and all(re.fullmatch(r"[A-Z]+-\d+", i) for i in ids), ids
    text = AUDIT_DOC.read_text()
    unknown = [i for i in ids if not re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", text)]
    assert not unknown, f"check IDs in nix/audit-map.md missing from docs/audit.md: {unknown}"
