"""Schemathesis hooks for tests/web/test_openapi_fuzz.py, loaded by its CLI (SCHEMATHESIS_HOOKS).

- The document says uploads are PDFs (`contentMediaType`): a schema-valid upload is a real one;
  a job photo's (`image/jpeg`) is a real photo.
- A webhook URL whose host is (or resolves to) a private address is refused, as documented;
  JSON Schema cannot say which, so such a generated URL is swapped for a public one.
- A service agreement starts (and a visit moves) today or later, within five years: a date
  JSON Schema cannot pin to today; a generated one outside that is sent as today.
- JSON Schema cannot add numbers up: the rule that line items must add up to at most
  MAX_TOTAL_CENTS (and an invoice to more than zero) is in the `line_items` descriptions, and
  generated bodies that break it are left out here rather than counted as refused valid data.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import schemathesis
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis.transport.serialization import Binary

from portico.errors import Invalid
from portico.integration_schemas import RECEIVER_URL
from portico.money import totals
from portico.schemas import MAX_TOTAL_CENTS, LineItem
from portico.services.webhooks import check_receiver
from tests.support.helpers import sample_pdf
from tests.support.photos import phone_jpeg

# The binary fields are the uploads, `contentMediaType: application/pdf` but for job photos.
schemathesis.openapi.format("binary", st.sampled_from([sample_pdf("First"), sample_pdf("Second")]))
PHOTO = phone_jpeg(40, 20)
PHOTO_UPLOAD = "/bookings/{id}/photos"


def receiver_allowed(url: str) -> bool:
    """Whether the server takes this webhook URL: JSON Schema cannot resolve a host name or
    tell a private address (refused with 422, documented) from a public one."""
    try:
        asyncio.run(check_receiver(url, allow_private=False))
    except Invalid:
        return False
    return True


AGREEMENT_DATES = {"/agreements": "starts_on", "/agreements/{id}/visits/{n}/move": "date"}


def _date_in_range(body: dict[str, Any], name: str) -> None:
    """Today instead of a valid date in the past or more than five years ahead."""
    try:
        day = date.fromisoformat(body[name])
    except (KeyError, TypeError, ValueError):
        return  # not a date: the server must refuse it on its own
    today = datetime.now(ZoneInfo("America/New_York")).date()  # the tests' business zone
    if not today <= day <= today + timedelta(days=5 * 366):
        body[name] = today.isoformat()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A schema-valid webhook URL the server refuses (its host is, or resolves to, a private
    address) is sent as another schema-valid one, in every phase (the coverage phase does not
    use `filter_body`); so is an agreement's date outside the range it may take."""
    body = case.body
    name = AGREEMENT_DATES.get(case.operation.path)
    if name and case.method.upper() == "POST" and isinstance(body, dict) and name in body:
        case.body = dict(body)
        _date_in_range(case.body, name)
        return
    if case.operation.path != "/webhooks" or case.method.upper() != "POST":
        return
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        return
    if re.fullmatch(RECEIVER_URL, body["url"]) and not receiver_allowed(body["url"]):
        case.body = {**body, "url": "https://hooks.example.invalid/portico"}


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    """A generated photo upload carries a real JPEG (`contentMediaType: image/jpeg`)."""
    operation = context.operation
    upload = body.get("file") if isinstance(body, dict) else None
    if operation.path == PHOTO_UPLOAD and operation.method.upper() == "POST" and upload is not None:
        return {**body, "file": Binary(PHOTO)}
    return body


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    operation = context.operation
    items = body.get("line_items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return True
    try:
        lines = [LineItem.model_validate(item).model_dump(mode="json") for item in items]
        tax = body.get("tax_rate_percent")
        _, _, total = totals(lines, Decimal(str(tax)) if tax is not None else None)
    except (ValidationError, ArithmeticError, TypeError, ValueError):
        return True  # invalid for another reason, which the server must refuse on its own
    subtotal = sum(Decimal(line["quantity"]) * line["unit_price_cents"] for line in lines)
    if abs(subtotal) > MAX_TOTAL_CENTS:
        return False
    return total > 0 or operation is None or operation.path != "/invoices"
