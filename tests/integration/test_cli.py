"""test_cli.py: the ringil CLI skeleton: dispatch, --help, --version, exit codes."""
import re


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
