"""The synthetic population as the STS's registers, and `onerecord sts serve`'s loader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import typer

from onerecord.sts.cli import load_population
from onerecord.sts.registers import PopulationRegisters
from onerecord.sts.representation import representations_for
from onerecord.synth.dataset import population_to_json
from onerecord.synth.population import generate_population
from onerecord.trust.principal import RelationKind


def test_population_file_loads_as_registers(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    population = generate_population(seed=3, citizens=5, reference_date=today)
    path = tmp_path / "population.json"
    path.write_bytes(orjson.dumps(population_to_json(population)))
    registers = load_population(path)
    doctor = population.staff["doctor"]
    record = registers.practitioner(doctor.nin.value)
    assert record is not None and record.hpr == doctor.hpr and record.categories == ("LE",)
    assert registers.practitioner(population.cast["adult"].nin.value) is None
    org = registers.organisation(doctor.organisation.value)
    assert org is not None and org.helsenett_member
    protected = registers.person(population.cast["protected6"].nin.value)
    assert protected is not None and protected.address_protection == "6"
    assert registers.person("00000000000") is None
    parent = population.cast["parent"].nin.value
    reps = representations_for(parent, registers, today)
    assert (population.cast["child11"].nin, RelationKind.PARENT) in {
        (r.person, r.relation) for r in reps
    }
    assert population.cast["child13"].nin not in {r.person for r in reps}
    holder = population.cast["proxy_holder"].nin.value
    assert [g for g, _ in registers.proxies_held(holder)] == [
        population.cast["proxy_giver"].nin.value
    ]


def test_missing_population_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(typer.BadParameter):
        load_population(tmp_path / "nope.json")


def test_expired_proxy_is_not_held() -> None:
    today = datetime.now(UTC).date()
    population = generate_population(seed=3, citizens=0, reference_date=today)
    later = PopulationRegisters(population, today=lambda: today + timedelta(days=5 * 366))
    assert later.proxies_held(population.cast["proxy_holder"].nin.value) == []
