"""The portal's reading of the dialogue service's answers (dialogue_gateway.py) and the closed
service said in words (citizen_gp_routes.service_sentence).

Whatever the service answers — any JSON, any status — a call ends in a value or in one of the
portal's own errors (the page then says what to do), never in another exception.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.portals.citizen_gp_routes import service_sentence, text_problem
from onerecord.portals.dialogue_gateway import (
    DialogueClient,
    DialogueDeclined,
    DialogueRefused,
    DialogueUnavailable,
    ServiceView,
)
from onerecord.portals.errors import SessionEnded
from onerecord.portals.i18n import Translator
from onerecord.search_client import HubSession
from onerecord.trust.keys import SigningKey

KEY = SigningKey.generate(kid="gp-gateway")
PATIENT = "01928604671"

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["resourceType", "entry", "resource", "id", "payload", "sent", "start", "status", "coding"]
)
_fhirish: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.text(max_size=25)
    | st.sampled_from(
        ["Bundle", "HealthcareService", "Communication", "2026-12-03T10:00:00Z", "Binary/x"]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=25,
)


def _client(status: int, body: Any) -> tuple[DialogueClient, httpx.AsyncClient]:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return DialogueClient(http, HubSession("t", KEY), "http://dialogue.test/fhir"), http


async def _every_call(client: DialogueClient) -> None:
    calls = (
        client.office(PATIENT),
        client.messages(PATIENT),
        client.requests(PATIENT),
        client.medications(PATIENT),
        client.slots(PATIENT),
        client.appointments(PATIENT),
        client.start_thread(PATIENT, "contact-office", "Hei", fee_acknowledged=False),
        client.renew(PATIENT, "med-1", None),
        client.book(PATIENT, "slot-1", None),
        client.cancel("a-1"),
        client.photo("p-1"),
    )
    for call in calls:
        try:
            await call
        except (DialogueUnavailable, DialogueRefused, DialogueDeclined, SessionEnded):
            pass


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from([200, 201, 400, 401, 403, 404, 409, 413, 500, 502]),
    st.one_of(_json, _fhirish),
)
def test_any_answer_is_a_value_or_a_portal_error(status: int, body: Any) -> None:
    async def run() -> None:
        client, http = _client(status, body)
        async with http:
            await _every_call(client)

    asyncio.run(run())


def test_a_bundle_of_services_is_read_with_its_closed_sentence() -> None:
    body = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "HealthcareService",
                    "id": "974600013.e-consultation",
                    "active": True,
                    "providedBy": {
                        "identifier": {"value": "974600013"},
                        "display": "Sentrum legekontor",
                    },
                    "type": [
                        {
                            "coding": [
                                {
                                    "system": "urn:onerecord:dialogue:service",
                                    "code": "e-consultation",
                                }
                            ]
                        }
                    ],
                    "telecom": [{"system": "phone", "value": "22 33 44 55"}],
                    "extension": [
                        {"url": "urn:onerecord:dialogue:gp", "valueString": "Kari Fastlege"}
                    ],
                    "notAvailable": [
                        {
                            "description": "E-konsultasjon er midlertidig stengt …",
                            "during": {
                                "start": "2027-04-14T22:00:00Z",
                                "end": "2027-04-24T22:00:00Z",
                            },
                            "extension": [
                                {
                                    "url": "urn:onerecord:dialogue:substitute",
                                    "valueString": "Dr. Vikar",
                                }
                            ],
                        }
                    ],
                }
            }
        ],
    }

    async def run() -> None:
        client, http = _client(200, body)
        async with http:
            office = await client.office(PATIENT)
        assert office.gp_name == "Kari Fastlege" and office.phone == "22 33 44 55"
        service = office.service("e-consultation")
        assert not service.open and service.substitute == "Dr. Vikar"
        assert service_sentence(Translator("nn"), service) == (
            "E-konsultasjon er mellombels stengd av fastlegen din, og opnar igjen 25. april. "
            "Vikar i mellomtida: Dr. Vikar."
        )
        assert office.service("flu-vaccine").offered is False

    asyncio.run(run())


@pytest.mark.parametrize(
    ("language", "until", "expected"),
    [
        (
            "en",
            datetime(2027, 4, 25, 11, 30, tzinfo=UTC),
            "Appointment booking is temporarily closed by your GP, and opens again on 25 April "
            "at 13:30.",
        ),
        (
            "nn",
            datetime(2027, 1, 4, 7, 0, tzinfo=UTC),
            "Timebestilling er mellombels stengd av fastlegen din, og opnar igjen 4. januar "
            "kl. 08.00.",
        ),
        ("nb", datetime(2027, 1, 4, 7, 0, tzinfo=UTC), "Stengt (setningen fra tjenesten)."),
    ],
)
def test_the_closed_sentence_in_each_language(
    language: str, until: datetime, expected: str
) -> None:
    service = ServiceView("appointment-booking", True, until, "Stengt (setningen fra tjenesten).")
    assert service_sentence(Translator(language), service) == expected


def test_an_e_consultation_needs_text_and_the_acknowledgement() -> None:
    assert text_problem("", "e-consultation", acknowledged=True) == "citizen.gp.write.empty"
    assert text_problem("x" * 4001, "contact-office", acknowledged=False) == (
        "citizen.gp.write.too-long"
    )
    assert text_problem("Hei", "e-consultation", acknowledged=False) == (
        "citizen.gp.econ.ack-missing"
    )
    assert text_problem("Hei", "contact-office", acknowledged=False) is None
    assert text_problem("Hei", "e-consultation", acknowledged=True) is None
