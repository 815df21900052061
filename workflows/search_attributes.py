"""The search attributes operators filter on in the Temporal UI (CONTRACT section 7)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)

STATUS = SearchAttributeKey.for_keyword("PorticoStatus")
DOCUMENT_KIND = SearchAttributeKey.for_keyword("PorticoDocumentKind")
DOCUMENT_NUMBER = SearchAttributeKey.for_keyword("PorticoDocumentNumber")
CLIENT = SearchAttributeKey.for_keyword("PorticoClient")
AMOUNT_CENTS = SearchAttributeKey.for_int("PorticoAmountCents")
# Service agreements (PorticoStatus and PorticoClient too): how often, visits done so far,
# and the next visit's date (e.g. `PorticoNextVisit < "2027-03-01T00:00:00Z"`).
AGREEMENT_EVERY = SearchAttributeKey.for_keyword("PorticoAgreementEvery")
VISITS_DONE = SearchAttributeKey.for_int("PorticoVisitsDone")
NEXT_VISIT = SearchAttributeKey.for_datetime("PorticoNextVisit")

ALL_KEYS = (
    STATUS,
    DOCUMENT_KIND,
    DOCUMENT_NUMBER,
    CLIENT,
    AMOUNT_CENTS,
    AGREEMENT_EVERY,
    VISITS_DONE,
    NEXT_VISIT,
)
# The type names `temporal server start-dev --search-attribute NAME=TYPE` takes.
CLI_TYPES: Mapping[SearchAttributeIndexedValueType, str] = MappingProxyType(
    {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.INT: "Int",
        SearchAttributeIndexedValueType.DATETIME: "Datetime",
    }
)


def cli_type(key: SearchAttributeKey[Any]) -> str:
    return CLI_TYPES[key.indexed_value_type]


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


def agreement_initial(status: str, client: str, every: str) -> TypedSearchAttributes:
    """The attributes an agreement workflow starts with."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(STATUS, status),
            SearchAttributePair(CLIENT, client),
            SearchAttributePair(AGREEMENT_EVERY, every),
            SearchAttributePair(VISITS_DONE, 0),
        ]
    )
