"""The demo's mail sink: a local SMTP server (aiosmtpd) that keeps every mail as a file.

`onerecord demo` starts it on a free loopback port and points the portals at it, so that the
e-mail a citizen gets when health personnel use emergency access (issue 11, defect 7) can be
read in WORKDIR/mail/ (one `.eml` file per mail, RFC 5322 as received), and so can the
dialogue service's notices (dialogue.notify). Nothing leaves the machine: the sink accepts mail
for any address and delivers none. The tests use the same sink.

A mail whose Message-ID the folder already holds is accepted and dropped, as a mailbox that
collapses duplicates would: a sender that resends after a crash (with the same Message-ID, as
dialogue.notify does) is delivered once.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MailSink", "read_mails"]


class _Keep:
    """aiosmtpd handler: write each message to the folder, then accept it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        data = content if isinstance(content, bytes) else content.encode()
        message_id = BytesHeaderParser().parsebytes(data).get("Message-ID", "")
        with self._lock:
            if message_id:
                seen = self.folder / f".{hashlib.sha256(message_id.encode()).hexdigest()}.id"
                if seen.exists():
                    return "250 Message accepted (a duplicate Message-ID, dropped)"
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(self._numbers):04d}.eml"
            temporary = self.folder / f".{name}.tmp"
            temporary.write_bytes(data)
            temporary.replace(self.folder / name)
            if message_id:
                seen.touch()
        return "250 Message accepted for delivery"


class MailSink:
    """A local SMTP server keeping mails in `folder`; `start` / `stop` (a thread of its own)."""

    def __init__(self, folder: Path, *, port: int, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.host = host
        self.port = port
        folder.mkdir(parents=True, exist_ok=True)
        self._controller: Any = Controller(_Keep(folder), hostname=host, port=port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def mails(self) -> list[EmailMessage]:
        return read_mails(self.folder)


def read_mails(folder: Path) -> list[EmailMessage]:
    """Return the mails kept in `folder`, oldest first."""
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found
