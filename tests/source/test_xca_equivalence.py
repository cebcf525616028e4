"""One system, two wires: the same person about the same patient over MHD and over XCA.

Same documents visible, the same ones blocked (masked), the same retrieve refused, and the same
audit outcome, reason and returned entries — because both wires hand the same principal to the
same PolicyGuard over the same store and write through the same AuditRecorder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from onerecord.audit import AuditRecord
from onerecord.xca.xml import NS
from tests.source.trust_harness import HCID, REPOSITORY
from tests.source.xca_support import (
    citizen_attributes,
    make_assertion,
    patient_cx,
    security_header,
)

pytest.importorskip("zeep")

from zeep.plugins import HistoryPlugin  # noqa: E402

from tests.source.xca_network import XcaNetwork, start_xca_network  # noqa: E402

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
FIND = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"


@pytest.fixture(scope="module")
def xca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XcaNetwork]:
    with start_xca_network(tmp_path_factory.mktemp("xca-eq")) as network:
        yield network


def _audit_view(record: AuditRecord) -> tuple[Any, ...]:
    """What the audit says of an access, apart from the wire (time, ids, token, correlation)."""
    practitioner = record.practitioner
    return (
        record.action,
        record.outcome,
        record.patient_id,
        record.reason,
        frozenset(record.document_ids),
        record.returned_count,
        None
        if practitioner is None
        else (
            practitioner.nin,
            practitioner.hpr,
            practitioner.role,
            practitioner.legal_entity,
            practitioner.point_of_care,
            practitioner.department,
            practitioner.purpose_of_use,
            practitioner.access_basis,
            practitioner.decision_ref_id,
        ),
        record.citizen,
        record.emergency_override,
    )


def _mhd(xca: XcaNetwork, token: Any, patient: str) -> tuple[set[str], int, int]:
    r = xca.net.search(token, patient)
    if r.status_code != 200:
        return set(), -1, r.status_code
    shown = {
        e["resource"]["masterIdentifier"]["value"].removeprefix("urn:oid:")
        for e in r.json().get("entry", [])
        if "masterIdentifier" in e["resource"]
    }
    return shown, int(r.headers["x-onerecord-masked-count"]), 200


def _xca(xca: XcaNetwork, assertion: Any, patient: str) -> tuple[set[str], int, int]:
    history = HistoryPlugin()
    result = xca.client("iti38", history).RespondingGateway_CrossGatewayQuery(
        ResponseOption={"returnType": "LeafClass", "returnComposedObjects": True},
        AdhocQuery={
            "id": FIND,
            "Slot": [
                {
                    "name": "$XDSDocumentEntryPatientId",
                    "ValueList": {"Value": [f"'{patient_cx(patient)}'"]},
                },
                {"name": "$XDSDocumentEntryStatus", "ValueList": {"Value": [f"('{APPROVED}')"]}},
            ],
        },
        _soapheaders=[security_header(assertion)],
    )
    body = history.last_received["envelope"].find(".//env:Body", NS)[0]
    if result.status.endswith("Failure"):
        return set(), -1, 403
    masked = "^-1"
    shown = {
        e.get("value")
        for e in body.iterfind(".//rim:ExternalIdentifier", NS)
        if e.get("identificationScheme") == UNIQUE_ID and not e.get("value").endswith(masked)
    }
    blocked = sum(
        1
        for e in body.iterfind(".//rim:ExternalIdentifier", NS)
        if e.get("identificationScheme") == UNIQUE_ID and e.get("value").endswith(masked)
    )
    return shown, blocked, 200


def _compare_search(xca: XcaNetwork, token: Any, assertion: Any, patient: str) -> None:
    start = len(xca.audit_rows())
    over_mhd = _mhd(xca, token, patient)
    middle = len(xca.audit_rows())
    over_xca = _xca(xca, assertion, patient)
    rows = xca.audit_rows()
    assert over_mhd == over_xca
    assert [_audit_view(r) for r in rows[start:middle]] == [_audit_view(r) for r in rows[middle:]]
    assert middle > start  # each wire wrote its audit record


def test_a_health_worker_sees_the_same_and_the_same_is_blocked(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    token = xca.net.hcp_token(adult)
    _compare_search(xca, token, xca.hcp_assertion(adult), adult)
    shown, blocked, _ = _mhd(xca, xca.net.hcp_token(adult), adult)
    assert blocked == 1 and xca.docs["adult_n"].unique_id.value in shown  # not trivially equal


def test_the_citizen_sees_the_same_of_themself(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    token = xca.net.citizen_token("adult")
    assertion = make_assertion(xca.issuer, adult, citizen_attributes(adult))
    _compare_search(xca, token, assertion, adult)


def test_a_citizen_about_a_stranger_is_refused_alike(xca: XcaNetwork) -> None:
    adult, other = xca.net.citizen("adult"), xca.net.citizen("parent")
    token = xca.net.citizen_token("adult", patient=other)
    assertion = make_assertion(
        xca.issuer,
        adult,
        citizen_attributes(adult, None)
        | {"urn:oasis:names:tc:xacml:1.0:resource:resource-id": patient_cx(other)},
    )
    _compare_search(xca, token, assertion, other)
    assert _mhd(xca, token, other)[2] == 403


def test_the_blocked_document_is_refused_alike_on_retrieve(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    nors = xca.docs["adult_nors"]
    start = len(xca.audit_rows())
    token = xca.net.hcp_token(adult)
    r = xca.net.get(token, xca.net.retrieve_url(nors))
    assert r.status_code == 403
    middle = len(xca.audit_rows())
    result = xca.client("iti39").RespondingGateway_CrossGatewayRetrieve(
        DocumentRequest=[
            {
                "HomeCommunityId": HCID,
                "RepositoryUniqueId": REPOSITORY,
                "DocumentUniqueId": nors.unique_id.value,
            }
        ],
        _soapheaders=[security_header(xca.hcp_assertion(adult))],
    )
    assert result.RegistryResponse.status.endswith("Failure")
    assert not result.DocumentResponse
    rows = xca.audit_rows()
    assert [_audit_view(r) for r in rows[start:middle]] == [_audit_view(r) for r in rows[middle:]]
    assert rows[-1].reason == "document-blocked"


def test_a_retrieved_document_is_audited_alike(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    doc = xca.docs["adult_n"]
    start = len(xca.audit_rows())
    r = xca.net.get(xca.net.hcp_token(adult), xca.net.retrieve_url(doc))
    assert r.status_code == 200 and r.content == xca.content["adult_n"]
    middle = len(xca.audit_rows())
    result = xca.client("iti39").RespondingGateway_CrossGatewayRetrieve(
        DocumentRequest=[
            {"HomeCommunityId": HCID, "RepositoryUniqueId": REPOSITORY, "DocumentUniqueId": d}
            for d in [doc.unique_id.value]
        ],
        _soapheaders=[security_header(xca.hcp_assertion(adult))],
    )
    assert [d.DocumentUniqueId for d in result.DocumentResponse] == [doc.unique_id.value]
    rows = xca.audit_rows()
    assert [_audit_view(r) for r in rows[start:middle]] == [_audit_view(r) for r in rows[middle:]]


def test_nothing_else_differs_between_the_wires_for_an_unknown_patient(xca: XcaNetwork) -> None:
    # A patient with no documents here: both wires answer empty and audit it alike.
    nobody = xca.net.citizen("teen17")
    _compare_search(xca, xca.net.hcp_token(nobody), xca.hcp_assertion(nobody), nobody)
    assert httpx.get(f"{xca.net.source_url}/healthz", timeout=5).status_code == 200
