"""The emergency override as the health-personnel portal offers it: what, why, for how long.

Issue 11, defect 7: the override opened every blocked document at once, under any basis, and
never ended. Now the health worker chooses one blocked document (its «Sperret» placeholder) or
one class of blocked documents, a coded cause and a free-text reason; the portal asks for it
only when the stated basis is acute (AKUTT); it lasts `emergency_minutes` and can be ended at
once. The scope, the basis and the end travel to the regions in the signed attestation
(`trust.emergency.EmergencyGrant`), where the policy enforces them.

Pure functions and values; the routes (hcp_routes.py) do the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from onerecord.domain import normalise_system
from onerecord.portals.basis import AccessRequest
from onerecord.portals.overview import DocumentRow
from onerecord.trust.emergency import (
    MAX_GRANT_CLASSES,
    MAX_GRANT_DOCUMENTS,
    EmergencyGrant,
)
from onerecord.trust.principal import AccessBasis

__all__ = [
    "DEFAULT_MINUTES",
    "REASON_CATEGORIES",
    "ActiveOverride",
    "ScopeChoice",
    "find_choice",
    "override_offered",
    "scope_choices",
    "widen",
]

DEFAULT_MINUTES = 30
"""How long an override lasts unless the settings say otherwise (docs/portals.md argues it)."""
REASON_CATEGORIES = ("unconscious", "life-threatening", "cannot-consent", "other-acute")
"""The coded causes offered, in this order (trust.emergency.REASON_CATEGORIES)."""
_OSLO = ZoneInfo("Europe/Oslo")
_DOCUMENT = "dokument:"
_CLASS = "klasse:"


def override_offered(access: AccessRequest | None) -> bool:
    """Emergency access only on an acute basis (issue 11, defect 7; TRUST-FRAMEWORK §4.3)."""
    return access is not None and access.access_basis == AccessBasis.AKUTT.value


@dataclass(frozen=True, slots=True)
class ScopeChoice:
    """One thing an override can open: one blocked document, or all blocked of one class."""

    value: str
    """The form value: `dokument:<placeholder id>` or `klasse:<system>|<code>`."""
    klass: str
    class_system: str
    class_code: str
    masked_id: str = ""
    date: str = ""
    region: str = ""
    count: int = 1

    @property
    def is_document(self) -> bool:
        return bool(self.masked_id)


def scope_choices(rows: Iterable[DocumentRow]) -> tuple[ScopeChoice, ...]:
    """Return the choices for the blocked rows of an overview: each document, then each class."""
    blocked = [r for r in rows if r.blocked]
    documents = tuple(
        ScopeChoice(
            value=f"{_DOCUMENT}{r.masked_id}",
            klass=r.class_,
            class_system=r.class_system,
            class_code=r.class_code,
            masked_id=r.masked_id,
            date=r.date,
            region=r.region,
        )
        for r in blocked
        if r.masked_id
    )
    classes: dict[tuple[str, str], ScopeChoice] = {}
    for r in blocked:
        if not r.class_code or not r.class_system:
            continue
        key = (normalise_system(r.class_system), r.class_code)
        seen = classes.get(key)
        classes[key] = ScopeChoice(
            value=f"{_CLASS}{key[0]}|{key[1]}",
            klass=r.class_ or r.class_code,
            class_system=key[0],
            class_code=key[1],
            count=1 if seen is None else seen.count + 1,
        )
    return documents + tuple(classes.values())


def find_choice(value: str, choices: Sequence[ScopeChoice]) -> ScopeChoice | None:
    """Return the choice the form names, only if the overview offered it."""
    return next((c for c in choices if c.value == value), None)


@dataclass(frozen=True, slots=True)
class ActiveOverride:
    """The override in force for the session's patient: its grant, reason and what it opened."""

    grant: EmergencyGrant
    reason: str
    opened: tuple[ScopeChoice, ...]

    @property
    def reason_category(self) -> str:
        return self.grant.reason_category

    @property
    def until(self) -> datetime:
        """The end in Norwegian time (for «utløper kl. HH:MM»)."""
        return datetime.fromtimestamp(self.grant.until, _OSLO)

    @property
    def until_text(self) -> str:
        return self.until.strftime("%H:%M")

    def ended(self, now: float) -> bool:
        return not self.grant.active(now)

    def covers(self, row: DocumentRow) -> bool:
        """True when the override opened `row` (its class is in the scope).

        A single document named by its placeholder cannot be matched to its row once opened
        (the placeholder's id is not the document's); its row carries the region's NORS label.
        """
        key = (normalise_system(row.class_system), row.class_code) if row.class_code else None
        return key is not None and key in self.grant.classes


def widen(
    active: ActiveOverride | None,
    choice: ScopeChoice,
    *,
    reason_category: str,
    reason: str,
    until: int,
) -> ActiveOverride:
    """Return the override with `choice` added (a running one keeps what it opened).

    The end is set anew from this request; the cause and reason are this request's (each
    request is logged on its own). Bounded by the grant's limits: the oldest choices go first.
    """
    opened = tuple(c for c in (active.opened if active else ()) if c.value != choice.value)
    opened = (*opened, choice)
    documents = [c.masked_id for c in opened if c.is_document][-MAX_GRANT_DOCUMENTS:]
    classes = [(c.class_system, c.class_code) for c in opened if not c.is_document]
    grant = EmergencyGrant(
        access_basis=AccessBasis.AKUTT.value,
        reason_category=reason_category,
        until=until,
        documents=frozenset(documents),
        classes=frozenset(classes[-MAX_GRANT_CLASSES:]),
    )
    return ActiveOverride(grant=grant, reason=reason, opened=opened)
