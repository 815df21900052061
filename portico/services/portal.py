"""The client portal's data: settings, and every read scoped to one signed-in client (another
client's ids are simply not found), bookings, service requests, contact details, share links."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import tokens
from portico.clock import utcnow
from portico.errors import Conflict, Forbidden, Invalid, NotFound
from portico.models import (
    Agreement,
    AgreementVisit,
    Approval,
    Approver,
    Booking,
    Client,
    ClientContact,
    Document,
    Invoice,
    Payment,
    PortalSession,
    PortalSettings,
    Project,
    ServiceRequest,
    ShareLink,
    SigningLink,
)
from portico.phones import bare_phone
from portico.portal_schemas import (
    BookingIn,
    BookingOut,
    BookingUpdateIn,
    ContactIn,
    PortalSettingsIn,
    PortalSettingsOut,
    ProjectUpdateIn,
    ServiceRequestIn,
    ServiceRequestOut,
)
from portico.schemas import ProjectOut
from portico.services import outbox
from portico.services.approvals import project_out
from portico.settings import Settings
from workflows.types import ACTIVE_APPROVER_STATUSES, APPROVED, DECLINED

COMPLETE_STATUSES = ("complete", "completed", "closed")
SIGNING_LINK_TTL = timedelta(hours=2)
SHARE_LINK_TTL = timedelta(days=30)
SECTIONS = (
    "projects",
    "approvals",
    "bookings",
    "files",
    "payments",
    "service_requests",
    "messages",
    "agreements",
)


async def load_portal_settings(session: AsyncSession) -> PortalSettings:
    """The settings row; defaults (portal on, every section shown) until staff change them."""
    row = await session.get(PortalSettings, 1)
    return (
        row
        if row is not None
        else PortalSettings(
            id=1,
            enabled=True,
            show_projects=True,
            show_approvals=True,
            show_bookings=True,
            show_files=True,
            show_payments=True,
            show_service_requests=True,
            show_messages=True,
            show_agreements=True,
        )
    )


def portal_settings_out(row: PortalSettings) -> PortalSettingsOut:
    return PortalSettingsOut(
        enabled=row.enabled,
        welcome_message=row.welcome_message,
        sections={
            "invoices": True,
            **{name: bool(getattr(row, f"show_{name}")) for name in SECTIONS},
        },
        company_footer=row.company_footer,
        vat_number=row.vat_number,
        registration_number=row.registration_number,
    )


def booking_out(booking: Booking) -> BookingOut:
    return BookingOut.model_validate(booking)


def service_request_out(item: ServiceRequest) -> ServiceRequestOut:
    return ServiceRequestOut.model_validate(item)


def is_the_client(approver: Approver, client: Client) -> bool:
    """Whether the approver is this client: the same email (any case) or the same phone."""
    email = client.email.strip().lower()
    if email and (approver.email or "").strip().lower() == email:
        return True
    phone = bare_phone(client.phone or "")
    return bool(phone) and bare_phone(approver.phone or "") == phone


@dataclass
class ApprovalRow:
    """An approval as the portal lists it, with its approvers; `mine` are those that are the
    signed-in client (CONTRACT section 8: the client signs only as one of them)."""

    approval: Approval
    document: Document
    approvers: list[Approver] = field(default_factory=list)
    mine: list[Approver] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.approval.status in ("pending", "partially_approved") and not (
            self.approval.expires_at and self.approval.expires_at <= utcnow()
        )

    @property
    def turn(self) -> list[Approver]:
        """Whose turn it is (nobody's once the request is closed)."""
        if not self.open:
            return []
        return [a for a in self.approvers if a.status in ACTIVE_APPROVER_STATUSES]

    @property
    def signable(self) -> bool:
        """Open, and it is the client's own turn."""
        return any(a.status in ACTIVE_APPROVER_STATUSES for a in self.mine) and self.open

    @property
    def signer(self) -> Approver | None:
        """The approver the client's signing page opens: theirs whose turn it is, else one
        that has decided, else their first; None when the client is not an approver."""
        return (
            next((a for a in self.mine if a.status in ACTIVE_APPROVER_STATUSES), None)
            or next((a for a in self.mine if a.status in (APPROVED, DECLINED)), None)
            or next(iter(self.mine), None)
        )


async def approval_rows(
    session: AsyncSession, client: Client, pairs: Iterable[tuple[Approval, Document]]
) -> list[ApprovalRow]:
    """ApprovalRows of these (approval, document) pairs, their approvers loaded in one query."""
    pairs = list(pairs)
    by_approval: dict[int, list[Approver]] = defaultdict(list)
    if pairs:
        approvers = await session.scalars(
            select(Approver)
            .where(Approver.approval_id.in_([a.id for a, _ in pairs]))
            .order_by(Approver.approval_id, Approver.position)
        )
        for approver in approvers:
            by_approval[approver.approval_id].append(approver)
    rows = []
    for approval, document in pairs:
        everyone = by_approval[approval.id]
        mine = [a for a in everyone if is_the_client(a, client)]
        rows.append(ApprovalRow(approval, document, everyone, mine))
    return rows


@dataclass(frozen=True)
class ContactChange:
    """One detail a client changed about themselves (`address` included)."""

    field: str
    old: str | None
    new: str | None


@dataclass
class Overview:
    client: Client
    address: str | None
    projects: list[Project]
    approvals: list[ApprovalRow]
    bookings: list[Booking]
    files: list[Document]
    invoices: list[Invoice]
    payments: list[tuple[Payment, Invoice]]


class PortalStore:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: outbox.Outbox,
        booking_completed: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        # Told, after the commit, of each booking that became `completed` (the service
        # agreements count their visits by it: portico/services/agreements.py).
        self.booking_completed = booking_completed

    # --- settings ---------------------------------------------------------------------------

    async def portal_settings(self) -> PortalSettings:
        async with self.sessions() as session:
            return await load_portal_settings(session)

    async def update_portal_settings(self, data: PortalSettingsIn) -> PortalSettingsOut:
        changes = data.model_dump(exclude_unset=True)
        for flag in ("enabled", *(f"show_{s}" for s in SECTIONS)):
            if flag in changes and changes[flag] is None:
                raise Invalid(f"{flag} must be true or false.")
        async with self.sessions() as session, session.begin():
            row = await session.get(PortalSettings, 1)
            if row is None:
                row = await load_portal_settings(session)
                session.add(row)
            for name, value in changes.items():
                setattr(row, name, value)
        return portal_settings_out(row)

    # --- one client's data ------------------------------------------------------------------

    async def client(self, client_id: int) -> tuple[Client, str | None]:
        async with self.sessions() as session:
            client = await session.get(Client, client_id)
            if client is None:
                raise NotFound("Your account no longer exists.")
            contact = await session.scalar(
                select(ClientContact).where(ClientContact.client_id == client_id)
            )
        return client, contact.address if contact else None

    async def overview(self, client_id: int, project_id: int | None = None) -> Overview:
        """Everything of one client (or of one of its projects) the portal shows."""
        client, address = await self.client(client_id)
        async with self.sessions() as session:
            projects = list(
                await session.scalars(
                    select(Project).where(Project.client_id == client_id).order_by(Project.id)
                )
            )
            ids = [p.id for p in projects]
            if project_id is not None:
                if project_id not in ids:
                    raise NotFound("There is no such project in your account.")
                ids = [project_id]
            rows = await session.execute(
                select(Approval, Document)
                .join(Document, Approval.document_id == Document.id)
                .where(Document.project_id.in_(ids))
                .order_by(Approval.id.desc())
            )
            approvals = await approval_rows(session, client, rows)
            booking_query = select(Booking).where(Booking.client_id == client_id)
            if project_id is not None:
                booking_query = booking_query.where(Booking.project_id == project_id)
            bookings = list(
                await session.scalars(booking_query.order_by(Booking.date, Booking.time))
            )
            files = list(
                await session.scalars(
                    select(Document)
                    .where(Document.project_id.in_(ids), Document.portal_visible.is_(True))
                    .order_by(Document.id.desc())
                )
            )
            invoices = list(
                await session.scalars(
                    select(Invoice).where(Invoice.project_id.in_(ids)).order_by(Invoice.id.desc())
                )
            )
            payment_rows = await session.execute(
                select(Payment, Invoice)
                .join(Invoice, Payment.invoice_id == Invoice.id)
                .where(Invoice.project_id.in_(ids))
                .order_by(Payment.id.desc())
            )
            payments = [(p, i) for p, i in payment_rows]
        if project_id is not None:
            projects = [p for p in projects if p.id == project_id]
        return Overview(client, address, projects, approvals, bookings, files, invoices, payments)

    async def document(self, client_id: int, document_id: int) -> Document:
        """A shared file of this client (portal_visible), else NotFound."""
        async with self.sessions() as session:
            document = await session.scalar(
                select(Document)
                .join(Project, Document.project_id == Project.id)
                .where(
                    Document.id == document_id,
                    Project.client_id == client_id,
                    Document.portal_visible.is_(True),
                )
            )
        if document is None:
            raise NotFound("There is no such file in your account.")
        return document

    async def invoice(self, client_id: int, invoice_id: int) -> Invoice:
        async with self.sessions() as session:
            invoice = await session.scalar(
                select(Invoice)
                .join(Project, Invoice.project_id == Project.id)
                .where(Invoice.id == invoice_id, Project.client_id == client_id)
            )
        if invoice is None:
            raise NotFound("There is no such invoice in your account.")
        return invoice

    async def booking(self, client_id: int, booking_id: int) -> Booking:
        async with self.sessions() as session:
            booking = await session.scalar(
                select(Booking).where(Booking.id == booking_id, Booking.client_id == client_id)
            )
        if booking is None:
            raise NotFound("There is no such booking in your account.")
        return booking

    async def approval(self, client_id: int, approval_id: int) -> ApprovalRow:
        client, _ = await self.client(client_id)
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Approval, Document)
                    .join(Document, Approval.document_id == Document.id)
                    .join(Project, Document.project_id == Project.id)
                    .where(Approval.id == approval_id, Project.client_id == client_id)
                )
            ).first()
            if row is None:
                raise NotFound("There is no such approval request in your account.")
            (found,) = await approval_rows(session, client, [row])
        return found

    async def signing_token(self, client_id: int, session_hash: str, row: ApprovalRow) -> str:
        """A new short-lived signing token for the client's own approver on the request
        (`row.signer`), minted from the portal session with this hash.

        The emailed link's token is stored only as a hash, so it cannot be shown again; an
        extra token (table signing_links) opens the same approver's page and expires soon.
        A request that waits only on other people gets no token (CONTRACT section 8).
        """
        approver = row.signer
        if approver is None:
            raise Forbidden(
                "Only the people asked to approve this request can sign it; "
                "you can follow its progress here."
            )
        async with self.sessions() as session, session.begin():
            portal_session_id = await session.scalar(
                select(PortalSession.id).where(
                    PortalSession.session_hash == session_hash,
                    PortalSession.client_id == client_id,
                )
            )
            token = tokens.new_token()
            session.add(
                SigningLink(
                    approver_id=approver.id,
                    token_hash=tokens.hash_token(token),
                    expires_at=utcnow() + SIGNING_LINK_TTL,
                    client_id=client_id,
                    portal_session_id=portal_session_id,
                )
            )
        return token

    # --- contact details and service requests ----------------------------------------------

    async def update_contact(self, client_id: int, data: ContactIn) -> list[ContactChange]:
        """Apply the client's new details; returns what changed. Staff are told in the same
        transaction (the outbox)."""
        async with self.outbox.transaction() as session:
            client = await session.get(Client, client_id)
            if client is None:
                raise NotFound("Your account no longer exists.")
            contact = await session.scalar(
                select(ClientContact).where(ClientContact.client_id == client_id)
            )
            if contact is None:
                contact = ClientContact(client_id=client_id)
                session.add(contact)
            changes: list[ContactChange] = []
            for name in ("name", "phone", "company"):
                new = getattr(data, name)
                if getattr(client, name) != new:
                    changes.append(ContactChange(name, getattr(client, name), new))
                    setattr(client, name, new)
            if contact.address != data.address:
                changes.append(ContactChange("address", contact.address, data.address))
                contact.address = data.address
            if changes:
                context = {
                    "company_name": self.settings.company_name,
                    "client_name": data.name,
                    "client_id": client_id,
                    "changes": {c.field: [c.old, c.new] for c in changes},
                }
                key = f"contact-changed:{uuid.uuid4().hex}"
                outbox.add_staff_emails(
                    session, self.settings, key, "staff_contact_changed", context
                )
        return changes

    async def create_service_request(
        self, client_id: int, data: ServiceRequestIn
    ) -> ServiceRequest:
        """Store the request and, in the same transaction, the staff notices (the outbox)."""
        async with self.outbox.transaction() as session:
            if data.project_id is not None:
                project = await session.get(Project, data.project_id)
                if project is None or project.client_id != client_id:
                    raise NotFound("There is no such project in your account.")
            else:
                project = None
            client = await session.get(Client, client_id)
            if client is None:
                raise NotFound("Your account no longer exists.")
            item = ServiceRequest(client_id=client_id, **data.model_dump())
            session.add(item)
            await session.flush()
            context = {
                **service_request_out(item).model_dump(mode="json"),
                "company_name": self.settings.company_name,
                "client_name": client.company or client.name,
                "request_id": item.id,
                "project_name": project.name if project else None,
            }
            key = f"service-request-{item.id}"
            outbox.add_staff_emails(session, self.settings, key, "staff_service_request", context)
        return item

    async def list_service_requests(
        self, client_id: int | None = None, status: str | None = None
    ) -> list[ServiceRequestOut]:
        query = select(ServiceRequest).order_by(ServiceRequest.id.desc())
        if client_id is not None:
            query = query.where(ServiceRequest.client_id == client_id)
        if status:
            query = query.where(ServiceRequest.status == status)
        async with self.sessions() as session:
            return [service_request_out(s) for s in await session.scalars(query)]

    # --- bookings and projects (staff) ------------------------------------------------------

    async def create_booking(self, data: BookingIn) -> BookingOut:
        async with self.sessions() as session, session.begin():
            client_id = data.client_id
            if data.project_id is not None:
                project = await session.get(Project, data.project_id)
                if project is None:
                    raise NotFound(f"Project {data.project_id} does not exist.")
                if client_id is not None and client_id != project.client_id:
                    raise Conflict(  # both exist, but do not go together
                        "The project belongs to another client.", code="project_of_another_client"
                    )
                client_id = project.client_id
            if client_id is None or await session.get(Client, client_id) is None:
                raise NotFound(f"Client {client_id} does not exist.")
            booking = Booking(**{**data.model_dump(), "client_id": client_id})
            session.add(booking)
        return booking_out(booking)

    async def update_booking(self, booking_id: int, data: BookingUpdateIn) -> BookingOut:
        async with self.sessions() as session, session.begin():
            booking = await session.get(Booking, booking_id)
            if booking is None:
                raise NotFound(f"Booking {booking_id} does not exist.")
            was = booking.status
            changes = data.model_dump(exclude_unset=True)
            await _refuse_agreement_reschedule(session, booking, changes)
            for name, value in changes.items():
                if name in ("date", "status") and value is None:
                    raise Invalid(f"{name} cannot be null.")
                setattr(booking, name, value)
        if booking.status == "completed" and was != "completed" and self.booking_completed:
            await self.booking_completed(booking.id)
        return booking_out(booking)

    async def list_bookings(
        self, client_id: int | None = None, since: date | None = None
    ) -> list[BookingOut]:
        query = select(Booking).order_by(Booking.date, Booking.time)
        if client_id is not None:
            query = query.where(Booking.client_id == client_id)
        if since is not None:
            query = query.where(Booking.date >= since)
        async with self.sessions() as session:
            return [booking_out(b) for b in await session.scalars(query)]

    async def update_project(self, project_id: int, data: ProjectUpdateIn) -> ProjectOut:
        async with self.sessions() as session, session.begin():
            project = await session.get(Project, project_id)
            if project is None:
                raise NotFound(f"Project {project_id} does not exist.")
            for name, value in data.model_dump(exclude_unset=True).items():
                if value is None:
                    raise Invalid(f"{name} cannot be null.")
                setattr(project, name, value)
        return project_out(project)

    # --- share links ------------------------------------------------------------------------

    async def share_document(self, client_id: int, document_id: int) -> tuple[str, datetime]:
        document = await self.document(client_id, document_id)
        token = tokens.new_token()
        expires = utcnow() + SHARE_LINK_TTL
        async with self.sessions() as session, session.begin():
            session.add(
                ShareLink(
                    client_id=client_id,
                    document_id=document.id,
                    token_hash=tokens.hash_token(token),
                    expires_at=expires,
                )
            )
        return token, expires

    async def open_share(self, token: str) -> Document:
        if not 16 <= len(token) <= 64:
            raise NotFound("This link is not valid.")
        async with self.sessions() as session:
            link = await session.scalar(
                select(ShareLink).where(ShareLink.token_hash == tokens.hash_token(token))
            )
            if link is None or link.revoked_at is not None or link.expires_at <= utcnow():
                raise NotFound("This link is not valid or has expired.")
            if not (await load_portal_settings(session)).enabled:
                raise NotFound("This link is not available right now.")
            document = await session.scalar(
                select(Document)
                .join(Project, Document.project_id == Project.id)
                .where(
                    Document.id == link.document_id,
                    Project.client_id == link.client_id,
                    Document.portal_visible.is_(True),
                )
            )
        if document is None:
            raise NotFound("This file is no longer shared.")
        return document


async def _refuse_agreement_reschedule(
    session: AsyncSession, booking: Booking, changes: dict[str, Any]
) -> None:
    """A visit of an active service agreement is moved or cancelled through its agreement, whose
    workflow owns the schedule and the reminders; the bookings API would leave them behind."""
    moved = "date" in changes and changes["date"] != booking.date
    cancelled = changes.get("status") == "cancelled" and booking.status != "cancelled"
    if not (moved or cancelled):
        return
    visit = await session.scalar(
        select(AgreementVisit)
        .join(Agreement, Agreement.id == AgreementVisit.agreement_id)
        .where(AgreementVisit.booking_id == booking.id, Agreement.status == "active")
    )
    if visit is None:
        return
    how = (
        f"POST /api/v1/agreements/{visit.agreement_id}/visits/{visit.n}/move"
        if moved
        else f"POST /api/v1/agreements/{visit.agreement_id}/cancel"
    )
    raise Conflict(
        f"Booking {booking.id} is visit {visit.n} of service agreement {visit.agreement_id}: "
        f"change it through the agreement ({how}) so its reminders follow.",
        code="agreement_visit",
    )
