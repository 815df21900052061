"""The tamper-evident audit trail: each event stores sha256(previous hash + canonical JSON)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portico.files import FileStore
from portico.models import Approval, AuditEvent, InvoiceAuditEvent
from workflows.types import AuditEventInput

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_payload(
    *, seq: int, event_key: str, at: datetime, type: str, actor: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The fields an event's hash covers."""
    return {
        "seq": seq,
        "event_key": event_key,
        "at": at.isoformat(),
        "type": type,
        "actor": actor,
        "data": data,
    }


def chain_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(payload)).encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str


def verify_chain(events: list[Any]) -> list[ChainProblem]:
    """Re-check stored events (ordered by seq); an empty list means the chain is intact."""
    problems: list[ChainProblem] = []
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            problems.append(ChainProblem(event.seq, f"expected event #{expected_seq}"))
        if event.prev_hash != prev:
            problems.append(ChainProblem(event.seq, "previous hash does not match"))
        payload = event_payload(
            seq=event.seq,
            event_key=event.event_key,
            at=event.at,
            type=event.type,
            actor=event.actor,
            data=event.data,
        )
        if chain_hash(event.prev_hash, payload) != event.hash:
            problems.append(ChainProblem(event.seq, "content does not match its hash"))
        prev = event.hash
    return problems


async def verify_approval(sessions: Any, files_dir: Any, approval_id: int) -> list[str]:
    """Re-check an approval's hash chain and its signed PDF (SHA-256 and digital signature:
    intact, covering the whole file, by the certificate the trail records); returns the problems
    found."""
    async with sessions() as session:
        approval = await session.get(Approval, approval_id)
        if approval is None:
            return [f"approval {approval_id} does not exist"]
        events = list(
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.approval_id == approval_id)
                .order_by(AuditEvent.seq)
            )
        )
    problems = [f"event #{p.seq}: {p.problem}" for p in verify_chain(events)]
    if not events:
        problems.append("no audit events recorded")
    signed_events = [e.data for e in events if e.type == "signed_pdf"]
    recorded = [data.get("sha256") for data in signed_events]
    certificate = signed_events[-1].get("certificate_sha256") if signed_events else None
    if approval.signed_pdf_path:
        try:
            data = FileStore(files_dir).read(approval.signed_pdf_path)
        except (OSError, ValueError):
            problems.append("the signed PDF file is missing")
        else:
            actual = hashlib.sha256(data).hexdigest()
            if actual != approval.signed_pdf_sha256:
                problems.append("the signed PDF does not match its recorded SHA-256")
            if recorded and recorded[-1] != actual:
                problems.append("the signed PDF does not match the SHA-256 in the audit trail")
            if certificate:  # signed PDFs built before PAdES signing carry no signature
                # pyHanko loads on the first check, not with every process that appends events
                from portico import pades  # noqa: PLC0415

                problems += await asyncio.to_thread(pades.signature_problems, data, certificate)
    elif approval.status == "approved" and recorded:
        problems.append("the signed PDF is recorded in the audit trail but missing")
    return problems


async def append_event(
    session: AsyncSession, approval_id: int, event: AuditEventInput, new_chain: bool = False
) -> bool:
    """Append one event to an approval's chain unless its key is already there. Returns True
    if added. `new_chain`: the approval was inserted in this transaction, so its chain is
    empty and nothing needs looking up (its first event)."""
    return await append_link(session, AuditEvent, "approval_id", approval_id, event, new_chain)


async def append_link(
    session: AsyncSession,
    model: type[AuditEvent] | type[InvoiceAuditEvent],
    scope: str,
    owner_id: int,
    event: AuditEventInput,
    new_chain: bool = False,
) -> bool:
    """Append one event to the chain of `model` whose `scope` column (approval_id,
    invoice_id) is `owner_id`, unless its key is already there. Returns True if added.
    `new_chain`: the owner is new in this transaction, its chain empty (no lookups)."""
    owner = getattr(model, scope)
    seq, prev = 1, GENESIS
    if not new_chain:
        existing = await session.scalar(
            select(model.id).where(owner == owner_id, model.event_key == event.event_key)
        )
        if existing is not None:
            return False
        last = (
            await session.execute(
                select(model.seq, model.hash)
                .where(owner == owner_id)
                .order_by(model.seq.desc())
                .limit(1)
            )
        ).first()
        if last:
            seq, prev = last[0] + 1, last[1]
    payload = event_payload(
        seq=seq,
        event_key=event.event_key,
        at=event.at,
        type=event.type,
        actor=event.actor,
        data=event.data,
    )
    session.add(
        model(
            **{scope: owner_id},
            seq=seq,
            event_key=event.event_key,
            at=event.at,
            type=event.type,
            actor=event.actor,
            data=event.data,
            prev_hash=prev,
            hash=chain_hash(prev, payload),
        )
    )
    return True
