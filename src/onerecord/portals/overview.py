"""The document overview as both portals show it: rows, blocked placeholders, regions.

Pure functions over the hub's searchset Bundle. Each region's status becomes one plain sentence
(message `region.<status>`); a region that failed is never a silent gap.
References: IHE ITI TF-2 3.67.4.2 (ITI-67 response), IHE XCA PartialSuccess (docs/hub.md),
TRUST-FRAMEWORK §4.5 (masked "Sperret" placeholders).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from onerecord.portals.stays import Stay, StayFacts, assign_stays
from onerecord.search_client import OverviewRow, overview_rows, region_lines

__all__ = [
    "CITIZEN_UNDER_AGE",
    "KNOWN_STATUSES",
    "PATIENT_RESERVED",
    "PRACTITIONER_BLOCKED",
    "DocumentRow",
    "Overview",
    "RegionNotice",
    "build_overview",
]

_NORS = "NORS"
_MASKED_ID = re.compile(r"^masked-[0-9a-f]{32}$")
KNOWN_STATUSES = frozenset(
    {
        "ok",
        "not-asked",
        "timeout",
        "unavailable",
        "denied",
        "rejected",
        "too-large",
        "invalid-response",
        "error",
    }
)
NOT_ASKED = "not-asked"
"""A region the hub's locator spared: it holds nothing about the patient (docs/hub.md "Locator")."""
CITIZEN_UNDER_AGE = "citizen-under-age"
"""A region's reason for an empty answer: a citizen under 16 asked for themselves (E2)."""
PATIENT_RESERVED = "patient-reserved"
"""A region's reason for an empty answer: the patient reserved against sharing (D4)."""
PRACTITIONER_BLOCKED = "practitioner-blocked"
"""A region's reason for refusing: the patient blocked this health worker (ATT-5)."""


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """One line of the overview: a document, or a blocked placeholder (`blocked`).

    `ref` is the ITI-68 retrieve token (the last segment of the attachment URL); `unique_id`
    and `home_community_id` name the document for the citizen's blocks.
    """

    date: str
    title: str
    type: str
    class_: str
    author: str
    organisation: str
    region: str
    blocked: bool
    ref: str | None = None
    mime_type: str = ""
    format_code: str = ""
    unique_id: str = ""
    home_community_id: str = ""
    emergency: bool = False
    class_code: str = ""
    class_system: str = ""
    masked_id: str = ""
    """A «Sperret» placeholder's id, which an emergency override can name (issue 11 #7)."""
    type_code: str = ""
    department: str = ""
    setting_code: str = ""
    facility_code: str = ""
    security_labels: tuple[str, ...] = ()
    submitted: str = ""
    """When the document reached its region (ISO instant; "" when not said): «Ny» compares it."""
    period_start: str = ""
    period_end: str = ""
    stay: Stay | None = None
    """The stay (opphold) at `organisation` the document belongs to (`stays.py`)."""

    @property
    def arrived(self) -> str:
        """When the document became available: its submission time, else its date."""
        return self.submitted or self.date

    @property
    def group(self) -> tuple[str, str, str]:
        """The list's group: institution, then stay (first and last day; "" for none)."""
        if self.stay is None:
            return (self.organisation, "", "")
        return (self.organisation, self.stay.start, self.stay.end)


@dataclass(frozen=True, slots=True)
class RegionNotice:
    """One region's answer: its name and status code (`region.<status>` is its sentence).

    `reason`: the region's denial-reason code, when it refused or answered empty by rule.
    """

    name: str
    status: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """The region's part of the list is complete: it answered, or the locator knew it holds
        nothing about the patient (never confused with a region that could not be reached)."""
        return self.status in {"ok", NOT_ASKED}

    @property
    def message_key(self) -> str:
        if self.status == "denied" and self.reason == PRACTITIONER_BLOCKED:
            return "region.denied.practitioner-blocked"
        return f"region.{self.status if self.status in KNOWN_STATUSES else 'unknown'}"

    @property
    def retry_helps(self) -> bool:
        """A failure that may pass (timeout, outage); a refusal does not change by retrying."""
        return not self.ok and self.status not in {"denied", "rejected"}


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything an overview page shows for one patient."""

    rows: tuple[DocumentRow, ...]
    regions: tuple[RegionNotice, ...]
    total: int
    blocked_count: int

    @property
    def complete(self) -> bool:
        """True when every region answered."""
        return all(r.ok for r in self.regions)

    @property
    def reserved(self) -> bool:
        """True when a region answered empty because the patient reserved against sharing."""
        return any(r.reason == PATIENT_RESERVED for r in self.regions)

    @property
    def under_age(self) -> bool:
        """True when the list is empty because the citizen is under 16 (a region said so).

        The rule is the same in every region, so one region saying it is enough: a region that
        did not answer would have said the same.
        """
        return not self.rows and any(r.reason == CITIZEN_UNDER_AGE for r in self.regions)

    def find(self, ref: str) -> DocumentRow | None:
        """Return the row whose retrieve token is `ref` (only listed documents can be opened)."""
        return next((r for r in self.rows if r.ref == ref and not r.blocked), None)


def _documents(bundle: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        e.get("resource", {})
        for e in bundle.get("entry", [])
        if e.get("resource", {}).get("resourceType") == "DocumentReference"
    ]


def _class_text(doc: Mapping[str, Any]) -> str:
    for category in doc.get("category", [])[:1]:
        if category.get("text"):
            return str(category["text"])
        for coding in category.get("coding", [])[:1]:
            return str(coding.get("display") or coding.get("code") or "")
    return ""


def _labels(doc: Mapping[str, Any]) -> set[str]:
    return {str(c.get("code")) for s in doc.get("securityLabel", []) for c in s.get("coding", [])}


def _is_blocked(doc: Mapping[str, Any]) -> bool:
    return _NORS in _labels(doc) and "masterIdentifier" not in doc


def _attachment(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    content = (doc.get("content") or [{}])[0]
    attachment = content.get("attachment", {})
    return attachment if isinstance(attachment, Mapping) else {}


def _format_code(doc: Mapping[str, Any]) -> str:
    fmt = (doc.get("content") or [{}])[0].get("format", {})
    return str(fmt.get("code", "")) if isinstance(fmt, Mapping) else ""


def _ref(url: str | None) -> str | None:
    if not url or "/Binary/" not in url:
        return None
    token = url.rsplit("/Binary/", 1)[1].split("?", 1)[0]
    return token or None


def _unique_id(doc: Mapping[str, Any]) -> str:
    master = doc.get("masterIdentifier", {})
    value = str(master.get("value", "")) if isinstance(master, Mapping) else ""
    return value.removeprefix("urn:oid:")


def _code(concept: Any) -> str:
    if not isinstance(concept, Mapping):
        return ""
    codings = concept.get("coding") or []
    first = codings[0] if isinstance(codings, list) and codings else {}
    return str(first.get("code") or "") if isinstance(first, Mapping) else ""


def _department(doc: Mapping[str, Any]) -> str:
    """The author's department: a contained Organization that is `partOf` the institution."""
    names = [
        str(res["name"])
        for res in doc.get("contained", [])
        if isinstance(res, Mapping)
        and res.get("resourceType") == "Organization"
        and "partOf" in res
        and res.get("name")
    ]
    return ", ".join(dict.fromkeys(names))


def _extension(doc: Mapping[str, Any], suffix: str) -> str:
    for ext in doc.get("extension", []):
        if isinstance(ext, Mapping) and str(ext.get("url", "")).endswith(suffix):
            return str(ext.get("valueInstant") or ext.get("valueDateTime") or "")
    return ""


def _context(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    context = doc.get("context")
    return context if isinstance(context, Mapping) else {}


def _period(doc: Mapping[str, Any]) -> tuple[str, str]:
    period = _context(doc).get("period")
    if not isinstance(period, Mapping):
        return "", ""
    return str(period.get("start") or ""), str(period.get("end") or "")


def _encounter(doc: Mapping[str, Any]) -> str:
    encounters = _context(doc).get("encounter") or []
    if isinstance(encounters, list) and encounters and isinstance(encounters[0], Mapping):
        return str(encounters[0].get("reference") or "")
    return ""


def _class_system(concept: Any) -> str:
    """The code system of a concept's first coding ("" when none): names a class in a grant."""
    if not isinstance(concept, Mapping):
        return ""
    codings = concept.get("coding") or []
    first = codings[0] if isinstance(codings, list) and codings else {}
    return str(first.get("system") or "") if isinstance(first, Mapping) else ""


def _masked_id(doc: Mapping[str, Any]) -> str:
    value = doc.get("id")
    return value if isinstance(value, str) and _MASKED_ID.match(value) else ""


def _row(doc: Mapping[str, Any], row: OverviewRow, hcid: str) -> DocumentRow:
    attachment = _attachment(doc)
    blocked = _is_blocked(doc)
    start, end = _period(doc)
    categories = doc.get("category") or [None]
    return DocumentRow(
        date=row.date,
        title=row.title,
        type=row.type,
        class_=_class_text(doc),
        author=row.author,
        organisation=row.organisation,
        region=row.region,
        blocked=blocked,
        ref=None if blocked else _ref(attachment.get("url")),
        mime_type=str(attachment.get("contentType", "")),
        format_code=_format_code(doc),
        unique_id=_unique_id(doc),
        home_community_id=hcid,
        emergency=_NORS in _labels(doc) and not blocked,
        class_code=_code(categories[0]),
        class_system=_class_system(categories[0]),
        masked_id=_masked_id(doc) if blocked else "",
        type_code=_code(doc.get("type")),
        department=_department(doc),
        setting_code=_code(_context(doc).get("practiceSetting")),
        facility_code=_code(_context(doc).get("facilityType")),
        security_labels=tuple(sorted(_labels(doc))),
        submitted=_extension(doc, "/submission-time"),
        period_start=start,
        period_end=end,
    )


def _with_stays(
    rows: Sequence[DocumentRow], docs: Sequence[Mapping[str, Any]]
) -> tuple[DocumentRow, ...]:
    facts = [
        StayFacts(r.organisation, r.date, r.period_start, r.period_end, _encounter(d))
        for r, d in zip(rows, docs, strict=True)
    ]
    return tuple(replace(r, stay=s) for r, s in zip(rows, assign_stays(facts), strict=True))


def _hcid(doc: Mapping[str, Any]) -> str:
    for ext in doc.get("extension", []):
        if str(ext.get("url", "")).lower().endswith("ihe-homecommunityid"):
            value = ext.get("valueIdentifier", {}).get("value") or ext.get("valueUri")
            return str(value or "")
    return ""


def build_overview(
    bundle: Mapping[str, Any],
    regions: Sequence[Mapping[str, str]],
    *,
    masked_count: int | None = None,
) -> Overview:
    """Return the overview of a hub searchset Bundle; `regions` name the known regions."""
    names = {r["home_community_id"]: r["name"] for r in regions}
    docs = _documents(bundle)
    rows = _with_stays(
        [_row(d, r, _hcid(d)) for d, r in zip(docs, overview_rows(bundle, names), strict=True)],
        docs,
    )
    notices = tuple(
        RegionNotice(line.name, line.status, line.reason) for line in region_lines(bundle, regions)
    )
    blocked = sum(1 for r in rows if r.blocked)
    return Overview(
        rows=rows,
        regions=notices,
        total=int(bundle.get("total", len(rows))),
        blocked_count=masked_count if masked_count is not None else blocked,
    )
