"""The hub's ITI-39 retrieve against a fake region: the document streamed as it comes, a bad
answer refused before any byte (invalid-response → 502), a break inside the document raised
from the chunks and counted against the region.

The same against a real region through the hub: tests/network/test_xca_hub.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from onerecord.audit import MemoryAuditSink
from onerecord.domain import DocumentUniqueId, HomeCommunityId, NationalIdentityNumber
from onerecord.domain.identifiers import RepositoryUniqueId
from onerecord.hub.app import create_hub_app
from onerecord.hub.breaker import BreakerBoard
from onerecord.hub.client import FakeRegionClient, RegionResponse
from onerecord.hub.directory import Region, RegionDirectory, RegionProtocol
from onerecord.hub.fanout import RegionCallFailed
from onerecord.hub.metrics import HubMetrics
from onerecord.hub.results import RegionStatus
from onerecord.hub.security import HubSecurity
from onerecord.hub.service import Caller, HubAnswer, HubService, RegionFailure, Retrieved
from onerecord.hub.settings import HubSettings
from onerecord.hub.snapshot import InMemorySnapshotStore
from onerecord.hub.xca_initiating import (
    ITI39_ACTION,
    XcaCaller,
    XcaInitiator,
    load_hub_saml_issuer,
)
from onerecord.mhd import RetrieveKey, denial_reason
from onerecord.trust.access_token import AuthSettings, Citizen
from onerecord.trust.keys import RemoteJwks, SigningKey
from onerecord.trust.replay import MemoryReplayCache
from onerecord.xca.ebrim import EbRegistryError
from onerecord.xca.mtom import MtomPart, mtom_response
from onerecord.xca.response import ResponseStatus
from onerecord.xca.retrieve import DocumentRequest, RetrievedDocument, render_retrieve_response
from onerecord.xca.soap import render_envelope
from tests.factories import synthetic_nin
from tests.hub.tokens import HUB_AUDIENCE, ISSUER, ApiCaller
from tests.support.servers import free_port, serve_in_thread
from tests.trust.policy_factories import access_token_claims

HCID = "urn:oid:2.16.578.1.12.4.5.100.1"
ITI39 = "http://region1.test/xca/iti39"
KEY = RetrieveKey(
    HomeCommunityId.parse(HCID),
    RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.1.1"),
    DocumentUniqueId("2.16.578.1.12.4.5.100.1.2.42"),
)
PATIENT = NationalIdentityNumber(synthetic_nin(3))
DOCUMENT = b"%PDF-1.4\r\n" + bytes(range(256)) * 1000 + b"\r\n%%EOF\r\n"


def _region() -> Region:
    return Region(
        name="Region 1",
        home_community_id=HomeCommunityId.parse(HCID),
        base_url="http://region1.test/fhir",
        protocol=RegionProtocol.XCA,
        iti38_url="http://region1.test/xca/iti38",
        iti39_url=ITI39,
    )


def _caller() -> XcaCaller:
    principal = Citizen(claims=access_token_claims("s", "c"), nin=PATIENT)
    return XcaCaller(principal=principal, correlation_id="c")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _answer(
    document: bytes = DOCUMENT,
    *,
    unique_id: str | None = None,
    errors: bool = False,
    error: EbRegistryError | None = None,
) -> tuple[str, bytes]:
    """A RetrieveDocumentSetResponse as a responding gateway writes it, MTOM, joined."""
    request = DocumentRequest(
        KEY.home_community_id, KEY.repository_unique_id, unique_id or KEY.unique_id.value
    )
    if errors or error is not None:
        error = error or EbRegistryError("XDSDocumentUniqueIdError", "no such", HCID)
        body = render_retrieve_response(ResponseStatus.FAILURE, (), (error,))
        parts: list[MtomPart] = []
    else:
        body = render_retrieve_response(
            ResponseStatus.SUCCESS,
            (RetrievedDocument(request, "application/pdf", "doc1@region"),),
        )
        parts = [MtomPart("doc1@region", "application/pdf", _once(document))]
    envelope = render_envelope(body, action=f"{ITI39_ACTION}Response", relates_to=None)
    content_type, stream = mtom_response(envelope, parts, action=f"{ITI39_ACTION}Response")

    async def join() -> bytes:
        return b"".join([piece async for piece in stream])

    return content_type, asyncio.run(join())


def _initiator(tmp_path: Path, content_type: str, body: bytes) -> XcaInitiator:
    client = FakeRegionClient()

    async def answer(method: str, url: str, headers: Mapping[str, str]) -> RegionResponse:
        return RegionResponse(200, {"content-type": content_type}, body)

    client.route_send(ITI39, answer)
    issuer = load_hub_saml_issuer(
        name="https://hub.test",
        key_file=None,
        certificate_file=None,
        key_dir=tmp_path,
        dev_mode=True,
    )
    return XcaInitiator(issuer=issuer, client=client)


async def _retrieve(initiator: XcaInitiator) -> tuple[bytes | None, str | None, str | None]:
    got = await initiator.retrieve(
        _region(), KEY, caller=_caller(), patient=PATIENT, timeout_s=5, retry_delay_s=0.001
    )
    if got.chunks is None:
        return None, got.mime_type, got.error_code
    try:
        return b"".join([c async for c in got.chunks]), got.mime_type, got.error_code
    finally:
        await got.aclose()


def test_the_document_arrives_byte_for_byte(tmp_path: Path) -> None:
    initiator = _initiator(tmp_path, *_answer())
    content, mime, error = asyncio.run(_retrieve(initiator))
    assert content == DOCUMENT and mime == "application/pdf" and error is None


def test_a_registry_error_is_returned_without_chunks(tmp_path: Path) -> None:
    initiator = _initiator(tmp_path, *_answer(errors=True))
    assert asyncio.run(_retrieve(initiator)) == (None, None, "XDSDocumentUniqueIdError")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda ct, body: (ct, body[:200]),  # cut inside the envelope
        lambda ct, body: (ct.replace("boundary=", "x="), body),  # no boundary
        lambda ct, body: (ct, body.replace(b"Content-ID: <doc1@region>", b"X-Id: 1")),
        lambda ct, body: (ct, body.replace(b"cid:doc1@region", b"cid:other@region")),
        lambda ct, body: ("text/html", body),
    ],
)
def test_a_bad_answer_before_the_document_is_invalid_response(
    tmp_path: Path, spoil: object
) -> None:
    content_type, body = spoil(*_answer())  # type: ignore[operator]
    initiator = _initiator(tmp_path, content_type, body)
    with pytest.raises(RegionCallFailed) as caught:
        asyncio.run(_retrieve(initiator))
    assert caught.value.status is RegionStatus.INVALID_RESPONSE


def test_another_document_than_asked_is_invalid_response(tmp_path: Path) -> None:
    initiator = _initiator(tmp_path, *_answer(unique_id="2.16.578.1.12.4.5.100.1.2.43"))
    with pytest.raises(RegionCallFailed, match="another document"):
        asyncio.run(_retrieve(initiator))


def test_an_answer_cut_inside_the_document_is_raised_from_the_chunks(tmp_path: Path) -> None:
    content_type, body = _answer()
    initiator = _initiator(tmp_path, content_type, body[: len(body) - 5000])

    async def run() -> int:
        got = await initiator.retrieve(
            _region(), KEY, caller=_caller(), patient=PATIENT, timeout_s=5, retry_delay_s=0.001
        )
        assert got.chunks is not None
        received = 0
        with pytest.raises(RegionCallFailed) as caught:
            async for chunk in got.chunks:
                received += len(chunk)
        assert caught.value.status is RegionStatus.INVALID_RESPONSE
        assert "truncated" in caught.value.detail
        return received

    assert 0 < asyncio.run(run()) < len(DOCUMENT)


# --- through HubService: the status before the first byte, the break after it -------------


def _service(tmp_path: Path, content_type: str, body: bytes) -> tuple[HubService, BreakerBoard]:
    breakers = BreakerBoard(failure_threshold=5, cooldown_s=30)
    service = HubService(
        settings=HubSettings(retrieve_timeout_s=5, key_dir=tmp_path),
        directory=RegionDirectory.from_regions([_region()]),
        client=FakeRegionClient(),
        breakers=breakers,
        snapshots=InMemorySnapshotStore(),
        metrics=HubMetrics(breakers),
        xca=_initiator(tmp_path, content_type, body),
    )
    return service, breakers


def _hub_caller() -> Caller:
    return Caller(
        correlation_id="c",
        identity="i",
        forwarded={"nhn-patient-nin": PATIENT.value},
        xca=_caller(),
    )


def test_the_hub_streams_it_without_a_length_and_answers_502_for_a_bad_answer(
    tmp_path: Path,
) -> None:
    service, _ = _service(tmp_path, *_answer())

    async def run() -> bytes:
        got = await service.retrieve(_hub_caller(), KEY.token(), None)
        assert isinstance(got, Retrieved)
        assert dict(got.headers) == {"content-type": "application/pdf"}
        return b"".join([c async for c in got.chunks])

    assert asyncio.run(run()) == DOCUMENT

    content_type, body = _answer()
    bad, breakers = _service(tmp_path, content_type, body[:300])
    with pytest.raises(RegionFailure) as caught:
        asyncio.run(bad.retrieve(_hub_caller(), KEY.token(), None))
    assert caught.value.status == 502
    assert "invalid" in str(caught.value) or "ITI-39" in str(caught.value)
    assert breakers[HCID].consecutive_failures == 1


@pytest.mark.parametrize(
    ("code", "context", "status", "reason"),
    [
        (
            "XDSRegistryError",
            "1.2.3: access denied: practitioner-blocked",
            403,
            "practitioner-blocked",
        ),
        ("XDSRegistryError", "1.2.3: access denied: Not A Code!", 403, None),
        ("XDSRegistryError", "refused by an external gateway", 403, None),
        ("XDSDocumentUniqueIdError", "1.2.3: no such document", 404, None),
    ],
)
def test_a_refusal_keeps_the_policy_reason_as_over_mhd(
    tmp_path: Path, code: str, context: str, status: int, reason: str | None
) -> None:
    """The region's policy reason reaches the portal as a denial-reason code, so a blocked
    health worker is told that the patient blocked them, not that the document may be gone."""
    error = EbRegistryError(code, context, HCID)
    service, _ = _service(tmp_path, *_answer(error=error))
    got = asyncio.run(service.retrieve(_hub_caller(), KEY.token(), None))
    assert isinstance(got, HubAnswer)
    assert got.status == status
    issue = orjson.loads(got.body)["issue"][0]
    assert denial_reason(issue) == reason


def test_a_break_inside_the_document_counts_against_the_region(tmp_path: Path) -> None:
    content_type, body = _answer()
    service, breakers = _service(tmp_path, content_type, body[: len(body) - 5000])

    async def run() -> None:
        got = await service.retrieve(_hub_caller(), KEY.token(), None)
        assert isinstance(got, Retrieved)
        with pytest.raises(RegionCallFailed):
            async for _ in got.chunks:
                pass

    asyncio.run(run())
    assert breakers[HCID].consecutive_failures == 1


# --- over HTTP: a real hub (uvicorn) and a real misbehaving XCA region on 127.0.0.1 ----------


RETRIEVE_TIMEOUT_S = 1.5
STALL_S = 4 * RETRIEVE_TIMEOUT_S


def _region_app(
    sts_key: SigningKey,
    answers: dict[str, tuple[str, bytes, int | None]],
    clients: list[tuple[str, int]],
) -> Starlette:
    """An XCA region that answers ITI-39 with scripted bytes (`/<name>/xca/iti39`), falling
    silent for STALL_S after `stall_at` bytes when given; and the STS's /jwks."""

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [sts_key.public_jwk()]})

    async def iti39(request: Request) -> Response:
        await request.body()
        content_type, body, stall_at = answers[request.path_params["name"]]
        if request.client is not None:
            clients.append((request.path_params["name"], request.client.port))

        async def chunks() -> AsyncIterator[bytes]:
            if stall_at is not None:
                yield body[:stall_at]
                await asyncio.sleep(STALL_S)
            for i in range(stall_at or 0, len(body), 65536):
                yield body[i : i + 65536]

        # Chunked, ending cleanly: only the MTOM framing says the document is cut short.
        return StreamingResponse(chunks(), media_type=None, headers={"content-type": content_type})

    return Starlette(
        routes=[Route("/jwks", jwks), Route("/{name}/xca/iti39", iti39, methods=["POST"])]
    )


def test_over_http_a_bad_or_silent_answer_is_502_or_504_and_a_break_inside_the_document_cuts_it(
    tmp_path: Path,
) -> None:
    sts_key = SigningKey.generate(kid="sts-xca-stream")
    content_type, whole = _answer()
    answers: dict[str, tuple[str, bytes, int | None]] = {
        "good": (content_type, whole, None),
        "cut": (content_type, whole[: len(whole) - 5000], None),
        "bad": (content_type, whole[:300], None),
        "silent-in-envelope": (content_type, whole, 200),
        "silent-in-document": (content_type, whole, len(whole) // 2),
    }
    names = list(answers)
    with ExitStack() as stack:
        clients: list[tuple[str, int]] = []
        region = stack.enter_context(serve_in_thread(_region_app(sts_key, answers, clients)))
        port = free_port()
        directory = tmp_path / "regions.json"
        directory.write_bytes(
            orjson.dumps(
                {
                    "regions": [
                        {
                            "name": f"Region {name}",
                            "home_community_id": f"urn:oid:2.16.578.1.12.4.5.100.{n}",
                            "base_url": f"{region}/{name}/fhir",
                            "protocol": "xca",
                            "iti38_url": f"{region}/{name}/xca/iti38",
                            "iti39_url": f"{region}/{name}/xca/iti39",
                        }
                        for n, name in enumerate(names, start=1)
                    ]
                }
            )
        )
        security = HubSecurity(
            auth=AuthSettings(issuer=ISSUER, audience=HUB_AUDIENCE),
            keys=RemoteJwks(f"{region}/jwks", httpx.AsyncClient()),
            replay=MemoryReplayCache(),
            signing_key=SigningKey.generate(kid="hub-xca-stream"),
            assertion_issuer=f"http://127.0.0.1:{port}",
            public_base_url=f"http://127.0.0.1:{port}",
        )
        settings = HubSettings(
            directory_file=directory,
            public_base_url=f"http://127.0.0.1:{port}",
            key_dir=tmp_path / "keys",
            dev_mode=True,
            retrieve_timeout_s=RETRIEVE_TIMEOUT_S,
        )
        app = create_hub_app(settings, security=security, audit=MemoryAuditSink())
        hub = stack.enter_context(serve_in_thread(app, port=port))
        caller = ApiCaller(sts_key)
        token = caller.citizen_token(PATIENT.value)

        def hcid(name: str) -> str:
            return f"urn:oid:2.16.578.1.12.4.5.100.{names.index(name) + 1}"

        def url(name: str) -> str:
            key = RetrieveKey(
                HomeCommunityId.parse(hcid(name)), KEY.repository_unique_id, KEY.unique_id
            )
            return f"{hub}/fhir/Binary/{key.token()}"

        def get(name: str) -> httpx.Response:
            headers = caller.headers(token, url(name), patient=PATIENT.value)
            return httpx.get(url(name), headers=headers, timeout=30)

        def broken_off(name: str) -> int:
            """Read an answer that must start 200 and break off; return the bytes received."""
            received = 0
            headers = caller.headers(token, url(name), patient=PATIENT.value)
            with httpx.stream("GET", url(name), headers=headers, timeout=30) as answer:
                assert answer.status_code == 200  # sent before the break could be known
                with pytest.raises(httpx.RemoteProtocolError):
                    for chunk in answer.iter_bytes():
                        received += len(chunk)
            return received

        for _ in range(2):
            good = get("good")
            assert good.status_code == 200, good.text[:500]
            assert good.content == DOCUMENT
            assert good.headers.get("transfer-encoding") == "chunked"
        # Each answer was read to its end (or was there whole): the connection is reused.
        assert len({port for name, port in clients if name == "good"}) == 1, clients

        bad = get("bad")
        assert bad.status_code == 502, bad.text[:500]
        assert bad.json()["resourceType"] == "OperationOutcome"
        silent = get("silent-in-envelope")
        assert silent.status_code == 504, silent.text[:500]

        # Never a short document that looks whole.
        assert broken_off("cut") < len(DOCUMENT)
        assert broken_off("silent-in-document") < len(DOCUMENT)
        breakers = app.state.hub.breakers
        for name in ("bad", "cut", "silent-in-envelope", "silent-in-document"):
            assert breakers[hcid(name)].consecutive_failures == 1, name
        assert breakers[hcid("good")].consecutive_failures == 0
