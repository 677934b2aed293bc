"""fleetsim.py: a real ringil-server, real ringild agents and drones with file slots, for the fleet tests.

A drone is a directory: device.conf, two file-backed slots, an ESP directory and a fake efivarfs.
`SimDrone.boot()` plays systemd-boot: it picks the default entry by systemd-boot's rules (entries with
tries left first, newest version first), counts the try down by renaming the entry, and writes
LoaderEntrySelected. A reboot is therefore: the agent runs its reboot command (which only records the
request), the test calls boot(), then starts the agent again.
"""
import shutil
import hashlib
import http.client
import json
import os
import random
import re
import socket
import sqlite3
import ssl
import subprocess
import tarfile
import threading
import time
from pathlib import Path

PG_SERVER = None   # the session's PostgreSQL server (conftest.py), once one was started

LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
ENTRY_RE = re.compile(r"^(ringil-[ab]-(.+?))(?:\+(\d+)(?:-(\d+))?)?\.conf$")


def run(args, check=True, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, timeout=120, **kw)
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    if check:
        assert p.returncode == 0, f"{args} exited {p.returncode}\n{p.out}\n{p.err}"
    return p


def vkey(v):
    return [int(x) for x in v.split(".")]


class Pki:
    """Device CA, server and operator certificates, a foreign CA, and the bundle signer."""

    def __init__(self, ringil, d: Path, signer=None):
        """signer: optional (key, cert) to sign bundles with, e.g. the fleet's Secure Boot db key."""
        self.ringil = ringil
        self.dir = d
        run([ringil, "ca", "create", "--dir", d / "ca"])
        run([ringil, "ca", "issue", "--dir", d / "ca", "--name", "127.0.0.1", "--server", "--out-dir", d / "srv"])
        run([ringil, "ca", "issue", "--dir", d / "ca", "--name", "alice", "--operator", "--out-dir", d / "op"])
        run([ringil, "ca", "create", "--dir", d / "evil"])
        run([ringil, "ca", "issue", "--dir", d / "evil", "--name", "drone-a", "--out-dir", d / "evil"])
        run([ringil, "ca", "issue", "--dir", d / "evil", "--name", "alice", "--operator", "--out-dir", d / "evil"])
        self.ca = d / "ca" / "ca.pem"
        for name in ("sign", "foreign"):
            if name == "sign" and signer:
                shutil.copyfile(signer[0], d / "sign.key")
                shutil.copyfile(signer[1], d / "sign.pem")
                continue
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", d / f"{name}.key", "-out", d / f"{name}.pem", "-subj", f"/CN=fleet {name}",
                 "-days", "30", "-addext", "extendedKeyUsage=codeSigning"])

    def bundle(self, version, payload: Path, out: Path, signer="sign", compatible="drone-x1", chunking=None):
        """chunking: None for fixed 64 KiB chunks, or a --chunking value (e.g. "cdc:16K:64K:256K")."""
        how = ["--chunking", chunking] if chunking else ["--chunk-size", "65536"]
        run([self.ringil, "bundle", "create", "--key", self.dir / f"{signer}.key", "--cert",
             self.dir / f"{signer}.pem", "--compatible", compatible, "--version", version,
             *how, "--payload", f"rootfs:raw={payload}", "--output", out])
        return out


def sqlite_db(d: Path):
    return d / "fleet.db", None


# Where a new Server keeps its state: returns (db, PgServer or None). conftest.py's store_backend
# fixture points this at a fresh PostgreSQL database for the postgresql variant of the server suites.
DB_FACTORY = sqlite_db


class Server:
    def __init__(self, exe, pki: Pki, d: Path, poll_interval=1, extra="", db=None, store=None):
        """extra: more "key = value" lines for server.conf (e.g. nix-cache). db: a path or a postgresql://
        URL (default: DB_FACTORY's); store: the bundle directory (replicas may share one)."""
        self.exe, self.pki, self.dir = exe, pki, d
        d.mkdir(parents=True, exist_ok=True)
        self.pg = None
        if db is None:
            db, self.pg = DB_FACTORY(d)
        elif str(db).startswith("postgres"):
            self.pg = PG_SERVER
        self.db = db
        self.store = store or d / "store"
        self.conf = d / "server.conf"
        self.conf.write_text(
            f"listen = 127.0.0.1:0\ndb = {self.db}\nstore = {self.store}\n"
            f"cert = {pki.dir / 'srv' / '127.0.0.1.pem'}\nkey = {pki.dir / 'srv' / '127.0.0.1.key'}\n"
            f"device-ca = {pki.dir / 'ca'}\nkeyring = {pki.dir / 'sign.pem'}\npoll-interval = {poll_interval}\n"
            f"enroll-listen = 127.0.0.1:0\n"
            + extra)
        self.proc = None
        self.port = None
        self.enroll_port = None
        self.log = d / "server.log"

    def start(self):
        self.proc = subprocess.Popen([str(self.exe), "serve", "--config", str(self.conf)],
                                     stdout=subprocess.PIPE, stderr=open(self.log, "ab"))
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, f"server did not start: {line!r}\n{self.log.read_text()}"
        self.port = int(m.group(1))
        line = self.proc.stdout.readline().decode()
        m = re.match(r"enrollment on 127\.0\.0\.1:(\d+)", line)
        assert m, f"no enrollment port: {line!r}\n{self.log.read_text()}"
        self.enroll_port = int(m.group(1))
        return self

    def pin_ports(self):
        """Write the ports it got into its config, so a restart listens where drones look for it."""
        text = self.conf.read_text()
        text = re.sub(r"^listen = .*$", f"listen = 127.0.0.1:{self.port}", text, flags=re.M)
        text = re.sub(r"^enroll-listen = .*$", f"enroll-listen = 127.0.0.1:{self.enroll_port}", text, flags=re.M)
        self.conf.write_text(text)
        return self

    def kill(self, sig=9):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def enroll_url(self):
        return f"https://127.0.0.1:{self.enroll_port}"

    def op(self, *args, check=True):
        env = dict(os.environ, RINGIL_FLEET_SERVER=self.url, RINGIL_FLEET_CA=str(self.pki.ca),
                   RINGIL_FLEET_CERT=str(self.pki.dir / "op" / "alice.pem"),
                   RINGIL_FLEET_KEY=str(self.pki.dir / "op" / "alice.key"))
        return run([self.exe, *args], check=check, env=env)

    def drone(self, name):
        return json.loads(self.op("status", name, "--json").out)

    def sql(self, query):
        """Rows of a query on the server's database, whichever backend: lists of strings (None for NULL)."""
        if self.pg:
            out = self.pg.psql(query.replace("\n", " "), db=str(self.db).rsplit("/", 1)[1], sep="\x1f")
            return [[None if v == "\\N" else v for v in line.split("\x1f")] for line in out.split("\n") if line]
        con = sqlite3.connect(self.db, timeout=10)
        try:
            with con:
                return [[None if v is None else str(v) for v in row] for row in con.execute(query)]
        finally:
            con.close()

    def metric(self, name):
        for line in self.op("metrics").out.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)


def tls_context(pki: Pki, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def request(port, ctx, method, path, body=None, headers=None, timeout=10):
    """One HTTPS request; returns (status, body bytes, headers) or raises on TLS/connection refusal."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


class CuttingProxy:
    """TCP proxy on loopback that cuts each connection after a random number of server→client bytes."""

    def __init__(self, target_port, cut_min=48 * 1024, cut_max=384 * 1024, seed=None):
        self.target = target_port
        self.cut_min, self.cut_max = cut_min, cut_max
        self.rng = random.Random(seed)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.bytes_to_client = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                limit = self.rng.randint(self.cut_min, self.cut_max)
            threading.Thread(target=self._serve, args=(c, limit), daemon=True).start()

    def _serve(self, c, limit):
        try:
            s = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close()
            return
        done = threading.Event()

        def up():
            try:
                while not done.is_set():
                    b = c.recv(65536)
                    if not b:
                        break
                    s.sendall(b)
            except OSError:
                pass
            done.set()

        threading.Thread(target=up, daemon=True).start()
        sent = 0
        try:
            while not done.is_set():
                b = s.recv(16384)
                if not b:
                    break
                if sent + len(b) >= limit:
                    b = b[: limit - sent]
                    c.sendall(b)
                    with self.lock:
                        self.bytes_to_client += len(b)
                        self.cuts += 1
                    # the cut: the client gets exactly `limit` bytes of this connection, then EOF in
                    # the middle of a TLS record (an RST would also discard bytes it already received,
                    # which would then be counted here without ever reaching the agent)
                    break
                c.sendall(b)
                sent += len(b)
                with self.lock:
                    self.bytes_to_client += len(b)
        except OSError:
            pass
        done.set()
        # shutdown() first: close() alone does not wake the other thread's recv(), and the cut
        # would then look like a stall instead of a dropped link
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                x.close()
            except OSError:
                pass

    def close(self):
        self.running = False
        self.lsock.close()


class SimDrone:
    def __init__(self, name, d: Path, ringil, ringild, pki: Pki, health="true", audit_root=None, extra=""):
        """audit_root: a drone root (audit_fixture) that ringild audits, with its efivars and keys, instead
        of nothing (`audit = no`: the build machine itself is not a drone). extra: more ringild.conf lines."""
        self.name, self.dir, self.ringil, self.ringild, self.pki = name, d, ringil, ringild, pki
        d.mkdir(parents=True)
        for sub in ("esp", "state", "efivars", "agent"):
            (d / sub).mkdir()
        for s in ("a", "b"):
            with open(d / f"slot-{s}.img", "wb") as f:
                f.truncate(2 * 1024 * 1024)
        self.devconf = d / "device.conf"
        self.devconf.write_text(
            f"[device]\ncompatible = drone-x1\nkeyring = {pki.dir / 'sign.pem'}\nesp = {d / 'esp'}\n"
            f"state-dir = {d / 'state'}\nefivarfs = {d / 'efivars'}\nboot-tries = 3\n"
            f"[boot]\nentry-name = ringil\nlinux = /EFI/ringil/vmlinuz\noptions = root=@SLOT@\n"
            f"[slot.rootfs.a]\ndevice = {d / 'slot-a.img'}\n[slot.rootfs.b]\ndevice = {d / 'slot-b.img'}\n")
        self.health = health
        self.audit_root = audit_root
        self.extra = extra
        self.reboots = 0
        self.log = d / "agent.log"
        self.extra_conf = ""   # more ringild.conf lines (e.g. mirror-ca)

    def write_agent_conf(self, url, enroll_url=None):
        """url: one server URL or a comma-separated list (replicas)."""
        if enroll_url:
            self.enroll_url = enroll_url
        self.url = url
        (self.dir / "ringild.conf").write_text(self.extra_conf +
            f"server = {url}\n" + (f"enroll-server = {self.enroll_url}\n" if getattr(self, "enroll_url", None) else "")
            + f"ca = {self.pki.ca}\ncert = {self.dir / 'agent' / 'cert.pem'}\n"
            f"key = {self.dir / 'agent' / 'key.pem'}\ndevice-config = {self.devconf}\n"
            f"state-dir = {self.dir / 'agent' / 'state'}\nringil = {self.ringil}\n"
            f"reboot-command = touch {self.dir / 'reboot-requested'}\nhealth-command = {self.health}\n"
            f"boot-id-file = {self.dir / 'boot_id'}\npoll-interval = 1\ntimeout = 10\n"
            + (f"audit-root = {self.audit_root}\nefivarfs = {self.audit_root}/sys/firmware/efi/efivars\n"
               f"keys-dir = {self.audit_root}/etc/secure/keys\n" if self.audit_root else "audit = no\n")
            + self.extra)

    def provision(self, v1_bundle):
        """Factory state: v1 in slot a, booted and blessed."""
        run([self.ringil, "install", "--config", self.devconf, "--slot", "a", v1_bundle])
        self.boot()
        run([self.ringil, "mark-good", "--config", self.devconf])

    def enroll(self, server: Server, group="default"):
        token = server.op("enroll", self.name, "--group", group).out.strip()
        self.write_agent_conf(server.url, server.enroll_url)
        run([self.ringild, "enroll", "--config", self.dir / "ringild.conf", "--id", self.name, "--token", token])

    def agent(self, check=False):
        p = run([self.ringild, "--config", self.dir / "ringild.conf", "--once", "--verbose"], check=False)
        with open(self.log, "a") as f:
            f.write(p.err)
        if check:
            assert p.returncode == 0, p.err
        return p

    def reboot_requested(self):
        m = self.dir / "reboot-requested"
        if m.exists():
            m.unlink()
            return True
        return False

    def entries(self):
        out = []
        for f in (self.dir / "esp" / "loader" / "entries").glob("ringil-*.conf"):
            m = ENTRY_RE.match(f.name)
            if not m:
                continue
            left = int(m.group(3)) if m.group(3) is not None else None
            done = int(m.group(4)) if m.group(4) is not None else 0
            out.append((f, m.group(1), m.group(2), left, done))
        return out

    def boot(self):
        """systemd-boot: entries with tries left before those without, then newest version first."""
        es = self.entries()
        assert es, "no boot entries: the drone would not boot"
        es.sort(key=lambda e: (e[3] == 0, [-x for x in vkey(e[2])]))
        f, base, version, left, done = es[0]
        self.booted_entry = base
        if left is not None and left > 0:
            f.rename(f.parent / f"{base}+{left - 1}-{done + 1}.conf")
        (self.dir / "boot_id").write_text(os.urandom(16).hex() + "\n")
        var = self.dir / "efivars" / f"LoaderEntrySelected-{LOADER_GUID}"
        var.write_bytes(b"\x06\x00\x00\x00" + (base + ".conf").encode("utf-16-le") + b"\x00\x00")
        self.reboots += 1
        return version

    def status(self):
        return json.loads(run([self.ringil, "status", "--config", self.devconf, "--json"]).out)

    def agent_state(self):
        st = {}
        p = self.dir / "agent" / "state" / "agent.state"
        if p.exists():
            for line in p.read_text().splitlines():
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    st[k.strip()] = v.strip()
        return st


class AuditedDrone(SimDrone):
    """A SimDrone whose root (what `ringil audit --root` sees) is a prod drone root (audit_fixture's golden
    tree) with the booted slot's image laid over it: the first bytes of a slot image are a tar of files,
    so booting a release is what changes the drone's hardening state."""

    def __init__(self, name, d: Path, ringil, ringild, pki: Pki, golden: Path, **kw):
        self.golden = golden
        root = d / "root"
        super().__init__(name, d, ringil, ringild, pki, audit_root=root, **kw)
        shutil.copytree(golden, root, symlinks=True)

    def boot(self):
        version = super().boot()
        root = Path(self.audit_root)
        shutil.rmtree(root)
        shutil.copytree(self.golden, root, symlinks=True)
        slot = self.booted_entry.split("-")[1]
        with tarfile.open(self.dir / f"slot-{slot}.img", mode="r:") as t:
            t.extractall(root)   # our own test images
        return version


def overlay_image(files, size, seed):
    """A slot image whose first bytes are a tar of files (path → bytes) to lay over the drone's root."""
    import io
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    head = buf.getvalue()
    return head + random.Random(seed).randbytes(size - len(head))


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sql_quote(v):
    return "'" + str(v).replace("'", "''") + "'"


def insert_release(srv, path, version, assign_to="*"):
    """Test-only path: a release row the server never verified (as a compromised server would)."""
    rid = int(srv.sql("INSERT INTO releases(version, compatible, size, sha256, path, created) VALUES "
                      f"({sql_quote(version)}, 'drone-x1', {os.path.getsize(path)}, {sql_quote(sha256(path))}, "
                      f"{sql_quote(path)}, {int(time.time())}) RETURNING id")[0][0])
    srv.sql(f"INSERT INTO assignments(target, release, created) VALUES ({sql_quote(assign_to)}, {rid}, 0) "
            "ON CONFLICT(target) DO UPDATE SET release = excluded.release")
    return rid


# ---- several servers, mirrors, load balancers, simulated drones ----

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class Mirror:
    """A bundle mirror: nginx (Debian's nginx-light) serving a directory over HTTPS on loopback, with a
    certificate from its own CA (not the fleet's). It asks every client for a certificate without
    requiring one, and logs whether it got one: a drone must never send its identity to a mirror."""

    def __init__(self, ringil, d: Path):
        self.dir = d
        d.mkdir(parents=True)
        self.www = d / "www"
        self.www.mkdir()
        run([ringil, "ca", "create", "--dir", d / "ca"])
        run([ringil, "ca", "issue", "--dir", d / "ca", "--name", "127.0.0.1", "--server", "--out-dir", d / "srv"])
        self.ca = d / "ca" / "ca.pem"
        self.port = free_port()
        self.log = d / "access.log"
        user = "user root;\n" if os.geteuid() == 0 else ""
        (d / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n"
            f"  log_format ranges '$status $body_bytes_sent \"$request_uri\" \"$http_range\" $ssl_client_verify';\n"
            f"  access_log {self.log} ranges;\n"
            f"  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n"
            f"  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port} ssl;\n"
            f"    ssl_certificate {d}/srv/127.0.0.1.pem;\n    ssl_certificate_key {d}/srv/127.0.0.1.key;\n"
            f"    ssl_client_certificate {d}/ca/ca.pem;\n    ssl_verify_client optional_no_ca;\n"
            f"    root {self.www};\n  }}\n}}\n")
        self.proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(d / "nginx.conf"),
                                      "-e", str(d / "error.log"), "-g", "daemon off;"],
                                     stderr=open(d / "nginx.stderr", "ab"))
        wait_port(self.port)

    def publish(self, bundle, name, flip=None):
        """Copy bundle to the mirror as name; flip: an offset whose byte is inverted (a corrupt copy)."""
        data = bytearray(Path(bundle).read_bytes())
        if flip is not None:
            data[flip] ^= 0xFF
        (self.www / name).write_bytes(bytes(data))
        return f"https://127.0.0.1:{self.port}/{name}"

    def requests(self):
        """(status, bytes, uri, range, client-certificate verification) of every request so far."""
        out = []
        if self.log.exists():
            for line in self.log.read_text().splitlines():
                m = re.match(r'(\d+) (\d+) "([^"]*)" "([^"]*)" (\S+)', line)
                if m:
                    out.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4), m.group(5)))
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class HAProxy:
    """A TCP load balancer (Debian's haproxy) in front of replicas: TLS passes through, health-checked."""

    def __init__(self, config: str, d: Path, port: int):
        d.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.conf = d / "haproxy.cfg"
        self.conf.write_text(config)
        self.proc = subprocess.Popen([shutil.which("haproxy") or "/usr/sbin/haproxy", "-f", str(self.conf), "-db"],
                                     stdout=open(d / "haproxy.log", "ab"), stderr=subprocess.STDOUT)
        wait_port(port)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class ListDrone:
    """A simulated drone: a real identity (offline-issued certificate, registered on the server) that
    checks in and reports over HTTPS to a list of servers, moving to the next on a refused or cut
    connection or a 502/503/504, as ringild does. Counts what it saw; keeps the reports acknowledged."""

    def __init__(self, name, pki: Pki, d: Path, urls):
        self.name = name
        self.ports = [int(u.rsplit(":", 1)[1]) for u in urls]
        run([pki.ringil, "ca", "issue", "--dir", pki.dir / "ca", "--name", name, "--out-dir", d])
        self.ctx = tls_context(pki, d / f"{name}.pem", d / f"{name}.key")
        self.cur = 0
        self.conn = None
        self.seq = 0
        self.acked = []          # (seq, port that acknowledged)
        self.statuses = {}       # status -> count ("conn" for a refused or cut connection)
        self.retry_after = 0     # 503 answers that carried Retry-After

    def _count(self, k):
        self.statuses[k] = self.statuses.get(k, 0) + 1

    def post(self, path, body):
        """One request, failing over through the list once; returns (status or None, port that answered)."""
        last = None
        for _ in range(len(self.ports)):
            port = self.ports[self.cur]
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=self.ctx, timeout=5)
                self.conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                r.read()
                self._count(r.status)
                if r.status == 503 and r.getheader("Retry-After"):
                    self.retry_after += 1
                if r.status in (502, 503, 504):
                    self.conn.close()
                    self.conn = None
                    self.cur = (self.cur + 1) % len(self.ports)
                    last = r.status
                    continue
                return r.status, port
            except (OSError, http.client.HTTPException, ssl.SSLError):
                self._count("conn")
                if self.conn:
                    self.conn.close()
                self.conn = None
                self.cur = (self.cur + 1) % len(self.ports)
                last = None
        return last, None

    def checkin(self):
        return self.post("/api/v1/checkin", json.dumps({"state": "idle", "version": "1.0", "slot": "a",
                                                         "boot": "good"}).encode())[0]

    def report(self):
        self.seq += 1
        status, port = self.post("/api/v1/report", json.dumps({"seq": self.seq, "state": "downloading",
                                                                "release": 1, "error": f"r{self.seq}"}).encode())
        if status == 200:
            self.acked.append((self.seq, port))
        return status

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


class RangeIgnoringProxy:
    """An HTTPS front for the fleet server that drops every Range header, as a static host or CDN without
    range support would: each GET gets the whole resource with 200. It terminates the drone's mutual TLS
    with the server's certificate and asks the real server as that drone (its own certificate and key)."""

    def __init__(self, server: "Server", pki: Pki, drone_cert, drone_key):
        import http.server

        up_ctx = tls_context(pki, drone_cert, drone_key)
        target = server.port
        proxy = self
        self.ranges_dropped = 0
        self.bytes_to_client = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("range", "host", "connection", "content-length")}
                if "Range" in self.headers:
                    with proxy.lock:
                        proxy.ranges_dropped += 1
                c = http.client.HTTPSConnection("127.0.0.1", target, context=up_ctx, timeout=30)
                try:
                    c.request(self.command, self.path, body=body, headers=headers)
                    r = c.getresponse()
                    data = r.read()
                finally:
                    c.close()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                    with proxy.lock:
                        proxy.bytes_to_client += len(data)

            do_GET = do_POST = do_PUT = do_HEAD = _forward

        class S(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = S(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.dir / "srv" / "127.0.0.1.pem"), str(pki.dir / "srv" / "127.0.0.1.key"))
        ctx.load_verify_locations(str(pki.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
def issue_identity(ringil, pki: Pki, name, out: Path):
    """A drone certificate from the device CA (as `ringil ca issue` does at the factory)."""
    run([ringil, "ca", "issue", "--dir", pki.dir / "ca", "--name", name, "--out-dir", out])
    return out / f"{name}.pem", out / f"{name}.key"


class Api:
    """The operator API over one keep-alive connection (faster than one CLI process per call)."""

    def __init__(self, server: Server, cert=None, key=None):
        self.server = server
        self.ctx = tls_context(server.pki, cert or server.pki.dir / "op" / "alice.pem",
                               key or server.pki.dir / "op" / "alice.key")
        self.conn = None

    def __call__(self, method, path, body=None, expect=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=self.ctx, timeout=30)
            try:
                data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
                self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                out = r.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        j = json.loads(out) if out else None
        if expect is not None:
            assert r.status == expect, f"{method} {path} -> {r.status} {out[:300]!r}"
        return r.status, j

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


class FakeFleet:
    """Simulated drones in threads: each checks in and reports in turn until stopped."""

    def __init__(self, drones, pause=0.02):
        self.drones = drones
        self.stop_ev = threading.Event()
        self.pause = pause
        self.threads = [threading.Thread(target=self._run, args=(d,), daemon=True) for d in drones]

    def _run(self, d):
        i = 0
        while not self.stop_ev.is_set():
            d.checkin()
            if i % 2 == 0:
                d.report()
            i += 1
            time.sleep(self.pause)
        d.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=30)

    def acked(self):
        return {(d.name, seq) for d in self.drones for seq, _ in d.acked}


def audit_summary(failing=(), version="1.0", profile="prod", passed=58):
    failing = list(failing)
    return {"profile": profile, "pass": passed, "fail": len(failing), "error": 0, "waived": 0, "notapplicable": 3,
            "failing": failing, "sha256": hashlib.sha256(("|".join(failing) + version).encode()).hexdigest(),
            "version": version, "time": int(time.time())}


class FakeDrone:
    """A simulated drone with a real mTLS identity that speaks ringild's protocol (check-in, reports) over
    its own keep-alive connection; it installs nothing. behaviour decides what a new release does to it:
    good (updates, audit unchanged), brick (stops reporting once it rebooted into it), ssh (updates, but
    its audit then fails SVC-001), fail (the bundle is refused), rollback (health gate fails)."""

    def __init__(self, name, cert, key, pki: Pki, port, behaviour="good", version="1.0", failing=()):
        self.name, self.pki, self.port = name, pki, port
        self.ctx = tls_context(pki, cert, key)
        self.behaviour = behaviour
        self.version = version
        self.failing = list(failing)
        self.seq = 0
        self.state, self.release, self.target, self.error = "idle", 0, "", ""
        self.failed = {}            # release -> retry generation it failed at
        self.pending = None         # (release, version) being installed
        self.silent = False
        self.conn = None
        self.lock = threading.Lock()
        self.handed_seen = {}       # release -> first time the server answered with it
        self.acked = []             # seqs the server acknowledged
        self.log = []
        self.sb = {"mode": "deployed", "pk": "ok", "kek": "ok", "db": "ok"}
        self.profile = "prod"
        self.retry_seen = 0

    def _post(self, path, body):
        data = json.dumps(body).encode()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
            try:
                self.conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def status(self):
        st = {"version": self.version, "slot": "a", "boot": "good", "state": self.state, "release": self.release,
              "target": self.target, "error": self.error, "tz": "UTC", "utc_offset": 0,
              "audit": self.audit(),
              "secureboot": dict(self.sb)}
        return st

    def audit(self):
        """The audit summary, as an agent keeps it: rerun (new time and hash) only when the system changed."""
        key = (tuple(self.failing), self.version, self.profile)
        if getattr(self, "_audit_key", None) != key:
            self._audit_key, self._audit = key, audit_summary(self.failing, self.version, self.profile)
        return self._audit

    def report(self, state, error=""):
        """A state change, kept until the server acknowledges it (like ringild's agent.state)."""
        self.state, self.error = state, error
        self.seq += 1
        self.unacked = dict(self.status(), seq=self.seq)
        self.log.append((time.time(), state))
        self.flush()

    def flush(self):
        body = getattr(self, "unacked", None)
        if not body:
            return
        status, data = self._post("/api/v1/report", body)
        assert status == 200, (self.name, status, data)
        self.acked.append(body["seq"])
        self.unacked = None

    def checkin(self):
        status, data = self._post("/api/v1/checkin", self.status())
        assert status == 200, (self.name, status, data)
        return json.loads(data)

    def step(self):
        """One poll: check in, and move one state further with a new release."""
        with self.lock:
            if self.silent:
                return
            self.flush()
            if self.pending:
                rid, version = self.pending
                self.pending = None
                if self.behaviour == "brick":
                    self.silent = True   # rebooted into it and never came back
                    return
                if self.behaviour == "rollback":
                    self.failed[rid] = self.retry_seen
                    self.report("rolled-back", "health gate failed")
                    return
                self.version = version
                if self.behaviour == "ssh":
                    self.failing = sorted(set(self.failing) | {"SVC-001"})
                self.report("updated")
                return
            a = self.checkin()
            asg = a.get("assignment")
            if not asg or asg["version"] == self.version:
                return
            rid = asg["release"]
            self.retry_seen = asg.get("retry", 0)
            self.handed_seen.setdefault((rid, self.retry_seen), time.time())
            if rid in self.failed and self.failed[rid] >= self.retry_seen:
                return
            self.release, self.target = rid, asg["version"]
            self.report("downloading")
            if self.behaviour == "fail":
                self.failed[rid] = self.retry_seen
                self.report("failed", "bundle refused: signature does not verify")
                return
            self.report("installed")
            self.report("rebooting")
            self.pending = (rid, asg["version"])

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def fake_fleet(ringil, server: Server, pki: Pki, d: Path, n, prefix="sim", group="default", api=None, **kw):
    """n FakeDrones with their own certificates, registered with the server."""
    from concurrent.futures import ThreadPoolExecutor
    api = api or Api(server)
    names = [f"{prefix}-{i:03d}" for i in range(n)]
    with ThreadPoolExecutor(max_workers=4) as ex:
        ids = list(ex.map(lambda name: issue_identity(ringil, pki, name, d / "ids"), names))
    drones = []
    for name, (cert, key) in zip(names, ids):
        api("POST", "/api/v1/drones", {"id": name, "group": group}, expect=201)
        drones.append(FakeDrone(name, cert, key, pki, server.port, **kw))
    return drones


def step_all(drones, workers=8):
    """One poll of every drone, in parallel."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(lambda dr: dr.step(), drones))
