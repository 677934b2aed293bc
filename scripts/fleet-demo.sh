#!/usr/bin/env bash
# fleet-demo.sh: the fleet end to end on localhost in under a minute: device CA, a server with SQLite, two
# signed bundles, three simulated drones (file slots, simulated systemd-boot) updated v1 -> v2, status;
# then NixOS generation mode: `ringil release` publishes a built system and a drone installs it.
# Usage: scripts/fleet-demo.sh [BUILD]. Everything lives in a temporary directory removed at the end.
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
W=$(mktemp -d /tmp/ringil-fleet-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT
export RINGIL_BUILD=$build PYTHONPATH=$PWD/tests/integration
/usr/bin/python3 - "$W" <<'EOF'
import os, shutil, sys
from pathlib import Path
from fleetsim import Pki, Server, SimDrone, run

w = Path(sys.argv[1]); b = Path(os.environ["RINGIL_BUILD"])
ringil, ringild, server = b / "ringil/ringil", b / "ringild/ringild", b / "ringil-server/ringil-server"
def say(s): print(f"\n\033[1m== {s}\033[0m", flush=True)
def show(cmd, p): print("$ " + cmd); print(p.out.rstrip())

say("device CA, server and operator certificates; a bundle signing key")
db = os.environ.get("RINGIL_DEMO_DB_KEY"), os.environ.get("RINGIL_DEMO_DB_CERT")
pki = Pki(ringil, w / "pki", signer=db if all(db) else None)
print("\n".join(sorted(str(p.relative_to(w)) for p in (w / "pki").rglob("*.pem"))))
say("two signed bundles: 1.0 and 2.0")
for v in ("1.0", "2.0"):
    (w / f"img-{v}").write_bytes(os.urandom(1 << 20))
    pki.bundle(v, w / f"img-{v}", w / f"v{v}.bundle")
    subject = run(["openssl", "x509", "-noout", "-subject", "-in", w / "pki" / "sign.pem"]).stdout.decode().strip()
    print(f"v{v}.bundle: {(w / f'v{v}.bundle').stat().st_size} bytes, signed by {subject}")
say("ringil-server on 127.0.0.1 (SQLite in WAL mode, mutual TLS)")
srv = Server(server, pki, w / "server", poll_interval=1).start()
print(f"listening on {srv.url}")
try:
    say("three drones: factory image 1.0 in slot a, enrolled with one-time tokens")
    drones = []
    for i in range(1, 4):
        d = SimDrone(f"drone-{i}", w / f"drone-{i}", ringil, ringild, pki)
        d.provision(w / "v1.0.bundle")
        d.enroll(srv)
        drones.append(d)
    show("ringil-server drones", srv.op("drones"))
    say("upload 2.0 (the server verifies it against the fleet keyring) and release it to the fleet")
    rid = srv.op("upload", w / "v2.0.bundle").out.strip()
    show(f"ringil-server release {rid} --fleet", srv.op("release", rid, "--fleet"))
    say("each drone: ringild --once (download, verify, install, reboot), boot, ringild --once (health, mark-good)")
    for d in drones:
        d.agent(check=True)
        assert d.reboot_requested()
        print(f"{d.name}: installed 2.0 into slot b, rebooting -> boots {d.boot()}")
        d.agent(check=True)
    say("fleet status")
    show("ringil-server drones", srv.op("drones"))
    show("ringil-server status drone-1", srv.op("status", "drone-1"))
finally:
    srv.stop()

# NixOS generation mode: from a built system to an installed generation with one command. The systems are
# built by /bin/sh derivations in a chroot store (as the tests do), so this runs on any machine with
# Debian's nix-bin, as root, offline.
if shutil.which("nix-build") is None or os.geteuid() != 0:
    print("\n(NixOS generation demo skipped: needs nix-bin and root)")
    sys.exit(0)
from conftest import Run
from test_nixgen import NIX_OFFLINE, SYSTEM_NIX, FleetDrone
nd = w / "nixos"
nd.mkdir()
(nd / "system.nix").write_text(SYSTEM_NIX)
(nd / "switch.log").write_text("")
shutil.copyfile(w / "pki" / "sign.key", nd / "db.key")
shutil.copyfile(w / "pki" / "sign.pem", nd / "db.pem")
say("NixOS generation mode: two system versions built in a chroot store; the fleet's Nix key")
paths = {}
for v in ("1.0", "2.0"):
    paths[v] = run(["nix-build", "--store", nd / "build", *NIX_OFFLINE, "--option", "sandbox-paths", "/bin /lib /lib64 /usr",
                    "--no-out-link", nd / "system.nix", "--argstr", "v", v, "--argstr", "log", nd / "switch.log"]).out.strip()
    print(f"{v}: {paths[v]}")
run(["nix-store", "--generate-binary-cache-key", "fleet-1", nd / "fleet.sk", nd / "fleet.pk"])
pk = (nd / "fleet.pk").read_text().strip()
print(f"fleet Nix key: {pk}")
(nd / "cache").mkdir()
srv = Server(server, pki, w / "server-nix", poll_interval=1,
             extra=f"nix-cache = {nd / 'cache'}\nnix-trusted-public-keys = {pk}\n").start()
env = dict(os.environ, RINGIL_FLEET_SERVER=srv.url, RINGIL_FLEET_CA=str(pki.ca),
           RINGIL_FLEET_CERT=str(pki.dir / "op" / "alice.pem"), RINGIL_FLEET_KEY=str(pki.dir / "op" / "alice.key"))
def release(v):
    cmd = [ringil, "release", "--system", paths[v], "--nix-store", nd / "build", "--nix-key", nd / "fleet.sk",
           "--key", nd / "db.key", "--cert", nd / "db.pem", "--compatible", "drone-x1", "--version", v, "--assign", "fleet"]
    show(f"ringil release --system {paths[v]} --nix-key fleet.sk --key db.key --cert db.pem --compatible drone-x1 "
         f"--version {v} --assign fleet", run(cmd, env=env))
try:
    world = {"dir": nd, "fleet_pk": pk, "log": nd / "switch.log", "paths": paths}
    dr = FleetDrone(w / "gen-drone", world, Run(ringil), srv, pki, name="drone-gen")
    for v in ("1.0", "2.0"):
        say(f"release {v}: sign, publish what the fleet cache lacks, bundle signed with db, release, assign")
        release(v)
        dr.agent()
        assert dr.system() == paths[v], dr.agent_log
        print(f"drone-gen: fetched the closure from the server's cache with its own certificate, "
              f"switch-to-configuration boot ran: {dr.log_lines()[-1].split('/')[-3]}")
        dr.reboot()
        dr.boot()
        dr.agent()
        print(f"drone-gen: rebooted into {v}, health gate passed, blessed; server says: {srv.drone('drone-gen')['state']}")
    say("the same commit released again (a CI retry): nothing is published twice")
    release("2.0")
finally:
    srv.stop()
EOF
