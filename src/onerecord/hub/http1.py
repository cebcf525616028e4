"""A small pooled HTTP/1.1 client for the hub's calls to regions that read a whole answer.

Every hub search makes one such call per region, so its cost is paid four times per search:
measured on this machine, aiohttp spent ≈ 400 µs of CPU per call (a 23 kB searchset over
loopback), this client ≈ 110 µs. It does only what those calls need: a body-less request
(GET, PUT, DELETE), the answer read whole (Content-Length, chunked, or until the connection
closes) with a size limit, keep-alive connections reused per origin, plain TCP or TLS. The
response is parsed by httptools (llhttp, the parser uvicorn uses); retrieves that stream a
document still go through aiohttp (hub/client.py).

Errors follow the RegionClient protocol: no connection → RegionConnectError (retryable);
TLS failure, a broken or unparseable answer → RegionTransportError; too large →
ResponseTooLarge; the caller's timeout → TimeoutError. A kept-alive connection that the region
closed while it was idle fails before any byte of an answer; the request is then sent once
more on a new connection — the hub's calls are idempotent (RFC 9110 §9.2.2, §9.3.1).

References: RFC 9112 §6 (message body length: Content-Length, chunked, close), §9.3
(persistent connections), RFC 9110 §7.2 (Host).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote, urlsplit

import httptools

from onerecord.hub.exchange import (
    RegionConnectError,
    RegionResponse,
    RegionTransportError,
    ResponseTooLarge,
)

__all__ = ["Http1Pool"]

_TARGET_SAFE = "/?&=%:;@!$'()*+,~-._[]"


class _Broken(RegionTransportError):
    """The connection ended before the answer was whole; `answered`: a byte of it had come."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to a region, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[RegionResponse] | None = None
        self._limit = 0
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._answered = False
        self._delimited = True
        self._headers_done = False
        self._keep_alive = False

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # nothing was asked: a region talking out of turn is not reused
            return
        self._answered = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a parse error, or a callback that already failed the answer
            self._fail(RegionTransportError(f"unreadable HTTP answer: {type(exc).__name__}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._delimited:
            self._complete()  # RFC 9112 §6.3: the body ends where the connection does
            return
        waiter.set_exception(_Broken("the region closed the connection", answered=self._answered))

    # httptools callbacks -----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self.parser.get_status_code()
        declared = self._headers.get("content-length", "").strip()
        chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        self._delimited = chunked or bool(declared)
        if declared.isdigit() and int(declared) > self._limit:
            self._fail(
                ResponseTooLarge(
                    f"the answer of {declared} bytes exceeds the hub's limit of {self._limit} bytes"
                )
            )
            raise _Stop

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._limit:
            self._fail(
                ResponseTooLarge(f"the answer exceeds the hub's limit of {self._limit} bytes")
            )
            raise _Stop

    def on_message_complete(self) -> None:
        self._keep_alive = self.parser.should_keep_alive()  # read before the parser resets
        self._complete()

    # the exchange ------------------------------------------------------------------------------

    def send(self, request: bytes, limit: int) -> asyncio.Future[RegionResponse]:
        """Write one request; the future holds its answer (or the exchange's failure)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._limit = limit
        self._status = 0
        self._headers = {}
        self._body = bytearray()
        self._answered = False
        self._delimited = True
        self._headers_done = False
        self._keep_alive = False
        self.transport.write(request)
        return self._waiter

    def reusable(self) -> bool:
        return (
            not self.closed
            and self._keep_alive
            and self._waiter is not None
            and self._waiter.done()
            and not self._waiter.cancelled()
            and self._waiter.exception() is None
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _complete(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(RegionResponse(self._status, self._headers, bytes(self._body)))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()


class _Stop(Exception):
    """Raised from a parser callback to stop reading an answer that has already failed."""


class Http1Pool:
    """Keep-alive connections per origin (scheme, host, port), at most `limit_per_host` busy."""

    def __init__(
        self,
        *,
        keepalive_timeout_s: float = 4.0,
        limit_per_host: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.keepalive_timeout_s = keepalive_timeout_s
        self.limit_per_host = limit_per_host
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._busy: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._open: set[_Connection] = set()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        max_body_bytes: int,
    ) -> RegionResponse:
        """Send a body-less request and read the whole answer within `timeout_s`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegionConnectError(f"cannot connect: not an http(s) URL: {url[:80]}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        target = _target(parts.path or "/", parts.query)
        request = _request_bytes(method, target, parts.netloc, headers)
        busy = self._busy.get(origin)
        if busy is None:
            busy = self._busy[origin] = asyncio.Semaphore(self.limit_per_host)
        async with asyncio.timeout(timeout_s), busy:
            conn, reused = await self._connection(origin)
            try:
                response = await conn.send(request, max_body_bytes)
            except _Broken as exc:
                self._forget(conn)
                if not reused or exc.answered:
                    raise
                # An idle connection the region had closed: nothing was answered, send again.
                conn, _ = await self._connection(origin, fresh=True)
                try:
                    response = await conn.send(request, max_body_bytes)
                except BaseException:
                    self._forget(conn)
                    raise
            except BaseException:
                self._forget(conn)  # timed out, cancelled or failed: never reused mid-answer
                raise
        self._release(origin, conn)
        return response

    async def _connection(
        self, origin: tuple[str, str, int], *, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_timeout_s:
                return conn, True
            self._forget(conn)
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls: Any = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()  # once: it reads the CA store
            tls = self._ssl
        try:
            _transport, conn = await loop.create_connection(
                _Connection, host, port, ssl=tls, server_hostname=host if tls else None
            )
        except ssl.SSLError as exc:
            raise RegionTransportError(f"TLS failure: {exc}") from exc
        except OSError as exc:
            raise RegionConnectError(f"cannot connect: {exc}") from exc
        self._open.add(conn)
        return conn, False

    def _release(self, origin: tuple[str, str, int], conn: _Connection) -> None:
        if not conn.reusable():
            self._forget(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(origin, deque()).append(conn)

    def _forget(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    async def aclose(self) -> None:
        """Close every connection, idle or not."""
        for conn in list(self._open):
            self._forget(conn)
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing


def _target(path: str, query: str) -> str:
    """The request target; anything but printable ASCII is percent-encoded (RFC 3986 §2.1)."""
    target = f"{path}?{query}" if query else path
    if target.isascii() and target.isprintable() and " " not in target:
        return target
    return quote(target, safe=_TARGET_SAFE)


def _request_bytes(method: str, target: str, host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    if method not in ("GET", "HEAD"):
        lines.append("content-length: 0")
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0") or not name or ":" in name:
            raise RegionTransportError(f"refusing to send a malformed header {name[:40]!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
