"""test_fleet.py: ringil-server and ringild end to end: real server on loopback, real agents, file slots."""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import ssl
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import binary
from fleetsim import CuttingProxy, Pki, RangeIgnoringProxy, Server, SimDrone, insert_release, request, run, tls_context

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


@pytest.fixture(scope="session")
def delta_bundles(world):
    """d1 and d2 = d1 with 1000 bytes inserted after 300 KiB and 8 KiB rewritten further on, content-defined."""
    d, rnd = world["dir"], random.Random(17)
    d1 = rnd.randbytes(BUNDLE_PAYLOAD)
    d2 = bytearray(d1[:300 * 1024] + rnd.randbytes(1000) + d1[300 * 1024:])[:BUNDLE_PAYLOAD]
    d2[900 * 1024:908 * 1024] = rnd.randbytes(8192)
    out = {}
    for v, data in (("1.0", d1), ("2.0", bytes(d2))):
        (d / f"dimg-{v}").write_bytes(data)
        out[v] = world["pki"].bundle(v, d / f"dimg-{v}", d / f"delta-{v}.bundle", chunking="cdc:16K:64K:256K")
    return out


def test_delta_update_fetches_only_missing_chunks(fleet, world, delta_bundles):
    """End to end: drones on d1 get d2 by fetching only the chunks they lack (Range requests from the same
    bundle URL); the server records what each drone fetched and reused."""
    srv, drone = fleet
    drones = []
    for i in range(3):
        dr = SimDrone(f"drone-d{i}", srv.dir.parent / f"drone-d{i}", world["ringil"], world["ringild"], world["pki"])
        dr.provision(delta_bundles["1.0"])
        dr.enroll(srv)
        drones.append(dr)
    release(srv, delta_bundles["2.0"], "--fleet")
    size = os.path.getsize(delta_bundles["2.0"])
    img = (world["dir"] / "dimg-2.0").read_bytes()
    for dr in drones:
        update_to_completion(dr, srv)
        assert (dr.dir / "slot-b.img").read_bytes()[: len(img)] == img
        d = srv.drone(dr.name)
        assert d["version"] == "2.0"
        fetched, reused = d["delta"]["fetched"], d["delta"]["reused"]
        print(f"{dr.name}: fetched {fetched} bytes of a {size}-byte bundle ({100 * fetched / size:.1f} %), "
              f"reused {reused} bytes from its slots")
        assert fetched < size * 0.25 and reused > BUNDLE_PAYLOAD * 0.7, d["delta"]
        assert "bytes fetched" in srv.op("status", dr.name).out
    # the server sent about what the drones say they fetched, far less than three bundles
    assert srv.metric("ringil_bundle_bytes_sent_total") < 3 * size * 0.3
    # per release: the drones on it and what they fetched and reused, summed
    rel = [r for r in json.loads(srv.op("status", "--json").out) if r["version"] == "2.0"][0]
    want = [srv.drone(dr.name)["delta"] for dr in drones]
    assert rel["delta"] == {"drones": 3, "fetched": sum(w["fetched"] for w in want),
                            "reused": sum(w["reused"] for w in want)}, rel
    table = srv.op("status").out.splitlines()
    head = table[0].split()
    col = head.index("DRONES")
    assert head[col:col + 3] == ["DRONES", "FETCHED", "REUSED"], table[0]
    row = [l for l in table if l.split()[1] == "2.0"][0].split()
    assert row[col:col + 3] == [str(rel["delta"][k]) for k in ("drones", "fetched", "reused")], row


def test_delta_source_without_range_support_gives_a_full_download(fleet, world, delta_bundles):
    """A bundle host that ignores Range (every GET answered 200 with the whole bundle): the agent notices
    on its first range request and installs from one sequential download; the update succeeds."""
    srv, drone = fleet
    dr = SimDrone("drone-norange", srv.dir.parent / "drone-norange", world["ringil"], world["ringild"], world["pki"])
    dr.provision(delta_bundles["1.0"])
    dr.enroll(srv)
    proxy = RangeIgnoringProxy(srv, world["pki"], dr.dir / "agent" / "cert.pem", dr.dir / "agent" / "key.pem")
    try:
        dr.write_agent_conf(proxy.url)
        release(srv, delta_bundles["2.0"], "--fleet")
        size = os.path.getsize(delta_bundles["2.0"])
        update_to_completion(dr, srv)
        img = (world["dir"] / "dimg-2.0").read_bytes()
        assert (dr.dir / "slot-b.img").read_bytes()[: len(img)] == img
        assert srv.drone(dr.name)["version"] == "2.0"
        assert proxy.ranges_dropped >= 1, "the agent never asked for a range"
        log = dr.log.read_text()
        assert "ignores Range requests: downloading it whole" in log, log
        # the whole bundle came once more after the refused range answer, and the drone says so
        fetched = srv.drone(dr.name)["delta"]["fetched"]
        assert fetched >= size, (fetched, size)
        assert "failed" not in [h["state"] for h in srv.drone(dr.name)["history"]]
    finally:
        proxy.close()


@pytest.mark.parametrize("full_above, sequential", [(0, True), (100, False)])
def test_delta_threshold_switches_to_one_sequential_download(fleet, world, delta_bundles, full_above, sequential):
    """delta-full-above in ringild.conf: past it the engine asks for one sequential range instead of the
    missing chunks; below it only the missing chunks come."""
    srv, drone = fleet
    dr = SimDrone("drone-thr", srv.dir.parent / "drone-thr", world["ringil"], world["ringild"], world["pki"])
    dr.provision(delta_bundles["1.0"])
    dr.enroll(srv)
    with open(dr.dir / "ringild.conf", "a") as f:
        f.write(f"delta-full-above = {full_above}\n")
    release(srv, delta_bundles["2.0"], "--fleet")
    size = os.path.getsize(delta_bundles["2.0"])
    update_to_completion(dr, srv)
    img = (world["dir"] / "dimg-2.0").read_bytes()
    assert (dr.dir / "slot-b.img").read_bytes()[: len(img)] == img
    fetched = srv.drone(dr.name)["delta"]["fetched"]
    log = dr.log.read_text()
    if sequential:
        assert "(one sequential download)" in log, log
        assert fetched > 0.9 * BUNDLE_PAYLOAD, fetched
    else:
        assert "(one sequential download)" not in log, log
        assert fetched < 0.25 * size, fetched


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
    rid = insert_release(srv, store / src.name, "0.5" if which == "older" else "3.0")
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
    ("POST", "/api/v1/drones/drone-b/token", b""),
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
    stored = {int(row[0]) for row in srv.sql("SELECT seq FROM events WHERE drone = 'drone-k0'")}
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


# ---- re-issued enrollment tokens ----

def agent_dir(tmp_path, srv, pki, name):
    """A fresh agent config (no key, no certificate yet) for enrolling by hand."""
    d = tmp_path / name
    d.mkdir()
    conf = d / "ringild.conf"
    conf.write_text(f"server = {srv.url}\nenroll-server = {srv.enroll_url}\nca = {pki.ca}\n"
                    f"cert = {d / 'cert.pem'}\nkey = {d / 'key.pem'}\n")
    return d, conf


def enroll(world, conf, name, token):
    return run([world["ringild"], "enroll", "--config", conf, "--id", name, "--token", token], check=False)


def test_reissued_token_replaces_a_lost_one(fleet, world, tmp_path):
    srv, _ = fleet
    pki = world["pki"]
    lost = srv.op("enroll", "drone-t").out.strip()
    # enrolling the id again is refused, and the refusal says what to do instead
    p = srv.op("enroll", "drone-t", check=False)
    assert p.returncode == 10 and "reissue-token drone-t" in p.err
    token = srv.op("reissue-token", "drone-t").out.strip()
    assert len(token) == 64 and token != lost
    # the lost token no longer works (exit 11: refused, with the way out in the message) ...
    d, conf = agent_dir(tmp_path, srv, pki, "lost")
    p = enroll(world, conf, "drone-t", lost)
    assert p.returncode == 11 and "reissue-token drone-t" in p.err, p.err
    assert not (d / "cert.pem").exists() and not (d / "key.pem").exists()
    # ... the new one does, once
    d, conf = agent_dir(tmp_path, srv, pki, "new")
    enroll(world, conf, "drone-t", token).check_returncode()
    ctx = tls_context(pki, d / "cert.pem", d / "key.pem")
    assert request(srv.port, ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 200
    d2, conf2 = agent_dir(tmp_path, srv, pki, "again")
    assert enroll(world, conf2, "drone-t", token).returncode == 11
    assert srv.drone("drone-t")["status"] == "active"
    # --json gives the expiry as well
    j = json.loads(srv.op("reissue-token", "drone-t", "--json").out)
    assert j["id"] == "drone-t" and len(j["token"]) == 64 and j["expires"] > time.time()


def test_reissued_token_is_the_only_way_to_a_new_certificate(fleet, world, tmp_path):
    """An active drone keeps its certificate until one is enrolled with the re-issued token; then only
    the new certificate is accepted."""
    srv, drone = fleet
    pki = world["pki"]
    dr = drone("drone-u")
    old = tls_context(pki, dr.dir / "agent" / "cert.pem", dr.dir / "agent" / "key.pem")
    # a certificate from the CA is not a way around it: the server only accepts the serial on record
    run([world["ringil"], "ca", "issue", "--dir", pki.dir / "ca", "--name", "drone-u", "--out-dir", tmp_path / "side"])
    side = tls_context(pki, tmp_path / "side" / "drone-u.pem", tmp_path / "side" / "drone-u.key")
    assert request(srv.port, side, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 403
    token = srv.op("reissue-token", "drone-u").out.strip()
    assert request(srv.port, old, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 200
    # the agent refuses to overwrite its key; moved away, it enrolls with the new token
    p = enroll(world, dr.dir / "ringild.conf", "drone-u", token)
    assert p.returncode == 10 and "move both away" in p.err
    for f in ("cert.pem", "key.pem"):
        (dr.dir / "agent" / f).rename(dr.dir / "agent" / (f + ".old"))
    enroll(world, dr.dir / "ringild.conf", "drone-u", token).check_returncode()
    assert request(srv.port, old, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 403
    assert request(srv.port, side, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 403
    dr.agent(check=True)   # the agent runs on with the new certificate
    assert srv.drone("drone-u")["status"] == "active"


def test_revoked_drone_stays_revoked(fleet, world, tmp_path):
    srv, drone = fleet
    pki = world["pki"]
    dr = drone("drone-v")
    pending = srv.op("enroll", "drone-w").out.strip()
    for name in ("drone-v", "drone-w"):
        srv.op("revoke", name)
        p = srv.op("reissue-token", name, check=False)
        assert p.returncode == 11 and "revoked" in p.err and p.out == "", p.err
        assert srv.drone(name)["status"] == "revoked"
    # the token issued before the revocation is dead as well
    d, conf = agent_dir(tmp_path, srv, pki, "w")
    assert enroll(world, conf, "drone-w", pending).returncode == 11
    old = tls_context(pki, dr.dir / "agent" / "cert.pem", dr.dir / "agent" / "key.pem")
    assert request(srv.port, old, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')[0] == 403
    p = srv.op("reissue-token", "no-such-drone", check=False)
    assert p.returncode == 12 and "no drone 'no-such-drone'" in p.err
    assert srv.op("reissue-token", check=False).returncode == 2


# ---- what a user sees when something is wrong ----

def test_agent_network_errors_are_clear(fleet, world, tmp_path):
    """Each transport failure: our words (what, which URL, what to check), an exit code of the one table,
    never libcurl's bare text or "malformed config" (3)."""
    srv, drone = fleet
    dr = drone("drone-n")
    conf = dr.dir / "ringild.conf"
    text = conf.read_text()
    # nothing listens: 13
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf.write_text(text.replace(srv.url, f"https://127.0.0.1:{port}"))
    p = dr.agent()
    assert p.returncode == 13, p.err
    assert f"cannot connect to https://127.0.0.1:{port}/api/v1/checkin" in p.err and "is ringil-server running" in p.err
    # a server whose certificate is not from the pinned CA: 14
    conf.write_text(text.replace(f"ca = {world['pki'].ca}", f"ca = {world['pki'].dir / 'evil' / 'ca.pem'}"))
    p = dr.agent()
    assert p.returncode == 14, p.err
    assert "is not trusted" in p.err and "pinned CA" in p.err and "evil/ca.pem" in p.err
    # the pinned CA file missing: 12, naming it
    conf.write_text(text.replace(f"ca = {world['pki'].ca}", f"ca = {tmp_path / 'nope.pem'}"))
    p = dr.agent()
    assert p.returncode == 12 and "nope.pem" in p.err, p.err
    # an answer far larger than any check-in answer: 14, not curl's "Failed writing received data"
    big = BigAnswerServer(world["pki"])
    try:
        conf.write_text(text.replace(srv.url, f"https://127.0.0.1:{big.port}"))
        p = dr.agent()
        assert p.returncode == 14, p.err
        assert "larger than 65536 bytes" in p.err and "Failed writing" not in p.err
    finally:
        big.close()
    # revoked: the check-in is refused, and the message says what that means
    conf.write_text(text)
    srv.op("revoke", "drone-n")
    p = dr.agent()
    assert p.returncode == 14 and "HTTP 403" in p.err and "ask the operator" in p.err, p.err
    for q in (dr.agent(),):
        assert "Failed writing" not in q.err and "malformed config" not in q.err
    h = run([world["ringild"], "--help"]).out
    assert "13  server unreachable" in h and "14  TLS or protocol failure" in h
    assert "malformed config" not in h


class BigAnswerServer:
    """An HTTPS server with the fleet's server certificate that answers every request with 1 MiB."""

    def __init__(self, pki):
        import http.server
        import ssl as _ssl

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                self.rfile.read(n)
                body = b"{" + b" " * (1 << 20) + b"}"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.dir / "srv" / "127.0.0.1.pem", pki.dir / "srv" / "127.0.0.1.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_operator_errors_and_upload_progress(fleet, world, tmp_path):
    srv, _ = fleet
    # a missing bundle is the operator's input error: 12, before any connection
    p = srv.op("upload", tmp_path / "missing.bundle", check=False)
    assert p.returncode == 12 and "missing.bundle" in p.err and "No such file" in p.err, p.err
    # upload progress: a line on stderr off a terminal; stdout is only the release id; --quiet: nothing
    p = srv.op("upload", world["bundles"]["1.0"])
    assert p.out.strip().isdigit()
    assert re.search(r"^ringil-server: uploading '.*v1\.0\.bundle': 1\.5 MiB in \d+\.\d s\b", p.err, re.M), p.err
    p = srv.op("upload", "--quiet", world["bundles"]["2.0"])
    assert p.out.strip().isdigit() and p.err == ""
    # a server that is not there: 13, with the URL
    env = dict(os.environ, RINGIL_FLEET_SERVER="https://127.0.0.1:1", RINGIL_FLEET_CA=str(world["pki"].ca),
               RINGIL_FLEET_CERT=str(world["pki"].dir / "op" / "alice.pem"),
               RINGIL_FLEET_KEY=str(world["pki"].dir / "op" / "alice.key"))
    p = run([world["server"], "drones"], check=False, env=env)
    assert p.returncode == 13 and "https://127.0.0.1:1/api/v1/drones" in p.err, p.err


def test_serve_says_why_it_cannot_listen(world, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        srv = Server(world["server"], world["pki"], tmp_path / "server")
        srv.conf.write_text(re.sub(r"^listen = 127\.0\.0\.1:0$", f"listen = 127.0.0.1:{port}", srv.conf.read_text(),
                                   flags=re.M))
        p = run([world["server"], "serve", "--config", srv.conf], check=False)
        assert p.returncode != 0
        assert f"cannot listen on '127.0.0.1:{port}'" in p.err and "Address already in use" in p.err, p.err
        assert "another process" in p.err
    finally:
        s.close()


def test_docs_off_device_agent_walkthrough(world, tmp_path):
    """docs/fleet.md "Running an agent off-device" is a script: run it as written against a real server."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "fleet.md").read_text()
    section = doc.split("## Running an agent off-device", 1)[1].split("\n## ", 1)[0]
    script = section.split("```bash\n", 1)[1].split("```", 1)[0]
    pki = world["pki"]
    srv = Server(world["server"], pki, tmp_path / "server").start()
    try:
        bins = [os.path.dirname(world[k]) for k in ("ringil", "ringild", "server")]
        env = dict(os.environ, PATH=":".join(bins + [os.environ.get("PATH", "/usr/bin:/bin")]),
                   SERVER=srv.url, ENROLL=srv.enroll_url, CA=str(pki.ca), KEYRING=str(pki.dir / "sign.pem"),
                   V1=str(world["bundles"]["1.0"]), V2=str(world["bundles"]["2.0"]),
                   RINGIL_FLEET_SERVER=srv.url, RINGIL_FLEET_CA=str(pki.ca),
                   RINGIL_FLEET_CERT=str(pki.dir / "op" / "alice.pem"),
                   RINGIL_FLEET_KEY=str(pki.dir / "op" / "alice.key"))
        work = tmp_path / "work"
        work.mkdir()
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "state:     updated" in p.stdout and "version:   2.0" in p.stdout, p.stdout
        d = srv.drone("drone-1")
        assert d["state"] == "updated" and d["version"] == "2.0"
    finally:
        srv.stop()
