"""conftest.py: locate the built binaries and give each test a scratch directory."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("RINGIL_BUILD", ROOT / "build"))


def pytest_configure(config):
    # check.sh runs these once, in the normal pass, and deselects them under the sanitizers (-m "not slow").
    config.addinivalue_line("markers", "slow: boots a virtual machine or similar; not repeated under ASan/UBSan")


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


@pytest.fixture(scope="session")
def ringil():
    return Run(binary("ringil"))
