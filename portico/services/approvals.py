"""Staff-side operations shared by the REST API, the CLI and the SMS staff bot."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased, selectinload

from portico import branding, i18n, pdf_sandbox, pdf_values, tokens
from portico.audit import append_event
from portico.branding import Branding
from portico.clock import utcnow
from portico.errors import Conflict, Invalid, NotFound, NotReady, TooLarge, Unavailable
from portico.files import FileStore
from portico.models import Approval, Approver, AuditEvent, Client, Document, Project
from portico.phones import bare_phone
from portico.schemas import (
    AffectedApprovalOut,
    ApprovalCreatedOut,
    ApprovalIn,
    ApprovalOut,
    ApprovalSummaryOut,
    ApproverOut,
    ClientIn,
    ClientOut,
    ClientPatch,
    CreatedApproverOut,
    DeadlineOut,
    DocumentFromItems,
    DocumentMeta,
    DocumentOut,
    EventOut,
    ExtendIn,
    ProjectIn,
    ProjectOut,
    RemindIn,
    VersionFromItems,
    VersionMeta,
    VersionOut,
    VoidIn,
    known_id,
    parse_id,
)
from portico.services.approval_records import ApprovalRecords, record_decision
from portico.services.gateway import TemporalGateway
from portico.settings import Settings
from workflows import search_attributes as sa
from workflows.types import (
    APPROVAL_WORKFLOW,
    APPROVED,
    EXTEND,
    LINK_GRACE,
    PARTIALLY_APPROVED,
    PENDING,
    REMIND,
    VOID_UPDATE,
    ApprovalInput,
    ApproveRequest,
    ApproverInput,
    DecisionResult,
    DeclineRequest,
    DocumentInfo,
    ExtendRequest,
    RemindRequest,
    StaffContact,
    Supersession,
    VoidRequest,
    approval_workflow_id,
    created_event,
)

# When to ask again for a signed PDF still being built (seconds; usually ready in one or two).
SIGNED_PDF_RETRY_AFTER = 3
# What a client's browser shows meanwhile (the page reloads itself).
SIGNED_COPY_PREPARING = (
    "Everyone has approved. Your signed copy is being prepared and will open here in a moment."
)
log = logging.getLogger(__name__)
_NEWER = aliased(Document)  # a later version of a document (`supersedes_id`)


def free_sms_code(used: set[str], attempts: int = 1000) -> str:
    """A random reply code not in `used`."""
    for _ in range(attempts):
        code = tokens.new_sms_code()
        if code not in used:
            return code
    raise Conflict("This phone number has too many open requests to give it another reply code.")


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


async def check_upload(settings: Settings, data: bytes) -> pdf_values.CheckedPdf:
    """Check an uploaded PDF off the event loop, within the PORTICO_PDF_* limits; what to store
    is the copy without active content. Refusals are 413/422 with a sentence for the user."""
    if len(data) > settings.max_upload_bytes:
        limit = pdf_values.size_label(settings.max_upload_bytes)
        raise TooLarge(f"The PDF is larger than {limit}.")
    try:
        return await pdf_sandbox.check_pdf(
            data, pdf_sandbox.limits_for(settings), settings.pdf_timeout_seconds
        )
    except pdf_sandbox.PdfBusy as err:
        raise Unavailable(str(err)) from err
    except pdf_values.InvalidPdf as err:
        raise Invalid(str(err), code="invalid_pdf") from err


class Portico:
    """The business operations; thin adapters (HTTP, CLI, SMS) call these."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal
        self.files = FileStore(settings.files_dir)
        self.clock = clock  # tests move it (e.g. an hour on, to lift an SMS code lockout)

    # --- clients, projects, documents -------------------------------------------------------

    async def create_client(self, data: ClientIn) -> ClientOut:
        async with self.sessions() as session, session.begin():
            client = Client(**data.model_dump())
            session.add(client)
        return client_out(client)

    async def update_client(self, client_id: int, data: ClientPatch) -> ClientOut:
        async with self.sessions() as session, session.begin():
            client = await session.get(Client, client_id)
            if client is None:
                raise NotFound(f"Client {client_id} does not exist.")
            for name, value in data.model_dump(exclude_unset=True).items():
                setattr(client, name, value)
        return client_out(client)

    async def create_project(self, data: ProjectIn) -> ProjectOut:
        async with self.sessions() as session, session.begin():
            if await session.get(Client, data.client_id) is None:
                raise NotFound(f"Client {data.client_id} does not exist.")
            project = Project(**data.model_dump())
            session.add(project)
        return project_out(project)

    async def create_document(
        self, meta: DocumentMeta, file_bytes: bytes | None = None
    ) -> DocumentOut:
        """Store an uploaded PDF, or render one from line items."""
        fields = await self._document_fields(meta, file_bytes)
        async with self.sessions() as session, session.begin():
            document = Document(**fields)
            session.add(document)
        return document_out(document)

    async def _document_fields(
        self, meta: DocumentMeta, file_bytes: bytes | None
    ) -> dict[str, Any]:
        """Render (line items) or check the PDF, store it; the new Document row's fields."""
        line_items = None
        amount = meta.amount_cents
        async with self.sessions() as session:
            project = await session.get(Project, meta.project_id)
            if project is None:
                raise NotFound(f"Project {meta.project_id} does not exist.")
            client = await session.get(Client, project.client_id)
        assert client is not None
        if isinstance(meta, DocumentFromItems):
            # reportlab loads with the first rendered document, not with every process
            from portico import pdf  # noqa: PLC0415

            line_items = [item.model_dump(mode="json") for item in meta.line_items]
            file_bytes, amount = pdf.render_line_items_pdf(
                company_name=self.settings.company_name,
                kind=meta.kind,
                title=meta.title,
                number=meta.number,
                client_name=client.company or client.name,
                project_name=project.name,
                currency=meta.currency,
                line_items=line_items,
                issued_on=datetime.now(UTC).date(),
                notes=meta.notes,
                locale=i18n.resolve(client.locale, default=self.settings.default_locale),
            )
        elif file_bytes is None:
            raise Invalid("Send a PDF as `file`, or `line_items` to have one rendered.")
        else:  # an upload: checked within the limits, stored without its active content
            file_bytes = (await check_upload(self.settings, file_bytes)).data
        path = await asyncio.to_thread(self.files.save, "documents", file_bytes, ".pdf")
        fields = meta.model_dump(exclude={"line_items", "notes"})
        fields["amount_cents"] = amount
        return dict(
            fields,
            file_path=path,
            sha256=pdf_values.sha256_hex(file_bytes),
            size_bytes=len(file_bytes),
            line_items=line_items,
        )

    async def create_version(
        self, document_id: int, changes: VersionMeta, file_bytes: bytes | None = None
    ) -> VersionOut:
        """Store version N+1 of a document as a new row that supersedes it; void the open requests
        for the old version ("Superseded by version N+1") and mark the approved ones superseded.

        Safe to retry: sending the same content again finishes what an interrupted call left
        (e.g. Temporal was down for a void) and answers `created: false`.
        """
        async with self.sessions() as session:
            old = await session.get(Document, document_id)
            if old is None:
                raise NotFound(f"Document {document_id} does not exist.")
            successor = await session.scalar(
                select(Document).where(Document.supersedes_id == document_id)
            )
        base: dict[str, Any] = {
            "project_id": old.project_id,
            "kind": old.kind,
            "number": old.number,
            "title": changes.title or old.title,
            "amount_cents": (
                old.amount_cents if changes.amount_cents is None else changes.amount_cents
            ),
            "currency": changes.currency or old.currency,
            "portal_visible": (
                old.portal_visible if changes.portal_visible is None else changes.portal_visible
            ),
        }
        meta: DocumentMeta
        if isinstance(changes, VersionFromItems):
            # The amount comes from the new lines; the old one (negative for a credit) is no input.
            base["amount_cents"] = None
            meta = DocumentFromItems(**base, line_items=changes.line_items, notes=changes.notes)
        else:
            meta = DocumentMeta(**base)
        fields = await self._document_fields(meta, file_bytes)
        if successor is not None and successor.sha256 != fields["sha256"]:
            raise Conflict(
                f"Document {document_id} was already replaced by document {successor.id} "
                f"(version {successor.version}); add the new version to that one.",
                code="not_latest_version",
            )
        if fields["sha256"] == old.sha256:  # valid input; the document's state refuses it
            raise Conflict(
                f"This PDF is identical to version {old.version}; nothing changed.",
                code="unchanged",
            )
        document, created = successor, False
        if document is None:
            try:
                async with self.sessions() as session, session.begin():
                    document = Document(**fields, version=old.version + 1, supersedes_id=old.id)
                    session.add(document)
            except IntegrityError as err:  # another version of the same document won the race
                raise Conflict(
                    f"Document {document_id} was just replaced by another version.",
                    code="not_latest_version",
                ) from err
            created = True
        async with self.sessions() as session, session.begin():
            affected = list(
                await session.scalars(
                    select(Approval)
                    .where(
                        Approval.document_id == old.id,
                        (Approval.superseded_by_document_id == document.id)
                        | (
                            Approval.superseded_by_document_id.is_(None)
                            & Approval.status.in_((PENDING, PARTIALLY_APPROVED, APPROVED))
                        ),
                    )
                    .order_by(Approval.id)
                )
            )
            for approval in affected:
                approval.superseded_by_document_id = document.id
        reason = f"Superseded by version {document.version}"
        results = [
            await self._supersede(approval, document, reason, changes.notify_client)
            for approval in affected
        ]
        return VersionOut(
            **dict(document_out(document)),
            created=created,
            supersedes=document_out(old),
            affected_approvals=results,
        )

    async def _supersede(
        self, approval: Approval, document: Document, reason: str, notify_client: bool
    ) -> AffectedApprovalOut:
        """Void an open request for a replaced document, or mark an approved one; report it."""
        before, action = approval.status, "already_closed"
        if before in (PENDING, PARTIALLY_APPROVED):
            try:
                await self.void(approval.id, VoidIn(reason=reason, notify_client=notify_client))
            except Conflict:  # it ended meanwhile (approved, declined, expired)
                pass
            except Unavailable:  # Temporal is down: it stays marked; send the same call again
                action = "void_pending"
        now = await self.load_approval(approval.id)
        if now.status == APPROVED:
            action = "marked_superseded"
            await self._record_superseded(approval.id, document, reason)
        elif now.status == "void" and now.void_reason == reason:
            action = "voided"
        return AffectedApprovalOut(
            id=approval.id,
            previous_status=before,  # type: ignore[arg-type]
            status=now.status,  # type: ignore[arg-type]
            action=action,  # type: ignore[arg-type]
            superseded=True,
        )

    async def _record_superseded(self, approval_id: int, document: Document, reason: str) -> None:
        """Have `superseded` appended to an approved request's audit chain: by its workflow or,
        once that has ended, by a short one (audit events are written by activities only)."""
        await self.temporal.supersede(
            Supersession(
                approval_id=approval_id,
                document_id=document.id,
                version=document.version,
                sha256=document.sha256,
                reason=reason,
            )
        )

    # --- approvals --------------------------------------------------------------------------

    async def create_approval(self, data: ApprovalIn, actor: str = "staff") -> ApprovalCreatedOut:
        """Record the request, then start its workflow `approval-{id}` (reject duplicates)."""
        now = datetime.now(UTC)
        expires_at = now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
        token_expiry = (expires_at or now + timedelta(days=180)) + LINK_GRACE
        staff = (
            [StaffContact(**c.model_dump()) for c in data.notify_staff]
            if data.notify_staff is not None
            else [StaffContact(email=e) for e in self.settings.staff_emails]
            + [StaffContact(phone=p) for p in self.settings.staff_phones]
        )
        async with self.sessions() as session, session.begin():
            # The document, its project and client, and any newer version: one statement.
            found = (
                await session.execute(
                    select(Document, Project, Client, _NEWER.id)
                    .join(Project, Project.id == Document.project_id)
                    .join(Client, Client.id == Project.client_id)
                    .outerjoin(_NEWER, _NEWER.supersedes_id == Document.id)
                    .where(Document.id == data.document_id)
                )
            ).first()
            if found is None:
                raise NotFound(f"Document {data.document_id} does not exist.")
            document, project, client, newer = found
            if newer is not None:
                raise Conflict(
                    f"Document {document.id} was replaced by a newer version (document {newer}); "
                    "send the latest version.",
                    code="superseded_document",
                )
            # Read before the first write (on SQLite the write lock is held from there on).
            phones = {bare_phone(p.phone) for p in data.approvers if p.phone}
            used_codes = await self._codes_in_use(session, phones, now)
            approval = Approval(
                document_id=document.id,
                workflow_id="pending",
                routing=data.routing,
                status="pending",
                expires_at=expires_at,
                remind_every_days=data.remind_every_days,
                message=data.message,
                channels=list(data.channels),
                division=data.division,
                notify_staff=[{"email": c.email, "phone": c.phone} for c in staff],
                created_at=now,
            )
            session.add(approval)
            await session.flush()
            approval.workflow_id = approval_workflow_id(approval.id)
            approvers = []
            nonces = [tokens.new_nonce() for _ in data.approvers]
            for position, (person, nonce) in enumerate(zip(data.approvers, nonces, strict=True)):
                code = free_sms_code(used_codes)
                used_codes.add(code)
                approvers.append(
                    Approver(
                        approval_id=approval.id,
                        position=position,
                        name=person.name,
                        email=person.email,
                        phone=person.phone,
                        locale=person.locale,
                        status="pending"
                        if position == 0 or data.routing != "sequential"
                        else "waiting",
                        token_hash=f"pending:{nonce}",  # the token needs the id
                        link_nonce=nonce,
                        token_expires_at=token_expiry,
                        sms_code=code,
                    )
                )
            session.add_all(approvers)
            await session.flush()
            signing_tokens = [
                tokens.signing_token(self.settings.secret_key, a.id, nonce)
                for a, nonce in zip(approvers, nonces, strict=True)
            ]
            for approver, token in zip(approvers, signing_tokens, strict=True):
                approver.token_hash = tokens.hash_token(token)
            inp = ApprovalInput(
                created_by=actor,
                approval_id=approval.id,
                document=DocumentInfo(
                    id=document.id,
                    kind=document.kind,
                    title=document.title,
                    number=document.number,
                    amount_cents=document.amount_cents,
                    currency=document.currency,
                    client_name=client.company or client.name,
                    project_name=project.name,
                ),
                # No link or reply code: the worker derives them (CONTRACT section 8).
                approvers=[
                    ApproverInput(id=a.id, name=a.name, email=a.email, phone=a.phone)
                    for a in approvers
                ],
                routing=data.routing,
                created_at=now,
                expires_in_days=data.expires_in_days,
                remind_every_days=data.remind_every_days,
                message=data.message,
                channels=list(data.channels),
                division=data.division,
                notify_staff=staff,
                company_name=self.settings.company_name,
                sms_task_queue=self.settings.sms_task_queue,
                logo_url=branding.absolute(
                    Branding.from_settings(self.settings).logo_for(data.division),
                    self.settings.public_url,
                ),
                accent=self.settings.accent_color,
                created_recorded=True,
                sent_with_email=True,
                decisions_answered_first=True,
                signed_pdf_with_event=True,
            )
            # seq 1 of the trail, with the rows (_forget removes it if the workflow won't start)
            await append_event(session, approval.id, created_event(inp), new_chain=True)
        approval_id = approval.id
        await self.temporal.start_new(
            APPROVAL_WORKFLOW,
            inp,
            workflow_id=approval.workflow_id,
            search_attributes=sa.initial(
                "pending",
                document.kind,
                document.number,
                client.company or client.name,
                document.amount_cents,
            ),
            forget=lambda: self._forget(approval_id),
            engine="approval engine",
            nothing_done="nothing was sent",
        )
        created = await self.get_approval(approval.id)
        with_links = [
            CreatedApproverOut(**dict(item), sign_url=self.settings.url(f"/s/{token}"))
            for item, token in zip(created.approvers, signing_tokens, strict=True)
        ]
        return ApprovalCreatedOut(**{**dict(created), "approvers": with_links})

    async def _codes_in_use(
        self, session: AsyncSession, phones: set[str], now: datetime
    ) -> set[str]:
        """Codes still answerable from these numbers. A reply is matched by code *and* sender,
        so a code only has to be unique per phone: 4 digits would run out if it were global."""
        if not phones:
            return set()
        numbers = phones | {f"whatsapp:{p}" for p in phones}
        rows = await session.scalars(
            select(Approver.sms_code).where(
                Approver.phone.in_(numbers), Approver.token_expires_at > now
            )
        )
        return set(rows)

    async def _forget(self, approval_id: int) -> None:
        """Undo a request whose workflow could not start, so nothing half-made is left."""
        async with self.sessions() as session, session.begin():
            await session.execute(delete(AuditEvent).where(AuditEvent.approval_id == approval_id))
            for approver in await session.scalars(
                select(Approver).where(Approver.approval_id == approval_id)
            ):
                await session.delete(approver)
            approval = await session.get(Approval, approval_id)
            if approval is not None:
                await session.delete(approval)

    async def load_approval(self, approval_id: int) -> Approval:
        if not known_id(approval_id):  # e.g. from the CLI: no row has it, don't ask the database
            raise NotFound(f"Approval {approval_id} does not exist.")
        async with self.sessions() as session:
            approval = await session.scalar(
                select(Approval)
                .where(Approval.id == approval_id)
                .options(selectinload(Approval.approvers), selectinload(Approval.document))
            )
        if approval is None:
            raise NotFound(f"Approval {approval_id} does not exist.")
        return approval

    async def get_approval(self, approval_id: int) -> ApprovalOut:
        approval = await self.load_approval(approval_id)
        async with self.sessions() as session:
            events = list(
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.approval_id == approval_id)
                    .order_by(AuditEvent.seq)
                )
            )
        return approval_out(approval, events)

    async def list_approvals(
        self, status: str | None = None, client_id: int | None = None, kind: str | None = None
    ) -> list[ApprovalSummaryOut]:
        query = (
            select(Approval)
            .join(Document)
            .join(Project)
            .options(selectinload(Approval.approvers), selectinload(Approval.document))
            .order_by(Approval.id.desc())
        )
        if status:
            query = query.where(Approval.status == status)
        if kind:
            query = query.where(Document.kind == kind)
        if client_id is not None:
            query = query.where(Project.client_id == client_id)
        async with self.sessions() as session:
            return [approval_summary(a) for a in await session.scalars(query)]

    async def find_approval(self, ref: str) -> Approval:
        """An approval by id (`42`, `#42`) or by its document's number, any case (newest request
        first). A bare number that is no approval's id is tried as a document number too, since
        many businesses number their documents 1042, 1043, ..."""
        explicit_id = ref.strip().startswith("#")
        ref = ref.strip().lstrip("#")
        number = parse_id(ref)
        if number is not None:
            try:
                return await self.load_approval(number)
            except NotFound:
                if explicit_id:
                    raise
        async with self.sessions() as session:
            approval_id = await session.scalar(
                select(Approval.id)
                .join(Document)
                .where(func.lower(Document.number) == ref.lower())
                .order_by(Approval.id.desc())
                .limit(1)
            )
        if approval_id is None:
            raise NotFound(f"No approval request for {ref}.")
        return await self.load_approval(approval_id)

    async def decide(
        self, approval_id: int, update: str, req: ApproveRequest | DeclineRequest
    ) -> DecisionResult:
        """A client's decision (signing page, SMS reply) sent to its workflow. It answers once
        SQL holds the decision, so whatever the client or staff open next shows it."""
        result = await self.temporal.decide(approval_id, update, req)
        if result.record is not None:  # answered before the workflow's own sync of it
            await record_decision(self.records, result.record)
        return result

    @functools.cached_property
    def records(self) -> ApprovalRecords:
        # services.webhooks imports this module (approval_out), so it is imported on first use
        from portico.services.webhooks import approval_event_hook  # noqa: PLC0415

        return ApprovalRecords(self.sessions, approval_event_hook(self.settings))

    async def void(self, approval_id: int, data: VoidIn, actor: str = "staff") -> ApprovalOut:
        await self.load_approval(approval_id)
        await self.temporal.staff_update(
            approval_id,
            VOID_UPDATE,
            VoidRequest(reason=data.reason, notify_client=data.notify_client, actor=actor),
        )
        return await self.get_approval(approval_id)

    async def extend(self, approval_id: int, data: ExtendIn, actor: str = "staff") -> DeadlineOut:
        await self.load_approval(approval_id)
        state = await self.temporal.staff_update(
            approval_id, EXTEND, ExtendRequest(days=data.days, actor=actor)
        )
        return DeadlineOut(
            id=approval_id,
            status=state.status,  # type: ignore[arg-type]
            expires_at=utc(state.expires_at),
        )

    async def remind(self, approval_id: int, data: RemindIn, actor: str = "staff") -> DeadlineOut:
        await self.load_approval(approval_id)
        state = await self.temporal.staff_update(
            approval_id, REMIND, RemindRequest(extend_days=data.extend_days, actor=actor)
        )
        return DeadlineOut(
            id=approval_id,
            status=state.status,  # type: ignore[arg-type]
            expires_at=utc(state.expires_at),
        )

    async def signed_pdf(self, approval_id: int) -> bytes:
        """The signed PDF as committed now; never waits for the worker (see signed_pdf_path)."""
        approval = await self.load_approval(approval_id)
        return self.files.read(signed_pdf_path(approval))


def signed_pdf_path(approval: Approval, pending_message: str | None = None) -> str:
    """Where the signed PDF of `approval` is stored, from what is committed.

    The status turns `approved` a few seconds before the workflow has built and stored the
    signed PDF: in between this raises NotReady (409 `signed_pdf_pending` with `Retry-After`
    from the API, a page that refreshes itself for a browser) instead of waiting. Not approved
    is 409 `not_approved`; a PDF that could not be built is 409 `signed_pdf_failed`."""
    status = signed_pdf_status(approval)
    if approval.status != APPROVED:
        raise Conflict(
            f"The signed PDF exists once the request is approved (it is {approval.status}).",
            code="not_approved",
        )
    if status == "failed":
        raise Conflict(
            "The request is approved, but its signed PDF could not be built "
            f"({approval.signed_pdf_error}). Staff were told by email; the approval and its "
            "audit trail stand.",
            code="signed_pdf_failed",
        )
    if status == "pending":
        raise NotReady(
            pending_message
            or "The request is approved and its signed PDF is being prepared; "
            f"try again in {SIGNED_PDF_RETRY_AFTER} seconds.",
            code="signed_pdf_pending",
            retry_after=SIGNED_PDF_RETRY_AFTER,
        )
    assert approval.signed_pdf_path
    return approval.signed_pdf_path


# --- answers (portico.schemas' `...Out` models; `model_dump(mode="json")` is the JSON) ---------


def utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value else None


def client_out(client: Client) -> ClientOut:
    return ClientOut.model_validate(client)


def project_out(project: Project) -> ProjectOut:
    return ProjectOut.model_validate(project)


def document_out(document: Document) -> DocumentOut:
    return DocumentOut.model_validate(document)


def approver_out(approver: Approver) -> ApproverOut:
    return ApproverOut.model_validate(approver)


def signed_pdf_status(approval: Approval) -> Literal["ready", "failed", "pending"] | None:
    """`ready`, `failed` (staff were told), `pending` (being built) or None (not approved)."""
    if approval.signed_pdf_path:
        return "ready"
    if approval.signed_pdf_error:
        return "failed"
    return "pending" if approval.status == APPROVED else None


def _computed(approval: Approval) -> dict[str, Any]:
    """The fields of an approval's answer that are not columns of its row."""
    return {
        "signed_pdf_status": signed_pdf_status(approval),
        "superseded": approval.superseded_by_document_id is not None,
    }


def approval_summary(approval: Approval) -> ApprovalSummaryOut:
    """A request as `GET /approvals` lists it (no events)."""
    columns = {
        name: getattr(approval, name)
        for name in ApprovalSummaryOut.model_fields
        if hasattr(Approval, name)
    }
    return ApprovalSummaryOut.model_validate({**columns, **_computed(approval)})


def approval_out(approval: Approval, events: list[AuditEvent]) -> ApprovalOut:
    """A request as `GET /approvals/{id}` shows it, with its audit trail."""
    summary = approval_summary(approval)
    return ApprovalOut(**dict(summary), events=[EventOut.model_validate(e) for e in events])
