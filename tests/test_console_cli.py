"""`portico staff add|list|remove|link` (CONTRACT section 9) and the dev banner's console line."""

from __future__ import annotations

import asyncio
import re

import pytest

from portico import cli
from portico.db import create_engine, session_maker
from portico.devserver import print_banner
from portico.services.staff import StaffAuth
from portico.settings import Settings


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path}/portico.db"
    monkeypatch.setenv("PORTICO_DATABASE_URL", url)
    monkeypatch.setenv("PORTICO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PORTICO_FILES_DIR", str(tmp_path / "files"))
    monkeypatch.setenv("PORTICO_PUBLIC_URL", "https://office.example")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["migrate"]) == 0
    return url


def peek(url: str, token: str):
    async def go():
        engine = create_engine(url)
        try:
            return await StaffAuth(session_maker(engine)).peek(token)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_add_list_link_remove(cli_env, capsys):
    assert (
        cli.main(["staff", "add", "Ann@Firm.test", "--name", "Ann Admin", "--role", "admin"]) == 0
    )
    assert cli.main(["staff", "add", "bob@firm.test", "--name", "Bob"]) == 0
    capsys.readouterr()
    assert cli.main(["staff", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"ann@firm\.test\s+admin\s+Ann Admin", out)
    assert re.search(r"bob@firm\.test\s+staff\s+Bob", out)

    # the address is unique whatever its case
    assert cli.main(["staff", "add", "ANN@firm.test", "--name", "Twin"]) == 1
    assert "already a staff member" in capsys.readouterr().err

    assert cli.main(["staff", "link", "ann@firm.test"]) == 0
    url = capsys.readouterr().out.strip()
    match = re.fullmatch(r"https://office\.example/staff/link/([A-Za-z0-9_\-]{32})", url)
    assert match, url
    assert peek(cli_env, match.group(1)) is not None

    assert cli.main(["staff", "remove", "bob@firm.test"]) == 0
    capsys.readouterr()
    assert cli.main(["staff", "list"]) == 0
    assert "bob@firm.test" not in capsys.readouterr().out
    assert cli.main(["staff", "link", "bob@firm.test"]) == 1
    assert "not a staff member" in capsys.readouterr().err


def test_bad_input_is_a_usage_error(cli_env, capsys):
    assert cli.main(["staff", "add", "not-an-email", "--name", "X"]) == 2
    assert "email" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["staff", "add", "x@firm.test", "--name", "X", "--role", "owner"])
    assert cli.main(["staff", "remove", "ghost@firm.test"]) == 1


def test_banner_names_the_staff_console():
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        print_banner(
            Settings(PORTICO_PUBLIC_URL="http://127.0.0.1:8080", PORTICO_STAFF_API_KEY="k" * 30),
            "http://127.0.0.1:8080/s/x",
            ui_port=8233,
        )
    assert "Staff console: http://127.0.0.1:8080/staff" in out.getvalue()
    assert "office@example.com" in out.getvalue()
