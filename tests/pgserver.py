"""pgserver.py: a throw-away PostgreSQL server for the tests, in a temporary directory, as an unprivileged user.

Used by tests/integration/conftest.py (a session fixture: one server per pytest run) and by
tests/unit/with-postgres.py (one server around a unit test binary). The server listens on a Unix
socket in its directory and on a free loopback port; authentication is `trust` on both (nothing but
the tests can reach a loopback port of a scratch server). Run as root (make check), initdb and the
server run as `nobody` through runuser, since PostgreSQL refuses to run as root.

    with PgServer() as pg:
        url = pg.new_database()      # postgresql://ringil@127.0.0.1:PORT/t3
        pg.restart() / pg.stop() / pg.start()
"""
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("RINGIL_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    def __init__(self, base=None, fsync=True):
        if not (PG_BIN / "initdb").exists():
            raise FileNotFoundError(f"PostgreSQL server binaries not found in {PG_BIN} (scripts/deps.sh test "
                                    "installs postgresql-15)")
        self.dir = Path(tempfile.mkdtemp(prefix="ringil-pg-", dir=base))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.user = "ringil"
        self.fsync = fsync
        self.root = os.geteuid() == 0
        self._ids = itertools.count(1)
        if self.root:
            # the directory and everything in it belong to nobody; others may reach the socket
            os.chown(self.dir, 65534, 65534)
        os.chmod(self.dir, 0o755)
        self._run([PG_BIN / "initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    f"max_connections = 200\nfsync = {'on' if fsync else 'off'}\nshared_buffers = 32MB\n"
                    "log_min_messages = warning\nlog_connections = off\n")
        self.start()

    def _run(self, args, check=True, timeout=120):
        cmd = [str(a) for a in args]
        if self.root:
            cmd = ["runuser", "-u", "nobody", "--"] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(self.dir))
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}\n"
                               + (self.log.read_text() if self.log.exists() else ""))
        return p

    def start(self):
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def running(self):
        return self._run([PG_BIN / "pg_ctl", "-D", self.data, "status"], check=False).returncode == 0

    def psql(self, sql, db="postgres", sep="|"):
        """Run sql; its rows unaligned (fields separated by sep, NULL as \\N)."""
        p = subprocess.run([str(PG_BIN / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", sep, "-P",
                            "null=\\N", "-h", str(self.dir), "-p", str(self.port), "-U", self.user, "-d", db,
                            "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {p.stderr}")
        return p.stdout.rstrip("\n")   # not strip(): a separator such as \x1f is whitespace to Python

    def url(self, db):
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def socket_url(self, db):
        return f"postgresql:///{db}?host={self.dir}&port={self.port}&user={self.user}"

    def new_database(self, prefix="t"):
        name = f"{prefix}{os.getpid()}_{next(self._ids)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
