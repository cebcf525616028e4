"""`_summary=count` and `_count=0`: the total only (issue 10 G, fhirpy's `.count()`)."""

from __future__ import annotations

import pytest

from onerecord.mhd import BadRequest, http_error, invalid_request, split_count_only

PATIENT = ("patient.identifier", "urn:oid:2.16.578.1.12.4.1.4.1|13116900216")


@pytest.mark.parametrize(
    "asked",
    [
        [("_summary", "count")],
        [("_count", "0")],
        [("_count", "0"), ("_totalMethod", "count")],
        [("_summary", "count"), ("_count", "5")],
    ],
)
def test_count_only_asks_are_recognised_and_removed(asked: list[tuple[str, str]]) -> None:
    only_total, rest = split_count_only([PATIENT, *asked, ("status", "current")])
    assert only_total
    assert rest == [PATIENT, ("status", "current")]


def test_an_ordinary_search_is_left_alone() -> None:
    params = [PATIENT, ("_count", "5"), ("_total", "accurate")]
    assert split_count_only(params) == (False, params)


@pytest.mark.parametrize(
    "asked",
    [
        [("_summary", "true")],
        [("_summary", "data")],
        [("_summary", "count"), ("_summary", "count")],
        [("_count", "0"), ("_totalMethod", "everything")],
    ],
)
def test_other_summaries_and_total_methods_are_refused(asked: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest):
        split_count_only([PATIENT, *asked])


def test_framework_errors_become_fhir_issue_types() -> None:
    assert (http_error(404, "Not Found").status, http_error(404, "x").code) == (404, "not-found")
    assert http_error(405, "x").code == "not-supported"
    assert http_error(413, "x").code == "too-costly"
    assert http_error(503, "x").code == "exception"
    refused = invalid_request([{"loc": ("query", "n"), "msg": "not an int", "input": "secret"}])
    assert refused.status == 400 and "query.n: not an int" in refused.message
    assert "secret" not in refused.message
