"""Masking of secrets in text kept where operators read it: stored copies of sent messages and
the access log (CONTRACT section 8)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "****"
# Paths whose next segment is a secret token: signing, magic sign-in, pay and share links.
_TOKEN_PATH = re.compile(r"(/(?:s|pay|share|portal/link|staff/link)/)[A-Za-z0-9_\-=%]+")
# Query parameters that carry a secret, e.g. `?token=...`, `&api_key=...` (`;` for `&amp;`).
_SECRET_PARAM = re.compile(
    r"([?&;][\w.\-]*(?:token|secret|key|code|password|signature)[\w.\-]*=)[^&#\s\"'<>]*",
    re.IGNORECASE,
)


def mask_links(text: str) -> str:
    """`.../s/AbC123/approve?token=xyz` -> `.../s/****/approve?token=****`."""
    return _SECRET_PARAM.sub(rf"\g<1>{MASK}", _TOKEN_PATH.sub(rf"\g<1>{MASK}", text))


def mask_values(text: str, values: Iterable[str]) -> str:
    """Every standalone occurrence of one of `values` (e.g. an SMS reply code) masked."""
    for value in values:
        if value:
            text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", MASK, text)
    return text
