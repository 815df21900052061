"""The one wall clock of the code outside workflows (which use `workflow.now()`)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: what every stored timestamp is."""
    return datetime.now(UTC)
