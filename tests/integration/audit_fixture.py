"""audit_fixture.py: builds the golden prod drone root for `ringil audit` tests, and its drift mutations.

The tree is generated at test time (session-scoped certificates, a fresh copy per test): efivars with
their 4-byte attribute prefix, ESLs made by efitools' cert-to-efi-sig-list from a pkiBundle laid out as
lanzaboote/sbctl do, /proc and /sys snapshots, udev data, a LUKS2 header with a systemd-tpm2 token,
an ESP loader.conf, accounts, journald.conf with drop-ins, and NixOS-style ABSOLUTE symlinks
(/etc/static -> /nix/store/...) that only resolve correctly inside --root.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
DBGUID = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
LOADER = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
MOR = "e20939be-32d4-41be-a150-897f85d49829"
FLEET_GUID = "3f5c2a8e-7b1d-4c9e-9a6f-0d2b8e4c1a77"
FOREIGN_GUID = "77fa9abd-0359-4d32-bd60-28f4e78f784b"
LUKS_UUID = "6c1f0a9e-2b7d-4e35-8c4a-91d0f3b2e5a8"
STORE_ETC = "/nix/store/0k3x9d2vbl6m1q8r5y7z4w3c2a1s0f9g-etc"
STORE_SYS = "/nix/store/9a8b7c6d5e4f3g2h1i0j9k8l7m6n5o4p-nixos-system-drone-25.11"
STORE_SW = "/nix/store/1z2y3x4w5v6u7t8s9r0q1p2o3n4m5l6k-system-path"
EFIVARS = "sys/firmware/efi/efivars"
NV_BS_RT = 0x7
NV_BS_RT_AUTH = 0x27
CMDLINE = (f"initrd=\\EFI\\nixos\\initrd.efi init={STORE_SYS}/init quiet loglevel=0 console=tty0 "
           "init_on_free=1 lockdown=confidentiality")
TCP_HDR = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
UDP_HDR = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n")


ROUTE_HDR = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def route_line(iface, dst, mask, gw, metric=0):
    """One /proc/net/route line: addresses as the kernel prints them (network-order bytes as a host word)."""
    import ipaddress
    hexw = lambda a: f"{int.from_bytes(ipaddress.IPv4Address(a).packed, 'little'):08X}"
    flags = 0x1 | (0x2 if gw != "0.0.0.0" else 0)
    return f"{iface}\t{hexw(dst)}\t{hexw(gw)}\t{flags:04X}\t0\t0\t{metric}\t{hexw(mask)}\t0\t0\t0\n"


def tcp_line(n, port, state, v6=False):
    addr = "0" * 32 if v6 else "00000000"
    return f"   {n}: {addr}:{port:04X} {addr}:0000 {state:02X} 00000000:00000000 00:00000000 00000000     0        0 1000 1 0000000000000000 100 0 0 10 0\n"


class Certs:
    """Self-signed RSA-2048 certificates made once per session with the openssl CLI."""

    def __init__(self, d: Path):
        self.dir = d
        for name in ("PK", "KEK", "db", "foreign"):
            subprocess.run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                            "-days", "3650", "-subj", f"/CN=ringil test {name}", "-keyout", d / f"{name}.key",
                            "-out", d / f"{name}.pem"], check=True, capture_output=True)

    def esl(self, name, guid=FLEET_GUID) -> bytes:
        out = self.dir / f"{name}-{guid}.esl"
        if not out.exists():
            subprocess.run(["cert-to-efi-sig-list", "-g", guid, self.dir / f"{name}.pem", out],
                           check=True, capture_output=True)
        return out.read_bytes()


def guid_bytes(g: str) -> bytes:
    import uuid
    return uuid.UUID(g).bytes_le


def sha256_esl(hashes, owner=FOREIGN_GUID) -> bytes:
    """An EFI_CERT_SHA256 list (dbx-style), built by hand: 28-byte header, then owner GUID + 32-byte hash."""
    sig_size = 16 + 32
    body = b"".join(guid_bytes(owner) + h for h in hashes)
    return guid_bytes("c1c41626-504c-4092-aca9-41f936934328") + struct.pack("<III", 28 + len(body), 0, sig_size) + body


def luks2_header(cipher="aes-xts-plain64", pcrs=(7,), pin=True, srk=True, kdf0="argon2id", slot0_token=None) -> bytes:
    """A LUKS2 header (binary header + JSON area, 16 KiB) with a systemd-tpm2 token, checksum included.
    slot0_token: also attach a token of that type to the passphrase keyslot 0."""
    hdr_size = 16384
    token = {"type": "systemd-tpm2", "keyslots": ["1"], "tpm2-blob": "AAAA", "tpm2-pcrs": list(pcrs),
             "tpm2-pcr-bank": "sha256", "tpm2-primary-alg": "ecc", "tpm2-policy-hash": "00" * 32,
             "tpm2-pin": pin, "tpm2_pcrlock": False}
    if srk:
        token["tpm2_srk"] = "AAECAwQ="
    area = {"type": "raw", "offset": "32768", "size": "258048", "encryption": cipher, "key_size": 64}
    meta = {
        "keyslots": {
            "0": {"type": "luks2", "key_size": 64, "af": {"type": "luks1", "stripes": 4000, "hash": "sha256"},
                  "area": area, "kdf": {"type": kdf0, "time": 4, "memory": 1048576, "cpus": 4, "salt": "AA=="}},
            "1": {"type": "luks2", "key_size": 64, "af": {"type": "luks1", "stripes": 4000, "hash": "sha256"},
                  "area": dict(area, offset="290816"),
                  "kdf": {"type": "pbkdf2", "hash": "sha512", "iterations": 1000, "salt": "AA=="}},
        },
        "tokens": {"0": token, **({"1": {"type": slot0_token, "keyslots": ["0"]}} if slot0_token else {})},
        "segments": {"0": {"type": "crypt", "offset": "16777216", "size": "dynamic", "iv_tweak": "0",
                           "encryption": cipher, "sector_size": 512}},
        "digests": {"0": {"type": "pbkdf2", "keyslots": ["0", "1"], "segments": ["0"], "hash": "sha256",
                          "iterations": 1000, "salt": "AA==", "digest": "AA=="}},
        "config": {"json_size": "12288", "keyslots_size": "16744448"},
    }
    js = json.dumps(meta).encode()
    b = bytearray(hdr_size)
    b[0:6] = b"LUKS\xba\xbe"
    b[6:8] = struct.pack(">H", 2)
    b[8:16] = struct.pack(">Q", hdr_size)
    b[16:24] = struct.pack(">Q", 1)
    b[72:78] = b"sha256"
    b[168:168 + len(LUKS_UUID)] = LUKS_UUID.encode()
    b[4096:4096 + len(js)] = js
    b[448:512] = hashlib.sha256(bytes(b)).digest() + bytes(32)
    return bytes(b)


def w(root: Path, rel: str, data, mode=None):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.exists():
        p.unlink()
    if isinstance(data, str):
        data = data.encode()
    p.write_bytes(data)
    if mode is not None:
        os.chmod(p, mode)
    return p


def link(root: Path, rel: str, target: str):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.exists():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    os.symlink(target, p)


def efivar(root: Path, name: str, guid: str, data: bytes, attr=NV_BS_RT):
    w(root, f"{EFIVARS}/{name}-{guid}", struct.pack("<I", attr) + data)


def stubinfo(s: str) -> bytes:
    return (s + "\0").encode("utf-16-le")


def build_golden(root: Path, certs: Certs):
    e = root / STORE_ETC.lstrip("/") / "etc"
    # --- Secure Boot
    w(root, "sys/firmware/efi/fw_platform_size", "64\n")
    efivar(root, "SecureBoot", GLOBAL, b"\x01")
    efivar(root, "SetupMode", GLOBAL, b"\x00")
    efivar(root, "AuditMode", GLOBAL, b"\x00")
    efivar(root, "DeployedMode", GLOBAL, b"\x01")
    efivar(root, "PK", GLOBAL, certs.esl("PK"), NV_BS_RT_AUTH)
    efivar(root, "KEK", GLOBAL, certs.esl("KEK"), NV_BS_RT_AUTH)
    efivar(root, "db", DBGUID, certs.esl("db"), NV_BS_RT_AUTH)
    efivar(root, "dbx", DBGUID, sha256_esl([hashlib.sha256(b"revoked shim").digest()]), NV_BS_RT_AUTH)
    efivar(root, "StubInfo", LOADER, stubinfo("lanzastub 0.4.2"), 0x6)
    efivar(root, "MemoryOverwriteRequestControl", MOR, b"\x01")
    efivar(root, "LoaderInfo", LOADER, stubinfo("systemd-boot 256.8"), 0x6)
    b = "etc/secure/keys"
    w(root, f"{b}/GUID", FLEET_GUID, 0o644)
    for k in ("PK", "KEK", "db"):
        w(root, f"{b}/keys/{k}/{k}.pem", (certs.dir / f"{k}.pem").read_bytes(), 0o400)
        os.chmod(root / b / "keys" / k, 0o700)
    w(root, f"{b}/keys/db/db.key", (certs.dir / "db.key").read_bytes(), 0o400)
    # --- boot loader (ESP mounted at /boot)
    w(root, "boot/loader/loader.conf", "timeout 0\nconsole-mode keep\neditor no\nauto-firmware no\n")
    # --- kernel
    w(root, "proc/cmdline", CMDLINE + "\n")
    for k, v in {"kernel/printk": "0\t4\t1\t7", "kernel/kptr_restrict": "2", "kernel/dmesg_restrict": "1",
                 "kernel/unprivileged_bpf_disabled": "2", "kernel/kexec_load_disabled": "1",
                 "kernel/yama/ptrace_scope": "2", "kernel/sysrq": "0", "net/core/bpf_jit_harden": "2",
                 "fs/protected_symlinks": "1", "fs/protected_hardlinks": "1", "fs/suid_dumpable": "0",
                 "dev/tty/ldisc_autoload": "0", "kernel/perf_event_paranoid": "3",
                 "kernel/core_pattern": f"|{STORE_SW}/lib/systemd/systemd-coredump %P %u %g %s %t %c %h"}.items():
        w(root, f"proc/sys/{k}", v + "\n")
    w(root, "sys/kernel/security/lockdown", "none integrity [confidentiality]\n")
    w(root, "sys/class/tpm/tpm0/tpm_version_major", "2\n")
    # --- disks: nvme0n1p1 ESP (vfat), nvme0n1p2 LUKS2 → dm-0 (254:0) holding the ZFS vdev
    w(root, "sys/devices/virtual/block/dm-0/dm/uuid", "CRYPT-LUKS2-" + LUKS_UUID.replace("-", "") + "-cryptroot\n")
    link(root, "sys/block/dm-0", "../devices/virtual/block/dm-0")
    link(root, "sys/dev/block/254:0", "../../devices/virtual/block/dm-0")
    w(root, "run/udev/data/b259:1", "S:disk/by-partlabel/ESP\nN:nvme0n1p1\nE:ID_FS_TYPE=vfat\nE:ID_FS_VERSION=FAT32\n")
    w(root, "run/udev/data/b259:2", f"N:nvme0n1p2\nE:ID_FS_TYPE=crypto_LUKS\nE:ID_FS_VERSION=2\nE:ID_FS_UUID={LUKS_UUID}\n")
    w(root, "run/udev/data/b254:0", "N:dm-0\nE:ID_FS_TYPE=zfs_member\nE:ID_FS_LABEL=zroot\nE:ID_FS_VERSION=5000\n")
    w(root, "run/udev/data/c4:64", "N:ttyS0\nE:ID_PATH=platform-serial8250\n")
    w(root, "dev/nvme0n1p2", luks2_header())
    w(root, "proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/zram0 partition\t1048572\t\t0\t\t100\n")
    w(root, "proc/net/tcp", TCP_HDR + tcp_line(0, 0xC350, 0x01))
    w(root, "proc/net/tcp6", TCP_HDR)
    w(root, "proc/net/udp", UDP_HDR + tcp_line(0, 14550, 0x07))
    w(root, "proc/net/udp6", UDP_HDR)
    # --- NixOS closure: /etc/static and most of /etc are absolute links into the store
    w(root, f"{STORE_ETC.lstrip('/')}/etc/systemd/journald.conf",
      "[Journal]\nStorage=volatile\nRuntimeMaxUse=50M\n")
    w(root, f"{STORE_ETC.lstrip('/')}/etc/systemd/sleep.conf",
      "[Sleep]\nAllowSuspend=no\nAllowHibernation=no\nAllowSuspendThenHibernate=no\nAllowHybridSleep=no\n")
    w(root, f"{STORE_ETC.lstrip('/')}/etc/systemd/coredump.conf", "[Coredump]\nStorage=none\n")
    w(root, f"{STORE_ETC.lstrip('/')}/etc/systemd/pstore.conf", "[PStore]\nStorage=none\n")
    w(root, f"{STORE_ETC.lstrip('/')}/etc/sysctl.d/60-nixos.conf", "kernel.kptr_restrict = 2\n")
    units = f"{STORE_ETC.lstrip('/')}/etc/systemd/system"
    w(root, f"{units}/serial-getty@.service", "[Unit]\nDescription=Serial Getty on %I\n")
    w(root, f"{units}/getty@.service", "[Unit]\nDescription=Getty on %I\n")
    w(root, f"{units}/debug-shell.service", "[Unit]\nDescription=Early root shell\n")
    link(root, f"{units}/serial-getty@ttyS0.service", "/dev/null")   # seed: enable = false → masked
    link(root, f"{units}/getty.target.wants/getty@tty1.service", "../getty@.service")
    w(root, f"{units}/multi-user.target.wants/.keep", "")
    for n in ("journald.conf", "sleep.conf", "coredump.conf", "pstore.conf"):
        link(root, f"etc/systemd/{n}", f"/etc/static/systemd/{n}")
    link(root, "etc/static", f"{STORE_ETC}/etc")
    link(root, "etc/systemd/system", "/etc/static/systemd/system")
    link(root, "etc/sysctl.d/60-nixos.conf", "/etc/static/sysctl.d/60-nixos.conf")
    # journald drop-ins: precedence across /etc, /run, /usr/lib, lexical order, /dev/null masking
    w(root, "usr/lib/systemd/journald.conf.d/10-defaults.conf", "[Journal]\nRuntimeMaxUse=10M\n")
    w(root, "usr/lib/systemd/journald.conf.d/99-vendor.conf", "[Journal]\nStorage=persistent\n")
    link(root, "etc/systemd/journald.conf.d/99-vendor.conf", "/dev/null")
    w(root, "run/systemd/journald.conf.d/50-ringil.conf", "[Journal]\nRuntimeMaxUse=50M\nForwardToSyslog=no\n")
    # system closure, current and booted system, profile link for offline mode
    sysdir = STORE_SYS.lstrip("/")
    link(root, f"{sysdir}/etc", f"{STORE_ETC}/etc")
    link(root, f"{sysdir}/sw", STORE_SW)
    w(root, f"{sysdir}/boot.json", json.dumps({"org.nixos.bootspec.v1": {
        "init": f"{STORE_SYS}/init", "initrd": f"{STORE_SYS}/initrd", "kernel": f"{STORE_SYS}/kernel",
        "kernelParams": ["quiet", "loglevel=0", "console=tty0", "init_on_free=1", "lockdown=confidentiality"],
        "label": "NixOS 25.11", "system": "aarch64-linux", "toplevel": STORE_SYS}}))
    w(root, f"{STORE_SW.lstrip('/')}/bin/nologin", "", 0o755)
    w(root, f"{STORE_SW.lstrip('/')}/bin/bash", "", 0o755)
    (root / STORE_SW.lstrip("/") / "share").mkdir(parents=True, exist_ok=True)
    link(root, "run/current-system", STORE_SYS)
    link(root, "run/booted-system", STORE_SYS)
    link(root, "nix/var/nix/profiles/system", "system-1-link")
    link(root, "nix/var/nix/profiles/system-1-link", STORE_SYS)
    # --- accounts (NixOS writes passwd/shadow as real files)
    nl = "/run/current-system/sw/bin/nologin"
    w(root, "etc/passwd", "root:x:0:0:System administrator:/root:/run/current-system/sw/bin/bash\n"
                          f"messagebus:x:4:4:D-Bus system message bus daemon user:/run/dbus:{nl}\n"
                          f"systemd-timesync:x:154:154::/var/empty:{nl}\n"
                          f"nobody:x:65534:65534:Unprivileged account (don't use!):/var/empty:{nl}\n")
    w(root, "etc/shadow", "root:!:1::::::\nmessagebus:!*:1::::::\nsystemd-timesync:!*:1::::::\nnobody:!*:1::::::\n", 0o600)
    # --- the agent behind the WireGuard tunnel (services.ringild.tunnel): its server is inside the tunnel,
    # its unit may use only lo and ringil0, the kernel routes the server there, the key is root-only
    w(root, f"{STORE_ETC.lstrip('/')}/etc/ringil/ringild.conf",
      "# Generated by services.ringild\nserver = https://10.77.0.1:8443\nca = /etc/secure/ringil/fleet-ca.pem\n")
    link(root, "etc/ringil/ringild.conf", "/etc/static/ringil/ringild.conf")
    w(root, f"{units}/ringild.service", "[Unit]\nDescription=ringil fleet agent\nRequires=wireguard-ringil0.service\n"
                                        "[Service]\nExecStart=/nix/store/x-ringil/bin/ringild\nIPAddressDeny=any\n"
                                        "RestrictNetworkInterfaces=lo\nRestrictNetworkInterfaces=ringil0\n")
    w(root, "proc/net/route", ROUTE_HDR + route_line("eth0", "10.1.2.0", "255.255.255.0", "0.0.0.0")
      + route_line("eth0", "0.0.0.0", "0.0.0.0", "10.1.2.1") + route_line("ringil0", "10.77.0.1", "255.255.255.255", "0.0.0.0"))
    w(root, "proc/net/ipv6_route", "")
    w(root, "sys/class/net/ringil0/uevent", "DEVTYPE=wireguard\nINTERFACE=ringil0\nIFINDEX=5\n")
    w(root, "var/lib/ringil/tunnel/private.key", "cGhvbnkgdGVzdCBrZXkgbm90IGEgcmVhbCBvbmUhISE=\n", 0o400)
    os.chmod(root / "var/lib/ringil/tunnel", 0o700)
    # --- logs and state
    (root / "var/log").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/systemd/coredump").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/systemd/pstore").mkdir(parents=True, exist_ok=True)
    (root / "run/log/journal").mkdir(parents=True, exist_ok=True)


def units_dir(root: Path) -> Path:
    return root / STORE_ETC.lstrip("/") / "etc/systemd/system"


def _cmdline(root, fn):
    w(root, "proc/cmdline", fn(CMDLINE) + "\n")


def _loader(root, fn):
    p = root / "boot/loader/loader.conf"
    p.write_text(fn(p.read_text()))


def _passwd_add(root, pw, sh):
    with open(root / "etc/passwd", "a") as f:
        f.write(pw)
    with open(root / "etc/shadow", "a") as f:
        f.write(sh)


def _copy_store(root, src, dst):
    shutil.copytree(root / src.lstrip("/"), root / dst.lstrip("/"), symlinks=True)


def _replace_link_with_copy(root, rel):
    p = root / rel
    data = (root / STORE_ETC.lstrip("/") / "etc/systemd/sleep.conf").read_bytes()
    p.unlink()
    p.write_bytes(data)


# One mutation per check: each must flip exactly that check to fail.
MUTATIONS = {
    "SB-001": lambda r, c: w(r, "sys/firmware/efi/fw_platform_size", "0\n"),
    "SB-002": lambda r, c: efivar(r, "SecureBoot", GLOBAL, b"\x00"),
    "SB-003": lambda r, c: efivar(r, "SetupMode", GLOBAL, b"\x01"),
    "SB-004": lambda r, c: efivar(r, "AuditMode", GLOBAL, b"\x01"),
    "SB-005": lambda r, c: efivar(r, "PK", GLOBAL, c.esl("foreign"), NV_BS_RT_AUTH),
    "SB-006": lambda r, c: efivar(r, "KEK", GLOBAL, c.esl("KEK") + c.esl("foreign", FOREIGN_GUID), NV_BS_RT_AUTH),
    "SB-007": lambda r, c: efivar(r, "db", DBGUID, c.esl("db", FOREIGN_GUID), NV_BS_RT_AUTH),
    "SB-008": lambda r, c: efivar(r, "dbx", DBGUID, b"", NV_BS_RT_AUTH),
    "SB-009": lambda r, c: os.chmod(r / "etc/secure/keys/keys/db/db.key", 0o644),
    "SB-010": lambda r, c: w(r, "etc/secure/keys/keys/PK/PK.key", (c.dir / "PK.key").read_bytes(), 0o400),
    "SB-011": lambda r, c: efivar(r, "StubInfo", LOADER, stubinfo("systemd-stub 256.8"), 0x6),
    "BL-001": lambda r, c: _loader(r, lambda s: s.replace("editor no", "editor yes")),
    "BL-002": lambda r, c: _loader(r, lambda s: s.replace("timeout 0", "timeout 5")),
    "BL-003": lambda r, c: _loader(r, lambda s: s.replace("auto-firmware no\n", "")),
    "BL-004": lambda r, c: efivar(r, "LoaderEntryOneShot", LOADER, stubinfo("nixos-generation-1.conf")),
    "KC-001": lambda r, c: _cmdline(r, lambda s: s.replace(" quiet", "")),
    "KC-002": lambda r, c: _cmdline(r, lambda s: s.replace("loglevel=0", "loglevel=4")),
    "KC-003": lambda r, c: _cmdline(r, lambda s: s + " console=ttyTCU0,115200"),
    "KC-004": lambda r, c: _cmdline(r, lambda s: s + " boot.shell_on_fail"),
    "KC-005": lambda r, c: w(r, "proc/sys/kernel/printk", "4\t4\t1\t7\n"),
    "KH-001": lambda r, c: w(r, "sys/kernel/security/lockdown", "[none] integrity confidentiality\n"),
    "KH-002": lambda r, c: w(r, "proc/sys/kernel/kptr_restrict", "0\n"),
    "KH-003": lambda r, c: w(r, "proc/sys/kernel/dmesg_restrict", "0\n"),
    "KH-004": lambda r, c: w(r, "proc/sys/kernel/unprivileged_bpf_disabled", "0\n"),
    "KH-005": lambda r, c: w(r, "proc/sys/kernel/kexec_load_disabled", "0\n"),
    "KH-006": lambda r, c: w(r, "proc/sys/kernel/yama/ptrace_scope", "1\n"),
    "KH-007": lambda r, c: w(r, "proc/sys/kernel/sysrq", "176\n"),
    "KH-008": lambda r, c: w(r, "proc/sys/net/core/bpf_jit_harden", "0\n"),
    "CR-001": lambda r, c: w(r, "run/udev/data/b259:3", "N:nvme0n1p3\nE:ID_FS_TYPE=zfs_member\n"),
    "CR-002": lambda r, c: w(r, "run/udev/data/b259:2", "N:nvme0n1p2\nE:ID_FS_TYPE=crypto_LUKS\nE:ID_FS_VERSION=1\n"),
    "CR-003": lambda r, c: w(r, "dev/nvme0n1p2", luks2_header(kdf0="pbkdf2")),
    "CR-004": lambda r, c: w(r, "dev/nvme0n1p2", luks2_header(pcrs=(0, 2))),
    "CR-005": lambda r, c: w(r, "dev/nvme0n1p2", luks2_header(pin=False)),
    "CR-006": lambda r, c: w(r, "dev/nvme0n1p2", luks2_header(srk=False)),
    "CR-007": lambda r, c: w(r, "proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/nvme0n1p3 partition\t8388604\t0\t-2\n"),
    "CR-008": lambda r, c: _cmdline(r, lambda s: s + " resume=/dev/nvme0n1p3"),
    "TPM-001": lambda r, c: w(r, "sys/class/tpm/tpm0/tpm_version_major", "1\n"),
    "MEM-001": lambda r, c: efivar(r, "MemoryOverwriteRequestControl", MOR, b"\x00"),
    "MEM-002": lambda r, c: _cmdline(r, lambda s: s.replace(" init_on_free=1", "")),
    "MEM-003": lambda r, c: w(r, "etc/systemd/sleep.conf.d/50-local.conf", "[Sleep]\nAllowSuspend=yes\n"),
    "MEM-004": lambda r, c: w(r, "var/lib/systemd/coredump/core.flightd.0.zst", "x"),
    "MEM-005": lambda r, c: w(r, "var/lib/systemd/pstore/dmesg-efi-1", "x"),
    "ACC-001": lambda r, c: w(r, "etc/shadow", (r / "etc/shadow").read_text().replace("root:!:", "root:$6$s4lt$h4sh:")),
    "ACC-002": lambda r, c: _passwd_add(r, "pilot:x:1000:100::/var/empty:/run/current-system/sw/bin/nologin\n", "pilot::1::::::\n"),
    "ACC-003": lambda r, c: _passwd_add(r, "toor:x:0:0::/root:/run/current-system/sw/bin/nologin\n", "toor:!:1::::::\n"),
    "ACC-004": lambda r, c: _passwd_add(r, "pilot:x:1000:100::/home/pilot:/run/current-system/sw/bin/bash\n", "pilot:!:1::::::\n"),
    "ACC-005": lambda r, c: os.symlink("../serial-getty@.service", units_dir(r) / "getty.target.wants/serial-getty@ttyTCU0.service"),
    "ACC-006": lambda r, c: w(r, str((units_dir(r) / "emergency.service.d/override.conf").relative_to(r)),
                              "[Service]\nEnvironment=SYSTEMD_SULOGIN_FORCE=1\n"),
    "ACC-007": lambda r, c: (units_dir(r) / "sysinit.target.wants").mkdir() or
                            os.symlink("../debug-shell.service", units_dir(r) / "sysinit.target.wants/debug-shell.service"),
    "SVC-001": lambda r, c: w(r, str((units_dir(r) / "sshd.service").relative_to(r)), "[Service]\nExecStart=sshd -D\n"),
    "SVC-002": lambda r, c: w(r, "etc/ssh/sshd_config", "PermitRootLogin yes\n"),
    "SVC-003": lambda r, c: w(r, "proc/net/tcp6", TCP_HDR + tcp_line(0, 22, 0x0A, v6=True)),
    "SVC-004": lambda r, c: w(r, str((units_dir(r) / "udisks2.service").relative_to(r)), "[Service]\n"),
    "SVC-005": lambda r, c: w(r, "etc/X11/xorg.conf", "Section \"Device\"\n"),
    "SVC-006": lambda r, c: (r / STORE_SW.lstrip("/") / "share/man/man1").mkdir(parents=True),
    "SVC-007": lambda r, c: w(r, "proc/net/tcp", TCP_HDR + tcp_line(0, 0xC350, 0x01) + tcp_line(1, 8080, 0x0A)),
    # the server's /32 route moved off the tunnel: only the default route via eth0 is left for it
    "TUN-001": lambda r, c: w(r, "proc/net/route", ROUTE_HDR + route_line("eth0", "0.0.0.0", "0.0.0.0", "10.1.2.1")),
    "TUN-002": lambda r, c: os.chmod(r / "var/lib/ringil/tunnel/private.key", 0o644),
    "LOG-001": lambda r, c: w(r, "etc/systemd/journald.conf.d/60-local.conf", "[Journal]\nStorage=persistent\n"),
    "LOG-002": lambda r, c: w(r, "etc/systemd/journald.conf.d/60-local.conf", "[Journal]\nRuntimeMaxUse=100M\n"),
    "LOG-003": lambda r, c: (r / "var/log/journal").mkdir(),
    "LOG-004": lambda r, c: w(r, "var/log/messages", "Nov 28 flightd: waypoint 48.85,2.35\n"),
    "NIX-001": lambda r, c: (_copy_store(r, STORE_SYS, STORE_SYS.replace("9a8b7c6d", "ffffffff")),
                             link(r, "run/current-system", STORE_SYS.replace("9a8b7c6d", "ffffffff"))),
    "NIX-002": lambda r, c: _replace_link_with_copy(r, "etc/systemd/sleep.conf"),
    "NIX-003": lambda r, c: (_copy_store(r, STORE_ETC, STORE_ETC.replace("0k3x9d2v", "eeeeeeee")),
                             link(r, "etc/static", STORE_ETC.replace("0k3x9d2v", "eeeeeeee") + "/etc")),
}


MISSING_STORE = "/nix/store/00000000000000000000000000000000-not-mounted"


def _agent_server(root, url):
    p = root / STORE_ETC.lstrip("/") / "etc/ringil/ringild.conf"
    p.write_text(p.read_text().replace("server = https://10.77.0.1:8443", f"server = {url}"))


def _many_procs(root, agetty_pid="99999"):
    """More /proc entries than the agetty scan covers, with the serial getty sorted after the cap."""
    proc = root / "proc"
    for pid in range(10000, 10000 + 32769):
        (proc / str(pid)).touch()
    w(root, f"proc/{agetty_pid}/cmdline", b"/run/current-system/sw/bin/agetty\0ttyS0\0")


# Regression drifts from the security review: (mutation, the only results that may change, and to what).
CMDLINE_CHECKS = ("KC-001", "KC-002", "KC-003", "KC-004", "MEM-002", "CR-008")
EXTRA_DRIFTS = {
    # ACC-001: a hash in /etc/passwd itself is used by pam_unix, whatever shadow says
    "passwd-root-hash": (lambda r, c: w(r, "etc/passwd", (r / "etc/passwd").read_text().replace(
        "root:x:", "root:$6$s4lt$h4sh:")), {"ACC-001": "fail"}),
    "passwd-root-locked": (lambda r, c: w(r, "etc/passwd", (r / "etc/passwd").read_text().replace(
        "root:x:", "root:!:")), {}),
    # KC-*, CR-008: an empty or cut /proc/cmdline proves nothing
    "cmdline-empty": (lambda r, c: w(r, "proc/cmdline", ""), {i: "error" for i in CMDLINE_CHECKS}),
    "cmdline-newline-only": (lambda r, c: w(r, "proc/cmdline", "\n"), {i: "error" for i in CMDLINE_CHECKS}),
    "cmdline-no-newline": (lambda r, c: w(r, "proc/cmdline", CMDLINE), {i: "error" for i in CMDLINE_CHECKS}),
    # CR-007: /proc/swaps always starts with its header line
    "swaps-empty": (lambda r, c: w(r, "proc/swaps", ""), {"CR-007": "error"}),
    "swaps-no-header": (lambda r, c: w(r, "proc/swaps", "/dev/nvme0n1p3 partition\t8388604\t0\t-2\n"),
                        {"CR-007": "error"}),
    # a dangling link on the way (offline image without its store) is not "absent"
    "units-dir-dangling": (lambda r, c: link(r, "etc/systemd/system", MISSING_STORE + "/etc/systemd/system"),
                           {i: "error" for i in ("ACC-005", "ACC-006", "ACC-007", "SVC-001", "SVC-004", "SVC-005",
                                                        "TUN-001", "NIX-002")}),
    "key-dir-dangling": (lambda r, c: link(r, "etc/secure/keys/keys/PK", MISSING_STORE + "/PK"),
                         {"SB-005": "error", "SB-009": "error", "SB-010": "error"}),
    "wants-dir-dangling": (lambda r, c: link(r, str((units_dir(r) / "sysinit.target.wants").relative_to(r)),
                                             MISSING_STORE + "/sysinit.target.wants"),
                           {"ACC-005": "error", "ACC-007": "error"}),
    # SB-009: a private key that cannot be stat'ed is not root-only
    "key-unstattable": (lambda r, c: os.symlink(MISSING_STORE + "/extra.key",
                                                r / "etc/secure/keys/keys/db/extra.key"), {"SB-009": "error"}),
    # LOG-004: a directory below the depth cap is not known to be empty
    "log-too-deep": (lambda r, c: w(r, "var/log/a/b/c/d/e/messages", "waypoint 48.85,2.35\n"), {"LOG-004": "error"}),
    "log-at-depth-cap": (lambda r, c: w(r, "var/log/a/b/c/d/messages", "waypoint 48.85,2.35\n"), {"LOG-004": "fail"}),
    # CR-003: only systemd-tpm2/fido2/pkcs11 tokens exempt a keyslot from the passphrase KDF policy
    "luks-custom-token": (lambda r, c: w(r, "dev/nvme0n1p2", luks2_header(kdf0="pbkdf2", slot0_token="custom-unlock")),
                          {"CR-003": "fail"}),
    "luks-fido2-token": (lambda r, c: w(r, "dev/nvme0n1p2", luks2_header(kdf0="pbkdf2", slot0_token="systemd-fido2")),
                         {}),
    # TUN-001: a name for the server, a drop-in that lifts the interface allowlist, a plain interface named
    # like the tunnel, a more specific route elsewhere, a deny list instead of an allowlist
    "tunnel-server-name": (lambda r, c: _agent_server(r, "https://fleet.example.org:8443"), {"TUN-001": "fail"}),
    "tunnel-server-v6-outside": (lambda r, c: _agent_server(r, "https://[fd77::1]:8443"), {"TUN-001": "fail"}),
    "tunnel-dropin-reset": (lambda r, c: w(r, str((units_dir(r) / "ringild.service.d/50-debug.conf").relative_to(r)),
                                           "[Service]\nRestrictNetworkInterfaces=\n"), {"TUN-001": "fail"}),
    "tunnel-dropin-extra-iface": (lambda r, c: w(r, "run/systemd/system/ringild.service.d/50-lte.conf",
                                                 "[Service]\nRestrictNetworkInterfaces=wwan0\n"), {"TUN-001": "fail"}),
    "tunnel-deny-list": (lambda r, c: w(r, str((units_dir(r) / "ringild.service.d/50-deny.conf").relative_to(r)),
                                        "[Service]\nRestrictNetworkInterfaces=\nRestrictNetworkInterfaces=~eth0\n"),
                         {"TUN-001": "fail"}),
    "tunnel-not-wireguard": (lambda r, c: w(r, "sys/class/net/ringil0/uevent", "INTERFACE=ringil0\nIFINDEX=5\n"),
                             {"TUN-001": "fail"}),
    "tunnel-more-specific-route": (lambda r, c: w(r, "proc/net/route", ROUTE_HDR
                                                  + route_line("ringil0", "10.77.0.0", "255.255.0.0", "0.0.0.0")
                                                  + route_line("eth0", "10.77.0.0", "255.255.255.252", "10.1.2.1")),
                                   {"TUN-001": "fail"}),
    "tunnel-subnet-route": (lambda r, c: w(r, "proc/net/route", ROUTE_HDR
                                           + route_line("eth0", "0.0.0.0", "0.0.0.0", "10.1.2.1", metric=0)
                                           + route_line("ringil0", "10.77.0.0", "255.255.255.0", "0.0.0.0", metric=100)), {}),
    "tunnel-route-garbage": (lambda r, c: w(r, "proc/net/route", "not a routing table\n"), {"TUN-001": "error"}),
    # TUN-002: a link to the key (it may point anywhere), a key in the store, a group-writable directory
    "tunnel-key-symlink": (lambda r, c: (os.rename(r / "var/lib/ringil/tunnel/private.key", r / "var/lib/ringil/key"),
                                         os.symlink("/var/lib/ringil/key", r / "var/lib/ringil/tunnel/private.key")),
                           {"TUN-002": "fail"}),
    "tunnel-key-dir-writable": (lambda r, c: os.chmod(r / "var/lib/ringil/tunnel", 0o770), {"TUN-002": "fail"}),
    "tunnel-key-missing": (lambda r, c: os.unlink(r / "var/lib/ringil/tunnel/private.key"), {"TUN-002": "fail"}),
    # ACC-005: a process table larger than the scan covers is not "no agetty running"
    "proc-over-scan-cap": (lambda r, c: _many_procs(r), {"ACC-005": "error"}),
}
