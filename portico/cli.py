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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portico.errors import PorticoError
from portico.settings import Settings, load_settings

if TYPE_CHECKING:
    from portico.schemas import ApprovalSummaryOut


def approval_id(text: str) -> int:
    """An approval id argument: a positive number small enough to be one."""
    from portico.schemas import known_id, parse_id

    value = parse_id(text.lstrip("#"))
    if value is None or not known_id(value):
        raise argparse.ArgumentTypeError(f"not an approval id: {text!r}")
    return value


@dataclass(frozen=True)
class InvoiceRef:
    """`invoice:<id>` as the argument of `portico audit verify`."""

    id: int


def audit_target(text: str) -> int | InvoiceRef:
    """An approval id (`42`, `#42`) or an invoice (`invoice:42`)."""
    kind, sep, rest = text.partition(":")
    if not sep:
        return approval_id(text)
    from portico.schemas import known_id, parse_id

    value = parse_id(rest)
    if kind.lower() != "invoice" or value is None or not known_id(value):
        raise argparse.ArgumentTypeError(f"not an approval id or invoice:<id>: {text!r}")
    return InvoiceRef(value)


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

    staff = sub.add_parser("staff", help="staff members of the console (/staff)")
    staff_actions = staff.add_subparsers(dest="action", required=True)
    add = staff_actions.add_parser("add", help="add a staff member")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=["admin", "staff"], default="staff")
    staff_actions.add_parser("list", help="list staff members")
    remove = staff_actions.add_parser("remove", help="remove a member and end their sessions")
    remove.add_argument("email")
    link = staff_actions.add_parser("link", help="print a single-use sign-in URL (15 min)")
    link.add_argument("email")

    audit = sub.add_parser("audit", help="evidence checks")
    audit_actions = audit.add_subparsers(dest="action", required=True)
    verify = audit_actions.add_parser(
        "verify",
        help="re-check an approval's hash chain and signed PDF, or (invoice:<id>) an "
        "invoice's payment trail",
    )
    verify.add_argument("id", type=audit_target, metavar="ID | invoice:ID")
    return parser


async def with_service(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from portico.db import engine_for, session_maker
    from portico.services.approvals import Portico
    from portico.services.gateway import TemporalGateway

    engine = engine_for(settings)
    try:
        service = Portico(settings, session_maker(engine), TemporalGateway(settings))
        return await work(service)
    except PorticoError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2 if err.status in (400, 422) else 1
    finally:
        await engine.dispose()


def print_table(items: list[ApprovalSummaryOut]) -> None:
    print(f"{'ID':>6}  {'STATUS':<19} {'KIND':<15} {'NUMBER':<12} {'EXPIRES':<20} APPROVERS")
    for item in items:
        people = ", ".join(f"{a.name} ({a.status})" for a in item.approvers)
        expires = f"{item.expires_at:%Y-%m-%dT%H:%M:%S}" if item.expires_at else "never"
        doc = item.document
        print(
            f"{item.id:>6}  {item.status:<19} {doc.kind:<15} {doc.number:<12} "
            f"{expires:<20} {people}"
        )


async def approvals_command(args: argparse.Namespace, settings: Settings) -> int:
    from portico.schemas import ApprovalListOut, ExtendIn, RemindIn, VoidIn

    async def work(service: Any) -> int:
        result: Any
        if args.action == "list":
            items = await service.list_approvals(args.status, args.client_id, args.kind)
            if args.json:
                print(json.dumps(ApprovalListOut(items=items).model_dump(mode="json"), indent=2))
            else:
                print_table(items)
            return 0
        if args.action == "show":
            result = await service.get_approval(args.id)
        elif args.action == "void":
            result = await service.void(
                args.id, VoidIn(reason=args.reason, notify_client=args.notify_client), "cli"
            )
        elif args.action == "extend":
            result = await service.extend(args.id, ExtendIn(days=args.days), "cli")
        else:
            result = await service.remind(args.id, RemindIn(extend_days=args.extend_days), "cli")
        print(json.dumps(result.model_dump(mode="json"), indent=2))
        return 0

    try:
        return await with_service(settings, work)
    except ValueError as err:  # pydantic validation of CLI input
        from portico.schemas import describe_errors

        print(f"error: {describe_errors(err)}", file=sys.stderr)
        return 2


async def audit_verify(approval_id: int, settings: Settings) -> int:
    from portico.audit import verify_approval
    from portico.db import engine_for, session_maker
    from portico.models import Approval

    engine = engine_for(settings)
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


async def staff_command(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from portico.db import engine_for, session_maker
    from portico.schemas import describe_errors
    from portico.services.staff import StaffAuth, StaffMemberIn

    engine = engine_for(settings)
    auth = StaffAuth(session_maker(engine))
    try:
        if args.action == "add":
            member = await auth.add(StaffMemberIn(email=args.email, name=args.name, role=args.role))
            print(f"added {member.email} ({member.name}, {member.role})")
        elif args.action == "list":
            print(f"{'EMAIL':<40} {'ROLE':<6} NAME")
            for member in await auth.members():
                print(f"{member.email:<40} {member.role:<6} {member.name}")
        elif args.action == "remove":
            member = await auth.remove(args.email)
            print(f"removed {member.email}; their sessions are ended")
        else:
            link = await auth.issue_link(args.email)
            if link is None:
                print(f"error: {args.email} is not a staff member.", file=sys.stderr)
                return 1
            print(settings.url(f"/staff/link/{link.token}"))
        return 0
    except ValidationError as err:
        print(f"error: {describe_errors(err)}", file=sys.stderr)
        return 2
    except PorticoError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


async def audit_verify_invoice(invoice_id: int, settings: Settings) -> int:
    from portico.db import engine_for, session_maker
    from portico.services.invoice_audit import verify_invoice

    engine = engine_for(settings)
    try:
        found = await verify_invoice(session_maker(engine), invoice_id)
    finally:
        await engine.dispose()
    if not found.exists:
        print(f"error: Invoice {invoice_id} does not exist.", file=sys.stderr)
        return 1
    if found.problems:
        print(f"invoice {invoice_id}: TAMPERED OR INCOMPLETE")
        for problem in found.problems:
            print(f"  - {problem}")
        return 1
    print(
        f"invoice {invoice_id}: audit trail intact ({found.events} events); "
        f"{found.payments} payments match it"
    )
    if found.pending:
        print(f"  {found.pending} payment announcements are not made yet (is the worker running?)")
    return 0


def run_web(settings: Settings) -> int:
    import logging

    from portico.devserver import WEB_PORT_HINT, check_port_free
    from web.app import create_app
    from web.http.access_log import MaskedAccessLogger
    from web.serve import bind, serve

    logging.basicConfig(level=logging.INFO)
    check_port_free(settings.http_host, settings.http_port, "the web app", WEB_PORT_HINT)
    # Generated keys are made here, once, before any process of the set reads them.
    settings.secret_key, settings.staff_api_key  # noqa: B018
    sockets = bind(settings.http_host, settings.http_port, settings.web_processes)
    return serve(
        lambda: create_app(settings, freeze_heap=True),
        sockets,
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
        return run_web(settings)
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
        if isinstance(args.id, InvoiceRef):
            return asyncio.run(audit_verify_invoice(args.id.id, settings))
        return asyncio.run(audit_verify(args.id, settings))
    if args.command == "staff":
        return asyncio.run(staff_command(args, settings))
    return 2


if __name__ == "__main__":
    sys.exit(main())
