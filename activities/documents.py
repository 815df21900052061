"""Builds the signed copy of an approved document: the document of record, a signature stamp on
its last page and certificate-of-completion pages, digitally signed by the business (PAdES,
portico/pades.py). Safe to run twice. The PDF work runs in a child process within the
PORTICO_PDF_* limits (portico/pdf_sandbox.py): a document beyond them fails for good
(InvalidPdf), and the workflow tells staff.

With PORTICO_TSA_URL the signature is timestamped; while the timestamp authority fails the
activity fails too (Temporal retries it), and on its last attempt it signs without a timestamp
and says so in its result, for the audit trail: the approval never waits forever on a TSA."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from temporalio import activity
from temporalio.exceptions import ApplicationError

from portico import i18n, pdf_sandbox, pdf_values, signing_keys
from portico.files import FileStore
from portico.models import Approval, Approver, AuditEvent, Client, Project
from portico.money import format_money
from portico.pades_values import SigningKey, SignRequest, TimestampUnavailable
from portico.services.approval_records import RecordSnapshot
from portico.settings import Settings, read_or_create_bytes
from workflows.types import APPROVED, SignedPdfResult, SyncApprovalInput

SIGNED_FOLDER = "signed"
GENERATED_SIGNING_KEY = "signing.p12"
# Attempts with the TSA before signing without a timestamp, when the retry policy sets no
# maximum (workflows started before the signed PDF had bounded attempts).
TSA_ATTEMPTS = 3
_EPOCH = datetime.min.replace(tzinfo=UTC)


def load_signing_key(settings: Settings) -> SigningKey:
    """PORTICO_SIGNING_CERT (+ PORTICO_SIGNING_CERT_PASSWORD), else var/signing.p12, a
    self-signed certificate for PORTICO_COMPANY_NAME made once (like var/secret.key)."""
    if settings.signing_cert is not None:
        password = settings.signing_cert_password
        data = settings.signing_cert.read_bytes()
        return signing_keys.signing_key(data, password.encode() if password else None)
    data = read_or_create_bytes(
        settings.var_dir / GENERATED_SIGNING_KEY,
        lambda: signing_keys.new_self_signed_pkcs12(settings.company_name),
    )
    return signing_keys.signing_key(data, None)


def last_timestamp_attempt() -> bool:
    """Whether this is the signing activity's last attempt with a timestamp authority."""
    if not activity.in_activity():  # called directly (tests, scripts): one attempt
        return True
    info = activity.info()
    budget = info.retry_policy.maximum_attempts if info.retry_policy else 0
    return info.attempt >= (budget if budget > 0 else TSA_ATTEMPTS)


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
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        record: RecordSnapshot | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.record = record  # for the `signed_pdf` event the workflow hands over
        self.files = FileStore(settings.files_dir)
        self._signing_key: SigningKey | None = None

    async def signing_key(self) -> SigningKey:
        """The business's signing key, read (or made) once."""
        if self._signing_key is None:
            try:
                self._signing_key = await asyncio.to_thread(load_signing_key, self.settings)
            except (OSError, ValueError) as exc:
                raise ApplicationError(
                    f"the signing certificate (PORTICO_SIGNING_CERT) is unusable: {exc}",
                    type="SigningKeyUnusable",
                ) from exc
        return self._signing_key

    @activity.defn(name="build_signed_pdf")
    async def build_signed_pdf(
        self, approval_id: int, record: SyncApprovalInput | None = None
    ) -> SignedPdfResult:
        """Build (or find) the signed PDF of an approved approval and record it on the row;
        with `record` (the workflow's `signed_pdf` snapshot, ApprovalInput.signed_pdf_with_event)
        also write that event with the PDF's facts. A retry finds the PDF and writes the event
        if it is not there yet."""
        if record is not None and self.record is None:
            raise ApplicationError(
                "This worker cannot record the `signed_pdf` event (no recorder given).",
                type="Misconfigured",
                non_retryable=True,
            )
        result = await self._build_signed_pdf(approval_id)
        if record is not None and record.event is not None and self.record is not None:
            event = dataclasses.replace(record.event, data=result.event_data())
            await self.record(dataclasses.replace(record, event=event))
        return result

    async def _build_signed_pdf(self, approval_id: int) -> SignedPdfResult:
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
                record_sha = pdf_values.sha256_hex(record)
            else:
                record = await asyncio.to_thread(self.files.read, document.file_path)
                record_sha = document.sha256

            signers = [self._signer(a, events) for a in approvers]
            signed_times = [a.signed_at for a in approvers if a.signed_at is not None]
            completed_at = approval.completed_at or (
                max(signed_times) if signed_times else approval.created_at
            )
            locale, zone = await self._reader(session, approvers, document.project_id)
            certificate = pdf_values.Certificate(
                approval_id=approval.id,
                document_kind=document.kind,
                document_title=document.title,
                document_number=document.number,
                document_sha256=record_sha,
                amount=format_money(document.amount_cents, document.currency, locale),
                status=approval.status,
                completed_at=completed_at,
                company_name=self.settings.company_name,
                signers=signers,
                replaced_by_upload=uploader is not None,
                locale=locale,
                timezone=zone,
            )
            signing = SignRequest(
                key=await self.signing_key(),
                tsa_url=self.settings.tsa_url,
                timestamp_optional=last_timestamp_attempt(),
            )
            try:
                built = await pdf_sandbox.build_signed_pdf(
                    record,
                    certificate,
                    signing,
                    pdf_sandbox.limits_for(self.settings),
                    self.settings.pdf_timeout_seconds,
                )
            except TimestampUnavailable as exc:  # retried; the last attempt signs anyway
                raise ApplicationError(str(exc), type="TimestampUnavailable") from exc
            except pdf_sandbox.PdfTimeout as exc:  # perhaps a busy machine: worth a retry
                raise ApplicationError(
                    f"building the signed PDF took longer than "
                    f"{self.settings.pdf_timeout_seconds:g} s",
                    type="PdfTimeout",
                ) from exc
            except pdf_sandbox.PdfBusy as exc:
                raise ApplicationError(str(exc), type="PdfBusy") from exc
            except pdf_values.InvalidPdf as exc:
                raise ApplicationError(
                    f"the document of record is unusable: {exc}",
                    type="InvalidPdf",
                    non_retryable=True,
                ) from exc

            path = await asyncio.to_thread(self.files.save, SIGNED_FOLDER, built.data, ".pdf")
            digest = pdf_values.sha256_hex(built.data)
            approval.signed_pdf_path = path
            approval.signed_pdf_sha256 = digest
            await session.commit()
            return SignedPdfResult(
                path=path,
                sha256=digest,
                pages=built.pages,
                certificate_sha256=built.certificate_sha256,
                timestamped=built.timestamped,
                timestamp_error=built.timestamp_error,
            )

    async def _reader(
        self, session: AsyncSession, approvers: Sequence[Approver], project_id: int
    ) -> tuple[str, str]:
        """Who reads the certificate (like the notify activities' reader): the first approver's
        locale, else the client's, else PORTICO_DEFAULT_LOCALE; the client's time zone, else
        PORTICO_DEFAULT_TIMEZONE. Read when the PDF is built: no workflow history carries it."""
        found = (
            await session.execute(
                select(Client.locale, Client.timezone)
                .join(Project, Project.client_id == Client.id)
                .where(Project.id == project_id)
            )
        ).first()
        theirs, their_zone = found if found is not None else (None, None)
        first = approvers[0].locale if approvers else None
        locale = i18n.resolve(first, theirs, default=self.settings.default_locale)
        return locale, their_zone or self.settings.default_timezone

    def _existing(self, approval: Approval) -> SignedPdfResult | None:
        """The already-recorded signed PDF, if its file is still there with the same hash."""
        # Only a retried or repeated build gets here: the PDF libraries load then, not with
        # the worker (they cost every worker process ~30 MiB; the fork server does the work).
        from portico import pades, pdf  # noqa: PLC0415

        if not (approval.signed_pdf_path and approval.signed_pdf_sha256):
            return None
        try:
            data = self.files.read(approval.signed_pdf_path)
        except (OSError, ValueError):
            return None
        if pdf_values.sha256_hex(data) != approval.signed_pdf_sha256:
            return None
        try:
            pages = pdf.page_count(data)
        except pdf.InvalidPdf:
            return None
        ours = [s for s in pades.embedded_signatures(data) if s.field_name == pades.FIELD_NAME]
        timestamped = bool(ours) and ours[-1].timestamped
        return SignedPdfResult(
            path=approval.signed_pdf_path,
            sha256=approval.signed_pdf_sha256,
            pages=pages,
            certificate_sha256=ours[-1].certificate_sha256 if ours else "",
            timestamped=timestamped,
            timestamp_error=(
                "the signed PDF was built without a timestamp"
                if self.settings.tsa_url and ours and not timestamped
                else None
            ),
        )

    def _signature_png(self, relative: str | None) -> bytes | None:
        if not relative:
            return None
        try:
            return self.files.read(relative)
        except (OSError, ValueError):
            return None

    def _signer(
        self, approver: Approver, events: Sequence[AuditEvent]
    ) -> pdf_values.CertificateSigner:
        return pdf_values.CertificateSigner(
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
