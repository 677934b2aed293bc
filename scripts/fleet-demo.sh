#!/usr/bin/env bash
# fleet-demo.sh: the fleet end to end on localhost in under a minute: device CA, a server with SQLite, two
# signed bundles, three simulated drones (file slots, simulated systemd-boot) updated v1 -> v2, status.
# Usage: scripts/fleet-demo.sh [BUILD]. Everything lives in a temporary directory removed at the end.
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
W=$(mktemp -d /tmp/ringil-fleet-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT
export RINGIL_BUILD=$build PYTHONPATH=$PWD/tests/integration
/usr/bin/python3 - "$W" <<'EOF'
import os, sys
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
EOF
