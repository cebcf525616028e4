"""Synthetic clinical documents with their XDS metadata, as (DocumentEntry, bytes).

Kinds: PDF discharge summaries (A03-2), KITH-style XML epikrise, lab results (C01-2),
referrals (I01-2), letters (I02-2), imaging reports (E02-2), journal notes (B02-2) and small
images (E01-2); the showcase member "adult" also has a FHIR document (an epikrise with its
medication list, application/fhir+json, formatCode mimeTypeSufficient), which is never drawn at
random so that other patients' documents stay as they were. Confidentiality is mostly N,
with R, V, NORS (blocked), NORN_* (withheld from the patient) and NORU (delayed citizen access)
sprinkled in, and a few replacements (RPLC).

Deterministic: every patient and region has its own `random.Random` seeded from
(seed, region, patient), so the same seed gives the same documents in the same order.

References: IHE ITI TF-3 4.2.3.2 (DocumentEntry), 4.2.2.2.2 (RPLC); TRUST-FRAMEWORK §5.3
(NORN_*, NORU), §6 (Norwegian metadata: Volven 9602/9603/1303/8451/7210, format codes).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from onerecord.domain import (
    CONFIDENTIALITY_HL7,
    CONFIDENTIALITY_VOLVEN,
    DOCUMENT_TYPE_SYSTEM,
    Author,
    AuthorInstitution,
    AuthorPerson,
    Coding,
    DocumentEntry,
    DocumentUniqueId,
    NationalIdentityNumber,
    code_tables,
    validate_codes,
)
from onerecord.synth import clinical, fhir_document, kith
from onerecord.synth.numbers import ensure_synthetic
from onerecord.synth.pdf import PdfParagraph, render_pdf
from onerecord.synth.png import render_png
from onerecord.synth.population import (
    FACILITY_TYPE_SYSTEM,
    PRACTICE_SETTING_SYSTEM,
    Citizen,
    Department,
    Organisation,
    Population,
    Practitioner,
)
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo

__all__ = [
    "EVENT_SYSTEM",
    "FORMAT_SYSTEM",
    "DocumentKind",
    "SyntheticDocument",
    "fast_entries",
    "generate_documents",
    "patient_regions",
]

FORMAT_SYSTEM = "urn:oid:1.3.6.1.4.1.19376.1.2.3"
EVENT_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.7210"
_YEARS_OF_HISTORY = 15
# Cast members whose documents must show every confidentiality case in every region.
_SHOWCASE = ("adult", "child11")


@dataclass(frozen=True, slots=True)
class SyntheticDocument:
    """A document's registry metadata and its bytes."""

    entry: DocumentEntry
    content: bytes


class DocumentKind(StrEnum):
    """The kinds of document the generator writes."""

    DISCHARGE_PDF = "discharge-pdf"
    DISCHARGE_XML = "discharge-xml"
    LAB = "lab"
    REFERRAL = "referral"
    LETTER = "letter"
    IMAGING = "imaging"
    NOTE = "note"
    IMAGE = "image"
    FHIR_DOCUMENT = "fhir-document"


@dataclass(frozen=True, slots=True)
class _KindSpec:
    class_code: str
    type_code: str
    format_code: str
    mime_type: str
    weight: int  # 0: never drawn at random, only planned (showcase)


_KINDS: dict[DocumentKind, _KindSpec] = {
    DocumentKind.DISCHARGE_PDF: _KindSpec(
        "A00-1", "A03-2", "urn:no:ehelse:document:pdf", "application/pdf", 6
    ),
    DocumentKind.DISCHARGE_XML: _KindSpec(
        "A00-1", "A03-2", "urn:no:kith:xmlstds:epikrise", "text/xml", 2
    ),
    DocumentKind.LAB: _KindSpec("C00-1", "C01-2", "urn:no:kith:xmlstds:svarrapport", "text/xml", 5),
    DocumentKind.REFERRAL: _KindSpec(
        "I00-1", "I01-2", "urn:no:kith:xmlstds:henvisning", "text/xml", 3
    ),
    DocumentKind.LETTER: _KindSpec(
        "I00-1", "I02-2", "urn:no:ehelse:document:pdf", "application/pdf", 3
    ),
    DocumentKind.IMAGING: _KindSpec(
        "E00-1", "E02-2", "urn:no:ehelse:document:pdf", "application/pdf", 3
    ),
    DocumentKind.NOTE: _KindSpec("B00-1", "B02-2", "urn:no:ehelse:document:text", "text/plain", 4),
    DocumentKind.IMAGE: _KindSpec("E00-1", "E01-2", "urn:no:ehelse:document:image", "image/png", 1),
    DocumentKind.FHIR_DOCUMENT: _KindSpec(
        "A00-1", "A03-2", "urn:ihe:iti:xds:2017:mimeTypeSufficient", "application/fhir+json", 0
    ),
}
_KIND_ORDER = tuple(k for k, spec in _KINDS.items() if spec.weight > 0)
_KIND_WEIGHTS = tuple(_KINDS[k].weight for k in _KIND_ORDER)
_NORN = ("NORN_EPO", "NORN_FFH", "NORN_KUT", "NORN_FPB", "NORN_ANG", "NORN_UNGDOM", "NORN_FORANS")


def patient_regions(
    population: Population, nin: NationalIdentityNumber, seed: int
) -> tuple[str, ...]:
    """Return the regions where this patient has documents: the home region first, 1 to 4 in all.

    The showcase cast members ("adult", "child11") have documents in all four regions, the rest
    of the cast in three.
    """
    slugs = [r.slug for r in DEFAULT_REGIONS]
    home = population.home_region(nin)
    others = [s for s in slugs if s != home]
    rng = random.Random(f"{seed}:regions:{nin.value}")
    rng.shuffle(others)
    cast_key = next((k for k, c in population.cast.items() if c.nin == nin), None)
    if cast_key in _SHOWCASE:
        count = 4
    elif cast_key is not None:
        count = 3
    else:
        count = rng.choices((1, 2, 3, 4), weights=(45, 30, 15, 10))[0]
    return (home, *others[: count - 1])


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: DocumentKind
    confidentiality: str
    replaced: bool = False


def _confidentiality(rng: random.Random, age: int) -> str:
    roll = rng.random()
    if roll < 0.70:
        return "N"
    if roll < 0.79:
        return "R"
    if roll < 0.81:
        return "V"
    if roll < 0.87:
        return "NORS"
    if roll < 0.94:
        return rng.choice(_NORN if age < 18 else _NORN[:-2])
    if roll < 0.97:
        return "NORU"
    return "N"


def _confidentiality_codes(code: str) -> tuple[Coding, ...]:
    if code in ("N", "R", "V"):
        return (Coding(CONFIDENTIALITY_HL7, code),)
    # Volven codes travel with the HL7 level of the document (the reference source does so).
    return (Coding(CONFIDENTIALITY_VOLVEN, code), Coding(CONFIDENTIALITY_HL7, "N"))


class _Authors:
    """Practitioners of one region, grouped for picking an author per kind of document."""

    def __init__(self, population: Population, region: RegionInfo) -> None:
        self.by_setting: dict[tuple[str, str], list[tuple[Practitioner, Organisation, Department]]]
        self.by_setting = {}
        for p in population.practitioners:
            org = population.organisation(p.organisation)
            if org.region_slug != region.slug or not org.helsenett_member or p.hpr is None:
                continue
            if p.department is None or not set(p.categories) & {"LE", "SP", "PS", "BI"}:
                continue
            dept = org.department(p.department)
            key = (org.facility_type.code, dept.practice_setting)
            self.by_setting.setdefault(key, []).append((p, org, dept))
        if not self.by_setting:
            raise ValueError(f"no authors with HPR numbers in region {region.slug}")

    def pick(
        self, rng: random.Random, facility: str, setting: str, categories: frozenset[str]
    ) -> tuple[Practitioner, Organisation, Department]:
        candidates = [
            c
            for c in self.by_setting.get((facility, setting), [])
            if set(c[0].categories) & categories
        ]
        if not candidates:
            candidates = [
                c
                for key, group in sorted(self.by_setting.items())
                if key[0] == facility
                for c in group
                if "LE" in c[0].categories
            ]
        if not candidates:
            candidates = [c for _, group in sorted(self.by_setting.items()) for c in group]
        return rng.choice(candidates)


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(int((end - start).total_seconds()), 3600)
    return (start + timedelta(seconds=rng.randrange(span))).replace(microsecond=0)


class _Writer:
    """Writes documents for one region; holds the region's author index."""

    def __init__(self, population: Population, region: RegionInfo, seed: int) -> None:
        self.population = population
        self.region = region
        self.seed = seed
        self.authors = _Authors(population, region)
        self.now = datetime.combine(population.reference_date, time(8, 0), tzinfo=UTC)

    def documents_for(
        self, citizen: Citizen, per_patient: tuple[int, int], showcase: str | None
    ) -> Iterator[SyntheticDocument]:
        rng = random.Random(f"{self.seed}:{self.region.slug}:{citizen.nin.value}")
        age = citizen.age_on(self.population.reference_date)
        plans = [
            _Plan(
                rng.choices(_KIND_ORDER, weights=_KIND_WEIGHTS)[0],
                _confidentiality(rng, age),
                replaced=rng.random() < 0.05,
            )
            for _ in range(rng.randint(*per_patient))
        ]
        if showcase is not None:
            norn = "NORN_FORANS" if showcase == "child11" else "NORN_EPO"
            plans += [
                _Plan(DocumentKind.DISCHARGE_PDF, "NORS"),
                _Plan(DocumentKind.NOTE, "V"),
                _Plan(DocumentKind.LETTER, "R"),
                _Plan(DocumentKind.DISCHARGE_XML, norn),
                _Plan(DocumentKind.LAB, "NORU"),
                _Plan(DocumentKind.DISCHARGE_PDF, "N", replaced=True),
                _Plan(DocumentKind.IMAGE, "N"),
            ]
            if showcase == "adult":
                plans.append(_Plan(DocumentKind.FHIR_DOCUMENT, "N"))
        for plan in plans:
            original = self._document(rng, citizen, age, plan)
            yield original
            if plan.replaced:
                yield self._replacement(rng, citizen, age, plan, original)

    # one document ---------------------------------------------------------------------------

    def _window(self, citizen: Citizen) -> tuple[datetime, datetime]:
        earliest = self.now - timedelta(days=365 * _YEARS_OF_HISTORY)
        born = datetime.combine(citizen.birth_date, time(12, 0), tzinfo=UTC)
        start = max(earliest, born)
        end = self.now - timedelta(hours=1)
        return (min(start, end - timedelta(hours=1)), end)

    def _document(
        self,
        rng: random.Random,
        citizen: Citizen,
        age: int,
        plan: _Plan,
        *,
        created: datetime | None = None,
        replaces: DocumentUniqueId | None = None,
        scenario: clinical.Scenario | None = None,
    ) -> SyntheticDocument:
        spec = _KINDS[plan.kind]
        suited = [s for s in clinical.SCENARIOS if s.children or age >= 18]
        scenario = scenario or rng.choice(suited)
        facility, setting, categories = self._where(plan.kind, scenario, rng)
        practitioner, org, dept = self.authors.pick(rng, facility, setting, categories)
        if created is None:
            created = _moment(rng, *self._window(citizen))
        service_start, service_stop, events = self._service(rng, plan.kind, created)
        unique_id = DocumentUniqueId(
            f"{self.region.document_oid_root.value}.{rng.getrandbits(63) + 1}"
        )
        entry_uuid = uuid.UUID(int=rng.getrandbits(128), version=4)
        language = (
            "nn-NO" if rng.random() < (0.4 if self.region.slug == "vest" else 0.08) else "nb-NO"
        )
        title, content = self._content(
            rng,
            plan.kind,
            citizen,
            practitioner,
            org,
            dept,
            scenario,
            created,
            entry_uuid,
            corrected=replaces is not None,
        )
        release = None
        if plan.confidentiality == "NORU":
            release = self.now + timedelta(days=rng.randint(14, 120))
        entry = DocumentEntry(
            unique_id=unique_id,
            entry_uuid=entry_uuid,
            patient_id=citizen.nin,
            class_code=Coding(DOCUMENT_TYPE_SYSTEM, spec.class_code),
            type_code=Coding(DOCUMENT_TYPE_SYSTEM, spec.type_code),
            confidentiality_codes=_confidentiality_codes(plan.confidentiality),
            format_code=Coding(FORMAT_SYSTEM, spec.format_code),
            mime_type=spec.mime_type,
            hash_sha256=hashlib.sha256(content).hexdigest(),
            hash_sha1=hashlib.sha1(content).hexdigest(),
            size=len(content),
            creation_time=created,
            title=title,
            language_code=language,
            healthcare_facility_type=org.facility_type,
            practice_setting=Coding(PRACTICE_SETTING_SYSTEM, dept.practice_setting),
            authors=(
                Author(
                    person=AuthorPerson(practitioner.given, practitioner.family, practitioner.hpr),
                    institution=AuthorInstitution(org.name, org.orgnr, dept.name, dept.resh),
                ),
            ),
            event_codes=events,
            service_start_time=service_start,
            service_stop_time=service_stop,
            replaces=replaces,
            citizen_release_time=release,
        )
        return SyntheticDocument(validate_codes(entry), content)

    def _replacement(
        self,
        rng: random.Random,
        citizen: Citizen,
        age: int,
        plan: _Plan,
        original: SyntheticDocument,
    ) -> SyntheticDocument:
        first = original.entry.creation_time
        later = min(first + timedelta(days=rng.randint(1, 30)), self.now - timedelta(minutes=30))
        later = max(later, first + timedelta(minutes=1))
        scenario = next(
            (s for s in clinical.SCENARIOS if s.diagnosis in original.entry.title), None
        )
        return self._document(
            rng,
            citizen,
            age,
            replace(plan, replaced=False),
            created=later,
            replaces=original.entry.unique_id,
            scenario=scenario,
        )

    @staticmethod
    def _where(
        kind: DocumentKind, scenario: clinical.Scenario, rng: random.Random
    ) -> tuple[str, str, frozenset[str]]:
        doctors = frozenset({"LE"})
        if kind is DocumentKind.LAB:
            return ("86.101", "18", frozenset({"BI", "LE"}))
        if kind in (DocumentKind.IMAGING, DocumentKind.IMAGE):
            return ("86.101", "32", doctors)
        if kind is DocumentKind.REFERRAL:
            return ("86.211", "1", doctors)
        if kind is DocumentKind.NOTE:
            if rng.random() < 0.4:
                return ("86.211", "1", doctors)
            return ("86.101", scenario.specialty, frozenset({"LE", "SP", "PS"}))
        return ("86.101", scenario.specialty, frozenset({"LE", "PS"}))

    @staticmethod
    def _service(
        rng: random.Random, kind: DocumentKind, created: datetime
    ) -> tuple[datetime | None, datetime | None, tuple[Coding, ...]]:
        if kind in (
            DocumentKind.DISCHARGE_PDF,
            DocumentKind.DISCHARGE_XML,
            DocumentKind.FHIR_DOCUMENT,
        ):
            stop = created - timedelta(hours=rng.randint(1, 30))
            start = stop - timedelta(days=rng.randint(1, 12), hours=rng.randint(0, 23))
            events: tuple[Coding, ...] = (Coding(EVENT_SYSTEM, "1"), Coding(EVENT_SYSTEM, "2"))
            return start, stop, events if rng.random() < 0.6 else ()
        if kind in (DocumentKind.LETTER, DocumentKind.IMAGING, DocumentKind.LAB):
            start = created - timedelta(hours=rng.randint(1, 72))
            events = (Coding(EVENT_SYSTEM, "3"),) if rng.random() < 0.3 else ()
            stop = min(start + timedelta(minutes=rng.randint(10, 90)), created)
            return start, stop, events
        if kind is DocumentKind.NOTE and rng.random() < 0.3:
            return created - timedelta(minutes=20), created, (Coding(EVENT_SYSTEM, "5"),)
        return None, None, ()

    def _content(
        self,
        rng: random.Random,
        kind: DocumentKind,
        citizen: Citizen,
        practitioner: Practitioner,
        org: Organisation,
        dept: Department,
        scenario: clinical.Scenario,
        created: datetime,
        entry_uuid: uuid.UUID,
        *,
        corrected: bool,
    ) -> tuple[str, bytes]:
        author = f"{practitioner.name}, {org.name}"
        header = (
            f"Pasient: {citizen.family}, {citizen.given}  Fødselsnummer: {citizen.nin.value}\n"
            f"{org.name}, {dept.name}\nDato: {created:%d.%m.%Y}"
        )
        correction = (
            [PdfParagraph("Korrigert versjon: erstatter tidligere utgave av dokumentet.")]
            if corrected
            else []
        )
        signature = PdfParagraph(
            f"Med vennlig hilsen\n{practitioner.name}\n{dept.name}\n"
            "SYNTETISKE DATA – gjelder ingen virkelig person."
        )
        if kind is DocumentKind.DISCHARGE_PDF:
            title = f"Epikrise – {scenario.diagnosis}"
            paragraphs = [
                PdfParagraph(header),
                *correction,
                PdfParagraph("Diagnose", heading=True),
                PdfParagraph(f"{scenario.diagnosis} ({scenario.icd10})"),
                PdfParagraph("Årsak til innleggelse", heading=True),
                PdfParagraph(scenario.admission),
                PdfParagraph("Forløp", heading=True),
                PdfParagraph(scenario.course),
                PdfParagraph("Videre oppfølging", heading=True),
                PdfParagraph(scenario.discharge),
                signature,
            ]
            return title, render_pdf(title, paragraphs, author=author, created=created)
        if kind is DocumentKind.LETTER:
            title = f"Brev fra {dept.name}"
            body = (
                f"Du har time til kontroll ved {dept.name} den "
                f"{created + timedelta(days=rng.randint(14, 60)):%d.%m.%Y} kl. "
                f"{rng.randint(8, 14):02d}:{rng.choice(('00', '15', '30', '45'))}. "
                f"Bakgrunn: {scenario.diagnosis.lower()}. Ta med oversikt over medisinene dine. "
                "Gi beskjed senest 24 timer før dersom du ikke kan møte."
            )
            paragraphs = [PdfParagraph(header), *correction, PdfParagraph(body), signature]
            return title, render_pdf(title, paragraphs, author=author, created=created)
        if kind is DocumentKind.IMAGING:
            study = rng.choice(clinical.IMAGING)
            finding = study.abnormal if rng.random() < 0.5 else study.normal
            title = f"Radiologisvar – {study.name}"
            paragraphs = [
                PdfParagraph(header),
                *correction,
                PdfParagraph("Undersøkelse", heading=True),
                PdfParagraph(study.name),
                PdfParagraph("Klinisk problemstilling", heading=True),
                PdfParagraph(f"Spørsmål om {scenario.diagnosis.lower()}."),
                PdfParagraph("Beskrivelse", heading=True),
                PdfParagraph(finding),
                signature,
            ]
            return title, render_pdf(title, paragraphs, author=author, created=created)
        if kind is DocumentKind.NOTE:
            title = "Journalnotat" if not corrected else "Journalnotat (korrigert)"
            text = f"{header}\n\n{scenario.note}\n\n{practitioner.name}\n"
            return title, text.encode("utf-8")
        if kind is DocumentKind.IMAGE:
            return "Ultralydbilde", render_png(rng)
        if kind is DocumentKind.FHIR_DOCUMENT:
            fhir_parties = fhir_document.DocumentParties(
                document_id=entry_uuid,
                created=created,
                patient_nin=citizen.nin,
                patient_given=citizen.given,
                patient_family=citizen.family,
                organisation_name=org.name,
                organisation_number=org.orgnr.value,
                department_name=dept.name,
                department_resh=dept.resh.value,
                author_given=practitioner.given,
                author_family=practitioner.family,
                author_hpr=practitioner.hpr.value if practitioner.hpr else None,
            )
            title = f"Epikrise med legemiddelliste – {scenario.diagnosis}"
            return title, fhir_document.render_fhir_document(fhir_parties, scenario)
        parties = kith.MessageParties(
            msg_id=str(entry_uuid),
            created=created,
            patient_nin=citizen.nin.value,
            patient_given=citizen.given,
            patient_family=citizen.family,
            organisation_name=org.name,
            organisation_number=org.orgnr.value,
            department_name=dept.name,
            department_resh=dept.resh.value,
            author_name=practitioner.name,
            author_hpr=practitioner.hpr.value if practitioner.hpr else None,
        )
        if kind is DocumentKind.LAB:
            chosen = rng.sample(clinical.ANALYSES, rng.randint(3, 6))
            results = [kith.LabResult(a, _lab_value(rng, a)) for a in chosen]
            return "Svarrapport medisinsk biokjemi", kith.render_svarrapport(parties, results)
        if kind is DocumentKind.REFERRAL:
            return f"Henvisning – {scenario.diagnosis}", kith.render_henvisning(parties, scenario)
        return f"Epikrise – {scenario.diagnosis}", kith.render_epikrise(parties, scenario)


def _lab_value(rng: random.Random, analysis: clinical.Analysis) -> float:
    width = analysis.high - analysis.low
    value = rng.uniform(analysis.low - 0.3 * width, analysis.high + 0.5 * width)
    return round(max(value, 0.0), analysis.decimals)


def generate_documents(
    population: Population,
    region: RegionInfo,
    *,
    seed: int,
    per_patient: tuple[int, int] = (1, 5),
) -> Iterator[SyntheticDocument]:
    """Yield the documents `region` holds about the population, originals before replacements."""
    low, high = per_patient
    if not 0 <= low <= high:
        raise ValueError("per_patient must be (min, max) with 0 <= min <= max")
    writer = _Writer(population, region, seed)
    showcase = {population.cast[k].nin.value: k for k in _SHOWCASE if k in population.cast}
    for citizen in population.citizens:
        ensure_synthetic(citizen.nin)
        if region.slug not in patient_regions(population, citizen.nin, seed):
            continue
        yield from writer.documents_for(citizen, per_patient, showcase.get(citizen.nin.value))


def fast_entries(
    count: int,
    *,
    seed: int,
    region: RegionInfo,
    patients: Sequence[NationalIdentityNumber | str],
    reference_date: date = date(2025, 1, 1),
) -> Iterator[DocumentEntry]:
    """Yield `count` valid registry entries quickly, for benchmarks (no content behind them).

    Every entry carries the hash and size of the same tiny content, b"synthetic".
    """
    if not patients:
        raise ValueError("fast_entries needs at least one patient")
    nins = [ensure_synthetic(p) for p in patients]
    rng = random.Random(seed)
    content = b"synthetic"
    sha256, sha1 = hashlib.sha256(content).hexdigest(), hashlib.sha1(content).hexdigest()
    end = datetime.combine(reference_date, time(0, 0), tzinfo=UTC)
    span = 365 * _YEARS_OF_HISTORY * 86400
    # Codings are looked up once, displays filled, so each entry equals validate_codes(entry).
    tables = code_tables()
    facility = tables.require("healthcareFacilityTypeCode", Coding(FACILITY_TYPE_SYSTEM, "86.101"))
    settings = [
        tables.require("practiceSettingCode", Coding(PRACTICE_SETTING_SYSTEM, s))
        for s in ("14", "9", "25", "28", "32", "18")
    ]
    kinds = [
        (
            tables.require("classCode", Coding(DOCUMENT_TYPE_SYSTEM, s.class_code)),
            tables.require("typeCode", Coding(DOCUMENT_TYPE_SYSTEM, s.type_code)),
            tables.require("formatCode", Coding(FORMAT_SYSTEM, s.format_code)),
            s.mime_type,
        )
        for s in (_KINDS[k] for k in _KIND_ORDER)
    ]
    confidentiality = [
        tuple(tables.require("confidentialityCode", c) for c in _confidentiality_codes(code))
        for code in ("N",) * 16 + ("R", "NORS", "V", "NORU")
    ]
    template = validate_codes(
        DocumentEntry(
            unique_id=DocumentUniqueId(f"{region.document_oid_root.value}.0"),
            entry_uuid=uuid.UUID(int=0, version=4),
            patient_id=nins[0],
            class_code=kinds[0][0],
            type_code=kinds[0][1],
            confidentiality_codes=confidentiality[0],
            format_code=kinds[0][2],
            mime_type=kinds[0][3],
            hash_sha256=sha256,
            hash_sha1=sha1,
            size=len(content),
            creation_time=end,
            title="Syntetisk dokument",
            language_code="nb-NO",
            healthcare_facility_type=facility,
            practice_setting=settings[0],
        )
    )
    root = f"{region.document_oid_root.value}.{seed % 1_000_000 + 1}"
    for i in range(count):
        class_code, type_code, format_code, mime = kinds[rng.randrange(len(kinds))]
        created = end - timedelta(seconds=rng.randrange(span))
        conf = confidentiality[rng.randrange(len(confidentiality))]
        yield replace(
            template,
            unique_id=DocumentUniqueId(f"{root}.{i + 1}"),
            entry_uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
            patient_id=nins[rng.randrange(len(nins))],
            class_code=class_code,
            type_code=type_code,
            format_code=format_code,
            mime_type=mime,
            confidentiality_codes=conf,
            creation_time=created,
            practice_setting=settings[rng.randrange(len(settings))],
            citizen_release_time=end + timedelta(days=30) if conf[0].code == "NORU" else None,
        )
