"""DocumentEntry: the XDS metadata of one registered document.

References: IHE ITI TF-3 4.2.3.2 (DocumentEntry attributes), 4.2.2.2 (relationships: RPLC);
Norwegian use per HIS 1169:2016 (TRUST-FRAMEWORK §6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from onerecord.domain.codes import DOCUMENT_TYPE_SYSTEM, Coding, code_tables
from onerecord.domain.errors import InvalidDocumentEntry, UnknownCode
from onerecord.domain.identifiers import (
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    NationalIdentityNumber,
    OrganisationNumber,
    RepositoryUniqueId,
    ReshId,
)
from onerecord.domain.limits import check_moment

__all__ = [
    "Author",
    "AuthorInstitution",
    "AuthorPerson",
    "DocumentEntry",
    "DocumentStatus",
    "validate_codes",
]

_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class DocumentStatus(StrEnum):
    """DocumentReference.status; XDS availabilityStatus Approved/Deprecated map to the first two."""

    CURRENT = "current"
    SUPERSEDED = "superseded"
    ENTERED_IN_ERROR = "entered-in-error"


@dataclass(frozen=True, slots=True)
class AuthorPerson:
    """XDS authorPerson (XCN) with the HPR number as identifier."""

    given: str
    family: str
    hpr: HprNumber | None = None


@dataclass(frozen=True, slots=True)
class AuthorInstitution:
    """XDS authorInstitution: the organisation (orgnr) and, in Norway, its department (RESH).

    `unit_name` is the level between them that the national answers carry as a second XON
    without an identifier (the hospital, e.g. "Haukeland universitetssjukehus"); only the XCA
    wire carries it so far.
    """

    name: str
    organisation_number: OrganisationNumber
    department_name: str | None = None
    department_resh: ReshId | None = None
    unit_name: str | None = None


@dataclass(frozen=True, slots=True)
class Author:
    """One XDS author: a person, the institution, or both."""

    person: AuthorPerson | None = None
    institution: AuthorInstitution | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        if self.person is None and self.institution is None:
            raise InvalidDocumentEntry("an author needs a person or an institution")


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """The registry metadata of one document (XDS DocumentEntry semantics)."""

    unique_id: DocumentUniqueId
    entry_uuid: UUID
    patient_id: NationalIdentityNumber
    class_code: Coding
    type_code: Coding
    confidentiality_codes: tuple[Coding, ...]
    format_code: Coding
    mime_type: str
    hash_sha256: str
    hash_sha1: str
    size: int
    creation_time: datetime
    title: str
    language_code: str
    healthcare_facility_type: Coding
    practice_setting: Coding
    authors: tuple[Author, ...] = ()
    event_codes: tuple[Coding, ...] = ()
    service_start_time: datetime | None = None
    service_stop_time: datetime | None = None
    status: DocumentStatus = DocumentStatus.CURRENT
    replaces: DocumentUniqueId | None = None
    reference_ids: tuple[str, ...] = ()
    citizen_release_time: datetime | None = None
    repository_unique_id: RepositoryUniqueId | None = None
    home_community_id: HomeCommunityId | None = None
    submission_time: datetime | None = field(default=None)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise InvalidDocumentEntry("size must not be negative", expression="size")
        if not _HEX64.match(self.hash_sha256):
            raise InvalidDocumentEntry("hash_sha256 must be 64 lower-case hex digits")
        if not _HEX40.match(self.hash_sha1):
            raise InvalidDocumentEntry("hash_sha1 must be 40 lower-case hex digits")
        if not _MIME_RE.match(self.mime_type):
            raise InvalidDocumentEntry(f"{self.mime_type!r} is not a MIME type")
        if not self.title.strip() or len(self.title) > 512:
            raise InvalidDocumentEntry("title must be 1 to 512 characters", expression="title")
        if not self.confidentiality_codes:
            raise InvalidDocumentEntry("at least one confidentialityCode is required")
        for name, moment in (
            ("creation_time", self.creation_time),
            ("service_start_time", self.service_start_time),
            ("service_stop_time", self.service_stop_time),
            ("citizen_release_time", self.citizen_release_time),
            ("submission_time", self.submission_time),
        ):
            if moment is None:
                continue
            if moment.tzinfo is None:
                raise InvalidDocumentEntry("times must carry a time zone", expression=name)
            # Within [EARLIEST_DATE, LATEST_DATE) and ±14:00, so converting to UTC cannot
            # overflow in the registry or in the hub's merge.
            check_moment(moment, name=name)
        if len(self.mime_type) > 128:
            raise InvalidDocumentEntry("mimeType is longer than 128 characters")
        if (
            self.service_start_time is not None
            and self.service_stop_time is not None
            and self.service_stop_time < self.service_start_time
        ):
            raise InvalidDocumentEntry("serviceStopTime is before serviceStartTime")
        if self.class_code.system == DOCUMENT_TYPE_SYSTEM == self.type_code.system:
            # Volven 9602: the class is the letter group of the type (A03-2 belongs to A00-1).
            if self.type_code.code[:1] != self.class_code.code[:1]:
                raise InvalidDocumentEntry(
                    f"typeCode {self.type_code.code} does not belong to classCode "
                    f"{self.class_code.code}",
                    expression="DocumentReference.type",
                )
        if self.replaces is not None and self.replaces == self.unique_id:
            raise InvalidDocumentEntry("a document cannot replace itself")

    @property
    def confidentiality_code_values(self) -> frozenset[str]:
        """The bare confidentiality codes (N, R, V, NORS, NORN_*, …)."""
        return frozenset(c.code for c in self.confidentiality_codes)


def validate_codes(entry: DocumentEntry) -> DocumentEntry:
    """Check every coded attribute against its value set; return the entry with displays filled.

    Raises UnknownCode naming the DocumentReference element at fault.
    """
    tables = code_tables()
    if not tables.contains("languageCode", Coding("urn:ietf:bcp:47", entry.language_code)):
        raise UnknownCode(
            f"language {entry.language_code!r} is not in value set languageCode",
            expression="content.attachment.language",
        )
    return replace(
        entry,
        class_code=tables.require("classCode", entry.class_code, expression="category"),
        type_code=tables.require("typeCode", entry.type_code, expression="type"),
        confidentiality_codes=tuple(
            tables.require("confidentialityCode", c, expression="securityLabel")
            for c in entry.confidentiality_codes
        ),
        format_code=tables.require("formatCode", entry.format_code, expression="content.format"),
        healthcare_facility_type=tables.require(
            "healthcareFacilityTypeCode",
            entry.healthcare_facility_type,
            expression="context.facilityType",
        ),
        practice_setting=tables.require(
            "practiceSettingCode", entry.practice_setting, expression="context.practiceSetting"
        ),
        event_codes=tuple(
            tables.require("eventCode", c, expression="context.event") for c in entry.event_codes
        ),
    )
