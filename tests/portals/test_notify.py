"""The citizen's e-mail about emergency access (issue 11, defect 7), through a real SMTP server.

A local aiosmtpd server (onerecord.demo_mail.MailSink) receives the mails; the sender is the
portal's EmergencyNotifier with its outbox in a temporary folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from onerecord.demo_mail import MailSink
from onerecord.demo_nats import free_port
from onerecord.portals.notify import EmergencyNotifier, OverrideNotice, SmtpSettings

ADDRESS = "ingrid.berg.042@innbygger.example"
NOTICE = OverrideNotice(
    key="jti-override-1",
    to=ADDRESS,
    organisation="Akuttmottaket, Testsykehuset HF",
    day="2026-12-02",
    log_url="https://portal.example/innbygger/tilgangslogg",
)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    server = MailSink(tmp_path / "mail", port=free_port()).start()
    try:
        yield server
    finally:
        server.stop()


def _notifier(tmp_path: Path, port: int, **extra: float) -> EmergencyNotifier:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        sender="ikke-svar@onerecord.example",
        outbox=tmp_path / "outbox",
        timeout_s=2.0,
        **extra,  # type: ignore[arg-type]
    )
    return EmergencyNotifier(settings, sleep=lambda _s: None)


def test_the_notice_arrives_and_says_no_more_than_it_must(tmp_path: Path, sink: MailSink) -> None:
    notifier = _notifier(tmp_path, sink.port)
    with capture_logs() as logs:
        notifier.notify(NOTICE)
        assert notifier.wait_idle()
    (mail,) = sink.mails()
    assert mail["To"] == ADDRESS and mail["From"] == "ikke-svar@onerecord.example"
    assert "Nødtilgang" in mail["Subject"]
    body = mail.get_content()
    assert "Helsepersonell ved Akuttmottaket, Testsykehuset HF brukte nødtilgang" in body
    assert "2. desember 2026" in body and "https://portal.example/innbygger/tilgangslogg" in body
    assert "Health personnel at Akuttmottaket" in body  # English too, and nynorsk
    assert "naudtilgang" in body
    # No health information: no document, class, reason or person named.
    for word in ("Epikrise", "bevisstløs", "Ingrid", "Berg"):
        assert word not in body
    assert notifier.pending() == 0
    # The logs name the override only, never the address.
    text = json.dumps(logs, default=str)
    assert ADDRESS not in text and "jti-override-1" in text
    assert [e["event"] for e in logs] == ["notice.queued", "notice.sent"]
    notifier.close()


def test_a_server_briefly_away_gets_the_notice_on_a_later_try(tmp_path: Path) -> None:
    port = free_port()
    sleeps: list[float] = []
    server: list[MailSink] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:  # the server comes back after the second failure
            server.append(MailSink(tmp_path / "mail", port=port).start())

    settings = SmtpSettings(
        host="127.0.0.1", port=port, sender="x@onerecord.example", outbox=tmp_path / "o"
    )
    notifier = EmergencyNotifier(settings, sleep=sleep)
    try:
        with capture_logs() as logs:
            notifier.notify(NOTICE)
            assert notifier.wait_idle()
        assert sleeps == [2.0, 4.0]  # doubling pauses
        assert [e["event"] for e in logs].count("notice.retry") == 2
        assert len(server[0].mails()) == 1 and notifier.pending() == 0
    finally:
        notifier.close()
        for s in server:
            s.stop()


def test_a_server_that_stays_away_keeps_the_notice_for_the_next_start(
    tmp_path: Path, sink: MailSink
) -> None:
    down = free_port()
    notifier = _notifier(tmp_path, down, attempts=2, park_s=3600)
    with capture_logs() as logs:
        notifier.notify(NOTICE)
        assert notifier.wait_idle()
    assert "notice.parked" in [e["event"] for e in logs]
    assert notifier.pending() == 1
    notifier.close()
    # The next start (now with a server that answers) sends what the outbox holds.
    again = _notifier(tmp_path, sink.port)
    assert again.resume() == 1
    assert again.wait_idle()
    assert len(sink.mails()) == 1 and again.pending() == 0
    again.close()


def test_the_outbox_file_is_private(tmp_path: Path) -> None:
    notifier = _notifier(tmp_path, free_port(), attempts=1, park_s=3600)
    notifier.notify(NOTICE)
    notifier.wait_idle()
    (kept,) = (tmp_path / "outbox").glob("*.json")
    assert kept.stat().st_mode & 0o077 == 0
    assert "jti" not in kept.name  # the file name tells nothing either
    notifier.close()
