"""test_fleet.py: the fleet for real: ringild in the VM enrolls with a ringil-server on the host's loopback
(qemu user networking with restrict=on; one guestfwd relayed to 127.0.0.1 is the guest's only way out), downloads
its release, installs it, reboots the VM through its reboot command, blesses after the reboot and reports;
the server shows it. Then a release whose health gate fails: rolled back through the real boot loader and
reported as such."""
import sys

import vmlib
from conftest import BUILD, ROOT
from drone import Drone, slot_image

sys.path.insert(0, str(ROOT / "tests" / "integration"))
from fleetsim import Pki, Server, run  # noqa: E402

GUEST_SERVER = "10.0.2.100"


def test_fleet_update_and_rollback_through_the_server(env, tmp_path):
    pki = Pki(env.ringil, tmp_path / "pki")
    # The server's certificate names the address the guest reaches it at (the guestfwd endpoint), and the
    # host's loopback for the operator's commands.
    run([env.ringil, "ca", "issue", "--dir", pki.dir / "ca", "--name", GUEST_SERVER, "--server", "--san",
         "IP:127.0.0.1", "--out-dir", pki.dir / "srv"])
    srv = Server(BUILD / "ringil-server" / "ringil-server", pki, tmp_path / "srv")
    srv.conf.write_text(srv.conf.read_text().replace("127.0.0.1.pem", f"{GUEST_SERVER}.pem")
                        .replace("127.0.0.1.key", f"{GUEST_SERVER}.key"))
    srv.start()
    try:
        # A chardev target would connect once, at qemu's start, and carry one connection; cmd: is spawned
        # for each guest connection: a relay to the server on the host's loopback (busybox nc).
        netdev = (f"user,id=n0,restrict=on,guestfwd=tcp:{GUEST_SERVER}:443-cmd:/bin/busybox nc 127.0.0.1 "
                  f"{srv.port},guestfwd=tcp:{GUEST_SERVER}:8443-cmd:/bin/busybox nc 127.0.0.1 {srv.enroll_port}")
        loader = (vmlib.SD_BOOT, vmlib.STUB, vmlib.sdmagic_version(vmlib.SD_BOOT))
        d = Drone(env, tmp_path / "fleet", loader, name="fleet 252")
        d.files["keys/db.pem"] = (pki.dir / "sign.pem").read_bytes()
        mk = lambda v, health: pki.bundle(v, slot_image(tmp_path / f"img-{v}", v, health), tmp_path / f"v{v}.rb",
                                          compatible="vm-drone")
        v1, v2, v3 = mk("1.0", "ok"), mk("2.0", "ok"), mk("3.0", "fail")
        token = srv.op("enroll", "vm-drone-1").out.strip()
        agent_conf = f"""server = https://{GUEST_SERVER}
enroll-server = https://{GUEST_SERVER}:8443
ca = /ctl/fleet-ca.pem
cert = /var/lib/ringil/agent/cert.pem
key = /var/lib/ringil/agent/key.pem
device-config = /etc/ringil/device.conf
state-dir = /var/lib/ringil/agent/state
ringil = /usr/bin/ringil
reboot-command = sync; reboot -f
health-command = /usr/bin/ringil health
boot-id-file = /proc/sys/kernel/random/boot_id
poll-interval = 1
timeout = 30
"""
        files = {"ringild.conf": agent_conf, "fleet-ca.pem": pki.ca.read_bytes()}
        net = ("sh", "ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; "
                     "ip route add default via 10.0.2.2")
        agent = ("sh", "for i in 1 2 3 4; do ringild --config /ctl/ringild.conf --once --verbose; "
                       "rep agent-$i $?; done")

        b = d.boot("factory: provision a v1.0, enroll ringild", [
            ("install", v1, "a"), net,
            ("sh", f"mkdir -p /var/lib/ringil/agent; ringild enroll --config /ctl/ringild.conf --id vm-drone-1 "
                   f"--token {token}; rep enroll $?")], files=files, netdev=netdev)
        assert b.marks["install"] == "0" and b.marks["enroll"] == "0", b.tail()
        b = d.boot("factory: boot a, bless", [("bless",)], files=files)
        assert b.marks["bless"] == "0", b.tail()

        rid = srv.op("upload", v2).out.strip()
        srv.op("release", rid, "--fleet")
        b = d.boot("ringild: check in, download, install v2.0, reboot", [net, agent], files=files, netdev=netdev)
        assert b.exit_reason == "poweroff", b.tail()
        assert "ringil-b-2.0+3.conf" in d.entries(), b.tail()
        b = d.boot("after the reboot: ringild blesses b and reports", [net, agent], files=files, netdev=netdev)
        assert b.status["booted"] == "b" and b.status["slots"]["b"]["state"] == "good", b.tail()
        st = srv.drone("vm-drone-1")
        assert st["state"] == "updated" and st["version"] == "2.0", st
        assert d.disk.read_part("slot-b", 1 << 20) == (tmp_path / "img-2.0").read_bytes()

        rid = srv.op("upload", v3).out.strip()
        srv.op("release", rid, "--fleet")
        b = d.boot("ringild: install v3.0 (bad), reboot", [net, agent], files=files, netdev=netdev)
        assert "ringil-a-3.0+3.conf" in d.entries(), b.tail()
        b = d.boot("boot a v3.0: health gate fails, ringild marks it bad and reboots", [net, agent], files=files,
                   netdev=netdev)
        assert b.status is None or b.status["booted"] == "a"
        b = d.boot("back on b: ringild reports the rollback", [net, agent], files=files, netdev=netdev)
        assert b.status["booted"] == "b", b.tail()
        st = srv.drone("vm-drone-1")
        assert st["state"] == "rolled-back" and st["version"] == "2.0", st
    finally:
        srv.stop()
