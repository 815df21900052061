"""Typed application keys of the staff console."""

from __future__ import annotations

import asyncio

from aiohttp import web

from portico.services.console import ConsoleQueries
from portico.services.staff import StaffAuth

STAFF_AUTH = web.AppKey("staff_auth", StaffAuth)
QUERIES = web.AppKey("console_queries", ConsoleQueries)
STREAMS = web.AppKey("console_streams", set[asyncio.Task[None]])
