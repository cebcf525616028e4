"""MTOM/XOP for SOAP 1.2: the SOAP part of a request read, a response's parts streamed.

A request arrives either as a plain `application/soap+xml` body or as `multipart/related`
with `type="application/xop+xml"`, whose root part (the `start` Content-ID, else the first
part) is the envelope. A response with documents is written as multipart/related: the root
part holds the envelope with xop:Include references, each further part one document's bytes,
streamed from the store as they are read.

References: W3C SOAP MTOM §3 (HTTP binding), XOP 1.0 §3–4; IHE ITI TF-2 V.3.6 (MTOM for
ITI-39/43); RFC 2387 (multipart/related: type, start), RFC 2046 §5.1.1 (boundaries).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from email.message import Message

from onerecord.xca.errors import ParseProblem, XcaParseError
from onerecord.xca.xml import MAX_MESSAGE_BYTES

__all__ = ["MtomPart", "mtom_parts", "mtom_response", "soap_part"]

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
