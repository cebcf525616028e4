"""The emergency grant: what a break-the-glass token may open, on which basis, until when.

Issue 11, defect 7: an override opened every blocked document at once, under any basis, and
never ended. The portal now states, in the attestation the STS signs into the access token, the
scope of the override (named blocked documents and/or document classes), the acute access basis
it rests on, a coded reason category and the moment it ends. The member is a project extension of
`nhn:tillitsrammeverk:parameters` (not in the NHN model); it travels like `purpose_of_use` BTG —
client → STS (validated, signed) → hub (copied unchanged into its assertion) → region — so no
party on the way can widen it, unlike the unsigned `nhn-access-basis` header.

    "emergency_access": {
        "access_basis": "AKUTT",
        "reason_category": "unconscious",
        "until": 1764712345,
        "documents": ["masked-3f…"],
        "classes": [{"code": "A00-1", "system": "urn:oid:2.16.578.1.12.4.1.1.9602"}]
    }

`documents` are the ids of the region's «Sperret» placeholders (`masked-` + a keyed digest the
region can recompute; the placeholder carries no uniqueId, TRUST-FRAMEWORK §4.5), never
uniqueIds. References: TRUST-FRAMEWORK §4.3 (AKUTT, FORHOYET_AKUTT), §4.5, D2; ATT-58 (an
attestation lives at most 60 minutes, so a grant cannot outlive it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onerecord.domain import normalise_system
from onerecord.trust.errors import InvalidAuthorizationDetails

__all__ = [
    "ACUTE_BASES",
    "EMERGENCY_MEMBER",
    "MAX_GRANT_CLASSES",
    "MAX_GRANT_DOCUMENTS",
    "MAX_GRANT_SECONDS",
    "REASON_CATEGORIES",
    "EmergencyGrant",
    "masked_handle",
    "parse_emergency_grant",
]

EMERGENCY_MEMBER = "emergency_access"
ACUTE_BASES = frozenset({"AKUTT", "FORHOYET_AKUTT"})
"""The bases an override may rest on: acute need of health care (§4.3 item 3)."""
REASON_CATEGORIES = frozenset({"unconscious", "life-threatening", "cannot-consent", "other-acute"})
"""Coded reasons (the free text stays in the portal's override log, §5.4)."""
MAX_GRANT_DOCUMENTS = 50
MAX_GRANT_CLASSES = 20
MAX_GRANT_SECONDS = 3600
"""A grant ends within the attestation's 60 minutes (ATT-58)."""
_HANDLE = re.compile(r"^masked-[0-9a-f]{32}$")
_CLASS_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _fail(description: str) -> InvalidAuthorizationDetails:
    return InvalidAuthorizationDetails(f"{EMERGENCY_MEMBER}: {description}")


@dataclass(frozen=True, slots=True)
class EmergencyGrant:
    """The scope, basis, reason category and end of one emergency override."""

    access_basis: str
    reason_category: str
    until: int
    documents: frozenset[str] = frozenset()
    classes: frozenset[tuple[str, str]] = frozenset()
    """(system, code) pairs; the system in urn:oid form."""

    def to_json(self) -> dict[str, Any]:
        return {
            "access_basis": self.access_basis,
            "reason_category": self.reason_category,
            "until": self.until,
            "documents": sorted(self.documents),
            "classes": [{"code": c, "system": s} for s, c in sorted(self.classes)],
        }

    def active(self, now: float) -> bool:
        """True until the grant's end (no clock skew: an override ends on time)."""
        return now < self.until


def parse_emergency_grant(value: Any) -> EmergencyGrant:
    """Type- and range-check the `emergency_access` member; raise on the first fault."""
    if not isinstance(value, Mapping):
        raise _fail("must be a JSON object")
    allowed = {"access_basis", "reason_category", "until", "documents", "classes"}
    unknown = set(value) - allowed
    if unknown:
        raise _fail(f"unknown member(s) {sorted(unknown)}")
    basis = value.get("access_basis")
    if not isinstance(basis, str) or basis not in ACUTE_BASES:
        raise _fail("access_basis must be AKUTT or FORHOYET_AKUTT (issue 11, defect 7)")
    category = value.get("reason_category")
    if not isinstance(category, str) or category not in REASON_CATEGORIES:
        raise _fail(f"reason_category must be one of {sorted(REASON_CATEGORIES)}")
    until = value.get("until")
    if not isinstance(until, int) or isinstance(until, bool) or not 0 < until < 2**33:
        raise _fail("until must be Unix seconds (integer)")
    documents = value.get("documents", [])
    if not isinstance(documents, list) or len(documents) > MAX_GRANT_DOCUMENTS:
        raise _fail(f"documents must be a list of at most {MAX_GRANT_DOCUMENTS} ids")
    for handle in documents:
        if not isinstance(handle, str) or not _HANDLE.match(handle):
            raise _fail("documents must name «Sperret» placeholders (masked-<32 hex>)")
    classes = value.get("classes", [])
    if not isinstance(classes, list) or len(classes) > MAX_GRANT_CLASSES:
        raise _fail(f"classes must be a list of at most {MAX_GRANT_CLASSES} codings")
    pairs: set[tuple[str, str]] = set()
    for item in classes:
        if not isinstance(item, Mapping) or set(item) - {"code", "system"}:
            raise _fail("each class must be {code, system}")
        code, system = item.get("code"), item.get("system")
        if not isinstance(code, str) or not _CLASS_CODE.match(code):
            raise _fail("a class code must be 1–64 of A-Z a-z 0-9 _ . -")
        if not isinstance(system, str) or not 0 < len(system) <= 256:
            raise _fail("a class system must be a non-empty string")
        pairs.add((normalise_system(system), code))
    if not documents and not pairs:
        raise _fail("names no document and no class: an override opens only what it names")
    return EmergencyGrant(
        access_basis=basis,
        reason_category=category,
        until=until,
        documents=frozenset(documents),
        classes=frozenset(pairs),
    )


def masked_handle(key: bytes, *, decision_ref: str, patient: str, unique_id: str) -> str:
    """Return the id a region gives the «Sperret» placeholder of `unique_id` for one caller.

    A keyed digest (HMAC-SHA256 under the region's own key, 128 bits shown) of the access
    decision, the patient and the uniqueId: the region can recompute it to see whether a grant
    names an entry, nobody else can learn the uniqueId from it, and it is the same on every
    search of one stated basis (one `decision_ref`), so the portal can name it, while a new
    basis (a new visit) gives new ids that cannot be linked to the old ones.
    """
    message = "\x00".join((decision_ref, patient, unique_id)).encode("utf-8")
    return "masked-" + hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
