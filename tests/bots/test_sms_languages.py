"""Each client reads Portico in their language (CONTRACT section 10), end to end: the request
email and SMS prompt in French or Spanish, replies in any language's words (OUI, SI, NON),
answers in the sender's language, and ARRÊT / ALTO as STOP."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from portico.models import Approver, OutboundMessage, SmsOptOut
from tests.support.fake_twilio import post_sms
from tests.support.helpers import create_approval, wait_until

PHONE = "+15550100001"
NBSP = "\u00a0"


async def request_for(stack: Any, *, client_locale: str | None, approver_locale: str | None = None):
    client = await stack.api(
        "POST",
        "/clients",
        201,
        json={"name": "Dana", "email": "dana@client.test", "locale": client_locale},
    )
    project = await stack.api(
        "POST", "/projects", 201, json={"client_id": client["id"], "name": "Cuisine"}
    )
    doc = await stack.api(
        "POST",
        "/documents",
        201,
        json={
            "project_id": project["id"],
            "kind": "change_order",
            "title": "Prises",
            "number": "CO-17",
            "currency": "CAD",
            "line_items": [{"description": "Prise", "quantity": 10, "unit_price_cents": 12500}],
        },
    )
    person: dict[str, Any] = {"name": "Dana Lee", "email": "dana@client.test", "phone": PHONE}
    if approver_locale:
        person["locale"] = approver_locale
    created = await create_approval(stack, doc["id"], approvers=[person], channels=["email", "sms"])
    async with stack.sessions() as session:
        code = await session.scalar(
            select(Approver.sms_code).where(Approver.approval_id == created["id"])
        )
    return created, code


async def prompt(twilio: Any) -> str | None:
    """The text Twilio was asked to deliver (the stored copy has the code masked)."""
    messages = twilio.to(PHONE)
    return messages[0]["Body"] if messages else None


async def sent(stack: Any, channel: str) -> OutboundMessage | None:
    async with stack.sessions() as session:
        return await session.scalar(
            select(OutboundMessage).where(OutboundMessage.channel == channel).limit(1)
        )


async def test_french_client_gets_french_email_and_sms_and_answers_in_french(sms_stack, twilio):
    created, code = await request_for(sms_stack, client_locale="fr")
    sms = await wait_until(lambda: prompt(twilio))
    assert sms.endswith(f"Répondez OUI {code} pour approuver ou NON {code} <motif> pour refuser.")
    assert f"veuillez approuver Ordre de modification CO-17 « Prises » (1{NBSP}250,00{NBSP}$)" in (
        sms
    )
    email = await wait_until(lambda: sent(sms_stack, "email"))
    assert email.subject == "Ordre de modification CO-17 de Acme Builders attend votre approbation"
    assert "Bonjour Dana Lee," in email.body
    assert f"Montant: 1{NBSP}250,00{NBSP}$" in email.body
    assert 'lang="fr"' in (email.html or "")

    status, reply = await post_sms(sms_stack, PHONE, f"Oui {code} parfait")
    assert status == 200
    assert "merci, Dana. Vous avez approuvé Ordre de modification CO-17" in reply
    shown = await sms_stack.api("GET", f"/approvals/{created['id']}")
    assert shown["approvers"][0]["status"] == "approved"
    assert shown["approvers"][0]["notes"] == "parfait"


async def test_spanish_approver_of_a_french_client_reads_spanish(sms_stack, twilio):
    created, code = await request_for(sms_stack, client_locale="fr", approver_locale="es")
    sms = await wait_until(lambda: prompt(twilio))
    assert sms.endswith(f"Responda SI {code} para aprobar o NO {code} <motivo> para rechazar.")
    email = await wait_until(lambda: sent(sms_stack, "email"))
    assert "necesita su aprobación" in email.subject
    assert "Hola, Dana Lee:" in email.body

    status, reply = await post_sms(sms_stack, PHONE, f"NO {code}")  # no reason: asked for one
    assert "para rechazar Orden de cambio CO-17" in reply and "No se cambió nada." in reply
    status, reply = await post_sms(sms_stack, PHONE, f"no {code} demasiado caro")
    assert "gracias, Dana. Rechazó Orden de cambio CO-17" in reply
    shown = await sms_stack.api("GET", f"/approvals/{created['id']}")
    assert shown["approvers"][0]["decline_reason"] == "demasiado caro"


async def test_english_client_keeps_the_contract_prompt(sms_stack, twilio):
    _, code = await request_for(sms_stack, client_locale=None)
    sms = await wait_until(lambda: prompt(twilio))
    assert sms.endswith(f"Reply YES {code} to approve or NO {code} <reason> to decline.")
    status, reply = await post_sms(sms_stack, PHONE, f"SÍ {code}")  # Spanish word, English client
    assert "thank you, Dana. You approved Change order CO-17" in reply


@pytest.mark.parametrize(
    ("word", "locale", "answer"),
    [("ARRÊT", "fr", "Vous êtes désabonné"), ("alto", "es", "Canceló su suscripción")],
)
async def test_stop_words_in_french_and_spanish(sms_stack, twilio, word, locale, answer):
    await request_for(sms_stack, client_locale=locale)
    status, reply = await post_sms(sms_stack, PHONE, word)
    assert status == 200 and answer in reply
    async with sms_stack.sessions() as session:
        row = await session.scalar(select(SmsOptOut).where(SmsOptOut.phone == PHONE))
    assert row is not None and row.opted_out
    status, reply = await post_sms(sms_stack, PHONE, "START")
    assert {"fr": "de nouveau abonné", "es": "Volvió a suscribirse"}[locale] in reply
    status, reply = await post_sms(sms_stack, PHONE, "HELP")
    assert {"fr": "Approbations Acme Builders", "es": "Aprobaciones de Acme Builders"}[locale] in (
        reply
    )


async def test_a_stranger_writing_in_french_is_answered_in_french(sms_stack, twilio):
    status, reply = await post_sms(sms_stack, "+15550177777", "OUI 1234")
    assert status == 200
    assert "ce code ne correspond à aucune demande ouverte" in reply
