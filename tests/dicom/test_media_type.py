from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.dicom.errors import DicomWireError, InvalidRequest
from onerecord.dicom.media_type import AcceptRange, MediaType, parse_accept, parse_media_type


def test_media_types_with_parameters() -> None:
    mt = parse_media_type('Multipart/Related ; Type="application/dicom" ;boundary=a.b;')
    assert mt == MediaType(
        "multipart", "related", (("type", "application/dicom"), ("boundary", "a.b"))
    )
    assert parse_media_type('a/b; x="q\\"uote"').param("x") == 'q"uote'
    assert mt.essence == "multipart/related" and mt.param("start") is None


def test_accept_ranges_and_weights() -> None:
    ranges = parse_accept("image/png;q=0.8, */*;q=0, application/dicom+json")
    assert ranges == [
        AcceptRange(MediaType("image", "png"), 0.8),
        AcceptRange(MediaType("*", "*"), 0.0),
        AcceptRange(MediaType("application", "dicom+json"), 1.0),
    ]
    assert parse_accept("") == [] and parse_accept(" , ") == []


@pytest.mark.parametrize(
    "text", ["image", "image/", "/png", "a/b;c", "a/b; c=", 'a/b; c="open', "a/b c/d", "a/b;q=1.5"]
)
def test_malformed_is_400(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_accept(text)


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=60) | st.from_regex(r'[a-z*/;=", q.0-9+-]{0,40}', fullmatch=True))
def test_any_header_is_ranges_or_a_400(text: str) -> None:
    try:
        ranges = parse_accept(text)
    except DicomWireError as exc:
        assert exc.status == 400
        return
    assert all(0 <= r.q <= 1 for r in ranges)
