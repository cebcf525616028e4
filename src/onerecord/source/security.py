"""The trust framework at the document source: who is calling, what they may see, and the audit.

    SourceAuthenticator  DPoP-bound access token (RFC 9449) or hub-signed assertion → Principal,
                         over the shared path of trust.resource_server; adds the source's own
                         rules (B10, deferred assertions, relayed SAML assertions)
    PolicyGuard          AccessGuard: patient binding (ATT-4/6), then the pure policy of
                         onerecord.trust.policy with the patient's controls and the region policy
    AuditRecorder        AccessRecorder: one AuditRecord per patient and access into SqlAuditSink,
                         allowed or denied (F1, F5), the token jti only (F6), emergency flagged (D2)
    SourceCallerLimits   per-caller limits after authentication: direct callers by their token,
                         calls the hub relays by the end user the assertion carries

Citizens' population facts come from the access token, never from a register of the source's
own: the STS applied Folkeregisteret (addresses, parental responsibility, address protection,
deceased) and the proxy register at login and signed the result into `onerecord:representation`
(see `population_facts`). The source re-applies the age rules on today's date.

References: TRUST-FRAMEWORK §2.3 (validation at the API), §3 (headers), §4 (health personnel),
§5 (citizens), §7 B1–B14, D1–D8, E1–E13, F1–F6; IHE ITI BALP.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import structlog

from onerecord.audit import (
    AuditAction,
    AuditCitizen,
    AuditOutcome,
    AuditPractitioner,
    AuditRecord,
    SqlAuditSink,
)
from onerecord.audit.caller import audit_practitioner
from onerecord.domain import (
    DocumentEntry,
    DocumentQuery,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.mhd import BadRequest
from onerecord.source.access import (
    AccessRefused,
    CallerContext,
    DocumentNotShown,
    EntryView,
    RetrieveGrant,
    SearchGrant,
)
from onerecord.source.patient_controls import PatientControlStore
from onerecord.trust.access_token import (
    AccessTokenClaims,
    AuthSettings,
    Citizen,
    HealthPersonnel,
    Principal,
)
from onerecord.trust.attestation import ATTESTATION_TYPE
from onerecord.trust.caller_limits import (
    CallerLimiter,
    CallerPermit,
    CallerQuota,
    caller_key,
)
from onerecord.trust.emergency import masked_handle
from onerecord.trust.errors import InvalidToken, PatientBindingFailed
from onerecord.trust.keys import KeyProvider
from onerecord.trust.patient_binding import (
    PATIENT_NIN_HEADER,
    PATIENT_SALT_HEADER,
    verify_binding,
)
from onerecord.trust.policy import (
    EntryFacts,
    HandleOf,
    RegionPolicy,
    RetrieveDecision,
    SearchDecision,
    citizen_access_log_policy,
    citizen_search_policy,
    hcp_search_policy,
    retrieve_policy,
)
from onerecord.trust.policy import (
    EntryView as PolicyView,
)
from onerecord.trust.population import population_facts
from onerecord.trust.principal import (
    AccessBasis,
    HealthPersonnelContext,
)
from onerecord.trust.replay import ReplayCache
from onerecord.trust.resource_server import HubCall, ResourceServerAuthenticator
from onerecord.xca.errors import SamlRefused
from onerecord.xca.relay import RELAY_CLAIM, XUA_ASSERTION_HEADER, read_relayed
from onerecord.xca.saml import XuaSettings, verify_assertion
from onerecord.xca.xua import caller_from_assertion

__all__ = [
    "ACCESS_BASIS_HEADER",
    "CAPTURED_HEADERS",
    "SOURCE_SYSTEM_HEADER",
    "AuditRecorder",
    "PolicyGuard",
    "SourceAuthenticator",
    "SourceCallerLimits",
    "check_deferred",
    "population_facts",
]

log = structlog.get_logger("onerecord.source.security")

ACCESS_BASIS_HEADER = "nhn-access-basis"
SOURCE_SYSTEM_HEADER = "nhn-source-system"
CAPTURED_HEADERS = (
    PATIENT_NIN_HEADER,
    PATIENT_SALT_HEADER,
    ACCESS_BASIS_HEADER,
    SOURCE_SYSTEM_HEADER,
)
"""The request headers the policy and the audit read; kept in CallerContext.headers."""


# --- authentication --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A validated caller: the principal, what may be logged of its token, and the channel."""

    principal: Principal
    token_jti: str
    via_hub: bool
    correlation_id: str | None = None
    asserted_patient: NationalIdentityNumber | None = None
    """The patient of a relayed SAML assertion (`resource-id`), verified here (ATT-4)."""
    access_basis: AccessBasis | None = None
    """The relayed assertion's ACP as an access basis (the MHD path's nhn-access-basis)."""
    relayed_xua: bool = False
    """The caller is a SAML assertion the hub relayed (`xca/relay.py`), verified here."""


class SourceAuthenticator(ResourceServerAuthenticator):
    """Validate a direct DPoP-bound access token, or an assertion signed by the trusted hub.

    The shared trust path is `ResourceServerAuthenticator`'s; the source adds its own rules: a
    direct caller names its system (B10), a deferred hub assertion only changes a control
    (`check_deferred`), and a hub assertion may relay the caller's own SAML assertion (XCA).
    """

    receiver = "source"

    def __init__(
        self,
        *,
        auth: AuthSettings,
        keys: KeyProvider,
        replay: ReplayCache,
        hub_issuer: str | None = None,
        hub_keys: KeyProvider | None = None,
        xua: XuaSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            auth=auth,
            keys=keys,
            replay=replay,
            hub_issuer=hub_issuer,
            hub_keys=hub_keys,
            clock=clock,
        )
        self.xua = xua
        """The SAML issuers this region trusts (its XCA gateway's): for relayed assertions."""

    async def authenticate(
        self, *, method: str, url: str, headers: Mapping[str, str]
    ) -> Authenticated:
        """Return who is calling, or raise a TrustError (401/403) that says why.

        References: RFC 9449 §7.1 (B1–B4), RFC 9068 §4 (B5, B6), ATT-58 (A19, A20).
        """
        call = await self.verify(method=method, url=url, headers=headers)
        if isinstance(call, HubCall):
            authenticated = self._hub(call, headers)
            check_deferred(authenticated.principal.claims, method=method, url=url)
            return authenticated
        if not headers.get(SOURCE_SYSTEM_HEADER, "").strip():
            raise BadRequest(f"the {SOURCE_SYSTEM_HEADER} header is required (B10)")
        return Authenticated(call.principal, call.token_jti, via_hub=False)

    def _hub(self, call: HubCall, headers: Mapping[str, str]) -> Authenticated:
        relayed = call.claims.raw.get(RELAY_CLAIM)
        if relayed is not None:
            return self._relayed(call.claims, relayed, headers, call.correlation_id)
        return Authenticated(
            call.principal(),
            call.token_jti,
            via_hub=True,
            correlation_id=call.correlation_id,
        )

    def _relayed(
        self,
        claims: AccessTokenClaims,
        digest: object,
        headers: Mapping[str, str],
        correlation_id: str | None,
    ) -> Authenticated:
        """The caller of a hub assertion that relays the caller's own SAML assertion.

        The caller and the patient come from that assertion, verified here with this region's
        own trusted issuers and audiences: the hub vouches only that it relays the request
        (docs/xca.md "Trust at the hub"). The patient header must be `resource-id` (ATT-4).
        """
        header = headers.get(XUA_ASSERTION_HEADER)
        if self.xua is None:
            raise InvalidToken("this source trusts no SAML issuer for a relayed assertion")
        if not isinstance(digest, str) or not header:
            raise InvalidToken(f"the hub assertion relays a SAML assertion: {XUA_ASSERTION_HEADER}")
        try:
            element = read_relayed(header, digest=digest)
            assertion = verify_assertion(
                element, self.xua, now=datetime.fromtimestamp(self.clock(), UTC)
            )
            xua = caller_from_assertion(assertion)
            patient = xua.patient.nin if xua.patient is not None else None
        except SamlRefused as exc:
            raise InvalidToken(f"relayed SAML assertion refused: {exc.message}") from None
        except InvalidIdentifier:
            raise PatientBindingFailed("resource-id is not a national identity number") from None
        if xua.principal.nin.value != claims.subject:
            raise InvalidToken(
                "the hub assertion and the relayed SAML assertion name other callers"
            )
        header_nin = headers.get(PATIENT_NIN_HEADER)
        if header_nin is not None and (patient is None or header_nin != patient.value):
            raise PatientBindingFailed(
                "the relayed assertion names another patient than the request (ATT-4)"
            )
        return Authenticated(
            xua.principal,
            xua.assertion_id,
            via_hub=True,
            correlation_id=correlation_id,
            asserted_patient=patient,
            access_basis=xua.access_basis,
            relayed_xua=True,
        )


_CONTROL_CHANGE_PATH = re.compile(
    r"/controls/(reservation|document-blocks/[^/?#]+|practitioner-blocks/[^/?#]+)$"
)


def check_deferred(claims: AccessTokenClaims, *, method: str, url: str) -> None:
    """Accept a deferred hub assertion only for a citizen's control change (PUT/DELETE).

    The hub re-sends a citizen's privacy change from its outbox after the citizen's token has
    expired (docs/policy.md "Deferred control changes"); it marks those assertions with
    `deferred_since`. Such an assertion may change a control, never read anything.
    """
    if "deferred_since" not in claims.raw:
        return
    path = urlsplit(url).path
    if method not in ("PUT", "DELETE") or not _CONTROL_CHANGE_PATH.search(path):
        raise InvalidToken("a deferred hub assertion may only change a patient control")
    if claims.raw.get(ATTESTATION_TYPE) is not None:
        raise InvalidToken("a deferred hub assertion is for a citizen's own change")


class SourceCallerLimits:
    """Per-caller limits at a source (docs/source.md "Limits"), taken after authentication.

    A direct caller is keyed by its token's `sub` and `client_id`. A call the hub relays is keyed
    by the end user the hub assertion carries (its `sub` and `client_id`), never by the hub as
    one caller: the hub is not one user, and one user's traffic through it must not exhaust a
    limit every other user shares. Relayed calls get `via_hub_factor` times the quota, because
    one search at the hub may follow several pages at a region, and the hub limits each user
    itself first. A caller without a verified principal (development open access) is not limited.
    """

    def __init__(
        self,
        quota: CallerQuota,
        *,
        via_hub_factor: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.direct = CallerLimiter(quota, clock=clock)
        self.via_hub = CallerLimiter(quota.scaled(via_hub_factor), clock=clock)

    def admit(self, caller: CallerContext) -> CallerPermit | None:
        """Admit one request of `caller`, or raise CallerThrottled (429)."""
        principal = caller.principal
        if not isinstance(principal, HealthPersonnel | Citizen):
            return None
        limiter = self.via_hub if caller.via_hub else self.direct
        return limiter.acquire(caller_key(principal.claims))


# --- policy ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _header_patient(caller: CallerContext) -> NationalIdentityNumber | None:
    value = caller.headers.get(PATIENT_NIN_HEADER)
    if not value:
        return None
    try:
        return NationalIdentityNumber(value.strip())
    except InvalidIdentifier:
        raise PatientBindingFailed(
            f"{PATIENT_NIN_HEADER} is not a national identity number"
        ) from None


def _hcp_context(caller: CallerContext, principal: HealthPersonnel) -> HealthPersonnelContext:
    ctx = principal.context()
    raw = caller.headers.get(ACCESS_BASIS_HEADER)
    if raw:
        try:
            ctx = replace(ctx, access_basis=AccessBasis.parse(raw))
        except ValueError:
            raise BadRequest(f"{ACCESS_BASIS_HEADER} {raw!r} is not a known access basis") from None
    return ctx


def _refuse(decision: SearchDecision | RetrieveDecision) -> AccessRefused:
    reason = decision.reason.value if decision.reason is not None else "denied"
    return AccessRefused(f"access denied by policy: {reason}", reason=reason)


def _entry_view(decision: SearchDecision) -> Callable[[EntryFacts], EntryView | None]:
    def view(entry: EntryFacts) -> EntryView | None:
        shown = decision.view(entry)
        if shown is PolicyView.HIDDEN:
            return None
        masked = shown is PolicyView.MASKED
        handle_of = decision.rules.handle_of
        return EntryView(
            entry,
            masked=masked,
            emergency=decision.unlocks(entry),
            handle=handle_of(entry) if masked and handle_of is not None else None,
        )

    return view


class PolicyGuard:
    """The AccessGuard of the trust framework: binding, controls, region and citizen policy."""

    def __init__(
        self,
        *,
        controls: PatientControlStore,
        region_policy: RegionPolicy,
        clock: Callable[[], datetime] = _now,
        handle_key: bytes | None = None,
    ) -> None:
        self.controls = controls
        self.region_policy = region_policy
        self.clock = clock
        # The key of the «Sperret» placeholder ids (trust.emergency.masked_handle): this
        # process's own; after a restart the ids change and a running override names none.
        self.handle_key = handle_key or secrets.token_bytes(32)

    def handle_of(self, ctx: HealthPersonnelContext, patient: NationalIdentityNumber) -> HandleOf:
        """Return the placeholder id of each entry for this caller's access decision."""
        key, decision_ref = self.handle_key, ctx.decision_ref_id

        def handle(entry: EntryFacts) -> str:
            return masked_handle(
                key,
                decision_ref=decision_ref,
                patient=patient.value,
                unique_id=entry.unique_id.value,
            )

        return handle

    @staticmethod
    def principal(caller: CallerContext) -> Principal:
        """Return the authenticated principal, or refuse an anonymous caller."""
        principal = caller.principal
        if not isinstance(principal, HealthPersonnel | Citizen):
            raise InvalidToken("no access token", error="invalid_request")
        return principal

    def _bind(
        self, caller: CallerContext, principal: HealthPersonnel, patient: NationalIdentityNumber
    ) -> None:
        """The patient asked about must be the one the attestation is bound to (ATT-4, ATT-6)."""
        header = _header_patient(caller)
        if header is None:
            raise PatientBindingFailed(f"{PATIENT_NIN_HEADER} is required for patient data (ATT-6)")
        if header != patient:
            raise PatientBindingFailed(
                f"{PATIENT_NIN_HEADER} names another patient than the request (ATT-4)"
            )
        if caller.asserted_patient is not None:
            # XUA: the signed assertion names the patient itself (resource-id), checked against
            # the query by the gateway; there is no salted digest to verify (TRUST-FRAMEWORK §2.4).
            if caller.asserted_patient != patient:
                raise PatientBindingFailed("the assertion names another patient (ATT-4)")
            return
        verify_binding(principal.attestation, patient, caller.headers.get(PATIENT_SALT_HEADER, ""))

    async def _decide(
        self, caller: CallerContext, patient: NationalIdentityNumber
    ) -> SearchDecision:
        principal = self.principal(caller)
        now = self.clock()
        if isinstance(principal, HealthPersonnel):
            self._bind(caller, principal, patient)
            hcp = _hcp_context(caller, principal)
            return hcp_search_policy(
                hcp,
                patient,
                region_policy=self.region_policy,
                controls=await self.controls.controls_for(patient),
                today=now.date(),
                now=now,
                handle_of=self.handle_of(hcp, patient),
            )
        header = _header_patient(caller)
        if header is not None and header != patient:
            raise PatientBindingFailed(f"{PATIENT_NIN_HEADER} names another patient (ATT-4)")
        ctx = principal.context()
        return citizen_search_policy(ctx, patient, facts=population_facts(ctx, patient), now=now)

    async def authorize_search(self, caller: CallerContext, query: DocumentQuery) -> SearchGrant:
        """Decide an ITI-67 search: refuse, answer empty, or narrow and view per entry."""
        decision = await self._decide(caller, query.patient_id)
        if not decision.allowed:
            raise _refuse(decision)
        return SearchGrant(
            decision.restrict(query),
            viewer=_entry_view(decision),
            empty=decision.empty,
            empty_reason=decision.reason.value if decision.empty and decision.reason else None,
        )

    async def authorize_retrieve(
        self, caller: CallerContext, entry: DocumentEntry | None
    ) -> RetrieveGrant:
        """Decide an ITI-68 retrieve (B11: patient header required; B12: must match).

        The request is judged first, alike for every key (token, patient header, binding, the
        patient's reservation and blocks); then the document: absent, another patient's or
        hidden from the caller is DocumentNotShown, answered as if no such document existed.
        """
        self.principal(caller)
        header = _header_patient(caller)
        if header is None:
            raise BadRequest(f"the {PATIENT_NIN_HEADER} header is required to retrieve (B11)")
        search = await self._decide(caller, header)
        if not search.allowed or search.empty:
            raise _refuse(search)
        if entry is None:
            raise DocumentNotShown(reason="document-not-found")
        decision = retrieve_policy(search, header, entry)
        if decision.conceals:
            assert decision.reason is not None
            raise DocumentNotShown(reason=decision.reason.value)
        if not decision.allowed:
            raise _refuse(decision)
        return RetrieveGrant(emergency=decision.emergency_access)

    async def authorize_citizen_self_service(
        self, caller: CallerContext, patient: NationalIdentityNumber, *, access_log: bool = False
    ) -> Citizen:
        """Allow a citizen to read the access log of / set controls for `patient`.

        The same rules as reading that person's documents (§5.2): self from 16, a parent for a
        child under 12, a valid proxy; health personnel are refused. Reading the access log
        (`access_log`) is also allowed to a young person of 12–15 for their own log
        (`citizen_access_log_policy`).
        """
        principal = self.principal(caller)
        if not isinstance(principal, Citizen):
            raise AccessRefused(
                "only the citizen (or a representative) may do this", reason="not-citizen"
            )
        ctx = principal.context()
        policy = citizen_access_log_policy if access_log else citizen_search_policy
        decision = policy(ctx, patient, facts=population_facts(ctx, patient), now=self.clock())
        if not decision.allowed or decision.empty:
            raise _refuse(decision)
        return principal

    def citizen_sees(
        self, caller: CallerContext, patient: NationalIdentityNumber
    ) -> Callable[[EntryFacts], bool]:
        """Return whether the calling citizen may see each of `patient`'s entries in full.

        The same decision as the citizen's own document search (§5.2, §5.3): a young person of
        12–15 reading their own log, a parent of a child 12–15 and a caller refused see none;
        hidden labels and entries not yet released to the citizen are not seen. Used to show
        in the access log only the titles its reader may read (docs/policy.md).
        """
        principal = self.principal(caller)
        if not isinstance(principal, Citizen):
            return lambda entry: False
        ctx = principal.context()
        decision = citizen_search_policy(
            ctx, patient, facts=population_facts(ctx, patient), now=self.clock()
        )
        released_by = decision.released_by

        def sees(entry: EntryFacts) -> bool:
            if decision.view(entry) is not PolicyView.FULL:
                return False
            if not entry.confidentiality_code_values.isdisjoint(decision.hidden_labels):
                return False
            release = entry.citizen_release_time
            return released_by is None or release is None or release <= released_by

        return sees


# --- audit -----------------------------------------------------------------------------------


class AuditRecorder:
    """The AccessRecorder of the trust framework: BALP-shaped records in the source's chain."""

    def __init__(
        self,
        sink: SqlAuditSink,
        *,
        source_id: str,
        home_community_id: str,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.sink = sink
        self.source_id = source_id
        self.home_community_id = home_community_id
        self.clock = clock

    def _caller_fields(
        self, caller: CallerContext, patient: str | None, emergency_opened: Sequence[str] = ()
    ) -> tuple[AuditPractitioner | None, AuditCitizen | None]:
        principal = caller.principal
        if isinstance(principal, HealthPersonnel):
            ctx = principal.context()
            raw = caller.headers.get(ACCESS_BASIS_HEADER)
            if raw:
                try:
                    ctx = replace(ctx, access_basis=AccessBasis.parse(raw))
                except ValueError:
                    pass
            return audit_practitioner(ctx, emergency_opened), None
        if isinstance(principal, Citizen):
            rep = None
            if patient is not None and patient != principal.nin.value:
                rep = next((r for r in principal.representation if r.person.value == patient), None)
            return None, AuditCitizen(
                nin=principal.nin.value,
                on_behalf_of=patient if patient != principal.nin.value else None,
                relation=rep.relation.value if rep else None,
            )
        return None, None

    def record(
        self,
        caller: CallerContext,
        *,
        action: AuditAction,
        outcome: AuditOutcome,
        patient: str | None,
        reason: str | None = None,
        document_ids: Sequence[str] = (),
        returned_count: int | None = None,
        query: str | None = None,
        emergency: bool = False,
        emergency_opened: Sequence[str] = (),
    ) -> AuditRecord:
        """Build one audit record for `caller` about `patient`."""
        practitioner, citizen = self._caller_fields(caller, patient, emergency_opened)
        return AuditRecord(
            action=action,
            outcome=outcome,
            recorded=self.clock(),
            source_id=self.source_id,
            home_community_id=self.home_community_id,
            correlation_id=caller.correlation_id,
            patient_id=patient,
            practitioner=practitioner,
            citizen=citizen,
            reason=reason,
            document_ids=tuple(document_ids),
            returned_count=returned_count,
            query=query,
            token_jti=caller.token_jti,
            emergency_override=emergency,
        )

    async def write(self, record: AuditRecord) -> None:
        """Append one record; an access must not pass unaudited, so errors propagate."""
        await self.sink.append([record])

    async def searched(
        self, caller: CallerContext, query: DocumentQuery, returned: Sequence[EntryView]
    ) -> None:
        await self.write(
            self.record(
                caller,
                action=AuditAction.SEARCH,
                outcome=AuditOutcome.SUCCESS,
                patient=query.patient_id.value,
                document_ids=[v.entry.unique_id.value for v in returned if not v.masked],
                returned_count=len(returned),
                emergency=any(v.emergency for v in returned),
                emergency_opened=[v.entry.unique_id.value for v in returned if v.emergency],
            )
        )

    async def retrieved(
        self, caller: CallerContext, entry: DocumentEntry, grant: RetrieveGrant
    ) -> None:
        await self.write(
            self.record(
                caller,
                action=AuditAction.RETRIEVE,
                outcome=AuditOutcome.SUCCESS,
                patient=entry.patient_id.value,
                document_ids=[entry.unique_id.value],
                emergency=grant.emergency,
                emergency_opened=[entry.unique_id.value] if grant.emergency else [],
            )
        )

    async def denied(
        self,
        caller: CallerContext,
        action: str,
        reason: str,
        *,
        patient: str | None = None,
        document: str | None = None,
    ) -> None:
        await self.write(
            self.record(
                caller,
                action=AuditAction(action),
                outcome=AuditOutcome.DENIED,
                patient=patient,
                reason=reason,
                document_ids=[document] if document else [],
            )
        )
        log.info(
            "access.denied",
            action=action,
            reason=reason,
            jti=caller.token_jti,
            correlation_id=caller.correlation_id,
        )
