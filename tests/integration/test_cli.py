"""test_cli.py: the ringil CLI skeleton: dispatch, --help, --version, exit codes; configuration errors of all three programs."""
import os
import re

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
    assert "a\\x0ab\\x1b[31m.conf" in p.err


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
