"""A local fake of the Stripe API for the official `stripe` client: it answers
`POST /v1/checkout/sessions` with a checkout.session shaped like Stripe's own (fields copied from
Stripe's published example objects), records each Idempotency-Key (replaying the first answer
for a repeated key, as Stripe does), serves a stand-in hosted checkout page, and builds signed
webhook events, including the `payment_intent`, `charge` (refunds) and `dispute` objects of a
session's payment."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    """`metadata[invoice_id]=7` → {"invoice_id": "7"} for prefix "metadata"."""
    out = {}
    for key, value in form.items():
        if key.startswith(prefix + "[") and key.endswith("]") and key.count("[") == 1:
            out[key[len(prefix) + 1 : -1]] = value
    return out


def _metadata(form: dict[str, str], prefix: str) -> dict[str, str]:
    """`payment_intent_data[metadata][invoice_id]=7` → {"invoice_id": "7"}."""
    start = prefix + "[metadata]["
    return {k[len(start) : -1]: v for k, v in form.items() if k.startswith(start)}


def _listed(form: dict[str, str], prefix: str) -> list[str]:
    items = sorted(
        (int(k[len(prefix) + 1 : -1]), v)
        for k, v in form.items()
        if k.startswith(prefix + "[") and k[len(prefix) + 1 : -1].isdigit()
    )
    return [v for _, v in items]


@dataclass
class FakeStripe:
    runner: web.AppRunner | None = None
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    idempotency_keys: list[str | None] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the metadata Portico asked for on each session's PaymentIntent (payment_intent_data)
    intent_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    _by_key: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def start(self) -> FakeStripe:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/c/pay/{id}", self._checkout_page)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _create_session(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        key = request.headers.get("Idempotency-Key")
        self.requests.append(form)
        self.idempotency_keys.append(key)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if key and key in self._by_key:
            return web.json_response(self._by_key[key])
        session_id = "cs_test_" + secrets.token_hex(20)
        now = int(time.time())
        session = {
            # the shape of Stripe's example `checkout.session` object
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": int(form["line_items[0][price_data][unit_amount]"]),
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "created": now,
            "currency": form["line_items[0][price_data][currency]"],
            "custom_fields": [],
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": form.get("customer_email"),
            "expires_at": now + 86400,
            "invoice": None,
            "livemode": False,
            "locale": None,
            "metadata": _nested(form, "metadata"),
            "mode": form.get("mode", "payment"),
            "payment_intent": "pi_" + secrets.token_hex(12),
            "payment_link": None,
            "payment_method_collection": "if_required",
            "payment_method_options": {},
            "payment_method_types": _listed(form, "payment_method_types"),
            "payment_status": "unpaid",
            "setup_intent": None,
            "shipping_address_collection": None,
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": form.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{self.base_url}/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        self.intent_metadata[session_id] = _metadata(form, "payment_intent_data")
        if key:
            self._by_key[key] = session
        return web.json_response(session)

    async def _checkout_page(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            raise web.HTTPNotFound()
        return web.Response(
            text=f"<!doctype html><title>Fake Stripe Checkout</title>"
            f"<h1>Fake Stripe Checkout</h1><p>{session['amount_total']} {session['currency']}</p>",
            content_type="text/html",
        )

    # --- webhook events ---------------------------------------------------------------------

    def event(self, event_type: str, session: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """An `event` around a copy of `session` (shape of Stripe's example event)."""
        obj = {**session, **changes}
        if event_type == "checkout.session.completed" or "async_payment" in event_type:
            obj["status"] = "complete"
        return wrap(event_type, obj)

    def payment_intent(self, session: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """The succeeded PaymentIntent of a session's payment (the shape of Stripe's example
        `payment_intent`), with the metadata Portico gave it through `payment_intent_data`."""
        amount = session["amount_total"]
        return {
            "id": session["payment_intent"],
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": amount,
            "capture_method": "automatic",
            "client_secret": f"{session['payment_intent']}_secret_{secrets.token_hex(8)}",
            "created": int(time.time()),
            "currency": session["currency"],
            "customer": None,
            "last_payment_error": None,
            "latest_charge": self.charge_id(session),
            "livemode": False,
            "metadata": dict(self.intent_metadata.get(session["id"], {})),
            "payment_method_types": ["card"],
            "status": "succeeded",
            **changes,
        }

    @staticmethod
    def charge_id(session: dict[str, Any]) -> str:
        return "ch_" + str(session["payment_intent"]).removeprefix("pi_")

    def charge(self, session: dict[str, Any], amount_refunded: int = 0, **changes: Any) -> dict:
        """The `charge` of a session's payment (the fields of Stripe's example charge that
        matter here), refunded by `amount_refunded` in total so far."""
        amount = session["amount_total"]
        return {
            "id": self.charge_id(session),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": amount_refunded,
            "balance_transaction": "txn_" + secrets.token_hex(12),
            "captured": True,
            "created": int(time.time()),
            "currency": session["currency"],
            "customer": None,
            "disputed": False,
            "livemode": False,
            "metadata": {},
            "paid": True,
            "payment_intent": session["payment_intent"],
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
            "refunded": amount_refunded >= amount,
            "status": "succeeded",
            **changes,
        }

    def dispute(
        self, session: dict[str, Any], status: str, amount: int | None = None, **changes: Any
    ) -> dict:
        """The `dispute` of a session's payment (shape of Stripe's example dispute)."""
        return {
            "id": "dp_" + str(session["payment_intent"]).removeprefix("pi_"),
            "object": "dispute",
            "amount": session["amount_total"] if amount is None else amount,
            "balance_transactions": [],
            "charge": self.charge_id(session),
            "created": int(time.time()),
            "currency": session["currency"],
            "evidence_details": {
                "due_by": 1723679999,  # Aug 14, 2024 (UTC)
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": session["payment_intent"],
            "payment_method_details": {"card": {"brand": "visa", "case_type": "chargeback"}},
            "reason": "general",
            "status": status,
            **changes,
        }


def wrap(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An `event` around `obj` (shape of Stripe's example event)."""
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, computed the way Stripe documents it."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def signed(event: dict[str, Any], secret: str, **kw: Any) -> tuple[str, dict[str, str]]:
    payload = json.dumps(event)
    return payload, {
        "Stripe-Signature": sign(payload, secret, **kw),
        "Content-Type": "application/json",
    }
