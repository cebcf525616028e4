"""The hub's transactions: ITI-67 find across regions (with snapshot paging) and ITI-68 routing.

Routes parse HTTP and call one method here; this module talks to the RegionClient, directory,
breakers and snapshot store it is given and never builds them.

References: IHE ITI TF-2 3.38.4.1.3 / 3.39.4.1.3 (XCA initiating gateway: query all responding
gateways, route retrieve by homeCommunityId); IHE MHD ITI-67 §2:3.67.4.2, ITI-68 §2:3.68.4.2.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import orjson
import structlog

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.domain.search import DocumentQuery
from onerecord.hub.breaker import BreakerBoard, CircuitBreaker
from onerecord.hub.client import (
    RegionClient,
    RegionConnectError,
    RegionStream,
    RegionTransportError,
)
from onerecord.hub.count import count_region
from onerecord.hub.directory import Region, RegionDirectory
from onerecord.hub.document_ids import HubDocumentId, route_entry
from onerecord.hub.errors import HubError, UnknownCommunity
from onerecord.hub.fanout import (
    MASKED_COUNT_HEADER,
    FindRequest,
    PassThroughAuth,
    RegionAuth,
    RegionCallFailed,
    RegionExchange,
    RequestBudget,
    fan_out,
    gather_regions,
)
from onerecord.hub.locator import NOT_ASKED, skipped_issue
from onerecord.hub.locator_feed import Locator
from onerecord.hub.merge import HubStatus, MergedResult, merge
from onerecord.hub.metrics import HubMetrics
from onerecord.hub.render import (
    document_entry,
    outcome_body,
    outcome_entry,
    page_bundle,
    rewrite_for_hub,
)
from onerecord.hub.request_checks import CheckedFind, parse_find_request
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.searchset import InvalidSearchset, WrongPatient, parse_read_answer
from onerecord.hub.settings import HubSettings
from onerecord.hub.snapshot import (
    Snapshot,
    SnapshotStore,
    caller_hash,
    new_snapshot_id,
    open_snapshot,
)
from onerecord.hub.xca_initiating import XcaCaller, XcaInitiator, policy_reason
from onerecord.mhd import (
    FHIR_JSON,
    BadRequest,
    Issue,
    RetrieveKey,
    render_query,
)

__all__ = ["Caller", "Gathered", "HubAnswer", "HubService", "RegionFailure", "Retrieved"]

log = structlog.get_logger("onerecord.hub")

_PAGING_PARAMS = frozenset({"_snapshot", "_offset", "_count"})
_RETRIEVE_HEADERS = ("content-type", "content-length", "etag", "x-content-sha256")


@dataclass(frozen=True, slots=True)
class Caller:
    """What the edge learned about the caller: identity (for snapshots), headers to forward."""

    correlation_id: str
    identity: str
    forwarded: Mapping[str, str] = field(default_factory=dict)
    auth: RegionAuth = field(default_factory=PassThroughAuth)
    xca: XcaCaller | None = None
    """Whom to assert in SAML to an XCA region (None: no verified caller, XCA regions refuse)."""

    def region_headers(self) -> dict[str, str]:
        return {**self.forwarded, "x-correlation-id": self.correlation_id}


@dataclass(frozen=True, slots=True)
class HubAnswer:
    """A FHIR JSON answer: status, body, extra headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    regions: tuple[tuple[str, str], ...] = ()
    """(homeCommunityId, status) of each region asked; empty when no fan-out happened."""
    returned: int | None = None


@dataclass(frozen=True, slots=True)
class Gathered:
    """A fan-out's merged answer, each region's result, the regions not asked, the audit pairs."""

    merged: MergedResult
    results: tuple[RegionResult, ...]
    skipped: tuple[Region, ...]
    outcomes: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A document streaming through from its region."""

    chunks: AsyncIterator[bytes]
    headers: Mapping[str, str]


class RegionFailure(HubError):
    """The region holding a document could not be reached (502) or did not answer (504)."""

    def __init__(self, message: str, *, status: int, code: str = "transient") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HubService:
    """The national hub's find and retrieve."""

    def __init__(
        self,
        *,
        settings: HubSettings,
        directory: RegionDirectory,
        client: RegionClient,
        breakers: BreakerBoard,
        snapshots: SnapshotStore,
        metrics: HubMetrics,
        locator: Locator | None = None,
        xca: XcaInitiator | None = None,
    ) -> None:
        self.settings = settings
        self.xca = xca
        """ITI-38/39 to regions whose directory entry says `xca` (hub/xca_initiating.py)."""
        self.locator = locator
        """When set, a search asks only the regions it cannot rule out (hub/locator.py)."""
        self.directory = directory
        self.client = client
        self.breakers = breakers
        self.snapshots = snapshots
        self.metrics = metrics

    # ITI-67 ---------------------------------------------------------------------------------

    async def find(
        self,
        caller: Caller,
        params: Sequence[tuple[str, str]],
        *,
        budget: RequestBudget | None = None,
        checked: CheckedFind | None = None,
    ) -> HubAnswer:
        """Answer a Find Document References query across every region, or page a snapshot.

        `budget`: the request's deadlines from its arrival (default: from now). `checked`: what
        `check_find_request` made of these `params` (parsed here when not given).
        """
        if any(name == "_snapshot" for name, _ in params):
            return await self._page(caller, params)
        if checked is None:
            checked = self._check(params)
        query, params = checked.query, checked.params
        if checked.only_total:
            return await self._count(caller, query, params)
        gathered = await self.gather(caller, checked, budget=budget)
        merged, outcomes = gathered.merged, gathered.outcomes
        if merged.status is HubStatus.FAILURE:
            headers = {"retry-after": merged.retry_after} if merged.retry_after else {}
            return HubAnswer(
                merged.http_status, outcome_body(merged.issues), headers, regions=outcomes
            )
        base = self.settings.fhir_base
        entries = tuple(
            document_entry(
                rewrite_for_hub(d.resource, d.home_community_id, base),
                route_entry(d.resource, d.home_community_id, base),
            )
            for d in merged.documents
        )
        snapshot = Snapshot(
            id=new_snapshot_id(),
            caller=caller_hash(caller.identity),
            entries=entries,
            outcome=outcome_entry(merged.issues),
            masked_count=merged.masked_count,
            query=urlencode([(k, v) for k, v in params if k not in _PAGING_PARAMS]),
        )
        count = query.count
        stored = len(entries) > count and await self.snapshots.put(snapshot)
        if len(entries) > count and not stored:
            log.warning("hub.snapshot.too_large", documents=len(entries))
        page = self._render_page(snapshot, 0, count, pageable=stored)
        return replace(page, regions=outcomes, returned=len(entries))

    async def gather(
        self,
        caller: Caller,
        checked: CheckedFind,
        *,
        budget: RequestBudget | None = None,
        home_community_id: str | None = None,
    ) -> Gathered:
        """Ask every region (or only the one named) and merge: the entries of a find, unpaged.

        The ITI-67 find pages what this returns; the XDS.b registry (hub/xds_registry.py)
        renders it as ebRIM.
        """
        query = checked.query
        request = FindRequest(
            path_and_query=f"DocumentReference?{urlencode(checked.region_params)}",
            headers=caller.region_headers(),
            patient=query.patient_id,
        )
        deadlines = self.settings.deadlines
        regions, skipped = self._regions_to_ask(query)
        if home_community_id is not None:
            regions = [r for r in regions if r.hcid == home_community_id]
            skipped = tuple(r for r in skipped if r.hcid == home_community_id)
        results = await fan_out(
            regions,
            request,
            client=self.client,
            breakers=self.breakers,
            auth=caller.auth,
            per_region_timeout=deadlines.per_region_s,
            aggregation_deadline=deadlines.aggregation_s,
            budget=budget or RequestBudget.starting(deadlines),
            max_entries=self.settings.max_entries_per_region,
            max_pages=self.settings.max_pages_per_region,
            retry_delay_s=self.settings.retry_delay_s,
            xca_exchange=self._xca_exchange(caller, query),
        )
        self.metrics.observe(results)
        _log_faulty_regions(results)
        merged = merge(results, query.sort, region_cap=self.settings.max_entries_per_region)
        merged = _with_skipped(merged, skipped)
        log.info(
            "hub.find",
            status=merged.status.value,
            documents=len(merged.documents),
            regions={r.region.hcid: r.status.value for r in results},
            not_asked=len(skipped),
        )
        return Gathered(merged, tuple(results), tuple(skipped), _outcomes(results, skipped))

    def check(self, params: Sequence[tuple[str, str]]) -> CheckedFind:
        """Parse a find's parameters as the regions will (400 for what they would refuse)."""
        return self._check(params)

    def _xca_exchange(self, caller: Caller, query: DocumentQuery) -> RegionExchange | None:
        if self.xca is None:
            return None
        return functools.partial(
            self.xca.find,
            caller=caller.xca,
            query=query,
            max_entries=self.settings.max_entries_per_region,
            retry_delay_s=self.settings.retry_delay_s,
        )

    def _check(self, params: Sequence[tuple[str, str]]) -> CheckedFind:
        return parse_find_request(
            params,
            max_page_size=self.settings.max_page_size,
            region_page_size=self.settings.region_page_size,
        )

    async def _count(
        self, caller: Caller, query: DocumentQuery, params: Sequence[tuple[str, str]]
    ) -> HubAnswer:
        """Answer `_summary=count`: each region's total, added up (hub/count.py)."""
        asked = [(k, v) for k, v in render_query(query, None) if k != "_count"]
        totals: dict[str, int] = {}
        exchange = functools.partial(
            count_region,
            path_and_query=f"DocumentReference?{urlencode([*asked, ('_summary', 'count')])}",
            headers=caller.region_headers(),
            client=self.client,
            auth=caller.auth,
            retry_delay_s=self.settings.retry_delay_s,
            totals=totals,
        )
        deadlines = self.settings.deadlines
        regions, skipped = self._regions_to_ask(query)
        results = await gather_regions(
            regions,
            exchange,
            breakers=self.breakers,
            per_region_timeout=deadlines.per_region_s,
            aggregation_deadline=deadlines.aggregation_s,
        )
        self.metrics.observe(results)
        merged = merge(results, query.sort, region_cap=self.settings.max_entries_per_region)
        merged = _with_skipped(merged, skipped)
        outcomes = _outcomes(results, skipped)
        if merged.status is HubStatus.FAILURE:
            return HubAnswer(merged.http_status, outcome_body(merged.issues), regions=outcomes)
        body = page_bundle(
            (),
            outcome=outcome_entry(merged.issues),
            total=sum(totals.get(r.region.hcid, 0) for r in results if r.ok),
            self_url=(
                f"{self.settings.fhir_base}/DocumentReference?"
                f"{urlencode([*params, ('_summary', 'count')])}"
            ),
            next_url=None,
        )
        return HubAnswer(200, body, regions=outcomes, returned=0)

    def _regions_to_ask(self, query: DocumentQuery) -> tuple[Sequence[Region], tuple[Region, ...]]:
        """The enabled regions to ask about the query's patient, and those the locator spares."""
        regions = self.directory.enabled()
        if self.locator is None:
            return regions, ()
        plan = self.locator.plan(query.patient_id, regions)
        log.debug("hub.locator.plan", asked={r.hcid: why.value for r, why in plan.ask})
        return plan.regions, plan.skip

    async def _page(self, caller: Caller, params: Sequence[tuple[str, str]]) -> HubAnswer:
        values = dict(params)
        snapshot = await open_snapshot(
            self.snapshots, values["_snapshot"], caller_hash(caller.identity)
        )
        offset = _int_param(values, "_offset", 0, minimum=0)
        count = _int_param(values, "_count", self.settings.default_page_size, minimum=1)
        count = min(count, self.settings.max_page_size)
        return self._render_page(snapshot, offset, count, pageable=True)

    def _render_page(
        self, snapshot: Snapshot, offset: int, count: int, *, pageable: bool
    ) -> HubAnswer:
        base = f"{self.settings.fhir_base}/DocumentReference"
        if offset == 0:
            self_url = f"{base}?{snapshot.query}"
        else:
            self_url = f"{base}?{urlencode(_paging(snapshot.id, offset, count))}"
        end = offset + count
        next_url = (
            f"{base}?{urlencode(_paging(snapshot.id, end, count))}"
            if pageable and end < snapshot.total
            else None
        )
        body = page_bundle(
            snapshot.page(offset, count) if pageable else snapshot.entries,
            outcome=snapshot.outcome,
            total=snapshot.total,
            self_url=self_url,
            next_url=next_url,
        )
        return HubAnswer(200, body, {MASKED_COUNT_HEADER: str(snapshot.masked_count)})

    # FHIR read -------------------------------------------------------------------------------

    async def read(
        self, caller: Caller, document_id: str, *, patient: NationalIdentityNumber
    ) -> HubAnswer:
        """Route a read of one DocumentReference to the region its hub id names.

        The region decides with the caller's identity and patient headers, as for a retrieve;
        its answer is read as strictly as a search entry (about `patient`, the JSON types the
        hub uses) and comes back with the hub's id and attachment URLs.
        References: FHIR R4 http.html#read; hub/document_ids.py.
        """
        routed = HubDocumentId.parse(document_id)
        hcid = routed.home_community_id.urn
        region, breaker = self._owning_region(
            hcid,
            unknown=f"no DocumentReference with id {document_id} at the hub",
            expression="DocumentReference.id",
        )
        url = f"{region.base_url}/DocumentReference/{routed.entry_uuid}"
        headers = await self._routed_headers(caller, region, url)
        timeout = self.settings.retrieve_timeout_s
        try:
            got = await self.client.get(url, headers=headers, timeout_s=timeout)
        except (TimeoutError, RegionConnectError, RegionTransportError) as exc:
            breaker.record_failure()
            raise _routed_call_failed(region, timeout, exc) from None
        if got.status >= 500:
            breaker.record_failure()
            raise RegionFailure(
                f"{region.name} ({hcid}) answered the read with an error", status=502
            )
        resource = None
        if got.status == 200:
            try:
                resource = parse_read_answer(got.body, patient=patient)
            except InvalidSearchset as exc:  # the region's fault: counted, named, not passed on
                breaker.record_failure()
                wrong_patient = isinstance(exc, WrongPatient)
                log.warning("hub.read.region_invalid", hcid=hcid, wrong_patient=wrong_patient)
                raise RegionFailure(
                    f"{region.name} ({hcid}) answered the read with an invalid response",
                    status=502,
                    code="invalid",
                ) from None
        breaker.record_success()
        if resource is None:
            # The region's own refusal (404, 403, 400 …) with its OperationOutcome.
            content_type = got.headers.get("content-type", FHIR_JSON)
            return HubAnswer(got.status, got.body, {"content-type": content_type})
        rewrite_for_hub(resource, hcid, self.settings.fhir_base)
        resource["id"] = str(routed)
        return HubAnswer(200, orjson.dumps(resource), regions=((hcid, "ok"),), returned=1)

    # ITI-68 ---------------------------------------------------------------------------------

    async def retrieve(
        self, caller: Caller, token: str, accept: str | None
    ) -> Retrieved | HubAnswer:
        """Route a Retrieve Document to the region named by the token's homeCommunityId."""
        key = RetrieveKey.parse(token)
        hcid = key.home_community_id.urn
        region, breaker = self._owning_region(
            hcid,
            unknown=f"homeCommunityId {hcid} is not a community of this network",
            expression="Binary.id",
        )
        if region.xca:
            return await self._retrieve_xca(caller, region, breaker, key)
        url = f"{region.base_url}/Binary/{token}"
        headers = await self._routed_headers(caller, region, url)
        if accept:
            headers["accept"] = accept
        timeout = self.settings.retrieve_timeout_s
        try:
            stream = await self._open(url, headers, timeout)
        except (TimeoutError, RegionConnectError, RegionTransportError) as exc:
            breaker.record_failure()
            raise _routed_call_failed(region, timeout, exc) from None
        if stream.status >= 500:
            breaker.record_failure()
            await stream.close()
            raise RegionFailure(
                f"{region.name} ({hcid}) failed with HTTP {stream.status}",
                status=502,
                code="exception",
            )
        breaker.record_success()
        if stream.status != 200:
            # The region's own answer (404, 403, 410, 406 …) with its OperationOutcome.
            body = b"".join([chunk async for chunk in stream.chunks])
            content_type = stream.headers.get("content-type", "application/fhir+json")
            return HubAnswer(stream.status, body, {"content-type": content_type})
        passed = {k: stream.headers[k] for k in _RETRIEVE_HEADERS if k in stream.headers}
        return Retrieved(chunks=stream.chunks, headers=passed)

    async def _retrieve_xca(
        self, caller: Caller, region: Region, breaker: CircuitBreaker, key: RetrieveKey
    ) -> Retrieved | HubAnswer:
        """ITI-68 through the hub from an XCA region: one ITI-39 DocumentRequest, streamed.

        Outcomes as for MHD: no answer → 502/504; the region's error or a malformed answer up to
        the document's first byte → 502; a RegistryError for the document → 404
        (XDSDocumentUniqueIdError, the region's "no such document") or 403. The document's
        bytes then stream through (`_relay`); a fault inside them can no longer change the
        status: the response is broken off (docs/xca.md "Retrieve").
        """
        if self.xca is None:
            raise RegionFailure(
                f"{region.name} ({region.hcid}) speaks XCA and the hub has no SAML key", status=502
            )
        if caller.xca is None:
            return _outcome(403, "forbidden", "no verified caller to assert over XCA")
        timeout = self.settings.retrieve_timeout_s
        patient = _patient_of(caller)
        try:
            got = await self.xca.retrieve(
                region,
                key,
                caller=caller.xca,
                patient=patient,
                timeout_s=timeout,
                retry_delay_s=self.settings.retry_delay_s,
            )
        except (TimeoutError, RegionConnectError, RegionTransportError) as exc:
            breaker.record_failure()
            raise _routed_call_failed(region, timeout, exc) from None
        except RegionCallFailed as exc:
            if exc.status.counts_against_breaker:
                breaker.record_failure()
            raise RegionFailure(
                f"{region.name} ({region.hcid}) answered the retrieve: {exc.detail}",
                status=502,
                code="exception",
            ) from None
        breaker.record_success()
        if got.chunks is None:
            if got.error_code == "XDSDocumentUniqueIdError":
                return _outcome(404, "not-found", f"no document {key.unique_id.value}")
            # The policy's reason travels as over MHD, so that the portal can say, for
            # instance, that the patient has blocked this health worker (issue 11, defect 8).
            return _outcome(
                403,
                "forbidden",
                f"{got.error_code}: {got.error_context}",
                reason=policy_reason(got.error_context),
            )
        # No content-length: the MTOM part does not say its size. The answer goes out chunked,
        # so a client can tell a document broken off (no last chunk) from a whole one.
        headers = {"content-type": got.mime_type or "application/octet-stream"}
        return Retrieved(chunks=_relay(got.chunks, region, breaker), headers=headers)

    def _owning_region(
        self, hcid: str, *, unknown: str, expression: str
    ) -> tuple[Region, CircuitBreaker]:
        """The region that owns `hcid` and its breaker, for a routed read or retrieve."""
        region = self.directory.by_hcid(hcid)
        if region is None:
            raise UnknownCommunity(unknown, expression=expression)
        breaker = self.breakers[hcid]
        if not region.enabled or not breaker.allow():
            raise RegionFailure(f"{region.name} ({hcid}) is unavailable", status=502)
        return region, breaker

    @staticmethod
    async def _routed_headers(caller: Caller, region: Region, url: str) -> dict[str, str]:
        return {**caller.region_headers(), **(await caller.auth.headers_for(region, "GET", url))}

    async def _open(self, url: str, headers: Mapping[str, str], timeout: float) -> RegionStream:
        try:
            return await self.client.stream(url, headers=headers, timeout_s=timeout)
        except RegionConnectError:
            await asyncio.sleep(self.settings.retry_delay_s)
            return await self.client.stream(url, headers=headers, timeout_s=timeout)


def _routed_call_failed(region: Region, timeout: float, exc: Exception) -> RegionFailure:
    """A routed read or retrieve that got no answer: 504 for a timeout, else 502."""
    if isinstance(exc, TimeoutError):
        return RegionFailure(
            f"{region.name} ({region.hcid}) did not answer within {timeout:.1f} s",
            status=504,
            code="timeout",
        )
    return RegionFailure(f"{region.name} ({region.hcid}) is unavailable: {exc}", status=502)


async def _relay(
    chunks: AsyncIterator[bytes], region: Region, breaker: CircuitBreaker
) -> AsyncIterator[bytes]:
    """A document's chunks from an XCA region; a fault inside them is logged and counted.

    The status (200) and headers are sent by then: the fault is raised on, and the server
    closes the connection without the last chunk, so the client sees a broken-off answer.
    """
    sent = 0
    try:
        async for chunk in chunks:
            sent += len(chunk)
            yield chunk
    except RegionCallFailed as exc:
        if exc.status.counts_against_breaker:
            breaker.record_failure()
        log.warning(
            "hub.retrieve.broken_off",
            hcid=region.hcid,
            region_status=exc.status.value,
            sent_bytes=sent,
            detail=exc.detail,
        )
        raise
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _outcome(status: int, code: str, diagnostics: str, *, reason: str | None = None) -> HubAnswer:
    issue = Issue(code, diagnostics, reason=reason).render()
    return HubAnswer(status, outcome_body([issue]), {"content-type": FHIR_JSON})


def _patient_of(caller: Caller) -> NationalIdentityNumber | None:
    """The patient of a routed call: the request's `nhn-patient-nin` header, when valid."""
    value = caller.forwarded.get("nhn-patient-nin")
    try:
        return NationalIdentityNumber(value) if value else None
    except InvalidIdentifier:
        return None


def _with_skipped(merged: MergedResult, skipped: Sequence[Region]) -> MergedResult:
    """Add an information issue per region the locator did not ask (hub/locator.py)."""
    if not skipped:
        return merged
    return replace(merged, issues=(*merged.issues, *map(skipped_issue, skipped)))


def _outcomes(
    results: Sequence[RegionResult], skipped: Sequence[Region]
) -> tuple[tuple[str, str], ...]:
    """(homeCommunityId, status) of every region, asked or not, for the audit."""
    asked = tuple((r.region.hcid, r.status.value) for r in results)
    return asked + tuple((r.hcid, NOT_ASKED) for r in skipped)


def _log_faulty_regions(results: Sequence[RegionResult]) -> None:
    """Tell operators about regions that refused a request the hub had validated, or answered
    wrongly. Only homeCommunityId, status and the hub's own words: never what the region said.
    """
    for result in results:
        if result.status is RegionStatus.REJECTED:
            # The hub validates every parameter as the sources do: a 4xx means they disagree.
            log.warning(
                "hub.find.region_rejected", hcid=result.region.hcid, http=result.http_status
            )
        elif result.status is RegionStatus.INVALID_RESPONSE:
            log.warning("hub.find.region_invalid", hcid=result.region.hcid)


def _paging(snapshot_id: str, offset: int, count: int) -> list[tuple[str, str]]:
    return [("_snapshot", snapshot_id), ("_offset", str(offset)), ("_count", str(count))]


def _int_param(values: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = values.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise BadRequest(f"{name} must be an integer ≥ {minimum}", expression=name)
    return int(raw)
