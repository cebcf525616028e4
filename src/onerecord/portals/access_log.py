"""The citizen's access log as the portal shows it: the hub's AuditEvent Bundle as table rows.

Pure functions. Each AuditEvent (in the shape a region writes it) becomes one row: when, who
looked (the requestor agent's name), organisation and department (the other agents, in that
order), the reason (the `purposeOfEvent` texts: purpose and healthcare service), what was done
(a search, or documents opened: subtype `read` / action `R`), whether emergency access opened
blocked documents, and the region (the hub's homeCommunityId extension). Only display texts
are read, never an identifier, so the reader's national id or HPR number cannot reach the page.
Each region that did not answer is one `RegionNotice`, as in the document overview.

References: FHIR R4 AuditEvent; IHE BALP; TRUST-FRAMEWORK §5.4, F2 (no reader identifiers,
no free text), F3 (whether, not which, documents were opened), D2 (emergency access flagged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onerecord.portals.overview import KNOWN_STATUSES, RegionNotice
from onerecord.search_client import region_lines

__all__ = [
    "ACCESS_LOG_PAGE_SIZE",
    "EXT_EMERGENCY_ACCESS",
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


def _display(reference: Any) -> str:
    if not isinstance(reference, Mapping):
        return ""
    value = reference.get("display")
    return str(value).strip() if isinstance(value, str) else ""


def _agents(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """Return (who, organisation, department) from the agents' display names only."""
    agents = [a for a in event.get("agent") or [] if isinstance(a, Mapping)]
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
    for coding in concept.get("coding") or []:
        if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
            return str(coding["display"]).strip()
    return ""


def _reason(event: Mapping[str, Any]) -> str:
    texts = [_concept_text(p) for p in event.get("purposeOfEvent") or []]
    return " – ".join(dict.fromkeys(t for t in texts if t))


def _opened(event: Mapping[str, Any]) -> bool:
    codes = {
        str(c.get("code"))
        for c in event.get("subtype") or []
        if isinstance(c, Mapping) and c.get("code")
    }
    if codes & _OPENED_SUBTYPES:
        return True
    return not codes and event.get("action") == "R"


def _extension(event: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for ext in event.get("extension") or []:
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
    )


def build_access_log(bundle: Mapping[str, Any], regions: Sequence[Mapping[str, str]]) -> AccessLog:
    """Return the access log of a hub answer (a searchset Bundle, or an OperationOutcome).

    `regions` are the known regions (`name`, `home_community_id`); rows keep the hub's order.
    """
    names = {r["home_community_id"]: r["name"] for r in regions}
    events = [
        e["resource"]
        for e in bundle.get("entry") or []
        if isinstance(e, Mapping)
        and isinstance(e.get("resource"), Mapping)
        and e["resource"].get("resourceType") == "AuditEvent"
    ]
    notices = tuple(RegionNotice(line.name, line.status) for line in region_lines(bundle, regions))
    return AccessLog(rows=tuple(_row(e, names) for e in events), regions=notices)


def region_message_key(notice: RegionNotice) -> str:
    """Return the message id of the sentence about one region's part of the log."""
    return f"citizen.log.region.{notice.status if notice.status in KNOWN_STATUSES else 'unknown'}"
