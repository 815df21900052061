"""The client's side of the SMS conversation: YES/NO replies, HELP, STOP/START.

A reply decides through the same workflow update the signing page uses (`approve` /
`decline`, through `Portico.decide`), so validation, routing and the audit trail are identical; the
evidence records the channel, the sender, the message sid and the text. A code only counts
from the phone number it was sent to, and a refusal never says which part was wrong, so a
stranger learns nothing about other requests. Codes are only 4 digits: after a few wrong ones
a number's codes are locked for an hour (bots/attempts.py), while HELP and STOP/START go on
working.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bots import attempts
from bots.parse import (
    Approve,
    Command,
    Decline,
    Help,
    MissingCode,
    Start,
    Stop,
    language_hint,
)
from portico import i18n
from portico.errors import PorticoError, Unavailable
from portico.i18n import gettext as _
from portico.models import Approval, Approver, Client, Document, Project, SmsOptOut
from portico.phones import bare_phone
from portico.redact import mask_values
from portico.services.approvals import Portico
from workflows.types import (
    APPROVE,
    APPROVED,
    DECLINE,
    DECLINED,
    PARTIALLY_APPROVED,
    PENDING,
    ApproveRequest,
    DecisionResult,
    DeclineRequest,
    Evidence,
)

OPEN_STATUSES = (PENDING, PARTIALLY_APPROVED)
log = logging.getLogger(__name__)


def help_text(company: str) -> str:
    return _(
        "%(company)s approvals: reply YES <code> [notes] to approve or NO <code> <reason> to "
        "decline, with the code from our message, or use the link we sent. "
        "Reply STOP to stop texts, START to resume.",
        company=company,
    )


def unknown_text(company: str) -> str:
    return _(
        "%(company)s: sorry, we did not understand that. Reply YES <code> to approve, "
        "NO <code> <reason> to decline, or HELP.",
        company=company,
    )


def refusal_text(company: str) -> str:
    return _(
        "%(company)s: that code does not match an open request for this phone number, so "
        "nothing was changed. Please check the code in our message, or use the link we sent.",
        company=company,
    )


def lockout_text(company: str) -> str:
    return _(
        "%(company)s: too many wrong codes were sent from this number, so for the next hour "
        "codes from it are not accepted and nothing was changed. Please use the link in our "
        "message to approve or decline.",
        company=company,
    )


def unavailable_text(company: str) -> str:
    return _(
        "%(company)s: sorry, we could not record your reply just now; nothing was changed. "
        "Please try again in a few minutes, or use the link we sent.",
        company=company,
    )


def document_label(document: Document) -> str:
    """e.g. 'Change order CO-17 "Extra outlets"' (in the current locale)."""
    return _(
        '%(kind)s %(number)s "%(title)s"',
        kind=i18n.kind_label(document.kind),
        number=document.number,
        title=document.title,
    )


async def handle(
    service: Portico, command: Command, sender: str, sid: str | None, text: str
) -> str:
    """Carry out one client command and return the reply text, in the sender's language (for
    a number Portico does not know, the language of the keyword they used, e.g. OUI)."""
    known = await sender_locale(service, sender)
    locale = known or i18n.resolve(language_hint(text), default=service.settings.default_locale)
    with i18n.use(locale):
        return await _handle(service, command, sender, sid, text)


async def sender_locale(service: Portico, sender: str) -> str | None:
    """The language of whoever has this phone number: the latest approver with it (theirs,
    else their client's, else PORTICO_DEFAULT_LOCALE), else a client with it; None when
    Portico knows nobody with that number."""
    who = bare_phone(sender)
    if not who:
        return None
    numbers = {who, sender}
    default = service.settings.default_locale
    async with service.sessions() as session:
        row = (
            await session.execute(
                select(Approver.locale, Client.locale)
                .join(Approval, Approval.id == Approver.approval_id)
                .join(Document, Document.id == Approval.document_id)
                .join(Project, Project.id == Document.project_id)
                .join(Client, Client.id == Project.client_id)
                .where(Approver.phone.in_(numbers))
                .order_by(Approver.id.desc())
                .limit(1)
            )
        ).first()
        if row is not None:
            return i18n.resolve(row[0], row[1], default=default)
        client = (
            await session.execute(
                select(Client.id, Client.locale)
                .where(Client.phone.in_(numbers))
                .order_by(Client.id.desc())
                .limit(1)
            )
        ).first()
    return i18n.resolve(client.locale, default=default) if client is not None else None


async def _handle(
    service: Portico, command: Command, sender: str, sid: str | None, text: str
) -> str:
    company = service.settings.company_name
    if isinstance(command, Approve | Decline):
        return await decide(service, command, sender, sid, text)
    if isinstance(command, MissingCode):
        if command.verb == "YES":
            return _(
                "%(company)s: please include the code from our message, e.g. YES 1234. "
                "Reply HELP for help.",
                company=company,
            )
        return _(
            "%(company)s: please include the code from our message, e.g. NO 1234 <reason>. "
            "Reply HELP for help.",
            company=company,
        )
    if isinstance(command, Help):
        return help_text(company)
    if isinstance(command, Stop):
        await set_opt_out(service, sender, True)
        return _(
            "You have been unsubscribed from %(company)s texts and will receive no further "
            "messages. Reply START to resubscribe.",
            company=company,
        )
    if isinstance(command, Start):
        await set_opt_out(service, sender, False)
        return _(
            "You are resubscribed to %(company)s texts. Reply HELP for help, STOP to "
            "unsubscribe. Msg&data rates may apply.",
            company=company,
        )
    return unknown_text(company)


class Lockout:
    """`find_approver`'s answer while the sender's number is locked (bots/attempts.py)."""


LOCKOUT = Lockout()


async def find_approver(
    service: Portico, code: str, sender: str, sid: str | None = None
) -> tuple[Approver, Approval] | Lockout | None:
    """The approver holding `code` whose phone is the sender's: an open request first, else a
    closed one whose link still works (so they hear why); a code expires with its link.

    Every check counts towards the sender's limit of wrong codes and is recorded; once it is
    reached no code from that number is looked at and the answer is `LOCKOUT`."""
    who = bare_phone(sender)
    if not who:
        return None
    now = service.clock()
    async with service.sessions() as session, session.begin():
        check = await attempts.start(
            session,
            secret_key=service.settings.secret_key,
            phone=who,
            code=code,
            message_sid=sid,
            now=now,
        )
        found = None if check.locked else await _matching_approver(session, code, who, now)
        check.finish(found is not None)
    outcome = check.attempt.outcome
    if check.number_locked:
        log.warning("SMS reply code from %s: %s; codes from it are locked", who, outcome)
        return LOCKOUT
    log.info("SMS reply code from %s: %s", who, outcome)
    return found


async def _matching_approver(
    session: AsyncSession, code: str, who: str, now: datetime
) -> tuple[Approver, Approval] | None:
    rows = await session.execute(
        select(Approver, Approval)
        .join(Approval, Approver.approval_id == Approval.id)
        .where(Approver.sms_code == code, Approver.phone.is_not(None))
        .options(selectinload(Approval.document))
        .order_by(Approval.id.desc())
    )
    matches = [(a, ap) for a, ap in rows if bare_phone(a.phone or "") == who]
    open_ = [m for m in matches if m[1].status in OPEN_STATUSES]
    found = open_ or [m for m in matches if m[0].token_expires_at > now]
    return found[0] if found else None


async def decide(
    service: Portico, command: Approve | Decline, sender: str, sid: str | None, text: str
) -> str:
    company = service.settings.company_name
    found = await find_approver(service, command.code, sender, sid)
    if found is None:
        return refusal_text(company)
    if isinstance(found, Lockout):
        return lockout_text(company)
    approver, approval = found
    if approver.locale:  # the approver's own language beats what their number suggested
        i18n.set_current(approver.locale)
    label = document_label(approval.document)
    if isinstance(command, Decline) and not command.reason:
        return _(
            "%(company)s: to decline %(document)s, reply NO %(code)s followed by your reason, "
            "e.g. NO %(code)s price too high. Nothing was changed.",
            company=company,
            document=label,
            code=command.code,
        )
    # The reply as evidence, but its code masked: it goes into Temporal history (CONTRACT §8).
    reply = mask_values(text[:1600], [command.code])
    evidence = Evidence(channel="sms", phone=sender, message_sid=sid, text=reply)
    try:
        if isinstance(command, Approve):
            req = ApproveRequest(
                approver_id=approver.id,
                signature_name=approver.name,
                notes=command.notes,
                consent=True,
                evidence=evidence,
            )
            result = await service.decide(approval.id, APPROVE, req)
        else:
            decline = DeclineRequest(
                approver_id=approver.id, reason=command.reason or "", evidence=evidence
            )
            result = await service.decide(approval.id, DECLINE, decline)
    except Unavailable:
        return unavailable_text(company)
    except PorticoError as err:  # the workflow's own words: not your turn, closed, expired ...
        return _(
            "%(company)s, %(document)s: %(problem)s Nothing was changed.",
            company=company,
            document=label,
            problem=_(err.message),  # its refusals are in the catalogue (web.pages.signing)
        )
    return confirmation(company, label, approver.name, result)


def confirmation(company: str, label: str, name: str, result: DecisionResult) -> str:
    first = name.split()[0] if name.split() else name
    facts = {"company": company, "name": first, "document": label}
    if result.approver_status == DECLINED:
        return _(
            "%(company)s: thank you, %(name)s. You declined %(document)s; we have let the "
            "team know.",
            **facts,
        )
    if result.approval_status == APPROVED:
        return _(
            "%(company)s: thank you, %(name)s. You approved %(document)s. It is now fully "
            "approved; we will send you the signed copy.",
            **facts,
        )
    if result.approval_status == PARTIALLY_APPROVED:
        return _(
            "%(company)s: thank you, %(name)s. You approved %(document)s. Status: partially "
            "approved, waiting for the other approvers.",
            **facts,
        )
    return _(
        "%(company)s: thank you, %(name)s. You approved %(document)s. Status: %(status)s.",
        status=result.approval_status.replace("_", " "),
        **facts,
    )


async def set_opt_out(service: Portico, sender: str, opted_out: bool) -> None:
    """Record STOP/START for the sender's bare number (SMS and WhatsApp alike)."""
    phone = bare_phone(sender)
    if not phone:
        return
    now = datetime.now(UTC)
    for _attempt in range(2):  # a concurrent first STOP may insert the row between our 2 queries
        async with service.sessions() as session, session.begin():
            changed = await session.execute(
                update(SmsOptOut)
                .where(SmsOptOut.phone == phone)
                .values(opted_out=opted_out, updated_at=now)
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                return
        try:
            async with service.sessions() as session, session.begin():
                session.add(SmsOptOut(phone=phone, opted_out=opted_out, updated_at=now))
            return
        except IntegrityError:
            continue
