#!/usr/bin/python3
"""bench-delta.py: delta updates side by side: full bundle, ringil fixed chunks, ringil CDC, casync, zchunk, xdelta3.

Image pairs come from bench/delta_images.py (Debian packages: v1 and v2 with one, ten or many packages
changed; ext4 and squashfs). Every peer downloads over HTTP on loopback from one server that counts the
body bytes it sends (Range and multi-range answered as any static server would); ringil's installer runs
for real (`ringil install --fetch-stdio` into file slots, v1 in the other slot), fed by a small agent that
fetches its ranges from the same server. Bytes are body bytes on the wire (HTTP headers not counted, for
any tool); times are wall clock of the whole install/extract, same run, same machine.

Columns: full = the whole bundle (one sequential range); fixed = 64 KiB fixed chunks; cdc = content-defined
16/64/256 KiB; cdc+zstd = the bytes cdc fetched, zstd -1 in 256 KiB frames (an estimate of a transfer
coding, no time); casync/zchunk = their downloads (their chunks are stored compressed); xdelta3 = the patch
size and the time to make it (no transfer).

Usage: bench-delta.py BUILD IMGDIR WORKDIR   (prints a Markdown table; RINGIL_BENCH_PAIRS=one,ten,major)
"""
import http.server
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

SENT = {"bytes": 0}
SENT_LOCK = threading.Lock()


def count(n):
    with SENT_LOCK:
        SENT["bytes"] += n


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = Path(self.directory) / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data_len = path.stat().st_size
        rng = self.headers.get("Range")
        with open(path, "rb") as f:
            if not rng:
                self.send_response(200)
                self.send_header("Content-Length", str(data_len))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                shutil.copyfileobj(f, self.wfile)
                count(data_len)
                return
            specs = []
            for part in rng.split("=", 1)[1].split(","):
                a, b = part.strip().split("-")
                a = int(a) if a else data_len - int(b)
                b = int(b) if (b and part.strip()[0] != "-") else data_len - 1
                specs.append((a, min(b, data_len - 1)))
            if len(specs) == 1:
                a, b = specs[0]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {a}-{b}/{data_len}")
                self.send_header("Content-Length", str(b - a + 1))
                self.end_headers()
                f.seek(a)
                self.wfile.write(f.read(b - a + 1))
                count(b - a + 1)
                return
            body = b""
            for a, b in specs:
                f.seek(a)
                body += (f"--RNGBOUNDARY\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Range: bytes {a}-{b}/{data_len}\r\n\r\n").encode() + f.read(b - a + 1) + b"\r\n"
            body += b"--RNGBOUNDARY--\r\n"
            self.send_response(206)
            self.send_header("Content-Type", "multipart/byteranges; boundary=RNGBOUNDARY")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            count(sum(b - a + 1 for a, b in specs))


def serve(root):
    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
    srv = S(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw)


def timed(fn):
    """Body bytes sent while fn runs, and its wall time (or the time fn returns: the part that is the update)."""
    SENT["bytes"] = 0
    t = time.monotonic()
    own = fn()
    return SENT["bytes"], own if isinstance(own, float) else time.monotonic() - t


def zstd_size(data):
    """What the fetched bytes would be zstd -1 coded in independent 256 KiB frames (the transfer coding on
    branch delta-zstd): an estimate of the compression gap to casync, which stores its chunks compressed."""
    total = 0
    for i in range(0, len(data), 256 << 10):
        total += len(subprocess.run(["zstd", "-1", "-q", "-c"], input=data[i:i + (256 << 10)], check=True,
                                    capture_output=True).stdout)
    return total


def ringil_install(ringil, work, v1_bundle, v2_bundle, img_size, url, full=False, fetched=None):
    """v1 installed in slot a and blessed; then v2 through the fetch protocol, ranges from the HTTP server.
    Returns the wall time of the v2 install alone (v1's setup is read from a local file, no bytes counted)."""
    dev = work / "dev"
    shutil.rmtree(dev, ignore_errors=True)
    for sub in ("esp", "efi"):
        (dev / sub).mkdir(parents=True)
    for s in "ab":
        with open(dev / f"slot-{s}", "wb") as f:
            f.truncate(img_size + (1 << 20))
    (dev / "device.conf").write_text(
        f"[device]\ncompatible = bench\nkeyring = {work / 'c.pem'}\nesp = {dev / 'esp'}\nstate-dir = {dev / 'state'}\n"
        f"efivarfs = {dev / 'efi'}\n[boot]\nlinux = /vmlinuz\n[slot.rootfs.a]\ndevice = {dev / 'slot-a'}\n"
        f"[slot.rootfs.b]\ndevice = {dev / 'slot-b'}\n")
    sh(ringil, "install", "-q", "--config", dev / "device.conf", "--slot", "a", v1_bundle)
    sh(ringil, "mark-good", "--config", dev / "device.conf", "--booted", "ringil-a-1.0.conf")
    name = Path(v2_bundle).name
    t0 = time.monotonic()
    size = os.path.getsize(v2_bundle)
    p = subprocess.Popen([str(ringil), "install", "-q", "--config", str(dev / "device.conf"), "--booted", "ringil-a-1.0.conf",
                          "--fetch-stdio", "--fetch-size", str(size), "--full-above", "0" if full else "80", "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    batch = []
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    for raw in p.stdout:
        line = raw.decode().strip()
        if line.startswith("fetch "):
            _, a, n = line.split()
            batch.append((int(a), int(n)))
        elif line == "end":
            for a, n in batch:
                conn.request("GET", "/" + name, headers={"Range": f"bytes={a}-{a + n - 1}"})
                r = conn.getresponse()
                body = r.read()
                assert r.status == 206 and len(body) == n
                if fetched is not None:
                    fetched.append(body)
                p.stdin.write(body)
            p.stdin.flush()
            batch = []
    p.stdin.close()
    assert p.wait() == 0
    elapsed = time.monotonic() - t0
    shutil.rmtree(dev)
    return elapsed


def main():
    build, imgs, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    ringil = build / "ringil" / "ringil"
    work.mkdir(parents=True, exist_ok=True)
    www = work / "www"
    shutil.rmtree(www, ignore_errors=True)   # bundles of an earlier run are signed by its (gone) key
    www.mkdir()
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       work / "k.pem", "-out", work / "c.pem", "-subj", "/CN=bench", "-days", "30")
    srv, url = serve(www)
    pairs = os.environ.get("RINGIL_BENCH_PAIRS", "one,ten,major").split(",")
    rows = []
    for fs in ("ext4", "sqfs"):
        v1 = imgs / f"v1.{fs}"
        for pair in pairs:
            v2 = imgs / f"{pair}.{fs}"
            row = {"pair": f"{pair} ({fs})", "image": v2.stat().st_size}
            bundles = {}
            for kind, args in (("full", ["--chunk-size", "1M"]), ("fixed", ["--chunk-size", "64K"]), ("cdc", ["--chunking", "cdc"])):
                for v, img in (("1.0", v1), ("2.0", v2)):
                    out = www / (f"{kind}-{fs}-v1.rb" if v == "1.0" else f"{kind}-{fs}-{pair}-{v}.rb")
                    if not out.exists():
                        sh(ringil, "bundle", "create", "-q", "--key", work / "k.pem", "--cert", work / "c.pem",
                           "--compatible", "bench", "--version", v, *args, "--payload", f"rootfs:raw={img}", "--output", out)
                    bundles[(kind, v)] = out
            size = v2.stat().st_size
            b, t = timed(lambda: ringil_install(ringil, work, bundles[("full", "1.0")], bundles[("full", "2.0")], size, url, full=True))
            row["full"] = (b, t)
            for kind in ("fixed", "cdc"):
                got = []
                b, t = timed(lambda: ringil_install(ringil, work, bundles[(kind, "1.0")], bundles[(kind, "2.0")], size, url,
                                                    fetched=got))
                row[kind] = (b, t)
                if kind == "cdc":
                    row["cdc+zstd"] = (zstd_size(b"".join(got)), None)   # bytes only: an estimate
            # casync: default chunk sizes, store over HTTP, v1 image as the seed
            store = www / f"casync-{fs}-{pair}"
            shutil.rmtree(store, ignore_errors=True)
            sh("casync", "make", f"--store={store}.castr", f"{store}.caibx", v2)
            outimg = work / "casync.out"
            outimg.unlink(missing_ok=True)
            b, t = timed(lambda: sh("casync", "extract", f"--seed={v1}", f"--store={url}/{store.name}.castr",
                                    f"{url}/{store.name}.caibx", outimg))
            row["casync"] = (b, t)
            # zchunk: both images as .zck, zckdl with the old one as source
            z1, z2 = work / f"v1-{fs}.zck", www / f"{pair}-{fs}.zck"
            if not z1.exists():
                sh("zck", "-o", z1, v1)
            sh("zck", "-o", z2, v2)
            zdir = work / "zck"   # zckdl writes the URL's basename into its working directory
            shutil.rmtree(zdir, ignore_errors=True)
            zdir.mkdir()
            b, t = timed(lambda: sh("zckdl", "-q", "-s", z1, f"{url}/{z2.name}", cwd=zdir))
            row["zchunk"] = (b, t)
            # xdelta3: the patch is what would travel (no server needed)
            patch = work / "x.vcdiff"
            t0 = time.monotonic()
            sh("xdelta3", "-e", "-f", "-s", v1, v2, patch)
            row["xdelta3"] = (patch.stat().st_size, time.monotonic() - t0)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    srv.shutdown()
    cols = ("full", "fixed", "cdc", "cdc+zstd", "casync", "zchunk", "xdelta3")
    print("| pair | image MiB | " + " | ".join(f"{c} MiB (s)" for c in cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for r in rows:
        full = r["full"][0]
        cells = [f"{r[c][0] / 2**20:.2f} ({'est.' if r[c][1] is None else f'{r[c][1]:.1f}s'}, {100 * r[c][0] / full:.1f}%)"
                 for c in cols]
        print(f"| {r['pair']} | {r['image'] / 2**20:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
