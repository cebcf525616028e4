"""«Ny» since the user's last visit: when each user last saw each patient's overview.

One row per (user, patient) in a small SQLite file in the portal's workdir (`visits_file`,
default beside the emergency-override log): the time of the last overview fetched from the
hub. The key is HMAC-SHA256 under a key derived from the portal's session secret, over the
user's and the patient's identity numbers, so the file holds no number, and without the
secret (which is not in the file) a number cannot be tried against it: 11 digits with valid
check digits are too few to hide behind a salt stored next to them (issue 11, "The look").

A session reads the previous visit once per patient (`Visits.since`) and keeps it for the
rest of the session, so sorting, paging and «Oppdater» keep the same documents marked; each
fetch from the hub records the new time, which the next session compares with. A first visit
marks nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import MutableMapping
from datetime import UTC, date, datetime
from pathlib import Path

__all__ = ["VisitStore", "Visits", "arrived_after"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS visit (key TEXT PRIMARY KEY, at TEXT NOT NULL)"


def _moment(value: str) -> datetime | None:
    text = value.strip()
    if not text:
        return None
    try:
        if len(text) <= 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def arrived_after(arrived: str, since: datetime | None) -> bool:
    """True when a document that became available at `arrived` (ISO) is newer than `since`.

    A first visit (`since` None) marks nothing; a date without a time counts from its start,
    so a document dated the day of the last visit is not marked (we cannot tell).
    """
    moment = _moment(arrived)
    if since is None or moment is None:
        return False
    if len(arrived.strip()) <= 10:
        return moment.date() > since.astimezone(UTC).date()
    return moment > since


class VisitStore:
    """The last-overview times, keyed by a keyed hash of (user, patient)."""

    def __init__(self, path: Path, secret: str) -> None:
        self._path = path
        self._key = hmac.new(secret.encode(), b"onerecord-portal-visits", hashlib.sha256).digest()
        self._ready = False

    def key(self, user: str, patient: str) -> str:
        """The row key of `user` looking at `patient`: no number can be read back from it."""
        message = f"{user}\x1f{patient}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, timeout=5.0)
        # A visit time lost in a power cut costs a «Ny» mark, not data: no fsync per commit.
        db.execute("PRAGMA synchronous=NORMAL")
        if not self._ready:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            self._ready = True
        return db

    def swap(self, key: str, at: datetime) -> datetime | None:
        """Record `at` as the last visit of `key`; return the one before (None: the first)."""
        db = self._connect()
        try:
            with db:
                row = db.execute("SELECT at FROM visit WHERE key = ?", (key,)).fetchone()
                db.execute(
                    "INSERT INTO visit (key, at) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET at = excluded.at",
                    (key, at.astimezone(UTC).isoformat()),
                )
        finally:
            db.close()
        return _moment(str(row[0])) if row else None

    def set(self, key: str, at: datetime) -> None:
        """Set the last visit of `key` (tests and tools)."""
        self.swap(key, at)


class Visits:
    """The visit store as the routes use it, off the event loop."""

    def __init__(self, store: VisitStore) -> None:
        self.store = store

    async def since(
        self, seen: MutableMapping[str, datetime | None], *, user: str, patient: str
    ) -> datetime | None:
        """Record a visit now; return the last visit before this session (kept in `seen`)."""
        key = self.store.key(user, patient)
        previous = await asyncio.to_thread(self.store.swap, key, datetime.now(UTC))
        if key not in seen:
            seen[key] = previous
        return seen[key]
