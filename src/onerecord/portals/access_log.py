"""The citizen's access log as the portal reads it: the hub's AuditEvent Bundle as events.

Pure functions. Each AuditEvent (in the shape a region writes it) becomes one row: when, who
looked (the requestor agent's name), their profession (the agent's HPR category code),
organisation and department (the other agents, in that order), the reason (the
`purposeOfEvent` texts: purpose and healthcare service), what was done (a search, or documents
opened: subtype `read` / action `R`), the titles of the opened documents the region let the
reader see (`entity.name`), the emergency grant (basis and reason category; whether it opened
blocked documents) and the region (the hub's homeCommunityId extension). The reader's HPR
number (`agent.who.identifier`, HPR system only) is kept out of the row's repr for the route
to turn into an opaque keyed reference (`access_visits.reader_ref`); the national identity
number is never read. `access_visits` groups the rows into visits for the page.
Each region that did not answer is one `RegionNotice`, as in the document overview.

References: FHIR R4 AuditEvent; IHE BALP; TRUST-FRAMEWORK §5.4, F2 (no reader identifiers,
no free text), F3 as read in docs/policy.md, D2 (emergency access flagged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from onerecord.domain import HPR_SYSTEM
from onerecord.portals.overview import KNOWN_STATUSES, RegionNotice
from onerecord.search_client import region_lines

__all__ = [
    "ACCESS_LOG_PAGE_SIZE",
    "EXT_EMERGENCY_ACCESS",
    "EXT_EMERGENCY_BASIS",
    "EXT_EMERGENCY_REASON",
    "EXT_HOME_COMMUNITY_ID",
    "AccessLog",
    "AccessLogPage",
    "AccessLogRow",
    "build_access_log",
    "region_message_key",
]

EXT_HOME_COMMUNITY_ID = "https://onerecord.example/fhir/StructureDefinition/home-community-id"
"""The hub's mark of the region an AuditEvent came from (valueString: the homeCommunityId)."""
EXT_EMERGENCY_ACCESS = "https://onerecord.example/fhir/StructureDefinition/emergency-access"
"""A region's mark of an access that opened blocked documents (valueBoolean)."""
EXT_EMERGENCY_BASIS = "https://onerecord.example/fhir/StructureDefinition/emergency-basis"
"""The access basis of the emergency grant an access ran under (valueCode: AKUTT, …)."""
EXT_EMERGENCY_REASON = "https://onerecord.example/fhir/StructureDefinition/emergency-reason"
"""The grant's coded reason category (valueCode: unconscious, …; never free text)."""
HPR_CATEGORY_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.9060"
ACCESS_LOG_PAGE_SIZE = 50

_OPENED_SUBTYPES = frozenset({"read", "vread"})


@dataclass(frozen=True, slots=True)
class AccessLogRow:
    """One access by health personnel: when, who, where from, why, what, in which region."""

    recorded: str
    who: str
    organisation: str
    department: str
    reason: str
    opened: bool
    """True when documents were opened (retrieved); False for a search (the list only)."""
    emergency: bool
    region: str
    profession: str = ""
    """The HPR category code (Volven 9060: LE, SP, …); words come from the messages."""
    titles: tuple[str, ...] = ()
    emergency_basis: str = ""
    emergency_reason: str = ""
    reader_hpr: str = field(default="", repr=False)
    """The reader's HPR number: for the keyed reference only, never shown (F2)."""


@dataclass(frozen=True, slots=True)
class AccessLogPage:
    """One page of the log."""

    rows: tuple[AccessLogRow, ...]
    page: int
    pages: int


@dataclass(frozen=True, slots=True)
class AccessLog:
    """Every access the hub found, newest first, and each region's answer."""

    rows: tuple[AccessLogRow, ...]
    regions: tuple[RegionNotice, ...]

    @property
    def complete(self) -> bool:
        """True when every region answered."""
        return all(r.ok for r in self.regions)

    @property
    def emergency_count(self) -> int:
        return sum(1 for r in self.rows if r.emergency)

    def page(self, number: int, per_page: int = ACCESS_LOG_PAGE_SIZE) -> AccessLogPage:
        """Return page `number` (1-based, clamped to the pages there are)."""
        pages = max(1, -(-len(self.rows) // per_page))
        number = min(max(number, 1), pages)
        start = (number - 1) * per_page
        return AccessLogPage(self.rows[start : start + per_page], number, pages)


def _list(value: Any) -> list[Any]:
    """`value` when it is a JSON array, else empty: a hub answer of the wrong shape is read as
    having nothing there, never as a server error."""
    return value if isinstance(value, list) else []


def _display(reference: Any) -> str:
    if not isinstance(reference, Mapping):
        return ""
    value = reference.get("display")
    return str(value).strip() if isinstance(value, str) else ""


def _requestor(event: Mapping[str, Any]) -> Mapping[str, Any]:
    agents = [a for a in _list(event.get("agent")) if isinstance(a, Mapping)]
    return next((a for a in agents if a.get("requestor") is True), {})


def _hpr(event: Mapping[str, Any]) -> str:
    """The requestor's HPR number, when identified in the HPR system (digits only)."""
    who = _requestor(event).get("who")
    ident = who.get("identifier") if isinstance(who, Mapping) else None
    if not isinstance(ident, Mapping):
        return ""
    system, value = ident.get("system"), ident.get("value")
    if not isinstance(system, str) or system.removeprefix("urn:oid:") != HPR_SYSTEM:
        return ""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return ""
    return value if len(value) <= 9 else ""


def _profession(event: Mapping[str, Any]) -> str:
    for role in _list(_requestor(event).get("role")):
        codings = role.get("coding") if isinstance(role, Mapping) else None
        for c in _list(codings):
            if isinstance(c, Mapping) and c.get("system") == HPR_CATEGORY_SYSTEM:
                code = c.get("code")
                if isinstance(code, str) and code.isascii() and 0 < len(code) <= 8:
                    return code
    return ""


def _titles(event: Mapping[str, Any]) -> tuple[str, ...]:
    names = (e.get("name") for e in _list(event.get("entity")) if isinstance(e, Mapping))
    return tuple(dict.fromkeys(n.strip() for n in names if isinstance(n, str) and n.strip()))


def _code(event: Mapping[str, Any], url: str) -> str:
    ext = _extension(event, url)
    value = ext.get("valueCode") if ext is not None else None
    return value if isinstance(value, str) and len(value) <= 64 else ""


def _agents(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """Return (who, organisation, department) from the agents' display names only."""
    agents = [a for a in _list(event.get("agent")) if isinstance(a, Mapping)]
    who = next((_display(a.get("who")) for a in agents if a.get("requestor") is True), "")
    others = [_display(a.get("who")) for a in agents if a.get("requestor") is not True]
    others = [name for name in others if name]
    organisation = others[0] if others else ""
    department = others[1] if len(others) > 1 else ""
    return who, organisation, department


def _concept_text(concept: Any) -> str:
    if not isinstance(concept, Mapping):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"]).strip()
    for coding in _list(concept.get("coding")):
        if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
            return str(coding["display"]).strip()
    return ""


def _reason(event: Mapping[str, Any]) -> str:
    texts = [_concept_text(p) for p in _list(event.get("purposeOfEvent"))]
    return " – ".join(dict.fromkeys(t for t in texts if t))


def _opened(event: Mapping[str, Any]) -> bool:
    codes = {
        str(c.get("code"))
        for c in _list(event.get("subtype"))
        if isinstance(c, Mapping) and c.get("code")
    }
    if codes & _OPENED_SUBTYPES:
        return True
    return not codes and event.get("action") == "R"


def _extension(event: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for ext in _list(event.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == url:
            return ext
    return None


def _region(event: Mapping[str, Any], names: Mapping[str, str]) -> str:
    ext = _extension(event, EXT_HOME_COMMUNITY_ID)
    hcid = str(ext.get("valueString") or "") if ext is not None else ""
    if hcid:
        return names.get(hcid, hcid)
    source = event.get("source")
    site = source.get("site") if isinstance(source, Mapping) else None
    return str(site) if isinstance(site, str) else ""


def _row(event: Mapping[str, Any], names: Mapping[str, str]) -> AccessLogRow:
    who, organisation, department = _agents(event)
    emergency = _extension(event, EXT_EMERGENCY_ACCESS)
    recorded = event.get("recorded")
    return AccessLogRow(
        recorded=str(recorded) if isinstance(recorded, str) else "",
        who=who,
        organisation=organisation,
        department=department,
        reason=_reason(event),
        opened=_opened(event),
        emergency=emergency is not None and emergency.get("valueBoolean") is True,
        region=_region(event, names),
        profession=_profession(event),
        titles=_titles(event) if _opened(event) else (),
        emergency_basis=_code(event, EXT_EMERGENCY_BASIS),
        emergency_reason=_code(event, EXT_EMERGENCY_REASON),
        reader_hpr=_hpr(event),
    )


def build_access_log(bundle: Mapping[str, Any], regions: Sequence[Mapping[str, str]]) -> AccessLog:
    """Return the access log of a hub answer (a searchset Bundle, or an OperationOutcome).

    `regions` are the known regions (`name`, `home_community_id`); rows keep the hub's order.
    """
    names = {r["home_community_id"]: r["name"] for r in regions}
    events = [
        e["resource"]
        for e in _list(bundle.get("entry"))
        if isinstance(e, Mapping)
        and isinstance(e.get("resource"), Mapping)
        and e["resource"].get("resourceType") == "AuditEvent"
    ]
    notices = tuple(RegionNotice(line.name, line.status) for line in region_lines(bundle, regions))
    return AccessLog(rows=tuple(_row(e, names) for e in events), regions=notices)


def region_message_key(notice: RegionNotice) -> str:
    """Return the message id of the sentence about one region's part of the log."""
    return f"citizen.log.region.{notice.status if notice.status in KNOWN_STATUSES else 'unknown'}"
