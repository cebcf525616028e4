"""What the citizen pages show, worked out from the login and the hub's answers (pure).

- Whom the citizen acts for: themselves, or a person in the STS's `onerecord:representation`
  list (a child under 12, a proxy giver); the people in `onerecord:representation_refused` are
  shown with the reason in words, and can never be chosen (TRUST-FRAMEWORK §5.2).
- A block state per overview row: blocked by the citizen (undo possible), marked NORS where
  it was written (not the citizen's to lift), open, or unknown when the controls could not be
  read.
- Which documents a block may name: one of the person's last overview; lifting a block also
  any of their blocked uniqueIds.
- The words of a page about someone acted for: where a page would say "you" or "my", the
  person is named (`Person.key`: the message's `-other` form, with `{name}`).
- Notices: the one-off message after a change, kept in the session as JSON (message id,
  parameters, whether it reports a problem) and translated when shown.

References: TRUST-FRAMEWORK §5.2 (who may act for whom), §4.5 (sperring, NORS).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from onerecord.domain import (
    DocumentUniqueId,
    HomeCommunityId,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.portals.oauth import CITIZEN_ACR
from onerecord.portals.overview import DocumentRow

__all__ = [
    "NAMED_WHEN_ACTING",
    "REFUSAL_REASONS",
    "REFUSED_CLAIM",
    "RELATIONS",
    "REPRESENTATION_CLAIM",
    "BlockState",
    "Notice",
    "Person",
    "acting_person",
    "block_state",
    "citizen_row",
    "find_person",
    "is_level_four_citizen",
    "may_change_document_block",
    "practitioner_names",
    "read_dialogue_people",
    "read_people",
]

REPRESENTATION_CLAIM = "onerecord:representation"
REFUSED_CLAIM = "onerecord:representation_refused"
DIALOGUE_CLAIM = "onerecord:representation_dialogue"
RELATIONS = ("parent", "proxy", "proxy-unable-to-consent")
REFUSAL_REASONS = (
    "child-12-15",
    "child-16-or-older",
    "protected-address",
    "not-co-registered",
    "deceased",
    "proxy-giver-under-16",
    "holder-under-18",
)


NAMED_WHEN_ACTING = frozenset(
    {
        "citizen.nav.documents",
        "citizen.documents.title",
        "citizen.documents.block-intro",
        "citizen.documents.controls-unknown",
        "citizen.documents.state.blocked",
        "citizen.log.title",
        "citizen.privacy.title",
        "citizen.privacy.intro",
        "citizen.reservation.explain",
        "citizen.reservation.is-on",
        "citizen.reservation.is-off",
        "citizen.reservation.legend",
        "citizen.reservation.choice-on",
        "citizen.privacy.documents.explain",
        "citizen.privacy.documents.none",
        "citizen.privacy.practitioners.explain",
        "citizen.privacy.practitioners.none",
        "citizen.block.not-listed.advice",
    }
)
"""Messages that say "you"/"my" of the person the page is about: each has a `-other` form
naming that person (`{name}`), used when the citizen acts for someone (issue 11)."""


@dataclass(frozen=True, slots=True)
class Person:
    """Someone whose documents the citizen sees or asked to see: self, represented, refused."""

    nin: str
    name: str
    relation: str
    """"self", or how the citizen relates to them (`RELATIONS`)."""
    reason: str | None = None
    """Why the citizen may not act for them (`REFUSAL_REASONS`); None when they may."""

    @property
    def is_self(self) -> bool:
        return self.relation == "self"

    @property
    def relation_key(self) -> str:
        """The message id naming the relation («barn», «fullmakt»)."""
        known = self.relation in RELATIONS or self.is_self
        return f"citizen.relation.{self.relation if known else 'other'}"

    def key(self, message: str) -> str:
        """The message id to say `message` of this person: its `-other` form (with `{name}`)
        when this is someone the citizen acts for and the message says "you" (`NAMED_WHEN_ACTING`).
        """
        if self.is_self or message not in NAMED_WHEN_ACTING:
            return message
        return f"{message}-other"

    @property
    def refusal_key(self) -> str:
        """The message id of the sentence that says why the citizen may not act for them."""
        known = self.reason in REFUSAL_REASONS
        return f"citizen.refused.{self.reason if known else 'other'}"


def _nin(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return NationalIdentityNumber(value.strip()).value
    except InvalidIdentifier:
        return None


def _people(value: Any, *, refused: bool) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    people: list[dict[str, Any]] = []
    for item in value:
        nin = _nin(item.get("nin")) if isinstance(item, Mapping) else None
        if nin is None or not isinstance(item, Mapping):
            continue
        name = item.get("name")
        entry: dict[str, Any] = {
            "nin": nin,
            "name": name.strip() if isinstance(name, str) and name.strip() else nin,
            "relation": str(item.get("relation") or ""),
        }
        if refused:
            entry["reason"] = str(item.get("reason") or "")
        people.append(entry)
    return tuple(people)


def read_people(
    info: Mapping[str, Any],
) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """Return (representations, refused) from the STS userinfo; malformed entries are dropped."""
    return (
        _people(info.get(REPRESENTATION_CLAIM), refused=False),
        _people(info.get(REFUSED_CLAIM), refused=True),
    )


def read_dialogue_people(info: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """The people the citizen may act for in the GP pages only, from the STS userinfo."""
    return _people(info.get(DIALOGUE_CLAIM), refused=False)


def is_level_four_citizen(info: Mapping[str, Any]) -> bool:
    """True when userinfo describes a citizen logged in at assurance level 4 (high)."""
    if REPRESENTATION_CLAIM not in info or _nin(info.get("pid")) is None:
        return False
    return info.get("acr") == CITIZEN_ACR or str(info.get("security_level")) == "4"


def _person(entry: Mapping[str, Any]) -> Person:
    reason = entry.get("reason")
    return Person(
        nin=str(entry["nin"]),
        name=str(entry.get("name") or entry["nin"]),
        relation=str(entry.get("relation") or ""),
        reason=str(reason) if reason else None,
    )


def find_person(people: Sequence[Mapping[str, Any]], nin: str | None) -> Person | None:
    """Return the person with this national id in `people`, or None."""
    if not nin:
        return None
    for entry in people:
        if entry.get("nin") == nin:
            return _person(entry)
    return None


def acting_person(
    *,
    citizen_nin: str,
    user_name: str | None,
    acting_for: str | None,
    representations: Sequence[Mapping[str, Any]],
) -> Person:
    """Return whose documents the pages show: the person acted for, else the citizen."""
    chosen = find_person(representations, acting_for)
    if chosen is not None:
        return chosen
    return Person(nin=citizen_nin, name=user_name or citizen_nin, relation="self")


@dataclass(frozen=True, slots=True)
class Notice:
    """A message shown once, on the next page: what was done, or what went wrong."""

    key: str
    params: Mapping[str, str] = field(default_factory=dict)
    problem: bool = False

    def encode(self) -> str:
        return json.dumps({"key": self.key, "params": dict(self.params), "problem": self.problem})

    @classmethod
    def decode(cls, text: str | None) -> Notice | None:
        """Read a stored notice; None when there is none or it is not one of ours."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("key"), str):
            return None
        params = data.get("params")
        clean = {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}
        return cls(data["key"], clean, bool(data.get("problem")))


class BlockState:
    """How a document in the citizen's overview stands with respect to health personnel."""

    BLOCKED = "blocked"
    """The citizen blocked it; they can lift the block."""
    LABELLED = "labelled"
    """Marked NORS where it was written: blocked, but not by a control the citizen holds."""
    OPEN = "open"
    UNKNOWN = "unknown"
    """The controls could not be read."""
    NOT_BLOCKABLE = "not-blockable"
    """No uniqueId (a placeholder), so it cannot be named in a block."""


def block_state(row: DocumentRow, blocked: frozenset[str] | None) -> str:
    """Return the `BlockState` of one overview row given the citizen's blocked uniqueIds."""
    if not row.unique_id or row.blocked:
        return BlockState.NOT_BLOCKABLE
    if blocked is None:
        return BlockState.UNKNOWN
    if row.unique_id in blocked:
        return BlockState.BLOCKED
    if row.emergency:  # NORS on a document shown in full: the citizen's own view of it
        return BlockState.LABELLED
    return BlockState.OPEN


def _document_key(unique_id: str, home_community_id: str) -> tuple[str, str | None] | None:
    """Return (uniqueId, homeCommunityId URN or None) as a block names them; None if invalid."""
    try:
        uid = DocumentUniqueId(unique_id.strip()).value
        hcid = home_community_id.strip()
        return uid, HomeCommunityId.parse(hcid).urn if hcid else None
    except (InvalidIdentifier, ValueError):
        return None


def may_change_document_block(
    unique_id: str,
    home_community_id: str | None,
    *,
    on: bool,
    rows: Iterable[DocumentRow],
    blocked: frozenset[str] = frozenset(),
) -> bool:
    """True when the citizen may block (`on`) or unblock this document of the person acted for.

    A block names a document of the person's last overview, by its uniqueId and the region
    that holds it, exactly as listed. Lifting a block may also name any uniqueId in the
    person's blocked documents (`blocked`): the privacy page lists blocks whose documents the
    last overview need not show. `unique_id` and `home_community_id` are as `ControlChange`
    normalised them.
    """
    wanted = _document_key(unique_id, home_community_id or "")
    if wanted is None:
        return False
    listed = any(
        _document_key(r.unique_id, r.home_community_id) == wanted
        for r in rows
        if r.unique_id and not r.blocked
    )
    return listed or (not on and wanted[0] in blocked)


def citizen_row(row: DocumentRow) -> DocumentRow:
    """Return the row as the citizen sees it: NORS is no emergency override here."""
    return replace(row, emergency=False) if row.emergency else row


def practitioner_names(staff: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Return HPR number → name for the health workers the portal knows (the synthetic HPR)."""
    names: dict[str, str] = {}
    for data in staff.values():
        hpr, name = data.get("hpr"), data.get("name")
        if hpr and isinstance(name, str) and name:
            names[str(hpr)] = name
    return names
