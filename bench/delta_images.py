#!/usr/bin/python3
"""delta_images.py: realistic image pairs for the delta bench, built from Debian packages.

v1 is a small Debian system: the dependency closure of a drone-like package set (systemd, openssh, curl,
openssl, python3-minimal, nftables, iproute2), each package at the oldest version the mirror offers, unpacked
with `dpkg-deb -x` and packed with `mkfs.ext4 -d` (and `mksquashfs`). v2 variants:
  one    one package upgraded (openssl, to the newest version the mirror has)
  ten    ten packages upgraded
  major  every package with a newer version upgraded, 40-odd packages added (python3, perl, vim, ...)
Builds are reproducible (fixed UUID, hash seed, E2FSPROGS_FAKE_TIME, mksquashfs -all-time), so only the
package change shows in the images. The .debs are cached (apt-get download) in CACHE.

Usage: delta_images.py OUTDIR [CACHE]   writes OUTDIR/{v1,one,ten,major}.{ext4,sqfs}
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

SEEDS = ["systemd", "openssh-server", "iproute2", "curl", "openssl", "ca-certificates", "python3-minimal", "nftables"]
MAJOR_EXTRA = ["python3", "vim-tiny", "less", "rsync", "tcpdump", "ethtool", "iputils-ping", "gpg", "jq", "sqlite3",
               "libjansson4", "zstd", "xz-utils", "file", "procps", "psmisc", "lsof", "strace"]
ONE = "openssl"
TEN = ["openssl", "libssl3", "curl", "libcurl4", "openssh-server", "openssh-client", "libc6", "zlib1g", "libzstd1",
       "liblzma5"]
IMAGE_MB = 480


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw).stdout


def closure(pkgs):
    out = sh("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
             "--no-replaces", "--no-enhances", *pkgs)
    names = {l.strip() for l in out.splitlines() if l and not l.startswith(" ") and "<" not in l}
    return sorted(n for n in names if ":" not in n)


def versions(pkg):
    vs = sorted({l.split("|")[1].strip() for l in sh("apt-cache", "madison", pkg).splitlines() if "|" in l})
    if len(vs) < 2:
        return vs
    # order them the way dpkg does
    for i in range(len(vs)):
        for j in range(len(vs) - 1 - i):
            if subprocess.run(["dpkg", "--compare-versions", vs[j], "gt", vs[j + 1]]).returncode == 0:
                vs[j], vs[j + 1] = vs[j + 1], vs[j]
    return vs


def deb_path(cache: Path, pkg, ver):
    pat = f"{pkg}_{ver.replace(':', '%3a')}_"
    return next(iter(cache.glob(pat + "*.deb")), None)


def fetch_all(cache: Path, wanted):
    """apt-get download, one call for everything not cached yet."""
    missing = [f"{p}={v}" for p, v in sorted(wanted) if not deb_path(cache, p, v)]
    for i in range(0, len(missing), 50):
        subprocess.run(["apt-get", "download", "-q", *missing[i:i + 50]], cwd=cache, check=True, capture_output=True)


def build(out: Path, name, debs):
    root = out / f"root-{name}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for d in debs:
        sh("dpkg-deb", "-x", d, root)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")
    img = out / f"{name}.ext4"
    img.unlink(missing_ok=True)
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-U", "8f2b0c3e-5d4a-4b1e-9c7f-2a6d8e1f3b50",
       "-E", "hash_seed=3b1d2e4f-6a7c-4d8e-9f0a-1b2c3d4e5f60,root_owner=0:0", "-d", root, img, f"{IMAGE_MB}M", env=env)
    sq = out / f"{name}.sqfs"
    sq.unlink(missing_ok=True)
    sh("mksquashfs", root, sq, "-noappend", "-quiet", "-no-progress", "-all-time", "1700000000", "-mkfs-time",
       "1700000000", "-all-root", "-processors", "2")
    shutil.rmtree(root)
    return img, sq


def main():
    out = Path(sys.argv[1])
    cache = Path(sys.argv[2] if len(sys.argv) > 2 else "/var/tmp/ringil-bench-debs")
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    base = closure(SEEDS)
    major = sorted(set(base) | set(closure(SEEDS + MAJOR_EXTRA)))
    vers = {p: versions(p) for p in major}
    v1 = {p: vers[p][0] for p in base if vers[p]}
    newer = [p for p in base if len(vers[p]) > 1]
    sets = {
        "v1": v1,
        "one": dict(v1, **{ONE: vers[ONE][-1]}),
        "ten": dict(v1, **{p: vers[p][-1] for p in TEN if p in v1}),
        "major": {p: vers[p][-1] for p in major if vers[p]},
    }
    fetch_all(cache, {(p, v) for s in sets.values() for p, v in s.items()})
    for name, s in sets.items():
        if (out / f"{name}.ext4").exists() and (out / f"{name}.sqfs").exists():
            continue
        debs = [deb_path(cache, p, v) for p, v in sorted(s.items())]
        build(out, name, debs)
        print(f"{name}: {len(s)} packages, {sum(1 for p in s if s[p] != v1.get(p))} differ from v1")
    print(f"{len(base)} packages in v1, {len(newer)} with a newer version, {len(major)} in major")


if __name__ == "__main__":
    main()
