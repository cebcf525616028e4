"""The imaging manifest builder (media/manifest.py): ImagingStudy, its DocumentEntry, the bundle.

The bundle is read back with the source's own ITI-65 parser (`mhd.parse_provide_bundle`, codes
checked against the value sets) and the ImagingStudy with fhir.resources (R4B) as an oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fhir.resources.R4B.imagingstudy import ImagingStudy
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord, audit_event
from onerecord.domain import OrganisationNumber, code_tables
from onerecord.domain.limits import EARLIEST_DATE, LATEST_DATE
from onerecord.media.manifest import (
    BODY_PARTS,
    DCM,
    MADO_FORMAT,
    MODALITIES,
    SNOMED,
    ArchiveIdentity,
    EarlierVersion,
    ManifestInstance,
    ManifestSeries,
    ManifestStudy,
    NotPublishable,
    imaging_study,
    manifest_bundle,
    manifest_patient,
    plan_version,
    study_start,
)
from onerecord.media.manifest_store import PreparedVersion
from onerecord.media.publisher import ManifestPublisher
from onerecord.mhd import Unprocessable, document_reference, parse_provide_bundle
from onerecord.mhd.docref import _Reader, _reference_id, related_identifier
from onerecord.synth.numbers import Sex, synthetic_fnr
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER

STUDY = "2.25.123456789012345678901234567890"
CT = "1.2.840.10008.5.1.4.1.1.2"
NIN = synthetic_fnr(random.Random(5), date(1961, 9, 2), sex=Sex.FEMALE).value
ARCHIVE = ArchiveIdentity(
    home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
    organisation_name="Universitetssykehuset Nord-Norge HF",
    organisation_number=OrganisationNumber("998123453"),
    dicomweb_base_url="http://archive.test/dicomweb",
)


def make_study(**changes: Any) -> ManifestStudy:
    values: dict[str, Any] = {
        "study_instance_uid": STUDY,
        "patient_id": NIN,
        "issuer_of_patient_id": "2.16.578.1.12.4.1.4.1",
        "study_date": "20261015",
        "study_time": "101530.25",
        "accession_number": "A-17",
        "study_description": "CT abdomen\x01",
        "created": datetime(2026, 10, 15, 9, 0, tzinfo=UTC),
        "series": (
            ManifestSeries(
                "2.25.1",
                "CT",
                1,
                "Axial",
                "ABDOMEN",
                tuple(ManifestInstance(f"2.25.1{n}", CT, n) for n in (1, 2, 3)),
            ),
            ManifestSeries(
                "2.25.2", "XC", None, "", "Tail", (ManifestInstance("2.25.21", "1.2.3", None),)
            ),
        ),
    }
    values.update(changes)
    return ManifestStudy(**values)


def _bundle(study: ManifestStudy, earlier: list[EarlierVersion] | None = None) -> dict[str, Any]:
    version = plan_version(study.study_instance_uid, earlier or [])
    return orjson.loads(manifest_bundle(study, version=version, archive=ARCHIVE))  # type: ignore[no-any-return]


def test_the_bundle_passes_the_sources_parser_with_the_contracts_metadata() -> None:
    body = manifest_bundle(make_study(), version=plan_version(STUDY, []), archive=ARCHIVE)
    parsed = parse_provide_bundle(body)
    (doc,) = parsed.documents
    entry = doc.entry
    assert entry.unique_id.value == STUDY  # the first manifest's uniqueId IS the study UID
    assert entry.patient_id.value == NIN
    assert (entry.type_code.system, entry.type_code.code) == ("http://loinc.org", "18748-4")
    assert (entry.class_code.code, entry.format_code) == ("E00-1", MADO_FORMAT)
    assert entry.mime_type == "application/fhir+json"
    events = {(c.system, c.code) for c in entry.event_codes}
    assert events == {(DCM, "CT"), (DCM, "XC"), (SNOMED, "818981001")}
    assert entry.service_start_time == datetime.fromisoformat("2026-10-15T10:15:30.250000+02:00")
    assert entry.replaces is None
    assert entry.title == "CT abdomen (CT, XC)"
    assert entry.authors[0].institution is not None
    assert entry.authors[0].institution.organisation_number.value == "998123453"
    assert parsed.submission_set.source_id == "urn:oid:2.16.578.1.12.4.5.100.4.6"
    rendered = document_reference(entry, id=None, attachment_url="x")
    assert rendered["context"]["related"] == [
        {
            "identifier": {
                "system": "urn:dicom:uid",
                "value": f"urn:oid:{STUDY}",
                "type": {"coding": [{"code": "urn:ihe:iti:xds:2016:studyInstanceUID"}]},
            }
        }
    ]
    study = orjson.loads(doc.content)
    ImagingStudy.model_validate(study)  # the R4B oracle
    assert study["identifier"][0] == {"system": "urn:dicom:uid", "value": f"urn:oid:{STUDY}"}
    assert study["contained"][0]["connectionType"]["code"] == "dicom-wado-rs"
    assert study["contained"][0]["address"] == "http://archive.test/dicomweb"
    assert study["numberOfSeries"] == 2 and study["numberOfInstances"] == 4
    ct, photo = study["series"]
    assert ct["bodySite"] == {"system": SNOMED, "code": "818981001", "display": "Abdomen"}
    assert photo["bodySite"] == {"display": "Tail"}
    assert ct["instance"][0]["sopClass"] == {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{CT}"}
    assert study["description"] == "CT abdomen"  # no control characters


def test_a_later_version_replaces_the_last_registered_one() -> None:
    second = plan_version(STUDY, [EarlierVersion(STUDY, True)])
    assert second.unique_id.startswith("2.25.") and second.replaces == STUDY
    third = plan_version(
        STUDY, [EarlierVersion(STUDY, True), EarlierVersion(second.unique_id, True)]
    )
    assert third.replaces == second.unique_id
    # A refused first version: the study UID is taken, nothing is replaced.
    after_refusal = plan_version(STUDY, [EarlierVersion(STUDY, False)])
    assert after_refusal.unique_id != STUDY and after_refusal.replaces is None
    (doc,) = parse_provide_bundle(
        manifest_bundle(make_study(), version=second, archive=ARCHIVE)
    ).documents
    assert doc.entry.replaces is not None and doc.entry.replaces.value == STUDY


def test_a_study_uid_that_is_no_xds_oid_gets_a_2_25_uid() -> None:
    version = plan_version("9.8.7", [])  # a UID, but not under 0, 1 or 2
    assert version.unique_id.startswith("2.25.")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"patient_id": "HOSP-123"}, "patient-not-national"),
        ({"patient_id": "12345678901"}, "patient-not-national"),
        ({"issuer_of_patient_id": "UNN-RIS"}, "issuer-not-national"),
        ({"series": ()}, "no-instances"),
    ],
)
def test_studies_without_a_national_patient_are_not_published(
    changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(NotPublishable) as caught:
        manifest_bundle(make_study(**changes), version=plan_version(STUDY, []), archive=ARCHIVE)
    assert caught.value.reason == reason
    assert NIN not in str(caught.value)


def test_issuer_may_be_empty_or_an_urn() -> None:
    for issuer in ("", "urn:oid:2.16.578.1.12.4.1.4.1", "2.16.578.1.12.4.1.4.2"):
        assert manifest_patient(make_study(issuer_of_patient_id=issuer)).value == NIN


def test_every_code_the_builder_uses_is_in_the_value_sets() -> None:
    tables = code_tables()
    for code in MODALITIES:
        assert (DCM, code) in tables.value_sets["eventCode"]
    for code, _ in BODY_PARTS.values():
        assert (SNOMED, code) in tables.value_sets["eventCode"]


def test_no_date_means_the_first_store_time() -> None:
    (doc,) = parse_provide_bundle(
        manifest_bundle(
            make_study(study_date="", study_time=""),
            version=plan_version(STUDY, []),
            archive=ARCHIVE,
        )
    ).documents
    assert doc.entry.creation_time == datetime(2026, 10, 15, 9, 0, tzinfo=UTC)
    assert doc.entry.service_start_time is None
    assert "started" not in orjson.loads(doc.content)


@given(st.text(max_size=12), st.text(max_size=16))
@settings(max_examples=300, deadline=None)
def test_study_start_never_raises(study_date: str, study_time: str) -> None:
    moment = study_start(study_date, study_time)
    if moment is not None:
        assert moment.tzinfo is not None
        assert EARLIEST_DATE <= moment < LATEST_DATE


@given(st.from_regex(r"\A[0-9]{8}\Z"), st.from_regex(r"\A[0-9]{2,6}(\.[0-9]{1,6})?\Z"))
@settings(max_examples=200, deadline=None)
def test_study_start_of_dicom_shaped_values(study_date: str, study_time: str) -> None:
    study_start(study_date, study_time)


_cxi_parts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)


@given(
    st.one_of(
        _cxi_parts,
        st.builds(
            lambda v, a, k, t: f"{v}^^^&{a}&{k}" + (f"^{t}" if t else ""),
            _cxi_parts,
            st.one_of(
                _cxi_parts, st.sampled_from(["1.2.3", "urn:dicom:uid", "urn:oid:1.2", "01.2"])
            ),
            st.sampled_from(["ISO", "URI", "XX"]),
            st.one_of(st.none(), _cxi_parts),
        ),
    )
)
@settings(max_examples=400, deadline=None)
def test_reference_ids_survive_rendering_and_parsing(reference_id: str) -> None:
    identifier = related_identifier(reference_id)
    assert (
        _reference_id(_Reader("DocumentReference"), identifier, "context.related[0].identifier")
        == reference_id
    )


_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
_json = (
    _scalar
    | st.lists(_scalar, max_size=3)
    | st.dictionaries(st.text(max_size=6), _scalar | st.lists(_scalar, max_size=2), max_size=3)
)


@given(
    st.dictionaries(
        st.sampled_from(["value", "system", "type"]),
        _json | st.just({"coding": [{"code": "a^b"}]}) | st.just("x&y"),
    )
)
@settings(max_examples=400, deadline=None)
def test_hostile_related_identifiers_are_4xx(identifier: dict[str, Any]) -> None:
    try:
        value = _reference_id(
            _Reader("DocumentReference"), identifier, "context.related[0].identifier"
        )
    except Unprocessable as exc:
        assert exc.status == 422
    else:
        assert isinstance(value, str) and value


def test_imaging_study_without_optional_parts() -> None:
    study = make_study(accession_number="", study_description="", study_date="bad")
    resource = imaging_study(
        study, patient=manifest_patient(study), wado_base_url="http://x/dicomweb"
    )
    ImagingStudy.model_validate(resource)
    assert len(resource["identifier"]) == 1 and "description" not in resource


def test_an_export_is_audited_as_mhds_provide_bundle_source() -> None:
    record = AuditRecord(
        action=AuditAction.EXPORT,
        outcome=AuditOutcome.SUCCESS,
        recorded=datetime(2026, 12, 3, tzinfo=UTC),
        source_id="urn:oid:2.16.578.1.12.4.5.100.4#media",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
        correlation_id=f"manifest:{STUDY}",
        patient_id=NIN,
        document_ids=(STUDY,),
    )
    event = audit_event(record)
    assert event["meta"]["profile"] == [
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.ProvideBundle.Audit.Source"
    ]
    assert event["type"]["code"] == "110106" and event["action"] == "R"
    assert event["subtype"] == [{"system": "urn:ihe:event-type-code", "code": "ITI-65"}]


_dicom_text = st.text(max_size=70)


@given(
    description=_dicom_text,
    accession=_dicom_text,
    study_date=st.text(max_size=10),
    study_time=st.text(max_size=16),
    modality=_dicom_text,
    body_part=_dicom_text,
    series_description=_dicom_text,
    number=st.none() | st.integers(-(2**31), 2**31 - 1),
    issuer=st.sampled_from(["", "2.16.578.1.12.4.1.4.1", "x"]),
)
@settings(max_examples=150, deadline=None)
def test_any_stored_text_gives_a_bundle_the_source_accepts_or_not_publishable(
    description: str,
    accession: str,
    study_date: str,
    study_time: str,
    modality: str,
    body_part: str,
    series_description: str,
    number: int | None,
    issuer: str,
) -> None:
    study = make_study(
        study_description=description,
        accession_number=accession,
        study_date=study_date,
        study_time=study_time,
        issuer_of_patient_id=issuer,
        series=(
            ManifestSeries(
                "2.25.9",
                modality,
                number,
                series_description,
                body_part,
                (ManifestInstance("2.25.91", CT, number),),
            ),
        ),
    )
    try:
        body = manifest_bundle(study, version=plan_version(STUDY, []), archive=ARCHIVE)
    except NotPublishable:
        assert issuer == "x"
        return
    (doc,) = parse_provide_bundle(body).documents
    ImagingStudy.model_validate(orjson.loads(doc.content))


class _FakeOutbox:
    """An outbox whose first study fails to prepare (a poison study)."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.put_off: list[tuple[str, int, str]] = []
        self.leases: list[str] = []

    async def due(self, now: datetime, *, quiet: timedelta, limit: int) -> list[str]:
        return ["bad", "good"]

    async def claim(
        self,
        study_instance_uid: str,
        *,
        worker: str,
        now: datetime,
        quiet: timedelta,
        lease: timedelta,
    ) -> bool:
        self.leases.append(f"+{study_instance_uid}")
        return True

    async def release(self, study_instance_uid: str, *, worker: str) -> None:
        self.leases.append(f"-{study_instance_uid}")

    async def next_version(
        self, study_instance_uid: str, *, now: datetime, build: Any
    ) -> PreparedVersion | None:
        if study_instance_uid == "bad":
            raise RuntimeError("unreadable rows")
        return PreparedVersion("good", STUDY, 1, 3, b"{}")

    async def published(self, version: PreparedVersion, *, now: datetime) -> None:
        self.done.append(version.study_instance_uid)

    async def refused(self, version: PreparedVersion, *, reason: str) -> None:
        raise AssertionError("not refused")

    async def retry_later(
        self, study_instance_uid: str, *, attempts: int, at: datetime, outcome: str
    ) -> None:
        self.put_off.append((study_instance_uid, attempts, outcome))

    async def attempts(self, study_instance_uid: str) -> int:
        return 2


def _test_publisher(outbox: Any, http: httpx.AsyncClient, **options: float) -> ManifestPublisher:
    """A publisher of ARCHIVE to a source at source.test, over `http`."""
    return ManifestPublisher(
        outbox=outbox,
        archive=ARCHIVE,
        http=http,
        source_url="http://source.test",
        audience=ARCHIVE.home_community_id,
        issuer="urn:oid:1.2.3",
        key=SigningKey.generate(),
        **options,
    )


@pytest.mark.anyio
async def test_a_study_that_fails_holds_back_no_other_and_waits_its_back_off() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle"})

    outbox = _FakeOutbox()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        publisher = _test_publisher(outbox, http, retry=1.0)
        assert await publisher.publish_due() == 1
    assert outbox.done == ["good"]
    assert outbox.put_off == [("bad", 3, "error:RuntimeError")]  # 1 s · 2² later
    assert outbox.leases == ["+bad", "-bad", "+good", "-good"]  # let go, failed or not
    assert str(seen[0].url) == "http://source.test/fhir"
    assert PUBLISH_PROOF_HEADER in seen[0].headers


class _CountingOutbox(_FakeOutbox):
    """An outbox with nothing due; counts the publisher's looks, and says whether a study waits."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0
        self.waiting = 0

    async def due(self, now: datetime, *, quiet: timedelta, limit: int) -> list[str]:
        self.looks += 1
        return []

    async def pending(self) -> int:
        return self.waiting


@pytest.mark.anyio
async def test_an_idle_publisher_sleeps_until_a_store_wakes_it() -> None:
    outbox = _CountingOutbox()
    async with httpx.AsyncClient() as http:
        # quiet 0.2 s: polled every 50 ms while a study waits
        publisher = _test_publisher(outbox, http, quiet=0.2, idle=30.0)
        worker = asyncio.create_task(publisher.run())
        try:
            await asyncio.sleep(0.5)
            assert outbox.looks == 1  # nothing waits: no look for 0.5 s (ten polls before)
            outbox.waiting = 1
            publisher.wake()  # an instance was stored
            await asyncio.sleep(0.5)
            assert 5 <= outbox.looks  # a study waits its quiet period: polled again
            outbox.waiting = 0
            await asyncio.sleep(0.2)
            settled = outbox.looks
            await asyncio.sleep(0.5)
            assert outbox.looks == settled  # published: asleep again
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
