"""Issue 15, through a real dialogue server on 127.0.0.1 whose SMTP server does not answer:

- a notice that finally fails (its attempts spent) is shown on the office's work list, on the
  thread's or the renewal's Task (extension `notice-failed` with the time) and in the office's
  list of them (`Organization/{orgnr}/$failed-notices`), so the office can call the person;
  the patient's side does not see it; no log line names the address or the person;
- an `Idempotency-Key` names what it made for its retention only (here the default 24 h, moved
  with the development clock, `POST /dev/clock`): reused within it the first result comes back,
  reused after it a new resource is made; the service purges the expired keys on its schedule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select

from onerecord.dialogue import schema
from onerecord.dialogue.contacts import ContactDetails, StaticContacts
from onerecord.dialogue.database import make_engine
from onerecord.dialogue.fhir import NOTICE_FAILED_EXTENSION
from onerecord.dialogue.store import SqlDialogueStore
from tests.dialogue.harness import (
    ADULT,
    ORG,
    OTHER_DOCTOR,
    OTHER_ORG,
    START,
    Dialogue,
    communication,
    running_dialogue,
)
from tests.dialogue.test_api import _handling, _renewal
from tests.dialogue.test_notify_api import _post
from tests.support.servers import free_port

ADULT_MAIL = "ragnhild.nilsen.602@innbygger.example"
HOUR = 3600


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("dialogue") / "dialogue.db"
    with running_dialogue(
        f"sqlite:///{path}",
        None,
        contacts=StaticContacts({ADULT: ContactDetails(ADULT_MAIL, "40443516", "nb")}),
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nothing listens: every attempt is refused
        smtp_timeout_s=2.0,
        notify_attempts=2,
        notify_backoff_s=0.1,
        notify_poll_s=0.1,
        idempotency_purge_s=0.2,
        dev_mode=True,
        dev_clock=True,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _clock_at_start(dialogue: Dialogue) -> Iterator[None]:
    dialogue.clock.now = START
    yield
    dialogue.client.post(f"{dialogue.url}/dev/clock", json={"offset_seconds": 0})


def _outbox_row(dialogue: Dialogue, ident: str) -> Any:
    async def read() -> list[Any]:
        engine = make_engine(dialogue.db_url)
        try:
            return list(await SqlDialogueStore(engine).notifications())
        finally:
            await engine.dispose()

    deadline = time.monotonic() + 20
    while True:
        row = next(n for n in asyncio.run(read()) if n.id == ident)
        if row.status not in ("pending", "sending") or time.monotonic() > deadline:
            return row
        # The harness clock stands still: move it past the back-off of the next attempt.
        dialogue.clock.now += timedelta(seconds=1)
        time.sleep(0.05)


def _keys(dialogue: Dialogue) -> int:
    async def count() -> int:
        engine = make_engine(dialogue.db_url)
        try:
            async with engine.connect() as conn:
                statement = select(func.count()).select_from(schema.idempotency)
                return int((await conn.execute(statement)).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _failed_at(task: dict[str, Any]) -> str | None:
    found = [e for e in task.get("extension", []) if e["url"] == NOTICE_FAILED_EXTENSION]
    return found[0]["valueDateTime"] if found else None


def test_a_failed_notice_is_shown_on_the_work_list_never_with_the_address(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    with structlog.testing.capture_logs() as logs:
        thread = dialogue.post(me, "Communication", communication(ADULT, "Vondt i kneet"))
        assert thread.status_code == 201, thread.text
        answer = dialogue.post(gp, "Communication", communication(
            None, "Kom innom", category=None, fee=None, in_response_to=thread.json()["id"]
        ))  # fmt: skip
        assert answer.status_code == 201, answer.text
        [med, *_] = dialogue.entries(me, "MedicationRequest", patient=ADULT)
        renewal = dialogue.post(me, "Task", _renewal(ADULT, med["id"]))
        refused = dialogue.post(
            gp, f"Task/{renewal.json()['id']}/$handle", _handling("rejected", "Time først")
        )
        assert refused.status_code == 200, refused.text
        answered = _outbox_row(dialogue, f"answer-{answer.json()['id']}")
        handled = _outbox_row(dialogue, f"renewal-handled-{renewal.json()['id']}")
    for row in (answered, handled):
        assert (row.status, row.attempts, row.last_error) == (
            "failed", 2, "ConnectionRefusedError"
        ), row  # fmt: skip
        assert row.failed_at is not None
    # The office's work list (done rows: the answer and the refusal completed them).
    done = dialogue.entries(gp, "Task", organization=ORG, status="completed,rejected")
    by_focus = {t.get("focus", {}).get("reference"): t for t in done}
    thread_task = by_focus[f"Communication/{thread.json()['id']}"]
    renewal_task = by_focus[f"MedicationRequest/{med['id']}"]
    assert _failed_at(thread_task) == answered.failed_at.isoformat().replace("+00:00", "Z")
    assert _failed_at(renewal_task) is not None
    # One request read by the office says it too; the patient's side does not see it.
    one = dialogue.get(gp, f"Task/{renewal_task['id']}")
    assert _failed_at(one.json()) is not None
    mine = dialogue.entries(me, "Task", patient=ADULT)
    assert all(_failed_at(t) is None for t in mine)
    # A request whose notice went out or is still pending shows nothing.
    assert all(
        _failed_at(t) is None
        for t in done
        if t["id"] not in (thread_task["id"], renewal_task["id"])
    )
    # The office's list of them (the work list's box), the latest failure first; staff of
    # another office and the patient's side are refused.
    listed = dialogue.get(gp, f"Organization/{ORG}/$failed-notices")
    assert listed.status_code == 200, listed.text
    tasks = [e["resource"] for e in listed.json().get("entry", [])]
    assert {t["id"] for t in tasks} == {renewal_task["id"], thread_task["id"]}
    times = [_failed_at(t) for t in tasks]
    assert None not in times and times == sorted(times, reverse=True)  # type: ignore[type-var]
    assert dialogue.get(me, f"Organization/{ORG}/$failed-notices").status_code == 403
    elsewhere = dialogue.staff(OTHER_DOCTOR, office=OTHER_ORG)
    assert dialogue.get(elsewhere, f"Organization/{ORG}/$failed-notices").status_code == 403
    assert dialogue.get(gp, "Organization/12345/$failed-notices").status_code == 400
    # The failure was logged by the notice's id, never with the address or the person.
    failed = [e for e in logs if e["event"] == "notify.failed"]
    assert {e["notification"] for e in failed} == {answered.id, handled.id}
    for entry in logs:
        said = repr(entry)
        assert ADULT_MAIL not in said and ADULT not in said, entry


def test_a_key_reused_within_its_retention_returns_the_first_and_after_it_makes_a_new_one(
    dialogue: Dialogue,
) -> None:
    me = dialogue.citizen(ADULT)
    clock = f"{dialogue.url}/dev/clock"
    body = communication(ADULT, "Samme skjema", category="contact-office", fee=None)
    first = _post(dialogue, me, "Communication", body, "retention-key-0001")
    assert first.status_code == 201, first.text
    # 23 hours on: within the 24 h retention, the same key gives back the first message.
    assert dialogue.client.post(clock, json={"offset_seconds": 23 * HOUR}).status_code == 200
    within = _post(dialogue, me, "Communication", body, "retention-key-0001")
    assert within.status_code == 201 and within.json()["id"] == first.json()["id"]
    # 25 hours on: the key has expired; the same request makes a new message, which the key
    # now names.
    assert dialogue.client.post(clock, json={"offset_seconds": 25 * HOUR}).status_code == 200
    after = _post(dialogue, me, "Communication", body, "retention-key-0001")
    assert after.status_code == 201, after.text
    assert after.json()["id"] != first.json()["id"]
    again = _post(dialogue, me, "Communication", body, "retention-key-0001")
    assert again.json()["id"] == after.json()["id"]
    # After the expiry even another body under the old key is a new creation, not a 409.
    assert dialogue.client.post(clock, json={"offset_seconds": 50 * HOUR}).status_code == 200
    other = communication(ADULT, "Noe annet", category="contact-office", fee=None)
    changed = _post(dialogue, me, "Communication", other, "retention-key-0001")
    assert changed.status_code == 201 and changed.json()["id"] != after.json()["id"]


def test_the_service_purges_expired_keys_on_its_schedule(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    body = communication(ADULT, "Rydd nøkler", category="contact-office", fee=None)
    assert _post(dialogue, me, "Communication", body, "purge-key-00001").status_code == 201
    assert _post(dialogue, me, "Communication", body, "purge-key-00002").status_code == 201
    held = _keys(dialogue)
    assert held >= 2
    # Within the retention the purge (every 0.2 s here) keeps them.
    dialogue.client.post(f"{dialogue.url}/dev/clock", json={"offset_seconds": 23 * HOUR})
    time.sleep(1.0)
    assert _keys(dialogue) == held
    # Past it (the dev clock moved beyond every key of this module) they are deleted.
    dialogue.client.post(f"{dialogue.url}/dev/clock", json={"offset_seconds": 400 * 24 * HOUR})
    deadline = time.monotonic() + 20
    while _keys(dialogue) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _keys(dialogue) == 0
