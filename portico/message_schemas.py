"""Messages between a client and the business (CONTRACT section 14): what the staff API takes
and answers, and the checks the portal and console forms share with it."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from portico.schemas import Out, Strict, UtcDatetime

BODY_LIMIT = 4000
# Control characters other than tab and line breaks are refused (PostgreSQL cannot store NUL,
# and none of them is text a person typed). At least one character must be visible. Written
# without look-arounds so that pydantic (Rust regex) and JSON Schema (ECMA) read it alike.
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
_VISIBLE = r"[^\s\x00-\x1f\x7f\ufeff]"
BODY_PATTERN = rf"^{_TEXT}*{_VISIBLE}{_TEXT}*$"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Direction = Literal["in", "out"]
Channel = Literal["portal", "sms", "api", "console"]


class MessageIn(Strict):
    """A staff reply sent through the API: the body as given (not trimmed, so the limit the
    schema states is the one applied)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    body: str = Field(
        min_length=1,
        max_length=BODY_LIMIT,
        pattern=BODY_PATTERN,
        description=f"The text, at most {BODY_LIMIT} characters, not only spaces; tabs and line "
        "breaks are kept, other control characters refused.",
    )

    @field_validator("body", mode="before")
    @classmethod
    def _readable(cls, value: Any) -> Any:
        """The pattern's two rules in words (its regex is no message for a person)."""
        if isinstance(value, str) and value:
            if _CONTROL.search(value):
                raise ValueError(
                    "must not contain control characters other than tabs and line breaks"
                )
            if not re.search(_VISIBLE, value):
                raise ValueError("must not be only blank space")
        return value


class MessageOut(Out):
    id: int
    client_id: int
    direction: Direction = Field(description="`in`: from the client; `out`: from the business.")
    author: str = Field(
        description="Who wrote it: `client` (portal), `sms:<phone>`, `api` or `staff:<email>`."
    )
    body: str
    channel: Channel
    created_at: UtcDatetime


class MessageListOut(Out):
    items: list[MessageOut] = Field(description="Oldest first.")


def form_text(raw: str) -> str:
    """A textarea's value as a message: line breaks as `\\n` (what the browser's `maxlength`
    counts), control characters dropped, outer blank space trimmed."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def form_problem(text: str) -> str | None:
    """Why a form's message (after `form_text`) cannot be sent, in words for the writer."""
    if not text:
        return "Please write a message before sending."
    if len(text) > BODY_LIMIT:
        return (
            f"A message can be at most {BODY_LIMIT:,} characters; this one has {len(text):,}. "
            "Please shorten it or send it in parts."
        )
    return None
