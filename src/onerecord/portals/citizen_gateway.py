"""The citizen portal as a hub client: the access log and the patient controls.

Every call carries the citizen's own DPoP-bound login token (a fresh proof per request); when
the citizen acts for someone, that person is named (`patient.identifier`, `?patient=`) and the
hub and the regions decide whether the token allows it.

- `GET {hub}/fhir/AuditEvent?patient.identifier=…` → the access log merged over the regions;
  a region that failed is an OperationOutcome issue; when all failed the hub answers 502/504
  with the outcome alone, which is still a log (empty, every region named). A 403 whose
  regions all gave `citizen-under-age` (a child under 12 asking for their own log) is
  `UnderAgeRefused`, so the page can explain the rule instead of an error.
- `GET {hub}/controls[?patient=]` → reservation, blocked documents and health workers, and
  each region's part.
- `PUT|DELETE {hub}/controls/reservation`, `/controls/practitioner-blocks/{hpr}`,
  `/controls/document-blocks/{uniqueId}[?homeCommunityId=]` → 200 when every region made the
  change, 202 when the hub keeps it for a region that failed and re-sends it until that region
  confirms, 502 with the same controls object when some did not.
Both controls answers carry `pending`: each change not yet confirmed, and by which region; the
portal shows it as waiting for that region, never as done (issue 11 defect 5).
Failures become `portals.errors` (as in `gateway.py`), so the page says what to do: a 401 ends
the login (`SessionEnded`); a 403 keeps the regions' denial-reason codes (`HubRefused.reasons`)
so the page can say why in words (`citizen_view.refusal_message`).

References: RFC 9449 (DPoP); FHIR R4 AuditEvent search; docs/hub.md (self-service).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from onerecord.domain import DocumentUniqueId, HomeCommunityId, HprNumber, InvalidIdentifier
from onerecord.portals.access_log import AccessLog, build_access_log
from onerecord.portals.errors import HubRefused, HubUnavailable, SessionEnded
from onerecord.portals.gateway import within_deadline
from onerecord.portals.overview import CITIZEN_UNDER_AGE
from onerecord.search_client import (
    HubSession,
    hub_access_log,
    hub_change_control,
    hub_controls,
    refusal_reasons,
)

__all__ = [
    "ControlChange",
    "ControlKind",
    "ControlOutcome",
    "InvalidControl",
    "PatientControls",
    "PendingControl",
    "UnderAgeRefused",
    "change_control",
    "fetch_access_log",
    "fetch_controls",
    "hub_root",
    "parse_controls",
    "parse_pending",
]


class ControlKind:
    """The three patient controls, named as in the hub's URLs."""

    RESERVATION = "reservation"
    DOCUMENT_BLOCK = "document-blocks"
    PRACTITIONER_BLOCK = "practitioner-blocks"


class InvalidControl(ValueError):
    """A change the portal will not send: `message_key` says what is wrong with it."""

    def __init__(self, message_key: str) -> None:
        super().__init__(message_key)
        self.message_key = message_key


@dataclass(frozen=True, slots=True)
class ControlChange:
    """One control to set (`on`) or remove, for the citizen or the person they act for."""

    kind: str
    on: bool
    target: str | None = None
    home_community_id: str | None = None
    patient: str | None = None

    @classmethod
    def reservation(cls, *, on: bool, patient: str | None = None) -> ControlChange:
        return cls(ControlKind.RESERVATION, on, patient=patient)

    @classmethod
    def document_block(
        cls, unique_id: str, home_community_id: str, *, on: bool, patient: str | None = None
    ) -> ControlChange:
        """Name a document by uniqueId and, when known, the region that holds it."""
        try:
            value = DocumentUniqueId(unique_id.strip()).value
        except (InvalidIdentifier, ValueError):
            raise InvalidControl("citizen.block.bad-document") from None
        hcid: str | None = None
        if home_community_id.strip():
            try:
                hcid = HomeCommunityId.parse(home_community_id.strip()).urn
            except (InvalidIdentifier, ValueError):
                raise InvalidControl("citizen.block.bad-document") from None
        return cls(ControlKind.DOCUMENT_BLOCK, on, value, hcid, patient)

    @classmethod
    def practitioner_block(cls, hpr: str, *, on: bool, patient: str | None = None) -> ControlChange:
        """Name a health worker by HPR number (4 to 9 digits; spaces are ignored)."""
        try:
            value = HprNumber("".join(hpr.split())).value
        except (InvalidIdentifier, ValueError):
            raise InvalidControl("citizen.privacy.hpr-invalid") from None
        return cls(ControlKind.PRACTITIONER_BLOCK, on, value, patient=patient)

    @property
    def method(self) -> str:
        return "PUT" if self.on else "DELETE"

    @property
    def path(self) -> str:
        """Return what follows `/controls/` for this change (search_client encodes it)."""
        return self.kind if self.target is None else f"{self.kind}/{self.target}"


@dataclass(frozen=True, slots=True)
class PendingControl:
    """One change the hub keeps for a region that has not confirmed it (or has refused it)."""

    kind: str
    target: str | None
    on: bool
    region: str
    """The region's name, as the hub's directory gives it."""
    refused: bool = False


@dataclass(frozen=True, slots=True)
class PatientControls:
    """A person's controls as the hub merged them, and the regions that did not answer."""

    patient: str | None
    reserved: bool
    blocked_documents: frozenset[str]
    blocked_practitioners: tuple[str, ...]
    failed_regions: tuple[str, ...]
    pending: tuple[PendingControl, ...] = ()

    def waiting_for(self, kind: str, target: str | None = None) -> tuple[str, ...]:
        """The regions a change of this control still waits for (refused ones not included)."""
        return tuple(
            p.region
            for p in self.pending
            if p.kind == kind and p.target == target and not p.refused
        )


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    """What a change did: `applied` everywhere, `pending` (kept by the hub for the regions that
    have not confirmed it), else the regions that did not make it."""

    applied: bool
    controls: PatientControls
    pending: bool = False


def hub_root(hub_fhir: str) -> str:
    """Return the hub's root URL (where `/controls` lives): its FHIR base without `/fhir`."""
    return hub_fhir.rstrip("/").removesuffix("/fhir")


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def parse_controls(body: Any) -> PatientControls:
    """Read the hub's controls object; raise ValueError when it is not one."""
    if not isinstance(body, Mapping) or not isinstance(body.get("reserved"), bool):
        raise ValueError("not a controls object")
    documents = _strings(body.get("blockedDocuments"))
    practitioners = _strings(body.get("blockedPractitioners"))
    if documents is None or practitioners is None:
        raise ValueError("the blocks are not lists of strings")
    regions = body.get("regions") or []
    if not isinstance(regions, list):
        raise ValueError("regions is not a list")
    failed = tuple(
        str(r.get("name") or r.get("homeCommunityId") or "")
        for r in regions
        if isinstance(r, Mapping) and r.get("status") != "ok"
    )
    patient = body.get("patient")
    return PatientControls(
        patient=patient if isinstance(patient, str) else None,
        reserved=bool(body["reserved"]),
        blocked_documents=frozenset(d.removeprefix("urn:oid:") for d in documents),
        blocked_practitioners=tuple(sorted(set(practitioners))),
        failed_regions=failed,
        pending=parse_pending(body.get("pending")),
    )


_KINDS = frozenset(
    {ControlKind.RESERVATION, ControlKind.DOCUMENT_BLOCK, ControlKind.PRACTITIONER_BLOCK}
)


def parse_pending(value: Any) -> tuple[PendingControl, ...]:
    """Read the hub's `pending` list (absent: none); raise ValueError when it is malformed."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 1000:
        raise ValueError("pending is not a list")
    out: list[PendingControl] = []
    for item in value:
        if not isinstance(item, Mapping):
            raise ValueError("a pending change is not an object")
        kind, target, on = item.get("kind"), item.get("target"), item.get("on")
        name = item.get("name") or item.get("homeCommunityId")
        if kind not in _KINDS or not isinstance(on, bool) or not isinstance(name, str):
            raise ValueError("a pending change lacks kind, on or region")
        if target is not None and not isinstance(target, str):
            raise ValueError("a pending change's target is not a string")
        if isinstance(target, str):
            target = target.removeprefix("urn:oid:")
        out.append(PendingControl(kind, target, on, name, item.get("state") == "refused"))
    return tuple(out)


class UnderAgeRefused(HubRefused):
    """Every region that refused said the person is too young for this (`citizen-under-age`)."""


def _under_age(response: httpx.Response) -> bool:
    """True when a 403's regions all gave `citizen-under-age` as their reason."""
    try:
        outcome = response.json()
    except ValueError:
        return False
    if not isinstance(outcome, Mapping):
        return False
    reasons = refusal_reasons(outcome)
    return bool(reasons) and all(reason == CITIZEN_UNDER_AGE for reason in reasons)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise HubUnavailable("error.hub-garbled") from None


def _refused(response: httpx.Response) -> HubRefused:
    """A citizen's refusal (401: the login ended), with the reason each region gave."""
    if response.status_code == 401:
        raise SessionEnded()
    refused = HubRefused("citizen.error.refused", advice_key="citizen.error.refused.advice")
    try:
        outcome = response.json()
    except ValueError:
        outcome = None
    if isinstance(outcome, Mapping):
        refused.reasons = tuple(refusal_reasons(outcome))
    return refused


async def _answer(call: Awaitable[httpx.Response]) -> httpx.Response:
    """Await one hub call; a transport failure means the hub is unavailable."""
    try:
        return await call
    except httpx.HTTPError:
        raise HubUnavailable() from None


async def fetch_access_log(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    regions: Sequence[Mapping[str, str]],
    patient: str,
    deadline_s: float | None = None,
) -> AccessLog:
    """Ask the hub who has looked at `patient`'s documents, in every region."""
    response = await within_deadline(
        deadline_s, _answer(hub_access_log(http, session, hub_fhir=hub_fhir, patient=patient))
    )
    if response.status_code == 403 and _under_age(response):
        raise UnderAgeRefused("citizen.error.refused", advice_key="citizen.error.refused.advice")
    if response.status_code in (401, 403):
        raise _refused(response)
    if response.status_code not in (200, 502, 504):
        raise HubUnavailable("error.hub-status", status=response.status_code)
    body = _json(response)
    kind = body.get("resourceType") if isinstance(body, dict) else None
    if kind == "Bundle" and response.status_code == 200:
        return build_access_log(body, regions)
    if kind == "OperationOutcome" and response.status_code != 200:
        return build_access_log(body, regions)  # no region answered: each is named
    raise HubUnavailable("error.hub-garbled")


async def fetch_controls(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    patient: str | None,
    deadline_s: float | None = None,
) -> PatientControls:
    """Read the controls of the citizen (`patient` None) or of the person they act for."""
    response = await within_deadline(
        deadline_s,
        _answer(hub_controls(http, session, hub_base=hub_root(hub_fhir), patient=patient)),
    )
    if response.status_code in (401, 403):
        raise _refused(response)
    if response.status_code != 200:
        raise HubUnavailable("error.hub-status", status=response.status_code)
    try:
        return parse_controls(_json(response))
    except ValueError:
        raise HubUnavailable("error.hub-garbled") from None


async def change_control(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    change: ControlChange,
    deadline_s: float | None = None,
) -> ControlOutcome:
    """Make one change at every region (one region for a named document); say where it failed."""
    response = await within_deadline(
        deadline_s,
        _answer(
            hub_change_control(
                http,
                session,
                hub_base=hub_root(hub_fhir),
                method=change.method,
                path=change.path,
                patient=change.patient,
                home_community_id=change.home_community_id,
            )
        ),
    )
    if response.status_code in (401, 403):
        raise _refused(response)
    if response.status_code not in (200, 202, 502):
        raise HubUnavailable("error.hub-status", status=response.status_code)
    try:
        controls = parse_controls(_json(response))
    except ValueError:
        raise HubUnavailable("error.hub-garbled") from None
    return ControlOutcome(
        applied=response.status_code == 200,
        controls=controls,
        pending=response.status_code == 202,
    )
