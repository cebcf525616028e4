"""The access policy of a document source: who may see which DocumentEntry, and how.

Pure functions over the caller (`principal`), the patient, the patient's own controls and the
region's policy. Deny-overrides: every rule that applies may deny, and one denial is the answer;
per entry, HIDDEN beats MASKED beats FULL. Each rule names its source in its docstring.

Two channels:
- health personnel (`hcp_search_policy`, `hcp_retrieve_policy`): TRUST-FRAMEWORK §4;
- citizens (`citizen_search_policy`, `citizen_retrieve_policy`): TRUST-FRAMEWORK §5.

The search decision narrows the registry query (`restrict`: hidden labels, release time, the
kjernejournalforskriften class windows, which entries are masked) so that the registry matches,
counts, sorts and pages exactly what the caller may receive, and a masked entry only on what its
placeholder shows; `view` says the same per entry, for the retrieve and for rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from enum import StrEnum
from functools import cache
from typing import Protocol

from onerecord.domain import (
    CONFIDENTIALITY_VOLVEN,
    DOCUMENT_TYPE_SYSTEM,
    ClassWindow,
    Coding,
    DocumentEntry,
    DocumentQuery,
    DocumentStatus,
    DocumentUniqueId,
    HomeCommunityId,
    NationalIdentityNumber,
    code_tables,
    normalise_system,
)
from onerecord.trust.emergency import ACUTE_BASES
from onerecord.trust.principal import (
    KJ_FORSKRIFT_SCOPE,
    READ_DOCUMENTREFERENCES_SCOPE,
    AccessBasis,
    CitizenContext,
    HealthPersonnelContext,
    PurposeOfUse,
    RelationKind,
)

__all__ = [
    "CITIZEN_MIN_AGE",
    "CONCEALING_REASONS",
    "KJ_FORSKRIFT_CLASS_LIMITS",
    "MASKED_TITLE",
    "OWN_ACCESS_LOG_MIN_AGE",
    "PARENT_ACCESS_BELOW_AGE",
    "DenialReason",
    "EntryFacts",
    "EntryView",
    "HandleOf",
    "MaskedEntry",
    "PatientControls",
    "PopulationFacts",
    "RegionPolicy",
    "RetrieveDecision",
    "SearchDecision",
    "citizen_access_log_policy",
    "citizen_hidden_labels",
    "citizen_retrieve_policy",
    "citizen_search_policy",
    "hcp_retrieve_policy",
    "hcp_search_policy",
    "kj_forskrift_windows",
    "masked_entry",
    "retrieve_policy",
]

CITIZEN_MIN_AGE = 16
"""Own digital access from the 16th birthday (helserettslig myndig; TRUST-FRAMEWORK §5.2)."""

PARENT_ACCESS_BELOW_AGE = 12
"""Parents see a child's documents until the 12th birthday ("< 12", §5.2 boundary note)."""

OWN_ACCESS_LOG_MIN_AGE = PARENT_ACCESS_BELOW_AGE
"""A young person reads their own access log from the 12th birthday, when parents lose access.

Project decision (issue 11): from 12 to 16 nobody could otherwise read the log — the parents'
access has ended (§5.2, E5) and the young person's own access to the documents has not begun
(E2) — while the log is the person's own (§5.4: it shows who looked, never what was read).
"""

PROXY_HOLDER_MIN_AGE = 18
"""A power-of-attorney holder must be 18 (§5.2, E10)."""

MASKED_TITLE = "Sperret"
"""The title a masked placeholder shows (reference source: DocumentObfuscationService)."""

KJ_FORSKRIFT_CLASS_LIMITS: dict[str, int | None] = {
    "A00-1": None,
    "C00-1": 1,
    "D00-1": 5,
    "E00-1": 5,
    "I00-1": 1,
}
"""Kjernejournalforskriften: classCode → how many years back it is shown (None = all).

References: TRUST-FRAMEWORK §4.4. Decision: classes not listed are not shown under this scope
(the public pages list only these groups; least privilege where the sources are open).
"""

_NORS = "NORS"
_NORU = "NORU"
_VERY_RESTRICTED = "V"
_NORN_PREFIX = "NORN_"
_EMERGENCY_PURPOSES = frozenset({PurposeOfUse.ETREAT, PurposeOfUse.BTG})


class DenialReason(StrEnum):
    """Why access was refused (or an answer left empty). The values are stable codes."""

    INSUFFICIENT_ASSURANCE = "insufficient-assurance"
    PURPOSE_NOT_ALLOWED = "purpose-not-allowed"
    ROLE_NOT_ALLOWED = "role-not-allowed"
    MISSING_ATTESTATION = "missing-attestation"
    SCOPE_MISSING = "scope-missing"
    SCOPE_CONFLICT = "scope-conflict"
    ACCESS_BASIS_REQUIRED = "access-basis-required"
    PRACTITIONER_BLOCKED = "practitioner-blocked"
    PATIENT_RESERVED = "patient-reserved"
    WRONG_PATIENT = "wrong-patient"
    DOCUMENT_BLOCKED = "document-blocked"
    DOCUMENT_RESTRICTED = "document-restricted"
    CITIZEN_UNDER_AGE = "citizen-under-age"
    PATIENT_DECEASED = "patient-deceased"
    NO_REPRESENTATION = "no-representation"
    CHILD_TOO_OLD = "child-too-old"
    NO_PARENT_AT_ADDRESS = "no-parent-at-address"
    PROXY_NOT_VALID = "proxy-not-valid"
    PROTECTED_ADDRESS = "protected-address"
    EMERGENCY_BASIS_REQUIRED = "emergency-basis-required"
    EMERGENCY_EXPIRED = "emergency-expired"


class EntryFacts(Protocol):
    """What the per-entry rules read of a DocumentEntry, and nothing more.

    A DocumentEntry has all of it; the registry's search answers it from a row's columns
    without decoding the whole entry (onerecord.source.store.FoundEntry).
    """

    @property
    def unique_id(self) -> DocumentUniqueId: ...

    @property
    def class_code(self) -> Coding: ...

    @property
    def confidentiality_code_values(self) -> frozenset[str]: ...

    @property
    def creation_time(self) -> datetime: ...

    @property
    def service_start_time(self) -> datetime | None: ...

    @property
    def citizen_release_time(self) -> datetime | None: ...


HandleOf = Callable[[EntryFacts], str]
"""The id of an entry's «Sperret» placeholder for this caller (the region's keyed digest)."""


class EntryView(StrEnum):
    """How one DocumentEntry may be shown to the caller."""

    FULL = "full"
    MASKED = "masked"
    HIDDEN = "hidden"


@dataclass(frozen=True, slots=True)
class RegionPolicy:
    """A region's permit policy for health personnel: role and purpose allow-lists.

    References: TRUST-FRAMEWORK §4.7 (ABAC at the source: SecurityLevel 4, role allow-list,
    purpose in TREAT/ETREAT/COC/BTG); scenarios C6, C7, C8.
    """

    allowed_roles: frozenset[str] = frozenset(
        {"LE", "SP", "PS", "TL", "JO", "FT", "HP", "AA", "PM"}
    )
    allowed_purposes: frozenset[PurposeOfUse] = frozenset(PurposeOfUse)
    min_security_level: int = 4


@dataclass(frozen=True, slots=True)
class PatientControls:
    """The patient's own choices: reservation against sharing and blocks (sperring).

    References: TRUST-FRAMEWORK §4.5; ATT-5 (blocks of a named health worker); D4.
    """

    patient: NationalIdentityNumber
    reserved_since: datetime | None = None
    blocked_documents: frozenset[DocumentUniqueId] = frozenset()
    blocked_practitioners: frozenset[str] = frozenset()

    @property
    def reserved(self) -> bool:
        return self.reserved_since is not None

    def blocks_practitioner(self, ctx: HealthPersonnelContext) -> bool:
        """True when the patient blocked this health worker by HPR number or identity number."""
        ids = {ctx.practitioner_nin.value}
        if ctx.hpr is not None:
            ids.add(ctx.hpr.value)
        return not ids.isdisjoint(self.blocked_practitioners)


@dataclass(frozen=True, slots=True)
class PopulationFacts:
    """What the population register (Folkeregisteret) and the proxy register say.

    The citizen portal looks these up and passes them in; the policy does no I/O.
    `a_parent_at_child_address`: at least one parent is registered at the child's address.
    `*_address_protected`: fortrolig or strengt fortrolig adresse (kode 7/6).
    """

    patient_birth_date: date
    patient_deceased: bool = False
    parental_responsibility: bool = False
    a_parent_at_child_address: bool = False
    power_of_attorney_registered: bool = False
    requester_address_protected: bool = False
    patient_address_protected: bool = False


@dataclass(frozen=True, slots=True)
class MaskedEntry:
    """What a masked placeholder shows of a blocked (NORS) entry.

    Kept: the date (serviceStartTime, else creationTime), the classCode, the region
    (homeCommunityId) and the status, so the caller learns that blocked documents exist, of which
    kind, when and where. Dropped: title (replaced by "Sperret"), authors, typeCode, practice
    setting, facility, event codes, uniqueId and the retrieve URL: the document is not
    retrievable. References: TRUST-FRAMEWORK §4.5 (DocumentObfuscationService), D1.
    """

    date: datetime
    class_code: Coding
    home_community_id: HomeCommunityId | None
    status: DocumentStatus
    title: str = MASKED_TITLE


def masked_entry(entry: DocumentEntry) -> MaskedEntry:
    """Return the placeholder for a masked entry."""
    return MaskedEntry(
        date=entry.service_start_time or entry.creation_time,
        class_code=entry.class_code,
        home_community_id=entry.home_community_id,
        status=entry.status,
    )


@dataclass(frozen=True, slots=True)
class _EntryRules:
    """The per-entry rules of one decision."""

    hidden_labels: frozenset[str] = frozenset()
    hide_label_prefix: str | None = None
    masked_labels: frozenset[str] = frozenset()
    blocked_documents: frozenset[DocumentUniqueId] = frozenset()
    unlock_blocked: bool = False
    unlock_documents: frozenset[str] = frozenset()
    unlock_classes: frozenset[tuple[str, str]] = frozenset()
    handle_of: HandleOf | None = None
    kj_forskrift_on: date | None = None
    released_by: datetime | None = None

    def view(self, entry: EntryFacts) -> EntryView:
        labels = entry.confidentiality_code_values
        if not labels.isdisjoint(self.hidden_labels):
            return EntryView.HIDDEN
        if self.hide_label_prefix and any(c.startswith(self.hide_label_prefix) for c in labels):
            return EntryView.HIDDEN
        if self.released_by is not None and not _released(entry, self.released_by):
            return EntryView.HIDDEN
        if self.kj_forskrift_on is not None and not _kj_forskrift_shows(
            entry, self.kj_forskrift_on
        ):
            return EntryView.HIDDEN
        if self.masks(entry):
            return EntryView.MASKED
        return EntryView.FULL

    def masks(self, entry: EntryFacts) -> bool:
        """True when the entry is blocked and neither consent nor an emergency grant opens it."""
        return self.is_blocked(entry) and not self.unlock_blocked and not self.in_scope(entry)

    def in_scope(self, entry: EntryFacts) -> bool:
        """True when an emergency grant names the entry or its class (issue 11, defect 7)."""
        klass = (normalise_system(entry.class_code.system), entry.class_code.code)
        if klass in self.unlock_classes:
            return True
        return (
            bool(self.unlock_documents)
            and self.handle_of is not None
            and self.handle_of(entry) in self.unlock_documents
        )

    def is_blocked(self, entry: EntryFacts) -> bool:
        return (
            not entry.confidentiality_code_values.isdisjoint(self.masked_labels)
            or entry.unique_id in self.blocked_documents
        )

    def restrict(self, query: DocumentQuery) -> DocumentQuery:
        """Return `query` with the class windows and the masking of these rules, for the registry.

        The registry then applies exactly `view`: HIDDEN entries are not listed (nor counted),
        MASKED entries are matched and sorted only on what their placeholder shows.
        """
        windows = (
            None if self.kj_forskrift_on is None else kj_forskrift_windows(self.kj_forskrift_on)
        )
        if self.unlock_blocked:
            return replace(query, shown_classes=windows)
        return replace(
            query,
            shown_classes=windows,
            masked_labels=query.masked_labels | self.masked_labels,
            masked_documents=query.masked_documents | self.blocked_documents,
            unmasked_classes=query.unmasked_classes | self.unlock_classes,
        )


@dataclass(frozen=True, slots=True)
class SearchDecision:
    """The answer to "may this caller search this patient's documents, and see what?".

    `allowed` False: refuse with `reason`. `empty` True: answer with an empty list without asking
    the registry (reservation, citizen under 16); `reason` then says why.
    """

    allowed: bool
    reason: DenialReason | None = None
    empty: bool = False
    hidden_labels: frozenset[str] = frozenset()
    released_by: datetime | None = None
    emergency_access: bool = False
    rules: _EntryRules = field(default_factory=_EntryRules)

    def restrict(self, query: DocumentQuery) -> DocumentQuery:
        """Return the query narrowed by this decision: hidden, class windows, masked entries."""
        released_by = self.released_by
        if query.released_by is not None and released_by is not None:
            released_by = min(query.released_by, released_by)
        narrowed = replace(
            query,
            hidden_labels=query.hidden_labels | self.hidden_labels,
            released_by=released_by if released_by is not None else query.released_by,
        )
        return self.rules.restrict(narrowed)

    def view(self, entry: EntryFacts) -> EntryView:
        """How `entry` may be shown (HIDDEN for every entry when access is refused or empty)."""
        if not self.allowed or self.empty:
            return EntryView.HIDDEN
        return self.rules.view(entry)

    def masks(self, entry: EntryFacts) -> bool:
        """True when `entry` is blocked (NORS, a document block) and stays closed to this caller.

        The blocking rules of `view` without its hiding rules, for a service that holds no
        DocumentEntry but must honour the patient's blocks of one (the media archive's studies,
        docs/media.md "Access rules"). References: TRUST-FRAMEWORK §4.5; D1–D3.
        """
        return self.allowed and not self.empty and self.rules.masks(entry)

    def unlocks(self, entry: EntryFacts) -> bool:
        """True when `entry` is shown only because of an emergency or elevated access (D2, D3).

        The audit marks such access, and the citizen's access log shows it explicitly.
        """
        return (
            self.view(entry) is EntryView.FULL
            and self.emergency_access
            and (self.rules.is_blocked(entry))
        )


@dataclass(frozen=True, slots=True)
class RetrieveDecision:
    """The answer to "may this caller read the bytes of this entry?"."""

    allowed: bool
    reason: DenialReason | None = None
    emergency_access: bool = False

    @property
    def conceals(self) -> bool:
        """True when the refusal must read as "no such document" (see CONCEALING_REASONS)."""
        return self.reason in CONCEALING_REASONS


CONCEALING_REASONS = frozenset({DenialReason.WRONG_PATIENT, DenialReason.DOCUMENT_RESTRICTED})
"""Retrieve refusals answered exactly as a document that does not exist.

Another patient's document, and one hidden from this caller, must not be confirmed to exist
(issue 10, F4): the caller gets the answer of a made-up key, the audit keeps the true reason.
A masked (blocked) entry of the patient is refused as `document-blocked`: its placeholder
already tells the caller that blocked documents exist (D1).
"""


def _deny(reason: DenialReason) -> SearchDecision:
    return SearchDecision(allowed=False, reason=reason)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _entry_date(entry: EntryFacts) -> datetime:
    return entry.service_start_time or entry.creation_time


def kj_forskrift_windows(today: date) -> tuple[ClassWindow, ...]:
    """Kjernejournalforskriften: the listed classes, each from its age limit on (UTC midnight).

    References: TRUST-FRAMEWORK §4.4 (A00-1 all, C00-1 1 y, D00-1 5 y, E00-1 5 y, I00-1 1 y,
    by serviceStartTime); D5, D6.
    """
    return tuple(
        ClassWindow(
            DOCUMENT_TYPE_SYSTEM,
            code,
            None
            if years is None
            else datetime.combine(_years_before(today, years), time(), tzinfo=UTC),
        )
        for code, years in sorted(KJ_FORSKRIFT_CLASS_LIMITS.items())
    )


def _kj_forskrift_shows(entry: EntryFacts, today: date) -> bool:
    """Kjernejournalforskriften: show only the listed classes, each within its age limit."""
    for window in kj_forskrift_windows(today):
        if (entry.class_code.system, entry.class_code.code) == (window.system, window.code):
            return window.since is None or _entry_date(entry) >= window.since
    return False


def _released(entry: EntryFacts, now: datetime) -> bool:
    """NORU: delayed citizen access until the entry's release time (E12).

    An entry marked NORU without a release time stays hidden; an entry with a future release
    time is hidden whatever its labels.
    """
    if entry.citizen_release_time is not None:
        return entry.citizen_release_time <= now
    return _NORU not in entry.confidentiality_code_values


@cache
def citizen_hidden_labels() -> frozenset[str]:
    """Labels never shown to a citizen: V and every NORN_* code of Volven 9603 (§5.3, E1)."""
    norn = {
        code
        for code in code_tables().systems.get(CONFIDENTIALITY_VOLVEN, {})
        if code.startswith(_NORN_PREFIX)
    }
    return frozenset({_VERY_RESTRICTED, *norn})


# --- health personnel ------------------------------------------------------------------------


def _hcp_gate(
    ctx: HealthPersonnelContext,
    patient: NationalIdentityNumber,
    region_policy: RegionPolicy,
    controls: PatientControls,
    now: datetime | None = None,
) -> DenialReason | None:
    """Apply the request-level rules for health personnel; return the first denial or None."""
    for rule in (
        _rule_security_level,
        _rule_purpose,
        _rule_attestation,
        _rule_role,
        _rule_scope,
        _rule_access_basis,
    ):
        reason = rule(ctx, region_policy)
        if reason is not None:
            return reason
    return _rule_practitioner_block(ctx, patient, controls) or _rule_emergency(ctx, now)


def _rule_security_level(ctx: HealthPersonnelContext, policy: RegionPolicy) -> DenialReason | None:
    """Identity at assurance level 4. References: ATT-9; TRUST-FRAMEWORK §4.7; C7."""
    if ctx.security_level < policy.min_security_level:
        return DenialReason.INSUFFICIENT_ASSURANCE
    return None


def _rule_purpose(ctx: HealthPersonnelContext, policy: RegionPolicy) -> DenialReason | None:
    """purpose_of_use in TREAT/ETREAT/COC/BTG and the region's list. References: ATT-38…41; C8."""
    purpose = ctx.purpose
    if purpose is None or purpose not in policy.allowed_purposes:
        return DenialReason.PURPOSE_NOT_ALLOWED
    return None


def _rule_attestation(ctx: HealthPersonnelContext, policy: RegionPolicy) -> DenialReason | None:
    """legal_entity, point_of_care, decision_ref and service or details present.

    References: ATT-12, ATT-18, ATT-43, ATT-47; TRUST-FRAMEWORK §4.6 (missing attributes deny).
    """
    if not (ctx.legal_entity.id and ctx.point_of_care.id and ctx.decision_ref_id.strip()):
        return DenialReason.MISSING_ATTESTATION
    if ctx.healthcare_service is None and ctx.purpose_details is None:
        return DenialReason.MISSING_ATTESTATION
    return None


def _rule_role(ctx: HealthPersonnelContext, policy: RegionPolicy) -> DenialReason | None:
    """An HPR authorisation on the region's allow-list. References: ATT-32; §4.7; C6, A22.

    Health workers without an HPR authorisation are refused (ATT-29 leaves it to the source).
    """
    if ctx.hpr is None or not any(role in policy.allowed_roles for role in ctx.roles):
        return DenialReason.ROLE_NOT_ALLOWED
    return None


def _rule_scope(ctx: HealthPersonnelContext, policy: RegionPolicy) -> DenialReason | None:
    """Exactly one document-list scope. References: TRUST-FRAMEWORK §2.1; B9."""
    has_hpl = READ_DOCUMENTREFERENCES_SCOPE in ctx.scope
    has_kj = KJ_FORSKRIFT_SCOPE in ctx.scope
    if has_hpl and has_kj:
        return DenialReason.SCOPE_CONFLICT
    if not (has_hpl or has_kj):
        return DenialReason.SCOPE_MISSING
    return None


def _rule_access_basis(ctx: HealthPersonnelContext, policy: RegionPolicy) -> DenialReason | None:
    """The kjernejournalforskriften scope needs an access basis. References: §3.1, §4.3; B8."""
    if KJ_FORSKRIFT_SCOPE in ctx.scope and ctx.access_basis is None:
        return DenialReason.ACCESS_BASIS_REQUIRED
    return None


def _rule_emergency(ctx: HealthPersonnelContext, now: datetime | None) -> DenialReason | None:
    """Break the glass (BTG) only on an acute basis, with a signed grant, before it ends.

    The grant (`emergency_access` in the attestation, trust.emergency) states the acute basis,
    the scope and the end; a stated basis that is not acute (UNNTAK, SAMTYKKE, a GP's «unntak
    fra samtykke») refuses the request. `now` None: the end is not checked (pure rule tests).
    References: issue 11, defect 7; TRUST-FRAMEWORK §4.3 item 3 (AKUTT / FORHOYET_AKUTT is the
    emergency basis), §4.5, D2.
    """
    if ctx.purpose is not PurposeOfUse.BTG:
        return None
    grant = ctx.emergency
    if grant is None or grant.access_basis not in ACUTE_BASES:
        return DenialReason.EMERGENCY_BASIS_REQUIRED
    if ctx.access_basis is not None and ctx.access_basis.value not in ACUTE_BASES:
        return DenialReason.EMERGENCY_BASIS_REQUIRED
    if now is not None and not grant.active(now.timestamp()):
        return DenialReason.EMERGENCY_EXPIRED
    return None


def _rule_practitioner_block(
    ctx: HealthPersonnelContext, patient: NationalIdentityNumber, controls: PatientControls
) -> DenialReason | None:
    """The patient blocked this health worker. References: ATT-5; TRUST-FRAMEWORK §4.5.

    Decision: no override, not even in an emergency (another health worker can act).
    """
    if controls.patient == patient and controls.blocks_practitioner(ctx):
        return DenialReason.PRACTITIONER_BLOCKED
    return None


def _hcp_emergency(ctx: HealthPersonnelContext) -> bool:
    """ETREAT/BTG or an elevated access basis opens blocked entries. References: §4.5; D2, D3."""
    return ctx.purpose in _EMERGENCY_PURPOSES or (
        ctx.access_basis is not None and ctx.access_basis.elevated
    )


def _unlocks_all(ctx: HealthPersonnelContext) -> bool:
    """Only the patient's consent to open blocked data (FORHOYET_SAMTYKKE) opens them all (D3).

    An emergency (ETREAT, BTG, FORHOYET_AKUTT) opens only what its signed grant names
    (`_EntryRules.in_scope`): without a grant nothing blocked opens, whatever an unsigned
    `nhn-access-basis` header says. References: issue 11, defect 7; §4.3, §4.5; D2, D3.
    """
    return ctx.access_basis is AccessBasis.FORHOYET_SAMTYKKE


def hcp_search_policy(
    ctx: HealthPersonnelContext,
    patient: NationalIdentityNumber,
    *,
    region_policy: RegionPolicy,
    controls: PatientControls,
    today: date,
    now: datetime | None = None,
    handle_of: HandleOf | None = None,
) -> SearchDecision:
    """Decide a health worker's document search for `patient`.

    Rules: request gate (C6–C8, B8, B9, ATT-5); reservation → empty (D4); own record → V hidden
    (D7, TRUST-FRAMEWORK §4.6); kjernejournalforskriften class/age filter (D5, D6); NORS and
    blocked documents masked (D1), opened by FORHOYET_SAMTYKKE (D3) or, in an emergency (ETREAT,
    BTG, FORHOYET_AKUTT), only those the signed grant names by placeholder id (`handle_of`) or
    class (D2; issue 11, defect 7); BTG needs the grant's acute basis and ends with it
    (`now`); NORN_*/NORU do not restrict health personnel (D8, §5.3).
    """
    if controls.patient != patient:
        raise ValueError("the patient controls passed in belong to another patient")
    reason = _hcp_gate(ctx, patient, region_policy, controls, now)
    if reason is not None:
        return _deny(reason)
    if controls.reserved:
        return SearchDecision(allowed=True, empty=True, reason=DenialReason.PATIENT_RESERVED)
    hidden = frozenset({_VERY_RESTRICTED}) if ctx.practitioner_nin == patient else frozenset()
    emergency = _hcp_emergency(ctx)
    grant = ctx.emergency if emergency else None
    rules = _EntryRules(
        hidden_labels=hidden,
        masked_labels=frozenset({_NORS}),
        blocked_documents=controls.blocked_documents,
        unlock_blocked=_unlocks_all(ctx),
        unlock_documents=grant.documents if grant else frozenset(),
        unlock_classes=grant.classes if grant else frozenset(),
        handle_of=handle_of,
        kj_forskrift_on=today if KJ_FORSKRIFT_SCOPE in ctx.scope else None,
    )
    return SearchDecision(
        allowed=True, hidden_labels=hidden, emergency_access=emergency, rules=rules
    )


def _retrieve_from(search: SearchDecision, entry: DocumentEntry) -> RetrieveDecision:
    if not search.allowed:
        return RetrieveDecision(allowed=False, reason=search.reason)
    if search.empty:
        return RetrieveDecision(allowed=False, reason=search.reason)
    view = search.view(entry)
    if view is EntryView.MASKED:
        return RetrieveDecision(allowed=False, reason=DenialReason.DOCUMENT_BLOCKED)
    if view is EntryView.HIDDEN:
        return RetrieveDecision(allowed=False, reason=DenialReason.DOCUMENT_RESTRICTED)
    return RetrieveDecision(allowed=True, emergency_access=search.unlocks(entry))


def retrieve_policy(
    search: SearchDecision, patient: NationalIdentityNumber, entry: DocumentEntry
) -> RetrieveDecision:
    """Decide the retrieve of one entry under the search decision for `patient`: FULL view only.

    References: ATT-4 (entry of the patient the request is bound to; B12, C11); D1.
    """
    if entry.patient_id != patient:
        return RetrieveDecision(allowed=False, reason=DenialReason.WRONG_PATIENT)
    return _retrieve_from(search, entry)


def hcp_retrieve_policy(
    ctx: HealthPersonnelContext,
    patient: NationalIdentityNumber,
    entry: DocumentEntry,
    *,
    region_policy: RegionPolicy,
    controls: PatientControls,
    today: date,
    now: datetime | None = None,
    handle_of: HandleOf | None = None,
) -> RetrieveDecision:
    """Decide a health worker's retrieve of one entry: the search rules, and FULL view only.

    References: ATT-4 (entry must belong to the patient the request is bound to; B12, C11);
    D1 (masked entries are not retrievable).
    """
    if entry.patient_id != patient:
        return RetrieveDecision(allowed=False, reason=DenialReason.WRONG_PATIENT)
    search = hcp_search_policy(
        ctx,
        patient,
        region_policy=region_policy,
        controls=controls,
        today=today,
        now=now,
        handle_of=handle_of,
    )
    return _retrieve_from(search, entry)


# --- citizens --------------------------------------------------------------------------------


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _citizen_gate(
    ctx: CitizenContext,
    patient: NationalIdentityNumber,
    facts: PopulationFacts,
    today: date,
) -> SearchDecision | None:
    """Apply the citizen rules in order of precedence; return a refusal or empty answer."""
    if ctx.acr_level < 4:
        # Level 4 login only. References: TRUST-FRAMEWORK §5.1; E13.
        return _deny(DenialReason.INSUFFICIENT_ASSURANCE)
    if facts.patient_deceased:
        # No digital access to a deceased person's record. References: §5.2 (Deceased).
        return _deny(DenialReason.PATIENT_DECEASED)
    patient_age = _age(facts.patient_birth_date, today)
    if ctx.nin == patient:
        if patient_age < CITIZEN_MIN_AGE:
            # No digital access before 16. References: §5.2 (Self, 12–15); E2.
            return SearchDecision(allowed=True, empty=True, reason=DenialReason.CITIZEN_UNDER_AGE)
        return None
    representation = ctx.representation_of(patient)
    if representation is None:
        # ACP nil for another person's documents. References: §5.2 (No relationship); E9.
        return _deny(DenialReason.NO_REPRESENTATION)
    if facts.requester_address_protected or facts.patient_address_protected:
        # Kode 6/7: cannot represent nor be represented. References: §5.2; E11.
        return _deny(DenialReason.PROTECTED_ADDRESS)
    if representation.relation is RelationKind.PARENT:
        if not facts.parental_responsibility:
            return _deny(DenialReason.NO_REPRESENTATION)
        if patient_age >= PARENT_ACCESS_BELOW_AGE:
            # Parents until the 12th birthday. References: §5.2 boundary note; E5.
            return _deny(DenialReason.CHILD_TOO_OLD)
        if not facts.a_parent_at_child_address:
            # A parent must live at the child's address. References: §5.2 (Parent); E6.
            return _deny(DenialReason.NO_PARENT_AT_ADDRESS)
        return None
    # Proxy: registered, giver 16 or older, holder 18 or older. References: §5.2; E7, E8, E10.
    if not facts.power_of_attorney_registered:
        return _deny(DenialReason.NO_REPRESENTATION)
    if patient_age < CITIZEN_MIN_AGE or _age(ctx.born, today) < PROXY_HOLDER_MIN_AGE:
        return _deny(DenialReason.PROXY_NOT_VALID)
    return None


def citizen_search_policy(
    ctx: CitizenContext,
    patient: NationalIdentityNumber,
    *,
    facts: PopulationFacts,
    now: datetime,
) -> SearchDecision:
    """Decide a citizen's document search for themselves or a represented person.

    Rules: level 4 (E13); own documents from 16, empty 12–15 and below (E1–E3); parents of a
    child under 12 with a parent at the child's address (E4–E6); proxy (E7, E8, E10); kode 6/7
    (E11); ACP nil → deny (E9). Shown: N and R; hidden: V and NORN_* (§5.3; E1), NORU until its
    release time (E12: released_by = now). NORS concerns health personnel and does not hide.
    `now` must carry a time zone; ages are counted on its date.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    refusal = _citizen_gate(ctx, patient, facts, now.date())
    if refusal is not None:
        return refusal
    hidden = citizen_hidden_labels()
    rules = _EntryRules(hidden_labels=hidden, hide_label_prefix=_NORN_PREFIX, released_by=now)
    return SearchDecision(allowed=True, hidden_labels=hidden, released_by=now, rules=rules)


def citizen_access_log_policy(
    ctx: CitizenContext,
    patient: NationalIdentityNumber,
    *,
    facts: PopulationFacts,
    now: datetime,
) -> SearchDecision:
    """Decide whether a citizen may read the access log of `patient`.

    The rules of `citizen_search_policy`, with one difference: a young person aged 12–15 asking
    for their own log is allowed (`OWN_ACCESS_LOG_MIN_AGE`), since nobody else may read it
    then. Under 12 the own log stays closed (the parents read it, §5.2); the documents stay
    closed until 16 (E2). The answer never carries entry rules: a log holds no documents.
    References: TRUST-FRAMEWORK §5.2 (Self, 12–15; Parent of child 12–15), §5.4, F2; E2, E5.
    """
    decision = citizen_search_policy(ctx, patient, facts=facts, now=now)
    if (
        decision.empty
        and decision.reason is DenialReason.CITIZEN_UNDER_AGE
        and ctx.nin == patient
        and _age(facts.patient_birth_date, now.date()) >= OWN_ACCESS_LOG_MIN_AGE
    ):
        return SearchDecision(allowed=True)
    return decision


def citizen_retrieve_policy(
    ctx: CitizenContext,
    patient: NationalIdentityNumber,
    entry: DocumentEntry,
    *,
    facts: PopulationFacts,
    now: datetime,
) -> RetrieveDecision:
    """Decide a citizen's retrieve of one entry: the search rules, entry of that patient only.

    References: ATT-4 (binding to the patient); TRUST-FRAMEWORK §5.
    """
    if entry.patient_id != patient:
        return RetrieveDecision(allowed=False, reason=DenialReason.WRONG_PATIENT)
    return _retrieve_from(citizen_search_policy(ctx, patient, facts=facts, now=now), entry)
