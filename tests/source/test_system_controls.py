"""`GET /controls/system`: the patient's controls for a system of the region, by publish proof.

A real STS and source on 127.0.0.1 (trust_harness): a citizen sets controls through the portal
routes, a system signs a GET proof with a publisher key of the source and reads them; every
answer and refusal is audited with the system as the actor.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord, audit_event
from onerecord.mhd import BadRequest
from onerecord.source.system_controls import parse_system_controls_query
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER, make_publish_proof
from tests.source.trust_harness import (
    ARCHIVE_ISSUER,
    HCID,
    PUBLISHER_ISSUER,
    Network,
    start_network,
)

SYSTEM = ARCHIVE_ISSUER
VALID_NIN = "13116900216"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with start_network(tmp_path_factory.mktemp("system-controls")) as network:
        yield network


def _proof(
    net: Network,
    *,
    key: SigningKey | None = None,
    method: str = "GET",
    issuer: str = SYSTEM,
) -> str:
    return make_publish_proof(
        key or net.archive_key,
        issuer=issuer,
        audience=HCID,
        htu=f"{net.source_url}/controls/system",
        body=b"",
        now=time.time(),
        method=method,
    )


def _get(net: Network, query: str, proof: str | None) -> httpx.Response:
    headers = {PUBLISH_PROOF_HEADER: proof} if proof is not None else {}
    return httpx.get(f"{net.source_url}/controls/system?{query}", headers=headers, timeout=30)


def _audit(net: Network) -> list[AuditRecord]:
    with sqlite3.connect(net.db_path) as conn:
        rows = conn.execute("SELECT event FROM audit_event ORDER BY seq").fetchall()
    return [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]


def test_a_system_reads_the_controls_a_citizen_set_and_is_audited(net: Network) -> None:
    nin = net.citizen("adult")
    citizen = net.citizen_token("adult")
    assert _get(net, urlencode({"patient": nin}), _proof(net)).json() == {
        "reservation": False,
        "documentBlocks": [],
        "practitionerBlocks": [],
    }
    hpr = net.staff("doctor").hpr
    assert hpr is not None
    for path in (
        "/controls/reservation",
        "/controls/document-blocks/1.2.826.0.1.3680043.8.498.1",
        f"/controls/practitioner-blocks/{hpr.value}",
    ):
        assert net.send(citizen, "PUT", path).status_code == 200
    before = len(_audit(net))
    r = _get(net, urlencode({"patient": nin}), _proof(net))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "reservation": True,
        "documentBlocks": ["1.2.826.0.1.3680043.8.498.1"],
        "practitionerBlocks": [hpr.value],
    }
    (record,) = _audit(net)[before:]
    assert record.action is AuditAction.CONTROLS_READ
    assert record.outcome is AuditOutcome.SUCCESS
    assert record.system == SYSTEM and record.patient_id == nin and record.token_jti
    assert record.practitioner is None and record.citizen is None
    agents = audit_event(record)["agent"]
    assert any(a["type"]["coding"][0]["code"] == "110150" for a in agents)
    for path in ("/controls/reservation", f"/controls/practitioner-blocks/{hpr.value}"):
        assert net.send(citizen, "DELETE", path).status_code == 200


@pytest.mark.parametrize(
    ("case", "status"),
    [("none", 401), ("replayed", 401), ("stranger", 401), ("post", 401), ("garbage", 401)],
)
def test_no_or_a_bad_proof_is_401_and_audited(net: Network, case: str, status: int) -> None:
    nin = net.citizen("adult")
    proof: str | None
    if case == "none":
        proof = None
    elif case == "replayed":
        proof = _proof(net)
        assert _get(net, urlencode({"patient": nin}), proof).status_code == 200
    elif case == "stranger":
        proof = _proof(net, key=SigningKey.generate(kid="not-a-publisher"))
    elif case == "post":
        proof = _proof(net, method="POST")
    else:
        proof = "not.a.jwt"
    before = len(_audit(net))
    r = _get(net, urlencode({"patient": nin}), proof)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert "WWW-Authenticate" in r.headers
    (record,) = _audit(net)[before:]
    assert record.action is AuditAction.CONTROLS_READ
    assert record.outcome is AuditOutcome.DENIED and record.reason
    assert record.patient_id == nin and record.system is None


def test_a_publisher_that_is_not_an_archive_is_403_and_audited(net: Network) -> None:
    """The EHR's key may publish documents, but only an archive reads the patient's controls."""
    nin = net.citizen("adult")
    before = len(_audit(net))
    proof = _proof(net, key=net.publisher_key, issuer=PUBLISHER_ISSUER)
    r = _get(net, urlencode({"patient": nin}), proof)
    assert r.status_code == 403, r.text
    assert "reservation" not in r.text
    (record,) = _audit(net)[before:]
    assert record.action is AuditAction.CONTROLS_READ and record.outcome is AuditOutcome.DENIED
    assert record.reason == "not-an-archive"
    assert record.system == PUBLISHER_ISSUER and record.token_jti


def test_a_publisher_posing_as_the_archive_is_401_and_audited(net: Network) -> None:
    """The EHR's key signs a proof that claims the archive's issuer: refused, and the audit
    names the key's own issuer as the actor."""
    nin = net.citizen("adult")
    before = len(_audit(net))
    proof = _proof(net, key=net.publisher_key, issuer=ARCHIVE_ISSUER)
    r = _get(net, urlencode({"patient": nin}), proof)
    assert r.status_code == 401, r.text
    assert "WWW-Authenticate" in r.headers and "reservation" not in r.text
    (record,) = _audit(net)[before:]
    assert record.outcome is AuditOutcome.DENIED and record.reason == "issuer-mismatch"
    assert record.system == PUBLISHER_ISSUER and record.patient_id == nin


@pytest.mark.parametrize(
    "query",
    ["", "patient=", "patient=12345678901", "patient=abc", f"patient={VALID_NIN}&patient=x",
     f"patient={VALID_NIN}&_format=xml", "patient=" + "9" * 500],
)  # fmt: skip
def test_a_bad_patient_is_400_and_reads_nothing(net: Network, query: str) -> None:
    before = len(_audit(net))
    r = _get(net, query, _proof(net))
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert _audit(net)[before:] == []


def test_unauthenticated_bad_patient_is_401_first(net: Network) -> None:
    assert _get(net, "patient=abc", None).status_code == 401


_names = st.sampled_from(["patient", "Patient", "patient ", "p", "_count", ""]) | st.text(
    max_size=12
)
_values = (
    st.text(max_size=40)
    | st.from_regex(r"\A[0-9]{11}\Z")
    | st.just(VALID_NIN)
    | st.just(f" {VALID_NIN} ")
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, _values), max_size=4))
def test_the_query_parser_answers_a_nin_or_a_400(params: list[tuple[str, str]]) -> None:
    try:
        nin = parse_system_controls_query(params)
    except BadRequest as exc:
        assert exc.status == 400
        return
    assert [name for name, _ in params] == ["patient"]
    assert nin.value == params[0][1].strip()


def test_the_query_parser_accepts_exactly_one_patient() -> None:
    assert parse_system_controls_query([("patient", VALID_NIN)]).value == VALID_NIN


def test_no_publisher_keys_refuses_systems(tmp_path: Path) -> None:
    with start_network(tmp_path, source_overrides={"publisher_jwks_file": None}) as bare:
        r = _get(bare, urlencode({"patient": VALID_NIN}), _proof(bare))
        assert r.status_code == 403, r.text
        (record,) = [a for a in _audit(bare) if a.action is AuditAction.CONTROLS_READ]
        assert record.reason == "publishing-not-configured"


_query_values = st.text(max_size=30) | st.just(VALID_NIN) | st.from_regex(r"\A[0-9]{11}\Z")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(params=st.lists(st.tuples(_names, _query_values), max_size=3))
def test_hostile_queries_over_http_are_4xx_and_write_nothing_but_the_read(
    net: Network, params: list[tuple[str, str]]
) -> None:
    before = len(_audit(net))
    r = _get(net, urlencode(params), _proof(net))
    assert r.status_code in (200, 400), r.text
    written = _audit(net)[before:]
    if r.status_code == 400:
        assert written == []
    else:
        assert [w.outcome for w in written] == [AuditOutcome.SUCCESS]
