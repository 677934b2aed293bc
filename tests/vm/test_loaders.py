"""test_loaders.py: the real-loader matrix. Each systemd-boot that Debian ships (bookworm 252, bookworm-backports
254, trixie 257, forky 262; .debs fetched by scripts/vm-loaders.sh, unpacked, nothing installed), signed with
our db key, under OVMF with Secure Boot enforced: first provisioning, linux/initrd slots and UKI slots counted,
a UKI that panics counted down to the fallback, bless, numeric version order, mark-bad. What each loader
reports (LoaderEntrySelected with or without the counter, LoaderBootCountPath, whether an `efi` entry is
counted) is recorded in build-results/vm-loaders.json and docs/install.md."""
import json
import os
from pathlib import Path

import pytest

from conftest import SUITES, merge_json
from drone import Drone, PROVISION_ENTRY, slot_image

PANIC_CMDLINE = "console=ttyS0 quiet panic=-1 no_timer_check rdinit=/nonexistent init=/nonexistent"
EVIDENCE = {}


def _selected_ok(reported, file_before, file_stripped):
    """What a loader may report: the name before its rename (counter kept) or the counter-less id."""
    return reported in (file_before, file_stripped)


@pytest.mark.parametrize("suite", SUITES)
def test_loader(env, enrolled, tmp_path, suite):
    loader = env.loader(suite)
    if loader is None:
        pytest.fail(f"no systemd-boot-efi .deb for {suite} in the cache: run scripts/vm-loaders.sh")
    boot_efi, stub, version = loader
    name = f"systemd-boot {version} ({suite})"
    d = Drone(env, tmp_path / suite, loader, secure=True, vars_template=enrolled.vars, tries=1, name=name)
    ev = EVIDENCE.setdefault(suite, {"version": version})

    # The provisioning entry is a hand-made `efi` entry with a counter: does this loader count it?
    prov = env.uki(stub, tmp_path / "provision.efi")
    d.disk.esp_put("EFI/provision/uki.efi", prov.read_bytes())
    d.disk.esp_rm(f"loader/entries/{PROVISION_ENTRY}")
    d.disk.esp_put("loader/entries/provision+3.conf", b"title provisioning\nefi /EFI/provision/uki.efi\n")

    imgs = {v: slot_image(tmp_path / f"img-{v}", v) for v in ("3.0", "4.0", "10.0", "11.0")}
    bad_uki = env.uki(stub, tmp_path / "uki-4.0.efi", cmdline=PANIC_CMDLINE)
    good_uki = env.uki(stub, tmp_path / "uki-10.0.efi")
    b30 = env.bundle(tmp_path / "v3.0.rb", "3.0", imgs["3.0"])
    b40 = env.bundle(tmp_path / "v4.0.rb", "4.0", imgs["4.0"], uki=bad_uki)
    b100 = env.bundle(tmp_path / "v10.0.rb", "10.0", imgs["10.0"], uki=good_uki)
    b110 = env.bundle(tmp_path / "v11.0.rb", "11.0", imgs["11.0"])
    boots = ev.setdefault("boots", [])

    def step(what, steps=(), **kw):
        b = d.boot(what, steps, **kw)
        boots.append(dict(what=what, seconds=round(b.seconds, 1), selected=b.marks.get("selected"),
                          countpath=b.marks.get("countpath"), loaderinfo=b.marks.get("loaderinfo"),
                          entries=d.entries(), outcome=b.exit_reason))
        return b

    # 1. First provisioning from an installer entry (an `efi` entry): slot a gets v3.0 (linux/initrd).
    b = step("provisioning boot (`efi` entry +3); install v3.0 --slot a", [("install", b30, "a")])
    assert b.marks["install"] == "0", b.tail()
    assert b.marks["loaderinfo"] == f"systemd-boot {version}"
    ev["efi_entry_counted"] = b.marks["countpath"] == "\\loader\\entries\\provision+2-1.conf"
    ev["efi_entry_selected"] = b.marks["selected"]
    # Counted or not, this loader must report the entry it booted.
    assert b.marks["selected"] in ("provision+3.conf", "provision.conf"), b.marks

    # 2. Slot a boots (a `linux` entry: counted), is blessed; a UKI v4.0 that panics goes to b.
    b = step("boot a (linux/initrd, +1): bless; install UKI v4.0 (panics) to b", [("bless",), ("install", b40)])
    assert b.marks["countpath"] == "\\loader\\entries\\ringil-a-3.0+0-1.conf", b.marks
    assert _selected_ok(b.marks["selected"], "ringil-a-3.0+1.conf", "ringil-a-3.0.conf"), b.marks
    ev["linux_selected"] = b.marks["selected"]
    assert b.marks["bless"] == "0" and b.marks["install"] == "0", b.tail()
    assert d.entries() == ["ringil-a-3.0.conf", "ringil-b-4.0+1.conf"]
    assert "linux /EFI/ringil/ringil-b-4.0.efi\n" in d.entry_text("ringil-b-4.0+1.conf")

    # 3. The UKI panics before userspace; the loader counted the attempt first.
    b = step("boot b: UKI v4.0 panics", expect_userspace=False, timeout=300)
    assert not b.reached_userspace and "Kernel panic" in b.log, b.tail()
    assert d.entries() == ["ringil-a-3.0.conf", "ringil-b-4.0+0-1.conf"], "UKI slot not counted"
    ev["uki_counted"] = True

    # 4. Tries spent: the loader falls back to a by itself; ringil records the rollback; UKI v10.0 to b.
    b = step("fallback to a; mark-good records rollback; install UKI v10.0 to b (+2)",
             [("bless",), ("sh", "ringil status --json > /tmp/s.json; dump status-mid /tmp/s.json"),
              ("install", b100)], tries=2)
    mid = json.loads(b.block_bytes("status-mid"))
    assert mid["booted"] == "a" and b.marks["bless"] == "0", b.tail()
    assert mid["rollback"] is True and mid["last_error"].startswith("rollback: slot b (4.0)"), mid
    assert b.marks["install"] == "0", b.tail()
    assert d.entries() == ["ringil-a-3.0.conf", "ringil-b-10.0+2.conf"]

    # 5. 10.0 sorts before 3.0 (numeric, not lexical); the UKI slot is counted, boots, is blessed.
    b = step("boot b UKI v10.0 (10.0 > 3.0): bless; install v11.0 to a (+2)", [("bless",), ("install", b110)], tries=2)
    assert b.marks["countpath"] == "\\loader\\entries\\ringil-b-10.0+1-1.conf", b.marks
    assert _selected_ok(b.marks["selected"], "ringil-b-10.0+2.conf", "ringil-b-10.0.conf"), b.marks
    ev["uki_selected"] = b.marks["selected"]
    assert b.marks["bless"] == "0" and b.marks["install"] == "0", b.tail()
    assert d.entries() == ["ringil-a-11.0+2.conf", "ringil-b-10.0.conf"]

    # 6. mark-bad on the pending a: it has a try left, yet the next boot must be b.
    b = step("boot a v11.0: mark-bad", [("mark-bad",)], tries=2)
    assert b.status["booted"] == "a" and b.marks["markbad"] == "0", b.tail()
    assert d.entries() == ["ringil-a-11.0+0-1.conf", "ringil-b-10.0.conf"]

    b = step("after mark-bad: b (blessed UKI) boots")
    assert b.status["booted"] == "b" and _selected_ok(b.marks["selected"], "ringil-b-10.0.conf", "ringil-b-10.0.conf")
    ev["result"] = "pass"


def teardown_module(module):
    out = os.environ.get("RINGIL_VM_LOADERS_JSON")
    if out and EVIDENCE:
        merge_json(out, lambda d: d.update(EVIDENCE))
