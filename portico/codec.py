"""Encryption of Temporal payloads (workflow inputs, results, activity arguments, update and
signal arguments), so names, emails and phone numbers are not stored in plaintext in
Temporal's history.

Each payload is serialised as a whole, encrypted with AES-256-GCM under a random 96-bit nonce,
and replaced by a payload with metadata `encoding: binary/encrypted` and the key id. Keys rotate:
new payloads use `PORTICO_PAYLOAD_KEY`; payloads written under an older key decode as long as
that key is listed in `PORTICO_PAYLOAD_KEYS_OLD`. Payloads that were never encrypted (written
before encryption was switched on) pass through unchanged.

Search attributes are not payloads of this kind and stay readable (operators filter on them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

if TYPE_CHECKING:
    from portico.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
CIPHER = "encryption-cipher"
CIPHER_NAME = b"AES-256-GCM"
NONCE_BYTES = 12


class CodecError(ValueError):
    """A payload could not be decrypted: unknown key id, or tampered with."""


def parse_key(value: str) -> bytes:
    """A key from its base64 form (standard or URL-safe alphabet); it must be 32 bytes."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("a payload key must be base64") from err
    if len(raw) != 32:
        raise ValueError(
            f"a payload key must be 32 bytes once base64-decoded, not {len(raw)}; make one with "
            "`python -c 'import os, base64; print(base64.b64encode(os.urandom(32)).decode())'`"
        )
    return raw


def key_id(key: bytes) -> str:
    """A short public name of a key, stored with each payload so the right key is picked."""
    return hashlib.sha256(b"portico-payload-key\x00" + key).hexdigest()[:16]


def new_key() -> str:
    """A fresh random key in the form PORTICO_PAYLOAD_KEY takes."""
    return base64.b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads; decrypts with the current key or any older one."""

    def __init__(self, key: bytes, old_keys: Iterable[bytes] = ()) -> None:
        self._key_id = key_id(key)
        self._current = AESGCM(key)
        self._keys: dict[str, AESGCM] = {key_id(k): AESGCM(k) for k in old_keys}
        self._keys[self._key_id] = self._current

    @property
    def key_id(self) -> str:
        return self._key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        kid = self._key_id.encode()
        sealed = self._current.encrypt(nonce, payload.SerializeToString(), kid)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: kid, CIPHER: CIPHER_NAME},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was switched on
        kid = payload.metadata.get(KEY_ID, b"")
        aead = self._keys.get(kid.decode(errors="replace"))
        if aead is None:
            raise CodecError(
                f"payload encrypted with unknown key id {kid.decode(errors='replace')!r}: "
                "add that key to PORTICO_PAYLOAD_KEYS_OLD"
            )
        data = payload.data
        try:
            plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], kid)
        except InvalidTag as err:
            raise CodecError("payload failed authentication: corrupted or tampered with") from err
        out = Payload()
        out.ParseFromString(plain)
        return out


def codec_from_settings(settings: Settings) -> EncryptionCodec | None:
    """The codec `PORTICO_PAYLOAD_KEY` asks for, or None when encryption is off."""
    if not settings.payload_key:
        return None
    return EncryptionCodec(
        parse_key(settings.payload_key), [parse_key(k) for k in settings.payload_keys_old]
    )
