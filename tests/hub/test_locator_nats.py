"""The locator end to end: real document sources and hub on 127.0.0.1, the machine's NATS.

What issue 12 asks to be shown: a document registered in a region is found through the hub
within 1 s; a region whose events stop is asked anyway; a restarted hub loses nothing that
matters (it rebuilds the index from the durable stream).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats as nats_client
import pytest
from structlog.testing import capture_logs

from onerecord.domain import DocumentEntry
from onerecord.hub.app import create_hub_app
from onerecord.hub.settings import HubSettings
from onerecord.source.app import create_app
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.settings import SourceSettings
from onerecord.source.store import SqlDocumentStore
from tests.conftest import NatsStream
from tests.factories import SYNTHETIC_FNR, make_entry, sample_pdf, synthetic_nin
from tests.hub.test_integration import (
    PATIENT,
    RealRegion,
    documents,
    outcome_issues,
    write_directory,
)
from tests.support.servers import free_port, serve_in_thread

KEY = "locator-integration-test-key"
SILENCE_S = 1.0
OTHER_PATIENT = {"patient.identifier": "urn:oid:2.16.578.1.12.4.1.4.1|13116900216"}


def start_source(
    stack: ExitStack, tmp_path: Path, number: int, nats: NatsStream | None, port: int
) -> RealRegion:
    hcid = f"urn:oid:2.16.578.1.12.4.5.100.{number}"
    locator: dict[str, Any] = (
        {
            "locator_nats_url": nats.url,
            "locator_stream": nats.stream,
            "locator_subject_prefix": nats.subject_prefix,
            "locator_patient_key": KEY,
            "locator_heartbeat_s": 0.1,
        }
        if nats
        else {}
    )
    settings = SourceSettings(
        region=f"Region {number}",
        home_community_id=hcid,
        repository_unique_id=f"2.16.578.1.12.4.5.100.{number}.2",
        db_url=f"sqlite:///{tmp_path / f'r{number}.db'}",
        content_dir=tmp_path / f"content{number}",
        public_base_url=f"http://127.0.0.1:{port}",
        dev_mode=True,
        dev_open_access=True,
        **locator,
    )
    url = stack.enter_context(serve_in_thread(create_app(settings), port=port))
    return RealRegion(f"Region {number}", hcid, f"{url}/fhir")


def start_hub(
    stack: ExitStack, directory: Path, nats: NatsStream, *, stream_check_s: float = 2.0
) -> str:
    port = free_port()
    settings = HubSettings(
        directory_file=directory,
        public_base_url=f"http://127.0.0.1:{port}",
        locator_nats_url=nats.url,
        locator_stream=nats.stream,
        locator_subject_prefix=nats.subject_prefix,
        locator_patient_key=KEY,
        locator_max_silence_s=SILENCE_S,
        locator_backfill_request_s=0.5,
        locator_stream_check_s=stream_check_s,
    )
    url = stack.enter_context(serve_in_thread(create_hub_app(settings), port=port))
    return f"{url}/fhir"


def purge(nats: NatsStream) -> None:
    """Remove every event from the test's stream, as an operator's mistake would."""

    async def run() -> None:
        client = await nats_client.connect(nats.url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await client.jetstream().purge_stream(nats.stream)
        finally:
            await client.close()

    asyncio.run(run())


def search(hub: str, params: dict[str, str] = PATIENT) -> dict[str, Any]:
    r = httpx.get(f"{hub}/DocumentReference", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def not_asked(bundle: dict[str, Any]) -> set[str]:
    """The regions the answer says the locator did not ask."""
    return {
        hcid
        for hcid, issue in outcome_issues(bundle).items()
        if issue["severity"] == "information"
        and issue["details"]["coding"][0]["code"] == "not-asked"
    }


def found(bundle: dict[str, Any]) -> set[str]:
    return {d["masterIdentifier"]["value"] for d in documents(bundle)}


def until(check: Callable[[], bool], timeout_s: float) -> float:
    """Poll `check` until it holds; return the seconds it took, or fail after `timeout_s`."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout_s:
            pytest.fail(f"not within {timeout_s} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def publish_one(region: RealRegion, patient: str = SYNTHETIC_FNR) -> str:
    pdf = sample_pdf()
    entry = make_entry(content=pdf, patient_id=patient)
    region.publish([(entry, pdf)])
    return entry.unique_id.urn


@dataclass
class Network:
    """Three regions publishing to the test's stream, each stoppable, and their directory."""

    tmp_path: Path
    nats: NatsStream
    ports: list[int]
    stacks: list[ExitStack]
    regions: list[RealRegion]
    directory: Path

    def restart_region(self, index: int, *, locator: bool) -> None:
        """Stop region `index` and start it again on the same port, registry and content."""
        self.stacks[index].close()
        self.stacks[index] = ExitStack()
        nats = self.nats if locator else None
        self.regions[index] = start_source(
            self.stacks[index], self.tmp_path, index + 1, nats, self.ports[index]
        )


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


@pytest.fixture
def network(tmp_path: Path, nats_stream: NatsStream) -> Iterator[Network]:
    ports = [free_port() for _ in range(3)]
    stacks = [ExitStack() for _ in range(3)]
    try:
        regions = [
            start_source(stacks[n], tmp_path, n + 1, nats_stream, ports[n]) for n in range(3)
        ]
        directory = write_directory(
            tmp_path / "regions.json", [(r.name, r.hcid, r.fhir, None) for r in regions]
        )
        yield Network(tmp_path, nats_stream, ports, stacks, regions, directory)
    finally:
        for s in stacks:
            s.close()


def test_a_registered_document_is_found_through_the_hub_within_a_second(
    stack: ExitStack, network: Network
) -> None:
    r1, r2, r3 = network.regions
    first = publish_one(r1)
    hub = start_hub(stack, network.directory, network.nats)
    # Once the index has caught up and heard every region, only Region 1 is asked.
    until(lambda: not_asked(search(hub)) == {r2.hcid, r3.hcid}, 5.0)
    assert found(search(hub)) == {first}

    second = publish_one(r2)
    took = until(lambda: found(search(hub)) == {first, second}, 1.0)
    assert took < 1.0
    bundle = search(hub)
    assert not_asked(bundle) == {r3.hcid}
    issue = outcome_issues(bundle)[r3.hcid]
    assert issue["code"] == "informational"
    assert "not asked" in issue["diagnostics"]
    # A count asks the same regions.
    counted = search(hub, {**PATIENT, "_summary": "count"})
    assert counted["total"] == 2
    assert not_asked(counted) == {r3.hcid}
    # A patient the index does not know is asked everywhere, and nobody is reported skipped.
    assert not_asked(search(hub, OTHER_PATIENT)) == set()


def test_a_region_whose_events_stop_is_asked_anyway(stack: ExitStack, network: Network) -> None:
    r1, r2, r3 = network.regions
    first = publish_one(r1)
    hub = start_hub(stack, network.directory, network.nats)
    until(lambda: not_asked(search(hub)) == {r2.hcid, r3.hcid}, 5.0)

    # Region 2 comes back without the locator: its events and heartbeats stop, and it
    # registers a document the index never hears of.
    network.restart_region(1, locator=False)
    unannounced = publish_one(network.regions[1])
    time.sleep(SILENCE_S + 0.3)
    bundle = search(hub)
    assert found(bundle) == {first, unannounced}
    assert not_asked(bundle) == {r3.hcid}


def test_a_restarted_hub_rebuilds_the_index_from_the_stream(network: Network) -> None:
    r1, r2, r3 = network.regions
    first, second = publish_one(r1), publish_one(r2)
    with ExitStack() as first_hub:
        hub = start_hub(first_hub, network.directory, network.nats)
        until(lambda: not_asked(search(hub)) == {r3.hcid}, 5.0)
    # The first hub is gone with its index. Registrations go on meanwhile.
    third = publish_one(r2)
    publish_one(r3, patient="13116900216")  # Region 3 holds others, never this patient
    with ExitStack() as second_hub:
        hub = start_hub(second_hub, network.directory, network.nats)
        # Every answer, from the first one on, holds every document (asked everywhere until the
        # index is rebuilt); once rebuilt from the stream, the index spares Region 3 again.
        assert found(search(hub)) == {first, second, third}
        until(
            lambda: (
                not_asked(search(hub)) == {r3.hcid} and found(search(hub)) == {first, second, third}
            ),
            5.0,
        )
        assert not_asked(search(hub, OTHER_PATIENT)) == {r1.hcid, r2.hcid}


def test_without_nats_every_region_is_asked_and_the_hub_says_so(
    stack: ExitStack, tmp_path: Path
) -> None:
    nowhere = NatsStream(f"nats://127.0.0.1:{free_port()}", "NOWHERE", "nowhere.locator")
    with capture_logs() as logs:
        regions = [start_source(stack, tmp_path, n, nowhere, free_port()) for n in (1, 2)]
        directory = write_directory(
            tmp_path / "regions.json", [(r.name, r.hcid, r.fhir, None) for r in regions]
        )
        hub = start_hub(stack, directory, nowhere)
    # The publish never fails for want of NATS, and every region is asked.
    first = publish_one(regions[0])
    bundle = search(hub)
    assert found(bundle) == {first}
    assert not_asked(bundle) == set()
    events = {(e["event"], e.get("asking")) for e in logs}
    assert ("hub.locator.unavailable", "every region") in events
    assert ("source.locator.unavailable", None) in events


def test_with_the_locator_off_the_hub_says_it_asks_every_region(
    stack: ExitStack, tmp_path: Path
) -> None:
    region = start_source(stack, tmp_path, 1, None, free_port())
    directory = write_directory(
        tmp_path / "regions.json", [(region.name, region.hcid, region.fhir, None)]
    )
    with capture_logs() as logs:
        settings = HubSettings(directory_file=directory)
        stack.enter_context(serve_in_thread(create_hub_app(settings)))
    assert {"event": "hub.locator.off", "asking": "every region", "log_level": "info"} in logs


# --- backfill: the index rebuilds from the regions after a loss -----------------------------


def bulk_load(db: Path, entries: list[DocumentEntry]) -> None:
    """Fill a region's registry directly, as a benchmark or an import does (no events)."""

    async def load() -> None:
        engine = make_engine(f"sqlite:///{db}")
        try:
            await upgrade(engine)
            await SqlDocumentStore(engine).bulk_load(entries)
        finally:
            await engine.dispose()

    asyncio.run(load())


def by_patient(n: int) -> dict[str, str]:
    return {"patient.identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{synthetic_nin(n)}"}


def test_a_region_bulk_loaded_before_its_locator_starts_is_skippable_after_backfill(
    stack: ExitStack, network: Network
) -> None:
    r1, r2, r3 = network.regions
    # Region 1 was filled before its locator was switched on: 40 patients, 3 entries each.
    network.stacks[0].close()
    loaded = {n: [make_entry(patient_id=synthetic_nin(n)) for _ in range(3)] for n in range(1, 41)}
    bulk_load(network.tmp_path / "r1.db", [e for entries in loaded.values() for e in entries])
    with capture_logs() as logs:
        network.restart_region(0, locator=True)
        hub = start_hub(stack, network.directory, network.nats)
        # The hub knows nothing of Region 1's entries until the backfill; then it spares the
        # others for every loaded patient, and finds every loaded document.
        until(lambda: not_asked(search(hub, by_patient(1))) == {r2.hcid, r3.hcid}, 10.0)
    assert any(e["event"] == "locator.backfill.done" and e["entries"] == 120 for e in logs)
    for n, entries in loaded.items():
        bundle = search(hub, by_patient(n))
        assert found(bundle) == {e.unique_id.urn for e in entries}, n
        assert not_asked(bundle) == {r2.hcid, r3.hcid}
    # A registration after the backfill is found within a second, as with any region.
    later = publish_one(network.regions[0], patient=synthetic_nin(1))
    until(lambda: later in found(search(hub, by_patient(1))), 1.0)


def test_a_purged_stream_is_published_again_and_the_hub_rebuilds(
    stack: ExitStack, network: Network
) -> None:
    r1, r2, r3 = network.regions
    first, second = publish_one(r1), publish_one(r2, patient=synthetic_nin(5))
    hub = start_hub(stack, network.directory, network.nats, stream_check_s=0.2)
    until(lambda: not_asked(search(hub)) == {r2.hcid, r3.hcid}, 5.0)

    with capture_logs() as logs:
        purge(network.nats)
        answers: list[dict[str, Any]] = []

        def settled() -> bool:
            answers.append(search(hub))
            return any(e["event"] == "hub.locator.reset" for e in logs) and not_asked(
                answers[-1]
            ) == {r2.hcid, r3.hcid}

        until(settled, 10.0)
    # No answer ever missed a document while the hub started over.
    assert all(found(a) == {first} for a in answers)
    events = [e["event"] for e in logs]
    assert "hub.locator.reset" in events
    assert events.count("locator.backfill.done") >= 2  # Regions 1 and 2 hold entries
    assert not_asked(search(hub, by_patient(5))) == {r1.hcid, r3.hcid}
    assert found(search(hub, by_patient(5))) == {second}
