"""Delivering webhook rows (portico/webhooks.py) for WebhookDeliveryWorkflow: each attempt
reads the delivery, its event and endpoint from SQL (so the URL, payload and secret never enter
the workflow's history), stops for a deleted endpoint or a finished delivery, POSTs the event
signed per Standard Webhooks and records what came back."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from portico.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, utcnow
from portico.services import webhooks
from portico.settings import Settings
from workflows.types import DELIVER_WEBHOOK as DELIVER
from workflows.types import FINISH_WEBHOOK as FINISH
from workflows.types import WebhookOutcome


class WebhookActivities:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions

    @activity.defn(name=DELIVER)
    async def deliver(self, delivery_id: int) -> str:
        """One attempt; returns the delivery's status once it is no longer pending, raises
        (retried by Temporal) while the receiver fails."""
        async with self.sessions() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                raise ApplicationError(
                    f"Webhook delivery {delivery_id} does not exist.",
                    type="UnknownDelivery",
                    non_retryable=True,
                )
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
            event = await session.get(WebhookEvent, delivery.event_id)
        assert endpoint is not None and event is not None
        if delivery.status != webhooks.PENDING:
            return delivery.status  # delivered already, or ended (endpoint deleted)
        if endpoint.deleted_at is not None:
            raise ApplicationError(
                "The endpoint was deleted.", type="EndpointGone", non_retryable=True
            )
        body = webhooks.payload(event)
        secret = webhooks.unseal(self.settings.secret_key, endpoint.secret_sealed)
        headers = webhooks.signed_headers(secret, event.public_id, body, utcnow())
        attempt = await webhooks.post(
            endpoint.url,
            headers,
            body,
            timeout=self.settings.webhook_timeout_seconds,
            allow_private=self.settings.webhooks_allow_private,
        )
        await self._note(delivery_id, attempt)
        if attempt.ok:
            return webhooks.DELIVERED
        reason = attempt.error or f"The receiver answered {attempt.status_code}."
        raise ApplicationError(
            reason,
            type="RefusedReceiver" if attempt.refused else "ReceiverFailed",
            non_retryable=attempt.refused,
        )

    async def _note(self, delivery_id: int, attempt: webhooks.Attempt) -> None:
        now = utcnow()
        async with self.sessions() as session, session.begin():
            row = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if row is None:
                return
            row.attempts += 1
            row.last_status_code = attempt.status_code
            row.last_response = attempt.response
            row.last_error = None if attempt.ok else attempt.error
            if attempt.ok:
                row.status = webhooks.DELIVERED
                row.delivered_at = now
                row.next_attempt_at = None
            elif row.status == webhooks.PENDING and not attempt.refused:
                tries = activity.info().attempt
                row.next_attempt_at = webhooks.next_attempt_at(self.settings, tries, now)

    @activity.defn(name=FINISH)
    async def finish(self, outcome: WebhookOutcome) -> None:
        """Record how the delivery ended (once): a delivery given up on is `failed`."""
        async with self.sessions() as session, session.begin():
            row = await session.get(WebhookDelivery, outcome.delivery_id, with_for_update=True)
            if row is None or row.status != webhooks.PENDING:
                return
            row.status = outcome.status
            row.next_attempt_at = None
            if outcome.status == webhooks.FAILED:
                row.last_error = (outcome.error or row.last_error or "gave up")[:2000]
