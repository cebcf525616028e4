"""The citizen's self-service through the hub: every region's access log and patient controls.

The citizen portal talks only to the hub. The hub sends each call to every region with the same
deadlines and breakers as ITI-67, carrying a hub assertion of the citizen, and merges:

- `GET /fhir/AuditEvent?patient.identifier=…` → one searchset Bundle, newest first; each
  AuditEvent tagged with its region's homeCommunityId; each failed region one OperationOutcome
  issue (XCA PartialSuccess); all failed → 502/504, all denied → 403.
- `GET /controls[?patient=]` → one controls object: reserved when any region says so, the union
  of the blocks, and each region's status.
- `PUT|DELETE /controls/reservation`, `/controls/practitioner-blocks/{hpr}`,
  `/controls/document-blocks/{uniqueId}[?homeCommunityId=]` → the same change at every region
  (or at one, for a document block); 200 when each region made it, else 502 with the same
  object naming the regions that did not; all denied → 403; every region refusing it as the
  caller's error (4xx) → 400. With an outbox (the hub's store), a region that failed for its own
  reasons (down, timeout, 5xx) gets the change later: the answer is 202 and its `pending` part
  names each change and region not yet confirmed, as does every `GET /controls` until the
  region confirms (hub/outbox.py; issue 11 defect 5).

Who may is each region's decision (TRUST-FRAMEWORK §5.2: self from 16, a parent for a child
under 12, a proxy); the hub only stops health personnel and a citizen asking about a person
their token does not name at the door.

References: IHE ITI TF-2 3.38.4.1.3 (XCA consolidation, PartialSuccess); FHIR R4 AuditEvent;
IHE BALP; TRUST-FRAMEWORK §5.2, F2, F3 (the citizen's access log, never the reader's id).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import structlog

from onerecord.domain import (
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    IdentityKind,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.hub.breaker import BreakerBoard
from onerecord.hub.client import RegionClient
from onerecord.hub.directory import Region, RegionDirectory
from onerecord.hub.fanout import (
    FindRequest,
    PassThroughAuth,
    RegionAuth,
    RegionCallFailed,
    call_region,
    fan_out,
    gather_regions,
    refusal_reason,
    status_for_http,
)
from onerecord.hub.merge import HubStatus, consolidate, region_issues
from onerecord.hub.metrics import HubMetrics
from onerecord.hub.outbox import (
    ControlLocks,
    Outbox,
    PendingChange,
    Sequencer,
    Verdict,
    backoff_delay,
    pending_json,
    verdict,
)
from onerecord.hub.render import outcome_body
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.security import deferred_identity
from onerecord.hub.service import Caller, HubAnswer
from onerecord.hub.settings import HubSettings
from onerecord.mhd import BadRequest
from onerecord.trust.access_token import Citizen, Principal
from onerecord.trust.errors import AccessDenied, PatientBindingFailed

__all__ = [
    "EXT_AUDIT_HOME_COMMUNITY_ID",
    "CitizenServices",
    "ControlChange",
    "ControlKind",
    "change_status",
    "citizen_patient",
    "merge_access_log",
    "merge_controls",
    "parse_controls",
    "parse_patient",
    "region_root",
    "region_states",
    "tag_audit_event",
]

log = structlog.get_logger("onerecord.hub.self_service")

EXT_AUDIT_HOME_COMMUNITY_ID = "https://onerecord.example/fhir/StructureDefinition/home-community-id"
"""Extension on each AuditEvent the hub passes on: valueString = the region's homeCommunityId."""

_NIN_SYSTEMS = ("urn:oid:2.16.578.1.12.4.1.4.1", "urn:oid:2.16.578.1.12.4.1.4.2")
_JSON = "application/json"
_DETAIL_MAX = 200


# --- input -----------------------------------------------------------------------------------


def parse_patient(value: str | None, parameter: str) -> NationalIdentityNumber | None:
    """Read a patient parameter (`system|nin` or a bare nin); None when absent, 400 when bad."""
    if value is None:
        return None
    system, bar, nin = value.strip().rpartition("|")
    if bar and system and system not in _NIN_SYSTEMS:
        raise BadRequest(
            f"{parameter} must use the system {_NIN_SYSTEMS[0]} (or {_NIN_SYSTEMS[1]})",
            expression=parameter,
        )
    try:
        return NationalIdentityNumber(nin)
    except InvalidIdentifier:
        raise BadRequest(
            f"{parameter} is not a national identity number", expression=parameter
        ) from None


def citizen_patient(
    principal: Principal | None, asked: NationalIdentityNumber | None
) -> NationalIdentityNumber | None:
    """Return whose log or controls are asked for; refuse callers the token does not allow.

    Health personnel never use these services; a citizen asks for themselves (the default) or
    a person in their `onerecord:representation` claim. The regions apply the full rules
    again (age limits, proxies). Without a principal (development open access) nothing is
    checked.
    """
    if principal is None:
        return asked
    if not isinstance(principal, Citizen):
        raise AccessDenied("the access log and the patient controls are for citizens only")
    if asked is None:
        return principal.nin
    allowed = {principal.nin.value, *(r.person.value for r in principal.representation)}
    if asked.value not in allowed:
        raise PatientBindingFailed(
            "citizens see the access log and controls of themselves or those they represent"
        )
    return asked


class ControlKind(StrEnum):
    """Which patient control a change is about, named as in the URL."""

    RESERVATION = "reservation"
    DOCUMENT_BLOCK = "document-blocks"
    PRACTITIONER_BLOCK = "practitioner-blocks"


@dataclass(frozen=True, slots=True)
class ControlChange:
    """One change of a patient control: set (PUT) or remove (DELETE), where, for whom."""

    kind: ControlKind
    on: bool
    target: str | None = None
    """The document uniqueId or HPR number; None for the reservation."""
    patient: NationalIdentityNumber | None = None
    """`?patient=` as given (a represented person); None: the caller themselves."""
    home_community_id: str | None = None
    """For a document block: the one region to change; None: every region."""

    @classmethod
    def parse(
        cls,
        *,
        kind: ControlKind,
        method: str,
        target: str | None,
        home_community_id: str | None,
        patient: NationalIdentityNumber | None = None,
    ) -> ControlChange:
        """Validate a change request (400 naming the bad part)."""
        if method not in ("PUT", "DELETE"):
            raise BadRequest(f"a control is set with PUT and removed with DELETE, not {method}")
        if home_community_id is not None and kind is not ControlKind.DOCUMENT_BLOCK:
            raise BadRequest(
                "homeCommunityId applies only to document blocks", expression="homeCommunityId"
            )
        hcid: str | None = None
        if home_community_id is not None:
            try:
                hcid = HomeCommunityId.parse(home_community_id.strip()).urn
            except (InvalidIdentifier, ValueError):
                raise BadRequest(
                    "homeCommunityId is not a urn:oid", expression="homeCommunityId"
                ) from None
        value: str | None = None
        try:
            if kind is ControlKind.DOCUMENT_BLOCK:
                value = DocumentUniqueId((target or "").strip()).value
            elif kind is ControlKind.PRACTITIONER_BLOCK:
                value = HprNumber((target or "").strip()).value
        except (InvalidIdentifier, ValueError):
            what = "document uniqueId" if kind is ControlKind.DOCUMENT_BLOCK else "HPR number"
            raise BadRequest(f"the {what} is not valid", expression=kind.value) from None
        return cls(kind, method == "PUT", value, patient, hcid)

    @property
    def method(self) -> str:
        return "PUT" if self.on else "DELETE"

    @property
    def path_and_query(self) -> str:
        """The request to send to a region, relative to its root."""
        path = f"/controls/{self.kind.value}"
        if self.target is not None:
            path += "/" + quote(self.target, safe="")
        if self.patient is not None:
            path += "?" + urlencode({"patient": self.patient.value})
        return path

    @property
    def audit_query(self) -> str:
        """What the hub's audit record keeps of the change (no patient: that has its field)."""
        text = f"{self.kind.value}:{'set' if self.on else 'removed'}"
        if self.target is not None:
            text += f":{self.target}"
        if self.home_community_id is not None:
            text += f"@{self.home_community_id}"
        return text


def region_root(region: Region) -> str:
    """The region's root URL, where `/controls` lives: its FHIR base without `/fhir`."""
    return region.base_url.removesuffix("/fhir")


# --- the regions' answers (pure) ------------------------------------------------------------


def parse_controls(body: bytes) -> dict[str, Any]:
    """Read a region's controls object; raise ValueError when it is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the controls answer is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("the controls answer is not a JSON object")
    if not isinstance(doc.get("patient"), str) or not isinstance(doc.get("reserved"), bool):
        raise ValueError("the controls answer lacks patient or reserved")
    for name in ("blockedDocuments", "blockedPractitioners"):
        values = doc.get(name)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"the controls answer's {name} is not a list of strings")
    return doc


def tag_audit_event(resource: dict[str, Any], region: Region) -> dict[str, Any]:
    """Mark an AuditEvent with the region it came from; the region's own `source` is kept.

    An extension of the same URL sent by the region is replaced: provenance is the hub's word.
    `source.site` gets the region's name when the region left it empty. Returns a new dict.
    """
    tagged = dict(resource)
    extensions = [
        e
        for e in (resource.get("extension") or [])
        if not (isinstance(e, dict) and e.get("url") == EXT_AUDIT_HOME_COMMUNITY_ID)
    ]
    extensions.append({"url": EXT_AUDIT_HOME_COMMUNITY_ID, "valueString": region.hcid})
    tagged["extension"] = extensions
    source = resource.get("source")
    if isinstance(source, dict) and not source.get("site"):
        tagged["source"] = {**source, "site": region.name}
    return tagged


def _recorded(resource: Mapping[str, Any]) -> datetime | None:
    value = resource.get("recorded")
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _no_region_issue() -> dict[str, Any]:
    return {
        "severity": "error",
        "code": "not-found",
        "diagnostics": "no region is enabled in the hub's directory",
    }


def merge_access_log(
    results: Sequence[RegionResult], *, self_url: str, region_cap: int = 5000
) -> tuple[int, dict[str, Any]]:
    """Return the HTTP status and body of the merged access log: a Bundle, or an outcome.

    Entries are newest first by `recorded` (undated last; ties in region order); every failed
    region is one OperationOutcome issue, as for ITI-67.
    """
    status, http_status = consolidate(results)
    issues = region_issues(results, region_cap=region_cap)
    if not results:
        issues.append(_no_region_issue())
    if status is HubStatus.FAILURE:
        return http_status, {"resourceType": "OperationOutcome", "issue": issues}
    events = [tag_audit_event(res, r.region) for r in results if r.ok for res in r.resources]
    # Two stable sorts: dated entries newest first, then undated ones after them.
    events.sort(key=lambda e: _recorded(e) or datetime.min.replace(tzinfo=UTC), reverse=True)
    events.sort(key=lambda e: _recorded(e) is None)
    entries: list[dict[str, Any]] = [{"resource": e, "search": {"mode": "match"}} for e in events]
    if issues:
        entries.append(
            {
                "resource": {"resourceType": "OperationOutcome", "issue": issues},
                "search": {"mode": "outcome"},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(events),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }
    return http_status, bundle


_STATE = {
    RegionStatus.OK: "ok",
    RegionStatus.TIMEOUT: "timeout",
    RegionStatus.UNAVAILABLE: "unavailable",
    RegionStatus.DENIED: "denied",
    RegionStatus.REJECTED: "error",
    RegionStatus.INVALID_RESPONSE: "error",
    RegionStatus.TOO_LARGE: "error",
    RegionStatus.ERROR: "error",
}


def region_states(results: Sequence[RegionResult]) -> list[dict[str, Any]]:
    """Return each asked region's part: homeCommunityId, name, status and what went wrong."""
    return [
        {
            "homeCommunityId": r.region.hcid,
            "name": r.region.name,
            "status": _STATE[r.status],
            "detail": None if r.ok else (r.detail or r.status.value),
        }
        for r in results
    ]


def merge_controls(
    results: Sequence[RegionResult], *, patient: NationalIdentityNumber | None
) -> dict[str, Any]:
    """Merge the regions' controls: reserved if any says so, union of blocks, region states."""
    answers = [r.resources[0] for r in results if r.ok and r.resources]
    who = patient.value if patient is not None else None
    if who is None and answers:
        who = str(answers[0]["patient"])
    return {
        "patient": who,
        "reserved": any(bool(a["reserved"]) for a in answers),
        "blockedDocuments": sorted({str(d) for a in answers for d in a["blockedDocuments"]}),
        "blockedPractitioners": sorted(
            {str(p) for a in answers for p in a["blockedPractitioners"]}
        ),
        "regions": region_states(results),
    }


def change_status(results: Sequence[RegionResult]) -> int:
    """Return the HTTP status of a control change: 200 all made it, 403 all denied, 400 when
    every region refused it as the caller's error (issue 10 A: never 502 for that), else 502."""
    if results and all(r.ok for r in results):
        return 200
    if results and all(r.status is RegionStatus.DENIED for r in results):
        return 403
    refused = {RegionStatus.DENIED, RegionStatus.REJECTED}
    if (
        results
        and all(r.status in refused for r in results)
        and not any(r.http_status == 429 for r in results)
    ):
        return 400
    return 502


def _diagnostics(body: bytes) -> str | None:
    """Return the first diagnostics of a region's OperationOutcome, shortened, if any."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    issues = doc.get("issue") if isinstance(doc, dict) else None
    if not isinstance(issues, list) or not issues or not isinstance(issues[0], dict):
        return None
    text = issues[0].get("diagnostics")
    return text[:_DETAIL_MAX] if isinstance(text, str) and text else None


# --- the service ----------------------------------------------------------------------------


class CitizenServices:
    """The citizen's access log and controls across every region of the directory."""

    def __init__(
        self,
        *,
        settings: HubSettings,
        directory: RegionDirectory,
        client: RegionClient,
        breakers: BreakerBoard,
        metrics: HubMetrics,
        outbox: Outbox | None = None,
        deferred_auth: Callable[[PendingChange], RegionAuth] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.client = client
        self.breakers = breakers
        self.metrics = metrics
        self.outbox = outbox
        """Where changes a region has not confirmed wait to be re-sent; None: not kept."""
        self.deferred_auth = deferred_auth or (lambda _row: PassThroughAuth())
        self.locks = ControlLocks()
        self.sequencer = Sequencer()
        self.clock = clock

    async def access_log(
        self, caller: Caller, patient: NationalIdentityNumber, *, self_url: str
    ) -> HubAnswer:
        """Return who has looked at `patient`'s documents, in every region, newest first."""
        system = _NIN_SYSTEMS[1] if patient.kind is IdentityKind.DNR else _NIN_SYSTEMS[0]
        query = urlencode({"patient.identifier": f"{system}|{patient.value}"})
        request = FindRequest(
            path_and_query=f"AuditEvent?{query}",
            headers=caller.region_headers(),
            resource_type="AuditEvent",
        )
        deadlines = self.settings.deadlines
        results = await fan_out(
            self.directory.enabled(),
            request,
            client=self.client,
            breakers=self.breakers,
            auth=caller.auth,
            per_region_timeout=deadlines.per_region_s,
            aggregation_deadline=deadlines.aggregation_s,
            max_entries=self.settings.max_entries_per_region,
            retry_delay_s=self.settings.retry_delay_s,
        )
        self._observe("access_log", results)
        status, body = merge_access_log(
            results, self_url=self_url, region_cap=self.settings.max_entries_per_region
        )
        returned = body["total"] if body["resourceType"] == "Bundle" else None
        return HubAnswer(status, orjson.dumps(body), regions=_outcomes(results), returned=returned)

    async def read_controls(
        self, caller: Caller, patient: NationalIdentityNumber | None, *, given: bool
    ) -> HubAnswer:
        """Return `patient`'s controls merged over every region (`given`: send `?patient=`)."""
        path = "/controls"
        if given and patient is not None:
            path += "?" + urlencode({"patient": patient.value})
        results = await self._each_region(caller, "GET", path, self.directory.enabled())
        self._observe("controls", results)
        status, http_status = consolidate(results)
        if status is HubStatus.FAILURE:
            issues = region_issues(results) or [_no_region_issue()]
            return HubAnswer(http_status, outcome_body(issues), regions=_outcomes(results))
        body = merge_controls(results, patient=patient)
        body["pending"] = await self.pending(patient)
        return HubAnswer(
            200, orjson.dumps(body), {"content-type": _JSON}, regions=_outcomes(results)
        )

    async def change_control(
        self, caller: Caller, change: ControlChange, *, patient: NationalIdentityNumber | None
    ) -> HubAnswer:
        """Make one control change at every region (or the one named) and merge the answers."""
        regions = self.directory.enabled()
        if change.home_community_id is not None:
            region = self.directory.by_hcid(change.home_community_id)
            if region is None:
                raise BadRequest(
                    f"homeCommunityId {change.home_community_id} is not a community of this "
                    "network",
                    expression="homeCommunityId",
                )
            regions = (region,)
        who = patient.value if patient is not None else ""
        async with self.locks.hold((who, change.kind.value, change.target or "")):
            # Under the control's lock: no retry of an older change of it runs meanwhile.
            seq = self.sequencer.next()
            if len(regions) == 1 and not regions[0].enabled:
                results = [
                    RegionResult(
                        regions[0],
                        RegionStatus.UNAVAILABLE,
                        0.0,
                        detail="disabled in the directory",
                    )
                ]
            else:
                results = await self._each_region(
                    caller, change.method, change.path_and_query, regions
                )
            queued = await self._keep_unconfirmed(caller, change, results, who=who, seq=seq)
        self._observe("control_change", results)
        status = change_status(results)
        if status == 403:
            return HubAnswer(403, outcome_body(region_issues(results)), regions=_outcomes(results))
        if status == 502 and queued and all(r.ok or verdict(r) is Verdict.RETRY for r in results):
            status = 202  # accepted: the hub sends it to the failed regions until they confirm
        body = merge_controls(results, patient=patient)
        body["pending"] = await self.pending(patient)
        return HubAnswer(
            status, orjson.dumps(body), {"content-type": _JSON}, regions=_outcomes(results)
        )

    async def pending(self, patient: NationalIdentityNumber | None) -> list[dict[str, Any]]:
        """The person's changes that a region has not confirmed (or has refused), by region."""
        if self.outbox is None:
            return []
        rows = await self.outbox.for_patient(patient.value if patient is not None else "")
        return pending_json(rows, {r.hcid: r.name for r in self.directory})

    async def _keep_unconfirmed(
        self,
        caller: Caller,
        change: ControlChange,
        results: Sequence[RegionResult],
        *,
        who: str,
        seq: int,
    ) -> bool:
        """Queue the change for each region that failed for its own reasons; clear older rows of
        the regions that answered (a newer change settles an older one). True when queued."""
        if self.outbox is None:
            return False
        now = self.clock()
        queued = False
        identity = deferred_identity(caller.auth)
        for result in results:
            key = (who, change.kind.value, change.target or "", result.region.hcid)
            if verdict(result) is not Verdict.RETRY:
                await self.outbox.settle(key, seq)
                continue
            delay = backoff_delay(
                1, base_s=self.settings.outbox_retry_base_s, cap_s=self.settings.outbox_retry_cap_s
            )
            queued = (
                await self.outbox.offer(
                    PendingChange(
                        patient=who,
                        kind=change.kind.value,
                        target=change.target or "",
                        region=result.region.hcid,
                        on=change.on,
                        seq=seq,
                        accepted_at=now,
                        path_and_query=change.path_and_query,
                        correlation_id=caller.correlation_id,
                        asserted=identity,
                        attempts=1,
                        next_at=now + delay,
                        detail=result.detail or result.status.value,
                    )
                )
                or queued
            )
        if queued:
            log.info("hub.outbox.queued", kind=change.kind.value, regions=len(results))
        return queued

    async def send_pending(self, row: PendingChange) -> RegionResult | None:
        """Re-send one outbox row to its region (the worker's `send`); None: region gone."""
        region = self.directory.by_hcid(row.region)
        if region is None:
            return None
        if not region.enabled:
            return RegionResult(
                region, RegionStatus.UNAVAILABLE, 0.0, detail="disabled in the directory"
            )
        caller = Caller(row.correlation_id, "hub-outbox", {}, self.deferred_auth(row))
        results = await self._each_region(caller, row.method, row.path_and_query, (region,))
        self._observe("control_retry", results)
        return results[0]

    async def _each_region(
        self, caller: Caller, method: str, path_and_query: str, regions: Sequence[Region]
    ) -> list[RegionResult]:
        deadlines = self.settings.deadlines
        exchange = functools.partial(
            _controls_exchange,
            method=method,
            path_and_query=path_and_query,
            caller=caller,
            client=self.client,
            retry_delay_s=self.settings.retry_delay_s,
        )
        return await gather_regions(
            regions,
            exchange,
            breakers=self.breakers,
            per_region_timeout=deadlines.per_region_s,
            aggregation_deadline=deadlines.aggregation_s,
        )

    def _observe(self, what: str, results: Sequence[RegionResult]) -> None:
        self.metrics.observe(results)
        log.info(
            "hub.self_service",
            call=what,
            regions={r.region.hcid: r.status.value for r in results},
        )


async def _controls_exchange(
    region: Region,
    ends_at: float,
    *,
    method: str,
    path_and_query: str,
    caller: Caller,
    client: RegionClient,
    retry_delay_s: float,
) -> RegionResult:
    """Send one controls request to a region and read its controls object."""
    url = f"{region_root(region)}{path_and_query}"
    headers = {**caller.region_headers(), **(await caller.auth.headers_for(region, method, url))}
    resp = await call_region(
        client, method, url, headers, ends_at=ends_at, retry_delay_s=retry_delay_s
    )
    if not 200 <= resp.status < 300:
        # A 4xx is the caller's request refused, not the region's ill health (issue 10 A).
        failure = status_for_http(resp.status) or RegionStatus.ERROR
        said = _diagnostics(resp.body)
        detail = f"HTTP {resp.status}" + (f": {said}" if said else "")
        # A refusal's reason (e.g. child-too-old) goes on to the caller, as for a search, so
        # the citizen's portal can say why in words (issue 11, defect 8).
        reason = refusal_reason(resp.body) if failure is RegionStatus.DENIED else None
        raise RegionCallFailed(failure, detail, resp.status, reason)
    try:
        controls = parse_controls(resp.body)
    except ValueError as exc:
        raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, str(exc), resp.status) from None
    return RegionResult(
        region, RegionStatus.OK, 0.0, resources=(controls,), http_status=resp.status
    )


def _outcomes(results: Sequence[RegionResult]) -> tuple[tuple[str, str], ...]:
    return tuple((r.region.hcid, r.status.value) for r in results)
