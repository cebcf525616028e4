"""The caller as the access policy sees it: pure input types, filled from a validated token.

The token layer maps the claims of the access token (`nhn:tillitsrammeverk:parameters`, HelseID
identity claims, scope, the `nhn-access-basis` header) onto `HealthPersonnelContext`, and the
citizen portal's ID-porten/helsenorge login onto `CitizenContext`. Nothing here parses a token.

References: TRUST-FRAMEWORK §1.3 (attestation attributes), §1.5 (purpose_of_use), §2.1 (scopes),
§3.1 (access-basis header), §4.3 (access basis), §5.2 (representation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from onerecord.domain import Coding, HprNumber, NationalIdentityNumber
from onerecord.trust.emergency import EmergencyGrant

__all__ = [
    "KJ_FORSKRIFT_SCOPE",
    "READ_DOCUMENTREFERENCES_SCOPE",
    "AccessBasis",
    "CitizenContext",
    "HealthPersonnelContext",
    "Organisation",
    "PurposeOfUse",
    "RelationKind",
    "Representation",
]

READ_DOCUMENTREFERENCES_SCOPE = "nhn:phr/mhd/read-documentreferences"
"""Helsepersonelloven §45 document list: no class/age filter (TRUST-FRAMEWORK §2.1, §4.4)."""

KJ_FORSKRIFT_SCOPE = "nhn:phr/mhd/read-documentreferences/kjernejournalforskriften"
"""Kjernejournalforskriften document list: filtered by class and age, access basis required."""


class PurposeOfUse(StrEnum):
    """HL7 PurposeOfUse values allowed for health personnel (ATT-38…41)."""

    TREAT = "TREAT"
    ETREAT = "ETREAT"
    COC = "COC"
    BTG = "BTG"


class AccessBasis(StrEnum):
    """The `nhn-access-basis` values for the kjernejournalforskriften scope (§4.3)."""

    UNNTAK = "UNNTAK"
    SAMTYKKE = "SAMTYKKE"
    AKUTT = "AKUTT"
    FORHOYET_SAMTYKKE = "FORHOYET_SAMTYKKE"
    FORHOYET_AKUTT = "FORHOYET_AKUTT"

    @classmethod
    def parse(cls, value: str) -> AccessBasis:
        """Return the access basis for a header value in any case ("akutt" is sent in practice)."""
        return cls(value.strip().upper())

    @property
    def elevated(self) -> bool:
        """True for the values that open data the patient has blocked (§4.3)."""
        return self in (AccessBasis.FORHOYET_SAMTYKKE, AccessBasis.FORHOYET_AKUTT)


@dataclass(frozen=True, slots=True)
class Organisation:
    """An identified organisation or unit (orgnr, RESH or local id) with its display name."""

    id: str
    name: str | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class HealthPersonnelContext:
    """A health worker's request: identity, HPR, attestation and the token's scope.

    `purpose_of_use` is kept as the code that came in, so that an unknown or missing purpose
    reaches the policy and is denied there (C8) rather than lost in mapping.
    """

    practitioner_nin: NationalIdentityNumber
    name: str
    legal_entity: Organisation
    point_of_care: Organisation
    decision_ref_id: str
    purpose_of_use: str | None
    hpr: HprNumber | None = None
    roles: tuple[str, ...] = ()
    access_basis: AccessBasis | None = None
    scope: frozenset[str] = frozenset({READ_DOCUMENTREFERENCES_SCOPE})
    department: Organisation | None = None
    healthcare_service: Coding | None = None
    purpose_details: Coding | None = None
    decision_user_selected: bool = False
    security_level: int = 4
    emergency: EmergencyGrant | None = None
    """The signed scope of an emergency override (trust.emergency; issue 11, defect 7)."""

    @property
    def purpose(self) -> PurposeOfUse | None:
        """The purpose as a known value, or None when missing or outside ATT-38…41."""
        try:
            return PurposeOfUse(self.purpose_of_use) if self.purpose_of_use else None
        except ValueError:
            return None


class RelationKind(StrEnum):
    """How a citizen may act for another person (§5.2; XUA ACP 2.16.578.1.12.4.1.7.2.1.x)."""

    PARENT = "parent"
    PROXY = "proxy"
    PROXY_UNABLE_TO_CONSENT = "proxy-unable-to-consent"

    @property
    def acp(self) -> str:
        """The XUA access-control-policy OID carried for this relation."""
        return {
            RelationKind.PARENT: "2.16.578.1.12.4.1.7.2.1.1",
            RelationKind.PROXY: "2.16.578.1.12.4.1.7.2.1.2",
            RelationKind.PROXY_UNABLE_TO_CONSENT: "2.16.578.1.12.4.1.7.2.1.3",
        }[self]


@dataclass(frozen=True, slots=True)
class Representation:
    """One person the citizen represents, as asserted by the citizen portal's login."""

    person: NationalIdentityNumber
    relation: RelationKind


@dataclass(frozen=True, slots=True)
class CitizenContext:
    """A citizen logged in to the portal, with the persons they say they represent."""

    nin: NationalIdentityNumber
    acr_level: int
    name: str | None = None
    birth_date: date | None = None
    representations: tuple[Representation, ...] = ()

    def __post_init__(self) -> None:
        if self.birth_date is None:
            object.__setattr__(self, "birth_date", self.nin.birth_date)

    @property
    def born(self) -> date:
        """The birth date (given, or read from the identity number)."""
        return self.birth_date or self.nin.birth_date

    def representation_of(self, person: NationalIdentityNumber) -> Representation | None:
        """The asserted representation of `person`, if any (ACP nil otherwise)."""
        return next((r for r in self.representations if r.person == person), None)
