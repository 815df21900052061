"""Staff commands by SMS (only from PORTICO_STAFF_PHONES): STATUS, VOID, EXTEND, REMIND.

Each runs the same service operation as the REST API and the CLI, with the sender as the
actor in the audit trail, and answers with the request's state afterwards.
"""

from __future__ import annotations

from datetime import datetime

from bots.parse import (
    Command,
    Invalid,
    StaffExtend,
    StaffRemind,
    StaffStatus,
    StaffVoid,
)
from portico.errors import PorticoError
from portico.phones import bare_phone
from portico.schemas import ApprovalOut, ExtendIn, RemindIn, VoidIn
from portico.services.approvals import Portico
from portico.settings import Settings
from workflows.types import FINAL_STATUSES

STAFF_COMMANDS = (StaffStatus, StaffVoid, StaffExtend, StaffRemind, Invalid)


def is_staff(settings: Settings, sender: str) -> bool:
    who = bare_phone(sender)
    return bool(who) and who in {bare_phone(p) for p in settings.staff_phones}


def help_text() -> str:
    return (
        "Staff: STATUS <ref>, VOID <ref> [reason], EXTEND <ref> <days>, REMIND <ref>; "
        "<ref> is a request number (#42) or a document number (CO-17)."
    )


async def handle(service: Portico, command: Command, sender: str) -> str:
    """Carry out one staff command and return the reply text."""
    if isinstance(command, Invalid):
        return command.message
    assert isinstance(command, StaffStatus | StaffVoid | StaffExtend | StaffRemind)
    actor = f"staff-sms:{bare_phone(sender)}"
    try:
        approval = await service.find_approval(command.ref)
    except PorticoError as err:
        return err.message
    try:
        if isinstance(command, StaffVoid):
            await service.void(approval.id, VoidIn(reason=command.reason), actor=actor)
            done = "Voided."
        elif isinstance(command, StaffExtend):
            await service.extend(approval.id, ExtendIn(days=command.days), actor=actor)
            done = f"Extended by {command.days} day{'s' if command.days != 1 else ''}."
        elif isinstance(command, StaffRemind):
            await service.remind(approval.id, RemindIn(extend_days=None), actor=actor)
            done = "Reminder sent."
        else:
            done = ""
    except PorticoError as err:  # closed, invalid days, engine down ...: say so, plus the state
        done = err.message
    state = await service.get_approval(approval.id)
    return " ".join(part for part in (done, describe(state)) if part)


def describe(state: ApprovalOut) -> str:
    """e.g. 'CO-17 (#42): partially approved. Ann approved May 1 14:03 UTC; Bo pending.
    Expires May 15 14:00 UTC.'"""
    people = []
    for approver in state.approvers:
        status = approver.status
        when = _short(approver.signed_at) if status in ("approved", "declined") else ""
        people.append(f"{approver.name} {status}" + (f" {when}" if when else ""))
    expires = _short(state.expires_at)
    if state.status in FINAL_STATUSES:
        deadline = ""
    else:
        deadline = f" Expires {expires}." if expires else " No expiry."
    return (
        f"{state.document.number} (#{state.id}): {state.status.replace('_', ' ')}. "
        + "; ".join(people)
        + "."
        + deadline
    )


def _short(at: datetime | None) -> str:
    return f"{at:%b} {at.day} {at:%H:%M} UTC" if at else ""
