"""vmlib.py: the VM harness: an initramfs with busybox and ringil, a GPT disk with a real vfat ESP, OVMF
(Secure Boot capable, SMM, pflash vars), qemu under TCG driven over the serial console, and a write-back
cache in front of the disk (an NBD server) whose unflushed writes a power cut loses."""
import base64
import gzip
import hashlib
import io
import os
import re
import shutil
import socket
import struct
import subprocess
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")          # no keys: Setup Mode
SD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
MiB = 1 << 20
SECTOR = 512

# Guest modules, loaded in this order (dependencies first; the list is closed under `depends`).
GUEST_MODULES = ["virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
                 "virtio_blk", "fat", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859-1", "efivarfs",
                 "crc16", "mbcache", "jbd2", "crc32c_generic", "libcrc32c", "ext4", "failover", "net_failover",
                 "virtio_net"]


def kernel_version():
    vers = sorted(p.name[len("vmlinuz-"):] for p in Path("/boot").glob("vmlinuz-*-amd64"))
    if not vers:
        raise FileNotFoundError("no /boot/vmlinuz-*-amd64 (package linux-image-amd64)")
    return vers[-1]


# ------------------------------------------------------------------ initramfs

class Cpio:
    """newc archive writer (the format the kernel unpacks into its rootfs)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1
        self.seen = set()

    def _hdr(self, name, mode, size, nlink=1):
        name_b = name.encode() + b"\0"
        h = "070701" + "".join(f"{v:08x}" for v in (self.ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.buf.write(h.encode() + name_b)
        self.buf.write(b"\0" * ((-(110 + len(name_b))) % 4))

    def dir(self, name):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.seen:
                self.seen.add(d)
                self._hdr(d, 0o40755, 0, 2)

    def file(self, name, data, mode=0o644):
        name = name.strip("/")
        self.dir(os.path.dirname(name))
        self._hdr(name, 0o100000 | mode, len(data))
        self.buf.write(data)
        self.buf.write(b"\0" * ((-len(data)) % 4))

    def symlink(self, name, target):
        name = name.strip("/")
        self.dir(os.path.dirname(name))
        t = target.encode()
        self._hdr(name, 0o120777, len(t))
        self.buf.write(t)
        self.buf.write(b"\0" * ((-len(t)) % 4))

    def finish(self):
        self._hdr("TRAILER!!!", 0, 0)
        data = self.buf.getvalue()
        return data + b"\0" * ((-len(data)) % 512)


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/sbin:/usr/sbin
mkdir -p /proc /sys /dev /tmp /run /boot /var/lib/ringil /ctl /etc/ringil
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "@@insmod-failed=$m"; done
mount -t efivarfs efivarfs /sys/firmware/efi/efivars || echo "@@efivarfs=missing"
i=0
while [ $i -lt 50 ]; do
    for d in /sys/block/vd*; do
        [ -e "$d/serial" ] || continue
        case "$(cat $d/serial)" in
        ringildisk) DISK=/dev/${d##*/} ;;
        ringilctl) CTL=/dev/${d##*/} ;;
        ringiltools) TOOLS=/dev/${d##*/} ;;
        esac
    done
    [ -n "$DISK" ] && [ -n "$CTL" ] && [ -n "$TOOLS" ] && break
    i=$((i + 1)); sleep 0.1
done
mkdir -p /dev/ringil
ln -s ${DISK}1 /dev/ringil/esp; ln -s ${DISK}2 /dev/ringil/state
ln -s ${DISK}3 /dev/ringil/slot-a; ln -s ${DISK}4 /dev/ringil/slot-b
mount -t vfat -o umask=0077,flush ${DISK}1 /boot || echo "@@esp=unmountable"
mount -t ext4 ${DISK}2 /var/lib/ringil || echo "@@state=unmountable"
tar -xf $TOOLS -C /
tar -xf $CTL -C /ctl
echo "@@ready uptime=$(cut -d' ' -f1 /proc/uptime)"
cd /ctl
sh /ctl/run.sh </dev/null
echo "@@exit rc=$?"
sync
poweroff -f
"""


def build_initramfs(out: Path):
    """busybox-static and the kernel modules the guest needs, gzip'ed: small, because the firmware reads it
    (and a UKI carries it). ringil itself comes on the tools disk (build_tools), read by Linux."""
    kver = kernel_version()
    c = Cpio()
    c.file("init", INIT.encode(), 0o755)
    c.file("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)
    order = []

    def add_module(name):
        info = subprocess.run(["modinfo", "-k", kver, "-F", "filename", name], capture_output=True, text=True)
        if info.returncode != 0 or not info.stdout.strip() or info.stdout.startswith("(builtin)"):
            return
        path = Path(info.stdout.split()[0])
        base = path.name[:-3]
        if base in order:
            return
        deps = subprocess.run(["modinfo", "-k", kver, "-F", "depends", name], capture_output=True, text=True).stdout
        for d in filter(None, deps.strip().split(",")):
            add_module(d)
        if base not in order:
            c.file(f"lib/modules/{base}.ko", path.read_bytes())
            order.append(base)

    for m in GUEST_MODULES:
        add_module(m)
    c.file("lib/modules/order", ("\n".join(order) + "\n").encode())
    c.file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
    c.file("etc/group", b"root:x:0:\n")
    out.write_bytes(gzip.compress(c.finish(), compresslevel=9, mtime=0))
    return out


def build_tools(out: Path, binaries):
    """A tar of ringil's binaries and their shared libraries (ldd), unpacked over the guest's rootfs."""
    libs = set()
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
        def add(name, path, mode):
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.size, ti.mode, ti.mtime = path.stat().st_size, mode, 0
            with open(path, "rb") as f:
                t.addfile(ti, f)
        for b in binaries:
            add(f"usr/bin/{b.name}", b, 0o755)
            out_ldd = subprocess.run(["ldd", str(b)], capture_output=True, text=True, check=True).stdout
            for line in out_ldd.splitlines():
                m = re.search(r"(/\S+)", line.split("=>")[-1])
                if m:
                    libs.add(m.group(1))
        for lib in sorted(libs):
            add(lib, Path(lib).resolve(), 0o755)
    with open(out, "ab") as f:
        f.truncate(((out.stat().st_size + MiB - 1) // MiB) * MiB)
    return out


# ------------------------------------------------------------------ disks

class Disk:
    """One GPT disk: p1 ESP (vfat, made by mkfs.vfat, filled with mtools), p2 state (ext4), p3/p4 slots a/b."""

    def __init__(self, path: Path, esp_mib=260, state_mib=16, slot_mib=8):
        self.path = Path(path)
        sizes = [("esp", esp_mib, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
                 ("state", state_mib, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
                 ("slot-a", slot_mib, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
                 ("slot-b", slot_mib, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")]
        self.part = {}
        off = MiB
        script = "label: gpt\nunit: sectors\nfirst-lba: 2048\n"
        for name, mib, typ in sizes:
            self.part[name] = (off, mib * MiB)
            script += f"start={off // SECTOR}, size={mib * MiB // SECTOR}, type={typ}, name=\"{name}\"\n"
            off += mib * MiB
        self.size = off + MiB
        with open(self.path, "wb") as f:
            f.truncate(self.size)
        subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(self.path)], input=script.encode(),
                       check=True, capture_output=True)
        esp_off, esp_size = self.part["esp"]
        # FAT32 needs at least 65525 clusters: 4 KiB clusters from 260 MiB up (the usual ESP size; the
        # firmware reads the kernel a cluster run at a time), 512-byte ones below (mkfs.vfat would pick 4 KiB
        # on a large image file and write a FAT32 with too few clusters, which mtools rejects).
        subprocess.run(["mkfs.vfat", "-F", "32", "-s", "1" if esp_mib < 260 else "8", "-n", "ESP", "--offset",
                        str(esp_off // SECTOR), str(self.path), str(esp_size // 1024)], check=True, capture_output=True)
        st_off, st_size = self.part["state"]
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={st_off}", str(self.path), f"{st_size // 1024}k"],
                       check=True, capture_output=True)

    # mtools on the ESP in place: "-i disk@@offset"
    def _m(self, *args, check=True):
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLS_NO_VFAT="0")
        esp_off = self.part["esp"][0]
        p = subprocess.run([args[0], "-i", f"{self.path}@@{esp_off}", *args[1:]], capture_output=True, env=env)
        if check and p.returncode != 0:
            raise RuntimeError(f"{args}: {p.stderr.decode(errors='replace')}")
        return p

    def esp_put(self, rel, data: bytes):
        rel = rel.strip("/")
        parts = rel.split("/")
        for i in range(1, len(parts)):
            self._m("mmd", "-D", "s", "::/" + "/".join(parts[:i]), check=False)
        tmp = self.path.with_suffix(".mtmp")
        tmp.write_bytes(data)
        try:
            self._m("mcopy", "-o", "-D", "o", str(tmp), "::/" + rel)
        finally:
            tmp.unlink()

    def esp_get(self, rel):
        p = self._m("mtype", "::/" + rel.strip("/"), check=False)
        return p.stdout if p.returncode == 0 else None

    def esp_ls(self, rel):
        p = self._m("mdir", "-b", "::/" + rel.strip("/"), check=False)
        if p.returncode != 0:
            return []
        return sorted(os.path.basename(line.rstrip("/")) for line in p.stdout.decode().splitlines() if line.strip())

    def esp_rm(self, rel):
        self._m("mdel", "::/" + rel.strip("/"), check=False)

    def esp_image(self) -> bytes:
        off, size = self.part["esp"]
        with open(self.path, "rb") as f:
            f.seek(off)
            return f.read(size)

    def fsck_esp(self, workdir: Path):
        """fsck.vfat -n on a copy of the ESP: (clean, output). Linux marks a FAT32 it mounts read-write dirty
        (byte 0x41 of the boot sector := 1, which also makes the backup boot sector differ at offset 65) and
        clears that on unmount; a power cut while mounted leaves exactly that, and possibly a stale FSInfo
        free count. Neither is damage (firmware and systemd-boot ignore both). Anything else fsck reports
        (lost clusters, bad chains, wrong sizes, cross-links) is."""
        img = workdir / "esp-fsck.img"
        img.write_bytes(self.esp_image())
        p = subprocess.run(["fsck.vfat", "-n", str(img)], capture_output=True, text=True)
        img.unlink()
        out = p.stdout + p.stderr
        # Also allowed: a stale free-cluster count in the FSInfo sector, which the FAT specification calls a
        # hint that may be wrong (Linux rewrites it at sync_fs/unmount, so a cut leaves the old count).
        allowed = ("Dirty bit is set", "Automatically removing dirty bit", "Leaving filesystem unchanged",
                   "There are differences between boot sector and its backup",
                   "This is mostly harmless. Differences: (offset:original/backup)", "Not automatically fixing this",
                   "Free cluster summary wrong", "Auto-correcting.")
        lines = [l.strip() for l in out.splitlines() if l.strip() and not l.startswith("fsck.fat ")
                 and not re.match(r"^/.*: \d+ files, \d+/\d+ clusters$", l)]
        bad = [l for l in lines if not any(l.startswith(a) for a in allowed) and l != "65:01/00"]
        return (not bad and p.returncode in (0, 1)), out

    def state_file(self, workdir: Path, rel: str):
        """A file of the ext4 state partition as the disk holds it now (debugfs, read-only), or None."""
        img = workdir / "state-part.img"
        img.write_bytes(self.read_part("state"))
        # What a mount would see: ext4's journal replayed first (on the copy; debugfs alone does not).
        subprocess.run(["e2fsck", "-E", "journal_only", "-y", str(img)], capture_output=True)
        p = subprocess.run(["debugfs", "-R", f"cat {rel}", str(img)], capture_output=True)
        img.unlink()
        return p.stdout.decode(errors="replace") if p.returncode == 0 and p.stdout else None

    def read_part(self, name, length=None) -> bytes:
        off, size = self.part[name]
        with open(self.path, "rb") as f:
            f.seek(off)
            return f.read(size if length is None else length)

    def write_part(self, name, data: bytes):
        off, size = self.part[name]
        assert len(data) <= size
        with open(self.path, "r+b") as f:
            f.seek(off)
            f.write(data)


# ------------------------------------------------------------------ a disk cache that a power cut empties

NBD_MAGIC = b"NBDMAGIC"
NBD_OPTS_MAGIC = 0x49484156454F5054
NBD_REP_MAGIC = 0x3E889045565A9
NBD_REQ_MAGIC = 0x25609513
NBD_SIMPLE_REPLY_MAGIC = 0x67446698


class WritebackDisk:
    """An NBD server for one image file with a volatile write-back cache, like a disk's: a write is held
    in memory (reads see it) until the guest flushes (or writes with FUA); then it reaches the file.
    cut() is the power cut: every unflushed write is lost. This is what cache=none/unsafe cannot model:
    with them a write qemu completed sits in the host's page cache and survives qemu's death."""

    def __init__(self, image: Path, sock: Path):
        self.image, self.sock = Path(image), Path(sock)
        self.size = self.image.stat().st_size
        self.pending = {}          # sector -> 512 bytes, not yet durable
        self.gen = 0               # bumped by cut(): requests of a connection from before the cut are void
        self.lock = threading.Lock()
        self.stats = dict(writes=0, flushes=0, lost_sectors=0, bytes_written=0)
        self.fd = os.open(self.image, os.O_RDWR)
        if self.sock.exists():
            self.sock.unlink()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(self.sock))
        self.srv.listen(1)
        self.conn = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        try:
            self.srv.close()
        except OSError:
            pass
        if self.conn:
            try:
                self.conn.close()
            except OSError:
                pass
        os.close(self.fd)

    def cut(self):
        """Power cut: drop what was never flushed. Returns the number of sectors lost."""
        with self.lock:
            n = len(self.pending)
            self.pending.clear()
            self.gen += 1
            self.stats["lost_sectors"] += n
            return n

    def _flush(self, gen):
        with self.lock:
            if gen != self.gen:
                return
            items = sorted(self.pending.items())
            self.pending.clear()
        i = 0
        while i < len(items):
            j = i
            while j + 1 < len(items) and items[j + 1][0] == items[j][0] + 1:
                j += 1
            os.pwrite(self.fd, b"".join(d for _, d in items[i:j + 1]), items[i][0] * SECTOR)
            i = j + 1
        self.stats["flushes"] += 1

    def _read(self, off, length):
        data = bytearray(os.pread(self.fd, length, off))
        with self.lock:
            if self.pending:
                s0, s1 = off // SECTOR, (off + length + SECTOR - 1) // SECTOR
                if len(self.pending) < (s1 - s0):
                    it = ((s, d) for s, d in self.pending.items() if s0 <= s < s1)
                else:
                    it = ((s, self.pending[s]) for s in range(s0, s1) if s in self.pending)
                for s, d in it:
                    lo = max(off, s * SECTOR)
                    hi = min(off + length, (s + 1) * SECTOR)
                    data[lo - off:hi - off] = d[lo - s * SECTOR:hi - s * SECTOR]
        return bytes(data)

    def _write(self, off, payload, fua, gen):
        if off % SECTOR or len(payload) % SECTOR:
            # Unaligned: merge with what the guest would read (qemu aligns, but be exact anyway).
            s0, s1 = off // SECTOR, (off + len(payload) + SECTOR - 1) // SECTOR
            cur = bytearray(self._read(s0 * SECTOR, (s1 - s0) * SECTOR))
            cur[off - s0 * SECTOR:off - s0 * SECTOR + len(payload)] = payload
            off, payload = s0 * SECTOR, bytes(cur)
        with self.lock:
            if gen != self.gen:
                return
            for k in range(len(payload) // SECTOR):
                self.pending[off // SECTOR + k] = payload[k * SECTOR:(k + 1) * SECTOR]
        self.stats["writes"] += 1
        self.stats["bytes_written"] += len(payload)
        if fua:
            self._flush(gen)

    def _recv(self, n):
        b = bytearray()
        while len(b) < n:
            chunk = self.conn.recv(n - len(b))
            if not chunk:
                raise ConnectionError("closed")
            b += chunk
        return bytes(b)

    def _serve(self):
        while True:
            try:
                self.conn, _ = self.srv.accept()
            except OSError:
                return
            try:
                self._session()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    self.conn.close()
                except OSError:
                    pass

    def _reply_opt(self, opt, rep, data=b""):
        self.conn.sendall(struct.pack(">QIII", NBD_REP_MAGIC, opt, rep, len(data)) + data)

    def _session(self):
        c = self.conn
        gen = self.gen
        c.sendall(NBD_MAGIC + struct.pack(">QH", NBD_OPTS_MAGIC, 0x3))   # FIXED_NEWSTYLE | NO_ZEROES
        self._recv(4)
        tflags = 0x1 | 0x4 | 0x8            # HAS_FLAGS | SEND_FLUSH | SEND_FUA
        while True:
            magic, opt, length = struct.unpack(">QII", self._recv(16))
            data = self._recv(length) if length else b""
            if opt in (7, 6):    # GO, INFO
                self._reply_opt(opt, 3, struct.pack(">HQH", 0, self.size, tflags))   # NBD_INFO_EXPORT
                self._reply_opt(opt, 1)
                if opt == 7:
                    break
            elif opt == 1:       # EXPORT_NAME (old clients)
                c.sendall(struct.pack(">QH", self.size, tflags))
                break
            elif opt == 2:       # ABORT
                self._reply_opt(opt, 1)
                return
            else:
                self._reply_opt(opt, (1 << 31) | 1)   # ERR_UNSUP
        while True:
            magic, flags, typ, handle, off, length = struct.unpack(">IHHQQI", self._recv(28))
            if magic != NBD_REQ_MAGIC:
                return
            err, payload = 0, b""
            if typ == 0:
                payload = self._read(off, length)
            elif typ == 1:
                self._write(off, self._recv(length), bool(flags & 1), gen)
            elif typ == 2:
                return
            elif typ == 3:
                self._flush(gen)
            else:
                err = 22
            c.sendall(struct.pack(">IIQ", NBD_SIMPLE_REPLY_MAGIC, err, handle) + payload)


# ------------------------------------------------------------------ the machine

# Every guest command line carries no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer
# check can miss its window and panic ("IO-APIC + timer doesn't work!"), as virtualised guests are known to.
# Seconds after power-on at which the serial line first shows: the firmware starting the loader, the
# guest's init reaching its script (kernel + initramfs + tools), and the script's end.
MILESTONES = {"loader": "BdsDxe: starting", "userspace": "@@ready", "script-done": "@@exit"}


class BootTimeout(AssertionError):
    pass


class Boot:
    """One power-on to power-off of the VM: the serial log, @@markers, timings."""

    def __init__(self, log: str, seconds: float, exit_reason: str):
        self.log, self.seconds, self.exit_reason = log, seconds, exit_reason
        self.marks = {}
        self.blocks = {}
        for m in re.finditer(r"^@@([\w.-]+)=(.*?)\r?$", log, re.M):
            self.marks[m.group(1)] = m.group(2)
        for m in re.finditer(r"^@@begin ([\w.-]+)\r?\n(.*?)^@@end \1\r?$", log, re.M | re.S):
            self.blocks[m.group(1)] = m.group(2).replace("\r", "")

    def block_bytes(self, name):
        return base64.b64decode("".join(self.blocks[name].split()))

    def tail(self, n=40):
        return "\n".join(self.log.splitlines()[-n:])

    @property
    def reached_userspace(self):
        return "@@ready" in self.log


class VM:
    """A q35 machine with SMM and Secure-Boot-capable OVMF, pflash variables that persist across boots,
    the disk (a raw file, or the write-back cache server) and a control disk (a tar the guest runs)."""

    def __init__(self, workdir: Path, disk: Disk, tools: Path, vars_template=OVMF_VARS, code=OVMF_CODE, memory=768):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.disk, self.tools, self.code, self.memory = disk, tools, code, memory
        self.vars = self.workdir / "OVMF_VARS.fd"
        shutil.copy(vars_template, self.vars)
        self.boots = []
        self.nbd = None

    def control_disk(self, script: str, files: dict) -> Path:
        path = self.workdir / f"ctl-{len(self.boots)}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
            def add(name, data, mode=0o644):
                ti = tarfile.TarInfo(name)
                ti.mode, ti.mtime = mode, 0
                if isinstance(data, Path):
                    ti.size = data.stat().st_size
                    with open(data, "rb") as f:
                        t.addfile(ti, f)
                else:
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
            add("run.sh", GUEST_PRELUDE.encode() + script.encode(), 0o755)
            for name, data in files.items():
                add(name, data if isinstance(data, Path) else (data.encode() if isinstance(data, str) else data),
                    0o755 if name.endswith(".sh") or name.startswith("hooks/") else 0o644)
        with open(path, "ab") as f:
            f.truncate(((path.stat().st_size + MiB - 1) // MiB) * MiB)
        return path

    def qemu_argv(self, ctl: Path, netdev=None):
        argv = ["qemu-system-x86_64", "-machine", "q35,smm=on", "-accel", "tcg", "-cpu", "max", "-m", str(self.memory),
                "-smp", "1", "-global", "driver=cfi.pflash01,property=secure,value=on",
                "-drive", f"if=pflash,format=raw,unit=0,file={self.code},readonly=on",
                "-drive", f"if=pflash,format=raw,unit=1,file={self.vars}",
                "-display", "none", "-no-reboot", "-nodefaults", "-serial", f"file:{self.serial}",
                "-device", "virtio-rng-pci"]
        if self.nbd:
            argv += ["-drive", f"if=none,id=d0,driver=raw,file.driver=nbd,file.server.type=unix,"
                               f"file.server.path={self.nbd.sock},cache.direct=off,cache.no-flush=off"]
        else:
            argv += ["-drive", f"if=none,id=d0,format=raw,file={self.disk.path},cache=writeback"]
        argv += ["-device", "virtio-blk-pci,drive=d0,serial=ringildisk,bootindex=0",
                 "-drive", f"if=none,id=d1,format=raw,file={ctl},readonly=on",
                 "-device", "virtio-blk-pci,drive=d1,serial=ringilctl",
                 "-drive", f"if=none,id=d2,format=raw,file={self.tools},readonly=on",
                 "-device", "virtio-blk-pci,drive=d2,serial=ringiltools"]
        if netdev:
            argv += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"]
        else:
            argv += ["-nic", "none"]
        return argv

    def boot(self, script="", files=None, timeout=600, netdev=None, cut_after=None, cut_marker=None, expect_userspace=True,
             stop_on=None):
        """Power on, run script in the guest, wait for power-off (or for timeout: a failure with the last 40
        lines of serial output). cut_after: seconds after cut_marker appears on the serial line (or after
        power-on) to SIGKILL qemu and drop the disk's unflushed writes (a power cut). stop_on: a regex that
        ends the boot when the serial line shows it (a loader error that would otherwise sit in a menu: the
        watchdog's power cycle)."""
        ctl = self.control_disk(script, files or {})
        self.serial = self.workdir / f"serial-{len(self.boots)}.log"
        self.serial.write_bytes(b"")
        t0 = time.monotonic()
        p = subprocess.Popen(self.qemu_argv(ctl, netdev), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        reason, armed = "poweroff", None if cut_marker else t0
        seen = {}
        try:
            while True:
                if p.poll() is not None:
                    break
                now = time.monotonic()
                text = self.serial.read_text(errors="replace")
                for key, pat in MILESTONES.items():
                    if key not in seen and pat in text:
                        seen[key] = round(now - t0, 1)
                if stop_on and re.search(stop_on, text):
                    time.sleep(0.5)
                    p.kill()
                    p.wait()
                    reason = "stopped"
                    break
                if cut_after is not None:
                    if armed is None and cut_marker and cut_marker in text:
                        armed = now
                    if armed is not None and now - armed >= cut_after:
                        p.kill()
                        p.wait()
                        reason = "power-cut"
                        break
                if now - t0 > timeout:
                    p.kill()
                    p.wait()
                    reason = "timeout"
                    break
                time.sleep(0.2)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        lost = self.nbd.cut() if self.nbd else 0
        out = p.stdout.read().decode(errors="replace") if p.stdout else ""
        b = Boot(self.serial.read_text(errors="replace"), time.monotonic() - t0, reason)
        b.qemu_output, b.lost_sectors, b.milestones = out, lost, seen
        ctl.unlink()
        self.boots.append(b)
        if reason == "timeout":
            raise BootTimeout(f"VM did not power off within {timeout} s; last 40 lines of serial output:\n{b.tail()}")
        if expect_userspace and reason == "poweroff" and not b.reached_userspace:
            raise AssertionError(f"VM powered off without reaching the initramfs (qemu: {out.strip()[-500:]}); "
                                 f"last 40 lines of serial output:\n{b.tail()}")
        return b

    def writeback_cache(self):
        """Put the disk behind the volatile write-back cache from now on."""
        self.nbd = WritebackDisk(self.disk.path, self.workdir / "disk.nbd")
        return self.nbd


# Shell helpers for guest scripts: markers the host parses.
GUEST_PRELUDE = r"""
rep() { echo "@@$1=$2"; }
dump() { echo "@@begin $1"; base64 "$2"; echo "@@end $1"; }
efivar() { f=/sys/firmware/efi/efivars/$1; [ -e "$f" ] && tail -c +5 "$f" | tr -d '\000' || true; }
loadervar() { efivar "$1-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"; }
report_boot() {
    rep selected "$(loadervar LoaderEntrySelected)"
    rep countpath "$(loadervar LoaderBootCountPath)"
    rep loaderinfo "$(loadervar LoaderInfo)"
    rep entries "$(ls /boot/loader/entries 2>/dev/null | tr '\n' ' ')"
    rep cmdline "$(cat /proc/cmdline)"
}
"""


def deb_systemd_boot(deb: Path, dest: Path):
    """systemd-bootx64.efi and linuxx64.efi.stub from a systemd-boot-efi .deb, unpacked with dpkg-deb -x."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    base = dest / "usr/lib/systemd/boot/efi"
    return base / "systemd-bootx64.efi", base / "linuxx64.efi.stub"


def sdmagic_version(efi: Path):
    """The loader's own version string (the .sdmagic section's '#### LoaderInfo: systemd-boot V ####')."""
    m = re.search(rb"#### LoaderInfo: systemd-boot (\S+) ####", efi.read_bytes())
    return m.group(1).decode() if m else None

