"""The search attributes operators filter on in the Temporal UI (CONTRACT section 7)."""

from __future__ import annotations

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)

STATUS = SearchAttributeKey.for_keyword("PorticoStatus")
DOCUMENT_KIND = SearchAttributeKey.for_keyword("PorticoDocumentKind")
DOCUMENT_NUMBER = SearchAttributeKey.for_keyword("PorticoDocumentNumber")
CLIENT = SearchAttributeKey.for_keyword("PorticoClient")
AMOUNT_CENTS = SearchAttributeKey.for_int("PorticoAmountCents")

ALL_KEYS = (STATUS, DOCUMENT_KIND, DOCUMENT_NUMBER, CLIENT, AMOUNT_CENTS)


def initial(
    status: str, kind: str, number: str, client: str, amount_cents: int | None
) -> TypedSearchAttributes:
    """The attributes an approval workflow starts with."""
    pairs: list[SearchAttributePair] = [
        SearchAttributePair(STATUS, status),
        SearchAttributePair(DOCUMENT_KIND, kind),
        SearchAttributePair(DOCUMENT_NUMBER, number),
        SearchAttributePair(CLIENT, client),
    ]
    if amount_cents is not None:
        pairs.append(SearchAttributePair(AMOUNT_CENTS, amount_cents))
    return TypedSearchAttributes(pairs)
