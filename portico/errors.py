"""Domain errors with the HTTP status and code the API reports (CONTRACT section 3)."""

from __future__ import annotations


class PorticoError(Exception):
    status = 400
    code = "bad_request"
    retry_after: int | None = None  # seconds, sent as `Retry-After` when set

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(PorticoError):
    status, code = 400, "bad_request"


class Unauthorized(PorticoError):
    status, code = 401, "unauthorized"


class Forbidden(PorticoError):
    status, code = 403, "forbidden"


class NotFound(PorticoError):
    status, code = 404, "not_found"


class Conflict(PorticoError):
    status, code = 409, "conflict"


class NotReady(Conflict):
    """Something the worker is still making (a signed PDF): ask again in `retry_after` seconds.

    The API answers 409 with `Retry-After`; pages answer 202 with a page that refreshes itself
    (web/http/errors.py). Nothing waits for the worker inside a request."""

    code = "not_ready"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 3) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class TooLarge(PorticoError):
    status, code = 413, "too_large"


class UnsupportedMediaType(PorticoError):
    status, code = 415, "unsupported_media_type"


class Invalid(PorticoError):
    status, code = 422, "invalid"


class Unavailable(PorticoError):
    status, code = 503, "unavailable"
