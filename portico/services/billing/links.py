"""An invoice's pay link (`/pay/{token}`) and the keys naming its events."""

from __future__ import annotations

import base64
import hashlib
import hmac

from portico.models import Invoice
from portico.settings import Settings


def pay_token(secret_key: str, invoice_id: int, nonce: str) -> str:
    """The invoice's pay/share token: 192 bits, derived with the server secret so the link can
    be shown again (API, reminders, the signing page) while the table keeps only its hash."""
    mac = hmac.new(
        secret_key.encode(), f"invoice-pay:{invoice_id}:{nonce}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def pay_url(settings: Settings, invoice: Invoice) -> str:
    return settings.url(f"/pay/{pay_token(settings.secret_key, invoice.id, invoice.pay_nonce)}")


def sent_key(invoice: Invoice) -> str:
    """The key of an invoice's `invoice.sent` webhook event."""
    return f"invoice-{invoice.id}:sent"
