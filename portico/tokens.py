"""Unguessable link tokens (stored only as hashes), SMS codes and CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_token() -> str:
    """A URL-safe random token with 192 bits of entropy."""
    return secrets.token_urlsafe(24)


def new_nonce() -> str:
    """A random value stored next to a derived token's hash (see `signing_token`)."""
    return secrets.token_hex(16)


def signing_token(secret_key: str, approver_id: int, nonce: str) -> str:
    """An approver's signing-link token: 192 bits derived from PORTICO_SECRET_KEY, so the
    worker can put the link in a message without it ever travelling through Temporal, while
    the database keeps only its hash. The stored random nonce makes it unguessable from the
    approver id and never the same twice, even for an id reused after a database restore."""
    mac = hmac.new(
        secret_key.encode(), f"sign:{approver_id}:{nonce}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_sms_code() -> str:
    """A 4-digit code an approver types in an SMS reply; only valid from their own number."""
    return f"{secrets.randbelow(9000) + 1000}"


def csrf_token(secret_key: str, scope: str) -> str:
    """A CSRF token bound to one scope (a signing link's hash or a portal session)."""
    return hmac.new(secret_key.encode(), b"csrf:" + scope.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret_key: str, scope: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(secret_key, scope), str(token))
