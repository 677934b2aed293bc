"""test_uki.py: `ringil efi uki` on real parts (Debian's systemd-stub for x86-64 and arm64, Debian's kernels) checked
with objdump/objcopy, against ukify's layout rules, with sbverify, through `ringil bundle` and `ringil install`, every
bad input refused with nothing written, and one boot of the UKI under OVMF."""
import gzip
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

import debcache
from conftest import BUILD

STUB_DIR = Path("/usr/lib/systemd/boot/efi")
STUB_X64 = STUB_DIR / "linuxx64.efi.stub"
MALFORMED, INCOMPAT, NOTFOUND, USAGE = 3, 8, 12, 2
OSREL = 'NAME="ringil"\nID=ringil\nVERSION_ID=2.0\nPRETTY_NAME="ringil drone 2.0"\n'
CMDLINE = "console=ttyS0 quiet lockdown=integrity"


def run(*args, check=True, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, timeout=300, **kw)
    if check:
        assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p


def round_up(x, a):
    return (x + a - 1) // a * a


# ---------------------------------------------------------------- inputs made here: cpio, FDT, BMP

def newc(files) -> bytes:
    """A cpio "newc" archive of {name: (mode, bytes)} (directories: data None), written out here."""
    out = bytearray()

    def entry(ino, name, mode, data):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.extend(hdr.encode() + nb)
        out.extend(b"\0" * (round_up(len(out), 4) - len(out)))
        out.extend(data)
        out.extend(b"\0" * (round_up(len(out), 4) - len(out)))

    for i, (name, (mode, data)) in enumerate(files.items(), 1):
        entry(i, name, mode | (0o040000 if data is None else 0o100000), data or b"")
    entry(0, "TRAILER!!!", 0, b"")
    return bytes(out)


def fdt() -> bytes:
    """A minimal flattened devicetree: an empty root node with a model property."""
    strings = b"model\0"
    model = b"ringil-test-board\0"
    body = struct.pack(">I", 1) + b"\0\0\0\0"                       # FDT_BEGIN_NODE ""
    body += struct.pack(">III", 3, len(model), 0) + model + b"\0" * (round_up(len(model), 4) - len(model))
    body += struct.pack(">II", 2, 9)                                # FDT_END_NODE, FDT_END
    off_rsv, off_struct = 40, 56
    off_strings = off_struct + len(body)
    total = off_strings + len(strings)
    hdr = struct.pack(">10I", 0xd00dfeed, total, off_struct, off_strings, off_rsv, 17, 16, 0, len(strings), len(body))
    return hdr + b"\0" * 16 + body + strings


def bmp() -> bytes:
    """A 2x2 24-bit BMP."""
    pixels = (b"\xff\x00\x00" * 2 + b"\0\0") * 2
    return b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54) + struct.pack(
        "<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, len(pixels), 2835, 2835, 0, 0) + pixels


# ---------------------------------------------------------------- PE reading, written independently of lib/

def parse_pe(data: bytes):
    lf = struct.unpack_from("<I", data, 0x3C)[0]
    machine, nsec, _, symptr, nsym, optsz, chars = struct.unpack_from("<HHIIIHH", data, lf + 4)
    opt = lf + 24
    sa, fa = struct.unpack_from("<II", data, opt + 32)
    soi, soh, csum = struct.unpack_from("<III", data, opt + 56)
    secs = []
    for i in range(nsec):
        o = opt + optsz + 40 * i
        name, vs, va, rs, rp = struct.unpack_from("<8sIIII", data, o)
        secs.append(dict(name=name.rstrip(b"\0").decode(), vs=vs, va=va, raw=rs, ptr=rp,
                         chars=struct.unpack_from("<I", data, o + 36)[0]))
    return dict(machine=machine, sa=sa, fa=fa, size_of_image=soi, size_of_headers=soh, checksum=csum,
                checksum_off=opt + 64, symptr=symptr, nsym=nsym, chars=chars, sections=secs,
                table_end=opt + optsz + 40 * nsec)


def pe_checksum(data: bytes, off: int) -> int:
    buf = bytearray(data)
    buf[off:off + 4] = b"\0\0\0\0"
    if len(buf) % 2:
        buf.append(0)
    s = sum(struct.unpack(f"<{len(buf) // 2}H", bytes(buf)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s + len(data)


def ukify_layout(stub: bytes, new):
    """Where systemd's ukify (pe_add_sections) puts new sections [(name, length, vsize)]: the stub's trailing
    COFF symbol table dropped, each section's file data at the file's end rounded up to FileAlignment,
    SizeOfRawData rounded up to it, RVA after the previous section rounded up to SectionAlignment."""
    pe = parse_pe(stub)
    size = len(stub)
    if pe["symptr"]:
        end = pe["symptr"] + 18 * pe["nsym"]
        end += struct.unpack_from("<I", stub, end)[0]
        if end == size:
            size = pe["symptr"]
    last = pe["sections"][-1]
    va, out = round_up(last["va"] + last["vs"], pe["sa"]), []
    for name, length, vsize in new:
        ptr = round_up(size, pe["fa"])
        raw = round_up(length, pe["fa"])
        out.append(dict(name=name, va=va, vs=vsize, ptr=ptr, raw=raw))
        size = ptr + raw
        va = round_up(va + vsize, pe["sa"])
    return out, va


def objdump_sections(path: Path, objdump="objdump"):
    """[(name, size, vma, file offset)] from `objdump -h`."""
    out = run(objdump, "-h", path).stdout.decode()
    rows = re.findall(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+2\*\*\d+", out, re.M)
    return [(n, int(s, 16), int(v, 16), int(o, 16)) for n, s, v, o in rows]


def objcopy_section(path: Path, name: str, tmp: Path, objcopy="objcopy") -> bytes:
    out = tmp / f"sec{name}"
    run(objcopy, "-O", "binary", f"--only-section={name}", path, out)
    return out.read_bytes()


# ---------------------------------------------------------------- fixtures

def kernel_release(path: Path) -> str:
    return path.name.split("vmlinuz-", 1)[1]


def x86_kernel() -> Path:
    for k in sorted(Path("/boot").glob("vmlinuz-*-amd64"), reverse=True):
        if os.access(k, os.R_OK):
            return k
    try:
        d = debcache.unpack(debcache.deb(debcache.metapackage_target("linux-image-amd64", "amd64"), "amd64"), "./boot")
    except debcache.Unavailable as e:
        pytest.skip(f"no x86-64 kernel: linux-image-amd64 not installed and not downloadable ({e})")
    return sorted((d / "boot").glob("vmlinuz-*"))[-1]


@pytest.fixture(scope="session")
def parts(tmp_path_factory):
    if not STUB_X64.exists():
        pytest.skip("systemd-boot-efi not installed (scripts/deps.sh installs it)")
    d = tmp_path_factory.mktemp("uki-parts")
    p = {"dir": d, "kernel": x86_kernel(), "stub": STUB_X64}
    (d / "os-release").write_text(OSREL)
    p["osrel"] = d / "os-release"
    p["initrd1"] = d / "first.cpio"
    p["initrd1"].write_bytes(newc({"etc": (0o755, None), "etc/ringil-early": (0o644, b"early cpio, odd length\n!")}))
    p["initrd2"] = d / "second.cpio.gz"
    p["initrd2"].write_bytes(gzip.compress(newc({"hello": (0o644, b"x" * 1001)}), mtime=0))
    p["dtb"] = d / "board.dtb"
    p["dtb"].write_bytes(fdt())
    p["splash"] = d / "splash.bmp"
    p["splash"].write_bytes(bmp())
    for name in ("db", "other"):
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / f"{name}.key",
            "-out", d / f"{name}.pem", "-days", "30", "-subj", f"/CN=ringil uki test {name}")
        p[name + "_key"], p[name + "_cert"] = d / f"{name}.key", d / f"{name}.pem"
    return p


def build(ringil, p, out, *extra, stub=True, kernel=None, check=None):
    args = ["efi", "uki", "--linux", kernel or p["kernel"], "--output", out]
    if stub:
        args += ["--stub", p["stub"] if stub is True else stub]
    return ringil(*args, *extra, check=check)


def full_args(p):
    return ["--os-release", f"@{p['osrel']}", "--cmdline", CMDLINE, "--devicetree", p["dtb"],
            "--splash", p["splash"], "--initrd", p["initrd1"], "--initrd", p["initrd2"]]


def expected_initrd(*files):
    data = [f.read_bytes() for f in files]
    if len(data) == 1:
        return data[0]
    return b"".join(x + b"\0" * (round_up(len(x), 4) - len(x)) for x in data)


def check_layout(uki: Path, stub: Path, contents, kernel: Path, objdump, objcopy, tmp: Path):
    """The UKI against the stub, ukify's rules and the section contents; contents is [(name, bytes)]."""
    data, sdata = uki.read_bytes(), stub.read_bytes()
    pe, spe = parse_pe(data), parse_pe(sdata)
    n_stub = len(spe["sections"])
    kpe = parse_pe(kernel.read_bytes())
    names = [s["name"] for s in pe["sections"]]
    assert names == [s["name"] for s in spe["sections"]] + [n for n, _ in contents]
    # the stub's own sections untouched, byte for byte
    for s, t in zip(spe["sections"], pe["sections"]):
        assert s == t
        assert data[t["ptr"]:t["ptr"] + t["raw"]] == sdata[s["ptr"]:s["ptr"] + s["raw"]]
    # what ukify would produce: same RVAs, sizes and file offsets
    want, size_of_image = ukify_layout(sdata, [(n, len(c), max(len(c), kpe["size_of_image"]) if n == ".linux"
                                               else len(c)) for n, c in contents])
    got = [{k: s[k] for k in ("name", "va", "vs", "ptr", "raw")} for s in pe["sections"][n_stub:]]
    assert got == want
    assert pe["size_of_image"] == size_of_image
    assert pe["symptr"] == 0 and pe["nsym"] == 0
    assert pe["checksum"] == pe_checksum(data, pe["checksum_off"])
    assert pe["table_end"] <= pe["size_of_headers"]
    # no overlap, in memory or in the file; alignment
    spans = sorted((s["va"], s["va"] + (s["vs"] or s["raw"])) for s in pe["sections"])
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    files = sorted((s["ptr"], s["ptr"] + s["raw"]) for s in pe["sections"] if s["raw"])
    assert all(a[1] <= b[0] for a, b in zip(files, files[1:])), files
    assert files[-1][1] == len(data)   # .linux ends the file
    for s in pe["sections"][n_stub:]:
        assert s["va"] % pe["sa"] == 0 and s["ptr"] % pe["fa"] == 0 and s["raw"] % pe["fa"] == 0
        assert s["chars"] == (0x40000020 if s["name"] == ".linux" else 0x40000040)
    # objdump agrees on names, RVAs and offsets; objcopy returns each content
    od = objdump_sections(uki, objdump)
    assert [r[0] for r in od] == names
    for (name, _, vma, off), s in zip(od, pe["sections"]):
        assert (vma, off) == (s["va"], s["ptr"]), name
    for name, content in contents:
        got = objcopy_section(uki, name, tmp, objcopy)
        # BFD sizes a section min(VirtualSize, SizeOfRawData): .linux comes back with its file padding
        assert got[:len(content)] == content, name
        assert got[len(content):] == b"\0" * (len(got) - len(content)), name


# ---------------------------------------------------------------- x86-64

def test_x86_64_layout_and_contents(ringil, parts, tmp_path):
    out = tmp_path / "linux.efi"
    p = build(ringil, parts, out, *full_args(parts))
    assert p.returncode == 0, p.err
    release = kernel_release(parts["kernel"])
    assert f"x86-64 UKI" in p.out and f"kernel {release}" in p.out and "systemd-stub" in p.out
    assert re.search(r"^\s+\.linux\s+0x", p.out, re.M)
    contents = [(".osrel", OSREL.encode()), (".cmdline", CMDLINE.encode()), (".dtb", parts["dtb"].read_bytes()),
                (".uname", release.encode()), (".splash", parts["splash"].read_bytes()),
                (".initrd", expected_initrd(parts["initrd1"], parts["initrd2"])),
                (".linux", parts["kernel"].read_bytes())]
    check_layout(out, parts["stub"], contents, parts["kernel"], "objdump", "objcopy", tmp_path)
    # Debian's x86-64 stub carries a COFF symbol table at its end: dropped, as ukify does
    assert parse_pe(parts["stub"].read_bytes())["symptr"] != 0


def test_x86_64_minimal_and_uname(ringil, parts, tmp_path):
    """Only a kernel and one initrd, --uname given, the default stub for the kernel's machine."""
    out = tmp_path / "min.efi"
    p = build(ringil, parts, out, "--initrd", parts["initrd1"], "--uname", "6.1.99-custom", stub=False)
    assert p.returncode == 0, p.err
    assert "No --os-release" in p.err   # told, not refused
    contents = [(".uname", b"6.1.99-custom"), (".initrd", parts["initrd1"].read_bytes()),
                (".linux", parts["kernel"].read_bytes())]
    check_layout(out, STUB_X64, contents, parts["kernel"], "objdump", "objcopy", tmp_path)


def test_signed_uki_passes_sbverify_and_ringil(ringil, parts, tmp_path):
    signed, unsigned = tmp_path / "signed.efi", tmp_path / "unsigned.efi"
    args = ["--os-release", f"@{parts['osrel']}", "--cmdline", CMDLINE, "--initrd", parts["initrd1"]]
    assert build(ringil, parts, unsigned, *args).returncode == 0
    p = build(ringil, parts, signed, *args, "--key", parts["db_key"], "--cert", parts["db_cert"])
    assert p.returncode == 0, p.err
    assert "signed by" in p.out and "ringil uki test db" in p.out
    run("sbverify", "--cert", parts["db_cert"], signed)
    assert ringil("efi", "verify", "--cert", parts["db_cert"], signed).returncode == 0
    assert run("sbverify", "--cert", parts["other_cert"], signed, check=False).returncode != 0
    assert ringil("efi", "verify", "--cert", parts["other_cert"], signed).returncode == 5
    # signing covers exactly the image built: same Authenticode hash as the unsigned one, and the same
    # bytes up to the certificate table
    h = lambda f: ringil("efi", "hash", f, check=0).out.split()[0]
    assert h(signed) == h(unsigned)
    assert parse_pe(signed.read_bytes())["sections"] == parse_pe(unsigned.read_bytes())["sections"]
    # a peer signs what we build: sbsign on the unsigned UKI, ringil verifies it
    peer = tmp_path / "peer.efi"
    run("sbsign", "--key", parts["db_key"], "--cert", parts["db_cert"], "--output", peer, unsigned)
    assert ringil("efi", "verify", "--cert", parts["db_cert"], peer).returncode == 0


def test_cmdline_file_and_output_replaced(ringil, parts, tmp_path):
    (tmp_path / "cmdline").write_text(CMDLINE + "\n")
    out = tmp_path / "x.efi"
    out.write_bytes(b"old")
    assert build(ringil, parts, out, "--cmdline", f"@{tmp_path / 'cmdline'}").returncode == 0
    pe = parse_pe(out.read_bytes())
    c = next(s for s in pe["sections"] if s["name"] == ".cmdline")
    assert out.read_bytes()[c["ptr"]:c["ptr"] + c["vs"]] == CMDLINE.encode()   # trailing newline dropped
    assert sorted(os.listdir(tmp_path)) == ["cmdline", "x.efi"]   # no temporary file left behind


# ---------------------------------------------------------------- bad inputs: one line, exit code, nothing written

def _patched_stub(parts, tmp, fn, name):
    data = bytearray(parts["stub"].read_bytes())
    fn(data, parse_pe(bytes(data)))
    out = tmp / name
    out.write_bytes(bytes(data))
    return out


def _sec_off(pe, i, field):
    """File offset of a field of section header i."""
    return pe["table_end"] - 40 * (len(pe["sections"]) - i) + {"va": 12, "ptr": 20, "vs": 8}[field]


def _set_machine(d, pe, m=0xAA64):
    lf = struct.unpack_from("<I", d, 0x3C)[0]
    struct.pack_into("<H", d, lf + 4, m)


BAD = {
    "missing stub": (lambda p, t: ["--stub", t / "nonexistent.stub"], NOTFOUND, "nonexistent.stub"),
    "stub not PE": (lambda p, t: ["--stub", p["osrel"]], MALFORMED, "stub"),
    "stub for another machine": (lambda p, t: ["--stub", _patched_stub(p, t, _set_machine, "aa.stub")],
                                 INCOMPAT, "stub is for aarch64 but the kernel is for x86-64"),
    "stub sections overlap in memory": (
        lambda p, t: ["--stub", _patched_stub(
            p, t, lambda d, pe: struct.pack_into("<I", d, _sec_off(pe, 1, "va"), pe["sections"][0]["va"] + 0x100),
            "ov.stub")], MALFORMED, "overlap"),
    "stub sections overlap in file": (
        lambda p, t: ["--stub", _patched_stub(
            p, t, lambda d, pe: struct.pack_into("<I", d, _sec_off(pe, 2, "ptr"), pe["sections"][1]["ptr"]),
            "ovf.stub")], MALFORMED, "overlap"),
    "stub is already a UKI": (lambda p, t: ["--stub", _uki_as_stub(p, t)], MALFORMED, "already has"),
    "stub signed": (lambda p, t: ["--stub", _signed_stub(p, t)], MALFORMED, "signed"),
    "no header room": (lambda p, t: full_args(p) + ["--devicetree", p["dtb"]], MALFORMED, "header room"),
    "kernel missing": (lambda p, t: ["--linux", t / "vmlinuz-nope"], NOTFOUND, "vmlinuz-nope"),
    "kernel gzip": (lambda p, t: ["--linux", _gzipped_kernel(p, t)], MALFORMED, "gzip"),
    "kernel is an initrd": (lambda p, t: ["--linux", p["initrd1"]], MALFORMED, "MZ"),
    "kernel ELF": (lambda p, t: ["--linux", _file(t, "vmlinux", b"\x7fELF\x02\x01\x01" + bytes(100))], MALFORMED,
                   "ELF"),
    "initrd not cpio": (lambda p, t: ["--initrd", p["dtb"]], MALFORMED, "cpio"),
    "initrd missing": (lambda p, t: ["--initrd", t / "nope.cpio"], NOTFOUND, "nope.cpio"),
    "devicetree not FDT": (lambda p, t: ["--devicetree", p["initrd1"]], MALFORMED, "devicetree"),
    "splash not BMP": (lambda p, t: ["--splash", p["dtb"]], MALFORMED, "BMP"),
    "cmdline two lines": (lambda p, t: ["--cmdline", "console=ttyS0\ninit=/bin/sh"], MALFORMED, "control"),
    "cmdline too long": (lambda p, t: ["--cmdline", "a" * 2048], MALFORMED, "2047"),
    "os-release not KEY=VALUE": (lambda p, t: ["--os-release", "ID=x\nthis is not os-release"], MALFORMED, "line 2"),
    "section a stub name": (lambda p, t: ["--section", f".linuxh:{p['dtb']}"], MALFORMED, ".linuxh"),
    "section bad spec": (lambda p, t: ["--section", "nocolon"], USAGE, "--section"),
    "bad uname": (lambda p, t: ["--uname", "6.1 evil"], MALFORMED, "uname"),
    "key does not match cert": (lambda p, t: ["--key", p["other_key"], "--cert", p["db_cert"]], USAGE, ""),
    "key without cert": (lambda p, t: ["--key", p["db_key"]], USAGE, "--cert"),
}


def _file(t, name, data):
    (t / name).write_bytes(data)
    return t / name


def _gzipped_kernel(p, t):
    return _file(t, "vmlinuz.gz", gzip.compress(p["kernel"].read_bytes()[:200000], mtime=0))


def _uki_as_stub(p, t):
    out = t / "already.efi"
    subprocess.run([str(BUILD / "ringil" / "ringil"), "efi", "uki", "--stub", str(p["stub"]), "--linux",
                    str(p["kernel"]), "--output", str(out)], check=True, capture_output=True)
    return out


def _signed_stub(p, t):
    out = t / "signed.stub"
    subprocess.run([str(BUILD / "ringil" / "ringil"), "efi", "sign", "--key", str(p["db_key"]), "--cert",
                    str(p["db_cert"]), "--output", str(out), str(p["stub"])], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("case", BAD)
def test_bad_input_refused_nothing_written(ringil, parts, tmp_path, case):
    make, code, words = BAD[case]
    extra = make(parts, tmp_path)
    # later options win: the bad one replaces the good default where both are given
    args = ["efi", "uki", "--stub", parts["stub"], "--linux", parts["kernel"], "--initrd", parts["initrd1"]]
    out = tmp_path / "out" / "uki.efi"
    out.parent.mkdir()
    out.write_bytes(b"previous build")
    p = ringil(*args, *extra, "--output", out)
    assert p.returncode == code, p.out + p.err
    assert words in p.err and len(p.err.strip().splitlines()) == 1, p.err
    assert p.out == ""
    assert out.read_bytes() == b"previous build"
    assert sorted(x.name for x in out.parent.iterdir()) == ["uki.efi"]


def test_header_room_boundary(ringil, parts, tmp_path):
    """Debian's x86-64 stub has room for 7 more section headers: 7 fit, 8 are refused (test above)."""
    out = tmp_path / "seven.efi"
    assert build(ringil, parts, out, *full_args(parts)).returncode == 0
    assert len(parse_pe(out.read_bytes())["sections"]) == len(parse_pe(STUB_X64.read_bytes())["sections"]) + 7


def test_help(ringil):
    p = ringil("efi", "uki", "--help", check=0)
    assert p.out.startswith("Usage: ringil efi uki") and "Exit codes:" in p.out and "--devicetree" in p.out
    assert "uki" in ringil("efi", "--help", check=0).out


# ---------------------------------------------------------------- arm64 (the Jetson's architecture)

@pytest.fixture(scope="session")
def arm64(parts):
    try:
        stub_root = debcache.unpack(debcache.deb("systemd-boot-efi", "arm64"))
        kpkg = debcache.metapackage_target("linux-image-arm64", "arm64")
        kroot = debcache.unpack(debcache.deb(kpkg, "arm64"), "./boot")
    except debcache.Unavailable as e:
        pytest.skip(f"arm64 parts not available from Debian's mirror: {e}")
    kernel = sorted((kroot / "boot").glob("vmlinuz-*"))[-1]
    tools = {}
    for tool in ("objdump", "objcopy"):
        cross = shutil.which(f"aarch64-linux-gnu-{tool}")
        tools[tool] = cross
    return {"stub": stub_root / "usr/lib/systemd/boot/efi/linuxaa64.efi.stub", "kernel": kernel, **tools}


def test_arm64_uki_layout_and_signature(ringil, parts, arm64, tmp_path):
    out = tmp_path / "linuxaa64.efi"
    p = build(ringil, parts, out, "--os-release", f"@{parts['osrel']}", "--cmdline", "console=ttyAMA0",
              "--devicetree", parts["dtb"], "--initrd", parts["initrd1"], "--initrd", parts["initrd2"],
              "--key", parts["db_key"], "--cert", parts["db_cert"], stub=arm64["stub"], kernel=arm64["kernel"])
    assert p.returncode == 0, p.err
    release = kernel_release(arm64["kernel"])
    assert "aarch64 UKI" in p.out and f"kernel {release}" in p.out
    data = out.read_bytes()
    assert parse_pe(data)["machine"] == 0xAA64
    run("sbverify", "--cert", parts["db_cert"], out)
    assert ringil("efi", "verify", "--cert", parts["db_cert"], out).returncode == 0
    contents = [(".osrel", OSREL.encode()), (".cmdline", b"console=ttyAMA0"), (".dtb", parts["dtb"].read_bytes()),
                (".uname", release.encode()), (".initrd", expected_initrd(parts["initrd1"], parts["initrd2"])),
                (".linux", arm64["kernel"].read_bytes())]
    if not arm64["objdump"]:
        pytest.skip("binutils-aarch64-linux-gnu not installed: layout checked by the signature only")
    # signed: compare the layout on the image without its certificate table (what was built)
    unsigned = tmp_path / "unsigned.efi"
    assert build(ringil, parts, unsigned, "--os-release", f"@{parts['osrel']}", "--cmdline", "console=ttyAMA0",
                 "--devicetree", parts["dtb"], "--initrd", parts["initrd1"], "--initrd", parts["initrd2"],
                 stub=arm64["stub"], kernel=arm64["kernel"]).returncode == 0
    assert parse_pe(data)["sections"] == parse_pe(unsigned.read_bytes())["sections"]
    check_layout(unsigned, arm64["stub"], contents, arm64["kernel"], arm64["objdump"], arm64["objcopy"], tmp_path)
    # the aarch64 stub's header padding (NOPs) is overwritten by the new headers, nothing else
    spe = parse_pe(arm64["stub"].read_bytes())
    assert data[spe["table_end"] + 40 * 6:spe["size_of_headers"]] == arm64["stub"].read_bytes()[
        spe["table_end"] + 40 * 6:spe["size_of_headers"]]


def test_arm64_refusals(ringil, parts, arm64, tmp_path):
    out = tmp_path / "o.efi"
    # an x86-64 kernel on the arm64 stub, and the other way round
    p = build(ringil, parts, out, stub=arm64["stub"])
    assert p.returncode == INCOMPAT and "stub is for aarch64 but the kernel is for x86-64" in p.err
    p = build(ringil, parts, out, kernel=arm64["kernel"])
    assert p.returncode == INCOMPAT and "stub is for x86-64 but the kernel is for aarch64" in p.err
    # no --stub: the arm64 stub is looked for where systemd-boot-efi:arm64 would put it
    if not (STUB_DIR / "linuxaa64.efi.stub").exists():
        p = build(ringil, parts, out, stub=False, kernel=arm64["kernel"])
        assert p.returncode == NOTFOUND and "linuxaa64.efi.stub" in p.err and "aarch64" in p.err
    # Debian's arm64 vmlinuz is an uncompressed Image; gzip'd, it is refused with the reason
    gz = _file(tmp_path, "Image.gz", gzip.compress(arm64["kernel"].read_bytes()[:300000], mtime=0))
    p = build(ringil, parts, out, stub=arm64["stub"], kernel=gz)
    assert p.returncode == MALFORMED and "gzip" in p.err
    assert not out.exists()


# ---------------------------------------------------------------- the UKI as a bundle payload, installed

def test_bundle_with_uki_payload_installs(ringil, parts, tmp_path):
    uki = tmp_path / "linux.efi"
    assert build(ringil, parts, uki, "--os-release", f"@{parts['osrel']}", "--cmdline", CMDLINE,
                 "--initrd", parts["initrd1"], "--key", parts["db_key"], "--cert", parts["db_cert"]).returncode == 0
    rootfs = _file(tmp_path, "rootfs.img", os.urandom(3 * 4096 + 17))
    bundle = tmp_path / "v2.rb"
    ringil("bundle", "create", "--key", parts["db_key"], "--cert", parts["db_cert"], "--compatible", "drone-x1",
           "--version", "2.0", "--chunk-size", "64K", "--payload", f"rootfs:raw={rootfs}",
           "--payload", f"uki:efi={uki}", "--output", bundle, check=0)
    ringil("bundle", "verify", "--keyring", parts["db_cert"], "--compatible", "drone-x1", bundle, check=0)
    import json
    info = json.loads(ringil("bundle", "info", "--json", bundle, check=0).out)
    efi = [x for x in info["payloads"] if x["type"] == "efi"]
    assert len(efi) == 1 and efi[0]["size"] == uki.stat().st_size

    esp, state = tmp_path / "esp", tmp_path / "state"
    esp.mkdir()
    slots = {s: _file(tmp_path, f"slot-{s}", b"\0" * (4 * 4096)) for s in "ab"}
    conf = _file(tmp_path, "device.conf", f"""[device]
compatible = drone-x1
keyring = {parts['db_cert']}
esp = {esp}
state-dir = {state}
efivarfs = {tmp_path / 'efivars'}
[boot]
linux = /EFI/ringil/vmlinuz
[slot.rootfs.a]
device = {slots['a']}
[slot.rootfs.b]
device = {slots['b']}
""".encode())
    ringil("install", "--config", conf, "--slot", "a", bundle, check=0)
    placed = list((esp / "EFI" / "ringil").glob("*.efi"))
    assert len(placed) == 1 and placed[0].read_bytes() == uki.read_bytes()
    run("sbverify", "--cert", parts["db_cert"], placed[0])
    entries = list((esp / "loader" / "entries").glob("*.conf"))
    # Under the `linux` key, which every systemd-boot counts (docs/install.md, tests/vm/test_loaders.py).
    assert len(entries) == 1 and f"\nlinux /EFI/ringil/{placed[0].name}\n" in entries[0].read_text()


# ---------------------------------------------------------------- it boots: OVMF, TCG, a vfat ESP

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BUSYBOX = Path("/bin/busybox")
MARKER = "RINGIL-UKI-BOOTED"
INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "{MARKER} release=$(/bin/busybox uname -r) cmdline=[$(/bin/busybox cat /proc/cmdline)]"
/bin/busybox poweroff -f
"""


def _is_static_elf(path: Path) -> bool:
    """No PT_INTERP program header: runs in an initramfs without a dynamic loader."""
    d = path.read_bytes()
    if d[:4] != b"\x7fELF" or d[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", d, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", d, 0x36)
    return all(struct.unpack_from("<I", d, phoff + i * phentsize)[0] != 3 for i in range(phnum))


@pytest.mark.slow
def test_x86_64_uki_boots_under_ovmf(ringil, parts, tmp_path):
    for need in ("qemu-system-x86_64", "mkfs.vfat", "mcopy", "mmd"):
        if not shutil.which(need):
            pytest.skip(f"{need} not installed (scripts/deps.sh installs it)")
    if not OVMF_CODE.exists() or not BUSYBOX.exists() or not _is_static_elf(BUSYBOX):
        pytest.skip("ovmf or busybox-static not installed (scripts/deps.sh installs them)")
    initrd = _file(tmp_path, "init.cpio", newc({
        "bin": (0o755, None), "proc": (0o755, None), "dev": (0o755, None),
        "bin/busybox": (0o755, BUSYBOX.read_bytes()), "init": (0o755, INIT.encode())}))
    cmdline = "console=ttyS0 panic=-1 quiet"
    uki = tmp_path / "BOOTX64.EFI"
    assert build(ringil, parts, uki, "--initrd", initrd, "--cmdline", cmdline, "--os-release", f"@{parts['osrel']}",
                 "--key", parts["db_key"], "--cert", parts["db_cert"]).returncode == 0
    esp = tmp_path / "esp.img"
    run("mkfs.vfat", "-C", esp, "32768")
    run("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
    run("mcopy", "-i", esp, uki, "::/EFI/BOOT/BOOTX64.EFI")
    vars_ = tmp_path / "vars.fd"
    shutil.copy(OVMF_VARS, vars_)
    log = tmp_path / "serial.log"
    t0 = time.monotonic()
    q = subprocess.run(["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "512", "-display", "none",
                        "-no-reboot", "-net", "none",
                        "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                        "-drive", f"if=pflash,format=raw,file={vars_}",
                        "-drive", f"if=virtio,format=raw,file={esp}", "-serial", f"file:{log}"],
                       capture_output=True, timeout=300)
    seconds = time.monotonic() - t0
    print(f"OVMF boot of the UKI to init and poweroff: {seconds:.1f} s (TCG)")   # shown with -rP / -s
    text = log.read_text(errors="replace") if log.exists() else ""
    tail = "\n".join(text.splitlines()[-40:])
    assert q.returncode == 0, f"qemu exit {q.returncode}: {q.stderr.decode()[-500:]}\n{tail}"
    m = re.search(rf"{MARKER} release=(\S+) cmdline=\[([^\]]*)\]", text)
    assert m, f"the UKI did not reach its init in {seconds:.0f} s; last serial lines:\n{tail}"
    assert m.group(1) == kernel_release(parts["kernel"])
    assert m.group(2) == cmdline   # the .cmdline section, not anything the firmware passed
