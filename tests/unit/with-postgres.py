#!/usr/bin/env python3
"""with-postgres.py: run a unit test binary with a throw-away PostgreSQL server (RINGIL_TEST_PG set to its URL)."""
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pgserver import PgServer  # noqa: E402

with PgServer(fsync=False) as pg:
    env = dict(os.environ, RINGIL_TEST_PG=pg.url("postgres"))
    rc = subprocess.run(sys.argv[1:], env=env).returncode
sys.exit(rc)
