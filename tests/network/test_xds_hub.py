"""The hub as the national XDS.b registry: ITI-18 and ITI-43 answered from every region.

One real network (`onerecord demo`: STS, hub, four regions on 127.0.0.1) for the module; zeep
with our WSDLs is the clinical system. The caller's SAML assertion is signed by the demo's
development clinical issuer, which the hub and every region trust: the hub relays it, so each
region verifies it itself. Every answer is validated against the shipped schemas, and every
RegistryError must be located at a homeCommunityId (a region's, or the hub's own).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord
from onerecord.synth.dataset import load_population
from onerecord.synth.population import Population
from onerecord.xca.mtom import mtom_parts
from onerecord.xca.query import FIND_DOCUMENTS, GET_ASSOCIATIONS, GET_DOCUMENTS
from onerecord.xca.saml import load_certificate
from onerecord.xca.soap import parse_envelope
from onerecord.xca.xml import NS, RS, SOAP12, qname
from tests.network.conftest import Network, running_network
from tests.network.test_network import documents, search
from tests.source.xca_support import (
    WSDL_DIR,
    DevIssuer,
    citizen_attributes,
    hcp_attributes,
    make_assertion,
    make_dev_issuer,
    patient_cx,
    response_schema,
    security_header,
)
from tests.xca.vectors import vector

if not os.environ.get("CI"):  # with CI=true a missing zeep fails, as the vectors do
    pytest.importorskip("zeep")

from zeep import Client, Plugin, Settings  # noqa: E402
from zeep.plugins import HistoryPlugin  # noqa: E402
from zeep.transports import Transport  # noqa: E402

pytestmark = pytest.mark.slow

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
ZERO = "urn:uuid:00000000-0000-0000-0000-000000000000"
HUB_HCID = "urn:oid:2.16.578.1.12.4.5.100"
QUERY_BINDING = "{urn:ihe:iti:xds-b:2007}DocumentRegistry_RegistryStoredQuery_Binding_Soap12"
RETRIEVE_BINDING = "{urn:ihe:iti:xds-b:2007}DocumentRepository_RetrieveDocumentSet_Binding_Soap12"
SCHEMA = response_schema()


class Xds:
    """The running network, the clinical issuer, and a zeep client for the hub."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.population: Population = load_population(
            Path(network.manifest["dataset"]) / "population.json"
        )
        saml = network.manifest["xds_saml"]
        key = serialization.load_pem_private_key(Path(saml["key_file"]).read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        certificate_file = Path(saml["certificate_file"])
        certificate = load_certificate(certificate_file.read_bytes())
        self.issuer = DevIssuer(key, certificate, certificate_file)
        self.audience = str(saml["audience"])
        self.hub = str(network.manifest["hub"]["base_url"])

    @property
    def adult(self) -> str:
        return str(self.network.manifest["patients"]["adult"])

    def hcp(self, patient: str, *, staff: str = "doctor", **kw: Any) -> Any:
        who = self.population.staff[staff]
        attributes = hcp_attributes(self.population, who, patient)
        attributes.update(kw)
        return make_assertion(self.issuer, who.nin.value, attributes, audience=self.audience)

    def citizen(self, nin: str) -> Any:
        return make_assertion(self.issuer, nin, citizen_attributes(nin), audience=self.audience)

    def client(self, operation: str, *plugins: Plugin) -> Any:
        wsdl = {"iti18": "XDS_Registry_Query.wsdl", "iti43": "XDS_Repository_Retrieve.wsdl"}
        client = Client(
            str(WSDL_DIR / wsdl[operation]),
            transport=Transport(timeout=30, operation_timeout=30),
            settings=Settings(strict=True),
            plugins=list(plugins),
        )
        binding = QUERY_BINDING if operation == "iti18" else RETRIEVE_BINDING
        return client.create_service(binding, f"{self.hub}/xca/{operation}")

    def hub_audit(self) -> list[AuditRecord]:
        path = self.network.layout.workdir / "hub" / "audit.db"
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT event FROM audit_event ORDER BY seq").fetchall()
        return [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]

    def region_audit(self, index: int) -> list[AuditRecord]:
        slug = self.network.manifest["regions"][index]["slug"]
        with sqlite3.connect(self.network.layout.workdir / slug / "registry.db") as conn:
            rows = conn.execute("SELECT event FROM audit_event ORDER BY seq").fetchall()
        return [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]

    def registry_counts(self) -> list[int]:
        out = []
        for region in self.network.manifest["regions"]:
            path = self.network.layout.workdir / region["slug"] / "registry.db"
            with sqlite3.connect(path) as conn:
                out.append(int(conn.execute("SELECT count(*) FROM document_entry").fetchone()[0]))
        return out

    def set_protocol(self, index: int, protocol: str) -> None:
        hcid = self.network.hcid(index)
        url = self.network.layout.region_url(index)

        def change(regions: list[dict[str, Any]]) -> None:
            entry = next(r for r in regions if r["home_community_id"] == hcid)
            for key in ("protocol", "iti38_url", "iti39_url"):
                entry.pop(key, None)
            if protocol == "xca":
                entry.update(
                    protocol="xca", iti38_url=f"{url}/xca/iti38", iti39_url=f"{url}/xca/iti39"
                )

        self.network.rewrite_directory(change)


@pytest.fixture(scope="module")
def xds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xds]:
    yield from (Xds(n) for n in running_network(tmp_path_factory.mktemp("xds-network")))


def _slot(name: str, *values: str) -> dict[str, Any]:
    return {"name": name, "ValueList": {"Value": list(values)}}


def _checked(history: HistoryPlugin) -> Any:
    """The answer's Body child, schema-validated, every RegistryError located at an hcid."""
    envelope = history.last_received["envelope"]
    body = envelope.find(f"{{{SOAP12}}}Body")[0]
    copy = etree.fromstring(etree.tostring(body))
    SCHEMA.assertValid(copy)
    for error in copy.iter(qname(RS, "RegistryError")):
        assert (error.get("location") or "").startswith("urn:oid:"), etree.tostring(error)
    return copy


def find_documents(
    xds: Xds,
    assertion: Any,
    patient: str,
    *,
    leaf: bool = True,
    statuses: tuple[str, ...] = (APPROVED,),
) -> tuple[Any, Any]:
    history = HistoryPlugin()
    result = xds.client("iti18", history).DocumentRegistry_RegistryStoredQuery(
        ResponseOption={
            "returnType": "LeafClass" if leaf else "ObjectRef",
            "returnComposedObjects": True,
        },
        AdhocQuery={
            "id": FIND_DOCUMENTS,
            "Slot": [
                _slot("$XDSDocumentEntryPatientId", f"'{patient_cx(patient)}'"),
                _slot("$XDSDocumentEntryStatus", "(" + ",".join(f"'{s}'" for s in statuses) + ")"),
            ],
        },
        _soapheaders=[security_header(assertion)],
    )
    return result, _checked(history)


def stored_query(xds: Xds, assertion: Any, query_id: str, *slots: dict[str, Any], **kw: Any) -> Any:
    history = HistoryPlugin()
    result = xds.client("iti18", history).DocumentRegistry_RegistryStoredQuery(
        ResponseOption={"returnType": "LeafClass", "returnComposedObjects": True},
        AdhocQuery={"id": query_id, "Slot": list(slots), **kw},
        _soapheaders=[security_header(assertion)],
    )
    return result, _checked(history)


def unique_ids(body: Any) -> set[str]:
    return {
        e.get("value")
        for e in body.iterfind(".//rim:ExternalIdentifier", NS)
        if e.get("identificationScheme") == UNIQUE_ID
    }


def objects(body: Any) -> list[Any]:
    return list(body.iterfind(".//rim:ExtrinsicObject", NS))


def errors(body: Any) -> list[tuple[str, str]]:
    return [(e.get("errorCode"), e.get("location")) for e in body.iter(qname(RS, "RegistryError"))]


def _overview(body: Any) -> tuple[list[str], int]:
    """The shown uniqueIds (sorted) and the number of obfuscated entries."""
    shown = sorted(u for u in unique_ids(body) if not u.endswith("^-1"))
    masked = sum(1 for o in objects(body) if o.get("id") == ZERO)
    return shown, masked


@contextmanager
def frozen(xds: Xds, *indexes: int) -> Iterator[None]:
    procs = [xds.network.region_process(i) for i in indexes]
    for proc in procs:
        proc.suspend()
    try:
        yield
    finally:
        for proc in procs:
            proc.resume()


# --- ITI-18 ------------------------------------------------------------------------------------


def test_iti18_find_documents_merges_every_region_as_the_mhd_search_does(xds: Xds) -> None:
    patient = xds.adult
    before = len(xds.hub_audit())
    assertion = xds.hcp(patient)
    result, body = find_documents(xds, assertion, patient, statuses=(APPROVED, DEPRECATED))
    assert result.status == SUCCESS, errors(body)
    # Each region verified the relayed assertion itself and audited the caller under its ID.
    for index in range(4):
        audited = [r for r in xds.region_audit(index) if r.token_jti == assertion.get("ID")]
        assert [(r.action, r.outcome) for r in audited] == [
            (AuditAction.SEARCH, AuditOutcome.SUCCESS)
        ]
        assert audited[0].practitioner is not None and audited[0].patient_id == patient
    homes = {o.get("home") for o in objects(body)}
    assert len(homes) >= 2, homes  # several regions' entries, each with its community
    # The same documents, the same blocked ones, as the hub's MHD search of the same person.
    bundle, _ = search(
        xds.network,
        xds.network.practitioner(patient),
        patient,
        _count="200",
        status="current,superseded",
    )
    assert bundle.status_code == 200, bundle.text
    mhd = documents(bundle.json())
    shown, masked = _overview(body)
    assert shown == sorted(
        d["masterIdentifier"]["value"].removeprefix("urn:oid:")
        for d in mhd
        if "masterIdentifier" in d
    )
    assert masked == sum(1 for d in mhd if "masterIdentifier" not in d) > 0
    # Blocked entries obfuscated as the national answer shows them.
    blocked = [o for o in objects(body) if o.get("id") == ZERO]
    name = blocked[0].find("rim:Name/rim:LocalizedString", NS)
    assert name is not None and name.get("value") == "Sperret"
    rows = xds.hub_audit()[before:]
    search_rows = [r for r in rows if r.action is AuditAction.SEARCH]
    assert search_rows and search_rows[-1].outcome is AuditOutcome.SUCCESS
    assert search_rows[-1].patient_id == patient
    assert {hcid for hcid, _ in search_rows[-1].regions} == {xds.network.hcid(i) for i in range(4)}


def test_iti18_object_ref_names_each_entrys_community(xds: Xds) -> None:
    patient = xds.adult
    result, body = find_documents(xds, xds.hcp(patient), patient, leaf=False)
    assert result.status == SUCCESS
    refs = body.findall("rim:RegistryObjectList/rim:ObjectRef", NS)
    assert refs and all(r.get("home", "").startswith("urn:oid:") for r in refs)
    assert body.find(".//rim:ExtrinsicObject", NS) is None


def test_iti18_get_documents_and_get_associations(xds: Xds) -> None:
    patient = xds.adult
    _, found = find_documents(xds, xds.hcp(patient), patient, statuses=(APPROVED, DEPRECATED))
    full = [o for o in objects(found) if o.get("id") != ZERO]
    first = full[0]
    unique = next(
        e.get("value")
        for e in first.iterfind("rim:ExternalIdentifier", NS)
        if e.get("identificationScheme") == UNIQUE_ID
    )
    result, body = stored_query(
        xds,
        xds.hcp(patient),
        GET_DOCUMENTS,
        _slot("$XDSDocumentEntryUniqueId", f"('{unique}')"),
        _slot("$homeCommunityId", f"'{first.get('home')}'"),
        home=first.get("home"),
    )
    assert result.status == SUCCESS, errors(body)
    assert unique_ids(body) == {unique}
    result, body = stored_query(
        xds,
        xds.hcp(patient),
        GET_ASSOCIATIONS,
        _slot("$uuid", "(" + ",".join(f"'{o.get('id')}'" for o in full) + ")"),
    )
    assert result.status == SUCCESS, errors(body)
    found = {
        (a.get("associationType"), a.get("sourceObject"), a.get("targetObject"))
        for a in body.iterfind("rim:RegistryObjectList/rim:Association", NS)
    }
    # The replacements the hub's MHD search shows (relatesTo), as RPLC between entryUUIDs.
    bundle, _ = search(
        xds.network,
        xds.network.practitioner(patient),
        patient,
        _count="200",
        status="current,superseded",
    )
    shown = [d for d in documents(bundle.json()) if "masterIdentifier" in d]
    uuid_of = {d["masterIdentifier"]["value"]: _entry_uuid(d) for d in shown}
    expected = {
        (
            "urn:ihe:iti:2007:AssociationType:RPLC",
            _entry_uuid(d),
            uuid_of[r["target"]["identifier"]["value"]],
        )
        for d in shown
        for r in d.get("relatesTo", [])
        if r["target"]["identifier"]["value"] in uuid_of
    }
    assert expected, "the demo's adult has a replaced document"
    assert found == expected


def _entry_uuid(doc: dict[str, Any]) -> str:
    return next(
        i["value"] for i in doc["identifier"] if str(i.get("value", "")).startswith("urn:uuid:")
    )


def test_a_citizen_finds_their_own_documents_as_over_mhd(xds: Xds) -> None:
    patient = xds.adult
    result, body = find_documents(xds, xds.citizen(patient), patient)
    assert result.status == SUCCESS, errors(body)
    bundle, _ = search(xds.network, xds.network.citizen(patient), patient, _count="200")
    assert bundle.status_code == 200, bundle.text
    mhd = documents(bundle.json())
    assert _overview(body) == (
        sorted(
            d["masterIdentifier"]["value"].removeprefix("urn:oid:")
            for d in mhd
            if "masterIdentifier" in d
        ),
        sum(1 for d in mhd if "masterIdentifier" not in d),
    )
    assert _overview(body)[0]


def _refused(body: Any) -> tuple[str, str]:
    (error,) = errors(body)
    return error


def test_a_caller_asking_for_another_patient_is_refused_at_the_hub_and_audited(
    xds: Xds,
) -> None:
    patient = xds.adult
    other = str(xds.network.manifest["patients"]["child11"])
    before = len(xds.hub_audit())
    result, body = find_documents(xds, xds.hcp(other), patient)  # resource-id ≠ query patient
    assert result.status == FAILURE
    assert _refused(body) == ("XDSRegistryError", HUB_HCID)
    rows = xds.hub_audit()[before:]
    assert [(r.action, r.outcome, r.reason) for r in rows] == [
        (AuditAction.SEARCH, AuditOutcome.DENIED, "patient-mismatch")
    ]
    assert rows[0].regions == ()  # no region was asked


@pytest.mark.parametrize("problem", ["tampered", "expired", "untrusted-key", "unknown-issuer"])
def test_a_bad_assertion_is_refused_and_audited(xds: Xds, tmp_path: Path, problem: str) -> None:
    patient = xds.adult
    if problem == "tampered":
        assertion = xds.hcp(patient)
        for value in assertion.iter("{urn:oasis:names:tc:SAML:2.0:assertion}AttributeValue"):
            if value.text == "4":
                value.text = "3"  # one attribute changed after signing
    elif problem == "expired":
        who = xds.population.staff["doctor"]
        assertion = make_assertion(
            xds.issuer,
            who.nin.value,
            hcp_attributes(xds.population, who, patient),
            audience=xds.audience,
            issued=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
            lifetime=dt.timedelta(minutes=30),
        )
    elif problem == "unknown-issuer":
        assertion = xds.hcp(patient)
        issuer = assertion.find("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer")
        issuer.text = "https://helseid-xdssaml.test.nhn.no"  # an issuer the hub does not list
    else:
        stranger = make_dev_issuer(tmp_path)  # same issuer name, a key nobody trusts
        who = xds.population.staff["doctor"]
        assertion = make_assertion(
            stranger,
            who.nin.value,
            hcp_attributes(xds.population, who, patient),
            audience=xds.audience,
        )
    before = len(xds.hub_audit())
    result, body = find_documents(xds, assertion, patient)
    assert result.status == FAILURE
    assert _refused(body) == ("XDSRegistryError", HUB_HCID)
    rows = xds.hub_audit()[before:]
    assert len(rows) == 1 and rows[0].outcome is AuditOutcome.DENIED
    expected = {
        "tampered": "saml-signature",
        "expired": "saml-expired",
        "untrusted-key": "saml-signature",
        "unknown-issuer": "saml-issuer",
    }
    assert rows[0].reason == expected[problem]


def test_partial_success_names_the_stopped_region_and_failure_when_none_answers(
    xds: Xds,
) -> None:
    patient = xds.adult
    stopped = xds.network.hcid(1)
    with frozen(xds, 1):
        result, body = find_documents(xds, xds.hcp(patient), patient)
    assert result.status == PARTIAL
    assert errors(body) == [("XDSUnavailableCommunity", stopped)]
    assert stopped not in {o.get("home") for o in objects(body)}
    assert objects(body)
    with frozen(xds, 0, 1, 2, 3):
        result, body = find_documents(xds, xds.hcp(patient), patient)
    assert result.status == FAILURE
    assert sorted(errors(body)) == sorted(
        ("XDSUnavailableCommunity", xds.network.hcid(i)) for i in range(4)
    )
    assert not objects(body)


# --- ITI-43 ------------------------------------------------------------------------------------


def _retrieve(xds: Xds, assertion: Any, items: list[dict[str, str]]) -> tuple[Any, Any]:
    history = HistoryPlugin()
    result = xds.client("iti43", history).DocumentRepository_RetrieveDocumentSet(
        DocumentRequest=items, _soapheaders=[security_header(assertion)]
    )
    return result, _checked(history)


def _requests(body: Any, count: int) -> list[dict[str, str]]:
    """DocumentRequests for `count` shown entries of different regions where possible."""
    by_home: dict[str, Any] = {}
    for o in objects(body):
        if o.get("id") != ZERO:
            by_home.setdefault(o.get("home"), o)
    out = []
    for home, o in list(by_home.items())[:count]:
        slots = {
            s.get("name"): s.findtext("rim:ValueList/rim:Value", namespaces=NS)
            for s in o.iterfind("rim:Slot", NS)
        }
        unique = next(
            e.get("value")
            for e in o.iterfind("rim:ExternalIdentifier", NS)
            if e.get("identificationScheme") == UNIQUE_ID
        )
        out.append(
            {
                "HomeCommunityId": home,
                "RepositoryUniqueId": slots["repositoryUniqueId"],
                "DocumentUniqueId": unique,
            }
        )
    return out


def test_iti43_retrieves_from_each_owning_region_with_located_errors(xds: Xds) -> None:
    patient = xds.adult
    _, found = find_documents(xds, xds.hcp(patient), patient)
    wanted = _requests(found, 2)
    assert len(wanted) == 2
    missing = {**wanted[0], "DocumentUniqueId": "2.25.1"}
    result, body = _retrieve(xds, xds.hcp(patient), [*wanted, missing])
    assert body.find("rs:RegistryResponse", NS).get("status") == PARTIAL
    assert errors(body) == [("XDSDocumentUniqueIdError", wanted[0]["HomeCommunityId"])]
    got = {d.DocumentUniqueId: d.Document for d in result.DocumentResponse}
    assert set(got) == {w["DocumentUniqueId"] for w in wanted}
    # The same bytes as the MHD retrieve through the hub (zeep strips a trailing newline).
    session = xds.network.practitioner(patient)
    bundle, _ = search(xds.network, session, patient, _count="200")
    for doc in documents(bundle.json()):
        unique = doc.get("masterIdentifier", {}).get("value")
        if unique in got:
            url = doc["content"][0]["attachment"]["url"]
            mhd = httpx.get(url, headers=session.headers("GET", url), timeout=10)
            assert mhd.status_code == 200
            assert got[unique] == mhd.content.rstrip(b"\r\n") or got[unique] == mhd.content


def test_iti43_for_another_patients_document_is_refused_by_the_region(xds: Xds) -> None:
    patient = xds.adult
    _, found = find_documents(xds, xds.hcp(patient), patient)
    wanted = _requests(found, 1)
    other = str(xds.network.manifest["patients"]["child11"])
    result, body = _retrieve(xds, xds.hcp(other), wanted)  # asserted: another patient
    assert body.find("rs:RegistryResponse", NS).get("status") == FAILURE
    assert [loc for _, loc in errors(body)] == [wanted[0]["HomeCommunityId"]]
    assert not result.DocumentResponse


# --- one region over XCA -----------------------------------------------------------------------


def _entries(body: Any) -> dict[str, bytes]:
    """Each entry shown in full, canonical XML by entryUUID (a blocked one's ids are random)."""
    return {
        o.get("id"): etree.tostring(o, method="c14n") for o in objects(body) if o.get("id") != ZERO
    }


def test_one_region_over_xca_gives_the_same_answer_as_all_over_mhd(xds: Xds) -> None:
    patient = xds.adult
    over_mhd = find_documents(xds, xds.hcp(patient), patient)[1]
    xds.set_protocol(0, "xca")
    try:
        result, over_xca = find_documents(xds, xds.hcp(patient), patient)
        assert result.status == SUCCESS, errors(over_xca)
        wanted = [w for w in _requests(over_xca, 4) if w["HomeCommunityId"] == xds.network.hcid(0)]
        got, retrieved = _retrieve(xds, xds.hcp(patient), wanted)
    finally:
        xds.set_protocol(0, "mhd")
    assert _overview(over_xca) == _overview(over_mhd)
    assert _entries(over_xca) == _entries(over_mhd)  # every slot and classification alike
    assert retrieved.find("rs:RegistryResponse", NS).get("status") == SUCCESS
    assert len(got.DocumentResponse) == len(wanted) == 1


def test_the_served_wsdls_name_the_hub_and_drive_zeep(xds: Xds) -> None:
    patient = xds.adult
    for operation in ("iti18", "iti43"):
        r = httpx.get(f"{xds.hub}/xca/{operation}?wsdl", timeout=10)
        assert r.status_code == 200
        assert f'location="{xds.hub}/xca/{operation}"'.encode() in r.content
    history = HistoryPlugin()
    client = Client(f"{xds.hub}/xca/iti18?wsdl", plugins=[history])  # schemas fetched from the hub
    result = client.service.DocumentRegistry_RegistryStoredQuery(
        ResponseOption={"returnType": "ObjectRef", "returnComposedObjects": True},
        AdhocQuery={
            "id": FIND_DOCUMENTS,
            "Slot": [
                _slot("$XDSDocumentEntryPatientId", f"'{patient_cx(patient)}'"),
                _slot("$XDSDocumentEntryStatus", f"('{APPROVED}')"),
            ],
        },
        _soapheaders=[security_header(xds.hcp(patient))],
    )
    assert result.status == SUCCESS
    _checked(history)


def test_a_message_for_another_operation_is_a_sender_fault(xds: Xds) -> None:
    data = _signed_request(xds, "iti43")
    r = _post(xds, "iti18", data)
    assert r.status_code == 400 and b"Sender" in r.content
    assert httpx.get(f"{xds.hub}/xca/iti99?wsdl", timeout=10).status_code == 404


# --- the network's own messages, and hostile ones ----------------------------------------------


def _post(xds: Xds, operation: str, body: bytes, content_type: str | None = None) -> httpx.Response:
    media = content_type or "application/soap+xml; charset=UTF-8"
    return httpx.post(
        f"{xds.hub}/xca/{operation}", content=body, headers={"content-type": media}, timeout=30
    )


@pytest.mark.parametrize(
    ("name", "operation"),
    [
        ("iti18-iti40-request.xml", "iti18"),
        ("iti18-iti40-request-getassociations.xml", "iti18"),
        ("iti18-request-referenceIdList.xml", "iti18"),
        ("iti43-iti40-request.xml", "iti43"),
    ],
)
def test_the_networks_own_requests_get_a_located_refusal(
    xds: Xds, name: str, operation: str
) -> None:
    data = vector(f"requests/{name}")
    r = _post(xds, operation, data)
    # (iti43-iti40-request.xml says Action RegistryStoredQuery over an ITI-43 body: the body
    # decides at /xca/iti43, docs/xca.md "What the vectors show".)
    assert r.status_code == 200, r.text[:500]
    root, _ = mtom_parts(r.headers["content-type"], r.content)
    body = parse_envelope(root).body
    SCHEMA.assertValid(etree.fromstring(etree.tostring(body)))
    found = errors(body)
    assert found and all(loc == HUB_HCID for _, loc in found)  # untrusted issuer: the hub's own


def _signed_request(xds: Xds, operation: str) -> bytes:
    """A valid ITI-18 FindDocuments or ITI-43 request as bytes, to mutate."""
    patient = xds.adult
    history = HistoryPlugin()
    if operation == "iti18":
        find_documents_history = xds.client("iti18", history)
        find_documents_history.DocumentRegistry_RegistryStoredQuery(
            ResponseOption={"returnType": "ObjectRef", "returnComposedObjects": True},
            AdhocQuery={
                "id": FIND_DOCUMENTS,
                "Slot": [
                    _slot("$XDSDocumentEntryPatientId", f"'{patient_cx(patient)}'"),
                    _slot("$XDSDocumentEntryStatus", f"('{APPROVED}')"),
                ],
            },
            _soapheaders=[security_header(xds.hcp(patient))],
        )
    else:
        xds.client("iti43", history).DocumentRepository_RetrieveDocumentSet(
            DocumentRequest=[
                {
                    "HomeCommunityId": xds.network.hcid(0),
                    "RepositoryUniqueId": xds.network.manifest["regions"][0][
                        "repository_unique_id"
                    ],
                    "DocumentUniqueId": "2.25.42",
                }
            ],
            _soapheaders=[security_header(xds.hcp(patient))],
        )
    return bytes(etree.tostring(history.last_sent["envelope"]))


_MUTATIONS: dict[str, Callable[[bytes, int, bytes], bytes]] = {
    "replace": lambda data, at, chunk: data[:at] + chunk + data[at + len(chunk) :],
    "insert": lambda data, at, chunk: data[:at] + chunk + data[at:],
    "delete": lambda data, at, chunk: data[:at] + data[at + len(chunk) :],
}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operation=st.sampled_from(["iti18", "iti43"]),
    mutation=st.sampled_from(sorted(_MUTATIONS)),
    position=st.floats(min_value=0, max_value=1),
    chunk=st.sampled_from(
        [b"<", b">", b"&", b"\x00", b"9", b"urn:oid:", b"'", b"<x/>", b"\xff\xfe", b'"', b"  "]
    ),
)
def test_mutated_requests_are_refused_never_a_5xx_and_nothing_is_written(
    xds: Xds, operation: str, mutation: str, position: float, chunk: bytes
) -> None:
    data = _SIGNED.setdefault(operation, _signed_request(xds, operation))
    counts = xds.registry_counts()
    at = int(position * len(data))
    mutated = _MUTATIONS[mutation](data, at, chunk)
    r = _post(xds, operation, mutated)
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    if r.status_code == 200:
        # A well-formed answer; whatever it shows is the asserted patient's, never another's.
        root, _ = mtom_parts(r.headers["content-type"], r.content)
        body = parse_envelope(root).body
        SCHEMA.assertValid(etree.fromstring(etree.tostring(body)))
        status = body.get("status") or body.find("rs:RegistryResponse", NS).get("status")
        assert status in (SUCCESS, PARTIAL, FAILURE)
        for value in body.iterfind(".//rim:ExternalIdentifier", NS):
            if value.get("identificationScheme") == PATIENT_ID:
                assert value.get("value") == patient_cx(xds.adult)
        if operation == "iti43":
            assert status == FAILURE  # the document asked for does not exist
    else:
        assert b"Sender" in r.content
    assert xds.registry_counts() == counts


_SIGNED: dict[str, bytes] = {}
