"""The `portico` command as a terminal user meets it (CONTRACT section 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from portico import cli
from portico.devserver import print_banner
from portico.settings import Settings


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path}/portico.db"
    monkeypatch.setenv("PORTICO_DATABASE_URL", url)
    monkeypatch.setenv("PORTICO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PORTICO_FILES_DIR", str(tmp_path / "files"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert cli.main(["migrate"]) == 0
    return url


def test_audit_verify_of_an_unknown_request_says_so(cli_env, capsys):
    assert cli.main(["audit", "verify", "424242"]) == 1
    out, err = capsys.readouterr()
    assert "Approval 424242 does not exist" in err
    assert "TAMPERED" not in out


@pytest.mark.parametrize("bad", ["99999999999999999999", "abc", "²"])
def test_approval_ids_that_cannot_exist_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["approvals", "show", bad])
    assert exit_.value.code == 2
    assert "not an approval id" in capsys.readouterr().err


def test_approval_id_may_be_written_with_a_hash():
    args = cli.build_parser().parse_args(["audit", "verify", "#42"])
    assert args.id == 42


def test_output_piped_into_a_closed_reader_ends_quietly(cli_env, tmp_path):
    """`portico approvals list | head -1`: no BrokenPipeError traceback."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PORTICO_DATABASE_URL": cli_env,
        "PORTICO_VAR_DIR": str(tmp_path / "var"),
    }
    with subprocess.Popen(
        [sys.executable, "-m", "portico.cli", "approvals", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(cli.__file__).rsplit("/portico/", 1)[0]},
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader is gone before anything is written
        err = process.stderr.read().decode()
        process.wait(timeout=60)
    assert "Traceback" not in err, err
    assert process.returncode in (0, 141)


def test_dev_can_move_its_temporal_ports_and_banner_names_the_namespace(capsys):
    args = cli.build_parser().parse_args(["dev"])
    assert (args.temporal_port, args.temporal_ui_port) == (7233, 8233)  # CONTRACT section 1
    args = cli.build_parser().parse_args(
        ["dev", "--demo", "--temporal-port", "17233", "--temporal-ui-port", "18233"]
    )
    assert (args.temporal_port, args.temporal_ui_port) == (17233, 18233)
    settings = Settings(
        PORTICO_STAFF_API_KEY="k" * 20, TEMPORAL_NAMESPACE="portico", PORTICO_SECRET_KEY="s" * 40
    )
    print_banner(settings, None, ui_port=18233)
    out = capsys.readouterr().out
    assert "http://127.0.0.1:18233/namespaces/portico/workflows" in out
    assert "Staff API key:  " + "k" * 20 in out
