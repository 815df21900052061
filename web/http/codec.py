"""Remote codec endpoint for the Temporal UI and CLI: `POST /codec/decode` and `/codec/encode`.

Temporal's remote codec protocol: the body is `{"payloads": [...]}` in protobuf JSON (metadata
values and data base64) and the answer has the same shape. The Temporal UI calls it from the
operator's browser, hence CORS for `PORTICO_CODEC_CORS_ORIGIN` (the UI's origin). Every call
needs the staff bearer key; with no `PORTICO_PAYLOAD_KEY` the endpoint is off (404).

    temporal workflow show -w approval-42 \\
        --codec-endpoint http://localhost:8080/codec --codec-auth "Bearer $PORTICO_STAFF_API_KEY"
"""

from __future__ import annotations

import hmac

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from portico.codec import CodecError, EncryptionCodec, codec_from_settings
from portico.settings import Settings
from web.http.keys import SETTINGS

CODEC = web.AppKey("payload_codec", EncryptionCodec)
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


def setup(app: web.Application, settings: Settings) -> None:
    """Register the codec routes; they answer 404 unless payload encryption is on."""
    codec = codec_from_settings(settings)
    if codec is not None:
        app[CODEC] = codec
    for action in ("encode", "decode"):
        app.router.add_route("OPTIONS", f"/codec/{action}", preflight)
        app.router.add_post(f"/codec/{action}", handle, name=f"codec_{action}")


def _origins(settings: Settings) -> list[str]:
    value = settings.codec_cors_origin or ""
    return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]


def _cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    origin = request.headers.get("Origin", "").rstrip("/")
    if origin and origin in _origins(request.app[SETTINGS]):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
    return response


def _error(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    body = {"error": {"code": code, "message": message}}
    return _cors(request, web.json_response(body, status=status))


async def preflight(request: web.Request) -> web.StreamResponse:
    """CORS preflight: browsers send it without credentials, so it needs no key."""
    response = web.Response(status=204)
    if request.headers.get("Origin", "").rstrip("/") in _origins(request.app[SETTINGS]):
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return _cors(request, response)


def _authorized(request: web.Request) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[SETTINGS].staff_api_key
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), expected)


async def handle(request: web.Request) -> web.StreamResponse:
    codec = request.app.get(CODEC)
    if codec is None:
        return _error(request, 404, "codec_disabled", "Payload encryption is off.")
    if not _authorized(request):
        return _error(
            request, 401, "unauthorized", "Send the staff API key as `Authorization: Bearer <key>`."
        )
    try:
        payloads = json_format.Parse(await request.text(), Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as err:
        return _error(request, 400, "bad_request", f"Expected {{payloads: [...]}}: {err}")
    try:
        if request.path.endswith("/encode"):
            result = await codec.encode(payloads.payloads)
        else:
            result = await codec.decode(payloads.payloads)
    except CodecError as err:
        return _error(request, 400, "undecodable", str(err))
    body = json_format.MessageToDict(Payloads(payloads=result))
    return _cors(request, web.json_response({"payloads": body.get("payloads", [])}))
