from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.dicom.errors import (
    DicomWireError,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from onerecord.dicom.multipart import (
    MultipartLimits,
    MultipartParser,
    OutgoingPart,
    Part,
    arender_multipart,
    iter_parts,
    new_boundary,
    parse_related_content_type,
    related_content_type,
    render_multipart,
)


def _parse(body: bytes, boundary: str, sizes: list[int] | None = None, **limits: int) -> list[Part]:
    parser = MultipartParser(boundary, MultipartLimits(**limits))
    parts: list[Part] = []
    pos = 0
    for size in sizes or [len(body) or 1]:
        parts += parser.feed(body[pos : pos + size])
        pos += size
    parts += parser.feed(body[pos:])
    parser.close()
    return parts


_BODY = (
    b"preamble to ignore\r\n"
    b"--XyZ\r\n"
    b"Content-Type: application/dicom\r\n"
    b"\r\n"
    b"DICM-one\r\n"
    b"--XyZ \t\r\n"
    b"content-type: application/octet-stream\r\n"
    b"Content-Location: cid:pixel\r\n"
    b"\r\n"
    b"\x00\r\n--Xy\r\n"
    b"--XyZ--\r\n"
    b"epilogue"
)


def test_parts_with_headers_preamble_and_epilogue() -> None:
    one, two = _parse(_BODY, "XyZ")
    assert one.body == b"DICM-one"
    assert one.content_type is not None and one.content_type.essence == "application/dicom"
    assert two.body == b"\x00\r\n--Xy"
    assert two.content_location == "cid:pixel"
    assert two.header("CONTENT-TYPE") == "application/octet-stream"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_chunking_gives_the_same_parts(size: int) -> None:
    sizes = [size] * (len(_BODY) // size + 1)
    assert _parse(_BODY, "XyZ", sizes) == _parse(_BODY, "XyZ")


def test_async_iteration_over_chunks() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(_BODY), 5):
            yield _BODY[i : i + 5]

    async def collect() -> list[Part]:
        return [part async for part in iter_parts(chunks(), "XyZ")]

    assert [p.body for p in anyio.run(collect)] == [b"DICM-one", b"\x00\r\n--Xy"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"--XyZ\r\n\r\nabc", "close delimiter"),
        (b"no delimiter at all", "close delimiter"),
        (b"--XyZ--\r\n", "no parts"),
        (b"--XyZ\r\nbad header line\r\n\r\nx\r\n--XyZ--", "header is malformed"),
        (b"--XyZ\r\nA: \x01\r\n\r\nx\r\n--XyZ--", "control"),
        (b"--XyZjunk\r\n\r\nx\r\n--XyZ--", "delimiter line"),
    ],
)
def test_malformed_bodies_are_400(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        _parse(body, "XyZ")


def test_bounds_are_413() -> None:
    big = b"--B\r\n\r\n" + b"x" * 100 + b"\r\n--B--"
    with pytest.raises(PayloadTooLarge, match="part"):
        _parse(big, "B", [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7], max_part_bytes=50)
    with pytest.raises(PayloadTooLarge, match="headers"):
        _parse(b"--B\r\nA: " + b"a" * 100 + b"\r\n\r\nx\r\n--B--", "B", max_header_bytes=50)
    many = b"".join(b"--B\r\n\r\nx\r\n" for _ in range(5)) + b"--B--"
    with pytest.raises(PayloadTooLarge, match="parts"):
        _parse(many, "B", max_parts=3)


@pytest.mark.parametrize(
    ("header", "boundary", "root"),
    [
        ('multipart/related; type="application/dicom"; boundary=abc', "abc", "application/dicom"),
        (
            'Multipart/Related;Type="application/dicom+json";boundary="a b:c"',
            "a b:c",
            "application/dicom+json",
        ),
        ("multipart/related; boundary=x; type=application/dicom", "x", "application/dicom"),
    ],
)
def test_content_type_of_a_stow_request(header: str, boundary: str, root: str) -> None:
    related = parse_related_content_type(header)
    assert (related.boundary, related.type) == (boundary, root)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, UnsupportedMediaType),
        ("application/dicom", UnsupportedMediaType),
        ('multipart/related; type="application/dicom+xml"; boundary=a', UnsupportedMediaType),
        ("multipart/related; boundary=a", InvalidRequest),
        ('multipart/related; type="application/dicom"', InvalidRequest),
        ('multipart/related; type="application/dicom"; boundary="a\\"b"', InvalidRequest),
        (
            'multipart/related; type="application/dicom"; boundary="' + "a" * 71 + '"',
            InvalidRequest,
        ),
        ("multipart/related; type=", InvalidRequest),
    ],
)
def test_wrong_content_types(header: str | None, error: type[DicomWireError]) -> None:
    with pytest.raises(error):
        parse_related_content_type(header)


def test_rendering_a_wado_answer() -> None:
    boundary = new_boundary()
    assert len(boundary) == 32 and boundary != new_boundary()
    content_type = related_content_type("application/dicom", boundary, transfer_syntax="*")
    assert content_type == (
        f'multipart/related; type="application/dicom"; transfer-syntax=*; boundary={boundary}'
    )
    related = parse_related_content_type(content_type)
    parts = [
        OutgoingPart("application/dicom", b"one"),
        OutgoingPart("application/dicom", iter([b"t", b"wo"]), content_location="x/2"),
    ]
    body = b"".join(render_multipart(parts, related.boundary))
    got = _parse(body, boundary)
    assert [p.body for p in got] == [b"one", b"two"]
    assert got[1].content_location == "x/2"
    with pytest.raises(ValueError, match="CR"):
        list(render_multipart([OutgoingPart("a/b\r\nX: y", b"")], boundary))


def test_async_rendering_streams_async_bodies() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"fr"
        yield b"ame"

    async def collect() -> bytes:
        parts = [OutgoingPart("application/octet-stream", body())]
        return b"".join([c async for c in arender_multipart(parts, "b0")])

    assert [p.body for p in _parse(anyio.run(collect), "b0")] == [b"frame"]


_bodies = st.lists(st.binary(max_size=80), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(bodies=_bodies, chunk=st.integers(1, 40))
def test_render_then_parse_gives_the_parts_back(bodies: list[bytes], chunk: int) -> None:
    boundary = new_boundary()
    parts = [OutgoingPart("application/dicom", b) for b in bodies]
    body = b"".join(render_multipart(parts, boundary))
    sizes = [chunk] * (len(body) // chunk + 1)
    assert [p.body for p in _parse(body, boundary, sizes)] == bodies


_noise = st.lists(
    st.sampled_from([b"--B", b"\r\n", b"--", b"\r\n\r\n", b"A: b", b"x", b" ", b":", b"\x00"]),
    max_size=30,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(body=_noise | st.binary(max_size=120), chunk=st.integers(1, 16))
def test_any_body_is_parts_or_a_clear_error(body: bytes, chunk: int) -> None:
    try:
        parts = _parse(body, "B", [chunk] * (len(body) // chunk + 1), max_part_bytes=64)
    except DicomWireError as exc:
        assert exc.status in (400, 413)
        return
    assert parts


@settings(max_examples=300, deadline=None)
@given(header=st.text(max_size=80) | st.from_regex(r"multipart/related;.{0,40}", fullmatch=True))
def test_any_content_type_is_read_or_refused(header: str) -> None:
    try:
        parse_related_content_type(header)
    except DicomWireError as exc:
        assert exc.status in (400, 415)
