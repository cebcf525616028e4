from __future__ import annotations

import orjson
import pytest

from onerecord.domain import InvalidCursor, InvalidDocumentEntry, InvalidIdentifier, UnknownCode
from onerecord.mhd import (
    DENIAL_REASON_SYSTEM,
    BadRequest,
    Conflict,
    Gone,
    Issue,
    MhdError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    denial_reason,
    operation_outcome,
    outcome_bytes,
    outcome_for,
)
from tests.mhd.oracle import validate


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (BadRequest("x"), 400, "invalid"),
        (NotFound("x"), 404, "not-found"),
        (NotAcceptable("x"), 406, "not-supported"),
        (Conflict("x"), 409, "conflict"),
        (Gone("x"), 410, "deleted"),
        (PayloadTooLarge("x"), 413, "too-costly"),
        (UnsupportedMediaType("x"), 415, "not-supported"),
        (Unprocessable("x"), 422, "processing"),
        (MhdError("x", status=500, code="exception"), 500, "exception"),
    ],
)
def test_mhd_errors_map_to_status_and_issue_type(exc: MhdError, status: int, code: str) -> None:
    got_status, body = outcome_for(exc)
    assert got_status == status == exc.status
    assert body["issue"][0]["code"] == code
    assert body["issue"][0]["severity"] == ("fatal" if status >= 500 else "error")
    validate(body)


def test_code_and_expression_can_be_overridden() -> None:
    status, body = outcome_for(BadRequest("bad", code="value", expression="Bundle.type"))
    assert status == 400
    assert body["issue"] == [
        {"severity": "error", "code": "value", "diagnostics": "bad", "expression": ["Bundle.type"]}
    ]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InvalidIdentifier("bad fnr", expression="subject"), "value"),
        (UnknownCode("no such code"), "code-invalid"),
        (InvalidDocumentEntry("broken"), "business-rule"),
    ],
)
def test_domain_errors_are_422_in_content_and_400_in_queries(exc: Exception, code: str) -> None:
    assert isinstance(exc, InvalidIdentifier | UnknownCode | InvalidDocumentEntry)
    status, body = outcome_for(exc)
    assert status == 422
    assert body["issue"][0]["code"] == code
    assert body["issue"][0]["diagnostics"] == exc.message
    assert outcome_for(exc, query_error=True)[0] == 400
    validate(body)


def test_bad_cursor_is_always_400() -> None:
    assert outcome_for(InvalidCursor("bad cursor"))[0] == 400


def test_outcome_bytes_is_the_same_outcome_serialised() -> None:
    exc = NotFound("no document", expression="Binary.id")
    status, raw = outcome_bytes(exc)
    assert (status, orjson.loads(raw)) == outcome_for(exc)


def test_operation_outcome_with_several_issues_and_empty() -> None:
    body = operation_outcome(
        [
            Issue(code="timeout", diagnostics="region Helse Nord timed out", severity="warning"),
            Issue(code="value", diagnostics="x", expression=("a", "b")),
        ]
    )
    assert [i["code"] for i in body["issue"]] == ["timeout", "value"]
    assert body["issue"][1]["expression"] == ["a", "b"]
    validate(body)
    empty = operation_outcome([])
    assert empty["issue"][0]["severity"] == "information"
    validate(empty)


def test_a_refusal_carries_its_reason_as_issue_details() -> None:
    refused = MhdError("access denied", status=403, code="forbidden", reason="patient-reserved")
    status, body = outcome_for(refused)
    assert status == 403
    (issue,) = body["issue"]
    assert issue["details"] == {
        "coding": [{"system": DENIAL_REASON_SYSTEM, "code": "patient-reserved"}]
    }
    assert denial_reason(issue) == "patient-reserved"
    _, plain = outcome_for(NotFound("gone"))
    assert "details" not in plain["issue"][0] and denial_reason(plain["issue"][0]) is None


@pytest.mark.parametrize(
    "issue",
    [
        None,
        "x",
        {"details": "x"},
        {"details": {"coding": "x"}},
        {"details": {"coding": [{"system": "other", "code": "c"}]}},
        {"details": {"coding": [{"system": DENIAL_REASON_SYSTEM, "code": ""}]}},
        {"details": {"coding": [{"system": DENIAL_REASON_SYSTEM, "code": 3}]}},
    ],
)
def test_denial_reason_ignores_anything_else(issue: object) -> None:
    assert denial_reason(issue) is None
