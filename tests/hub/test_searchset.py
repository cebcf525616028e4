"""Reading a region's searchset strictly: shapes, the patient, and hostile bodies (issue 10 C)."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onerecord.domain import NationalIdentityNumber, SortField, SortKey
from onerecord.hub.merge import merge, region_issues
from onerecord.hub.render import document_entry, outcome_entry, rewrite_for_hub
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.searchset import (
    InvalidSearchset,
    WrongPatient,
    _check_document_reference,
    _document_reference_ok,
    _subject_of,
    parse_searchset,
)
from tests.factories import SYNTHETIC_FNR, synthetic_nin
from tests.hub.conftest import HCID_HSO, HCID_VEST, make_docref, make_region, ok_result

PATIENT = NationalIdentityNumber(SYNTHETIC_FNR)
OTHER = synthetic_nin(1)


def body(*resources: Any, link: Any = None) -> bytes:
    doc: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if link is not None:
        doc["link"] = link
    return orjson.dumps(doc)


def test_entries_about_the_patient_asked_for_are_read() -> None:
    page = parse_searchset(body(make_docref("2.25.1"), make_docref("2.25.2")), patient=PATIENT)
    assert len(page.resources) == 2


@pytest.mark.parametrize(
    "subject",
    [
        None,
        {},
        {"identifier": 5},
        {"reference": "Patient/1"},
        {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": OTHER}},
        {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.2", "value": SYNTHETIC_FNR}},
        {"identifier": {"value": SYNTHETIC_FNR}},
        {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": int(SYNTHETIC_FNR)}},
    ],
)
def test_an_entry_not_about_the_patient_asked_for_is_wrong_patient(subject: Any) -> None:
    doc = make_docref("2.25.3")
    if subject is None:
        del doc["subject"]
    else:
        doc["subject"] = subject
    with pytest.raises(WrongPatient) as caught:
        parse_searchset(body(make_docref("2.25.1"), doc), patient=PATIENT)
    assert OTHER not in str(caught.value), "the other patient's number never reaches a message"
    assert "Bundle.entry[1]" in str(caught.value)


def test_without_a_patient_the_subject_is_not_checked() -> None:
    """The access log and unit tests read searchsets without a patient to hold them to."""
    page = parse_searchset(body(make_docref("2.25.1", patient=None)))
    assert len(page.resources) == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("content",), 5),
        (("content",), []),
        (("content",), [5]),
        (("content", 0, "attachment"), "a string"),
        (("content", 0, "attachment", "title"), 7),
        (("content", 0, "attachment", "creation"), {"x": 1}),
        (("content", 0, "attachment", "size"), True),
        (("extension",), 5),
        (("extension",), [{"valueUri": "no url"}]),
        (("masterIdentifier",), "urn:oid:1.2"),
        (("masterIdentifier", "value"), 12),
        (("status",), None),
        (("date",), 20240101),
        (("context",), []),
        (("context", "period"), "2024"),
        (("category",), [1]),
        (("subject",), "Patient/1"),
    ],
)
def test_a_malformed_document_reference_is_invalid(path: tuple[Any, ...], value: Any) -> None:
    doc = make_docref("2.25.4", period_start="2024-01-01")
    _set(doc, path, value)
    with pytest.raises(InvalidSearchset):
        parse_searchset(body(doc), patient=PATIENT)


@pytest.mark.parametrize(
    "outcome",
    [
        {"resourceType": "OperationOutcome"},
        {"resourceType": "OperationOutcome", "issue": []},
        {"resourceType": "OperationOutcome", "issue": [5]},
        {"resourceType": "OperationOutcome", "issue": [{"severity": "warning"}]},
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "informational", "extension": 5}],
        },
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "informational", "location": [1]}],
        },
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "x", "details": {"coding": "c"}}],
        },
    ],
)
def test_a_malformed_operation_outcome_is_invalid(outcome: dict[str, Any]) -> None:
    with pytest.raises(InvalidSearchset):
        parse_searchset(body(make_docref("2.25.1"), outcome), patient=PATIENT)


@pytest.mark.parametrize(
    "link", [5, [5], [{"relation": "next", "url": 5}], [{"relation": "next", "url": ["x"]}]]
)
def test_a_malformed_link_is_invalid(link: Any) -> None:
    with pytest.raises(InvalidSearchset):
        parse_searchset(body(link=link))


def test_a_deeply_nested_entry_is_invalid_rather_than_unserialisable() -> None:
    doc = make_docref("2.25.5")
    nested: Any = "x"
    for _ in range(300):
        nested = [nested]
    doc["type"] = {"coding": nested}
    raw = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": doc}]})
    with pytest.raises(InvalidSearchset, match="nested too deeply"):
        parse_searchset(raw.encode(), patient=PATIENT)


@pytest.mark.parametrize(
    ("element", "value"), [("extension", 5), ("extension", [5]), ("source", "x"), ("recorded", 1)]
)
def test_a_malformed_audit_event_is_invalid(element: str, value: Any) -> None:
    event = {"resourceType": "AuditEvent", "recorded": "2024-01-01T00:00:00Z", element: value}
    with pytest.raises(InvalidSearchset):
        parse_searchset(body(event), resource_type="AuditEvent")


# Hostile bodies --------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31", "2024-02-30", "x", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_PATHS: list[tuple[Any, ...]] = [
    ("content",),
    ("content", 0),
    ("content", 0, "attachment"),
    ("content", 0, "attachment", "title"),
    ("content", 0, "attachment", "url"),
    ("content", 0, "attachment", "creation"),
    ("extension",),
    ("extension", 0),
    ("extension", 0, "url"),
    ("masterIdentifier",),
    ("masterIdentifier", "value"),
    ("subject",),
    ("subject", "identifier"),
    ("subject", "identifier", "value"),
    ("status",),
    ("date",),
    ("description",),
    ("context",),
    ("context", "period"),
    ("context", "period", "start"),
    ("id",),
    ("resourceType",),
]
_ISSUE_PATHS: list[tuple[Any, ...]] = [
    ("issue",),
    ("issue", 0),
    ("issue", 0, "extension"),
    ("issue", 0, "extension", 0),
    ("issue", 0, "location"),
    ("issue", 0, "details"),
    ("issue", 0, "details", "coding"),
    ("issue", 0, "severity"),
    ("issue", 0, "diagnostics"),
]


def _set(target: Any, path: tuple[Any, ...], value: Any) -> None:
    """Set `value` at `path`, as far as the (possibly already mangled) structure allows."""
    for step in path[:-1]:
        try:
            target = target[step]
        except (KeyError, IndexError, TypeError):
            return
    key = path[-1]
    if isinstance(target, dict) and not isinstance(key, str):
        return  # an object's keys are strings: an int here would make the body unencodable
    try:
        target[key] = value
    except (IndexError, TypeError):
        return


def _rarely(draw: st.DrawFn) -> bool:
    return draw(st.integers(min_value=0, max_value=7)) == 0


@st.composite
def hostile_searchsets(draw: st.DrawFn) -> bytes:
    """Searchsets as a source renders them, with a few elements replaced by any JSON at all.

    Most bodies stay readable, so the steps after the parser are exercised too.
    """
    resources: list[Any] = []
    for n in range(draw(st.integers(min_value=1, max_value=3))):
        patient = OTHER if _rarely(draw) else SYNTHETIC_FNR
        doc = make_docref(f"2.25.{n}", period_start="2024-01-01", patient=patient)
        for path in draw(st.lists(st.sampled_from(_PATHS), max_size=2)):
            # A string where a string belongs is what a sloppy region sends most often.
            _set(doc, path, draw(st.text(max_size=30) | _JSON))
        resources.append(doc)
    if draw(st.booleans()):
        outcome: dict[str, Any] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "informational", "diagnostics": "d"}],
        }
        for path in draw(st.lists(st.sampled_from(_ISSUE_PATHS), max_size=1)):
            _set(outcome, path, draw(_JSON))
        resources.append(outcome)
    next_link = [{"relation": "next", "url": "http://r/fhir/x"}]
    link = draw(_JSON) if _rarely(draw) else draw(st.sampled_from([None, next_link]))
    return body(*resources, link=link)


_SORTS = [(), *((SortKey(f, descending=d),) for f in SortField for d in (False, True))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_searchsets())
def test_whatever_a_region_sends_is_refused_or_merges_sorts_and_renders(raw: bytes) -> None:
    """Property: a region's body is InvalidSearchset or safe for every step after it."""
    try:
        page = parse_searchset(raw, patient=PATIENT)
    except InvalidSearchset:
        return
    for resource in page.resources:
        assert resource["subject"]["identifier"]["value"] == SYNTHETIC_FNR
    region = make_region(HCID_VEST)
    result = RegionResult(
        region,
        RegionStatus.OK,
        1.0,
        resources=tuple(page.resources),
        warnings=tuple(page.issues),
    )
    healthy = ok_result(make_region(HCID_HSO), make_docref("2.25.99"))
    for sort in _SORTS:
        merged = merge([result, healthy], sort)
        assert len(merged.documents) >= 1
        for placed in merged.documents:
            resource = rewrite_for_hub(copy.deepcopy(placed.resource), region.hcid, "http://hub")
            document_entry(resource, "http://hub/fhir/DocumentReference/x")
        outcome_entry(merged.issues)
    region_issues([result])


# The fast check of each entry --------------------------------------------------------------------


@st.composite
def hostile_docrefs(draw: st.DrawFn) -> dict[str, Any]:
    """A DocumentReference as a source renders it, with a few elements replaced by any JSON,
    read back as the hub reads a region's body (orjson)."""
    patient = OTHER if _rarely(draw) else SYNTHETIC_FNR
    doc = make_docref("2.25.7", period_start="2024-01-01", patient=patient)
    for path in draw(st.lists(st.sampled_from(_PATHS), max_size=2)):
        _set(doc, path, draw(st.text(max_size=30) | _JSON))
    resource = orjson.loads(json.dumps(doc))
    assert isinstance(resource, dict)
    return resource


@settings(max_examples=300, deadline=None)
@given(hostile_docrefs(), st.booleans())
def test_the_fast_entry_check_passes_exactly_what_the_full_check_passes(
    resource: dict[str, Any], with_patient: bool
) -> None:
    """Property: the hot path's verdict is the full check's, so speed never lets an entry by."""
    patient = PATIENT if with_patient else None
    try:
        _check_document_reference(resource, "DocumentReference", patient)
        full = True
    except InvalidSearchset:
        full = False
    assert _document_reference_ok(resource, _subject_of(patient)) is full


def test_a_malformed_entry_is_still_named_by_the_full_check() -> None:
    doc = make_docref("2.25.8")
    doc["content"][0]["attachment"]["size"] = True  # a JSON true is not an integer
    with pytest.raises(InvalidSearchset, match=r"Bundle.entry\[0\].resource.content\[0\]"):
        parse_searchset(body(doc), patient=PATIENT)
