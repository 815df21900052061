"""The access log without secrets: signing, magic, pay and share links carry their token in
the path (`/s/{token}`), so the request line, and any header logged such as the Referer, are
written with tokens and secret query parameters masked (`/s/****`, CONTRACT section 8).

Pass it as `access_log_class` wherever the app is served (`portico web`, `portico dev`).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from portico.redact import mask_links


class MaskedAccessLogger(AccessLogger):
    """aiohttp's access logger (same formats, same `extra` fields), every value masked."""

    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [
            (key, mask_links(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]
