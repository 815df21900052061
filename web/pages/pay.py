"""An invoice's pay page (`pay_url`, CONTRACT §4) and Stripe Checkout; plus the signing page's
"Pay deposit" link. The Stripe webhook is web/webhooks/stripe.py."""

from __future__ import annotations

import logging
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from portico import tokens
from portico.errors import BadRequest, Invalid, PorticoError
from portico.i18n import gettext as _
from portico.ledger import PAYABLE, balance_cents, dispute_open, due_cents, pending_cents
from portico.money import format_money
from portico.services.billing.deposits import deposit_url_for_signing_token
from portico.services.billing.notices import METHOD_LABELS
from web.http import language, security
from web.http.keys import SETTINGS
from web.http.portal_keys import BILLING, STORE
from web.http.portal_session import csrf_for, current

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def pay_csrf(request: web.Request, token: str) -> str:
    return tokens.csrf_token(request.app[SETTINGS].secret_key, "pay:" + tokens.hash_token(token))


def checkout_origins(request: web.Request) -> str:
    """Where the Pay form may lead: Stripe Checkout (or the local fake in tests)."""
    origins = [STRIPE_CHECKOUT_ORIGIN]
    base = request.app[SETTINGS].stripe_api_base
    if base:
        parts = urlsplit(base)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return " ".join(origins)


def page_headers(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """The pay form may post on to Stripe Checkout; everything else is the default
    (web/http/security.py)."""
    response.headers["Content-Security-Policy"] = security.content_security_policy(
        request, form_action=f"'self' {checkout_origins(request)}"
    )
    return response


async def invoice_view(
    request: web.Request,
    token: str,
    *,
    in_portal: bool = False,
    status: int = 200,
    error: str | None = None,
    amount: str | None = None,
) -> web.Response:
    """The invoice page with its Pay button (used by `/pay/{token}` and the portal)."""
    settings = request.app[SETTINGS]
    invoice, payments, project, client = await request.app[BILLING].invoices.by_pay_token(token)
    language.for_person(request, client.locale, timezone=client.timezone)
    balance = balance_cents(invoice, payments)
    portal_settings = await request.app[STORE].portal_settings()
    context: dict[str, Any] = {
        "title": _("Invoice %(number)s", number=invoice.number),
        "company_name": settings.company_name,
        "portal": portal_settings,
        "signed_in": in_portal,
        "in_portal": in_portal,
        "invoice": invoice,
        "payments": payments,
        "project": project,
        "client": client,
        "token": token,
        "pay_csrf": pay_csrf(request, token),
        "attempt": secrets.token_urlsafe(12),
        "money": format_money,
        "method_label": lambda m: _(METHOD_LABELS[m]) if m in METHOD_LABELS else m,
        "balance": balance,
        "due": due_cents(invoice),
        "pending": pending_cents(payments),
        "refunded": sum(p.refunded_cents or 0 for p in payments),
        "disputed": sum(p.disputed_cents or 0 for p in payments if dispute_open(p)),
        "payable": invoice.status in PAYABLE and balance > 0,
        "stripe": settings.stripe_enabled,
        "bank_details": settings.bank_details,
        "show_bank": request.query.get("show") == "bank",
        "checkout": request.query.get("checkout"),
        "amount": amount if amount is not None else f"{Decimal(balance) / 100:.2f}",
        "error": error,
        "share_url": settings.url(f"/pay/{token}"),
        "pdf_url": f"/pay/{token}/invoice.pdf",
    }
    if in_portal:
        who = await current(request)
        context["csrf"] = csrf_for(request, who) if who else None
    response = aiohttp_jinja2.render_template(
        "portal/invoice.html", request, context, status=status
    )
    page_headers(request, response)
    return response


@routes.get("/pay/{token}", name="pay")
async def pay_page(request: web.Request) -> web.Response:
    return await invoice_view(request, request.match_info["token"])


@routes.get("/pay/{token}/invoice.pdf")
async def pay_pdf(request: web.Request) -> web.Response:
    invoices = request.app[BILLING].invoices
    invoice, *_ = await invoices.by_pay_token(request.match_info["token"])
    safe = "".join(c for c in invoice.number if c.isalnum() or c in "-_.") or "invoice"
    return web.Response(
        body=invoices.pdf_bytes(invoice),
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="invoice-{safe}.pdf"'},
    )


def parse_amount(text: str) -> int | None:
    """'250', '250.5', '1,250.00' → cents; '' → None (pay the balance)."""
    cleaned = text.replace(",", "").replace("$", "").strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation as err:
        raise Invalid(_("Enter the amount as a number, like 250.00.")) from err
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Invalid(_("Enter the amount as a number, like 250.00."))
    return int(value * 100)


@routes.post("/pay/{token}/checkout")
async def checkout(request: web.Request) -> web.StreamResponse:
    """Start Stripe Checkout for the balance or the amount typed; redirects to Stripe."""
    token = request.match_info["token"]
    form = await request.post()
    if not tokens.csrf_valid(
        request.app[SETTINGS].secret_key,
        "pay:" + tokens.hash_token(token),
        str(form.get("csrf", "")),
    ):
        raise BadRequest(_("This form has expired. Please reload the page and try again."))
    typed = str(form.get("amount", ""))
    try:
        url = await request.app[BILLING].checkout.start(
            token, parse_amount(typed), str(form.get("attempt", ""))
        )
    except PorticoError as err:
        if err.status >= 500 or err.status == 404:
            raise
        return await invoice_view(
            request, token, status=err.status, error=err.message, amount=typed
        )
    response = web.HTTPSeeOther(url)
    page_headers(request, response)
    raise response


# --- "Pay deposit" on the signing page ------------------------------------------------------

SIGN_PAGE_EXTRA = web.RequestKey("sign_page_extra", dict)


async def add_deposit_link(request: web.Request) -> None:
    """The pay_url of an open deposit invoice of the approved request a signing link opens, for
    the thank-you state of sign.html (signing.page_context merges SIGN_PAGE_EXTRA). The signing
    page calls this for approved requests only: as a middleware on every view it cost two
    queries per page (docs/benchmarks.md)."""
    try:
        billing = request.app[BILLING]
        url = await deposit_url_for_signing_token(
            billing.settings, billing.sessions, request.match_info["token"]
        )
    except Exception:  # the signing page must render whatever happens here
        log.exception("could not look up a deposit invoice")
        url = None
    if url:
        request[SIGN_PAGE_EXTRA] = {"deposit_pay_url": url}
