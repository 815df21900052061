"""Payload encryption (portico.codec): round trips, tampering, key rotation, and an approval
workflow whose history holds no plaintext PII."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.codec import (
    ENCODING,
    KEY_ID,
    CodecError,
    EncryptionCodec,
    codec_from_settings,
    key_id,
    new_key,
    parse_key,
)
from portico.payloads import PorticoPayloadConverter
from portico.settings import Settings
from portico.temporal import data_converter, with_converter
from tests.support.fakes import Recorder
from tests.workflows.test_approval_workflow import make_input, wait_for
from workflows.approval import ApprovalWorkflow
from workflows.types import ApproveRequest, DeclineRequest, Evidence

EMAIL = b"a1@client.test"


def payload(text: bytes = b'{"email": "a1@client.test"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text)


def key_settings(tmp_path, key: str, old: str = "") -> Settings:
    return Settings(
        PORTICO_PAYLOAD_KEY=key, PORTICO_PAYLOAD_KEYS_OLD=old, PORTICO_VAR_DIR=str(tmp_path)
    )


async def test_round_trip_hides_the_plaintext():
    codec = EncryptionCodec(parse_key(new_key()))
    original = [payload(), payload(b"null")]
    encoded = await codec.encode(original)
    assert all(p.metadata["encoding"] == ENCODING for p in encoded)
    assert encoded[0].metadata[KEY_ID] == codec.key_id.encode()
    assert EMAIL not in encoded[0].SerializeToString()
    assert encoded[0].data != (await codec.encode(original))[0].data  # fresh nonce each time
    assert await codec.decode(encoded) == original


async def test_tampered_payload_is_refused():
    codec = EncryptionCodec(parse_key(new_key()))
    (sealed,) = await codec.encode([payload()])
    data = bytearray(sealed.data)
    data[-1] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(data))
    with pytest.raises(CodecError, match="tampered"):
        await codec.decode([tampered])
    metadata = {**sealed.metadata, KEY_ID: b"0123456789abcdef"}
    relabelled = Payload(metadata=metadata, data=sealed.data)
    with pytest.raises(CodecError, match="unknown key id"):
        await codec.decode([relabelled])


async def test_keys_rotate_old_payloads_still_decode():
    old, new = parse_key(new_key()), parse_key(new_key())
    (written_before,) = await EncryptionCodec(old).encode([payload()])
    rotated = EncryptionCodec(new, [old])
    assert await rotated.decode([written_before]) == [payload()]
    (written_after,) = await rotated.encode([payload()])
    assert written_after.metadata[KEY_ID] == key_id(new).encode()
    with pytest.raises(CodecError, match="unknown key id"):
        await EncryptionCodec(new).decode([written_before])  # old key dropped too soon


async def test_plaintext_payloads_pass_through():
    codec = EncryptionCodec(parse_key(new_key()))
    assert await codec.decode([payload()]) == [payload()]


def test_keys_are_base64_of_32_bytes(tmp_path):
    key = new_key()
    assert parse_key(key) == parse_key(key.replace("+", "-").replace("/", "_").rstrip("="))
    for bad in ("c2hvcnQ=", "not base64 at all!"):
        with pytest.raises(ValueError):
            parse_key(bad)
    with pytest.raises(ValueError):
        codec_from_settings(key_settings(tmp_path, "c2hvcnQ="))


def test_data_converter_is_plain_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("PORTICO_PAYLOAD_KEY", raising=False)
    for plain in (data_converter(), data_converter(Settings(PORTICO_VAR_DIR=str(tmp_path)))):
        assert plain.payload_codec is None
        assert plain.payload_converter_class is PorticoPayloadConverter
    encrypted = data_converter(key_settings(tmp_path, new_key()))
    assert isinstance(encrypted.payload_codec, EncryptionCodec)
    assert encrypted.payload_converter_class is PorticoPayloadConverter


def test_empty_environment_values_mean_unset(tmp_path, monkeypatch):
    """docker-compose passes `${PORTICO_PAYLOAD_KEY:-}` as an empty string."""
    monkeypatch.setenv("PORTICO_PAYLOAD_KEY", "")
    monkeypatch.setenv("PORTICO_SMTP_PORT", "")
    settings = Settings(PORTICO_VAR_DIR=str(tmp_path))
    assert settings.payload_key is None and settings.smtp_port is None
    assert codec_from_settings(settings) is None


async def test_workflow_history_holds_no_plaintext_pii(time_env: WorkflowEnvironment, tmp_path):
    settings = key_settings(tmp_path, new_key())
    client = with_converter(time_env.client, settings)
    rec = Recorder()
    queue = f"codec-{uuid.uuid4()}"
    approval_id = uuid.uuid4().int % 1_000_000
    inp = make_input(approval_id, await time_env.get_current_time(), routing="any", n=2)
    async with Worker(
        client, task_queue=queue, workflows=[ApprovalWorkflow], activities=rec.activities()
    ):
        handle = await client.start_workflow(
            ApprovalWorkflow.run, inp, id=f"approval-{approval_id}", task_queue=queue
        )
        await wait_for(lambda: len(rec.emails) == 2)
        assert rec.emails[0].to == "a1@client.test"  # the worker decrypts what it runs

        # A rejected update's message survives encoded failure attributes.
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(
                ApprovalWorkflow.decline,
                DeclineRequest(approver_id=inp.approvers[0].id, reason=" "),
            )
        assert isinstance(info.value.cause, ApplicationError)
        assert info.value.cause.type == "ReasonRequired"
        assert info.value.cause.message == "Please give a reason for declining."

        await handle.execute_update(
            ApprovalWorkflow.approve,
            ApproveRequest(
                approver_id=inp.approvers[0].id,
                signature_name="Approver One",
                consent=True,
                evidence=Evidence(channel="web", ip="203.0.113.9", user_agent="pytest"),
            ),
        )
        result = await handle.result()
        assert result.status == "approved"
        assert result.approvers[0].name == "Approver 1"

    history = await handle.fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)  # payload bytes as stored
    for secret in (EMAIL, b"Approver One", b"+15550000001", b"203.0.113.9", b"Extra outlets"):
        assert secret not in raw, secret
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == ENCODING
    codec = codec_from_settings(settings)
    assert codec is not None
    (decoded,) = await codec.decode(started.input.payloads)
    assert EMAIL in decoded.data  # the check above was looking for something that is there
