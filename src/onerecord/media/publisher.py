"""Publish each study's manifest to the region's document source (ITI-65), from the outbox.

`ManifestPublisher.run` is the archive's background worker: every `poll` seconds it takes the
studies that are due (new instances, then `quiet` seconds without another), claims each one's
lease for `lease` seconds (so another archive process on the same database leaves it alone;
manifest_store.py), prepares the study's next manifest version once and POSTs it to
`{source}/fhir`, signed with a publish proof (`onerecord.trust.publish_proof`) by the archive's
publisher key. The answer decides:

- 2xx: the version is published; the study is done up to the instances it covers.
- 429, 5xx, 401, 403, or no answer: the same bytes are sent again later, after a back-off that
  doubles from `retry` up to `retry_max` (a 401/403 is a configuration the operator fixes).
- any other 4xx: the source refused the version for good (e.g. the uniqueId is registered for
  other content); it is recorded as refused and not sent again; new instances make a new one.

Because a version is prepared once and resent byte for byte, a crash after the source
registered it but before the archive recorded that sends the same uniqueId and content again,
which the source answers as success without registering it twice.

Every request is audited in the archive's chain (`AuditAction.EXPORT`, rendered as MHD's
ProvideBundle.Audit.Source: DCM 110106 Export, subtype ITI-65): success, each failed try with
its outcome as the reason, a refusal. Logs name the StudyInstanceUID and the uniqueId, never
the patient.

References: IHE MHD 4.x ITI-65 §2:3.65.4.1.3 (expected actions), §2:3.65.4.2 (response).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import structlog

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord, AuditSink
from onerecord.media.manifest import (
    ArchiveIdentity,
    EarlierVersion,
    ManifestStudy,
    ManifestVersion,
    manifest_bundle,
    plan_version,
)
from onerecord.media.manifest_store import ManifestOutbox, PreparedVersion
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER, make_publish_proof

__all__ = ["ManifestPublisher", "fhir_endpoint"]

log = structlog.get_logger("onerecord.media.publisher")
FHIR_JSON = "application/fhir+json"
_RETRY_STATUS = frozenset({401, 403, 408, 425, 429})


def fhir_endpoint(source_url: str) -> str:
    """The source's ITI-65 endpoint: its base URL + /fhir (unless it already ends so)."""
    base = source_url.rstrip("/")
    return base if base.endswith("/fhir") else f"{base}/fhir"


def _now() -> datetime:
    return datetime.now(UTC)


class ManifestPublisher:
    """Sends due manifests from the outbox to the document source, with retries."""

    def __init__(
        self,
        *,
        outbox: ManifestOutbox,
        archive: ArchiveIdentity,
        http: httpx.AsyncClient,
        source_url: str,
        audience: str,
        issuer: str,
        key: SigningKey,
        quiet: float = 5.0,
        retry: float = 1.0,
        retry_max: float = 300.0,
        lease: float = 120.0,
        batch: int = 50,
        audit: AuditSink | None = None,
        source_id: str = "",
        clock: Callable[[], datetime] = _now,
        worker_id: str | None = None,
        idle: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self.archive = archive
        self.http = http
        self.endpoint = fhir_endpoint(source_url)
        self.audience = audience
        self.issuer = issuer
        self.key = key
        self.quiet = timedelta(seconds=quiet)
        self.retry = retry
        self.retry_max = retry_max
        self.lease = timedelta(seconds=lease)
        # Names this worker in the outbox's lease: unique per process and per start.
        self.worker_id = (
            worker_id or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        )[:64]
        self.batch = batch
        self.audit = audit
        self.source_id = source_id or f"{archive.home_community_id}#media"[:64]
        self.clock = clock
        self.idle = idle
        self._wake = asyncio.Event()

    @property
    def poll(self) -> float:
        """Seconds between looks at the outbox while a study waits (its quiet period, a retry):
        a quarter of the quiet period, 50 ms to 1 s."""
        return min(1.0, max(0.05, self.quiet.total_seconds() / 4))

    def wake(self) -> None:
        """Look at the outbox now: the archive calls it when an instance is stored."""
        self._wake.set()

    async def run(self) -> None:
        """Publish due studies until cancelled; an error in one round is logged, not fatal.

        While any study waits, the outbox is looked at every `poll` seconds. With nothing
        waiting the worker sleeps until a store wakes it, or `idle` seconds at most (a lease
        another process left, a row written by another process): an idle archive costs
        nothing, where looking four times a second cost about 1 s of CPU a minute.
        """
        while True:
            self._wake.clear()  # before the round: a store during it wakes the next one
            waiting = True
            try:
                await self.publish_due()
                waiting = await self.outbox.pending() > 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a bad round
                # The type only: a database error's text can carry a bundle (the patient).
                log.warning("media.manifest.round_failed", error=type(exc).__name__)
            try:
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.poll if waiting else self.idle
                )
            except TimeoutError:
                pass

    async def publish_due(self) -> int:
        """Publish every study due now that this worker can claim; return how many versions the
        source registered."""
        registered = 0
        for study_uid in await self.outbox.due(self.clock(), quiet=self.quiet, limit=self.batch):
            now = self.clock()
            if not await self.outbox.claim(
                study_uid, worker=self.worker_id, now=now, quiet=self.quiet, lease=self.lease
            ):
                continue  # another worker has it (or it was published meanwhile)
            try:
                version = await self.outbox.next_version(
                    study_uid, now=self.clock(), build=self._build
                )
                if version is not None and await self._send(version):
                    registered += 1
            except Exception as exc:
                # One study that fails here must not hold back the others behind it: it waits
                # its back-off like a failed send.
                error = type(exc).__name__
                log.warning("media.manifest.study_failed", study=study_uid, error=error)
                await self._back_off(study_uid, f"error:{error}")
            finally:
                # After the outcome is recorded, so no other worker finds it still due.
                await self.outbox.release(study_uid, worker=self.worker_id)
        return registered

    def _build(
        self, study: ManifestStudy, earlier: list[EarlierVersion]
    ) -> tuple[ManifestVersion, bytes]:
        version = plan_version(study.study_instance_uid, earlier)
        return version, manifest_bundle(study, version=version, archive=self.archive)

    async def _send(self, version: PreparedVersion) -> bool:
        proof = make_publish_proof(
            self.key,
            issuer=self.issuer,
            audience=self.audience,
            htu=self.endpoint,
            body=version.body,
            now=time.time(),
        )
        headers = {
            "content-type": FHIR_JSON,
            "accept": FHIR_JSON,
            PUBLISH_PROOF_HEADER: proof,
        }
        try:
            response = await self.http.post(self.endpoint, content=version.body, headers=headers)
        except httpx.HTTPError as exc:
            await self._later(version, f"transport:{type(exc).__name__}")
            return False
        status = response.status_code
        if 200 <= status < 300:
            await self._audit(version, AuditOutcome.SUCCESS, None)
            await self.outbox.published(version, now=self.clock())
            log.info(
                "media.manifest.published",
                study=version.study_instance_uid,
                unique_id=version.unique_id,
                version=version.version,
            )
            return True
        if status in _RETRY_STATUS or status >= 500:
            await self._later(version, f"http-{status}")
            return False
        await self._audit(version, AuditOutcome.ERROR, f"refused-http-{status}")
        await self.outbox.refused(version, reason=f"http-{status}: {_diagnostics(response)}")
        log.warning(
            "media.manifest.refused",
            study=version.study_instance_uid,
            unique_id=version.unique_id,
            status=status,
        )
        return False

    async def _audit(
        self, version: PreparedVersion, outcome: AuditOutcome, reason: str | None
    ) -> None:
        """Audit one ITI-65 request (MHD ProvideBundle.Audit.Source); never in the way of it."""
        if self.audit is None:
            return
        record = AuditRecord(
            action=AuditAction.EXPORT,
            outcome=outcome,
            recorded=self.clock(),
            source_id=self.source_id,
            home_community_id=self.archive.home_community_id,
            correlation_id=f"manifest:{version.unique_id}",
            patient_id=_patient_of(version.body),
            reason=reason,
            document_ids=(version.unique_id,),
            query=f"ITI-65 {self.endpoint}",
        )
        try:
            await self.audit.append([record])
        except Exception as exc:  # noqa: BLE001 - the outbox still holds the truth
            log.warning("media.manifest.audit_failed", error=type(exc).__name__)

    async def _later(self, version: PreparedVersion, outcome: str) -> None:
        await self._audit(version, AuditOutcome.ERROR, outcome[:64])
        attempts, delay = await self._back_off(version.study_instance_uid, outcome)
        log.info(
            "media.manifest.retry",
            study=version.study_instance_uid,
            unique_id=version.unique_id,
            outcome=outcome,
            attempt=attempts,
            delay_s=round(delay, 3),
        )

    async def _back_off(self, study_instance_uid: str, outcome: str) -> tuple[int, float]:
        """Put the study off: the wait doubles from `retry` to `retry_max` per failed try."""
        attempts = await self.outbox.attempts(study_instance_uid) + 1
        delay = min(self.retry * 2 ** (attempts - 1), self.retry_max)
        await self.outbox.retry_later(
            study_instance_uid,
            attempts=attempts,
            at=self.clock() + timedelta(seconds=delay),
            outcome=outcome,
        )
        return attempts, delay


def _patient_of(body: bytes) -> str | None:
    """The SubmissionSet's subject (the bundle's first entry, as build_provide_bundle puts it)."""
    try:
        subject = orjson.loads(body)["entry"][0]["resource"]["subject"]["identifier"]["value"]
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return None
    return subject if isinstance(subject, str) and len(subject) == 11 else None


def _diagnostics(response: httpx.Response) -> str:
    """The OperationOutcome's first diagnostics, short (it names elements, not the patient)."""
    try:
        body = response.json()
        issue = body["issue"][0]
        return str(issue.get("diagnostics") or issue.get("code") or "")[:150]
    except Exception:  # noqa: BLE001 - any unreadable answer is just "no diagnostics"
        return ""
