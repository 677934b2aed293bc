"""test_fleet_mirrors.py: bundles from static hosts: a mirror (nginx, its own CA) serves the bundle, one
serves a flipped byte, one is down, one cuts every connection; releases the server only references; a delta
install whose missing chunks come from the mirror. Both of the agent's ways get the checks: the delta
install's fetch protocol (the default) and the whole-bundle download (delta = no, or outside a window)."""
import json
import os
import socket

import pytest

from fleetsim import CuttingProxy, Mirror, request, tls_context
from test_fleet import delta_bundles, fleet, update_to_completion, world  # noqa: F401 (fixtures and a helper)


@pytest.fixture
def mirror(world, tmp_path):
    m = Mirror(world["ringil"], tmp_path / "mirror")
    yield m
    m.close()


def upload(srv, bundle, *args):
    return int(srv.op("upload", "--quiet", *args, bundle).out.strip())


def mirrored_drone(drone, name, mirror, delta=True):
    dr = drone(name)
    dr.extra_conf = f"mirror-ca = {mirror.ca}\n" + ("" if delta else "delta = no\n")
    dr.write_agent_conf(dr.url)
    return dr


def fetched(dr):
    """(bytes from mirrors, bytes from the server) of the agent's last download, from its log."""
    import re
    m = re.findall(r"(\d+) bytes from mirrors, (\d+) from the server", dr.log.read_text())
    assert m, dr.log.read_text()
    return int(m[-1][0]), int(m[-1][1])


def test_mirror_serves_the_bundle(fleet, world, mirror):
    srv, drone = fleet
    dr = mirrored_drone(drone, "drone-m", mirror)
    bundle = world["bundles"]["2.0"]
    url = mirror.publish(bundle, "v2.bundle")
    rid = upload(srv, bundle, "--mirror", url)
    srv.op("release", rid, "--fleet")
    # the check-in answer names the mirror and the metadata hash that makes it checkable
    ctx = tls_context(world["pki"], dr.dir / "agent" / "cert.pem", dr.dir / "agent" / "key.pem")
    status, data, _ = request(srv.port, ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle","version":"1.0"}')
    a = json.loads(data)["assignment"]
    assert status == 200 and a["mirrors"] == [url] and len(a["meta_sha256"]) == 64 and 0 < a["meta_size"] < a["size"]
    update_to_completion(dr, srv)
    assert dr.status()["slots"]["b"]["version"] == "2.0"
    size = os.path.getsize(bundle)
    assert fetched(dr) == (size, 0)
    assert srv.metric("ringil_bundle_bytes_sent_total") == 0
    reqs = [r for r in mirror.requests() if r[2] == "/v2.bundle"]
    # Range requests, answered 206; and the mirror got no client certificate though it asked for one
    assert reqs and all(r[0] == 206 and r[3].startswith("bytes=") for r in reqs), reqs
    assert {r[4] for r in reqs} == {"NONE"}, reqs
    assert sum(r[1] for r in reqs) == size


@pytest.mark.parametrize("way", ["delta", "download"])
@pytest.mark.parametrize("where", ["payload", "metadata"])
def test_mirror_with_a_flipped_byte(fleet, world, mirror, where, way):
    """One wrong byte: caught by the chunk hash (or the metadata hash), the mirror dropped, the rest
    from the server; the drone installs the right bundle and reports no failure."""
    srv, drone = fleet
    dr = mirrored_drone(drone, "drone-f", mirror, delta=way == "delta")
    bundle = world["bundles"]["2.0"]
    size = os.path.getsize(bundle)
    url = mirror.publish(bundle, "v2.bundle")
    rid = upload(srv, bundle, "--mirror", url)
    a = json.loads(srv.op("status", "--json").out)[0]
    assert a["mirrors"] == [url] and a["stored"] is True
    meta = int(srv.sql(f"SELECT meta_size FROM releases WHERE id = {rid}")[0][0])
    flip = meta + (size - meta) // 2 if where == "payload" else meta - 100   # the middle / in the signature
    mirror.publish(bundle, "v2.bundle", flip=flip)
    srv.op("release", rid, "--fleet")
    update_to_completion(dr, srv)
    img = (world["dir"] / "img-2.0").read_bytes()
    assert (dr.dir / "slot-b.img").read_bytes()[: len(img)] == img
    assert [h["state"] for h in reversed(srv.drone(dr.name)["history"])] == \
        ["downloading", "installed", "rebooting", "updated"]
    from_mirror, from_server = fetched(dr)
    assert from_mirror + from_server == size
    assert "served bytes that do not match" in dr.log.read_text()
    if where == "payload":
        # what came before the bad chunk was kept; the bad chunk and the rest came from the server
        assert 0 < from_mirror <= flip < size and from_server >= size - flip
    else:
        assert from_mirror == 0 and from_server == size


def test_mirror_down_falls_back_to_the_server(fleet, world, mirror):
    srv, drone = fleet
    dr = mirrored_drone(drone, "drone-d", mirror)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"https://127.0.0.1:{s.getsockname()[1]}/v2.bundle"
    s.close()
    bundle = world["bundles"]["2.0"]
    rid = upload(srv, bundle, "--mirror", dead)
    srv.op("release", rid, "--fleet")
    update_to_completion(dr, srv)
    assert fetched(dr) == (0, os.path.getsize(bundle))


def test_mirror_range_and_resume(fleet, world, mirror):
    """A link that cuts every connection to the mirror: resumed with Range at the first unit not yet
    handed over, from the mirror, about one copy in all."""
    srv, drone = fleet
    dr = mirrored_drone(drone, "drone-r", mirror)
    bundle = world["bundles"]["2.0"]
    size = os.path.getsize(bundle)
    mirror.publish(bundle, "v2.bundle")
    proxy = CuttingProxy(mirror.port, cut_min=96 * 1024, cut_max=384 * 1024, seed=3)
    try:
        rid = upload(srv, bundle, "--mirror", f"https://127.0.0.1:{proxy.port}/v2.bundle")
        srv.op("release", rid, "--fleet")
        update_to_completion(dr, srv, max_runs=30)
        assert fetched(dr)[1] < size / 2, fetched(dr)   # most of it from the mirror despite the cuts
        assert proxy.cuts >= 3, proxy.cuts
        assert proxy.bytes_to_client <= 1.5 * size, (proxy.bytes_to_client, size)
    finally:
        proxy.close()


def test_release_only_referenced(fleet, world, mirror):
    """--reference: the server verifies the bundle and keeps no copy; the mirror is the only source."""
    srv, drone = fleet
    dr = mirrored_drone(drone, "drone-o", mirror)
    bundle = world["bundles"]["2.0"]
    url = mirror.publish(bundle, "v2.bundle")
    # an unverifiable bundle is refused as before, referenced or not
    p = srv.op("upload", "--reference", "--mirror", url, world["bundles"]["foreign"], check=False)
    assert p.returncode == 11
    p = srv.op("upload", "--reference", bundle, check=False)
    assert p.returncode == 2 and "--mirror" in p.err
    rid = upload(srv, bundle, "--reference", "--mirror", url)
    rel = json.loads(srv.op("status", "--json").out)[0]
    assert rel["stored"] is False and rel["mirrors"] == [url]
    assert not list((srv.dir / "store").glob("*.bundle"))
    status, data, _ = request(srv.port, tls_context(world["pki"], world["pki"].dir / "op" / "alice.pem",
                                                    world["pki"].dir / "op" / "alice.key"),
                              "GET", f"/api/v1/releases/{rid}/bundle")
    assert status == 404 and b"mirrors only" in data
    # its mirrors cannot be taken away: nothing else could serve it
    p = srv.op("mirrors", str(rid), check=False)
    assert p.returncode == 10, p.err
    srv.op("release", rid, "--fleet")
    update_to_completion(dr, srv)
    assert fetched(dr) == (os.path.getsize(bundle), 0)


def test_mirror_urls_are_checked(fleet, world, mirror):
    srv, _ = fleet
    rid = upload(srv, world["bundles"]["2.0"])
    assert srv.op("mirrors", str(rid), "http://plain/x.bundle", check=False).returncode == 2
    assert srv.op("mirrors", str(rid), *[f"https://m{i}.example/x" for i in range(9)], check=False).returncode == 2
    assert "1 mirror" in srv.op("mirrors", str(rid), "https://m.example/x").out
    assert json.loads(srv.op("status", "--json").out)[0]["mirrors"] == ["https://m.example/x"]
    # the server checks them as well (an API client need not be ours)
    ctx = tls_context(world["pki"], world["pki"].dir / "op" / "alice.pem", world["pki"].dir / "op" / "alice.key")
    for body in (b'{"mirrors":["ftp://x/y"]}', b'{"mirrors":["https://a/b","https://a/b"]}', b'{"mirrors":"x"}',
                 b'{"mirrors":["https://a/b c"]}'):
        status, _, _ = request(srv.port, ctx, "POST", f"/api/v1/releases/{rid}/mirrors", body=body)
        assert status == 400, body
    assert srv.op("mirrors", str(rid)).returncode == 0   # cleared
    assert json.loads(srv.op("status", "--json").out)[0]["mirrors"] == []


def test_delta_install_from_a_mirror(fleet, world, mirror, delta_bundles):
    """A delta install against a mirror: the engine asks for the chunks the drone lacks, they come from
    the mirror with Range requests (no client certificate), checked chunk by chunk; the server sends none
    of the bundle. Then the same with a mirror whose copy has a flipped byte in a chunk the drone lacks:
    that mirror is dropped at the bad chunk and the server gives the rest."""
    from fleetsim import SimDrone
    srv, _ = fleet
    size = os.path.getsize(delta_bundles["2.0"])
    drones = []
    for i in range(2):
        dr = SimDrone(f"drone-dm{i}", srv.dir.parent / f"drone-dm{i}", world["ringil"], world["ringild"], world["pki"])
        dr.provision(delta_bundles["1.0"])
        dr.enroll(srv)
        dr.extra_conf = f"mirror-ca = {mirror.ca}\n"
        dr.write_agent_conf(dr.url)
        drones.append(dr)
    url = mirror.publish(delta_bundles["2.0"], "d2.bundle")
    rid = upload(srv, delta_bundles["2.0"], "--mirror", url)
    srv.op("release", rid, "--drone", drones[0].name)
    img = (world["dir"] / "dimg-2.0").read_bytes()
    update_to_completion(drones[0], srv)
    assert (drones[0].dir / "slot-b.img").read_bytes()[: len(img)] == img
    from_mirror, from_server = fetched(drones[0])
    d = srv.drone(drones[0].name)["delta"]
    assert from_server == 0 and 0 < from_mirror < size * 0.25, (from_mirror, d)
    assert d["reused"] > 0 and d["fetched"] < size * 0.35, d
    reqs = [r for r in mirror.requests() if r[2] == "/d2.bundle"]
    assert reqs and all(r[0] == 206 and r[4] == "NONE" for r in reqs), reqs
    assert srv.metric("ringil_bundle_bytes_sent_total") == 0

    # a corrupt copy on the mirror: the byte lies in the inserted data, which no drone holds
    meta = int(srv.sql(f"SELECT meta_size FROM releases WHERE id = {rid}")[0][0])
    mirror.publish(delta_bundles["2.0"], "d2.bundle", flip=meta + 300 * 1024 + 500)
    srv.op("release", rid, "--drone", drones[1].name)
    update_to_completion(drones[1], srv)
    assert (drones[1].dir / "slot-b.img").read_bytes()[: len(img)] == img
    assert [h["state"] for h in reversed(srv.drone(drones[1].name)["history"])] == \
        ["downloading", "installed", "rebooting", "updated"]
    assert "served bytes that do not match" in drones[1].log.read_text()
    from_mirror, from_server = fetched(drones[1])
    assert from_server > 0 and from_mirror + from_server < size * 0.35, (from_mirror, from_server)
