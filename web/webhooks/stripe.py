"""The Stripe webhook `POST /webhooks/stripe` (CONTRACT §6): verified, each event applied once."""

from __future__ import annotations

import logging

from aiohttp import web

from web.http.portal_keys import BILLING

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.post("/webhooks/stripe")
async def stripe_webhook(request: web.Request) -> web.Response:
    """Verified with STRIPE_WEBHOOK_SECRET; each event id is applied once. A signed event that
    is malformed, not Portico's or flagged for staff still gets a 200 (`ignored` / `flagged`
    say why), so Stripe does not retry it for days."""
    stripe = request.app[BILLING].stripe
    payload = await request.read()
    event = stripe.verify_event(payload, request.headers.get("Stripe-Signature"))
    result = await stripe.apply_event(event)
    log.info("stripe event %s %s: %s", event.id, event.type, result.result)
    return web.json_response(result.json())
