"""What the approval workflow says to approvers and staff: pure, deterministic composition of
email template contexts and SMS texts (rendering happens in the notify activity).

An approver's signing link and reply code are secrets, so they never pass through Temporal:
the texts carry placeholders (`workflows.types.SIGN_URL`, `SMS_CODE`) that the notify activity
fills in from the database (requests started before that carry their own link and code).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from portico.i18n import KIND_LABELS
from portico.money import PLAIN, format_money
from workflows.types import SIGN_URL, SMS_CODE, ApprovalInput, ApproverInput


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def document_line(inp: ApprovalInput) -> str:
    """e.g. 'Change order CO-17 "Extra outlets" ($1,250.00)'."""
    doc = inp.document
    amount = format_money(doc.amount_cents, doc.currency, PLAIN)
    return f'{kind_label(doc.kind)} {doc.number} "{doc.title}"' + (f" ({amount})" if amount else "")


def email_context(inp: ApprovalInput, approver: ApproverInput | None = None, **extra: Any) -> dict:
    doc = inp.document
    ctx: dict[str, Any] = {
        "company_name": inp.company_name,
        "division": inp.division,
        "approval_id": inp.approval_id,
        "document_kind": kind_label(doc.kind),
        "document_number": doc.number,
        "document_title": doc.title,
        "amount": format_money(doc.amount_cents, doc.currency, PLAIN),
        # The raw values, for the notify activity to write them in the reader's locale.
        "kind": doc.kind,
        "amount_cents": doc.amount_cents,
        "currency": doc.currency,
        "client_name": doc.client_name,
        "project_name": doc.project_name,
        "message": inp.message,
        "document_line": document_line(inp),
        "logo_url": inp.logo_url,
        "accent": inp.accent,
    }
    if approver is not None:
        ctx.update(approver_name=approver.name, sign_url=sign_url(approver))
    ctx.update(extra)
    return ctx


def sign_url(approver: ApproverInput) -> str:
    """The approver's link, or the placeholder the notify activity replaces with it."""
    return approver.sign_url or SIGN_URL


def sms_code(approver: ApproverInput) -> str:
    return approver.sms_code or SMS_CODE


def sms_prompt(inp: ApprovalInput, approver: ApproverInput, lead: str) -> str:
    """The SMS an approver gets, carrying the link and their reply code (CONTRACT section 5)."""
    code = sms_code(approver)
    return (
        f"{inp.company_name}: {lead} {document_line(inp)}. Review: {sign_url(approver)} "
        f"Reply YES {code} to approve or NO {code} <reason> to decline."
    )


SMS_LEADS: Mapping[str, str] = MappingProxyType(
    {
        "request": "please approve",
        "reminder": "reminder, still waiting for your approval of",
        "expiry_warning": "expiring soon, please approve",
    }
)


def sms_context(inp: ApprovalInput, approver: ApproverInput, **extra: Any) -> dict[str, Any]:
    """What activities.sms_texts needs to write an approver's SMS in their language."""
    return email_context(inp, approver, sms_code=sms_code(approver), **extra)


def sms_text(template: str, inp: ApprovalInput, approver: ApproverInput, **extra: Any) -> str:
    if template in SMS_LEADS:
        return sms_prompt(inp, approver, SMS_LEADS[template])
    line = document_line(inp)
    if template == "no_longer_needed":
        return f"{inp.company_name}: your approval of {line} is no longer needed. Thank you."
    if template == "void_notice":
        reason = extra.get("reason")
        return f"{inp.company_name}: {line} was withdrawn" + (f": {reason}" if reason else ".")
    if template == "completed_copy":
        return f"{inp.company_name}: {line} is fully approved. Signed copy: {sign_url(approver)}"
    return f"{inp.company_name}: update on {line}."


def staff_text(event: str, inp: ApprovalInput, **extra: Any) -> str:
    line = document_line(inp)
    who = extra.get("who", "")
    texts = {
        "first_open": f"{who} opened {line} for the first time.",
        "approved": f"APPROVED: {line} (request #{inp.approval_id}). Billing can start.",
        "declined": f"DECLINED by {who}: {line}. Reason: {extra.get('reason', '')}",
        "expired": f"EXPIRED: {line} (request #{inp.approval_id}) was not approved in time.",
        "signed_pdf_failed": (
            f"APPROVED: {line} (request #{inp.approval_id}), but its signed PDF could not be "
            f"built: {extra.get('reason', '')}"
        ),
    }
    return f"Portico: {texts.get(event, line)}"
