"""The locator's event schema: round trips, validation at the edge, the patient's keyed digest."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.domain import HomeCommunityId
from onerecord.events import (
    BackfillBegin,
    BackfillEnd,
    EntryStatus,
    Holdings,
    InvalidEvent,
    RegionHeartbeat,
    RegionStreamStart,
    RegistryChanges,
    RegistryEvent,
    StreamPosition,
    decode_event,
    decode_heartbeat,
    event_subject,
    heartbeat_subject,
    patient_key,
)

HCID = HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1")
KEY = b"k" * 32
NIN = "13116900216"


def test_the_patient_is_named_by_a_keyed_digest_never_the_identifier() -> None:
    key = patient_key(NIN, KEY)
    assert len(key) == 64
    assert NIN not in key
    assert key == patient_key(NIN, KEY)
    assert key != patient_key(NIN, b"o" * 32)
    event = RegistryEvent(HCID, 1, key, "2.25.1", EntryStatus.CURRENT)
    assert NIN.encode() not in event.encode()


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        patient_key(NIN, b"short")


@given(
    sequence=st.integers(min_value=1, max_value=2**53),
    entry=st.text(st.characters(codec="utf-8"), min_size=1, max_size=60),
    status=st.sampled_from(EntryStatus),
    patient=st.text("0123456789", min_size=11, max_size=11),
)
def test_an_event_round_trips(sequence: int, entry: str, status: EntryStatus, patient: str) -> None:
    event = RegistryEvent(HCID, sequence, patient_key(patient, KEY), entry, status)
    assert decode_event(event.encode()) == event


def test_a_start_event_round_trips_and_an_unknown_kind_is_refused() -> None:
    start = RegionStreamStart(HCID, 1, 42)
    assert decode_event(start.encode()) == start
    with pytest.raises(InvalidEvent):
        decode_event(orjson.dumps({**GOOD, "kind": "purge"}))
    with pytest.raises(InvalidEvent):
        RegionStreamStart(HCID, 1, -1)


def test_subjects_name_the_region() -> None:
    assert event_subject(HCID) == "onerecord.locator.event.2_16_578_1_12_4_5_100_1"
    assert heartbeat_subject(HCID).startswith("onerecord.locator.heartbeat.")
    assert decode_heartbeat(RegionHeartbeat(HCID, 7).encode()) == RegionHeartbeat(HCID, 7)


GOOD = {
    "v": 1,
    "hcid": HCID.urn,
    "seq": 1,
    "patient": "a" * 64,
    "entry": "2.25.1",
    "status": "current",
}


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"hcid": "not-an-oid"},
        {"hcid": None},
        {"seq": 0},
        {"seq": "1"},
        {"seq": True},
        {"seq": 1.0},
        {"patient": NIN},
        {"patient": "A" * 64},
        {"entry": ""},
        {"entry": "x" * 129},
        {"status": "approved"},
        {"status": None},
    ],
)
def test_a_malformed_event_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidEvent):
        decode_event(orjson.dumps({**GOOD, **change}))


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b"x" * 2000, orjson.dumps({"v": 1})])
def test_what_is_not_an_event_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidEvent):
        decode_event(data)
    with pytest.raises(InvalidEvent):
        decode_heartbeat(data)


# --- changes sent together, and a backfill's begin, holdings and end --------------------------

_digest = st.text("0123456789abcdef", min_size=64, max_size=64)
_unique_id = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60)


@given(
    sequence=st.integers(min_value=1, max_value=2**53),
    changes=st.lists(
        st.tuples(_digest, _unique_id, st.sampled_from(EntryStatus)), min_size=1, max_size=20
    ),
)
def test_changes_sent_together_round_trip(
    sequence: int, changes: list[tuple[str, str, EntryStatus]]
) -> None:
    event = RegistryChanges(HCID, sequence, tuple(changes))
    assert decode_event(event.encode()) == event
    assert [e.entry_unique_id for e in event.events()] == [u for _, u, _ in changes]


@given(
    epoch=st.integers(min_value=1, max_value=2**40),
    part=st.integers(min_value=0, max_value=10_000),
    patients=st.lists(
        st.tuples(_digest, st.lists(_unique_id, min_size=1, max_size=5)), max_size=10
    ),
)
def test_a_backfill_round_trips(
    epoch: int, part: int, patients: list[tuple[str, list[str]]]
) -> None:
    holdings = Holdings(HCID, epoch, part, tuple((p, tuple(u)) for p, u in patients))
    assert decode_event(holdings.encode()) == holdings
    assert decode_event(BackfillBegin(HCID, epoch).encode()) == BackfillBegin(HCID, epoch)
    end = BackfillEnd(HCID, epoch + 1, epoch, part + 1, holdings.entries)
    assert decode_event(end.encode()) == end


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=70),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    ),
    st.sampled_from(["changes", "holdings", "backfill-begin", "backfill-end", "start", None]),
)
def test_any_json_under_a_locator_kind_is_an_event_or_refused(
    body: object, kind: str | None
) -> None:
    """Whatever arrives on the stream: decoded into a valid event, or InvalidEvent, nothing else."""
    message = {"v": 1, "hcid": HCID.urn, "seq": 1, "epoch": 1, "part": 0, "parts": 0, "entries": 0}
    if kind:
        message["kind"] = kind
    for field in ("changes", "patients", "patient", "entry", "status", "prior"):
        message[field] = body  # type: ignore[assignment]
    try:
        decode_event(orjson.dumps(message))
    except InvalidEvent:
        pass


@pytest.mark.parametrize(
    "message",
    [
        {"kind": "changes", "changes": []},
        {"kind": "changes", "changes": [["a" * 64, "2.25.1"]]},
        {"kind": "changes", "changes": [["A" * 64, "2.25.1", "current"]]},
        {"kind": "changes", "changes": [["a" * 64, "2.25.1", "approved"]]},
        {"kind": "changes", "changes": [["a" * 64, "2.25.1", "current"]] * 257},
        {"kind": "holdings", "epoch": 0, "part": 0, "patients": []},
        {"kind": "holdings", "epoch": 1, "part": 0, "patients": [["a" * 64, []]]},
        {"kind": "holdings", "epoch": 1, "part": 0, "patients": [[NIN, ["2.25.1"]]]},
        {"kind": "backfill-end", "epoch": 1, "parts": 0, "entries": 0},  # seq 1 is not after 1
        {"kind": "backfill-begin", "seq": 0},
    ],
)
def test_a_malformed_change_or_backfill_is_refused(message: dict[str, object]) -> None:
    with pytest.raises(InvalidEvent):
        decode_event(orjson.dumps({"v": 1, "hcid": HCID.urn, "seq": 1, **message}))


def test_holdings_may_be_large_other_events_may_not() -> None:
    many = tuple((f"{n:064x}", (f"2.25.{n}",)) for n in range(1500))
    holdings = Holdings(HCID, 1, 0, many)
    assert len(holdings.encode()) > 64 * 1024
    assert decode_event(holdings.encode()) == holdings
    with pytest.raises(InvalidEvent):
        decode_event(orjson.dumps({**GOOD, "entry": "2.25.1", "pad": "x" * 2000}))


def test_a_stream_purged_or_created_anew_is_noticed() -> None:
    earlier = StreamPosition("2026-12-02T10:00:00", 1, 500)
    assert not StreamPosition("2026-12-02T10:00:00", 1, 800).lost_since(earlier)  # grew
    assert StreamPosition("2026-12-02T10:00:00", 501, 500).lost_since(earlier)  # purged
    assert StreamPosition("2026-12-02T11:00:00", 1, 800).lost_since(earlier)  # created anew
    assert StreamPosition("2026-12-02T10:00:00", 1, 20).lost_since(earlier)  # went back
    empty = StreamPosition("2026-12-02T10:00:00", 0, 0)
    assert not StreamPosition("2026-12-02T10:00:00", 1, 3).lost_since(empty)
