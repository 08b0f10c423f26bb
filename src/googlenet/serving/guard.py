"""The request guard: the ASGI layer between uvicorn and the app that keeps the server's
contract for every request, whatever the route does.

- the deadline: a request is answered within `timeout_s` of its first byte (stamped by
  googlenet.serving.connection; else of the moment its header was read), upload, decode,
  queue and model all counted: 408 when its body had not all arrived by then, 504 when it
  had; an answer already started is let finish;
- a client that goes away mid-request (ClientDisconnect, from reading its body or from the
  app's watch while it waits) is not an error: nothing is answered, no traceback, one debug
  line;
- anything unexpected is answered 500 in the one error shape and logged once;
- `observe(path, status, seconds)` after each request (the metrics); status None when the
  client went away unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect

from googlenet.serving.connection import FIRST_BYTE
from googlenet.serving.errors import error_body

logger = logging.getLogger("googlenet.serve")
Observer = Callable[[str, int | None, float], None]


async def answer(send: Callable, status: int, message: str) -> None:
    """The error, on a connection then closed (what the client sent may be unread)."""
    body = error_body(message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def expects_body(scope: dict[str, Any]) -> bool:
    headers = dict(scope.get("headers") or ())
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


def header_bytes(scope: dict[str, Any]) -> int:
    return len(scope.get("raw_path") or b"") + sum(len(k) + len(v) + 4 for k, v in scope.get("headers") or ())


class RequestGuard:
    def __init__(self, app: Any, timeout_s: float, observe: Observer | None = None,
                 max_header_bytes: int = 16 * 1024) -> None:
        self.app, self.timeout_s, self.observe = app, timeout_s, observe
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        start = scope.get(FIRST_BYTE, loop.time())
        state = {"status": 0, "received": not expects_body(scope)}

        async def tracked_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                state["received"] = True
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        try:
            if header_bytes(scope) > self.max_header_bytes:  # h11 bounds only a header split in parts
                await answer(tracked_send, 431, f"request header over {self.max_header_bytes} bytes")
                return
            await self.guarded(scope, tracked_receive, tracked_send, start, state)
        finally:
            if self.observe is not None:
                self.observe(scope["path"], state["status"] or None, loop.time() - start)

    async def guarded(self, scope: dict[str, Any], receive: Callable, send: Callable, start: float,
                      state: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self.app(scope, receive, send))
        try:
            remaining = start + self.timeout_s - asyncio.get_running_loop().time()
            await asyncio.wait({task}, timeout=max(0.0, remaining))
        except asyncio.CancelledError:  # uvicorn's graceful-stop deadline passed: answer, don't crash
            await self.stop(task)
            if not state["status"]:
                await answer(send, 503, "the server is stopping; retry on another")
            return
        if not task.done() and state["status"]:
            await asyncio.wait({task})  # the answer is on its way: let it finish
        if task.done():
            await self.outcome(task, send, state)
            return
        await self.stop(task)
        if state["received"]:
            await answer(send, 504, f"no answer within {self.timeout_s:g} s")
        else:
            await answer(send, 408, f"the request was not received within {self.timeout_s:g} s")

    @staticmethod
    async def stop(task: asyncio.Future) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    @staticmethod
    async def outcome(task: asyncio.Future, send: Callable, state: dict[str, Any]) -> None:
        error = task.exception()
        if error is None:
            return
        if isinstance(error, ClientDisconnect):
            logger.debug("the client went away mid-request")
            return
        logger.error("unexpected error answering a request", exc_info=error)
        if not state["status"]:
            await answer(send, 500, "internal error")
