"""One inbound SMS/WhatsApp message in, one reply text out: parse it, then let the staff bot
(senders in PORTICO_STAFF_PHONES only) or the client bot carry it out."""

from __future__ import annotations

from bots import client, staff
from bots.parse import Help, parse
from portico.services.approvals import Portico


async def reply_to(service: Portico, sender: str, body: str, message_sid: str | None) -> str:
    """The reply to one inbound message (`sender` as Twilio sends `From`)."""
    command = parse(body)
    sender_is_staff = staff.is_staff(service.settings, sender)
    if isinstance(command, staff.STAFF_COMMANDS):
        if sender_is_staff:
            return await staff.handle(service, command, sender)
        # Anyone else learns nothing, not even that staff commands exist.
        return client.unknown_text(service.settings.company_name)
    if isinstance(command, Help) and sender_is_staff:
        return client.help_text(service.settings.company_name) + " " + staff.help_text()
    return await client.handle(service, command, sender, message_sid, body)
