"""Fixtures of the SMS bot tests: a fake Twilio and the stack pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import Stack
from tests.support.fake_twilio import FakeTwilio, running_fake, stack_with_fake


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async for fake in running_fake():
        yield fake


@pytest.fixture
async def sms_stack(settings, sessions, dev_env, twilio) -> AsyncIterator[Stack]:
    async for stack in stack_with_fake(settings, sessions, dev_env.client, twilio):
        yield stack
