"""ITI-65 bundle parser against hostile shapes: every field type-checked, 4xx, never anything else.

Regressions for issue 10 B (SubmissionSet `List.extension` a number, `List.entry[].item` a string
or null, `List.subject.identifier.system` a list, an empty SubmissionSet uniqueId, two
DocumentReferences with one entryUUID, year-1 / year-9999 dates with extreme offsets) and the
property that any mutation of a valid bundle parses or raises a 4xx error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from onerecord.domain import DocumentEntry, DomainError
from onerecord.mhd import (
    EXT_CITIZEN_RELEASE_TIME,
    BadRequest,
    MhdError,
    build_provide_bundle,
    outcome_for,
    parse_provide_bundle,
)
from tests.factories import make_entry, sample_pdf
from tests.mhd.hostile import Path, mutated, mutations

SOURCE = "urn:oid:2.16.578.1.12.4.5.100.1.9"


def bundle_of(n: int = 1, **overrides: Any) -> dict[str, Any]:
    documents: list[tuple[DocumentEntry, bytes]] = []
    for i in range(n):
        content = sample_pdf(text=f"document {i}")
        documents.append((make_entry(content=content, **overrides), content))
    return build_provide_bundle(documents, source_id=SOURCE, submission_set_unique_id="1.2.3.99")


def refused(bundle: Any) -> tuple[int, MhdError | DomainError]:
    """Parse; the error must be a 4xx MhdError or DomainError. Return its status and itself."""
    with pytest.raises((MhdError, DomainError)) as caught:
        parse_provide_bundle(orjson.dumps(bundle))
    exc = caught.value
    assert isinstance(exc, MhdError | DomainError)
    status = outcome_for(exc)[0]
    assert 400 <= status < 500, exc
    return status, exc


def submission_set(bundle: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    assert resource["resourceType"] == "List"
    return resource


def document(bundle: dict[str, Any], index: int = 0) -> dict[str, Any]:
    found = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] != "List"]
    return found[index]  # type: ignore[no-any-return]


Mutation = Callable[[dict[str, Any]], None]

SS = "Bundle.entry[0].resource"
DOC = "Bundle.entry[1].resource"


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (lambda b: submission_set(b).update(extension=5), f"{SS}.extension"),
        (lambda b: submission_set(b).update(extension=[5]), f"{SS}.extension[0]"),
        (lambda b: submission_set(b)["entry"][0].update(item="x"), f"{SS}.entry[0].item"),
        (lambda b: submission_set(b)["entry"][0].update(item=None), f"{SS}.entry[0].item"),
        (lambda b: submission_set(b)["entry"].__setitem__(0, "x"), f"{SS}.entry[0]"),
        (lambda b: submission_set(b).update(entry=7), f"{SS}.entry"),
        (
            lambda b: submission_set(b)["subject"]["identifier"].update(system=["a", "b"]),
            f"{SS}.subject.identifier.system",
        ),
        (lambda b: submission_set(b).update(subject="Patient/1"), f"{SS}.subject"),
        (
            lambda b: submission_set(b)["identifier"][0].update(value=""),
            f"{SS}.identifier[0].value",
        ),
        (lambda b: submission_set(b)["identifier"][0].update(value=5), f"{SS}.identifier[0].value"),
        (lambda b: submission_set(b)["identifier"][0].update(value="x^y"), f"{SS}.identifier"),
        (lambda b: submission_set(b).update(identifier={"value": "1.2"}), f"{SS}.identifier"),
        (
            lambda b: submission_set(b)["extension"][0].update(valueIdentifier=[]),
            f"{SS}.extension[0].valueIdentifier",
        ),
        (
            lambda b: submission_set(b)["extension"][0]["valueIdentifier"].update(value="s" * 200),
            f"{SS}.extension[ihe-sourceId]",
        ),
        (lambda b: submission_set(b).update(date="0001-01-01T00:00:00+14:00"), f"{SS}.date"),
        (lambda b: submission_set(b).update(date=20240101), f"{SS}.date"),
    ],
)
def test_submission_set_shapes_are_4xx_naming_the_element(
    mutate: Mutation, expression: str
) -> None:
    bundle = bundle_of()
    mutate(bundle)
    _, exc = refused(bundle)
    assert exc.expression == expression


def test_empty_submission_set_unique_id_is_refused() -> None:
    bundle = bundle_of()
    for ident in submission_set(bundle)["identifier"]:
        if ident["use"] == "usual":
            ident["value"] = ""
    status, exc = refused(bundle)
    assert status == 422 and exc.expression == f"{SS}.identifier[0].value"


def test_two_document_references_with_one_entry_uuid_are_400_at_parse() -> None:
    first = make_entry(content=sample_pdf(text="one"))
    second = make_entry(content=sample_pdf(text="two"), entry_uuid=first.entry_uuid)
    bundle = build_provide_bundle(
        [(first, sample_pdf(text="one")), (second, sample_pdf(text="two"))],
        source_id=SOURCE,
        submission_set_unique_id="1.2.3.99",
    )
    # build_provide_bundle uses the entryUUID as fullUrl; give the second its own.
    bundle["entry"][2]["fullUrl"] = "urn:uuid:11111111-2222-3333-4444-555555555555"
    submission_set(bundle)["entry"][1]["item"]["reference"] = bundle["entry"][2]["fullUrl"]
    status, exc = refused(bundle)
    assert status == 400 and isinstance(exc, BadRequest) and exc.code == "duplicate"
    assert exc.expression == "Bundle.entry[2].resource.identifier"
    assert str(first.entry_uuid) in exc.message


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00-14:00",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59+14:00",
        "2024-01-01T00:00:00+23:59",
        "1799-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize(
    ("where", "expression"),
    [
        (
            lambda d, m: d["content"][0]["attachment"].update(creation=m),
            "content[0].attachment.creation",
        ),
        (lambda d, m: d.update(date=m), "date"),
        (lambda d, m: d["context"].update(period={"start": m}), "context.period.start"),
        (lambda d, m: d["context"].update(period={"end": m}), "context.period.end"),
        (
            lambda d, m: d.setdefault("extension", []).append(
                {"url": EXT_CITIZEN_RELEASE_TIME, "valueDateTime": m}
            ),
            "extension[citizen-release-time]",
        ),
    ],
)
def test_extreme_dates_are_422_naming_the_element(
    moment: str, where: Callable[[dict[str, Any], str], None], expression: str
) -> None:
    bundle = bundle_of()
    doc = document(bundle)
    if expression == "date":
        doc["content"][0]["attachment"].pop("creation")
    where(doc, moment)
    status, exc = refused(bundle)
    assert status == 422 and exc.expression == f"{DOC}.{expression}"


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (
            lambda d: d.update(contained=[{"resourceType": "Practitioner", "id": 5}]),
            "contained[0].id",
        ),
        (
            lambda d: d["content"][0]["attachment"].update(title="t\u0000itle"),
            "content[0].attachment.title",
        ),
        (
            lambda d: d["content"][0]["attachment"].update(title="t" * 513),
            "content[0].attachment.title",
        ),
        (
            lambda d: d["context"].update(related=[{"identifier": {"value": "r" * 257}}]),
            "context.related[0].identifier.value",
        ),
        (lambda d: d.update(securityLabel=[d["securityLabel"][0]] * 257), "securityLabel"),
        (lambda d: d["content"][0]["attachment"].update(size=True), "content[0].attachment.size"),
        (
            lambda d: d["content"][0]["attachment"].update(contentType="a/" + "b" * 200),
            "content[0].attachment.contentType",
        ),
    ],
)
def test_document_reference_shapes_are_4xx_naming_the_element(
    mutate: Callable[[dict[str, Any]], None], expression: str
) -> None:
    bundle = bundle_of()
    mutate(document(bundle))
    _, exc = refused(bundle)
    assert exc.expression == f"{DOC}.{expression}"


def test_a_name_given_as_a_number_is_refused_not_dropped() -> None:
    from onerecord.domain import Author, AuthorPerson

    bundle = bundle_of(authors=(Author(person=AuthorPerson(given="Kari", family="Nord")),))
    practitioner = next(
        c for c in document(bundle)["contained"] if c["resourceType"] == "Practitioner"
    )
    practitioner["name"][0]["given"] = ["Kari", 5]
    _, exc = refused(bundle)
    assert exc.expression is not None and exc.expression.endswith("name[0].given[1]")


def test_repeated_full_url_is_400() -> None:
    bundle = bundle_of(2)
    bundle["entry"][4]["fullUrl"] = bundle["entry"][3]["fullUrl"]
    status, exc = refused(bundle)
    assert status == 400 and exc.expression == "Bundle.entry[4].fullUrl"


_BUNDLE = bundle_of(2, authors=())


@settings(max_examples=150, deadline=None)
@given(mutation=mutations(_BUNDLE))
def test_any_mutated_bundle_parses_or_is_4xx(mutation: tuple[Path, Any, bool]) -> None:
    path, value, delete = mutation
    body = orjson.dumps(mutated(_BUNDLE, path, value, delete=delete))
    try:
        parsed = parse_provide_bundle(body)
    except (MhdError, DomainError) as exc:
        assert 400 <= outcome_for(exc)[0] < 500, exc
        return
    # What parses keeps every date and string within the limits the registry relies on.
    for doc in parsed.documents:
        assert replace(doc.entry) == doc.entry
        assert len(doc.entry.title) <= 512
    assert parsed.submission_set.unique_id
