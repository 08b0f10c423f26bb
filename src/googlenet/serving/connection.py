"""The server's HTTP/1.1 connections: uvicorn's h11 protocol with what it lacks for a server
that faces the internet.

- a header timeout: a connection must send a request's whole header within
  `header_timeout_s` of its first byte (or of opening); else 408, or a silent close when it
  sent nothing (slowloris, idle sockets);
- a connection cap: past `max_connections` open connections a new one is answered 503 at
  once (with Retry-After), before anything is read (uvicorn's `limit_concurrency` answers in
  plain text);
- malformed requests (and headers over h11's incomplete-event size) answered 400 in JSON;
- a graceful stop that does not wait for a stalled upload: a request whose body is still
  arriving when the server stops is answered 503 and dropped; requests already received
  finish (their batch runs), bounded by the request deadline.

It also stamps each request's scope with the loop time of its first byte (`FIRST_BYTE`), so
that the request deadline (googlenet.serving.guard) counts the upload as well.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from googlenet.serving.errors import RETRY_AFTER, raw_response

FIRST_BYTE = "googlenet.first_byte"  # scope key: loop.time() of the request's first byte


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    max_connections: int = 512


class GuardedH11Protocol(H11Protocol):
    def __init__(self, *args: Any, limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.header_timer: asyncio.TimerHandle | None = None
        self.first_byte: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refuse(503, f"the server has {self.limits.max_connections} open connections; "
                             "retry shortly", RETRY_AFTER)
            return
        self.start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_header_timer()
        super().connection_lost(exc)

    def between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        if data and self.between_requests() and self.first_byte is None:
            self.first_byte = self.loop.time()
            self.start_header_timer()  # the keep-alive wait is over: this request's headers now
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle and self.cycle is not None:  # a request's header arrived
            self.stop_header_timer()
            self.scope[FIRST_BYTE] = self.first_byte or self.loop.time()  # type: ignore[literal-required]
            self.first_byte = None

    def start_header_timer(self) -> None:
        self.stop_header_timer()
        self.header_timer = self.loop.call_later(self.limits.header_timeout_s, self.header_timed_out)

    def stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def header_timed_out(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or not self.between_requests():
            return
        if self.first_byte is None:
            self.transport.close()  # an idle connection: nothing to answer
        else:
            self.refuse(408, f"the request header did not arrive within {self.limits.header_timeout_s:g} s")

    def send_400_response(self, msg: str) -> None:
        self.refuse(400, "malformed HTTP request (or a header over the size limit)")

    def refuse(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.stop_header_timer()
        self.transport.write(raw_response(status, message, headers))
        self.transport.close()

    def shutdown(self) -> None:
        """Called by uvicorn when the server stops. A request still uploading its body will
        not be served: it is answered 503 and dropped, so the stop need not wait for it."""
        uploading = (self.cycle is not None and not self.cycle.response_started
                     and self.conn.their_state is h11.SEND_BODY)
        if not uploading:
            super().shutdown()
            return
        self.refuse(503, "the server is stopping; retry on another")
        self.cycle.disconnected = True  # the app's receive() now answers http.disconnect
        self.cycle.message_event.set()
