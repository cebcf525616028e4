"""What the dialogue service owes the citizen by e-mail, and the idempotency of its creations.

A `Notification` is one row of the outbox (dialogue_notification), written in the same
transaction as the event it tells of (an answer, a booking confirmed, moved or cancelled by the
office, a renewal handled), so that an event is never stored without its notice nor a notice
without its event. Its id is derived from the event (`notification_id`): the same event can
never queue two notices, and the mail's Message-ID is derived from it (dialogue.notify).

States: pending → sending → sent; sending → pending (a failed attempt, retried after a
back-off) → … → failed (after the last attempt); pending → no-address (the contact register
gives no e-mail: under 16, a protected address, none registered).

An `IdempotencyClaim` is written in the creating transaction too: the caller's
`Idempotency-Key` (scoped by who they are and what they create) names the one resource the
first request made, so a client that resends after a lost answer is given that resource. A
key is kept for a retention (24 h by default, `DialogueSettings.idempotency_retention_s`):
after it the key is free again, and expired keys are purged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "IdempotencyClaim",
    "IdempotentResult",
    "Notification",
    "NotificationKind",
    "NotificationStatus",
    "idempotency_key",
    "notification_id",
]


class NotificationKind(StrEnum):
    """What happened that the person should come and read (never what it says)."""

    ANSWER = "answer"
    RENEWAL_HANDLED = "renewal-handled"
    BOOKING_CONFIRMED = "booking-confirmed"
    BOOKING_CHANGED = "booking-changed"
    BOOKING_CANCELLED = "booking-cancelled"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    NO_ADDRESS = "no-address"


def notification_id(kind: NotificationKind, *event: str) -> str:
    """The outbox row's id for one event (kind and the ids that make the event unique)."""
    return "-".join((kind.value, *event))


@dataclass(frozen=True, slots=True)
class Notification:
    """One row of the outbox; `recipient` is the national id the contact register is asked."""

    id: str
    kind: NotificationKind
    recipient: str
    created: datetime
    status: NotificationStatus = NotificationStatus.PENDING
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    request_id: str | None = None
    """The work-list row (thread or request) the notice tells of: shown there if it fails."""
    failed_at: datetime | None = None


def idempotency_key(principal: str, operation: str, client_key: str) -> str:
    """The stored key: a digest of who asks, what they create and the key they sent."""
    return hashlib.sha256(f"{principal}\n{operation}\n{client_key}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """Written with the resource it made: `key` (idempotency_key), the body's digest.

    `expired_before`: a row of the same key stored before this instant has outlived its
    retention; it is replaced rather than answered.
    """

    key: str
    fingerprint: str
    resource: str
    expired_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class IdempotentResult:
    """What an earlier request with the same key made."""

    resource: str
    resource_id: str
    fingerprint: str
