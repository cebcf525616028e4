"""Stored queries from the network's own requests, value syntax, and the RegistryError rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from onerecord.domain import Coding
from onerecord.xca import XcaParseError, parse_envelope, parse_xml
from onerecord.xca.ebrim import EbRegistryError
from onerecord.xca.query import (
    FIND_DOCUMENTS,
    GET_ASSOCIATIONS,
    STATUS_APPROVED,
    FindDocumentsQuery,
    GetAssociationsQuery,
    GetDocumentsQuery,
    ReturnType,
    parse_adhoc_query,
    parse_query_values,
)
from onerecord.xca.response import (
    RegistryErrorCode,
    ResponseStatus,
    community_error,
    community_location,
    consolidated_status,
    render_registry_response,
)
from tests.xca.vectors import vector

HL7 = "urn:oid:2.16.840.1.113883.5.25"


def _query(name: str) -> object:
    return parse_adhoc_query(parse_envelope(vector(f"requests/{name}")).body)


def test_the_kj_find_documents_request() -> None:
    q = _query("iti38-iti40-request-kj.xml")
    assert q.query_id == FIND_DOCUMENTS and q.return_type is ReturnType.LEAF_CLASS
    find = q.query
    assert isinstance(find, FindDocumentsQuery)
    assert (find.patient.id, find.patient.authority) == ("17855599120", "2.16.578.1.12.4.1.4.1")
    assert find.statuses == {STATUS_APPROVED}
    assert find.confidentiality_codes == ()


def test_the_iti18_request_with_confidentiality_codes() -> None:
    find = _query("iti18-iti40-request.xml").query
    assert isinstance(find, FindDocumentsQuery)
    assert [c.code for c in find.confidentiality_codes] == ["L", "M", "N", "U", "R"]
    assert {c.system for c in find.confidentiality_codes} == {HL7}


def test_the_reference_id_list_request_with_times_and_an_empty_class_code() -> None:
    find = _query("iti18-request-referenceIdList.xml").query
    assert isinstance(find, FindDocumentsQuery)
    assert find.patient.id == "23087018679"
    assert find.creation_time.start == datetime(2023, 5, 13, tzinfo=UTC)
    assert find.creation_time.stop == datetime(2024, 5, 16, tzinfo=UTC)
    assert find.class_codes == ()  # <ValueList/> counts as absent
    assert [c.code for c in find.confidentiality_codes] == ["L", "M", "N", "U"]


def test_the_get_associations_request() -> None:
    q = _query("iti18-iti40-request-getassociations.xml")
    assert q.query_id == GET_ASSOCIATIONS
    assert q.query == GetAssociationsQuery(("0145ca61-6ea3-44d4-95bb-3506d6c14e4f",))


def _request(slots: str, query_id: str = FIND_DOCUMENTS, return_type: str = "LeafClass") -> bytes:
    return (
        '<q:AdhocQueryRequest xmlns:q="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" '
        'xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">'
        f'<q:ResponseOption returnType="{return_type}"/>'
        f'<AdhocQuery id="{query_id}" home="2.16.578.1.12.4.5.100.1">{slots}</AdhocQuery>'
        "</q:AdhocQueryRequest>"
    ).encode()


def _slot(name: str, *values: str) -> str:
    inner = "".join(f"<Value>{v}</Value>" for v in values)
    return f'<Slot name="{name}"><ValueList>{inner}</ValueList></Slot>'


PATIENT = _slot("$XDSDocumentEntryPatientId", "'17855599120^^^&amp;2.16.578.1.12.4.1.4.1&amp;ISO'")
STATUS = _slot("$XDSDocumentEntryStatus", "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')")


def test_object_ref_codes_lists_and_home() -> None:
    q = parse_adhoc_query(
        parse_xml(
            _request(
                PATIENT
                + STATUS
                + _slot(
                    "$XDSDocumentEntryClassCode",
                    "('A00-1^^2.16.578.1.12.4.1.1.9602','B00-1^^2.16.578.1.12.4.1.1.9602')",
                    "('C00-1^^2.16.578.1.12.4.1.1.9602')",
                ),
                return_type="ObjectRef",
            )
        )
    )
    assert q.return_type is ReturnType.OBJECT_REF
    assert q.home_community_id is not None
    assert q.home_community_id.urn == "urn:oid:2.16.578.1.12.4.5.100.1"
    assert isinstance(q.query, FindDocumentsQuery)
    assert [c.code for c in q.query.class_codes] == ["A00-1", "B00-1", "C00-1"]
    assert q.query.class_codes[0] == Coding("urn:oid:2.16.578.1.12.4.1.1.9602", "A00-1")


def test_get_documents_takes_one_kind_of_id() -> None:
    get = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
    q = parse_adhoc_query(
        parse_xml(_request(_slot("$XDSDocumentEntryUniqueId", "('1.2.3','1.2.4^x')"), get))
    )
    assert q.query == GetDocumentsQuery((), ("1.2.3", "1.2.4^x"))
    with pytest.raises(XcaParseError) as info:
        parse_adhoc_query(
            parse_xml(
                _request(
                    _slot("$XDSDocumentEntryUniqueId", "('1.2.3')")
                    + _slot("$XDSDocumentEntryEntryUUID", "('urn:uuid:x')"),
                    get,
                )
            )
        )
    assert info.value.code == "XDSStoredQueryParamNumber"


@pytest.mark.parametrize(
    ("slots", "query_id", "code"),
    [
        (STATUS, FIND_DOCUMENTS, "XDSStoredQueryParamNumber"),  # no patient
        (PATIENT, FIND_DOCUMENTS, "XDSStoredQueryParamNumber"),  # no status
        (PATIENT + STATUS + STATUS, FIND_DOCUMENTS, "XDSStoredQueryParamNumber"),
        (PATIENT + STATUS + _slot("$Nonsense", "'x'"), FIND_DOCUMENTS, "XDSStoredQueryParamNumber"),
        (
            PATIENT + STATUS,
            "urn:uuid:00000000-0000-0000-0000-000000000000",
            "XDSUnknownStoredQuery",
        ),
        (
            PATIENT + _slot("$XDSDocumentEntryStatus", "('urn:x:Submitted')"),
            FIND_DOCUMENTS,
            "XDSRegistryError",
        ),
        (
            PATIENT + STATUS + _slot("$XDSDocumentEntryCreationTimeFrom", "20241399"),
            FIND_DOCUMENTS,
            "XDSRegistryError",
        ),
        (
            PATIENT
            + STATUS
            + _slot("$XDSDocumentEntryCreationTimeFrom", "20240101")
            + _slot("$XDSDocumentEntryCreationTimeTo", "20230101"),
            FIND_DOCUMENTS,
            "XDSRegistryError",
        ),
        (
            PATIENT + STATUS + _slot("$XDSDocumentEntryClassCode", "('A00-1')"),
            FIND_DOCUMENTS,
            "XDSRegistryError",
        ),
        (
            _slot("$XDSDocumentEntryPatientId", "'17855599120'") + STATUS,
            FIND_DOCUMENTS,
            "XDSRegistryError",
        ),
    ],
)
def test_bad_queries_are_refused_with_their_code(slots: str, query_id: str, code: str) -> None:
    with pytest.raises(XcaParseError) as info:
        parse_adhoc_query(parse_xml(_request(slots, query_id)))
    assert info.value.code == code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["'a'"], ("a",)),
        (["('a','b')"], ("a", "b")),
        (["('a')", "('b', 'c')"], ("a", "b", "c")),
        (["'it''s'"], ("it's",)),
        (["20240514000000"], (20240514000000,)),
        (["(1, 2)"], (1, 2)),
    ],
)
def test_value_syntax(raw: list[str], expected: tuple[object, ...]) -> None:
    assert parse_query_values(raw, name="$x") == expected


@pytest.mark.parametrize("raw", [["'a"], ["a"], ["'a','b'"], ["('a' 'b')"], ["(x)"]])
def test_bad_value_syntax(raw: list[str]) -> None:
    with pytest.raises(XcaParseError):
        parse_query_values(raw, name="$x")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="'(),a1 ^&", max_size=20), max_size=4))
def test_any_values_parse_or_are_refused(raw: list[str]) -> None:
    try:
        parse_query_values(raw, name="$x")
    except XcaParseError:
        pass


_slot_texts = st.sampled_from(
    [
        PATIENT,
        STATUS,
        _slot("$XDSDocumentEntryClassCode", "('A^^1.2')"),
        _slot("$x", "'a'"),
        "<Slot/>",
        _slot("$XDSDocumentEntryCreationTimeFrom", "2024"),
        _slot("$uuid", "('u')"),
        "<Value/>",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_slot_texts, max_size=5).map("".join),
    st.sampled_from([FIND_DOCUMENTS, GET_ASSOCIATIONS, "urn:uuid:x"]),
    st.sampled_from(["LeafClass", "ObjectRef", "Other"]),
)
def test_any_assembled_request_parses_or_is_refused(slots: str, query_id: str, rt: str) -> None:
    try:
        parse_adhoc_query(parse_xml(_request(slots, query_id, rt)))
    except XcaParseError:
        pass


# --- RegistryResponse / RegistryError ---------------------------------------------------------


def test_locations_are_urn_oid_whatever_came_in() -> None:
    assert community_location("2.16.578.1.12.4.1.2.5604") == "urn:oid:2.16.578.1.12.4.1.2.5604"
    assert community_location("urn:oid:2.16.578.1.12.4.1.2.5604") == (
        "urn:oid:2.16.578.1.12.4.1.2.5604"
    )
    error = community_error(
        RegistryErrorCode.UNAVAILABLE_COMMUNITY, "2.16.578.1.12.4.1.2.5604", "timed out"
    )
    assert error.location == "urn:oid:2.16.578.1.12.4.1.2.5604"


def test_partial_success_only_when_something_was_answered() -> None:
    error = community_error(RegistryErrorCode.UNAVAILABLE_COMMUNITY, "1.2.3", "down")
    warning = community_error(RegistryErrorCode.TOO_MANY_RESULTS, "1.2.4", "many", warning=True)
    assert consolidated_status(answered=3, errors=()) is ResponseStatus.SUCCESS
    assert consolidated_status(answered=3, errors=(warning,)) is ResponseStatus.SUCCESS
    assert consolidated_status(answered=2, errors=(error,)) is ResponseStatus.PARTIAL_SUCCESS
    assert consolidated_status(answered=0, errors=(error, error)) is ResponseStatus.FAILURE


def test_a_registry_response_renders_every_error_with_its_location() -> None:
    errors = (
        community_error(RegistryErrorCode.REGISTRY_ERROR, "urn:oid:2.16.578.1.12.4.1.7.1.11", "x"),
        EbRegistryError("XDSMissingDocument", "no such document", None),
    )
    root = render_registry_response(ResponseStatus.PARTIAL_SUCCESS, errors)
    again = parse_xml(etree.tostring(root))
    found = again.findall(
        "{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryErrorList/"
        "{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryError"
    )
    assert [(e.get("errorCode"), e.get("location")) for e in found] == [
        ("XDSRegistryError", "urn:oid:2.16.578.1.12.4.1.7.1.11"),
        ("XDSMissingDocument", None),
    ]
    assert again.get("status") == "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
