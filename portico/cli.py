"""The `portico` command (CONTRACT section 2).

A composition root. Its commands import what they run inside the function on purpose, not to
hide a cycle (lint-imports checks there is none): `portico --help` or `portico migrate` need
not load the web app, the worker and the Temporal SDK first."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from portico.errors import PorticoError
from portico.settings import Settings, load_settings


def approval_id(text: str) -> int:
    """An approval id argument: a positive number small enough to be one."""
    from portico.schemas import known_id, parse_id

    value = parse_id(text.lstrip("#"))
    if value is None or not known_id(value):
        raise argparse.ArgumentTypeError(f"not an approval id: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portico", description="Portico client portal")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run everything on this machine (Temporal, worker, web)")
    dev.add_argument("--demo", action="store_true", help="load a demo approval, print its link")
    dev.add_argument(
        "--temporal-port",
        type=int,
        default=7233,
        help="port of the Temporal dev server it starts (default 7233; unused with "
        "TEMPORAL_ADDRESS)",
    )
    dev.add_argument(
        "--temporal-ui-port", type=int, default=8233, help="port of its Temporal UI (default 8233)"
    )
    dev.add_argument(
        "--verbose", action="store_true", help="show the libraries' INFO logs too (and access logs)"
    )
    sub.add_parser("web", help="run the web layer")
    sub.add_parser("worker", help="run the Temporal worker (same as python worker.py)")
    sub.add_parser("migrate", help="upgrade the database schema")

    approvals = sub.add_parser("approvals", help="staff actions on approval requests")
    actions = approvals.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list requests")
    listing.add_argument("--status")
    listing.add_argument("--client-id", type=int)
    listing.add_argument("--kind")
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one request with its audit events (JSON)")
    show.add_argument("id", type=approval_id)
    void = actions.add_parser("void", help="void a request")
    void.add_argument("id", type=approval_id)
    void.add_argument("--reason")
    void.add_argument("--notify-client", action="store_true")
    extend = actions.add_parser("extend", help="move the deadline")
    extend.add_argument("id", type=approval_id)
    extend.add_argument("days", type=int)
    remind = actions.add_parser("remind", help="remind the approvers now")
    remind.add_argument("id", type=approval_id)
    remind.add_argument("--extend-days", type=int)

    audit = sub.add_parser("audit", help="evidence checks")
    audit_actions = audit.add_subparsers(dest="action", required=True)
    verify = audit_actions.add_parser("verify", help="re-check the hash chain and signed PDF")
    verify.add_argument("id", type=approval_id)
    return parser


async def with_service(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from portico.db import create_engine, session_maker
    from portico.services.approvals import Portico
    from portico.services.gateway import TemporalGateway

    engine = create_engine(settings.database_url)
    try:
        service = Portico(settings, session_maker(engine), TemporalGateway(settings))
        return await work(service)
    except PorticoError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2 if err.status in (400, 422) else 1
    finally:
        await engine.dispose()


def print_table(items: list[dict[str, Any]]) -> None:
    print(f"{'ID':>6}  {'STATUS':<19} {'KIND':<15} {'NUMBER':<12} {'EXPIRES':<20} APPROVERS")
    for item in items:
        people = ", ".join(f"{a['name']} ({a['status']})" for a in item["approvers"])
        expires = (item["expires_at"] or "never")[:19]
        doc = item["document"]
        print(
            f"{item['id']:>6}  {item['status']:<19} {doc['kind']:<15} {doc['number']:<12} "
            f"{expires:<20} {people}"
        )


async def approvals_command(args: argparse.Namespace, settings: Settings) -> int:
    from portico.schemas import ExtendIn, RemindIn, VoidIn

    async def work(service: Any) -> int:
        result: Any
        if args.action == "list":
            items = await service.list_approvals(args.status, args.client_id, args.kind)
            if args.json:
                print(json.dumps({"items": items}, indent=2))
            else:
                print_table(items)
            return 0
        if args.action == "show":
            result = await service.get_approval(args.id)
        elif args.action == "void":
            result = await service.void(
                args.id, VoidIn(reason=args.reason, notify_client=args.notify_client), "staff:cli"
            )
        elif args.action == "extend":
            result = await service.extend(args.id, ExtendIn(days=args.days), "staff:cli")
        else:
            result = await service.remind(
                args.id, RemindIn(extend_days=args.extend_days), "staff:cli"
            )
        print(json.dumps(result, indent=2))
        return 0

    try:
        return await with_service(settings, work)
    except ValueError as err:  # pydantic validation of CLI input
        from portico.schemas import describe_errors

        print(f"error: {describe_errors(err)}", file=sys.stderr)
        return 2


async def audit_verify(approval_id: int, settings: Settings) -> int:
    from portico.audit import verify_approval
    from portico.db import create_engine, session_maker
    from portico.models import Approval

    engine = create_engine(settings.database_url)
    try:
        sessions = session_maker(engine)
        async with sessions() as session:
            approval = await session.get(Approval, approval_id)
        if approval is None:
            print(f"error: Approval {approval_id} does not exist.", file=sys.stderr)
            return 1
        problems = await verify_approval(sessions, settings.files_dir, approval_id)
    finally:
        await engine.dispose()
    if problems:
        print(f"approval {approval_id}: TAMPERED OR INCOMPLETE")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    if approval.signed_pdf_path:
        print(f"approval {approval_id}: audit trail intact; signed PDF matches its SHA-256")
    else:
        print(f"approval {approval_id}: audit trail intact; no signed PDF ({approval.status})")
    return 0


def run_web(settings: Settings) -> None:
    import logging

    from aiohttp import web

    from portico.devserver import WEB_PORT_HINT, check_port_free
    from web.app import create_app
    from web.http.access_log import MaskedAccessLogger

    logging.basicConfig(level=logging.INFO)
    check_port_free(settings.http_host, settings.http_port, "the web app", WEB_PORT_HINT)
    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        access_log_class=MaskedAccessLogger,
    )


def main(argv: list[str] | None = None) -> int:
    """The `portico` command; `portico approvals list | head` ends quietly, like any CLI."""
    try:
        code = run(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        import os

        # Whoever read our output has gone: point stdout at /dev/null so the interpreter's
        # final flush doesn't fail a second time, and exit as a shell would (128 + SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    if args.command == "dev":
        from portico.devserver import main as dev_main

        dev_main(settings, args.demo, args.temporal_port, args.temporal_ui_port, args.verbose)
        return 0
    if args.command == "web":
        run_web(settings)
        return 0
    if args.command == "worker":
        import worker

        asyncio.run(worker.main())
        return 0
    if args.command == "migrate":
        from portico.migrate import upgrade

        upgrade(settings.database_url)
        print("database schema is up to date")
        return 0
    if args.command == "approvals":
        return asyncio.run(approvals_command(args, settings))
    if args.command == "audit":
        return asyncio.run(audit_verify(args.id, settings))
    return 2


if __name__ == "__main__":
    sys.exit(main())
