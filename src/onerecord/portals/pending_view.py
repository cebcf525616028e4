"""What the privacy page says about changes the hub still waits for a region to confirm.

A privacy change holds only when every region has made it; until then the hub keeps it and
re-sends it (hub/outbox.py), and the page names each region it waits for — «Venter på Helse
Nord» — instead of saying it is done (issue 11 defect 5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from onerecord.portals.citizen_gateway import ControlKind, PatientControls

__all__ = ["PendingLine", "pending_lines"]

_KEYS = {
    (ControlKind.RESERVATION, True): "citizen.pending.reservation.on",
    (ControlKind.RESERVATION, False): "citizen.pending.reservation.off",
    (ControlKind.PRACTITIONER_BLOCK, True): "citizen.pending.practitioner.on",
    (ControlKind.PRACTITIONER_BLOCK, False): "citizen.pending.practitioner.off",
    (ControlKind.DOCUMENT_BLOCK, True): "citizen.pending.document.on",
    (ControlKind.DOCUMENT_BLOCK, False): "citizen.pending.document.off",
}


@dataclass(frozen=True, slots=True)
class PendingLine:
    """One change not yet in force everywhere: what it is, whom it waits for, who refused it."""

    message_key: str
    what: str
    """The health worker's name, the document's title, or its number when unknown."""
    waiting: tuple[str, ...]
    refused: tuple[str, ...]


def pending_lines(
    controls: PatientControls,
    *,
    staff_names: Mapping[str, str],
    titles: Mapping[str, str],
) -> list[PendingLine]:
    """Group the pending changes by control: one line each, naming every region concerned."""
    grouped: dict[tuple[str, str | None, bool], tuple[list[str], list[str]]] = {}
    for p in controls.pending:
        waiting, refused = grouped.setdefault((p.kind, p.target, p.on), ([], []))
        (refused if p.refused else waiting).append(p.region)
    lines = []
    for (kind, target, on), (waiting, refused) in grouped.items():
        if kind == ControlKind.PRACTITIONER_BLOCK:
            name = staff_names.get(target or "")
            what = f"{name} (HPR {target})" if name else f"HPR {target}"
        elif kind == ControlKind.DOCUMENT_BLOCK:
            what = titles.get(target or "") or (target or "")
        else:
            what = ""
        lines.append(PendingLine(_KEYS[(kind, on)], what, tuple(waiting), tuple(refused)))
    return lines
