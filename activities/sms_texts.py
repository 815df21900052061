"""The SMS an approver gets, in their language (CONTRACT sections 5 and 10).

The workflow names the text (`SmsMessage.template`) and gives its facts (`context`, as an
email's); the notify activity writes it here inside `i18n.use(<the reader's locale>)`. The
signing link and reply code are still placeholders (workflows.types.SIGN_URL, SMS_CODE).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from portico import i18n
from portico.i18n import gettext as _
from portico.money import format_money
from portico.services.billing.notices import METHOD_LABELS

METHOD_NAMES = frozenset(METHOD_LABELS.values())  # as billing puts them in receipts


def localized(context: dict[str, Any]) -> dict[str, Any]:
    """An email's or SMS's context with its facts (a document's kind, amount and line; an
    invoice's amounts and due date) rewritten in the current locale: senders give them in
    English, plus the raw values."""
    if "invoice_currency" in context:
        return _invoice_facts(context)
    if context.get("visit_date_iso"):
        day = date.fromisoformat(str(context["visit_date_iso"]))
        return {**context, "visit_date": i18n.format_date(day)}
    if "kind" not in context:
        return context
    kind = i18n.kind_label(str(context["kind"]))
    amount = format_money(context.get("amount_cents"), str(context.get("currency") or "USD"))
    line = _(
        '%(kind)s %(number)s "%(title)s"',
        kind=kind,
        number=context.get("document_number", ""),
        title=context.get("document_title", ""),
    )
    if amount:
        line = f"{line} ({amount})"
    return {**context, "document_kind": kind, "amount": amount, "document_line": line}


def approver_sms(template: str, context: dict[str, Any]) -> str:
    """The text of SMS `template` (request, reminder, expiry_warning, no_longer_needed,
    void_notice, completed_copy) in the current locale."""
    ctx = localized(context)
    if template == "agreement_reminder":
        return _(
            '%(company)s: reminder, visit %(n)s of %(total)s of "%(title)s" is on %(date)s.',
            company=ctx.get("company_name", ""),
            n=ctx.get("visit_n", ""),
            total=ctx.get("visits_total", ""),
            title=ctx.get("agreement_title", ""),
            date=ctx.get("visit_date", ""),
        )
    facts = {
        "company": ctx.get("company_name", ""),
        "document": ctx.get("document_line", ""),
        "url": ctx.get("sign_url", ""),
    }
    code = str(ctx.get("sms_code", ""))
    reply = _("Reply YES %(code)s to approve or NO %(code)s <reason> to decline.", code=code)
    if template == "request":
        lead = _("%(company)s: please approve %(document)s. Review: %(url)s", **facts)
        return f"{lead} {reply}"
    if template == "reminder":
        lead = _(
            "%(company)s: reminder, still waiting for your approval of %(document)s. "
            "Review: %(url)s",
            **facts,
        )
        return f"{lead} {reply}"
    if template == "expiry_warning":
        lead = _(
            "%(company)s: expiring soon, please approve %(document)s. Review: %(url)s", **facts
        )
        return f"{lead} {reply}"
    if template == "no_longer_needed":
        return _(
            "%(company)s: your approval of %(document)s is no longer needed. Thank you.", **facts
        )
    if template == "void_notice":
        reason = ctx.get("reason")
        if reason:
            return _("%(company)s: %(document)s was withdrawn: %(reason)s", reason=reason, **facts)
        return _("%(company)s: %(document)s was withdrawn.", **facts)
    if template == "completed_copy":
        return _("%(company)s: %(document)s is fully approved. Signed copy: %(url)s", **facts)
    return _("%(company)s: update on %(document)s.", **facts)


def _invoice_facts(context: dict[str, Any]) -> dict[str, Any]:
    currency = str(context["invoice_currency"])
    facts = dict(context)
    for name in ("total", "retainage", "due", "paid", "balance"):
        if context.get(f"{name}_cents") is not None:
            facts[name] = format_money(context[f"{name}_cents"], currency)
    if "payment_cents" in context:
        facts["amount"] = format_money(context["payment_cents"], currency)
    if context.get("due_date_iso"):
        facts["due_date"] = i18n.format_date(date.fromisoformat(str(context["due_date_iso"])))
    if context.get("method") in METHOD_NAMES:
        facts["method"] = _(str(context["method"]))
    return facts
