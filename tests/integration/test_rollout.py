"""test_rollout.py: staged rollouts, the drift gate, windows and the agent's retries, against a real server,
real ringild agents with install engines (file slots) and simulated drones with real mTLS identities."""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import audit_fixture as fx
from conftest import binary
from fleetsim import (Api, AuditedDrone, CuttingProxy, FakeDrone, Pki, Server, SimDrone, fake_fleet, issue_identity,
                      overlay_image, request, run, step_all, tls_context)

PAYLOAD = 1536 * 1024
SSHD_UNIT = fx.STORE_ETC.lstrip("/") + "/etc/systemd/system/sshd.service"


@pytest.fixture(scope="session")
def world():
    d = Path(tempfile.mkdtemp(prefix="ringil-rollout-"))
    ringil = binary("ringil")
    pki = Pki(ringil, d / "pki")
    for name in ("bob", "carol"):
        run([ringil, "ca", "issue", "--dir", pki.dir / "ca", "--name", name, "--operator", "--out-dir", d / "pki" / "op"])
    bundles = {}
    images = {
        "1.0": overlay_image({"opt/release": b"1.0\n"}, PAYLOAD, 1),
        "2.0": overlay_image({"opt/release": b"2.0\n"}, PAYLOAD, 2),
        # passes its health gate, but turns SSH back on
        "2.1": overlay_image({"opt/release": b"2.1\n", SSHD_UNIT: b"[Service]\nExecStart=sshd -D\n"}, PAYLOAD, 3),
        "3.0": overlay_image({"opt/release": b"3.0\n"}, PAYLOAD, 4),
    }
    for v, data in images.items():
        (d / f"img-{v}").write_bytes(data)
        bundles[v] = pki.bundle(v, d / f"img-{v}", d / f"v{v}.bundle")
    certs_dir = d / "audit-certs"
    certs_dir.mkdir()
    golden = d / "golden"
    fx.build_golden(golden, fx.Certs(certs_dir))
    yield {"dir": d, "pki": pki, "bundles": bundles, "ringil": ringil, "ringild": binary("ringild"),
           "server": binary("ringil-server"), "golden": golden}
    shutil.rmtree(d, ignore_errors=True)


def op_as(srv, who, *args, check=True):
    pki = srv.pki
    env = dict(os.environ, RINGIL_FLEET_SERVER=srv.url, RINGIL_FLEET_CA=str(pki.ca),
               RINGIL_FLEET_CERT=str(pki.dir / "op" / f"{who}.pem"), RINGIL_FLEET_KEY=str(pki.dir / "op" / f"{who}.key"))
    return run([srv.exe, *args], check=check, env=env)


def wait_for(pred, timeout=60, step=0.2, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fleet(world, tmp_path):
    srv = Server(world["server"], world["pki"], tmp_path / "server", poll_interval=1,
                 extra="scheduler-interval = 1\napprovers = alice,carol\nsilent-polls = 3\n").start()
    made = []

    def real(name, cls=SimDrone, group="default", **kw):
        if cls is AuditedDrone:
            dr = AuditedDrone(name, tmp_path / name, world["ringil"], world["ringild"], world["pki"], world["golden"], **kw)
        else:
            dr = cls(name, tmp_path / name, world["ringil"], world["ringild"], world["pki"], **kw)
        dr.provision(world["bundles"]["1.0"])
        dr.enroll(srv, group=group)
        made.append(dr)
        return dr

    def fakes(n, prefix="sim", **kw):
        return fake_fleet(world["ringil"], srv, world["pki"], tmp_path, n, prefix=prefix, **kw)

    yield srv, real, fakes
    srv.stop()


def upload(srv, bundle):
    return int(srv.op("upload", bundle).out.strip())


def rollout(srv, rid):
    return json.loads(srv.op("rollout", "show", str(rid), "--json").out)


def events(srv, what=None):
    rows = [(int(r[0]), int(r[1]), r[2], r[3], int(r[4]), r[5])
            for r in srv.sql("SELECT rollout, time, drone, event, attempt, detail FROM rollout_events ORDER BY id")]
    return [r for r in rows if what is None or r[3] == what]


def agent_daemon(dr):
    return subprocess.Popen([str(dr.ringild), "--config", str(dr.dir / "ringild.conf"), "--verbose"],
                            stderr=open(dr.log, "ab"))


class Stepper:
    """Polls simulated drones in the background, every `every` seconds, like their agents would."""

    def __init__(self, drones, every=0.5):
        self.drones, self.every = drones, every
        self.stop = threading.Event()
        self.errors = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                step_all(self.drones)
            except Exception as e:   # the server being killed, in the restart test
                self.errors.append(e)
            self.stop.wait(self.every)

    def close(self):
        self.stop.set()
        self.t.join()


# ---- staged rollouts ----

def test_bricking_release_stops_at_the_canary(fleet, world):
    """100 drones (3 real agents with install engines, 97 simulated): a release every drone that installs it
    stops reporting, a 5 % canary and error condition 1. It reaches the canary only and the rollout pauses
    within one poll interval of the deadline."""
    srv, real, fakes = fleet
    reals = [real(f"real-{i}") for i in range(3)]
    sims = fakes(97, behaviour="brick")
    rid = upload(srv, world["bundles"]["2.0"])
    names = [d.name for d in reals] + [d.name for d in sims]
    deadline = 4
    ro = int(srv.op("rollout", "create", str(rid), "--drones", ",".join(names), "--groups", "5%,rest",
                    "--error-count", "1", "--deadline", str(deadline), "--name", "bricking").out)
    t0 = time.time()
    srv.op("rollout", "start", str(ro))
    procs = [agent_daemon(d) for d in reals]
    stepper = Stepper(sims)
    try:
        wait_for(lambda: rollout(srv, ro)["state"] == "paused", timeout=60, what="the rollout to pause")
        paused_seen = time.time()
        # a few more polls: nothing more is handed out while paused
        time.sleep(2)
    finally:
        stepper.close()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    j = rollout(srv, ro)
    handed = events(srv, "handed")
    handed_drones = {e[2] for e in handed}
    canary = {m["drone"] for m in j["members"] if m["group"] == 1}
    assert len(canary) == 5 and {d.name for d in reals} <= canary
    assert handed_drones <= canary, f"handed beyond the canary: {sorted(handed_drones - canary)}"
    assert all(m["state"] == "pending" for m in j["members"] if m["group"] == 2)
    assert j["groups"][1]["pending"] == 95 and j["current_group"] == 1
    assert "group 1" in j["reason"] and "error condition" in j["reason"]
    # each real agent installed it and asked for the reboot it never came back from
    for d in reals:
        assert d.reboot_requested() and d.status()["slots"]["b"]["version"] == "2.0"
    # timing from the server's own records: the pause follows the first expired deadline within a poll
    timed_out = [e for e in events(srv) if e[3] == "timed-out"]
    assert timed_out
    last_seen = {r[0]: int(r[1] or 0) for r in srv.sql("SELECT id, last_seen FROM drones")}
    paused_at = int(srv.sql("SELECT time FROM rollout_events WHERE event = 'paused' ORDER BY id")[0][0])
    expiry = min(max(last_seen[e[2]], next(h[1] for h in handed if h[2] == e[2])) + deadline for e in timed_out)
    poll = 1
    assert paused_at - expiry <= poll + 1, (paused_at, expiry)   # +1: whole seconds on both sides
    print(f"\nbricking release: 100 drones, canary {len(canary)}; handed {len(handed_drones)} "
          f"(real {len({d.name for d in reals} & handed_drones)}, simulated {len(handed_drones) - 3}); "
          f"{len(timed_out)} timed out; paused {paused_at - expiry:+d} s after the first deadline expired "
          f"(deadline {deadline} s, poll {poll} s); {paused_seen - t0:.1f} s from start to pause")


def test_drift_gate_stops_an_sshd_release_at_the_canary(fleet, world):
    """2.1 passes its health gate but turns an sshd unit on: the real agent's post-update audit (of its root)
    fails SVC-001, which passed before, so the canary counts as failed and the rollout pauses."""
    srv, real, fakes = fleet
    dr = real("canary-1", cls=AuditedDrone)
    sims = fakes(4, prefix="later")
    # the golden root is a clean prod pass before the update
    dr.agent(check=True)
    d = srv.drone("canary-1")
    assert d["compliance"]["audit"]["fail"] == 0 and d["compliance"]["audit"]["profile"] == "prod"
    assert d["compliance"]["secureboot"] == {"mode": "deployed", "pk": "ok", "kek": "ok", "db": "ok"}
    rid = upload(srv, world["bundles"]["2.1"])
    ro = int(srv.op("rollout", "create", str(rid), "--drones", ",".join(["canary-1"] + [s.name for s in sims]),
                    "--groups", "1,rest", "--error-count", "1").out)
    srv.op("rollout", "start", str(ro))
    step_all(sims)
    for _ in range(6):
        if dr.reboot_requested():
            dr.boot()
        dr.agent()
        if srv.drone("canary-1")["state"] == "updated":
            break
    d = srv.drone("canary-1")
    assert d["state"] == "updated" and d["version"] == "2.1", d
    assert "SVC-001" in d["compliance"]["audit"]["failing"]
    wait_for(lambda: rollout(srv, ro)["state"] == "paused", timeout=10, what="the drift gate to pause")
    j = rollout(srv, ro)
    m = {x["drone"]: x for x in j["members"]}
    assert m["canary-1"]["state"] == "drift" and "SVC-001" in m["canary-1"]["detail"]
    assert all(m[s.name]["state"] == "pending" for s in sims)
    step_all(sims)
    assert not events(srv, "handed")[1:], "the drift gate must stop the rollout at the canary"
    # the drift report names it too
    drift = json.loads(srv.op("drift", "--json").out)
    entry = next(x for x in drift["drones"] if x["id"] == "canary-1")
    assert "audit" in entry["kinds"] and "SVC-001" in entry["failing"]


def test_canary_then_rest_with_real_agents_and_soak(fleet, world):
    """The good path: a clean release passes the drift gate; the canary's soak must pass before the rest."""
    srv, real, fakes = fleet
    drones = [real(f"d-{i}", cls=AuditedDrone) for i in range(3)]
    rid = upload(srv, world["bundles"]["2.0"])
    ro = int(srv.op("rollout", "create", str(rid), "--drones", "d-0,d-1,d-2", "--groups", "1,rest",
                    "--soak", "2").out)
    srv.op("rollout", "start", str(ro))

    def update(dr):
        for _ in range(6):
            if dr.reboot_requested():
                dr.boot()
            dr.agent()
            if srv.drone(dr.name)["state"] == "updated":
                return
        raise AssertionError(dr.log.read_text()[-2000:])

    for dr in drones:
        dr.agent()
    assert [e[2] for e in events(srv, "handed")] == ["d-0"]   # the others wait for the canary
    update(drones[0])
    assert srv.drone("d-1")["rollout"]["member"] == "pending"
    wait_for(lambda: rollout(srv, ro)["groups"][0]["completed_at"], timeout=10, what="the soak to pass")
    completed = rollout(srv, ro)["groups"][0]
    assert completed["completed_at"] - completed["success_since"] >= 2
    for dr in drones[1:]:
        update(dr)
    wait_for(lambda: rollout(srv, ro)["state"] == "finished", timeout=10, what="the rollout to finish")
    j = rollout(srv, ro)
    assert all(m["state"] == "blessed" for m in j["members"])
    assert sorted(e[2] for e in events(srv, "handed")) == ["d-0", "d-1", "d-2"]
    drift = json.loads(srv.op("drift", "--json", "--silent-polls", "100").out)
    assert not [x for x in drift["drones"] if x["id"].startswith("d-")], drift


def test_approval_by_a_second_operator(fleet, world):
    srv, real, fakes = fleet
    sims = fakes(2)
    rid = upload(srv, world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--fleet", "--require-approval").out.strip()
    p = srv.op("rollout", "start", ro, check=False)
    assert p.returncode == 5 and "approval" in p.err, p.err
    p = srv.op("rollout", "approve", ro, check=False)   # alice created it: not a second person
    assert p.returncode == 5 and "cannot approve" in p.err, p.err
    p = op_as(srv, "bob", "rollout", "approve", ro, check=False)   # bob is not in approvers
    assert p.returncode == 5 and "may not approve" in p.err, p.err
    assert rollout(srv, int(ro))["state"] == "draft" and "approved_by" not in rollout(srv, int(ro))
    op_as(srv, "carol", "rollout", "approve", ro)
    p = op_as(srv, "carol", "rollout", "approve", ro, check=False)
    assert p.returncode == 10   # once
    srv.op("rollout", "start", ro)
    j = rollout(srv, int(ro))
    assert j["state"] == "running" and j["approved_by"] == "carol"
    step_all(sims)
    assert len(events(srv, "handed")) == 1


def test_scheduled_start(fleet, world):
    srv, real, fakes = fleet
    sims = fakes(2)
    rid = upload(srv, world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--fleet", "--groups", "rest").out.strip()
    srv.op("rollout", "start", ro, "--start-at", "+3s")
    assert rollout(srv, int(ro))["state"] == "scheduled"
    step_all(sims)
    assert not events(srv, "handed"), "a scheduled rollout hands nothing before its time"
    assert all(s.checkin()["assignment"] is None for s in sims)
    wait_for(lambda: rollout(srv, int(ro))["state"] == "running", timeout=10, what="the scheduled start")
    step_all(sims)
    assert len(events(srv, "handed")) == 2


def test_abort_mid_rollout(fleet, world):
    srv, real, fakes = fleet
    sims = fakes(8)
    rid = upload(srv, world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--fleet", "--groups", "2,rest").out.strip()
    srv.op("rollout", "start", ro)
    step_all(sims)            # the canary: handed, downloading … rebooting
    step_all(sims)            # canary updated
    wait_for(lambda: rollout(srv, int(ro))["current_group"] == 2, timeout=10, what="group 2")
    order = [m["drone"] for m in rollout(srv, int(ro))["members"]]
    by_name = {s.name: s for s in sims}
    in_flight = [by_name[n] for n in order[2:5]]
    for s in in_flight:
        s.step()              # handed: downloading … rebooting
    srv.op("rollout", "abort", ro)
    handed_before = len(events(srv, "handed"))
    for _ in range(3):
        step_all(sims)
    j = rollout(srv, int(ro))
    assert j["state"] == "aborted" and "aborted by alice" in j["reason"]
    assert len(events(srv, "handed")) == handed_before == 5, "nobody is handed the release after an abort"
    states = {m["drone"]: m["state"] for m in j["members"]}
    for s in in_flight:      # drones already installing finish and report
        assert states[s.name] == "blessed" and s.version == "2.0"
    skipped = [n for n in order[5:]]
    assert all(states[n] == "skipped" for n in skipped)
    assert all(by_name[n].version == "1.0" for n in skipped)
    # a new rollout may take the skipped drones now
    srv.op("rollout", "create", str(rid), "--drones", ",".join(skipped))


def test_conflicting_rollout_and_static_override(fleet, world):
    srv, real, fakes = fleet
    fakes(3, group="north", prefix="north")
    fakes(2, group="south", prefix="south")
    rid = upload(srv, world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--group", "north").out.strip()
    p = srv.op("rollout", "create", str(rid), "--fleet", check=False)
    assert p.returncode == 10, p.err
    assert "3 drones are already in another rollout" in p.err and f"rollout {ro}" in p.err and "north-000" in p.err
    srv.op("tag", "south-000", "+spare")
    srv.op("rollout", "create", str(rid), "--tag", "spare")   # no overlap: fine
    # a static assignment of a drone a rollout holds is refused, unless forced (which takes it out)
    p = srv.op("release", str(rid), "--drone", "north-001", check=False)
    assert p.returncode == 10 and "is in rollout" in p.err
    srv.op("release", str(rid), "--drone", "north-001", "--force")
    m = {x["drone"]: x["state"] for x in rollout(srv, int(ro))["members"]}
    assert m["north-001"] == "removed"
    # clearing a drone's assignment
    assert "assignment cleared" in srv.op("clear", "north-001").out
    assert srv.drone("north-001")["rollout"]["member"] == "removed"


def test_retry_of_failed_drones(fleet, world):
    """A simulated drone whose fault was its own, and a real agent whose health gate failed once: the rollout
    pauses, the operator retries them, the retry generation makes the real agent install again."""
    srv, real, fakes = fleet
    flag = world["dir"] / f"healthy-{os.getpid()}-{time.time_ns()}"
    dr = real("flaky", health=f"test -e {flag}")
    sims = fakes(1, prefix="sim", behaviour="fail")
    rid = upload(srv, world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--drones", f"flaky,{sims[0].name}", "--groups", "rest",
                "--error-count", "3").out.strip()
    srv.op("rollout", "start", ro)
    for _ in range(4):
        step_all(sims)
        if dr.reboot_requested():
            dr.boot()
        dr.agent()
    # the rollback reboot
    if dr.reboot_requested():
        dr.boot()
    dr.agent()
    wait_for(lambda: rollout(srv, int(ro))["state"] == "paused", timeout=10, what="pause")
    j = rollout(srv, int(ro))
    assert {m["drone"]: m["state"] for m in j["members"]} == {"flaky": "rolled-back", sims[0].name: "failed"}
    assert "settled" in j["reason"]
    # without a retry the agent does not try the release again
    dr.agent()
    assert not dr.reboot_requested()
    flag.touch()
    sims[0].behaviour = "good"
    out = json.loads(srv.op("rollout", "retry", ro, "--json").out)
    assert {m["state"] for m in out["members"]} == {"pending"}
    srv.op("rollout", "resume", ro)
    for _ in range(5):
        step_all(sims)
        if dr.reboot_requested():
            dr.boot()
        dr.agent()
    wait_for(lambda: rollout(srv, int(ro))["state"] == "finished", timeout=10, what="finish after the retry")
    handed = events(srv, "handed")
    assert sorted((e[2], e[4]) for e in handed) == sorted([("flaky", 1), ("flaky", 2), (sims[0].name, 1),
                                                           (sims[0].name, 2)])
    assert srv.drone("flaky")["version"] == "2.0" and srv.drone("flaky")["rollout"]["attempt"] == 2
    # a drone can be told to retry outside a rollout too
    assert "retry generation 2" in srv.op("retry", "flaky").out


def test_server_killed_mid_rollout_continues(fleet, world):
    """kill -9 mid-rollout, restart: the rollout continues from the store, no acknowledged report is lost and
    no drone is handed the release twice."""
    srv, real, fakes = fleet
    sims = fakes(20)
    rid = upload(srv, world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--fleet", "--groups", "5,rest", "--soak", "1").out.strip()
    srv.op("rollout", "start", ro)
    stepper = Stepper(sims, every=0.2)
    try:
        wait_for(lambda: len(events(srv, "handed")) >= 8, timeout=30, what="group 2 under way")
        srv.kill(signal.SIGKILL)
        time.sleep(0.5)
        srv.start()
        for s in sims:
            s.port = srv.port
            s.close()
        wait_for(lambda: rollout(srv, int(ro))["state"] == "finished", timeout=60, what="the rollout to finish")
    finally:
        stepper.close()
    stored = {(d, int(s)) for d, s in srv.sql("SELECT drone, seq FROM events")}
    lost = [(s.name, q) for s in sims for q in s.acked if (s.name, q) not in stored]
    assert not lost, f"acknowledged reports lost: {lost[:5]}"
    handed = [e[2] for e in events(srv, "handed")]
    assert sorted(handed) == sorted(s.name for s in sims), "every drone handed the release exactly once"
    assert all(m["state"] == "blessed" for m in rollout(srv, int(ro))["members"])


ROUTES = [
    ("POST", "/api/v1/rollouts", b'{"release":1,"target":"*"}'),
    ("GET", "/api/v1/rollouts", None),
    ("GET", "/api/v1/rollouts/{ro}", None),
    ("POST", "/api/v1/rollouts/{ro}/approve", b""),
    ("POST", "/api/v1/rollouts/{ro}/start", b""),
    ("POST", "/api/v1/rollouts/{ro}/pause", b""),
    ("POST", "/api/v1/rollouts/{ro}/resume", b""),
    ("POST", "/api/v1/rollouts/{ro}/abort", b""),
    ("POST", "/api/v1/rollouts/{ro}/retry", b""),
    ("POST", "/api/v1/drones/sim-000/tags", b'{"add":["x"]}'),
    ("POST", "/api/v1/drones/sim-000/retry", b""),
    ("POST", "/api/v1/drones/sim-000/clear", b""),
    ("GET", "/api/v1/drones/sim-000/compliance", None),
    ("GET", "/api/v1/windows", None),
    ("POST", "/api/v1/windows", b'{"target":"group:default","windows":"02:00-04:00"}'),
    ("GET", "/api/v1/drift", None),
]


def test_wrong_identity_on_every_new_route(fleet, world, tmp_path):
    srv, real, fakes = fleet
    a, b = fakes(2)   # sim-000 and sim-001
    rid = upload(srv, world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--fleet", "--require-approval").out.strip()
    pki = world["pki"]
    cert_b = tmp_path / "ids" / "sim-001.pem"
    ids = {
        "none": tls_context(pki),
        "drone": tls_context(pki, cert_b, tmp_path / "ids" / "sim-001.key"),
        "foreign-operator": tls_context(pki, pki.dir / "evil" / "alice.pem", pki.dir / "evil" / "alice.key"),
    }
    before = rollout(srv, int(ro))
    for who, ctx in ids.items():
        for method, path, body in ROUTES:
            path = path.format(ro=ro)
            try:
                status, data, _ = request(srv.port, ctx, method, path, body=body)
            except (OSError, ConnectionError):
                continue   # refused in the handshake
            want = (401,) if who == "none" else (403,)
            assert status in want, f"{who} {method} {path} -> {status} {data[:200]}"
            assert json.loads(data)["error"]
    # drone B may read its own compliance, never drone A's
    status, _, _ = request(srv.port, ids["drone"], "GET", "/api/v1/drones/sim-001/compliance")
    assert status == 200
    # an operator without approval rights, on the approval route only
    bob = tls_context(pki, pki.dir / "op" / "bob.pem", pki.dir / "op" / "bob.key")
    status, data, _ = request(srv.port, bob, "POST", f"/api/v1/rollouts/{ro}/approve", body=b"")
    assert status == 403 and b"may not approve" in data
    status, _, _ = request(srv.port, bob, "GET", f"/api/v1/rollouts/{ro}")
    assert status == 200
    after = rollout(srv, int(ro))
    assert after["state"] == before["state"] == "draft" and "approved_by" not in after
    assert after["counts"] == before["counts"]
    assert json.loads(srv.op("tag", "sim-000", "--json").out)["tags"] == []


# ---- maintenance windows ----

def test_windows_with_a_controlled_clock(fleet, world):
    """The drone downloads at any time but installs and reboots only inside its window, in its own time zone;
    the clock is libfaketime's."""
    srv, real, fakes = fleet
    dr = real("night", extra="timezone = Asia/Tokyo\n")
    rid = upload(srv, world["bundles"]["2.0"])
    srv.op("window", "set", "--drone", "night", "02:00-04:00")
    srv.op("release", str(rid), "--drone", "night")
    # Tokyo times of the day after tomorrow (UTC): every faked instant lies ahead of the real clock, so the
    # certificates made now are valid then (with "tomorrow", 02:30 in Tokyo was before now from 17:30 UTC on)
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=2)).date()

    def at(tokyo_hh_mm):
        # Tokyo is UTC+9 all year; faketime reads FAKETIME in the process's TZ (UTC here)
        h, m = map(int, tokyo_hh_mm.split(":"))
        t = datetime(tomorrow.year, tomorrow.month, tomorrow.day, h, m, tzinfo=timezone.utc) - timedelta(hours=9)
        env = dict(os.environ, TZ="UTC", FAKETIME=t.strftime("@%Y-%m-%d %H:%M:%S"), FAKETIME_DONT_FAKE_MONOTONIC="1")
        # the sanitizer runtime tolerates the preload
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
        p = subprocess.run(["faketime", "-f", env["FAKETIME"], str(dr.ringild), "--config", str(dr.dir / "ringild.conf"),
                            "--once", "--verbose"], capture_output=True, env=env, timeout=120)
        with open(dr.log, "ab") as f:
            f.write(p.stderr)
        return p

    slot_b = (dr.dir / "slot-b.img").read_bytes()
    for hh in ("12:00", "01:59", "04:00"):
        at(hh)
        d = srv.drone("night")
        assert d["state"] == "waiting" and "maintenance window" in d["error"], d
        assert not dr.reboot_requested(), f"rebooted at {hh} Tokyo time"
        assert (dr.dir / "slot-b.img").read_bytes() == slot_b, f"installed at {hh} Tokyo time"
        assert list((dr.dir / "agent" / "state" / "download").glob("*.bundle")), "the download happens any time"
        assert d["compliance"]["tz"] == "Asia/Tokyo" and d["compliance"]["utc_offset"] == 9 * 3600
    p = at("02:30")
    assert dr.reboot_requested(), p.stderr.decode()[-2000:]
    assert dr.status()["slots"]["b"]["version"] == "2.0"
    assert [h["state"] for h in reversed(srv.drone("night")["history"])] == \
        ["downloading", "waiting", "installed", "rebooting"]
    # windows are validated when set, and listed
    assert srv.op("window", "set", "--group", "default", "2:00-4:00", check=False).returncode == 2
    assert "drone:night" in srv.op("window", "list").out


# ---- failures that are not the release's fault ----

def agent_state(dr):
    return dr.agent_state()


def test_download_cut_and_server_refusing_are_retried(fleet, world):
    """A link cut for good mid-download, then a server that refuses connections: the agent keeps the release
    (retrying, not failed) and resumes the download where it stopped. The whole-bundle download path
    (`delta = no`; a delta install writes while it fetches: test_delta_install_cut_is_retried_and_resumes)."""
    srv, real, fakes = fleet
    proxy = CuttingProxy(srv.port, cut_min=300 * 1024, cut_max=300 * 1024, seed=1)
    dr = real("cut", extra="delta = no\n")
    dr.write_agent_conf(f"https://127.0.0.1:{proxy.port}")
    rid = upload(srv, world["bundles"]["2.0"])
    size = os.path.getsize(world["bundles"]["2.0"])
    srv.op("release", str(rid), "--drone", "cut")
    # let the check-in's connection and the download's first ones through (each cut after ~300 KiB: the
    # download asks for its pieces on connections of their own), then the link goes away for good
    orig_serve = proxy._serve
    served = []

    def serve_once(c, limit):
        if len(served) >= 4:
            c.close()
            return
        served.append(1)
        orig_serve(c, limit)

    proxy._serve = serve_once
    p = dr.agent()
    assert p.returncode != 0
    d = srv.drone("cut")
    part = list((dr.dir / "agent" / "state" / "download").glob("*.part"))
    assert part and 0 < part[0].stat().st_size < size
    st = agent_state(dr)
    assert st["state"] == "retrying" and st["failed-release"] == "0", st
    assert d["state"] in ("downloading", "retrying"), d
    proxy.close()
    # the server itself refuses connections now
    srv.kill(signal.SIGKILL)
    p = dr.agent()
    assert p.returncode != 0 and agent_state(dr)["failed-release"] == "0"
    srv.start()
    dr.write_agent_conf(srv.url)
    before = srv.metric("ringil_bundle_bytes_sent_total")
    for _ in range(6):
        if dr.reboot_requested():
            dr.boot()
        p = dr.agent()
        if srv.drone("cut")["state"] == "updated":
            break
    assert srv.drone("cut")["state"] == "updated"
    sent = srv.metric("ringil_bundle_bytes_sent_total") - before
    assert sent < size, f"the download resumed: {sent} of {size} bytes fetched after the cut"
    states = [h["state"] for h in reversed(srv.drone("cut")["history"])]
    assert "retrying" in states and "failed" not in states, states
    assert "resuming release" in dr.log.read_text()


def test_delta_install_cut_is_retried_and_resumes(fleet, world):
    """A delta install (the default) whose link is cut for good mid-fetch, then a server that refuses
    connections: the release is kept (retrying, not failed), nothing unverified is installed, and the next
    run finishes from what the engine already wrote (found in place, not fetched again). v1 and v2 share no
    chunk, so `delta-full-above = 100` keeps the chunk plan (past the threshold one sequential range from
    the last checkpoint would be asked for instead)."""
    srv, real, fakes = fleet
    proxy = CuttingProxy(srv.port, cut_min=1300 * 1024, cut_max=1300 * 1024, seed=1)
    dr = real("dcut", extra="delta-full-above = 100\nfetch-parallel = 1\n")
    dr.write_agent_conf(f"https://127.0.0.1:{proxy.port}")
    rid = upload(srv, world["bundles"]["2.0"])
    size = os.path.getsize(world["bundles"]["2.0"])
    srv.op("release", str(rid), "--drone", "dcut")
    orig_serve = proxy._serve
    served = []

    def serve_once(c, limit):
        # the check-in gets through; the first fetch connection (header, manifest, then the first 1 MiB
        # piece, which reaches the engine whole) is cut after 1.3 MiB; every other connection is refused
        if len(served) >= 2:
            c.close()
            return
        served.append(1)
        orig_serve(c, limit)

    proxy._serve = serve_once
    p = dr.agent()
    assert p.returncode != 0
    st = agent_state(dr)
    assert st["state"] == "retrying" and st["failed-release"] == "0", st
    dl = dr.dir / "agent" / "state" / "download"
    assert not dl.exists() or not list(dl.iterdir()), "a delta install downloads nothing to download-dir"
    assert "bytes fetched" in dr.log.read_text()
    assert dr.status()["slots"]["b"].get("version") != "2.0"
    proxy.close()
    srv.kill(signal.SIGKILL)
    p = dr.agent()
    assert p.returncode != 0 and agent_state(dr)["failed-release"] == "0"
    srv.start()
    dr.write_agent_conf(srv.url)
    for _ in range(6):
        if dr.reboot_requested():
            dr.boot()
        dr.agent()
        if srv.drone("dcut")["state"] == "updated":
            break
    d = srv.drone("dcut")
    assert d["state"] == "updated" and d["version"] == "2.0", d
    img = (world["dir"] / "img-2.0").read_bytes()
    assert (dr.dir / "slot-b.img").read_bytes()[: len(img)] == img
    states = [h["state"] for h in reversed(d["history"])]
    assert "retrying" in states and "failed" not in states, states
    # the last install found what the cut one had written (in place) and fetched less than the bundle
    assert d["delta"]["fetched"] < size and d["delta"]["reused"] > 0, d["delta"]


def test_sigterm_mid_download_keeps_the_release(fleet, world):
    """`systemctl stop ringild` in the middle of a (rate-limited) download: the agent stops at once, keeps the
    partial download, and resumes it when it starts again. The whole-bundle download path (`delta = no`)."""
    srv, real, fakes = fleet
    dr = real("stopped", extra="delta = no\n")
    rid = upload(srv, world["bundles"]["2.0"])
    size = os.path.getsize(world["bundles"]["2.0"])
    ro = srv.op("rollout", "create", str(rid), "--drones", "stopped", "--groups", "rest", "--rate", "200K").out.strip()
    srv.op("rollout", "start", ro)
    p = agent_daemon(dr)
    try:
        part_dir = dr.dir / "agent" / "state" / "download"
        wait_for(lambda: any(f.stat().st_size > 150 * 1024 for f in part_dir.glob("*.part")) if part_dir.exists()
                 else False, timeout=30, what="a partial download")
        t = time.time()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        stopped_in = time.time() - t
    finally:
        if p.poll() is None:
            p.kill()
    have = next(part_dir.glob("*.part")).stat().st_size
    assert 0 < have < size
    st = agent_state(dr)
    assert st["failed-release"] == "0" and st["state"] == "downloading"
    m = rollout(srv, int(ro))["members"][0]
    assert m["state"] == "downloading"
    before = srv.metric("ringil_bundle_bytes_sent_total")
    for _ in range(6):
        if dr.reboot_requested():
            dr.boot()
        dr.agent()
        if srv.drone("stopped")["state"] == "updated":
            break
    assert srv.drone("stopped")["state"] == "updated"
    sent = srv.metric("ringil_bundle_bytes_sent_total") - before
    assert sent <= size - have + 4 * 65536, (sent, size, have)
    log = dr.log.read_text()
    assert f"resuming release {rid} at byte" in log and "stopping" in log
    print(f"\nSIGTERM: agent stopped {stopped_in:.2f} s after the signal with {have} of {size} bytes; "
          f"the restart fetched {int(sent)} bytes")


@pytest.mark.parametrize("fault", ["no-loader-entry", "not-blessed"])
def test_install_refused_for_the_drones_own_state_is_retried(fleet, world, fault):
    srv, real, fakes = fleet
    dr = real(f"state-{fault}")
    var = dr.dir / "efivars" / "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    target = "2.0"
    if fault == "no-loader-entry":
        saved = var.read_bytes()
        var.unlink()
    else:
        # 2.0 installed by hand and booted, but never blessed
        run([dr.ringil, "install", "--config", dr.devconf, world["bundles"]["2.0"]])
        dr.boot()
        target = "3.0"
    rid = upload(srv, world["bundles"][target])
    srv.op("release", str(rid), "--drone", dr.name)
    dr.agent()
    st = agent_state(dr)
    assert st["state"] == "retrying" and st["failed-release"] == "0", st
    assert "not ready to install" in st["error"]
    assert ("LoaderEntrySelected" in st["error"]) if fault == "no-loader-entry" else ("not blessed" in st["error"])
    assert not dr.reboot_requested()
    d = srv.drone(dr.name)
    assert d["state"] == "retrying" and "not ready" in d["error"]
    # the drone's state is put right: the kept release installs (after the backoff)
    if fault == "no-loader-entry":
        var.write_bytes(saved)
    else:
        run([dr.ringil, "mark-good", "--config", dr.devconf])
    rebooting = False
    for _ in range(15):
        dr.agent()
        rebooting = dr.reboot_requested()
        if rebooting:
            break
        time.sleep(0.5)
    assert rebooting, dr.log.read_text()[-3000:]
    assert dr.status()["slots"]["a" if fault == "not-blessed" else "b"]["version"] == target
    assert agent_state(dr)["state"] == "rebooting"


# ---- drift and compliance ----

def test_drift_report_and_compliance_history(fleet, world):
    srv, real, fakes = fleet
    ok, failing, sb, foreign, silent, devprof = fakes(6)
    failing.failing = ["LOG-003", "SVC-001"]
    sb.sb = {"mode": "setup", "pk": "missing", "kek": "ok", "db": "ok"}
    foreign.sb = {"mode": "user", "pk": "ok", "kek": "ok", "db": "foreign"}
    devprof.profile = "dev"
    for s in (ok, failing, sb, foreign, silent, devprof):
        s.checkin()
    rid = upload(srv, world["bundles"]["2.0"])
    srv.op("release", str(rid), "--drone", ok.name)       # assigned 2.0, still runs 1.0
    time.sleep(4.2)                                        # silent: > 3 polls of 1 s
    for s in (ok, failing, sb, foreign, devprof):
        s.checkin()
    j = json.loads(srv.op("drift", "--json").out)
    by = {d["id"]: d for d in j["drones"]}
    assert by[ok.name]["kinds"] == ["release"] and "assigned '2.0'" in by[ok.name]["release"]
    assert by[failing.name]["kinds"] == ["audit"] and by[failing.name]["failing"] == ["LOG-003", "SVC-001"]
    assert by[sb.name]["kinds"] == ["secureboot"] and "mode setup" in by[sb.name]["secureboot"]
    assert "PK missing" in by[sb.name]["secureboot"]
    assert by[foreign.name]["kinds"] == ["secureboot"] and "db foreign" in by[foreign.name]["secureboot"]
    assert by[silent.name]["kinds"] == ["silent"]
    assert by[devprof.name]["kinds"] == ["audit"] and "not prod" in by[devprof.name]["audit"]
    assert j["counts"] == {"release": 1, "audit": 2, "secureboot": 2, "silent": 1}
    metrics = srv.op("metrics").out
    for kind, n in j["counts"].items():
        assert f'ringil_drift_drones{{kind="{kind}"}} {n}' in metrics
    table = srv.op("drift", "--silent-polls", "100").out
    assert "5 of 6 drones drifted" in table and "SVC-001" in table
    # the server keeps the last report and its history (a new row only when something changed)
    failing.failing = ["SVC-001"]
    for _ in range(3):
        failing.checkin()
    c = json.loads(srv.op("status", failing.name, "--json").out)["compliance"]
    assert c["audit"]["failing"] == ["SVC-001"]
    api = Api(srv)
    _, h = api("GET", f"/api/v1/drones/{failing.name}/compliance", expect=200)
    assert [x["audit"]["failing"] for x in h["history"]] == [["SVC-001"], ["LOG-003", "SVC-001"]]
    assert h["last"]["audit"]["sha256"] and h["last"]["secureboot"]["mode"] == "deployed"


def test_checkin_names_the_report_by_digest(fleet, world):
    """After the first, a check-in may carry only the compliance report's digest; the server asks for the
    report again when it does not hold the one the digest names (a restored database, say)."""
    srv, real, fakes = fleet
    (d,) = fakes(1)
    st = d.status()
    d.checkin()                                            # the whole report
    subset = {k: st[k] for k in ("audit", "secureboot", "tz", "utc_offset")}
    digest = hashlib.sha256(json.dumps(subset, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    lean = {k: st[k] for k in ("version", "slot", "boot", "state", "release", "target", "error")}
    status, data = d._post("/api/v1/checkin", dict(lean, compliance=digest))
    assert status == 200 and "compliance" not in json.loads(data), data   # the server holds it
    status, data = d._post("/api/v1/checkin", dict(lean, compliance="0" * 64))
    assert json.loads(data)["compliance"] == "resend"
    # a lean check-in keeps what the server stored: the counts and the report
    c = json.loads(srv.op("status", d.name, "--json").out)
    assert c["audit"]["pass"] == st["audit"]["pass"] and c["compliance"]["audit"]["sha256"] == st["audit"]["sha256"]
    srv.sql("DELETE FROM compliance")                     # as if restored from an older backup
    srv.kill(signal.SIGKILL)                              # and its memory of digests gone with it
    srv.start()
    d.port = srv.port
    d.close()
    status, data = d._post("/api/v1/checkin", dict(lean, compliance=digest))
    assert json.loads(data)["compliance"] == "resend"
