"""The remote codec endpoint (`/codec/decode`, `/codec/encode`) the Temporal UI calls, and the
whole stack (web + real worker on the dev server) with payload encryption on."""

from __future__ import annotations

import asyncio
import json
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from portico.codec import ENCODING, codec_from_settings, new_key
from portico.settings import Settings
from portico.temporal import with_converter
from tests.conftest import STAFF_KEY, start_stack, venv_binary
from tests.support.helpers import create_approval, outbox, seed_document, wait_until
from web.app import create_app

UI = "http://localhost:8233"
AUTH = {"Authorization": f"Bearer {STAFF_KEY}"}


async def temporal_cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        venv_binary("temporal"), *args, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return out.decode()


def first_payload(history_json: str) -> Payload:
    """The workflow input in `temporal workflow show --output json` (protobuf JSON)."""
    started = json.loads(history_json)["events"][0]["workflowExecutionStartedEventAttributes"]
    return from_json(started["input"])[0]


def as_json(payloads: list[Payload]) -> dict:
    return {"payloads": json_format.MessageToDict(Payloads(payloads=payloads))["payloads"]}


def from_json(body: dict) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


@pytest.fixture
def encrypted(settings: Settings) -> Settings:
    return settings.model_copy(update={"payload_key": new_key(), "codec_cors_origin": UI})


@pytest.fixture
async def http(encrypted: Settings) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(encrypted)))
    await client.start_server()
    yield client
    await client.close()


async def test_decode_returns_the_original(http, encrypted):
    codec = codec_from_settings(encrypted)
    assert codec is not None
    original = [Payload(metadata={"encoding": b"json/plain"}, data=b'{"to": "a1@client.test"}')]
    sealed = await codec.encode(original)
    response = await http.post("/codec/decode", json=as_json(sealed), headers=AUTH)
    assert response.status == 200
    assert from_json(await response.json()) == original

    response = await http.post("/codec/encode", json=as_json(original), headers=AUTH)
    assert response.status == 200
    encoded = from_json(await response.json())
    assert encoded[0].metadata["encoding"] == ENCODING
    assert await codec.decode(encoded) == original


async def test_codec_needs_the_staff_key_and_refuses_tampering(http, encrypted):
    codec = codec_from_settings(encrypted)
    assert codec is not None
    sealed = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await http.post("/codec/decode", json=as_json(sealed), headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
    flipped = bytes([sealed[0].data[-1] ^ 0x01])  # always a change, whatever the byte was
    broken = Payload(metadata=dict(sealed[0].metadata), data=sealed[0].data[:-1] + flipped)
    response = await http.post("/codec/decode", json=as_json([broken]), headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "undecodable"
    response = await http.post("/codec/decode", data="not json", headers=AUTH)
    assert response.status == 400


async def test_cors_lets_the_temporal_ui_call_it(http, encrypted):
    codec = codec_from_settings(encrypted)
    assert codec is not None
    preflight = await http.options(
        "/codec/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == UI
    assert "X-Namespace" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    sealed = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    response = await http.post(
        "/codec/decode", json=as_json(sealed), headers={**AUTH, "Origin": UI, "X-Namespace": "x"}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == UI
    other = await http.options("/codec/decode", headers={"Origin": "http://evil.test"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_codec_is_off_without_a_payload_key(settings):
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        response = await client.post("/codec/decode", json={"payloads": []}, headers=AUTH)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "codec_disabled"
    finally:
        await client.close()


async def test_stack_runs_encrypted_and_the_codec_reads_its_history(encrypted, sessions, dev_env):
    temporal = with_converter(dev_env.client, encrypted)
    async for stack in start_stack(encrypted, sessions, temporal):
        document = await seed_document(stack)
        created = await create_approval(stack, document["id"], n=1)
        mail = await wait_until(lambda: outbox(sessions, "a1@client.test"))
        assert "CO-17" in mail[0].subject  # the real worker decrypted its input and activities
        shown = await stack.api("GET", f"/approvals/{created['id']}", 200)
        assert shown["approvers"][0]["name"] == "Approver 1"

        history = await temporal.get_workflow_handle(created["workflow_id"]).fetch_history()
        raw = b"".join(event.SerializeToString() for event in history.events)
        assert b"a1@client.test" not in raw
        started = history.events[0].workflow_execution_started_event_attributes
        response = await stack.http.post(
            "/codec/decode", json=as_json(list(started.input.payloads)), headers=AUTH
        )
        assert response.status == 200
        (decoded,) = from_json(await response.json())
        assert b"a1@client.test" in decoded.data

        # Temporal's own codec client (the CLI, like the UI) speaks the same protocol.
        address = dev_env.client.service_client.config.target_host
        codec_url = str(stack.http.make_url("/codec"))
        shown = await temporal_cli(
            "workflow", "show", "-w", created["workflow_id"], "--address", address,
            "--output", "json", "--codec-endpoint", codec_url,
            "--codec-auth", f"Bearer {STAFF_KEY}",
        )  # fmt: skip
        assert b"a1@client.test" in first_payload(shown).data
        raw_show = await temporal_cli(
            "workflow", "show", "-w", created["workflow_id"], "--address", address,
            "--output", "json",
        )  # fmt: skip
        assert first_payload(raw_show).metadata["encoding"] == ENCODING
        await stack.api("POST", f"/approvals/{created['id']}/void", 200, json={})
