"""test_nixpublish.py: `ringil release` and ringil-server's publish routes, end to end with Debian's Nix.

The systems are the /bin/sh-built closures of test_nixgen.py (a chroot build store, no nixbld). A real
ringil-server serves an initially empty Nix cache with nix-trusted-public-keys = the fleet key; `ringil
release` signs, publishes the missing paths, makes and uploads the bundle and assigns it; real Nix then
substitutes from the published cache with require-sigs, and a real generation-mode ringild installs the
release through the server. Bad input: an unsigned closure, a NAR whose hash differs from its narinfo,
a publish by a drone identity, a path whose references are not published, a narinfo for another path.
Each is refused with a clear error and the cache keeps exactly what it had.
"""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from conftest import binary
from fleetsim import Server, request, run, tls_context
from test_nixgen import NIX, NIX_OFFLINE, FleetDrone, fleetpki, nixworld, sh  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(shutil.which("nix-build") is None or os.geteuid() != 0,
                                reason="needs nix-bin (scripts/deps.sh nix_pkgs) and root")


def cache_files(cache: Path):
    """Every file below the cache (names and bytes): what 'nothing stored' is compared with."""
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}


@pytest.fixture
def pubserver(nixworld, fleetpki, tmp_path):
    """A ringil-server with an empty Nix cache that accepts the fleet key's signatures."""
    cache = tmp_path / "cache"
    cache.mkdir()
    srv = Server(binary("ringil-server"), fleetpki, tmp_path / "server",
                 extra=f"nix-cache = {cache}\nnix-trusted-public-keys = {nixworld['fleet_pk']}\n").start()
    yield srv, cache
    srv.stop()


def release(srv, w, version, system=None, extra=(), check=0, nix_key=True):
    args = [binary("ringil"), "release", "--system", system or w["paths"][version], "--nix-store", w["build"],
            "--key", w["dir"] / "db.key", "--cert", w["dir"] / "db.pem", "--compatible", "drone-x1",
            "--version", version, *(["--nix-key", w["dir"] / "fleet.sk"] if nix_key else ["--no-sign"]), *extra]
    env = dict(os.environ, RINGIL_FLEET_SERVER=srv.url, RINGIL_FLEET_CA=str(srv.pki.ca),
               RINGIL_FLEET_CERT=str(srv.pki.dir / "op" / "alice.pem"),
               RINGIL_FLEET_KEY=str(srv.pki.dir / "op" / "alice.key"))
    p = run(args, check=False, env=env)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}\n{p.out}\n{p.err}"
    return p


def releases(srv):
    return json.loads(srv.op("status", "--json").out)


def substitute(w, cache, path, key, tmp_path):
    """Real Nix fetches path from the published cache into an empty store, requiring signatures by key."""
    store = tmp_path / f"sub-{os.urandom(4).hex()}"
    return subprocess.run([*NIX, "--store", str(store), *NIX_OFFLINE, "--option", "require-sigs", "true",
                           "--option", "trusted-public-keys", key, "copy", "--from", f"file://{cache}", path],
                          capture_output=True, text=True)


def test_release_end_to_end(pubserver, nixworld, fleetpki, ringil, tmp_path):
    srv, cache = pubserver
    w = nixworld
    p = release(srv, w, "1.0", extra=["--assign", "fleet"])
    assert f"system {w['paths']['1.0']}" in p.out
    assert "closure: 2 paths, 0 already in the fleet cache, 2 to publish" in p.out, p.out
    assert re.search(r"^release (\d+): version 1\.0 for drone-x1 \(2 paths published", p.out, re.M), p.out
    assert "assigned to fleet" in p.out
    # the cache: two narinfos written by the server, two NARs named by their hash, nix-cache-info
    files = cache_files(cache)
    narinfos = {f for f in files if f.endswith(".narinfo")}
    assert len(narinfos) == 2 and f"{w['paths']['1.0'][11:43]}.narinfo" in narinfos, narinfos
    assert len([f for f in files if f.startswith("nar/") and f.endswith(".nar")]) == 2
    assert files["nix-cache-info"].startswith(b"StoreDir: /nix/store\n")
    assert not [f for f in files if f.startswith(".") or "/." in f], files.keys()
    top = files[f"{w['paths']['1.0'][11:43]}.narinfo"].decode()
    assert "Compression: none" in top and re.search(r"^Sig: fleet-1:", top, re.M)
    # real Nix accepts the published cache with the fleet key only, and refuses it with another key
    ok = substitute(w, cache, w["paths"]["1.0"], w["fleet_pk"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    sh("nix-store", "--generate-binary-cache-key", "stranger-1", tmp_path / "s.sk", tmp_path / "s.pk")
    bad = substitute(w, cache, w["paths"]["1.0"], (tmp_path / "s.pk").read_text().strip(), tmp_path)
    assert bad.returncode != 0 and "signature" in bad.stderr, bad.stderr
    # the release is on the server, assigned to the fleet
    rel = releases(srv)
    assert [(r["version"], r["compatible"], r["assigned"]) for r in rel] == [("1.0", "drone-x1", "*")], rel
    assert srv.metric('ringil_nix_cache_uploads_total{result="accepted"}') == 2
    # and a generation-mode drone installs it through the server: from the commit's build to the drone
    dr = FleetDrone(tmp_path / "d", w, ringil, srv, fleetpki)
    dr.agent()
    assert dr.system() == w["paths"]["1.0"], dr.agent_log
    assert dr.log_lines()[-1] == f"{dr.store}{w['paths']['1.0']}/bin/switch-to-configuration boot"


def test_release_is_idempotent_and_incremental(pubserver, nixworld):
    srv, cache = pubserver
    w = nixworld
    release(srv, w, "1.0")
    before = cache_files(cache)
    p = release(srv, w, "1.0")   # the same commit released again (a CI retry)
    assert "closure: 2 paths, 2 already in the fleet cache, 0 to publish" in p.out, p.out
    assert "is already released with this closure" in p.out
    assert cache_files(cache) == before and len(releases(srv)) == 1
    assert srv.metric('ringil_nix_cache_uploads_total{result="accepted"}') == 2
    # the next version shares its base: only the new toplevel is published
    p = release(srv, w, "2.0", extra=["--assign", "group:default"])
    assert "closure: 2 paths, 1 already in the fleet cache, 1 to publish" in p.out, p.out
    assert f"published {w['paths']['2.0']}" in p.out
    assert len(releases(srv)) == 2 and srv.metric('ringil_nix_cache_uploads_total{result="accepted"}') == 3


def test_same_version_other_system_is_refused(pubserver, nixworld):
    srv, cache = pubserver
    release(srv, nixworld, "1.0")
    p = release(srv, nixworld, "1.0", nixworld["paths"]["2.0"], check=10)
    assert "version 1.0 for drone-x1 is already release 1 with another closure" in p.err, p.err
    assert len(releases(srv)) == 1


def test_unsigned_closure_is_refused_and_nothing_stored(pubserver, nixworld):
    """A closure nobody signed with the fleet key (--no-sign: the key step was skipped or failed)."""
    srv, cache = pubserver
    w = nixworld
    p = release(srv, w, "9.9", nix_key=False, system=unsigned_system(w, "9.9"), check=None)
    assert p.returncode != 0
    assert "is not signed by any key in trusted-public-keys" in p.err, p.err
    assert "refused" in p.err
    # the base path is signed (test_nixgen's fleet cache): it may be published; the unsigned toplevel not
    files = cache_files(cache)
    assert not any(unsigned_system(w, "9.9")[11:43] in f for f in files), files.keys()
    assert not [f for f in files if "/." in f or f.startswith(".")]
    assert len(releases(srv)) == 0
    assert srv.metric('ringil_nix_cache_uploads_total{result="refused"}') == 1


def unsigned_system(w, version):
    """A system built in the build store that no key has signed."""
    key = f"unsigned-{version}"
    if key not in w:
        w[key] = sh("nix-build", "--store", w["build"], *NIX_OFFLINE, "--option", "sandbox-paths", "/bin /lib /lib64 /usr",
                    "--no-out-link", w["dir"] / "system.nix", "--argstr", "v", version, "--argstr", "log", w["log"])
    return w[key]


# ---- the publish route itself, with hand-made requests ----

def envelope(narinfo: bytes, nar: bytes) -> bytes:
    return f"ringil-nix-upload 1 {len(narinfo)}\n".encode() + narinfo + nar


def signed_pair(w, version, tmp_path):
    """The fleet-signed narinfo and NAR of a version's toplevel and of its base (test_nixgen's fleet cache)."""
    src = w["caches"]["fleet"]
    out = {}
    for name, path in (("top", w["paths"][version]), ("base", None)):
        if path is None:
            text = (src / f"{w['paths'][version][11:43]}.narinfo").read_text()
            ref = [r for r in re.search(r"^References: (.*)$", text, re.M).group(1).split() if "drone-base" in r][0]
            path = "/nix/store/" + ref
        ni = (src / f"{path[11:43]}.narinfo").read_bytes()
        url = re.search(rb"^URL: (\S+)$", ni, re.M).group(1).decode()
        out[name] = (path, ni, (src / url).read_bytes())
    return out


def put(srv, who, hashpart, body):
    ctx = tls_context(srv.pki) if who == "none" else \
        tls_context(srv.pki, srv.pki.dir / "op" / "alice.pem", srv.pki.dir / "op" / "alice.key") if who == "operator" else \
        tls_context(srv.pki, *who)
    return request(srv.port, ctx, "PUT", f"/api/v1/nix-cache/{hashpart}", body=body,
                   headers={"Content-Type": "application/octet-stream"}, timeout=10)


def test_nar_hash_differs_from_narinfo(pubserver, nixworld, tmp_path):
    srv, cache = pubserver
    pair = signed_pair(nixworld, "1.0", tmp_path)
    base_path, ni, nar = pair["base"]
    before = cache_files(cache)
    bad = bytearray(nar)
    bad[len(bad) // 2] ^= 0x01
    status, data, _ = put(srv, "operator", base_path[11:43], envelope(ni, bytes(bad)))
    assert status == 422 and b"differs from the signed NarHash" in data, (status, data)
    # one byte short of the signed NarSize
    status, data, _ = put(srv, "operator", base_path[11:43], envelope(ni, nar[:-1]))
    assert status == 422 and b"the signed NarSize is" in data, (status, data)
    assert cache_files(cache) == before
    # the transport's spool file of each refused upload is gone too
    assert not list((srv.dir / "store").glob(".upload.*"))
    # the same request with the true NAR is stored; again, it is not stored twice
    status, data, _ = put(srv, "operator", base_path[11:43], envelope(ni, nar))
    assert status == 201 and json.loads(data)["stored"] is True, data
    status, data, _ = put(srv, "operator", base_path[11:43], envelope(ni, nar))
    assert status == 200 and json.loads(data)["stored"] is False, data


def test_publish_by_a_drone_or_anonymous_is_refused(pubserver, nixworld, fleetpki, tmp_path):
    srv, cache = pubserver
    pair = signed_pair(nixworld, "1.0", tmp_path)
    base_path, ni, nar = pair["base"]
    # an enrolled drone: a valid client certificate of the fleet, but not an operator
    d = tmp_path / "dr"
    run([binary("ringil"), "ca", "issue", "--dir", fleetpki.ca.parent, "--name", "drone-p1", "--out-dir", d])
    srv.op("enroll", "drone-p1")
    before = cache_files(cache)
    status, data, _ = put(srv, (d / "drone-p1.pem", d / "drone-p1.key"), base_path[11:43], envelope(ni, nar))
    assert status == 403, (status, data)
    # no certificate: the fleet port ends the TLS handshake, before any HTTP
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        put(srv, "none", base_path[11:43], envelope(ni, nar))
    ctx = tls_context(srv.pki, d / "drone-p1.pem", d / "drone-p1.key")
    status, _, _ = request(srv.port, ctx, "POST", "/api/v1/nix-cache/missing",
                           body=json.dumps({"paths": [base_path]}), timeout=10)
    assert status == 403
    assert cache_files(cache) == before
    # the CLI with a drone identity fails the same way, with a clear message
    env = dict(os.environ, RINGIL_FLEET_SERVER=srv.url, RINGIL_FLEET_CA=str(srv.pki.ca),
               RINGIL_FLEET_CERT=str(d / "drone-p1.pem"), RINGIL_FLEET_KEY=str(d / "drone-p1.key"))
    p = run([binary("ringil"), "release", "--system", nixworld["paths"]["1.0"], "--nix-store", nixworld["build"],
             "--nix-key", nixworld["dir"] / "fleet.sk", "--key", nixworld["dir"] / "db.key", "--cert",
             nixworld["dir"] / "db.pem", "--compatible", "drone-x1", "--version", "1.0"], check=False, env=env)
    assert p.returncode == 5 and "403" in p.err and "operator" in p.err, (p.returncode, p.err)
    assert cache_files(cache) == before and releases(srv) == []


def test_references_first_and_own_path_only(pubserver, nixworld, tmp_path):
    srv, cache = pubserver
    pair = signed_pair(nixworld, "1.0", tmp_path)
    top_path, ni, nar = pair["top"]
    before = cache_files(cache)
    status, data, _ = put(srv, "operator", top_path[11:43], envelope(ni, nar))
    assert status == 409 and b"which is not in the cache" in data and b"drone-base" in data, (status, data)
    # a narinfo for another path than the one in the URL
    base_path = pair["base"][0]
    status, data, _ = put(srv, "operator", base_path[11:43], envelope(ni, nar))
    assert status == 400 and b"not for" in data, (status, data)
    # a narinfo signed by another key
    other = nixworld["caches"]["other"]
    oni = (other / f"{base_path[11:43]}.narinfo").read_bytes()
    oni = b"".join(l + b"\n" for l in oni.splitlines() if not l.startswith(b"Sig: fleet-1:"))
    status, data, _ = put(srv, "operator", base_path[11:43], envelope(oni, pair["base"][2]))
    assert status == 422 and b"is not signed by any key in trusted-public-keys" in data, (status, data)
    # malformed envelopes
    for body in (b"", b"hello\n" + ni, b"ringil-nix-upload 1 99999999\n", b"ringil-nix-upload 1 5\nab"):
        status, data, _ = put(srv, "operator", base_path[11:43], body)
        assert status in (400, 411), (body[:40], status, data)
    assert cache_files(cache) == before
    assert srv.proc.poll() is None


def test_missing_route(pubserver, nixworld):
    srv, _ = pubserver
    release(srv, nixworld, "1.0")
    ctx = tls_context(srv.pki, srv.pki.dir / "op" / "alice.pem", srv.pki.dir / "op" / "alice.key")
    paths = [nixworld["paths"]["1.0"], nixworld["paths"]["2.0"]]
    status, data, _ = request(srv.port, ctx, "POST", "/api/v1/nix-cache/missing", body=json.dumps({"paths": paths}), timeout=10)
    assert status == 200 and json.loads(data) == {"missing": [nixworld["paths"]["2.0"]]}
    for bad in ({"paths": ["/etc/passwd"]}, {"paths": "x"}, {"other": []}, [1]):
        status, _, _ = request(srv.port, ctx, "POST", "/api/v1/nix-cache/missing", body=json.dumps(bad), timeout=10)
        assert status == 400, bad


def test_publish_routes_caps_and_methods(nixworld, fleetpki, tmp_path):
    """The publish routes as entries of the server's route table: an upload over max-upload plus the envelope
    is 413 before any byte of it is read, a missing list far above the 16 KiB of the other JSON routes is
    taken, and the routes' other methods are 405 with Allow."""
    cache = tmp_path / "cache"
    cache.mkdir()
    srv = Server(binary("ringil-server"), fleetpki, tmp_path / "server",
                 extra=f"nix-cache = {cache}\nnix-trusted-public-keys = {nixworld['fleet_pk']}\nmax-upload = 1M\n").start()
    try:
        ctx = tls_context(srv.pki, srv.pki.dir / "op" / "alice.pem", srv.pki.dir / "op" / "alice.key")
        head = (f"PUT /api/v1/nix-cache/{'0' * 32} HTTP/1.1\r\nHost: x\r\nContent-Length: {2 << 20}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s, \
                ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(head)   # and no body: the answer must not wait for it
            answer = t.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert not list((srv.dir / "store").glob(".upload.*"))
        # 2,000 paths of ~60 bytes: ~120 KiB of JSON, all missing from the empty cache
        paths = [f"/nix/store/{os.urandom(20).hex()[:32].translate(str.maketrans('eotu', '0123'))}-p{i}" for i in range(2000)]
        status, data, _ = request(srv.port, ctx, "POST", "/api/v1/nix-cache/missing", body=json.dumps({"paths": paths}),
                                  timeout=30)
        assert status == 200 and json.loads(data) == {"missing": paths}, (status, data[:200])
        status, _, hdr = request(srv.port, ctx, "GET", "/api/v1/nix-cache/missing")
        assert status == 405 and hdr["Allow"] == "POST, PUT", (status, hdr)
        status, _, hdr = request(srv.port, ctx, "POST", f"/api/v1/nix-cache/{'0' * 32}", body=b"x")
        assert status == 405 and hdr["Allow"] == "PUT", (status, hdr)
        # a hash part that is not one is no path of the cache
        status, data, _ = request(srv.port, ctx, "PUT", "/api/v1/nix-cache/NOT-A-HASH", body=b"ringil-nix-upload 1 1\nx")
        assert status == 404 and b"hash part" in data, (status, data)
        assert cache_files(cache) == {}
    finally:
        srv.stop()


def test_publish_needs_a_configured_cache(fleetpki, tmp_path):
    srv = Server(binary("ringil-server"), fleetpki, tmp_path / "server").start()
    try:
        ctx = tls_context(srv.pki, srv.pki.dir / "op" / "alice.pem", srv.pki.dir / "op" / "alice.key")
        status, data, _ = request(srv.port, ctx, "POST", "/api/v1/nix-cache/missing", body=json.dumps({"paths": []}))
        assert status == 501 and b"no nix-cache with nix-trusted-public-keys" in data, (status, data)
    finally:
        srv.stop()


def test_server_refuses_bad_key_config(fleetpki, tmp_path):
    for extra, msg in ((f"nix-cache = {tmp_path}\nnix-trusted-public-keys = fleet-1:notbase64\n", "is not 32 bytes of base64"),
                       ("nix-trusted-public-keys = fleet-1:" + "A" * 43 + "=\n", "needs nix-cache")):
        srv = Server(binary("ringil-server"), fleetpki, tmp_path / f"s{len(msg)}", extra=extra)
        p = run([srv.exe, "serve", "--config", srv.conf], check=False)
        assert p.returncode != 0 and msg in p.err, p.err


def test_release_from_a_flake(pubserver, nixworld, tmp_path):
    """--flake: the command builds the system itself (here a /bin/sh derivation in a path: flake)."""
    srv, cache = pubserver
    w = nixworld
    flake = tmp_path / "flake"
    flake.mkdir()
    (flake / "flake.nix").write_text(
        '{ outputs = { self }: { packages.x86_64-linux.default = derivation {\n'
        '  name = "nixos-system-drone-flake"; system = "x86_64-linux"; builder = "/bin/sh";\n'
        '  PATH = "/bin:/usr/bin"; args = [ "-c" "mkdir -p $out/bin; echo flake > $out/version" ]; }; }; }\n')
    env = dict(os.environ, NIX_CONFIG="build-users-group =\nsubstituters =\nsandbox-paths = /bin /lib /lib64 /usr\n",
               HOME=str(tmp_path), RINGIL_FLEET_SERVER=srv.url, RINGIL_FLEET_CA=str(srv.pki.ca),
               RINGIL_FLEET_CERT=str(srv.pki.dir / "op" / "alice.pem"),
               RINGIL_FLEET_KEY=str(srv.pki.dir / "op" / "alice.key"))
    p = run([binary("ringil"), "release", "--flake", f"path:{flake}#default", "--nix-store", w["build"],
             "--nix-key", w["dir"] / "fleet.sk", "--key", w["dir"] / "db.key", "--cert", w["dir"] / "db.pem",
             "--compatible", "drone-x1", "--version", "7.0"], check=False, env=env)
    assert p.returncode == 0, p.err
    assert re.search(r"^system /nix/store/[a-z0-9]{32}-nixos-system-drone-flake$", p.out, re.M), p.out
    assert "closure: 1 paths, 0 already in the fleet cache, 1 to publish" in p.out
    assert [r["version"] for r in releases(srv)] == ["7.0"]


@pytest.mark.parametrize("args,msg", [
    ([], "one of --system and --flake"),
    (["--system", "/nix/store/x", "--flake", "."], "one of --system and --flake"),
    (["--system", "/nix/store/00000000000000000000000000000000-x"], "one of --nix-key and --no-sign"),
    (["--system", "/nix/store/00000000000000000000000000000000-x", "--no-sign", "--key", "k", "--cert", "c",
      "--compatible", "x", "--version", "1.0", "--assign", "everyone"], "bad --assign"),
    (["--system", "/nix/store/00000000000000000000000000000000-x", "--no-sign", "--key", "k", "--cert", "c",
      "--compatible", "x", "--version", "v1"], "bad --version"),
])
def test_release_usage_errors(ringil, args, msg):
    p = ringil("release", *args, env={"RINGIL_FLEET_SERVER": "https://x", "RINGIL_FLEET_CA": "a",
                                      "RINGIL_FLEET_CERT": "b", "RINGIL_FLEET_KEY": "c"})
    assert p.returncode == 2 and msg in p.err, p.err
