"""Portico's payload converter: the SDK's pydantic JSON, type adapters built once per process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from temporalio.contrib.pydantic import PydanticPayloadConverter

from portico.payloads import PorticoPayloadConverter, type_adapter
from tests.workflows.test_approval_workflow import make_input
from workflows.types import ApprovalInput, InvoiceInput


def _approval_input() -> ApprovalInput:
    return make_input(12, datetime(2026, 11, 21, 9, 30, tzinfo=UTC), routing="sequential")


def test_payloads_round_trip_and_match_the_sdk_pydantic_converter() -> None:
    inp = _approval_input()
    ours = PorticoPayloadConverter()
    [payload] = ours.to_payloads([inp])
    [sdk_payload] = PydanticPayloadConverter().to_payloads([inp])
    assert payload == sdk_payload  # the same bytes: saved histories keep decoding
    assert ours.from_payloads([sdk_payload], [ApprovalInput]) == [inp]
    invoice = InvoiceInput(invoice_id=7, number="INV-7", due_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert ours.from_payloads(ours.to_payloads([invoice]), [InvoiceInput]) == [invoice]


def test_each_new_converter_reuses_the_type_adapters_built_before() -> None:
    """The SDK makes a converter per workflow instance; none of them rebuilds an adapter."""
    [payload] = PorticoPayloadConverter().to_payloads([_approval_input()])
    PorticoPayloadConverter().from_payloads([payload], [ApprovalInput])
    adapter, built = type_adapter(ApprovalInput), type_adapter.cache_info().misses
    for _ in range(5):
        assert PorticoPayloadConverter().from_payloads([payload], [ApprovalInput])[0].approval_id
    assert type_adapter.cache_info().misses == built
    assert type_adapter(ApprovalInput) is adapter


def test_an_unhashable_type_hint_is_still_decoded() -> None:
    hint = Annotated[int, ["unhashable metadata"]]
    converter = PorticoPayloadConverter()
    assert converter.from_payloads(converter.to_payloads([42]), [hint]) == [42]  # type: ignore[list-item]
