"""ui_fixture.py: a fleet for the dashboard tests: a real server, drones with real mTLS identities that check
in and report over the API, enrolled ones with certificates the server issued, releases, and a way to read
the pages (a small DOM over html.parser, no third-party parser)."""
import json
import os
import sqlite3
import time
from html.parser import HTMLParser
from pathlib import Path

from fleetsim import Pki, Server, request, run, tls_context

HOSTILE = "<img src=x onerror=alert(1)>"
STATES = ["idle", "downloading", "pending", "blessed", "rolled-back", "failed", "silent", "revoked"]


def ui_state(d, now, silent_after):
    """The dashboard's state word for a drone of GET /api/v1/drones (docs/fleet.md "Operator dashboard")."""
    if d["status"] == "revoked":
        return "revoked"
    if d["last_seen"] <= now - silent_after:
        return "silent"
    return {"downloading": "downloading", "retrying": "downloading", "installed": "pending", "rebooting": "pending",
            "waiting": "pending", "updated": "blessed", "rolled-back": "rolled-back", "failed": "failed"}.get(
        d["state"], "idle")


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag=None, **attrs):
        def ok(n):
            if tag and n.tag != tag:
                return False
            for k, v in attrs.items():
                k = k.rstrip("_").replace("_", "-")
                if v is True:
                    if k not in n.attrs:
                        return False
                elif k == "class":
                    if v not in (n.attrs.get("class") or "").split():
                        return False
                elif n.attrs.get(k) != v:
                    return False
            return True
        return [n for n in self.iter() if ok(n)]

    def find(self, tag=None, **attrs):
        r = self.find_all(tag, **attrs)
        return r[0] if r else None


VOID = {"meta", "link", "input", "br", "img", "hr", "source", "area", "col", "wbr", "line", "rect", "path"}


class Doc(HTMLParser):
    """The page as a tree; every attribute value and text arrives unescaped, as a browser would show it."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(html.decode() if isinstance(html, bytes) else html)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)

    def __getattr__(self, name):
        return getattr(self.root, name)


class UiDrone:
    """A drone identity issued offline by the device CA (`ringil ca issue`), registered with the server;
    it speaks the agent's protocol over mutual TLS without an install engine behind it."""

    def __init__(self, fleet, name, group="default"):
        self.fleet, self.name, self.seq = fleet, name, 0
        fleet.srv.op("enroll", name, "--group", group)
        d = fleet.dir / "drones" / name
        run([fleet.ringil, "ca", "issue", "--dir", fleet.pki.dir / "ca", "--name", name, "--out-dir", d])
        self.ctx = tls_context(fleet.pki, d / f"{name}.pem", d / f"{name}.key")

    def checkin(self, version="1.0", fail=0, **extra):
        body = {"state": "idle", "version": version, "slot": "a", "boot": "good", "audit": {"pass": 40, "fail": fail}}
        body.update(extra)
        st, data, _ = request(self.fleet.srv.port, self.ctx, "POST", "/api/v1/checkin", body=json.dumps(body).encode())
        assert st == 200, data
        return json.loads(data)

    def report(self, state, version="1.0", release=0, target="", error=""):
        self.seq += 1
        body = {"seq": self.seq, "state": state, "version": version, "release": release, "target": target,
                "error": error}
        st, data, _ = request(self.fleet.srv.port, self.ctx, "POST", "/api/v1/report", body=json.dumps(body).encode())
        assert st == 200, data


class Fleet:
    """PKI, a server (poll interval 60 s: a drone is silent after 180 s), operators alice and bob."""

    def __init__(self, build: Path, d: Path, poll_interval=60):
        self.dir = d
        self.ringil = build / "ringil" / "ringil"
        self.ringild = build / "ringild" / "ringild"
        self.pki = Pki(self.ringil, d / "pki")
        run([self.ringil, "ca", "issue", "--dir", self.pki.dir / "ca", "--name", "bob", "--operator", "--out-dir",
             self.pki.dir / "bob"])
        # a scheduler pass every second: rollouts move at test speed
        self.srv = Server(build / "ringil-server" / "ringil-server", self.pki, d / "server",
                          poll_interval=poll_interval, extra="scheduler-interval = 1\n").start()
        self.silent_after = 3 * poll_interval
        self.op = tls_context(self.pki, self.pki.dir / "op" / "alice.pem", self.pki.dir / "op" / "alice.key")
        self.bob = tls_context(self.pki, self.pki.dir / "bob" / "bob.pem", self.pki.dir / "bob" / "bob.key")
        self.drones = {}

    def get(self, path, ctx=None):
        return request(self.srv.port, ctx or self.op, "GET", path)

    def page(self, path, ctx=None):
        st, body, hdr = self.get(path, ctx)
        assert st == 200, (path, st, body[:300])
        return Doc(body)

    def post(self, path, fields, ctx=None):
        from urllib.parse import urlencode
        return request(self.srv.port, ctx or self.op, "POST", path, body=urlencode(fields).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})

    def api(self, path):
        st, body, _ = self.get(path)
        assert st == 200, (path, st, body[:300])
        return json.loads(body)

    def drone(self, name, group="default"):
        self.drones[name] = UiDrone(self, name, group)
        return self.drones[name]

    def enroll(self, name, group="default"):
        """A drone enrolled with a one-time token through the enrollment port (the server issues its
        certificate and records serial and expiry). Returns its certificate file."""
        token = self.srv.op("enroll", name, "--group", group).out.strip()
        d = self.dir / "enrolled" / name
        d.mkdir(parents=True)
        conf = d / "ringild.conf"
        conf.write_text(f"server = {self.srv.url}\nenroll-server = {self.srv.enroll_url}\nca = {self.pki.ca}\n"
                        f"cert = {d / 'cert.pem'}\nkey = {d / 'key.pem'}\n")
        run([self.ringild, "enroll", "--config", conf, "--id", name, "--token", token])
        return d / "cert.pem"

    def api_call(self, method, path, body=None, expect=None, ctx=None):
        st, data, _ = request(self.srv.port, ctx or self.op, method, path,
                              body=json.dumps(body).encode() if body is not None else b"",
                              headers={"Content-Type": "application/json"})
        assert expect is None or st == expect, (method, path, st, data[:300])
        return st, json.loads(data) if data else None

    def sql(self, statement, args=()):
        """Test-only path into the store, as a tampered database (or one written by an older server) would be."""
        con = sqlite3.connect(self.srv.db, timeout=10)
        with con:
            con.execute(statement, args)
        con.close()

    def bulk(self, n, prefix="sim", versions=("1.0", "2.0"), now=None):
        """n simulated drones written straight into the store (registered, checked in recently, spread over
        versions, groups and states): the simulator's size without n certificates."""
        now = now or int(time.time())
        states = ["idle", "downloading", "rebooting", "updated", "rolled-back", "failed"]
        con = sqlite3.connect(self.srv.db, timeout=10)
        with con:
            con.executemany(
                "INSERT INTO drones(id, grp, status, created, last_seen, version, slot, boot, state, release, "
                "error, audit_pass, audit_fail) VALUES (?, ?, 1, ?, ?, ?, 'a', 'good', ?, 0, '', 40, ?)",
                [(f"{prefix}-{i:05d}", f"g{i % 4}", now - 3600, now - (i % 7) if i % 13 else now - 100000,
                  versions[i % len(versions)], states[i % len(states)], i % 5 == 0) for i in range(n)])
        con.close()

    def stop(self):
        self.srv.stop()


def cert_serial_and_expiry(pem: Path):
    out = run(["openssl", "x509", "-in", pem, "-noout", "-serial", "-enddate"]).out
    serial = out.split("serial=")[1].split()[0].lower().lstrip("0") or "0"
    end = out.split("notAfter=")[1].strip()
    t = time.strptime(end, "%b %d %H:%M:%S %Y GMT")
    import calendar
    return serial, calendar.timegm(t)


def results_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $RINGIL_SCREENSHOTS (make check: build-results/screenshots), else the test's tmp."""
    d = Path(os.environ.get("RINGIL_SCREENSHOTS") or tmp_path / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d
