"""ITI-38 and ITI-39 against a real region on 127.0.0.1, driven by zeep with the shipped WSDLs.

zeep is a SOAP client no one here wrote: it builds the requests from our WSDLs and schemas,
and reads the answers (MTOM/XOP included). Every answer's body is validated against the
shipped ebRS 3.0 / XDS.b schemas, and every RegistryError must be located at the region's
homeCommunityId (IHE ITI TF-2 3.38.4.1.3).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lxml import etree

from onerecord.audit import AuditAction, AuditOutcome
from onerecord.source.settings import SourceSettings
from onerecord.source.xca_app import load_xua_settings
from onerecord.xca.query import FIND_DOCUMENTS, GET_ASSOCIATIONS, GET_DOCUMENTS
from onerecord.xca.xml import NS, QUERY, RS, XDSB, qname
from tests.source.trust_harness import HCID, REPOSITORY
from tests.source.xca_support import (
    make_assertion,
    make_dev_issuer,
    patient_cx,
    response_schema,
    security_header,
    source_overrides,
)

if not os.environ.get("CI"):  # with CI=true a missing zeep fails, as the vectors do
    pytest.importorskip("zeep")

import zeep  # noqa: E402
from zeep.exceptions import Fault  # noqa: E402
from zeep.plugins import HistoryPlugin  # noqa: E402

from tests.source.xca_network import XcaNetwork, start_xca_network  # noqa: E402

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SCHEMA = response_schema()


@pytest.fixture(scope="module")
def xca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XcaNetwork]:
    with start_xca_network(tmp_path_factory.mktemp("xca")) as network:
        yield network


def _slot(name: str, *values: str) -> dict[str, Any]:
    return {"name": name, "ValueList": {"Value": list(values)}}


def find_documents(xca: XcaNetwork, assertion: Any, patient: str, *, leaf: bool = True) -> Any:
    history = HistoryPlugin()
    service = xca.client("iti38", history)
    result = service.RespondingGateway_CrossGatewayQuery(
        ResponseOption={
            "returnType": "LeafClass" if leaf else "ObjectRef",
            "returnComposedObjects": True,
        },
        AdhocQuery={
            "id": FIND_DOCUMENTS,
            "Slot": [
                _slot("$XDSDocumentEntryPatientId", f"'{patient_cx(patient)}'"),
                _slot("$XDSDocumentEntryStatus", f"('{APPROVED}')"),
            ],
        },
        _soapheaders=[security_header(assertion)],
    )
    return result, _checked_body(history)


def _checked_body(history: HistoryPlugin) -> Any:
    """The answer's Body child, schema-validated, its RegistryErrors located at the region."""
    envelope = history.last_received["envelope"]
    body = envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]
    copy = etree.fromstring(etree.tostring(body))
    SCHEMA.assertValid(copy)
    for error in copy.iter(qname(RS, "RegistryError")):
        assert error.get("location") == HCID, etree.tostring(error)
    return copy


def unique_ids(body: Any) -> set[str]:
    return {
        e.get("value")
        for e in body.iterfind(".//rim:ExternalIdentifier", NS)
        if e.get("identificationScheme") == UNIQUE_ID
    }


def titles(body: Any) -> list[str]:
    return [
        s.get("value")
        for s in body.iterfind(".//rim:ExtrinsicObject/rim:Name/rim:LocalizedString", NS)
    ]


def errors(body: Any) -> list[tuple[str, str]]:
    return [(e.get("errorCode"), e.get("location")) for e in body.iter(qname(RS, "RegistryError"))]


# --- ITI-38 ------------------------------------------------------------------------------------


def test_iti38_find_documents_shows_the_same_as_the_policy_and_obfuscates_the_blocked(
    xca: XcaNetwork,
) -> None:
    adult = xca.net.citizen("adult")
    before = len(xca.audit_rows())
    result, body = find_documents(xca, xca.hcp_assertion(adult), adult)
    assert result.status == SUCCESS
    shown = unique_ids(body)
    assert xca.docs["adult_n"].unique_id.value in shown
    assert xca.docs["adult_nors"].unique_id.value not in shown
    assert xca.docs["other_n"].unique_id.value not in shown
    # The blocked entry is there, masked as the national answer masks one.
    assert "Sperret" in titles(body)
    ids = [e.get("id") for e in body.iterfind(".//rim:ExtrinsicObject", NS)]
    homes = {e.get("home") for e in body.iterfind(".//rim:ExtrinsicObject", NS)}
    assert homes == {HCID}  # every entry, the masked one too (ITI TF-2 3.38.4.1.3)
    assert "urn:uuid:00000000-0000-0000-0000-000000000000" in ids
    assert f"{REPOSITORY}^-1" in shown
    # zeep read the same answer.
    objects = result.RegistryObjectList
    assert objects is not None
    rows = xca.audit_rows()[before:]
    assert [(r.action, r.outcome) for r in rows] == [(AuditAction.SEARCH, AuditOutcome.SUCCESS)]
    assert rows[0].patient_id == adult and rows[0].token_jti is not None


def test_iti38_object_ref_answers_references(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    result, body = find_documents(xca, xca.hcp_assertion(adult), adult, leaf=False)
    assert result.status == SUCCESS
    found = body.findall("rim:RegistryObjectList/rim:ObjectRef", NS)
    assert {r.get("home") for r in found} == {HCID}  # ITI TF-2 3.38.4.1.3
    refs = [r.get("id") for r in found]
    assert f"urn:uuid:{xca.docs['adult_n'].entry_uuid}" in refs
    assert body.find(".//rim:ExtrinsicObject", NS) is None


def test_iti38_get_documents_answers_only_the_asserted_patients(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    history = HistoryPlugin()
    service = xca.client("iti38", history)
    wanted = [xca.docs["adult_n"].unique_id.value, xca.docs["other_n"].unique_id.value]
    result = service.RespondingGateway_CrossGatewayQuery(
        ResponseOption={"returnType": "LeafClass", "returnComposedObjects": True},
        AdhocQuery={
            "id": GET_DOCUMENTS,
            "home": HCID,
            "Slot": [
                _slot("$XDSDocumentEntryUniqueId", "(" + ",".join(f"'{u}'" for u in wanted) + ")"),
                _slot("$homeCommunityId", f"'{HCID}'"),
            ],
        },
        _soapheaders=[security_header(xca.hcp_assertion(adult))],
    )
    body = _checked_body(history)
    assert result.status == SUCCESS
    assert unique_ids(body) == {xca.docs["adult_n"].unique_id.value}


def _get_associations(xca: XcaNetwork, *uuids: str, leaf: bool = True) -> tuple[Any, Any]:
    adult = xca.net.citizen("adult")
    history = HistoryPlugin()
    result = xca.client("iti38", history).RespondingGateway_CrossGatewayQuery(
        ResponseOption={"returnType": "LeafClass" if leaf else "ObjectRef"},
        AdhocQuery={
            "id": GET_ASSOCIATIONS,
            "Slot": [_slot("$uuid", "(" + ",".join(f"'{u}'" for u in uuids) + ")")],
        },
        _soapheaders=[security_header(xca.hcp_assertion(adult))],
    )
    return result, _checked_body(history)


def test_iti38_get_associations_answers_the_replacement(xca: XcaNetwork) -> None:
    old, new = xca.docs["adult_old"], xca.docs["adult_new"]
    result, body = _get_associations(xca, f"urn:uuid:{new.entry_uuid}")
    assert result.status == SUCCESS
    found = [
        (a.get("associationType"), a.get("sourceObject"), a.get("targetObject"))
        for a in body.iterfind("rim:RegistryObjectList/rim:Association", NS)
    ]
    assert found == [
        (
            "urn:ihe:iti:2007:AssociationType:RPLC",
            f"urn:uuid:{new.entry_uuid}",
            f"urn:uuid:{old.entry_uuid}",
        )
    ]
    # Asked by the replaced entry's id: the same association; by an unrelated one: none.
    _, by_target = _get_associations(xca, f"urn:uuid:{old.entry_uuid}", leaf=False)
    assert len(by_target.findall("rim:RegistryObjectList/rim:ObjectRef", NS)) == 1
    _, unrelated = _get_associations(xca, f"urn:uuid:{xca.docs['adult_n'].entry_uuid}")
    assert unrelated.findall("rim:RegistryObjectList/rim:Association", NS) == []


def test_iti38_another_patient_than_resource_id_is_refused_and_located(xca: XcaNetwork) -> None:
    adult, other = xca.net.citizen("adult"), xca.net.citizen("parent")
    before = len(xca.audit_rows())
    result, body = find_documents(xca, xca.hcp_assertion(adult), other)
    assert result.status == FAILURE
    assert errors(body) == [("XDSRegistryError", HCID)]
    assert unique_ids(body) == set()
    rows = xca.audit_rows()[before:]
    assert [(r.outcome, r.reason) for r in rows] == [(AuditOutcome.DENIED, "patient-mismatch")]


def test_iti38_a_tampered_assertion_is_refused(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    assertion = xca.hcp_assertion(adult)
    name_id = assertion.find(".//saml:NameID", NS)
    name_id.text = xca.net.citizen("parent")
    result, body = find_documents(xca, assertion, adult)
    assert result.status == FAILURE
    assert errors(body) == [("XDSRegistryError", HCID)]


def test_iti38_an_expired_assertion_is_refused(xca: XcaNetwork) -> None:
    import datetime as dt

    adult = xca.net.citizen("adult")
    who = xca.net.staff("doctor")
    from tests.source.xca_support import hcp_attributes

    old = make_assertion(
        xca.issuer,
        who.nin.value,
        hcp_attributes(xca.net.population, who, adult),
        issued=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
    )
    result, body = find_documents(xca, old, adult)
    assert result.status == FAILURE and errors(body) == [("XDSRegistryError", HCID)]


def test_iti38_unknown_stored_query_is_a_located_registry_error(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    history = HistoryPlugin()
    service = xca.client("iti38", history)
    result = service.RespondingGateway_CrossGatewayQuery(
        ResponseOption={"returnType": "LeafClass"},
        AdhocQuery={"id": f"urn:uuid:{uuid.uuid4()}", "Slot": []},
        _soapheaders=[security_header(xca.hcp_assertion(adult))],
    )
    body = _checked_body(history)
    assert result.status == FAILURE
    assert errors(body) == [("XDSUnknownStoredQuery", HCID)]


def test_a_citizen_finds_their_own_documents(xca: XcaNetwork) -> None:
    from tests.source.xca_support import citizen_attributes

    adult = xca.net.citizen("adult")
    assertion = make_assertion(xca.issuer, adult, citizen_attributes(adult))
    result, body = find_documents(xca, assertion, adult)
    assert result.status == SUCCESS
    assert xca.docs["adult_n"].unique_id.value in unique_ids(body)


# --- ITI-39 ------------------------------------------------------------------------------------


def _retrieve(xca: XcaNetwork, assertion: Any, *unique: str) -> tuple[Any, Any]:
    history = HistoryPlugin()
    service = xca.client("iti39", history)
    result = service.RespondingGateway_CrossGatewayRetrieve(
        DocumentRequest=[
            {"HomeCommunityId": HCID, "RepositoryUniqueId": REPOSITORY, "DocumentUniqueId": u}
            for u in unique
        ],
        _soapheaders=[security_header(assertion)],
    )
    return result, _checked_body(history)


def test_iti39_retrieves_several_documents_as_mtom(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    n, v = xca.docs["adult_n"], xca.docs["adult_v"]
    result, _ = _retrieve(xca, xca.hcp_assertion(adult), n.unique_id.value, v.unique_id.value)
    assert result.RegistryResponse.status == SUCCESS
    got = {d.DocumentUniqueId: d.Document for d in result.DocumentResponse}
    # zeep strips CR/LF at both ends of a binary MIME part (zeep.wsdl.attachments); the exact
    # bytes are checked on the raw answer in the next tests.
    assert got == {
        n.unique_id.value: xca.content["adult_n"].strip(b"\r\n"),
        v.unique_id.value: xca.content["adult_v"].strip(b"\r\n"),
    }
    assert {d.mimeType for d in result.DocumentResponse} == {"application/pdf"}


def test_iti39_partial_success_names_each_missing_document_at_the_region(
    xca: XcaNetwork,
) -> None:
    adult = xca.net.citizen("adult")
    before = len(xca.audit_rows())
    result, body = _retrieve(
        xca,
        xca.hcp_assertion(adult),
        xca.docs["adult_n"].unique_id.value,
        xca.docs["adult_nors"].unique_id.value,  # blocked
        xca.docs["other_n"].unique_id.value,  # another patient's
        "2.25.1234567",  # none
    )
    assert result.RegistryResponse.status == PARTIAL
    assert [d.DocumentUniqueId for d in result.DocumentResponse] == [
        xca.docs["adult_n"].unique_id.value
    ]
    assert len(errors(body)) == 3 and {loc for _, loc in errors(body)} == {HCID}
    outcomes = [(r.action, r.outcome) for r in xca.audit_rows()[before:]]
    assert outcomes.count((AuditAction.RETRIEVE, AuditOutcome.SUCCESS)) == 1
    assert outcomes.count((AuditAction.RETRIEVE, AuditOutcome.DENIED)) == 3


def test_iti39_answers_mtom_to_a_plain_request_and_reads_an_mtom_request(
    xca: XcaNetwork,
) -> None:
    adult = xca.net.citizen("adult")
    doc = xca.docs["adult_n"]
    envelope = _raw_retrieve_envelope(xca.hcp_assertion(adult), doc.unique_id.value)
    plain = httpx.post(
        f"{xca.net.source_url}/xca/iti39",
        content=envelope,
        headers={"content-type": 'application/soap+xml; charset=UTF-8; action="x"'},
        timeout=30,
    )
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("multipart/related")
    assert "content-length" not in plain.headers  # streamed as the store yields it
    assert 'type="application/xop+xml"' in plain.headers["content-type"]
    assert b"\r\n\r\n" + xca.content["adult_n"] + b"\r\n--MIMEBoundary_" in plain.content
    boundary = "MIME_boundary_test"
    mtom = (
        (
            f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; "
            'type="application/soap+xml"\r\nContent-ID: <root@test>\r\n\r\n'
        ).encode()
        + _raw_retrieve_envelope(xca.hcp_assertion(adult), doc.unique_id.value)
        + (f"\r\n--{boundary}--\r\n").encode()
    )
    multipart = httpx.post(
        f"{xca.net.source_url}/xca/iti39",
        content=mtom,
        headers={
            "content-type": f'multipart/related; type="application/xop+xml"; '
            f'boundary="{boundary}"; start="<root@test>"; start-info="application/soap+xml"'
        },
        timeout=30,
    )
    assert multipart.status_code == 200
    assert xca.content["adult_n"] in multipart.content


def _raw_retrieve_envelope(assertion: Any, unique: str) -> bytes:
    wsse = NS["wsse"]
    return (
        '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        "<env:Header><wsa:Action>urn:ihe:iti:2007:CrossGatewayRetrieve</wsa:Action>"
        f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
        f'<wsse:Security xmlns:wsse="{wsse}">'
        + etree.tostring(assertion).decode()
        + "</wsse:Security></env:Header><env:Body>"
        f'<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="{XDSB}"><xdsb:DocumentRequest>'
        f"<xdsb:HomeCommunityId>{HCID}</xdsb:HomeCommunityId>"
        f"<xdsb:RepositoryUniqueId>{REPOSITORY}</xdsb:RepositoryUniqueId>"
        f"<xdsb:DocumentUniqueId>{unique}</xdsb:DocumentUniqueId>"
        "</xdsb:DocumentRequest></xdsb:RetrieveDocumentSetRequest></env:Body></env:Envelope>"
    ).encode()


# --- faults, WSDL, configuration ---------------------------------------------------------------


def test_a_malformed_message_is_a_sender_fault_not_a_server_error(xca: XcaNetwork) -> None:
    for body in (b"<not-closed", b"<a/>", b""):
        r = httpx.post(
            f"{xca.net.source_url}/xca/iti38",
            content=body,
            headers={"content-type": "application/soap+xml"},
            timeout=30,
        )
        assert r.status_code == 400, r.text
        fault = etree.fromstring(r.content)
        assert fault.findtext(".//env:Code/env:Value", namespaces=NS) == "env:Sender"


def test_zeep_raises_the_sender_fault_of_a_retrieve_sent_to_the_query_endpoint(
    xca: XcaNetwork,
) -> None:
    adult = xca.net.citizen("adult")
    service = xca.client("iti39", path="/xca/iti38")
    with pytest.raises(Fault) as caught:
        service.RespondingGateway_CrossGatewayRetrieve(
            DocumentRequest=[
                {
                    "HomeCommunityId": HCID,
                    "RepositoryUniqueId": REPOSITORY,
                    "DocumentUniqueId": xca.docs["adult_n"].unique_id.value,
                }
            ],
            _soapheaders=[security_header(xca.hcp_assertion(adult))],
        )
    assert "Sender" in str(caught.value.code)
    assert "CrossGatewayQuery only" in caught.value.message


def test_the_wsdl_is_served_with_the_gateways_address(xca: XcaNetwork) -> None:
    url = f"{xca.net.source_url}/xca/iti38?wsdl"
    client = zeep.Client(url)
    port = next(iter(client.wsdl.services.values())).ports
    address = next(iter(port.values())).binding_options["address"]
    assert address == f"{xca.net.source_url}/xca/iti38"
    assert httpx.get(f"{xca.net.source_url}/xca/rim.xsd", timeout=10).status_code == 200
    assert httpx.get(f"{xca.net.source_url}/xca/other.xsd", timeout=10).status_code == 404


def test_the_development_issuer_is_refused_outside_dev_mode(tmp_path: Any) -> None:
    issuer = make_dev_issuer(tmp_path)
    overrides = source_overrides(issuer)
    common = {"issuer": "https://sts.test", "jwks_url": "https://sts.test/jwks"}
    settings = SourceSettings(**common, **overrides)
    assert load_xua_settings(settings) is not None
    overrides["dev_mode"] = False
    with pytest.raises(ValueError, match="development SAML certificate"):
        load_xua_settings(SourceSettings(**common, **overrides))


def test_the_answer_names_the_query_action(xca: XcaNetwork) -> None:
    adult = xca.net.citizen("adult")
    history = HistoryPlugin()
    service = xca.client("iti38", history)
    service.RespondingGateway_CrossGatewayQuery(
        ResponseOption={"returnType": "ObjectRef"},
        AdhocQuery={
            "id": FIND_DOCUMENTS,
            "Slot": [
                _slot("$XDSDocumentEntryPatientId", f"'{patient_cx(adult)}'"),
                _slot("$XDSDocumentEntryStatus", f"('{APPROVED}')"),
            ],
        },
        _soapheaders=[security_header(xca.hcp_assertion(adult))],
    )
    sent = history.last_sent["envelope"]
    received = history.last_received["envelope"]
    message_id = sent.findtext(".//wsa:MessageID", namespaces=NS)
    assert received.findtext(".//wsa:RelatesTo", namespaces=NS) == message_id
    assert (
        received.findtext(".//wsa:Action", namespaces=NS)
        == "urn:ihe:iti:2007:CrossGatewayQueryResponse"
    )
    assert received.find(f".//{{{QUERY}}}AdhocQueryResponse") is not None


def test_the_per_caller_limit_applies_to_xca_as_to_mhd(tmp_path: Any) -> None:
    with start_xca_network(tmp_path, caller_burst=2, caller_rate_per_s=0.001) as limited:
        adult = limited.net.citizen("adult")
        assertion = limited.hcp_assertion(adult)
        for _ in range(2):
            result, _ = find_documents(limited, assertion, adult)
            assert result.status == SUCCESS
        with pytest.raises(Fault) as caught:
            find_documents(limited, assertion, adult)
        assert "Sender" in str(caught.value.code)
        r = httpx.post(
            f"{limited.net.source_url}/xca/iti39",
            content=_raw_retrieve_envelope(assertion, limited.docs["adult_n"].unique_id.value),
            headers={"content-type": "application/soap+xml"},
            timeout=30,
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("name", "endpoint"),
    [
        ("requests/iti38-iti40-request-kj.xml", "iti38"),
        ("requests/iti38-iti40-request-hn.xml", "iti38"),
        ("requests/iti39-iti40-request-kj.xml", "iti39"),
        ("requests/iti39-iti40-request-hn.xml", "iti39"),
    ],
)
def test_the_networks_own_requests_get_a_located_refusal_not_a_fault(
    xca: XcaNetwork, name: str, endpoint: str
) -> None:
    # Their issuer is not trusted here (and reformatting broke their signatures): each is
    # read through to the SAML check and refused as the national gateway would, at this region.
    from tests.xca.vectors import vector

    before = _written_rows(xca)
    r = httpx.post(
        f"{xca.net.source_url}/xca/{endpoint}",
        content=vector(name),
        headers={"content-type": "application/soap+xml; charset=UTF-8"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    if endpoint == "iti39":
        r_body = r.content.split(b"\r\n\r\n", 1)[1].split(b"\r\n--MIMEBoundary_", 1)[0]
    else:
        r_body = r.content
    body = etree.fromstring(r_body).find(".//env:Body", NS)[0]
    SCHEMA.assertValid(body)
    assert errors(body) == [("XDSRegistryError", HCID)]
    assert _written_rows(xca) == before


def test_the_async_sample_is_refused_as_a_sender_fault(xca: XcaNetwork) -> None:
    from tests.xca.vectors import vector

    r = httpx.post(
        f"{xca.net.source_url}/xca/iti39",
        content=vector("requests/iti39-iti40-request-kj-async.xml"),
        headers={"content-type": "application/soap+xml"},
        timeout=30,
    )
    assert r.status_code == 400 and b"asynchronous" in r.content


def test_a_uuid_document_unique_id_is_not_found_per_document(xca: XcaNetwork) -> None:
    # The network's samples name documents by UUID; here uniqueIds are OIDs: not found, located.
    adult = xca.net.citizen("adult")
    result, body = _retrieve(
        xca,
        xca.hcp_assertion(adult),
        xca.docs["adult_n"].unique_id.value,
        "13fa8361-dd8f-43fd-a33c-93f3237306c3",
    )
    assert result.RegistryResponse.status == PARTIAL
    assert errors(body) == [("XDSDocumentUniqueIdError", HCID)]


def _written_rows(xca: XcaNetwork) -> int:
    return xca.registry_count()


def test_a_message_over_the_limit_is_refused_before_it_is_parsed(xca: XcaNetwork) -> None:
    r = httpx.post(
        f"{xca.net.source_url}/xca/iti38",
        content=b"<x>" + b" " * (17 * 1024 * 1024) + b"</x>",
        headers={"content-type": "application/soap+xml"},
        timeout=60,
    )
    assert r.status_code == 400 and b"too large" in r.content
