"""The patient lookup (IHE PDQm ITI-78) beside the STS's registers: query, answer, trust, audit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.audit import AuditOutcome, MemoryAuditSink
from onerecord.demo import staff_manifest
from onerecord.search_client import (
    HubSession,
    StaffMember,
    fetch_token,
    practitioner_attestation,
)
from onerecord.sts import ClientConfig, StsSettings, create_sts_app
from onerecord.sts.pdqm_query import InvalidPatientQuery, PatientQuery, parse_patient_query
from onerecord.sts.pdqm_resource import ADDRESS_PROTECTION_EXTENSION, patient_resource
from onerecord.sts.pdqm_service import PDQM_AUDIENCE, REGISTER_SOURCE_ID
from onerecord.sts.registers import PopulationRegisters
from onerecord.synth.demographics import sex_of
from onerecord.synth.numbers import Sex, synthetic_dnr
from onerecord.synth.population import Population, generate_population
from onerecord.trust.keys import SigningKey
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt
from onerecord.trust.policy import RegionPolicy
from tests.support.servers import free_port, serve_in_thread

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
UNKNOWN = "01819010001"
"""Passes the mod-11 check and is synthetic, but nobody in the register has it."""
CLIENT = "pdqm-test-client"


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(seed=7, citizens=120, reference_date=datetime.now(UTC).date())


@dataclass
class Lookup:
    base: str
    client_key: SigningKey
    population: Population
    audit: MemoryAuditSink
    app: Any

    @property
    def url(self) -> str:
        return f"{self.base}/fhir/Patient"

    def staff(self, key: str = "doctor") -> StaffMember:
        return StaffMember.from_manifest(staff_manifest(self.population)[key])

    def token(
        self, subject: str, *, audience: str = PDQM_AUDIENCE, bound_to: str | None = None
    ) -> HubSession:
        """A DPoP-bound token; for health personnel an attestation bound to `bound_to`."""
        dpop = SigningKey.generate(kid="pdqm-dpop")
        salt = new_salt()
        attestation = None
        if bound_to is not None:
            attestation = practitioner_attestation(
                self.staff(), patient_digest=make_digest(bound_to, salt)
            )

        async def run() -> str:
            async with httpx.AsyncClient(timeout=30) as http:
                return await fetch_token(
                    http,
                    sts_url=self.base,
                    client_id=CLIENT,
                    client_key=self.client_key,
                    dpop_key=dpop,
                    subject=subject,
                    audience=audience,
                    attestation=attestation,
                )

        token = asyncio.run(run())
        if bound_to is None:
            return HubSession(token, dpop)
        return HubSession(token, dpop, bound_to, encode_salt(salt))

    def search(self, session: HubSession, identifier: str) -> httpx.Response:
        return httpx.get(
            self.url,
            params={"identifier": identifier},
            headers=session.headers("GET", self.url),
            timeout=30,
        )


@pytest.fixture(scope="module")
def lookup(population: Population) -> Iterator[Lookup]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_key = SigningKey.generate(kid="pdqm-client")
    settings_ = StsSettings(
        issuer=base,
        dev_mode=True,
        clients={CLIENT: ClientConfig(jwk=client_key.public_jwk())},
    )
    registers = PopulationRegisters(population)
    audit = MemoryAuditSink()
    app = create_sts_app(
        settings_,
        registers=registers,
        key=SigningKey.generate(kid="dev-sts-pdqm"),
        patient_register=registers,
        patient_audit=audit,
    )
    with serve_in_thread(app, port):
        yield Lookup(base, client_key, population, audit, app)


# --- the query ----------------------------------------------------------------------------


def test_parser_reads_one_fodselsnummer_or_d_number(population: Population) -> None:
    nin = population.cast["adult"].nin
    assert parse_patient_query([("identifier", f"{FNR}|{nin.value}")]) == PatientQuery(FNR, nin)
    dnr = synthetic_dnr(random.Random(5), date(1990, 1, 1))
    assert parse_patient_query([("identifier", f"{DNR}|{dnr.value}")]) == PatientQuery(DNR, dnr)


@pytest.mark.parametrize(
    "params",
    [
        [],
        [("identifier", f"{FNR}|{UNKNOWN}"), ("identifier", f"{FNR}|{UNKNOWN}")],
        [("identifier", f"{FNR}|{UNKNOWN},{FNR}|{UNKNOWN}")],
        [("identifier", UNKNOWN)],
        [("identifier", f"|{UNKNOWN}")],
        [("identifier", f"urn:oid:2.16.578.1.12.4.1.4.3|{UNKNOWN}")],
        [("identifier", f"{FNR}|01819010002")],
        [("identifier", f"{DNR}|{UNKNOWN}")],
        [("family", "Hansen")],
        [("identifier", f"{FNR}|{UNKNOWN}"), ("_format", "json")],
        [("identifier", f"{FNR}|{UNKNOWN}" + "0" * 600)],
    ],
)
def test_parser_refuses_what_it_does_not_serve(params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidPatientQuery):
        parse_patient_query(params)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=60)), max_size=4))
def test_parser_answers_a_query_or_the_callers_error(params: list[tuple[str, str]]) -> None:
    try:
        query = parse_patient_query(params)
    except InvalidPatientQuery:
        return
    assert params == [("identifier", f"{query.system}|{query.patient.value}")]


# --- the register's answer ----------------------------------------------------------------


def test_register_gives_name_birth_sex_gp_and_never_a_protected_address(
    population: Population,
) -> None:
    registers = PopulationRegisters(population)
    adult = population.cast["adult"]
    entry = registers.patient(adult.nin.value)
    assert entry is not None
    assert (entry.given, entry.family, entry.birth_date) == (
        adult.given,
        adult.family,
        adult.birth_date,
    )
    assert entry.address is not None and entry.address_protection is None
    assert entry.gp is not None and entry.gp.hpr and entry.gp.office
    for key in ("protected6", "protected6_child", "protected7"):
        shielded = registers.patient(population.cast[key].nin.value)
        assert shielded is not None and shielded.address is None
        assert shielded.address_protection in ("6", "7")
        resource = patient_resource(shielded, system=FNR)
        assert "address" not in resource
        assert resource["meta"]["security"][0]["code"] == "R"
        assert resource["extension"][0]["url"] == ADDRESS_PROTECTION_EXTENSION
    assert registers.patient(UNKNOWN) is None
    dead = [c for c in population.citizens if c.deceased]
    for citizen in dead:
        entry = registers.patient(citizen.nin.value)
        assert entry is not None and entry.deceased_on is not None
        assert citizen.birth_date <= entry.deceased_on <= population.reference_date


def test_sex_follows_the_ninth_digit(population: Population) -> None:
    for citizen in population.citizens[:50]:
        odd = int(citizen.nin.value[8]) % 2 == 1
        assert sex_of(citizen.nin) is (Sex.MALE if odd else Sex.FEMALE)


# --- served, with the trust path and the audit --------------------------------------------


def _audited(lookup: Lookup, before: int) -> list[Any]:
    return lookup.audit.records[before:]


def test_health_worker_finds_the_patient_by_number(lookup: Lookup) -> None:
    adult = lookup.population.cast["adult"]
    session = lookup.token(lookup.staff().nin, bound_to=adult.nin.value)
    before = len(lookup.audit.records)
    answer = lookup.search(session, f"{FNR}|{adult.nin.value}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    bundle = answer.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    patient = bundle["entry"][0]["resource"]
    assert patient["resourceType"] == "Patient"
    assert patient["name"][0]["family"] == adult.family
    assert patient["birthDate"] == adult.birth_date.isoformat()
    assert patient["gender"] in ("female", "male")
    assert patient["deceasedBoolean"] is False
    assert patient["generalPractitioner"][0]["display"]
    [record] = _audited(lookup, before)
    assert record.outcome is AuditOutcome.SUCCESS and record.returned_count == 1
    assert record.patient_id == adult.nin.value and record.source_id == REGISTER_SOURCE_ID
    assert record.practitioner is not None and record.practitioner.hpr


def test_an_unknown_number_is_an_empty_searchset_and_audited(lookup: Lookup) -> None:
    session = lookup.token(lookup.staff().nin, bound_to=UNKNOWN)
    before = len(lookup.audit.records)
    answer = lookup.search(session, f"{FNR}|{UNKNOWN}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 0 and answer.json()["entry"] == []
    [record] = _audited(lookup, before)
    assert record.returned_count == 0 and record.patient_id == UNKNOWN


def test_protected_address_is_flagged_never_shown(lookup: Lookup) -> None:
    shielded = lookup.population.cast["protected6"]
    session = lookup.token(lookup.staff().nin, bound_to=shielded.nin.value)
    patient = lookup.search(session, f"{FNR}|{shielded.nin.value}").json()["entry"][0]["resource"]
    assert "address" not in patient
    assert patient["extension"][0]["valueCoding"]["code"] == "strengt-fortrolig"
    street = lookup.population.address_of(shielded.nin).street
    assert street not in str(patient)


def test_a_token_for_another_patient_or_audience_is_refused_and_audited(lookup: Lookup) -> None:
    adult = lookup.population.cast["adult"]
    other = lookup.population.cast["elderly"]
    before = len(lookup.audit.records)
    bound_elsewhere = lookup.token(lookup.staff().nin, bound_to=other.nin.value)
    answer = lookup.search(bound_elsewhere, f"{FNR}|{adult.nin.value}")
    assert answer.status_code == 403
    assert answer.json()["resourceType"] == "OperationOutcome"
    hub_token = lookup.token(lookup.staff().nin, audience="onerecord:hub", bound_to=adult.nin.value)
    refused = lookup.search(hub_token, f"{FNR}|{adult.nin.value}")
    assert refused.status_code == 401 and "DPoP" in refused.headers["www-authenticate"]
    no_token = httpx.get(lookup.url, params={"identifier": f"{FNR}|{adult.nin.value}"})
    assert no_token.status_code == 401
    records = _audited(lookup, before)
    assert [r.outcome for r in records] == [AuditOutcome.DENIED] * 3
    assert all(r.patient_id == adult.nin.value and r.reason for r in records)
    assert "adult" not in str(refused.json())


def test_a_role_off_the_allow_list_is_refused_by_the_document_gate(lookup: Lookup) -> None:
    adult = lookup.population.cast["adult"]
    session = lookup.token(lookup.staff().nin, bound_to=adult.nin.value)
    served = lookup.app.state.patient_lookup
    served.region_policy = RegionPolicy(allowed_roles=frozenset({"PS"}))
    try:
        before = len(lookup.audit.records)
        answer = lookup.search(session, f"{FNR}|{adult.nin.value}")
    finally:
        served.region_policy = RegionPolicy()
    assert answer.status_code == 403
    assert "role-not-allowed" in answer.text
    [record] = _audited(lookup, before)
    assert record.outcome is AuditOutcome.DENIED and record.reason == "role-not-allowed"


def test_citizen_looks_up_self_and_represented_child_only(lookup: Lookup) -> None:
    cast = lookup.population.cast
    parent = lookup.token(cast["parent"].nin.value)
    assert lookup.search(parent, f"{FNR}|{cast['parent'].nin.value}").status_code == 200
    child = lookup.search(parent, f"{FNR}|{cast['child10'].nin.value}")
    assert child.status_code == 200 and child.json()["total"] == 1
    before = len(lookup.audit.records)
    stranger = lookup.search(parent, f"{FNR}|{cast['adult'].nin.value}")
    assert stranger.status_code == 403
    [record] = _audited(lookup, before)
    assert record.outcome is AuditOutcome.DENIED and record.reason == "no-representation"
    assert record.citizen is not None


def test_malformed_queries_are_400_outcomes_and_write_nothing(lookup: Lookup) -> None:
    session = lookup.token(lookup.staff().nin, bound_to=UNKNOWN)
    before = len(lookup.audit.records)
    for query in (
        "",
        f"identifier={FNR}|01819010002",
        "family=Hansen",
        f"identifier={FNR}|{UNKNOWN}&identifier={FNR}|{UNKNOWN}",
        "identifier=%ff%fe",
    ):
        url = f"{lookup.url}?{query}"
        answer = httpx.get(url, headers=session.headers("GET", lookup.url), timeout=30)
        assert answer.status_code == 400, (query, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome"
    assert len(lookup.audit.records) == before


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["identifier", "family", "_id", "x"]) | st.text(max_size=12),
            st.text(max_size=40)
            | st.sampled_from([f"{FNR}|{UNKNOWN}", f"{DNR}|{UNKNOWN}", f"{FNR}|{UNKNOWN[:-1]}"]),
        ),
        max_size=3,
    )
)
def test_any_query_is_answered_4xx_never_5xx(lookup: Lookup, params: list[tuple[str, str]]) -> None:
    before = len(lookup.audit.records)
    answer = httpx.get(lookup.url, params=params, timeout=30)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    if answer.status_code == 400:
        assert len(lookup.audit.records) == before


def test_contact_e_mail_for_notices_never_for_a_protected_address(
    population: Population,
) -> None:
    """Issue 11, defect 7: the notice's address; none for kode 6/7, the deceased, under 16."""
    registers = PopulationRegisters(population)
    adult = registers.patient(population.cast["adult"].nin.value)
    assert adult is not None and adult.email is not None
    assert adult.email.endswith("@innbygger.example")
    resource = patient_resource(adult, system=FNR)
    assert resource["telecom"] == [{"system": "email", "value": adult.email, "use": "home"}]
    again = PopulationRegisters(population).patient(population.cast["adult"].nin.value)
    assert again is not None and again.email == adult.email  # stable
    for key in ("protected6", "protected6_child", "protected7", "child11"):
        other = registers.patient(population.cast[key].nin.value)
        assert other is not None and other.email is None
        assert "telecom" not in patient_resource(other, system=FNR)
    for citizen in (c for c in population.citizens if c.deceased):
        entry = registers.patient(citizen.nin.value)
        assert entry is not None and entry.email is None
