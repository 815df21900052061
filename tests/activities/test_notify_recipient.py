"""Who a message goes to is read when it is sent: an approver who is not there fails it."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from tests.support.helpers import outbox
from workflows.types import SIGN_URL, EmailMessage, SmsMessage


async def test_a_message_for_an_approver_who_does_not_exist_is_not_sent(settings, sessions):
    notify = NotifyActivities(settings, sessions)
    email = EmailMessage(
        dedupe_key="test:nobody:email",
        to="nobody@client.test",
        template="request",
        context={"sign_url": SIGN_URL, "approver_name": "Nobody"},
        approver_id=987654,
    )
    sms = SmsMessage(
        dedupe_key="test:nobody:sms",
        to="+15145550199",
        body="Reply YES to approve",
        approver_id=987654,
    )
    for sending in (notify.send_email(email), notify.send_sms(sms)):
        with pytest.raises(ApplicationError) as failed:
            await sending
        assert failed.value.type == "UnknownApprover" and failed.value.non_retryable
    assert await outbox(sessions) == []
