"""multipart/related bodies: STOW-RS requests in, WADO-RS answers out.

In: `parse_related_content_type` checks the request's Content-Type (multipart/related with a
`type` the archive stores, and a valid boundary, quoted or not); `MultipartParser` is a push
parser fed the body chunk by chunk, and `iter_parts` the async generator over it, yielding each
part (headers and bytes) as soon as its closing delimiter arrives, so a request of many
instances is never held whole. Each part, the header block and the number of parts are bounded.
Malformed bodies are 400, a wrong Content-Type 415, anything over a bound 413.

Out: `new_boundary`, `related_content_type` and `render_multipart` / `arender_multipart`, which
stream parts whose bodies may be iterables of chunks (the content store's reads).

References: RFC 2046 §5.1.1 (boundary syntax, delimiters, preamble and epilogue), RFC 2387
(multipart/related, `type`, `start`); DICOM PS3.18 §8.6.1.2 (multipart payloads), §10.5.1
(STOW-RS request: `type` application/dicom or application/dicom+json with bulk data parts),
§8.7.3 (WADO-RS multipart answers).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from onerecord.dicom.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from onerecord.dicom.media_type import MediaType, parse_media_type

__all__ = [
    "STOW_ROOT_TYPES",
    "MultipartLimits",
    "MultipartParser",
    "OutgoingPart",
    "Part",
    "PartChunk",
    "PartEnd",
    "RelatedBody",
    "arender_multipart",
    "iter_part_events",
    "iter_parts",
    "new_boundary",
    "parse_related_content_type",
    "related_content_type",
    "render_multipart",
]

#: The `type` parameters a STOW-RS request may carry (PS3.18 §10.5.1); XML metadata is not taken.
STOW_ROOT_TYPES = frozenset({"application/dicom", "application/dicom+json"})

_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*")


@dataclass(frozen=True, slots=True)
class MultipartLimits:
    """Bounds on a multipart body: bytes of one part, of one header block, and parts."""

    max_part_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    max_parts: int = 10_000


@dataclass(frozen=True, slots=True)
class RelatedBody:
    """What a multipart/related Content-Type says: the boundary, the root type, `start`."""

    boundary: str
    type: str
    start: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: its headers (names lower-case, in order) and its bytes."""

    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    @property
    def content_type(self) -> MediaType | None:
        """The part's Content-Type, parsed (400 when malformed), or None when absent."""
        value = self.header("content-type")
        return None if value is None else parse_media_type(value, header="part Content-Type")

    @property
    def content_location(self) -> str | None:
        """The part's Content-Location (how DICOM JSON's BulkDataURI names it), or None."""
        return self.header("content-location")


@dataclass(frozen=True, slots=True)
class PartChunk:
    """Streaming mode: the next bytes of the current part's body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """Streaming mode: the current part's body is complete."""


#: What a streaming parser yields: a part's headers (a `Part` with an empty body), its body in
#: chunks, and its end.
PartEvent = Part | PartChunk | PartEnd


def parse_related_content_type(
    header: str | None, *, accepted_types: frozenset[str] = STOW_ROOT_TYPES
) -> RelatedBody:
    """Check a request's Content-Type is multipart/related of an accepted type (PS3.18 §10.5.1).

    Not multipart/related, or a `type` not in `accepted_types`: 415. No `type`, or a missing or
    malformed boundary: 400.
    """
    if header is None or not header.strip():
        raise UnsupportedMediaType("Content-Type: multipart/related is required")
    media_type = parse_media_type(header)
    if media_type.essence != "multipart/related":
        raise UnsupportedMediaType("Content-Type: multipart/related is required")
    root = media_type.param("type")
    if root is None:
        raise InvalidRequest("Content-Type: multipart/related needs a type parameter")
    root = root.lower()
    if root not in accepted_types:
        raise UnsupportedMediaType(
            f"Content-Type: type {root[:64]!r} is not one of {', '.join(sorted(accepted_types))}"
        )
    boundary = media_type.param("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise InvalidRequest("Content-Type: missing or invalid boundary (RFC 2046 §5.1.1)")
    return RelatedBody(boundary=boundary, type=root, start=media_type.param("start"))


class MultipartParser:
    """A push parser of a multipart body: `feed` chunks, take finished parts, then `close`."""

    def __init__(
        self, boundary: str, limits: MultipartLimits | None = None, *, stream: bool = False
    ) -> None:
        if not _BOUNDARY.fullmatch(boundary):
            raise InvalidRequest("Content-Type: missing or invalid boundary (RFC 2046 §5.1.1)")
        self._limits = limits or MultipartLimits()
        self._dash = b"--" + boundary.encode("ascii")
        self._delimiter = b"\r\n" + self._dash
        self._buf = bytearray()
        self._state = "preamble"
        self._scan = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._count = 0
        # Streaming mode: a part's body is handed on in chunks as it arrives (never held
        # whole), so its size is bounded by the caller, not by max_part_bytes.
        self._stream = stream
        self._events: list[PartEvent] = []

    def feed_events(self, chunk: bytes) -> list[PartEvent]:
        """Streaming mode: take the next chunk; return the headers, body chunks and ends seen."""
        if not self._stream:
            raise TypeError("feed_events needs MultipartParser(..., stream=True)")
        self.feed(chunk)
        events, self._events = self._events, []
        return events

    def feed(self, chunk: bytes) -> list[Part]:
        """Take the next chunk of the body; return the parts it completed."""
        if self._state == "end":
            return []  # the epilogue is ignored (RFC 2046 §5.1.1)
        self._buf += chunk
        parts: list[Part] = []
        while self._step(parts):
            pass
        return parts

    def close(self) -> None:
        """Check the body ended with the close delimiter after at least one part, else 400."""
        if self._state != "end":
            raise InvalidRequest("multipart body ends before its close delimiter")

    def _step(self, parts: list[Part]) -> bool:
        buf = self._buf
        if self._state == "preamble":
            if buf.startswith(self._dash):
                del buf[: len(self._dash)]
                self._state = "after-delimiter"
                return True
            at = buf.find(self._delimiter)
            if at < 0:
                keep = len(self._delimiter) - 1
                if len(buf) > keep:
                    del buf[: len(buf) - keep]
                return False
            del buf[: at + len(self._delimiter)]
            self._state = "after-delimiter"
            return True
        if self._state == "after-delimiter":
            return self._after_delimiter()
        if self._state == "headers":
            return self._read_headers()
        return self._read_body(parts)

    def _after_delimiter(self) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        if buf.startswith(b"--"):
            if self._count == 0:
                raise InvalidRequest("multipart body has no parts")
            self._state = "end"
            buf.clear()
            return False
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > 256:
                raise InvalidRequest("multipart delimiter line is malformed")
            return False
        if buf[:end].strip(b" \t"):
            raise InvalidRequest("multipart delimiter line is malformed")
        del buf[: end + 2]
        self._count += 1
        if self._count > self._limits.max_parts:
            raise PayloadTooLarge(f"multipart body has more than {self._limits.max_parts} parts")
        self._state = "headers"
        return True

    def _read_headers(self) -> bool:
        buf = self._buf
        if buf.startswith(b"\r\n"):
            block = b""
            del buf[:2]
        else:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self._limits.max_header_bytes:
                    raise PayloadTooLarge("multipart part headers too large")
                return False
            if end > self._limits.max_header_bytes:
                raise PayloadTooLarge("multipart part headers too large")
            block = bytes(buf[:end])
            del buf[: end + 4]
        self._headers = _parse_headers(block)
        if self._stream:
            self._events.append(Part(headers=self._headers, body=b""))
        self._state = "body"
        self._scan = 0
        return True

    def _read_body(self, parts: list[Part]) -> bool:
        buf = self._buf
        if self._stream:
            return self._stream_body()
        at = buf.find(self._delimiter, self._scan)
        if at < 0:
            self._scan = max(0, len(buf) - len(self._delimiter) + 1)
            if self._scan > self._limits.max_part_bytes:
                raise PayloadTooLarge(
                    f"a multipart part is over {self._limits.max_part_bytes} bytes"
                )
            return False
        if at > self._limits.max_part_bytes:
            raise PayloadTooLarge(f"a multipart part is over {self._limits.max_part_bytes} bytes")
        with memoryview(buf) as view:
            body = view[:at].tobytes()  # one copy of the part, not two
        parts.append(Part(headers=self._headers, body=body))
        del buf[: at + len(self._delimiter)]
        self._state = "after-delimiter"
        return True

    def _stream_body(self) -> bool:
        buf = self._buf
        at = buf.find(self._delimiter)
        if at < 0:
            keep = len(self._delimiter) - 1  # a delimiter may straddle two chunks
            if len(buf) > keep:
                self._events.append(PartChunk(bytes(buf[: len(buf) - keep])))
                del buf[: len(buf) - keep]
            return False
        if at:
            self._events.append(PartChunk(bytes(buf[:at])))
        self._events.append(PartEnd())
        del buf[: at + len(self._delimiter)]
        self._state = "after-delimiter"
        return True


def _parse_headers(block: bytes) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    if not block:
        return ()
    lines = block.split(b"\r\n")
    if len(lines) > 64:
        raise InvalidRequest("multipart part has too many headers")
    for line in lines:
        m = _HEADER_LINE.fullmatch(line)
        if m is None:
            raise InvalidRequest("multipart part header is malformed")
        try:
            value = m.group(2).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidRequest("multipart part header is not ASCII") from None
        if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
            raise InvalidRequest("multipart part header holds control characters")
        headers.append((m.group(1).decode("ascii").lower(), value))
    return tuple(headers)


async def iter_parts(
    chunks: AsyncIterable[bytes], boundary: str, *, limits: MultipartLimits | None = None
) -> AsyncIterator[Part]:
    """Yield each part of a multipart body as its chunks arrive (400/413 when it breaks)."""
    parser = MultipartParser(boundary, limits)
    async for chunk in chunks:
        for part in parser.feed(chunk):
            yield part
    parser.close()


async def iter_part_events(
    chunks: AsyncIterable[bytes], boundary: str, *, limits: MultipartLimits | None = None
) -> AsyncIterator[PartEvent]:
    """Yield each part's headers, body chunks and end as they arrive (constant memory)."""
    parser = MultipartParser(boundary, limits, stream=True)
    async for chunk in chunks:
        for event in parser.feed_events(chunk):
            yield event
    parser.close()


# --- rendering -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingPart:
    """A part of a multipart answer; `body` bytes, or chunks read as they are sent."""

    content_type: str
    body: bytes | Iterable[bytes] | AsyncIterable[bytes]
    content_location: str | None = None


def new_boundary() -> str:
    """A fresh boundary: 32 random hex digits, which no part's bytes will contain by chance."""
    return secrets.token_hex(16)


def related_content_type(root_type: str, boundary: str, **params: str) -> str:
    """The Content-Type of a multipart/related answer, e.g. `type="application/dicom"`.

    Extra parameters (`transfer_syntax="*"` → `transfer-syntax=*`) follow the type.
    """
    text = f'multipart/related; type="{_checked(root_type)}"'
    for name, value in params.items():
        text += f"; {name.replace('_', '-')}={_checked(value)}"
    return text + f"; boundary={_checked(boundary)}"


def _checked(value: str) -> str:
    if any(c in value for c in '\r\n"'):
        raise ValueError("header value holds CR, LF or a quote")
    return value


def _head(boundary: str, part: OutgoingPart, *, first: bool) -> bytes:
    lines = [("" if first else "\r\n") + f"--{boundary}"]
    lines.append(f"Content-Type: {_checked(part.content_type)}")
    if part.content_location is not None:
        lines.append(f"Content-Location: {_checked(part.content_location)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def render_multipart(parts: Iterable[OutgoingPart], boundary: str) -> Iterator[bytes]:
    """Yield a multipart body part by part, each body chunk as it comes."""
    first = True
    for part in parts:
        yield _head(boundary, part, first=first)
        first = False
        if isinstance(part.body, bytes):
            yield part.body
        elif isinstance(part.body, AsyncIterable):
            raise TypeError("use arender_multipart for asynchronous bodies")
        else:
            yield from part.body
    yield ("" if first else "\r\n").encode() + f"--{boundary}--\r\n".encode("ascii")


async def arender_multipart(
    parts: AsyncIterable[OutgoingPart] | Iterable[OutgoingPart], boundary: str
) -> AsyncIterator[bytes]:
    """Yield a multipart body whose parts and bodies may arrive asynchronously."""
    first = True

    async def each() -> AsyncIterator[OutgoingPart]:
        if isinstance(parts, AsyncIterable):
            async for part in parts:
                yield part
        else:
            for part in parts:
                yield part

    async for part in each():
        yield _head(boundary, part, first=first)
        first = False
        if isinstance(part.body, bytes):
            yield part.body
        elif isinstance(part.body, AsyncIterable):
            async for chunk in part.body:
                yield chunk
        else:
            for chunk in part.body:
                yield chunk
    yield ("" if first else "\r\n").encode() + f"--{boundary}--\r\n".encode("ascii")
