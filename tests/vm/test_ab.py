"""test_ab.py: A/B updates with the real systemd-boot of Debian 12 under OVMF with Secure Boot enforced: the
loader's own renames read back from the vfat ESP and from LoaderEntrySelected, bless, a failing release
counted down until systemd-boot falls back on its own, and `ringil status` reporting the rollback."""
import pytest

import vmlib
from drone import Drone, slot_image


def installed_loader():
    return vmlib.SD_BOOT, vmlib.STUB, vmlib.sdmagic_version(vmlib.SD_BOOT)


def test_ab_update_bless_and_fallback(env, enrolled, tmp_path):
    d = Drone(env, tmp_path / "ab", installed_loader(), secure=True, vars_template=enrolled.vars, name="A/B 252 SB")
    bundles = {}
    for v, health in (("1.0", "ok"), ("2.0", "ok"), ("3.0", "fail")):
        img = slot_image(tmp_path / f"img-{v}", v, health)
        bundles[v] = env.bundle(tmp_path / f"v{v}.rb", v, img)

    b = d.boot("provision slot a (v1.0)", [("install", bundles["1.0"], "a")])
    assert b.marks["install"] == "0", b.tail()
    assert d.entries() == ["ringil-a-1.0+3.conf"]

    b = d.boot("boot a, bless, install v2.0", [("bless",), ("install", bundles["2.0"])])
    assert b.marks["entries"].split() == ["ringil-a-1.0+2-1.conf"]     # the loader's rename, seen in the guest
    assert b.marks["countpath"] == "\\loader\\entries\\ringil-a-1.0+2-1.conf"
    assert b.marks["bless"] == "0" and b.marks["install"] == "0", b.tail()
    assert d.entries() == ["ringil-a-1.0.conf", "ringil-b-2.0+3.conf"]   # read back from the vfat ESP

    b = d.boot("boot b (+3 -> +2-1), health ok, bless, install v3.0", [("bless",), ("install", bundles["3.0"])])
    assert b.marks["entries"].split() == ["ringil-a-1.0.conf", "ringil-b-2.0+2-1.conf"]
    assert b.marks["selected"] in ("ringil-b-2.0+3.conf", "ringil-b-2.0.conf")   # 252 keeps the counter
    assert "booted:     b (ringil-b-2.0+2-1.conf;" in b.block_bytes("status-before").decode()
    assert b.marks["bless"] == "0" and b.marks["install"] == "0", b.tail()
    assert d.entries() == ["ringil-a-3.0+3.conf", "ringil-b-2.0.conf"]
    assert b.status["floor"] == "2.0" and b.status["slots"]["a"]["state"] == "pending"

    seen = []
    for i in range(1, 4):
        b = d.boot(f"boot a v3.0 (try {i}): health gate fails, no bless", [("bless",)])
        assert b.marks["bless"] == "health-failed", b.tail()
        assert b.status["booted"] == "a"
        seen.append([e for e in d.entries() if e.startswith("ringil-a")][0])
    assert seen == ["ringil-a-3.0+2-1.conf", "ringil-a-3.0+1-2.conf", "ringil-a-3.0+0-3.conf"]

    b = d.boot("tries spent: systemd-boot falls back to b on its own", [("bless",)])
    assert b.marks["selected"] in ("ringil-b-2.0.conf",)
    assert b.status["booted"] == "b" and b.status["rollback"] is True, b.status
    assert b.status["slots"]["a"]["state"] == "bad" and b.status["floor"] == "2.0"
    assert b.status["last_error"].startswith("rollback: slot a (3.0)")
    assert d.entries() == ["ringil-a-3.0+0-3.conf", "ringil-b-2.0.conf"]
