"""test_summarize.py: scripts/summarize.py, the last line of make check, over every kind of file check.sh
hands it: JUnit XML from meson, pytest and the VM suite, meson's JSON log, the VM timings and loader
evidence, and broken files."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "summarize.py"


def summarize(*paths):
    p = subprocess.run([sys.executable, str(SCRIPT), *map(str, paths)], capture_output=True, text=True)
    return p.returncode, p.stdout.splitlines()


def junit(path, suite, cases):
    body = ""
    for name, kind in cases:
        inner = {"ok": "", "fail": "<failure message='x'/>", "error": "<error message='x'/>",
                 "skip": "<skipped message='no qemu'/>"}[kind]
        body += f"<testcase classname='{suite}' name='{name}'>{inner}</testcase>"
    path.write_text(f"<?xml version='1.0'?><testsuites><testsuite name='{suite}'>{body}</testsuite></testsuites>")
    return path


def meson_log(path, results):
    path.write_text("".join(json.dumps({"name": n, "result": r, "stdout": "x\n" * 3}) + "\n" for n, r in results))
    return path


def test_counts_every_kind_once(tmp_path):
    files = [
        junit(tmp_path / "normal-meson.xml", "ringil.ringil:unit / err", [("1 - a", "ok"), ("2 - b", "fail")]),
        # meson's JSON says the same binary failed: not a second failure
        meson_log(tmp_path / "normal-meson.json", [("ringil:unit / err", "FAIL"), ("ringil:unit / conf", "OK"),
                                                   # crashed after its passing cases: JUnit shows no failure
                                                   ("ringil:unit / crashy", "ERROR")]),
        junit(tmp_path / "normal-pytest.xml", "tests.integration.test_x", [("t1", "ok"), ("t2", "ok"), ("t3", "skip")]),
        junit(tmp_path / "normal-vm.xml", "tests.vm.test_ab", [("test_ab", "ok"), ("test_cut", "error")]),
    ]
    timings = tmp_path / "vm-timings.json"
    timings.write_text(json.dumps({"boots": [{"test": "a", "boot": "x", "seconds": 11.5},
                                             {"test": "b", "boot": "y", "seconds": 20.25}],
                                   "load_average": [3.5, 2, 1], "total_boot_seconds": 31.8}, indent=1))
    loaders = tmp_path / "vm-loaders.json"
    loaders.write_text(json.dumps({"bookworm": {"version": "252.39", "boots": []}}, indent=1))
    rc, out = summarize(*files, timings, loaders)
    assert out[-1] == "4 passed, 3 failed, 1 skipped", out
    assert rc == 1
    assert "VM boots: 2, 32 s of boots in all, longest 20 s (load average at the end 3.5)" in out
    assert "FAILED: ringil:unit / crashy: ERROR" in out
    assert sum(1 for line in out if "unit / err" in line and line.startswith("FAILED")) == 1
    assert "SKIPPED: tests.integration.test_x::t3: no qemu" in out


def test_all_green_exits_zero(tmp_path):
    rc, out = summarize(junit(tmp_path / "a.xml", "s", [("t", "ok")]),
                        meson_log(tmp_path / "normal-meson.json", [("ringil:unit / err", "OK")]))
    assert (rc, out[-1]) == (0, "1 passed, 0 failed")


def test_broken_inputs_are_failures(tmp_path):
    ok = junit(tmp_path / "a.xml", "s", [("t", "ok")])
    cut = tmp_path / "cut-meson.json"
    cut.write_text(json.dumps({"name": "ringil:unit / err", "result": "OK"}) + "\n" + '{"name": "ringil:unit / co')
    bad_xml = tmp_path / "bad.xml"
    bad_xml.write_text("<testsuite><testcase")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json at all\n")
    rc, out = summarize(ok, cut, bad_xml, garbage)
    assert out[-1] == "1 passed, 3 failed", out
    assert rc == 1


def test_nothing_passed_is_not_success(tmp_path):
    rc, out = summarize(tmp_path / "missing.xml")
    assert rc == 1 and out[-1] == "0 passed, 1 failed"
