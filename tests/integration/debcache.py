"""debcache.py: Debian packages of any architecture for the tests, fetched with apt's own client into a cache that
later runs reuse, unpacked without installing anything.

apt runs with a private state (lists, caches) under the cache directory and the machine's sources, so
the system's apt state and dpkg's architecture list are left alone. The cache is $RINGIL_TEST_CACHE,
else $XDG_CACHE_HOME/ringil-tests, else ~/.cache/ringil-tests.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("RINGIL_TEST_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ringil-tests")
LISTS_MAX_AGE = 7 * 86400


class Unavailable(Exception):
    """The package cannot be had here (no mirror, no such package): tests skip and say why."""


def _apt(arch: str):
    root = CACHE / "apt" / arch
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    return root, ["-q", "-o", f"Dir::State::Lists={root / 'lists'}", "-o", f"Dir::Cache={root / 'cache'}",
                  "-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures::={arch}",
                  "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]


def _run(cmd, cwd=None, timeout=600):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise Unavailable(f"{' '.join(map(str, cmd[:2]))} … failed: {(p.stderr or p.stdout).strip()[-300:]}")
    return p.stdout


def _update(arch: str, force=False):
    root, opts = _apt(arch)
    stamp = root / "updated"
    if not force and stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE:
        return
    _run(["apt-get", *opts, "update"])
    stamp.touch()


def metapackage_target(pkg: str, arch: str) -> str:
    """A metapackage (linux-image-arm64) resolved to the package it depends on (linux-image-6.1.0-N-arm64)."""
    _update(arch)
    _, opts = _apt(arch)
    show = _run(["apt-cache", *opts, "show", "--no-all-versions", f"{pkg}:{arch}"])
    for line in show.splitlines():
        if line.startswith("Depends:"):
            first = line.split(":", 1)[1].split(",")[0].split("|")[0].strip().split(" ")[0]
            return first.split(":")[0]
    return pkg


def deb(pkg: str, arch: str) -> Path:
    """The .deb of pkg for arch (downloaded once; the newest candidate of the configured suites)."""
    if not shutil.which("apt-get"):
        raise Unavailable("apt-get not found")
    d = CACHE / "debs" / arch
    d.mkdir(parents=True, exist_ok=True)
    have = sorted(d.glob(f"{pkg}_*_{arch}.deb")) + sorted(d.glob(f"{pkg}_*_all.deb"))
    if have:
        return have[-1]
    _update(arch)
    _, opts = _apt(arch)
    try:
        _run(["apt-get", *opts, "download", f"{pkg}:{arch}"], cwd=d)
    except Unavailable:
        _update(arch, force=True)   # lists older than the mirror: the version moved on
        _run(["apt-get", *opts, "download", f"{pkg}:{arch}"], cwd=d)
    have = sorted(d.glob(f"{pkg}_*.deb"))
    if not have:
        raise Unavailable(f"apt-get download {pkg}:{arch} left no .deb")
    return have[-1]


def unpack(debfile: Path, *members: str) -> Path:
    """The deb's files (or only the given ./paths) under a directory of the cache, unpacked once."""
    dest = CACHE / "unpacked" / debfile.stem
    done = dest / ".complete"
    if done.exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if members:
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debfile)], stdout=subprocess.PIPE)
        try:
            subprocess.run(["tar", "-x", "-C", str(dest), *members], stdin=tar.stdout, check=True,
                           capture_output=True, timeout=600)
        finally:
            tar.stdout.close()
            tar.wait()
    else:
        _run(["dpkg-deb", "-x", debfile, dest])
    done.touch()
    return dest
