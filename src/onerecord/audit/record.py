"""One audited access: who asked, for which patient, what they got, and on what grounds.

`AuditRecord` is what the document source and the hub write for every search, retrieve,
access-log read and control change, allowed or not (F1, F5). It holds the attestation fields the
trust framework asks sources to log (TRUST-FRAMEWORK §3.2: practitioner name and HPR number,
legal_entity, point_of_care, department, healthcare_service, purpose_of_use and its details,
decision_ref id) and the token's `jti`, never the token (F6). The stored form is `to_dict()`;
`onerecord.audit.balp` renders it as a FHIR AuditEvent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "AuditAction",
    "AuditCitizen",
    "AuditCode",
    "AuditEmergency",
    "AuditOrganisation",
    "AuditOutcome",
    "AuditPractitioner",
    "AuditRecord",
]


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` of the caller's dataclasses below, without its deep copy.

    They are frozen and hold only str, int, bool, None, tuples and each other, so there is
    nothing to copy; asdict's copying was most of an append's CPU (a work-list page appends
    50 records).
    """
    names = getattr(type(value), "__dataclass_fields__", None)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if type(value) is tuple:
        return tuple(_plain(item) for item in value)
    return value


class AuditAction(StrEnum):
    """What was done."""

    SEARCH = "search"
    RETRIEVE = "retrieve"
    ACCESS_LOG_READ = "access-log-read"
    CONTROL_CHANGE = "control-change"
    STORE = "store"  # an instance received into an archive (DICOM C-STORE, STOW-RS)
    EXPORT = "export"  # a document sent to another system (ITI-65 Provide Document Bundle)
    CONTROLS_READ = "controls-read"  # a system of the region read the patient's controls
    IMPORT = "import"  # an ITI-65 Provide Document Bundle received (refused publish proofs)


class AuditOutcome(StrEnum):
    """How it ended."""

    SUCCESS = "success"
    DENIED = "denied"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class AuditCode:
    """A coded value as logged: system, code and the display from the code system."""

    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True, slots=True)
class AuditOrganisation:
    """An organisation or unit: identifier and name."""

    id: str
    name: str | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEmergency:
    """The emergency grant an access ran under (issue 11, defect 7; trust.emergency).

    `access_basis`: the acute basis it rests on (AKUTT, FORHOYET_AKUTT); `reason_category`: the
    coded reason (unconscious, life-threatening, cannot-consent, other-acute — never the free
    text, §5.4); `until`: its end (ISO 8601, UTC); `classes`: the document classes it names;
    `documents`: how many single blocked documents it names (their placeholder ids are
    meaningless outside the access decision); `opened`: the uniqueIds of the blocked documents
    this access actually showed or returned because of it.
    """

    access_basis: str
    reason_category: str
    until: str
    classes: tuple[AuditCode, ...] = ()
    documents: int = 0
    opened: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditPractitioner:
    """The health worker and the attestation they acted under."""

    name: str
    nin: str
    legal_entity: AuditOrganisation
    point_of_care: AuditOrganisation
    decision_ref_id: str
    hpr: str | None = None
    role: str | None = None
    department: AuditOrganisation | None = None
    healthcare_service: AuditCode | None = None
    purpose_of_use: str | None = None
    purpose_details: AuditCode | None = None
    access_basis: str | None = None
    emergency: AuditEmergency | None = None


@dataclass(frozen=True, slots=True)
class AuditCitizen:
    """The citizen, and the relation when acting for another person (parent, proxy)."""

    nin: str
    name: str | None = None
    on_behalf_of: str | None = None
    relation: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited access, for one patient (BALP: one AuditEvent per patient)."""

    action: AuditAction
    outcome: AuditOutcome
    recorded: datetime
    source_id: str
    home_community_id: str
    correlation_id: str
    patient_id: str | None = None
    practitioner: AuditPractitioner | None = None
    citizen: AuditCitizen | None = None
    reason: str | None = None
    document_ids: tuple[str, ...] = ()
    returned_count: int | None = None
    query: str | None = None
    token_jti: str | None = None
    emergency_override: bool = False
    # At the hub: each region asked, as (homeCommunityId, status) — ok, timeout, unavailable,
    # denied, invalid-response, error — so an auditor sees whose part of an overview is missing.
    regions: tuple[tuple[str, str], ...] = ()
    # A system acting on its own behalf, not for a person (a publisher of the region, by the
    # `iss` of its publish proof): the media archive reading a patient's controls.
    system: str | None = None

    def __post_init__(self) -> None:
        if self.recorded.tzinfo is None:
            raise ValueError("recorded must carry a time zone")
        object.__setattr__(self, "recorded", self.recorded.astimezone(UTC))
        callers = (self.practitioner, self.citizen, self.system)
        if sum(c is not None for c in callers) > 1:
            raise ValueError("a record has one caller: a practitioner, a citizen or a system")
        if self.outcome is not AuditOutcome.SUCCESS and not self.reason:
            raise ValueError("a denied or failed access needs a reason code")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form that is stored and hash-chained (no floats, UTC time)."""
        return {
            "action": self.action.value,
            "outcome": self.outcome.value,
            "recorded": self.recorded.isoformat(timespec="microseconds"),
            "source_id": self.source_id,
            "home_community_id": self.home_community_id,
            "correlation_id": self.correlation_id,
            "patient_id": self.patient_id,
            "practitioner": _plain(self.practitioner) if self.practitioner else None,
            "citizen": _plain(self.citizen) if self.citizen else None,
            "reason": self.reason,
            "document_ids": list(self.document_ids),
            "returned_count": self.returned_count,
            "query": self.query,
            "token_jti": self.token_jti,
            "emergency_override": self.emergency_override,
            **({"regions": [list(pair) for pair in self.regions]} if self.regions else {}),
            **({"system": self.system} if self.system is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """Read a record back from its stored JSON form."""
        practitioner = data.get("practitioner")
        citizen = data.get("citizen")
        return cls(
            action=AuditAction(data["action"]),
            outcome=AuditOutcome(data["outcome"]),
            recorded=datetime.fromisoformat(data["recorded"]),
            source_id=data["source_id"],
            home_community_id=data["home_community_id"],
            correlation_id=data["correlation_id"],
            patient_id=data.get("patient_id"),
            practitioner=_practitioner_from(practitioner) if practitioner else None,
            citizen=AuditCitizen(**citizen) if citizen else None,
            reason=data.get("reason"),
            document_ids=tuple(data.get("document_ids") or ()),
            returned_count=data.get("returned_count"),
            query=data.get("query"),
            token_jti=data.get("token_jti"),
            emergency_override=bool(data.get("emergency_override")),
            regions=tuple((str(h), str(st)) for h, st in data.get("regions") or ()),
            system=data.get("system"),
        )


def _practitioner_from(data: dict[str, Any]) -> AuditPractitioner:
    def org(key: str) -> AuditOrganisation | None:
        value = data.get(key)
        return AuditOrganisation(**value) if value else None

    def code(key: str) -> AuditCode | None:
        value = data.get(key)
        return AuditCode(**value) if value else None

    legal_entity = org("legal_entity")
    point_of_care = org("point_of_care")
    assert legal_entity is not None and point_of_care is not None
    return AuditPractitioner(
        name=data["name"],
        nin=data["nin"],
        hpr=data.get("hpr"),
        role=data.get("role"),
        legal_entity=legal_entity,
        point_of_care=point_of_care,
        department=org("department"),
        healthcare_service=code("healthcare_service"),
        purpose_of_use=data.get("purpose_of_use"),
        purpose_details=code("purpose_details"),
        decision_ref_id=data["decision_ref_id"],
        access_basis=data.get("access_basis"),
        emergency=_emergency_from(data.get("emergency")),
    )


def _emergency_from(data: dict[str, Any] | None) -> AuditEmergency | None:
    if not data:
        return None
    return AuditEmergency(
        access_basis=data["access_basis"],
        reason_category=data["reason_category"],
        until=data["until"],
        classes=tuple(AuditCode(**c) for c in data.get("classes") or ()),
        documents=int(data.get("documents") or 0),
        opened=tuple(data.get("opened") or ()),
    )
