"""Typed application key of the service agreements (portal pages, staff API, console)."""

from __future__ import annotations

from aiohttp import web

from portico.services.agreements import Agreements

AGREEMENTS = web.AppKey("agreements", Agreements)
