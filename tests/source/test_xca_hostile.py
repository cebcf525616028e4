"""Hostile input at the XCA endpoints: random and mutated messages get a 4xx or a SOAP answer.

Every parser of outside input on the XCA path (the MTOM reader, the envelope, the stored query,
the retrieve request, the assertion) is reached through real HTTP: never a 5xx, and nothing is
written but audit records. The MTOM reader and the retrieve parser are also fuzzed directly.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from onerecord.xca.errors import XcaParseError
from onerecord.xca.mtom import soap_part
from onerecord.xca.retrieve import parse_retrieve_request
from onerecord.xca.xml import NS, XDSB, parse_xml
from tests.source.trust_harness import HCID, REPOSITORY
from tests.source.xca_support import patient_cx

pytest.importorskip("zeep")  # the network helpers build zeep clients

from tests.source.xca_network import XcaNetwork, start_xca_network  # noqa: E402

_FIND = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"


@pytest.fixture(scope="module")
def xca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XcaNetwork]:
    with start_xca_network(tmp_path_factory.mktemp("xca-hostile")) as network:
        yield network


def _envelope(xca: XcaNetwork, action: str, body: str) -> bytes:
    adult = xca.net.citizen("adult")
    assertion = etree.tostring(xca.hcp_assertion(adult)).decode()
    return (
        '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        f"<env:Header><wsa:Action>urn:ihe:iti:2007:{action}</wsa:Action>"
        f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
        f'<wsse:Security xmlns:wsse="{NS["wsse"]}">{assertion}</wsse:Security>'
        f"</env:Header><env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def _query_body(patient: str) -> str:
    return (
        '<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" '
        'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">'
        '<query:ResponseOption returnType="LeafClass" returnComposedObjects="true"/>'
        f'<rim:AdhocQuery id="{_FIND}">'
        '<rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList>'
        f"<rim:Value>'{escape(patient_cx(patient))}'</rim:Value></rim:ValueList></rim:Slot>"
        '<rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList>'
        "<rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value>"
        "</rim:ValueList></rim:Slot></rim:AdhocQuery></query:AdhocQueryRequest>"
    )


def _retrieve_body(unique: str) -> str:
    return (
        f'<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="{XDSB}"><xdsb:DocumentRequest>'
        f"<xdsb:HomeCommunityId>{HCID}</xdsb:HomeCommunityId>"
        f"<xdsb:RepositoryUniqueId>{REPOSITORY}</xdsb:RepositoryUniqueId>"
        f"<xdsb:DocumentUniqueId>{unique}</xdsb:DocumentUniqueId>"
        "</xdsb:DocumentRequest></xdsb:RetrieveDocumentSetRequest>"
    )


_BASES: dict[str, bytes] = {}


def _bases(xca: XcaNetwork) -> dict[str, bytes]:
    """One valid message per endpoint, made once: hypothesis replays need the same bytes."""
    if not _BASES:
        adult, doc = xca.net.citizen("adult"), xca.docs["adult_n"].unique_id.value
        _BASES["iti38"] = _envelope(xca, "CrossGatewayQuery", _query_body(adult))
        _BASES["iti39"] = _envelope(xca, "CrossGatewayRetrieve", _retrieve_body(doc))
        for which, base in _BASES.items():  # each base is answered in full, unmutated
            r = httpx.post(
                f"{xca.net.source_url}/xca/{which}",
                content=base,
                headers={"content-type": "application/soap+xml"},
                timeout=30,
            )
            assert r.status_code == 200 and b"ResponseStatusType:Success" in r.content, r.text
    return _BASES


def _written(xca: XcaNetwork) -> tuple[int, ...]:
    """Rows of every table the XCA path must never write to (the audit is allowed)."""
    with sqlite3.connect(xca.net.db_path) as conn:
        return tuple(
            int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("document_entry", "submission_set", "document_code")
        )


_CONTENT_TYPES = st.sampled_from(
    [
        "application/soap+xml; charset=UTF-8",
        "application/soap+xml",
        "text/xml",
        'multipart/related; type="application/xop+xml"; boundary="b1"; start="<root>"',
        'multipart/related; type="application/xop+xml"; boundary=""',
        "multipart/related; boundary=b1",
        "",
        "application/json",
    ]
)


def mutate(base: bytes, how: str, at: int, noise: bytes, text: str) -> bytes:
    """`base` cut, spliced with `noise`, replaced, wrapped as MTOM, or one text replaced."""
    if how == "random":
        return noise
    where = at % (len(base) + 1)
    if how == "cut":
        return base[:where]
    if how == "splice":
        return base[:where] + noise + base[where:]
    if how == "mtom":
        head = b"Content-Type: application/xop+xml\r\nContent-ID: <root>\r\n\r\n"
        return b"--b1\r\n" + (noise or head) + base + b"\r\n--b1--"
    root = etree.fromstring(base)
    texts = [e for e in root.iter() if isinstance(e.tag, str) and not len(e)]
    target = texts[at % len(texts)]
    try:
        target.text = text
    except ValueError:  # not an XML character: the noise goes in as bytes instead
        return base[:where] + text.encode("utf-8", "replace") + base[where:]
    return bytes(etree.tostring(root))


@pytest.mark.slow
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    which=st.sampled_from(["iti38", "iti39"]),
    how=st.sampled_from(["cut", "splice", "text", "random", "mtom"]),
    at=st.integers(0, 10**6),
    noise=st.binary(max_size=256),
    text=st.text(max_size=40),
    content_type=_CONTENT_TYPES,
)
def test_no_mutated_message_gets_a_5xx_or_writes_anything(
    xca: XcaNetwork, which: str, how: str, at: int, noise: bytes, text: str, content_type: str
) -> None:
    body = mutate(_bases(xca)[which], how, at, noise, text)
    if content_type.startswith("multipart/related") and 'start="<root>"' in content_type:
        body = b"--b1\r\nContent-Type: application/xop+xml\r\nContent-ID: <root>\r\n\r\n" + body
        body += b"\r\n--b1--\r\n"
    before = _written(xca)
    r = httpx.post(
        f"{xca.net.source_url}/xca/{which}",
        content=body,
        headers={"content-type": content_type},
        timeout=30,
    )
    assert r.status_code < 500, r.text[:500]
    assert _written(xca) == before


# --- the parsers alone ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(content_type=st.text(max_size=200), body=st.binary(max_size=1024))
def test_the_mtom_reader_returns_bytes_or_refuses(content_type: str, body: bytes) -> None:
    try:
        out = soap_part(content_type, body)
    except XcaParseError:
        return
    assert isinstance(out, bytes)


@settings(max_examples=300, deadline=None)
@given(
    home=st.text(max_size=80),
    repository=st.text(max_size=80),
    unique=st.text(max_size=140),
    extra=st.booleans(),
)
def test_the_retrieve_parser_returns_requests_or_refuses(
    home: str, repository: str, unique: str, extra: bool
) -> None:
    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;")

    text = (
        f'<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="{XDSB}"><xdsb:DocumentRequest>'
        f"<xdsb:HomeCommunityId>{esc(home)}</xdsb:HomeCommunityId>"
        f"<xdsb:RepositoryUniqueId>{esc(repository)}</xdsb:RepositoryUniqueId>"
        f"<xdsb:DocumentUniqueId>{esc(unique)}</xdsb:DocumentUniqueId>"
        f"{'<xdsb:Other/>' if extra else ''}"
        "</xdsb:DocumentRequest></xdsb:RetrieveDocumentSetRequest>"
    )
    try:
        element = parse_xml(text.encode("utf-8", "surrogatepass"))
        requests = parse_retrieve_request(element, require_community=True)
    except XcaParseError:
        return
    except UnicodeEncodeError:
        return
    assert len(requests) == 1
    assert str(requests[0].repository_unique_id) == repository.strip().removeprefix("urn:oid:")
