"""The rows a page already fetched, reused for sorting, filtering, paging and going back.

Issue 11, defect 4: every sort click, page change and back link re-ran the hub search, and
every search writes an audit event in every region, so one visit filled the access log. The
session now keeps the last overview with who fetched it (`owner`: the user, the patient or
person, the basis and override) and when; a page of the same owner younger than
`listing_max_age_s` (default 120 s) is cut from those rows without asking the hub. «Oppdater»
(`?oppdater=1`) fetches afresh, as do «Prøv igjen», a new basis, the override, another person
and any change the citizen makes.

Why 120 s: long enough for a look through the list (sort, filter, open a document, back),
short enough that a document published or a block made meanwhile shows within two minutes
without a click. The list is all the cache serves: opening a document always asks the hub,
which applies the patient's blocks and reservation as they stand then (docs/policy.md).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onerecord.portals.overview import Overview

__all__ = ["REFRESH_PARAM", "CachedOverview"]

REFRESH_PARAM = "oppdater"
"""The query parameter that asks for a fresh fetch («Oppdater», «Prøv igjen»)."""


@dataclass(frozen=True, slots=True)
class CachedOverview:
    """One fetched overview, whose it is and when it came."""

    owner: tuple[Hashable, ...]
    fetched_at: float
    """time.monotonic() at the fetch (for the age)."""
    fetched_wall: datetime
    """The same moment on the clock (shown: «Hentet kl. 14.05»)."""
    overview: Overview
    since: datetime | None
    """The user's visit before this session, for «Ny» (`visits.py`)."""
    extra: Any = None
    """What else the page read with the rows (the citizen's controls)."""

    def usable(self, owner: tuple[Hashable, ...], now: float, max_age_s: float) -> bool:
        """True for the same owner while younger than `max_age_s` (never from the future)."""
        return self.owner == owner and 0 <= now - self.fetched_at < max_age_s
