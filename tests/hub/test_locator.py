"""The locator's index and its safety rules (hub/locator.py)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import NationalIdentityNumber
from onerecord.events import (
    BackfillBegin,
    BackfillEnd,
    EntryStatus,
    Holdings,
    MemoryEventBus,
    RegionHeartbeat,
    RegionStreamStart,
    RegistryEvent,
    patient_key,
)
from onerecord.hub.directory import Region
from onerecord.hub.locator import AskReason, LocatorIndex
from onerecord.hub.locator_feed import Locator
from tests.hub.conftest import HCID_HSO, HCID_MIDT, HCID_NORD, HCID_VEST, make_region

P1 = "1" * 64
P2 = "2" * 64
SILENCE = 5.0


def regions() -> tuple[Region, ...]:
    return (
        make_region(HCID_HSO, name="Helse Sør-Øst"),
        make_region(HCID_VEST, name="Helse Vest"),
        make_region(HCID_MIDT, name="Helse Midt-Norge"),
    )


def event(region: Region, seq: int, patient: str, entry: str, status: EntryStatus) -> RegistryEvent:
    return RegistryEvent(region.home_community_id, seq, patient, entry, status)


def index_with_patient_in_first_region(now: float = 0.0) -> tuple[LocatorIndex, tuple[Region, ...]]:
    """Every region heard from and caught up; P1 has one document in the first region."""
    rs = regions()
    index = LocatorIndex(max_silence_s=SILENCE, ready=True)
    for r in rs:
        index.apply(RegionStreamStart(r.home_community_id, 1, 0), now)
    index.apply(event(rs[0], 2, P1, "2.25.1", EntryStatus.CURRENT), now)
    return index, rs


def asked(index: LocatorIndex, rs: tuple[Region, ...], patient: str, now: float) -> dict[str, str]:
    return {r.hcid: reason.value for r, reason in index.plan(patient, rs, now).ask}


def test_only_the_regions_holding_the_patient_are_asked() -> None:
    index, rs = index_with_patient_in_first_region()
    plan = index.plan(P1, rs, 1.0)
    assert plan.regions == (rs[0],)
    assert plan.skip == rs[1:]
    assert plan.ask[0][1] is AskReason.HOLDS_DOCUMENTS


def test_a_patient_unknown_to_the_index_is_asked_everywhere() -> None:
    index, rs = index_with_patient_in_first_region()
    plan = index.plan(P2, rs, 1.0)
    assert plan.regions == rs
    assert plan.skip == ()
    assert {reason for _, reason in plan.ask} == {AskReason.PATIENT_UNKNOWN}


def test_everyone_is_asked_until_the_index_has_replayed_the_stream() -> None:
    index, rs = index_with_patient_in_first_region()
    index.ready = False
    assert asked(index, rs, P1, 1.0) == dict.fromkeys((r.hcid for r in rs), "index-rebuilding")


def test_a_region_never_heard_from_is_asked() -> None:
    index, rs = index_with_patient_in_first_region()
    newcomer = make_region(HCID_NORD, name="Helse Nord")
    reasons = asked(index, (*rs, newcomer), P1, 1.0)
    assert reasons[newcomer.hcid] == "region-unconfirmed"
    assert rs[1].hcid not in reasons


def test_a_region_whose_events_are_behind_its_heartbeat_is_asked() -> None:
    index, rs = index_with_patient_in_first_region()
    index.heartbeat(RegionHeartbeat(rs[1].home_community_id, 4), 1.0)
    assert asked(index, rs, P1, 1.0)[rs[1].hcid] == "index-behind"
    # …and skipped again once its events have arrived.
    for seq in (2, 3, 4):
        index.apply(event(rs[1], seq, P2, f"2.25.{seq}", EntryStatus.CURRENT), 1.1)
    assert rs[1].hcid not in asked(index, rs, P1, 1.2)


def test_a_region_newer_than_the_index_is_asked_for_good() -> None:
    index, rs = index_with_patient_in_first_region()
    index.apply(event(rs[1], 3, P2, "2.25.3", EntryStatus.CURRENT), 1.0)  # 2 was missed
    assert asked(index, rs, P1, 1.0)[rs[1].hcid] == "events-missed"
    index.apply(event(rs[1], 2, P2, "2.25.2", EntryStatus.CURRENT), 1.1)
    index.apply(event(rs[1], 4, P2, "2.25.4", EntryStatus.CURRENT), 1.2)
    assert asked(index, rs, P1, 1.2)[rs[1].hcid] == "events-missed"


def test_a_region_whose_events_stop_is_asked() -> None:
    index, rs = index_with_patient_in_first_region(now=0.0)
    index.heartbeat(RegionHeartbeat(rs[0].home_community_id, 2), SILENCE)
    index.heartbeat(RegionHeartbeat(rs[2].home_community_id, 1), SILENCE)
    reasons = asked(index, rs, P1, SILENCE + 0.5)
    assert reasons == {rs[0].hcid: "holds-documents", rs[1].hcid: "events-stopped"}


def test_a_redelivered_event_changes_nothing() -> None:
    index, rs = index_with_patient_in_first_region()
    index.apply(event(rs[0], 2, P1, "2.25.1", EntryStatus.CURRENT), 1.0)
    assert asked(index, rs, P1, 1.0) == {rs[0].hcid: "holds-documents"}


def test_a_superseded_entry_still_counts_a_deleted_one_does_not() -> None:
    index, rs = index_with_patient_in_first_region()
    index.apply(event(rs[0], 3, P1, "2.25.1", EntryStatus.SUPERSEDED), 1.0)
    assert index.holds(P1, rs[0].hcid)
    index.apply(event(rs[0], 4, P1, "2.25.1", EntryStatus.DELETED), 1.0)
    assert not index.holds(P1, rs[0].hcid)
    # Nobody holds P1 now: the index no longer knows the patient, so everyone is asked.
    plan = index.plan(P1, rs, 1.0)
    assert plan.regions == rs
    assert {reason for _, reason in plan.ask} == {AskReason.PATIENT_UNKNOWN}


def test_a_region_whose_stream_began_after_its_first_registrations_is_always_asked() -> None:
    index, rs = index_with_patient_in_first_region()
    late = make_region(HCID_NORD, name="Helse Nord")
    index.apply(RegionStreamStart(late.home_community_id, 1, 250_000), 1.0)
    index.heartbeat(RegionHeartbeat(late.home_community_id, 1), 1.0)
    assert asked(index, (*rs, late), P1, 1.0)[late.hcid] == "history-incomplete"


def test_a_restart_that_counts_more_entries_than_the_stream_named_is_noticed() -> None:
    """An event lost just before a region's process stopped shows in the next start's count."""
    index, rs = index_with_patient_in_first_region()
    index.apply(RegionStreamStart(rs[0].home_community_id, 3, 1), 1.0)  # as named: still trusted
    index.heartbeat(RegionHeartbeat(rs[1].home_community_id, 1), 1.0)
    assert index.plan(P1, rs, 1.0).regions == (rs[0],)
    index.apply(RegionStreamStart(rs[1].home_community_id, 2, 1), 1.0)  # one never named
    assert asked(index, rs, P1, 1.0)[rs[1].hcid] == "history-incomplete"


def test_a_region_heard_only_by_heartbeat_is_asked() -> None:
    """A stream without its start event (lost, or an older publisher) is not trusted."""
    index, rs = index_with_patient_in_first_region()
    late = make_region(HCID_NORD, name="Helse Nord")
    index.heartbeat(RegionHeartbeat(late.home_community_id, 0), 1.0)
    assert asked(index, (*rs, late), P1, 1.0)[late.hcid] == "history-incomplete"


# --- the invariant, over any interleaving of events, losses and heartbeats ------------------

_step = st.tuples(
    st.integers(min_value=0, max_value=2),  # region
    st.sampled_from([P1, P2]),
    st.integers(min_value=0, max_value=3),  # entry
    st.sampled_from(EntryStatus),
    st.booleans(),  # delivered to the index (False: lost on the way)
    st.booleans(),  # a heartbeat follows
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=40), st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_a_skipped_region_never_holds_the_patient(
    steps: list[tuple[int, str, int, EntryStatus, bool, bool]],
    starts: tuple[bool, bool, bool],
) -> None:
    """Whatever is lost, a region is skipped only if it holds nothing about the patient.

    The index can know only what a region has announced (an event or a heartbeat): a change
    not yet announced is the heartbeat interval's lag, so the check covers every region whose
    latest change has been announced, and every region after a final round of heartbeats.
    """
    rs = regions()
    index = LocatorIndex(max_silence_s=SILENCE, ready=True)
    truth: dict[tuple[str, str], set[str]] = {}
    sequence = dict.fromkeys((r.hcid for r in rs), 1)
    announced = dict.fromkeys((r.hcid for r in rs), 0)
    for r, delivered in zip(rs, starts, strict=True):
        if delivered:
            index.apply(RegionStreamStart(r.home_community_id, 1, 0), 1.0)
            announced[r.hcid] = 1

    def check() -> None:
        for who in (P1, P2):
            for skipped in index.plan(who, rs, 1.0).skip:
                if announced[skipped.hcid] == sequence[skipped.hcid]:
                    assert not truth.get((skipped.hcid, who)), (skipped.name, who)

    for region_no, patient, entry_no, status, delivered, beat in steps:
        region = rs[region_no]
        sequence[region.hcid] += 1
        entry = f"2.25.{region_no}.{entry_no}"
        held = truth.setdefault((region.hcid, patient), set())
        if status is EntryStatus.DELETED:
            held.discard(entry)
        else:
            held.add(entry)
        if delivered:
            index.apply(event(region, sequence[region.hcid], patient, entry, status), 1.0)
            announced[region.hcid] = sequence[region.hcid]
        if beat:
            index.heartbeat(RegionHeartbeat(region.home_community_id, sequence[region.hcid]), 1.0)
            announced[region.hcid] = sequence[region.hcid]
        check()
    for region in rs:
        index.heartbeat(RegionHeartbeat(region.home_community_id, sequence[region.hcid]), 1.0)
        announced[region.hcid] = sequence[region.hcid]
    check()


# --- the index fed from a bus (hub/locator_feed.py) ----------------------------------------


@pytest.mark.anyio
async def test_the_feed_rebuilds_the_index_before_anything_is_skipped() -> None:
    key = b"k" * 32
    nin = NationalIdentityNumber("13116900216")
    rs = regions()
    bus = MemoryEventBus()
    for n, r in enumerate(rs):
        await bus.append(f"e{n}", RegionStreamStart(r.home_community_id, 1, 0).encode(), after=0)
    digest = patient_key(nin.value, key)
    await bus.append("e0", event(rs[0], 2, digest, "2.25.2", EntryStatus.CURRENT).encode(), after=1)
    bus.events.append(("e", b"not an event"))  # dropped and logged, never applied
    locator = Locator(key=key, max_silence_s=SILENCE, clock=lambda: 1.0)
    assert locator.plan(nin, rs).skip == ()  # nothing replayed yet: every region is asked
    assert {why for _, why in locator.plan(nin, rs).ask} == {AskReason.REBUILDING}
    await locator.start(bus, subject_prefix="p")
    for r in rs[1:]:
        await bus.announce(
            f"p.heartbeat.{r.hcid}", RegionHeartbeat(r.home_community_id, 1).encode()
        )
    plan = locator.plan(nin, rs)
    assert plan.regions == (rs[0],)
    assert plan.skip == rs[1:]


# --- backfill: a region's new view of itself ------------------------------------------------


def backfill(
    index: LocatorIndex,
    region: Region,
    begin: int,
    parts: list[list[tuple[str, list[str]]]],
    *,
    end: int | None = None,
    told_parts: int | None = None,
    told_entries: int | None = None,
    now: float = 1.0,
) -> None:
    """Apply a whole backfill: its begin at `begin`, its parts, its end right after (or `end`)."""
    hcid = region.home_community_id
    index.apply(BackfillBegin(hcid, begin), now)
    for n, part in enumerate(parts):
        patients = tuple((p, tuple(u)) for p, u in part)
        index.apply(Holdings(hcid, begin, n, patients), now)
    entries = sum(len(u) for part in parts for _, u in part)
    index.apply(
        BackfillEnd(
            hcid,
            end or begin + 1,
            begin,
            len(parts) if told_parts is None else told_parts,
            entries if told_entries is None else told_entries,
        ),
        now,
    )


def test_a_backfill_confirms_a_region_whose_history_was_not_in_the_stream() -> None:
    index, rs = index_with_patient_in_first_region()
    late = make_region(HCID_NORD, name="Helse Nord")
    index.apply(RegionStreamStart(late.home_community_id, 1, 3), 1.0)  # 3 entries never named
    assert asked(index, (*rs, late), P1, 1.0)[late.hcid] == "history-incomplete"
    assert index.regions[late.hcid].needs_backfill(1.0, 60.0)
    index.apply(BackfillBegin(late.home_community_id, 2), 1.0)
    assert asked(index, (*rs, late), P1, 1.0)[late.hcid] == "backfill-under-way"
    assert not index.regions[late.hcid].needs_backfill(1.0, 60.0)
    index.apply(Holdings(late.home_community_id, 2, 0, ((P2, ("a", "b")),)), 1.0)
    index.apply(Holdings(late.home_community_id, 2, 1, ((P1, ("c",)),)), 1.0)
    index.apply(BackfillEnd(late.home_community_id, 3, 2, 2, 3), 1.0)
    assert asked(index, (*rs, late), P1, 1.0) == {
        rs[0].hcid: "holds-documents",
        late.hcid: "holds-documents",
    }
    assert index.plan(P2, (*rs, late), 1.0).regions == (late,)
    # A later restart counting the same three entries keeps it confirmed.
    index.apply(RegionStreamStart(late.home_community_id, 4, 3), 1.0)
    assert index.regions[late.hcid].complete


def test_a_backfill_replaces_the_regions_earlier_view() -> None:
    index, rs = index_with_patient_in_first_region()
    backfill(index, rs[0], 3, [[(P2, ["2.25.9"])]])
    assert not index.holds(P1, rs[0].hcid)  # 2.25.1 is no longer held there
    assert index.holds(P2, rs[0].hcid)
    assert index.regions[rs[0].hcid].entries == 1


def test_a_backfill_with_a_part_missing_or_miscounted_leaves_the_region_asked() -> None:
    index, rs = index_with_patient_in_first_region()
    backfill(index, rs[1], 2, [[(P2, ["a"])]], told_parts=2)
    assert asked(index, rs, P2, 1.0)[rs[1].hcid] == "history-incomplete"
    backfill(index, rs[1], 4, [[(P2, ["a"])]], told_entries=2)
    assert asked(index, rs, P2, 1.0)[rs[1].hcid] == "history-incomplete"
    backfill(index, rs[1], 6, [[(P2, ["a"])]])
    assert asked(index, rs, P2, 1.0)[rs[1].hcid] == "holds-documents"


def test_a_registration_during_a_backfill_is_kept() -> None:
    """The registry is read after the begin: a registration it missed has its own event."""
    index, rs = index_with_patient_in_first_region()
    hcid = rs[1].home_community_id
    index.apply(BackfillBegin(hcid, 2), 1.0)
    index.apply(event(rs[1], 3, P1, "2.25.7", EntryStatus.CURRENT), 1.0)
    index.apply(Holdings(hcid, 2, 0, ((P2, ("a",)),)), 1.0)
    index.apply(BackfillEnd(hcid, 4, 2, 1, 1), 1.0)
    assert asked(index, rs, P1, 1.0) == {
        rs[0].hcid: "holds-documents",
        rs[1].hcid: "holds-documents",
    }
    assert index.regions[rs[1].hcid].entries == 2


def test_a_start_during_a_backfill_leaves_the_region_asked() -> None:
    """Another process's count taken during a backfill cannot be checked: backfill again."""
    index, rs = index_with_patient_in_first_region()
    hcid = rs[1].home_community_id
    index.apply(BackfillBegin(hcid, 2), 1.0)
    index.apply(RegionStreamStart(hcid, 3, 1), 1.0)
    index.apply(Holdings(hcid, 2, 0, ((P2, ("a",)),)), 1.0)
    index.apply(BackfillEnd(hcid, 4, 2, 1, 1), 1.0)
    assert asked(index, rs, P2, 1.0)[rs[1].hcid] == "history-incomplete"
    assert index.regions[rs[1].hcid].needs_backfill(1.0, 60.0)


def test_a_backfill_clears_a_gap_and_parts_of_an_older_backfill_are_ignored() -> None:
    index, rs = index_with_patient_in_first_region()
    hcid = rs[1].home_community_id
    index.apply(event(rs[1], 5, P2, "2.25.5", EntryStatus.CURRENT), 1.0)  # 2-4 missed
    assert asked(index, rs, P1, 1.0)[rs[1].hcid] == "events-missed"
    assert index.regions[rs[1].hcid].needs_backfill(1.0, 60.0)
    index.apply(BackfillBegin(hcid, 9), 1.0)
    index.apply(Holdings(hcid, 6, 0, ((P1, ("old",)),)), 1.0)  # an earlier, unfinished backfill
    index.apply(Holdings(hcid, 9, 0, ((P2, ("2.25.5",)),)), 1.0)
    index.apply(BackfillEnd(hcid, 10, 9, 1, 1), 1.0)
    assert rs[1].hcid not in asked(index, rs, P1, 1.0)
    assert asked(index, rs, P2, 1.0)[rs[1].hcid] == "holds-documents"


@pytest.mark.anyio
async def test_a_purged_stream_makes_the_hub_start_over_and_ask_for_backfills() -> None:
    key = b"k" * 32
    nin = NationalIdentityNumber("13116900216")
    digest = patient_key(nin.value, key)
    rs = regions()
    bus = MemoryEventBus()
    for n, r in enumerate(rs):
        await bus.append(f"e{n}", RegionStreamStart(r.home_community_id, 1, 0).encode(), after=0)
    await bus.append("e0", event(rs[0], 2, digest, "2.25.2", EntryStatus.CURRENT).encode(), after=1)
    requests: list[bytes] = []
    await bus.listen("p.backfill.", requests.append)
    locator = Locator(
        key=key,
        max_silence_s=SILENCE,
        clock=lambda: 1.0,
        backfill_request_s=0.0,
        stream_check_s=0.01,
    )
    await locator.start(bus, subject_prefix="p")

    async def beat(sequences: tuple[int, ...]) -> None:
        for r, seq in zip(rs, sequences, strict=True):
            await bus.announce(
                f"p.heartbeat.{r.hcid}", RegionHeartbeat(r.home_community_id, seq).encode()
            )

    await beat((2, 1, 1))
    assert locator.plan(nin, rs).skip == rs[1:]
    assert requests == []  # every region confirmed: nobody is asked to backfill
    bus.purge()
    while locator.resets == 0:
        await asyncio.sleep(0.01)
    # Started over from an empty stream: every region asked until each has backfilled.
    await beat((2, 1, 1))
    assert locator.plan(nin, rs).skip == ()
    await asyncio.sleep(0)
    assert len(requests) == 3
    for n, r in enumerate(rs):
        held = ((digest, ("2.25.2",)),) if n == 0 else ()
        await bus.append(f"e{n}", BackfillBegin(r.home_community_id, 3).encode(), after=0)
        await bus.store_many(
            f"e{n}.holdings", [Holdings(r.home_community_id, 3, 0, held).encode()] if held else []
        )
        last = await bus.last(f"e{n}")
        assert last is not None
        end = BackfillEnd(r.home_community_id, 4, 3, 1 if held else 0, len(held))
        await bus.append(f"e{n}", end.encode(), after=last.stream_sequence)
    await beat((4, 4, 4))
    assert locator.plan(nin, rs).skip == rs[1:]
    await locator.close()
