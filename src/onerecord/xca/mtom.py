"""MTOM/XOP for SOAP 1.2: the SOAP part of a request read, a response's parts streamed.

A request arrives either as a plain `application/soap+xml` body or as `multipart/related`
with `type="application/xop+xml"`, whose root part (the `start` Content-ID, else the first
part) is the envelope. A response with documents is written as multipart/related: the root
part holds the envelope with xop:Include references, each further part one document's bytes,
streamed from the store as they are read.

The initiating side reads an answer the same way round (`MtomStream`): the root part first,
bounded and whole, then the one attachment it wants, chunk by chunk as the bytes arrive, so a
document of any size crosses the hub in constant memory.

References: W3C SOAP MTOM §3 (HTTP binding), XOP 1.0 §3–4; IHE ITI TF-2 V.3.6 (MTOM for
ITI-39/43); RFC 2387 (multipart/related: type, start), RFC 2046 §5.1.1 (boundaries: a
delimiter is CRLF "--" boundary, the close delimiter adds "--"), RFC 2392 (cid: URLs).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote

from onerecord.xca.errors import ParseProblem, XcaParseError
from onerecord.xca.xml import MAX_MESSAGE_BYTES

__all__ = [
    "MtomPart",
    "MtomStream",
    "content_id_of",
    "mtom_parts",
    "mtom_response",
    "soap_part",
]

SOAP_XML = "application/soap+xml"
XOP_XML = "application/xop+xml"
_MAX_PARTS = 16
_MAX_HEADER_BYTES = 8 * 1024


def _media(content_type: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into its media type and lower-cased parameter names."""
    if len(content_type) > 1024:
        raise XcaParseError("the Content-Type header is too long")
    message = Message()
    message["content-type"] = content_type
    params = {k.lower(): str(v) for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


def _unsupported(media: str) -> XcaParseError:
    return XcaParseError(
        f"Content-Type {media[:64]} is not SOAP 1.2 ({SOAP_XML}) or MTOM (multipart/related)",
        problem=ParseProblem.SHAPE,
    )


def _mime_parts(content_type: str | None, body: bytes) -> tuple[str, list[tuple[str, str, bytes]]]:
    """Split an MTOM body into (Content-ID, media type, content) parts; return the start id."""
    media, params = _media(content_type or "")
    if media != "multipart/related":
        raise _unsupported(media)
    if params.get("type", "").lower() != XOP_XML:
        raise XcaParseError('an MTOM request needs type="application/xop+xml"')
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= 70:
        raise XcaParseError("the multipart boundary is missing or longer than 70 characters")
    start = params.get("start", "").strip("<>")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise XcaParseError("the multipart body has no complete part")
    parts = chunks[1:-1]
    if len(parts) > _MAX_PARTS:
        raise XcaParseError(f"an MTOM request may hold at most {_MAX_PARTS} parts")
    out: list[tuple[str, str, bytes]] = []
    for raw in parts:
        part = raw[2:] if raw.startswith(b"\r\n") else raw.lstrip(b"\n")
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = part.partition(b"\n\n")
        if not sep or len(head) > _MAX_HEADER_BYTES:
            raise XcaParseError("a MIME part has no header block")
        headers = Message()
        for line in head.decode("latin-1").splitlines():
            name, colon, value = line.partition(":")
            if not colon:
                raise XcaParseError("a MIME part header is not 'Name: value'")
            headers[name.strip()] = value.strip()
        content = content[:-2] if content.endswith(b"\r\n") else content.rstrip(b"\n")
        content_id = (headers.get("content-id") or "").strip().strip("<>")
        part_media, _ = _media(headers.get("content-type") or "")
        out.append((content_id, part_media, content))
    return start, out


def _root(start: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    for index, (content_id, media, content) in enumerate(parts):
        if (start and content_id == start) or (not start and index == 0):
            if media != XOP_XML:
                raise XcaParseError("the MTOM root part must be application/xop+xml")
            if len(content) > MAX_MESSAGE_BYTES:
                raise XcaParseError("the SOAP part is too large", problem=ParseProblem.TOO_LARGE)
            return content
    raise XcaParseError("the MTOM root part (start) is missing")


def soap_part(content_type: str | None, body: bytes) -> bytes:
    """Return the SOAP envelope's bytes from a plain or an MTOM request body."""
    media, _ = _media(content_type or "")
    if media == SOAP_XML:
        return body
    return _root(*_mime_parts(content_type, body))


def mtom_parts(content_type: str | None, body: bytes) -> tuple[bytes, dict[str, bytes]]:
    """Return the SOAP part and the other parts by Content-ID of a plain or MTOM answer.

    References: IHE ITI TF-2 V.3.6 (MTOM/XOP); XOP §3 (cid: references name the Content-ID).
    """
    media, _ = _media(content_type or "")
    if media == SOAP_XML:
        return body, {}
    start, parts = _mime_parts(content_type, body)
    root = _root(start, parts)
    # The root is the one application/xop+xml part; every other part is an attachment.
    return root, {cid: content for cid, media, content in parts if media != XOP_XML}


@dataclass(frozen=True, slots=True)
class MtomPart:
    """One attachment of an MTOM response: its Content-ID, MIME type and bytes as they come."""

    content_id: str
    mime_type: str
    chunks: AsyncIterator[bytes]


def mtom_response(
    envelope: bytes, parts: Sequence[MtomPart], *, action: str
) -> tuple[str, AsyncIterator[bytes]]:
    """Return the Content-Type and the body stream of an MTOM answer with `parts` attached."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    start = f"root.{uuid.uuid4().hex}@onerecord"
    content_type = (
        f'multipart/related; type="{XOP_XML}"; boundary="{boundary}"; '
        f'start="<{start}>"; start-info="{SOAP_XML}"; action="{action}"'
    )

    async def body() -> AsyncIterator[bytes]:
        yield (
            f"--{boundary}\r\n"
            f'Content-Type: {XOP_XML}; charset=UTF-8; type="{SOAP_XML}"\r\n'
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{start}>\r\n\r\n"
        ).encode()
        try:
            yield envelope
            for part in parts:
                yield (
                    f"\r\n--{boundary}\r\n"
                    f"Content-Type: {part.mime_type}\r\n"
                    "Content-Transfer-Encoding: binary\r\n"
                    f"Content-ID: <{part.content_id}>\r\n\r\n"
                ).encode()
                async for chunk in part.chunks:
                    yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()
        finally:
            # A client that hangs up leaves a document half read: close its stream (and its
            # file) now, not when it is collected. Streams never started hold nothing open
            # beyond their file handle, which goes with them.
            for part in parts:
                close = getattr(part.chunks, "aclose", None)
                if close is not None:
                    await close()

    return content_type, body()


# --- the initiating side: an answer read as it arrives ----------------------------------------

_BINARY_ENCODINGS = frozenset({"", "binary", "8bit", "7bit"})
_MAX_PADDING = 64
"""Transport padding (spaces, tabs) allowed between a delimiter and its CRLF (RFC 2046)."""


def content_id_of(href: str) -> str:
    """Return the Content-ID an xop:Include `href` names (`cid:` + the id, %-decoded: RFC 2392)."""
    if href[:4].lower() != "cid:" or len(href) > 1024:
        raise XcaParseError("an xop:Include href is not a cid: URL")
    return unquote(href[4:])


def _part_headers(head: bytes) -> tuple[str, str, str]:
    """Return (Content-ID, media type, transfer encoding) of a part's header block."""
    fields: dict[str, str] = {}
    last = ""
    for line in head.decode("latin-1").split("\r\n") if head else ():
        if line[:1] in (" ", "\t") and last:
            fields[last] = f"{fields[last]} {line.strip()}"  # a folded header line
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            raise XcaParseError("a MIME part header is not 'Name: value'")
        if name in fields and name.startswith("content-"):
            raise XcaParseError(f"a MIME part repeats its {name[:40]} header")
        fields[name] = value.strip()
        last = name
    content_id = fields.get("content-id", "").strip().strip("<>")
    media, _ = _media(fields.get("content-type", ""))
    return content_id, media, fields.get("content-transfer-encoding", "").lower()


class MtomStream:
    """An MTOM answer read as it arrives: the root part whole (bounded), then one part streamed.

    Call `envelope()` once, then `part(content_id)` at most once. `part` skips the parts before
    the one named, reads its header block and returns it with its bytes still to come: its
    `chunks` yield exactly the part's content (a trailing CR/LF of the document included) and
    end at the part's delimiter; nothing is held but one chunk and a delimiter's length.

    Decisions: the root part must be the first part (the `start` one when named), as every
    MTOM sender writes it — a part before it would have to be buffered; a part other than the
    root needs a Content-ID and binary transfer encoding (7bit, 8bit, binary or none); a plain
    `application/soap+xml` answer is read whole within the same bound and has no parts.
    Every framing fault — no boundary, a part too large for the root, a header block too long,
    a missing part, the stream ending before a part's delimiter — is an XcaParseError, raised
    from whichever call meets it (from `chunks` itself for a part that ends early); the
    source's own errors pass through. `aclose()` closes the source.
    """

    def __init__(
        self,
        content_type: str | None,
        source: AsyncIterator[bytes],
        *,
        max_root_bytes: int = MAX_MESSAGE_BYTES,
        max_parts: int = _MAX_PARTS,
    ) -> None:
        media, params = _media(content_type or "")
        self._plain = media == SOAP_XML
        self._delimiter = b""
        self._start = ""
        if not self._plain:
            if media != "multipart/related":
                raise _unsupported(media)
            if params.get("type", "").lower() != XOP_XML:
                raise XcaParseError('an MTOM answer needs type="application/xop+xml"')
            boundary = params.get("boundary", "")
            if not 1 <= len(boundary) <= 70 or not boundary.isascii():
                raise XcaParseError("the multipart boundary is missing, not ASCII or too long")
            self._delimiter = b"\r\n--" + boundary.encode("ascii")
            self._start = params.get("start", "").strip().strip("<>")
        self._source = source
        # The first delimiter may open the body with no CRLF before it: lend it one.
        self._buffer = bytearray() if self._plain else bytearray(b"\r\n")
        self._eof = False
        self._max_root = max_root_bytes
        self._max_parts = max_parts
        self._parts = 0
        self._stage = "new"

    async def _more(self) -> bool:
        """Append the source's next chunk to the buffer; False at its end."""
        if self._eof:
            return False
        try:
            chunk = await anext(self._source)
        except StopAsyncIteration:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    async def _at_least(self, size: int, what: str) -> None:
        while len(self._buffer) < size:
            if not await self._more():
                raise _truncated(what)

    async def _until(self, marker: bytes, limit: int, what: str) -> bytes:
        """Consume the bytes before `marker` (at most `limit`) and the marker; return the bytes."""
        searched = 0
        while True:
            at = self._buffer.find(marker, searched)
            if at > limit or (at < 0 and len(self._buffer) - len(marker) >= limit):
                raise XcaParseError(
                    f"{what} is larger than {limit} bytes", problem=ParseProblem.TOO_LARGE
                )
            if at >= 0:
                out = bytes(self._buffer[:at])
                del self._buffer[: at + len(marker)]
                return out
            searched = max(0, len(self._buffer) - len(marker) + 1)
            if not await self._more():
                raise _truncated(what)

    async def _next_part(self) -> bool:
        """After a delimiter: True when a part follows (its CRLF read), False at the close."""
        await self._at_least(2, "the line after a boundary")
        if self._buffer[:2] == b"--":
            return False
        padding = await self._until(b"\r\n", _MAX_PADDING, "the line after a boundary")
        if padding.strip(b" \t"):
            raise XcaParseError("a multipart boundary is followed by other text than CRLF")
        self._parts += 1
        if self._parts > self._max_parts:
            raise XcaParseError(f"an MTOM answer may hold at most {self._max_parts} parts")
        return True

    async def _headers(self) -> tuple[str, str, str]:
        await self._at_least(2, "a part's header block")
        if self._buffer[:2] == b"\r\n":  # no header fields at all
            del self._buffer[:2]
            return _part_headers(b"")
        return _part_headers(await self._until(b"\r\n\r\n", _MAX_HEADER_BYTES, "a header block"))

    async def _content(self) -> AsyncIterator[bytes]:
        """Yield the current part's bytes up to its delimiter, which is consumed."""
        marker = self._delimiter
        keep = len(marker) - 1  # a delimiter may begin in the last bytes of what is here
        while True:
            at = self._buffer.find(marker)
            if at >= 0:
                if at:
                    yield bytes(self._buffer[:at])
                del self._buffer[: at + len(marker)]
                return
            ready = len(self._buffer) - keep
            if ready > 0:
                out = bytes(self._buffer[:ready])
                del self._buffer[:ready]
                yield out
            if not await self._more():
                raise _truncated("an MTOM part")

    async def envelope(self) -> bytes:
        """Read and return the root part (the SOAP envelope's bytes), at most `max_root_bytes`."""
        if self._stage != "new":
            raise RuntimeError("MtomStream.envelope() is called once, first")
        self._stage = "root"
        if self._plain:
            while await self._more():
                if len(self._buffer) > self._max_root:
                    raise XcaParseError(
                        "the SOAP answer is too large", problem=ParseProblem.TOO_LARGE
                    )
            return bytes(self._buffer)
        await self._until(self._delimiter, _MAX_HEADER_BYTES, "the preamble")
        if not await self._next_part():
            raise XcaParseError("the multipart answer has no part")
        content_id, media, _ = await self._headers()
        if self._start and content_id != self._start:
            raise XcaParseError("the MTOM root part (start) must be the first part")
        if media != XOP_XML:
            raise XcaParseError("the MTOM root part must be application/xop+xml")
        return await self._until(self._delimiter, self._max_root, "the SOAP part")

    async def part(self, content_id: str) -> MtomPart:
        """Skip to the part named `content_id`; return it with its bytes still to be read."""
        if self._stage != "root":
            raise RuntimeError("MtomStream.part() is called once, after envelope()")
        self._stage = "part"
        if self._plain:
            raise XcaParseError("a plain SOAP answer has no MTOM part")
        while await self._next_part():
            found, media, encoding = await self._headers()
            if not found:
                raise XcaParseError("an MTOM part has no Content-ID")
            if found == content_id:
                if encoding not in _BINARY_ENCODINGS:
                    raise XcaParseError("an MTOM part's transfer encoding is not binary")
                return MtomPart(found, media, self._content())
            async for _ in self._content():
                pass  # another part: skipped as it arrives, never held
        raise XcaParseError("the MTOM part an xop:Include names is missing")

    async def finish(self, *, max_bytes: int = 64 * 1024) -> None:
        """Read what follows the part to the source's end (the close delimiter, an epilogue),
        unchecked, so an HTTP connection can be reused; stop after `max_bytes`."""
        while len(self._buffer) <= max_bytes and await self._more():
            pass
        self._buffer.clear()

    async def aclose(self) -> None:
        """Close the source (an HTTP answer: its connection is released)."""
        close = getattr(self._source, "aclose", None)
        if close is not None:
            await close()


def _truncated(what: str) -> XcaParseError:
    return XcaParseError(f"the answer ends inside {what} (truncated)")
