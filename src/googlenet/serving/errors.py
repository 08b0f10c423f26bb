"""The server's one error shape, `{"error": "..."}`, for every status and every layer: the
app's refusals, the request guard's timeouts, and the connection's own answers."""

from __future__ import annotations

import json
from http import HTTPStatus

from fastapi import HTTPException

# a busy server's 503 (its queue or its connections full): worth trying again in a second
RETRY_AFTER = {"Retry-After": "1"}


class ClientError(HTTPException):
    """A request the server refuses; `detail` names the problem."""


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def raw_response(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, for where no app is running yet
    (the connection cap, a header timeout, a malformed request, a stop mid-upload)."""
    body = error_body(message)
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    extra = "".join(f"{name.lower()}: {value}\r\n" for name, value in (headers or {}).items())
    head = (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n{extra}"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body
