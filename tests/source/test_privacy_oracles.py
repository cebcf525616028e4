"""Privacy oracles at a document source (issue 10, F), over real HTTP with a real STS.

A health worker without emergency access must learn nothing of a blocked entry beyond its
placeholder (date, category, "Sperret") from filters, sorting or `total`; a retrieve must not tell
another patient's document from a made-up key.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord
from onerecord.domain import (
    Author,
    AuthorInstitution,
    AuthorPerson,
    Coding,
    DocumentEntry,
    DocumentUniqueId,
    HprNumber,
    OrganisationNumber,
)
from onerecord.mhd import RetrieveKey
from tests.factories import make_entry, sample_pdf
from tests.source.trust_harness import KJ_SCOPE, Network, Token, hub_headers, start_network

V = "urn:oid:2.16.578.1.12.4.1.1."
HL7 = "urn:oid:2.16.840.1.113883.5.25"
RFC3986 = "urn:ietf:rfc:3986"
NOW = datetime.now(UTC)


def _author(given: str, family: str) -> Author:
    return Author(
        person=AuthorPerson(given, family, HprNumber("9144900")),
        institution=AuthorInstitution("Testsykehuset HF", OrganisationNumber("983974899")),
    )


def _doc(patient: str, cls: str, typ: str, **kw: Any) -> tuple[DocumentEntry, bytes]:
    content = sample_pdf(f"privacy {patient} {cls} {typ} {kw.get('title')}")
    when = kw.pop("when", NOW - timedelta(days=30))
    labels = kw.pop("labels", ("N",))
    made = make_entry(
        patient_id=patient,
        content=content,
        class_code=Coding(V + "9602", cls),
        type_code=Coding(V + "9602", typ),
        confidentiality_codes=tuple(
            Coding(HL7 if c in ("N", "R", "V") else V + "9603", c) for c in labels
        ),
        creation_time=when,
        service_start_time=kw.get("started", when),
        service_stop_time=kw.pop("started", when),
        **kw,
    )
    return made, content


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with start_network(tmp_path_factory.mktemp("privacy")) as network:
        adult = network.citizen("adult")
        elderly = network.citizen("elderly")
        docs = {
            "letter": _doc(
                adult,
                "I00-1",
                "I01-2",
                title="Aaa brev",
                authors=(_author("Kari", "Nordmann"),),
                healthcare_facility_type=Coding(V + "1303", "86.101"),
            ),
            "secret": _doc(
                adult,
                "I00-1",
                "I02-2",
                labels=("N", "NORS"),
                title="Aab brev",
                authors=(_author("Ola", "Hemmelig"),),
                healthcare_facility_type=Coding(V + "1303", "86.211"),
                when=NOW - timedelta(days=20),
                started=NOW - timedelta(days=900),
            ),
            "memo": _doc(adult, "I00-1", "I01-2", title="Mmm brev"),
            "own_v": _doc(adult, "A00-1", "A03-2", labels=("V",)),
            "teen": _doc(network.citizen("teen17"), "A00-1", "A03-2"),
            "old_lab": _doc(elderly, "C00-1", "C01-2", when=NOW - timedelta(days=400)),
            "new_lab": _doc(elderly, "C00-1", "C01-2", when=NOW - timedelta(days=30)),
            "note": _doc(elderly, "B00-1", "B02-2"),
            "summary": _doc(elderly, "A00-1", "A03-2", when=NOW - timedelta(days=3000)),
        }
        by_patient: dict[str, list[tuple[DocumentEntry, bytes]]] = {}
        for pair in docs.values():
            by_patient.setdefault(pair[0].patient_id.value, []).append(pair)
        for batch in by_patient.values():
            network.publish(batch)
        network.docs = {k: [v[0]] for k, v in docs.items()}
        yield network


def uid(net: Network, key: str) -> str:
    return net.docs[key][0].unique_id.value


def placeholders(r: httpx.Response) -> int:
    assert r.status_code == 200, r.text
    entries = [e["resource"] for e in r.json().get("entry", [])]
    count = sum(1 for res in entries if res.get("description") == "Sperret")
    assert r.headers["x-onerecord-masked-count"] == str(count)
    return count


def shown_ids(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [
        e["resource"]["masterIdentifier"]["value"].removeprefix("urn:oid:")
        if "masterIdentifier" in e["resource"]
        else "Sperret"
        for e in r.json().get("entry", [])
    ]


def audit_rows(net: Network) -> list[AuditRecord]:
    with sqlite3.connect(net.db_path) as conn:
        rows = conn.execute("SELECT event FROM audit_event ORDER BY seq").fetchall()
    return [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]


# --- F1: filters match a blocked entry only on what its placeholder shows ---------------------


def _hidden_filters(net: Network) -> dict[str, tuple[str, str]]:
    """Per search parameter on a hidden field: (the blocked entry's value, another value)."""
    secret = net.docs["secret"][0]
    return {
        "type": (f"{V}9602|I02-2", f"{V}9602|B02-2"),
        "author.family": ("Hemmelig", "Nordmann"),
        "author.given": ("Ola", "Kari"),
        "facility": (f"{V}1303|86.211", f"{V}1303|86.101"),
        "identifier": (
            f"urn:ietf:rfc:3986|{secret.unique_id.urn}",
            "urn:ietf:rfc:3986|urn:oid:1.2",
        ),
        "setting": (f"{V}8451|14", f"{V}8451|99"),
        "format": (
            "urn:oid:1.3.6.1.4.1.19376.1.2.3|urn:no:ehelse:document:pdf",
            "urn:oid:1.3.6.1.4.1.19376.1.2.3|urn:no:ehelse:document:text",
        ),
        "creation": (
            f"ge{(secret.creation_time - timedelta(hours=1)).date().isoformat()}",
            f"lt{(NOW - timedelta(days=2000)).date().isoformat()}",
        ),
    }


def test_blocked_entry_is_not_matched_by_hidden_type_author_facility_identifier(
    net: Network,
) -> None:
    """Each filter on a hidden field answers alike for the blocked value and another one."""
    patient = net.citizen("adult")
    token = net.hcp_token(patient)
    assert placeholders(net.search(token, patient)) == 1
    for name, (hidden, other) in _hidden_filters(net).items():
        with_hidden = net.search(token, patient, **{name: hidden})
        with_other = net.search(token, patient, **{name: other})
        assert placeholders(with_hidden) == placeholders(with_other) == 0, name
        assert with_hidden.json()["total"] == len(with_hidden.json().get("entry", [])), name


def test_blocked_entry_is_matched_on_its_placeholder_category_and_date(net: Network) -> None:
    patient = net.citizen("adult")
    token = net.hcp_token(patient)
    assert placeholders(net.search(token, patient, category=f"{V}9602|I00-1")) == 1
    assert placeholders(net.search(token, patient, category=f"{V}9602|A00-1")) == 0
    shown = (NOW - timedelta(days=901)).date().isoformat()
    assert placeholders(net.search(token, patient, date=f"ge{shown}")) == 1
    # the hidden creation date (20 days ago) is not what the placeholder shows
    hidden_day = (NOW - timedelta(days=25)).date().isoformat()
    assert placeholders(net.search(token, patient, date=f"ge{hidden_day}")) == 0


def test_emergency_access_matches_the_unblocked_entry_on_every_field(net: Network) -> None:
    """The fix masks only what is masked: a grant of its class finds the entry itself."""
    patient = net.citizen("adult")
    grant = {
        "access_basis": "AKUTT",
        "reason_category": "unconscious",
        "until": int(time.time()) + 1800,
        "classes": [{"code": "I00-1", "system": f"{V}9602"}],
    }
    token = net.hcp_token(patient, purpose="BTG", emergency=grant)
    r = net.search(token, patient, type=f"{V}9602|I02-2")
    assert shown_ids(r) == [uid(net, "secret")]


def test_blocked_document_is_not_matched_by_its_hidden_type(net: Network) -> None:
    """A citizen's block of one document (no NORS label) masks it the same way."""
    patient = net.citizen("adult")
    citizen = net.citizen_token("adult")
    memo = uid(net, "memo")
    assert net.send(citizen, "PUT", f"/controls/document-blocks/{memo}").status_code == 200
    try:
        token = net.hcp_token(patient)
        assert placeholders(net.search(token, patient)) == 2
        for value in (f"{V}9602|I01-2", f"{V}9602|I02-2"):
            r = net.search(token, patient, type=value)
            assert placeholders(r) == 0 and memo not in shown_ids(r)
    finally:
        assert net.send(citizen, "DELETE", f"/controls/document-blocks/{memo}").status_code == 200


# --- F2: sorting by title or date places a blocked entry by what is shown ---------------------


def test_sort_by_title_places_blocked_entry_at_placeholder_title(net: Network) -> None:
    patient = net.citizen("adult")
    token = net.hcp_token(patient)
    order = shown_ids(net.search(token, patient, _sort="title"))
    # Hidden title "Aab brev" would put it second; "Sperret" sorts after "Mmm brev".
    assert order.index("Sperret") > order.index(uid(net, "memo"))
    paged: list[str] = []
    r = net.search(token, patient, _sort="title", _count="1")
    while True:
        paged.extend(shown_ids(r))
        nxt = [link["url"] for link in r.json()["link"] if link["relation"] == "next"]
        if not nxt:
            break
        r = net.get(token, nxt[0])
    assert paged == order


def test_sort_by_date_places_blocked_entry_at_its_shown_date(net: Network) -> None:
    patient = net.citizen("adult")
    order = shown_ids(net.search(net.hcp_token(patient), patient, _sort="-date"))
    # Created 20 days ago (newest) but shown with its service start 900 days ago: last.
    assert order[-1] == "Sperret"


# --- F3: total counts what the caller may receive ---------------------------------------------


def test_kj_scope_total_counts_only_returned_documents(net: Network) -> None:
    patient = net.citizen("elderly")
    token = net.hcp_token(patient, scope=KJ_SCOPE)
    r = net.search(token, patient, headers={"nhn-access-basis": "AKUTT"})
    body = r.json()
    assert set(shown_ids(r)) == {uid(net, "new_lab"), uid(net, "summary")}
    assert body["total"] == 2
    # More than one page: the total is counted when asked for (`_total=accurate`).
    first = net.search(
        token, patient, _count="1", _total="accurate", headers={"nhn-access-basis": "AKUTT"}
    )
    assert first.json()["total"] == 2 and len(first.json()["entry"]) == 1


# --- F4: another patient's document answers as a made-up one ---------------------------------


def _made_up_url(net: Network) -> str:
    real = RetrieveKey.parse(net.retrieve_url(net.docs["teen"][0]).rsplit("/", 1)[1])
    fake = RetrieveKey(
        real.home_community_id,
        real.repository_unique_id,
        DocumentUniqueId("2.16.578.1.12.4.5.100.1.1.987654321"),
    )
    return f"{net.fhir}/Binary/{fake.token()}"


def _answer(r: httpx.Response) -> tuple[int, bytes, list[str], str | None]:
    volatile = {"date", "x-correlation-id", "x-request-id"}
    names = sorted(k for k in r.headers if k not in volatile)
    return r.status_code, r.content, names, r.headers.get("content-type")


def test_retrieve_of_another_patients_document_answers_like_a_made_up_one(net: Network) -> None:
    patient = net.citizen("adult")
    token = net.hcp_token(patient)
    before = len(audit_rows(net))
    foreign = net.get(token, net.retrieve_url(net.docs["teen"][0]))
    made_up = net.get(token, _made_up_url(net))
    assert foreign.status_code == 404
    assert _answer(foreign) == _answer(made_up)
    assert "wrong-patient" not in foreign.text
    denied = [
        a
        for a in audit_rows(net)[before:]
        if a.action is AuditAction.RETRIEVE and a.outcome is AuditOutcome.DENIED
    ]
    assert [a.reason for a in denied] == ["wrong-patient", "document-not-found"]
    assert denied[0].patient_id == net.citizen("teen17")


def test_retrieve_of_a_hidden_document_answers_like_a_made_up_one(net: Network) -> None:
    """A citizen's own V document is hidden from them: not confirmed by a retrieve either."""
    citizen = net.citizen_token("adult")
    hidden = net.get(citizen, net.retrieve_url(net.docs["own_v"][0]))
    assert _answer(hidden) == _answer(net.get(citizen, _made_up_url(net)))
    reasons = [a.reason for a in audit_rows(net) if a.document_ids == (uid(net, "own_v"),)]
    assert "document-restricted" in reasons


def test_retrieve_with_a_foreign_patient_header_answers_alike_for_any_key(net: Network) -> None:
    """Binding is checked before the document: naming patient B without B's binding tells
    nothing about which keys are B's."""
    token = net.hcp_token(net.citizen("adult"))
    token.patient = net.citizen("teen17")
    foreign = net.get(token, net.retrieve_url(net.docs["teen"][0]))
    made_up = net.get(token, _made_up_url(net))
    assert foreign.status_code == 403
    assert _answer(foreign) == _answer(made_up)


def test_retrieve_of_a_blocked_document_of_the_patient_is_still_403(net: Network) -> None:
    """The placeholder already says blocked documents exist: the refusal names the block."""
    patient = net.citizen("adult")
    r = net.get(net.hcp_token(patient), net.retrieve_url(net.docs["secret"][0]))
    assert r.status_code == 403 and "document-blocked" in r.text


# --- the same behind the hub: the source's answers to a hub assertion -------------------------


def _via_hub(net: Network, token: Token) -> dict[str, str]:
    """Headers of a request the hub forwards: a hub assertion for the caller's token."""
    return hub_headers(net, token, "hub-privacy")


def test_behind_the_hub_blocked_entry_is_not_matched_by_its_hidden_type(net: Network) -> None:
    patient = net.citizen("adult")
    url = f"{net.fhir}/DocumentReference"
    answers = []
    for value in (f"{V}9602|I02-2", f"{V}9602|B02-2", None):
        params = {"patient.identifier": patient, **({"type": value} if value else {})}
        r = httpx.get(url, params=params, headers=_via_hub(net, net.hcp_token(patient)))
        answers.append(placeholders(r))
    assert answers == [0, 0, 1]


def test_behind_the_hub_another_patients_document_answers_like_a_made_up_one(
    net: Network,
) -> None:
    patient = net.citizen("adult")
    foreign_url = net.retrieve_url(net.docs["teen"][0])
    foreign = httpx.get(foreign_url, headers=_via_hub(net, net.hcp_token(patient)))
    made_up = httpx.get(_made_up_url(net), headers=_via_hub(net, net.hcp_token(patient)))
    assert foreign.status_code == 404
    assert _answer(foreign) == _answer(made_up)
