"""The `linkify` template filter: a person's text as HTML, every character escaped, with
http(s) addresses turned into links that open apart from the page (`rel="noopener nofollow
noreferrer"`). Nothing else becomes markup, so a message can never carry HTML of its own."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# An http(s) address up to the next space or quote-like character; trailing punctuation that
# usually ends a sentence ("see https://x.test/a.") is left outside the link.
URL = re.compile(r"""\bhttps?://[^\s<>"'`]+""", re.IGNORECASE)
TRAILING = ".,;:!?)]}'\""


def linkify(text: str | None) -> Markup:
    if not text:
        return Markup("")
    parts: list[str] = []
    last = 0
    for match in URL.finditer(text):
        url = match.group(0)
        kept = url.rstrip(TRAILING)
        if ")" in url[len(kept) :] and kept.count("(") > kept.count(")"):
            kept += ")"  # a Wikipedia-style address ending in a bracket of its own
        end = match.start() + len(kept)
        parts.append(str(escape(text[last : match.start()])))
        parts.append(
            f'<a href="{escape(kept)}" rel="noopener nofollow noreferrer" '
            f'target="_blank">{escape(kept)}</a>'
        )
        last = end
    parts.append(str(escape(text[last:])))
    return Markup("".join(parts))
