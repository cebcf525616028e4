"""The locator's index: which regions hold documents about a patient, and when to trust it.

A pure index fed with the regions' registry events (onerecord/events) and heartbeats; the hub
asks it which regions a search may skip. Safety first, every rule in `plan`:

- a backfill (a begin, the region's holdings in parts, an end) replaces the region's view when
  it ends; while it is under way the region is asked, and only a backfill whose every part
  arrived, with as many entries as the end says and no start of another process in between,
  makes the region's view confirmed again; a backfill's begin also clears a gap;
- the whole index is trusted only once it has replayed the event stream to its end (`ready`);
  until then every region is asked;
- a patient unknown to the index is asked everywhere;
- a region is skipped only when its view is confirmed: its stream began with an empty registry
  and each process of the region, when it started, counted as many entries as the stream had
  named there (its whole history is in the stream); it has been heard from, within
  `max_silence_s`; every event up to its latest announced sequence has been applied (not
  behind); no sequence number was missed (no gap); and the patient has no entry there;
- an entry counts until it is deleted: a superseded entry is still found by a search that asks
  for superseded entries;
- if every region would be skipped, every region is asked (an answer nobody gave is no answer).

Invariant: a region is skipped only if every event it published up to its latest heartbeat has
been applied and none of them left an entry about the patient there.

References: Sweden's engagement index (Inera); IHE ITI TF-2 3.38.4.1.3 (an initiating gateway
may choose the responding gateways it asks, and must report the ones it could not reach).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from onerecord.events import (
    BackfillBegin,
    BackfillEnd,
    EntryStatus,
    Holdings,
    RegionHeartbeat,
    RegionStreamStart,
    SequencedEvent,
)
from onerecord.hub.directory import Region
from onerecord.hub.merge import EXT_HOME_COMMUNITY_ID, EXT_REGION_STATUS, REGION_STATUS_SYSTEM

__all__ = ["NOT_ASKED", "AskReason", "LocatorIndex", "LocatorPlan", "RegionView", "skipped_issue"]

NOT_ASKED = "not-asked"
"""The region status of a region the locator spared (in the answer and in the audit)."""


class AskReason(StrEnum):
    """Why a region is asked although the index might have spared it, or why it is asked."""

    HOLDS_DOCUMENTS = "holds-documents"
    REBUILDING = "index-rebuilding"
    PATIENT_UNKNOWN = "patient-unknown"
    UNCONFIRMED = "region-unconfirmed"
    INCOMPLETE = "history-incomplete"
    BEHIND = "index-behind"
    GAP = "events-missed"
    BACKFILLING = "backfill-under-way"
    SILENT = "events-stopped"
    NONE_LEFT = "no-region-left"


@dataclass(slots=True)
class RegionView:
    """What the index knows of one region's event stream."""

    applied: int = 0
    """The sequence number of the last event applied (consecutive from 1 or a backfill's begin)."""
    head: int = 0
    """The latest sequence number the region has announced (event or heartbeat)."""
    heard_at: float | None = None
    gap: bool = False
    """An event was missed: this region's view stays untrusted until its next backfill."""
    complete: bool = False
    """Every entry the region holds is in the index: its stream began with an empty registry or
    its latest backfill completed, and each later start event counted exactly the entries the
    stream had named."""
    entries: int = 0
    """Distinct entries the stream has named at this region (not deleted)."""
    epoch: int | None = None
    """The sequence number of the begin of the backfill under way, if one is."""
    epoch_began_at: float = 0.0
    pending: dict[str, set[str]] = field(default_factory=dict)
    """The view the backfill under way builds: per patient digest, the entries."""
    parts: set[int] = field(default_factory=set)
    part_entries: int = 0
    spoiled: bool = False
    """A process of the region started during the backfill: its count cannot be checked."""

    def doubt(self, now: float, max_silence_s: float) -> AskReason | None:
        """Return why this region's view cannot be trusted now, or None when it can."""
        if self.heard_at is None:
            return AskReason.UNCONFIRMED
        if self.gap:
            return AskReason.GAP
        if self.epoch is not None:
            return AskReason.BACKFILLING
        if not self.complete:
            return AskReason.INCOMPLETE
        if self.head > self.applied:
            return AskReason.BEHIND
        if now - self.heard_at > max_silence_s:
            return AskReason.SILENT
        return None

    def needs_backfill(self, now: float, stalled_s: float) -> bool:
        """True when only a backfill can make this region's view trusted again."""
        if self.heard_at is None:
            return False
        if self.gap:
            return True
        if self.complete:
            return False
        return self.epoch is None or now - self.epoch_began_at > stalled_s


@dataclass(frozen=True, slots=True)
class LocatorPlan:
    """The regions a search asks (with why) and the ones it skips (no documents indexed)."""

    ask: tuple[tuple[Region, AskReason], ...]
    skip: tuple[Region, ...] = ()

    @property
    def regions(self) -> tuple[Region, ...]:
        return tuple(region for region, _ in self.ask)


def _add(held: dict[str, set[str]], patient: str, entry: str) -> bool:
    """Add `entry` to the patient's entries; True when it was not there yet."""
    entries = held.get(patient)
    if entries is None:
        held[patient] = {entry}
        return True
    if entry in entries:
        return False
    entries.add(entry)
    return True


def _discard(held: dict[str, set[str]], patient: str, entry: str) -> bool:
    """Remove `entry` from the patient's entries; True when it was there."""
    entries = held.get(patient)
    if entries is None or entry not in entries:
        return False
    entries.discard(entry)
    if not entries:
        del held[patient]
    return True


@dataclass(slots=True)
class LocatorIndex:
    """Per region, per patient (keyed digest), the entries not deleted; per region, its view."""

    max_silence_s: float
    ready: bool = False
    regions: dict[str, RegionView] = field(default_factory=lambda: defaultdict(RegionView))
    _held: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(dict))

    def apply(self, event: SequencedEvent | Holdings, now: float) -> None:
        """Apply one event; a sequence number out of turn marks the region's gap."""
        view = self.regions[event.home_community_id.urn]
        view.heard_at = now
        if isinstance(event, Holdings):
            self._holdings(view, event)
            return
        view.head = max(view.head, event.sequence)
        if event.sequence <= view.applied:
            return  # redelivered: already applied
        if isinstance(event, BackfillBegin):
            # A reset point: what the region says from here on is its whole view.
            view.applied = event.sequence
            view.gap = False
            view.complete = False
            view.epoch, view.epoch_began_at = event.sequence, now
            view.pending, view.parts, view.part_entries, view.spoiled = {}, set(), 0, False
            return
        if event.sequence != view.applied + 1:
            view.gap = True
            return
        view.applied = event.sequence
        if view.gap:
            return
        if isinstance(event, BackfillEnd):
            self._end(view, event)
            return
        if isinstance(event, RegionStreamStart):
            if view.epoch is not None:
                view.spoiled = True  # a count taken during a backfill cannot be checked
                return
            # A process of the region (re)started: its registry must hold exactly what the
            # stream named, or some registration never reached the stream.
            counted = event.prior_entries == view.entries
            view.complete = counted and (event.sequence == 1 or view.complete)
            return
        held = self._held[event.home_community_id.urn]
        if event.status is EntryStatus.DELETED:
            view.entries -= _discard(held, event.patient, event.entry_unique_id)
            if view.epoch is not None:
                _discard(view.pending, event.patient, event.entry_unique_id)
        else:
            view.entries += _add(held, event.patient, event.entry_unique_id)
            if view.epoch is not None:
                _add(view.pending, event.patient, event.entry_unique_id)

    def _holdings(self, view: RegionView, part: Holdings) -> None:
        if part.epoch != view.epoch or part.part in view.parts:
            return  # an earlier backfill's, or redelivered
        view.parts.add(part.part)
        for patient, entries in part.patients:
            view.part_entries += len(entries)
            known = view.pending.get(patient)
            if known is None:
                view.pending[patient] = set(entries)
            else:
                known.update(entries)

    def _end(self, view: RegionView, end: BackfillEnd) -> None:
        whole = (
            end.epoch == view.epoch
            and not view.spoiled
            and len(view.parts) == end.parts
            and view.parts == set(range(end.parts))
            and view.part_entries == end.entries
        )
        if end.epoch == view.epoch:
            # The backfill's view replaces the region's, complete or not: it is the newer one.
            self._held[end.home_community_id.urn] = view.pending
            view.entries = sum(len(entries) for entries in view.pending.values())
        view.complete = whole
        view.epoch, view.pending, view.parts, view.part_entries = None, {}, set(), 0

    def heartbeat(self, beat: RegionHeartbeat, now: float) -> None:
        """Note that a region is alive and has published up to `beat.sequence`."""
        view = self.regions[beat.home_community_id.urn]
        view.heard_at = now
        view.head = max(view.head, beat.sequence)

    def holds(self, patient: str, hcid: str) -> bool:
        """True when the index has an entry about `patient` at region `hcid`."""
        held = self._held.get(hcid)
        return held is not None and patient in held

    def known(self, patient: str) -> bool:
        """True when some region's view names the patient."""
        return any(patient in held for held in self._held.values())

    def plan(self, patient: str, regions: Sequence[Region], now: float) -> LocatorPlan:
        """Return which of `regions` a search about `patient` (keyed digest) asks and skips."""
        if not self.ready:
            return LocatorPlan(tuple((r, AskReason.REBUILDING) for r in regions))
        if not self.known(patient):
            return LocatorPlan(tuple((r, AskReason.PATIENT_UNKNOWN) for r in regions))
        ask: list[tuple[Region, AskReason]] = []
        skip: list[Region] = []
        for region in regions:
            doubt = self.regions[region.hcid].doubt(now, self.max_silence_s)
            if doubt is not None:
                ask.append((region, doubt))
            elif self.holds(patient, region.hcid):
                ask.append((region, AskReason.HOLDS_DOCUMENTS))
            else:
                skip.append(region)
        if not ask:
            return LocatorPlan(tuple((r, AskReason.NONE_LEFT) for r in regions))
        return LocatorPlan(tuple(ask), tuple(skip))


def skipped_issue(region: Region) -> dict[str, Any]:
    """Render a region the locator did not ask as an information issue naming it.

    So that "no documents there" (an ok region with nothing) is never confused with "not asked".
    """
    display = "not asked: the locator holds no documents about the patient in this community"
    return {
        "extension": [
            {"url": EXT_HOME_COMMUNITY_ID, "valueUri": region.hcid},
            {"url": EXT_REGION_STATUS, "valueCode": NOT_ASKED},
        ],
        "severity": "information",
        "code": "informational",
        "details": {
            "coding": [{"system": REGION_STATUS_SYSTEM, "code": NOT_ASKED, "display": display}],
            "text": region.name,
        },
        "diagnostics": f"{region.name} ({region.hcid}): {display}",
        "location": [region.hcid],
    }
