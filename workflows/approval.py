"""ApprovalWorkflow: one durable approval request (workflow id `approval-{id}`).

The workflow is the truth while a request is open. Client decisions arrive as updates with
validators, so the signing page gets an immediate, validated answer; staff actions are updates
too (so the API can answer 409 when a request is closed); `viewed` is a signal and `status` a
query. Every side effect (read model, audit event, email, SMS, signed PDF) is an activity.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeout

from workflows import messages
from workflows import search_attributes as sa
from workflows.types import (
    ACTIVE_APPROVER_STATUSES,
    ALREADY_DECIDED,
    APPEND_AUDIT_EVENT,
    APPROVAL_WORKFLOW,
    APPROVED,
    CONSENT_REQUIRED,
    DECLINED,
    EXPIRED,
    FINAL_STATUSES,
    INVALID_DAYS,
    LINK_GRACE,
    MAX_APPROVERS,
    MAX_EXPIRY_DAYS,
    NO_EXPIRY,
    NOT_YOUR_TURN,
    PARTIALLY_APPROVED,
    PENDING,
    REASON_REQUIRED,
    REQUEST_CLOSED,
    REQUEST_EXPIRED,
    ROUTINGS,
    SIGNATURE_REQUIRED,
    SKIPPED,
    SUPERSEDED_SIGNAL,
    UNKNOWN_APPROVER,
    VIEWED,
    VOID,
    WAITING,
    ApprovalCarry,
    ApprovalInput,
    ApprovalState,
    ApproveRequest,
    ApproverInput,
    ApproverRecord,
    ApproverState,
    AuditAppend,
    AuditEventInput,
    DecisionResult,
    DeclineRequest,
    EmailMessage,
    Evidence,
    ExtendRequest,
    RemindRequest,
    SignedPdfResult,
    SmsMessage,
    Supersession,
    SyncApprovalInput,
    ViewedSignal,
    VoidRequest,
    created_event,
)

RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["InvalidRecipient", "OptedOut"],
)
# An SMS may wait out the recipient's quiet hours (the activity asks Temporal to retry in the
# morning), so its window must span a night plus the throttled queue.
SMS_SEND_WINDOW = timedelta(days=2)
QUIET_SMS_PATCH = "non-urgent-sms-in-background"
# An approver's SMS names its template and facts, so the notify activity writes it in the
# approver's language (CONTRACT section 10); runs before it send the English `body` only.
LOCALIZED_SMS_PATCH = "localized-approver-sms"
# A request or reminder queued before a decision, skip or void is dropped, not sent.
STALE_PROMPT_PATCH = "skip-stale-prompts"
PROMPTS = ("request", "reminder", "expiry_warning")
# A long-lived request (daily reminders for months) continues as new past
# `ApprovalInput.history_limit` events, so a replay after an eviction stays short.
CONTINUE_PATCH = "continue-as-new-when-long"
# The signed PDF is built in bounded attempts (a hostile or broken document must not retry
# forever with the request `approved` and no evidence); when it fails staff are told.
BOUNDED_SIGNED_PDF_PATCH = "bounded-signed-pdf"
# The signed PDF is digitally signed; when the timestamp authority stayed down it was signed
# without a timestamp, and the audit trail says so.
UNTIMESTAMPED_PATCH = "signed-pdf-without-timestamp-note"
SIGNED_PDF_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=3,
    non_retryable_error_types=["InvalidPdf", "NotFound", "NotApproved"],
)
EXPIRY_WARNING_BEFORE = timedelta(days=1)
# A `superseded` signal can arrive while the request finishes (signed PDF, copies): the run
# waits for its handler before returning instead of ending with it unhandled.
SUPERSEDED_PATCH = "superseded-signal"


def _error(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def _failure_reason(err: ActivityError) -> str:
    """Why an activity failed for good, as a sentence (not the SDK's wrapper text)."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, ActivityTimeout):
        return "it did not finish in time"
    return str(cause or err)


@workflow.defn(name=APPROVAL_WORKFLOW)
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, inp: ApprovalInput) -> None:
        self._inp = inp
        self._lock = asyncio.Lock()
        self._status = PENDING
        # The first approvers are pending from the start, so an update or signal delivered in
        # the workflow's very first task (before `run` has begun) already sees their turn.
        first = {a.id for a in self._first_approvers(inp)}
        self._records: dict[int, ApproverRecord] = {
            a.id: ApproverRecord(id=a.id, status=PENDING if a.id in first else WAITING)
            for a in inp.approvers
        }
        self._expires_at: datetime | None = inp.first_expiry()
        self._next_reminder_at: datetime | None = (
            inp.created_at + timedelta(days=inp.remind_every_days)
            if inp.remind_every_days
            else None
        )
        self._warned_for: datetime | None = None
        self._seq = 0
        self._todo: list[tuple[str, dict[str, Any]]] = []
        # Decisions answered before their sync (`decisions_answered_first`), synced first.
        self._unsynced: list[SyncApprovalInput] = []
        self._viewed: set[int] = set()
        self._void_reason: str | None = None
        self._later_sms: dict[asyncio.Task[None], int] = {}  # held-back SMS -> approver id
        self._started = False  # `run` has begun (handlers wait for it, see _exclusive)
        self._superseded_by: set[int] = set()  # documents whose `superseded` is recorded
        if inp.carried is not None:  # a continuation: the state as the last run left it
            self._restore(inp.carried)

    # --- run --------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ApprovalInput) -> ApprovalState:
        self._check_input(inp)
        async with self._lock:
            self._started = True
            if inp.carried is None:
                if inp.created_recorded:
                    self._seq += 1  # the API wrote `created` (seq 1) with the request's rows
                else:
                    await self._sync("created", inp.created_by, created_event(inp).data)
                for approver in self._first_approvers(inp):
                    self._todo.append(("request", {"approver_id": approver.id}))

        while True:
            await self._wait_for_work()
            if self._may_continue():  # the continuation fires what is due now
                workflow.continue_as_new(self._carried_over())
            async with self._lock:
                await self._drain_todo()
                if self._status in FINAL_STATUSES:
                    break
                await self._fire_due_timers()

        await workflow.wait_condition(workflow.all_handlers_finished)
        async with self._lock:
            await self._drain_todo()
            await self._finish()
        if self._later_sms:  # all cancelled by now (see _drop_stale_sms); let them settle
            await asyncio.gather(*list(self._later_sms), return_exceptions=True)
        if workflow.patched(SUPERSEDED_PATCH):
            await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    def _may_continue(self) -> bool:
        """Continue as new once the history is long, at a moment nothing is in flight: no
        queued work, no held-back SMS, no handler running (an update would be lost)."""
        if self._todo or self._unsynced or self._later_sms or self._status in FINAL_STATUSES:
            return False
        info = workflow.info()
        long = (
            info.get_current_history_length() > self._inp.history_limit
            or info.is_continue_as_new_suggested()
        )
        # patched() last: its marker is written only by a run that does continue
        return long and workflow.all_handlers_finished() and workflow.patched(CONTINUE_PATCH)

    def _carried_over(self) -> ApprovalInput:
        carry = ApprovalCarry(
            status=self._status,
            records=list(self._records.values()),
            expires_at=self._expires_at,
            next_reminder_at=self._next_reminder_at,
            warned_for=self._warned_for,
            seq=self._seq,
            viewed=sorted(self._viewed),
            superseded_by=sorted(self._superseded_by),
        )
        return replace(self._inp, carried=carry)

    def _restore(self, carry: ApprovalCarry) -> None:
        self._status = carry.status
        self._records = {r.id: r for r in carry.records}
        self._expires_at = carry.expires_at
        self._next_reminder_at = carry.next_reminder_at
        self._warned_for = carry.warned_for
        self._seq = carry.seq
        self._viewed = set(carry.viewed)
        self._superseded_by = set(carry.superseded_by)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """The lock, once `run` has begun. Updates and signals delivered with the workflow's
        first task are applied before `run` starts: they wait, so the request is set up (and
        its `created` event written) before any decision or staff action."""
        await workflow.wait_condition(lambda: self._started)
        async with self._lock:
            yield

    @staticmethod
    def _first_approvers(inp: ApprovalInput) -> list[ApproverInput]:
        return inp.approvers[:1] if inp.routing == "sequential" else inp.approvers

    def _check_input(self, inp: ApprovalInput) -> None:
        if not 1 <= len(inp.approvers) <= MAX_APPROVERS:
            raise _error(f"1 to {MAX_APPROVERS} approvers are allowed.", "InvalidInput")
        if inp.routing not in ROUTINGS:
            raise _error(f"Unknown routing {inp.routing!r}.", "InvalidInput")
        if inp.expires_in_days is not None and not 1 <= inp.expires_in_days <= MAX_EXPIRY_DAYS:
            raise _error("expires_in_days must be 1 to 180 or null.", "InvalidInput")

    async def _wait_for_work(self) -> None:
        deadline = self._next_deadline()
        condition = lambda: bool(self._todo or self._unsynced) or self._status in FINAL_STATUSES  # noqa: E731
        if deadline is None:
            await workflow.wait_condition(condition)
            return
        remaining = deadline - workflow.now()
        if remaining <= timedelta(0):
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(condition, timeout=remaining)

    def _next_deadline(self) -> datetime | None:
        candidates = [self._expires_at, self._next_reminder_at, self._warning_at()]
        due = [c for c in candidates if c is not None]
        return min(due) if due else None

    def _warning_at(self) -> datetime | None:
        """When to warn approvers that the link is about to expire (once per deadline)."""
        if self._expires_at is None or self._warned_for == self._expires_at:
            return None
        warn_at = self._expires_at - EXPIRY_WARNING_BEFORE
        if warn_at <= self._inp.created_at:
            return None
        return warn_at

    async def _fire_due_timers(self) -> None:
        now = workflow.now()
        if self._expires_at is not None and now >= self._expires_at:
            self._status = EXPIRED
            self._close_undecided()
            await self._sync("expired", "system", {"expires_at": self._iso(self._expires_at)})
            return
        warn_at = self._warning_at()
        if warn_at is not None and now >= warn_at:
            self._warned_for = self._expires_at
            self._queue_for_active("expiry_warning")
        if self._next_reminder_at is not None and now >= self._next_reminder_at:
            step = timedelta(days=self._inp.remind_every_days or 1)
            while self._next_reminder_at <= now:
                self._next_reminder_at += step
            self._queue_for_active("reminder")
        await self._drain_todo()

    # --- client decisions -------------------------------------------------------------------

    @workflow.update
    async def approve(self, req: ApproveRequest) -> DecisionResult:
        async with self._exclusive():
            self._validate_approve(req)  # state may have moved while waiting for the lock
            record = self._records[req.approver_id]
            record.status = APPROVED
            record.signed_at = workflow.now()
            record.notes = (req.notes or "").strip() or None
            record.signature_name = (req.signature_name or "").strip() or self._approver(
                req.approver_id
            ).name
            record.signature_image = req.signature_image
            record.uploaded_pdf = req.uploaded_pdf
            record.consent = req.consent
            self._set_evidence(record, req.evidence, "upload" if req.uploaded_pdf else None)
            activated, skipped = self._advance()
            snapshot = await self._decided(
                "approved",
                self._actor(req.approver_id),
                {
                    "notes": record.notes,
                    "signature_name": record.signature_name,
                    "signature_image": req.signature_image,
                    "uploaded_pdf": req.uploaded_pdf,
                    "consent": req.consent,
                    "evidence": asdict(req.evidence),
                },
            )
            for approver_id in activated:
                self._todo.append(("request", {"approver_id": approver_id}))
            for approver_id in skipped:
                self._todo.append(("no_longer_needed", {"approver_id": approver_id}))
            return DecisionResult(self._status, record.status, snapshot)

    @approve.validator
    def _validate_approve(self, req: ApproveRequest) -> None:
        self._check_can_decide(req.approver_id)
        # An uploaded signed PDF needs the same consent as typed signing. (Validators do not
        # run on replay, so this needs no patch.)
        if req.evidence.channel in ("web", "upload") and not req.consent:
            raise _error("Please agree to sign electronically before approving.", CONSENT_REQUIRED)
        if req.evidence.channel == "web" and not (req.signature_name or "").strip():
            raise _error("Please type your full name to sign.", SIGNATURE_REQUIRED)

    @workflow.update
    async def decline(self, req: DeclineRequest) -> DecisionResult:
        async with self._exclusive():
            self._validate_decline(req)
            record = self._records[req.approver_id]
            record.status = DECLINED
            record.signed_at = workflow.now()
            record.decline_reason = req.reason.strip()
            self._set_evidence(record, req.evidence, None)
            self._status = DECLINED
            self._close_undecided()
            snapshot = await self._decided(
                "declined",
                self._actor(req.approver_id),
                {"reason": record.decline_reason, "evidence": asdict(req.evidence)},
            )
            return DecisionResult(self._status, record.status, snapshot)

    @decline.validator
    def _validate_decline(self, req: DeclineRequest) -> None:
        self._check_can_decide(req.approver_id)
        if not (req.reason or "").strip():
            raise _error("Please give a reason for declining.", REASON_REQUIRED)

    @workflow.signal
    async def viewed(self, sig: ViewedSignal) -> None:
        async with self._exclusive():
            record = self._records.get(sig.approver_id)
            if record is None or self._status in FINAL_STATUSES:
                return
            first_time = sig.approver_id not in self._viewed
            self._viewed.add(sig.approver_id)
            if record.status == PENDING:
                record.status = VIEWED
            if first_time:
                await self._sync("viewed", self._actor(sig.approver_id), asdict(sig.evidence))
                self._todo.append(
                    ("staff", {"event": "first_open", "approver_id": sig.approver_id})
                )

    @workflow.signal(name=SUPERSEDED_SIGNAL)
    async def superseded(self, change: Supersession) -> None:
        """A newer version replaced the document (of an approved request, as staff send it):
        append `superseded` to the audit chain, once per document, in turn with the other
        events. A request that has already ended gets it from SupersedeWorkflow instead."""
        async with self._exclusive():
            if change.document_id in self._superseded_by:
                return
            self._superseded_by.add(change.document_id)
            await self._flush()
            await workflow.execute_activity(
                APPEND_AUDIT_EVENT,
                AuditAppend(self._inp.approval_id, change.event(workflow.now())),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RECORD_RETRY,
            )

    def _check_can_decide(self, approver_id: int) -> None:
        if approver_id not in self._records:
            raise _error("This link does not belong to this request.", UNKNOWN_APPROVER)
        if self._status in FINAL_STATUSES:
            raise self._closed_error()
        if self._expires_at is not None and workflow.now() >= self._expires_at:
            raise _error("This request has expired.", REQUEST_EXPIRED)
        status = self._records[approver_id].status
        if status in (APPROVED, DECLINED):
            raise _error(f"You have already {status} this request.", ALREADY_DECIDED)
        if status == WAITING:
            raise _error(
                "It is not your turn yet: earlier approvers must approve first.", NOT_YOUR_TURN
            )
        if status not in ACTIVE_APPROVER_STATUSES:
            raise self._closed_error()

    def _closed_error(self) -> ApplicationError:
        texts = {
            APPROVED: "This request has already been approved.",
            DECLINED: "This request has been declined.",
            EXPIRED: "This request has expired.",
            VOID: "This request was withdrawn by the sender.",
        }
        kind = REQUEST_EXPIRED if self._status == EXPIRED else REQUEST_CLOSED
        return _error(texts.get(self._status, "This request is closed."), kind)

    def _advance(self) -> tuple[list[int], list[int]]:
        """Apply routing after an approval; returns (newly activated, newly skipped) ids."""
        order = [a.id for a in self._inp.approvers]
        approved = [i for i in order if self._records[i].status == APPROVED]
        if self._inp.routing == "any" or len(approved) == len(order):
            self._status = APPROVED
            skipped = [i for i in order if self._records[i].status in ACTIVE_APPROVER_STATUSES]
            self._close_undecided()
            return [], skipped
        self._status = PARTIALLY_APPROVED
        if self._inp.routing == "sequential":
            nxt = next(i for i in order if self._records[i].status == WAITING)
            self._records[nxt].status = PENDING
            return [nxt], []
        return [], []

    def _close_undecided(self) -> None:
        for record in self._records.values():
            if record.status not in (APPROVED, DECLINED):
                record.status = SKIPPED

    # --- staff actions ----------------------------------------------------------------------

    @workflow.update
    async def void(self, req: VoidRequest) -> ApprovalState:
        async with self._exclusive():
            self._validate_open()
            notified = [i for i, r in self._records.items() if r.notified_at is not None]
            self._status = VOID
            self._void_reason = (req.reason or "").strip() or None
            self._close_undecided()
            await self._sync(
                "voided",
                req.actor,
                {"reason": self._void_reason, "notify_client": req.notify_client},
            )
            if req.notify_client:
                for approver_id in notified:
                    self._todo.append(("void_notice", {"approver_id": approver_id}))
            return self.status()

    @void.validator
    def _validate_void(self, req: VoidRequest) -> None:
        self._validate_open()

    @workflow.update
    async def extend(self, req: ExtendRequest) -> ApprovalState:
        async with self._exclusive():
            self._validate_extend(req)
            self._extend(req.days, req.actor)
            await self._sync(
                "extended", req.actor, {"days": req.days, "expires_at": self._iso(self._expires_at)}
            )
            return self.status()

    @extend.validator
    def _validate_extend(self, req: ExtendRequest) -> None:
        self._validate_open()
        if not 1 <= req.days <= MAX_EXPIRY_DAYS:
            raise _error(f"days must be 1 to {MAX_EXPIRY_DAYS}.", INVALID_DAYS)
        if self._expires_at is None:
            raise _error("This request never expires, so there is nothing to extend.", NO_EXPIRY)

    def _extend(self, days: int, actor: str) -> None:
        assert self._expires_at is not None
        self._expires_at = max(self._expires_at, workflow.now()) + timedelta(days=days)

    @workflow.update
    async def remind(self, req: RemindRequest) -> ApprovalState:
        async with self._exclusive():
            self._validate_remind(req)
            if req.extend_days:
                self._extend(req.extend_days, req.actor)
            await self._sync(
                "reminded",
                req.actor,
                {"extend_days": req.extend_days, "expires_at": self._iso(self._expires_at)},
            )
            self._queue_for_active("reminder")
            return self.status()

    @remind.validator
    def _validate_remind(self, req: RemindRequest) -> None:
        self._validate_open()
        if req.extend_days is not None:
            self._validate_extend(ExtendRequest(days=req.extend_days, actor=req.actor))

    def _validate_open(self) -> None:
        if self._status in FINAL_STATUSES:
            raise self._closed_error()

    @workflow.query
    def status(self) -> ApprovalState:
        approvers = [
            ApproverState(
                id=a.id,
                name=a.name,
                status=self._records[a.id].status,
                signed_at=self._records[a.id].signed_at,
                notes=self._records[a.id].notes,
                decline_reason=self._records[a.id].decline_reason,
                notified_at=self._records[a.id].notified_at,
            )
            for a in self._inp.approvers
        ]
        return ApprovalState(
            approval_id=self._inp.approval_id,
            status=self._status,
            routing=self._inp.routing,
            expires_at=self._expires_at,
            approvers=approvers,
            void_reason=self._void_reason,
        )

    # --- side effects -----------------------------------------------------------------------

    async def _decided(
        self, event_type: str, actor: str, data: dict[str, Any]
    ) -> SyncApprovalInput | None:
        """Record a client's decision. With `decisions_answered_first` (the input decides: no
        patch) the update answers at once with the snapshot, which the web writes before its
        303, and the sync is the run's next write. The answer is only seen once this task has
        committed, so the web never writes a state the workflow did not reach (unlike a local
        activity, docs/benchmarks.md)."""
        if not self._inp.decisions_answered_first:
            await self._sync(event_type, actor, data)
            return None
        await self._flush()  # an earlier decision's, first: the web writes in order too
        snapshot = self._snapshot(event_type, actor, data)
        self._unsynced.append(snapshot)
        return snapshot

    async def _flush(self) -> None:
        """Sync the decisions answered before their sync, in order, before any other write."""
        while self._unsynced:
            await self._run_sync(self._unsynced[0])
            self._unsynced.pop(0)

    async def _sync(self, event_type: str, actor: str, data: dict[str, Any]) -> None:
        """Mirror the state into SQL with one audit event, and keep search attributes current."""
        await self._flush()
        await self._run_sync(self._snapshot(event_type, actor, data))

    async def _run_sync(self, snapshot: SyncApprovalInput) -> None:
        # A regular activity, never a local one: a local activity writes SQL and the audit
        # chain before the workflow task commits, and a task that then fails (a timeout, a
        # crash, or the server refusing it) would leave them describing a state the workflow
        # never reached (docs/benchmarks.md, section 2).
        await workflow.execute_activity(
            "sync_approval",
            snapshot,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RECORD_RETRY,
        )

    def _snapshot(
        self, event_type: str, actor: str, data: dict[str, Any], status_changed: bool = True
    ) -> SyncApprovalInput:
        """The state to mirror with its next audit event (takes the event's seq).
        `status_changed=False`: the status is the one already shown, no search-attribute
        upsert (only on paths no older run took with an upsert: an upsert is a command)."""
        self._drop_stale_sms()
        self._seq += 1
        now = workflow.now()
        final = self._status in FINAL_STATUSES
        token_expiry = now if final else (self._expires_at or now + timedelta(days=MAX_EXPIRY_DAYS))
        if status_changed and workflow.info().typed_search_attributes.get(sa.STATUS) is not None:
            # Started with Portico's attributes (always, by the API): keep the status current.
            workflow.upsert_search_attributes([sa.STATUS.value_set(self._status)])
        snapshot = SyncApprovalInput(
            approval_id=self._inp.approval_id,
            status=self._status,
            expires_at=self._expires_at,
            approvers=list(self._records.values()),
            event=AuditEventInput(
                event_key=f"{workflow.info().workflow_id}:{self._seq}",
                at=now,
                type=event_type,
                actor=actor,
                data=data,
            ),
            void_reason=self._void_reason,
            completed_at=now if final else None,
            token_expires_at=token_expiry + LINK_GRACE,
        )
        return snapshot

    def _queue_for_active(self, template: str) -> None:
        for approver in self._inp.approvers:
            if self._records[approver.id].status in ACTIVE_APPROVER_STATUSES:
                self._todo.append((template, {"approver_id": approver.id}))

    async def _drain_todo(self) -> None:
        await self._flush()
        while self._todo:
            kind, data = self._todo.pop(0)
            if kind == "staff":
                who = self._approver(data["approver_id"]).name
                await self._notify_staff(data["event"], who=who)
            elif kind == "delivery_failed":  # reported by a held-back SMS
                await self._sync("delivery_failed", "system", data)
            elif self._stale_prompt(kind, data["approver_id"]):
                continue  # decided, skipped or voided while it waited: don't ask any more
            else:
                await self._notify_approver(kind, self._approver(data["approver_id"]))

    def _stale_prompt(self, kind: str, approver_id: int) -> bool:
        """A request, reminder or expiry warning queued for someone who no longer has to act."""
        if kind not in PROMPTS or self._records[approver_id].status in ACTIVE_APPROVER_STATUSES:
            return False
        return workflow.patched(STALE_PROMPT_PATCH)  # runs before the patch still send it

    async def _notify_approver(self, template: str, approver: ApproverInput, **extra: Any) -> None:
        self._seq += 1
        key = f"{workflow.info().workflow_id}:{self._seq}:{approver.id}"
        channels = self._inp.channels
        record = self._records[approver.id]
        first_request = template == "request" and record.notified_at is None
        sent = False
        if "email" in channels and approver.email:
            email = EmailMessage(
                dedupe_key=f"{key}:email",
                to=approver.email,
                template=template,
                context=messages.email_context(
                    self._inp,
                    approver,
                    expires_at=self._iso(self._expires_at),
                    reason=self._void_reason,
                    **extra,
                ),
                attach_signed_pdf_of=(
                    self._inp.approval_id if template == "completed_copy" else None
                ),
                approver_id=approver.id,
            )
            if first_request and self._inp.sent_with_email:  # the input decides: no patch
                sent_data = {"approver": approver.name, "channels": channels}
                email.record_sent = self._snapshot("sent", "system", sent_data, False)
                failure, sent_at = await self._deliver("send_email", email, result_type=datetime)
                if failure is not None:
                    await self._record_failure(email, failure)
                elif sent_at is not None:  # its `sent` is written: none below
                    record.notified_at = sent_at
                sent = failure is None
            else:
                sent = await self._try_notify("send_email", email)
        if "sms" in channels and approver.phone:
            sms = SmsMessage(
                dedupe_key=f"{key}:sms",
                to=approver.phone,
                body=messages.sms_text(template, self._inp, approver, reason=self._void_reason),
                urgent=template not in ("reminder", "expiry_warning"),
                approver_id=approver.id,
            )
            if workflow.patched(LOCALIZED_SMS_PATCH):  # the activity writes it in their language
                sms.template = template
                sms.context = messages.sms_context(self._inp, approver, reason=self._void_reason)
            if not sms.urgent and workflow.patched(QUIET_SMS_PATCH):
                self._send_later(approver.id, sms)
            else:
                sent = await self._try_notify("send_sms", sms) or sent
        if sent and first_request and record.notified_at is None:
            record.notified_at = workflow.now()
            await self._sync("sent", "system", {"approver": approver.name, "channels": channels})

    async def _notify_staff(self, event: str, **extra: Any) -> None:
        self._seq += 1
        key = f"{workflow.info().workflow_id}:{self._seq}:staff"
        for n, contact in enumerate(self._inp.notify_staff):
            if contact.email:
                await self._try_notify(
                    "send_email",
                    EmailMessage(
                        dedupe_key=f"{key}:{n}:email",
                        to=contact.email,
                        template=f"staff_{event}",
                        context=messages.email_context(self._inp, None, event=event, **extra),
                        attach_signed_pdf_of=self._inp.approval_id if event == "approved" else None,
                    ),
                )
            if contact.phone:
                await self._try_notify(
                    "send_sms",
                    SmsMessage(
                        dedupe_key=f"{key}:{n}:sms",
                        to=contact.phone,
                        body=messages.staff_text(event, self._inp, **extra),
                    ),
                )

    async def _try_notify(self, activity: str, message: EmailMessage | SmsMessage) -> bool:
        """Send one message; a permanently undeliverable one is recorded, not fatal."""
        failure, _ = await self._deliver(activity, message)
        if failure is not None:
            await self._record_failure(message, failure)
        return failure is None

    async def _record_failure(self, message: EmailMessage | SmsMessage, failure: str) -> None:
        await self._sync("delivery_failed", "system", {"to": message.to, "reason": failure})

    async def _deliver(
        self, activity: str, message: EmailMessage | SmsMessage, result_type: type | None = None
    ) -> tuple[str | None, Any]:
        """Run one send activity; returns why it failed for good (None: sent, or called off)
        and its result.

        SMS go to the rate-limited SMS task queue when the request names one.
        """
        sms = activity == "send_sms"
        try:
            result = await workflow.execute_activity(
                activity,
                message,
                task_queue=(self._inp.sms_task_queue or None) if sms else None,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=SMS_SEND_WINDOW if sms else timedelta(days=1),
                retry_policy=NOTIFY_RETRY,
                result_type=result_type,
            )
            return None, result
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, CancelledError):
                return None, None
            reason = str(cause.message if isinstance(cause, ApplicationError) else cause)
            workflow.logger.warning("could not deliver %s to %s: %s", activity, message.to, reason)
            return reason, None

    def _send_later(self, approver_id: int, sms: SmsMessage) -> None:
        """Send a non-urgent SMS (reminder, expiry warning) without holding the lock.

        It may wait hours for the recipient's quiet hours to end, and decisions, staff actions
        and timers must not queue behind it; it is called off if its approver decides or the
        request ends first, and a failure is handed to the main loop to record.
        """
        task = asyncio.create_task(self._deliver_later(sms))
        self._later_sms[task] = approver_id
        task.add_done_callback(lambda done: self._later_sms.pop(done, None))

    async def _deliver_later(self, sms: SmsMessage) -> None:
        failure, _ = await self._deliver("send_sms", sms)
        if failure is not None:
            self._todo.append(("delivery_failed", {"to": sms.to, "reason": failure}))

    def _drop_stale_sms(self) -> None:
        """Call off held-back SMS whose approver is no longer asked to decide."""
        for task, approver_id in list(self._later_sms.items()):
            active = self._records[approver_id].status in ACTIVE_APPROVER_STATUSES
            if self._status in FINAL_STATUSES or not active:
                task.cancel()

    async def _finish(self) -> None:
        """Completion work once the request has ended."""
        if self._status == APPROVED:
            bounded = workflow.patched(BOUNDED_SIGNED_PDF_PATCH)
            failure: str | None = None
            args: list[Any] = [self._inp.approval_id]
            with_event = self._inp.signed_pdf_with_event  # the input decides: no patch
            if with_event:  # the activity fills in the PDF's facts and writes it
                args.append(self._snapshot("signed_pdf", "system", {}, False))
            try:
                pdf: SignedPdfResult = await workflow.execute_activity(
                    "build_signed_pdf",
                    args=args,
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=SIGNED_PDF_RETRY if bounded else RECORD_RETRY,
                    result_type=SignedPdfResult,
                )
                if not with_event:
                    await self._sync("signed_pdf", "system", pdf.event_data())
                if pdf.timestamp_error and workflow.patched(UNTIMESTAMPED_PATCH):
                    await self._sync(
                        "signed_without_timestamp", "system", {"error": pdf.timestamp_error}
                    )
            except ActivityError as err:
                # The approval stands; staff get told and can rebuild the PDF.
                failure = _failure_reason(err) if bounded else str(err.cause or err)
                await self._sync("signed_pdf_failed", "system", {"error": failure})
            if failure is not None and bounded:
                # No "approved, signed PDF attached" mail: staff hear what failed instead.
                await self._notify_staff("signed_pdf_failed", reason=failure)
            else:
                await self._notify_staff("approved")
            for approver in self._inp.approvers:
                if self._records[approver.id].status == APPROVED:
                    extra = {"signed_pdf_failed": True} if failure and bounded else {}
                    await self._notify_approver("completed_copy", approver, **extra)
        elif self._status == DECLINED:
            decliner = next(r for r in self._records.values() if r.status == DECLINED)
            await self._notify_staff(
                "declined", who=self._approver(decliner.id).name, reason=decliner.decline_reason
            )
        elif self._status == EXPIRED:
            await self._notify_staff("expired")

    # --- helpers ----------------------------------------------------------------------------

    def _approver(self, approver_id: int) -> ApproverInput:
        return next(a for a in self._inp.approvers if a.id == approver_id)

    def _actor(self, approver_id: int) -> str:
        return f"approver:{approver_id}:{self._approver(approver_id).name}"

    @staticmethod
    def _set_evidence(record: ApproverRecord, evidence: Evidence, channel: str | None) -> None:
        record.decided_via = channel or evidence.channel
        record.decided_ip = evidence.ip or evidence.phone
        record.decided_user_agent = evidence.user_agent

    @staticmethod
    def _iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None
