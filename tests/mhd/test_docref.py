from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import (
    Author,
    AuthorInstitution,
    AuthorPerson,
    Coding,
    DocumentEntry,
    DocumentStatus,
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    InvalidDocumentEntry,
    InvalidIdentifier,
    OrganisationNumber,
    RepositoryUniqueId,
    ReshId,
    UnknownCode,
    validate_codes,
)
from onerecord.mhd import (
    EXT_HOME_COMMUNITY_ID,
    BadRequest,
    RetrieveKey,
    Unprocessable,
    UnsupportedMediaType,
    document_reference,
    entry_from_document_reference,
    parse_retrieve_path,
    retrieve_url,
)
from onerecord.mhd.docref import (
    document_reference_template,
    fill_document_reference,
    retrieve_url_prefix,
)
from tests.factories import make_entry, sample_pdf, synthetic_nin
from tests.mhd.oracle import validate

V = "urn:oid:2.16.578.1.12.4.1.1."
URL = "http://127.0.0.1/fhir/Binary/x"


def rich_entry() -> DocumentEntry:
    return validate_codes(
        make_entry(
            replaces="2.16.578.1.12.4.5.100.1.1.7",
            home_community_id="urn:oid:2.16.578.1.12.4.5.100.1",
            repository_unique_id="2.16.578.1.12.4.5.100.1.2",
            unique_id="2.16.578.1.12.4.5.100.1.1.8^v2",
            confidentiality_codes=(
                Coding(V + "9603", "NORU"),
                Coding("2.16.840.1.113883.5.25", "R"),
            ),
            event_codes=(Coding(V + "7210", "1"), Coding(V + "7210", "2")),
            reference_ids=("urn:oid:1.2.3.4^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession", "A-1"),
            citizen_release_time=datetime(2024, 4, 1, 8, 0, tzinfo=UTC),
            submission_time=datetime(2024, 3, 16, 9, 0, 0, 123000, tzinfo=UTC),
            authors=(
                Author(person=AuthorPerson("Ola", "Nordmann")),
                Author(
                    institution=AuthorInstitution(
                        "Legesenteret AS", OrganisationNumber("983974899")
                    )
                ),
                Author(
                    person=AuthorPerson("Kari Anne", "Hansen", HprNumber("1234567")),
                    institution=AuthorInstitution(
                        "Testsykehuset HF",
                        OrganisationNumber("983974899"),
                        department_name="Barneavdelingen",
                        department_resh=ReshId("108"),
                    ),
                    role="LE",
                ),
                Author(
                    institution=AuthorInstitution(
                        "Testsykehuset HF",
                        OrganisationNumber("983974899"),
                        department_resh=ReshId("9"),
                    )
                ),
            ),
            creation_time=datetime(2024, 3, 15, 10, 30, tzinfo=timezone(timedelta(hours=1))),
        )
    )


def test_rich_entry_round_trips_and_validates() -> None:
    entry = rich_entry()
    resource = document_reference(entry, id="doc-1", attachment_url=URL)
    validate(resource)
    assert entry_from_document_reference(resource, binary=None) == entry
    assert entry_from_document_reference(resource, binary=sample_pdf()) == entry


def test_rendered_shape_follows_mhd() -> None:
    entry = rich_entry()
    r = document_reference(entry, id="doc-1", attachment_url=URL)
    assert r["masterIdentifier"] == {
        "system": "urn:ietf:rfc:3986",
        "value": "2.16.578.1.12.4.5.100.1.1.8^v2",
    }
    assert r["identifier"] == [
        {"use": "official", "system": "urn:ietf:rfc:3986", "value": entry.entry_uuid.urn}
    ]
    assert r["subject"] == {
        "identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": entry.patient_id.value}
    }
    assert r["date"] == entry.creation_time.isoformat()
    att = r["content"][0]["attachment"]
    assert att["hash"] == base64.b64encode(hashlib.sha1(sample_pdf()).digest()).decode()
    assert att["size"] == len(sample_pdf()) and att["url"] == URL
    assert r["relatesTo"][0]["code"] == "replaces"
    assert (
        r["relatesTo"][0]["target"]["identifier"]["value"] == "urn:oid:2.16.578.1.12.4.5.100.1.1.7"
    )
    assert {
        "url": EXT_HOME_COMMUNITY_ID,
        "valueIdentifier": {
            "system": "urn:ietf:rfc:3986",
            "value": "urn:oid:2.16.578.1.12.4.5.100.1",
        },
    } in r["extension"]
    assert [s["coding"][0]["code"] for s in r["securityLabel"]] == ["NORU", "R"]
    kinds = [c["resourceType"] for c in r["contained"]]
    assert kinds.count("PractitionerRole") == 4
    dept = next(c for c in r["contained"] if c["id"] == "author2-dept")
    assert dept["identifier"][0] == {"system": "urn:oid:2.16.578.1.12.4.1.4.102", "value": "108"}
    assert dept["partOf"] == {"reference": "#author2-org"}


def test_plain_oid_unique_id_uses_urn_oid() -> None:
    entry = make_entry(unique_id="1.2.3.4")
    r = document_reference(entry, id=None, attachment_url=URL)
    assert r["masterIdentifier"]["value"] == "urn:oid:1.2.3.4"
    assert "id" not in r


@pytest.mark.parametrize(
    "ext",
    [
        {"url": EXT_HOME_COMMUNITY_ID, "valueOid": "urn:oid:1.2.3"},
        {
            "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-homeCommunityId",
            "valueIdentifier": {"value": "urn:oid:1.2.3"},
        },
        {
            "url": "http://ihe.net/fhir/StructureDefinition/homeCommunityId",
            "valueUri": "urn:oid:1.2.3",
        },
    ],
)
def test_home_community_id_extension_forms_are_read(ext: dict[str, Any]) -> None:
    r = document_reference(make_entry(), id="a", attachment_url=URL)
    r["extension"] = [ext]
    entry = entry_from_document_reference(r, binary=None)
    assert entry.home_community_id == HomeCommunityId.parse("urn:oid:1.2.3")


def test_practitioner_and_organization_authors_from_other_senders_are_read() -> None:
    r = document_reference(make_entry(authors=()), id="a", attachment_url=URL)
    r["contained"] = [
        {"resourceType": "Practitioner", "id": "p", "name": [{"family": "Berg", "given": ["Per"]}]},
        {
            "resourceType": "Organization",
            "id": "o",
            "name": "Fastlegen",
            "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": "983974899"}],
        },
    ]
    r["author"] = [{"reference": "#p"}, {"reference": "#o"}]
    entry = entry_from_document_reference(r, binary=None)
    assert entry.authors == (
        Author(person=AuthorPerson("Per", "Berg")),
        Author(institution=AuthorInstitution("Fastlegen", OrganisationNumber("983974899"))),
    )


def _parse_error(mutate: Any, *, binary: bytes | None = None) -> Exception:
    r = document_reference(make_entry(), id="a", attachment_url=URL)
    mutate(r)
    with pytest.raises(
        (Unprocessable, InvalidIdentifier, InvalidDocumentEntry, UnknownCode, UnsupportedMediaType)
    ) as e:
        entry_from_document_reference(r, binary=binary, at="Bundle.entry[2].resource")
    return e.value


@pytest.mark.parametrize(
    ("mutate", "kind", "expression"),
    [
        (lambda r: r.pop("subject"), Unprocessable, "Bundle.entry[2].resource.subject"),
        (
            lambda r: r["subject"]["identifier"].update(value="15835000034"),
            InvalidIdentifier,
            "Bundle.entry[2].resource.subject.identifier.value",
        ),
        (
            lambda r: r["subject"]["identifier"].update(system="urn:oid:9.9"),
            Unprocessable,
            "Bundle.entry[2].resource.subject.identifier.system",
        ),
        (
            lambda r: r["subject"]["identifier"].update(system="urn:oid:2.16.578.1.12.4.1.4.2"),
            Unprocessable,
            "Bundle.entry[2].resource.subject.identifier.system",
        ),
        (
            lambda r: r.pop("masterIdentifier"),
            Unprocessable,
            "Bundle.entry[2].resource.masterIdentifier",
        ),
        (
            lambda r: r["masterIdentifier"].update(value="not-an-oid"),
            InvalidIdentifier,
            "Bundle.entry[2].resource.masterIdentifier.value",
        ),
        (lambda r: r.update(identifier=[]), Unprocessable, "Bundle.entry[2].resource.identifier"),
        (lambda r: r.update(status="draft"), Unprocessable, "Bundle.entry[2].resource.status"),
        (
            lambda r: r["type"]["coding"][0].update(code="A99-2"),
            UnknownCode,
            "Bundle.entry[2].resource.type",
        ),
        (
            lambda r: r["context"]["facilityType"]["coding"][0].update(code="00.000"),
            UnknownCode,
            "Bundle.entry[2].resource.context.facilityType",
        ),
        (
            lambda r: r["content"][0]["attachment"].update(language="xx-XX"),
            UnknownCode,
            "Bundle.entry[2].resource.content[0].attachment.language",
        ),
        (
            lambda r: r["content"][0]["attachment"].update(title="  "),
            InvalidDocumentEntry,
            "Bundle.entry[2].resource.content[0].attachment.title",
        ),
        (
            lambda r: r["content"][0]["attachment"].update(creation="2024-03-15"),
            Unprocessable,
            "Bundle.entry[2].resource.content[0].attachment.creation",
        ),
        (
            lambda r: r["content"][0]["attachment"].update(size=-1),
            Unprocessable,
            "Bundle.entry[2].resource.content[0].attachment.size",
        ),
        (
            lambda r: r["content"][0]["attachment"].update(hash="!!"),
            Unprocessable,
            "Bundle.entry[2].resource.content[0].attachment.hash",
        ),
        (lambda r: r.update(category=[]), Unprocessable, "Bundle.entry[2].resource.category"),
        (
            lambda r: (
                r["relatesTo"].__setitem__(0, {"code": "appends"})
                if "relatesTo" in r
                else r.update(relatesTo=[{"code": "appends", "target": {}}])
            ),
            Unprocessable,
            "Bundle.entry[2].resource.relatesTo[0].code",
        ),
        (
            lambda r: r.update(author=[{"reference": "#nobody"}]),
            Unprocessable,
            "Bundle.entry[2].resource.author[0].reference",
        ),
    ],
)
def test_structural_errors_name_the_element(mutate: Any, kind: type, expression: str) -> None:
    exc = _parse_error(mutate)
    assert isinstance(exc, kind)
    assert getattr(exc, "expression", None) == expression


def test_missing_hashes_without_binary_are_required() -> None:
    def drop(r: dict[str, Any]) -> None:
        r["content"][0]["attachment"].pop("hash")

    exc = _parse_error(drop)
    assert isinstance(exc, Unprocessable) and exc.code == "required"


@pytest.mark.parametrize(
    ("mutate", "word"),
    [
        (lambda a: a.update(size=1), "size"),
        (lambda a: a.update(hash=base64.b64encode(hashlib.sha1(b"x").digest()).decode()), "SHA-1"),
        (lambda a: a["extension"][0].update(valueString="0" * 64), "SHA-256"),
    ],
)
def test_declared_size_and_hashes_must_match_the_bytes(mutate: Any, word: str) -> None:
    exc = _parse_error(lambda r: mutate(r["content"][0]["attachment"]), binary=sample_pdf())
    assert isinstance(exc, Unprocessable) and exc.status == 422
    assert word in exc.message


def test_declared_type_must_fit_the_bytes() -> None:
    exc = _parse_error(
        lambda r: r["content"][0]["attachment"].update(contentType="image/png"),
        binary=sample_pdf(),
    )
    assert isinstance(exc, UnsupportedMediaType)
    assert "image/png" in exc.message and "application/pdf" in exc.message


def test_not_a_document_reference() -> None:
    with pytest.raises(Unprocessable):
        entry_from_document_reference({"resourceType": "Patient"}, binary=None)


_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
)
_moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@st.composite
def entries(draw: st.DrawFn) -> DocumentEntry:
    content = draw(st.binary(min_size=0, max_size=64))
    start = draw(st.none() | _moments)
    stop = None if start is None else draw(st.none() | st.just(start + timedelta(hours=1)))
    authors = draw(
        st.lists(
            st.builds(
                Author,
                person=st.builds(
                    AuthorPerson,
                    given=_names,
                    family=_names,
                    hpr=st.none() | st.just(HprNumber("12345")),
                ),
                institution=st.none()
                | st.builds(
                    AuthorInstitution,
                    name=_names,
                    organisation_number=st.just(OrganisationNumber("983974899")),
                    department_name=st.none() | _names,
                    department_resh=st.none() | st.just(ReshId("42")),
                ),
                role=st.none() | _names,
            ),
            max_size=3,
        )
    )
    entry = make_entry(
        content=content,
        patient_id=synthetic_nin(draw(st.integers(0, 30))),
        mime_type="application/octet-stream",
        title=draw(_names.filter(lambda s: s.strip() != "")),
        creation_time=draw(_moments),
        service_start_time=start,
        service_stop_time=stop,
        authors=tuple(authors),
        status=draw(st.sampled_from(DocumentStatus)),
        reference_ids=tuple(draw(st.lists(_names, max_size=3))),
        unique_id=draw(st.sampled_from(["1.2.3", "2.25.99^x", "1.2.840.1^abc~_%é"])),
    )
    if draw(st.booleans()):
        entry = replace(
            entry,
            home_community_id=HomeCommunityId.parse("urn:oid:1.2.3"),
            repository_unique_id=RepositoryUniqueId.parse("1.2.4"),
        )
    return validate_codes(entry)


@settings(max_examples=60, deadline=None)
@given(entries())
def test_any_entry_round_trips(entry: DocumentEntry) -> None:
    resource = document_reference(entry, id=str(entry.entry_uuid), attachment_url=URL)
    assert entry_from_document_reference(resource, binary=None) == entry


# --- ITI-68 retrieve keys -------------------------------------------------------------------


def _key(unique_id: str) -> RetrieveKey:
    return RetrieveKey(
        HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1"),
        RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.1.2"),
        DocumentUniqueId(unique_id),
    )


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=16).filter(str.isprintable))
def test_retrieve_token_round_trips_and_is_url_safe(extension: str) -> None:
    key = _key(f"1.2.3^{extension}")
    token = key.token()
    assert all(c.isascii() and (c.isalnum() or c in ".-_~") for c in token)
    assert RetrieveKey.parse(token) == key


def test_retrieve_token_shape_and_url() -> None:
    key = _key("1.2.3^a~b")
    assert key.token() == "2.16.578.1.12.4.5.100.1~2.16.578.1.12.4.5.100.1.2~1.2.3_5Ea_7Eb"
    url = retrieve_url(
        "http://h/fhir/", key.home_community_id, key.repository_unique_id, key.unique_id
    )
    assert url == f"http://h/fhir/Binary/{key.token()}"
    assert parse_retrieve_path(url + "?x=1") == key
    assert parse_retrieve_path(f"/fhir/Binary/{key.token()}") == key


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "1.2~1.3",
        "1.2~1.3~",
        "x.y~1.3~1.2",
        "1.2~1.3~1.2_5",
        "1.2~1.3~1.2_ZZ",
        "1.2~1.3~1.2^a",
        "1.2~1.3~1.2_5Eabcdefghijklmnopqrstu",
        "1.2~1.3~1.2~4",
    ],
)
def test_bad_retrieve_tokens_are_400(token: str) -> None:
    with pytest.raises(BadRequest) as caught:
        RetrieveKey.parse(token)
    assert caught.value.status == 400


def test_url_without_binary_is_400() -> None:
    with pytest.raises(BadRequest):
        parse_retrieve_path("http://h/fhir/DocumentReference/1")


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(min_size=1, max_size=40).filter(str.strip),
    status=st.sampled_from(DocumentStatus),
    extension=st.none() | st.text(alphabet="abcXYZ019^&~_ %/", min_size=1, max_size=16),
    base=st.sampled_from(["http://s/fhir", "https://region.example/r1/fhir/", "http://x/a b"]),
)
def test_filled_template_is_the_rendered_reference(
    title: str, status: DocumentStatus, extension: str | None, base: str
) -> None:
    """The stored rendering, filled in, is byte for byte what `document_reference` renders."""
    unique_id = "2.25.42" if extension is None else f"2.25.42^{extension}"
    entry = replace(make_entry(), title=title, status=status, unique_id=DocumentUniqueId(unique_id))
    hcid = HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1")
    repository = RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.1.2")
    template = document_reference_template(entry)
    if template is None:  # text that looks like a slot: rendered per answer instead
        assert title.startswith(("\x00status\x00", "\x00retrieve-url\x00"))
        return
    filled = fill_document_reference(
        template, status=status.value, url_prefix=retrieve_url_prefix(base, hcid, repository)
    )
    url = f"{base}/Binary/{RetrieveKey(hcid, repository, entry.unique_id).token()}"
    want = document_reference(entry, id=str(entry.entry_uuid), attachment_url=url)
    assert filled == orjson.dumps(want)
