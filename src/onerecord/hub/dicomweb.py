"""DICOMweb through the hub: the GETs under one study routed to the archive of its region.

    GET {hub}/dicomweb/{hcid-oid}/studies/{StudyInstanceUID}[/…]

`hcid-oid` is the owning region's homeCommunityId without `urn:oid:`; what follows is any WADO-RS
or QIDO-RS resource under the study (series, instances, metadata, frames, rendered, thumbnail,
bulk data, `…/series` and `…/instances` searches), read by `onerecord.dicom.parse_dicomweb_path`
as the archive reads it. The hub checks the path before anything else (400, 404), asks the
region's archive (its directory entry's `media_url`) with a hub assertion, exactly as it asks a
document source for ITI-68, and streams the answer through chunk by chunk: Range, If-None-Match
and Accept go to the archive; status, Content-Type, Content-Range, Accept-Ranges and ETag come
back. The archive decides the access (binding, policy, controls) and audits it; the hub audits
the request too. In DICOM JSON answers (metadata, QIDO-RS) the archive's own URLs (BulkDataURI,
RetrieveURL) are rewritten, as they stream, to the hub's, so that a client follows them with the
token it has (`rewrite_urls`).

Outcomes, as for ITI-68: no answer 502 (504 for a timeout), the archive's 5xx 502, its 4xx and
3xx as they are; an archive that breaks off inside the body cuts the hub's answer (no last
chunk), which is logged and counted against its breaker.

References: DICOM PS3.18 §10.4 (WADO-RS), §10.6 (QIDO-RS), §8.3.5 (rendered); RFC 9110 §14
(Range), §13.1.2 (If-None-Match); IHE RAD MADO (the study reached by its archive's base URL);
TRUST-FRAMEWORK §2.3 (the hub asserts the caller).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import structlog

from onerecord.dicom import DicomWebPath, DicomWebTarget, DicomWireError, parse_dicomweb_path
from onerecord.dicom import NotFound as DicomNotFound
from onerecord.domain import HomeCommunityId, InvalidIdentifier, Oid
from onerecord.hub.breaker import BreakerBoard, CircuitBreaker
from onerecord.hub.client import (
    RegionClient,
    RegionConnectError,
    RegionStream,
    RegionTransportError,
)
from onerecord.hub.directory import Region, RegionDirectory
from onerecord.hub.service import Caller, RegionFailure
from onerecord.mhd import BadRequest, NotFound

__all__ = [
    "RELAYED_ANSWER_HEADERS",
    "AnswerBrokenOff",
    "RELAYED_REQUEST_HEADERS",
    "DicomWebAnswer",
    "DicomWebRelay",
    "StudyPath",
    "check_relayed_headers",
    "parse_study_path",
    "relayed_query",
    "rewrite_urls",
]

log = structlog.get_logger("onerecord.hub.dicomweb")

RELAYED_REQUEST_HEADERS = ("accept", "range", "if-none-match")
"""The caller's headers the archive gets (beside the hub assertion and patient headers)."""
RELAYED_ANSWER_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "warning",
)
"""The archive's headers the caller gets (Warning: QIDO's limit and empty-answer notes)."""

_MAX_PATH = 2048
_MAX_HEADER = 1024
_MAX_QUERY = 4096
_MAX_PARAMS = 64
_MAX_ERROR_BODY = 64 * 1024
_DICOM_JSON = "application/dicom+json"


class AnswerBrokenOff(Exception):
    """The archive broke off inside a body the hub was relaying; logged and counted already.

    Raised from the body so that the server closes the connection without the last chunk.
    """


@dataclass(frozen=True, slots=True)
class StudyPath:
    """A checked DICOMweb path under one study, and the region that owns it."""

    home_community_id: HomeCommunityId
    resource: DicomWebPath
    relative: str
    """The path below the DICOMweb root, `studies/{uid}/…`, rebuilt from checked segments."""

    @property
    def study_uid(self) -> str:
        assert self.resource.study_uid is not None
        return self.resource.study_uid

    @property
    def is_search(self) -> bool:
        return self.resource.target is DicomWebTarget.SEARCH


def parse_study_path(path: str) -> StudyPath:
    """Read `{hcid-oid}/studies/{uid}[/…]`, or raise BadRequest (400) or NotFound (404).

    The OID is bare (no `urn:oid:`); UIDs follow PS3.5 §9.1; the rest must name a WADO-RS or
    QIDO-RS resource under the study. Nothing that is not checked reaches the archive: the
    relative path is rebuilt from the checked segments.
    """
    if len(path) > _MAX_PATH:
        raise BadRequest("path: too long", expression="path")
    oid_text, _, rest = path.partition("/")
    try:
        oid = Oid(oid_text)
    except InvalidIdentifier:
        raise BadRequest(
            "path: the community is a homeCommunityId's OID (dotted digits)", expression="path"
        ) from None
    if oid.value != oid_text:  # `urn:oid:…` is the homeCommunityId, not its OID
        raise BadRequest("path: the community is given without urn:oid:", expression="path")
    segments = rest.strip("/").split("/")
    if segments[0] != "studies" or len(segments) < 2:
        raise NotFound("path: the hub serves DICOMweb under one study (studies/{uid}/…)")
    relative = "/".join(segments)
    try:
        resource = parse_dicomweb_path(relative)
    except DicomNotFound as exc:
        raise NotFound(str(exc)) from None
    except DicomWireError as exc:
        raise BadRequest(str(exc), expression="path") from None
    return StudyPath(HomeCommunityId(oid), resource, relative)


def relayed_query(params: Sequence[tuple[str, str]]) -> str:
    """The query string the archive gets: the caller's, bounded and encoded again (400)."""
    if len(params) > _MAX_PARAMS:
        raise BadRequest(f"at most {_MAX_PARAMS} query parameters", expression="query")
    query = urlencode(params)
    if len(query) > _MAX_QUERY:
        raise BadRequest(f"the query is longer than {_MAX_QUERY} characters", expression="query")
    return query


def check_relayed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's Accept, Range and If-None-Match, each printable and bounded (400)."""
    out: dict[str, str] = {}
    for name in RELAYED_REQUEST_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if len(value) > _MAX_HEADER or not value.isprintable() or not value.isascii():
            raise BadRequest(f"the {name} header is malformed", expression=name)
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class DicomWebAnswer:
    """The archive's answer on its way through: status, the headers passed on, the body."""

    status: int
    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]


class DicomWebRelay:
    """Route a DICOMweb GET under one study to its region's archive, streaming the answer."""

    def __init__(
        self,
        *,
        directory: RegionDirectory,
        client: RegionClient,
        breakers: BreakerBoard,
        timeout_s: float,
        retry_delay_s: float,
        public_base_url: str,
    ) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self.directory = directory
        self.client = client
        self.breakers = breakers
        self.timeout_s = timeout_s
        """Bounds connecting and each read; a large body may take longer as a whole."""
        self.retry_delay_s = retry_delay_s

    def region_of(self, path: StudyPath) -> tuple[Region, CircuitBreaker]:
        """The region owning the study and its breaker: 404 unknown or without images, 502 off."""
        hcid = path.home_community_id.urn
        region = self.directory.by_hcid(hcid)
        if region is None or region.media_url is None:
            raise NotFound(f"no media archive for the community {path.home_community_id.oid}")
        breaker = self.breakers[hcid]
        if not region.enabled or not breaker.allow():
            raise RegionFailure(f"{region.name} ({hcid}) is unavailable", status=502)
        return region, breaker

    async def get(
        self,
        caller: Caller,
        path: StudyPath,
        *,
        query: str,
        headers: Mapping[str, str],
    ) -> DicomWebAnswer:
        """Ask the owning archive for `path`; raise RegionFailure (502/504) when it cannot say.

        `headers`: the caller's checked Accept, Range and If-None-Match.
        """
        region, breaker = self.region_of(path)
        assert region.media_url is not None
        url = f"{region.media_url}/{path.relative}" + (f"?{query}" if query else "")
        sent = {
            **caller.region_headers(),
            **headers,
            **(await caller.auth.headers_for(region, "GET", url)),
        }
        try:
            stream = await self._open(url, sent)
        except (TimeoutError, RegionConnectError, RegionTransportError) as exc:
            breaker.record_failure()
            raise _no_answer(region, self.timeout_s, exc) from None
        if stream.status >= 500:
            breaker.record_failure()
            await stream.close()
            log.warning("hub.dicomweb.region_error", hcid=region.hcid, http=stream.status)
            raise RegionFailure(
                f"{region.name} ({region.hcid}) failed with HTTP {stream.status}",
                status=502,
                code="exception",
            )
        breaker.record_success()
        passed = {k: stream.headers[k] for k in RELAYED_ANSWER_HEADERS if k in stream.headers}
        if "content-encoding" in stream.headers:  # decoded on the way: its length no longer holds
            passed.pop("content-length", None)
        if stream.status >= 400:
            # The archive's refusal (403, 404, 406 …) as it is: a small body, read whole.
            body = await _bounded(stream, region, breaker)
            passed["content-length"] = str(len(body))
            return DicomWebAnswer(stream.status, passed, _once(body))
        chunks = _relay(stream, region, breaker)
        if passed.get("content-type", "").split(";")[0].strip().lower() == _DICOM_JSON:
            # The archive's URLs become the hub's (a JSON string starts each: `"http…`).
            ours = f"{self.public_base_url}/dicomweb/{path.home_community_id.oid}/"
            chunks = rewrite_urls(chunks, f'"{region.media_url}/'.encode(), f'"{ours}'.encode())
            passed.pop("content-length", None)
        return DicomWebAnswer(stream.status, passed, chunks)

    async def _open(self, url: str, headers: Mapping[str, str]) -> RegionStream:
        try:
            return await self.client.stream(url, headers=headers, timeout_s=self.timeout_s)
        except RegionConnectError:  # nothing was sent: once more
            await asyncio.sleep(self.retry_delay_s)
            return await self.client.stream(url, headers=headers, timeout_s=self.timeout_s)


def _no_answer(region: Region, timeout: float, exc: Exception) -> RegionFailure:
    if isinstance(exc, TimeoutError):
        return RegionFailure(
            f"{region.name} ({region.hcid}) did not answer within {timeout:.1f} s",
            status=504,
            code="timeout",
        )
    return RegionFailure(f"{region.name} ({region.hcid}) is unavailable", status=502)


async def rewrite_urls(
    chunks: AsyncIterator[bytes], old: bytes, new: bytes
) -> AsyncIterator[bytes]:
    """Replace `old` by `new` in a stream, holding back at most `len(old) - 1` bytes.

    A match may straddle two chunks: the tail that could begin one waits for the next chunk.
    """
    keep = len(old) - 1
    tail = b""
    try:
        async for chunk in chunks:
            data = tail + chunk
            cut = len(data) - keep  # a match starting before here lies wholly in `data`
            out: list[bytes] = []
            at = 0
            while (found := data.find(old, at)) != -1 and found < cut:
                out += (data[at:found], new)
                at = found + len(old)
            out.append(data[at : max(at, cut)])
            tail = data[max(at, cut) :]
            piece = b"".join(out)
            if piece:
                yield piece
        if tail:
            yield tail
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _bounded(stream: RegionStream, region: Region, breaker: CircuitBreaker) -> bytes:
    """An error answer's body, at most `_MAX_ERROR_BODY` bytes (the rest is not the caller's)."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in stream.chunks:
            parts.append(chunk[: _MAX_ERROR_BODY - size])
            size += len(parts[-1])
            if size >= _MAX_ERROR_BODY:
                break
    except (TimeoutError, RegionTransportError) as exc:
        breaker.record_failure()
        raise _no_answer(region, 0.0, exc) from None
    finally:
        await stream.close()
    return b"".join(parts)


async def _relay(
    stream: RegionStream, region: Region, breaker: CircuitBreaker
) -> AsyncIterator[bytes]:
    """The archive's body, chunk by chunk; a break inside it is logged once, counted, raised on.

    Status and headers are sent by then: raising makes the server close the connection without
    the last chunk, so the caller sees a broken-off answer and never a short one that looks whole.
    """
    sent = 0
    try:
        async for chunk in stream.chunks:
            sent += len(chunk)
            yield chunk
    except (TimeoutError, RegionTransportError) as exc:
        breaker.record_failure()
        log.warning(
            "hub.dicomweb.broken_off",
            hcid=region.hcid,
            sent_bytes=sent,
            error="timeout" if isinstance(exc, TimeoutError) else "transport",
        )
        raise AnswerBrokenOff(f"{region.hcid} broke off after {sent} bytes") from None
    finally:
        await stream.close()
