from __future__ import annotations

from datetime import date, timedelta

import pytest

from onerecord.domain import NationalIdentityNumber
from onerecord.synth.dataset import population_to_json
from onerecord.synth.population import (
    CAST_KEYS,
    STAFF_KEYS,
    AddressProtection,
    InvalidProxy,
    Population,
    Proxy,
    generate_population,
)

from .conftest import REFERENCE_DATE

PROMISED_AGES = {
    "adult": 40,
    "teen14": 14,
    "teen17": 17,
    "child10": 10,
    "child11": 11,
    "child11_apart": 11,
    "child12_yesterday": 12,
    "child13": 13,
    "proxy_giver": 40,
    "elderly": 85,
}


def test_same_seed_same_register() -> None:
    a = generate_population(seed=4, citizens=30, reference_date=REFERENCE_DATE)
    b = generate_population(seed=4, citizens=30, reference_date=REFERENCE_DATE)
    c = generate_population(seed=5, citizens=30, reference_date=REFERENCE_DATE)
    assert population_to_json(a) == population_to_json(b)
    assert population_to_json(a) != population_to_json(c)


def test_random_part_has_the_requested_size(population: Population) -> None:
    other = generate_population(seed=1, citizens=0, reference_date=REFERENCE_DATE)
    assert len(other.citizens) == len(CAST_KEYS)
    assert len(population.citizens) == len(CAST_KEYS) + 60


@pytest.mark.parametrize(
    "reference_date", [REFERENCE_DATE, date(2024, 3, 1), date(2025, 1, 1), date(2023, 12, 31)]
)
def test_cast_has_the_promised_ages(reference_date: date) -> None:
    pop = generate_population(seed=2, citizens=5, reference_date=reference_date)
    assert tuple(pop.cast) == CAST_KEYS
    for key, age in PROMISED_AGES.items():
        assert pop.cast[key].age_on(reference_date) == age, key
    turned12 = pop.cast["child12_yesterday"]
    assert turned12.age_on(reference_date - timedelta(days=1)) == 12
    assert turned12.age_on(reference_date - timedelta(days=2)) == 11
    assert pop.cast["proxy_holder"].age_on(reference_date) >= 18
    assert pop.cast["parent"].age_on(reference_date) >= 18


def test_parents_and_addresses_of_the_cast(population: Population) -> None:
    cast = population.cast
    child11 = cast["child11"]
    parents = population.parents_of(child11.nin)
    assert len(parents) == 2
    assert [population.lives_with(p.nin, child11.nin) for p in parents].count(True) == 1
    assert cast["parent"] in parents and population.lives_with(cast["parent"].nin, child11.nin)

    children = population.children_of(cast["parent"].nin)
    for key in ("child10", "child11", "child12_yesterday", "child13"):
        assert cast[key] in children
        assert population.lives_with(cast["parent"].nin, cast[key].nin)

    apart = cast["child11_apart"]
    apart_parents = population.parents_of(apart.nin)
    assert apart_parents == (cast["parent_apart"],)
    assert not any(population.lives_with(p.nin, apart.nin) for p in apart_parents)


def test_protected_addresses(population: Population) -> None:
    six, seven = population.cast["protected6"], population.cast["protected7"]
    assert six.protection is AddressProtection.STRENGT_FORTROLIG
    assert seven.protection is AddressProtection.FORTROLIG
    young = [c for c in population.children_of(six.nin) if c.age_on(REFERENCE_DATE) < 12]
    assert young
    assert AddressProtection("6") is AddressProtection.STRENGT_FORTROLIG
    assert population.cast["adult"].protection is AddressProtection.NONE


def test_the_cast_fullmakt(population: Population) -> None:
    giver, holder = population.cast["proxy_giver"], population.cast["proxy_holder"]
    (proxy,) = population.proxies_for(holder.nin)
    assert proxy.giver == giver.nin
    assert proxy.valid_on(REFERENCE_DATE)
    assert population.proxies_from(giver.nin) == (proxy,)
    assert population.proxies_for(giver.nin) == ()


def test_every_proxy_and_parental_link_keeps_the_rules(population: Population) -> None:
    for proxy in population.proxies:
        assert proxy.giver.age_on(proxy.valid_from) >= 16
        assert proxy.holder.age_on(proxy.valid_from) >= 18
    assert population.parental
    for link in population.parental:
        parent, child = population.citizen(link.parent), population.citizen(link.child)
        assert child.birth_date.year - parent.birth_date.year >= 18
        assert child.age_on(REFERENCE_DATE) < 18


def _number_born(born: date) -> NationalIdentityNumber:
    for individual in range(500, 1000) if born.year >= 2000 else range(500):
        value = NationalIdentityNumber.with_check_digits(
            f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}{individual:03d}"
        )
        if value is not None:
            return NationalIdentityNumber(value)
    raise AssertionError("no number")


def test_proxy_constructor_refuses_the_age_limits() -> None:
    start = date(2025, 1, 1)
    adult = _number_born(date(1980, 1, 1))
    fifteen = _number_born(date(2009, 6, 1))
    seventeen = _number_born(date(2007, 6, 1))
    sixteen = _number_born(date(2008, 6, 1))
    with pytest.raises(InvalidProxy, match="giver"):
        Proxy(fifteen, adult, start, start + timedelta(days=30))
    with pytest.raises(InvalidProxy, match="holder"):
        Proxy(adult, seventeen, start, start + timedelta(days=30))
    with pytest.raises(InvalidProxy, match="end after"):
        Proxy(adult, _number_born(date(1970, 1, 1)), start, start)
    ok = Proxy(sixteen, adult, start, start + timedelta(days=30))
    assert ok.valid_on(start) and not ok.valid_on(start + timedelta(days=30))


def test_identity_numbers_are_unique_and_synthetic(population: Population) -> None:
    nins = [c.nin.value for c in population.citizens] + [
        p.nin.value for p in population.practitioners
    ]
    assert len(set(nins)) == len(nins)
    assert all(NationalIdentityNumber(n).synthetic for n in nins)


def test_staff_cast(population: Population) -> None:
    staff = population.staff
    assert tuple(staff) == STAFF_KEYS
    doctor = staff["doctor"]
    hospital = population.organisation(doctor.organisation)
    assert doctor.categories == ("LE",) and doctor.hpr is not None
    assert hospital.region_slug == "hso" and hospital.facility_type.code == "86.101"
    assert doctor.department is not None and hospital.department(doctor.department)
    assert staff["nurse"].categories == ("SP",)
    gp_office = population.organisation(staff["gp"].organisation)
    assert staff["gp"].categories == ("LE",)
    assert (gp_office.region_slug, gp_office.facility_type.code) == ("vest", "86.211")
    assert staff["psychologist"].categories == ("PS",)
    assert staff["no_hpr"].hpr is None and staff["no_hpr"].categories == ()
    assert staff["paramedic"].categories == ("AA",)
    assert population.practitioner(doctor.nin) is doctor


def test_organisations(population: Population) -> None:
    orgs = population.organisations
    assert any(not o.helsenett_member for o in orgs)
    names = {o.name for o in orgs}
    for hospital in (
        "Oslo universitetssykehus HF",
        "St. Olavs hospital HF",
        "Universitetssykehuset Nord-Norge HF",
    ):
        assert hospital in names
    assert any(n.startswith("Haukeland universitetssjukehus") for n in names)
    for slug in ("hso", "vest", "midt", "nord"):
        kinds = {o.facility_type.code for o in population.organisations_in(slug)}
        assert {"86.101", "86.211", "86.901"} <= kinds
    kommune = [o for o in orgs if o.facility_type.code == "86.901"]
    assert all(o.legal_entity != o.orgnr for o in kommune)
    assert all(o.facility_type.display for o in orgs)  # taken from the code tables
    assert len({o.orgnr for o in orgs}) == len(orgs)
    resh = [d.resh for o in orgs for d in o.departments]
    assert len(set(resh)) == len(resh)


def test_lookup_of_an_unknown_number_fails(population: Population) -> None:
    with pytest.raises(KeyError):
        population.citizen("00000000000")
