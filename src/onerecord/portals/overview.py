"""The national document overview as the page shows it: rows, blocked placeholders, regions.

Pure functions over the hub's searchset Bundle. Each region's status becomes one plain bokmål
sentence; a region that failed is never a silent gap.
References: IHE ITI TF-2 3.67.4.2 (ITI-67 response), IHE XCA PartialSuccess (docs/hub.md),
TRUST-FRAMEWORK §4.5 (masked "Sperret" placeholders).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onerecord.search_client import OverviewRow, overview_rows, region_lines

__all__ = [
    "DocumentRow",
    "Overview",
    "RegionNotice",
    "build_overview",
    "region_sentence",
]

_NORS = "NORS"

_SENTENCES: Mapping[str, str] = {
    "ok": "{name} svarte.",
    "timeout": "{name} svarte ikke i tide. Listen kan mangle dokumenter herfra – prøv igjen.",
    "unavailable": "{name} er ikke tilgjengelig nå. Listen mangler dokumenter herfra.",
    "denied": "{name} ga ikke tilgang til dokumentene sine for dette oppslaget.",
    "invalid-response": "{name} svarte med feil. Listen kan mangle dokumenter herfra.",
    "error": "{name} svarte med feil. Listen kan mangle dokumenter herfra.",
}


def region_sentence(name: str, status: str) -> str:
    """Return what a region's status means, in one bokmål sentence."""
    template = _SENTENCES.get(status, "{name}: ukjent status. Listen kan mangle dokumenter.")
    return template.format(name=name)


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """One line of the overview: a document, or a blocked placeholder (`blocked`)."""

    date: str
    title: str
    type: str
    class_: str
    author: str
    organisation: str
    region: str
    blocked: bool


@dataclass(frozen=True, slots=True)
class RegionNotice:
    """One region's answer: its name, status code and the sentence shown."""

    name: str
    status: str
    sentence: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the overview page shows for one patient."""

    rows: tuple[DocumentRow, ...]
    regions: tuple[RegionNotice, ...]
    total: int
    blocked_count: int

    @property
    def complete(self) -> bool:
        """True when every region answered."""
        return all(r.ok for r in self.regions)


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


def _is_blocked(doc: Mapping[str, Any]) -> bool:
    labels = [c.get("code") for s in doc.get("securityLabel", []) for c in s.get("coding", [])]
    return _NORS in labels and "masterIdentifier" not in doc


def _row(doc: Mapping[str, Any], row: OverviewRow) -> DocumentRow:
    return DocumentRow(
        date=row.date,
        title=row.title,
        type=row.type,
        class_=_class_text(doc),
        author=row.author,
        organisation=row.organisation,
        region=row.region,
        blocked=_is_blocked(doc),
    )


def build_overview(
    bundle: Mapping[str, Any],
    regions: Sequence[Mapping[str, str]],
    *,
    masked_count: int | None = None,
) -> Overview:
    """Return the overview of a hub searchset Bundle; `regions` name the known regions."""
    names = {r["home_community_id"]: r["name"] for r in regions}
    docs = _documents(bundle)
    rows = tuple(_row(d, r) for d, r in zip(docs, overview_rows(bundle, names), strict=True))
    notices = tuple(
        RegionNotice(line.name, line.status, region_sentence(line.name, line.status))
        for line in region_lines(bundle, regions)
    )
    blocked = sum(1 for r in rows if r.blocked)
    return Overview(
        rows=rows,
        regions=notices,
        total=int(bundle.get("total", len(rows))),
        blocked_count=masked_count if masked_count is not None else blocked,
    )
