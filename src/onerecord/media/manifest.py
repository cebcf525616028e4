"""A study's imaging manifest for the national overview: ImagingStudy in an ITI-65 bundle.

Pure functions, no I/O: from the archive's rows of one study (`ManifestStudy`) build

- the FHIR R4 `ImagingStudy` (in the style of IHE MADO's manifest): identifier
  `urn:dicom:uid` / `urn:oid:<StudyInstanceUID>`, the series (uid, modality, bodySite,
  numberOfInstances, the instances with their SOP class), and a contained `Endpoint`
  (connectionType `dicom-wado-rs`) whose address is the archive's public `/dicomweb` base;
- its `DocumentEntry`: class Volven 9602 E00-1, type LOINC 18748-4 "Diagnostic imaging study",
  formatCode `urn:ihe:rad:MADO`, mimeType `application/fhir+json`, eventCodeList the
  modalities (DCM) and the body sites (SNOMED CT, PS3.16 Annex L), the StudyInstanceUID in
  referenceIdList (CXi `urn:oid:<uid>^^^&urn:dicom:uid&URI^urn:ihe:iti:xds:2016:studyInstanceUID`,
  rendered by `mhd.docref` as `context.related` {system urn:dicom:uid, value urn:oid:<uid>}),
  the archive's organisation as author, serviceStartTime the study's date and time;
- the ITI-65 transaction Bundle (SubmissionSet List + DocumentReference + Binary) with
  `mhd.build_provide_bundle`, the same builder every other publisher uses.

The first manifest of a study has the StudyInstanceUID as its uniqueId (`first_unique_id`);
a later one (new instances) a new 2.25 UID and relatesTo replaces the one before.

A study is published only under a Norwegian national identity number: its PatientID must be a
fødselsnummer, D-number or H-number, and its IssuerOfPatientID empty or one of their OIDs;
otherwise `manifest_patient` raises NotPublishable (the archive records it and goes on).

References: IHE RAD MADO (Manifest-based Access to DICOM Objects, Trial Implementation 2024:
the manifest's DocumentReference metadata); IHE RAD TF-3 4.68.4.1.2.3 (XDS-I.b document
metadata: eventCodeList with modality and anatomic region, referenceIdList with the
StudyInstanceUID); IHE ITI TF-3 4.2.3.2.28 (referenceIdList type
urn:ihe:iti:xds:2016:studyInstanceUID); IHE MHD 4.x ITI-65 §2:3.65.4.1.2 (the bundle);
FHIR R4 ImagingStudy, Endpoint; DICOM PS3.16 CID 29 (modalities), Annex L (Body Part Examined
→ SNOMED CT); PS3.5 6.2 (DA, TM).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from onerecord.domain import (
    CONFIDENTIALITY_HL7,
    DOCUMENT_TYPE_SYSTEM,
    Author,
    AuthorInstitution,
    Coding,
    DocumentEntry,
    DocumentUniqueId,
    InvalidIdentifier,
    NationalIdentityNumber,
    OrganisationNumber,
)
from onerecord.domain.errors import DomainError
from onerecord.domain.limits import check_moment
from onerecord.mhd import build_provide_bundle

__all__ = [
    "BODY_PARTS",
    "DCM",
    "MADO_FORMAT",
    "MANIFEST_MIME_TYPE",
    "MODALITIES",
    "SNOMED",
    "STUDY_UID_REFERENCE_TYPE",
    "ArchiveIdentity",
    "EarlierVersion",
    "ManifestInstance",
    "ManifestSeries",
    "ManifestStudy",
    "ManifestVersion",
    "NotPublishable",
    "first_unique_id",
    "imaging_study",
    "manifest_bundle",
    "manifest_entry",
    "manifest_patient",
    "new_unique_id",
    "plan_version",
    "study_start",
]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DICOM_UID = "urn:dicom:uid"
MANIFEST_MIME_TYPE = "application/fhir+json"
MADO_FORMAT = Coding(
    "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
    "urn:ihe:rad:MADO",
    "Manifest-based Access to DICOM Objects",
)
IMAGING_CLASS = Coding(
    DOCUMENT_TYPE_SYSTEM, "E00-1", "Bildediagnostikk (og andre medisinske bilder)"
)
IMAGING_TYPE = Coding(LOINC, "18748-4", "Diagnostic imaging study")
STUDY_UID_REFERENCE_TYPE = "urn:ihe:iti:xds:2016:studyInstanceUID"
_ENDPOINT_TYPES = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
_ACCESSION = "http://terminology.hl7.org/CodeSystem/v2-0203"
_FACILITY_TYPES = "urn:oid:2.16.578.1.12.4.1.1.1303"
_PRACTICE_SETTINGS = "urn:oid:2.16.578.1.12.4.1.1.8451"
_NATIONAL_ISSUERS = frozenset(
    {"", "2.16.578.1.12.4.1.4.1", "2.16.578.1.12.4.1.4.2", "2.16.578.1.12.4.1.4.3"}
)
LOCAL_ZONE = ZoneInfo("Europe/Oslo")  # DICOM DA/TM are local times; Norway's archives

# PS3.16 CID 29 (Acquisition Modality) and a few more, as the code tables hold them.
MODALITIES: dict[str, str] = {
    "CT": "Computed Tomography",
    "MR": "Magnetic Resonance",
    "US": "Ultrasound",
    "CR": "Computed Radiography",
    "DX": "Digital Radiography",
    "MG": "Mammography",
    "XA": "X-Ray Angiography",
    "RF": "Radiofluoroscopy",
    "NM": "Nuclear Medicine",
    "PT": "Positron emission tomography",
    "XC": "External-camera Photography",
    "ES": "Endoscopy",
    "GM": "General Microscopy",
    "SM": "Slide Microscopy",
    "OP": "Ophthalmic Photography",
    "IO": "Intra-oral Radiography",
    "PX": "Panoramic X-Ray",
    "OT": "Other",
    "SR": "Structured Report Document",
    "KO": "Key Object Selection",
    "PR": "Presentation State",
    "DOC": "Document",
    "ECG": "Electrocardiography",
    "IVUS": "Intravascular Ultrasound",
    "OCT": "Optical Coherence Tomography",
    "BDUS": "Ultrasound Bone Densitometry",
}

# Body Part Examined defined terms → SNOMED CT (PS3.16 Annex L), the common ones.
BODY_PARTS: dict[str, tuple[str, str]] = {
    "ABDOMEN": ("818981001", "Abdomen"),
    "ABDOMENPELVIS": ("818982008", "Abdomen and Pelvis"),
    "ARM": ("40983000", "Upper arm"),
    "BRAIN": ("12738006", "Brain"),
    "BREAST": ("76752008", "Breast"),
    "CHEST": ("816094009", "Chest"),
    "CHESTABDOMEN": ("416550000", "Chest and Abdomen"),
    "CSPINE": ("122494005", "Cervical spine"),
    "EXTREMITY": ("66019005", "Extremity"),
    "EYE": ("81745001", "Eye"),
    "FACE": ("89545001", "Face"),
    "FOOT": ("56459004", "Foot"),
    "FOREARM": ("14975008", "Forearm"),
    "HAND": ("85562004", "Hand"),
    "HEAD": ("69536005", "Head"),
    "HEART": ("80891009", "Heart"),
    "HIP": ("29836001", "Hip"),
    "KIDNEY": ("64033007", "Kidney"),
    "KNEE": ("72696002", "Knee"),
    "LEG": ("30021000", "Lower leg"),
    "LIVER": ("10200004", "Liver"),
    "LSPINE": ("122496007", "Lumbar spine"),
    "NECK": ("45048000", "Neck"),
    "PELVIS": ("816092008", "Pelvis"),
    "SKIN": ("39937001", "Skin"),
    "SKULL": ("89546000", "Skull"),
    "SPINE": ("421060004", "Spine"),
    "THIGH": ("68367000", "Thigh"),
    "TSPINE": ("122495006", "Thoracic spine"),
    "WHOLEBODY": ("38266002", "Entire body"),
}

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class NotPublishable(DomainError):
    """The study cannot go to the national overview; `reason` is a short code for the record."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ManifestInstance:
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None


@dataclass(frozen=True, slots=True)
class ManifestSeries:
    series_instance_uid: str
    modality: str
    series_number: int | None
    series_description: str
    body_part_examined: str
    instances: tuple[ManifestInstance, ...]


@dataclass(frozen=True, slots=True)
class ManifestStudy:
    """One study as the archive holds it: its patient, keys and every series and instance."""

    study_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str
    study_date: str
    study_time: str
    accession_number: str
    study_description: str
    created: datetime
    series: tuple[ManifestSeries, ...]

    @property
    def modalities(self) -> list[str]:
        """The series' modalities as codes, each once, in series order."""
        return list(dict.fromkeys(c for s in self.series if (c := modality_code(s.modality))))

    @property
    def number_of_instances(self) -> int:
        return sum(len(s.instances) for s in self.series)


@dataclass(frozen=True, slots=True)
class ArchiveIdentity:
    """Who publishes: the region's archive, its organisation and where DICOMweb is served."""

    home_community_id: str
    organisation_name: str
    organisation_number: OrganisationNumber
    dicomweb_base_url: str
    facility_type: str = "86.101"  # Volven 1303: general somatic hospital
    practice_setting: str = "32"  # Volven 8451: radiology

    @property
    def source_id(self) -> str:
        """The SubmissionSet sourceId: the region's arc + ".6" (the media archive)."""
        return f"{self.home_community_id}.6"


@dataclass(frozen=True, slots=True)
class ManifestVersion:
    """One published (or to be published) manifest of a study."""

    unique_id: str
    entry_uuid: uuid.UUID
    submission_set_unique_id: str
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class EarlierVersion:
    """A version prepared before: its uniqueId and whether the source registered it."""

    unique_id: str
    published: bool


def plan_version(study_instance_uid: str, earlier: Sequence[EarlierVersion]) -> ManifestVersion:
    """The next manifest version of a study, after `earlier` (oldest first).

    The uniqueId is the StudyInstanceUID unless an earlier version took it (or it is not an
    XDS OID), else a new 2.25 UID; the version replaces the last one the source registered.
    """
    first = first_unique_id(study_instance_uid)
    taken = {e.unique_id for e in earlier}
    unique_id = first if first is not None and first not in taken else new_unique_id()
    registered = [e.unique_id for e in earlier if e.published]
    return ManifestVersion(
        unique_id=unique_id,
        entry_uuid=uuid.uuid4(),
        submission_set_unique_id=new_unique_id(),
        replaces=registered[-1] if registered else None,
    )


def new_unique_id() -> str:
    """A fresh UUID-derived UID (PS3.5 B.2): `2.25.<the UUID as an integer>`."""
    return f"2.25.{uuid.uuid4().int}"


def first_unique_id(study_instance_uid: str) -> str | None:
    """The StudyInstanceUID as the first manifest's uniqueId, if it is an XDS OID (≤ 64)."""
    try:
        return DocumentUniqueId(study_instance_uid).value
    except InvalidIdentifier:
        return None


def manifest_patient(study: ManifestStudy) -> NationalIdentityNumber:
    """The study's patient as a national identity number, or NotPublishable."""
    issuer = study.issuer_of_patient_id.strip().removeprefix("urn:oid:")
    if issuer not in _NATIONAL_ISSUERS:
        raise NotPublishable(
            "IssuerOfPatientID is not the national identity number register",
            reason="issuer-not-national",
        )
    try:
        return NationalIdentityNumber(study.patient_id.strip())
    except (InvalidIdentifier, ValueError):
        raise NotPublishable(
            "PatientID is not a national identity number", reason="patient-not-national"
        ) from None


def study_start(study_date: str, study_time: str, zone: ZoneInfo = LOCAL_ZONE) -> datetime | None:
    """StudyDate (DA) and StudyTime (TM) as an aware moment, or None when there is no date.

    A missing or unreadable time counts as midnight; an unreadable date as no date.
    """
    found = _DA.match(study_date.strip())
    if found is None:
        return None
    try:
        day = date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None
    clock = time()
    timed = _TM.match(study_time.strip())
    if timed is not None:
        hour, minute, second = (int(v or 0) for v in timed.groups()[:3])
        micro = int((timed[4] or "0").ljust(6, "0"))
        if hour < 24 and minute < 60 and second < 60:
            clock = time(hour, minute, second, micro)
    moment = datetime.combine(day, clock, tzinfo=zone)
    try:
        return check_moment(moment, name="StudyDate")
    except DomainError:
        return None


def _plain(text: str, limit: int) -> str:
    """A DICOM text as a FHIR string: no control characters, spaces collapsed, cut to `limit`."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def modality_code(modality: str) -> str:
    """A Modality (CS) as a FHIR code: no control characters, single spaces, at most 16."""
    return _plain(modality, 16)


def _modality(code: str) -> dict[str, str]:
    coding = {"system": DCM, "code": code}
    if code in MODALITIES:
        coding["display"] = MODALITIES[code]
    return coding


def _body_site(value: str) -> dict[str, str] | None:
    text = _plain(value, 64)
    if not text:
        return None
    if text.upper() in BODY_PARTS:
        code, display = BODY_PARTS[text.upper()]
        return {"system": SNOMED, "code": code, "display": display}
    return {"display": text}


def imaging_study(
    study: ManifestStudy, *, patient: NationalIdentityNumber, wado_base_url: str
) -> dict[str, Any]:
    """The study as a FHIR R4 ImagingStudy with a contained WADO-RS Endpoint."""
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "contained": [
            {
                "resourceType": "Endpoint",
                "id": "wado",
                "status": "active",
                "connectionType": {"system": _ENDPOINT_TYPES, "code": "dicom-wado-rs"},
                "payloadType": [{"text": "DICOM"}],
                "payloadMimeType": ["application/dicom"],
                "address": wado_base_url,
            }
        ],
        "identifier": [
            {"system": DICOM_UID, "value": f"urn:oid:{study.study_instance_uid}"},
        ],
        "status": "available",
    }
    accession = _plain(study.accession_number, 16)
    if accession:
        resource["identifier"].append(
            {"type": {"coding": [{"system": _ACCESSION, "code": "ACSN"}]}, "value": accession}
        )
    if study.modalities:
        resource["modality"] = [_modality(m) for m in study.modalities]
    resource["subject"] = {
        "identifier": {"system": f"urn:oid:{patient.system}", "value": patient.value}
    }
    started = study_start(study.study_date, study.study_time)
    if started is not None:
        resource["started"] = started.isoformat()
    resource["endpoint"] = [{"reference": "#wado"}]
    resource["numberOfSeries"] = len(study.series)
    resource["numberOfInstances"] = study.number_of_instances
    description = _plain(study.study_description, 64)
    if description:
        resource["description"] = description
    series_out: list[dict[str, Any]] = []
    for s in study.series:
        item: dict[str, Any] = {"uid": s.series_instance_uid}
        if s.series_number is not None and s.series_number >= 0:
            item["number"] = s.series_number
        item["modality"] = _modality(modality_code(s.modality) or "OT")
        series_description = _plain(s.series_description, 64)
        if series_description:
            item["description"] = series_description
        item["numberOfInstances"] = len(s.instances)
        site = _body_site(s.body_part_examined)
        if site is not None:
            item["bodySite"] = site
        instances: list[dict[str, Any]] = []
        for i in s.instances:
            instance: dict[str, Any] = {
                "uid": i.sop_instance_uid,
                "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{i.sop_class_uid}"},
            }
            if i.instance_number is not None and i.instance_number >= 0:
                instance["number"] = i.instance_number
            instances.append(instance)
        item["instance"] = instances
        series_out.append(item)
    resource["series"] = series_out
    return resource


def _title(study: ManifestStudy) -> str:
    modalities = ", ".join(study.modalities) or "DICOM"
    description = _plain(study.study_description, 64)
    return f"{description} ({modalities})" if description else f"Bildeundersøkelse ({modalities})"


def _event_codes(study: ManifestStudy) -> tuple[Coding, ...]:
    codes: dict[tuple[str, str], Coding] = {}
    for m in study.modalities:
        if m in MODALITIES:
            codes[(DCM, m)] = Coding(DCM, m, MODALITIES[m])
    for s in study.series:
        term = _plain(s.body_part_examined, 64).upper()
        if term in BODY_PARTS:
            code, display = BODY_PARTS[term]
            codes[(SNOMED, code)] = Coding(SNOMED, code, display)
    return tuple(codes.values())


def manifest_entry(
    study: ManifestStudy,
    content: bytes,
    *,
    patient: NationalIdentityNumber,
    version: ManifestVersion,
    archive: ArchiveIdentity,
) -> DocumentEntry:
    """The manifest's DocumentEntry (XDS-I.b / MADO metadata) for the ImagingStudy `content`."""
    started = study_start(study.study_date, study.study_time)
    reference = f"urn:oid:{study.study_instance_uid}^^^&{DICOM_UID}&URI^{STUDY_UID_REFERENCE_TYPE}"
    return DocumentEntry(
        unique_id=DocumentUniqueId(version.unique_id),
        entry_uuid=version.entry_uuid,
        patient_id=patient,
        class_code=IMAGING_CLASS,
        type_code=IMAGING_TYPE,
        confidentiality_codes=(Coding(CONFIDENTIALITY_HL7, "N", "normal"),),
        format_code=MADO_FORMAT,
        mime_type=MANIFEST_MIME_TYPE,
        hash_sha256=hashlib.sha256(content).hexdigest(),
        hash_sha1=hashlib.sha1(content).hexdigest(),  # noqa: S324 - XDS hash is SHA-1
        size=len(content),
        creation_time=started or study.created.astimezone(UTC),
        title=_title(study),
        language_code="nb-NO",
        healthcare_facility_type=Coding(_FACILITY_TYPES, archive.facility_type),
        practice_setting=Coding(_PRACTICE_SETTINGS, archive.practice_setting),
        authors=(
            Author(
                institution=AuthorInstitution(
                    archive.organisation_name, archive.organisation_number
                )
            ),
        ),
        event_codes=_event_codes(study),
        service_start_time=started,
        replaces=None if version.replaces is None else DocumentUniqueId(version.replaces),
        reference_ids=(reference,),
    )


def manifest_bundle(
    study: ManifestStudy, *, version: ManifestVersion, archive: ArchiveIdentity
) -> bytes:
    """The ITI-65 Provide Document Bundle of one manifest version, as bytes to send.

    Raises NotPublishable when the study's patient is not a national identity number.
    """
    patient = manifest_patient(study)
    if not study.series or study.number_of_instances == 0:
        raise NotPublishable("the study has no instances", reason="no-instances")
    content = orjson.dumps(
        imaging_study(study, patient=patient, wado_base_url=archive.dicomweb_base_url)
    )
    entry = manifest_entry(study, content, patient=patient, version=version, archive=archive)
    bundle = build_provide_bundle(
        [(entry, content)],
        source_id=archive.source_id,
        submission_set_unique_id=version.submission_set_unique_id,
    )
    return orjson.dumps(bundle)
