"""Which stay (opphold) a document of the overview belongs to, as a pure rule.

The documents list groups by institution, then by stay (issue 11, "The look"). What a
DocumentReference carries about where and when it was written (IHE MHD, docs/mhd.md):
the author's institution and department (contained Organizations), `context.period`
(serviceStart/StopTime), `context.encounter` (rarely sent; none of the synthetic regions do)
and the facility type and practice setting. The rule, per institution:

1. Documents naming the same `context.encounter` are one stay; its period spans theirs.
2. Otherwise a stay is a `context.period` over more than one calendar day (an admission: the
   discharge summary's period is the stay). Overlapping or touching periods of one institution
   are one stay.
3. A document of that institution whose own period starts (else: whose date falls) within a
   stay belongs to it — a lab result taken during the admission sits under the admission.
4. Everything else of the institution stands under the institution alone (no stay).

Dates are compared as calendar days (YYYY-MM-DD, the first ten characters of the ISO text).
A blocked placeholder shows no institution and no period (docs/policy.md), so it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Stay", "StayFacts", "assign_stays"]


@dataclass(frozen=True, slots=True)
class Stay:
    """A stay at an institution: first and last day (YYYY-MM-DD), inclusive."""

    start: str
    end: str


@dataclass(frozen=True, slots=True)
class StayFacts:
    """What one document says about when and where it was written."""

    institution: str
    date: str
    period_start: str = ""
    period_end: str = ""
    encounter: str = ""

    @property
    def multi_day(self) -> bool:
        start, end = self.period_start[:10], self.period_end[:10]
        return bool(start and end and end > start)

    @property
    def day(self) -> str:
        return (self.period_start or self.date)[:10]


def _merge(intervals: list[tuple[str, str]]) -> list[tuple[str, str]]:
    merged: list[tuple[str, str]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def assign_stays(facts: Sequence[StayFacts]) -> list[Stay | None]:
    """Return the stay of each document (None: not part of a stay), in the order given."""
    by_encounter: dict[tuple[str, str], tuple[str, str]] = {}
    admissions: dict[str, list[tuple[str, str]]] = {}
    for f in facts:
        if not f.institution:
            continue
        start, end = f.day, (f.period_end or f.period_start or f.date)[:10]
        if f.encounter:
            key = (f.institution, f.encounter)
            old = by_encounter.get(key)
            by_encounter[key] = (min(old[0], start), max(old[1], end)) if old else (start, end)
        elif f.multi_day:
            admissions.setdefault(f.institution, []).append((start, end))
    merged = {inst: _merge(spans) for inst, spans in admissions.items()}
    stays: list[Stay | None] = []
    for f in facts:
        if not f.institution:
            stays.append(None)
            continue
        if f.encounter:
            stays.append(Stay(*by_encounter[(f.institution, f.encounter)]))
            continue
        day = f.day
        found = None
        for start, end in merged.get(f.institution, []):
            if day and start <= day <= end:
                found = Stay(start, end)
        stays.append(found)
    return stays
