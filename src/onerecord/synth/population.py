"""A synthetic population register: citizens, families, proxies, organisations and personnel.

Deterministic from a seed (one `random.Random`, never the global generator). Besides the random
part it always holds a fixed cast of edge cases for the access-rule scenarios, reachable by key
(`population.cast["child11"]`, `population.staff["doctor"]`).

References: TRUST-FRAMEWORK §5.2 (representation: parents of children under 12, at least one
parent at the child's address; fullmakt giver ≥ 16, holder ≥ 18; kode 6/7), §7.5 (E1–E12).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from onerecord.domain import (
    Coding,
    HprNumber,
    NationalIdentityNumber,
    OrganisationNumber,
    ReshId,
    code_tables,
)
from onerecord.synth import places
from onerecord.synth.numbers import (
    Sex,
    ensure_synthetic,
    synthetic_fnr,
    synthetic_hpr,
    synthetic_orgnr,
    synthetic_resh,
)

__all__ = [
    "CAST_KEYS",
    "FACILITY_TYPE_SYSTEM",
    "HPR_CATEGORY_SYSTEM",
    "PRACTICE_SETTING_SYSTEM",
    "STAFF_KEYS",
    "Address",
    "AddressProtection",
    "Citizen",
    "Department",
    "InvalidProxy",
    "Organisation",
    "ParentalResponsibility",
    "Population",
    "Practitioner",
    "Proxy",
    "birth_date_for_age",
    "generate_population",
]

FACILITY_TYPE_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.1303"
PRACTICE_SETTING_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.8451"
HPR_CATEGORY_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.9060"

CAST_KEYS = (
    "adult",
    "teen14",
    "teen17",
    "child10",
    "child11",
    "child11_apart",
    "child12_yesterday",
    "child13",
    "parent",
    "co_parent",
    "parent_apart",
    "proxy_giver",
    "proxy_holder",
    "protected6",
    "protected6_child",
    "protected7",
    "elderly",
)
STAFF_KEYS = ("doctor", "nurse", "gp", "psychologist", "no_hpr", "paramedic")

# Hospital departments: (name, Volven 8451 fagområde).
_HOSPITAL_DEPARTMENTS = (
    ("Medisinsk klinikk", "14"),
    ("Kirurgisk klinikk", "9"),
    ("Ortopedisk avdeling", "25"),
    ("Barne- og ungdomsklinikken", "28"),
    ("Kvinneklinikken", "6"),
    ("Nevrologisk avdeling", "23"),
    ("Avdeling for bildediagnostikk", "32"),
    ("Avdeling for medisinsk biokjemi", "18"),
    ("Klinikk psykisk helsevern", "31"),
    ("Øre-nese-hals-avdelingen", "35"),
)


class InvalidProxy(ValueError):
    """A fullmakt that the register cannot hold (age limits, validity period)."""


class AddressProtection(StrEnum):
    """Adressebeskyttelse in Folkeregisteret: kode 7 fortrolig, kode 6 strengt fortrolig."""

    NONE = "none"
    FORTROLIG = "7"
    STRENGT_FORTROLIG = "6"


@dataclass(frozen=True, slots=True)
class Address:
    """A registered home address (bostedsadresse)."""

    id: str
    street: str
    postal_code: str
    city: str
    region_slug: str = "hso"


@dataclass(frozen=True, slots=True)
class Citizen:
    """A person in the synthetic register; the birth date is that of the identity number."""

    nin: NationalIdentityNumber
    given: str
    family: str
    address_id: str
    protection: AddressProtection = AddressProtection.NONE
    deceased: bool = False

    def __post_init__(self) -> None:
        ensure_synthetic(self.nin)

    @property
    def birth_date(self) -> date:
        return self.nin.birth_date

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"

    def age_on(self, day: date) -> int:
        """Age in whole years on `day`."""
        return self.nin.age_on(day)


@dataclass(frozen=True, slots=True)
class ParentalResponsibility:
    """Foreldreansvar: `parent` has parental responsibility for `child`."""

    parent: NationalIdentityNumber
    child: NationalIdentityNumber


@dataclass(frozen=True, slots=True)
class Proxy:
    """A fullmakt: `holder` may act for `giver`; the giver is ≥ 16 and the holder ≥ 18.

    References: TRUST-FRAMEWORK §5.2 (helsenorge "slik representerer du andre"), §7.5 E10.
    """

    giver: NationalIdentityNumber
    holder: NationalIdentityNumber
    valid_from: date
    valid_to: date

    def __post_init__(self) -> None:
        ensure_synthetic(self.giver)
        ensure_synthetic(self.holder)
        if self.giver == self.holder:
            raise InvalidProxy("a person cannot hold a fullmakt from themselves")
        if self.valid_to <= self.valid_from:
            raise InvalidProxy("a fullmakt must end after it begins")
        if self.giver.age_on(self.valid_from) < 16:
            raise InvalidProxy("the giver of a fullmakt must be at least 16 years old")
        if self.holder.age_on(self.valid_from) < 18:
            raise InvalidProxy("the holder of a fullmakt must be at least 18 years old")

    def valid_on(self, day: date) -> bool:
        """True when the fullmakt is in force on `day` (valid_to exclusive)."""
        return self.valid_from <= day < self.valid_to


@dataclass(frozen=True, slots=True)
class Department:
    """A department of an organisation, identified in the RESH register."""

    resh: ReshId
    name: str
    practice_setting: str = "14"


@dataclass(frozen=True, slots=True)
class Organisation:
    """A unit in Enhetsregisteret that gives health care (underenhet) and its legal entity."""

    orgnr: OrganisationNumber
    name: str
    region_slug: str
    legal_entity: OrganisationNumber
    departments: tuple[Department, ...]
    helsenett_member: bool
    facility_type: Coding
    practice_settings: tuple[Coding, ...]

    def department(self, resh: ReshId) -> Department:
        for dept in self.departments:
            if dept.resh == resh:
                return dept
        raise KeyError(f"{self.name} has no department with RESH id {resh}")


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A health worker; `hpr` is None for people without authorisation in HPR."""

    nin: NationalIdentityNumber
    given: str
    family: str
    hpr: HprNumber | None
    categories: tuple[str, ...]
    organisation: OrganisationNumber
    department: ReshId | None = None

    def __post_init__(self) -> None:
        ensure_synthetic(self.nin)

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


@dataclass(frozen=True)
class Population:
    """The whole synthetic register with lookups by identity number."""

    citizens: tuple[Citizen, ...]
    addresses: tuple[Address, ...]
    parental: tuple[ParentalResponsibility, ...]
    proxies: tuple[Proxy, ...]
    organisations: tuple[Organisation, ...]
    practitioners: tuple[Practitioner, ...]
    reference_date: date
    cast: Mapping[str, Citizen] = field(default_factory=dict)
    staff: Mapping[str, Practitioner] = field(default_factory=dict)
    _citizens: dict[str, Citizen] = field(init=False, repr=False, compare=False)
    _addresses: dict[str, Address] = field(init=False, repr=False, compare=False)
    _practitioners: dict[str, Practitioner] = field(init=False, repr=False, compare=False)
    _organisations: dict[str, Organisation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_citizens", {c.nin.value: c for c in self.citizens})
        object.__setattr__(self, "_addresses", {a.id: a for a in self.addresses})
        object.__setattr__(self, "_practitioners", {p.nin.value: p for p in self.practitioners})
        object.__setattr__(self, "_organisations", {o.orgnr.value: o for o in self.organisations})
        if len(self._citizens) != len(self.citizens):
            raise ValueError("two citizens share an identity number")

    __hash__ = None  # type: ignore[assignment]

    def citizen(self, nin: NationalIdentityNumber | str) -> Citizen:
        """Return the citizen with this identity number (KeyError if unknown)."""
        return self._citizens[_key(nin)]

    def address(self, address_id: str) -> Address:
        return self._addresses[address_id]

    def address_of(self, nin: NationalIdentityNumber | str) -> Address:
        return self._addresses[self.citizen(nin).address_id]

    def parents_of(self, child: NationalIdentityNumber | str) -> tuple[Citizen, ...]:
        """Citizens with parental responsibility for `child`."""
        key = _key(child)
        return tuple(self.citizen(p.parent) for p in self.parental if p.child.value == key)

    def children_of(self, parent: NationalIdentityNumber | str) -> tuple[Citizen, ...]:
        """Children for whom `parent` has parental responsibility."""
        key = _key(parent)
        return tuple(self.citizen(p.child) for p in self.parental if p.parent.value == key)

    def proxies_for(self, holder: NationalIdentityNumber | str) -> tuple[Proxy, ...]:
        """Fullmakter held by `holder`."""
        key = _key(holder)
        return tuple(p for p in self.proxies if p.holder.value == key)

    def proxies_from(self, giver: NationalIdentityNumber | str) -> tuple[Proxy, ...]:
        """Fullmakter given by `giver`."""
        key = _key(giver)
        return tuple(p for p in self.proxies if p.giver.value == key)

    def lives_with(self, a: NationalIdentityNumber | str, b: NationalIdentityNumber | str) -> bool:
        """True when both are registered at the same address."""
        return self.citizen(a).address_id == self.citizen(b).address_id

    def practitioner(self, nin: NationalIdentityNumber | str) -> Practitioner:
        return self._practitioners[_key(nin)]

    def organisation(self, orgnr: OrganisationNumber | str) -> Organisation:
        key = orgnr.value if isinstance(orgnr, OrganisationNumber) else orgnr
        return self._organisations[key]

    def organisations_in(self, region_slug: str) -> tuple[Organisation, ...]:
        return tuple(o for o in self.organisations if o.region_slug == region_slug)

    def home_region(self, nin: NationalIdentityNumber | str) -> str:
        return self.address_of(nin).region_slug


def _key(nin: NationalIdentityNumber | str) -> str:
    return nin.value if isinstance(nin, NationalIdentityNumber) else nin


def birth_date_for_age(reference_date: date, age: int, days_since_birthday: int) -> date:
    """Return a birth date giving `age` on `reference_date`, the birthday that many days ago."""
    last_birthday = reference_date - timedelta(days=days_since_birthday)
    try:
        return last_birthday.replace(year=last_birthday.year - age)
    except ValueError:  # 29 February in a year that is not a leap year
        return last_birthday.replace(year=last_birthday.year - age, day=28)


class _Builder:
    """Mutable state while generating; the result is an immutable Population."""

    def __init__(self, rng: random.Random, reference_date: date) -> None:
        self.rng = rng
        self.today = reference_date
        self.citizens: list[Citizen] = []
        self.addresses: list[Address] = []
        self.parental: list[ParentalResponsibility] = []
        self.proxies: list[Proxy] = []
        self.organisations: list[Organisation] = []
        self.practitioners: list[Practitioner] = []
        self.used_nins: set[str] = set()
        self.used_orgnr: set[str] = set()
        self.used_resh: set[str] = set()
        self.used_hpr: set[str] = set()

    # numbers --------------------------------------------------------------------------------

    def nin(self, birth: date, sex: Sex) -> NationalIdentityNumber:
        while True:
            nin = synthetic_fnr(self.rng, birth, sex=sex)
            if nin.value not in self.used_nins:
                self.used_nins.add(nin.value)
                return nin

    def orgnr(self) -> OrganisationNumber:
        while True:
            value = synthetic_orgnr(self.rng)
            if value.value not in self.used_orgnr:
                self.used_orgnr.add(value.value)
                return value

    def resh(self) -> ReshId:
        while True:
            value = synthetic_resh(self.rng)
            if value.value not in self.used_resh:
                self.used_resh.add(value.value)
                return value

    def hpr(self) -> HprNumber:
        while True:
            value = synthetic_hpr(self.rng)
            if value.value not in self.used_hpr:
                self.used_hpr.add(value.value)
                return value

    # people ---------------------------------------------------------------------------------

    def address(self, region_slug: str | None = None) -> Address:
        slug = region_slug or self.rng.choice(sorted(places.TOWNS))
        postal_code, city, streets = self.rng.choice(places.TOWNS[slug])
        street = f"{self.rng.choice(streets)} {self.rng.randint(1, 120)}"
        if self.rng.random() < 0.3:
            street += self.rng.choice("ABC")
        address = Address(f"a{len(self.addresses) + 1:06d}", street, postal_code, city, slug)
        self.addresses.append(address)
        return address

    def person(
        self,
        age: int,
        address: Address,
        *,
        family: str | None = None,
        sex: Sex | None = None,
        protection: AddressProtection = AddressProtection.NONE,
        deceased: bool = False,
        days_since_birthday: int | None = None,
    ) -> Citizen:
        sex = sex or self.rng.choice((Sex.FEMALE, Sex.MALE))
        days = days_since_birthday
        if days is None:
            days = self.rng.randrange(1, 364)
        birth = birth_date_for_age(self.today, age, days)
        names = places.FEMALE_NAMES if sex is Sex.FEMALE else places.MALE_NAMES
        citizen = Citizen(
            nin=self.nin(birth, sex),
            given=self.rng.choice(names),
            family=family or self.rng.choice(places.FAMILY_NAMES),
            address_id=address.id,
            protection=protection,
            deceased=deceased,
        )
        self.citizens.append(citizen)
        return citizen

    def parent_of(self, parent: Citizen, child: Citizen) -> None:
        self.parental.append(ParentalResponsibility(parent.nin, child.nin))

    # organisations --------------------------------------------------------------------------

    def organisation(
        self,
        region_slug: str,
        name: str,
        facility_type: str,
        departments: tuple[tuple[str, str], ...],
        *,
        legal_entity: OrganisationNumber | None = None,
        helsenett_member: bool = True,
    ) -> Organisation:
        tables = code_tables()
        orgnr = self.orgnr()
        depts = tuple(Department(self.resh(), dname, setting) for dname, setting in departments)
        settings = tuple(sorted({d.practice_setting for d in depts}, key=int))
        org = Organisation(
            orgnr=orgnr,
            name=name,
            region_slug=region_slug,
            legal_entity=legal_entity or orgnr,
            departments=depts,
            helsenett_member=helsenett_member,
            facility_type=tables.require(
                "healthcareFacilityTypeCode", Coding(FACILITY_TYPE_SYSTEM, facility_type)
            ),
            practice_settings=tuple(
                tables.require("practiceSettingCode", Coding(PRACTICE_SETTING_SYSTEM, s))
                for s in settings
            ),
        )
        self.organisations.append(org)
        return org

    def practitioner(
        self,
        org: Organisation,
        categories: tuple[str, ...],
        *,
        department: Department | None = None,
        with_hpr: bool = True,
    ) -> Practitioner:
        tables = code_tables()
        for category in categories:
            tables.require("hprCategory", Coding(HPR_CATEGORY_SYSTEM, category))
        sex = self.rng.choice((Sex.FEMALE, Sex.MALE))
        birth = birth_date_for_age(self.today, self.rng.randint(28, 64), self.rng.randrange(364))
        names = places.FEMALE_NAMES if sex is Sex.FEMALE else places.MALE_NAMES
        dept = department or (self.rng.choice(org.departments) if org.departments else None)
        practitioner = Practitioner(
            nin=self.nin(birth, sex),
            given=self.rng.choice(names),
            family=self.rng.choice(places.FAMILY_NAMES),
            hpr=self.hpr() if with_hpr else None,
            categories=categories,
            organisation=org.orgnr,
            department=dept.resh if dept else None,
        )
        self.practitioners.append(practitioner)
        return practitioner


def _dept(org: Organisation, name: str) -> Department:
    return next(d for d in org.departments if d.name == name)


def _build_organisations(b: _Builder) -> None:
    for slug in sorted(places.HOSPITALS):
        for name, facility in places.HOSPITALS[slug]:
            b.organisation(slug, name, facility, _HOSPITAL_DEPARTMENTS)
        for name in places.GP_OFFICES[slug]:
            b.organisation(slug, name, "86.211", (("Fastlegekontor", "1"),))
        kommune, unit = places.MUNICIPALITIES[slug]
        legal = b.orgnr()  # the municipality itself is the hovedenhet
        b.organisation(slug, unit, "86.901", (("Hjemmesykepleie", "1"),), legal_entity=legal)
        del kommune
    slug, name, facility = places.PRIVATE_CLINIC
    b.organisation(slug, name, facility, (("Poliklinikk", "35"),), helsenett_member=False)


def _build_staff(b: _Builder) -> dict[str, Practitioner]:
    orgs = b.organisations
    hospitals = {
        slug: [o for o in orgs if o.region_slug == slug and o.facility_type.code == "86.101"]
        for slug in places.HOSPITALS
    }
    gps = {
        slug: [o for o in orgs if o.region_slug == slug and o.facility_type.code == "86.211"]
        for slug in places.HOSPITALS
    }
    ous = hospitals["hso"][0]
    staff = {
        "doctor": b.practitioner(ous, ("LE",), department=_dept(ous, "Medisinsk klinikk")),
        "nurse": b.practitioner(ous, ("SP",), department=_dept(ous, "Medisinsk klinikk")),
        "gp": b.practitioner(gps["vest"][0], ("LE",)),
        "psychologist": b.practitioner(
            hospitals["midt"][0],
            ("PS",),
            department=_dept(hospitals["midt"][0], "Klinikk psykisk helsevern"),
        ),
        "no_hpr": b.practitioner(ous, (), with_hpr=False),
        "paramedic": b.practitioner(hospitals["nord"][0], ("AA",)),
    }
    # Every hospital department gets a physician; every GP office two; the random part of the
    # register is filled so that each region has authors for every kind of document.
    for slug in sorted(places.HOSPITALS):
        for hospital in hospitals[slug]:
            for dept in hospital.departments:
                category = "PS" if dept.practice_setting == "31" and b.rng.random() < 0.5 else "LE"
                b.practitioner(hospital, (category,), department=dept)
            b.practitioner(hospital, ("SP",))
            b.practitioner(
                hospital, ("BI",), department=_dept(hospital, "Avdeling for medisinsk biokjemi")
            )
        for office in gps[slug]:
            b.practitioner(office, ("LE",))
            b.practitioner(office, ("LE",))
        for org in orgs:
            if org.region_slug == slug and org.facility_type.code == "86.901":
                b.practitioner(org, ("SP",))
                b.practitioner(org, ("HP",))
    clinic = next(o for o in orgs if not o.helsenett_member)
    b.practitioner(clinic, ("LE",))
    return staff


def _build_cast(b: _Builder) -> dict[str, Citizen]:
    home = b.address("hso")
    parent = b.person(42, home, sex=Sex.FEMALE)
    fam = parent.family
    co_parent = b.person(44, b.address("hso"), sex=Sex.MALE, family=fam)
    child11 = b.person(11, home, family=fam)
    child12 = b.person(12, home, family=fam, days_since_birthday=1)
    child13 = b.person(13, home, family=fam)
    child10 = b.person(10, home, family=fam)
    for child in (child10, child11, child12, child13):
        b.parent_of(parent, child)
        b.parent_of(co_parent, child)

    apart_home = b.address("vest")
    child11_apart = b.person(11, apart_home)
    parent_apart = b.person(45, b.address("vest"), family=child11_apart.family)
    b.parent_of(parent_apart, child11_apart)

    teen_home = b.address("midt")
    teen14 = b.person(14, teen_home)
    teen17 = b.person(17, teen_home, family=teen14.family)

    adult = b.person(40, b.address("hso"))
    giver = b.person(40, b.address("nord"))
    holder = b.person(50, b.address("nord"))
    b.proxies.append(
        Proxy(
            giver.nin,
            holder.nin,
            valid_from=b.today - timedelta(days=200),
            valid_to=b.today + timedelta(days=365 * 2),
        )
    )

    shielded = b.address("hso")
    protected6 = b.person(35, shielded, protection=AddressProtection.STRENGT_FORTROLIG)
    protected6_child = b.person(
        6, shielded, family=protected6.family, protection=AddressProtection.STRENGT_FORTROLIG
    )
    b.parent_of(protected6, protected6_child)
    protected7 = b.person(52, b.address("midt"), protection=AddressProtection.FORTROLIG)
    elderly = b.person(85, b.address("nord"))
    cast = {
        "adult": adult,
        "teen14": teen14,
        "teen17": teen17,
        "child10": child10,
        "child11": child11,
        "child11_apart": child11_apart,
        "child12_yesterday": child12,
        "child13": child13,
        "parent": parent,
        "co_parent": co_parent,
        "parent_apart": parent_apart,
        "proxy_giver": giver,
        "proxy_holder": holder,
        "protected6": protected6,
        "protected6_child": protected6_child,
        "protected7": protected7,
        "elderly": elderly,
    }
    assert tuple(cast) == CAST_KEYS
    return cast


def _build_random(b: _Builder, count: int) -> None:
    made = 0
    while made < count:
        home = b.address()
        adults = 1 if b.rng.random() < 0.35 else 2
        family = b.rng.choice(places.FAMILY_NAMES)
        first_age = b.rng.randint(19, 92)
        grown: list[Citizen] = []
        youngest = first_age
        for i in range(adults):
            if made >= count:
                break
            age = first_age if i == 0 else max(18, first_age + b.rng.randint(-6, 6))
            youngest = min(youngest, age)
            roll = b.rng.random()
            protection = AddressProtection.NONE
            if roll < 0.005:
                protection = AddressProtection.STRENGT_FORTROLIG
            elif roll < 0.015:
                protection = AddressProtection.FORTROLIG
            deceased = age > 75 and b.rng.random() < 0.05
            grown.append(
                b.person(age, home, family=family, protection=protection, deceased=deceased)
            )
            made += 1
        if grown and 25 <= youngest and first_age <= 55 and b.rng.random() < 0.55:
            for _ in range(b.rng.randint(1, 3)):
                if made >= count:
                    break
                # Parents are at least 19 years older than their children.
                max_age = min(17, youngest - 19)
                child = b.person(
                    b.rng.randint(0, max_age), home, family=family, protection=grown[0].protection
                )
                made += 1
                for parent in grown:
                    b.parent_of(parent, child)
        if len(grown) == 2 and first_age >= 70 and b.rng.random() < 0.3:
            b.proxies.append(
                Proxy(
                    grown[0].nin,
                    grown[1].nin,
                    valid_from=b.today - timedelta(days=b.rng.randint(10, 2000)),
                    valid_to=b.today + timedelta(days=b.rng.randint(30, 2000)),
                )
            )


def generate_population(*, seed: int, citizens: int, reference_date: date) -> Population:
    """Generate the register: the fixed cast plus `citizens` random people, all synthetic."""
    if citizens < 0:
        raise ValueError("citizens must not be negative")
    b = _Builder(random.Random(seed), reference_date)
    _build_organisations(b)
    staff = _build_staff(b)
    cast = _build_cast(b)
    _build_random(b, citizens)
    return Population(
        citizens=tuple(b.citizens),
        addresses=tuple(b.addresses),
        parental=tuple(b.parental),
        proxies=tuple(b.proxies),
        organisations=tuple(b.organisations),
        practitioners=tuple(b.practitioners),
        reference_date=reference_date,
        cast=cast,
        staff=staff,
    )
