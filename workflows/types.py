"""Inputs, results and messages of the workflows: single dataclasses, safe to evolve by adding
fields with defaults (histories of running approvals must keep decoding)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

ROUTINGS = ("sequential", "any", "all")
MAX_APPROVERS = 5
MAX_EXPIRY_DAYS = 180

# Approval statuses (CONTRACT section 3)
PENDING = "pending"
PARTIALLY_APPROVED = "partially_approved"
APPROVED = "approved"
DECLINED = "declined"
EXPIRED = "expired"
VOID = "void"
FINAL_STATUSES = (APPROVED, DECLINED, EXPIRED, VOID)

# Approver statuses
WAITING = "waiting"
VIEWED = "viewed"
SKIPPED = "skipped"
ACTIVE_APPROVER_STATUSES = (PENDING, VIEWED)

# Stand-ins for an approver's secrets in messages composed by the workflow: the notify
# activity replaces them with the signing link and reply code (CONTRACT section 8).
SIGN_URL = "{sign_url}"
SMS_CODE = "{sms_code}"

# What services and transports call the workflows by (they never import workflow code):
# workflow types, and the update / signal / query names of their handlers.
APPROVAL_WORKFLOW = "ApprovalWorkflow"
INVOICE_WORKFLOW = "InvoiceWorkflow"
PAYMENT_REVIEW_WORKFLOW = "PaymentReviewWorkflow"
INVOICE_ANNOUNCE = "announce"  # signal: a committed payment change to announce
OUTBOX_WORKFLOW = "OutboxMessageWorkflow"
APPROVE = "approve"  # update, ApproveRequest -> DecisionResult
DECLINE = "decline"  # update, DeclineRequest -> DecisionResult
VOID_UPDATE = "void"  # update, VoidRequest -> ApprovalState
EXTEND = "extend"  # update, ExtendRequest -> ApprovalState
REMIND = "remind"  # update, RemindRequest -> ApprovalState
VIEWED_SIGNAL = "viewed"  # signal, ViewedSignal
SUPERSEDED_SIGNAL = "superseded"  # signal, Supersession: a newer version replaced the document
SUPERSEDE_WORKFLOW = "SupersedeWorkflow"  # records a Supersession on a request that has ended
APPEND_AUDIT_EVENT = "append_audit_event"  # activity, AuditAppend
INVOICE_PAID = "paid"  # signal of InvoiceWorkflow
INVOICE_VOID = "void"  # signal of InvoiceWorkflow

# Activities the outbox workflow runs (named by string, registered by the worker).
DELIVER_OUTBOX = "deliver_outbox_message"
FINISH_OUTBOX = "finish_outbox_message"

# Business errors of ApprovalWorkflow (ApplicationError types): never retried, shown to the
# user as they are.
NOT_YOUR_TURN = "NotYourTurn"
ALREADY_DECIDED = "AlreadyDecided"
REQUEST_CLOSED = "RequestClosed"
REQUEST_EXPIRED = "RequestExpired"
UNKNOWN_APPROVER = "UnknownApprover"
REASON_REQUIRED = "ReasonRequired"
CONSENT_REQUIRED = "ConsentRequired"
SIGNATURE_REQUIRED = "SignatureRequired"
INVALID_DAYS = "InvalidDays"
NO_EXPIRY = "NoExpiry"

LINK_GRACE = timedelta(days=90)  # a signing link keeps working this long after the request ends


def approval_workflow_id(approval_id: int) -> str:
    return f"approval-{approval_id}"


def supersede_workflow_id(approval_id: int, document_id: int) -> str:
    """The short workflow that records, once, that `document_id` superseded an ended request."""
    return f"supersede-{approval_id}-{document_id}"


def outbox_workflow_id(outbox_id: int) -> str:
    return f"message-{outbox_id}"


@dataclass
class DocumentInfo:
    id: int
    kind: str
    title: str
    number: str
    amount_cents: int | None = None
    currency: str = "USD"
    client_name: str = ""
    project_name: str = ""


@dataclass
class ApproverInput:
    id: int
    name: str
    email: str | None = None
    phone: str | None = None
    # Only in requests started before links were derived (tokens.signing_token): new ones leave
    # them empty and the notify activity looks both up by approver id.
    sign_url: str = ""
    sms_code: str = ""


@dataclass
class StaffContact:
    email: str | None = None
    phone: str | None = None


@dataclass
class ApprovalInput:
    approval_id: int
    document: DocumentInfo
    approvers: list[ApproverInput]
    routing: str
    created_at: datetime
    expires_in_days: int | None = None
    remind_every_days: int | None = None
    message: str | None = None
    channels: list[str] = field(default_factory=lambda: ["email", "sms"])
    division: str | None = None
    notify_staff: list[StaffContact] = field(default_factory=list)
    company_name: str = "Portico"
    # Task queue of the rate-limited SMS worker; "" (older histories) = the workflow's own queue.
    sms_task_queue: str = ""
    # Branding for the emails (absolute logo URL, the division's if it has one; hex accent).
    logo_url: str | None = None
    accent: str | None = None
    # Who sent it, as the audit trail names staff actors (CONTRACT section 9); older histories
    # (no field) said "staff".
    created_by: str = "staff"
    # The API wrote the `created` audit event (seq 1, `created_event`) with the request's rows,
    # so the workflow's first task goes straight to the request; older histories (no field)
    # and direct starts have the workflow write it.
    created_recorded: bool = False
    # A request's first email records its `sent` event itself once it is out (one activity and
    # one workflow task fewer per approver); runs started without it sync `sent` afterwards.
    sent_with_email: bool = False
    # `approve` and `decline` answer in the workflow task that applies them, with the
    # decision's snapshot (DecisionResult.record) for the web to write before its 303; the
    # workflow syncs it as its next write. Runs started without it answer after that sync.
    decisions_answered_first: bool = False
    # `build_signed_pdf` is given the `signed_pdf` snapshot and writes it with the PDF's facts
    # (one sync and one workflow task fewer per approved request); runs started without it
    # sync the event after the build.
    signed_pdf_with_event: bool = False
    # A run continues as new past this many history events (a daily reminder adds ~11 with
    # email, ~17 with SMS: 180 days would be ~3 000), handing its state on in `carried`, so a
    # replay after an eviction walks at most about this many.
    history_limit: int = 500
    carried: ApprovalCarry | None = None

    def first_expiry(self) -> datetime | None:
        """When the request expires unless extended (None: never)."""
        if not self.expires_in_days:
            return None
        return self.created_at + timedelta(days=self.expires_in_days)


@dataclass
class ApprovalCarry:
    """What a run of ApprovalWorkflow hands to its continuation: the state its input does not
    give. Taken when nothing is queued, sending or running (see ApprovalWorkflow)."""

    status: str
    records: list[ApproverRecord]
    expires_at: datetime | None
    next_reminder_at: datetime | None
    warned_for: datetime | None
    seq: int
    viewed: list[int] = field(default_factory=list)
    superseded_by: list[int] = field(default_factory=list)


def created_event(inp: ApprovalInput) -> AuditEventInput:
    """A request's first audit event, as whoever records it writes it (event key seq 1)."""
    expires_at = inp.first_expiry()
    return AuditEventInput(
        event_key=f"{approval_workflow_id(inp.approval_id)}:1",
        at=inp.created_at,
        type="created",
        actor=inp.created_by,
        data={
            "routing": inp.routing,
            "document_sha256": None,
            "approvers": [a.name for a in inp.approvers],
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )


@dataclass
class ApproverState:
    id: int
    name: str
    status: str
    signed_at: datetime | None = None
    notes: str | None = None
    decline_reason: str | None = None
    notified_at: datetime | None = None


@dataclass
class ApprovalState:
    """What the `status` query returns and what the read model mirrors."""

    approval_id: int
    status: str
    routing: str
    expires_at: datetime | None
    approvers: list[ApproverState]
    void_reason: str | None = None


@dataclass
class Evidence:
    """How a decision was made: the trail a certificate page and a dispute rely on."""

    channel: str = "web"  # web | sms
    ip: str | None = None
    user_agent: str | None = None
    phone: str | None = None
    message_sid: str | None = None
    text: str | None = None
    # Set when the signing page was opened from a client portal session: which client, and
    # which session (the portal_sessions row id, never the cookie).
    portal_client_id: int | None = None
    portal_session_id: int | None = None


@dataclass
class ApproveRequest:
    approver_id: int
    signature_name: str | None = None
    signature_image: str | None = None  # stored path of the drawn PNG
    notes: str | None = None
    consent: bool = False
    evidence: Evidence = field(default_factory=Evidence)
    uploaded_pdf: str | None = None  # stored path of a PDF the client signed elsewhere


@dataclass
class DeclineRequest:
    approver_id: int
    reason: str
    evidence: Evidence = field(default_factory=Evidence)


@dataclass
class ViewedSignal:
    approver_id: int
    evidence: Evidence = field(default_factory=Evidence)


@dataclass
class VoidRequest:
    reason: str | None = None
    notify_client: bool = False
    actor: str = "staff"


@dataclass
class ExtendRequest:
    days: int
    actor: str = "staff"


@dataclass
class RemindRequest:
    extend_days: int | None = None
    actor: str = "staff"


@dataclass
class DecisionResult:
    approval_status: str
    approver_status: str
    # The decision's snapshot, not yet in SQL when the update answers: the web writes it
    # before its 303 (the workflow's own sync_approval of it follows; whichever is second
    # changes nothing). None from runs started without `decisions_answered_first`, whose
    # update answers after its sync.
    record: SyncApprovalInput | None = None


# --- activity payloads -------------------------------------------------------------------


@dataclass
class AuditEventInput:
    event_key: str
    at: datetime
    type: str
    actor: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ApproverRecord:
    """The read-model fields of one approver that the workflow owns."""

    id: int
    status: str
    notified_at: datetime | None = None
    signed_at: datetime | None = None
    notes: str | None = None
    decline_reason: str | None = None
    signature_name: str | None = None
    signature_image: str | None = None
    uploaded_pdf: str | None = None
    consent: bool | None = None
    decided_via: str | None = None
    decided_ip: str | None = None
    decided_user_agent: str | None = None


@dataclass
class SyncApprovalInput:
    """A snapshot of the workflow's state plus at most one audit event: safe to apply twice."""

    approval_id: int
    status: str
    expires_at: datetime | None
    approvers: list[ApproverRecord]
    event: AuditEventInput | None = None
    void_reason: str | None = None
    completed_at: datetime | None = None
    token_expires_at: datetime | None = None

    def sent_at(self, approver_id: int | None, at: datetime) -> SyncApprovalInput:
        """This `sent` snapshot as of the moment its email went out (EmailMessage.record_sent)."""
        approvers = [
            dataclasses.replace(a, notified_at=at) if a.id == approver_id else a
            for a in self.approvers
        ]
        event = dataclasses.replace(self.event, at=at) if self.event else None
        return dataclasses.replace(self, approvers=approvers, event=event)


@dataclass
class Supersession:
    """Document `document_id` (version `version`) replaced the document of an approved
    request: the `superseded` audit event to record, whether its workflow runs or has ended."""

    approval_id: int
    document_id: int
    version: int
    sha256: str
    reason: str
    actor: str = "staff"

    def event(self, at: datetime) -> AuditEventInput:
        """The audit event; its key is the same on both paths, so it is appended once."""
        return AuditEventInput(
            event_key=f"superseded:{self.document_id}",
            at=at,
            type="superseded",
            actor=self.actor,
            data={
                "reason": self.reason,
                "document_id": self.document_id,
                "version": self.version,
                "sha256": self.sha256,
            },
        )


@dataclass
class AuditAppend:
    """One audit event for an approval's chain, appended unless its key is there already."""

    approval_id: int
    event: AuditEventInput


@dataclass
class EmailMessage:
    dedupe_key: str
    to: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    attach_signed_pdf_of: int | None = None  # approval id
    # To an approver: the activity fills in their `{sign_url}` / `{sms_code}` placeholders.
    approver_id: int | None = None
    # The reader's language and time zone (CONTRACT section 10), when the sender knows them;
    # None: the approver's (by approver_id), else PORTICO_DEFAULT_LOCALE / _TIMEZONE. Staff
    # templates (`staff_*`) are English.
    locale: str | None = None
    timezone: str | None = None
    # A request's first email: once it is out, the activity writes this snapshot (its `sent`
    # audit event) with the approver's `notified_at` and the event's time set to when it went
    # out, and returns that time. None: nothing to record (the activity returns None).
    record_sent: SyncApprovalInput | None = None


@dataclass
class SmsMessage:
    dedupe_key: str
    to: str
    body: str
    urgent: bool = True  # reminders are not urgent: they respect quiet hours
    approver_id: int | None = None  # as in EmailMessage
    # Set by newer workflows: the activity writes the text from `sms/<template>.txt` in the
    # reader's language with `context` (as an email's); `body` is then its English fallback.
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    locale: str | None = None  # as in EmailMessage


@dataclass
class SignedPdfResult:
    path: str
    sha256: str
    pages: int
    # The PAdES signature (CONTRACT section 15); defaults for results recorded before it.
    certificate_sha256: str = ""
    timestamped: bool = False
    timestamp_error: str | None = None  # PORTICO_TSA_URL is set but the timestamp is missing

    def event_data(self) -> dict[str, Any]:
        """The `signed_pdf` audit event's data."""
        data: dict[str, Any] = {"sha256": self.sha256, "pages": self.pages}
        if self.certificate_sha256:
            data["certificate_sha256"] = self.certificate_sha256
            data["timestamped"] = self.timestamped
        return data


# --- InvoiceWorkflow ---------------------------------------------------------------------


@dataclass
class InvoiceInput:
    invoice_id: int
    number: str
    due_at: datetime  # the moment the invoice becomes overdue (the day after its due date)
    remind_every_days: int | None = 7
    notify_client: bool = True
    reminders_sent: int = 0  # carried over a continue-as-new
    issued_sent: bool = False
    # carried over a continue-as-new (runs on the durable-payments path)
    status: str = "open"  # the invoice's status as last seen in SQL
    paid_at: datetime | None = None  # when this workflow first saw it paid
    pending: list[int] = field(default_factory=list)  # payment announcements not yet made
    # the activity announces all of an invoice's rows up to the one asked: those are done
    announced_upto: int = 0
    # started by a payment hand-off after an earlier run had ended: reminders whose time
    # passed meanwhile are not sent late
    resumed: bool = False


@dataclass
class InvoiceNotice:
    """Ask the activity to email the client about the invoice (issued or overdue reminder)."""

    invoice_id: int
    kind: str  # issued | reminder
    seq: int = 0


@dataclass
class InvoiceState:
    invoice_id: int
    status: str  # open | settled status seen last (paid | void)
    reminders_sent: int
    next_reminder_at: datetime | None


# --- OutboxMessageWorkflow ---------------------------------------------------------------


@dataclass
class OutboxDelivery:
    """Deliver outbox row `outbox_id` (workflow `message-{outbox_id}`): the message itself stays
    in SQL, so nothing it carries (addresses, links) enters the history. Failing attempts are
    retried from `retry_initial`, doubling up to `retry_maximum`, for `give_up_after`."""

    outbox_id: int
    channel: str = "email"  # email | sms
    sms_task_queue: str = ""  # the rate-limited queue an SMS is sent from ("": the main one)
    retry_initial: timedelta = timedelta(seconds=5)
    retry_maximum: timedelta = timedelta(minutes=10)
    give_up_after: timedelta = timedelta(days=3)


@dataclass
class OutboxOutcome:
    outbox_id: int
    status: str  # delivered | failed
    error: str | None = None


@dataclass
class PaymentAnnounced:
    """Signal to `invoice-{id}`: a payment change was committed with announcement row
    `announcement_id` (portico.models.PaymentAnnouncement)."""

    announcement_id: int


@dataclass
class AnnouncePayments:
    """Ask the activity to announce the invoice's committed payment changes, up to and
    including `announcement_id` (only that one when `invoice_id` is None)."""

    invoice_id: int | None
    announcement_id: int


@dataclass
class AnnounceResult:
    status: str  # the invoice's status in SQL afterwards ("" when there is no invoice)


# --- WebhookDeliveryWorkflow ------------------------------------------------------------

WEBHOOK_WORKFLOW = "WebhookDeliveryWorkflow"
DELIVER_WEBHOOK = "deliver_webhook"
FINISH_WEBHOOK = "finish_webhook"
# Retrying would not help: the endpoint was deleted, the receiver's address is refused.
WEBHOOK_NON_RETRYABLE = ("EndpointGone", "UnknownDelivery", "RefusedReceiver")


@dataclass(frozen=True)
class WebhookDeliveryInput:
    delivery_id: int
    task_queue: str  # the webhook task queue the attempts run on
    attempt_timeout: timedelta = timedelta(seconds=10)
    retry_initial: timedelta = timedelta(seconds=5)
    retry_maximum: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=3)


@dataclass(frozen=True)
class WebhookOutcome:
    delivery_id: int
    status: str  # delivered | failed
    error: str | None = None


def webhook_workflow_id(delivery_id: int, round: int = 0) -> str:
    return f"webhook-{delivery_id}" if round == 0 else f"webhook-{delivery_id}-{round}"


# --- AgreementWorkflow (service agreements, CONTRACT section 13) -------------------------

AGREEMENT_WORKFLOW = "AgreementWorkflow"
AGREEMENT_VISIT_DONE = "visit_done"  # signal, VisitDone
AGREEMENT_CANCEL = "cancel"  # update, CancelAgreement -> AgreementState
AGREEMENT_MOVE_VISIT = "move_visit"  # update, MoveVisit -> AgreementState
AGREEMENT_CHANGE_REMINDER = "change_reminder"  # update, ChangeReminder -> AgreementState
AGREEMENT_STATE = "state"  # query -> AgreementState
# Activities it runs (registered by the worker, activities/agreements.py)
SYNC_AGREEMENT = "sync_agreement"
BOOK_AGREEMENT_VISIT = "book_agreement_visit"
AGREEMENT_CONTACT = "agreement_contact"

AGREEMENT_EVERY = ("week", "month", "quarter", "year")
MAX_AGREEMENT_VISITS = 120
MAX_REMIND_DAYS = 30
# Agreement statuses
AGREEMENT_ACTIVE = "active"
AGREEMENT_COMPLETED = "completed"
AGREEMENT_CANCELLED = "cancelled"
# Visit statuses
VISIT_SCHEDULED = "scheduled"  # not booked yet
VISIT_BOOKED = "booked"  # its `job` booking exists
VISIT_DONE = "done"  # its booking was completed
VISIT_CANCELLED = "cancelled"  # the agreement was cancelled before it
# Business errors of the agreement's updates (ApplicationError types)
AGREEMENT_CLOSED = "AgreementClosed"
UNKNOWN_VISIT = "UnknownVisit"
VISIT_ALREADY_DONE = "VisitAlreadyDone"
INVALID_VISIT_DATE = "InvalidVisitDate"
INVALID_REMINDER = "InvalidReminder"


def agreement_workflow_id(agreement_id: int) -> str:
    return f"agreement-{agreement_id}"


@dataclass
class VisitState:
    n: int  # 1-based
    date: dt.date
    status: str = VISIT_SCHEDULED
    booking_id: int | None = None
    reminded_for: dt.date | None = None  # the visit date its reminder went out for
    done_at: datetime | None = None


# The business's morning (local hour): when an agreement's bookings and reminders are due.
MORNING_HOUR = 9


@dataclass
class AgreementInput:
    """Start (or continue-as-new) of `agreement-{id}`: the schedule and, after a
    continue-as-new, everything the previous run had learned."""

    agreement_id: int
    client_id: int
    title: str
    every: str
    visits: list[VisitState]
    remind_days_before: int = 2
    book_ahead_days: int = 14
    # When in a (UTC) day bookings and reminders are due: minutes after midnight UTC of the
    # business's morning (09:00 in PORTICO_DEFAULT_TIMEZONE when the agreement was made).
    day_starts_minutes: int = MORNING_HOUR * 60
    company_name: str = "Portico"
    sms_task_queue: str = ""
    created_by: str = "api"
    # continue-as-new past this many history events (or when Temporal suggests it)
    history_limit: int = 2000
    # carried over a continue-as-new
    status: str = AGREEMENT_ACTIVE
    cancel_reason: str | None = None
    continued: bool = False


@dataclass
class VisitDone:
    """Signal: staff completed the booking of visit `n`."""

    n: int
    booking_id: int | None = None


@dataclass
class CancelAgreement:
    reason: str | None = None
    actor: str = "api"


@dataclass
class MoveVisit:
    n: int
    date: dt.date
    actor: str = "api"


@dataclass
class ChangeReminder:
    days: int
    actor: str = "api"


@dataclass
class AgreementState:
    agreement_id: int
    status: str
    remind_days_before: int
    visits: list[VisitState]
    visits_done: int
    visits_total: int
    next_visit: dt.date | None = None
    cancel_reason: str | None = None


@dataclass
class BookVisit:
    """Ask the activity for visit `n`'s `job` booking (made once; its id is returned)."""

    agreement_id: int
    n: int
    date: dt.date


@dataclass
class SyncAgreement:
    """A snapshot of the workflow's state for the read model: safe to apply twice."""

    agreement_id: int
    status: str
    remind_days_before: int
    visits: list[VisitState]
    cancel_reason: str | None = None
    ended_at: datetime | None = None


@dataclass
class AgreementContact:
    """Where the client is reminded (read when a reminder is due, so changes count)."""

    name: str
    email: str | None = None
    phone: str | None = None
    locale: str | None = None  # the client's language and zone (None in older histories)
    timezone: str | None = None
