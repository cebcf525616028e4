"""The trust framework at the media archive: who calls DICOMweb, which patient, and may they.

    MediaAuthenticator  a DPoP-bound access token (RFC 9449) or an assertion of the trusted
                        hub → `MediaCaller`, over the trust path the document source shares
                        (`trust.resource_server.ResourceServerAuthenticator`); a deferred hub
                        assertion reads nothing here
    MediaGuard          binds each request to one patient and decides it with the pure policy
                        of `onerecord.trust.policy`, as the document source does:
                        health personnel → the attested patient (salted digest, ATT-4/ATT-6)
                        and `hcp_search_policy`; citizens → themselves or a represented person
                        and `citizen_search_policy` (under 16: `citizen-under-age`)

Storing (STOW-RS) is for health personnel only, with the store scope `MEDIA_STORE_SCOPE` on top
of the request gate every read passes, and only of the bound patient's instances; a citizen
never stores (`not-health-personnel`).

The patient's own controls (reservation, blocked documents, blocked health workers) live at the
region's document source; the guard reads them for every health worker's read through a
`PatientControlSource` (region_controls.py: over HTTP, cached a few seconds, fail closed) and
passes them to the same policy: a blocked health worker is refused (`practitioner-blocked`), a
reserved patient's reads are empty or refused (`patient-reserved`), and the studies whose
manifest uniqueIds are blocked (`StudyDocuments`) and stay closed to this caller
(`SearchDecision.masks`) are `Binding.blocked_studies`: not listed, not retrieved
(`document-blocked`). Citizens' reads do not ask: the citizen rules read no controls. Storing
does not ask either (STOW-RS, DIMSE): the controls concern who reads.

References: TRUST-FRAMEWORK §2.3, §4.7 (ABAC at the resource server), §5.2 (citizens), ATT-4,
ATT-6; RFC 9449 §7.1; PS3.18 §10.5 (STOW-RS).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from onerecord.audit import AuditCitizen, AuditPractitioner
from onerecord.audit.caller import audit_practitioner
from onerecord.domain import (
    DOCUMENT_TYPE_SYSTEM,
    Coding,
    DocumentUniqueId,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.media.errors import AccessRefused
from onerecord.media.region_controls import (
    NoPatientControls,
    PatientControlSource,
    StudyDocuments,
    StudyUidIsDocumentId,
)
from onerecord.trust.access_token import Citizen, HealthPersonnel, Principal
from onerecord.trust.errors import InvalidToken, PatientBindingFailed
from onerecord.trust.patient_binding import (
    PATIENT_NIN_HEADER,
    PATIENT_SALT_HEADER,
    verify_binding,
)
from onerecord.trust.policy import (
    PatientControls,
    RegionPolicy,
    SearchDecision,
    citizen_search_policy,
    hcp_search_policy,
)
from onerecord.trust.population import population_facts
from onerecord.trust.principal import AccessBasis, HealthPersonnelContext
from onerecord.trust.resource_server import HubCall, ResourceServerAuthenticator

__all__ = [
    "ACCESS_BASIS_HEADER",
    "IMAGING_CLASS",
    "MEDIA_STORE_SCOPE",
    "NOT_HEALTH_PERSONNEL",
    "Binding",
    "MediaAuthenticator",
    "MediaCaller",
    "MediaGuard",
    "StudyFacts",
]

ACCESS_BASIS_HEADER = "nhn-access-basis"
MEDIA_STORE_SCOPE = "nhn:phr/dicomweb/store"
"""The scope a health worker's token needs to store images (STOW-RS), beside the read scope."""
NOT_HEALTH_PERSONNEL = "not-health-personnel"


@dataclass(frozen=True, slots=True)
class MediaCaller:
    """A validated DICOMweb caller and the request headers the policy reads."""

    principal: Principal
    token_jti: str
    via_hub: bool
    correlation_id: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Binding:
    """The one patient a request is about; `empty_reason` when the policy answers nothing.

    `blocked_studies`: the patient's StudyInstanceUIDs the patient blocked and this caller may
    not open (neither listed by QIDO-RS nor retrieved by WADO-RS); `opened_studies`: blocked
    ones this caller sees only by the patient's consent or an emergency grant (audited as an
    emergency override, D2, D3).
    """

    patient: NationalIdentityNumber
    empty_reason: str | None = None
    blocked_studies: frozenset[str] = frozenset()
    opened_studies: frozenset[str] = frozenset()


IMAGING_CLASS = Coding(DOCUMENT_TYPE_SYSTEM, "E00-1")
"""The classCode of a study's manifest (Volven 9602 «Bildediagnostikk»): what an emergency grant
naming the imaging class opens."""


@dataclass(frozen=True, slots=True)
class StudyFacts:
    """What the policy's blocking rules read of a study's manifest (trust.policy.EntryFacts)."""

    unique_id: DocumentUniqueId
    creation_time: datetime
    class_code: Coding = IMAGING_CLASS
    confidentiality_code_values: frozenset[str] = frozenset()
    service_start_time: datetime | None = None
    citizen_release_time: datetime | None = None


class MediaAuthenticator(ResourceServerAuthenticator):
    """Validate a direct DPoP-bound access token, or an assertion signed by the trusted hub.

    The shared trust path is `ResourceServerAuthenticator`'s; the archive adds its own rules: a
    deferred hub assertion reads nothing, and the caller keeps the headers the guard reads.
    """

    receiver = "archive"

    async def authenticate(
        self, *, method: str, url: str, headers: Mapping[str, str], correlation_id: str
    ) -> MediaCaller:
        """Return who is calling, or raise a TrustError (401/403) that says why."""
        kept = {
            name: headers[name]
            for name in (PATIENT_NIN_HEADER, PATIENT_SALT_HEADER, ACCESS_BASIS_HEADER)
            if name in headers
        }
        call = await self.verify(method=method, url=url, headers=headers)
        if isinstance(call, HubCall):
            if call.deferred:
                raise InvalidToken("a deferred hub assertion reads nothing")
            relayed = call.correlation_id  # the hub's, across its fan-out
            return MediaCaller(
                call.principal(),
                call.token_jti,
                via_hub=True,
                correlation_id=relayed[:64] if relayed is not None else correlation_id,
                headers=kept,
            )
        return MediaCaller(
            call.principal, call.token_jti, False, correlation_id=correlation_id, headers=kept
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _header_patient(caller: MediaCaller) -> NationalIdentityNumber | None:
    value = caller.headers.get(PATIENT_NIN_HEADER)
    if not value:
        return None
    try:
        return NationalIdentityNumber(value.strip())
    except InvalidIdentifier:
        raise PatientBindingFailed(
            f"{PATIENT_NIN_HEADER} is not a national identity number"
        ) from None


def _refuse(decision: SearchDecision) -> AccessRefused:
    reason = decision.reason.value if decision.reason is not None else "denied"
    return AccessRefused(f"access denied by policy: {reason}", reason=reason)


class MediaGuard:
    """Bind a DICOMweb request to its patient and decide it with the trust policy."""

    def __init__(
        self,
        *,
        region_policy: RegionPolicy,
        controls: PatientControlSource | None = None,
        studies: StudyDocuments | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.region_policy = region_policy
        self.controls = controls or NoPatientControls()
        self.studies = studies or StudyUidIsDocumentId()
        self.clock = clock

    def _hcp_context(
        self, caller: MediaCaller, principal: HealthPersonnel
    ) -> HealthPersonnelContext:
        ctx = principal.context()
        raw = caller.headers.get(ACCESS_BASIS_HEADER)
        if raw:
            try:
                ctx = replace(ctx, access_basis=AccessBasis.parse(raw))
            except ValueError:
                raise AccessRefused(
                    f"{ACCESS_BASIS_HEADER} is not a known access basis", reason="invalid-request"
                ) from None
        return ctx

    def _bound_hcp(self, caller: MediaCaller, principal: HealthPersonnel) -> NationalIdentityNumber:
        """The attested patient: the header, proven by the attestation's salted digest."""
        patient = _header_patient(caller)
        if patient is None:
            raise PatientBindingFailed(f"{PATIENT_NIN_HEADER} is required for patient data (ATT-6)")
        salt = caller.headers.get(PATIENT_SALT_HEADER, "")
        verify_binding(principal.attestation, patient, salt)
        return patient

    def _hcp_decision(
        self,
        ctx: HealthPersonnelContext,
        patient: NationalIdentityNumber,
        controls: PatientControls,
        now: datetime,
    ) -> SearchDecision:
        return hcp_search_policy(
            ctx,
            patient,
            region_policy=self.region_policy,
            controls=controls,
            today=now.date(),
            now=now,
        )

    async def _blocked_studies(
        self, decision: SearchDecision, controls: PatientControls, now: datetime
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The studies the patient blocked that stay closed to this caller, and those it opens.

        Asked per blocked uniqueId of the patient, with the facts of an imaging manifest
        (`StudyFacts`: class E00-1, no label, dated now — the blocks are the question here,
        not the kjernejournalforskriften's windows).
        """
        closed: set[str] = set()
        opened: set[str] = set()
        for unique_id in controls.blocked_documents:
            facts = StudyFacts(unique_id, creation_time=now)
            if decision.masks(facts):
                closed.add(unique_id.value)
            elif decision.unlocks(facts):
                opened.add(unique_id.value)
        named = self.studies.studies_named
        return (
            await named(frozenset(closed)) if closed else frozenset(),
            await named(frozenset(opened)) if opened else frozenset(),
        )

    async def bind(self, caller: MediaCaller) -> Binding:
        """Return the patient a read (QIDO-RS, WADO-RS) is bound to, or refuse it.

        A health worker's request is first decided without the patient's controls: a request the
        policy refuses anyway does not ask the source. Then the controls are read (or the
        request is refused with ControlsUnavailable, 503) and the request is decided again.
        """
        principal = caller.principal
        now = self.clock()
        blocked: frozenset[str] = frozenset()
        opened: frozenset[str] = frozenset()
        if isinstance(principal, HealthPersonnel):
            patient = self._bound_hcp(caller, principal)
            ctx = self._hcp_context(caller, principal)
            decision = self._hcp_decision(ctx, patient, PatientControls(patient=patient), now)
            if decision.allowed:
                controls = await self.controls.controls_for(
                    patient, correlation_id=caller.correlation_id
                )
                decision = self._hcp_decision(ctx, patient, controls, now)
                blocked, opened = await self._blocked_studies(decision, controls, now)
        elif isinstance(principal, Citizen):
            patient = _header_patient(caller) or principal.nin
            citizen = principal.context()
            decision = citizen_search_policy(
                citizen, patient, facts=population_facts(citizen, patient), now=now
            )
        else:  # pragma: no cover - the authenticator yields only these two
            raise InvalidToken("no access token", error="invalid_request")
        if not decision.allowed:
            raise _refuse(decision)
        reason = decision.reason.value if decision.empty and decision.reason else None
        if decision.empty:
            reason = reason or "denied"
        return Binding(patient, reason, blocked, opened)

    def bind_store(self, caller: MediaCaller) -> NationalIdentityNumber:
        """Return the patient a health worker may store images of, or refuse (STOW-RS).

        The request gate of a read, without the patient's controls: they concern who reads.
        """
        principal = caller.principal
        if not isinstance(principal, HealthPersonnel):
            raise AccessRefused("only health personnel store images", reason=NOT_HEALTH_PERSONNEL)
        if MEDIA_STORE_SCOPE not in principal.claims.scope:
            raise AccessRefused(
                f"storing needs the scope {MEDIA_STORE_SCOPE}", reason="scope-missing"
            )
        patient = self._bound_hcp(caller, principal)
        now = self.clock()
        ctx = self._hcp_context(caller, principal)
        decision = self._hcp_decision(ctx, patient, PatientControls(patient=patient), now)
        if not decision.allowed:
            raise _refuse(decision)
        return patient

    @staticmethod
    def audit_fields(
        caller: MediaCaller, patient: str | None
    ) -> tuple[AuditPractitioner | None, AuditCitizen | None]:
        """The caller as the audit keeps it: a practitioner's attestation, or the citizen."""
        principal = caller.principal
        if isinstance(principal, HealthPersonnel):
            return audit_practitioner(principal.context()), None
        rep = None
        if patient is not None and patient != principal.nin.value:
            rep = next((r for r in principal.representation if r.person.value == patient), None)
        return None, AuditCitizen(
            nin=principal.nin.value,
            on_behalf_of=patient if patient != principal.nin.value else None,
            relation=rep.relation.value if rep else None,
        )
