"""The locator's event schema: round trips, validation at the edge, the patient's keyed digest."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.domain import HomeCommunityId
from onerecord.events import (
    EntryStatus,
    InvalidEvent,
    RegionHeartbeat,
    RegionStreamStart,
    RegistryEvent,
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
