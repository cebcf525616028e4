"""The national benchmark population: its shape, its entries per region, its determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from onerecord.synth.national import NationalShape, national_population, region_entries
from onerecord.synth.numbers import ensure_synthetic
from onerecord.synth.regions import DEFAULT_REGIONS


def test_the_population_has_the_shape_it_states() -> None:
    population = national_population(20_000, seed=4)
    groups = {k: len(v) for k, v in population.by_region_count().items()}
    people = len(population.people)
    holders = people - groups[0]
    assert groups[0] / people == pytest.approx(0.05, abs=0.01)
    assert groups[1] / holders == pytest.approx(0.80, abs=0.02)
    assert groups[2] / holders == pytest.approx(0.15, abs=0.02)
    assert (groups[3] + groups[4]) / holders == pytest.approx(0.05, abs=0.015)
    # Homes spread evenly: each region has about entries / 10 holders.
    for region in DEFAULT_REGIONS:
        assert len(population.holders(region.slug)) == pytest.approx(2_000, rel=0.1)


def test_every_person_is_synthetic_unique_and_holds_documents_at_home_first() -> None:
    population = national_population(5_000, seed=9)
    nins = [p.nin.value for p in population.people]
    assert len(set(nins)) == len(nins)
    for person in population.people:
        ensure_synthetic(person.nin)
        assert len(set(person.regions)) == len(person.regions)
        if person.regions:
            assert person.regions[0] == person.home


def test_region_entries_cover_every_holder_and_no_one_else() -> None:
    population = national_population(3_000, seed=2)
    region = DEFAULT_REGIONS[2]
    entries = list(region_entries(population, region, 3_000, seed=5))
    assert len(entries) == 3_000
    assert len({e.unique_id for e in entries}) == 3_000
    per_patient = Counter(e.patient_id.value for e in entries)
    assert set(per_patient) == {n.value for n in population.holders(region.slug)}
    assert min(per_patient.values()) >= 1


def test_the_same_seed_gives_the_same_population_and_entries() -> None:
    a, b = national_population(2_000, seed=7), national_population(2_000, seed=7)
    assert a == b
    assert national_population(2_000, seed=8) != a
    region = DEFAULT_REGIONS[0]
    first = [e.patient_id for e in region_entries(a, region, 2_000, seed=1)]
    assert first == [e.patient_id for e in region_entries(b, region, 2_000, seed=1)]


def test_too_few_entries_for_the_holders_are_refused() -> None:
    population = national_population(2_000, seed=1)
    region = DEFAULT_REGIONS[1]
    with pytest.raises(ValueError, match="cannot cover"):
        list(region_entries(population, region, 10, seed=1))


def test_a_shape_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError):
        NationalShape(region_weights=(0, 0))
    with pytest.raises(ValueError):
        NationalShape(no_documents_share=1.0)
    assert NationalShape().label == "80-15-3-2_none5_k10"
    assert NationalShape().mean_regions == pytest.approx(1.27)
