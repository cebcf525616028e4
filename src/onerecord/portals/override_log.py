"""The portal's special log of emergency overrides: who opened blocked documents, and why.

The regions log the access itself (flagged as emergency, D2) and show it to the citizen; the
free-text reason stays here, linked to their records by the attestation's `decision_ref`
(TRUST-FRAMEWORK §4.5 item 5: opening blocked content is logged specially; §5.4: the free-text
reason is not shown in the citizen's log). One JSON line per override, flushed and synced
before the documents are shown; since issue 11 (defect 7) with its coded cause, its scope (one
blocked document or one class) and its end.
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "MAX_REASON",
    "MIN_REASON",
    "MIN_REASON_ALNUM",
    "EmergencyOverride",
    "FileOverrideLog",
    "MemoryOverrideLog",
    "OverrideLog",
    "normalise_reason",
    "reason_problem",
]

MIN_REASON = 10
MAX_REASON = 500
MIN_REASON_ALNUM = 5
"""At least this many letters or digits: a reason must say something."""


def normalise_reason(raw: str) -> str:
    """Return the reason as logged: invisible characters dropped, whitespace collapsed.

    Unicode "other" characters (control, format such as U+200B, private use, unassigned) are
    dropped, except whitespace, which becomes a space; runs of whitespace become one space.
    """
    kept = (
        " " if ch.isspace() else ch
        for ch in raw
        if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    return " ".join("".join(kept).split())


def reason_problem(reason: str) -> str | None:
    """Return the message id saying what is wrong with a normalised reason, or None if fine."""
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        return "hcp.emergency.reason-length"
    if sum(1 for ch in reason if ch.isalnum()) < MIN_REASON_ALNUM:
        return "hcp.emergency.reason-words"
    return None


@dataclass(frozen=True, slots=True)
class EmergencyOverride:
    """One use of the emergency override."""

    at: str
    practitioner_hpr: str | None
    practitioner_name: str
    legal_entity: str
    point_of_care: str
    department: str | None
    patient: str
    reason: str
    decision_ref: str
    token_jti: str | None
    reason_category: str = ""
    """The coded cause (portals.emergency.REASON_CATEGORIES; issue 11, defect 7)."""
    scope: tuple[str, ...] = ()
    """What the override opens: `dokument:<placeholder id>` / `klasse:<system>|<code>`."""
    until: str = ""
    """When it ends (ISO 8601, UTC)."""


class OverrideLog(Protocol):
    """Where overrides are written; `write` returns only once the line is durable."""

    def write(self, override: EmergencyOverride) -> None: ...


class FileOverrideLog:
    """Append overrides as JSON lines to a file (fsync after each)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, override: EmergencyOverride) -> None:
        line = json.dumps({"event": "emergency-override", **asdict(override)}, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    def read(self) -> list[dict[str, object]]:
        """Return every override written so far (for tests and reviews)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class MemoryOverrideLog:
    """Keep overrides in a list (unit tests)."""

    def __init__(self) -> None:
        self.entries: list[EmergencyOverride] = []

    def write(self, override: EmergencyOverride) -> None:
        self.entries.append(override)
