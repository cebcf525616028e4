"""What a citizen is told when the hub refuses: why, in words, naming the person acted for.

The regions give a denial-reason code for each refusal (TRUST-FRAMEWORK §5.2; `DenialReason`),
and the hub passes it on in its OperationOutcome, for `/controls` as for a search. When every
refusing region gave the same reason and the portal knows it, the page says that reason
(«Anna har fylt 12 år …») instead of «Du har ikke tilgang til dette …»; otherwise the general
sentence stays, naming the person acted for (issue 11, defects 3 and 8).
"""

from __future__ import annotations

from onerecord.portals.citizen_view import Person
from onerecord.portals.errors import HubRefused

__all__ = ["REASONS_SAID", "SELF_REASONS_SAID", "citizen_refusal"]

_GENERAL = "citizen.error.refused"

REASONS_SAID = (
    "child-too-old",
    "no-parent-at-address",
    "no-representation",
    "patient-deceased",
    "protected-address",
    "proxy-not-valid",
)
"""Reasons said when acting for someone (`citizen.hub-refused.<reason>-other`, with `{name}`)."""
SELF_REASONS_SAID = ("citizen-under-age",)
"""Reasons said to the citizen about themselves (`citizen.hub-refused.<reason>`)."""


def citizen_refusal(refused: HubRefused, person: Person) -> HubRefused:
    """Return `refused` said to a citizen about `person` (themselves or someone acted for).

    The reason's own sentence when every refusing region gave that one reason, else
    `citizen.error.refused` (for oneself) or `citizen.error.refused-other` naming the person.
    The advice stays: choose oneself or someone whose documents one may see.
    """
    reasons = set(refused.reasons)
    reason = next(iter(reasons)) if len(reasons) == 1 else None
    if person.is_self:
        key = f"citizen.hub-refused.{reason}" if reason in SELF_REASONS_SAID else _GENERAL
    elif reason in REASONS_SAID:
        key = f"citizen.hub-refused.{reason}-other"
    else:
        key = f"{_GENERAL}-other"
    said = HubRefused(key, advice_key=f"{_GENERAL}.advice", name=person.name)
    said.reasons = refused.reasons
    return said
