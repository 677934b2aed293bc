#!/usr/bin/env bash
# fleet-demo.sh: the fleet end to end on localhost in about a minute: device CA, a server with SQLite, two
# signed bundles, five drones (real ringild agents, file slots, simulated systemd-boot, each auditing its
# own prod root), a canary rollout 1.0 -> 2.0 (canary of one, a soak, then the rest), and the drift report;
# then NixOS generation mode: `ringil release` publishes a built system and a drone installs it.
# Usage: scripts/fleet-demo.sh [BUILD]. Everything lives in a temporary directory removed at the end.
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
W=$(mktemp -d /tmp/ringil-fleet-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT
export RINGIL_BUILD=$build PYTHONPATH=$PWD/tests/integration
/usr/bin/python3 - "$W" <<'EOF'
import json, os, shutil, sys, time
from pathlib import Path
import audit_fixture as fx
from fleetsim import AuditedDrone, Pki, Server, overlay_image, run

w = Path(sys.argv[1]); b = Path(os.environ["RINGIL_BUILD"])
ringil, ringild, server = b / "ringil/ringil", b / "ringild/ringild", b / "ringil-server/ringil-server"
def say(s): print(f"\n\033[1m== {s}\033[0m", flush=True)
def show(cmd, p): print("$ " + cmd); print(p.out.rstrip())

say("device CA, server and operator certificates; a bundle signing key")
db = os.environ.get("RINGIL_DEMO_DB_KEY"), os.environ.get("RINGIL_DEMO_DB_CERT")
pki = Pki(ringil, w / "pki", signer=db if all(db) else None)
print("\n".join(sorted(str(p.relative_to(w)) for p in (w / "pki").rglob("*.pem"))))
say("two signed bundles: 1.0 and 2.0 (each slot image carries the files it adds to the drone's root)")
for i, v in enumerate(("1.0", "2.0")):
    (w / f"img-{v}").write_bytes(overlay_image({"opt/release": f"{v}\n".encode()}, 1 << 20, i))
    pki.bundle(v, w / f"img-{v}", w / f"v{v}.bundle")
    subject = run(["openssl", "x509", "-noout", "-subject", "-in", w / "pki" / "sign.pem"]).stdout.decode().strip()
    print(f"v{v}.bundle: {(w / f'v{v}.bundle').stat().st_size} bytes, signed by {subject}")
say("a prod drone root for `ringil audit --root` (Secure Boot in deployed mode with the fleet's keys, LUKS2+TPM2, ...)")
(w / "certs").mkdir()
fx.build_golden(w / "golden", fx.Certs(w / "certs"))
print(f"{sum(1 for _ in (w / 'golden').rglob('*'))} files; each drone audits its own copy")
say("ringil-server on 127.0.0.1 (SQLite in WAL mode, mutual TLS, rollout scheduler every second)")
srv = Server(server, pki, w / "server", poll_interval=1, extra="scheduler-interval = 1\n").start()
print(f"listening on {srv.url}")
try:
    say("five drones: factory image 1.0 in slot a, enrolled with one-time tokens, audited at start")
    # drone-5 drifted on its own before the rollout: someone made its journal persistent
    shutil.copytree(w / "golden", w / "golden-5", symlinks=True)
    fx.MUTATIONS["LOG-003"](w / "golden-5", None)
    drones = []
    for i in range(1, 6):
        d = AuditedDrone(f"drone-{i}", w / f"drone-{i}", ringil, ringild, pki, w / ("golden-5" if i == 5 else "golden"))
        d.provision(w / "v1.0.bundle")
        d.enroll(srv)
        drones.append(d)
    for d in drones:
        d.agent(check=True)
    show("ringil-server drones", srv.op("drones"))
    say("upload 2.0 (verified against the fleet keyring) and create a rollout: a canary of one, then the rest")
    rid = srv.op("upload", w / "v2.0.bundle").out.strip()
    names = ",".join(d.name for d in drones)
    ro = srv.op("rollout", "create", rid, "--drones", names, "--groups", "1,rest", "--soak", "3s",
                "--error-count", "1", "--deadline", "5m", "--name", "v2").out.strip()
    show(f"ringil-server rollout create {rid} --drones {names} --groups 1,rest --soak 3s --error-count 1", srv.op("rollout", "show", ro))
    srv.op("rollout", "start", ro)

    def poll(d):
        """One agent run, playing the boot loader when it asked for a reboot."""
        if d.reboot_requested():
            print(f"{d.name}: reboot requested -> boots {d.boot()}")
        d.agent()

    say("rollout start: each drone's agent checks in; only the canary is handed 2.0")
    for d in drones:
        poll(d)
    canary = [d for d in drones if json.loads(srv.op("status", d.name, "--json").out).get("state") == "rebooting"]
    print(f"handed so far: {', '.join(d.name for d in canary)}")
    for _ in range(2):
        for d in canary:
            poll(d)
    show(f"ringil-server rollout show {ro}", srv.op("rollout", "show", ro))
    say("the canary blessed 2.0 and its audit after the update is clean: after the 3 s soak the rest follow")
    deadline = time.time() + 60
    while time.time() < deadline and json.loads(srv.op("rollout", "show", ro, "--json").out)["state"] != "finished":
        for d in drones:
            poll(d)
        time.sleep(0.5)
    show(f"ringil-server rollout show {ro}", srv.op("rollout", "show", ro))
    say("drift report: who runs another release, fails the prod profile, lacks Secure Boot or went silent")
    show("ringil-server drift --silent-polls 60", srv.op("drift", "--silent-polls", "60"))
    show("ringil-server metrics | grep -E 'rollout_members|drift_drones'",
         type("P", (), {"out": "\n".join(l for l in srv.op("metrics").out.splitlines()
                                         if l.startswith(("ringil_rollout_members", "ringil_drift_drones")))})())
    say("the operator dashboard: the same fleet in a browser, over the same mutual TLS")
    import html, re, ssl, urllib.request
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(w / "pki/op/alice.pem"), str(w / "pki/op/alice.key"))
    page = urllib.request.urlopen(srv.url + "/ui/", context=ctx, timeout=30).read().decode()
    cards = re.findall(r'data-state="([a-z-]+)"><a [^>]*><span class="n">(\d+)</span>', page)
    print(f"GET {srv.url}/ui/ with alice's certificate: " + ", ".join(f"{n} {s}" for s, n in cards if n != "0"))
    page = urllib.request.urlopen(f"{srv.url}/ui/rollout?id={ro}", context=ctx, timeout=30).read().decode()
    groups = re.findall(r'data-group="(\d+)" data-blessed="(\d+)" data-failed="(\d+)"', page)
    print(f"GET {srv.url}/ui/rollout?id={ro}: " + ", ".join(f"group {g}: {b} blessed, {f} failed" for g, b, f in groups))
    p12 = w / "pki/op/alice.p12"
    run(["openssl", "pkcs12", "-export", "-in", w / "pki/op/alice.pem", "-inkey", w / "pki/op/alice.key",
         "-name", "alice (ringil operator)", "-out", p12, "-passout", "pass:ringil-demo"])
    print(f"""
dashboard: {srv.url}/ui/   (this rollout: {srv.url}/ui/rollout?id={ro})
  A browser needs the operator's certificate (without it the TLS handshake fails: ERR_BAD_SSL_CLIENT_AUTH_CERT):
  - import {p12} (password: ringil-demo) as one of "Your certificates"
    (Chromium/Chrome on Linux: pk12util -i {p12} -d sql:$HOME/.pki/nssdb -W ringil-demo;
     Firefox: Settings > Privacy & Security > Certificates > View Certificates > Your Certificates > Import);
  - trust {pki.ca} as an authority for websites
    (certutil -A -d sql:$HOME/.pki/nssdb -n "ringil fleet CA" -t C,, -i {pki.ca}; Firefox: Authorities > Import);
  - open the address above and pick "alice" when the browser asks for a certificate.""")
    if sys.stdin.isatty() and os.environ.get("RINGIL_DEMO_WAIT", "1") != "0":
        input("The server keeps running for you: press Enter to stop it and remove the demo files. ")
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
