"""SQLAlchemy models: the read model of approvals plus everything durable after they end."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from portico.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    company: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(5))  # en | fr | es; None: the default
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA; None: the default
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    projects: Mapped[list[Project]] = relationship(back_populates="client", lazy="raise_on_sql")


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    number: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    client: Mapped[Client] = relationship(back_populates="projects", lazy="raise_on_sql")


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(300))
    number: Mapped[str] = mapped_column(String(60), index=True)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    portal_visible: Mapped[bool] = mapped_column(Boolean, default=False)
    file_path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    line_items: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # A new version is a new row (its sha256 and the old approvals' evidence stay as they were);
    # unique: a version has at most one successor.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    project: Mapped[Project] = relationship(lazy="raise_on_sql")


class Approval(Base):
    __tablename__ = "approvals"
    # Ids name workflows (`approval-{id}`): never reuse one, even after a failed start is undone.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    workflow_id: Mapped[str] = mapped_column(String(80), unique=True)
    routing: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(30), default="pending", index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remind_every_days: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    channels: Mapped[list[str]] = mapped_column(JSON)
    division: Mapped[str | None] = mapped_column(String(100))
    notify_staff: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    void_reason: Mapped[str | None] = mapped_column(Text)
    signed_pdf_path: Mapped[str | None] = mapped_column(String(500))
    signed_pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    # Why the signed PDF could not be built (the workflow's `signed_pdf_failed` event); staff
    # were told. Cleared when a signed PDF is recorded.
    signed_pdf_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when a new version of the document replaced the one this request was for (the id of
    # that new document; no foreign key, so joins of approvals and documents stay unambiguous).
    superseded_by_document_id: Mapped[int | None] = mapped_column(Integer)

    document: Mapped[Document] = relationship(lazy="raise_on_sql")
    approvers: Mapped[list[Approver]] = relationship(
        back_populates="approval", lazy="raise_on_sql", order_by="Approver.position"
    )


class Approver(Base):
    __tablename__ = "approvers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    locale: Mapped[str | None] = mapped_column(String(5))  # None: the client's, else the default
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The signing token is derived from PORTICO_SECRET_KEY, the id and this nonce
    # (tokens.signing_token); NULL for approvers of older requests, whose token was random.
    link_nonce: Mapped[str | None] = mapped_column(String(40))
    token_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sms_code: Mapped[str] = mapped_column(String(8), index=True)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signature_name: Mapped[str | None] = mapped_column(String(200))
    signature_image: Mapped[str | None] = mapped_column(String(500))
    uploaded_pdf: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    decided_via: Mapped[str | None] = mapped_column(String(20))
    decided_ip: Mapped[str | None] = mapped_column(String(64))
    decided_user_agent: Mapped[str | None] = mapped_column(String(500))
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    first_viewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_viewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Hash of the browser session (cookie) of the last counted view: reloads from the same
    # browser within the view window count once, other browsers count on their own.
    last_viewer: Mapped[str | None] = mapped_column(String(64))
    viewed_seconds: Mapped[int] = mapped_column(Integer, default=0)

    approval: Mapped[Approval] = relationship(back_populates="approvers", lazy="raise_on_sql")


class ChainLink:
    """The columns of one link of a hash chain (`portico.audit`): an approval's or an
    invoice's."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    event_key: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(ChainLink, Base):
    """One link of an approval's append-only hash chain."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("approval_id", "seq"),
        UniqueConstraint("approval_id", "event_key"),
    )

    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id"), index=True)


class OutboundMessage(Base):
    """Every email/SMS Portico sent (or would have sent): dedupe record and the dev outbox."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(10))
    to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(20))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SmsOptOut(Base):
    """A phone's STOP/START choice (bare E.164, so SMS and WhatsApp share it); checked before
    every SMS Portico sends."""

    __tablename__ = "sms_opt_outs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(40), unique=True)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SmsCodeAttempt(Base):
    """One reply code checked for a sending number (bare E.164, so SMS and WhatsApp share the
    limit). Wrong ones in the last hour lock the number (bots/attempts.py). The code itself is
    never stored: `code_digest` is keyed with the secret key, since a plain hash of 4 digits is
    reversed in 10 000 tries."""

    __tablename__ = "sms_code_attempts"
    __table_args__ = (Index("ix_sms_code_attempts_phone_created_at", "phone", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(40))
    code_digest: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20))
    message_sid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundMessage(Base):
    """An SMS/WhatsApp message Twilio delivered to the webhook; its sid makes redelivery a no-op."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_: Mapped[str] = mapped_column("from", String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- client portal, invoices and payments (docs/portal.md) ----------------------------------


class MagicLink(Base):
    """A single-use sign-in link for the client portal; only the token's hash is stored."""

    __tablename__ = "magic_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(20), default="sign_in")  # sign_in | invite
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requested_ip: Mapped[str | None] = mapped_column(String(64))


class PortalSignInRequest(Base):
    """One sign-in form submission, counted for rate limits (shared by every web replica)."""

    __tablename__ = "portal_sign_in_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PortalSession(Base):
    """A signed-in portal browser; the cookie holds a random id, the table only its hash."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))


class PortalSettings(Base):
    """The portal's switches (one row, id 1): on/off, welcome text, sections, company footer."""

    __tablename__ = "portal_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    welcome_message: Mapped[str | None] = mapped_column(Text)
    show_projects: Mapped[bool] = mapped_column(Boolean, default=True)
    show_approvals: Mapped[bool] = mapped_column(Boolean, default=True)
    show_bookings: Mapped[bool] = mapped_column(Boolean, default=True)
    show_files: Mapped[bool] = mapped_column(Boolean, default=True)
    show_payments: Mapped[bool] = mapped_column(Boolean, default=True)
    show_service_requests: Mapped[bool] = mapped_column(Boolean, default=True)
    show_messages: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    show_agreements: Mapped[bool] = mapped_column(Boolean, default=True)
    company_footer: Mapped[str | None] = mapped_column(Text)
    vat_number: Mapped[str | None] = mapped_column(String(60))
    registration_number: Mapped[str | None] = mapped_column(String(60))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Booking(Base):
    """An appointment, visit or job on a date (and time), shown in the client's portal."""

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="appointment")
    title: Mapped[str] = mapped_column(String(200))
    date: Mapped[date] = mapped_column(Date)
    time: Mapped[str | None] = mapped_column(String(5))  # HH:MM, local to the business
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BookingPhoto(Base):
    """A photo of a job (a booking of kind `job`), re-encoded without metadata, and its
    thumbnail; the files are content-addressed under PORTICO_FILES_DIR/photos."""

    __tablename__ = "booking_photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    caption: Mapped[str | None] = mapped_column(String(500))
    portal_visible: Mapped[bool] = mapped_column(Boolean, default=True)
    content_type: Mapped[str] = mapped_column(String(40))
    file_path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    thumbnail_path: Mapped[str] = mapped_column(String(500))
    uploaded_by: Mapped[str] = mapped_column(String(360))  # `api` or `staff:<email>`
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceRequest(Base):
    """A request for work sent from the portal; staff list them and get an email."""

    __tablename__ = "service_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    company: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text)
    preferred_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="new")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClientMessage(Base):
    """One message of a client's thread with the business (CONTRACT section 14): `in` from the
    client (portal, SMS), `out` from staff (API, console). `author` is an actor as the audit
    trail writes it (`client`, `sms:<phone>`, `api`, `staff:<email>`); `dedupe_key` makes a
    repeated submission (a double click, Twilio delivering one SMS twice) record it once."""

    __tablename__ = "client_messages"
    __table_args__ = (
        Index("ix_client_messages_client_id_id", "client_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    author: Mapped[str] = mapped_column(String(400))
    body: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(10))  # portal | sms | api | console
    dedupe_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClientContact(Base):
    """Contact details a client keeps current from the portal (one row per client)."""

    __tablename__ = "client_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), unique=True)
    address: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SigningLink(Base):
    """An extra, short-lived signing token minted from the portal for one approver (the
    emailed link keeps working: only its hash is stored, so it cannot be re-sent).

    The client and portal session it was minted from go into the evidence of a decision
    made through it; rows without a client predate that and no longer open anything."""

    __tablename__ = "signing_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    approver_id: Mapped[int] = mapped_column(ForeignKey("approvers.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    portal_session_id: Mapped[int | None] = mapped_column(ForeignKey("portal_sessions.id"))


class ShareLink(Base):
    """A no-sign-in link to one document, made by the client from the portal."""

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Invoice(Base):
    """An invoice with its rendered PDF; `paid_cents` mirrors the succeeded payments."""

    __tablename__ = "invoices"
    # Ids name workflows (`invoice-{id}`): never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    approval_id: Mapped[int | None] = mapped_column(ForeignKey("approvals.id"), index=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    number: Mapped[str] = mapped_column(String(60), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    issued_on: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    line_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    tax_rate_percent: Mapped[str | None] = mapped_column(String(12))  # decimal text
    subtotal_cents: Mapped[int] = mapped_column(BigInteger)
    tax_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    # Retainage (CONTRACT §12, portico/ledger.py): held back of the total until the project's
    # release invoice bills it; status held | released, NULL when nothing is held.
    retainage_percent: Mapped[str | None] = mapped_column(String(12))  # decimal text
    retainage_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    retainage_status: Mapped[str | None] = mapped_column(String(20))
    # the release invoice that billed this invoice's retainage
    retainage_released_by: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    remind_every_days: Mapped[int | None] = mapped_column(Integer)
    pdf_path: Mapped[str] = mapped_column(String(500))
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    pay_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pay_nonce: Mapped[str] = mapped_column(String(40))
    workflow_id: Mapped[str] = mapped_column(String(80), unique=True)
    lock_version: Mapped[int] = mapped_column(Integer, default=0)  # bumped to lock the row
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    void_reason: Mapped[str | None] = mapped_column(Text)

    project: Mapped[Project] = relationship(lazy="raise_on_sql")


class Payment(Base):
    """Money towards an invoice: manual (check, cash, bank transfer) or through Stripe.

    `amount_cents` is what was paid; refunds and a lost dispute (chargeback) are recorded
    beside it (`refunded_cents`, `disputed_cents` + `dispute_status`), and the invoice counts
    only what is left (`portico.ledger.counted_cents`)."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(30))  # card | us_bank_account | check | ...
    # pending | succeeded | failed | refunded (in full) | disputed (open) | dispute_lost
    status: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))  # stripe | manual
    reference: Mapped[str | None] = mapped_column(String(200))
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # the Checkout Session Portico created for it: one payment per checkout (and so per intent)
    stripe_checkout_id: Mapped[int | None] = mapped_column(
        ForeignKey("stripe_checkouts.id"), unique=True
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # cumulative, from the charge's `amount_refunded` (only ever grows)
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # the amount of the payment's Stripe dispute, and that dispute's Stripe status
    disputed_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    dispute_status: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # a manual payment's Idempotency-Key: a retried request books it once
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class StripeCheckout(Base):
    """A Checkout Session Portico asked Stripe for: what a payment event must match.

    `ref` goes into the session's and its PaymentIntent's metadata (`portico_checkout`), so
    events of either kind find it even before the session id is known here."""

    __tablename__ = "stripe_checkouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    ref: Mapped[str] = mapped_column(String(120), unique=True)
    session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    due_cents: Mapped[int] = mapped_column(BigInteger)  # what was due when it was created
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StripeEvent(Base):
    """Each Stripe webhook event applied once: inserted in the payment's own transaction.

    `outcome` says what became of it: applied, ignored (malformed or not Portico's, with
    `reason`) or flagged (it did not match what Portico asked for: staff review it)."""

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    invoice_id: Mapped[int | None] = mapped_column(Integer, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))


class OutboxMessage(Base):
    """An email or SMS a request promised, recorded in that request's own transaction and
    delivered by the `OutboxMessageWorkflow` (`message-{id}`), so a 2xx never loses it
    (CONTRACT section 8; docs/operations.md, "Outbox")."""

    __tablename__ = "outbox_messages"
    # Ids name workflows (`message-{id}`): never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))  # email | sms
    dedupe_key: Mapped[str] = mapped_column(String(200))
    # The EmailMessage / SmsMessage's fields (JSON); no raw secret: links are minted on delivery.
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A portal link to mint when delivering (portico.services.outbox.PortalLink's fields), or null.
    link: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # workflow started
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- staff console (docs/console.md) --------------------------------------------------------


class StaffMember(Base):
    """Someone of the office who signs in to the console; `email` is stored lower-case, so the
    unique constraint is case-insensitive. Removing a member deactivates the row: the audit
    trail names them as `staff:<email>`."""

    __tablename__ = "staff_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10), default="staff")  # admin | staff
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffSignInLink(Base):
    """A single-use console sign-in link; only the token's hash is stored."""

    __tablename__ = "staff_sign_in_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_members.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffSession(Base):
    """A signed-in console browser; the cookie holds a random id, the table only its hash."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_members.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))


class PaymentAnnouncement(Base):
    """What a committed payment change must announce, written in the change's own transaction
    and handed to the invoice's workflow (`invoice-{id}`), whose `announce_payments` activity
    appends `data` to the invoice's audit chain, sends `messages` (send_email dedupe keys) and
    sets `announced_at`. A row still unannounced is handed off again by a retry (a Stripe
    redelivery, the same Idempotency-Key), by the invoice's next announcement, or by the
    worker's sweep of rows never handed off (portico/services/billing/announcements.py)."""

    __tablename__ = "payment_announcements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None: a flagged Stripe event naming no invoice (staff notice only, no chain)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)  # e.g. stripe-event:evt_...
    type: Mapped[str] = mapped_column(String(40))  # the audit event's type
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the audit event's data
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # EmailMessage fields
    # given to its workflow (signal-with-start); the worker's sweep hands off rows still NULL
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InvoiceAuditEvent(ChainLink, Base):
    """One link of an invoice's append-only hash chain: its payments, refunds, disputes and
    flagged Stripe events, appended only by the `announce_payments` activity."""

    __tablename__ = "invoice_audit_events"
    __table_args__ = (
        UniqueConstraint("invoice_id", "seq"),
        UniqueConstraint("invoice_id", "event_key"),
    )

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)


# --- outbound webhooks (CONTRACT section 11; docs/integrations.md) --------------------------


class WebhookEndpoint(Base):
    """A receiver of Portico's events. Its signing secret is kept encrypted with a key derived
    from PORTICO_SECRET_KEY (portico.services.webhooks.seal): it must be recoverable to sign,
    and is never shown again after creation. Deleting an endpoint sets `deleted_at`: nothing
    more is sent."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)  # event types, or ["*"]
    description: Mapped[str | None] = mapped_column(String(500))
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEvent(Base):
    """Something that happened, recorded in the transaction that made it happen (the outbox
    of webhooks). `public_id` is the `webhook-id` every delivery of it carries; `key` makes
    recording it twice (a retried activity) a no-op."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint, delivered by `WebhookDeliveryWorkflow` (`webhook-{id}`;
    `webhook-{id}-{round}` for a retry asked for by staff)."""

    __tablename__ = "webhook_deliveries"
    # Ids name workflows (`webhook-{id}`): never reuse one.
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_status_handed_off_at", "status", "handed_off_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|delivered|failed
    round: Mapped[int] = mapped_column(Integer, default=0)  # bumped by each manual retry
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_response: Mapped[str | None] = mapped_column(Text)  # at most 1 KiB of the answer
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # workflow started
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- service agreements (CONTRACT section 13; docs/agreements.md) -------------------------


class Agreement(Base):
    """A service agreement (quarterly maintenance, monthly lawn care...): a schedule of visits
    that `AgreementWorkflow` (`agreement-{id}`) books, reminds and counts. The workflow is the
    truth while it runs; this row and its visits are the read model its activities write."""

    __tablename__ = "agreements"
    # Ids name workflows (`agreement-{id}`): never reuse one.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    every: Mapped[str] = mapped_column(String(10))  # week | month | quarter | year
    starts_on: Mapped[date] = mapped_column(Date)
    visits_total: Mapped[int] = mapped_column(Integer)
    visits_done: Mapped[int] = mapped_column(Integer, default=0)
    remind_days_before: Mapped[int] = mapped_column(Integer, default=2)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active|completed|cancelled
    workflow_id: Mapped[str] = mapped_column(String(80))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgreementVisit(Base):
    """Visit `n` (1-based) of an agreement: its date, status (scheduled | booked | done |
    cancelled) and the `job` booking the workflow made for it."""

    __tablename__ = "agreement_visits"
    __table_args__ = (UniqueConstraint("agreement_id", "n"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"), index=True)
    n: Mapped[int] = mapped_column(Integer)
    date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), unique=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
