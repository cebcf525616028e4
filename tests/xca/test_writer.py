"""The string writer of the AdhocQueryResponse writes what the lxml tree serialises.

`query_response_xml` replaced `render_query_response` on the ITI-38 path for speed (issue 13);
these tests hold it to the same document: byte for byte, canonicalised, and read back.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from onerecord.domain import DocumentEntry, DocumentStatus
from onerecord.xca import parse_envelope, parse_xml, render_envelope
from onerecord.xca.ebrim import (
    RPLC,
    EbAssociation,
    EbClassification,
    EbExternalIdentifier,
    EbRegistryError,
    EbSlot,
    ExtrinsicEntry,
    QueryResponse,
    _child_id,
    _dtm,
    ebrim_from_entry,
    obfuscate,
    parse_query_response,
    render_query_response,
)
from onerecord.xca.writer import document_entry_xml, extrinsic_object_xml, query_response_xml
from tests.factories import make_entry
from tests.xca.test_ebrim import NATIONAL, entries
from tests.xca.vectors import vector

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def _lxml(response: QueryResponse) -> bytes:
    return bytes(
        etree.tostring(render_query_response(response), encoding="UTF-8", xml_declaration=False)
    )


def _c14n(xml: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(xml), method="c14n"))


def _same(response: QueryResponse) -> None:
    written = query_response_xml(response)
    expected = _lxml(response)
    assert _c14n(written) == _c14n(expected)
    assert written == expected
    assert parse_query_response(parse_xml(written)) == parse_query_response(parse_xml(expected))


@settings(max_examples=60, deadline=None)
@given(st.lists(entries(), min_size=1, max_size=8), st.lists(st.booleans(), min_size=8))
def test_generated_document_entries_are_written_as_lxml_writes_them(
    found: list[DocumentEntry], masked: list[bool]
) -> None:
    rendered = [ebrim_from_entry(e) for e in found]
    shown = tuple(obfuscate(e) if m else e for e, m in zip(rendered, masked, strict=False))
    _same(QueryResponse(status=SUCCESS, entries=shown))


# Any text XML 1.0 carries, with the characters that need escaping made likely.
_XML_TEXT = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cs",), exclude_characters="\ufffe\uffff"
    ).filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20)
    | st.sampled_from(list("&<>\"'\t\n\r ^~\\|")),
    max_size=12,
)
_SLOTS = st.lists(
    st.builds(EbSlot, _XML_TEXT, st.lists(_XML_TEXT, max_size=3).map(tuple)), max_size=3
).map(tuple)
_CLASSIFICATIONS = st.lists(
    st.builds(
        EbClassification,
        id=_XML_TEXT,
        scheme=_XML_TEXT,
        node_representation=_XML_TEXT,
        slots=_SLOTS,
        name=st.none() | _XML_TEXT,
    ),
    max_size=3,
).map(tuple)
_EXTERNALS = st.lists(
    st.builds(
        EbExternalIdentifier,
        id=_XML_TEXT,
        scheme=_XML_TEXT,
        value=_XML_TEXT,
        name=st.none() | _XML_TEXT,
    ),
    max_size=2,
).map(tuple)
_EXTRINSIC = st.builds(
    ExtrinsicEntry,
    id=_XML_TEXT,
    lid=st.none() | _XML_TEXT,
    home=st.none() | _XML_TEXT,
    status=_XML_TEXT,
    mime_type=_XML_TEXT,
    object_type=_XML_TEXT,
    title=st.none() | _XML_TEXT,
    slots=_SLOTS,
    classifications=_CLASSIFICATIONS,
    external_identifiers=_EXTERNALS,
)
_RESPONSES = st.builds(
    QueryResponse,
    status=_XML_TEXT,
    entries=st.lists(_EXTRINSIC, max_size=3).map(tuple),
    errors=st.lists(
        st.builds(
            EbRegistryError,
            error_code=_XML_TEXT,
            code_context=_XML_TEXT,
            location=st.none() | _XML_TEXT,
            severity=_XML_TEXT,
        ),
        max_size=2,
    ).map(tuple),
    object_refs=st.lists(_XML_TEXT, max_size=3).map(tuple),
    associations=st.lists(
        st.builds(EbAssociation, _XML_TEXT, st.just(RPLC), _XML_TEXT, _XML_TEXT), max_size=2
    ).map(tuple),
    home=st.none() | _XML_TEXT,
)


@settings(max_examples=200, deadline=None)
@given(_RESPONSES)
def test_any_wire_response_is_written_as_lxml_writes_it(response: QueryResponse) -> None:
    written = query_response_xml(response)
    expected = _lxml(response)
    assert written == expected
    assert _c14n(written) == _c14n(expected)


@pytest.mark.parametrize("bad", ["\x00", "\x0b", "a\x1fb", "\ufffe", "\ud800"])
def test_a_value_xml_cannot_carry_is_refused_as_lxml_refuses_it(bad: str) -> None:
    response = QueryResponse(status=SUCCESS, object_refs=(f"urn:uuid:{bad}",))
    with pytest.raises(ValueError):
        query_response_xml(response)
    with pytest.raises(ValueError):
        render_query_response(response)


def test_the_national_answer_is_written_as_lxml_writes_it() -> None:
    national = parse_query_response(parse_envelope(vector(NATIONAL)).body)
    _same(national)
    _same(replace(national, entries=tuple(obfuscate(e) for e in national.entries)))


def test_the_envelope_splices_the_written_body_as_it_appends_the_element() -> None:
    response = QueryResponse(
        status=SUCCESS, errors=(EbRegistryError("XDSRegistryError", 'a<b & "c"', None),)
    )
    relates = 'urn:uuid:1 <&> "x"'
    spliced = parse_envelope(
        render_envelope(query_response_xml(response), action="urn:a", relates_to=relates)
    )
    appended = parse_envelope(
        render_envelope(render_query_response(response), action="urn:a", relates_to=relates)
    )
    assert spliced.action == appended.action == "urn:a"
    assert etree.tostring(spliced.body, method="c14n") == etree.tostring(
        appended.body, method="c14n"
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40), st.integers(0, 1000))
def test_child_ids_are_uuid5_of_the_url_namespace(entry_id: str, scheme: str, index: int) -> None:
    name = f"{entry_id}/{scheme}/{index}"
    try:
        expected = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"
    except UnicodeEncodeError:  # a lone surrogate: neither can encode the name
        with pytest.raises(UnicodeEncodeError):
            _child_id(entry_id, scheme, index)
        return
    assert _child_id(entry_id, scheme, index) == expected


@settings(max_examples=150, deadline=None)
@given(entries())
def test_a_document_entry_is_written_directly_as_through_ebrim(entry: DocumentEntry) -> None:
    through_ebrim = extrinsic_object_xml(ebrim_from_entry(entry))
    assert document_entry_xml(entry) == through_ebrim
    direct = query_response_xml(QueryResponse(status=SUCCESS), written=[document_entry_xml(entry)])
    assert direct == _lxml(QueryResponse(status=SUCCESS, entries=(ebrim_from_entry(entry),)))


def test_an_entered_in_error_entry_is_not_written() -> None:
    with pytest.raises(ValueError):
        document_entry_xml(make_entry(status=DocumentStatus.ENTERED_IN_ERROR))


_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]
        ),
    )
)
def test_dtm_is_strftime_in_utc(moment: datetime) -> None:
    assert _dtm(moment) == moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")
