"""Tell a person by e-mail that there is something to read: the outbox's sender.

The dialogue service writes a notice into the outbox (dialogue_notification, `outbox`) in the
transaction of the event itself. `NotificationSender` runs beside the service: it takes each due
notice, marks it `sending` (one attempt more, leased for `lease_s`), looks the person up in the
contact register (e-mail and language), sends the mail over SMTP (stdlib `smtplib` in a worker
thread) and marks it `sent` with the time. A failed attempt records the error's class and is
tried again after a doubling pause (`backoff_s`, 2×, 4×, …) until `attempts` are spent
(`failed`, with the time: the office's work list shows it on the thread or request, so the
office can call the person). A person without an e-mail in the register (under 16, protected
address, none registered) is marked `no-address`; nothing is sent.

The mail says only that there is something new to read, and where: no message text, no
medication, no time or place, no national identity number, no office name. It is written in
the language the person chose in the contact register.

Delivered at most once, as far as SMTP allows: each mail's Message-ID is derived from the event
(`<answer-…@domain>`), never random. If the sender dies after the SMTP server accepted a mail
but before `sent` was stored, the notice's lease runs out and it is sent again with the same
Message-ID: the wire sees it twice, a receiver that drops a Message-ID it already holds (the
demo's MailSink does) delivers it once; a receiver that does not would show it twice. That
window is the length of one database write after the SMTP `250`.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import structlog

from onerecord.dialogue.contacts import ContactRegister
from onerecord.dialogue.outbox import Notification, NotificationKind, NotificationStatus
from onerecord.dialogue.store import DialogueStore

__all__ = ["MailSettings", "NotificationSender", "compose"]

log = structlog.get_logger("onerecord.dialogue.notify")

_SUBJECT = {
    "nb": "Du har en ny melding i helseportalen",
    "nn": "Du har ei ny melding i helseportalen",
    "en": "You have something new to read in the health portal",
}
_WHAT: dict[NotificationKind, dict[str, str]] = {
    NotificationKind.ANSWER: {
        "nb": "Legekontoret ditt har svart deg.",
        "nn": "Legekontoret ditt har svart deg.",
        "en": "Your GP office has answered you.",
    },
    NotificationKind.RENEWAL_HANDLED: {
        "nb": "Legekontoret ditt har behandlet en forespørsel fra deg.",
        "nn": "Legekontoret ditt har behandla ein førespurnad frå deg.",
        "en": "Your GP office has dealt with a request from you.",
    },
    NotificationKind.BOOKING_CONFIRMED: {
        "nb": "En timeavtale er bekreftet.",
        "nn": "Ein timeavtale er stadfesta.",
        "en": "An appointment is confirmed.",
    },
    NotificationKind.BOOKING_CHANGED: {
        "nb": "En timeavtale er endret.",
        "nn": "Ein timeavtale er endra.",
        "en": "An appointment has been changed.",
    },
    NotificationKind.BOOKING_CANCELLED: {
        "nb": "En timeavtale er avlyst av legekontoret.",
        "nn": "Ein timeavtale er avlyst av legekontoret.",
        "en": "An appointment has been cancelled by the GP office.",
    },
}
_READ = {
    "nb": "Logg inn for å lese mer: {link}\n\nDenne e-posten kan ikke besvares.",
    "nn": "Logg inn for å lese meir: {link}\n\nDenne e-posten kan ikkje svarast på.",
    "en": "Log in to read more: {link}\n\nThis e-mail cannot be answered.",
}


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Where and how notices are sent."""

    host: str
    port: int
    sender: str
    portal_url: str
    """The page the mail points to (the citizen's GP page in the portal)."""
    timeout_s: float = 10.0
    starttls: bool = False
    attempts: int = 8
    backoff_s: float = 2.0
    poll_s: float = 1.0
    batch: int = 50

    @property
    def lease_s(self) -> float:
        """How long a notice stays `sending` before another sender may take it again."""
        return 3 * self.timeout_s

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2] or "dialogue.onerecord.example"


def compose(
    notice: Notification, *, to: str, language: str, settings: MailSettings, now: datetime
) -> EmailMessage:
    """The e-mail of one notice, in `language` (nb, nn, en; bokmål otherwise)."""
    lang = language if language in _SUBJECT else "nb"
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = _SUBJECT[lang]
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{notice.id}@{settings.domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    message.set_content(
        f"{_WHAT[notice.kind][lang]}\n\n{_READ[lang].format(link=settings.portal_url)}\n"
    )
    message["Content-Language"] = lang  # after set_content, which drops Content-* headers
    return message


def _now() -> datetime:
    return datetime.now(UTC)


class NotificationSender:
    """Send the outbox's due notices (see the module docstring); `run` until cancelled."""

    def __init__(
        self,
        store: DialogueStore,
        contacts: ContactRegister,
        settings: MailSettings,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.contacts = contacts
        self.settings = settings
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A notice was queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Send due notices, then wait for a wake-up or the next poll; until cancelled."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the database away: try again at the next poll
                log.warning("notify.loop_error", error=type(exc).__name__)
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """Try every notice due now; return how many were tried."""
        tried = 0
        for notice in await self.store.due_notifications(self._clock(), self.settings.batch):
            if await self._attempt(notice):
                tried += 1
        return tried

    async def _attempt(self, notice: Notification) -> bool:
        s = self.settings
        now = self._clock()
        lease = now + timedelta(seconds=s.lease_s)
        if not await self.store.claim_notification(notice.id, now=now, lease_until=lease):
            return False
        attempt = notice.attempts + 1
        contact = self.contacts.contact(notice.recipient)
        if contact is None or contact.email is None:
            await self.store.notification_done(notice.id, status=NotificationStatus.NO_ADDRESS)
            log.info("notify.no_address", notification=notice.id)
            return True
        mail = compose(notice, to=contact.email, language=contact.language, settings=s, now=now)
        try:
            await asyncio.to_thread(self._send, mail)
        except (OSError, smtplib.SMTPException) as exc:
            error = type(exc).__name__
            if attempt >= s.attempts:
                # Shown on the work list's row the notice tells of (the office calls instead).
                await self.store.notification_done(
                    notice.id,
                    status=NotificationStatus.FAILED,
                    error=error,
                    failed_at=self._clock(),
                )
                log.error("notify.failed", notification=notice.id, attempt=attempt, error=error)
                return True
            pause = s.backoff_s * 2 ** (attempt - 1)
            await self.store.notification_done(
                notice.id,
                status=NotificationStatus.PENDING,
                error=error,
                next_attempt=self._clock() + timedelta(seconds=pause),
            )
            log.warning(
                "notify.retry", notification=notice.id, attempt=attempt, error=error, pause_s=pause
            )
            return True
        await self.store.notification_done(
            notice.id, status=NotificationStatus.SENT, sent_at=self._clock()
        )
        log.info("notify.sent", notification=notice.id, attempt=attempt)
        return True

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls()
            smtp.send_message(message)
