"""Domain errors with the HTTP status and code the API reports (CONTRACT section 3)."""

from __future__ import annotations


class PorticoError(Exception):
    status = 400
    code = "bad_request"

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


class TooLarge(PorticoError):
    status, code = 413, "too_large"


class Invalid(PorticoError):
    status, code = 422, "invalid"


class Unavailable(PorticoError):
    status, code = 503, "unavailable"
