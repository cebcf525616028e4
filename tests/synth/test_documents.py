from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest

from onerecord.domain import (
    CONFIDENTIALITY_VOLVEN,
    NationalIdentityNumber,
    validate_codes,
)
from onerecord.synth.documents import (
    SyntheticDocument,
    fast_entries,
    generate_documents,
    patient_regions,
)
from onerecord.synth.numbers import RealFormNumber
from onerecord.synth.population import Population
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo, region

from .conftest import REFERENCE_DATE, SEED
from .formats import check_fhir_document, check_pdf, check_png, parse_xml

NOW = datetime.combine(REFERENCE_DATE, time(8, 0), tzinfo=UTC)


@pytest.fixture(scope="module")
def documents(population: Population) -> dict[str, list[SyntheticDocument]]:
    return {r.slug: list(generate_documents(population, r, seed=SEED)) for r in DEFAULT_REGIONS}


def test_same_seed_same_documents(population: Population) -> None:
    vest = region("vest")
    a = list(generate_documents(population, vest, seed=SEED))
    b = list(generate_documents(population, vest, seed=SEED))
    c = list(generate_documents(population, vest, seed=SEED + 1))
    assert a == b
    assert [d.entry.unique_id for d in a] != [d.entry.unique_id for d in c]


def test_every_entry_is_valid_and_matches_its_bytes(
    documents: dict[str, list[SyntheticDocument]],
) -> None:
    for slug, docs in documents.items():
        assert docs, slug
        root = region(slug).document_oid_root.value + "."
        for doc in docs:
            entry = doc.entry
            assert validate_codes(entry) == entry
            assert entry.hash_sha256 == hashlib.sha256(doc.content).hexdigest()
            assert entry.hash_sha1 == hashlib.sha1(doc.content).hexdigest()
            assert entry.size == len(doc.content)
            assert entry.unique_id.value.startswith(root)
            assert entry.entry_uuid.version == 4
            assert entry.patient_id.synthetic
            assert entry.language_code in ("nb-NO", "nn-NO")


def test_content_is_well_formed_for_its_mime_type(
    documents: dict[str, list[SyntheticDocument]],
) -> None:
    seen: Counter[str] = Counter()
    for doc in (d for docs in documents.values() for d in docs):
        mime = doc.entry.mime_type
        seen[mime] += 1
        if mime == "application/pdf":
            check_pdf(doc.content)
        elif mime == "image/png":
            check_png(doc.content)
        elif mime == "text/xml":
            root = parse_xml(doc.content)
            assert root.tag.startswith("{http://www.kith.no/xmlstds/")
            assert doc.entry.patient_id.value in doc.content.decode("utf-8")
        elif mime == "application/fhir+json":
            bundle = check_fhir_document(doc.content)
            assert doc.entry.patient_id.value in doc.content.decode("utf-8")
            assert bundle["identifier"]["value"] == f"urn:uuid:{doc.entry.entry_uuid}"
        else:
            assert mime == "text/plain"
            assert doc.content.decode("utf-8").strip()
    assert set(seen) == {
        "application/pdf",
        "image/png",
        "text/xml",
        "text/plain",
        "application/fhir+json",
    }


def test_type_class_and_format_belong_together(
    documents: dict[str, list[SyntheticDocument]],
) -> None:
    combos = {
        (d.entry.class_code.code, d.entry.type_code.code, d.entry.format_code.code)
        for docs in documents.values()
        for d in docs
    }
    assert ("A00-1", "A03-2", "urn:no:ehelse:document:pdf") in combos
    assert ("C00-1", "C01-2", "urn:no:kith:xmlstds:svarrapport") in combos
    assert ("I00-1", "I01-2", "urn:no:kith:xmlstds:henvisning") in combos
    assert ("E00-1", "E01-2", "urn:no:ehelse:document:image") in combos
    assert ("A00-1", "A03-2", "urn:ihe:iti:xds:2017:mimeTypeSufficient") in combos
    assert {c[1] for c in combos} >= {"A03-2", "B02-2", "C01-2", "E01-2", "E02-2", "I01-2", "I02-2"}


def test_unique_ids_are_unique_across_regions(
    documents: dict[str, list[SyntheticDocument]],
) -> None:
    ids = [d.entry.unique_id for docs in documents.values() for d in docs]
    uuids = [d.entry.entry_uuid for docs in documents.values() for d in docs]
    assert len(set(ids)) == len(ids)
    assert len(set(uuids)) == len(uuids)


def test_times_lie_in_the_patients_history(
    population: Population, documents: dict[str, list[SyntheticDocument]]
) -> None:
    earliest = NOW - timedelta(days=365 * 15 + 1)
    for doc in (d for docs in documents.values() for d in docs):
        entry = doc.entry
        born = population.citizen(entry.patient_id).birth_date
        assert max(earliest.date(), born) <= entry.creation_time.date() < REFERENCE_DATE
        if entry.service_start_time and entry.service_stop_time:
            assert entry.service_start_time <= entry.service_stop_time <= entry.creation_time
    years = {d.entry.creation_time.year for docs in documents.values() for d in docs}
    assert len(years) >= 10  # spread over the years, not bunched


def test_authors_are_registered_health_personnel(
    population: Population, documents: dict[str, list[SyntheticDocument]]
) -> None:
    for slug, docs in documents.items():
        for doc in docs:
            (author,) = doc.entry.authors
            assert author.person is not None and author.person.hpr is not None
            assert author.institution is not None
            org = population.organisation(author.institution.organisation_number)
            assert org.region_slug == slug and org.helsenett_member
            assert author.institution.department_resh is not None
            dept = org.department(author.institution.department_resh)
            assert doc.entry.practice_setting.code == dept.practice_setting
            assert doc.entry.healthcare_facility_type == org.facility_type


def test_confidentiality_mix(documents: dict[str, list[SyntheticDocument]]) -> None:
    codes = Counter(
        c for docs in documents.values() for d in docs for c in d.entry.confidentiality_code_values
    )
    total = sum(len(docs) for docs in documents.values())
    assert codes["N"] > total / 2
    for code in ("R", "V", "NORS", "NORU"):
        assert codes[code] > 0, code
    assert any(c.startswith("NORN_") for c in codes)


def test_noru_documents_are_released_in_the_future(
    documents: dict[str, list[SyntheticDocument]],
) -> None:
    for doc in (d for docs in documents.values() for d in docs):
        released = doc.entry.citizen_release_time
        if "NORU" in doc.entry.confidentiality_code_values:
            assert released is not None and released > NOW
        else:
            assert released is None


def test_replacements_follow_their_original(documents: dict[str, list[SyntheticDocument]]) -> None:
    replacements = 0
    for docs in documents.values():
        seen: dict[str, SyntheticDocument] = {}
        for doc in docs:
            if doc.entry.replaces is not None:
                replacements += 1
                original = seen[doc.entry.replaces.value]  # yielded before
                assert original.entry.patient_id == doc.entry.patient_id
                assert original.entry.type_code == doc.entry.type_code
                assert original.entry.creation_time < doc.entry.creation_time
            seen[doc.entry.unique_id.value] = doc
    assert replacements >= 8  # at least the showcase pair in every region


def test_showcase_cast_has_every_case_in_every_region(
    population: Population, documents: dict[str, list[SyntheticDocument]]
) -> None:
    for key in ("adult", "child11"):
        nin = population.cast[key].nin
        for slug, docs in documents.items():
            mine = [d.entry for d in docs if d.entry.patient_id == nin]
            codes = {c for e in mine for c in e.confidentiality_code_values}
            assert {"NORS", "V", "NORU", "N"} <= codes, (key, slug)
            assert any(c.startswith("NORN_") for c in codes), (key, slug)
            assert any(e.replaces for e in mine)
            volven = [
                c
                for e in mine
                for c in e.confidentiality_codes
                if c.system == CONFIDENTIALITY_VOLVEN
            ]
            assert volven


def test_showcase_adult_has_every_kind_of_document_over_several_regions(
    population: Population, documents: dict[str, list[SyntheticDocument]]
) -> None:
    adult = population.cast["adult"].nin
    mine = {
        slug: [d.entry for d in docs if d.entry.patient_id == adult]
        for slug, docs in documents.items()
    }
    assert sum(1 for entries in mine.values() if entries) >= 3
    entries = [e for group in mine.values() for e in group]
    formats = {e.format_code.code for e in entries}
    assert {
        "urn:ihe:iti:xds:2017:mimeTypeSufficient",  # the FHIR document
        "urn:no:ehelse:document:pdf",
        "urn:no:kith:xmlstds:svarrapport",
        "urn:no:ehelse:document:image",
    } <= formats
    assert any("NORS" in e.confidentiality_code_values for e in entries)
    fhir = [e for e in entries if e.mime_type == "application/fhir+json"]
    assert fhir and all(e.confidentiality_code_values == {"N"} for e in fhir)


def test_fhir_documents_are_only_planned_never_drawn(
    population: Population, documents: dict[str, list[SyntheticDocument]]
) -> None:
    adult = population.cast["adult"].nin
    holders = {
        d.entry.patient_id
        for docs in documents.values()
        for d in docs
        if d.entry.mime_type == "application/fhir+json"
    }
    assert holders == {adult}
    hso = region("hso")
    patients = [c.nin for c in population.citizens[:20]]
    fast = fast_entries(3000, seed=3, region=hso, patients=patients)
    assert all(e.mime_type != "application/fhir+json" for e in fast)


def test_patients_spread_over_regions(
    population: Population, documents: dict[str, list[SyntheticDocument]]
) -> None:
    holders: dict[str, set[str]] = {}
    for slug, docs in documents.items():
        for doc in docs:
            holders.setdefault(doc.entry.patient_id.value, set()).add(slug)
    for key, citizen in population.cast.items():
        assert len(holders[citizen.nin.value]) >= 3, key
        assert population.home_region(citizen.nin) in holders[citizen.nin.value]
    counts = Counter(len(s) for s in holders.values())
    assert set(counts) >= {1, 2, 4}
    for citizen in population.citizens:
        wanted = set(patient_regions(population, citizen.nin, SEED))
        assert holders.get(citizen.nin.value, set()) <= wanted


def test_per_patient_bounds(population: Population) -> None:
    nord = region("nord")
    showcase = {population.cast["adult"].nin, population.cast["child11"].nin}
    docs = list(generate_documents(population, nord, seed=1, per_patient=(2, 3)))
    originals: Counter[NationalIdentityNumber] = Counter(
        d.entry.patient_id for d in docs if d.entry.replaces is None
    )
    assert originals
    for nin, count in originals.items():
        if nin not in showcase:
            assert 2 <= count <= 3
    with pytest.raises(ValueError, match="per_patient"):
        next(generate_documents(population, nord, seed=1, per_patient=(3, 2)))


def test_fast_entries(population: Population) -> None:
    hso: RegionInfo = region("hso")
    patients = [c.nin for c in population.citizens[:20]]
    entries = list(fast_entries(2000, seed=3, region=hso, patients=patients))
    assert len(entries) == 2000
    assert len({e.unique_id for e in entries}) == 2000
    assert {e.patient_id for e in entries} == set(patients)
    for entry in entries[:200]:
        assert validate_codes(entry) == entry
        assert entry.size == len(b"synthetic")
    again = list(fast_entries(2000, seed=3, region=hso, patients=patients))
    assert again == entries
    real = NationalIdentityNumber.with_check_digits("010170499")
    assert real is not None
    with pytest.raises(RealFormNumber):
        next(fast_entries(1, seed=1, region=hso, patients=[real]))
