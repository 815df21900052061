"""Typed application keys of the client portal, payments and their staff routes."""

from __future__ import annotations

from aiohttp import web

from portico.services.billing import Billing
from portico.services.messages import ClientMessages
from portico.services.photos import Photos
from portico.services.portal import PortalStore
from portico.services.portal_auth import PortalAuth

AUTH = web.AppKey("portal_auth", PortalAuth)
STORE = web.AppKey("portal_store", PortalStore)
BILLING = web.AppKey("billing", Billing)
PHOTOS = web.AppKey("photos", Photos)
MESSAGES = web.AppKey("client_messages", ClientMessages)
