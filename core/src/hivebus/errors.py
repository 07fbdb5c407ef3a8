"""Errors are exceptions in Python and values on the wire, with this one mapping between them."""

from __future__ import annotations

from hivebus_hookspecs.models import ErrorBody, ErrorCode, ErrorReply

__all__ = ["MAX_MESSAGE_CHARS", "HivebusError", "RemoteError", "status_code"]

# The numeric code that goes into the micro ``Nats-Service-Error-Code`` header.
_STATUS = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNKNOWN_AGENT: 404,
    ErrorCode.UNKNOWN_TASK: 404,
    ErrorCode.AGENT_EXISTS: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.NOT_TASK_OWNER: 403,
    ErrorCode.REJECTED_BY_PLUGIN: 403,
    ErrorCode.NO_AGENT_AVAILABLE: 503,
    ErrorCode.OVER_CAPACITY: 503,
    ErrorCode.MAX_AGENTS_REACHED: 503,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.REPLY_TOO_LARGE: 507,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
}


def status_code(code: ErrorCode) -> int:
    return _STATUS[code]


MAX_MESSAGE_CHARS = 1024
"""An error message travels twice (body and ``Nats-Service-Error`` header): it stays short
whatever the request held, so an error reply always fits in a NATS message."""


class HivebusError(Exception):
    """A failure the caller should see as ``{"ok": false, "error": {code, message}}``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    def to_reply(self) -> ErrorReply:
        return ErrorReply(error=ErrorBody(code=self.code, message=self.message))


class RemoteError(HivebusError):
    """An error reply received by the SDK or client, raised on the caller's side."""
