"""Connections that cannot starve the server: uvicorn's httptools protocol with the limits it lacks.

uvicorn (0.54, httptools) closes an idle keep-alive connection after a response, and nothing else:
a connection that sends nothing, or its headers one byte a second, or half a body, holds its slot
for as long as the client likes, and headers have no size limit (nginx, envoy and granian time out
header and body reads and cap header size). This subclass adds, per connection:

- a header read timeout: a request's line and headers must arrive within ``header_timeout`` of the
  connection's start or of the previous response; else 408 and close (close alone if nothing came);
- a header size limit: more than ``max_header_bytes`` before the headers end is a 414 if the request
  line alone is that long, else a 431, and the bytes past the limit are never parsed (memory stays
  bounded whatever the client sends);
- a body read timeout: the body must arrive within ``body_timeout`` of the headers; else 408;
- a connection limit whose excess is shed fairly: past ``limit`` connections, a new connection
  closes the one that has waited longest for its request's headers (idle, or slow on purpose), so
  idle and slowloris sockets can delay no complete request; only when every connection is busy
  with a request does the new one get 503.

Hand-written because no library does it (measured in docs/serving.md): uvicorn has none of these
with httptools (h11 has a size limit only), hypercorn and granian have timeouts but no fair
shedding, and cost throughput. Every check is O(1) per event: a dict of the connections waiting
for headers, oldest first, and one timer per connection. And what uvicorn's parser refuses gets
the JSON 400 every other error gets (uvicorn answers it in plain text).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState


class GuardedConfig(Config):
    """uvicorn's Config with the guard's limits (a Config crosses to worker processes pickled)."""

    def __init__(self, app: Any, *, max_header_bytes: int, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedHttpToolsProtocol, **kwargs)
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.connection_limit = kwargs.get("limit_concurrency")
        self.limit_concurrency = None  # uvicorn's own check (a text/plain 503 after the headers) is replaced by the guard's


def error_bytes(status: int, message: str) -> bytes:
    """A complete response ``{"error": message}`` that closes the connection."""
    body = json.dumps({"error": message}).encode()
    head = f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return STATUS_LINE[status] + head.encode() + body


HEADERS, BODY, APP = "headers", "body", "app"  # what the connection waits for: the client's headers, its body, our response


def _waiting(server_state: ServerState) -> dict[GuardedHttpToolsProtocol, None]:
    """The connections waiting for a request's headers, longest-waiting first (a dict keeps order)."""
    return server_state.__dict__.setdefault("waiting_for_headers", {})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    config: GuardedConfig

    def __init__(self, config: GuardedConfig, server_state: ServerState, app_state: dict, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.waiting = _waiting(server_state)
        self.phase = HEADERS
        self.header_bytes = 0
        self.bytes_since_response = 0
        self.line_read = False  # the request line's end has arrived
        self.timer: asyncio.TimerHandle | None = None

    # -- phases ------------------------------------------------------------------------------

    def _set_timer(self, seconds: float | None, callback=None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(seconds, callback) if seconds is not None else None

    def _wait_for_headers(self) -> None:
        self.phase, self.header_bytes, self.bytes_since_response, self.line_read = HEADERS, 0, 0, False
        self.waiting.pop(self, None)
        self.waiting[self] = None
        self._set_timer(self.config.header_timeout, self._header_timeout)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.config.connection_limit
        if limit is not None and len(self.connections) > limit:
            oldest = next(iter(self.waiting), None)
            if oldest is None:  # every connection is busy with a request: this one waits its turn elsewhere
                self._refuse(503, f"the server is at its limit of {limit} connections, all busy: retry")
                return
            oldest._shed()
        self._wait_for_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.pop(self, None)
        self._set_timer(None)
        super().connection_lost(exc)

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close (the request, if any, is not read further)."""
        self.waiting.pop(self, None)
        self._set_timer(None)
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # The app may be waiting for the body: it sees a disconnect, and what it sends is dropped.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(error_bytes(status, message))
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            self.logger.info("%s - %d: %s", client, status, message)
        self.transport.close()

    def _shed(self) -> None:
        """Closed for a new connection: the one that waited longest for its headers."""
        if self.bytes_since_response:
            self._refuse(503, "the server needed this connection for another: the request's headers came too slowly")
        else:
            self.waiting.pop(self, None)
            self._set_timer(None)
            self.transport.close()

    def _header_timeout(self) -> None:
        self.timer = None
        if self.bytes_since_response:
            self._refuse(408, f"the request's headers did not arrive within {self.config.header_timeout:g} s")
        else:  # idle: nothing to answer
            self.waiting.pop(self, None)
            self.transport.close()

    def _body_timeout(self) -> None:
        self.timer = None
        self._refuse(408, f"the request's body did not arrive within {self.config.body_timeout:g} s")

    # -- parsing -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.phase == HEADERS:
            self.bytes_since_response += len(data)
            room = self.config.max_header_bytes - self.header_bytes
            self.line_read = self.line_read or b"\n" in data[:room]
            if len(data) > room:  # parse only what fits: the headers may end within it
                super().data_received(data[:room])
                if self.phase == HEADERS:
                    if not self.transport.is_closing():
                        limit = self.config.max_header_bytes
                        if self.line_read:
                            self._refuse(431, f"the request's line and headers are over the limit of {limit} bytes")
                        else:
                            self._refuse(414, f"the request's line (its URL) is over the limit of {limit} bytes")
                    return
                data = data[room:]
                if self.transport.is_closing():
                    return
            else:
                self.header_bytes += len(data)
        super().data_received(data)
        if self.phase == BODY and self.timer is None and not self.transport.is_closing():
            self._set_timer(self.config.body_timeout, self._body_timeout)

    def send_400_response(self, msg: str) -> None:
        """What the HTTP parser cannot read: uvicorn's 400, in JSON as every other error."""
        self._refuse(400, f"the request is not valid HTTP/1.1 ({msg})")

    def on_headers_complete(self) -> None:
        self.waiting.pop(self, None)
        self.phase = BODY
        self._set_timer(None)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._set_timer(None)
        if self.cycle is not None and self.cycle.response_complete:  # answered before its body was read (413): the next request
            self._wait_for_headers()
        else:
            self.phase = APP

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.phase == APP and not self.transport.is_closing():
            self._wait_for_headers()
