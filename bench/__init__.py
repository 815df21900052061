"""Portico's performance benchmark: `python -m bench.run [--quick]` (docs/benchmarks.md)."""

from __future__ import annotations
