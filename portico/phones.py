"""Phone numbers and WhatsApp addresses in one canonical form, for comparing what an approver,
a client, the staff list and an inbound SMS sender call the same number."""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["DASHES", "bare_phone", "normalize_phone"]

# The dash look-alikes phones and word processors put in numbers (and SMS texts).
DASHES: Final = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_WHATSAPP: Final = "whatsapp:"
_PHONE_SEPARATORS: Final = frozenset("-().") | frozenset(DASHES)


def normalize_phone(raw: str) -> str:
    """Canonical phone/address for comparisons.

    Keeps a ``whatsapp:`` prefix (lower-cased), drops whitespace, dashes, parentheses, dots and
    invisible marks (e.g. the direction marks phones add when copying a contact), and keeps a
    leading '+'. ``'whatsapp:+1 (555) 010-0000'`` -> ``'whatsapp:+15550100000'``. Idempotent.
    """
    if not isinstance(raw, str):
        return ""
    kept = "".join(
        ch
        for ch in raw
        if not ch.isspace() and ch not in _PHONE_SEPARATORS and unicodedata.category(ch) != "Cf"
    )
    head = kept[: len(_WHATSAPP)]
    if head.isascii() and head.lower() == _WHATSAPP:
        return _WHATSAPP + kept[len(_WHATSAPP) :]
    return kept


def bare_phone(raw: str) -> str:
    """:func:`normalize_phone` without the ``whatsapp:`` prefix (compare approver vs sender)."""
    phone = normalize_phone(raw)
    return phone.removeprefix(_WHATSAPP)
