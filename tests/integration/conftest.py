"""conftest.py: locate the built binaries, give each test a scratch directory, run the server suites on both stores."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("RINGIL_BUILD", ROOT / "build"))
sys.path.insert(0, str(ROOT / "tests"))

# The server's test suites: every test in them runs once on SQLite and once on PostgreSQL. The
# PostgreSQL variant is marked slow: make check runs it in the normal pass only, not again under the
# sanitizers (the database is the same program either way; the server's code under ASan is covered by
# the SQLite variant and the store's unit test, which runs both backends).
SERVER_SUITES = {"test_fleet", "test_fleet_admission", "test_nixcache_server", "test_rollout"}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in SERVER_SUITES and "store_backend" in metafunc.fixturenames:
        metafunc.parametrize("store_backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)],
                             indirect=True)


@pytest.fixture(scope="session")
def pg_server():
    """One throw-away PostgreSQL server per pytest run (tests/pgserver.py); each test gets its own database."""
    import fleetsim
    from pgserver import PgServer
    pg = PgServer()
    fleetsim.PG_SERVER = pg
    yield pg
    fleetsim.PG_SERVER = None
    pg.close()


@pytest.fixture(autouse=True)
def store_backend(request):
    """Where the servers a test starts keep their state: "sqlite" (a file in the server's directory, the
    default) or "postgresql" (a new database on the session's server)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield backend
        return
    import fleetsim
    pg = request.getfixturevalue("pg_server")
    saved = fleetsim.DB_FACTORY
    fleetsim.DB_FACTORY = lambda d: (pg.new_database(), pg)
    try:
        yield backend
    finally:
        fleetsim.DB_FACTORY = saved


def pytest_configure(config):
    # check.sh runs these once, in the normal pass, and deselects them under the sanitizers (-m "not slow").
    config.addinivalue_line("markers", "slow: boots a virtual machine or similar, or runs no ringil binary at all (the NixOS "
                            "module evaluation); not repeated under ASan/UBSan")


def binary(name: str) -> Path:
    for candidate in (BUILD / name / name, BUILD / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} not built under {BUILD}")


class Run:
    """Runs a ringil program and keeps the completed process for assertions."""

    def __init__(self, exe: Path):
        self.exe = exe

    def __call__(self, *args, input=None, env=None, check=None, timeout=120):
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.run([str(self.exe), *map(str, args)], input=input, env=e,
                           capture_output=True, timeout=timeout)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check is not None:
            assert p.returncode == check, f"exit {p.returncode} != {check}\n{p.out}\n{p.err}"
        return p


@pytest.fixture(scope="session", autouse=True)
def repository_stays_clean():
    """No test may leave files in the source tree (a stray empty d1.conf once sat at its root): every
    test works in its own temporary directory. Checked over the whole run, so the culprit shows up."""
    def entries():
        return {p.name for p in ROOT.iterdir()}
    before = entries()
    yield
    new = sorted(n for n in entries() - before
                 if not n.startswith(("build", ".pytest_cache")) and n != "__pycache__")
    assert not new, f"tests left files in {ROOT}: {new}"


@pytest.fixture(scope="session")
def ringil():
    return Run(binary("ringil"))


def run_on_tty(args, timeout=120):
    """Run args with stderr on a pseudo-terminal (stdout a pipe); returns (exit code, stdout, tty text)."""
    import pty
    import select
    master, slave = pty.openpty()
    p = subprocess.Popen([str(a) for a in args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    tty = b""
    while True:
        r, _, _ = select.select([master], [], [], timeout)
        if not r:
            p.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:   # EIO: the child closed the terminal
            break
        if not chunk:
            break
        tty += chunk
    out = p.stdout.read()
    p.wait(timeout=timeout)
    p.stdout.close()
    os.close(master)
    return p.returncode, out.decode(errors="replace"), tty.decode(errors="replace")
