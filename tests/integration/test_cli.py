"""test_cli.py: the ringil CLI skeleton: dispatch, --help, --version, exit codes, escaped messages; configuration errors of all three programs."""
import os
import re
import subprocess

import pytest

from conftest import Run, binary


def test_version(ringil):
    p = ringil("--version", check=0)
    assert re.match(r"ringil \d+\.\d+\.\d+ \(OpenSSL 3\.", p.out)
    assert ringil("version", check=0).out == p.out


def test_help_lists_commands_and_exit_codes(ringil):
    p = ringil("--help", check=0)
    assert "Usage: ringil" in p.out
    assert "version" in p.out
    assert "Exit codes:" in p.out


def test_no_command_is_usage_error(ringil):
    p = ringil()
    assert p.returncode == 2


def test_unknown_command(ringil):
    p = ringil("frobnicate")
    assert p.returncode == 2
    assert "unknown command 'frobnicate'" in p.err


def test_unknown_option(ringil):
    assert ringil("--frob").returncode == 2


def test_subcommand_help(ringil):
    p = ringil("version", "--help", check=0)
    assert p.out.startswith("Usage: ringil version")


# --- configuration errors: one line, the path once, the line and what is wrong (or why unreadable) -----

CONFIG_CASES = {
    # program: (argv before --config, a file whose line 2 holds an unknown key, its message tail)
    "ringil": (["status"], "[device]\ncolour = blue\ncompatible = x\n", "unknown key `colour' in [device]"),
    "ringild": (["--once"], "server = https://127.0.0.1:1\ncolour = blue\n", "unknown key `colour'"),
    "ringil-server": (["serve"], "db = /tmp/x.db\ncolour = blue\n", "unknown key `colour'"),
}


def config_run(name, path):
    argv, _, _ = CONFIG_CASES[name]
    return Run(binary(name))(*argv, "--config", path, timeout=20)


def test_config_errors_name_the_path_once_with_the_reason(tmp_path):
    for name, (argv, text, tail) in CONFIG_CASES.items():
        missing = tmp_path / "missing.conf"
        p = config_run(name, missing)
        assert p.returncode == 12, (name, p.err)
        assert p.err == f"{name}: cannot read configuration `{missing}': No such file or directory\n", p.err

        p = config_run(name, tmp_path)
        assert p.returncode == 1 and p.err == f"{name}: cannot read configuration `{tmp_path}': it is a directory\n"

        fifo = tmp_path / f"{name}.fifo"
        os.mkfifo(fifo)
        p = config_run(name, fifo)   # no writer: a blocking open would hang until the timeout
        assert p.returncode == 3 and p.err == f"{name}: cannot read configuration `{fifo}': not a regular file\n"

        bad = tmp_path / f"{name}.conf"
        bad.write_text(text)
        p = config_run(name, bad)
        assert p.returncode == 3, (name, p.err)
        assert p.err == f"{name}: {bad}:2: {tail}\n", p.err

        big = tmp_path / f"{name}-big.conf"
        big.write_text("#" * 100 + "\n" + ("# filler\n" * 8000))
        p = config_run(name, big)
        assert p.returncode == 3 and p.err == f"{name}: cannot read configuration `{big}': larger than 65536 bytes\n"


def test_config_error_escapes_the_path(tmp_path):
    odd = tmp_path / "a\nb\x1b[31m.conf"
    p = config_run("ringild", odd)
    assert p.returncode == 12
    assert p.err.count("\n") == 1 and "\x1b" not in p.err
    assert "a\\nb\\x1b[31m.conf" in p.err


def test_config_value_errors_quote_the_value(tmp_path):
    conf = tmp_path / "ringild.conf"
    conf.write_text("server = https://127.0.0.1:1\nca = /ca.pem\ncert = /c.pem\nkey = /k.pem\npoll-interval = 0\n")
    p = config_run("ringild", conf)
    assert p.returncode == 3
    assert p.err == (f"ringild: {conf}:5: poll-interval: `0' is not a duration in 1s..7d "
                     "(seconds, or a unit s, min, h, d)\n")
    conf.write_text("server = https://127.0.0.1:1\nca = /ca.pem\ncert = /c.pem\nkey = /k.pem\nserver = https://x\n")
    p = config_run("ringild", conf)
    assert p.returncode == 3 and p.err == f"ringild: {conf}:5: duplicate key `server' (first on line 1)\n"
    dev = tmp_path / "device.conf"
    dev.write_text("[device]\ncompatible = x\nboot-tries = 99\n")
    p = config_run("ringil", dev)
    assert p.returncode == 3 and p.err == f"ringil: {dev}:3: [device] boot-tries: `99' is not a number in 1..32\n"
    dev.write_text("[device]\nkeyring = /k.pem\n")
    p = config_run("ringil", dev)
    assert p.returncode == 3 and p.err == f"ringil: {dev}: missing `compatible' in [device]\n"


def commands(text, of=None):
    """The command names listed under "Commands[ of X]:" in a --help text."""
    head = f"Commands of {of}:" if of else "Commands:"
    lines = text.split(head, 1)[1].splitlines()[1:]
    out = []
    for line in lines:
        if not line.startswith("  ") or not line.strip():
            break
        out.append(line.split()[0])
    return out


def test_every_verb_shows_its_own_help(ringil):
    """`ringil G --help` shows G's text with its commands; `ringil G C --help` shows C's detailed text,
    never the group's stub (the nested dispatch answers --help at the innermost verb)."""
    top = commands(ringil("--help", check=0).out)
    assert {"keys", "efi", "bundle", "ca", "install", "audit"} <= set(top)
    groups = 0
    for verb in top:
        p = ringil(verb, "--help", check=0)
        assert p.out.startswith(f"Usage: ringil {verb}"), (verb, p.out[:200])
        if f"Commands of {verb}:" not in p.out:
            continue
        groups += 1
        assert "Exit codes:" in p.out
        subs = commands(p.out, verb)
        assert subs, verb
        for sub in subs:
            for flag in ("--help", "-h"):
                q = ringil(verb, sub, flag, check=0)
                assert q.out.startswith(f"Usage: ringil {verb} {sub}"), (verb, sub, q.out[:200])
                assert "Options:" in q.out and "Exit codes" in q.out, (verb, sub)
                assert q.out != p.out
        # a missing command is a usage error that still says what the commands are
        r = ringil(verb)
        assert r.returncode == 2 and f"Commands of {verb}:" in r.err
    assert groups >= 4


def test_ca_help_is_the_detailed_text(ringil):
    p = ringil("ca", "issue", "--help", check=0)
    assert "--operator" in p.out and "--san S" in p.out and "EKU" in p.out
    p = ringil("ca", "create", "--help", check=0)
    assert "basicConstraints" in p.out and "--days N" in p.out
    p = ringil("ca", "--help", check=0)
    assert "create" in p.out and "issue" in p.out and "COMMAND --help" in p.out
    # --help after options too, and an unknown nested command names its group
    assert ringil("ca", "issue", "--dir", "x", "--help", check=0).out.startswith("Usage: ringil ca issue")
    q = ringil("ca", "frob")
    assert q.returncode == 2 and "unknown command 'frob' for ca" in q.err


HOSTILE = "evil\nringil: OK: all verified\x1b[2J\x1b]0;pwned\x07\u202e.rb"


def assert_one_clean_line(text):
    """A message that named HOSTILE: one line, no control byte, no bidi override, the name escaped."""
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    assert not any(ord(c) < 0x20 and c != "\n" or ord(c) == 0x7f for c in text), repr(text)
    assert "\u202e" not in text and "\x1b" not in text
    assert "evil\\nringil: OK: all verified\\x1b[2J\\x1b]0;pwned\\x07\\u202e.rb" in text, repr(text)


def test_untrusted_names_are_escaped_in_messages(ringil, tmp_path):
    hostile = tmp_path / HOSTILE
    hostile.write_bytes(b"not a bundle")
    # a file that exists, a file that does not, a config file: every message stays one escaped line
    for args in (["bundle", "info", hostile], ["bundle", "info", str(hostile) + "x"],
                 ["bundle", "verify", "--keyring", hostile, hostile], ["efi", "hash", hostile],
                 ["install", "--config", hostile, "x.rb"], ["status", "--config", str(hostile) + "x"]):
        p = ringil(*args)
        assert p.returncode != 0, args
        assert_one_clean_line(p.err)
    # usage errors quote the argument back, escaped as well
    p = ringil("install", "--slot", HOSTILE, "x.rb")
    assert p.returncode == 2
    assert_one_clean_line(p.err)
    # invalid UTF-8 in a name is shown byte by byte
    bad = os.fsencode(tmp_path) + b"/x\xff\x7f.rb"
    p = subprocess.run([str(ringil.exe), "bundle", "info", bad], capture_output=True)
    assert p.returncode == 12 and b"x\\xff\\x7f.rb" in p.stderr and b"\xff" not in p.stderr


def test_untrusted_names_are_escaped_on_stdout(ringil, tmp_path):
    """Names printed as results (sha256sum-style lines) are escaped too."""
    stub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
    if not os.path.exists(stub):
        pytest.skip("systemd-boot-efi not installed")
    hostile = tmp_path / HOSTILE
    hostile.write_bytes(open(stub, "rb").read())
    p = ringil("efi", "hash", hostile, check=0)
    assert p.out.count("\n") == 1 and "\x1b" not in p.out and "\\x1b[2J" in p.out
