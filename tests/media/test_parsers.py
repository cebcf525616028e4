"""Hostile input at the archive's two parsers: only their own errors, never anything else."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from onerecord.media import InvalidInstance, InvalidQuery, QueryRoot, parse_find, read_instance
from onerecord.media.query import KEYS, Level
from tests.media.conftest import SynthFiles

_PREFIX = b"\x00" * 128 + b"DICM"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_read_instance_refuses_any_garbage_cleanly(data: bytes) -> None:
    for candidate in (data, _PREFIX + data):
        try:
            read_instance(candidate)
        except InvalidInstance:
            pass


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=4000), flip=st.integers(0, 255))
def test_read_instance_on_damaged_instances(synth_files: SynthFiles, cut: int, flip: int) -> None:
    data = bytearray(Path(synth_files.paths[0]).read_bytes()[: 132 + cut])
    if len(data) > 140:
        data[140 + flip % (len(data) - 140)] ^= 0xFF
    try:
        read_instance(bytes(data))
    except InvalidInstance:
        pass


_KEYWORDS = sorted(KEYS)


@settings(max_examples=400)
@given(
    level=st.sampled_from(["PATIENT", "STUDY", "SERIES", "IMAGE", "", "FOO", "study"]),
    root=st.sampled_from(list(QueryRoot)),
    values=st.dictionaries(
        st.sampled_from(_KEYWORDS),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=6,
    ),
)
def test_parse_find_answers_a_query_or_invalid_query(
    level: str, root: QueryRoot, values: dict[str, str]
) -> None:
    ds = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of invalid values; the archive decides
        ds.QueryRetrieveLevel = level
        for keyword, value in values.items():
            try:
                setattr(ds, keyword, value)
            except (ValueError, TypeError, OverflowError):
                pass  # pydicom refuses the value before it reaches the archive
    try:
        query = parse_find(ds, root=root)
    except InvalidQuery:
        return
    assert all(k.level <= query.level for k in query.return_keys)
    assert not (root is QueryRoot.STUDY and query.level is Level.PATIENT)


@pytest.mark.parametrize(
    "keys",
    [
        {"StudyDate": "2026"},
        {"StudyDate": "20260101-2027"},
        {"StudyDate": "-"},
        {"StudyInstanceUID": "1.2.03"},
        {"StudyInstanceUID": "x"},
        {"SeriesNumber": "one"},
    ],
)
def test_malformed_keys_are_invalid_queries(keys: dict[str, str]) -> None:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in keys.items():
            tag = Tag(keyword)
            raw = value.encode()  # undecoded, as a peer's bytes reach the archive
            ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(raw), raw, 0, False, True)
    with pytest.raises(InvalidQuery):
        parse_find(ds, root=QueryRoot.STUDY)
