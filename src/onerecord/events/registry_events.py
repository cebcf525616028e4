"""The registry event a region publishes per registration, replacement and deletion.

What may be on the bus: never the patient's national identity number. The patient is named by
a keyed digest, HMAC-SHA256 over the identifier with a key shared by the regions and the hub
(`patient_key`): the bus's operators cannot read or guess identities from it, and the hub can
compute the same key for the patient it is asked about. An event also carries the region's
homeCommunityId, the entry's uniqueId and status, and the region's own sequence number (1, 2,
3 … with no gaps), so a reader can tell when it has missed one.

A region's stream begins with a start event (sequence 1) that says how many entries its registry
already held: only a region that started its stream with an empty registry has its whole history
in the stream, so only such a region may ever be skipped.

A heartbeat (core NATS, not stored) carries the region's latest sequence number, so a reader
can tell that it is behind, or that the region has gone silent.

Invariant: for one region, sequence numbers are consecutive; an event whose number is not the
next one the reader expects means the reader's view of that region cannot be trusted.

A backfill brings a region's view back after a loss (entries registered before the locator was
switched on, a start count that disagrees with the stream, a purged or lost stream): a
`BackfillBegin` (numbered, a reset point: a reader forgets the region's earlier view from here),
then the registry's holdings in `Holdings` parts (not numbered, on their own subject, so they can
be sent without waiting for each other), then a `BackfillEnd` (numbered) that says how many parts
and entries there were. The region reads its registry only after the begin is in the stream, so a
registration is either in the holdings or has its own event after the begin.

References: Sweden's engagement index (Inera, "Engagemangsindex", one record per care giver
holding information about a patient); IHE ITI TF-3 4.2.3.2 (DocumentEntry.availabilityStatus).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from onerecord.domain import DomainError, HomeCommunityId

__all__ = [
    "DEFAULT_SUBJECT_PREFIX",
    "DEV_PATIENT_KEY_PREFIX",
    "MAX_CHANGES",
    "MAX_HOLDINGS_BYTES",
    "BackfillBegin",
    "BackfillEnd",
    "Holdings",
    "SequencedEvent",
    "backfill_request_subject",
    "holdings_subject",
    "EntryStatus",
    "InvalidEvent",
    "RegionHeartbeat",
    "RegionStreamStart",
    "RegistryEvent",
    "decode_event",
    "decode_heartbeat",
    "event_subject",
    "event_subjects",
    "heartbeat_subject",
    "heartbeat_subjects",
    "patient_key",
]

DEFAULT_SUBJECT_PREFIX = "onerecord.locator"
_VERSION = 1
_MAX_EVENT_BYTES = 1024
MAX_CHANGES = 256
"""The most changes one `RegistryChanges` event holds (well under its size limit)."""
_MAX_CHANGES_BYTES = 64 * 1024
MAX_HOLDINGS_BYTES = 256 * 1024
"""The largest holdings part (well under JetStream's default 1 MB message)."""
_MAX_UNIQUE_ID_CHARS = 128
_KEY_HEX_CHARS = 64


class InvalidEvent(ValueError):
    """A message on a locator subject that is not a well-formed event or heartbeat."""


class EntryStatus(StrEnum):
    """The entry's availability after the change the event reports."""

    CURRENT = "current"
    SUPERSEDED = "superseded"
    DELETED = "deleted"


DEV_PATIENT_KEY_PREFIX = "dev-"
"""A patient key that starts with this is a development key: refused outside development mode."""


def is_development_key(key: str) -> bool:
    """True for a development patient key (`onerecord demo` makes one)."""
    return key.startswith(DEV_PATIENT_KEY_PREFIX)


def check_patient_key_setting(nats_url: str | None, key: str | None, *, dev_mode: bool) -> None:
    """Refuse a locator configuration the hub or a region must not start with (ValueError).

    With NATS set the patient key must be there and hold at least 16 bytes; a development key
    (`dev-…`) only in development mode.
    """
    if nats_url and (key is None or len(key.encode()) < 16):
        raise ValueError("the locator needs a patient key of at least 16 bytes")
    if key is not None and is_development_key(key) and not dev_mode:
        raise ValueError("a development locator patient key (dev-…) needs dev_mode")


def patient_key(patient_id: str, key: bytes) -> str:
    """Return the keyed digest that names a patient on the bus (HMAC-SHA256, hex)."""
    if len(key) < 16:
        raise ValueError("the locator's patient key must be at least 16 bytes")
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()


def _token(home_community_id: HomeCommunityId) -> str:
    # NATS subject tokens may not hold '.', so the OID's dots become '_'.
    return home_community_id.oid.value.replace(".", "_")


def event_subject(home_community_id: HomeCommunityId, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """Return the JetStream subject of a region's registry events."""
    return f"{prefix}.event.{_token(home_community_id)}"


def heartbeat_subject(
    home_community_id: HomeCommunityId, prefix: str = DEFAULT_SUBJECT_PREFIX
) -> str:
    """Return the core NATS subject of a region's heartbeats."""
    return f"{prefix}.heartbeat.{_token(home_community_id)}"


def holdings_subject(
    home_community_id: HomeCommunityId, prefix: str = DEFAULT_SUBJECT_PREFIX
) -> str:
    """Return the JetStream subject of a region's backfill holdings (within `event_subjects`)."""
    return f"{event_subject(home_community_id, prefix)}.holdings"


def backfill_request_subject(
    home_community_id: HomeCommunityId, prefix: str = DEFAULT_SUBJECT_PREFIX
) -> str:
    """Return the core NATS subject on which a hub asks a region to backfill."""
    return f"{prefix}.backfill.{_token(home_community_id)}"


def event_subjects(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """Return the subjects of every region's events (the stream's subjects)."""
    return f"{prefix}.event.>"


def heartbeat_subjects(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """Return the subjects of every region's heartbeats."""
    return f"{prefix}.heartbeat.>"


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One change to one region's registry, as the locator sees it."""

    home_community_id: HomeCommunityId
    sequence: int
    patient: str
    """The patient's keyed digest (`patient_key`), never the identifier."""
    entry_unique_id: str
    status: EntryStatus

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise InvalidEvent("an event's sequence starts at 1")
        if len(self.patient) != _KEY_HEX_CHARS or not _is_hex(self.patient):
            raise InvalidEvent("an event names its patient by a 64-digit hex digest")
        if not 0 < len(self.entry_unique_id) <= _MAX_UNIQUE_ID_CHARS:
            raise InvalidEvent("an event's entry uniqueId is empty or too long")

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "hcid": self.home_community_id.urn,
                "seq": self.sequence,
                "patient": self.patient,
                "entry": self.entry_unique_id,
                "status": self.status.value,
            }
        )


@dataclass(frozen=True, slots=True)
class RegionStreamStart:
    """The first event of a region's stream: how many entries its registry held before it."""

    home_community_id: HomeCommunityId
    sequence: int
    prior_entries: int

    def __post_init__(self) -> None:
        if self.sequence < 1 or self.prior_entries < 0:
            raise InvalidEvent("a start event's sequence or count is out of range")

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "kind": "start",
                "hcid": self.home_community_id.urn,
                "seq": self.sequence,
                "prior": self.prior_entries,
            }
        )


@dataclass(frozen=True, slots=True)
class BackfillBegin:
    """A region begins a new view of itself (a reset point): its holdings follow, then the end."""

    home_community_id: HomeCommunityId
    sequence: int

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise InvalidEvent("a backfill's sequence starts at 1")

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "kind": "backfill-begin",
                "hcid": self.home_community_id.urn,
                "seq": self.sequence,
            }
        )


@dataclass(frozen=True, slots=True)
class BackfillEnd:
    """The end of the backfill that began at `epoch`: it sent `parts` parts naming `entries`."""

    home_community_id: HomeCommunityId
    sequence: int
    epoch: int
    parts: int
    entries: int

    def __post_init__(self) -> None:
        if self.sequence <= self.epoch or self.epoch < 1 or min(self.parts, self.entries) < 0:
            raise InvalidEvent("a backfill end's numbers are out of range")

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "kind": "backfill-end",
                "hcid": self.home_community_id.urn,
                "seq": self.sequence,
                "epoch": self.epoch,
                "parts": self.parts,
                "entries": self.entries,
            }
        )


@dataclass(frozen=True, slots=True)
class Holdings:
    """Part `part` of the backfill that began at `epoch`: per patient digest, its entries."""

    home_community_id: HomeCommunityId
    epoch: int
    part: int
    patients: tuple[tuple[str, tuple[str, ...]], ...]

    def __post_init__(self) -> None:
        if self.epoch < 1 or self.part < 0:
            raise InvalidEvent("a holdings part's numbers are out of range")
        for patient, entries in self.patients:
            if not _is_hex(patient):
                raise InvalidEvent("holdings name their patients by 64-digit hex digests")
            lengths = tuple(map(len, entries))
            if not lengths or min(lengths) < 1 or max(lengths) > _MAX_UNIQUE_ID_CHARS:
                raise InvalidEvent("a holdings entry uniqueId is empty or too long")

    @property
    def entries(self) -> int:
        return sum(len(entries) for _, entries in self.patients)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "kind": "holdings",
                "hcid": self.home_community_id.urn,
                "epoch": self.epoch,
                "part": self.part,
                "patients": self.patients,
            }
        )


@dataclass(frozen=True, slots=True)
class RegistryChanges:
    """Several changes to one region's registry under one sequence number (sent together)."""

    home_community_id: HomeCommunityId
    sequence: int
    changes: tuple[tuple[str, str, EntryStatus], ...]
    """Per change: the patient's keyed digest, the entry's uniqueId, its status, in order."""

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise InvalidEvent("an event's sequence starts at 1")
        if not 0 < len(self.changes) <= MAX_CHANGES:
            raise InvalidEvent("a changes event holds 1 to MAX_CHANGES changes")
        for patient, entry, _ in self.changes:
            if not _is_hex(patient):
                raise InvalidEvent("an event names its patient by a 64-digit hex digest")
            if not 0 < len(entry) <= _MAX_UNIQUE_ID_CHARS:
                raise InvalidEvent("an event's entry uniqueId is empty or too long")

    def events(self) -> tuple[RegistryEvent, ...]:
        """The changes as single events (all under this event's sequence number)."""
        return tuple(
            RegistryEvent(self.home_community_id, self.sequence, p, e, s)
            for p, e, s in self.changes
        )

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "kind": "changes",
                "hcid": self.home_community_id.urn,
                "seq": self.sequence,
                "changes": [[p, e, s.value] for p, e, s in self.changes],
            }
        )


SequencedEvent = RegistryEvent | RegistryChanges | RegionStreamStart | BackfillBegin | BackfillEnd
"""An event that takes the region's next sequence number."""


@dataclass(frozen=True, slots=True)
class RegionHeartbeat:
    """A region's word that it is alive and has published events up to `sequence` (0: none)."""

    home_community_id: HomeCommunityId
    sequence: int

    def __post_init__(self) -> None:
        if self.sequence < 0:
            raise InvalidEvent("a heartbeat's sequence is never negative")

    def encode(self) -> bytes:
        return orjson.dumps(
            {"v": _VERSION, "hcid": self.home_community_id.urn, "seq": self.sequence}
        )


_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def _is_hex(text: str) -> bool:
    return _HEX_DIGEST.fullmatch(text) is not None


def _load(data: bytes, limit: int = _MAX_EVENT_BYTES) -> dict[str, Any]:
    if len(data) > limit:
        raise InvalidEvent("a locator message is too large")
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("a locator message is not JSON") from exc
    if not isinstance(raw, dict) or raw.get("v") != _VERSION:
        raise InvalidEvent("a locator message is not a version 1 object")
    return raw


@functools.lru_cache(maxsize=256)
def _parse_hcid(value: str) -> HomeCommunityId:
    # A handful of regions send every event: parse each one's identifier once, not per event.
    return HomeCommunityId.parse(value)


def _hcid(raw: dict[str, Any]) -> HomeCommunityId:
    value = raw.get("hcid")
    if not isinstance(value, str):
        raise InvalidEvent("a locator message lacks its homeCommunityId")
    try:
        return _parse_hcid(value)
    except DomainError as exc:
        raise InvalidEvent(str(exc)) from exc


def _int(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    if type(value) is not int:
        raise InvalidEvent(f"a locator message's {name} is not an integer")
    return value


def _holdings(raw: dict[str, Any]) -> Holdings:
    patients = raw.get("patients")
    if not isinstance(patients, list):
        raise InvalidEvent("a holdings part lacks its patients")
    parsed: list[tuple[str, tuple[str, ...]]] = []
    for item in patients:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise InvalidEvent("a holdings patient is not [digest, [uniqueId, …]]")
        entries = item[1]
        if not isinstance(entries, list) or set(map(type, entries)) != {str}:  # C speed
            raise InvalidEvent("a holdings patient's entries are not a list of uniqueIds")
        parsed.append((item[0], tuple(entries)))
    return Holdings(_hcid(raw), _int(raw, "epoch"), _int(raw, "part"), tuple(parsed))


def _changes(raw: dict[str, Any]) -> RegistryChanges:
    changes = raw.get("changes")
    if not isinstance(changes, list):
        raise InvalidEvent("a changes event lacks its changes")
    parsed: list[tuple[str, str, EntryStatus]] = []
    for item in changes:
        if not (
            isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item)
        ):
            raise InvalidEvent("a change is not [digest, uniqueId, status]")
        try:
            status = EntryStatus(item[2])
        except ValueError as exc:
            raise InvalidEvent(f"unknown entry status {item[2][:20]!r}") from exc
        parsed.append((item[0], item[1], status))
    return RegistryChanges(_hcid(raw), _int(raw, "seq"), tuple(parsed))


def decode_event(data: bytes) -> SequencedEvent | Holdings:
    """Parse and validate one stored event; raise InvalidEvent for anything else."""
    raw = _load(data, MAX_HOLDINGS_BYTES)
    kind = raw.get("kind", "entry")
    if kind == "holdings":
        return _holdings(raw)
    if kind == "changes":
        if len(data) > _MAX_CHANGES_BYTES:
            raise InvalidEvent("a locator message is too large")
        return _changes(raw)
    if len(data) > _MAX_EVENT_BYTES:
        raise InvalidEvent("a locator message is too large")
    if kind == "start":
        return RegionStreamStart(_hcid(raw), _int(raw, "seq"), _int(raw, "prior"))
    if kind == "backfill-begin":
        return BackfillBegin(_hcid(raw), _int(raw, "seq"))
    if kind == "backfill-end":
        return BackfillEnd(
            _hcid(raw),
            _int(raw, "seq"),
            _int(raw, "epoch"),
            _int(raw, "parts"),
            _int(raw, "entries"),
        )
    if kind != "entry":
        raise InvalidEvent("unknown event kind")
    patient, entry, status = raw.get("patient"), raw.get("entry"), raw.get("status")
    if not (isinstance(patient, str) and isinstance(entry, str) and isinstance(status, str)):
        raise InvalidEvent("an event lacks its patient, entry or status")
    try:
        entry_status = EntryStatus(status)
    except ValueError as exc:
        raise InvalidEvent(f"unknown entry status {status[:20]!r}") from exc
    return RegistryEvent(_hcid(raw), _int(raw, "seq"), patient, entry, entry_status)


def decode_heartbeat(data: bytes) -> RegionHeartbeat:
    """Parse and validate one heartbeat; raise InvalidEvent for anything else."""
    raw = _load(data)
    return RegionHeartbeat(_hcid(raw), _int(raw, "seq"))
