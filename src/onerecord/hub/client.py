"""The hub's HTTP edge to the regions: the RegionClient protocol, the real and fake clients.

One `AiohttpRegionClient` (a pooled HTTP/1.1 client for whole answers, hub/http1.py, and one
aiohttp.ClientSession for streamed retrieves) serves a whole hub process; `FakeRegionClient`
answers from a table in unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import aiohttp

from onerecord.hub.exchange import (
    RegionConnectError,
    RegionResponse,
    RegionTransportError,
    ResponseTooLarge,
)
from onerecord.hub.http1 import Http1Pool

__all__ = [
    "AiohttpRegionClient",
    "FakeRegionClient",
    "RegionClient",
    "RegionConnectError",
    "RegionResponse",
    "RegionStream",
    "RegionTransportError",
    "ResponseTooLarge",
]

_CHUNK = 64 * 1024


@dataclass(slots=True)
class RegionStream:
    """An answer whose body is read in chunks (ITI-68 retrieve); `close` frees the connection."""

    status: int
    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


class RegionClient(Protocol):
    """Call a region; raise RegionConnectError, RegionTransportError or TimeoutError."""

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse: ...

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        """Send a body-less request (PUT, DELETE …) and read the whole answer."""
        ...

    async def stream(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionStream: ...

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        """POST a body (an XCA SOAP request) and read the whole answer."""
        ...

    async def post_stream(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionStream:
        """POST a body (an XCA ITI-39 request) and read the answer in chunks, as `stream`.

        `timeout_s` bounds connecting and each read; the chunks raise RegionTransportError or
        TimeoutError when the exchange breaks while they are read.
        """
        ...

    async def aclose(self) -> None: ...


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@contextlib.contextmanager
def _transport_errors() -> Iterator[None]:
    """Turn aiohttp's failures into the hub's RegionConnectError / RegionTransportError.

    Timeouts pass through: the fan-out reports them as such.
    """
    try:
        yield
    except TimeoutError:
        raise
    except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
        raise RegionTransportError(f"TLS failure: {exc}") from exc
    except aiohttp.ClientConnectorError as exc:
        raise RegionConnectError(f"cannot connect: {exc.os_error}") from exc
    except aiohttp.ClientError as exc:
        raise RegionTransportError(f"{type(exc).__name__}: {exc}") from exc


class AiohttpRegionClient:
    """The hub's RegionClient: whole answers over a pooled HTTP/1.1 client (hub/http1.py), the
    streamed retrieves over one pooled aiohttp.ClientSession, opened lazily in the loop."""

    def __init__(
        self,
        *,
        limit: int = 256,
        limit_per_host: int = 64,
        keepalive_timeout_s: float = 4.0,
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive = keepalive_timeout_s
        self.max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None
        self._pool = Http1Pool(
            keepalive_timeout_s=keepalive_timeout_s, limit_per_host=limit_per_host
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=300,
            )
            # Deadlines are set per request; the session itself never times out. A region's
            # cookies are never kept nor sent back: the hub's calls carry no session state,
            # and matching a cookie jar costs every request.
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                raise_for_status=False,
            )
        return self._session

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        return await self.send("GET", url, headers=headers, timeout_s=timeout_s)

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        # Whole answers (every search, read and self-service call) take the lean HTTP/1.1
        # client: a quarter of aiohttp's CPU per call (hub/http1.py); retrieves stream below.
        return await self._pool.request(
            method, url, headers=headers, timeout_s=timeout_s, max_body_bytes=self.max_body_bytes
        )

    async def stream(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionStream:
        # The whole body may take longer than `timeout_s` (large documents); the limit applies
        # to connecting and to each read.
        timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
        with _transport_errors():
            resp = await self.session.get(url, headers=dict(headers), timeout=timeout)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                # A break inside the body (a cut connection, a short body) is the hub's
                # RegionTransportError, as it is while connecting.
                with _transport_errors():
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        yield chunk
            finally:
                resp.release()

        async def close() -> None:
            resp.release()

        return RegionStream(resp.status, _lower(resp.headers), chunks(), close)

    async def post_stream(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionStream:
        # As `stream`: the whole answer (a large document) may take longer than `timeout_s`.
        timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
        with _transport_errors():
            resp = await self.session.post(url, data=body, headers=dict(headers), timeout=timeout)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                with _transport_errors():
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        yield chunk
            finally:
                resp.release()

        async def close() -> None:
            resp.release()

        return RegionStream(resp.status, _lower(resp.headers), chunks(), close)

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        with _transport_errors():
            async with asyncio.timeout(timeout_s):
                resp = await self.session.post(url, data=body, headers=dict(headers))
                try:
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        if size > self.max_body_bytes:
                            raise ResponseTooLarge(
                                f"answer larger than {self.max_body_bytes} bytes"
                            )
                        chunks.append(chunk)
                    data = b"".join(chunks)
                finally:
                    resp.release()
        return RegionResponse(resp.status, _lower(resp.headers), data)

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


Handler = Callable[[str, Mapping[str, str]], Awaitable[RegionResponse]]
SendHandler = Callable[[str, str, Mapping[str, str]], Awaitable[RegionResponse]]
"""A fake region's answer to `send`: called with method, URL and headers."""
_H = TypeVar("_H", Handler, SendHandler)


def _longest_prefix(handlers: Mapping[str, _H], url: str) -> _H:
    matches = [p for p in handlers if url.startswith(p)]
    if not matches:
        raise RegionConnectError(f"nothing listens at {url}")
    return handlers[max(matches, key=len)]


@dataclass
class FakeRegionClient:
    """A RegionClient answering from handlers keyed by URL prefix; records every call.

    GETs go to `handlers` (and are recorded in `calls`); other methods go to `send_handlers`
    (recorded in `sent` as method, URL, headers).
    """

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    send_handlers: dict[str, SendHandler] = field(default_factory=dict)
    sent: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    posted: list[bytes] = field(default_factory=list)

    def route(self, prefix: str, handler: Handler) -> None:
        self.handlers[prefix] = handler

    def route_send(self, prefix: str, handler: SendHandler) -> None:
        self.send_handlers[prefix] = handler

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        self.calls.append((url, dict(headers)))
        async with asyncio.timeout(timeout_s):
            return await _longest_prefix(self.handlers, url)(url, headers)

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        if method == "GET":
            return await self.get(url, headers=headers, timeout_s=timeout_s)
        self.sent.append((method, url, dict(headers)))
        async with asyncio.timeout(timeout_s):
            return await _longest_prefix(self.send_handlers, url)(method, url, headers)

    async def stream(
        self, url: str, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionStream:
        response = await self.get(url, headers=headers, timeout_s=timeout_s)

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(response.body), _CHUNK):
                yield response.body[i : i + _CHUNK]

        async def close() -> None:
            return None

        return RegionStream(response.status, response.headers, chunks(), close)

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionResponse:
        self.sent.append(("POST", url, dict(headers)))
        self.posted.append(body)
        async with asyncio.timeout(timeout_s):
            return await _longest_prefix(self.send_handlers, url)("POST", url, headers)

    async def post_stream(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float
    ) -> RegionStream:
        response = await self.post(url, body, headers=headers, timeout_s=timeout_s)

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(response.body), _CHUNK):
                yield response.body[i : i + _CHUNK]

        async def close() -> None:
            return None

        return RegionStream(response.status, response.headers, chunks(), close)

    async def aclose(self) -> None:
        return None
