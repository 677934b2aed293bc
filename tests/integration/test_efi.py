"""test_efi.py: `ringil efi` against the real peers: sbsign, sbverify and osslsigncode on systemd's EFI binaries."""
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

EFI_DIR = Path("/usr/lib/systemd/boot/efi")
BINARIES = {
    "stub": EFI_DIR / "linuxx64.efi.stub",
    "boot": EFI_DIR / "systemd-bootx64.efi",
}

EXIT_USAGE, EXIT_MALFORMED, EXIT_BADSIG, EXIT_UNTRUSTED, EXIT_DIGEST = 2, 3, 4, 5, 9


def run(*args, check=True, env=None):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def openssl_selfsigned(d: Path, name: str, cn: str, faketime=None):
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
           "-subj", f"/CN={cn}", "-days", "30", "-sha256"]
    if faketime:
        cmd = ["faketime", faketime] + cmd
    run(*cmd)
    return key, cert


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """Keys made once per session: ours, another key, an expired one, and a CA with a leaf."""
    d = tmp_path_factory.mktemp("efi-pki")
    k = {}
    k["key"], k["cert"] = openssl_selfsigned(d, "db", "ringil test db")
    k["other_key"], k["other_cert"] = openssl_selfsigned(d, "other", "someone else")
    k["old_key"], k["old_cert"] = openssl_selfsigned(d, "old", "expired db", faketime="2020-01-01 00:00:00")
    k["ca_key"], k["ca_cert"] = openssl_selfsigned(d, "ca", "ringil test CA")
    k["leaf_key"], csr, k["leaf_cert"] = d / "leaf.key", d / "leaf.csr", d / "leaf.pem"
    run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", k["leaf_key"], "-out", csr,
        "-subj", "/CN=ringil test leaf")
    run("openssl", "x509", "-req", "-in", csr, "-CA", k["ca_cert"], "-CAkey", k["ca_key"], "-CAcreateserial",
        "-days", "30", "-sha256", "-out", k["leaf_cert"])
    return k


@pytest.fixture(scope="session")
def signed(pki, tmp_path_factory, ringil):
    """Each binary signed once by ringil and once by sbsign, reused read-only by the tests."""
    d = tmp_path_factory.mktemp("efi-signed")
    out = {}
    for name, src in BINARIES.items():
        ours, theirs = d / f"{name}.ringil.efi", d / f"{name}.sbsign.efi"
        ringil("efi", "sign", "--key", pki["key"], "--cert", pki["cert"], "--output", ours, src, check=0)
        run("sbsign", "--key", pki["key"], "--cert", pki["cert"], "--output", theirs, src)
        out[name] = {"ringil": ours, "sbsign": theirs}
    return out


def sbverify(cert, f):
    return run("sbverify", "--cert", cert, f, check=False)


def pe_offsets(data: bytes):
    """(checksum offset, cert dir entry offset, COFF TimeDateStamp offset) of a PE32+ image."""
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    opt = lfanew + 24
    assert struct.unpack_from("<H", data, opt)[0] == 0x20B
    return opt + 64, opt + 112 + 4 * 8, lfanew + 8


def pe_checksum(data: bytes, cs_off: int) -> int:
    """The PE checksum, written independently of lib/efi-pe.c: 16-bit words, end-around carry, + length."""
    buf = bytearray(data)
    buf[cs_off:cs_off + 4] = b"\0\0\0\0"
    if len(buf) % 2:
        buf.append(0)
    s = sum(struct.unpack(f"<{len(buf) // 2}H", bytes(buf)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s + len(data)


def osslsigncode_digests(f):
    p = run("osslsigncode", "verify", "-in", f, check=False)
    cur = re.search(r"Current message digest\s*:\s*([0-9A-Fa-f]{64})", p.stdout + p.stderr)
    calc = re.search(r"Calculated message digest\s*:\s*([0-9A-Fa-f]{64})", p.stdout + p.stderr)
    assert cur and calc, p.stdout + p.stderr
    return cur.group(1).lower(), calc.group(1).lower()


def ringil_hash(ringil, f):
    return ringil("efi", "hash", f, check=0).out.split()[0]


def assert_rejected(ringil, pki, f, code, cert_key="cert"):
    """Both verifiers must reject f; ringil with the given exit code and a one-line reason."""
    p = ringil("efi", "verify", "--cert", pki[cert_key], f)
    assert p.returncode == code, p.out + p.err
    assert p.out == ""
    assert len(p.err.strip().splitlines()) == 1 and str(f) in p.err, p.err
    s = sbverify(pki[cert_key], f)
    assert s.returncode != 0, s.stdout + s.stderr


@pytest.mark.parametrize("name", BINARIES)
def test_ringil_signature_accepted_by_sbverify(ringil, pki, signed, name):
    f = signed[name]["ringil"]
    s = sbverify(pki["cert"], f)
    assert s.returncode == 0 and "Signature verification OK" in s.stdout, s.stdout + s.stderr
    p = ringil("efi", "verify", "--cert", pki["cert"], f, check=0)
    assert "OK (signature 1 of 1, signer /CN=ringil test db" in p.out


@pytest.mark.parametrize("name", BINARIES)
def test_sbsign_signature_accepted_by_ringil(ringil, pki, signed, name):
    p = ringil("efi", "verify", "--cert", pki["cert"], signed[name]["sbsign"], check=0)
    assert "OK (signature 1 of 1" in p.out


@pytest.mark.parametrize("name", BINARIES)
def test_image_hash_agrees_with_osslsigncode_and_sbsign(ringil, signed, name):
    for f in signed[name].values():
        signed_digest, calculated = osslsigncode_digests(f)
        assert signed_digest == calculated == ringil_hash(ringil, f)
    # Both signers padded the unsigned image the same way, so they signed the same hash.
    assert ringil_hash(ringil, signed[name]["ringil"]) == ringil_hash(ringil, signed[name]["sbsign"])


@pytest.mark.parametrize("name", BINARIES)
def test_layout_identical_to_sbsign(signed, name):
    """Same size, same bytes before the certificate table apart from CheckSum, same table header."""
    ours, theirs = (signed[name][k].read_bytes() for k in ("ringil", "sbsign"))
    assert len(ours) == len(theirs)
    cs, cdir, _ = pe_offsets(ours)
    table_off, table_len = struct.unpack_from("<II", ours, cdir)
    assert struct.unpack_from("<II", theirs, cdir) == (table_off, table_len)
    assert table_off % 8 == 0 and table_off + table_len == len(ours)
    assert ours[:cs] == theirs[:cs] and ours[cs + 4:table_off] == theirs[cs + 4:table_off]
    # WIN_CERTIFICATE: same dwLength (DER of the same shape), revision 0x0200, PKCS_SIGNED_DATA
    assert ours[table_off:table_off + 8] == theirs[table_off:table_off + 8]
    assert struct.unpack_from("<HH", ours, table_off + 4) == (0x0200, 0x0002)
    for data in (ours, theirs):
        assert struct.unpack_from("<I", data, cs)[0] == pe_checksum(data, cs)


@pytest.mark.parametrize("signer", ["ringil", "sbsign"])
@pytest.mark.parametrize("where", ["section", "header"])
def test_modified_after_signing_rejected(ringil, pki, signed, tmp_path, signer, where):
    data = bytearray(signed["stub"][signer].read_bytes())
    _, _, timestamp = pe_offsets(data)
    off = 0x400 + 0x1234 if where == "section" else timestamp   # inside .text / COFF TimeDateStamp
    data[off] ^= 0x01
    f = tmp_path / "tampered.efi"
    f.write_bytes(data)
    assert_rejected(ringil, pki, f, EXIT_DIGEST)
    assert "image changed after signing" in ringil("efi", "verify", "--cert", pki["cert"], f).err


def test_checksum_is_not_covered(ringil, pki, signed, tmp_path):
    """The hash skips CheckSum (and firmware ignores it): a changed checksum still verifies."""
    data = bytearray(signed["stub"]["ringil"].read_bytes())
    cs, _, _ = pe_offsets(data)
    data[cs] ^= 0xFF
    f = tmp_path / "checksum.efi"
    f.write_bytes(data)
    ringil("efi", "verify", "--cert", pki["cert"], f, check=0)
    assert sbverify(pki["cert"], f).returncode == 0


def test_signature_from_other_key_rejected(ringil, pki, tmp_path):
    f = tmp_path / "other.efi"
    ringil("efi", "sign", "--key", pki["other_key"], "--cert", pki["other_cert"], "--output", f,
           BINARIES["stub"], check=0)
    assert_rejected(ringil, pki, f, EXIT_UNTRUSTED)
    g = tmp_path / "other-sbsign.efi"
    run("sbsign", "--key", pki["other_key"], "--cert", pki["other_cert"], "--output", g, BINARIES["boot"])
    assert_rejected(ringil, pki, g, EXIT_UNTRUSTED)
    # ...and each is fine against its own certificate.
    ringil("efi", "verify", "--cert", pki["other_cert"], f, check=0)


def test_signature_bytes_forged_rejected(ringil, pki, signed, tmp_path):
    """Flip a bit of the RSA signature (the last bytes of the PKCS#7 DER): bad signature."""
    data = bytearray(signed["stub"]["ringil"].read_bytes())
    _, cdir, _ = pe_offsets(data)
    table_off, _ = struct.unpack_from("<II", data, cdir)
    dw_len = struct.unpack_from("<I", data, table_off)[0]
    data[table_off + dw_len - 5] ^= 0x40
    f = tmp_path / "forged.efi"
    f.write_bytes(data)
    assert_rejected(ringil, pki, f, EXIT_BADSIG)


@pytest.mark.parametrize("name", BINARIES)
def test_unsigned_rejected(ringil, pki, name):
    p = ringil("efi", "verify", "--cert", pki["cert"], BINARIES[name])
    assert p.returncode == EXIT_BADSIG and "not signed" in p.err
    assert sbverify(pki["cert"], BINARIES[name]).returncode != 0


@pytest.mark.parametrize("cut", ["table", "section", "headers"])
def test_truncated_rejected(ringil, pki, signed, tmp_path, cut):
    data = signed["stub"]["ringil"].read_bytes()
    _, cdir, _ = pe_offsets(data)
    table_off, _ = struct.unpack_from("<II", data, cdir)
    n = {"table": table_off + 100, "section": 0x5000, "headers": 0x100}[cut]
    f = tmp_path / "truncated.efi"
    f.write_bytes(data[:n])
    assert_rejected(ringil, pki, f, EXIT_MALFORMED)
    assert "beyond the end of the file" in ringil("efi", "verify", "--cert", pki["cert"], f).err


@pytest.mark.parametrize("defect", ["mz", "pe-signature", "opt-magic", "cert-dir", "dwlength"])
def test_malformed_rejected(ringil, pki, signed, tmp_path, defect):
    data = bytearray(signed["stub"]["ringil"].read_bytes())
    _, cdir, _ = pe_offsets(data)
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    table_off, _ = struct.unpack_from("<II", data, cdir)
    if defect == "mz":
        data[0:2] = b"ZM"
    elif defect == "pe-signature":
        data[lfanew:lfanew + 4] = b"PX\0\0"
    elif defect == "opt-magic":
        struct.pack_into("<H", data, lfanew + 24, 0x30B)
    elif defect == "cert-dir":
        struct.pack_into("<I", data, cdir + 4, 0x7FFFFFF8)      # table size far beyond the file
    elif defect == "dwlength":
        struct.pack_into("<I", data, table_off, 0x10000)       # entry overruns the table
    f = tmp_path / "malformed.efi"
    f.write_bytes(data)
    p = ringil("efi", "verify", "--cert", pki["cert"], f)
    assert p.returncode == EXIT_MALFORMED, p.err
    assert len(p.err.strip().splitlines()) == 1
    # sbverify does not check the table layout (it trusts dwLength), so compare only where it parses.
    if defect in ("mz", "pe-signature", "opt-magic"):
        assert sbverify(pki["cert"], f).returncode != 0
    # Signing refuses a malformed image too.
    assert ringil("efi", "sign", "--key", pki["key"], "--cert", pki["cert"], "--output", tmp_path / "o", f
                  ).returncode == EXIT_MALFORMED
    assert not (tmp_path / "o").exists()


def test_not_pe_and_empty(ringil, pki, tmp_path):
    for content in (b"", b"\x7fELF" + b"\0" * 200, b"MZ" + b"\0" * 62):
        f = tmp_path / "x.efi"
        f.write_bytes(content)
        p = ringil("efi", "verify", "--cert", pki["cert"], f)
        assert p.returncode == EXIT_MALFORMED, p.err
        assert ringil("efi", "hash", f).returncode == EXIT_MALFORMED


def test_expired_certificate_accepted_like_firmware(ringil, pki, tmp_path):
    """Firmware has no clock: a db certificate that expired in 2020 still verifies (sbverify agrees)."""
    f = tmp_path / "old.efi"
    ringil("efi", "sign", "--key", pki["old_key"], "--cert", pki["old_cert"], "--output", f, BINARIES["stub"],
           check=0)
    ringil("efi", "verify", "--cert", pki["old_cert"], f, check=0)
    assert sbverify(pki["old_cert"], f).returncode == 0


def test_chain_to_ca(ringil, pki, tmp_path):
    """Signed by a leaf, trusted through its CA (db holding a CA certificate)."""
    f = tmp_path / "leaf.efi"
    ringil("efi", "sign", "--key", pki["leaf_key"], "--cert", pki["leaf_cert"], "--output", f, BINARIES["stub"],
           check=0)
    p = ringil("efi", "verify", "--cert", pki["ca_cert"], f, check=0)
    assert "signer /CN=ringil test leaf" in p.out
    assert sbverify(pki["ca_cert"], f).returncode == 0
    assert ringil("efi", "verify", "--cert", pki["cert"], f).returncode == EXIT_UNTRUSTED


def test_default_output_and_in_place(ringil, pki, tmp_path):
    src = tmp_path / "BOOTX64.EFI"
    shutil.copy(BINARIES["boot"], src)
    ringil("efi", "sign", "--key", pki["key"], "--cert", pki["cert"], src, check=0)
    assert (tmp_path / "BOOTX64.EFI.signed").is_file()          # sbsign's default name
    assert src.read_bytes() == BINARIES["boot"].read_bytes()
    ringil("efi", "sign", "--key", pki["key"], "--cert", pki["cert"], "--output", src, src, check=0)
    assert sbverify(pki["cert"], src).returncode == 0
    assert list(tmp_path.iterdir()) == [src, tmp_path / "BOOTX64.EFI.signed"] or \
        sorted(tmp_path.iterdir()) == sorted([src, tmp_path / "BOOTX64.EFI.signed"])


def test_resign_replaces_or_appends(ringil, pki, signed, tmp_path):
    base = signed["stub"]["sbsign"]          # signed by our key, via sbsign
    replaced, appended = tmp_path / "replaced.efi", tmp_path / "appended.efi"
    p = ringil("efi", "sign", "--key", pki["other_key"], "--cert", pki["other_cert"], "--output", replaced, base,
               check=0)
    assert "Replaced 1 existing signature" in p.err
    assert "signature 1 of 1" in ringil("efi", "verify", "--cert", pki["other_cert"], replaced, check=0).out
    assert ringil("efi", "verify", "--cert", pki["cert"], replaced).returncode == EXIT_UNTRUSTED
    # Replacing leaves exactly one signature: the same size as the unsigned image signed afresh with the
    # same key (certificates of different keys differ in length, so base is no reference).
    fresh = tmp_path / "fresh.efi"
    ringil("efi", "sign", "--key", pki["other_key"], "--cert", pki["other_cert"], "--output", fresh,
           BINARIES["stub"], check=0)
    assert len(replaced.read_bytes()) == len(fresh.read_bytes())

    ringil("efi", "sign", "--append", "--key", pki["other_key"], "--cert", pki["other_cert"], "--output",
           appended, base, check=0)
    assert "signature 1 of 2" in ringil("efi", "verify", "--cert", pki["cert"], appended, check=0).out
    assert "signature 2 of 2" in ringil("efi", "verify", "--cert", pki["other_cert"], appended, check=0).out
    assert sbverify(pki["cert"], appended).returncode == 0       # sbverify reads the first entry
    # sbsign appending to our image: both entries are found by ringil.
    both = tmp_path / "both.efi"
    run("sbsign", "--key", pki["other_key"], "--cert", pki["other_cert"], "--output", both, signed["boot"]["ringil"])
    assert "signature 2 of 2" in ringil("efi", "verify", "--cert", pki["other_cert"], both, check=0).out


def test_key_cert_mismatch_and_usage(ringil, pki, tmp_path):
    out = tmp_path / "o.efi"
    p = ringil("efi", "sign", "--key", pki["other_key"], "--cert", pki["cert"], "--output", out, BINARIES["stub"])
    assert p.returncode == EXIT_USAGE and "does not belong" in p.err
    assert not out.exists()
    assert ringil("efi", "sign", "--cert", pki["cert"], BINARIES["stub"]).returncode == EXIT_USAGE
    assert ringil("efi", "verify", BINARIES["stub"]).returncode == EXIT_USAGE
    assert ringil("efi", "verify", "--cert", pki["cert"], tmp_path / "missing.efi").returncode == 12
    assert ringil("efi", "frob").returncode == EXIT_USAGE
    assert ringil("efi").returncode == EXIT_USAGE


def test_help(ringil):
    for verb in ("sign", "verify", "hash"):
        p = ringil("efi", verb, "--help", check=0)
        assert p.out.startswith(f"Usage: ringil efi {verb}") and "Exit codes:" in p.out
    p = ringil("efi", "--help", check=0)
    assert p.out.startswith("Usage: ringil efi") and "Exit codes:" in p.out
    assert "efi" in ringil("--help", check=0).out
