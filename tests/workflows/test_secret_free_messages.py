"""The workflow never holds an approver's link or reply code: what it asks the send activities
for names the approver and carries placeholders the activity fills in (CONTRACT section 8)."""

from __future__ import annotations

from datetime import timedelta

from tests.workflows.test_approval_workflow import started, wait_for
from workflows.types import SIGN_URL, SMS_CODE


async def test_prompts_reminders_and_the_signed_copy_carry_placeholders(time_env):
    async with started(time_env, "sequential", n=1, links=False, remind_every_days=1) as run:
        approver = run.inp.approvers[0]
        await wait_for(lambda: run.rec.emails and run.rec.sms)
        await time_env.sleep(timedelta(days=1, hours=1))
        await wait_for(lambda: len(run.rec.sms) >= 2)  # the reminder
        assert await run.approve(approver.id) == "approved"
        await wait_for(lambda: run.rec.emails_to(approver.email, "completed_copy"))
        # the completion text goes out in the background, apart from the email
        await wait_for(lambda: len([m for m in run.rec.sms if m.to == approver.phone]) >= 3)

    mine = [e for e in run.rec.emails if e.to == approver.email]
    assert [e.template for e in mine] == ["request", "reminder", "completed_copy"]
    for email in mine:
        assert email.approver_id == approver.id
        assert email.context["sign_url"] == SIGN_URL
    texts = [m for m in run.rec.sms if m.to == approver.phone]
    assert len(texts) == 3
    for sms in texts:
        assert sms.approver_id == approver.id
        assert SIGN_URL in sms.body
    assert texts[0].body.endswith(
        f"Reply YES {SMS_CODE} to approve or NO {SMS_CODE} <reason> to decline."
    )
    # Staff notices are about the request, not to an approver: nothing to fill in.
    staff = [e for e in run.rec.emails if e.to == "office@firm.test"]
    assert staff and all(e.approver_id is None for e in staff)
