"""Fake activities registered under the real names: they record what the workflow asked for."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.documents import last_timestamp_attempt
from workflows.types import (
    AuditAppend,
    EmailMessage,
    SignedPdfResult,
    SmsMessage,
    SyncApprovalInput,
)


@dataclass
class Recorder:
    syncs: list[SyncApprovalInput] = field(default_factory=list)
    emails: list[EmailMessage] = field(default_factory=list)
    sms: list[SmsMessage] = field(default_factory=list)
    pdfs: list[int] = field(default_factory=list)
    appended: list[AuditAppend] = field(default_factory=list)  # by append_audit_event
    undeliverable: set[str] = field(default_factory=set)
    pdf_fails: bool = False
    pdf_times_out: bool = False  # fails with a retryable error on every attempt
    tsa_down: bool = False  # as the real activity: retries, then signs without a timestamp
    decisions_gate: asyncio.Event | None = None  # syncs of decisions wait for it when set

    @activity.defn(name="sync_approval")
    async def sync_approval(self, snapshot: SyncApprovalInput) -> None:
        decision = snapshot.event and snapshot.event.type in ("approved", "declined")
        if decision and self.decisions_gate is not None:
            await self.decisions_gate.wait()
        self.syncs.append(snapshot)

    @activity.defn(name="append_audit_event")
    async def append_audit_event(self, inp: AuditAppend) -> bool:
        self.appended.append(inp)
        return True

    @activity.defn(name="send_email")
    async def send_email(self, message: EmailMessage) -> datetime | None:
        if message.to in self.undeliverable:
            raise ApplicationError("mailbox does not exist", type="InvalidRecipient")
        self.emails.append(message)
        if message.record_sent is None:
            return None
        at = activity.info().current_attempt_scheduled_time  # the server's (skipped) clock
        self.syncs.append(message.record_sent.sent_at(message.approver_id, at))
        return at

    @activity.defn(name="send_sms")
    async def send_sms(self, message: SmsMessage) -> None:
        self.sms.append(message)

    @activity.defn(name="build_signed_pdf")
    async def build_signed_pdf(
        self, approval_id: int, record: SyncApprovalInput | None = None
    ) -> SignedPdfResult:
        result = await self._build_signed_pdf(approval_id)
        if record is not None and record.event is not None:  # as the real one writes it
            event = dataclasses.replace(record.event, data=result.event_data())
            self.syncs.append(dataclasses.replace(record, event=event))
        return result

    async def _build_signed_pdf(self, approval_id: int) -> SignedPdfResult:
        self.pdfs.append(approval_id)
        if self.pdfs and self.pdf_fails:
            raise ApplicationError("document is damaged", type="InvalidPdf", non_retryable=True)
        if self.pdf_times_out:
            raise ApplicationError("building the signed PDF took too long", type="PdfTimeout")
        if self.tsa_down:
            if not last_timestamp_attempt():
                raise ApplicationError("the TSA is down", type="TimestampUnavailable")
            return SignedPdfResult(
                path=f"signed/{approval_id}.pdf",
                sha256="ab" * 32,
                pages=2,
                certificate_sha256="cd" * 32,
                timestamp_error="the timestamp authority failed: connection refused",
            )
        return SignedPdfResult(path=f"signed/{approval_id}.pdf", sha256="ab" * 32, pages=2)

    def activities(self) -> list:
        return [
            self.sync_approval,
            self.append_audit_event,
            self.send_email,
            self.send_sms,
            self.build_signed_pdf,
        ]

    def events(self) -> list[str]:
        return [s.event.type for s in self.syncs if s.event]

    def emails_to(self, address: str, template: str | None = None) -> list[EmailMessage]:
        return [
            e
            for e in self.emails
            if e.to == address and (template is None or e.template == template)
        ]
