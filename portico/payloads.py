"""Portico's payload converter: the SDK's pydantic JSON, with type adapters built once per process.

The SDK makes a new payload converter for every workflow instance it creates (each new run and
each replay after a cache eviction), and its pydantic converter caches `TypeAdapter`s per
converter, so every instance rebuilt the adapters of its input, results and update arguments:
~4 % of the worker's CPU while 1 000 approvals started (docs/benchmarks.md, third pass). Here
the cache is shared by the process. Its keys are the type hints themselves; the workflows' types
live in `workflows.types`, which the sandbox passes through, so every instance asks for the same
class objects. A type defined inside a sandboxed module would get one entry per instance: the
cache is bounded so that could only cost memory, never correctness.
"""

from __future__ import annotations

import functools
from typing import Any

import temporalio.api.common.v1
from pydantic import TypeAdapter
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

TYPE_ADAPTERS = 128  # distinct type hints kept: Portico's workflows use a few dozen


@functools.lru_cache(maxsize=TYPE_ADAPTERS)
def type_adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class SharedAdapterJSONConverter(PydanticJSONPlainPayloadConverter):
    """`json/plain` payloads read with a process-wide `TypeAdapter` per type hint."""

    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        hint = Any if type_hint is None else type_hint
        try:
            hash(hint)
        except TypeError:  # e.g. an Annotated hint carrying a list: not cacheable
            return TypeAdapter(hint).validate_json(payload.data)
        return type_adapter(hint).validate_json(payload.data)


class PorticoPayloadConverter(CompositePayloadConverter):
    """The SDK's default encodings, with pydantic JSON in place of plain JSON."""

    def __init__(self) -> None:
        super().__init__(
            *(
                SharedAdapterJSONConverter() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
