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


def test_every_staff_attestation_of_the_demo_agrees_with_hpr_employment_and_enhetsregisteret() -> (
    None
):
    from onerecord.demo import staff_manifest
    from onerecord.domain import NationalIdentityNumber
    from onerecord.search_client import StaffMember, practitioner_attestation
    from onerecord.trust.attestation import enrich, parse_authorization_details

    population = generate_population(seed=3, citizens=5, reference_date=datetime.now(UTC).date())
    registers = PopulationRegisters(population)
    for key, manifest in staff_manifest(population).items():
        staff = StaffMember.from_manifest({**manifest, "category": manifest["category"] or "-"})
        details = practitioner_attestation(staff, patient_digest="a" * 43)
        if manifest["category"] is None:  # no HPR category: no authorization is sent (ATT-29)
            del details["practitioner"]["authorization"]
        parsed = parse_authorization_details(details, registers=registers)
        enrich(parsed, registers, NationalIdentityNumber(str(manifest["nin"])))
        assert parsed.practitioner.point_of_care.id == manifest["point_of_care"], key


def test_a_municipal_nurses_legal_entity_is_the_municipality_in_enhetsregisteret() -> None:
    population = generate_population(seed=3, citizens=5, reference_date=datetime.now(UTC).date())
    registers = PopulationRegisters(population)
    unit = next(o for o in population.organisations if o.legal_entity != o.orgnr)
    municipality = registers.organisation(unit.legal_entity.value)
    assert municipality is not None and municipality.name.endswith("kommune")
    assert municipality.legal_entity == unit.legal_entity.value
    nurse = next(p for p in population.practitioners if p.organisation == unit.orgnr)
    record = registers.practitioner(nurse.nin.value)
    assert record is not None and record.employments == (unit.orgnr.value,)
