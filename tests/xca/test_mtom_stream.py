"""The initiating side's MTOM reader (`MtomStream`): split anywhere, the same bytes; bad framing
refused with an XcaParseError, never anything else; the document passed on as it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onerecord.xca.errors import ParseProblem, XcaParseError
from onerecord.xca.mtom import MtomPart, MtomStream, content_id_of, mtom_response

ENVELOPE = b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"/>'
BOUNDARY = "MIMEBoundary_test"
CONTENT_TYPE = (
    f'multipart/related; type="application/xop+xml"; boundary="{BOUNDARY}"; '
    'start="<root@test>"; start-info="application/soap+xml"'
)


async def _from(pieces: Sequence[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _answer(documents: Sequence[tuple[str, bytes]]) -> tuple[str, bytes]:
    """An MTOM answer as the responding gateway writes it (mtom_response), joined."""
    parts = [MtomPart(cid, "application/pdf", _from([content])) for cid, content in documents]
    content_type, body = mtom_response(ENVELOPE, parts, action="urn:test")

    async def join() -> bytes:
        return b"".join([piece async for piece in body])

    return content_type, asyncio.run(join())


def _split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


async def _read(
    content_type: str | None, pieces: Sequence[bytes], wanted: str, **limits: int
) -> tuple[bytes, str, bytes]:
    stream = MtomStream(content_type, _from(pieces), **limits)
    try:
        envelope = await stream.envelope()
        part = await stream.part(wanted)
        return envelope, part.mime_type, b"".join([c async for c in part.chunks])
    finally:
        await stream.aclose()


def _multipart(*parts: bytes, boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """Hand-made framing: each part is its header block + CRLF CRLF + content."""
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


ROOT = b"Content-Type: application/xop+xml\r\nContent-ID: <root@test>\r\n\r\n" + ENVELOPE
DOC = b"Content-Type: application/pdf\r\nContent-ID: <doc@test>\r\n\r\n%PDF-1.4\r\n"


# Documents whose bytes look like framing: CR/LF at either end, a delimiter's beginning, the
# boundary without its leading CRLF.
TRICKY = [
    b"",
    b"\r\n",
    b"%PDF-1.4\r\n%%EOF\r\n",
    b"\r\n\r\n--MIMEBoundary",
    b"--" + BOUNDARY.encode() + b"--",
    b"\n--" + BOUNDARY.encode(),
    bytes(range(256)) * 3,
]


@settings(max_examples=200, deadline=None)
@given(
    document=st.one_of(st.sampled_from(TRICKY), st.binary(max_size=3000)),
    before=st.binary(max_size=200),
    after=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
    wanted_last=st.booleans(),
)
def test_an_answer_split_anywhere_gives_the_same_bytes(
    document: bytes, before: bytes, after: bytes, cuts: list[int], wanted_last: bool
) -> None:
    # The part wanted is the first or the last of three; the others are skipped as they come.
    if b"\r\n--MIMEBoundary_" in before + after:
        return  # a sender never writes its delimiter inside a part
    content_type, whole = _answer([("a@test", before), ("doc@test", document), ("z@test", after)])
    wanted = "z@test" if wanted_last else "doc@test"
    expected = after if wanted_last else document
    envelope, mime, got = asyncio.run(_read(content_type, _split(whole, cuts), wanted))
    assert envelope == ENVELOPE
    assert mime == "application/pdf"
    assert got == expected


def test_a_document_ending_in_crlf_keeps_it_and_one_byte_pieces_work() -> None:
    document = b"%PDF-1.4\r\nbody\r\n%%EOF\r\n"
    content_type, whole = _answer([("doc@test", document)])
    pieces = [whole[i : i + 1] for i in range(len(whole))]
    assert asyncio.run(_read(content_type, pieces, "doc@test"))[2] == document


@pytest.mark.anyio
async def test_the_document_is_passed_on_before_the_answer_has_arrived() -> None:
    """Constant memory: each chunk is yielded before the source is asked for the next one."""
    produced: list[int] = []
    chunk = b"x" * 65536
    header = (
        _multipart(ROOT, close=False)
        + f"--{BOUNDARY}\r\n".encode()
        + b"Content-Type: application/pdf\r\nContent-ID: <doc@test>\r\n\r\n"
    )

    async def source() -> AsyncIterator[bytes]:
        yield header
        for index in range(100):  # 6.4 MB, never all here at once
            produced.append(index)
            yield chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    stream = MtomStream(CONTENT_TYPE, source())
    assert await stream.envelope() == ENVELOPE
    part = await stream.part("doc@test")
    total = 0
    async for piece in part.chunks:
        total += len(piece)
        assert len(piece) <= 2 * len(chunk)
        assert total <= (len(produced)) * len(chunk)  # nothing read ahead beyond one chunk
    assert total == 100 * len(chunk)


def _refused(content_type: str | None, body: bytes, wanted: str = "doc@test", **limits: int) -> str:
    with pytest.raises(XcaParseError) as caught:
        asyncio.run(_read(content_type, [body], wanted, **limits))
    return caught.value.message


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        ('multipart/related; type="application/xop+xml"', _multipart(ROOT, DOC), "boundary"),
        ("multipart/related; boundary=b", b"--b\r\n\r\n", "xop"),
        ("text/xml", b"<x/>", "not SOAP 1.2"),
        (CONTENT_TYPE, b"no delimiter at all", "truncated"),
        (CONTENT_TYPE, _multipart(ROOT, DOC)[:-40], "truncated"),  # inside the document
        (CONTENT_TYPE, _multipart(ROOT)[:30], "truncated"),  # inside the root's headers
        (CONTENT_TYPE, _multipart(ROOT), "missing"),  # the named part is not there
        (CONTENT_TYPE, _multipart(DOC, ROOT), "first part"),  # root not first
        (
            CONTENT_TYPE,
            _multipart(ROOT, b"Content-Type: application/pdf\r\n\r\n%PDF"),
            "no Content-ID",
        ),
        (
            CONTENT_TYPE,
            _multipart(ROOT, b"\r\n%PDF"),  # no header block at all
            "no Content-ID",
        ),
        (
            CONTENT_TYPE,
            _multipart(
                ROOT,
                b"Content-ID: <doc@test>\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==",
            ),
            "transfer encoding",
        ),
        (
            CONTENT_TYPE,
            _multipart(ROOT, b"Content-ID: <doc@test>\r\nno colon here\r\n\r\n%PDF"),
            "Name: value",
        ),
        (
            CONTENT_TYPE,
            _multipart(ROOT, b"Content-ID: <a>\r\nContent-ID: <doc@test>\r\n\r\n%PDF"),
            "repeats",
        ),
        (
            CONTENT_TYPE,
            _multipart(ROOT.replace(b"application/xop+xml", b"text/plain"), DOC),
            "application/xop+xml",
        ),
        (
            CONTENT_TYPE,
            _multipart(ROOT, DOC).replace(
                b"_test\r\nContent-Type: application/pdf", b"_testjunk\r\nContent-Type: x/y"
            ),
            "other text",
        ),
        (CONTENT_TYPE, b"x" * 20_000 + _multipart(ROOT, DOC), "preamble"),
        (
            CONTENT_TYPE,
            _multipart(ROOT, b"Content-ID: <doc@test>\r\nX: " + b"y" * 9000 + b"\r\n\r\n%PDF"),
            "header block",
        ),
    ],
)
def test_bad_framing_is_refused_cleanly(content_type: str, body: bytes, says: str) -> None:
    assert says in _refused(content_type, body)


def test_a_root_part_over_the_limit_is_too_large() -> None:
    with pytest.raises(XcaParseError) as caught:
        asyncio.run(_read(CONTENT_TYPE, [_multipart(ROOT, DOC)], "doc@test", max_root_bytes=20))
    assert caught.value.problem is ParseProblem.TOO_LARGE
    with pytest.raises(XcaParseError) as plain:
        asyncio.run(_read("application/soap+xml", [b"<x>" * 100], "doc@test", max_root_bytes=20))
    assert plain.value.problem is ParseProblem.TOO_LARGE


def test_too_many_parts_are_refused() -> None:
    others = [f"Content-ID: <p{i}>\r\n\r\nx".encode() for i in range(20)]
    assert "at most" in _refused(CONTENT_TYPE, _multipart(ROOT, *others, DOC))


def test_a_plain_soap_answer_has_its_envelope_and_no_part() -> None:
    async def run() -> None:
        stream = MtomStream("application/soap+xml; charset=UTF-8", _from([b"<a>", b"</a>"]))
        assert await stream.envelope() == b"<a></a>"
        with pytest.raises(XcaParseError, match="no MTOM part"):
            await stream.part("doc@test")

    asyncio.run(run())


def test_a_part_whose_header_block_is_empty_is_refused_when_named() -> None:
    assert "no Content-ID" in _refused(CONTENT_TYPE, _multipart(ROOT, b""))


def test_a_cid_href_is_percent_decoded_and_other_hrefs_refused() -> None:
    assert content_id_of("cid:doc%40test") == "doc@test"
    assert content_id_of("CID:a") == "a"
    for bad in ("http://x/doc", "doc@test", "cid" + "x" * 2000):
        with pytest.raises(XcaParseError):
            content_id_of(bad)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    how=st.sampled_from(["cut", "flip", "insert", "drop"]),
    at=st.integers(min_value=0, max_value=5000),
    junk=st.binary(min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
)
def test_a_mangled_answer_reads_or_is_refused_never_anything_else(
    how: str, at: int, junk: bytes, cuts: list[int]
) -> None:
    content_type, whole = _answer([("doc@test", b"%PDF-1.4\r\n" + b"y" * 500 + b"\r\n")])
    at %= len(whole)
    mangled = {
        "cut": whole[:at],
        "flip": whole[:at] + bytes([whole[at] ^ 0x20]) + whole[at + 1 :],
        "insert": whole[:at] + junk + whole[at:],
        "drop": whole[:at] + whole[at + len(junk) :],
    }[how]
    try:
        asyncio.run(_read(content_type, _split(mangled, cuts), "doc@test"))
    except XcaParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(content_type=st.text(max_size=200), body=st.binary(max_size=1024))
def test_any_content_type_and_body_reads_or_is_refused(content_type: str, body: bytes) -> None:
    try:
        asyncio.run(_read(content_type, [body], "doc@test"))
    except XcaParseError:
        pass


def test_finish_reads_the_answer_to_its_end_within_a_bound() -> None:
    """After the document, the close delimiter is read so an HTTP connection can be reused."""
    ended: list[bool] = []

    async def source(tail: bytes) -> AsyncIterator[bytes]:
        yield _multipart(ROOT, DOC)
        yield tail
        ended.append(True)

    async def run(tail: bytes) -> bytes:
        stream = MtomStream(CONTENT_TYPE, source(tail))
        await stream.envelope()
        part = await stream.part("doc@test")
        content = b"".join([c async for c in part.chunks])
        await stream.finish(max_bytes=1024)
        return content

    assert asyncio.run(run(b"an epilogue")) == b"%PDF-1.4\r\n"
    assert ended == [True]
    assert asyncio.run(run(b"x" * 5000)) == b"%PDF-1.4\r\n"  # stops reading past the bound
    assert ended == [True]
