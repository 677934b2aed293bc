"""test_keys.py: `ringil keys` against openssl, efitools and a fake efivarfs directory.

The RSA-4096 bundle is generated once per session (keygen is slow, more so under ASan); tests that
need to modify a bundle work on a copy.
"""
import datetime
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import uuid

import pytest

GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
SECDB = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
X509_GUID = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072"
PKCS7_GUID = "4aafd29d-68df-49ee-8aa9-347d375665a7"
NAMES = ("PK", "KEK", "db")
CN = {"PK": "Platform Key", "KEK": "Key Exchange Key", "db": "Database Key"}
VENDOR = {"PK": GLOBAL, "KEK": GLOBAL, "db": SECDB}
SIGNER = {"PK": "PK", "KEK": "PK", "db": "KEK"}
TIME = "2026-03-04T05:06:07Z"


def sh(*args, check=True, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed: {p.stderr.decode(errors='replace')}")
    return p


def guid_bytes(s):
    return uuid.UUID(s).bytes_le


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def content_info(signed_data):
    """Wrap a bare SignedData (what .auth carries) in a ContentInfo so openssl can read it."""
    oid = bytes.fromhex("06092a864886f70d010702")
    explicit = b"\xa0" + der_len(len(signed_data)) + signed_data
    body = oid + explicit
    return b"\x30" + der_len(len(body)) + body


def split_auth(data):
    assert len(data) >= 40
    dw_len, rev, ctype = struct.unpack_from("<IHH", data, 16)
    assert rev == 0x0200 and ctype == 0x0EF1
    assert data[24:40] == guid_bytes(PKCS7_GUID)
    return data[:16], data[40:16 + dw_len], data[16 + dw_len:]


def signed_bytes(name, vendor, efi_time, esl, attrs=0x27):
    return name.encode("utf-16-le") + guid_bytes(vendor) + struct.pack("<I", attrs) + efi_time + esl


def smime_verify(tmp, sig_der, content, ca):
    (tmp / "sig.der").write_bytes(sig_der)
    (tmp / "content.bin").write_bytes(content)
    return sh("openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", tmp / "sig.der",
              "-content", tmp / "content.bin", "-CAfile", ca, "-purpose", "any", "-out", "/dev/null",
              check=False)


def tree_hashes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


@pytest.fixture(scope="session")
def bundle(ringil, tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    d = base / "bundle"
    p = ringil("keys", "create", "--dir", d, check=0, timeout=600)
    out = base / "export"
    ringil("keys", "export", "--dir", d, "--output-dir", out, "--time", TIME, check=0)
    return {"dir": d, "out": out, "create": p}


def pem(bundle, name, ext="pem"):
    return bundle["dir"] / "keys" / name / f"{name}.{ext}"


# --- create --------------------------------------------------------------------------------------

def test_create_output_and_guid(bundle):
    g = (bundle["dir"] / "GUID").read_bytes()
    assert len(g) == 36 and b"\n" not in g
    s = g.decode()
    assert s == s.lower()
    u = uuid.UUID(s)
    assert u.version == 4 and u.variant == uuid.RFC_4122
    assert f"Created Owner UUID {s}" in bundle["create"].out
    assert "Secure boot keys created!" in bundle["create"].out
    assert stat.S_IMODE(os.stat(bundle["dir"] / "GUID").st_mode) == 0o644


def test_create_modes(bundle):
    d = bundle["dir"]
    for sub in (d, d / "keys", *(d / "keys" / n for n in NAMES)):
        assert stat.S_IMODE(os.stat(sub).st_mode) == 0o700, sub
    for n in NAMES:
        for ext in ("key", "pem"):
            st = os.lstat(pem(bundle, n, ext))
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o400
    # No staging leftovers.
    assert sorted(os.listdir(d)) == ["GUID", "keys"]
    assert sorted(os.listdir(d / "keys")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_private_key(bundle, name):
    k = pem(bundle, name, "key")
    text = k.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----\n")   # PKCS#8, unencrypted
    assert "ENCRYPTED" not in text and "RSA PRIVATE KEY" not in text
    info = sh("openssl", "pkey", "-in", k, "-noout", "-text").stdout.decode()
    assert "Private-Key: (4096 bit" in info
    assert "publicExponent: 65537 (0x10001)" in info
    # The key belongs to the certificate.
    pub1 = sh("openssl", "pkey", "-in", k, "-pubout").stdout
    pub2 = sh("openssl", "x509", "-in", pem(bundle, name), "-noout", "-pubkey").stdout
    assert pub1 == pub2


@pytest.mark.parametrize("name", NAMES)
def test_certificate(bundle, name):
    c = pem(bundle, name)
    assert c.read_text().startswith("-----BEGIN CERTIFICATE-----\n")
    text = sh("openssl", "x509", "-in", c, "-noout", "-text").stdout.decode()
    assert "Version: 3 (0x2)" in text
    assert text.count("Signature Algorithm: sha256WithRSAEncryption") == 2
    assert f"Subject: CN = {CN[name]}\n" in text
    assert f"Issuer: CN = {CN[name]}\n" in text
    assert "Public-Key: (4096 bit)" in text
    assert "X509v3 extensions" not in text
    # Self-signed: verifies against itself.
    sh("openssl", "verify", "-CAfile", c, "-partial_chain", c)
    serial = int(sh("openssl", "x509", "-in", c, "-noout", "-serial").stdout.decode().split("=")[1], 16)
    assert 0 < serial < 2 ** 128 and serial.bit_length() > 64
    # DER: the serial INTEGER is positive (no leading 0xff padding trick), at most 17 octets.
    asn = sh("openssl", "asn1parse", "-in", c).stdout.decode()
    ints = re.findall(r"prim: INTEGER\s+:(-?[0-9A-F]+)", asn)
    assert ints[0] == "02" and int(ints[1], 16) == serial   # version v3, then the serial
    dates = sh("openssl", "x509", "-in", c, "-noout", "-startdate", "-enddate").stdout.decode()
    nb = datetime.datetime.strptime(re.search(r"notBefore=(.*)", dates).group(1), "%b %d %H:%M:%S %Y GMT")
    na = datetime.datetime.strptime(re.search(r"notAfter=(.*)", dates).group(1), "%b %d %H:%M:%S %Y GMT")
    now = datetime.datetime.utcnow()
    assert abs((now - nb).total_seconds()) < 3600
    assert (na.year - nb.year, na.month, na.day, na.time()) == (5, nb.month, nb.day, nb.time())


def test_serials_differ(bundle):
    serials = {sh("openssl", "x509", "-in", pem(bundle, n), "-noout", "-serial").stdout for n in NAMES}
    assert len(serials) == 3


def test_rerun_does_not_overwrite(ringil, bundle):
    before = tree_hashes(bundle["dir"])
    p = ringil("keys", "create", "--dir", bundle["dir"], check=10)
    assert "Using existing Owner UUID" in p.out
    assert "already been created" in p.err
    assert tree_hashes(bundle["dir"]) == before


def test_partial_bundle_refused(ringil, tmp_path):
    d = tmp_path / "b"
    (d / "keys" / "db").mkdir(parents=True)
    ringil("keys", "create", "--dir", d, check=10)
    assert sorted(os.listdir(d / "keys")) == ["db"]
    assert os.listdir(d / "keys" / "db") == []
    assert len((d / "GUID").read_bytes()) == 36   # the GUID is settled, as sbctl does


@pytest.mark.parametrize("content", [b"not-a-guid", b"8be4df61-93ca-11d2-aa0d-00e098032b8c\n", b""])
def test_bad_guid_file_refused(ringil, tmp_path, content):
    d = tmp_path / "b"
    d.mkdir()
    (d / "GUID").write_bytes(content)
    ringil("keys", "create", "--dir", d, check=3)
    assert os.listdir(d) == ["GUID"]
    assert (d / "GUID").read_bytes() == content


def test_existing_guid_and_keys_dir_kept(ringil, tmp_path):
    """Second (and last) keygen of the session: existing GUID and keys/dbx are kept."""
    d = tmp_path / "b"
    (d / "keys" / "dbx").mkdir(parents=True)
    (d / "keys" / "dbx" / "dbx.esl").write_bytes(b"x")
    g = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"
    (d / "GUID").write_text(g)
    p = ringil("keys", "create", "--dir", d, check=0, timeout=600)
    assert f"Using existing Owner UUID {g}" in p.out
    assert (d / "GUID").read_text() == g
    assert sorted(os.listdir(d / "keys")) == ["KEK", "PK", "db", "dbx"]
    assert (d / "keys" / "dbx" / "dbx.esl").read_bytes() == b"x"
    for n in NAMES:
        assert stat.S_IMODE(os.stat(d / "keys" / n / f"{n}.key").st_mode) == 0o400


# --- export: ESL ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_esl_matches_cert_to_efi_sig_list(bundle, tmp_path, name):
    g = (bundle["dir"] / "GUID").read_text()
    ref = tmp_path / "ref.esl"
    sh("cert-to-efi-sig-list", "-g", g, pem(bundle, name), ref)
    ours = (bundle["out"] / f"{name}.esl").read_bytes()
    assert ours == ref.read_bytes()
    assert stat.S_IMODE(os.stat(bundle["out"] / f"{name}.esl").st_mode) == 0o644


@pytest.mark.parametrize("name", NAMES)
def test_sig_list_to_certs_gives_our_cert(bundle, tmp_path, name):
    g = (bundle["dir"] / "GUID").read_text()
    p = sh("sig-list-to-certs", bundle["out"] / f"{name}.esl", tmp_path / "c")
    assert f"Guid {g}" in p.stdout.decode()
    der = (tmp_path / "c-0.der").read_bytes()
    ref = sh("openssl", "x509", "-in", pem(bundle, name), "-outform", "DER").stdout
    assert der == ref
    assert not (tmp_path / "c-1.der").exists()


# --- export: .auth -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_auth_layout_and_signature(bundle, tmp_path, name):
    data = (bundle["out"] / f"{name}.auth").read_bytes()
    efi_time, sig, esl = split_auth(data)
    # EFI_TIME of --time, UTC, with Pad1/Nanosecond/TimeZone/Daylight/Pad2 zero.
    assert efi_time == struct.pack("<HBBBBBBIhBB", 2026, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0)
    assert esl == (bundle["out"] / f"{name}.esl").read_bytes()
    # The signature is a bare SignedData (SEQUENCE starting with version INTEGER), not a ContentInfo.
    first = sh("openssl", "asn1parse", "-inform", "DER", "-in", "/dev/stdin", input=sig).stdout.decode()
    assert "prim: INTEGER           :01" in first.splitlines()[1], first.splitlines()[:3]
    content = signed_bytes(name, VENDOR[name], efi_time, esl)
    ok = smime_verify(tmp_path, content_info(sig), content, pem(bundle, SIGNER[name]))
    assert ok.returncode == 0, ok.stderr
    # Signed by the wrong key: must fail.
    wrong = "db" if SIGNER[name] != "db" else "PK"
    bad = smime_verify(tmp_path, content_info(sig), content, pem(bundle, wrong))
    assert bad.returncode != 0
    # Any change to the signed bytes (ESL, name, vendor GUID, attributes, time) must fail.
    for forged in (content[:-1] + bytes([content[-1] ^ 1]),
                   signed_bytes(name.lower() + "x", VENDOR[name], efi_time, esl),
                   signed_bytes(name, SECDB if VENDOR[name] == GLOBAL else GLOBAL, efi_time, esl),
                   signed_bytes(name, VENDOR[name], efi_time, esl, attrs=0x07),
                   signed_bytes(name, VENDOR[name], b"\x00" * 16, esl)):
        assert smime_verify(tmp_path, content_info(sig), forged, pem(bundle, SIGNER[name])).returncode != 0


def test_auth_pkcs7_details(bundle):
    _, sig, _ = split_auth((bundle["out"] / "db.auth").read_bytes())
    text = sh("openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", "/dev/stdin",
              input=content_info(sig)).stdout.decode()
    for attr in ("contentType", "signingTime", "messageDigest"):
        assert f"object: {attr}" in text, attr
    assert "SMIMECapabilities" not in text
    assert "algorithm: sha256" in text
    assert "eContent: <ABSENT>" in text          # detached
    assert "CN=Key Exchange Key" in text          # signer certificate included


@pytest.mark.parametrize("name", NAMES)
def test_signed_bytes_match_sign_efi_sig_list(bundle, tmp_path, name):
    """efitools' -o mode prints exactly what is to be signed; ours must sign the same bytes."""
    efi_time, _, esl = split_auth((bundle["out"] / f"{name}.auth").read_bytes())
    out = tmp_path / "tbs.bin"
    sh("sign-efi-sig-list", "-o", "-t", "2026-03-04 05:06:07", name, bundle["out"] / f"{name}.esl", out)
    assert out.read_bytes() == signed_bytes(name, VENDOR[name], efi_time, esl)


# --- enroll --------------------------------------------------------------------------------------

def fake_efivarfs(root, **vars):
    root.mkdir(exist_ok=True)
    for name, value in vars.items():
        (root / f"{name}-{GLOBAL}").write_bytes(b"\x06\x00\x00\x00" + value)
    return root


def var_path(root, name):
    return root / f"{name}-{VENDOR[name]}"


def test_enroll_setup_mode(ringil, bundle, tmp_path):
    ev = fake_efivarfs(tmp_path / "ev", SetupMode=b"\x01", SecureBoot=b"\x00")
    p = ringil("keys", "enroll", "--dir", bundle["dir"], "--efivarfs", ev, check=0)
    assert p.out.splitlines()[:3] == ["Enrolled db", "Enrolled KEK", "Enrolled PK"]
    for n in NAMES:
        raw = var_path(ev, n).read_bytes()
        assert raw[:4] == b"\x27\x00\x00\x00"
        efi_time, sig, esl = split_auth(raw[4:])
        assert esl == (bundle["out"] / f"{n}.esl").read_bytes()
        content = signed_bytes(n, VENDOR[n], efi_time, esl)
        assert smime_verify(tmp_path, content_info(sig), content, pem(bundle, SIGNER[n])).returncode == 0


def test_enroll_order_db_kek_pk(ringil, bundle, tmp_path):
    # PK cannot be written (a directory is in the way): db and KEK were already written.
    ev = fake_efivarfs(tmp_path / "a", SetupMode=b"\x01")
    var_path(ev, "PK").mkdir()
    ringil("keys", "enroll", "--dir", bundle["dir"], "--efivarfs", ev, check=1)
    assert var_path(ev, "db").is_file() and var_path(ev, "KEK").is_file()
    # db cannot be written: nothing after it was attempted.
    ev = fake_efivarfs(tmp_path / "b", SetupMode=b"\x01")
    var_path(ev, "db").mkdir()
    ringil("keys", "enroll", "--dir", bundle["dir"], "--efivarfs", ev, check=1)
    assert not var_path(ev, "KEK").exists() and not var_path(ev, "PK").exists()


@pytest.mark.parametrize("setup", [b"\x00", None, b"", b"\x01\x00", b"\x02"])
def test_enroll_refused_outside_setup_mode(ringil, bundle, tmp_path, setup):
    ev = fake_efivarfs(tmp_path / "ev", SecureBoot=b"\x01")
    if setup is not None:
        (ev / f"SetupMode-{GLOBAL}").write_bytes(b"\x06\x00\x00\x00" + setup)
    before = sorted(os.listdir(ev))
    p = ringil("keys", "enroll", "--dir", bundle["dir"], "--efivarfs", ev, check=11)
    assert "Refusing to enroll" in p.err
    assert sorted(os.listdir(ev)) == before


def test_enroll_no_efivarfs(ringil, bundle, tmp_path):
    ringil("keys", "enroll", "--dir", bundle["dir"], "--efivarfs", tmp_path / "nope", check=12)


def test_enroll_from_auth_dir(ringil, bundle, tmp_path):
    """The drone needs only the certificates when the .auth files were made elsewhere."""
    certs = tmp_path / "certs"
    for n in NAMES:
        (certs / "keys" / n).mkdir(parents=True)
        shutil.copy(pem(bundle, n), certs / "keys" / n / f"{n}.pem")
    shutil.copy(bundle["dir"] / "GUID", certs / "GUID")
    ev = fake_efivarfs(tmp_path / "ev", SetupMode=b"\x01")
    ringil("keys", "enroll", "--dir", certs, "--auth-dir", bundle["out"], "--efivarfs", ev, check=0)
    for n in NAMES:
        assert var_path(ev, n).read_bytes() == b"\x27\x00\x00\x00" + (bundle["out"] / f"{n}.auth").read_bytes()


def test_enroll_accepts_efitools_auth(ringil, bundle, tmp_path):
    """sign-efi-sig-list writes a full ContentInfo without attributes; it must verify too."""
    auth = tmp_path / "auth"
    auth.mkdir()
    for n in NAMES:
        s = SIGNER[n]
        sh("sign-efi-sig-list", "-t", "2026-03-04 05:06:07", "-k", pem(bundle, s, "key"), "-c", pem(bundle, s),
           n, bundle["out"] / f"{n}.esl", auth / f"{n}.auth")
    ev = fake_efivarfs(tmp_path / "ev", SetupMode=b"\x01")
    ringil("keys", "enroll", "--dir", bundle["dir"], "--auth-dir", auth, "--efivarfs", ev, check=0)
    assert var_path(ev, "PK").read_bytes()[4:] == (auth / "PK.auth").read_bytes()


def test_enroll_rejects_forged_or_swapped_auth(ringil, bundle, tmp_path):
    ev = fake_efivarfs(tmp_path / "ev", SetupMode=b"\x01")
    auth = tmp_path / "auth"
    shutil.copytree(bundle["out"], auth)
    data = bytearray((auth / "db.auth").read_bytes())
    data[-10] ^= 0x01                       # inside the certificate in the ESL
    (auth / "db.auth").write_bytes(bytes(data))
    ringil("keys", "enroll", "--dir", bundle["dir"], "--auth-dir", auth, "--efivarfs", ev, check=4)
    assert sorted(os.listdir(ev)) == [f"SetupMode-{GLOBAL}"]
    # KEK.auth in place of PK.auth: signed by PK, but over name "KEK": must not pass as PK.
    shutil.copy(bundle["out"] / "db.auth", auth / "db.auth")
    shutil.copy(bundle["out"] / "KEK.auth", auth / "PK.auth")
    ringil("keys", "enroll", "--dir", bundle["dir"], "--auth-dir", auth, "--efivarfs", ev, check=4)
    # Truncated payload.
    shutil.copy(bundle["out"] / "PK.auth", auth / "PK.auth")
    (auth / "KEK.auth").write_bytes((bundle["out"] / "KEK.auth").read_bytes()[:30])
    ringil("keys", "enroll", "--dir", bundle["dir"], "--auth-dir", auth, "--efivarfs", ev, check=3)
    assert sorted(os.listdir(ev)) == [f"SetupMode-{GLOBAL}"]


# --- status --------------------------------------------------------------------------------------

MODES = [
    # SecureBoot, SetupMode, AuditMode, DeployedMode (None = absent) -> mode
    ((1, 0, 0, 0), "user"),
    ((1, 0, None, None), "user"),
    ((1, 0, 0, 1), "deployed"),
    ((0, 1, 0, 0), "setup"),
    ((0, 1, 1, 0), "audit"),
    ((0, 0, 0, 0), "disabled"),
    ((1, 1, 0, 0), "unknown"),
    ((None, 0, 0, 0), "unknown"),
    ((1, None, 0, 0), "unknown"),
    ((None, None, None, None), "unknown"),
]


def mode_vars(sb, setup, audit, deployed):
    out = {}
    for name, v in (("SecureBoot", sb), ("SetupMode", setup), ("AuditMode", audit), ("DeployedMode", deployed)):
        if v is not None:
            out[name] = bytes([v])
    return out


def enroll_esls(ev, bundle, names=NAMES):
    for n in names:
        var_path(ev, n).write_bytes(b"\x27\x00\x00\x00" + (bundle["out"] / f"{n}.esl").read_bytes())


def status_json(ringil, bundle, ev):
    return json.loads(ringil("keys", "status", "--dir", bundle["dir"], "--efivarfs", ev, "--json", check=0).out)


@pytest.mark.parametrize("values,mode", MODES)
def test_status_modes(ringil, bundle, tmp_path, values, mode):
    ev = fake_efivarfs(tmp_path / "ev", **mode_vars(*values))
    j = status_json(ringil, bundle, ev)
    assert j["mode"] == mode
    assert j["secure_boot"] == (None if values[0] is None else bool(values[0]))
    assert j["setup_mode"] == (None if values[1] is None else bool(values[1]))
    p = ringil("keys", "status", "--dir", bundle["dir"], "--efivarfs", ev, check=0)
    assert f"Mode:          {mode}\n" in p.out


def test_status_enrolled(ringil, bundle, tmp_path):
    ev = fake_efivarfs(tmp_path / "ev", **mode_vars(1, 0, 0, 0))
    enroll_esls(ev, bundle)
    j = status_json(ringil, bundle, ev)
    assert j["guid"] == (bundle["dir"] / "GUID").read_text()
    assert {n: j["variables"][n]["state"] for n in NAMES} == {"PK": "ok", "KEK": "ok", "db": "ok"}
    p = ringil("keys", "status", "--dir", bundle["dir"], "--efivarfs", ev, check=0)
    assert re.search(r"^db\s+ok \(", p.out, re.M)


def test_status_db_with_microsoft_and_ours(ringil, bundle, tmp_path):
    ev = fake_efivarfs(tmp_path / "ev", **mode_vars(1, 0, 0, 0))
    ms = tmp_path / "ms.esl"
    sh("cert-to-efi-sig-list", "-g", "77fa9abd-0359-4d32-bd60-28f4e78f784b", pem(bundle, "KEK"), ms)
    enroll_esls(ev, bundle)
    var_path(ev, "db").write_bytes(b"\x27\x00\x00\x00" + ms.read_bytes() + (bundle["out"] / "db.esl").read_bytes())
    v = status_json(ringil, bundle, ev)["variables"]["db"]
    assert (v["state"], v["entries"], v["microsoft"]) == ("ok", 2, 1)


def test_status_missing_truncated_foreign(ringil, bundle, tmp_path):
    ev = fake_efivarfs(tmp_path / "ev", **mode_vars(1, 0, 0, 0))
    esl = (bundle["out"] / "KEK.esl").read_bytes()
    var_path(ev, "KEK").write_bytes(b"\x27\x00\x00\x00" + esl[:-1])        # truncated list
    var_path(ev, "PK").write_bytes(b"\x27\x00")                             # truncated header
    db_wrong_owner = tmp_path / "w.esl"
    sh("cert-to-efi-sig-list", "-g", str(uuid.uuid4()), pem(bundle, "db"), db_wrong_owner)
    var_path(ev, "db").write_bytes(b"\x27\x00\x00\x00" + db_wrong_owner.read_bytes())
    v = status_json(ringil, bundle, ev)["variables"]
    assert v["PK"]["state"] == "unknown"
    assert v["KEK"]["state"] == "unknown"
    assert v["db"]["state"] == "foreign"      # our certificate, but another owner GUID
    # Our owner GUID, but another certificate (KEK's in db): foreign too.
    var_path(ev, "db").write_bytes(b"\x27\x00\x00\x00" + esl)
    assert status_json(ringil, bundle, ev)["variables"]["db"]["state"] == "foreign"
    var_path(ev, "db").unlink()
    assert status_json(ringil, bundle, ev)["variables"]["db"]["state"] == "missing"


def test_status_without_bundle_is_never_ok(ringil, bundle, tmp_path):
    ev = fake_efivarfs(tmp_path / "ev", **mode_vars(1, 0, 0, 0))
    enroll_esls(ev, bundle)
    j = json.loads(ringil("keys", "status", "--dir", tmp_path / "none", "--efivarfs", ev, "--json", check=0).out)
    assert j["guid"] is None
    assert all(v["state"] == "unknown" for v in j["variables"].values())


def test_status_no_efivarfs(ringil, bundle, tmp_path):
    ringil("keys", "status", "--dir", bundle["dir"], "--efivarfs", tmp_path / "nope", check=12)


def test_usage(ringil):
    for verb in ("create", "export", "enroll", "status"):
        p = ringil("keys", verb, "--help", check=0)
        assert p.out.startswith(f"Usage: ringil keys {verb}") and "Exit codes:" in p.out
    ringil("keys", check=2)
    ringil("keys", "export", "--dir", "/nonexistent", check=2)            # --output-dir missing
    ringil("keys", "export", "--output-dir", "/tmp/x", "--time", "yesterday", check=2)


# --- the bundle as other tools read it -----------------------------------------------------------

SD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"


@pytest.mark.skipif(not os.path.exists(SD_BOOT), reason="systemd-boot-efi not installed")
def test_sbsign_with_db_key_as_lanzaboote_does(bundle, tmp_path):
    """lanzaboote runs `sbsign --key db.key --cert db.pem` then `sbverify --cert db.pem`."""
    signed = tmp_path / "BOOTX64.EFI"
    sh("sbsign", "--key", pem(bundle, "db", "key"), "--cert", pem(bundle, "db"), "--output", signed, SD_BOOT)
    sh("sbverify", "--cert", pem(bundle, "db"), signed)
    assert sh("sbverify", "--cert", pem(bundle, "KEK"), signed, check=False).returncode != 0


def test_keys_parse_as_strict_pkcs8_and_x509(bundle):
    """Go's x509.ParsePKCS8PrivateKey/ParseCertificate are strict; python-cryptography is a close stand-in."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    for n in NAMES:
        key = serialization.load_pem_private_key(pem(bundle, n, "key").read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096
        assert key.private_numbers().public_numbers.e == 65537
        cert = x509.load_pem_x509_certificate(pem(bundle, n).read_bytes())
        assert cert.version == x509.Version.v3
        assert cert.serial_number > 0
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert cert.subject.rfc4514_string() == f"CN={CN[n]}"
        assert len(cert.extensions) == 0
        assert (cert.not_valid_after.year - cert.not_valid_before.year) == 5
