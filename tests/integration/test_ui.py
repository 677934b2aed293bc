"""test_ui.py: the operator dashboard (/ui/) against a real server: who may see it, that every view says what the
API says, escaping of hostile values, CSRF and the action log; then in Debian's headless Chromium with the
operator's certificate in its NSS database (marked slow: once per make check, not under the sanitizers)."""
import json
import os
import re
import shutil
import ssl
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import BUILD
from fleetsim import Api, fake_fleet, request, run, step_all, tls_context
from ui_fixture import HOSTILE, STATES, Doc, Fleet, cert_serial_and_expiry, results_dir, ui_state

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@pytest.fixture(scope="module")
def fleet():
    d = Path(tempfile.mkdtemp(prefix="ringil-ui-"))
    f = Fleet(BUILD, d)
    try:
        # releases: two signed bundles, 2.0 assigned to group west
        for v in ("1.0", "2.0"):
            img = d / f"img-{v}"
            img.write_bytes(os.urandom(96 * 1024))
            f.pki.bundle(v, img, d / f"v{v}.bundle")
            f.srv.op("upload", d / f"v{v}.bundle")
        f.srv.op("release", "2", "--group", "west")
        f.enrolled_cert = f.enroll("drone-enrolled", group="west")
        # drones in every state, reporting over the real API
        f.drone("f-idle", "west").checkin("1.0", fail=0)
        dn = f.drone("f-down", "west")
        dn.checkin("1.0", fail=0)
        dn.report("downloading", "1.0", release=2, target="2.0")
        pe = f.drone("f-pend", "east")
        pe.checkin("1.0", fail=1)
        pe.report("downloading", "1.0", release=2, target="2.0")
        pe.report("rebooting", "1.0", release=2, target="2.0")
        bl = f.drone("f-bless", "east")
        bl.checkin("1.0", fail=0)
        bl.report("downloading", "1.0", release=2, target="2.0")
        bl.report("updated", "2.0", release=2)
        bl.checkin("2.0", fail=0)
        rb = f.drone("f-rb", "east")
        rb.checkin("1.0", fail=0)
        rb.report("rolled-back", "1.0", release=2, target="2.0", error="health gate failed")
        fa = f.drone("f-fail", "east")
        fa.checkin("1.0", fail=2)
        fa.report("failed", "1.0", release=2, target="2.0", error=HOSTILE + " & \"quotes\"")
        f.drone("f-silent", "east").checkin("1.0")
        f.sql("UPDATE drones SET last_seen = ? WHERE id = 'f-silent'", (int(time.time()) - 3600,))
        # a hostile id, version and error: what a tampered (or differently validated) store could hold
        f.sql("INSERT INTO drones(id, grp, status, created, last_seen, version, state, error, audit_pass, audit_fail) "
              "VALUES (?, 'east', 1, ?, ?, ?, 'failed', ?, 1, 1)",
              (HOSTILE, int(time.time()), int(time.time()), HOSTILE, HOSTILE))
        # the simulator's size: 60 more drones
        f.bulk(60)
        # drones that report compliance as ringild does: a failing audit, a clean one, Secure Boot off
        api = Api(f.srv)
        f.ssh = fake_fleet(f.ringil, f.srv, f.pki, d, 1, prefix="c-ssh", group="east", api=api, failing=["SVC-001"])[0]
        f.clean = fake_fleet(f.ringil, f.srv, f.pki, d, 1, prefix="c-clean", group="east", api=api)[0]
        f.nosb = fake_fleet(f.ringil, f.srv, f.pki, d, 1, prefix="c-nosb", group="east", api=api)[0]
        f.nosb.sb = {"mode": "setup", "pk": "missing", "kek": "missing", "db": "missing"}
        for c in (f.ssh, f.clean, f.nosb):
            c.checkin()
        f.ssh.failing = ["SVC-001", "LOG-001"]   # a second audit, with one more failing check
        f.ssh.checkin()
        for name in ("c-ssh-000", "f-idle"):
            api("POST", f"/api/v1/drones/{name}/tags", {"add": ["lab"]}, expect=200)
        # a canary rollout of release 2 to group ro, running: its canary blessed, the second group in flight
        f.ro = fake_fleet(f.ringil, f.srv, f.pki, d, 10, prefix="ro", group="ro", api=api)
        step_all(f.ro)
        _, ro = api("POST", "/api/v1/rollouts", {"release": 2, "target": "group:ro", "name": "canary-2",
                                                   "groups": [{"count": 2}, {"rest": True}], "error_count": 3,
                                                   "deadline": 3600}, expect=201)
        f.rollout = ro["id"]
        api("POST", f"/api/v1/rollouts/{f.rollout}/start", {}, expect=200)
        for _ in range(2):
            step_all(f.ro)   # the canary is handed 2.0, installs, reboots; then blesses it
        deadline = time.time() + 20
        while api("GET", f"/api/v1/rollouts/{f.rollout}")[1]["current_group"] < 2 and time.time() < deadline:
            time.sleep(0.3)   # the scheduler completes the canary group
        step_all(f.ro)        # the second group is handed 2.0: in flight
        time.sleep(1.5)       # one more scheduler pass: nothing changes from here on
        # a rollout that needs a second operator's approval, created by alice
        f.ap = fake_fleet(f.ringil, f.srv, f.pki, d, 3, prefix="ap", group="ap", api=api)
        _, ap = api("POST", "/api/v1/rollouts", {"release": 2, "target": "group:ap", "name": "needs-approval",
                                                   "require_approval": True}, expect=201)
        f.approval = ap["id"]
        api.close()
        yield f
    finally:
        f.stop()
        shutil.rmtree(d, ignore_errors=True)


def api_drones(fleet):
    return {d["id"]: d for d in fleet.api("/api/v1/drones")}


# ---- who may see it ----

def test_only_operators_get_the_dashboard(fleet):
    pki = fleet.pki
    drone = fleet.drones["f-idle"].ctx
    for path in ("/ui/", "/ui/drones", "/ui/static/style.css", "/api/v1/actions"):
        st, body, _ = request(fleet.srv.port, drone, "GET", path)
        assert st == 403 and json.loads(body)["error"] == "operator credential required", (path, st, body)
    st, _, _ = request(fleet.srv.port, drone, "POST", "/ui/drone/revoke", body=b"id=f-idle&confirm=yes")
    assert st == 403
    state = fleet.api(f"/api/v1/rollouts/{fleet.rollout}")["state"]
    for action in ROLLOUT_ACTIONS:
        st, _, _ = request(fleet.srv.port, drone, "POST", "/ui/rollout/" + action, body=f"id={fleet.rollout}&confirm=yes".encode())
        assert st == 403
    assert fleet.api(f"/api/v1/rollouts/{fleet.rollout}")["state"] == state
    # without a certificate, or with an operator certificate of another CA, the TLS handshake fails
    for ctx in (tls_context(pki), tls_context(pki, pki.dir / "evil" / "alice.pem", pki.dir / "evil" / "alice.key")):
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            request(fleet.srv.port, ctx, "GET", "/ui/")
    # the operator gets HTML with the strict headers
    st, body, hdr = fleet.get("/ui/")
    assert st == 200 and hdr["Content-Type"] == "text/html; charset=utf-8"
    assert hdr["Content-Security-Policy"] == CSP
    assert hdr["Cache-Control"] == "no-store" and hdr["X-Content-Type-Options"] == "nosniff"
    assert hdr["X-Frame-Options"] == "DENY" and hdr["Referrer-Policy"] == "no-referrer"
    st, _, hdr = fleet.get("/ui")
    assert st == 303 and hdr["Location"] == "/ui/"


ROLLOUT_ACTIONS = ("approve", "start", "pause", "resume", "abort", "retry")


def every_page(fleet):
    return ["/ui/", "/ui/drones", "/ui/drones?drift=audit&tag=lab", "/ui/drone?id=f-fail", "/ui/drone?id=c-ssh-000",
            "/ui/releases", "/ui/actions", "/ui/rollouts", f"/ui/rollout?id={fleet.rollout}",
            f"/ui/rollout?id={fleet.approval}", "/ui/drone/revoke?id=f-idle", "/ui/drone/retry?id=f-rb"] + \
        [f"/ui/rollout/{a}?id={fleet.rollout}" for a in ROLLOUT_ACTIONS]


def test_pages_have_no_inline_script_or_style(fleet):
    for path in every_page(fleet):
        st, body, hdr = fleet.get(path)
        assert st == 200, path
        # every page: the strict policy, never cached, never framed
        assert hdr["Content-Security-Policy"] == CSP and hdr["Cache-Control"] == "no-store", path
        assert hdr["X-Frame-Options"] == "DENY", path
        doc = Doc(body)
        for s in doc.find_all("script"):
            assert s.attrs.get("src", "").startswith("/ui/static/app.js?v=") and not s.text().strip(), path
        assert not doc.find_all("style"), path
        assert not [n for n in doc.iter() if "style" in n.attrs or any(a.startswith("on") for a in n.attrs)], path
        assert b"javascript:" not in body
        # every external reference is one of ours
        for n in doc.iter():
            for a in ("src", "href", "action"):
                v = n.attrs.get(a)
                if v is not None:
                    assert v.startswith("/"), (path, a, v)


def test_static_files_are_versioned_and_cacheable(fleet):
    doc = fleet.page("/ui/")
    css = doc.find("link", rel="stylesheet").attrs["href"]
    js = doc.find("script").attrs["src"]
    st, body, hdr = fleet.get(css)
    assert st == 200 and hdr["Content-Type"] == "text/css; charset=utf-8" and b"--bg" in body
    assert "immutable" in hdr["Cache-Control"] and hdr["Content-Security-Policy"] == CSP
    st, body, hdr = fleet.get(js)
    assert st == 200 and hdr["Content-Type"] == "text/javascript; charset=utf-8" and b"use strict" in body
    st, _, _ = fleet.get("/ui/static/../../etc/passwd")
    assert st == 400
    st, body, _ = fleet.get("/ui/static/nothing.js")
    assert st == 404 and b"<!doctype html>" in body
    st, _, _ = fleet.get("/ui/nowhere")
    assert st == 404


# ---- every view says what the API says ----

def test_fleet_view_matches_the_api(fleet):
    now = int(time.time())
    drones = api_drones(fleet)
    doc = fleet.page("/ui/")
    want = {s: 0 for s in STATES}
    for d in drones.values():
        want[ui_state(d, now, fleet.silent_after)] += 1
    got = {c.attrs["data-state"]: int(c.find("span", class_="n").text()) for c in doc.find(id="states").find_all("li")}
    assert got == want
    assert want["failed"] >= 2 and want["silent"] >= 1 and want["blessed"] >= 1 and want["pending"] >= 1
    assert int(doc.find(id="total").text()) == len(drones)
    versions = {}
    for d in drones.values():
        if d["status"] != "revoked":
            versions[d["version"]] = versions.get(d["version"], 0) + 1
    rows = {tr.attrs["data-version"]: int(tr.find("td", class_="num").text()) for tr in doc.find(id="versions").find_all("tr") if "data-version" in tr.attrs}
    assert rows == versions
    assert HOSTILE in rows   # a hostile version is a row like any other, as text
    audit = {"compliant": 0, "failing": 0, "unevaluated": 0, "other-profile": 0, "unknown": 0}
    sb = {"enforced": 0, "foreign-keys": 0, "not-enforced": 0, "unknown": 0}
    for i, d in drones.items():
        if d["status"] == "revoked":
            continue
        c = fleet.api("/api/v1/drones/" + quote(i, safe="")).get("compliance") if i != HOSTILE else None
        a, b = (c or {}).get("audit"), (c or {}).get("secureboot")
        audit["unknown" if not a else "other-profile" if a["profile"] != "prod" else "failing" if a["fail"]
              else "unevaluated" if a["error"] else "compliant"] += 1
        sb["unknown" if not b else "not-enforced" if b["mode"] not in ("user", "deployed") else "enforced"
           if (b["pk"], b["kek"], b["db"]) == ("ok", "ok", "ok") else "foreign-keys"] += 1
    got = {tr.attrs["data-audit"]: int(tr.find("td", class_="num").text()) for tr in doc.find(id="audit").find_all("tr")}
    assert got == audit
    got = {tr.attrs["data-secureboot"]: int(tr.find("td", class_="num").text())
           for tr in doc.find(id="secureboot").find_all("tr")}
    assert got == sb
    assert audit["failing"] >= 1 and audit["compliant"] >= 10 and sb["not-enforced"] == 1
    # the drift cards are the drift report's counts, and agree with the two tables above
    drift = fleet.api("/api/v1/drift")
    got = {li.attrs["data-drift"]: int(li.find("span", class_="n").text()) for li in doc.find(id="drift").find_all("li")}
    assert got == drift["counts"]
    assert audit["compliant"] == drift["drones_total"] - drift["counts"]["audit"]
    assert sb["enforced"] == drift["drones_total"] - drift["counts"]["secureboot"]
    # the chart: drawn as SVG on the server, with a legend naming each version
    fig = doc.find("figure", class_="chart")
    assert fig and fig.find("path", class_="area") and "2.0" in fig.find("figcaption").text()


def test_drones_table_filters_sorts_and_pages(fleet):
    now = int(time.time())
    drones = api_drones(fleet)
    report = fleet.api("/api/v1/drift")

    def drift_of(kind):
        return {d["id"] for d in report["drones"] if kind in d["kinds"]}
    ids = sorted(drones)
    doc = fleet.page("/ui/drones")
    assert int(doc.find(id="count").attrs["data-total"]) == len(drones)
    rows = [tr.attrs["data-id"] for tr in doc.find(id="drones").find("tbody").find_all("tr")]
    assert rows == ids[:50]
    # each row links to its drone
    link = doc.find(id="drones").find("a", class_="drone")
    assert link.attrs["href"] == "/ui/drone?id=" + quote(ids[0], safe="")
    # page 2 holds the rest
    doc = fleet.page("/ui/drones?page=2")
    assert [tr.attrs["data-id"] for tr in doc.find(id="drones").find("tbody").find_all("tr")] == ids[50:100]
    assert doc.find("a", rel="prev") and doc.find("a", rel="first")
    # filters, as the API's list filtered here
    for query, pred in [
        ("version=2.0", lambda d: d["version"] == "2.0"),
        ("group=east", lambda d: d["group"] == "east"),
        ("state=failed", lambda d: ui_state(d, now, fleet.silent_after) == "failed"),
        ("state=silent&group=east", lambda d: ui_state(d, now, fleet.silent_after) == "silent" and d["group"] == "east"),
        ("q=F-", lambda d: "f-" in d["id"].lower() or "f-" in d["error"].lower()),
        ("q=health+gate", lambda d: "health gate" in d["error"]),
        ("q=%25%27+OR+1%3D1", lambda d: False),
        ("tag=lab", lambda d: d["id"] in ("c-ssh-000", "f-idle")),
        ("drift=audit&group=east", lambda d: d["id"] in drift_of("audit") and d["group"] == "east"),
        ("drift=secureboot", lambda d: d["id"] in drift_of("secureboot")),
        ("drift=silent&state=silent", lambda d: d["id"] in drift_of("silent") and ui_state(d, now, fleet.silent_after) == "silent"),
    ]:
        doc = fleet.page("/ui/drones?" + query + "&per=500")
        got = [tr.attrs["data-id"] for tr in doc.find(id="drones").find("tbody").find_all("tr") if "data-id" in tr.attrs]
        assert got == sorted(i for i, d in drones.items() if pred(d)), query
    # sort by last check-in, newest first; and by version
    doc = fleet.page("/ui/drones?sort=last_seen&dir=desc&per=500")
    got = [tr.attrs["data-id"] for tr in doc.find(id="drones").find("tbody").find_all("tr")]
    assert got == sorted(drones, key=lambda i: (drones[i]["last_seen"], i), reverse=True)
    doc = fleet.page("/ui/drones?sort=version&per=500")
    got = [tr.attrs["data-id"] for tr in doc.find(id="drones").find("tbody").find_all("tr")]
    assert got == sorted(drones, key=lambda i: (drones[i]["version"], i))
    # a malformed query string is refused, unknown values fall back to the defaults
    st, body, _ = fleet.get("/ui/drones?q=%zz")
    assert st == 400 and b"malformed" in body
    doc = fleet.page("/ui/drones?sort=nope&state=bogus&page=999999&per=3")
    assert int(doc.find(id="count").attrs["data-total"]) == len(drones)


def test_drone_view(fleet):
    d = fleet.api("/api/v1/drones/f-rb")
    doc = fleet.page("/ui/drone?id=f-rb")
    assert doc.find(id="drone-id").text() == "f-rb"
    assert doc.find(id="version").text() == d["version"]
    assert doc.find(id="error").text() == "health gate failed"
    # the timeline has every report of the history, newest first, then the last check-in on top
    assert doc.find(id="timeline").find("li").attrs["class"] == "k-checkin"
    items = doc.find(id="timeline").find_all("li", data_seq=True)
    assert [int(li.attrs["data-seq"]) for li in items] == [h["seq"] for h in d["history"]]
    assert items[0].attrs["class"] == "k-rollback"
    doc = fleet.page("/ui/drone?id=f-bless")
    assert [li.attrs["class"] for li in doc.find(id="timeline").find_all("li", data_seq=True)] == ["k-bless", "k-download"]
    # identity: the serial and expiry of the certificate the server issued at enrollment
    serial, not_after = cert_serial_and_expiry(fleet.enrolled_cert)
    doc = fleet.page("/ui/drone?id=drone-enrolled")
    assert doc.find(id="serial").text() == serial
    assert time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after)) in doc.find(id="expiry").text()
    # offline-issued certificates are not on record, and the page says so
    assert "not on record" in fleet.page("/ui/drone?id=f-idle").find(id="identity").text()
    st, body, _ = fleet.get("/ui/drone?id=nobody")
    assert st == 404 and b"No such drone" in body


def test_hostile_values_are_text(fleet):
    enc = quote(HOSTILE, safe="")
    for path in ("/ui/", "/ui/drones?group=east", f"/ui/drone?id={enc}", "/ui/drone?id=f-fail"):
        st, body, _ = fleet.get(path)
        assert st == 200, path
        assert b"<img" not in body and b"onerror=alert(1)>" not in body, path
    doc = fleet.page(f"/ui/drone?id={enc}")
    assert doc.find(id="drone-id").text() == HOSTILE
    assert doc.find(id="version").text() == HOSTILE and doc.find(id="error").text() == HOSTILE
    assert not doc.find_all("img")
    doc = fleet.page("/ui/drones?group=east")
    row = doc.find("tr", data_id=HOSTILE)
    assert row is not None and row.find("a", class_="drone").text() == HOSTILE
    assert row.find("a", class_="drone").attrs["href"] == "/ui/drone?id=" + enc.replace("%28", "%28")
    doc = fleet.page("/ui/drone?id=f-fail")
    assert doc.find(id="error").text() == HOSTILE + " & \"quotes\""


def test_releases_view_matches_the_api(fleet):
    rels = fleet.api("/api/v1/releases")
    doc = fleet.page("/ui/releases")
    rows = {int(tr.attrs["data-release"]): tr for tr in doc.find(id="releases").find_all("tr") if "data-release" in tr.attrs}
    assert sorted(rows) == [r["id"] for r in rels]
    for r in rels:
        tr = rows[r["id"]]
        assert tr.find("td", class_="version").text() == r["version"]
        assert r["compatible"] in tr.text() and tr.find("td", class_="signer").text() == r["signer"]
        assert tr.find("td", class_="assigned").text() == r["assigned"]   # drones a rollout handed it too
        # what the signed manifest said, recorded at upload
        assert [p["name"] for p in r["payloads"]] == ["rootfs"] and r["expires"] > r["built"] > 0
        assert "rootfs" in tr.find("ul", class_="payloads").text()
        assert time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r["expires"])) in str(
            [t.attrs.get("title") for t in tr.find("td", class_="expires").find_all("time")])
    assert "group:west" in rows[2].find("td", class_="assigned").text().split()


# ---- state changes: POST, CSRF, confirmation, the action log ----

def csrf_of(fleet, path, ctx=None):
    form = fleet.page(path, ctx).find("form", class_="confirm")
    return form.find("input", name="csrf").attrs["value"], form


def test_revoke_needs_a_token_made_for_this_operator(fleet):
    d = fleet.drone("f-victim", "west")
    d.checkin()
    token, form = csrf_of(fleet, "/ui/drone/revoke?id=f-victim")
    assert form.attrs["action"] == "/ui/drone/revoke" and form.attrs["method"] == "post"
    assert form.find("input", name="id").attrs["value"] == "f-victim"
    bob_token, _ = csrf_of(fleet, "/ui/drone/revoke?id=f-victim", fleet.bob)
    expired = "1000." + token.split(".")[1]
    for fields, ctx in [({"id": "f-victim", "confirm": "yes"}, None),                      # no token
                        ({"id": "f-victim", "confirm": "yes", "csrf": "x"}, None),          # malformed
                        ({"id": "f-victim", "confirm": "yes", "csrf": expired}, None),      # forged expiry
                        ({"id": "f-victim", "confirm": "yes", "csrf": bob_token}, None),    # bob's token, alice's cert
                        ({"id": "f-victim", "confirm": "yes", "csrf": token}, fleet.bob)]:  # alice's token, bob's cert
        st, body, hdr = fleet.post("/ui/drone/revoke", fields, ctx)
        assert st == 403 and b"Nothing was changed" in body and hdr["Content-Security-Policy"] == CSP
    # the confirmation is part of the form; a GET changes nothing
    st, _, _ = fleet.post("/ui/drone/revoke", {"id": "f-victim", "csrf": token})
    assert st == 400
    st, _, _ = fleet.get("/ui/drone/revoke?id=f-victim&confirm=yes&csrf=" + quote(token))
    assert st == 200
    assert fleet.api("/api/v1/drones/f-victim")["status"] != "revoked"
    d.checkin()
    # the right token: 303 back to the drone, which is revoked from its next request on
    st, _, hdr = fleet.post("/ui/drone/revoke", {"id": "f-victim", "confirm": "yes", "csrf": token})
    assert st == 303 and hdr["Location"] == "/ui/drone?id=f-victim&done=revoked"
    assert fleet.api("/api/v1/drones/f-victim")["status"] == "revoked"
    st, _, _ = request(fleet.srv.port, d.ctx, "POST", "/api/v1/checkin", body=b'{"state":"idle"}')
    assert st == 403
    doc = fleet.page(hdr["Location"])
    assert "Revoked" in doc.find("p", class_="notice").text()
    # every attempt is in the action log, with who, what, when and the answer
    log = fleet.api("/api/v1/actions?target=drone%3Af-victim")
    assert [a["status"] for a in log["actions"]][:7] == [303, 400, 403, 403, 403, 403, 403]
    ok = log["actions"][0]
    serial, _ = cert_serial_and_expiry(fleet.pki.dir / "op" / "alice.pem")
    assert ok["operator"] == "alice" and ok["serial"] == serial and ok["detail"] == "revoke drone"
    assert abs(ok["time"] - time.time()) < 60 and ok["path"] == "/ui/drone/revoke"
    assert log["actions"][2]["operator"] == "bob"
    assert "CSRF" in log["actions"][2]["detail"]
    # and shown on the drone's page and in the log view
    doc = fleet.page("/ui/drone?id=f-victim")
    assert "revoke drone" in doc.find("table", class_="log").text()
    doc = fleet.page("/ui/actions")
    first = doc.find("table", class_="log").find("tbody").find("tr")
    assert "revoke drone" in first.text() and "alice" in first.text() and serial in first.text()


def test_every_post_needs_a_token(fleet):
    """Each state-changing route of the dashboard, without a token and with a forged one: 403, nothing done."""
    before = (fleet.api(f"/api/v1/rollouts/{fleet.rollout}"), fleet.api(f"/api/v1/rollouts/{fleet.approval}"),
              fleet.api("/api/v1/drones/f-rb"))
    good, _ = csrf_of(fleet, "/ui/drone/revoke?id=f-idle")
    forged = good.split(".")[0] + "." + "0" * 64
    posts = [("/ui/drone/revoke", "f-rb"), ("/ui/drone/retry", "f-rb")] + \
        [(f"/ui/rollout/{a}", str(fleet.approval if a == "approve" else fleet.rollout)) for a in ROLLOUT_ACTIONS]
    for path, subject in posts:
        for extra in ({}, {"csrf": forged}, {"csrf": ""}):
            ctx = fleet.bob if path.endswith("approve") else None   # bob could approve: only the token stops him
            st, body, _ = fleet.post(path, {"id": subject, "confirm": "yes", **extra}, ctx)
            assert st == 403 and b"Form expired" in body, (path, extra, st)
    after = (fleet.api(f"/api/v1/rollouts/{fleet.rollout}"), fleet.api(f"/api/v1/rollouts/{fleet.approval}"),
             fleet.api("/api/v1/drones/f-rb"))
    for b, a in zip(before, after):
        for k in ("state", "status", "approved_by", "reason", "version"):
            assert b.get(k) == a.get(k), k
    refused = fleet.api(f"/api/v1/actions?limit={3 * len(posts)}")["actions"]
    assert all(a["status"] == 403 and "CSRF" in a["detail"] for a in refused)
    assert {a["path"] for a in refused} == {p for p, _ in posts}


def test_action_log_records_the_command_line_too(fleet):
    before = fleet.api("/api/v1/actions")["total"]
    fleet.srv.op("enroll", "f-cli", "--group", "west")
    fleet.srv.op("revoke", "f-cli")
    log = fleet.api("/api/v1/actions?limit=2")
    assert log["total"] == before + 2
    assert [(a["detail"], a["target"], a["status"]) for a in log["actions"]] == [
        ("revoke drone", "drone:f-cli", 200), ("register drone in group west", "drone:f-cli", 201)]
    assert fleet.api("/api/v1/actions?limit=1&offset=1")["actions"][0]["detail"] == "register drone in group west"
    st, _, _ = fleet.get("/api/v1/actions?limit=0")
    assert st == 400


def test_drone_compliance_drift_and_remediation(fleet):
    c = fleet.api("/api/v1/drones/c-ssh-000/compliance")
    doc = fleet.page("/ui/drone?id=c-ssh-000")
    failing = {li.attrs["data-check"]: li for li in doc.find(id="failing").find_all("li")}
    assert sorted(failing) == sorted(c["last"]["audit"]["failing"]) == ["LOG-001", "SVC-001"]
    # each failing check with its title and the catalogue's remediation text
    assert "No SSH service unit" in failing["SVC-001"].text()
    assert failing["SVC-001"].find("div", class_="remedy").text() == "Fix: services.openssh.enable = false."
    assert doc.find(id="secureboot").text() == "mode deployed · PK ok · KEK ok · db ok"
    drift = {d["id"]: d for d in fleet.api("/api/v1/drift")["drones"]}["c-ssh-000"]
    got = {div.attrs["data-drift"] for div in doc.find(id="drift").find_all("div")}
    assert got == set(drift["kinds"]) and "audit" in got
    assert drift["audit"] in doc.find(id="drift").text()
    assert [a.text() for a in doc.find(id="tags").find_all("a")] == ["lab"]
    # the timeline has each audit the drone sent, newest first, with its failing IDs
    audits = doc.find(id="timeline").find_all("li", data_audit_time=True)
    assert [int(li.attrs["data-audit-time"]) for li in audits] == [h["time"] for h in c["history"]]
    assert "SVC-001" in audits[0].text() and "LOG-001" in audits[0].text() and "LOG-001" not in audits[1].text()
    assert audits[0].attrs["class"] == "k-audit-fail"
    doc = fleet.page("/ui/drone?id=c-clean-000")
    assert doc.find(id="drift").text().strip() == "none" and doc.find(id="failing") is None
    doc = fleet.page("/ui/drone?id=c-nosb-000")
    assert "mode setup (not enforced)" in doc.find(id="drift").text()


def test_drone_retry(fleet):
    d = fleet.drone("f-rb2", "west")   # group west has release 2 assigned
    assert d.checkin()["assignment"].get("retry", 0) == 0
    d.report("rolled-back", "1.0", release=2, target="2.0", error="health gate failed: disk full")
    doc = fleet.page("/ui/drone?id=f-rb2")
    link = doc.find("a", href="/ui/drone/retry?id=f-rb2")
    assert link is not None and "data-confirm" in link.attrs
    assert fleet.page("/ui/drone?id=f-idle").find("a", href="/ui/drone/retry?id=f-idle") is None
    token, form = csrf_of(fleet, "/ui/drone/retry?id=f-rb2")
    assert "disk full" in fleet.page("/ui/drone/retry?id=f-rb2").find("main").text()
    st, _, hdr = fleet.post("/ui/drone/retry", {"id": "f-rb2", "confirm": "yes", "csrf": token})
    assert st == 303 and hdr["Location"] == "/ui/drone?id=f-rb2&done=retried"
    # the drone sees a higher retry generation at its next check-in: its agent tries the release again
    assert d.checkin()["assignment"]["retry"] == 1
    log = fleet.api("/api/v1/actions?target=drone%3Af-rb2&limit=1")["actions"][0]
    assert log["status"] == 303 and "retry" in log["detail"]


def rollout_running(fleet):
    """The shared running rollout, running again if a test before this one (on this worker) left it paused."""
    if fleet.api(f"/api/v1/rollouts/{fleet.rollout}")["state"] == "paused":
        fleet.api_call("POST", f"/api/v1/rollouts/{fleet.rollout}/resume", {}, expect=200)
    return fleet.rollout


def rollout_groups(doc):
    return [{k: int(li.attrs["data-" + k]) for k in ("group", "blessed", "failed", "in-flight", "pending")}
            for li in doc.find(id="groups").find_all("li", class_="group")]


def test_rollout_views_match_the_api(fleet):
    rollout_running(fleet)
    rollouts = fleet.api("/api/v1/rollouts")
    doc = fleet.page("/ui/rollouts")
    rows = {int(tr.attrs["data-rollout"]): tr for tr in doc.find(id="rollouts").find_all("tr") if "data-rollout" in tr.attrs}
    assert sorted(rows) == [r["id"] for r in rollouts]
    for r in rollouts:
        assert r["state"] in rows[r["id"]].find("span", class_="badge").text()
    ro = fleet.api(f"/api/v1/rollouts/{fleet.rollout}")
    assert ro["state"] == "running" and ro["current_group"] == 2
    doc = fleet.page(f"/ui/rollout?id={fleet.rollout}")
    assert doc.find(id="state").attrs["data-state"] == "running"
    assert rollout_groups(doc) == [{"group": g["group"], "blessed": g["blessed"], "failed": g["failed"],
                                    "in-flight": g["in_flight"], "pending": g["pending"]} for g in ro["groups"]]
    g1, g2 = doc.find(id="groups").find_all("li", class_="group")
    assert "completed" in g1.attrs["class"] and "current" in g2.attrs["class"]
    assert "2 of 2 blessed needed" in g1.find("div", class_="success").text() and "met" in g1.text()
    need = ro["groups"][1]["size"]
    assert f"{ro['groups'][1]['blessed']} of {need} blessed needed" in g2.find("div", class_="success").text()
    assert "0 of 3 failures pause the rollout" in g2.find("div", class_="error").text()
    # the chart of members over time, and the members in flight listed with links
    fig = doc.find("figure", class_="chart")
    legend = fig.find("figcaption").text()
    blessed = sum(g["blessed"] for g in ro["groups"])
    assert f"blessed {blessed}" in legend
    flying = {m["drone"] for m in ro["members"] if m["state"] not in ("pending", "blessed")}
    assert flying and {tr.attrs["data-member"] for tr in doc.find(id="members").find_all("tr", data_member=True)} == flying
    # what is offered: pause and abort, not resume or approve
    offered = {a.attrs["data-action"] for a in doc.find(id="rollout-actions").find_all("a", data_action=True)}
    assert offered == {"pause", "abort"}
    doc = fleet.page(f"/ui/rollout?id={fleet.approval}")
    offered = {a.attrs["data-action"] for a in doc.find(id="rollout-actions").find_all("a", data_action=True)}
    assert offered == {"abort"}   # alice created it: she cannot approve it
    doc = fleet.page(f"/ui/rollout?id={fleet.approval}", fleet.bob)
    offered = {a.attrs["data-action"] for a in doc.find(id="rollout-actions").find_all("a", data_action=True)}
    assert offered == {"approve", "abort"}
    st, _, _ = fleet.get("/ui/rollout?id=999")
    assert st == 404


def test_rollout_actions_need_a_token_and_confirmation(fleet):
    rid = rollout_running(fleet)
    token, form = csrf_of(fleet, f"/ui/rollout/pause?id={rid}")
    assert form.attrs["action"] == "/ui/rollout/pause"
    st, body, _ = fleet.post("/ui/rollout/pause", {"id": rid, "confirm": "yes"})
    assert st == 403 and fleet.api(f"/api/v1/rollouts/{rid}")["state"] == "running"
    st, _, hdr = fleet.post("/ui/rollout/pause", {"id": rid, "confirm": "yes", "csrf": token})
    assert st == 303 and hdr["Location"] == f"/ui/rollout?id={rid}&done=pause"
    ro = fleet.api(f"/api/v1/rollouts/{rid}")
    assert ro["state"] == "paused" and "alice" in ro["reason"]
    doc = fleet.page(hdr["Location"])
    assert "Pause" in doc.find("p", class_="notice").text() and doc.find(id="state").attrs["data-state"] == "paused"
    # pausing again is refused by the store, with its reason, and nothing changes
    st, body, _ = fleet.post("/ui/rollout/pause", {"id": rid, "confirm": "yes", "csrf": token})
    assert st == 409 and b"Refused" in body
    token, _ = csrf_of(fleet, f"/ui/rollout/resume?id={rid}")
    st, _, _ = fleet.post("/ui/rollout/resume", {"id": rid, "confirm": "yes", "csrf": token})
    assert st == 303 and fleet.api(f"/api/v1/rollouts/{rid}")["state"] == "running"
    # approval: not by its creator; by another operator, with that operator's own token
    ap = fleet.approval
    token, _ = csrf_of(fleet, f"/ui/rollout/approve?id={ap}")
    st, body, _ = fleet.post("/ui/rollout/approve", {"id": ap, "confirm": "yes", "csrf": token})
    assert st == 403 and b"cannot approve it" in body and "approved_by" not in fleet.api(f"/api/v1/rollouts/{ap}")
    bob_token, _ = csrf_of(fleet, f"/ui/rollout/approve?id={ap}", fleet.bob)
    st, _, _ = fleet.post("/ui/rollout/approve", {"id": ap, "confirm": "yes", "csrf": token}, fleet.bob)
    assert st == 403   # alice's token in bob's request
    st, _, hdr = fleet.post("/ui/rollout/approve", {"id": ap, "confirm": "yes", "csrf": bob_token}, fleet.bob)
    assert st == 303 and fleet.api(f"/api/v1/rollouts/{ap}")["approved_by"] == "bob"
    token, _ = csrf_of(fleet, f"/ui/rollout/abort?id={ap}")
    st, _, _ = fleet.post("/ui/rollout/abort", {"id": ap, "confirm": "yes", "csrf": token})
    assert st == 303 and fleet.api(f"/api/v1/rollouts/{ap}")["state"] == "aborted"
    log = fleet.api(f"/api/v1/actions?target=rollout%3A{ap}")["actions"]
    assert [(a["operator"], a["detail"].split(":")[0], a["status"]) for a in log[:4]] == [
        ("alice", "abort rollout", 303), ("bob", "approve rollout", 303), ("bob", "refused", 403),
        ("alice", "approve rollout", 403)]


# ---- in a real browser: Debian's headless Chromium, the operator's certificate in its NSS database ----

from browser import Browser, available, make_nssdb  # noqa: E402


def browser_for(fleet, name, cert=None, key=None, subject=None):
    """A Chromium whose NSS database trusts the fleet CA and holds (cert, key), chosen for the fleet's
    origin without asking when subject (its CN) is given."""
    assert available(), "Chromium and certutil/pk12util are needed: scripts/deps.sh test installs them"
    home = fleet.dir / f"home-{name}"
    make_nssdb(home, fleet.pki.ca, cert, key, nickname=subject or "none")
    auto = [(fleet.srv.url, subject, "ringil device CA")] if subject else []
    return Browser(home, fleet.dir / f"profile-{name}", auto_select=auto)


@pytest.fixture(scope="module")
def chromium(fleet):
    b = browser_for(fleet, "alice", fleet.pki.dir / "op" / "alice.pem", fleet.pki.dir / "op" / "alice.key", "alice")
    yield b
    b.close()


def clean(page):
    """Nothing the page did that a hostile value could have caused: no dialog, no blocked script or style."""
    w = page.watch()
    assert page.dialogs == [] and w["csp"] == [], (page.dialogs, w)


def dom_ids(page, table="drones"):
    return page.eval(f"Array.from(document.querySelectorAll('#{table} tbody tr[data-id]')).map(r => r.dataset.id)")


@pytest.mark.slow
def test_browser_shows_every_view_as_the_api_says(fleet, chromium, tmp_path):
    shots = results_dir(tmp_path)
    page = chromium.new_page()
    now = int(time.time())
    drones = api_drones(fleet)
    base = fleet.srv.url

    assert page.goto(base + "/ui/") == ""
    clean(page)
    cards = page.eval("Object.fromEntries(Array.from(document.querySelectorAll('#states li.card'))"
                      ".map(c => [c.dataset.state, +c.querySelector('.n').textContent]))")
    want = {s: 0 for s in STATES}
    for d in drones.values():
        want[ui_state(d, now, fleet.silent_after)] += 1
    assert cards == want
    assert page.eval("document.querySelectorAll('figure.chart path.area').length") >= 2
    assert page.eval("getComputedStyle(document.querySelector('header')).display") == "flex"   # the stylesheet applied
    page.screenshot(shots / "ui-fleet.png")

    # drones: page 1, the next page by its link, then a filter through the form
    assert page.goto(base + "/ui/drones") == ""
    clean(page)
    ids = sorted(drones)
    assert dom_ids(page) == ids[:50]
    page.screenshot(shots / "ui-drones.png")
    page.click("a[rel=next]")
    assert dom_ids(page) == ids[50:100]
    page.goto(base + "/ui/drones")
    page.eval("document.querySelector('select[name=state]').value = 'failed'")
    page.click(".filters button[type=submit]")
    assert page.eval("location.search") == "?q=&version=&group=&state=failed&tag=&drift="
    assert dom_ids(page) == sorted(i for i, d in drones.items() if ui_state(d, now, fleet.silent_after) == "failed")

    # one drone, reached by its row's link
    page.goto(base + "/ui/drones?q=f-rb")
    page.click("#drones a.drone")
    assert page.eval("location.pathname + location.search") == "/ui/drone?id=f-rb"
    clean(page)
    hist = fleet.api("/api/v1/drones/f-rb")["history"]
    assert page.eval("Array.from(document.querySelectorAll('#timeline li[data-seq]')).map(l => +l.dataset.seq)") == \
        [h["seq"] for h in hist]
    assert page.text("#error") == "health gate failed"
    page.goto(base + "/ui/drone?id=drone-enrolled")
    serial, _ = cert_serial_and_expiry(fleet.enrolled_cert)
    assert page.text("#serial") == serial
    page.screenshot(shots / "ui-drone.png")

    rels = fleet.api("/api/v1/releases")
    assert page.goto(base + "/ui/releases") == ""
    clean(page)
    assert page.eval("Array.from(document.querySelectorAll('#releases td.version')).map(t => t.textContent)") == \
        [r["version"] for r in reversed(rels)]
    page.screenshot(shots / "ui-releases.png")

    log = fleet.api("/api/v1/actions?limit=50")
    assert page.goto(base + "/ui/actions") == ""
    clean(page)
    assert page.eval("Array.from(document.querySelectorAll('table.log tbody tr')).map(r => +r.dataset.action)") == \
        [a["id"] for a in log["actions"]]
    page.screenshot(shots / "ui-actions.png")


@pytest.mark.slow
def test_browser_shows_a_hostile_id_as_text(fleet, chromium):
    page = chromium.new_page()
    assert page.goto(fleet.srv.url + "/ui/drones?group=east&per=500") == ""
    link = f"document.querySelector('#drones tr[data-id=\"{HOSTILE}\"] a.drone')"
    assert page.eval(f"{link}.textContent") == HOSTILE
    assert page.eval("document.querySelectorAll('main img').length") == 0
    page.click(f"#drones tr[data-id=\"{HOSTILE}\"] a.drone")
    assert page.text("#drone-id") == HOSTILE and page.text("#version") == HOSTILE and page.text("#error") == HOSTILE
    assert page.eval("document.querySelectorAll('img').length") == 0
    page.goto(fleet.srv.url + "/ui/drone?id=f-fail")
    assert page.text("#error") == HOSTILE + " & \"quotes\""
    page.b.drain(0.5)   # a script that ran would have opened its dialog by now
    page._collect_dialogs()
    clean(page)


@pytest.mark.slow
def test_browser_revokes_after_a_confirmation(fleet, chromium):
    for name in ("f-js", "f-nojs"):
        fleet.drone(name, "west").checkin()
    page = chromium.new_page()
    # with JavaScript: the confirmation opens in a dialog on the drone's page
    page.goto(fleet.srv.url + "/ui/drone?id=f-js")
    page.click("a[data-confirm]", navigates=False)
    page.wait_for("document.querySelector('dialog[open] form.confirm') !== null")
    assert "Revoke drone" in page.text("dialog[open] h1")
    assert fleet.api("/api/v1/drones/f-js")["status"] != "revoked"
    page.click("dialog[open] form.confirm button[type=submit]")
    assert page.eval("location.search") == "?id=f-js&done=revoked"
    assert "Revoked" in page.text("p.notice")
    assert fleet.api("/api/v1/drones/f-js")["status"] == "revoked"
    clean(page)
    # without JavaScript (the page's own scripts are off; the test's evaluations still run): the same
    # through the confirmation page
    page.send("Emulation.setScriptExecutionDisabled", {"value": True})
    page.goto(fleet.srv.url + "/ui/drone?id=f-nojs")
    page.click("a[data-confirm]")
    assert page.eval("location.pathname + location.search") == "/ui/drone/revoke?id=f-nojs"
    assert fleet.api("/api/v1/drones/f-nojs")["status"] != "revoked"
    page.click("form.confirm button[type=submit]")
    assert page.eval("location.search") == "?id=f-nojs&done=revoked"
    page.send("Emulation.setScriptExecutionDisabled", {"value": False})
    assert fleet.api("/api/v1/drones/f-nojs")["status"] == "revoked"
    actions = fleet.api("/api/v1/actions?limit=2")["actions"]
    assert [(a["target"], a["operator"], a["status"]) for a in actions] == [("drone:f-nojs", "alice", 303),
                                                                          ("drone:f-js", "alice", 303)]


@pytest.mark.slow
def test_browser_without_an_operator_certificate_is_refused(fleet):
    # no client certificate at all: the fleet port's TLS handshake fails, Chromium shows its error page
    # (ERR_BAD_SSL_CLIENT_AUTH_CERT when it reads the server's alert; on a loaded machine it can see the
    # closed socket first), and the server counts the handshake as refused for want of a certificate
    def refused():
        _, body, _ = fleet.get("/metrics")
        return int(re.search(rb'ringil_connections_refused_total\{reason="no_certificate"\} (\d+)', body).group(1))
    before = refused()
    b = browser_for(fleet, "nocert")
    try:
        page = b.new_page()
        assert page.goto(fleet.srv.url + "/ui/") in ("net::ERR_BAD_SSL_CLIENT_AUTH_CERT", "net::ERR_SOCKET_NOT_CONNECTED",
                                                      "net::ERR_CONNECTION_RESET")
        assert page.eval("document.querySelectorAll('main').length") == 0
    finally:
        b.close()
    assert refused() > before
    # a drone's certificate: the server answers 403
    d = fleet.dir / "drones" / "f-idle"
    b = browser_for(fleet, "drone", d / "f-idle.pem", d / "f-idle.key", "f-idle")
    try:
        page = b.new_page()
        assert page.goto(fleet.srv.url + "/ui/") == ""
        assert "operator credential required" in page.eval("document.body.textContent")
        assert page.eval("document.querySelectorAll('main').length") == 0
    finally:
        b.close()


@pytest.mark.slow
def test_browser_read_only_views_work_without_javascript(fleet, chromium):
    """With the page's scripts off (the test's own evaluations still run): every view shows its content, links
    and the filter form work, and a rollout action goes through the confirmation page."""
    page = chromium.new_page()
    base = fleet.srv.url
    page.send("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        drones = api_drones(fleet)
        summary_total = len(drones)
        assert page.goto(base + "/ui/") == ""
        assert int(page.text("#total")) == summary_total
        assert page.eval("document.querySelectorAll('#states li.card').length") == len(STATES)
        assert page.eval("document.querySelectorAll('figure.chart svg path.area').length") >= 2
        # the live-refresh label is app.js's to change: untouched, so no script of the page ran
        assert page.text("[data-live]") == "updates every 15 s"
        # a drift card's link, then the filter form (a plain GET form) and a sort link
        page.click("#drift li[data-drift=audit] a")
        want = sorted(d["id"] for d in fleet.api("/api/v1/drift")["drones"] if "audit" in d["kinds"])
        assert page.eval("location.search") == "?drift=audit" and dom_ids(page) == want[:50]
        page.eval("document.querySelector('select[name=group]').value = 'east'")
        page.click(".filters button[type=submit]")
        assert page.eval("location.search") == "?q=&version=&group=east&state=&tag=&drift=audit"
        assert dom_ids(page) == sorted(i for i in want if drones[i]["group"] == "east")
        page.goto(base + "/ui/drones?tag=lab")
        assert dom_ids(page) == ["c-ssh-000", "f-idle"]
        # one drone: its timeline, failing checks and remediation
        page.click("#drones a.drone")
        assert page.eval("location.search") == "?id=c-ssh-000"
        assert page.eval("Array.from(document.querySelectorAll('#failing li')).map(l => l.dataset.check)") == \
            ["SVC-001", "LOG-001"]
        assert page.eval("document.querySelectorAll('#timeline li[data-audit-time]').length") == 2
        assert page.goto(base + "/ui/releases") == ""
        assert page.eval("document.querySelectorAll('#releases td.version').length") == len(fleet.api("/api/v1/releases"))
        assert page.goto(base + "/ui/actions") == ""
        assert page.eval("document.querySelectorAll('table.log tbody tr').length") >= 1
        # rollouts: the list links to the rollout; its groups, chart and conditions are there
        assert page.goto(base + "/ui/rollouts") == ""
        rid = fleet.rollout
        page.click(f"#rollouts tr[data-rollout=\"{rid}\"] a")
        ro = fleet.api(f"/api/v1/rollouts/{rid}")
        assert page.eval("document.querySelector('#state').dataset.state") == ro["state"]
        assert page.eval("document.querySelectorAll('#groups li.group').length") == len(ro["groups"])
        assert page.eval("document.querySelectorAll('figure.chart').length") == 1
        assert page.eval("document.querySelectorAll('figure.chart path.area').length") >= 1
        assert "blessed needed" in page.text("#groups")
        # an action without script: the link leads to the confirmation page, whose form posts it
        action, after = ("pause", "paused") if ro["state"] == "running" else ("resume", "running")
        page.click(f"a[data-action={action}]")
        assert page.eval("location.pathname + location.search") == f"/ui/rollout/{action}?id={rid}"
        assert fleet.api(f"/api/v1/rollouts/{rid}")["state"] == ro["state"]
        page.click("form.confirm button[type=submit]")
        assert page.eval("location.search") == f"?id={rid}&done={action}"
        assert fleet.api(f"/api/v1/rollouts/{rid}")["state"] == after
        assert page.eval("document.querySelector('#state').dataset.state") == after
    finally:
        page.send("Emulation.setScriptExecutionDisabled", {"value": False})
    clean(page)
    if after == "paused":   # leave it running, as the next test expects
        token, _ = csrf_of(fleet, f"/ui/rollout/resume?id={rid}")
        assert fleet.post("/ui/rollout/resume", {"id": rid, "confirm": "yes", "csrf": token})[0] == 303


@pytest.mark.slow
def test_browser_pauses_a_running_rollout(fleet, chromium, tmp_path):
    shots = results_dir(tmp_path)
    page = chromium.new_page()
    base = fleet.srv.url
    rid = rollout_running(fleet)
    assert page.goto(base + "/ui/rollouts") == ""
    clean(page)
    assert page.eval("Array.from(document.querySelectorAll('#rollouts tr[data-rollout]')).map(r => +r.dataset.rollout)") \
        == sorted((r["id"] for r in fleet.api("/api/v1/rollouts")), reverse=True)
    page.screenshot(shots / "ui-rollouts.png")
    page.click(f"#rollouts tr[data-rollout=\"{rid}\"] a")
    assert page.eval("location.search") == f"?id={rid}"
    clean(page)
    ro = fleet.api(f"/api/v1/rollouts/{rid}")
    assert ro["state"] == "running"
    groups = page.eval("Array.from(document.querySelectorAll('#groups li.group')).map(g => "
                       "[+g.dataset.blessed, +g.dataset.failed, +g.dataset.inFlight, +g.dataset.pending])")
    assert groups == [[g["blessed"], g["failed"], g["in_flight"], g["pending"]] for g in ro["groups"]]
    assert page.eval("document.querySelectorAll('#groups meter').length") >= 4
    page.screenshot(shots / "ui-rollout.png")
    # pause: the button opens the confirmation in a dialog; confirming posts it
    page.click("a[data-action=pause]", navigates=False)
    page.wait_for("document.querySelector('dialog[open] form.confirm') !== null")
    assert "Pause rollout" in page.text("dialog[open] h1")
    assert fleet.api(f"/api/v1/rollouts/{rid}")["state"] == "running"
    page.click("dialog[open] form.confirm button[type=submit]")
    assert page.eval("location.search") == f"?id={rid}&done=pause"
    assert page.eval("document.querySelector('#state').dataset.state") == "paused"
    ro = fleet.api(f"/api/v1/rollouts/{rid}")
    assert ro["state"] == "paused" and "paused by alice" in ro["reason"]
    assert page.eval("Array.from(document.querySelectorAll('#rollout-actions a[data-action]')).map(a => a.dataset.action)") \
        == ["resume", "abort"]
    clean(page)
