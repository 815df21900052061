"""Free text from a client's phone joins their message thread (CONTRACT section 14).

An inbound text that is no reply command (YES/NO/HELP/STOP/START) and comes from a number that
is a client's phone (and not a staff phone) is recorded in that client's thread, and staff are
told, instead of the "did not understand" answer. The sender gets a short acknowledgement, so
they know it reached a person and was not taken for a command, unless they replied STOP (we then
text them nothing). A number that is no client's keeps the usual answer, and a stranger learns
nothing from it.
"""

from __future__ import annotations

from portico.message_schemas import BODY_LIMIT, form_text
from portico.phones import bare_phone
from portico.services.messages import ClientMessages


def acknowledgement(company: str) -> str:
    return f"{company}: thank you, your message has reached us. We will answer soon."


async def join_thread(
    messages: ClientMessages, company: str, sender: str, body: str, sid: str | None
) -> str | None:
    """The answer to `body` once it joined the sender's client thread; None when the sender is
    no client (or said nothing), for the caller's usual answer."""
    text = form_text(body)[:BODY_LIMIT]
    if not text:
        return None
    client = await messages.client_with_phone(sender)
    if client is None:
        return None
    phone = bare_phone(sender)
    await messages.from_client(
        client.id,
        text,
        channel="sms",
        author=f"sms:{phone}",
        dedupe_key=f"sms:{sid}" if sid else None,  # Twilio may deliver one message twice
    )
    if await messages.opted_out(phone):
        return ""
    return acknowledgement(company)
