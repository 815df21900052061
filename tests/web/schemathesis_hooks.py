"""Schemathesis hooks for tests/web/test_openapi_fuzz.py, loaded by its CLI (SCHEMATHESIS_HOOKS).

- The document says uploads are PDFs (`contentMediaType`): a schema-valid upload is a real one.
- JSON Schema cannot add numbers up: the rule that line items must add up to at most
  MAX_TOTAL_CENTS (and an invoice to more than zero) is in the `line_items` descriptions, and
  generated bodies that break it are left out here rather than counted as refused valid data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import schemathesis
from hypothesis import strategies as st
from pydantic import ValidationError

from portico.money import totals
from portico.schemas import MAX_TOTAL_CENTS, LineItem
from tests.support.helpers import sample_pdf

# The only binary fields are the uploads, `contentMediaType: application/pdf`.
schemathesis.openapi.format("binary", st.sampled_from([sample_pdf("First"), sample_pdf("Second")]))


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
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
    operation = context.operation
    return total > 0 or operation is None or operation.path != "/invoices"
