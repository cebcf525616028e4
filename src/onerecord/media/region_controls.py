"""The patient's own controls at the media archive, read from the region's document source.

The reservation against sharing, the blocked documents and the blocked health workers live at
the region's document source (`onerecord.source.patient_controls`); the archive holds none of
them and must not import the source (ARCHITECTURE.md): it asks over HTTP, as a system of the
region, `GET {source}/controls/system?patient=<nin>` signed with a publish proof (method GET,
empty body; `onerecord.trust.publish_proof`), and gives the answer to the trust policy as
`PatientControls` (security.py `MediaGuard`).

    PatientControlSource  what the guard asks: `controls_for(patient)`
    SourceControls        the real one: the HTTP client, a short per-patient cache (TTL, bounded,
                          one request in flight per patient), fail closed: any failure to get a
                          well-formed answer is `ControlsUnavailable` (503), never "no controls"
    NoPatientControls     development only (`without_patient_controls`): no controls at all
    StudyDocuments        the hook from document uniqueIds to studies: which StudyInstanceUIDs a
                          set of blocked uniqueIds names (media contract §1, §2)
    StudyUidIsDocumentId  its first form: a study's first manifest has the StudyInstanceUID as its
                          uniqueId, so the blocked ids that are study UIDs are the blocked studies

A change of controls is seen by the archive within `ttl` seconds (5 s by default): the price of
not asking the source on every request of a viewer that loads a study in hundreds of requests.

References: TRUST-FRAMEWORK §4.5 (sperring, reservation), ATT-5; media contract §1, §2.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import orjson
import structlog

from onerecord.domain import DocumentUniqueId, InvalidIdentifier, NationalIdentityNumber
from onerecord.media.errors import ControlsUnavailable
from onerecord.trust.keys import SigningKey
from onerecord.trust.policy import PatientControls
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER, make_publish_proof

__all__ = [
    "MAX_CONTROLS_ANSWER",
    "NoPatientControls",
    "PatientControlSource",
    "SourceControls",
    "StudyDocuments",
    "StudyUidIsDocumentId",
    "read_controls_answer",
]

log = structlog.get_logger("onerecord.media")

MAX_CONTROLS_ANSWER = 1 << 20
"""The longest answer read from the source (bytes); a longer one is refused, fail closed."""
_MAX_BLOCKS = 10_000
_MAX_PRACTITIONER_ID = 11  # an HPR number (4–9 digits) or a national identity number (11)
_KEYS = frozenset({"reservation", "documentBlocks", "practitionerBlocks"})


class PatientControlSource(Protocol):
    """Where the archive's guard gets a patient's controls."""

    async def controls_for(
        self, patient: NationalIdentityNumber, *, correlation_id: str | None = None
    ) -> PatientControls: ...


class StudyDocuments(Protocol):
    """The hook from blocked document uniqueIds to the studies they name (contract §1).

    The manifest helper adds the uniqueIds of a study's replacement manifests (recorded in the
    archive's database beside the study) by implementing this over that table.
    """

    async def studies_named(self, unique_ids: frozenset[str]) -> frozenset[str]:
        """Return the StudyInstanceUIDs any of `unique_ids` is a manifest of."""
        ...


class StudyUidIsDocumentId:
    """A study's first manifest has uniqueId = its StudyInstanceUID: the ids are the studies."""

    async def studies_named(self, unique_ids: frozenset[str]) -> frozenset[str]:
        return unique_ids


class NoPatientControls:
    """No controls at all: development and tests only (`without_patient_controls`)."""

    async def controls_for(
        self, patient: NationalIdentityNumber, *, correlation_id: str | None = None
    ) -> PatientControls:
        return PatientControls(patient=patient)


def read_controls_answer(
    body: bytes, patient: NationalIdentityNumber, *, now: datetime
) -> PatientControls:
    """Read the source's answer; anything but exactly the three controls is ControlsUnavailable.

    `now` stands in for the time of a reservation, which the answer does not carry (the policy
    asks only whether there is one).
    """
    if len(body) > MAX_CONTROLS_ANSWER:
        raise ControlsUnavailable("the source's answer about the patient's controls is too long")
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ControlsUnavailable("the source's answer is not JSON") from None
    if not isinstance(data, dict) or set(data) != _KEYS:
        raise ControlsUnavailable("the source's answer is not the patient's controls")
    reservation, documents, practitioners = (
        data["reservation"],
        data["documentBlocks"],
        data["practitionerBlocks"],
    )
    if not isinstance(reservation, bool):
        raise ControlsUnavailable("reservation is not true or false")
    if not (isinstance(documents, list) and isinstance(practitioners, list)):
        raise ControlsUnavailable("the blocks are not lists")
    if len(documents) + len(practitioners) > _MAX_BLOCKS:
        raise ControlsUnavailable("the source's answer holds too many blocks")
    if not all(isinstance(u, str) for u in documents):
        raise ControlsUnavailable("a blocked document is not a uniqueId")
    try:
        blocked = frozenset(DocumentUniqueId(u) for u in documents)
    except (InvalidIdentifier, ValueError):
        raise ControlsUnavailable("a blocked document is not a uniqueId") from None
    if not all(
        isinstance(p, str) and p.isascii() and p.isdigit() and 4 <= len(p) <= _MAX_PRACTITIONER_ID
        for p in practitioners
    ):
        raise ControlsUnavailable("a blocked health worker is not an HPR or identity number")
    return PatientControls(
        patient=patient,
        reserved_since=now if reservation else None,
        blocked_documents=blocked,
        blocked_practitioners=frozenset(practitioners),
    )


@dataclass(frozen=True, slots=True)
class _Cached:
    controls: PatientControls
    until: float


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SourceControls:
    """Read a patient's controls from the region's source; cache each for `ttl_s` seconds."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        source_url: str,
        audience: str,
        issuer: str,
        key: SigningKey,
        ttl_s: float = 5.0,
        max_entries: int = 10_000,
        timeout_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.url = f"{source_url.rstrip('/')}/controls/system"
        self.audience = audience
        self.issuer = issuer
        self.key = key
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.timeout_s = timeout_s
        self.monotonic = monotonic
        self.wall = wall
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._pending: dict[str, asyncio.Future[PatientControls]] = {}

    async def controls_for(
        self, patient: NationalIdentityNumber, *, correlation_id: str | None = None
    ) -> PatientControls:
        """The patient's controls, at most `ttl_s` old; ControlsUnavailable when not to be had."""
        key = patient.value
        hit = self._cache.get(key)
        if hit is not None:
            if hit.until > self.monotonic():
                self._cache.move_to_end(key)
                return hit.controls
            del self._cache[key]
        pending = self._pending.get(key)
        if pending is None:
            # One request in flight per patient: a viewer opening a study asks many times at once.
            pending = asyncio.ensure_future(self._fetch(patient, correlation_id))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(pending)

    def _settle(self, key: str, done: asyncio.Future[PatientControls]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if done.cancelled() or done.exception() is not None:
            return  # failures are not cached: the next request asks again
        if self.ttl_s <= 0:
            return
        self._cache[key] = _Cached(done.result(), self.monotonic() + self.ttl_s)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _fetch(
        self, patient: NationalIdentityNumber, correlation_id: str | None
    ) -> PatientControls:
        proof = make_publish_proof(
            self.key,
            issuer=self.issuer,
            audience=self.audience,
            htu=self.url,
            body=b"",
            now=self.wall(),
            method="GET",
        )
        headers: Mapping[str, str] = {
            PUBLISH_PROOF_HEADER: proof,
            "accept": "application/json",
            **({"x-correlation-id": correlation_id} if correlation_id else {}),
        }
        try:
            # The whole exchange within the timeout, not each read: a trickling answer is refused.
            async with (
                asyncio.timeout(self.timeout_s),
                self.http.stream(
                    "GET",
                    self.url,
                    params={"patient": patient.value},
                    headers=headers,
                    timeout=self.timeout_s,
                ) as answer,
            ):
                body = bytearray()
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_CONTROLS_ANSWER:
                        break
                status = answer.status_code
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("media.controls_unavailable", error=type(exc).__name__)
            raise ControlsUnavailable("the region's document source cannot be asked") from None
        if status != 200:
            log.warning("media.controls_unavailable", status=status)
            raise ControlsUnavailable(f"the region's document source answered {status}")
        return read_controls_answer(bytes(body), patient, now=_utcnow())
