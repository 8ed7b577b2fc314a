"""bridge/cli.py through the real process (`python -m bridge …`): exit codes, messages, help."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "bridge.example.toml"
CLI_TIMEOUT_S = 60


def bridge_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=CLI_TIMEOUT_S)


def write(tmp_path: Path, text: str, name: str = "bridge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def valid_config(tmp_path: Path, extra: str = "") -> str:
    return f"""
[database]
url = "sqlite:///{tmp_path / 'outbox.db'}"
[[ami]]
name = "pbx1"
username = "bridge"
secret = "${{AMI_SECRET}}"
{extra}
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_config_check_exits_0_and_summarises_when_valid(tmp_path):
    path = write(tmp_path, valid_config(tmp_path))
    result = bridge_cli("config", "check", "-c", str(path), env={"AMI_SECRET": "x"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK {path}: 1 AMI server(s) (pbx1)")


def test_example_config_passes_config_check_when_secrets_come_from_env():
    result = bridge_cli("config", "check", "--offline", "-c", str(EXAMPLE),
                        env={"AMI_SECRET": "a", "SOAP_PASSWORD": "b"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case,text,expected", [
    ("missing key", '[[ami]]\nhost = "pbx"\nusername = "b"\n', "ami[0].name: required key is missing"),
    ("wrong type", '[[ami]]\nname = "p"\nusername = "b"\nport = "five"\n', "ami[0].port: expected an integer"),
    ("bad regex", '[[ami]]\nname = "p"\nusername = "b"\n[[subscriber]]\nname = "erp"\nurl = "http://e/x"\n'
                  "[[subscriber]]\nname = \"crm\"\nurl = \"http://c/x\"\nfilter = 'Dial.{1,}?90)2'\n",
     "subscriber[1].filter: unbalanced parenthesis at 12"),
    ("unknown key", '[[ami]]\nname = "p"\nusername = "b"\nsecert = "x"\n',
     "ami[0].secert: unknown key (did you mean 'secret'?)"),
    ("bad driver", '[database]\nurl = "mysql+nosuchdriver://u:pw@h/db"\n[[ami]]\nname = "p"\nusername = "b"\n',
     "database.url: database driver 'mysql+nosuchdriver' is not available"),
    ("toml syntax", '[[ami]\nname = "p"\n', "not valid TOML"),
    ("missing env", '[[ami]]\nname = "p"\nusername = "b"\nsecret = "${NOT_SET_ANYWHERE}"\n',
     "ami[0].secret: environment variable NOT_SET_ANYWHERE is not set"),
])
@pytest.mark.slow  # a CLI subprocess each
def test_config_check_exits_2_with_key_path_when_config_is_bad(tmp_path, case, text, expected):
    path = write(tmp_path, text)
    result = bridge_cli("config", "check", "-c", str(path))
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # a CLI subprocess each
def test_config_check_exits_2_when_database_is_unreachable(tmp_path):
    port = closed_port()
    path = write(tmp_path, f"""
[database]
url = "postgresql+psycopg://bridge:hunter22@127.0.0.1:{port}/bridge"
[[ami]]
name = "pbx1"
username = "bridge"
""")
    result = bridge_cli("config", "check", "-c", str(path))
    assert result.returncode == 2, result.stderr
    assert "database.url: cannot connect to postgresql+psycopg://bridge:***@127.0.0.1" in result.stderr
    assert "hunter22" not in result.stderr + result.stdout


@pytest.mark.slow  # a CLI subprocess each
def test_config_check_exits_2_when_sqlite_directory_is_missing(tmp_path):
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/nodir/outbox.db"\n'
                           '[[ami]]\nname = "p"\nusername = "b"\n')
    result = bridge_cli("config", "check", "-c", str(path))
    assert result.returncode == 2
    assert f"database.url: directory {tmp_path}/nodir does not exist" in result.stderr


@pytest.mark.slow  # a CLI subprocess each
def test_config_check_exits_2_when_file_is_missing(tmp_path):
    result = bridge_cli("config", "check", "-c", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert "no such configuration file" in result.stderr


def test_config_file_comes_from_env_when_c_is_omitted(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, valid_config(tmp_path))
    monkeypatch.setenv("BRIDGE_CONFIG", str(path))
    monkeypatch.setenv("AMI_SECRET", "x")
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"OK {path}:")


@pytest.mark.parametrize("argv", [["no-such-command"], ["run"], ["config"], ["demo", "--duration", "soon"]])
def test_usage_errors_exit_2_when_arguments_are_wrong(argv, monkeypatch, capsys):
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    try:
        code = main(argv)
    except SystemExit as exc:      # argparse's own usage errors
        code = exc.code
    assert code == 2
    assert "usage: asterisk-bridge" in capsys.readouterr().err


def test_help_names_every_environment_variable_when_asked(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_LOG_LEVEL", "${VAR}"):
        assert name in out
    for command in ("run", "demo", "check", "config", "db", "outbox", "wsdl", "version"):
        assert f"\n    {command} " in out


def test_version_prints_package_version(capsys):
    import bridge

    assert main(["version"]) == 0
    assert f"asterisk-bridge {bridge.__version__}" in capsys.readouterr().out


def test_wsdl_prints_service_with_configured_address(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, valid_config(tmp_path, '[soap]\nlisten = "0.0.0.0:8443"\npath = "/pbx"'))
    monkeypatch.setenv("AMI_SECRET", "x")
    assert main(["wsdl", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'location="http://localhost:8443/pbx"' in out
    assert 'location="http://localhost:8443/pbx12"' in out


@pytest.mark.slow  # a CLI subprocess each
def test_run_exits_2_naming_the_full_db_upgrade_command_when_database_is_not_migrated(tmp_path):
    # Exit 2 is RestartPreventExitStatus in the systemd unit: no restart loop every 5 s.
    path = write(tmp_path, valid_config(tmp_path))
    result = bridge_cli("run", "-c", str(path), env={"AMI_SECRET": "x"})
    assert result.returncode == 2, result.stderr
    assert f"run `asterisk-bridge db upgrade -c {path.resolve()}`" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # a CLI subprocess each
def test_traceback_is_shown_only_when_verbose(tmp_path):
    path = write(tmp_path, valid_config(tmp_path))
    result = bridge_cli("-v", "run", "-c", str(path), env={"AMI_SECRET": "x"})
    assert result.returncode == 2
    assert "Traceback" in result.stderr


@pytest.mark.slow  # a CLI subprocess each
def test_check_reports_ok_lines_when_everything_answers(tmp_path):
    from bridge.testing.simulator import AmiSimulator
    from bridge.testing.fake_erp import FakeErp

    with AmiSimulator(users={"bridge": "pw-check"}) as sim, FakeErp() as sink:
        path = write(tmp_path, valid_config(tmp_path, f'port = {sim.port}\n[[subscriber]]\nname = "erp"\n'
                                                      f'url = "{sink.url}"'))
        upgrade = bridge_cli("db", "upgrade", "-c", str(path), env={"AMI_SECRET": "pw-check"})
        assert upgrade.returncode == 0, upgrade.stderr
        result = bridge_cli("check", "-c", str(path), env={"AMI_SECRET": "pw-check"})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"OK   ami pbx1 (127.0.0.1:{sim.port}): logged in as bridge")
    assert lines[1].startswith("OK   subscriber erp: ")
    assert lines[2].startswith("OK   database sqlite:///") and lines[2].endswith("schema up to date")


@pytest.mark.slow  # a CLI subprocess each
def test_check_reports_fail_lines_and_exits_1_when_links_fail(tmp_path):
    from bridge.testing.simulator import AmiSimulator

    with AmiSimulator(users={"bridge": "right"}) as sim:
        path = write(tmp_path, valid_config(
            tmp_path, f'port = {sim.port}\nreconnect_base = "5s"\n[[subscriber]]\nname = "erp"\n'
                      f'url = "http://127.0.0.1:{closed_port()}/erp"'))
        result = bridge_cli("check", "--timeout", "2", "-c", str(path), env={"AMI_SECRET": "wrong-secret"})
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL ami pbx1"), lines
    assert lines[1].startswith("FAIL subscriber erp: ") and "unreachable" in lines[1]
    assert lines[2].startswith("FAIL database") and "asterisk-bridge db upgrade" in lines[2]
    assert "wrong-secret" not in result.stdout + result.stderr


def test_error_output_lists_the_cause_chain_when_errors_are_chained():
    from bridge.cli import format_error
    from bridge.errors import OutboxError

    try:
        try:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        except ConnectionRefusedError as exc:
            raise OutboxError("database upgrade failed") from exc
    except OutboxError as exc:
        text = format_error(exc)
    assert text.splitlines() == ["error: database upgrade failed",
                                 "  caused by: ConnectionRefusedError: [Errno 111] Connection refused"]


@pytest.mark.parametrize("base_url", ["pbx:8080", "http://pbx:80x", "http://pbx:8080/bridge", "ftp://pbx"])
def test_wsdl_refuses_a_base_url_that_is_not_scheme_host_port(capsys, base_url):
    assert main(["wsdl", "--base-url", base_url]) == 2
    assert f"--base-url: {base_url!r} is not scheme://host[:port]" in capsys.readouterr().err


@pytest.mark.slow  # a CLI subprocess
def test_missing_config_file_is_one_error_line(tmp_path):
    result = bridge_cli("config", "check", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'nope.toml'}: no such configuration file\n"
