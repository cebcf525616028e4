"""Factories for policy tests: synthetic persons, health workers and document entries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

from onerecord.domain import (
    CONFIDENTIALITY_HL7,
    CONFIDENTIALITY_VOLVEN,
    DOCUMENT_TYPE_SYSTEM,
    Coding,
    DocumentEntry,
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    NationalIdentityNumber,
)
from onerecord.trust.access_token import AccessTokenClaims
from onerecord.trust.emergency import EmergencyGrant
from onerecord.trust.principal import (
    READ_DOCUMENTREFERENCES_SCOPE,
    AccessBasis,
    CitizenContext,
    HealthPersonnelContext,
    Organisation,
    Representation,
)

V = "urn:oid:2.16.578.1.12.4.1.1."
HCID = HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1")
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
_HL7 = {"N", "R", "V"}
_counter = iter(range(1, 10**9))


def synthetic_nin(born: date, start: int = 0) -> NationalIdentityNumber:
    """Return a synthetic (month + 80) national identity number for a birth date."""
    low, high = (500, 1000) if born.year >= 2000 else (0, 500)
    for individual in range(low + start, high):
        digits = f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}{individual:03d}"
        value = NationalIdentityNumber.with_check_digits(digits)
        if value:
            return NationalIdentityNumber(value)
    raise AssertionError(f"no synthetic number for {born}")


def years_ago(years: int, *, days: int = 0) -> date:
    """The birth date of someone who turned `years` `days` days before TODAY."""
    born = TODAY.replace(year=TODAY.year - years)
    return date.fromordinal(born.toordinal() - days)


PATIENT = synthetic_nin(date(1980, 3, 15))
PRACTITIONER = synthetic_nin(date(1975, 9, 1))


def label(code: str) -> Coding:
    """A confidentiality code: N/R/V from HL7, the rest from Volven 9603."""
    return Coding(CONFIDENTIALITY_HL7 if code in _HL7 else CONFIDENTIALITY_VOLVEN, code)


def entry(
    *,
    labels: tuple[str, ...] = ("N",),
    class_code: str = "A00-1",
    type_code: str | None = None,
    patient: NationalIdentityNumber = PATIENT,
    service_start: datetime | None = None,
    release: datetime | None = None,
    unique_id: str | None = None,
) -> DocumentEntry:
    """A DocumentEntry with the attributes the policy looks at."""
    n = next(_counter)
    return DocumentEntry(
        unique_id=DocumentUniqueId(unique_id or f"2.16.578.1.12.4.5.100.1.1.{n}"),
        entry_uuid=uuid4(),
        patient_id=patient,
        class_code=Coding(DOCUMENT_TYPE_SYSTEM, class_code),
        type_code=Coding(DOCUMENT_TYPE_SYSTEM, type_code or f"{class_code[0]}01-2"),
        confidentiality_codes=tuple(label(c) for c in labels),
        format_code=Coding("1.3.6.1.4.1.19376.1.2.3", "urn:no:ehelse:document:pdf"),
        mime_type="application/pdf",
        hash_sha256="a" * 64,
        hash_sha1="b" * 40,
        size=10,
        creation_time=service_start or datetime(2025, 1, 1, tzinfo=UTC),
        service_start_time=service_start,
        title="Epikrise etter innleggelse",
        language_code="nb-NO",
        healthcare_facility_type=Coding(V + "1303", "86.101"),
        practice_setting=Coding(V + "8451", "14"),
        citizen_release_time=release,
        home_community_id=HCID,
    )


def hcp(
    *,
    purpose: str | None = "TREAT",
    roles: tuple[str, ...] = ("LE",),
    nin: NationalIdentityNumber = PRACTITIONER,
    hpr: str | None = "123456789",
    access_basis: AccessBasis | None = None,
    scope: frozenset[str] = frozenset({READ_DOCUMENTREFERENCES_SCOPE}),
    security_level: int = 4,
    decision_ref_id: str = "d-42",
    healthcare_service: Coding | None = Coding(V + "8666", "01"),
    emergency: EmergencyGrant | None = None,
) -> HealthPersonnelContext:
    """A health worker (LE, TREAT, §45 scope) at a synthetic hospital."""
    return HealthPersonnelContext(
        practitioner_nin=nin,
        name="Kari Lege",
        legal_entity=Organisation("983974899", "Testsykehuset HF"),
        point_of_care=Organisation("974589095", "Testsykehuset Ullevål"),
        department=Organisation("4208723", "Akuttmottak"),
        decision_ref_id=decision_ref_id,
        purpose_of_use=purpose,
        hpr=HprNumber(hpr) if hpr else None,
        roles=roles,
        access_basis=access_basis,
        scope=scope,
        healthcare_service=healthcare_service,
        security_level=security_level,
        emergency=emergency,
    )


def grant(
    *,
    classes: tuple[str, ...] = ("A00-1",),
    documents: tuple[str, ...] = (),
    until: datetime | None = None,
    access_basis: str = "AKUTT",
) -> EmergencyGrant:
    """An emergency grant (issue 11, defect 7): by default all blocked «Epikrise», 30 min."""
    end = until or NOW.replace(minute=30)
    return EmergencyGrant(
        access_basis=access_basis,
        reason_category="unconscious",
        until=int(end.timestamp()),
        documents=frozenset(documents),
        classes=frozenset((DOCUMENT_TYPE_SYSTEM, c) for c in classes),
    )


def btg(**kw: object) -> HealthPersonnelContext:
    """A health worker breaking the glass on an acute basis, with a grant (default: A00-1)."""
    return hcp(
        purpose="BTG",
        access_basis=AccessBasis.FORHOYET_AKUTT,
        emergency=grant(**kw),  # type: ignore[arg-type]
    )


def citizen(
    nin: NationalIdentityNumber,
    *,
    acr_level: int = 4,
    representations: tuple[Representation, ...] = (),
) -> CitizenContext:
    """A citizen logged in at level 4."""
    return CitizenContext(nin=nin, acr_level=acr_level, representations=representations)


def access_token_claims(subject: str, client_id: str | None = None) -> AccessTokenClaims:
    """Verified access-token claims with only `sub` and `client_id` set (the caller's key)."""
    return AccessTokenClaims(
        issuer="https://sts.test",
        audience="onerecord:hub",
        subject=subject,
        jti="j",
        issued_at=0,
        expires_at=1,
        jkt="k",
        client_id=client_id,
        scope=frozenset(),
        pid=None,
        security_level=None,
        acr=None,
        toa=None,
        raw={},
    )
