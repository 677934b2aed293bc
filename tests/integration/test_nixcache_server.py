"""test_nixcache_server.py: ringil-server's /nix-cache/ routes: who may fetch, exact bytes, Range, exact 404s."""
import http.client
import json
import ssl
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from conftest import binary
from fleetsim import Pki, Server, request, run, tls_context

HASH = "0123456789abcdfghijklmnpqrsvwxyz"          # 32 characters of Nix base32 (no e o t u)
MISSING = "11111111111111111111111111111111"
NAR = "1b8m3v5q9lzv7cmwwpkyq4pdz0fpjrw9hzjw1y5alzbqy3z2nk1a.nar.xz"
CACHE_INFO = b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
NARINFO = (f"StorePath: /nix/store/{HASH}-hello-2.12\nURL: nar/{NAR}\nCompression: xz\n"
           "NarHash: sha256:1b8m3v5q9lzv7cmwwpkyq4pdz0fpjrw9hzjw1y5alzbqy3z2nk1a\nNarSize: 226560\n"
           "References: \nSig: fleet-1:AAAA\n").encode()


@pytest.fixture(scope="module")
def pki():
    d = Path(tempfile.mkdtemp(prefix="ringil-nixcache-"))
    ringil = binary("ringil")
    p = Pki(ringil, d / "pki")
    # drones with factory certificates (`ringil ca issue`); the server registers them by name
    for name in ("drone-ok", "drone-revoked", "drone-unknown"):
        run([ringil, "ca", "issue", "--dir", p.ca.parent, "--name", name, "--out-dir", d / name])
    yield p
    shutil.rmtree(d, ignore_errors=True)


def make_cache(d: Path):
    """A cache in Nix's file:// layout, plus a secret just outside it."""
    d.mkdir()
    (d / "nix-cache-info").write_bytes(CACHE_INFO)
    (d / f"{HASH}.narinfo").write_bytes(NARINFO)
    (d / "nar").mkdir()
    (d / "nar" / NAR).write_bytes(os.urandom(300_000))
    (d.parent / "secret").write_bytes(b"server private key\n")
    return d


@pytest.fixture
def cache_server(pki, tmp_path):
    cache = make_cache(tmp_path / "cache")
    srv = Server(binary("ringil-server"), pki, tmp_path / "server", extra=f"nix-cache = {cache}\n").start()
    srv.op("enroll", "drone-ok")
    srv.op("enroll", "drone-revoked")
    srv.op("revoke", "drone-revoked")
    yield srv, cache
    srv.stop()


def ctx_for(pki, who):
    if who == "none":
        return tls_context(pki)
    if who == "operator":
        return tls_context(pki, pki.dir / "op" / "alice.pem", pki.dir / "op" / "alice.key")
    d = pki.dir.parent / who
    return tls_context(pki, d / f"{who}.pem", d / f"{who}.key")


FILES = [
    ("/nix-cache/nix-cache-info", "nix-cache-info", "text/x-nix-cache-info"),
    (f"/nix-cache/{HASH}.narinfo", f"{HASH}.narinfo", "text/x-nix-narinfo"),
    (f"/nix-cache/nar/{NAR}", f"nar/{NAR}", "application/x-nix-nar"),
]


@pytest.mark.parametrize("who", ["drone-ok", "operator"])
def test_allowed_peers_get_exact_bytes(cache_server, pki, who):
    srv, cache = cache_server
    ctx = ctx_for(pki, who)
    for path, rel, ctype in FILES:
        want = (cache / rel).read_bytes()
        status, data, hdr = request(srv.port, ctx, "GET", path, timeout=5)
        assert status == 200, (path, status, data[:200])
        assert data == want, path
        assert hdr["Content-Type"] == ctype
        assert hdr["Content-Length"] == str(len(want)) and hdr["Accept-Ranges"] == "bytes"
        assert "Content-Range" not in hdr


def raw_exchange(port, ctx, head: bytes):
    """Send one request head over TLS and return every byte the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(head)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
    return out


def test_head_sends_headers_only(cache_server, pki):
    """Raw bytes: http.client would silently drop a body that follows a HEAD answer."""
    srv, cache = cache_server
    cases = [(path, {}, 200, len((cache / rel).read_bytes()), ctype) for path, rel, ctype in FILES]
    # a miss and a bad range answer HEAD without a body too (Nix probes narinfos with HEAD)
    cases += [(f"/nix-cache/{MISSING}.narinfo", {}, 404, None, "application/json"),
              (FILES[0][0], {"Range": "bytes=999-"}, 416, None, "application/json")]
    for path, headers, status, length, ctype in cases:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out = raw_exchange(srv.port, ctx_for(pki, "drone-ok"),
                           f"HEAD {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode())
        head, sep, body = out.partition(b"\r\n\r\n")
        assert sep and body == b"", (path, out[:300])
        lines = head.decode().split("\r\n")
        assert lines[0].startswith(f"HTTP/1.1 {status} "), (path, lines[0])
        hdr = dict(line.split(": ", 1) for line in lines[1:])
        assert hdr["Content-Type"] == ctype
        if length is not None:
            assert hdr["Content-Length"] == str(length) and hdr["Accept-Ranges"] == "bytes"
    # and on a keep-alive connection the next answer after a HEAD is intact
    c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx_for(pki, "drone-ok"), timeout=5)
    try:
        for path, rel, _ in FILES:
            c.request("HEAD", path)
            r = c.getresponse()
            assert r.status == 200 and r.read() == b""
            c.request("GET", path)
            r = c.getresponse()
            assert r.status == 200 and r.read() == (cache / rel).read_bytes()
    finally:
        c.close()


def test_range_requests(cache_server, pki):
    srv, cache = cache_server
    ctx = ctx_for(pki, "drone-ok")
    path = f"/nix-cache/nar/{NAR}"
    nar = (cache / "nar" / NAR).read_bytes()
    size = len(nar)
    for rng, first, last in (("bytes=1000-1999", 1000, 1999), ("bytes=299990-", 299990, size - 1),
                             ("bytes=-16", size - 16, size - 1), ("bytes=0-99999999", 0, size - 1)):
        status, data, hdr = request(srv.port, ctx, "GET", path, headers={"Range": rng}, timeout=5)
        assert status == 206, (rng, status)
        assert data == nar[first:last + 1], rng
        assert hdr["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert hdr["Content-Length"] == str(last - first + 1)
    status, _, hdr = request(srv.port, ctx, "GET", path, headers={"Range": f"bytes={size}-"}, timeout=5)
    assert status == 416 and hdr["Content-Range"] == f"bytes */{size}"
    status, _, _ = request(srv.port, ctx, "GET", path, headers={"Range": "bytes=5-1"}, timeout=5)
    assert status == 400
    # a narinfo is served with Range as well (the drone resumes whatever it fetches the same way)
    status, data, _ = request(srv.port, ctx, "GET", f"/nix-cache/{HASH}.narinfo",
                              headers={"Range": "bytes=0-9"}, timeout=5)
    assert status == 206 and data == NARINFO[:10]


def test_no_certificate_no_http(cache_server, pki):
    """Without a client certificate the fleet port ends the TLS handshake: no name can be probed."""
    srv, _ = cache_server
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        request(srv.port, ctx_for(pki, "none"), "GET", FILES[0][0], timeout=5)


@pytest.mark.parametrize("who,want", [("drone-unknown", 403), ("drone-revoked", 403)])
def test_refused_peers(cache_server, pki, who, want):
    srv, _ = cache_server
    ctx = ctx_for(pki, who)
    # refused before the name is looked at: a stranger cannot even probe which names exist
    for path in [f[0] for f in FILES] + [f"/nix-cache/{MISSING}.narinfo", "/nix-cache/nope"]:
        for method in ("GET", "HEAD"):
            status, data, _ = request(srv.port, ctx, method, path, timeout=5)
            assert status == want, (who, method, path, status)
            if method == "GET":
                assert json.loads(data)["status"] == want and b"StorePath" not in data


def test_missing_and_malformed_names_are_404(cache_server, pki):
    srv, cache = cache_server
    outside = cache.parent / "secret"
    # hostile things planted inside the cache directory
    (cache / f"{'2' * 32}.narinfo").symlink_to(outside)
    (cache / "nar" / "link.nar").symlink_to(outside)
    os.mkfifo(cache / f"{'3' * 32}.narinfo")
    (cache / f"{'4' * 32}.narinfo").mkdir()
    ctx = ctx_for(pki, "drone-ok")
    not_found = [
        f"/nix-cache/{MISSING}.narinfo",                       # the normal miss: Nix asks for paths we lack
        f"/nix-cache/nar/{'0' * 52}.nar.xz",
        f"/nix-cache/{HASH.upper()}.narinfo",
        f"/nix-cache/{HASH}a.narinfo",                         # 33 characters
        f"/nix-cache/{HASH[:31]}.narinfo",
        f"/nix-cache/{HASH[:31]}e.narinfo",                    # not Nix base32
        f"/nix-cache/{'2' * 32}.narinfo",                      # symlink to a file outside the cache
        "/nix-cache/nar/link.nar",                             # symlink inside nar/
        f"/nix-cache/{'3' * 32}.narinfo",                      # FIFO: must not hang the server
        f"/nix-cache/{'4' * 32}.narinfo",                      # directory
        "/nix-cache/./nix-cache-info",
        "/nix-cache//nix-cache-info",
        "/nix-cache/nix-cache-info/",
        "/nix-cache/nix-cache-info?x=1",                       # no query strings on cache files
        f"/nix-cache/nar//{NAR}",
        f"/nix-cache/nar/./{NAR}",
        f"/nix-cache/nar/{NAR}/",
        "/nix-cache/nar/x.nar.zstd",
        "/nix-cache/nar/",
        "/nix-cache/nar",
        "/nix-cache/",
        "/nix-cache/.../secret",
        "/nix-cache/nar/...nar",
        "/nix-cache/log/x",
    ]
    for path in not_found:
        status, data, _ = request(srv.port, ctx, "GET", path, timeout=5)
        assert status == 404, (path, status, data[:200])
        assert b"server private key" not in data
    # what never reaches a route: the request parser refuses ".." segments and '%' with 400
    for path in ("/nix-cache/../db", "/nix-cache/nar/../x", "/nix-cache/nar/..", "/nix-cache/%2e%2e/secret",
                 f"/nix-cache/nar/%2e%2e%2f{NAR}", "/nix-cache/%2E%2E/secret"):
        status, data, _ = request(srv.port, ctx, "GET", path, timeout=5)
        assert status == 400, (path, status)
        assert b"server private key" not in data
    # after all that, the server still answers (no thread stuck on the FIFO, no crash)
    assert request(srv.port, ctx, "GET", "/nix-cache/nix-cache-info", timeout=5)[:2] == (200, CACHE_INFO)
    assert srv.proc.poll() is None


def test_symlinked_nar_directory_is_refused(cache_server, pki):
    """nar/ swapped for a symlink while the server runs: resolved on each request, and refused."""
    srv, cache = cache_server
    ctx = ctx_for(pki, "drone-ok")
    path = f"/nix-cache/nar/{NAR}"
    assert request(srv.port, ctx, "GET", path, timeout=5)[0] == 200
    real = cache.parent / "elsewhere"
    (cache / "nar").rename(real)
    (cache / "nar").symlink_to(real)
    assert request(srv.port, ctx, "GET", path, timeout=5)[0] == 404
    assert request(srv.port, ctx, "HEAD", path, timeout=5)[0] == 404
    (cache / "nar").unlink()
    (cache / "nar").mkdir()
    assert request(srv.port, ctx, "GET", path, timeout=5)[0] == 404      # empty nar/: a miss


def test_metrics_count_hits_misses_and_bytes(cache_server, pki):
    srv, cache = cache_server
    ctx = ctx_for(pki, "drone-ok")
    size = (cache / "nar" / NAR).stat().st_size
    assert request(srv.port, ctx, "GET", f"/nix-cache/nar/{NAR}", timeout=5)[0] == 200
    assert request(srv.port, ctx, "GET", "/nix-cache/nix-cache-info", headers={"Range": "bytes=0-4"},
                   timeout=5)[0] == 206
    assert request(srv.port, ctx, "HEAD", f"/nix-cache/{HASH}.narinfo", timeout=5)[0] == 200
    assert request(srv.port, ctx, "GET", f"/nix-cache/{MISSING}.narinfo", timeout=5)[0] == 404
    assert request(srv.port, ctx, "GET", "/nix-cache/bogus", timeout=5)[0] == 404
    assert srv.metric('ringil_nix_cache_requests_total{result="hit"}') == 3
    assert srv.metric('ringil_nix_cache_requests_total{result="miss"}') == 2
    assert srv.metric("ringil_nix_cache_bytes_sent_total") == size + 5
    assert srv.metric("ringil_bundle_bytes_sent_total") == 0


def test_without_nix_cache_everything_is_404(pki, tmp_path):
    srv = Server(binary("ringil-server"), pki, tmp_path / "server").start()
    try:
        srv.op("enroll", "drone-ok")
        for who in ("drone-ok", "operator"):
            for path, _, _ in FILES:
                status, data, _ = request(srv.port, ctx_for(pki, who), "GET", path, timeout=5)
                assert status == 404, (who, path, status)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            request(srv.port, ctx_for(pki, "none"), "GET", FILES[0][0], timeout=5)
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_nix_cache_must_be_a_directory(pki, tmp_path, kind):
    target = tmp_path / "not-a-dir"
    if kind == "file":
        target.write_text("x")
    srv = Server(binary("ringil-server"), pki, tmp_path / "server", extra=f"nix-cache = {target}\n")
    p = run([srv.exe, "serve", "--config", srv.conf], check=False)
    assert p.returncode != 0 and "listening" not in p.out
    assert f"Cannot serve nix-cache '{target}': " + ("not a directory" if kind == "file" else "No such file") \
        in p.err, p.err
