"""test_nix.py: the NixOS modules, evaluated by the real nix-instantiate (offline, temp store) with a stub lib.

What runs: every .nix file parses; the flake's outputs are called with stub inputs; env.nix,
disko.nix and ringild.nix are evaluated by tests/integration/nix/stub-lib.nix (a small module
evaluator with NixOS's mkIf/mkMerge/priority semantics) and their results checked; nix/audit-map.md
is checked against the evaluated prod configuration, the module sources and the audit catalogue.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NIXDIR = ROOT / "nix"
HERE = Path(__file__).resolve().parent / "nix"
AUDIT_DOC = ROOT / "docs" / "audit.md"
AUDIT_MAP = NIXDIR / "audit-map.md"

PROD = {"ringil": {"env": {"mode": "prod", "hostId": "8425e349"}}}
DEV = {"ringil": {"env": {"mode": "dev", "dev": {"authorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake dev"]}}}}
AGENT = {
    "enable": True,
    "serverUrl": "https://fleet.example:8443",
    "caFile": "/etc/secure/ringil/fleet-ca.pem",
    "compatible": "orin-agx-drone",
    "slots": {"payload": {"a": "/dev/zvol/zroot/payload-a", "b": "/dev/zvol/zroot/payload-b"}},
}


@pytest.fixture(scope="session")
def nix(tmp_path_factory):
    """Runs nix-instantiate against a throw-away local store, never a daemon or /nix."""
    exe = shutil.which("nix-instantiate")
    assert exe, "nix-instantiate not found: scripts/deps.sh installs nix-bin"
    tmp = tmp_path_factory.mktemp("nixstore")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIX_")}
    env.update(HOME=str(tmp), XDG_CACHE_HOME=str(tmp / "cache"))
    store = ["--store", f"local?root={tmp}/root"]

    def run(*args, check=True):
        p = subprocess.run([exe, *store, *args], capture_output=True, text=True, env=env, timeout=60)
        if check:
            assert p.returncode == 0, f"nix-instantiate {' '.join(args)} failed:\n{p.stderr}"
        return p

    return run


def evaluate(nix, modules, settings=None, host="", check=True):
    args = ["--eval", "--strict", "--json", str(HERE / "eval.nix"), "--argstr", "module", modules,
            "--argstr", "settings", json.dumps(settings or {})]
    if host:
        args += ["--argstr", "host", host]
    p = nix(*args, check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def get(tree, dotted):
    """tree["a"]["b"]… for 'a.b.…' with "quoted" components; None when absent."""
    for part in re.findall(r'"[^"]*"|[^.]+', dotted):
        part = part.strip('"')
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def failed_assertions(result):
    return [a["message"] for a in result.get("assertions", []) if not a["assertion"]]


# --- parsing ---------------------------------------------------------------------------------

def test_every_nix_file_parses(nix):
    files = sorted(NIXDIR.rglob("*.nix")) + sorted(HERE.glob("*.nix"))
    assert len(files) >= 9
    for f in files:
        nix("--parse", str(f))


def test_parse_rejects_broken_nix(nix, tmp_path):
    bad = tmp_path / "bad.nix"
    bad.write_text("{ a = 1; b = ; }\n")
    assert nix("--parse", str(bad), check=False).returncode != 0


def test_flake_outputs(nix):
    p = nix("--eval", "--strict", "--json", str(HERE / "flake-eval.nix"))
    f = json.loads(p.stdout)
    assert set(f["inputs"]) == {"nixpkgs", "lanzaboote", "disko", "jetpack-nixos"}
    for name, url in f["inputs"].items():
        assert re.fullmatch(r"github:[\w-]+/[\w.-]+/[\w.-]+", url), f"{name} not pinned to a ref: {url}"
    assert all(f["follows"][i] == "nixpkgs" for i in ("lanzaboote", "disko", "jetpack-nixos"))
    assert f["packages"] == {s: ["default", "ringil"] for s in ("aarch64-linux", "x86_64-linux")}
    assert f["packageSrcIsPath"]
    assert f["modules"]["ringil-env"] == ["lanzaboote", "env.nix"]
    assert f["modules"]["ringil-disko"] == ["disko", "disko.nix"]
    assert f["modules"]["ringild"] == ["ringild.nix"]
    assert len(f["modules"]["default"]) == 3
    assert f["ringildPackageDefault"] == "aarch64-linux"
    assert f["drone"]["system"] == "aarch64-linux"
    assert f["drone"]["modules"] == ["jetpack", "function", "orin-drone.nix"]


def test_package_declares_build_inputs():
    src = (NIXDIR / "package.nix").read_text()
    for dep in ("meson", "ninja", "pkg-config", "openssl", "jansson", "curl", "sqlite", "cmocka"):
        assert re.search(rf"^\s*, {re.escape(dep)}$", src, re.M), f"package.nix does not take {dep}"
    assert "stdenv.mkDerivation" in src


# --- env.nix ---------------------------------------------------------------------------------

def test_prod_applies_the_seed(nix):
    r = evaluate(nix, "env", PROD)["result"]
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
        "boot.lanzaboote.enable": True,
        "boot.lanzaboote.pkiBundle": "/etc/secure/keys",
        "swapDevices": [],
        "users.mutableUsers": False,
        "networking.hostId": "8425e349",
        "boot.initrd.luks.devices.crypted.crypttabExtraOpts": ["tpm2-device=auto"],
    }
    for k, v in seed.items():
        assert get(r, k) == v, f"{k} = {get(r, k)!r}, want {v!r}"
    assert r["boot"]["kernelParams"][:3] == ["quiet", "loglevel=0", "console=tty0"]
    for p in ("nohibernate", "init_on_free=1", "lockdown=confidentiality"):
        assert p in r["boot"]["kernelParams"]
    sysctl = r["boot"]["kernel"]["sysctl"]
    assert sysctl["kernel.kptr_restrict"] == 2 and sysctl["kernel.dmesg_restrict"] == 1
    assert sysctl["kernel.unprivileged_bpf_disabled"] == 1 and sysctl["kernel.kexec_load_disabled"] == 1
    assert sysctl["kernel.yama.ptrace_scope"] == 2 and sysctl["kernel.core_pattern"] == "|/bin/false"
    assert "AllowHibernation=no" in r["systemd"]["sleep"]["extraConfig"]
    assert r["systemd"]["coredump"]["enable"] is False
    enroll = r["systemd"]["services"]["ringil-tpm-enroll"]
    assert enroll["unitConfig"]["ConditionPathExists"] == "/etc/secure/luks-enroll.key"
    assert enroll["serviceConfig"]["ExecStart"].endswith("-ringil-tpm-enroll")


def test_prod_mkforce_beats_other_modules(nix):
    """jetpack-nixos adds console=ttyTCU0 and NixOS sets root passwords/systemd-boot: prod must win."""
    other = {"boot": {"kernelParams": ["console=ttyTCU0,115200", "fbcon=map:0"],
                      "loader": {"systemd-boot": {"enable": True}}},
             "users": {"users": {"root": {"hashedPassword": "$6$x"}}},
             "swapDevices": [{"device": "/swapfile"}]}
    s = evaluate(nix, "env", {**PROD, **other})["system"]
    assert not any("ttyTCU0" in p for p in s["boot"]["kernelParams"])
    assert s["boot"]["loader"]["systemd-boot"]["enable"] is False
    assert s["users"]["users"]["root"]["hashedPassword"] == "!"
    assert s["swapDevices"] == []
    # the same definitions in dev are kept: dev does not force anything
    d = evaluate(nix, "env", {**DEV, **other})["system"]
    assert "console=ttyTCU0,115200" in d["boot"]["kernelParams"]
    assert d["users"]["users"]["root"]["hashedPassword"] == "$6$x"


def test_prod_extra_params_and_lockdown_level(nix):
    s = {"ringil": {"env": {"mode": "prod", "lockdown": "integrity", "extraKernelParams": ["iommu.passthrough=0"]}}}
    params = evaluate(nix, "env", s)["result"]["boot"]["kernelParams"]
    assert "lockdown=integrity" in params and "iommu.passthrough=0" in params
    assert "lockdown=confidentiality" not in params


def test_dev_keeps_systemd_boot_and_key_only_ssh(nix):
    r = evaluate(nix, "env", DEV)["result"]
    assert r["services"]["openssh"]["enable"] is True
    ssh = r["services"]["openssh"]["settings"]
    assert ssh["PasswordAuthentication"] is False and ssh["KbdInteractiveAuthentication"] is False
    assert ssh["PermitRootLogin"] == "prohibit-password"
    assert r["boot"]["loader"]["systemd-boot"]["enable"] is True
    assert "lanzaboote" not in r["boot"]
    assert get(r, "users.users.root.hashedPassword") is None
    assert get(r, "users.users.root.openssh.authorizedKeys.keys") == DEV["ringil"]["env"]["dev"]["authorizedKeys"]
    assert failed_assertions(r) == []


def test_dev_without_keys_fails_its_assertion(nix):
    r = evaluate(nix, "env", {"ringil": {"env": {"mode": "dev"}}})["result"]
    assert any("authorizedKeys" in m for m in failed_assertions(r))


@pytest.mark.parametrize("settings,word", [
    ({"ringil": {"env": {"mode": "test"}}}, "ringil.env.mode"),
    ({"ringil": {"env": {"lockdown": "none"}}}, "ringil.env.lockdown"),
    ({"ringil": {"env": {"hostId": "not-hex!"}}}, "ringil.env.hostId"),
])
def test_env_rejects_bad_values(nix, settings, word):
    p = evaluate(nix, "env", settings, check=False)
    assert isinstance(p, subprocess.CompletedProcess) and p.returncode != 0
    assert word in p.stderr


# --- disko.nix -------------------------------------------------------------------------------

def test_disko_layout(nix):
    r = evaluate(nix, "env,disko", PROD)["result"]
    assert failed_assertions(r) == []
    disk = r["disko"]["devices"]["disk"]["main"]
    assert disk["device"] == "/dev/nvme0n1" and disk["content"]["type"] == "gpt"
    esp = disk["content"]["partitions"]["ESP"]
    assert esp["type"] == "EF00" and esp["content"]["format"] == "vfat"
    assert esp["content"]["mountOptions"] == ["umask=0077"]
    luks = disk["content"]["partitions"]["luks"]["content"]
    assert luks["type"] == "luks" and luks["name"] == "crypted"
    assert luks["extraFormatArgs"][:2] == ["--type", "luks2"]
    assert luks["content"] == {"type": "zfs", "pool": "zroot"}
    pool = r["disko"]["devices"]["zpool"]["zroot"]
    assert pool["datasets"]["root"]["mountpoint"] == "/"
    assert pool["datasets"]["root/nix"]["mountpoint"] == "/nix"
    assert pool["rootFsOptions"]["mountpoint"] == "none"
    assert r["warnings"] == []


def test_disko_emmc_and_xavier(nix):
    emmc = {**PROD, "ringil": {**PROD["ringil"], "disko": {"target": "emmc"}}}
    r = evaluate(nix, "env,disko", emmc)["result"]
    assert r["disko"]["devices"]["disk"]["main"]["device"] == "/dev/mmcblk0"
    assert any("Xavier" in w for w in r["warnings"])
    assert failed_assertions(r) == []
    xavier = {**emmc, "hardware": {"nvidia-jetpack": {"som": "xavier-agx"}}}
    r = evaluate(nix, "env,disko", xavier)["result"]
    assert any("eMMC" in m for m in failed_assertions(r))


def test_disko_needs_host_id(nix):
    r = evaluate(nix, "env,disko", {"ringil": {"env": {"mode": "prod"}}})["result"]
    assert any("hostId" in m for m in failed_assertions(r))


# --- ringild.nix -----------------------------------------------------------------------------

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


def test_ringild_slots_config_and_units(nix):
    ev = evaluate(nix, "ringild", {"services": {"ringild": {**AGENT, "healthCommands": ["true"]}}})
    r = ev["result"]
    assert failed_assertions(r) == []
    dev = ini(ev["etc"]["ringil/device.conf"])
    assert dev["device"]["compatible"] == "orin-agx-drone"
    assert dev["device"]["keyring"] == "/etc/secure/keys/keys/db/db.pem"
    assert dev["device"]["esp"] == "/boot" and dev["device"]["state-dir"] == "/var/lib/ringil"
    assert dev["device"]["health-hook"].endswith("-ringil-health-commands")
    assert dev["slot.payload.a"] == {"device": "/dev/zvol/zroot/payload-a"}
    assert dev["slot.payload.b"] == {"device": "/dev/zvol/zroot/payload-b"}
    assert "nix" not in dev
    agent = {}
    for line in ev["etc"]["ringil/ringild.conf"].splitlines():
        if line and not line.startswith("#"):
            k, v = (x.strip() for x in line.split("=", 1))
            assert k not in agent
            agent[k] = v
    assert agent["server"] == AGENT["serverUrl"] and agent["ca"] == AGENT["caFile"]
    assert agent["cert"] == "/etc/secure/ringil/device.pem" and agent["key"] == "/etc/secure/ringil/device.key"
    assert agent["device-config"] == "/etc/ringil/device.conf" and agent["poll-interval"] == "300"
    assert agent["ringil"].endswith("-ringil/bin/ringil")

    units = r["systemd"]["services"]
    health, bless, agentu = units["ringil-health"], units["ringil-bless"], units["ringild"]
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
    assert "nix" not in r


def test_ringild_health_script_runs_every_command(nix, tmp_path):
    marker = tmp_path / "ran"
    cmds = [f"touch {marker}", "false", f"rm {marker}"]
    ev = evaluate(nix, "ringild", {"services": {"ringild": {**AGENT, "healthCommands": cmds}}})
    script = tmp_path / "health.sh"
    script.write_text(ev["etc"]["ringil/health-commands.sh"])
    p = subprocess.run(["bash", str(script)], capture_output=True, timeout=30)
    assert p.returncode != 0 and marker.exists(), "a failing health command must fail the gate and stop it"
    ok = evaluate(nix, "ringild", {"services": {"ringild": {**AGENT, "healthCommands": [f"touch {marker}.ok"]}}})
    script.write_text(ok["etc"]["ringil/health-commands.sh"])
    assert subprocess.run(["bash", str(script)], timeout=30).returncode == 0
    assert Path(f"{marker}.ok").exists()


def test_ringild_generation_mode(nix):
    key = "fleet-1:" + "A" * 43 + "="
    s = {"services": {"ringild": {**AGENT, "slots": {}, "mode": "generation", "generation": {"trustedPublicKeys": [key]}}}}
    ev = evaluate(nix, "ringild", s)
    r = ev["result"]
    assert failed_assertions(r) == []
    dev = ini(ev["etc"]["ringil/device.conf"])
    # The cache is the fleet server's: fetched with the drone's own TLS identity, Nix has no substituter.
    assert dev["nix"] == {"profile": "/nix/var/nix/profiles/system",
                          "substituter": "https://fleet.example:8443/nix-cache",
                          "trusted-public-keys": key,
                          "tls-ca": AGENT["caFile"], "tls-cert": "/etc/secure/ringil/device.pem",
                          "tls-key": "/etc/secure/ringil/device.key"}
    assert not any(k.startswith("slot.") for k in dev)
    assert r["nix"]["settings"] == {"require-sigs": True, "substituters": [], "trusted-public-keys": [key]}
    # Another cache (plain https, e.g. behind the tunnel): Nix fetches it itself.
    s2 = json.loads(json.dumps(s))
    s2["services"]["ringild"]["generation"]["substituter"] = "https://cache.fleet.example/"
    ev2 = evaluate(nix, "ringild", s2)
    dev2 = ini(ev2["etc"]["ringil/device.conf"])
    assert "tls-cert" not in dev2["nix"] and dev2["nix"]["substituter"] == "https://cache.fleet.example/"
    assert ev2["result"]["nix"]["settings"]["substituters"] == ["https://cache.fleet.example/"]
    assert r["boot"]["lanzaboote"]["bootCounting"]["initialTries"] == 3
    # Store writes through nix-daemon: the sandbox keeps /nix/store read-only.
    for unit in ("ringild", "ringil-bless"):
        assert r["systemd"]["services"][unit]["serviceConfig"]["Environment"] == ["NIX_REMOTE=daemon"]
    # without a Nix key the generation mode refuses to build
    s["services"]["ringild"]["generation"]["trustedPublicKeys"] = []
    assert any("trustedPublicKeys" in m for m in failed_assertions(evaluate(nix, "ringild", s)["result"]))


def test_ringild_rejects_bad_values(nix):
    for bad in ({"serverUrl": "http://fleet:80"}, {"bootTries": 0}, {"mode": "ab"},
                {"slots": {"p": {"a": "relative", "b": "/dev/x"}}}, {"healthCommands": ["a\nb"]}):
        p = evaluate(nix, "ringild", {"services": {"ringild": {**AGENT, **bad}}}, check=False)
        assert isinstance(p, subprocess.CompletedProcess) and p.returncode != 0, bad
        assert "services.ringild" in p.stderr, p.stderr
    r = evaluate(nix, "ringild", {"services": {"ringild": {**AGENT, "slots": {}}}})["result"]
    assert any("slots" in m for m in failed_assertions(r))


def test_example_drone_evaluates(nix):
    ev = evaluate(nix, "env,disko,ringild", host="orin-drone")
    r = ev["result"]
    assert failed_assertions(r) == [] and r["warnings"] == []
    assert r["boot"]["lanzaboote"]["enable"] is True
    assert r["disko"]["devices"]["zpool"]["zroot"]["datasets"]["payload-a"]["type"] == "zfs_volume"
    assert ini(ev["etc"]["ringil/device.conf"])["slot.payload.a"]["device"] == "/dev/zvol/zroot/payload-a"


# --- audit map -------------------------------------------------------------------------------

def audit_map():
    rows = []
    for line in AUDIT_MAP.read_text().splitlines():
        m = re.match(r"^\| `(.+?)` \| `(.+?)` \| (\w+) \| ([^|]+) \| (.*) \|$", line.replace("\\|", "\x00"))
        if m:
            setting, value, module, checks, note = (x.replace("\x00", "|") for x in m.groups())
            ids = [] if checks.strip() == "—" else [c.strip() for c in checks.split(",")]
            rows.append(dict(setting=setting, value=value, module=module, ids=ids, note=note.strip()))
    return rows


def flatten(tree, path=()):
    """Leaf settings of an evaluated config, as option paths; a unit definition is one setting."""
    if isinstance(tree, dict) and tree and not (
            path[:2] == ("systemd", "services") and len(path) == 3 and set(tree) - {"enable"}):
        for k, v in tree.items():
            yield from flatten(v, path + (k if re.fullmatch(r"[\w-]+", k) else json.dumps(k),))
    elif isinstance(tree, list) and tree and all(isinstance(x, str) for x in tree) and path == ("boot", "kernelParams"):
        for x in tree:
            yield ".".join(path) + " ∋ " + x, x
    else:
        yield ".".join(path), tree


def test_audit_map_matches_the_modules(nix):
    rows = audit_map()
    assert len(rows) >= 60
    results = {"env": evaluate(nix, "env", PROD)["result"], "disko": evaluate(nix, "env,disko", PROD)["result"]}
    sources = {m: (NIXDIR / "modules" / f"{m}.nix").read_text() for m in results}
    mapped = {}
    for row in rows:
        assert row["module"] in results, row
        assert row["ids"] or row["note"], f"{row['setting']}: no check and no reason"
        mapped[row["setting"]] = row
        # the option is written in the module's source (its last component, or the kernel parameter)
        if " ∋ " in row["setting"]:
            needle = '"' + row["setting"].split(" ∋ ")[1].split("=")[0]
        else:
            needle = re.findall(r'"[^"]*"|[^.]+', row["setting"])[-1]
        assert needle in sources[row["module"]], f"{row['setting']} not in {row['module']}.nix"
        # and it evaluates to the value the map claims
        leaves = dict(flatten(results[row["module"]]))
        if row["value"] in ("(unit)", "(set)"):
            assert row["setting"] in leaves or get(results[row["module"]], row["setting"]) is not None, row["setting"]
        elif " ∋ " in row["setting"]:
            assert row["setting"] in leaves, f"{row['setting']} not in the evaluated prod kernelParams"
        else:
            assert get(results[row["module"]], row["setting"]) == json.loads(row["value"]), row["setting"]
    # complete: every setting prod mode produces is in the map
    missing = [k for k, _ in flatten(results["env"]) if k not in mapped]
    assert not missing, f"settings enforced by env.nix but absent from nix/audit-map.md: {missing}"


def test_audit_map_check_ids_exist_in_catalogue():
    ids = sorted({i for row in audit_map() for i in row["ids"]})
    assert ids and all(re.fullmatch(r"[A-Z]+-\d+", i) for i in ids), ids
    text = AUDIT_DOC.read_text()
    unknown = [i for i in ids if not re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", text)]
    assert not unknown, f"check IDs in nix/audit-map.md missing from docs/audit.md: {unknown}"
