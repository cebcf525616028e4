"""The work list's reading of the dialogue service's answers: any answer ends in a value or a
portal error, never an exception the error pages do not know (hypothesis over JSON and status).

The dialogue service is outside input to the portal; a transport fake (httpx.MockTransport)
stands in for it here, answering each call with generated JSON — the real service is used in
tests/browser/test_clinic_worklist.py and tests/dialogue/test_clinic_access_log.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.portals.clinic_gateway import ClinicRefused, DialogueClient, InboxRow, thread_rows
from onerecord.portals.errors import PortalError
from onerecord.search_client import HubSession
from onerecord.trust.keys import SigningKey

_KEY = SigningKey.generate(kid="dpop-test")
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_KEYS = st.sampled_from(
    [
        "resourceType",
        "entry",
        "resource",
        "id",
        "link",
        "relation",
        "url",
        "total",
        "extension",
        "valueBoolean",
        "valueId",
        "code",
        "coding",
        "system",
        "status",
        "for",
        "identifier",
        "value",
        "authoredOn",
        "restriction",
        "period",
        "end",
        "focus",
        "reference",
        "note",
        "text",
        "statusReason",
        "sender",
        "display",
        "payload",
        "contentString",
        "sent",
        "subject",
        "category",
        "start",
        "serviceType",
        "participant",
        "actor",
        "comment",
        "providedBy",
        "notAvailable",
        "description",
        "type",
        "active",
        "issue",
        "diagnostics",
        "medicationCodeableConcept",
        "dosageInstruction",
    ]
)
_JSON = st.recursive(
    _SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_KEYS, kids, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_rows_from_any_json(value: Any) -> None:
    if isinstance(value, dict):
        InboxRow.from_task(value)
    if isinstance(value, list):
        thread_rows([v for v in value if isinstance(v, dict)])


def _client(status: int, body: bytes) -> DialogueClient:
    transport = httpx.MockTransport(lambda _request: httpx.Response(status, content=body))
    http = httpx.AsyncClient(transport=transport)
    return DialogueClient(http, "https://dialogue.test/fhir", HubSession("t", _KEY), 5.0)


async def _every_call(client: DialogueClient) -> None:
    calls = [
        client.inbox("974600013", kind=None, status="requested", count=25, cursor=None),
        client.task("t1"),
        client.thread("974600013", "m1"),
        client.medication_name("01010012345", "med"),
        client.free_slots("974600013"),
        client.appointments("974600013"),
        client.office("974600013"),
        client.answer("m1", "svar"),
        client.close("t1"),
        client.handle("t1", renewed=False, reason="nei"),
        client.move("a1", "s1"),
    ]
    for call in calls:
        try:
            await call
        except (ClinicRefused, PortalError):
            pass


@settings(max_examples=150, deadline=None)
@given(
    status=st.sampled_from([200, 201, 400, 401, 403, 404, 409, 500, 502]),
    body=_JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40),
)
def test_any_answer_is_a_value_or_a_portal_error(status: int, body: bytes) -> None:
    async def run() -> None:
        client = _client(status, body)
        try:
            await _every_call(client)
        finally:
            await client.http.aclose()

    asyncio.run(run())


def test_a_failed_notice_is_read_from_the_task_and_nothing_else_is() -> None:
    """The work list's row says when the notice about it failed (extension `notice-failed`)."""
    from datetime import UTC, datetime

    overdue = {"url": "urn:onerecord:dialogue:overdue", "valueBoolean": False}
    when = "2026-12-03T10:15:00Z"
    failed = {"url": "urn:onerecord:dialogue:notice-failed", "valueDateTime": when}
    row = InboxRow.from_task({"id": "t1", "extension": [overdue, failed]})
    assert row.notice_failed == datetime(2026, 12, 3, 10, 15, tzinfo=UTC)
    assert not row.overdue
    assert InboxRow.from_task({"id": "t1", "extension": [overdue]}).notice_failed is None
    for value in ("not a time", "2026-12-03T10:15:00", 7, None, ["x"]):
        bad = {"url": "urn:onerecord:dialogue:notice-failed", "valueDateTime": value}
        assert InboxRow.from_task({"id": "t1", "extension": [bad]}).notice_failed is None
