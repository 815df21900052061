"""The access log masks the tokens of signing, magic, pay and share links (CONTRACT section 8)."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_log import AccessLogger

from portico import cli
from portico.smtp_sink import free_port
from web.app import create_app
from web.http.access_log import MaskedAccessLogger

SECRET = "Zq8s0dXK3vJc1TnRb7YwLm2PaEu9HfGi"


def logged(caplog: pytest.LogCaptureFixture, path: str, referer: str = "-") -> logging.LogRecord:
    logger = logging.getLogger("test.access")
    request = make_mocked_request("GET", path, headers={"Referer": referer})
    with caplog.at_level(logging.INFO, logger="test.access"):
        MaskedAccessLogger(logger, AccessLogger.LOG_FORMAT).log(request, web.Response(), 0.01)
    (record,) = [r for r in caplog.records if r.name == "test.access"]
    return record


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (f"/s/{SECRET}", "GET /s/**** HTTP/1.1"),
        (f"/s/{SECRET}/approve", "GET /s/****/approve HTTP/1.1"),
        (f"/portal/link/{SECRET}", "GET /portal/link/**** HTTP/1.1"),
        (f"/pay/{SECRET}?checkout=success", "GET /pay/****?checkout=success HTTP/1.1"),
        (f"/share/{SECRET}", "GET /share/**** HTTP/1.1"),
        (f"/staff/link/{SECRET}", "GET /staff/link/**** HTTP/1.1"),
        (f"/portal?token={SECRET}&page=2", "GET /portal?token=****&page=2 HTTP/1.1"),
    ],
)
def test_request_line_is_logged_with_its_token_masked(caplog, path, shown):
    record = logged(caplog, path)
    assert SECRET not in record.getMessage()
    assert f'"{shown}"' in record.getMessage()
    assert record.first_request_line == shown  # the structured field too


def test_referer_and_other_paths(caplog):
    record = logged(caplog, "/api/v1/approvals/7", referer=f"http://portico.test/s/{SECRET}")
    message = record.getMessage()
    assert SECRET not in message
    assert '"GET /api/v1/approvals/7 HTTP/1.1"' in message
    assert '"http://portico.test/s/****"' in message


async def test_served_app_logs_masked_paths(settings, caplog):
    """The app served with the masking logger (as `portico web` and `portico dev` run it)."""
    runner = web.AppRunner(create_app(settings), access_log_class=MaskedAccessLogger)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/s/{SECRET}") as response,
            ):
                assert response.status == 404  # no such link: still logged
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("GET /s/**** HTTP/1.1" in line for line in lines), lines
    assert not any(SECRET in line for line in lines)


def test_portico_web_serves_with_the_masking_logger(settings, monkeypatch):
    seen: dict = {}

    def run_app(app: web.Application, **kw: object) -> None:
        seen.update(kw)
        kw["sock"].close()  # type: ignore[attr-defined]

    monkeypatch.setattr(web, "run_app", run_app)
    assert cli.run_web(settings) == 0
    assert seen["access_log_class"] is MaskedAccessLogger
