"""Sinch's error body (`{"error": {code, message, status, details}}`) and the exception that carries it."""

from __future__ import annotations

import json
from collections.abc import Mapping

# google.rpc status names that the Conversation API puts beside the HTTP code.
STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_name(http_status: int) -> str:
    return STATUS_NAMES.get(http_status, "UNKNOWN")


def error_body(http_status: int, message: str) -> dict[str, object]:
    """The JSON document Sinch answers with for every 4xx and 5xx."""
    return {"error": {"code": http_status, "message": message, "status": status_name(http_status), "details": []}}


def error_bytes(http_status: int, message: str) -> bytes:
    return json.dumps(error_body(http_status, message), ensure_ascii=False).encode()


class SinchApiError(Exception):
    """A request the simulated API refuses: the HTTP status, Sinch's message and any extra headers."""

    def __init__(self, http_status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def status(self) -> str:
        return status_name(self.http_status)


def invalid_argument(message: str) -> SinchApiError:
    return SinchApiError(400, message)


def not_found(message: str) -> SinchApiError:
    return SinchApiError(404, message)
