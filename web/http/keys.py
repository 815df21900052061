"""Typed application keys shared by the route modules."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.services.approvals import Portico
from portico.services.gateway import TemporalGateway
from portico.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
TEMPORAL = web.AppKey("temporal", TemporalGateway)
SERVICE = web.AppKey("service", Portico)
DEV_MODE = web.AppKey("dev_mode", bool)
