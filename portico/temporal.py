"""Connecting to Temporal and making sure Portico's search attributes exist."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError

from portico.codec import codec_from_settings
from portico.payloads import PorticoPayloadConverter
from workflows import search_attributes as sa

if TYPE_CHECKING:
    from portico.settings import Settings

log = logging.getLogger(__name__)


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Create any missing Portico search attribute; returns the names created."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in sa.ALL_KEYS
        if key.name not in known
    }
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as err:  # another worker created them at the same moment
        if "already" not in str(err).lower():
            raise
    log.info("created search attributes %s", sorted(missing))
    return sorted(missing)


def data_converter(settings: Settings | None = None) -> DataConverter:
    """Pydantic-based JSON, so dataclasses with datetimes round-trip exactly.

    With `settings` whose PORTICO_PAYLOAD_KEY is set, payloads are also AES-GCM encrypted
    (portico.codec) and failure messages and stack traces travel encoded too, since they can
    quote an email address. Without settings, or without a key: plain JSON, as always.
    """
    plain = DataConverter(payload_converter_class=PorticoPayloadConverter)
    codec = codec_from_settings(settings) if settings is not None else None
    if codec is None:
        return plain
    return dataclasses.replace(
        plain,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def with_converter(client: Client, settings: Settings | None = None) -> Client:
    """The same connection, speaking Portico's data converter (for test environments)."""
    config = client.config()
    config["data_converter"] = data_converter(settings)
    return Client(**config)


def metrics_runtime(bind_address: str) -> Runtime:
    """A Temporal SDK runtime serving Prometheus metrics at `bind_address` (host:port)."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


async def connect(
    address: str,
    namespace: str,
    *,
    settings: Settings | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """A client speaking `data_converter(settings)`; pass settings wherever payloads are read."""
    return await Client.connect(
        address, namespace=namespace, data_converter=data_converter(settings), runtime=runtime
    )
