from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from onerecord.domain import (
    DocumentEntry,
    DomainError,
    InvalidIdentifier,
    UnknownCode,
    validate_codes,
)
from onerecord.mhd import (
    BadRequest,
    MhdError,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    build_provide_bundle,
    outcome_for,
    parse_provide_bundle,
    transaction_response,
)
from tests.factories import make_entry, sample_pdf, synthetic_nin
from tests.mhd.oracle import validate

SOURCE = "urn:oid:2.16.578.1.12.4.5.100.1.9"


def docs(n: int = 2) -> list[tuple[DocumentEntry, bytes]]:
    out = []
    for i in range(n):
        content = sample_pdf(text=f"document {i}")
        out.append((make_entry(content=content), content))
    return out


def bundle_of(documents: list[tuple[DocumentEntry, bytes]]) -> dict[str, Any]:
    return build_provide_bundle(documents, source_id=SOURCE, submission_set_unique_id="1.2.3.99")


def test_provide_bundle_round_trip() -> None:
    documents = docs(3)
    first = documents[0][0]
    documents[1] = (replace(documents[1][0], replaces=first.unique_id), documents[1][1])
    bundle = bundle_of(documents)
    validate(bundle)
    parsed = parse_provide_bundle(orjson.dumps(bundle))
    assert [d.entry for d in parsed.documents] == [validate_codes(e) for e, _ in documents]
    assert [d.content for d in parsed.documents] == [c for _, c in documents]
    assert parsed.documents[1].entry.replaces == first.unique_id
    assert parsed.documents[0].full_url == f"urn:uuid:{first.entry_uuid}"
    ss = parsed.submission_set
    assert (ss.unique_id, ss.source_id, ss.patient_id) == ("1.2.3.99", SOURCE, first.patient_id)
    assert ss.entry_uuid is not None and ss.entry_uuid.startswith("urn:uuid:")
    assert ss.submission_time is not None
    assert [k for k, _ in parsed.order] == ["List"] + ["DocumentReference"] * 3 + ["Binary"] * 3


def test_transaction_response_has_one_entry_per_request_entry() -> None:
    parsed = parse_provide_bundle(orjson.dumps(bundle_of(docs(2))))
    locations = ["http://s/fhir/DocumentReference/a", "http://s/fhir/DocumentReference/b"]
    response = transaction_response(parsed, locations, submission_set_location="http://s/List/1")
    validate(response)
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 5
    assert [e["response"].get("location") for e in response["entry"]] == [
        "http://s/List/1",
        *locations,
        None,
        None,
    ]
    with pytest.raises(ValueError):
        transaction_response(parsed, locations[:1])


def expect(
    body: bytes, kind: type[Exception], status: int, expression: str | None = None
) -> Exception:
    with pytest.raises(kind) as caught:
        parse_provide_bundle(body)
    exc = caught.value
    assert isinstance(exc, MhdError | DomainError)
    assert outcome_for(exc)[0] == status
    if expression is not None:
        assert exc.expression == expression
    return exc


def tampered(mutate: Callable[[dict[str, Any]], None], n: int = 1) -> bytes:
    bundle = bundle_of(docs(n))
    mutate(bundle)
    return orjson.dumps(bundle)


def doc_of(bundle: dict[str, Any], index: int = 0) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
    ]
    return found[index]


def test_malformed_json_is_400_with_position() -> None:
    exc = expect(b'{"resourceType": "Bundle",\n  "type": }', BadRequest, 400)
    assert "invalid JSON at line 2 column" in str(exc)


@pytest.mark.parametrize(
    ("mutate", "word", "expression"),
    [
        (lambda b: b.update(resourceType="Parameters"), "Bundle", "Bundle.resourceType"),
        (lambda b: b.update(type="batch"), "transaction", "Bundle.type"),
        (lambda b: b.update(entry=[]), "no entries", "Bundle.entry"),
        (lambda b: b["entry"].pop(0), "exactly one SubmissionSet", "Bundle.entry"),
        (
            lambda b: b["entry"].append({**b["entry"][0], "fullUrl": "urn:uuid:another-list"}),
            "found 2",
            "Bundle.entry",
        ),
        (lambda b: b["entry"].append(b["entry"][0]), "appears twice", "Bundle.entry[3].fullUrl"),
        (lambda b: b["entry"][1].pop("fullUrl"), "fullUrl", "Bundle.entry[1].fullUrl"),
        (lambda b: b["entry"].__setitem__(1, {"x": 1}), "no resource", "Bundle.entry[1]"),
    ],
)
def test_envelope_errors_are_400(mutate: Any, word: str, expression: str) -> None:
    exc = expect(tampered(mutate), BadRequest, 400, expression)
    assert word in str(exc)


def test_not_an_object_is_400() -> None:
    expect(b"[1, 2]", BadRequest, 400, "Bundle.resourceType")


def test_attachment_must_point_to_a_binary_in_the_bundle() -> None:
    def mutate(b: dict[str, Any]) -> None:
        doc_of(b)["content"][0]["attachment"]["url"] = (
            "urn:uuid:00000000-0000-0000-0000-000000000000"
        )

    expect(
        tampered(mutate), Unprocessable, 422, "Bundle.entry[1].resource.content[0].attachment.url"
    )


def test_binary_must_be_base64() -> None:
    def mutate(b: dict[str, Any]) -> None:
        b["entry"][2]["resource"]["data"] = "***not base64***"

    expect(tampered(mutate), Unprocessable, 422, "Bundle.entry[2].resource.data")


def test_base64_with_line_breaks_is_accepted() -> None:
    def mutate(b: dict[str, Any]) -> None:
        data = b["entry"][2]["resource"]["data"]
        b["entry"][2]["resource"]["data"] = "\n".join(
            data[i : i + 76] for i in range(0, len(data), 76)
        )

    assert len(parse_provide_bundle(tampered(mutate)).documents) == 1


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda a: a.update(size=a["size"] + 1), "content[0].attachment.size"),
        (
            lambda a: a.update(hash=base64.b64encode(hashlib.sha1(b"other").digest()).decode()),
            "content[0].attachment.hash",
        ),
        (
            lambda a: a["extension"][0].update(valueString="ab" * 32),
            "content[0].attachment.extension[document-sha256]",
        ),
    ],
)
def test_size_and_hashes_must_match(mutate: Any, path: str) -> None:
    body = tampered(lambda b: mutate(doc_of(b)["content"][0]["attachment"]))
    expect(body, Unprocessable, 422, f"Bundle.entry[1].resource.{path}")


def test_hashes_may_be_left_out() -> None:
    def mutate(b: dict[str, Any]) -> None:
        att = doc_of(b)["content"][0]["attachment"]
        att.pop("hash")
        att.pop("extension")
        att.pop("size")

    (doc,) = parse_provide_bundle(tampered(mutate)).documents
    assert doc.entry.hash_sha1 == hashlib.sha1(doc.content).hexdigest()
    assert doc.entry.size == len(doc.content)


def test_mime_mismatch_is_415() -> None:
    body = tampered(lambda b: doc_of(b)["content"][0]["attachment"].update(contentType="image/png"))
    exc = expect(
        body,
        UnsupportedMediaType,
        415,
        "Bundle.entry[1].resource.content[0].attachment.contentType",
    )
    assert "image/png" in str(exc) and "application/pdf" in str(exc)


def test_invalid_patient_number_is_422_with_expression() -> None:
    def mutate(b: dict[str, Any]) -> None:
        value = doc_of(b)["subject"]["identifier"]["value"]
        doc_of(b)["subject"]["identifier"]["value"] = value[:10] + str((int(value[10]) + 1) % 10)

    exc = expect(
        tampered(mutate),
        InvalidIdentifier,
        422,
        "Bundle.entry[1].resource.subject.identifier.value",
    )
    assert "check digit" in str(exc)


def test_invalid_submission_set_patient_is_422() -> None:
    def mutate(b: dict[str, Any]) -> None:
        b["entry"][0]["resource"]["subject"]["identifier"]["value"] = "12345678901"

    expect(
        tampered(mutate),
        InvalidIdentifier,
        422,
        "Bundle.entry[0].resource.subject.identifier.value",
    )


def test_unknown_code_is_422_naming_element_and_code() -> None:
    body = tampered(lambda b: doc_of(b)["type"]["coding"][0].update(code="A99-2"))
    exc = expect(body, UnknownCode, 422, "Bundle.entry[1].resource.type")
    assert "A99-2" in str(exc)


def test_subject_must_equal_the_submission_set_subject() -> None:
    other = synthetic_nin(5)
    body = tampered(lambda b: doc_of(b)["subject"]["identifier"].update(value=other))
    exc = expect(body, Unprocessable, 422, "Bundle.entry[1].resource.subject.identifier.value")
    assert "SubmissionSet" in str(exc)


def test_unique_ids_must_be_distinct() -> None:
    documents = docs(2)
    documents[1] = (replace(documents[1][0], unique_id=documents[0][0].unique_id), documents[1][1])
    exc = expect(
        orjson.dumps(bundle_of(documents)),
        Unprocessable,
        422,
        "Bundle.entry[2].resource.masterIdentifier.value",
    )
    assert "used twice" in str(exc)


def test_a_binary_cannot_serve_two_documents() -> None:
    def mutate(b: dict[str, Any]) -> None:
        doc_of(b, 1)["content"][0]["attachment"]["url"] = doc_of(b, 0)["content"][0]["attachment"][
            "url"
        ]

    expect(
        tampered(mutate, n=2),
        Unprocessable,
        422,
        "Bundle.entry[2].resource.content[0].attachment.url",
    )


def test_too_many_documents_is_413() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        parse_provide_bundle(orjson.dumps(bundle_of(docs(3))), max_documents=2)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (lambda s: s.pop("subject"), "Bundle.entry[0].resource.subject"),
        (lambda s: s.update(subject={}), "Bundle.entry[0].resource.subject.identifier"),
        (lambda s: s.pop("extension"), "Bundle.entry[0].resource.extension[ihe-sourceId]"),
        (
            lambda s: s.update(identifier=[s["identifier"][1]]),
            "Bundle.entry[0].resource.identifier",
        ),
        (lambda s: s.update(date="yesterday"), "Bundle.entry[0].resource.date"),
    ],
)
def test_submission_set_requirements(mutate: Any, expression: str) -> None:
    expect(tampered(lambda b: mutate(b["entry"][0]["resource"])), Unprocessable, 422, expression)


def test_other_resource_types_are_refused() -> None:
    def mutate(b: dict[str, Any]) -> None:
        b["entry"].append(
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            }
        )

    expect(tampered(mutate), Unprocessable, 422, "Bundle.entry[3].resource")


def test_bundle_without_documents_is_422() -> None:
    def mutate(b: dict[str, Any]) -> None:
        del b["entry"][1:]

    expect(tampered(mutate), Unprocessable, 422, "Bundle.entry")


def test_build_needs_documents() -> None:
    with pytest.raises(ValueError):
        build_provide_bundle([], source_id=SOURCE, submission_set_unique_id="1.2")


def _index_of(bundle: dict[str, Any], kind: str) -> int:
    return next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == kind)


def test_entry_that_is_not_a_post_is_400() -> None:
    def mutate(b: dict[str, Any]) -> None:
        b["entry"][_index_of(b, "Binary")]["request"]["method"] = "PUT"

    body = tampered(mutate)
    index = _index_of(orjson.loads(body), "Binary")
    exc = expect(body, BadRequest, 400, f"Bundle.entry[{index}].request.method")
    assert "PUT" in str(exc)


def test_submission_set_must_list_every_document() -> None:
    def mutate(b: dict[str, Any]) -> None:
        b["entry"][_index_of(b, "List")]["resource"]["entry"].pop()

    exc = expect(tampered(mutate, n=2), Unprocessable, 422)
    assert "does not list" in str(exc)


def test_submission_set_must_not_list_strangers() -> None:
    def mutate(b: dict[str, Any]) -> None:
        members = b["entry"][_index_of(b, "List")]["resource"]["entry"]
        members.append({"item": {"reference": "urn:uuid:not-in-this-bundle"}})

    exc = expect(tampered(mutate), Unprocessable, 422)
    assert "urn:uuid:not-in-this-bundle" in str(exc)


def test_binary_that_no_document_uses_is_422() -> None:
    def mutate(b: dict[str, Any]) -> None:
        b["entry"].append(
            {
                "fullUrl": "urn:uuid:stray-binary",
                "resource": {"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="},
                "request": {"method": "POST", "url": "Binary"},
            }
        )

    exc = expect(tampered(mutate), Unprocessable, 422)
    assert "urn:uuid:stray-binary" in str(exc)
