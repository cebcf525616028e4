"""PageCursor.decode: a cursor is outside input; every shape but our own is a 400, never a 500.

Regression for issue 10 B (tampered `_cursor` values: 64-bit integers, `true`, year-1 dates).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import InvalidCursor, PageCursor
from onerecord.domain.limits import MAX_CURSOR_LENGTH
from onerecord.domain.search import MAX_SEQUENCE


def encode(data: Any) -> str:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def test_cursors_we_issue_round_trip() -> None:
    for cursor in (
        PageCursor(snapshot=0),
        PageCursor(snapshot=MAX_SEQUENCE, after=("2024-01-01T00:00:00+00:00", MAX_SEQUENCE)),
        PageCursor(snapshot=7, after=(None, "ø" * 512, "0001-01-01T00:00:00+00:00", 3)),
    ):
        assert PageCursor.decode(cursor.encode()) == cursor


def test_a_cursor_with_the_longest_title_fits_max_cursor_length() -> None:
    # Four-byte characters are the worst case for base64 of UTF-8 JSON.
    longest = PageCursor(
        snapshot=MAX_SEQUENCE,
        after=("2024-01-01T00:00:00.123456+00:00", "2024-01-01T00:00:00.123456+00:00")
        + ("\U0001f600" * 512, MAX_SEQUENCE),
    )
    assert len(longest.encode()) <= MAX_CURSOR_LENGTH
    assert PageCursor.decode(longest.encode()) == longest


@pytest.mark.parametrize(
    "data",
    [
        {"s": 2**63, "a": None},  # beyond bigint
        {"s": 2**64 - 1, "a": None},
        {"s": -1, "a": None},
        {"s": True, "a": None},  # a bool is not a sequence number
        {"s": 1, "a": [True]},
        {"s": 1, "a": [2**63]},
        {"s": 1, "a": [-5]},
        {"s": 1.5, "a": None},
        {"s": "1", "a": None},
        {"s": 1, "a": [{"nested": {"object": 1}}]},
        {"s": 1, "a": [[1, 2]]},
        {"s": 1, "a": [1.5]},
        {"s": 1, "a": ["x" * 513]},  # longer than any title
        {"s": 1, "a": []},
        {"s": 1, "a": [1, 2, 3, 4, 5, 6]},  # more values than sort keys and seq
        {"s": 1, "a": "2024"},
        {"s": 1},
        {"a": None},
        {"s": 1, "a": None, "x": 1},
        [1, None],
        True,
        None,
        "cursor",
        12,
    ],
)
def test_tampered_cursor_shapes_are_invalid(data: Any) -> None:
    with pytest.raises(InvalidCursor) as caught:
        PageCursor.decode(encode(data))
    assert caught.value.expression == "_cursor"


@pytest.mark.parametrize(
    "token",
    ["", "not a cursor", "ä", "abc=", "A", encode(b"\xff\xfe"), encode(b"[" * 5000)],
)
def test_malformed_cursor_text_is_invalid(token: str) -> None:
    with pytest.raises(InvalidCursor):
        PageCursor.decode(token)


def test_cursor_longer_than_max_cursor_length_names_the_limit() -> None:
    with pytest.raises(InvalidCursor) as caught:
        PageCursor.decode(encode({"s": 1, "a": ["x" * MAX_CURSOR_LENGTH]}))
    assert "MAX_CURSOR_LENGTH" in caught.value.message


def _encode_json(data: Any) -> str:
    """Base64url of standard JSON, which (unlike orjson) writes integers beyond 64 bits."""
    return encode(json.dumps(data).encode())


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)
_cursor_like = st.fixed_dictionaries(
    {"s": _json, "a": st.none() | st.lists(_json, max_size=7)}
) | st.fixed_dictionaries({"s": st.integers(0, 2**70), "a": _json})


@settings(max_examples=150, deadline=None)
@given(
    token=st.one_of(
        _cursor_like.map(_encode_json),
        _json.map(_encode_json),
        st.binary(max_size=200).map(encode),
        st.text(max_size=200),
    )
)
def test_any_cursor_decodes_or_is_invalid_never_anything_else(token: str) -> None:
    try:
        cursor = PageCursor.decode(token)
    except InvalidCursor:
        return
    # What decodes is a cursor we could have issued: the same value after a round trip.
    assert PageCursor.decode(cursor.encode()) == cursor
    assert 0 <= cursor.snapshot <= MAX_SEQUENCE and not isinstance(cursor.snapshot, bool)
