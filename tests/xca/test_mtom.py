"""MTOM/XOP: the network's captured MTOM request read, our answers read back, bytes streamed."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from onerecord.xca import parse_envelope, parse_retrieve_request
from onerecord.xca.errors import XcaParseError
from onerecord.xca.mtom import MtomPart, mtom_response, soap_part
from onerecord.xca.saml import (
    TrustedIssuer,
    XuaSettings,
    certificate_from_key_info,
    verify_assertion,
)
from tests.xca.saml_support import CAPTURED, captured_soap_part
from tests.xca.test_equivalence import ISSUED
from tests.xca.vectors import vector


def _captured_content_type(raw: bytes) -> str:
    boundary = raw.split(b"\n", 1)[0].strip()[2:].decode()
    start = raw.split(b"Content-ID: ", 1)[1].split(b"\n", 1)[0].strip().decode()
    return (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
        f'start="{start}"; start-info="application/soap+xml"'
    )


def test_the_captured_mtom_request_is_read_and_its_assertion_verifies() -> None:
    raw = vector(CAPTURED)
    part = soap_part(_captured_content_type(raw), raw)
    # The capture is Latin-1 (README): re-encoded, it is exactly the SOAP part the tests use.
    soap = part.decode("latin-1").strip().encode("utf-8")
    assert soap == captured_soap_part()
    envelope = parse_envelope(soap)
    requests = parse_retrieve_request(envelope.body, require_community=True)
    assert requests and all(r.home_community_id is not None for r in requests)
    settings = XuaSettings(
        issuers=(
            TrustedIssuer(
                "https://helseid-xdssaml.test.nhn.no",
                (certificate_from_key_info(envelope.assertion),),
            ),
        ),
        audiences=frozenset({"nhn:dokumentdeling-saml"}),
    )
    assert verify_assertion(envelope.assertion, settings, now=ISSUED).issuer


def test_a_plain_soap_body_is_itself() -> None:
    assert soap_part("application/soap+xml; charset=UTF-8", b"<x/>") == b"<x/>"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/xml",
        "multipart/related; boundary=b",  # no type=application/xop+xml
        'multipart/related; type="application/xop+xml"',  # no boundary
        "",
    ],
)
def test_other_media_types_are_refused(content_type: str) -> None:
    with pytest.raises(XcaParseError):
        soap_part(content_type, b"--b\r\n\r\n<x/>\r\n--b--")


async def _chunks(data: list[bytes], produced: list[int]) -> AsyncIterator[bytes]:
    for index, chunk in enumerate(data):
        produced.append(index)
        yield chunk


@pytest.mark.anyio
async def test_our_answer_reads_back_and_streams_each_document_as_it_is_read() -> None:
    produced: list[int] = []
    document = [b"%PDF-1.4\r\n", b"x" * 1000, b"\r\n%%EOF\r\n"]
    content_type, body = mtom_response(
        b"<env/>",
        [MtomPart("doc1@test", "application/pdf", _chunks(document, produced))],
        action="urn:ihe:iti:2007:CrossGatewayRetrieveResponse",
    )
    received: list[bytes] = []
    async for piece in body:
        received.append(piece)
        if piece == document[0]:
            # The first chunk went out before the store was asked for the second.
            assert produced == [0]
    whole = b"".join(received)
    assert produced == [0, 1, 2]
    assert soap_part(content_type, whole) == b"<env/>"
    # The document's exact bytes, CR/LF at its ends included, sit between the part's
    # header block and the next delimiter.
    assert b"Content-ID: <doc1@test>\r\n\r\n" + b"".join(document) + b"\r\n--MIMEBoundary_" in whole


@pytest.mark.anyio
async def test_a_hung_up_client_closes_the_store_stream_being_read() -> None:
    closed: list[str] = []

    async def stream(name: str) -> AsyncIterator[bytes]:
        try:
            for _ in range(3):
                yield name.encode() * 10
        finally:
            closed.append(name)

    parts = [MtomPart(f"{n}@test", "text/plain", stream(n)) for n in ("a", "b")]
    _, body = mtom_response(b"<env/>", parts, action="x")
    assert isinstance(body, AsyncGenerator)
    async for piece in body:
        if piece == b"a" * 10:
            break  # the client hangs up in the middle of the first document
    await body.aclose()
    assert closed == ["a"]  # closed at once, not when collected; "b" was never started
