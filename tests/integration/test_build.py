"""test_build.py: every documented make target works from a fresh clone on its own: it installs the
packages it needs (scripts/deps.sh), and configuring does not need cmocka unless tests are required."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def deps(level):
    p = subprocess.run([ROOT / "scripts" / "deps.sh", "--list", level], capture_output=True, text=True, check=True)
    return set(p.stdout.split())


def recipes():
    """Makefile target -> its recipe lines, with the recipes of the targets it depends on in front."""
    text = (ROOT / "Makefile").read_text()
    rules, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^([$()A-Za-z0-9_./-]+):(.*)$", line)
        if m and not line.startswith("\t"):
            cur = m.group(1)
            rules[cur] = {"deps": m.group(2).split(), "cmds": []}
        elif line.startswith("\t") and cur:
            rules[cur]["cmds"].append(line.strip())
    def expand(t, seen=()):
        if t not in rules or t in seen:
            return []
        out = []
        for d in rules[t]["deps"]:
            out += expand(d, seen + (t,))
        for c in rules[t]["cmds"]:
            sub = re.match(r"\$\(MAKE\) (\S+)", c)
            out += expand(sub.group(1), seen + (t,)) if sub else [c]
        return out
    return {t: expand(t) for t in rules}


# pkg-config names in meson.build -> the Debian package that ships them
PC_PACKAGE = {"libcrypto": "libssl-dev", "libssl": "libssl-dev", "jansson": "libjansson-dev",
              "libcurl": "libcurl4-openssl-dev", "sqlite3": "libsqlite3-dev", "cmocka": "libcmocka-dev",
              "libpq": "libpq-dev"}
# commands the demo and bench scripts run -> the Debian package that ships them
TOOL_PACKAGE = {"sbverify": "sbsigntool", "sbsign": "sbsigntool", "linuxx64.efi.stub": "systemd-boot-efi",
                "python3": "python3", "openssl": "openssl", "hyperfine": "hyperfine", "rauc": "rauc",
                "mksquashfs": "squashfs-tools", "lynis": "lynis", "/usr/bin/time": "time",
                "dbus-run-session": "dbus", "curl": "curl", "build_golden": "efitools"}


def tools_in(*scripts):
    text = "\n".join(Path(s).read_text() for s in scripts)
    return {pkg for tool, pkg in TOOL_PACKAGE.items() if re.search(rf"(?<![\w.-]){re.escape(tool)}\b", text)}


def test_each_target_installs_what_it_needs():
    r = recipes()
    level = {}
    for target in ("all", "build", "demo", "bench", "install", "fuzz", "check"):
        cmds = r[target]
        assert cmds, target
        first_meson = next((i for i, c in enumerate(cmds) if c.startswith(("meson", "ninja", "scripts/check.sh",
                                                                              "scripts/fuzz.sh"))), len(cmds))
        calls = [c.split()[1] for c in cmds[:first_meson] if c.startswith("scripts/deps.sh")]
        if target == "check":
            assert "scripts/deps.sh test" in (ROOT / "scripts" / "check.sh").read_text()
            continue
        assert calls, f"make {target} builds before installing its packages: {cmds}"
        level[target] = set().union(*(deps(c) for c in calls))
    # compiling needs every library meson.build asks pkg-config for, cmocka aside
    meson = (ROOT / "meson.build").read_text()
    needed = {PC_PACKAGE[n] for n in re.findall(r"dependency\('([\w-]+)'", meson)}
    for target in ("all", "build", "demo", "bench", "install", "fuzz"):
        assert needed <= level[target], (target, needed - level[target])
    assert tools_in(ROOT / "scripts" / "demo.sh", ROOT / "scripts" / "fleet-demo.sh") <= level["demo"]
    assert tools_in(*sorted((ROOT / "bench").glob("*.sh"))) <= level["bench"]
    assert "libcmocka-dev" in deps("test") and "clang" in level["fuzz"]


def test_unit_tests_do_not_block_the_build():
    """cmocka is only required when the tests are (make check passes -Dtests=enabled)."""
    text = (ROOT / "tests" / "meson.build").read_text()
    assert re.search(r"dependency\('cmocka'.*required: get_option\('tests'\)", text)
    opts = (ROOT / "meson_options.txt").read_text()
    assert re.search(r"option\('tests', type: 'feature', value: 'auto'", opts)
    assert "-Dtests=enabled" in (ROOT / "scripts" / "check.sh").read_text()


def pc_dirs():
    out = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"], capture_output=True, text=True)
    return [d for d in out.stdout.strip().split(":") if d and os.path.isdir(d)]


@pytest.fixture
def no_cmocka(tmp_path):
    """A pkg-config search path with every .pc file of this machine but cmocka's."""
    d = tmp_path / "pc"
    d.mkdir()
    for src in pc_dirs():
        for pc in Path(src).glob("*.pc"):
            if pc.name != "cmocka.pc" and not (d / pc.name).exists():
                (d / pc.name).symlink_to(pc)
    return {**os.environ, "PKG_CONFIG_LIBDIR": str(d), "PKG_CONFIG_PATH": ""}


def meson_setup(build, env, *opts):
    return subprocess.run(["meson", "setup", str(build), str(ROOT), *opts], capture_output=True, text=True, env=env,
                          timeout=300)


def test_configure_without_cmocka(tmp_path, no_cmocka):
    p = meson_setup(tmp_path / "b1", no_cmocka)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "unit tests not built" in p.stdout
    assert not list((tmp_path / "b1").glob("**/test-escape*"))
    intro = subprocess.run(["meson", "introspect", "--tests", str(tmp_path / "b1")], capture_output=True, text=True)
    suites = {x for t in json.loads(intro.stdout) for x in t["suite"]}
    assert not any(x.endswith(":unit") for x in suites), suites
    assert any(x.endswith(":fuzz") for x in suites), suites   # the corpus replay still runs
    p = meson_setup(tmp_path / "b2", no_cmocka, "-Dtests=enabled")
    assert p.returncode != 0 and "cmocka" in p.stdout + p.stderr
    p = meson_setup(tmp_path / "b3", dict(os.environ), "-Dtests=disabled")
    assert p.returncode == 0, p.stdout + p.stderr
