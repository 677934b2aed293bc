"""test_fleet_replicas.py: several ringil-server replicas on one PostgreSQL: a replica killed mid-rollout,
the scheduler's election, PostgreSQL restarted under load, a TCP load balancer in front, migration."""
import json
import re
import signal
import time
from pathlib import Path

import pytest

from fleetsim import FakeFleet, HAProxy, ListDrone, Server, SimDrone, free_port, request, run, tls_context
from test_fleet import update_to_completion, world  # noqa: F401 (a fixture and a helper)

# A real PostgreSQL server (once per run): the normal pass only, not again under the sanitizers.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def start_replicas(world, db, tmp_path, n=2, extra=""):
    store = tmp_path / "store"   # shared, as a network file system would be
    out = []
    for i in range(n):
        srv = Server(world["server"], world["pki"], tmp_path / f"replica-{i}", db=db, store=store,
                     extra=f"replica-name = replica-{i}\nscheduler-interval = 1\n" + extra)
        out.append(srv.start().pin_ports())
    return out


def leader_of(servers):
    """The replicas whose ringil_scheduler_leader is 1 (asked of each live one)."""
    return [s for s in servers if s.proc.poll() is None and s.metric("ringil_scheduler_leader") == 1]


def wait_for(cond, timeout, step=0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v, time.monotonic() - t0
        time.sleep(step)
    return None, time.monotonic() - t0


def real_drone(world, tmp_path, name, servers, enroll_via):
    dr = SimDrone(name, tmp_path / name, world["ringil"], world["ringild"], world["pki"])
    dr.provision(world["bundles"]["1.0"])
    dr.enroll(enroll_via)
    dr.write_agent_conf(",".join(s.url for s in servers))
    return dr


def fake_drones(world, tmp_path, srv, n, urls):
    d = tmp_path / "fake"
    drones = []
    for i in range(n):
        name = f"sim-{i:02d}"
        srv.op("enroll", name)
        drones.append(ListDrone(name, world["pki"], d, urls if i % 2 == 0 else list(reversed(urls))))
    return drones


def stored_reports(srv):
    return {(row[0], int(row[1])) for row in srv.sql("SELECT drone, seq FROM events")}


def rollout_json(srv, ro):
    return json.loads(srv.op("rollout", "show", str(ro), "--json").out)


def test_replica_killed_mid_rollout(world, pg_server, tmp_path):
    """Two replicas, 20 simulated drones and two real agents in a staged rollout (a canary of one,
    then the rest after a soak); the replica that runs the scheduler is killed with SIGKILL while the
    canary is installing: the drones go on with the other, no acknowledged report is lost, the
    scheduler moves to the survivor within 10 s and starts the next group there, no drone is handed
    the release twice; restarted, the killed replica serves again and can take the scheduler back."""
    servers = start_replicas(world, pg_server.new_database(), tmp_path)
    try:
        (lead,), took = wait_for(lambda: leader_of(servers) if len(leader_of(servers)) == 1 else None, 15)
        other = next(s for s in servers if s is not lead)
        holder = lambda s: s.sql("SELECT holder FROM scheduler")[0][0]  # noqa: E731
        assert holder(lead) == lead.conf.read_text().split("replica-name = ")[1].split()[0]

        agents = [real_drone(world, tmp_path, f"agent-{i}", [lead, other], lead) for i in range(2)]
        sims = fake_drones(world, tmp_path, lead, 20, [lead.url, other.url])
        rid = int(lead.op("upload", "--quiet", world["bundles"]["2.0"]).out.strip())
        ro = int(lead.op("rollout", "create", str(rid), "--drones", "agent-0,agent-1", "--groups", "1,rest",
                         "--soak", "2").out.strip())
        lead.op("rollout", "start", str(ro))
        # mid-rollout: the canary (agent-0) has installed the release and asked for its reboot; agent-1
        # is held (no assignment at all) until the scheduler starts its group
        agents[0].agent()
        assert agents[0].reboot_requested()
        agents[1].agent()
        assert not agents[1].reboot_requested()
        assert other.drone("agent-0")["state"] == "rebooting"   # every replica sees the same state
        assert rollout_json(other, ro)["current_group"] == 1

        load = FakeFleet(sims).start()
        time.sleep(2)
        lead.kill(signal.SIGKILL)
        killed = time.monotonic()
        # the scheduler: the survivor takes it within 10 s of the kill
        got, _ = wait_for(lambda: other.metric("ringil_scheduler_leader") == 1, 20)
        failover = time.monotonic() - killed
        assert got and failover < 10, failover
        passes = other.metric("ringil_scheduler_passes_total")
        wait_for(lambda: other.metric("ringil_scheduler_passes_total") > passes, 5)
        assert other.metric("ringil_scheduler_passes_total") > passes
        assert holder(other) == "replica-1" if other is servers[1] else "replica-0"
        print(f"scheduler moved to the survivor {failover:.1f} s after the SIGKILL")

        # the canary boots and blesses through the survivor; only the survivor's scheduler can see the
        # soak through and start the second group
        agents[0].boot()
        update_to_completion(agents[0], other)
        started, _ = wait_for(lambda: rollout_json(other, ro)["current_group"] == 2, 20)
        assert started, rollout_json(other, ro)
        update_to_completion(agents[1], other)
        finished, _ = wait_for(lambda: rollout_json(other, ro)["state"] == "finished", 20)
        assert finished, rollout_json(other, ro)
        time.sleep(2)
        load.stop()

        # no acknowledged report lost (those acknowledged by the killed replica included)
        acked = load.acked()
        assert len(acked) > 50, len(acked)
        lost = acked - stored_reports(other)
        assert not lost, sorted(lost)[:10]
        after_kill = sum(1 for d in sims for seq, port in d.acked if port == other.port)
        assert after_kill > 0
        assert all(d.statuses.get(200, 0) > 0 for d in sims)
        # every report either wholly stored or not at all: a drone's last seq is its newest event
        for name, last, newest in other.sql("SELECT d.id, d.last_seq, COALESCE(max(e.seq), 0) FROM drones d LEFT JOIN "
                                            "events e ON e.drone = d.id GROUP BY d.id, d.last_seq"):
            assert last == newest, (name, last, newest)
        # no drone was handed the release twice: one hand each in the rollout's events, one download,
        # one install, one update each
        handed = sorted(r[0] for r in other.sql(f"SELECT drone FROM rollout_events WHERE rollout = {ro} AND "
                                                "event = 'handed'"))
        assert handed == ["agent-0", "agent-1"], handed
        assert all(m["state"] == "blessed" for m in rollout_json(other, ro)["members"])
        for dr in agents:
            states = [h["state"] for h in reversed(other.drone(dr.name)["history"])]
            assert [s for s in states if s != "waiting"] == ["downloading", "installed", "rebooting", "updated"], \
                (dr.name, states)
            assert dr.log.read_text().count("assignment: release") == 1

        # restarted, the killed replica rejoins: it serves, and the scheduler stays where it is ...
        lead.start()
        ctx = tls_context(world["pki"], agents[1].dir / "agent" / "cert.pem", agents[1].dir / "agent" / "key.pem")
        assert request(lead.port, ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle","version":"2.0"}')[0] == 200
        time.sleep(2)
        assert lead.metric("ringil_scheduler_leader") == 0 and other.metric("ringil_scheduler_leader") == 1
        # ... until the other one goes: then the rejoined replica takes it
        other.kill(signal.SIGTERM)
        got, took = wait_for(lambda: lead.metric("ringil_scheduler_leader") == 1, 20)
        assert got and took < 10, took
    finally:
        for s in servers:
            s.stop()


def test_postgres_restarted_under_load(world, pg_server, tmp_path):
    """PostgreSQL stopped and started again while drones check in and report through two replicas:
    meanwhile every answer is a clean 503 with Retry-After (no crash, nothing half-written); afterwards
    both replicas reconnect on their own and every acknowledged report is there."""
    servers = start_replicas(world, pg_server.new_database(), tmp_path)
    try:
        sims = fake_drones(world, tmp_path, servers[0], 10, [s.url for s in servers])
        load = FakeFleet(sims, pause=0.05).start()
        time.sleep(2)
        pg_server.stop("fast")
        time.sleep(4)
        down = {k: sum(d.statuses.get(k, 0) for d in sims) for k in (200, 500, 503, "conn")}
        pg_server.start()
        # both replicas answer again (each asked on its own)
        ctx = sims[0].ctx

        def both_up():
            return all(request(s.port, ctx, "POST", "/api/v1/checkin",
                               body=b'{"state":"idle","version":"1.0"}')[0] == 200 for s in servers)
        up, took = wait_for(both_up, 30, step=0.5)
        assert up, "a replica did not reconnect"
        time.sleep(2)
        load.stop()
        for s in servers:
            assert s.proc.poll() is None, "a replica died"
        statuses = {k: sum(d.statuses.get(k, 0) for d in sims) for k in (200, 500, 503, "conn")}
        print(f"while down: {down}; all: {statuses}; replicas answered {took:.1f} s after the restart")
        assert statuses[503] > 0 and statuses[500] == 0
        assert sum(d.retry_after for d in sims) == statuses[503]   # every 503 says when to come back
        assert statuses["conn"] == 0   # refused by answers, not by dropped connections
        # the leader came back too
        got, _ = wait_for(lambda: len(leader_of(servers)) == 1, 15)
        assert got
        lost = FakeFleet(sims).acked() - stored_reports(servers[0])
        assert not lost, sorted(lost)[:10]
        for name, last, newest in servers[0].sql("SELECT d.id, d.last_seq, COALESCE(max(e.seq), 0) FROM drones d "
                                                  "LEFT JOIN events e ON e.drone = d.id GROUP BY d.id, d.last_seq"):
            assert last == newest, (name, last, newest)
        assert servers[0].metric("ringil_store_errors_total") + servers[1].metric("ringil_store_errors_total") > 0
    finally:
        if not pg_server.running():
            pg_server.start()
        for s in servers:
            s.stop()


def haproxy_config(lb_port, a_port, b_port):
    """docs/fleet.md's haproxy example, with the test's ports."""
    doc = (ROOT / "docs" / "fleet.md").read_text()
    cfg = doc.split("```haproxy\n", 1)[1].split("```", 1)[0]
    cfg = cfg.replace("0.0.0.0:8443", f"127.0.0.1:{lb_port}")
    cfg = cfg.replace("10.0.0.11:8443", f"127.0.0.1:{a_port}").replace("10.0.0.12:8443", f"127.0.0.1:{b_port}")
    assert f"127.0.0.1:{a_port}" in cfg and f"127.0.0.1:{b_port}" in cfg
    return cfg


def test_load_balancer_in_front(world, pg_server, tmp_path):
    """The alternative to a URL list: one address, a TCP load balancer (haproxy, TLS passed through)
    with health checks in front of the replicas; a replica dies mid-update, the agent does not notice."""
    servers = start_replicas(world, pg_server.new_database(), tmp_path)
    lb_port = free_port()
    lb = HAProxy(haproxy_config(lb_port, servers[0].port, servers[1].port), tmp_path / "haproxy", lb_port)
    try:
        dr = real_drone(world, tmp_path, "agent-lb", servers, servers[0])
        dr.write_agent_conf(f"https://127.0.0.1:{lb_port}")
        rid = int(servers[0].op("upload", "--quiet", world["bundles"]["2.0"]).out.strip())
        servers[0].op("release", str(rid), "--fleet")
        dr.agent()
        assert dr.reboot_requested()
        servers[0].kill(signal.SIGKILL)
        dr.boot()
        update_to_completion(dr, servers[1])
        assert "Check-in failed" not in dr.log.read_text().split("state rebooting")[-1]
    finally:
        lb.close()
        for s in servers:
            s.stop()


def test_migrate_sqlite_to_postgresql(world, pg_server, tmp_path):
    """A fleet on SQLite (an agent that updated, registered drones, a release with a mirror, history)
    moved to PostgreSQL with `ringil-server migrate`; a replica on it takes over the same drones."""
    old = Server(world["server"], world["pki"], tmp_path / "old", db=tmp_path / "old" / "fleet.db").start().pin_ports()
    dr = SimDrone("agent-mg", tmp_path / "agent-mg", world["ringil"], world["ringild"], world["pki"])
    dr.provision(world["bundles"]["1.0"])
    dr.enroll(old)
    for i in range(3):
        old.op("enroll", f"waiting-{i}")
    old.op("revoke", "waiting-2")
    rid = int(old.op("upload", "--quiet", "--mirror", "https://mirror.example/v2.bundle", world["bundles"]["2.0"]).out)
    old.op("release", str(rid), "--group", "default")
    update_to_completion(dr, old)
    before = {t: old.sql(f"SELECT count(*) FROM {t}")[0][0] for t in ("drones", "releases", "assignments", "events")}
    history = old.drone("agent-mg")["history"]
    old.stop()

    url = pg_server.new_database()
    p = run([world["server"], "migrate", "--from", f"sqlite:{old.db}", "--to", url])
    for t, n in before.items():
        assert re.search(rf"^{t} +{n} rows$", p.out, re.M), (t, n, p.out)
    assert "every table holds as many rows as the source" in p.out
    # never into a database that already holds a fleet
    p = run([world["server"], "migrate", "--from", f"sqlite:{old.db}", "--to", url], check=False)
    assert p.returncode == 10 and "new database" in p.err
    # nor to a server that is not there
    p = run([world["server"], "migrate", "--from", f"sqlite:{old.db}",
             "--to", f"postgresql://ringil@127.0.0.1:{free_port()}/x"], check=False)
    assert p.returncode == 13, p.err

    conf = old.conf.read_text()   # the same ports and store: the drones' URLs do not change
    new = Server(world["server"], world["pki"], tmp_path / "old", db=url, store=tmp_path / "old" / "store")
    new.conf.write_text(re.sub(r"^db = .*$", f"db = {url}", conf, flags=re.M))
    new.start()
    try:
        after = {t: new.sql(f"SELECT count(*) FROM {t}")[0][0] for t in before}
        assert after == before
        d = new.drone("agent-mg")
        assert d["history"] == history and d["version"] == "2.0" and d["state"] == "updated"
        assert new.drone("waiting-2")["status"] == "revoked"
        rel = json.loads(new.op("status", "--json").out)
        assert rel[0]["mirrors"] == ["https://mirror.example/v2.bundle"] and rel[0]["assigned"] == "group:default"
        # the drone's identity (the serial on record) is accepted by the new server, its agent goes on
        dr.agent(check=True)
        assert new.drone("agent-mg")["last_seen"] >= d["last_seen"]
        # a re-issued token from the new server works; new releases get ids after the copied ones
        assert len(new.op("reissue-token", "waiting-0").out.strip()) == 64
        rid3 = int(new.op("upload", "--quiet", world["bundles"]["0.5"]).out)
        assert rid3 == rid + 1
    finally:
        new.stop()
