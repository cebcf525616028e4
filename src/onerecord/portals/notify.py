"""Tell the citizen by e-mail that health personnel used emergency access to their record.

Issue 11, defect 7. The notice holds no health information: only that health personnel at an
organisation used emergency access on a date, and that the access log shows it (a link to
/innbygger/tilgangslogg). It goes to the contact address of the population register's Patient
(PDQm `telecom`, none for a protected address: docs/pdqm.md), through SMTP (stdlib `smtplib`).

Delivery never holds up the page and does not lose a notice when the mail server is briefly
away: `notify` writes the notice to an outbox folder (one file per override, fsynced) and hands
it to one sender thread, which tries `attempts` times with doubling pauses, then parks it and
tries again every `park_s` seconds while the portal runs; files left in the outbox are sent at
the next start (`resume`). A file is deleted once the server has accepted the mail. Logs name a
notice only by its override's token `jti` (never the address, the patient or the text).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import structlog

from onerecord.portals.i18n import Translator

__all__ = ["EmergencyNotifier", "OverrideNotice", "SmtpSettings", "compose_notice"]

log = structlog.get_logger("onerecord.portals.notify")

_LANGUAGES = ("nb", "nn", "en")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how notices are sent; `host` None: notices are off."""

    host: str
    port: int
    sender: str
    outbox: Path
    timeout_s: float = 10.0
    starttls: bool = False
    attempts: int = 4
    backoff_s: float = 2.0
    park_s: float = 300.0


@dataclass(frozen=True, slots=True)
class OverrideNotice:
    """One notice: to whom, which organisation, which day, where to read the log.

    `key` is the override's token `jti` (what the logs name); `day` is an ISO date.
    """

    key: str
    to: str
    organisation: str
    day: str
    log_url: str


def compose_notice(notice: OverrideNotice, sender: str) -> EmailMessage:
    """Return the e-mail: the same short text in bokmål, nynorsk and English."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = notice.to
    message["Subject"] = Translator("nb")("notify.subject")
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    parts = []
    for language in _LANGUAGES:
        t = Translator(language)
        parts.append(
            t(
                "notify.body",
                organisation=notice.organisation,
                date=t.date(notice.day, long=True),
                link=notice.log_url,
            )
        )
    message.set_content("\n\n----\n\n".join(parts) + "\n")
    return message


def _file_name(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".json"


class EmergencyNotifier:
    """Queue notices durably and send them from one background thread (see module docstring)."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        settings.outbox.mkdir(parents=True, exist_ok=True)

    # -- the page's side: quick, never waits for the mail server ---------------------------

    def notify(self, notice: OverrideNotice) -> None:
        """Put `notice` in the outbox (durable) and wake the sender; return at once."""
        path = self.settings.outbox / _file_name(notice.key)
        data = json.dumps(asdict(notice), ensure_ascii=False).encode("utf-8")
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(path.with_suffix(".tmp"), path)
        log.info("notice.queued", override=notice.key)
        self._enqueue(path.name)

    def resume(self) -> int:
        """Queue every notice left in the outbox (at start); return how many."""
        names = sorted(p.name for p in self.settings.outbox.glob("*.json"))
        for name in names:
            self._enqueue(name)
        return len(names)

    def pending(self) -> int:
        """How many notices wait in the outbox."""
        return sum(1 for _ in self.settings.outbox.glob("*.json"))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the sender has nothing queued (tests); True when idle in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop the sender; notices not yet sent stay in the outbox for the next start."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _enqueue(self, name: str) -> None:
        with self._lock:
            if self._closed:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="emergency-notices", daemon=True
                )
                self._thread.start()
        self._queue.put(name)

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            name = self._queue.get()
            try:
                if name is None:
                    return
                self._deliver(name)
            finally:
                self._queue.task_done()

    def _deliver(self, name: str) -> None:
        path = self.settings.outbox / name
        try:
            notice = OverrideNotice(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return  # already sent (queued twice)
        except (ValueError, TypeError):
            log.error("notice.unreadable", file=name)
            return
        delay = self.settings.backoff_s
        for attempt in range(1, self.settings.attempts + 1):
            if self._closed:
                return
            try:
                self._send(compose_notice(notice, self.settings.sender))
            except (OSError, smtplib.SMTPException) as exc:
                log.warning(
                    "notice.retry", override=notice.key, attempt=attempt, error=type(exc).__name__
                )
                if attempt < self.settings.attempts:
                    self._sleep(delay)
                    delay *= 2
                continue
            path.unlink(missing_ok=True)
            log.info("notice.sent", override=notice.key, attempt=attempt)
            return
        log.error("notice.parked", override=notice.key, retry_in_s=self.settings.park_s)
        timer = threading.Timer(self.settings.park_s, self._enqueue, args=(name,))
        timer.daemon = True
        timer.start()

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls()
            smtp.send_message(message)
