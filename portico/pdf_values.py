"""The PDF layer's values and limits, without the PDF libraries (reportlab, pypdf).

What web and worker processes hand to the PDF fork server (portico/pdf_sandbox.py) and get
back, kept apart so that importing them loads no PDF library: only the fork server does, once
(about 30 MiB per process less; docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from portico import i18n
from portico.pades_values import EmbeddedSignature

MIB = 1024 * 1024


class InvalidPdf(ValueError):
    """The bytes are not a PDF Portico can use; the message is a sentence for the user."""


@dataclass(frozen=True)
class PdfLimits:
    """How big a PDF Portico accepts (PORTICO_MAX_UPLOAD_BYTES, PORTICO_PDF_MAX_*)."""

    max_bytes: int = 20 * MIB
    max_pages: int = 500
    max_objects: int = 100_000
    max_decompressed_bytes: int = 50 * MIB  # all streams together, once inflated


DEFAULT_LIMITS = PdfLimits()


def size_label(n: int) -> str:
    """`20 MB`, `1.5 MB`, `700 KB`: a size as people read it."""
    if n >= MIB:
        value = n / MIB
        return f"{value:.0f} MB" if n % MIB == 0 else f"{value:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (64 lowercase characters)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CheckedPdf:
    """An accepted PDF: the bytes to store (without active content) and what was removed."""

    data: bytes
    pages: int
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertificateSigner:
    """One signer's evidence as shown on the certificate of completion."""

    name: str
    email: str | None
    phone: str | None
    status: str  # approved / declined / skipped / ...
    channel: str | None  # 'web' | 'sms' | 'upload' | None
    sent_at: datetime | None
    first_viewed_at: datetime | None
    decided_at: datetime | None
    ip: str | None
    user_agent: str | None
    signature_name: str | None
    signature_png: bytes | None
    notes: str | None
    consent: bool
    decline_reason: str | None = None
    portal_client_id: int | None = None  # decided in a client portal session of this client


@dataclass(frozen=True)
class Certificate:
    """Everything the certificate pages and the signature stamp show."""

    approval_id: int
    document_kind: str
    document_title: str
    document_number: str
    document_sha256: str
    amount: str
    status: str
    completed_at: datetime
    company_name: str
    signers: list[CertificateSigner]
    replaced_by_upload: bool = False  # the signer's uploaded PDF is the document of record
    # Digital signatures the document of record already carries (a client signed it in
    # Acrobat): kept valid, so its pages are left as they are (no stamp), and shown as evidence.
    embedded_signatures: tuple[EmbeddedSignature, ...] = ()
    # Who reads it (CONTRACT section 10): the certificate pages and the stamp are in this
    # language, and local times in this IANA zone.
    locale: str = i18n.DEFAULT_LOCALE
    timezone: str = "UTC"
