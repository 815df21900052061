"""One inbound SMS/WhatsApp message in, one reply text out: parse it, then let the staff bot
(senders in PORTICO_STAFF_PHONES only) or the client bot carry it out. Anything else a client's
phone sends joins that client's message thread (bots/conversation.py)."""

from __future__ import annotations

from bots import client, conversation, staff
from bots.parse import Help, Unknown, parse
from portico.services.approvals import Portico
from portico.services.messages import ClientMessages


async def reply_to(
    service: Portico,
    messages: ClientMessages,
    sender: str,
    body: str,
    message_sid: str | None,
) -> str:
    """The reply to one inbound message (`sender` as Twilio sends `From`); '' for none."""
    command = parse(body)
    sender_is_staff = staff.is_staff(service.settings, sender)
    company = service.settings.company_name
    if isinstance(command, staff.STAFF_COMMANDS):
        if sender_is_staff:
            return await staff.handle(service, command, sender)
        # Anyone else learns nothing, not even that staff commands exist; from a client's
        # phone it is words for the business ("Status of the roof?").
        joined = await conversation.join_thread(messages, company, sender, body, message_sid)
        return client.unknown_text(company) if joined is None else joined
    if isinstance(command, Help) and sender_is_staff:
        return client.help_text(company) + " " + staff.help_text()
    if isinstance(command, Unknown) and not sender_is_staff:  # a staff phone is no client
        joined = await conversation.join_thread(messages, company, sender, body, message_sid)
        if joined is not None:
            return joined
    return await client.handle(service, command, sender, message_sid, body)
