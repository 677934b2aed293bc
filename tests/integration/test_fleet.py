"""test_fleet.py: ringil-server and ringild end to end: real server on loopback, real agents, file slots."""
import json
import os
import random
import shutil
import signal
import subprocess
import sqlite3
import ssl
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import binary
from fleetsim import CuttingProxy, Pki, Server, SimDrone, insert_release, request, run, tls_context

BUNDLE_PAYLOAD = 1536 * 1024


@pytest.fixture(scope="session")
def world():
    """Built once per session: PKI, signing keys and bundles (v0.5, v1, v2, foreign-signed v3)."""
    d = Path(tempfile.mkdtemp(prefix="ringil-fleet-"))
    ringil = binary("ringil")
    pki = Pki(ringil, d / "pki")
    rnd = random.Random(7)
    bundles = {}
    for v in ("0.5", "1.0", "2.0"):
        img = d / f"img-{v}"
        img.write_bytes(rnd.randbytes(BUNDLE_PAYLOAD))
        bundles[v] = pki.bundle(v, img, d / f"v{v}.bundle")
    img = d / "img-3.0"
    img.write_bytes(rnd.randbytes(BUNDLE_PAYLOAD))
    bundles["foreign"] = pki.bundle("3.0", img, d / "foreign.bundle", signer="foreign")
    yield {"dir": d, "pki": pki, "bundles": bundles, "ringil": ringil, "ringild": binary("ringild"),
           "server": binary("ringil-server")}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fleet(world, tmp_path):
    srv = Server(world["server"], world["pki"], tmp_path / "server").start()
    made = []

    def drone(name, health="true", group="default", url=None):
        dr = SimDrone(name, tmp_path / name, world["ringil"], world["ringild"], world["pki"], health=health)
        dr.provision(world["bundles"]["1.0"])
        dr.enroll(srv, group=group)
        if url:
            dr.write_agent_conf(url)
        made.append(dr)
        return dr

    yield srv, drone
    srv.stop()


def release(srv, bundle, *target):
    rid = srv.op("upload", bundle).out.strip()
    srv.op("release", rid, *target)
    return int(rid)


def update_to_completion(dr, srv, want_state="updated", max_runs=12):
    """Run the agent, playing the boot loader whenever it asks for a reboot, until the server agrees."""
    for _ in range(max_runs):
        if dr.reboot_requested():
            dr.boot()
        dr.agent()
        if (dr.dir / "reboot-requested").exists():
            continue
        if srv.drone(dr.name)["state"] == want_state and dr.agent_state().get("acked") == "1":
            return
    raise AssertionError(f"{dr.name} did not reach {want_state}: {srv.drone(dr.name)}\n{dr.log.read_text()}")


def test_three_drones_v1_to_v2_and_one_rollback(fleet, world):
    srv, drone = fleet
    good = [drone(f"drone-{i}") for i in range(3)]
    bad = drone("drone-sick", health="false")
    rid = release(srv, world["bundles"]["2.0"], "--fleet")

    for dr in good:
        update_to_completion(dr, srv)
        st = dr.status()
        assert st["booted"] == "b" and st["slots"]["b"]["version"] == "2.0" and st["slots"]["b"]["state"] == "good"
        d = srv.drone(dr.name)
        assert d["version"] == "2.0" and d["release"] == rid and d["error"] == ""
        states = [h["state"] for h in reversed(d["history"])]
        assert states == ["downloading", "installed", "rebooting", "updated"]
        # installed bytes are exactly the signed payload
        img = (world["dir"] / "img-2.0").read_bytes()
        assert (dr.dir / "slot-b.img").read_bytes()[: len(img)] == img

    update_to_completion(bad, srv, want_state="rolled-back")
    # after the rollback reboot the boot loader is back on slot a (v2's entry was marked bad)
    assert bad.status()["booted"] == "a" and bad.reboots == 3
    bad.agent(check=True)
    assert not bad.reboot_requested(), "a rolled-back release must not be retried"
    d = srv.drone("drone-sick")
    assert d["state"] == "rolled-back" and "health gate failed" in d["error"] and d["version"] == "1.0"
    assert bad.status()["booted"] == "a"
    table = srv.op("drones").out
    assert "rolled-back" in table and table.count("updated") == 3
    metrics = srv.op("metrics").out
    assert 'ringil_drones{state="updated"} 3' in metrics and 'ringil_drones{state="rolled-back"} 1' in metrics
    assert srv.metric("ringil_checkins_total") >= 8 and srv.metric("ringil_reports_total") >= 16


def test_downloads_survive_cut_connections(fleet, world):
    srv, drone = fleet
    proxies = []
    drones = []
    for i in range(3):
        p = CuttingProxy(srv.port, seed=i)
        proxies.append(p)
        drones.append(drone(f"drone-cut-{i}", url=f"https://127.0.0.1:{p.port}"))
    release(srv, world["bundles"]["2.0"], "--fleet")
    size = os.path.getsize(world["bundles"]["2.0"])
    for dr, p in zip(drones, proxies):
        update_to_completion(dr, srv, max_runs=30)
        assert dr.status()["slots"]["b"]["version"] == "2.0"
        # the proxy cut the bundle download several times, and resume kept the traffic near one copy
        assert p.cuts >= 3, p.cuts
        assert p.bytes_to_client <= 1.2 * size, (p.bytes_to_client, size)
        print(f"{dr.name}: {p.cuts} cuts, {p.bytes_to_client} bytes for a {size}-byte bundle "
              f"({p.bytes_to_client / size:.3f}x)")
        p.close()


@pytest.mark.parametrize("which", ["older", "foreign"])
def test_drone_refuses_what_a_compromised_server_offers(fleet, world, which):
    srv, drone = fleet
    dr = drone("drone-x")
    before = (dr.dir / "slot-b.img").read_bytes()
    # a compromised server inserts rows directly: nothing the server's upload check could stop
    store = srv.dir / "store"
    src = world["bundles"]["0.5" if which == "older" else "foreign"]
    shutil.copy(src, store / src.name)
    rid = insert_release(srv.db, store / src.name, "0.5" if which == "older" else "3.0")
    for _ in range(4):
        dr.agent()
        if srv.drone("drone-x")["state"] == "failed" and dr.agent_state().get("acked") == "1":
            break
    d = srv.drone("drone-x")
    assert d["state"] == "failed" and d["release"] == rid, d
    assert ("floor" in d["error"] or "rollback" in d["error"].lower()) if which == "older" else d["error"], d
    assert not dr.reboot_requested()
    assert (dr.dir / "slot-b.img").read_bytes() == before, "a refused bundle wrote to the slot"
    assert dr.status()["booted"] == "a"
    # and it is not retried at the next poll
    n = len(srv.drone("drone-x")["history"])
    dr.agent(check=True)
    assert len(srv.drone("drone-x")["history"]) == n


def test_server_refuses_unsigned_or_foreign_upload(fleet, world, tmp_path):
    srv, _ = fleet
    p = srv.op("upload", world["bundles"]["foreign"], check=False)
    assert p.returncode == 11, p.err
    assert "refused" in p.err
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(os.urandom(4096))
    assert srv.op("upload", junk, check=False).returncode == 11
    assert json.loads(srv.op("status", "--json").out) == []


# ---- identity: every route refuses the wrong peer ----

ROUTES = [
    ("POST", "/api/v1/checkin", b'{"state":"idle"}'),
    ("POST", "/api/v1/report", b'{"seq":99,"state":"failed","error":"forged"}'),
    ("GET", "/api/v1/releases/{rid}/bundle", None),
    ("GET", "/api/v1/drones/drone-b", None),
    ("GET", "/api/v1/drones", None),
    ("POST", "/api/v1/drones", b'{"id":"intruder"}'),
    ("POST", "/api/v1/drones/drone-b/revoke", b""),
    ("GET", "/api/v1/releases", None),
    ("POST", "/api/v1/releases", b"not a bundle"),
    ("POST", "/api/v1/releases/{rid}/assign", b'{"target":"*"}'),
    ("GET", "/metrics", None),
    ("POST", "/api/v1/enroll", b'{"id":"drone-b","token":"' + b"0" * 64 + b'","csr":"x"}'),
]
# routes a drone may use for itself; drone A is only tested against the ones that name B or need an operator
SELF_ROUTES = {"/api/v1/checkin", "/api/v1/report"}


@pytest.fixture
def identities(fleet, world):
    srv, drone = fleet
    a = drone("drone-a")
    b = drone("drone-b")
    r = drone("drone-r")
    srv.op("revoke", "drone-r")
    rid = release(srv, world["bundles"]["2.0"], "--drone", "drone-b")
    pki = world["pki"]
    ids = {
        "none": tls_context(pki),
        "foreign-ca": tls_context(pki, pki.dir / "evil" / "drone-a.pem", pki.dir / "evil" / "drone-a.key"),
        "foreign-operator": tls_context(pki, pki.dir / "evil" / "alice.pem", pki.dir / "evil" / "alice.key"),
        "revoked": tls_context(pki, r.dir / "agent" / "cert.pem", r.dir / "agent" / "key.pem"),
        "drone-a": tls_context(pki, a.dir / "agent" / "cert.pem", a.dir / "agent" / "key.pem"),
        "server-cert": tls_context(pki, pki.dir / "srv" / "127.0.0.1.pem", pki.dir / "srv" / "127.0.0.1.key"),
    }
    return srv, ids, rid, b


@pytest.mark.parametrize("who", ["none", "foreign-ca", "foreign-operator", "revoked", "drone-a", "server-cert"])
def test_wrong_identity_refused_on_every_route(identities, who):
    srv, ids, rid, b = identities
    before = srv.drone("drone-b")
    checked = 0
    for method, path, body in ROUTES:
        if who == "drone-a" and path in SELF_ROUTES:
            continue
        path = path.format(rid=rid)
        try:
            status, data, _ = request(srv.port, ids[who], method, path, body=body)
        except (ssl.SSLError, ConnectionError, OSError):
            checked += 1   # refused in the TLS handshake
            continue
        assert status in (400, 401, 403), f"{who} {method} {path} -> {status} {data[:200]}"
        if path != "/api/v1/enroll":
            assert status in (401, 403), f"{who} {method} {path} -> {status}"
        assert json.loads(data)["error"]
        checked += 1
    assert checked >= len(ROUTES) - len(SELF_ROUTES)
    # nothing changed for drone B, nobody was registered, the release is still only B's
    after = srv.drone("drone-b")
    assert after["status"] == "active" and after["history"] == before["history"]
    assert "intruder" not in srv.op("drones").out


def test_right_identities_are_accepted(identities, world):
    """The control for the test above: the same routes work for the right peer."""
    srv, ids, rid, b = identities
    ctx = tls_context(world["pki"], b.dir / "agent" / "cert.pem", b.dir / "agent" / "key.pem")
    status, data, _ = request(srv.port, ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle","version":"1.0"}')
    assert status == 200 and json.loads(data)["assignment"]["release"] == rid
    status, data, hdr = request(srv.port, ctx, "GET", f"/api/v1/releases/{rid}/bundle",
                                headers={"Range": "bytes=100-199"})
    assert status == 206 and len(data) == 100
    assert data == world["bundles"]["2.0"].read_bytes()[100:200]
    assert hdr["Content-Range"] == f"bytes 100-199/{os.path.getsize(world['bundles']['2.0'])}"
    status, _, _ = request(srv.port, ctx, "GET", f"/api/v1/releases/{rid}/bundle",
                           headers={"Range": "bytes=99999999-"})
    assert status == 416
    status, _, _ = request(srv.port, ctx, "GET", "/api/v1/drones/drone-b")
    assert status == 200
    # drone A is a real drone: its own check-in works, but B's release is not its to fetch
    status, data, _ = request(srv.port, ids["drone-a"], "POST", "/api/v1/checkin", body=b'{"state":"idle"}')
    assert status == 200 and json.loads(data)["assignment"] is None


def test_request_limits(fleet, world):
    srv, drone = fleet
    dr = drone("drone-l")
    ctx = tls_context(world["pki"], dr.dir / "agent" / "cert.pem", dr.dir / "agent" / "key.pem")
    status, data, _ = request(srv.port, ctx, "POST", "/api/v1/checkin", body=b"{" + b" " * 20000 + b"}")
    assert status == 413 and json.loads(data)["error"]
    status, _, _ = request(srv.port, ctx, "GET", "/" + "a" * 3000)
    assert status in (414, 431)
    status, _, _ = request(srv.port, ctx, "GET", "/", headers={f"X-{i}": "y" for i in range(40)})
    assert status == 431
    status, data, _ = request(srv.port, ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle","evil":1}')
    assert status == 400 and b"unknown key" in data


def test_sigkill_loses_no_acknowledged_report(fleet, world):
    srv, drone = fleet
    drones = [drone(f"drone-k{i}") for i in range(2)]
    release(srv, world["bundles"]["2.0"], "--fleet")
    ctx = tls_context(world["pki"], drones[0].dir / "agent" / "cert.pem", drones[0].dir / "agent" / "key.pem")
    acked = []
    stop = threading.Event()

    def hammer():
        seq = 1000
        while not stop.is_set():
            seq += 1
            body = json.dumps({"seq": seq, "state": "downloading", "release": 1, "error": f"r{seq}"}).encode()
            try:
                status, _, _ = request(srv.port, ctx, "POST", "/api/v1/report", body=body, timeout=2)
            except (OSError, ssl.SSLError, Exception):
                continue
            if status == 200:
                acked.append(seq)

    # mid-rollout: one drone has installed and asked for its reboot, then the server dies under a
    # stream of reports
    drones[1].agent()
    assert (drones[1].dir / "reboot-requested").exists()
    # the agent restarting before the reboot happened must not report a rollback
    drones[1].agent(check=True)
    assert srv.drone(drones[1].name)["state"] == "rebooting"
    t = threading.Thread(target=hammer)
    t.start()
    time.sleep(1.0)
    srv.kill(signal.SIGKILL)
    stop.set()
    t.join()
    assert len(acked) > 5
    srv.start()
    con = sqlite3.connect(srv.db)
    stored = {row[0] for row in con.execute("SELECT seq FROM events WHERE drone = 'drone-k0'")}
    con.close()
    lost = [s for s in acked if s not in stored]
    assert not lost, f"acknowledged reports lost: {lost[:10]}"
    # the rollout goes on after the restart, and the agent's reports survived as well
    for dr in drones[1:]:
        dr.write_agent_conf(srv.url)
        update_to_completion(dr, srv)
        assert [h["state"] for h in reversed(srv.drone(dr.name)["history"])] == \
            ["downloading", "installed", "rebooting", "updated"]


def test_enrollment_tokens_are_single_use_and_bound(fleet, world, tmp_path):
    srv, _ = fleet
    pki = world["pki"]
    token = srv.op("enroll", "drone-e").out.strip()
    assert len(token) == 64

    def agent_conf(name):
        d = tmp_path / name
        d.mkdir()
        conf = d / "ringild.conf"
        conf.write_text(f"server = {srv.url}\nenroll-server = {srv.enroll_url}\nca = {pki.ca}\n"
                        f"cert = {d / 'cert.pem'}\nkey = {d / 'key.pem'}\n")
        return d, conf

    # a token for drone-e does not enroll another name, and a wrong token does nothing
    d, conf = agent_conf("other")
    assert run([world["ringild"], "enroll", "--config", conf, "--id", "drone-f", "--token", token],
               check=False).returncode != 0
    d, conf = agent_conf("wrong")
    assert run([world["ringild"], "enroll", "--config", conf, "--id", "drone-e", "--token", "1" * 64],
               check=False).returncode != 0
    d, conf = agent_conf("good")
    run([world["ringild"], "enroll", "--config", conf, "--id", "drone-e", "--token", token])
    assert oct((d / "key.pem").stat().st_mode & 0o777) == "0o400"
    cert = run(["openssl", "x509", "-in", d / "cert.pem", "-noout", "-subject", "-ext", "extendedKeyUsage"]).out
    assert "CN = drone-e" in cert and "TLS Web Client Authentication" in cert
    run(["openssl", "verify", "-CAfile", pki.ca, "-purpose", "sslclient", d / "cert.pem"])
    # used once: the same token cannot mint a second identity
    d, conf = agent_conf("again")
    assert run([world["ringild"], "enroll", "--config", conf, "--id", "drone-e", "--token", token],
               check=False).returncode != 0
    assert not (d / "cert.pem").exists()
    # the enrolled certificate works, and a replaced one (same CN, other serial) is refused
    ctx = tls_context(pki, tmp_path / "good" / "cert.pem", tmp_path / "good" / "key.pem")
    assert request(srv.port, ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 200
    run([world["ringil"], "ca", "issue", "--dir", pki.dir / "ca", "--name", "drone-e", "--out-dir", tmp_path / "dup"])
    ctx = tls_context(pki, tmp_path / "dup" / "drone-e.pem", tmp_path / "dup" / "drone-e.key")
    assert request(srv.port, ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 403


def test_agent_daemon_polls_and_stops_cleanly(fleet, world):
    """ringild without --once: polls on its own, installs when a release appears, stops on SIGTERM."""
    srv, drone = fleet
    dr = drone("drone-d")
    p = subprocess.Popen([str(world["ringild"]), "--config", str(dr.dir / "ringild.conf")],
                         stderr=open(dr.log, "ab"))
    try:
        time.sleep(1.5)
        assert p.poll() is None
        release(srv, world["bundles"]["2.0"], "--group", "default")
        deadline = time.time() + 30
        while time.time() < deadline and not (dr.dir / "reboot-requested").exists():
            time.sleep(0.2)
        assert (dr.dir / "reboot-requested").exists()
        # after asking for the reboot the agent stops polling and exits
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    assert srv.drone("drone-d")["state"] == "rebooting"
    dr.reboot_requested()
    dr.boot()
    p = subprocess.Popen([str(world["ringild"]), "--config", str(dr.dir / "ringild.conf")],
                         stderr=open(dr.log, "ab"))
    deadline = time.time() + 30
    while time.time() < deadline and srv.drone("drone-d")["state"] != "updated":
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
    assert srv.drone("drone-d")["state"] == "updated"
