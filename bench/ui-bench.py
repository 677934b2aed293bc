#!/usr/bin/env python3
"""ui-bench.py: the dashboard's page times at fleet scale.

Builds a fleet of N drones (default 10,000) with 30 days of history in the server's store (three releases
rolled out one after the other, some failures, rollbacks and silent drones), starts ringil-server on it and
times, over one mutual-TLS keep-alive connection, the drones view in the ways an operator uses it (first,
middle and last page, sorted by check-in, by version, filtered by state, group and version, searched), the
fleet view, the drone view, a rollout of every drone and the action log; then the same drones pages loaded in Debian's headless
Chromium (navigation timing: request to response end, and to the load event). In the same run, as
references: the JSON list of all drones (/api/v1/drones, what `ringil-server drones` fetches) and nginx
serving the drones page's bytes as a static file over mutual TLS (no work at all: the floor).

Usage: bench/ui-bench.py BUILD [--drones N] [--requests R] [--screenshots DIR] [--keep]
Prints one line per page kind (p50, p95, p99, max in ms) and the verdict against the 200 ms P95 limit.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
LIMIT_MS = 200.0
DAY = 86400


def run(args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw)


def pki(build, w):
    r = build / "ringil" / "ringil"
    run([r, "ca", "create", "--dir", w / "ca"])
    run([r, "ca", "issue", "--dir", w / "ca", "--name", "127.0.0.1", "--server", "--out-dir", w / "srv"])
    run([r, "ca", "issue", "--dir", w / "ca", "--name", "alice", "--operator", "--out-dir", w / "op"])
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         w / "sign.key", "-out", w / "sign.pem", "-subj", "/CN=bench-signer", "-days", "2", "-addext",
         "extendedKeyUsage=codeSigning"])


def start_server(build, w):
    conf = w / "server.conf"
    conf.write_text(f"listen = 127.0.0.1:0\ndb = {w / 'fleet.db'}\nstore = {w / 'store'}\n"
                    f"cert = {w / 'srv' / '127.0.0.1.pem'}\nkey = {w / 'srv' / '127.0.0.1.key'}\n"
                    f"device-ca = {w / 'ca'}\nkeyring = {w / 'sign.pem'}\npoll-interval = 300\n")
    p = subprocess.Popen([str(build / "ringil-server" / "ringil-server"), "serve", "--config", str(conf)],
                         stdout=subprocess.PIPE, stderr=open(w / "server.log", "ab"))
    line = p.stdout.readline().decode()
    assert line.startswith("listening on "), line
    return p, int(line.rsplit(":", 1)[1])


def fill(db, n, now, rnd):
    """n drones, 30 days of reports: 1.0 from the start, 1.1 rolled out on days 8-10, 2.0 on days 20-24."""
    con = sqlite3.connect(db)
    drones, events = [], []
    groups = ["canary", "north", "south", "east", "west"]
    start = now - 30 * DAY
    for i in range(n):
        did = f"drone-{i:05d}"
        t, seq, version, state, error = start + rnd.randrange(DAY), 0, "1.0", "idle", ""
        plan = [("1.1", 2, start + 8 * DAY + rnd.randrange(2 * DAY), 0.01),
                ("2.0", 3, start + 20 * DAY + rnd.randrange(4 * DAY), 0.03)]
        for target, rel, when, fail in plan:
            if when > now - 3600 or rnd.random() < 0.04:   # not handed yet, or off the rollout
                continue
            steps = ["downloading", "installed", "rebooting"]
            end = "updated"
            x = rnd.random()
            if x < fail:
                end, error = "rolled-back", "health gate failed: telemetry link down after boot"
            elif x < 2 * fail:
                steps, end, error = ["downloading"], "failed", "bundle refused: signature does not verify"
            for k, st in enumerate(steps + [end]):
                seq += 1
                v = target if st == "updated" else version
                events.append((did, seq, when + 60 * k, st, rel, v, target, error if st == end else ""))
            state = end
            if end == "updated":
                version, error = target, ""
        silent = rnd.random() < 0.02
        last_seen = now - (rnd.randrange(3 * DAY, 9 * DAY) if silent else rnd.randrange(300))
        fails = 0 if rnd.random() < 0.93 else rnd.randrange(1, 4)
        drones.append((did, groups[i % len(groups)] if i >= 50 else "canary", 1, start, last_seen, version, "a",
                       "good", state, seq and (3 if version == "2.0" else 2), error, 40, fails, seq, start))
    # compliance as ringild reports it: the prod audit (7 % with failing checks), Secure Boot (3 % in setup
    # mode); tags on some drones
    ids_pool = ["SVC-001", "LOG-001", "NET-002", "KRN-003"]
    compliance, tags = [], []
    for d in drones:
        did, fails = d[0], d[12]
        failing = " ".join(ids_pool[:fails])
        sb = ("setup", "missing", "missing", "missing") if rnd.random() < 0.03 else ("deployed", "ok", "ok", "ok")
        compliance.append((did, d[4], f"{rnd.getrandbits(256):064x}", d[5], "a", "Etc/UTC", 0, 1, *sb, 1, "prod", 40,
                           fails, 0, 0, 2, failing, f"{rnd.getrandbits(256):064x}", d[5], d[4] - 600))
        if rnd.random() < 0.1:
            tags.append((did, "lab"))
        if rnd.random() < 0.2:
            tags.append((did, "field"))
    with con:
        con.executemany("INSERT INTO compliance(drone, time, digest, version, slot, tz, utc_offset, sb_present, "
                        "sb_mode, sb_pk, sb_kek, sb_db, audit_present, audit_profile, audit_pass, audit_fail, "
                        "audit_error, audit_waived, audit_na, audit_failing, audit_sha256, audit_version, audit_time) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", compliance)
        con.executemany("INSERT INTO drone_tags(drone, tag) VALUES (?, ?)", tags)
        con.executemany("INSERT INTO drones(id, grp, status, created, last_seen, version, slot, boot, state, release, "
                        "error, audit_pass, audit_fail, last_seq, enrolled) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        drones)
        con.executemany("INSERT INTO events(drone, seq, time, state, release, version, target, error) "
                        "VALUES (?,?,?,?,?,?,?,?)", events)
        for rid, v, c in ((1, "1.0", start - DAY), (2, "1.1", start + 7 * DAY), (3, "2.0", start + 19 * DAY)):
            con.execute("INSERT INTO releases(id, version, compatible, size, sha256, path, signer, created, built, "
                        "expires, payloads) VALUES (?, ?, 'drone-x1', ?, ?, '/nonexistent', 'CN=fleet db key', ?, ?, ?, ?)",
                        (rid, v, 48 << 20, f"{rid:064x}", c, c - 3600, c + 180 * DAY,
                         json.dumps([{"name": "rootfs", "type": "raw", "size": 44 << 20},
                                     {"name": "uki", "type": "efi", "size": 4 << 20}])))
        con.execute("INSERT INTO assignments(target, release, created) VALUES ('*', 3, ?)", (start + 20 * DAY,))
        for k in range(40):
            con.execute("INSERT INTO operator_actions(time, operator, serial, method, path, target, detail, status) "
                        "VALUES (?, 'alice', '4f2a9c', 'POST', '/api/v1/releases/3/assign', 'release:3', "
                        "'assign release 3 to *', 200)", (start + k * 18000,))
    con.close()
    return len(events)


def api(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    assert r.status in (200, 201), (method, path, r.status, data[:300])
    return json.loads(data)


def rollout_history(db, rid, now, rnd):
    """Two days into a rollout of 3.0 to every drone: the canary (group 1) blessed, group 2 mostly blessed,
    some failed, some in flight, group 3 pending; each member's events as the server writes them."""
    con = sqlite3.connect(db)
    start = now - 2 * DAY
    members = con.execute("SELECT ord, drone, grp FROM rollout_members WHERE rollout = ? ORDER BY ord", (rid,)).fetchall()
    events, updates = [], []
    for ord_, drone, grp in members:
        if grp >= 2:
            continue
        t = start + (rnd.randrange(3 * 3600) if grp == 0 else 6 * 3600 + rnd.randrange(DAY + 12 * 3600))
        x = rnd.random() if grp == 1 else 1.0
        path = ["handed", "downloading", "installed", "rebooting"]
        end = "blessed" if x > 0.05 else "failed" if x > 0.035 else path[int(x * 1000) % 4]
        steps = path + ([end] if end not in path else [])
        steps = steps[:steps.index(end) + 1]
        for k, st in enumerate(steps):
            events.append((rid, t + 120 * k, drone, st, 1, "health gate failed" if st == "failed" else ""))
        updates.append((end, t, t + 120 * (len(steps) - 1), "health gate failed" if end == "failed" else "", rid, ord_))
    events.sort(key=lambda e: e[1])
    with con:
        con.executemany("INSERT INTO rollout_events(rollout, time, drone, event, attempt, detail) VALUES (?,?,?,?,?,?)",
                        events)
        con.executemany("UPDATE rollout_members SET state = ?, attempt = 1, handed_at = ?, state_at = ?, detail = ? "
                        "WHERE rollout = ? AND ord = ?", updates)
        con.execute("UPDATE rollouts SET started_at = ?, current_group = 1 WHERE id = ?", (start, rid))
        con.execute("UPDATE rollout_groups SET completed_at = ? WHERE rollout = ? AND idx = 0", (start + 5 * 3600, rid))
    con.close()
    return len(events)


def timed(conn, path, n):
    times, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, (path, r.status, body[:200])
        size = len(body)
    return times, size


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def line(name, xs, size=None):
    s = f"  {name:<44} p50 {pct(xs, 50):7.1f}  p95 {pct(xs, 95):7.1f}  p99 {pct(xs, 99):7.1f}  max {max(xs):7.1f} ms"
    print(s + (f"  ({size // 1024} KiB)" if size else ""), flush=True)


def nginx_floor(w, body, n):
    """nginx serving the same bytes as a static file over mutual TLS: what no work at all costs."""
    ng = shutil.which("nginx")
    if not ng:
        print("  (nginx not installed: no static-file floor; scripts/deps.sh bench installs it)")
        return
    d = w / "nginx"
    (d / "www").mkdir(parents=True)
    (d / "www" / "page.html").write_bytes(body)
    s = __import__("socket").socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    (d / "nginx.conf").write_text(f"""{"user root; " if os.geteuid() == 0 else ""}worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
  uwsgi_temp_path {d}/u; scgi_temp_path {d}/s; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {w}/srv/127.0.0.1.pem;
    ssl_certificate_key {w}/srv/127.0.0.1.key; ssl_client_certificate {w}/ca/ca.pem; ssl_verify_client on;
    root {d}/www; }} }}
""")
    p = subprocess.Popen([ng, "-c", str(d / "nginx.conf"), "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_ctx(w), timeout=30)
        xs, size = timed(conn, "/page.html", n)
        line("nginx, the same bytes as a static file", xs, size)
        conn.close()
    finally:
        p.terminate()
        p.wait()


def client_ctx(w):
    ctx = ssl.create_default_context(cafile=str(w / "ca" / "ca.pem"))
    ctx.load_cert_chain(str(w / "op" / "alice.pem"), str(w / "op" / "alice.key"))
    return ctx


def browser_times(w, port, groups, shots):
    """groups: [(label, [path, …]), …]; returns the P95 of the first group's request → last byte."""
    from browser import Browser, available, make_nssdb
    if not available():
        print("  (Chromium not installed: no browser timing; scripts/deps.sh test installs it)")
        return None
    home = w / "home"
    make_nssdb(home, w / "ca" / "ca.pem", w / "op" / "alice.pem", w / "op" / "alice.key", "alice")
    b = Browser(home, w / "profile", [(f"https://127.0.0.1:{port}", "alice", "ringil device CA")])
    try:
        page = b.new_page()
        page.goto(f"https://127.0.0.1:{port}/ui/drones")   # TLS handshake and static files out of the way
        first = None
        for label, pages in groups:
            resp, load = [], []
            for path in pages:
                page.goto(f"https://127.0.0.1:{port}{path}")
                t = page.eval("(function(){var n=performance.getEntriesByType('navigation')[0];"
                              "return [n.responseEnd-n.requestStart, n.loadEventEnd-n.startTime]})()")
                resp.append(t[0])
                load.append(t[1])
            line(f"browser, {label}: request → last byte", resp)
            line(f"browser, {label}: navigation start → load event", load)
            first = pct(resp, 95) if first is None else first
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            for name, path in [("fleet", "/ui/"), ("drones", "/ui/drones?sort=last_seen&dir=desc"),
                               ("drone", "/ui/drone?id=drone-00042"), ("releases", "/ui/releases"),
                               ("rollouts", "/ui/rollouts"), ("rollout", "/ui/rollout?id=1"),
                               ("actions", "/ui/actions")]:
                page.goto(f"https://127.0.0.1:{port}{path}")
                page.screenshot(shots / f"ui-{name}.png")
        return first
    finally:
        b.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path)
    ap.add_argument("--drones", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--screenshots", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the server running (prints its URL) until Ctrl-C")
    a = ap.parse_args()
    build = a.build.resolve()
    w = Path(tempfile.mkdtemp(prefix="ringil-bench-ui."))
    srv = None
    try:
        load = os.getloadavg()
        print(f"conditions: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {a.drones} drones", flush=True)
        pki(build, w)
        srv, port = start_server(build, w)   # creates the schema
        srv.send_signal(signal.SIGTERM)
        srv.wait()
        t = time.perf_counter()
        n_events = fill(w / "fleet.db", a.drones, int(time.time()), random.Random(15))
        print(f"  store: {a.drones} drones, {n_events} reports over 30 days "
              f"(written in {time.perf_counter() - t:.1f} s)", flush=True)
        srv, port = start_server(build, w)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_ctx(w), timeout=60)
        ro = api(conn, "POST", "/api/v1/rollouts", {
            "release": 3, "target": "*", "name": "all-2.0", "deadline": 7 * DAY, "error_percent": 5,
            "groups": [{"count": 50}, {"percent": 20}, {"rest": True}]})
        api(conn, "POST", f"/api/v1/rollouts/{ro['id']}/start", {})
        conn.close()
        srv.send_signal(signal.SIGTERM)
        srv.wait()
        n_ro = rollout_history(w / "fleet.db", ro["id"], int(time.time()), random.Random(16))
        print(f"  a rollout of release 3 to all {a.drones} drones in 3 groups, two days in: {n_ro} member events",
              flush=True)
        srv, port = start_server(build, w)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_ctx(w), timeout=60)
        timed(conn, "/ui/drones", 5)   # warm: handshake, statements prepared, pages cached
        last = (a.drones + 49) // 50
        kinds = [
            ("drones, first page", "/ui/drones"),
            ("drones, middle page", f"/ui/drones?page={last // 2}"),
            ("drones, last page", f"/ui/drones?page={last}"),
            ("drones, by last check-in, newest first", "/ui/drones?sort=last_seen&dir=desc"),
            ("drones, by last check-in, last page", f"/ui/drones?sort=last_seen&dir=desc&page={last}"),
            ("drones, by version, page 50", "/ui/drones?sort=version&page=50"),
            ("drones, state=failed", "/ui/drones?state=failed"),
            ("drones, state=silent, by group", "/ui/drones?state=silent&sort=group"),
            ("drones, group=north, version=1.1", "/ui/drones?group=north&version=1.1"),
            ("drones, search 'drone-0123'", "/ui/drones?q=drone-0123"),
            ("drones, search an error text", "/ui/drones?q=telemetry"),
            ("drones, 200 a page", "/ui/drones?per=200&page=20"),
            ("drones, tag=lab", "/ui/drones?tag=lab"),
            ("drones, drift=audit", "/ui/drones?drift=audit"),
            ("drones, drift=secureboot, group=north", "/ui/drones?drift=secureboot&group=north"),
        ]
        print(f"server-side page times, {a.requests} requests each, one mutual-TLS keep-alive connection "
              f"(Python client on the same cores):", flush=True)
        drones_all = []
        for name, path in kinds:
            xs, size = timed(conn, path, a.requests)
            drones_all += xs
            line(name, xs, size)
        line("ALL drones-view requests", drones_all)
        p95 = pct(drones_all, 95)
        for name, path, n in [("fleet view (counts, version chart)", "/ui/", max(10, a.requests // 3)),
                              ("drone view", "/ui/drone?id=drone-04242", a.requests),
                              ("releases view", "/ui/releases", a.requests),
                              ("rollouts view (list)", "/ui/rollouts", a.requests),
                              (f"rollout view ({a.drones} members, chart)", f"/ui/rollout?id={ro['id']}", a.requests),
                              ("action log", "/ui/actions", a.requests),
                              ("reference: GET /api/v1/drones (all, JSON)", "/api/v1/drones", max(5, a.requests // 6))]:
            xs, size = timed(conn, path, n)
            line(name, xs, size)
        conn.request("GET", "/ui/drones")
        page = conn.getresponse().read()
        conn.close()
        nginx_floor(w, page, a.requests)
        print("in Debian's headless Chromium (operator certificate from its NSS database):", flush=True)
        other = ["/ui/", f"/ui/rollout?id={ro['id']}", "/ui/drones?drift=audit", "/ui/drones?tag=field&sort=version",
                 "/ui/drone?id=drone-01234"]
        bp95 = browser_times(w, port, [("40 drones pages", [f"/ui/drones?page={1 + (k * 37) % last}" for k in range(40)]),
                                       ("fleet, rollout, drift/tag filters, drone (8 each)", other * 8)],
                             a.screenshots)
        verdict = "PASS" if p95 < LIMIT_MS and (bp95 is None or bp95 < LIMIT_MS) else "FAIL"
        print(f"drones view P95: {p95:.1f} ms server-side" + (f", {bp95:.1f} ms in the browser" if bp95 else "") +
              f" (limit {LIMIT_MS:.0f} ms at {a.drones} drones): {verdict}", flush=True)
        if a.keep:
            print(f"dashboard: https://127.0.0.1:{port}/ui/ (operator certificate {w}/op/alice.pem); Ctrl-C stops")
            signal.pause()
        return 0 if verdict == "PASS" else 1
    finally:
        if srv and srv.poll() is None:
            srv.terminate()
            srv.wait()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
