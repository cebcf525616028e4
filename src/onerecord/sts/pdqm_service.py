"""The patient lookup (IHE PDQm, ITI-78) beside the token service's registers: trust and audit.

The same trust path as a document source: a DPoP-bound access token from this STS for the
lookup's own audience (RFC 9449, RFC 9068), then the policy, then the register, and one audit
record per lookup — found, unknown or refused (F1, F5) — in a hash-chained audit table of its
own (`SqlAuditSink`), with the token's jti only (F6).

Policy (`lookup_refusal`):
- health personnel: the attestation must be bound to the number looked up (salted digest,
  `onerecord-patient-salt`, ATT-4/ATT-6), and the request gate of a document search must pass
  (assurance level 4, purpose of use, complete attestation, an HPR authorisation on the
  allow-list, a document-list scope; TRUST-FRAMEWORK §4.7, C6–C8, B8, B9). The patient's own
  controls (reservation, blocks) guard documents, not identity, and are not the register's;
- citizens: themselves, or a person the token says they represent (§5.2).

A malformed query is the caller's error (400) and writes nothing; every request past the
parser is audited, refused ones too.

References: IHE PDQm ITI-78; IHE ITI BALP PatientQuery; TRUST-FRAMEWORK §2.3, §4, §5, F1–F6.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import structlog

from onerecord.audit import AuditAction, AuditSink, audit_record
from onerecord.domain import NationalIdentityNumber
from onerecord.sts.pdqm_query import PatientQuery, parse_patient_query
from onerecord.sts.pdqm_resource import patient_searchset
from onerecord.sts.registers import RegisterPatient
from onerecord.trust.access_token import (
    AuthSettings,
    HealthPersonnel,
    Principal,
    authenticate_request,
)
from onerecord.trust.errors import PatientBindingFailed, TrustError
from onerecord.trust.keys import KeyProvider
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER, PATIENT_SALT_HEADER, verify_binding
from onerecord.trust.policy import PatientControls, RegionPolicy, hcp_search_policy
from onerecord.trust.replay import ReplayCache

__all__ = [
    "PDQM_AUDIENCE",
    "REGISTER_SOURCE_ID",
    "LookupAnswer",
    "PatientLookup",
    "PatientRegister",
    "lookup_refusal",
]

log = structlog.get_logger("onerecord.sts.pdqm")

PDQM_AUDIENCE = "onerecord:pdqm"
"""The audience of access tokens for the patient lookup (one audience per service, B5)."""
REGISTER_SOURCE_ID = "onerecord-population-register"
"""The lookup's audit chain, apart from every document source's and the hub's."""
_NO_REPRESENTATION = "no-representation"


class PatientRegister(Protocol):
    """The population register as the lookup reads it."""

    def patient(self, nin: str) -> RegisterPatient | None: ...


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """What the edge sends: a status and a body (a searchset or the reason it was refused)."""

    status: int
    body: dict[str, Any]
    error: TrustError | None = None


def lookup_refusal(
    principal: Principal,
    patient: NationalIdentityNumber,
    *,
    headers: Mapping[str, str],
    today: date,
    region_policy: RegionPolicy | None = None,
) -> str | None:
    """Return why `principal` may not look `patient` up (a DenialReason code), or None.

    Raises PatientBindingFailed when a health worker's attestation names another patient or none.
    """
    if isinstance(principal, HealthPersonnel):
        named = headers.get(PATIENT_NIN_HEADER)
        if named is not None and named.strip() != patient.value:
            raise PatientBindingFailed(f"{PATIENT_NIN_HEADER} names another patient (ATT-4)")
        salt = headers.get(PATIENT_SALT_HEADER)
        if not salt:
            raise PatientBindingFailed(f"{PATIENT_SALT_HEADER} is required (ATT-6)")
        verify_binding(principal.attestation, patient, salt)
        decision = hcp_search_policy(
            principal.context(),
            patient,
            region_policy=region_policy or RegionPolicy(),
            controls=PatientControls(patient),
            today=today,
        )
        if not decision.allowed:
            return decision.reason.value if decision.reason is not None else "denied"
        return None
    if principal.nin == patient or principal.context().representation_of(patient) is not None:
        return None
    return _NO_REPRESENTATION


def _now() -> datetime:
    return datetime.now(UTC)


class PatientLookup:
    """ITI-78 Patient search: authenticate, decide, look up, audit; the routes only translate."""

    def __init__(
        self,
        *,
        register: PatientRegister,
        audit: AuditSink,
        auth: AuthSettings,
        keys: KeyProvider,
        replay: ReplayCache,
        region_policy: RegionPolicy | None = None,
        clock: Callable[[], float] = time.time,
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.register = register
        self.audit = audit
        self.auth = auth
        self.keys = keys
        self.replay = replay
        self.region_policy = region_policy or RegionPolicy()
        self.clock = clock
        self.now = now

    @staticmethod
    def parse(params: Sequence[tuple[str, str]]) -> PatientQuery:
        """Parse the query (InvalidPatientQuery → 400, nothing written)."""
        return parse_patient_query(params)

    async def search(
        self,
        query: PatientQuery,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        correlation_id: str | None = None,
    ) -> LookupAnswer:
        """Answer one ITI-78 search: a searchset, or the refusal; audited either way."""
        correlation = correlation_id or str(uuid.uuid4())
        patient = query.patient
        audited = f"Patient?identifier={query.system}|"
        principal: Principal | None = None
        try:
            principal = await authenticate_request(
                authorization_header=headers.get("authorization"),
                dpop_header=headers.get("dpop"),
                method=method,
                url=url,
                keys=self.keys,
                replay=self.replay,
                settings=self.auth,
                now=self.clock(),
            )
            reason = lookup_refusal(
                principal,
                patient,
                headers=headers,
                today=self.now().date(),
                region_policy=self.region_policy,
            )
        except TrustError as exc:
            status = 403 if exc.status == 403 else 401
            await self._audit(principal, patient, correlation, audited, status, exc.error)
            log.info("pdqm.refused", reason=exc.error, correlation_id=correlation)
            return LookupAnswer(status, {}, error=exc)
        if reason is not None:
            await self._audit(principal, patient, correlation, audited, 403, reason)
            log.info("pdqm.refused", reason=reason, correlation_id=correlation)
            return LookupAnswer(403, {"reason": reason})
        found = self.register.patient(patient.value)
        matches = [found] if found is not None else []
        # The lookup is written before it is answered: no access passes unaudited.
        await self._audit(principal, patient, correlation, audited, 200, None, len(matches))
        log.info("pdqm.lookup", matches=len(matches), correlation_id=correlation)
        return LookupAnswer(200, patient_searchset(matches, system=query.system, self_url=url))

    async def _audit(
        self,
        principal: Principal | None,
        patient: NationalIdentityNumber,
        correlation: str,
        query: str,
        status: int,
        reason: str | None,
        returned: int | None = None,
    ) -> None:
        record = audit_record(
            action=AuditAction.SEARCH,
            status=status,
            source_id=REGISTER_SOURCE_ID,
            principal=principal,
            correlation_id=correlation,
            patient_id=patient.value,
            query=query,
            returned_count=returned,
            reason=reason,
            recorded=self.now(),
        )
        await self.audit.append([record])
