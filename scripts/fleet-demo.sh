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
    say("the operator dashboard: the same fleet in a browser, over the same mutual TLS")
    import html, re, ssl, urllib.request
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(w / "pki/op/alice.pem"), str(w / "pki/op/alice.key"))
    page = urllib.request.urlopen(srv.url + "/ui/", context=ctx, timeout=30).read().decode()
    cards = re.findall(r'data-state="([a-z-]+)"><a [^>]*><span class="n">(\d+)</span>', page)
    print(f"GET {srv.url}/ui/ with alice's certificate: " + ", ".join(f"{n} {s}" for s, n in cards if n != "0"))
    p12 = w / "pki/op/alice.p12"
    run(["openssl", "pkcs12", "-export", "-in", w / "pki/op/alice.pem", "-inkey", w / "pki/op/alice.key",
         "-name", "alice (ringil operator)", "-out", p12, "-passout", "pass:ringil-demo"])
    print(f"""
dashboard: {srv.url}/ui/
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
EOF
