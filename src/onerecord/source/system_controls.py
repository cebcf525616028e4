"""The patient's controls for the region's own systems: `GET /controls/system?patient=<nin>`.

The media archive of the region keeps images, not documents, and holds none of the patient's
controls; it asks the document source for them before it answers a health worker (docs/media.md
"Access rules"). The caller is a system, not a person: it signs each request with a publish
proof (`onerecord.trust.publish_proof`, method GET over an empty body, the same keys as ITI-65
publishing), and the answer is the three controls the policy reads:

    {"reservation": bool, "documentBlocks": [uniqueId, ...], "practitionerBlocks": [id, ...]}

Only a publisher whose key is marked as a regional archive (`"onerecord_archive": true` in the
publishers' JWKS, docs/trust.md "Systems of the region") may read: any other publisher's valid
proof is a 403. A proof whose `iss` is not its key's issuer is a 401 (IssuerMismatch).

Every answer and every refused proof is audited with the system as the actor (its `iss`, the
proof's jti; for a key posing as another issuer, the key's own issuer); a malformed patient is a
400 (OperationOutcome) like any other bad parameter.

References: TRUST-FRAMEWORK §4.5 (sperring, reservation), ATT-5; the media contract §2 (issue 14).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord
from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.mhd import BadRequest
from onerecord.source.access import AccessRefused
from onerecord.source.patient_controls import PatientControlStore
from onerecord.source.security import AuditRecorder
from onerecord.trust.errors import InvalidToken, TrustError
from onerecord.trust.policy import PatientControls
from onerecord.trust.publish_proof import (
    PUBLISH_PROOF_HEADER,
    IssuerMismatch,
    Publisher,
    PublisherKeys,
    verify_publish_proof,
)
from onerecord.trust.replay import ReplayCache

__all__ = [
    "SystemControlReader",
    "parse_system_controls_query",
    "system_controls_json",
]

_MAX_VALUE = 64


def parse_system_controls_query(params: Sequence[tuple[str, str]]) -> NationalIdentityNumber:
    """Read `patient=<nin>`: exactly one, nothing else; anything other is a 400 (BadRequest)."""
    patients = [value for name, value in params if name == "patient"]
    others = sorted({name for name, _ in params if name != "patient"})
    if others:
        raise BadRequest(f"unknown parameter {others[0][:40]!r}; only patient is read")
    if len(patients) != 1:
        raise BadRequest("exactly one patient=<national identity number> is required")
    value = patients[0]
    if not value or len(value) > _MAX_VALUE:
        raise BadRequest("patient is not a national identity number")
    try:
        return NationalIdentityNumber(value.strip())
    except (InvalidIdentifier, ValueError):
        raise BadRequest("patient is not a national identity number") from None


def system_controls_json(controls: PatientControls) -> dict[str, Any]:
    """Return the controls as the systems' answer (no dates: the policy reads none)."""
    return {
        "reservation": controls.reserved,
        "documentBlocks": sorted(d.value for d in controls.blocked_documents),
        "practitionerBlocks": sorted(controls.blocked_practitioners),
    }


class SystemControlReader:
    """Check the system's publish proof, read the patient's controls, audit both outcomes."""

    def __init__(
        self,
        *,
        controls: PatientControlStore,
        publishers: PublisherKeys | None,
        replay: ReplayCache,
        audience: str,
        recorder: AuditRecorder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.controls = controls
        self.publishers = publishers
        self.replay = replay
        self.audience = audience
        self.recorder = recorder
        self.clock = clock

    async def _audit(
        self,
        outcome: AuditOutcome,
        *,
        correlation_id: str,
        patient: str | None,
        system: str | None,
        jti: str | None,
        reason: str | None = None,
        returned: int | None = None,
    ) -> None:
        record = AuditRecord(
            action=AuditAction.CONTROLS_READ,
            outcome=outcome,
            recorded=self.recorder.clock(),
            source_id=self.recorder.source_id,
            home_community_id=self.recorder.home_community_id,
            correlation_id=correlation_id,
            patient_id=patient,
            reason=reason,
            returned_count=returned,
            query="controls/system",
            token_jti=jti,
            system=system,
        )
        await self.recorder.write(record)

    async def read(
        self,
        *,
        proof: str | None,
        htu: str,
        params: Sequence[tuple[str, str]],
        correlation_id: str,
    ) -> dict[str, Any]:
        """Return the controls of the `patient` the query names, for a proven system only."""
        try:
            nin: NationalIdentityNumber | BadRequest = parse_system_controls_query(params)
        except BadRequest as exc:
            nin = exc  # answered after the proof: an unknown caller learns nothing
        patient = nin.value if isinstance(nin, NationalIdentityNumber) else None
        system: Publisher | None = None
        try:
            if self.publishers is None:
                raise AccessRefused(
                    "no system may read controls here (no publisher keys configured)",
                    reason="publishing-not-configured",
                )
            if not proof:
                raise InvalidToken(f"a {PUBLISH_PROOF_HEADER} header signed by a system is needed")
            system = await verify_publish_proof(
                proof,
                keys=self.publishers,
                audience=self.audience,
                htu=htu,
                body=b"",
                now=self.clock(),
                replay=self.replay,
                method="GET",
            )
            if not system.archive:
                raise AccessRefused(
                    "this system may publish but not read the patient's controls (not an archive)",
                    reason="not-an-archive",
                )
        except (TrustError, AccessRefused) as exc:
            reason = exc.error if isinstance(exc, TrustError) else exc.reason
            actor = system.issuer if system is not None else None
            if isinstance(exc, IssuerMismatch):
                actor, reason = exc.registered, "issuer-mismatch"
            await self._audit(
                AuditOutcome.DENIED,
                correlation_id=correlation_id,
                patient=patient,
                system=actor,
                jti=system.jti if system is not None else None,
                reason=str(reason or "denied"),
            )
            raise
        assert system is not None
        if isinstance(nin, BadRequest):
            raise nin
        controls = await self.controls.controls_for(nin)
        answer = system_controls_json(controls)
        await self._audit(
            AuditOutcome.SUCCESS,
            correlation_id=correlation_id,
            patient=nin.value,
            system=system.issuer,
            jti=system.jti,
            returned=len(answer["documentBlocks"]) + len(answer["practitionerBlocks"]),
        )
        return answer
