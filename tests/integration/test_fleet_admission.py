"""test_fleet_admission.py: the fleet server under hostile clients: admission, deadlines, early answers, config checks."""
import json
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import binary
from fleetsim import Pki, Server, request, run, tls_context


@pytest.fixture(scope="module")
def pki():
    d = Path(tempfile.mkdtemp(prefix="ringil-admission-"))
    p = Pki(binary("ringil"), d / "pki")
    run([binary("ringil"), "ca", "issue", "--dir", d / "pki" / "ca", "--name", "drone-a", "--out-dir", d / "pki" / "da"])
    yield p
    shutil.rmtree(d, ignore_errors=True)


def fleet_load():
    exe = Path(os.environ.get("RINGIL_BUILD", "build")) / "bench" / "fleet-load"
    if not exe.exists():
        pytest.skip("bench/fleet-load not built")
    return exe


def drone_ctx(pki):
    return tls_context(pki, pki.dir / "da" / "drone-a.pem", pki.dir / "da" / "drone-a.key")


def raw_tls(port, ctx, payload, timeout=10):
    """Send raw bytes over TLS; returns (answer bytes, seconds until the server closed)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(payload)
            out = b""
            try:
                while True:
                    b = t.recv(65536)
                    if not b:
                        break
                    out += b
            except (ssl.SSLError, ConnectionError):
                pass
    return out, time.monotonic() - t0


def body_of(answer):
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


@pytest.fixture
def server(pki, tmp_path):
    srv = Server(binary("ringil-server"), pki, tmp_path / "server",
                 extra="enroll-timeout = 3\nhandshake-timeout = 3\nrequest-timeout = 4\nenroll-per-address = 2\n"
                       "enroll-max-connections = 8\n").start()
    srv.op("enroll", "drone-a")
    yield srv
    srv.stop()


def test_bare_lf_and_garbage_get_400_at_once(server, pki):
    for payload in (b"GET /api/v1/drones/drone-a HTTP/1.1\nHost: x\n\n", os.urandom(64) + b"\r\n\r\n",
                    b"\x00\x01\x02 / HTTP/1.1\r\n"):
        answer, took = raw_tls(server.port, drone_ctx(pki), payload)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
        assert took < 2.0, f"{payload[:20]!r}: answered after {took:.1f} s"
        assert body_of(answer)["status"] == 400 and body_of(answer)["error"]
    assert server.metric('ringil_connections_refused_total{reason="malformed"}') >= 3


def test_put_405_delete_501_and_error_bodies(server, pki):
    ctx = drone_ctx(pki)
    # DELETE: no route takes it; PUT: the Nix cache's publish route does, so elsewhere it is 405
    status, data, _ = request(server.port, ctx, "DELETE", "/api/v1/releases")
    assert status == 501 and json.loads(data) == {"error": "method not implemented", "status": 501}
    status, data, hdr = request(server.port, ctx, "PUT", "/api/v1/releases")
    assert status == 405 and json.loads(data)["status"] == 405 and hdr["Allow"] == "GET, HEAD, POST"
    status, data, hdr = request(server.port, ctx, "GET", "/api/v1/checkin")
    assert status == 405 and json.loads(data)["status"] == 405 and hdr["Allow"] == "POST"
    status, data, _ = request(server.port, ctx, "GET", "/nope")
    assert status == 404 and json.loads(data)["status"] == 404
    # an unknown method: 501 with the documented body
    answer, _ = raw_tls(server.port, ctx, b"BREW /api/v1/checkin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501 ") and body_of(answer)["status"] == 501


def test_416_has_the_documented_body(server, pki, tmp_path):
    img = tmp_path / "img"
    img.write_bytes(os.urandom(4096))
    b = pki.bundle("2.0", img, tmp_path / "b.bundle")
    rid = server.op("upload", b).out.strip()
    server.op("release", rid, "--drone", "drone-a")
    size = b.stat().st_size
    status, data, hdr = request(server.port, drone_ctx(pki), "GET", f"/api/v1/releases/{rid}/bundle",
                                headers={"Range": f"bytes={size + 10}-"})
    body = json.loads(data)
    assert status == 416 and body["status"] == 416 and body["error"] and hdr["Content-Range"] == f"bytes */{size}"


def test_fleet_port_requires_a_certificate(server, pki):
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        request(server.port, tls_context(pki), "POST", "/api/v1/enroll", body=b"{}")
    deadline = time.time() + 5
    while server.metric('ringil_connections_refused_total{reason="no_certificate"}') < 1 and time.time() < deadline:
        time.sleep(0.1)
    assert server.metric('ringil_connections_refused_total{reason="no_certificate"}') >= 1


def test_enrollment_port_serves_enrollment_only(server, pki):
    anon = tls_context(pki)
    # routes that need an identity are forbidden here (no certificate is asked for), the rest not found
    status, data, _ = request(server.enroll_port, anon, "GET", "/api/v1/drones")
    assert status == 403 and json.loads(data)["status"] == 403
    status, data, _ = request(server.enroll_port, anon, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')
    assert status == 403
    status, data, _ = request(server.enroll_port, anon, "GET", "/ui/drones")
    assert status == 403
    status, data, _ = request(server.enroll_port, anon, "GET", "/no/such/route")
    assert status == 404 and json.loads(data)["status"] == 404
    status, data, _ = request(server.enroll_port, anon, "POST", "/api/v1/enroll",
                              body=b'{"id":"drone-b","token":"' + b"0" * 64 + b'","csr":"x"}')
    assert status == 400 and json.loads(data)["status"] == 400
    # and a certificate holder does not enroll on the fleet port
    status, _, _ = request(server.port, drone_ctx(pki), "POST", "/api/v1/enroll", body=b"{}")
    assert status == 403


def test_enrollment_per_address_cap_and_deadline(server, pki):
    anon = tls_context(pki)
    held = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", server.enroll_port), timeout=10)
        t = anon.wrap_socket(s, server_hostname="127.0.0.1")
        t.sendall(b"POST /api/v1/enroll HTTP/1.1\r\nContent-Length: 16000\r\n\r\nx")
        held.append(t)
    # a third from the same address is closed at once
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection(("127.0.0.1", server.enroll_port), timeout=5) as s:
            with anon.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(b"GET / HTTP/1.1\r\n\r\n")
                if not t.recv(1):
                    raise ConnectionError("closed")
    # the trickled bodies are cut at the enrollment deadline (3 s from accept)
    t0 = time.monotonic()
    for t in held:
        try:
            t.settimeout(10)
            while t.recv(4096):
                pass
        except (ssl.SSLError, ConnectionError, OSError):
            pass
    assert time.monotonic() - t0 < 6
    assert server.metric('ringil_connections_refused_total{reason="per_address"}') >= 1
    assert server.metric('ringil_connections_refused_total{reason="request_timeout"}') >= 2


def test_anonymous_attackers_cannot_lock_drones_out(pki, tmp_path):
    """1,000 anonymous slow connections while registered drones check in: every check-in succeeds."""
    exe = fleet_load()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    limits = {"handshake": 3, "enroll": 3, "request": 4}
    srv = Server(binary("ringil-server"), pki, tmp_path / "server",
                 extra=f"handshake-timeout = {limits['handshake']}\nenroll-timeout = {limits['enroll']}\n"
                       f"request-timeout = {limits['request']}\nenroll-max-connections = 32\n"
                       f"enroll-per-address = 2\nmax-connections = 4096\n").start()
    attack = None
    try:
        attack = subprocess.Popen([exe, "attack", "--url", srv.url, "--enroll-url", srv.enroll_url, "--ca", pki.ca,
                                   "--conns", "1000", "--seconds", "16"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        p = run([exe, "checkin", "--url", srv.url, "--ca", pki.ca, "--ca-dir", pki.dir / "ca", "--identities", "64",
                 "--operator", f"{pki.dir / 'op' / 'alice.pem'}:{pki.dir / 'op' / 'alice.key'}",
                 "--conns", "8", "--seconds", "5"], check=False)
        rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{srv.proc.pid}/status").read_text()).group(1))
        active = srv.metric('ringil_connections_active{listener="fleet"}')
        out, err = attack.communicate(timeout=60)
        print(p.out.strip())
        print(out.strip())
        print(f"server RSS during the attack: {rss / 1024:.1f} MiB; fleet connections open: {active:.0f}")
        m = re.search(r"requests=(\d+) errors=(\d+) .* p99_ms=([\d.]+)", p.out)
        assert p.returncode == 0 and m, p.out + p.err
        assert int(m.group(1)) > 0 and int(m.group(2)) == 0, "a legitimate check-in failed during the attack"
        # p99 is printed above; asserted only loosely (shared 2-core machine, sanitizer builds)
        assert float(m.group(3)) < 2000
        # ASan's shadow memory and quarantine are not the server's: bound only the plain build
        sanitized = b"libasan" in subprocess.run(["ldd", str(binary("ringil-server"))], capture_output=True).stdout
        assert sanitized or rss < 256 * 1024, f"server RSS {rss} KiB"
        # lifetimes are measured by the attacking client, which notices a cut late when it is itself
        # slow (a sanitizer build doing 1,000 TLS connections): more slack there
        slack = 20 if sanitized else 3
        kinds = {k: dict(re.findall(r"(\w+)=([\d.]+)", line))
                 for k, line in re.findall(r"attack kind=(\S+) (.*)", out)}
        assert len(kinds) == 6, out + err
        deadline = {"tcp-idle": limits["handshake"], "no-cert": 1, "garbage": 1,
                    "head-trickle": limits["enroll"], "body-trickle": limits["enroll"],
                    "idle-after-handshake": limits["enroll"]}
        for k, d in deadline.items():
            st = kinds[k]
            assert int(st["opened"]) > 0 and int(st["cut"]) > 0, (k, st)
            # cut at the deadline: nobody lived (or is alive) much past it
            assert float(st["life_max_s"]) <= d + slack, (k, st)
            assert float(st["oldest_alive_s"]) <= d + slack, (k, st)
        # the slow ones that got in were held until their deadline, not refused by accident
        assert float(kinds["tcp-idle"]["life_p50_s"]) >= limits["handshake"] - 0.5, kinds["tcp-idle"]
        for reason in ("handshake_timeout", "request_timeout", "cap", "malformed", "no_certificate"):
            assert srv.metric(f'ringil_connections_refused_total{{reason="{reason}"}}') > 0, reason
        assert srv.proc.poll() is None
    finally:
        if attack and attack.poll() is None:
            attack.kill()
            attack.wait()
        srv.stop()


# ---- start-up checks: each config error is one line and exit 2 ----

def bad_config_cases(pki, d):
    srv = pki.dir / "srv" / "127.0.0.1.pem"
    key = pki.dir / "srv" / "127.0.0.1.key"
    notca = d / "notca"
    notca.mkdir(exist_ok=True)
    shutil.copy(srv, notca / "ca.pem")
    shutil.copy(key, notca / "ca.key")
    return {
        "port-too-big": ("listen = 127.0.0.1:99999\n", "the port must be a number from 1 to 65535"),
        "port-not-a-number": ("listen = 127.0.0.1:https\n", "the port must be a number"),
        "not-host-port": ("listen = 127.0.0.1\n", "is not HOST:PORT"),
        "enroll-port-too-big": ("enroll-listen = 127.0.0.1:70000\n", "enroll-listen"),
        "same-address": ("listen = 127.0.0.1:18443\nenroll-listen = 127.0.0.1:18443\n", "are both"),
        "client-cert-as-server": (f"cert = {pki.dir / 'op' / 'alice.pem'}\nkey = {pki.dir / 'op' / 'alice.key'}\n",
                                  "no serverAuth"),
        "key-mismatch": (f"key = {pki.dir / 'op' / 'alice.key'}\n", "does not belong to the certificate"),
        "cert-missing": (f"cert = {d / 'missing.pem'}\n", "No such file"),
        "cert-not-pem": (f"cert = {pki.dir / 'sign.key'}\n", "is not a PEM certificate"),
        "device-ca-not-a-ca": (f"device-ca = {notca}\n", "is not a CA certificate"),
        "operator-ca-not-a-ca": (f"operator-ca = {srv}\n", "is not a CA certificate"),
        "keyring-missing": (f"keyring = {d / 'nokeyring.pem'}\n", "keyring"),
        "db-dir-missing": (f"db = {d / 'no' / 'such' / 'fleet.db'}\n", "is not writable"),
        # refused by the config reader itself (lib/conf.c): a malformed file exits 3, like every ringil tool
        "bad-number": ("request-timeout = 0\n", "request-timeout: `0' is not a duration"),
        "unknown-key": ("colour = blue\n", "unknown key `colour'"),
    }


@pytest.mark.parametrize("case", ["port-too-big", "port-not-a-number", "not-host-port", "enroll-port-too-big",
                                  "same-address", "client-cert-as-server", "key-mismatch", "cert-missing",
                                  "cert-not-pem", "device-ca-not-a-ca", "operator-ca-not-a-ca", "keyring-missing",
                                  "db-dir-missing", "bad-number", "unknown-key"])
def test_config_error_is_one_line_and_exit_2(pki, tmp_path, case):
    line, want = bad_config_cases(pki, tmp_path)[case]
    srv = Server(binary("ringil-server"), pki, tmp_path / "server")
    # the bad lines replace the keys they name (a repeated key would be an error of its own)
    conf = dict(ln.split(" = ", 1) for ln in srv.conf.read_text().splitlines() if " = " in ln)
    conf.update(ln.split(" = ", 1) for ln in line.splitlines())
    srv.conf.write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
    p = run([srv.exe, "serve", "--config", srv.conf], check=False)
    assert p.returncode == (3 if case in ("bad-number", "unknown-key") else 2), (case, p.returncode, p.err)
    assert "listening" not in p.out
    lines = [ln for ln in p.err.splitlines() if ln.strip()]
    assert len(lines) == 1, (case, p.err)
    assert want in lines[0] and str(srv.conf) in lines[0], (case, lines[0])


def test_good_config_starts(pki, tmp_path):
    srv = Server(binary("ringil-server"), pki, tmp_path / "server").start()
    srv.stop()


def test_example_server_conf_is_complete():
    """data/server.conf.example names every key the server knows (and parses, apart from its paths)."""
    text = (Path(__file__).resolve().parents[2] / "data" / "server.conf.example").read_text()
    keys = {ln.split("=")[0].strip().lstrip("# ") for ln in text.splitlines() if "=" in ln}
    for k in ("listen", "enroll-listen", "db", "store", "cert", "key", "device-ca", "operator-ca", "keyring",
              "nix-cache", "max-upload", "max-connections", "poll-interval", "token-ttl", "enroll-max-connections",
              "enroll-per-address", "enroll-rate", "enroll-timeout", "handshake-timeout", "request-timeout",
              "keepalive-timeout", "min-body-rate", "workers", "replica-name", "scheduler-interval"):
        assert k in keys, k


def test_server_unit_exposure(tmp_path):
    """ringil-server.service scores <= 2.0 in systemd-analyze security (offline)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = Path(__file__).resolve().parents[2] / "data" / "systemd" / "ringil-server.service"
    text = unit.read_text().replace("@bindir@", "/usr/bin").replace("@sbindir@", "/usr/sbin")
    u = tmp_path / "ringil-server.service"
    u.write_text(text)
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(u)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout + p.stderr)
    assert m, p.stdout + p.stderr
    print(f"ringil-server.service exposure: {m.group(1)}")
    assert float(m.group(1)) <= 2.0, p.stdout
