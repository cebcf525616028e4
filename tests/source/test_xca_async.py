"""Asynchronous ITI-38/39: 202 at once, the answer POSTed to ReplyTo, only on the allow-list.

A real region on 127.0.0.1 and a real receiver (a small Starlette app under uvicorn, as an
initiating gateway's receiver) on 127.0.0.1. The answer that reaches the receiver is compared
with the synchronous answer to the same request, read by zeep with the shipped WSDLs, and its
WS-Addressing headers checked (IHE ITI TF-2 Appendix V; WS-Addressing 1.0 Core §3.4).
"""

from __future__ import annotations

import base64
import copy
import os
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import anyio
import httpx
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from onerecord.audit import AuditAction, AuditOutcome
from onerecord.source.content import FolderContentStore
from onerecord.source.settings import SourceSettings
from onerecord.xca.mtom import mtom_parts
from onerecord.xca.xml import NS, QUERY, RS, XDSB, qname
from tests.source.trust_harness import HCID, REPOSITORY
from tests.source.xca_support import patient_cx, response_schema
from tests.support.servers import free_port, serve_in_thread

if not os.environ.get("CI"):  # with CI=true a missing zeep fails, as the vectors do
    pytest.importorskip("zeep")

from tests.source.xca_network import XcaNetwork, start_xca_network  # noqa: E402

SCHEMA = response_schema()
FIND = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
ITI38_RESPONSE = "urn:ihe:iti:2007:CrossGatewayQueryResponse"
ITI39_RESPONSE = "urn:ihe:iti:2007:CrossGatewayRetrieveResponse"
SAMPLE_REPLY_TO = "http://192.168.2.4:9080/XcaService/InitiatingGatewayReceiver.svc"
WAIT_S = 60  # the longest wait for a delivery: a bound on a hang, not a speed requirement


@dataclass
class Received:
    """One request that reached the receiver."""

    host: str
    path: str
    content_type: str
    body: bytes


@dataclass
class Receiver:
    """A receiver of asynchronous answers: records each POST, answers the planned status."""

    url: str = ""
    got: queue.Queue[Received] = field(default_factory=queue.Queue)
    statuses: list[int] = field(default_factory=list)
    hold: threading.Event | None = None

    def next(self) -> Received:
        return self.got.get(timeout=WAIT_S)

    def drain(self) -> list[Received]:
        out = []
        while not self.got.empty():
            out.append(self.got.get_nowait())
        return out


def _receiver_app(receiver: Receiver) -> Starlette:
    async def receive(request: Request) -> Response:
        body = await request.body()
        if receiver.hold is not None:
            await anyio.to_thread.run_sync(receiver.hold.wait, WAIT_S)
        receiver.got.put(
            Received(
                host=request.headers.get("host", ""),
                path=request.url.path,
                content_type=request.headers.get("content-type", ""),
                body=body,
            )
        )
        return Response(status_code=receiver.statuses.pop(0) if receiver.statuses else 202)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


@dataclass
class AsyncNet:
    xca: XcaNetwork
    receiver: Receiver
    dead: str  # an allowed reply endpoint where nothing listens


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsyncNet]:
    receiver = Receiver()
    # A port bound and never listened on: every connection to it is refused, and no other
    # server can take it while the module runs.
    closed = socket.socket()
    closed.bind(("127.0.0.1", free_port()))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}/down/receiver"
    with closed, serve_in_thread(_receiver_app(receiver)) as url:
        receiver.url = url
        with start_xca_network(
            tmp_path_factory.mktemp("xca-async"),
            xca_reply_to=(f"{url}/receiver/", f"{url}/faults/", dead),
            xca_reply_attempts=3,
            xca_reply_backoff_s=0.01,
        ) as xca:
            yield AsyncNet(xca, receiver, dead)


# --- messages ----------------------------------------------------------------------------------


def _addressing(message_id: str | None, reply_to: str | None, fault_to: str | None) -> str:
    out = f"<wsa:MessageID>{escape(message_id)}</wsa:MessageID>" if message_id is not None else ""
    if reply_to is not None:
        out += f"<wsa:ReplyTo><wsa:Address>{escape(reply_to)}</wsa:Address></wsa:ReplyTo>"
    if fault_to is not None:
        out += f"<wsa:FaultTo><wsa:Address>{escape(fault_to)}</wsa:Address></wsa:FaultTo>"
    return out


_FRESH = "fresh"


def _envelope(
    assertion: Any,
    action: str,
    body: str,
    *,
    message_id: str | None = _FRESH,
    reply_to: str | None = None,
    fault_to: str | None = None,
) -> bytes:
    """A signed request; `message_id` None leaves wsa:MessageID out."""
    if message_id == _FRESH:
        message_id = f"urn:uuid:{uuid.uuid4()}"
    return (
        '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        f"<env:Header><wsa:Action>urn:ihe:iti:2007:{action}</wsa:Action>"
        + _addressing(message_id, reply_to, fault_to)
        + f'<wsse:Security xmlns:wsse="{NS["wsse"]}">'
        + etree.tostring(assertion).decode()
        + f"</wsse:Security></env:Header><env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def _find_body(patient: str) -> str:
    return (
        f'<query:AdhocQueryRequest xmlns:query="{QUERY}" '
        'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">'
        '<query:ResponseOption returnType="LeafClass" returnComposedObjects="true"/>'
        f'<rim:AdhocQuery id="{FIND}">'
        '<rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList>'
        f"<rim:Value>'{escape(patient_cx(patient))}'</rim:Value></rim:ValueList></rim:Slot>"
        '<rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList>'
        f"<rim:Value>('{APPROVED}')</rim:Value>"
        "</rim:ValueList></rim:Slot></rim:AdhocQuery></query:AdhocQueryRequest>"
    )


def _retrieve_body(*unique_ids: str) -> str:
    requests_ = "".join(
        "<xdsb:DocumentRequest>"
        f"<xdsb:HomeCommunityId>{HCID}</xdsb:HomeCommunityId>"
        f"<xdsb:RepositoryUniqueId>{REPOSITORY}</xdsb:RepositoryUniqueId>"
        f"<xdsb:DocumentUniqueId>{u}</xdsb:DocumentUniqueId></xdsb:DocumentRequest>"
        for u in unique_ids
    )
    tag = "xdsb:RetrieveDocumentSetRequest"
    return f'<{tag} xmlns:xdsb="{XDSB}">{requests_}</{tag}>'


def _post(xca: XcaNetwork, endpoint: str, message: bytes) -> httpx.Response:
    return httpx.post(
        f"{xca.net.source_url}/xca/{endpoint}",
        content=message,
        headers={"content-type": "application/soap+xml; charset=UTF-8"},
        timeout=60,
    )


def _soap_root(content_type: str, body: bytes) -> tuple[Any, dict[str, bytes]]:
    soap, parts = mtom_parts(content_type, body)
    return etree.fromstring(soap), parts


def _header(envelope: Any, name: str) -> str | None:
    text: str | None = envelope.findtext(f"env:Header/wsa:{name}", namespaces=NS)
    return text


def _body(envelope: Any) -> Any:
    return envelope.find("env:Body", NS)[0]


def _comparable(body: Any) -> bytes:
    """The body in canonical form, the random ids of added NORS classifications blanked."""
    body = copy.deepcopy(body)
    for element in body.iter(qname(NS["rim"], "Classification")):
        if element.get("nodeRepresentation") == "NORS":
            element.set("id", "-")
    return bytes(etree.tostring(body, method="c14n"))


def _documents(body: Any, parts: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    out = {}
    for doc in body.iterfind("xdsb:DocumentResponse", NS):
        href = doc.find(
            "xdsb:Document/xop:Include", {**NS, "xop": "http://www.w3.org/2004/08/xop/include"}
        )
        cid = href.get("href").removeprefix("cid:")
        out[doc.findtext("xdsb:DocumentUniqueId", namespaces=NS)] = (
            doc.findtext("xdsb:mimeType", namespaces=NS),
            parts[cid],
        )
    return out


def _valid(body: Any, parts: dict[str, bytes]) -> None:
    """Schema-validate an answer, each xop:Include replaced by its part (base64), as XOP reads."""
    inline = copy.deepcopy(body)
    for document in inline.iter(qname(XDSB, "Document")):
        (include,) = list(document)
        document.remove(include)
        document.text = base64.b64encode(parts[include.get("href").removeprefix("cid:")]).decode()
    SCHEMA.assertValid(inline)


def _errors(body: Any) -> list[tuple[str, str]]:
    return [(e.get("errorCode"), e.get("location")) for e in body.iter(qname(RS, "RegistryError"))]


def _zeep_reads(xca: XcaNetwork, operation: str, received: Received) -> Any:
    """zeep's own reading of a received answer, as the initiating gateway's stack would."""
    service = xca.client(operation)
    binding = service._binding
    name = (
        "RespondingGateway_CrossGatewayQuery"
        if operation == "iti38"
        else "RespondingGateway_CrossGatewayRetrieve"
    )
    reply = requests.models.Response()
    reply.status_code = 200
    reply._content = received.body
    reply.headers["content-type"] = received.content_type
    reply.encoding = "utf-8"
    return binding.process_reply(service._client, binding.get(name), reply)


def _audit(xca: XcaNetwork, since: int) -> list[tuple[AuditAction, AuditOutcome, str | None]]:
    return [(r.action, r.outcome, r.reason) for r in xca.audit_rows()[since:]]


# --- ITI-38 ------------------------------------------------------------------------------------


def test_iti38_async_is_accepted_and_the_sync_answer_reaches_reply_to(net: AsyncNet) -> None:
    xca, receiver = net.xca, net.receiver
    adult = xca.net.citizen("adult")
    assertion = xca.hcp_assertion(adult)
    before = len(xca.audit_rows())
    sync = _post(xca, "iti38", _envelope(assertion, "CrossGatewayQuery", _find_body(adult)))
    assert sync.status_code == 200
    sync_audit = _audit(xca, before)

    before = len(xca.audit_rows())
    message_id = f"urn:uuid:{uuid.uuid4()}"
    reply_to = f"{receiver.url}/receiver/iti38"
    accepted = _post(
        xca,
        "iti38",
        _envelope(
            assertion,
            "CrossGatewayQuery",
            _find_body(adult),
            message_id=message_id,
            reply_to=reply_to,
        ),
    )
    assert accepted.status_code == 202 and accepted.content == b""
    # The access is audited before the acknowledgement, exactly as for the synchronous request.
    assert _audit(xca, before) == sync_audit == [(AuditAction.SEARCH, AuditOutcome.SUCCESS, None)]

    got = receiver.next()
    assert got.path == "/receiver/iti38"
    assert got.content_type.startswith("application/soap+xml")
    assert f'action="{ITI38_RESPONSE}"' in got.content_type
    envelope = etree.fromstring(got.body)
    assert _header(envelope, "Action") == ITI38_RESPONSE
    assert _header(envelope, "RelatesTo") == message_id
    assert _header(envelope, "To") == reply_to
    fresh = _header(envelope, "MessageID")
    assert fresh and fresh.startswith("urn:uuid:") and fresh != message_id
    answer = _body(envelope)
    SCHEMA.assertValid(copy.deepcopy(answer))
    assert _comparable(answer) == _comparable(_body(etree.fromstring(sync.content)))
    assert "Sperret" in got.body.decode()  # the blocked entry, masked as over sync
    read = _zeep_reads(xca, "iti38", got)
    assert read.status == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    objects = [o for o in read.RegistryObjectList._value_1 if "ExtrinsicObject" in o]
    assert len(objects) == len(answer.findall("rim:RegistryObjectList/rim:ExtrinsicObject", NS))
    assert len(objects) >= 4


def test_a_refused_assertion_is_answered_at_reply_to_as_a_located_failure(net: AsyncNet) -> None:
    xca, receiver = net.xca, net.receiver
    adult, other = xca.net.citizen("adult"), xca.net.citizen("parent")
    message_id = f"urn:uuid:{uuid.uuid4()}"
    accepted = _post(
        xca,
        "iti38",
        _envelope(
            xca.hcp_assertion(adult),  # resource-id is another patient than the query's
            "CrossGatewayQuery",
            _find_body(other),
            message_id=message_id,
            reply_to=f"{receiver.url}/receiver/iti38",
        ),
    )
    assert accepted.status_code == 202
    envelope = etree.fromstring(receiver.next().body)
    assert _header(envelope, "RelatesTo") == message_id
    answer = _body(envelope)
    assert answer.get("status") == FAILURE
    assert _errors(answer) == [("XDSRegistryError", HCID)]


# --- ITI-39 ------------------------------------------------------------------------------------


def test_iti39_async_sends_the_same_mtom_answer_to_reply_to(net: AsyncNet) -> None:
    xca, receiver = net.xca, net.receiver
    adult = xca.net.citizen("adult")
    assertion = xca.hcp_assertion(adult)
    wanted = (
        xca.docs["adult_n"].unique_id.value,
        xca.docs["adult_v"].unique_id.value,
        xca.docs["adult_nors"].unique_id.value,  # blocked: a located error
        "2.25.1234567",  # none
    )
    before = len(xca.audit_rows())
    sync = _post(
        xca, "iti39", _envelope(assertion, "CrossGatewayRetrieve", _retrieve_body(*wanted))
    )
    assert sync.status_code == 200
    sync_audit = _audit(xca, before)
    sync_root, sync_parts = _soap_root(sync.headers["content-type"], sync.content)

    before = len(xca.audit_rows())
    message_id = f"urn:uuid:{uuid.uuid4()}"
    reply_to = f"{receiver.url}/receiver/iti39"
    accepted = _post(
        xca,
        "iti39",
        _envelope(
            assertion,
            "CrossGatewayRetrieve",
            _retrieve_body(*wanted),
            message_id=message_id,
            reply_to=reply_to,
        ),
    )
    assert accepted.status_code == 202 and accepted.content == b""
    assert _audit(xca, before) == sync_audit

    got = receiver.next()
    assert got.content_type.startswith("multipart/related")
    assert 'type="application/xop+xml"' in got.content_type
    root, parts = _soap_root(got.content_type, got.body)
    assert _header(root, "Action") == ITI39_RESPONSE
    assert _header(root, "RelatesTo") == message_id
    assert _header(root, "To") == reply_to
    answer, sync_answer = _body(root), _body(sync_root)
    _valid(answer, parts)
    registry = "rs:RegistryResponse"
    assert answer.find(registry, NS).get("status") == PARTIAL
    assert _errors(answer) == _errors(sync_answer) and len(_errors(answer)) == 2
    documents = _documents(answer, parts)
    assert documents == _documents(sync_answer, sync_parts)
    assert documents[wanted[0]] == ("application/pdf", xca.content["adult_n"])
    assert documents[wanted[1]] == ("application/pdf", xca.content["adult_v"])
    read = _zeep_reads(xca, "iti39", got)
    assert read.RegistryResponse.status == PARTIAL
    # zeep strips CR/LF at both ends of a binary part (docs/xca.md "Tests").
    assert {d.DocumentUniqueId: d.Document for d in read.DocumentResponse} == {
        wanted[0]: xca.content["adult_n"].strip(b"\r\n"),
        wanted[1]: xca.content["adult_v"].strip(b"\r\n"),
    }


def test_unreadable_bytes_after_the_acknowledgement_are_a_receiver_fault_at_fault_to(
    net: AsyncNet,
) -> None:
    xca, receiver = net.xca, net.receiver
    adult = xca.net.citizen("adult")
    from tests.source.xca_network import _entry

    entry, content = _entry(adult, "to-corrupt", ("N",), 3)
    xca.net.publish([(entry, content)])
    # Same size, other bytes: found only while the answer is read (the hash check at the end).
    path = FolderContentStore(xca.net.settings.content_dir).path_of(entry.hash_sha256)
    path.write_bytes(bytes(len(content)))
    message_id = f"urn:uuid:{uuid.uuid4()}"
    accepted = _post(
        xca,
        "iti39",
        _envelope(
            xca.hcp_assertion(adult),
            "CrossGatewayRetrieve",
            _retrieve_body(entry.unique_id.value),
            message_id=message_id,
            reply_to=f"{receiver.url}/receiver/iti39",
            fault_to=f"{receiver.url}/faults/iti39",
        ),
    )
    assert accepted.status_code == 202
    got = receiver.next()
    assert got.path == "/faults/iti39"  # nothing half-made went to ReplyTo
    fault = etree.fromstring(got.body)
    assert _header(fault, "Action") == "http://www.w3.org/2005/08/addressing/soap/fault"
    assert _header(fault, "RelatesTo") == message_id
    assert _header(fault, "To") == f"{receiver.url}/faults/iti39"
    assert fault.findtext(".//env:Code/env:Value", namespaces=NS) == "env:Receiver"
    assert receiver.drain() == []


# --- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply_to", "fault_to"),
    [
        ("http://127.0.0.1:9/receiver/iti38", None),  # another port
        ("{url}/elsewhere", None),  # not under the prefix
        ("{url}/receiver/../admin", None),  # out of it by dot segments
        ("{url}/receiver%2F..%2Fadmin", None),
        ("http://evil.test@{host}/receiver/iti38", None),
        ("{url}/receiver/iti38", "http://metadata.internal/latest/"),  # FaultTo off the list
        ("http://www.w3.org/2005/08/addressing/none", None),
    ],
)
def test_a_reply_endpoint_off_the_list_is_a_sender_fault_audited_and_nothing_is_sent(
    net: AsyncNet, reply_to: str, fault_to: str | None
) -> None:
    xca, receiver = net.xca, net.receiver
    adult = xca.net.citizen("adult")
    host = receiver.url.removeprefix("http://")
    reply_to = reply_to.format(url=receiver.url, host=host)
    before = len(xca.audit_rows())
    refused = _post(
        xca,
        "iti38",
        _envelope(
            xca.hcp_assertion(adult),
            "CrossGatewayQuery",
            _find_body(adult),
            reply_to=reply_to,
            fault_to=fault_to,
        ),
    )
    assert refused.status_code == 400, refused.text
    fault = etree.fromstring(refused.content)
    assert fault.findtext(".//env:Code/env:Value", namespaces=NS) == "env:Sender"
    assert _audit(xca, before) == [
        (AuditAction.SEARCH, AuditOutcome.DENIED, "reply-to-not-allowed")
    ]
    # An allowed request afterwards: its answer is the only thing the receiver ever sees.
    marker = f"urn:uuid:{uuid.uuid4()}"
    assert (
        _post(
            xca,
            "iti38",
            _envelope(
                xca.hcp_assertion(adult),
                "CrossGatewayQuery",
                _find_body(adult),
                message_id=marker,
                reply_to=f"{receiver.url}/receiver/marker",
            ),
        ).status_code
        == 202
    )
    got = receiver.next()
    assert _header(etree.fromstring(got.body), "RelatesTo") == marker
    assert receiver.drain() == []


def test_an_asynchronous_request_without_message_id_is_a_sender_fault(net: AsyncNet) -> None:
    xca = net.xca
    adult = xca.net.citizen("adult")
    for message_id in ("", "not a uri"):
        r = _post(
            xca,
            "iti38",
            _envelope(
                xca.hcp_assertion(adult),
                "CrossGatewayQuery",
                _find_body(adult),
                message_id=message_id,
                reply_to=f"{net.receiver.url}/receiver/iti38",
            ),
        )
        assert r.status_code == 400 and b"MessageID" in r.content


def test_a_bad_request_is_still_answered_at_once(net: AsyncNet) -> None:
    xca = net.xca
    adult = xca.net.citizen("adult")
    r = _post(
        xca,
        "iti38",
        _envelope(
            xca.hcp_assertion(adult),
            "CrossGatewayQuery",
            "<notAQuery/>",
            reply_to=f"{net.receiver.url}/receiver/iti38",
        ),
    )
    assert r.status_code == 400
    assert etree.fromstring(r.content).findtext(".//env:Code/env:Value", namespaces=NS) == (
        "env:Sender"
    )


# --- retries -----------------------------------------------------------------------------------


def _wait_for(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = [e for e in logs if e.get("event") == event]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {event} event: {logs}")


def test_a_receiver_that_is_down_is_retried_then_given_up_in_one_event(net: AsyncNet) -> None:
    xca = net.xca
    adult = xca.net.citizen("adult")
    message_id = f"urn:uuid:{uuid.uuid4()}"
    with capture_logs() as logs:
        accepted = _post(
            xca,
            "iti38",
            _envelope(
                xca.hcp_assertion(adult),
                "CrossGatewayQuery",
                _find_body(adult),
                message_id=message_id,
                reply_to=net.dead,
            ),
        )
        assert accepted.status_code == 202
        (event,) = _wait_for(logs, "xca.async_answer_given_up")
    assert event["attempts"] == 3 and event["last"] == "ConnectError"
    assert event["correlation_id"] == message_id
    assert event["endpoint"] == net.dead.rsplit("/", 2)[0]  # scheme, host and port only
    mine = [e for e in logs if e.get("correlation_id") == message_id and "async" in e["event"]]
    assert mine == [event]
    assert not re.search(r"(?<!\d)\d{11}(?!\d)", repr(logs))  # no identity number anywhere
    assert adult not in repr(logs)


def test_a_5xx_is_retried_and_a_4xx_is_final(net: AsyncNet) -> None:
    xca, receiver = net.xca, net.receiver
    adult = xca.net.citizen("adult")

    def send() -> str:
        message_id = f"urn:uuid:{uuid.uuid4()}"
        r = _post(
            xca,
            "iti38",
            _envelope(
                xca.hcp_assertion(adult),
                "CrossGatewayQuery",
                _find_body(adult),
                message_id=message_id,
                reply_to=f"{receiver.url}/receiver/retry",
            ),
        )
        assert r.status_code == 202
        return message_id

    with capture_logs() as logs:
        receiver.statuses[:] = [503, 500]
        first = send()
        tries = [receiver.next() for _ in range(3)]
        assert {_header(etree.fromstring(t.body), "RelatesTo") for t in tries} == {first}
        # The same message each time (the same MessageID): a retry, not a new answer.
        assert len({t.body for t in tries}) == 1
        (sent,) = _wait_for(logs, "xca.async_answer_sent")
        assert sent["attempts"] == 3 and sent["last"] == "202"

        receiver.statuses[:] = [400]
        second = send()
        receiver.next()
        (given_up,) = _wait_for(logs, "xca.async_answer_given_up")
    assert given_up["correlation_id"] == second and given_up["attempts"] == 1
    assert given_up["last"] == "400"
    assert receiver.drain() == []


# --- hostile addressing ------------------------------------------------------------------------

_addresses = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["{url}/receiver/", "{url}/faults/", "http://127.0.0.1:9/", ""]).flatmap(
        lambda base: st.text(
            alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40
        ).map(lambda tail: base + tail)
    ),
    st.just("http://www.w3.org/2005/08/addressing/anonymous"),
    st.just("http://www.w3.org/2005/08/addressing/none"),
)
_xml_text = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=300)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    reply_to=st.none() | _addresses,
    fault_to=st.none() | _addresses,
    message_id=st.none() | _xml_text | st.just(f"urn:uuid:{uuid.uuid4()}"),
)
def test_odd_reply_to_fault_to_and_message_id_are_4xx_never_5xx(
    net: AsyncNet, reply_to: str | None, fault_to: str | None, message_id: str | None
) -> None:
    xca, receiver = net.xca, net.receiver
    adult = xca.net.citizen("adult")
    url = receiver.url
    message = _envelope(
        xca.hcp_assertion(adult),
        "CrossGatewayQuery",
        _find_body(adult),
        message_id=message_id,
        reply_to=reply_to.replace("{url}", url) if reply_to is not None else None,
        fault_to=fault_to.replace("{url}", url) if fault_to is not None else None,
    )
    r = _post(xca, "iti38", message)
    assert r.status_code in (200, 202, 400), r.text
    if r.status_code == 202:
        got = receiver.next()
        assert got.path.startswith(("/receiver/", "/faults/"))


# --- the network's own asynchronous sample, through an egress proxy -----------------------------


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsyncNet]:
    """A region whose answers leave through a proxy: the receiver, which is the proxy too."""
    receiver = Receiver()
    with serve_in_thread(_receiver_app(receiver)) as url:
        receiver.url = url
        with start_xca_network(
            tmp_path_factory.mktemp("xca-async-proxied"),
            xca_reply_to=(SAMPLE_REPLY_TO, "http://initiating.gw.test/receiver/"),
            xca_reply_proxy=url,
            xca_reply_max_pending=1,
        ) as xca:
            yield AsyncNet(xca, receiver, "")


def test_the_networks_async_sample_is_answered_at_its_reply_to(proxied: AsyncNet) -> None:
    from tests.xca.vectors import vector

    xca, receiver = proxied.xca, proxied.receiver
    before = xca.registry_count()
    r = _post(xca, "iti39", vector("requests/iti39-iti40-request-kj-async.xml"))
    assert r.status_code == 202, r.text
    got = receiver.next()
    # Sent to the sample's own ReplyTo (here through the egress proxy), as it asks.
    assert (got.host, got.path) == ("192.168.2.4:9080", "/XcaService/InitiatingGatewayReceiver.svc")
    root, parts = _soap_root(got.content_type, got.body)
    assert _header(root, "RelatesTo") == "urn:uuid:c6fda90e-a5ec-4f8d-aa1b-14802f4bf68d"
    assert _header(root, "To") == SAMPLE_REPLY_TO
    assert _header(root, "Action") == ITI39_RESPONSE
    answer = _body(root)
    _valid(answer, parts)
    # Its issuer is not trusted here: the refusal, located at this region, as sync would say.
    assert answer.find("rs:RegistryResponse", NS).get("status") == FAILURE
    assert _errors(answer) == [("XDSRegistryError", HCID)]
    assert _zeep_reads(xca, "iti39", got).RegistryResponse.status == FAILURE
    assert xca.registry_count() == before


def test_more_answers_under_way_than_allowed_is_503_with_retry_after(proxied: AsyncNet) -> None:
    xca, receiver = proxied.xca, proxied.receiver
    adult = xca.net.citizen("adult")
    receiver.hold = threading.Event()
    try:

        def send() -> httpx.Response:
            return _post(
                xca,
                "iti38",
                _envelope(
                    xca.hcp_assertion(adult),
                    "CrossGatewayQuery",
                    _find_body(adult),
                    reply_to="http://initiating.gw.test/receiver/iti38",
                ),
            )

        assert send().status_code == 202  # held at the receiver
        busy = send()
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
        assert etree.fromstring(busy.content).findtext(".//env:Code/env:Value", namespaces=NS) == (
            "env:Receiver"
        )
    finally:
        receiver.hold.set()
    got = receiver.next()
    assert got.host == "initiating.gw.test"
    receiver.hold = None


# --- the setting -------------------------------------------------------------------------------


def test_the_reply_endpoints_setting_is_read_and_refuses_what_is_not_an_http_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    common = {"issuer": "https://sts.test", "jwks_url": "https://sts.test/jwks"}
    assert SourceSettings(**common).xca_reply_to == ()  # default: no asynchronous answers
    monkeypatch.setenv("ONERECORD_SOURCE_XCA_REPLY_TO", '["https://gw.vest.example/xca/rcv/"]')
    assert SourceSettings(**common).xca_reply_to == ("https://gw.vest.example/xca/rcv/",)
    for entry in ("ftp://gw.vest.example/x/", "https://gw.vest.example", "/relative/"):
        with pytest.raises(ValidationError, match="reply endpoint"):
            SourceSettings(**common, xca_reply_to=(entry,))
