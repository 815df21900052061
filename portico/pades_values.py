"""The values of the signed PDF's digital signature (portico/pades.py), without pyHanko.

Kept apart so that importing portico/pdf_sandbox.py (every web and worker process does) does
not load pyHanko; only the PDF fork server does, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class TimestampUnavailable(Exception):
    """The timestamp authority did not answer with a usable timestamp."""


@dataclass(frozen=True)
class SigningKey:
    """The business's signing certificate and key (PKCS#12) and the certificate's fingerprint."""

    pkcs12: bytes
    password: bytes | None
    certificate_sha256: str
    subject: str
    self_signed: bool


@dataclass(frozen=True)
class SignRequest:
    key: SigningKey
    # The visible signature's text ("%(ts)s" is the signing time); the PDF job sets it from
    # the certificate (portico/pdf_sandbox.py).
    appearance_text: str = ""
    tsa_url: str | None = None
    # After its retry budget the signing activity signs without a timestamp rather than never.
    timestamp_optional: bool = False
    certify: bool = True  # False when the document already carries signatures


@dataclass(frozen=True)
class Signed:
    data: bytes
    certificate_sha256: str
    timestamped: bool
    timestamp_error: str | None = None  # why a configured TSA's timestamp is missing


@dataclass(frozen=True)
class EmbeddedSignature:
    """A digital signature found in a PDF, as its certificate page shows it."""

    field_name: str
    signer: str
    certificate_sha256: str
    signed_at: datetime | None  # the timestamp's time if there is one, else the signer's claim
    timestamped: bool
    intact: bool  # the bytes it covers are unchanged and the signature is cryptographically sound
    covers_whole_file: bool
    certification: bool
