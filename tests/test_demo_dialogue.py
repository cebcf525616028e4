"""The demo's GP offices (demo_dialogue.py): everyone on their fastlege's list, with slots,
medications and one hospital appointment; a second run changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from onerecord.demo_dialogue import seed_dialogue
from onerecord.dialogue import Service, VisitMode
from onerecord.dialogue.database import make_engine
from onerecord.dialogue.store import SqlDialogueStore
from onerecord.synth.demographics import general_practitioner
from onerecord.synth.population import generate_population

TODAY = date(2026, 12, 3)


def test_seed_puts_everyone_on_their_gps_list(tmp_path: Path) -> None:
    population = generate_population(seed=1, citizens=3, reference_date=TODAY)
    url = f"sqlite:///{tmp_path / 'dialogue.db'}"

    async def run() -> None:
        first = await seed_dialogue(url, population, today=TODAY)
        again = await seed_dialogue(url, population, today=TODAY)
        assert again.slots == 0 and again.people == first.people  # nothing added twice
        assert first.vaccine_slots == 48 and again.vaccine_slots == 0
        engine = make_engine(url)
        try:
            store = SqlDialogueStore(engine)
            for citizen in population.citizens:
                gp = general_practitioner(population, citizen)
                assert gp is not None
                entry = await store.list_entry(citizen.nin.value)
                assert entry is not None and entry.office == gp.office.orgnr.value
                assert entry.gp_name == gp.practitioner.name
                assert len(await store.medications(citizen.nin.value)) == 2
                office = await store.office(entry.office)
                assert office is not None and office.services == frozenset(Service)
                assert office.information
                slots = await store.slots(
                    entry.office,
                    free_from=datetime(2026, 12, 3, tzinfo=UTC),
                    service=Service.APPOINTMENT_BOOKING,
                )
                assert {s.mode for s in slots} == {VisitMode.IN_PERSON, VisitMode.VIDEO}
                assert all(s.start.date() > TODAY for s in slots)
            # One office (the adult's) holds two vaccination days of 5-minute slots.
            adult_gp = general_practitioner(population, population.cast["adult"])
            assert adult_gp is not None
            vaccine = await store.slots(
                adult_gp.office.orgnr.value,
                free_from=datetime(2026, 12, 3, tzinfo=UTC),
                service=Service.FLU_VACCINE,
            )
            assert len(vaccine) == 48 and {s.mode for s in vaccine} == {VisitMode.IN_PERSON}
            assert {s.end - s.start for s in vaccine} == {timedelta(minutes=5)}
            assert len({s.start.date() for s in vaccine}) == 2
            adult = population.cast["adult"].nin.value
            booked = await store.appointments(adult)
            assert len(booked) == 1 and booked[0].note and "Poliklinikk" in booked[0].note
        finally:
            await engine.dispose()

    asyncio.run(run())
