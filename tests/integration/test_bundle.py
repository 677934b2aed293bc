"""test_bundle.py: `ringil bundle create|verify|info` against a test PKI made with the openssl CLI:
a valid bundle passes, and every forgery, corruption and policy violation fails with its own exit code."""
import json
import os
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run_on_tty

# Exit codes (lib/err.h)
MALFORMED, BADSIG, UNTRUSTED, EXPIRED, ROLLBACK, INCOMPAT, DIGEST = 3, 4, 5, 6, 7, 8, 9
HEADER = 32
COMPAT = "drone-mk2"

EXT = """
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[codesign]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
[tls]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


def sh(*args, env=None):
    subprocess.run([str(a) for a in args], check=True, capture_output=True, env=env)


class PKI:
    """root → intermediate → {signer (codeSigning), tls (clientAuth), expired}; other root → other signer;
    direct: a codeSigning signer issued by the root itself; rsa: an RSA-3072 signer under the root."""

    def __init__(self, d: Path):
        self.d = d
        (d / "ext.cnf").write_text(EXT)

    def key(self, name, rsa=False):
        k = self.d / f"{name}.key"
        if rsa:
            sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072", "-out", k)
        else:
            sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", k)
        return k

    def root(self, name):
        k = self.key(name)
        sh("faketime", self.EPOCH, "openssl", "req", "-x509", "-new", "-key", k, "-subj", f"/CN=Test {name}", "-days", "3650",
           "-config", self.d / "ext.cnf", "-extensions", "ca", "-out", self.d / f"{name}.pem")
        return self.d / f"{name}.pem"

    # certificates are valid from this date, so tests may move --now back to 2026-01-01
    EPOCH = "2025-06-01 00:00:00"

    def issue(self, name, ca, ext, days=3650, faketime=EPOCH, rsa=False):
        k = self.key(name, rsa)
        csr = self.d / f"{name}.csr"
        sh("openssl", "req", "-new", "-key", k, "-subj", f"/CN=Test {name}", "-config", self.d / "ext.cnf", "-out", csr)
        cmd = ["openssl", "x509", "-req", "-in", csr, "-CA", self.d / f"{ca}.pem", "-CAkey", self.d / f"{ca}.key",
               "-CAcreateserial", "-days", str(days), "-extfile", self.d / "ext.cnf", "-extensions", ext,
               "-out", self.d / f"{name}.pem"]
        if faketime:
            cmd = ["faketime", faketime] + cmd
        sh(*cmd)
        return self.d / f"{name}.pem"

    def __getitem__(self, name):
        return self.d / f"{name}.pem"

    def keyof(self, name):
        return self.d / f"{name}.key"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.root("root")
    p.issue("inter", "root", "ca")
    p.issue("signer", "inter", "codesign")
    p.issue("tls", "inter", "tls")
    p.issue("expired", "inter", "codesign", days=30, faketime="2020-01-01 00:00:00")
    p.issue("direct", "root", "codesign")
    p.issue("rsa", "root", "codesign", rsa=True)
    p.root("other")
    p.issue("othersigner", "other", "codesign")
    # a keyring directory holding the root and the unrelated CA
    kr = p.d / "keyring.d"
    kr.mkdir()
    (kr / "root.pem").write_bytes(p["root"].read_bytes())
    (kr / "other.crt").write_bytes(p["other"].read_bytes())
    return p


@pytest.fixture(scope="session")
def payloads(tmp_path_factory):
    d = tmp_path_factory.mktemp("payloads")
    rootfs = d / "rootfs.img"
    rootfs.write_bytes(os.urandom(3 * 65536 + 1234))
    efi = d / "linux.efi"
    efi.write_bytes(b"MZ" + os.urandom(70000))
    other = d / "other.img"
    other.write_bytes(os.urandom(3 * 65536 + 1234))
    return {"rootfs": rootfs, "efi": efi, "other": other}


def create(ringil, pki, out, signer="signer", version="2.1.0", compatible=COMPAT, payloads=(), extra=(),
           intermediate=True, check=0):
    args = ["bundle", "create", "--key", pki.keyof(signer), "--cert", pki[signer], "--compatible", compatible,
            "--version", version, "--output", out]
    if intermediate:
        args += ["--intermediate", pki["inter"]]
    for p in payloads:
        args += ["--payload", p]
    args += list(extra)
    return ringil(*args, check=check)


def verify(ringil, pki, bundle, keyring=None, extra=(), input=None):
    return ringil("bundle", "verify", "--keyring", keyring or pki["root"], "--compatible", COMPAT,
                  "--min-version", "2.0", *extra, bundle, input=input)


@pytest.fixture(scope="session")
def good(ringil, pki, payloads, tmp_path_factory):
    """A valid two-payload bundle plus a nixos reference, 64 KiB chunks so that chunk lists matter."""
    d = tmp_path_factory.mktemp("good")
    out = d / "good.rb"
    # The nixos payload's bytes are its closure listing (given here; `ringil bundle create` asks Nix otherwise).
    (d / "closure").write_text("ringil-nix-closure 1\n/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-drone "
                               "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73 1234\n")
    create(ringil, pki, out, payloads=[f"rootfs:raw={payloads['rootfs']}", f"uki:efi={payloads['efi']}",
                                       "system:nixos=/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-drone@https://cache.example.org"],
           extra=["--chunk-size", "64K", "--closure", d / "closure"])
    return out


def layout(data: bytes):
    ml, sl = struct.unpack(">II", data[16:24])
    return HEADER + ml, HEADER + ml + sl   # end of manifest, end of signature


def mutate(tmp_path, src: Path, fn, name="m.rb"):
    data = bytearray(src.read_bytes())
    data = fn(data)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


# ---- the valid case ----

def test_valid_bundle_verifies(ringil, pki, good):
    p = verify(ringil, pki, good)
    assert p.returncode == 0, p.err
    assert p.out.startswith("OK: ")
    assert "version 2.1.0" in p.out and "3 payloads" in p.out and "CN=Test signer" in p.out


def test_info_says_unverified(ringil, good):
    p = ringil("bundle", "info", good, check=0)
    assert "UNVERIFIED" in p.out
    assert "rootfs (raw) 197842 bytes, 4 chunks of 65536" in p.out
    assert "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-drone from https://cache.example.org" in p.out
    import json
    j = json.loads(ringil("bundle", "info", "--json", good, check=0).out)
    assert j["verified"] is False
    assert j["compatible"] == COMPAT and j["version"] == "2.1.0"
    assert [x["type"] for x in j["payloads"]] == ["raw", "efi", "nixos"]


def test_stdin_stream_verify(ringil, pki, good):
    p = verify(ringil, pki, "-", input=good.read_bytes())
    assert p.returncode == 0, p.err
    # a stream with bytes appended, or cut short, fails
    assert verify(ringil, pki, "-", input=good.read_bytes() + b"\0").returncode == MALFORMED
    assert verify(ringil, pki, "-", input=good.read_bytes()[:-1]).returncode == MALFORMED
    # a flipped payload byte in the stream fails with a digest error
    d = bytearray(good.read_bytes())
    d[-5] ^= 0x10
    assert verify(ringil, pki, "-", input=bytes(d)).returncode == DIGEST


def test_stdin_from_pipe_process(ringil, pki, good):
    # a real pipe (not a file redirected to stdin)
    cat = subprocess.Popen(["cat", str(good)], stdout=subprocess.PIPE)
    try:
        p = subprocess.run([str(ringil.exe), "bundle", "verify", "--keyring", str(pki["root"]), "-"],
                           stdin=cat.stdout, capture_output=True, timeout=60)
    finally:
        cat.stdout.close()   # so cat gets SIGPIPE instead of blocking if ringil stopped reading
        cat.kill()
        cat.wait()
    assert p.returncode == 0, p.stderr


# ---- trust ----

def test_signed_by_unrelated_key(ringil, pki, payloads, tmp_path):
    out = tmp_path / "other.rb"
    create(ringil, pki, out, signer="othersigner", intermediate=False, payloads=[f"rootfs:raw={payloads['rootfs']}"])
    p = verify(ringil, pki, out)
    assert p.returncode == UNTRUSTED, p.err
    assert "not trusted" in p.err
    # and the same bundle verifies against its own CA: the failure above is the trust decision
    assert verify(ringil, pki, out, keyring=pki["other"]).returncode == 0


def test_signer_not_chained_without_intermediate(ringil, pki, payloads, tmp_path):
    out = tmp_path / "nointer.rb"
    create(ringil, pki, out, intermediate=False, payloads=[f"rootfs:raw={payloads['rootfs']}"])
    assert verify(ringil, pki, out).returncode == UNTRUSTED
    # trusting the intermediate itself makes it a trust anchor
    assert verify(ringil, pki, out, keyring=pki["inter"]).returncode == 0


def test_intermediate_shipped_in_bundle(ringil, pki, good):
    # the keyring has only the root; the intermediate comes from the bundle
    assert verify(ringil, pki, good).returncode == 0
    # keyring as a directory
    assert verify(ringil, pki, good, keyring=pki.d / "keyring.d").returncode == 0
    # keyring of the unrelated CA only
    assert verify(ringil, pki, good, keyring=pki["other"]).returncode == UNTRUSTED


def test_rsa_signer_direct_under_root(ringil, pki, payloads, tmp_path):
    out = tmp_path / "rsa.rb"
    create(ringil, pki, out, signer="rsa", intermediate=False, payloads=[f"rootfs:raw={payloads['rootfs']}"])
    assert verify(ringil, pki, out).returncode == 0
    # The SignerInfo says rsaEncryption (as OpenSSL's CMS writes it). OpenSSL would also verify the same
    # signature labelled sha256WithRSAEncryption, one byte away (…1.1.1 → …1.1.11): refused.
    data = out.read_bytes()
    _, send = layout(data)
    rsa_oid = bytes.fromhex("06092a864886f70d010101")
    at = data.rindex(rsa_oid, 0, send) + len(rsa_oid) - 1
    bad = mutate(tmp_path, out, lambda d: d[:at] + b"\x0b" + d[at + 1:], "rsa-sigalg.rb")
    p = verify(ringil, pki, bad)
    assert p.returncode == BADSIG and "signature algorithm" in p.err, p.err


def test_expired_signer_certificate(ringil, pki, payloads, tmp_path):
    out = tmp_path / "expired.rb"
    create(ringil, pki, out, signer="expired", payloads=[f"rootfs:raw={payloads['rootfs']}"])
    p = verify(ringil, pki, out)
    assert p.returncode == EXPIRED, p.err
    assert "expired" in p.err


def test_require_codesigning(ringil, pki, payloads, tmp_path, good):
    out = tmp_path / "tls.rb"
    create(ringil, pki, out, signer="tls", payloads=[f"rootfs:raw={payloads['rootfs']}"])
    assert verify(ringil, pki, out).returncode == 0   # without the policy a chained cert is enough
    p = verify(ringil, pki, out, extra=["--require-codesigning"])
    assert p.returncode == UNTRUSTED and "codeSigning" in p.err
    assert verify(ringil, pki, good, extra=["--require-codesigning"]).returncode == 0


def test_allowed_signers(ringil, pki, good):
    assert verify(ringil, pki, good, extra=["--allowed-signer", "Test signer"]).returncode == 0
    assert verify(ringil, pki, good, extra=["--allowed-signer", "Test nobody", "--allowed-signer", "Test signer"]).returncode == 0
    p = verify(ringil, pki, good, extra=["--allowed-signer", "Test tls"])
    assert p.returncode == UNTRUSTED and "not an allowed signer" in p.err
    # prefix/substring of the CN is not a match
    assert verify(ringil, pki, good, extra=["--allowed-signer", "Test sign"]).returncode == UNTRUSTED


# ---- policy ----

def test_expired_bundle(ringil, pki, payloads, tmp_path):
    out = tmp_path / "exp.rb"
    create(ringil, pki, out, payloads=[f"rootfs:raw={payloads['rootfs']}"], extra=["--valid-for", "7"])
    now = int(time.time())
    assert verify(ringil, pki, out, extra=["--now", f"@{now + 6 * 86400}"]).returncode == 0
    p = verify(ringil, pki, out, extra=["--now", f"@{now + 8 * 86400}"])
    assert p.returncode == EXPIRED and "expired at" in p.err
    # created far in the future relative to the verifier's clock: not yet valid
    p = verify(ringil, pki, out, extra=["--now", f"@{now - 3 * 86400}"])
    assert p.returncode == EXPIRED and "future" in p.err


def test_explicit_expiry_date(ringil, pki, payloads, tmp_path):
    out = tmp_path / "date.rb"
    create(ringil, pki, out, payloads=[f"rootfs:raw={payloads['rootfs']}"],
           extra=["--created", "2026-01-01", "--expires", "2026-02-01T00:00:00Z"])
    assert verify(ringil, pki, out, extra=["--now", "2026-01-15"]).returncode == 0
    assert verify(ringil, pki, out, extra=["--now", "2026-02-01T00:00:00Z"]).returncode == 0
    assert verify(ringil, pki, out, extra=["--now", "2026-02-01T00:00:01Z"]).returncode == EXPIRED


@pytest.mark.parametrize("floor,rc", [("2.0", 0), ("2.0.99", 0), ("2.1", ROLLBACK), ("2.1.0", ROLLBACK),
                                      ("2.1.0.0", ROLLBACK), ("2.1.1", ROLLBACK), ("2.10", ROLLBACK), ("10", ROLLBACK)])
def test_version_floor(ringil, pki, good, floor, rc):
    p = ringil("bundle", "verify", "--keyring", pki["root"], "--min-version", floor, good)
    assert p.returncode == rc, p.err
    if rc:
        assert "not above the floor" in p.err


def test_wrong_compatible(ringil, pki, good):
    p = ringil("bundle", "verify", "--keyring", pki["root"], "--compatible", "drone-mk1", good)
    assert p.returncode == INCOMPAT and "drone-mk2" in p.err
    # a prefix is not a match
    assert ringil("bundle", "verify", "--keyring", pki["root"], "--compatible", "drone-mk", good).returncode == INCOMPAT


# ---- corruption ----

def region_offsets(data):
    mend, send = layout(data)
    size = len(data)
    offs = {"header": list(range(0, HEADER)),
            "manifest": sorted({HEADER, HEADER + 1, mend - 1} | set(range(HEADER, mend, max(1, (mend - HEADER) // 40)))),
            "signature": sorted({mend, send - 1} | set(range(mend, send, max(1, (send - mend) // 60)))),
            "payload": sorted({send, send + 1, size - 1} | set(range(send, size, max(1, (size - send) // 40))))}
    return offs


@pytest.mark.parametrize("region,codes", [
    ("header", {MALFORMED}),
    ("manifest", {BADSIG}),
    ("signature", {MALFORMED, BADSIG, UNTRUSTED}),
    ("payload", {DIGEST}),
])
def test_flip_one_byte_anywhere(ringil, pki, good, tmp_path, region, codes):
    data = good.read_bytes()
    offs = region_offsets(data)[region]
    assert len(offs) >= 30
    out = tmp_path / "flip.rb"
    for off in offs:
        for bit in (0x01, 0x80):
            d = bytearray(data)
            d[off] ^= bit
            out.write_bytes(bytes(d))
            p = verify(ringil, pki, out)
            assert p.returncode in codes, f"{region} flip {bit:#x} at {off}: exit {p.returncode} {p.err}"
            assert p.err.count("\n") == 1   # one line reason


def test_flip_in_chunk_list_of_signed_manifest(ringil, pki, good, tmp_path):
    # the chunk list is inside the signed manifest: changing one hex digit breaks the signature
    data = good.read_bytes()
    mend, _ = layout(data)
    m = data[HEADER:mend]
    i = m.index(b'"chunks":["') + len(b'"chunks":["') + 10
    d = bytearray(data)
    d[HEADER + i] = ord("0") if d[HEADER + i] != ord("0") else ord("1")
    out = tmp_path / "chunk.rb"
    out.write_bytes(bytes(d))
    assert verify(ringil, pki, out).returncode == BADSIG


def test_truncated_at_many_points(ringil, pki, good, tmp_path):
    data = good.read_bytes()
    mend, send = layout(data)
    cuts = sorted({0, 1, 8, 31, 32, 33, mend - 1, mend, mend + 1, send - 1, send, send + 1, len(data) - 1} |
                  set(range(0, len(data), len(data) // 37)))
    out = tmp_path / "cut.rb"
    for cut in cuts:
        out.write_bytes(data[:cut])
        p = verify(ringil, pki, out)
        assert p.returncode == MALFORMED, f"cut at {cut}: exit {p.returncode} {p.err}"
        assert "truncated" in p.err or "not a ringil bundle" in p.err or cut < HEADER


def test_bytes_appended(ringil, pki, good, tmp_path):
    for extra in (b"\0", b"x" * 4096, good.read_bytes()):
        out = mutate(tmp_path, good, lambda d: d + extra)
        p = verify(ringil, pki, out)
        assert p.returncode == MALFORMED and "appended" in p.err


def test_info_refuses_a_malformed_container(ringil, good, tmp_path):
    """info cannot check the signature, but it checks the container's length and says what it did not
    check; a truncated bundle or one with bytes appended is shown, then refused with exit 3."""
    data = good.read_bytes()
    mend, send = layout(data)
    p = ringil("bundle", "info", good, check=0)
    assert f"complete ({len(data)} bytes, as declared)" in p.out
    assert "Not checked: signature, signer chain, payload hashes" in p.out
    j = json.loads(ringil("bundle", "info", "--json", good, check=0).out)
    assert j["container"] == {"bytes": len(data), "declared_bytes": len(data), "complete": True, "problem": None}
    assert "signature" in j["not_checked"] and "payload hashes" in j["not_checked"]
    for cut in (send, send + 1, len(data) // 2, len(data) - 1):
        out = tmp_path / "cut.rb"
        out.write_bytes(data[:cut])
        p = ringil("bundle", "info", out)
        assert p.returncode == MALFORMED, (cut, p.err)
        assert "UNVERIFIED" in p.out and f"truncated: {cut} bytes, the manifest declares {len(data)}" in p.out
        assert "is malformed" in p.err and "truncated" in p.err
        q = ringil("bundle", "info", "--json", out)
        assert q.returncode == MALFORMED and json.loads(q.out)["container"]["complete"] is False
        # the same bytes as a stream (a pipe, read to its end)
        r = ringil("bundle", "info", "-", input=data[:cut])
        assert r.returncode == MALFORMED and "truncated" in r.err, r.err
    for extra in (b"\0", b"x" * 4096):
        out = mutate(tmp_path, good, lambda d: d + extra)
        p = ringil("bundle", "info", out)
        assert p.returncode == MALFORMED and f"{len(extra)} bytes appended after the last payload" in p.err
        assert ringil("bundle", "info", "-", input=data + extra).returncode == MALFORMED
    assert ringil("bundle", "info", "-", input=data).returncode == 0
    # cut inside the metadata: nothing to show, refused as before
    out = tmp_path / "meta.rb"
    out.write_bytes(data[:mend - 1])
    assert ringil("bundle", "info", out).returncode == MALFORMED


def test_create_shows_progress_on_stderr(ringil, pki, payloads, tmp_path):
    """Off a terminal: one line per step with bytes, time and rate; --quiet: nothing; stdout unchanged."""
    out = tmp_path / "p.rb"
    p = create(ringil, pki, out, payloads=[f"rootfs:raw={payloads['rootfs']}"])
    assert p.out == f"wrote {out}\n"
    lines = p.err.splitlines()
    assert any(re.fullmatch(r"ringil: hashing payload 'rootfs': 193 KiB in \d+\.\d s( \(.+/s\))?", x) for x in lines), p.err
    assert any(x.startswith("ringil: copying the payloads: ") for x in lines), p.err
    assert any(x.startswith("ringil: checking the written payloads against their hashes: ") for x in lines), p.err
    assert "\r" not in p.err and "\x1b" not in p.err
    out.unlink()
    for q in ("--quiet", "-q"):
        p = create(ringil, pki, out, payloads=[f"rootfs:raw={payloads['rootfs']}"], extra=[q])
        assert p.err == "" and p.out == f"wrote {out}\n"
        out.unlink()


def test_create_progress_on_a_terminal(ringil, pki, payloads, tmp_path):
    """On a terminal the meter is redrawn in place (bytes of total, percentage, rate, time left)."""
    out = tmp_path / "t.rb"
    rc, stdout, tty = run_on_tty([ringil.exe, "bundle", "create", "--key", pki.keyof("signer"), "--cert",
                                  pki["signer"], "--intermediate", pki["inter"], "--compatible", COMPAT, "--version",
                                  "1", "--payload", f"rootfs:raw={payloads['rootfs']}", "--output", out])
    assert rc == 0 and stdout == f"wrote {out}\n"
    assert "\r\x1b[Kringil: hashing payload 'rootfs': 0 B of 193 KiB (0%), 0 B/s, ? left" in tty, repr(tty)
    assert re.search(r"\r\x1b\[Kringil: hashing payload 'rootfs': \S+ \S+ in \d+\.\d s\b", tty), repr(tty)
    rc, stdout, tty = run_on_tty([ringil.exe, "bundle", "create", "--quiet", "--key", pki.keyof("signer"), "--cert",
                                  pki["signer"], "--intermediate", pki["inter"], "--compatible", COMPAT, "--version",
                                  "1", "--payload", f"rootfs:raw={payloads['rootfs']}", "--output", tmp_path / "u.rb"])
    assert rc == 0 and tty == ""


def test_keyring_errors_name_the_keyring_not_the_bundle(ringil, good, tmp_path):
    p = ringil("bundle", "verify", "--keyring", tmp_path / "missing.pem", good)
    assert p.returncode == 12
    assert "keyring" in p.err and "missing.pem" in p.err and str(good) not in p.err
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    p = ringil("bundle", "verify", "--keyring", bad, good)
    assert p.returncode == MALFORMED and "keyring" in p.err and str(good) not in p.err
    p = ringil("bundle", "verify", "--keyring", bad, tmp_path / "missing.rb")
    assert p.returncode == MALFORMED and "keyring" in p.err   # the keyring is looked at first


def test_mix_and_match(ringil, pki, payloads, tmp_path):
    # two validly signed bundles with payloads of the same size: B's payload under A's manifest fails
    a, b = tmp_path / "a.rb", tmp_path / "b.rb"
    create(ringil, pki, a, payloads=[f"rootfs:raw={payloads['rootfs']}"])
    create(ringil, pki, b, payloads=[f"rootfs:raw={payloads['other']}"])
    assert verify(ringil, pki, a).returncode == 0 and verify(ringil, pki, b).returncode == 0
    da, db = a.read_bytes(), b.read_bytes()
    _, sa = layout(da)
    _, sb = layout(db)
    spliced = tmp_path / "ab.rb"
    spliced.write_bytes(da[:sa] + db[sb:])
    p = verify(ringil, pki, spliced)
    assert p.returncode == DIGEST and "chunk 0" in p.err
    # B's manifest with A's signature and payload
    ma, mb = layout(da)[0], layout(db)[0]
    hdr = da[:16] + struct.pack(">II", mb - HEADER, sa - ma) + da[24:32]
    spliced.write_bytes(hdr + db[HEADER:mb] + da[ma:])
    p = verify(ringil, pki, spliced)
    assert p.returncode == BADSIG, p.err


# ---- re-signed malformed manifests: a trusted key signs something hostile ----

def resign(pki, data: bytes, new_manifest: bytes, tmp_path: Path) -> bytes:
    mend, send = layout(data)
    m = tmp_path / "manifest.json"
    m.write_bytes(new_manifest)
    sig = tmp_path / "sig.der"
    sh("openssl", "cms", "-sign", "-binary", "-nosmimecap", "-md", "sha256", "-outform", "DER",
       "-signer", pki["signer"], "-inkey", pki.keyof("signer"), "-certfile", pki["inter"], "-in", m, "-out", sig)
    s = sig.read_bytes()
    header = data[:16] + struct.pack(">II", len(new_manifest), len(s)) + data[24:32]
    return header + new_manifest + s + data[send:]


def test_resigned_with_openssl_cli_is_accepted(ringil, pki, good, tmp_path):
    # control for the tests below: re-signing the same manifest with the openssl CLI verifies
    data = good.read_bytes()
    mend, _ = layout(data)
    out = tmp_path / "same.rb"
    out.write_bytes(resign(pki, data, data[HEADER:mend], tmp_path))
    p = verify(ringil, pki, out)
    assert p.returncode == 0, p.err


def test_endless_data_manifest(ringil, pki, good, tmp_path):
    """A validly signed manifest claims a huge payload: refused from the manifest alone, quickly,
    without reading or allocating that much."""
    import re
    data = good.read_bytes()
    mend, _ = layout(data)
    m = data[HEADER:mend].decode()
    for size in ("1099511627776000", "18446744073709551615", "4294967296"):
        bad = re.sub(r'"size":197842', f'"size":{size}', m, count=1).encode()
        out = tmp_path / "endless.rb"
        out.write_bytes(resign(pki, data, bad, tmp_path))
        t = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", str(ringil.exe), "bundle", "verify", "--keyring",
                            str(pki["root"]), str(out)], capture_output=True, text=True)
        assert p.returncode == MALFORMED, p.stderr
        assert time.monotonic() - t < 5
        rss_kib = int(p.stderr.strip().splitlines()[-1])
        assert rss_kib < 64 * 1024, rss_kib
    # the same over a stream that never ends: it stops at the first chunk hash
    bad = re.sub(r'"size":197842', '"size":197843', m, count=1).encode()
    out.write_bytes(resign(pki, data, bad, tmp_path))
    assert verify(ringil, pki, out).returncode == MALFORMED   # chunk count no longer matches


def test_resigned_manifest_strictness(ringil, pki, good, tmp_path):
    import re
    data = good.read_bytes()
    mend, _ = layout(data)
    m = data[HEADER:mend].decode()
    cases = [
        m.replace('"format":1', '"format":2'),
        m.replace('{"compatible"', '{"bogus":1,"compatible"', 1),
        m.replace('"chunk_size":65536', '"chunk_size":65535', 1),
        re.sub(r'"chunks":\["[0-9a-f]{64}",', '"chunks":[', m, count=1),   # one chunk hash missing
        m + " ",
        " " + m,
        m.replace('{"compatible"', '{ "compatible"', 1),
        m.replace('"format":1', '"format":1.0'),
    ]
    out = tmp_path / "strict.rb"
    for c in cases:
        out.write_bytes(resign(pki, data, c.encode(), tmp_path))
        p = verify(ringil, pki, out)
        assert p.returncode == MALFORMED, (c[:80], p.err)


def test_header_caps(ringil, pki, good, tmp_path):
    data = good.read_bytes()
    for ml, sl in ((0xFFFFFFFF, 100), (100, 0xFFFFFFFF), (0, 100), (100, 0), (16 * 1024 * 1024 + 1, 100)):
        out = mutate(tmp_path, good, lambda d: d[:16] + bytearray(struct.pack(">II", ml, sl)) + d[24:])
        p = verify(ringil, pki, out)
        assert p.returncode == MALFORMED, (ml, sl, p.err)


# ---- big sparse payload: no 32-bit truncation anywhere ----

def test_sparse_payload_over_4gib(ringil, pki, tmp_path):
    img = tmp_path / "big.img"
    size = (4 << 30) + 3 * 65536 + 17
    with open(img, "wb") as f:
        f.truncate(size)
        f.seek(size - 5)
        f.write(b"tail!")
    out = tmp_path / "big.rb"
    create(ringil, pki, out, payloads=[f"rootfs:raw={img}"], extra=["--chunk-size", "64M"])
    st = os.stat(out)
    assert st.st_size > size
    assert st.st_blocks * 512 < 64 << 20   # the bundle stayed sparse
    info = ringil("bundle", "info", out, check=0).out
    assert f"{size} bytes, 65 chunks of 67108864" in info
    assert verify(ringil, pki, out).returncode == 0
    # a flip in the last chunk (past 4 GiB) is caught
    with open(out, "r+b") as f:
        f.seek(st.st_size - 3)
        c = f.read(1)
        f.seek(st.st_size - 3)
        f.write(bytes([c[0] ^ 1]))
    p = verify(ringil, pki, out)
    assert p.returncode == DIGEST and "chunk 64" in p.err


# ---- usage ----

def test_usage_errors(ringil, pki, payloads, tmp_path):
    assert ringil("bundle").returncode == 2
    assert ringil("bundle", "verify", "x").returncode == 2   # no keyring
    assert ringil("bundle", "verify", "--keyring", pki["root"], "--min-version", "1.x", "f").returncode == 2
    assert ringil("bundle", "verify", "--keyring", pki["root"], "--now", "yesterday", "f").returncode == 2
    assert create(ringil, pki, tmp_path / "x.rb", payloads=["rootfs:tar=/dev/null"], check=None).returncode == 2
    assert create(ringil, pki, tmp_path / "x.rb", version="1.0-rc1", payloads=[f"rootfs:raw={payloads['rootfs']}"],
                  check=None).returncode == 2
    assert create(ringil, pki, tmp_path / "x.rb", payloads=[f"rootfs:raw={payloads['rootfs']}"],
                  extra=["--chunk-size", "5000"], check=None).returncode == 2
    assert not (tmp_path / "x.rb").exists()
    p = ringil("bundle", "verify", "--keyring", pki["root"], tmp_path / "missing.rb")
    assert p.returncode == 12
    p = ringil("bundle", "verify", "--help", check=0)
    assert "ringil bundle verify" in p.out and "Exit codes:" in p.out


def test_wrong_key_for_cert_refused(ringil, pki, payloads, tmp_path):
    p = ringil("bundle", "create", "--key", pki.keyof("tls"), "--cert", pki["signer"], "--compatible", COMPAT,
               "--version", "1", "--payload", f"rootfs:raw={payloads['rootfs']}", "--output", tmp_path / "w.rb")
    assert p.returncode == MALFORMED and "does not match" in p.err
    assert not (tmp_path / "w.rb").exists()


# ---- memory: verifying does not allocate in proportion to the payload ----

def peak_rss_kib(cmd, stdin_path=None):
    """Peak RSS of cmd, fed from stdin_path through a real pipe when given."""
    if stdin_path:
        cat = subprocess.Popen(["cat", str(stdin_path)], stdout=subprocess.PIPE)
        try:
            p = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, cmd)], stdin=cat.stdout,
                               capture_output=True, text=True, timeout=120)
        finally:
            cat.stdout.close()
            cat.kill()
            cat.wait()
    else:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, cmd)], capture_output=True, text=True, timeout=120)
    return p.returncode, int(p.stderr.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_payload(ringil, pki, tmp_path):
    rss = {}
    for mib in (8, 160):
        img = tmp_path / f"p{mib}.img"
        with open(img, "wb") as f:
            f.truncate(mib << 20)
            f.seek(12345)
            f.write(os.urandom(1000))
        out = tmp_path / f"p{mib}.rb"
        create(ringil, pki, out, payloads=[f"rootfs:raw={img}"])
        cmd = [ringil.exe, "bundle", "verify", "--keyring", pki["root"], "-"]
        rc, rss[("pipe", mib)] = peak_rss_kib(cmd, out)
        assert rc == 0
        rc, rss[("file", mib)] = peak_rss_kib(cmd[:-1] + [out])
        assert rc == 0
        if mib == 160:
            # a flip near the end of the big payload, through the pipe: caught
            d = bytearray(out.read_bytes())
            d[-100] ^= 0x04
            out.write_bytes(bytes(d))
            rc, _ = peak_rss_kib(cmd, out)
            assert rc == DIGEST
    for kind in ("pipe", "file"):
        grow = rss[(kind, 160)] - rss[(kind, 8)]
        assert grow < 16 * 1024, (kind, rss)   # 152 MiB more payload, under 16 MiB more memory
