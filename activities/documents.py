"""Builds the signed copy of an approved document: the document of record, a signature stamp on
its last page and certificate-of-completion pages. Safe to run twice. The PDF work runs in a
child process within the PORTICO_PDF_* limits (portico/pdf_sandbox.py): a document beyond
them fails for good (InvalidPdf), and the workflow tells staff."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from temporalio import activity
from temporalio.exceptions import ApplicationError

from portico import pdf, pdf_sandbox
from portico.files import FileStore
from portico.models import Approval, Approver, AuditEvent
from portico.money import format_money
from portico.settings import Settings
from workflows.types import APPROVED, SignedPdfResult

SIGNED_FOLDER = "signed"
_EPOCH = datetime.min.replace(tzinfo=UTC)


def _first_view_from_events(approver_id: int, events: Sequence[AuditEvent]) -> datetime | None:
    """When the trail first shows this approver viewing the document."""
    prefix = f"approver:{approver_id}:"
    for event in events:
        if event.type == "viewed" and event.actor.startswith(prefix):
            return event.at
    return None


def _portal_client_from_events(approver_id: int, events: Sequence[AuditEvent]) -> int | None:
    """The portal client whose session this approver's decision came through, per the trail."""
    prefix = f"approver:{approver_id}:"
    for event in reversed(events):
        if event.type in ("approved", "declined") and event.actor.startswith(prefix):
            evidence = (event.data or {}).get("evidence") or {}
            client_id = evidence.get("portal_client_id")
            return client_id if isinstance(client_id, int) else None
    return None


def _upload_of_record(approvers: Sequence[Approver]) -> Approver | None:
    """The approved approver whose uploaded PDF is the document of record (latest one wins)."""
    uploaders = [a for a in approvers if a.status == APPROVED and a.uploaded_pdf]
    if not uploaders:
        return None
    return max(uploaders, key=lambda a: (a.signed_at or _EPOCH, a.position))


class DocumentActivities:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.files = FileStore(settings.files_dir)

    @activity.defn(name="build_signed_pdf")
    async def build_signed_pdf(self, approval_id: int) -> SignedPdfResult:
        """Build (or find) the signed PDF of an approved approval and record it on the row."""
        async with self.sessions() as session:
            approval = await session.scalar(
                select(Approval)
                .where(Approval.id == approval_id)
                .options(selectinload(Approval.document), selectinload(Approval.approvers))
            )
            if approval is None:
                raise ApplicationError(
                    f"approval {approval_id} is not in the database",
                    type="NotFound",
                    non_retryable=True,
                )
            if approval.status != APPROVED:
                raise ApplicationError(
                    f"approval {approval_id} is {approval.status}, not approved",
                    type="NotApproved",
                    non_retryable=True,
                )

            existing = await asyncio.to_thread(self._existing, approval)
            if existing is not None:
                return existing

            events = list(
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.approval_id == approval_id)
                    .order_by(AuditEvent.seq)
                )
            )
            approvers = sorted(approval.approvers, key=lambda a: a.position)
            document = approval.document

            uploader = _upload_of_record(approvers)
            if uploader is not None and uploader.uploaded_pdf:
                record = await asyncio.to_thread(self.files.read, uploader.uploaded_pdf)
                record_sha = pdf.sha256_hex(record)
            else:
                record = await asyncio.to_thread(self.files.read, document.file_path)
                record_sha = document.sha256

            signers = [self._signer(a, events) for a in approvers]
            signed_times = [a.signed_at for a in approvers if a.signed_at is not None]
            completed_at = approval.completed_at or (
                max(signed_times) if signed_times else approval.created_at
            )
            certificate = pdf.Certificate(
                approval_id=approval.id,
                document_kind=document.kind,
                document_title=document.title,
                document_number=document.number,
                document_sha256=record_sha,
                amount=format_money(document.amount_cents, document.currency),
                status=approval.status,
                completed_at=completed_at,
                company_name=self.settings.company_name,
                signers=signers,
                replaced_by_upload=uploader is not None,
            )
            try:
                data, pages = await pdf_sandbox.build_signed_pdf(
                    record,
                    certificate,
                    pdf_sandbox.limits_for(self.settings),
                    self.settings.pdf_timeout_seconds,
                )
            except pdf_sandbox.PdfTimeout as exc:  # perhaps a busy machine: worth a retry
                raise ApplicationError(
                    f"building the signed PDF took longer than "
                    f"{self.settings.pdf_timeout_seconds:g} s",
                    type="PdfTimeout",
                ) from exc
            except pdf_sandbox.PdfBusy as exc:
                raise ApplicationError(str(exc), type="PdfBusy") from exc
            except pdf.InvalidPdf as exc:
                raise ApplicationError(
                    f"the document of record is unusable: {exc}",
                    type="InvalidPdf",
                    non_retryable=True,
                ) from exc

            path = await asyncio.to_thread(self.files.save, SIGNED_FOLDER, data, ".pdf")
            digest = pdf.sha256_hex(data)
            approval.signed_pdf_path = path
            approval.signed_pdf_sha256 = digest
            await session.commit()
            return SignedPdfResult(path=path, sha256=digest, pages=pages)

    def _existing(self, approval: Approval) -> SignedPdfResult | None:
        """The already-recorded signed PDF, if its file is still there with the same hash."""
        if not (approval.signed_pdf_path and approval.signed_pdf_sha256):
            return None
        try:
            data = self.files.read(approval.signed_pdf_path)
        except (OSError, ValueError):
            return None
        if pdf.sha256_hex(data) != approval.signed_pdf_sha256:
            return None
        try:
            pages = pdf.page_count(data)
        except pdf.InvalidPdf:
            return None
        return SignedPdfResult(
            path=approval.signed_pdf_path, sha256=approval.signed_pdf_sha256, pages=pages
        )

    def _signature_png(self, relative: str | None) -> bytes | None:
        if not relative:
            return None
        try:
            return self.files.read(relative)
        except (OSError, ValueError):
            return None

    def _signer(self, approver: Approver, events: Sequence[AuditEvent]) -> pdf.CertificateSigner:
        return pdf.CertificateSigner(
            name=approver.name,
            email=approver.email,
            phone=approver.phone,
            status=approver.status,
            channel=approver.decided_via,
            sent_at=approver.notified_at,
            first_viewed_at=approver.first_viewed_at
            or _first_view_from_events(approver.id, events),
            decided_at=approver.signed_at,
            ip=approver.decided_ip,
            user_agent=approver.decided_user_agent,
            signature_name=approver.signature_name,
            signature_png=self._signature_png(approver.signature_image),
            notes=approver.notes,
            consent=bool(approver.consent),
            decline_reason=approver.decline_reason,
            portal_client_id=_portal_client_from_events(approver.id, events),
        )
