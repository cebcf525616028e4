"""The citizen's GP pages against the real demo network (portal, STS, dialogue service).

- Property: no field a browser can post to a GP form (with a valid CSRF token, so the
  parsers behind it run) makes the portal answer 5xx, and a refused form stores nothing.
- The portal checks the acknowledgement and the photo before anything reaches the service:
  an e-consultation without the tick, or with a file that is not a photo, is answered 400 and
  the office's inbox is unchanged; a form without a CSRF token is refused (403).

On the worker's shared demo network (docs/testing.md "Shared network"): counts are compared
before and after (the elderly's inbox, the giver's requests, the mails' ids), the giver's
renewal is handled and the adult's flu vaccine cancelled in a `finally`; the messages sent
stay, as access-log entries do.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.browser.gp_office import GpOfficeDesk
from tests.network.conftest import Network
from tests.portals.pages import csrf_token, login_through_sts

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]
GP = "/innbygger/fastlege"
FORMS = (
    f"{GP}/e-konsultasjon",
    f"{GP}/kontakt",
    f"{GP}/resept",
    f"{GP}/timer",
    f"{GP}/timer/avbestill",
    f"{GP}/meldinger/x/svar",
    f"{GP}/influensavaksine",
    f"{GP}/influensavaksine/avbestill",
)
FIELDS = ("tekst", "gebyr", "legemiddel", "merknad", "time", "avtale", "siste", "x")
_values = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.sampled_from(["", "ja", "nei", "\x00", "x" * 5000, "../../etc", "slot-1", "med-1"]),
)


@pytest.fixture(scope="module")
def citizen(network: Network, portal_url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False)
    adult = network.manifest["patients"]["elderly"]
    login_through_sts(client, portal_url, "innbygger", adult)
    page = client.get(GP)
    assert page.status_code == 200, page.text[-2000:]
    return client, csrf_token(page)


def _inbox(network: Network, patient: str) -> int:
    desk = GpOfficeDesk.of(network.manifest, patient)
    return len(desk.get("Communication", patient=patient))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.sampled_from(FORMS),
    st.dictionaries(st.sampled_from(FIELDS), _values, max_size=5),
)
def test_no_gp_form_answers_5xx(
    citizen: tuple[httpx.Client, str], form: str, fields: dict[str, str]
) -> None:
    client, token = citizen
    answer = client.post(form, data={**fields, "csrf_token": token})
    assert answer.status_code < 500, (form, fields, answer.text[-1500:])


def test_the_portal_refuses_what_it_must_check_first(
    network: Network, citizen: tuple[httpx.Client, str]
) -> None:
    client, token = citizen
    patient = network.manifest["patients"]["elderly"]
    before = _inbox(network, patient)
    no_tick = client.post(f"{GP}/e-konsultasjon", data={"csrf_token": token, "tekst": "Hoste"})
    assert no_tick.status_code == 400
    assert "Kryss av for at du har forstått pris og svartid" in no_tick.text
    not_a_photo = client.post(
        f"{GP}/e-konsultasjon",
        data={"csrf_token": token, "tekst": "Se bildet", "gebyr": "ja"},
        files={"bilde": ("arm.jpg", b"%PDF-1.7 this is no photo", "image/jpeg")},
    )
    assert not_a_photo.status_code == 400
    assert "Velg bildene på nytt" in not_a_photo.text
    four = client.post(
        f"{GP}/e-konsultasjon",
        data={"csrf_token": token, "tekst": "Se bildene", "gebyr": "ja"},
        files=[("bilde", (f"{n}.jpg", b"\xff\xd8\xff", "image/jpeg")) for n in range(4)],
    )
    assert four.status_code == 400
    without_csrf = client.post(f"{GP}/kontakt", data={"tekst": "Hei"})
    assert without_csrf.status_code == 403
    assert _inbox(network, patient) == before
    sent = client.post(f"{GP}/kontakt", data={"csrf_token": token, "tekst": "Ny adresse."})
    assert sent.status_code == 303 and re.search(
        r"/meldinger/[A-Za-z0-9.-]+$", sent.headers["location"]
    )
    assert _inbox(network, patient) == before + 1


@pytest.mark.parametrize(("who", "status"), [("teen14", 403), ("teen17", 200)])
def test_a_young_person_uses_the_gp_pages_on_their_own_from_16(
    network: Network, portal_url: str, who: str, status: int
) -> None:
    with httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False) as client:
        login_through_sts(client, portal_url, "innbygger", network.manifest["patients"][who])
        page = client.get(GP)
        assert page.status_code == status, page.text[-1500:]
        if status == 403:
            assert "Du kan ikke bruke fastlegetjenestene her ennå." in page.text
            assert "Fra 16 år bruker du tjenestene selv." in page.text
        else:
            assert "Fastlegen din" in page.text and "116 117" in page.text


def test_a_proxy_uses_the_gp_pages_for_the_giver(network: Network, portal_url: str) -> None:
    patients = network.manifest["patients"]
    with httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False) as client:
        login_through_sts(client, portal_url, "innbygger", patients["proxy_holder"])
        people = client.get("/innbygger/representasjon")
        chosen = client.post(
            "/innbygger/representasjon",
            data={"csrf_token": csrf_token(people), "person": patients["proxy_giver"]},
        )
        assert chosen.status_code == 303
        page = client.get(GP)
        assert page.status_code == 200, page.text[-1500:]
        assert "<h1>Fastlegen til " in page.text
        renewal = client.get(f"{GP}/resept")
        medication = re.search(r'name="legemiddel" value="([^"]+)"', renewal.text)
        assert medication is not None
        giver = patients["proxy_giver"]
        desk = GpOfficeDesk.of(network.manifest, giver)
        before = {t["id"] for t in desk.get("Task", patient=giver)}
        try:
            sent = client.post(
                f"{GP}/resept",
                data={"csrf_token": csrf_token(renewal), "legemiddel": medication.group(1)},
            )
            assert sent.status_code == 303
            asked = [t for t in desk.get("Task", patient=giver) if t["id"] not in before]
            assert [t["status"] for t in asked] == ["requested"]
        finally:
            desk.handle_renewals(giver, renewed=False, reason="Closed by the test's clean-up")


def test_a_parent_of_a_child_of_13_is_told_what_they_do_on_every_page(
    network: Network, portal_url: str
) -> None:
    """Issue 15: for a child of 12–15 (GP services only) every GP page's banner says that the
    parent books and renews for the child and does not see the child's record or messages,
    never «Du ser dokumentene til …»; the menu and the record's pages stay the parent's own."""
    patients = network.manifest["patients"]
    parent, child = patients["parent"], patients["child13"]
    with httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False) as client:
        login_through_sts(client, portal_url, "innbygger", parent)
        people = client.get("/innbygger/representasjon")
        chosen = client.post(
            "/innbygger/representasjon",
            data={"csrf_token": csrf_token(people), "person": child, "for": "fastlege"},
        )
        assert chosen.headers["location"] == GP
        home = client.get(GP)
        named = re.search(r"<h1>Fastlegen til ([^<]+)</h1>", home.text)
        assert named is not None, home.text[-1500:]
        name = named.group(1)
        said = (
            f"Du bestiller timer og fornyer resepter for {name} (barn). "
            f"Journalen og meldingene til {name} ser du ikke."
        )
        for path in ("", "/e-konsultasjon", "/kontakt", "/meldinger", "/meldinger/x", "/resept",
                     "/timer"):  # fmt: skip
            page = client.get(f"{GP}{path}")
            assert page.status_code in (200, 403), (path, page.status_code)
            assert said in page.text, path
            assert "Du ser dokumentene til" not in page.text, path
            assert f"Dokumentene til {name}" not in page.text, path
            assert ">Mine dokumenter</a>" in page.text, path
        for path in ("/meldinger", "/meldinger/x"):  # the child's messages are not the parent's
            assert client.get(f"{GP}{path}").status_code == 403
        # The record's pages stay the parent's own, and say so.
        for path in ("/innbygger/dokumenter", "/innbygger/tilgangslogg", "/innbygger/personvern"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert "Du ser dine egne dokumenter." in page.text, path
            main = page.text[page.text.index('<main id="innhold"') :]
            assert name not in main and "Dokumentene til" not in main, path
        # Back to oneself from a GP page: the GP pages again, about oneself.
        back = client.post(
            "/innbygger/representasjon",
            data={"csrf_token": csrf_token(home), "person": parent, "for": "fastlege"},
        )
        assert back.headers["location"] == GP
        own = client.get(GP)
        assert "Du bruker nå fastlegetjenestene for deg selv." in own.text
        assert "Fastlegesidene gjelder deg selv." in own.text
        assert "<h1>Fastlegen din</h1>" in own.text


def test_a_form_sent_twice_makes_one_message_and_the_answer_is_mailed(
    network: Network, citizen: tuple[httpx.Client, str]
) -> None:
    """Issue 15 through the demo: the portal's form key makes a resent form one message; the
    office's answer reaches the demo's mail sink in the person's language, with no health data."""
    import secrets
    import time
    from pathlib import Path

    from onerecord.demo_mail import read_mails
    from onerecord.synth.dataset import load_population
    from onerecord.synth.demographics import contact_details

    client, token = citizen
    patient = network.manifest["patients"]["elderly"]
    population = load_population(Path(network.manifest["dataset"]) / "population.json")
    contact = contact_details(population.citizen(patient), population.reference_date)
    assert contact.email is not None
    page = client.get(f"{GP}/kontakt")
    key = re.search(r'name="skjema" value="([^"]+)"', page.text)
    assert key is not None
    before = _inbox(network, patient)
    text = f"Sendt to ganger {secrets.token_hex(3)}"
    form = {"csrf_token": token, "tekst": text, "skjema": key.group(1)}
    first, again = client.post(f"{GP}/kontakt", data=form), client.post(f"{GP}/kontakt", data=form)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert _inbox(network, patient) == before + 1

    folder = Path(network.manifest["mail"]["folder"])

    def answers() -> list[Any]:
        return [
            m
            for m in read_mails(folder)
            if m["To"] == contact.email and m["Message-ID"].startswith("<answer-")
        ]

    # Another module's answer to this person may have been mailed already: only a new one counts.
    earlier = {m["Message-ID"] for m in answers()}
    GpOfficeDesk.of(network.manifest, patient).answer_latest(patient, "Ta med Metformin-esken")
    deadline = time.monotonic() + 20
    while True:
        mails = [m for m in answers() if m["Message-ID"] not in earlier]
        if mails or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert mails, "the answer's notice never reached the mail sink"
    (mail,) = mails
    assert mail["Content-Language"] == contact.language
    body = f"{mail['Subject']}\n{mail.get_content()}"
    assert text not in body and "Metformin" not in body
    assert not re.search(r"\d{11}", body)


def test_the_demo_adult_books_and_cancels_a_flu_vaccine_the_office_sees(
    network: Network, portal_url: str
) -> None:
    """The demo's vaccination days at the adult's GP office, booked through the portal's forms;
    the office sees the booking as a flu vaccine (SNOMED CT 86198006) over its FHIR API."""
    adult = network.manifest["patients"]["adult"]
    desk = GpOfficeDesk.of(network.manifest, adult)
    before = desk.appointments(adult)
    try:
        with httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False) as client:
            login_through_sts(client, portal_url, "innbygger", adult)
            assert "Bestill influensavaksine" in client.get(GP).text
            page = client.get(f"{GP}/influensavaksine")
            assert page.status_code == 200 and "Vaksinering " in page.text
            slot = re.search(r'name="time" value="([^"]+)"', page.text)
            assert slot is not None
            booked = client.post(
                f"{GP}/influensavaksine",
                data={"csrf_token": csrf_token(page), "time": slot.group(1)},
            )
            assert booked.status_code == 303
            at_office = [
                a
                for a in desk.get("Appointment", organization=desk.office)
                if a["slot"] == [{"reference": f"Slot/{slot.group(1)}"}]
            ]
            assert len(at_office) == 1
            codes = {c["code"] for s in at_office[0]["serviceType"] for c in s["coding"]}
            assert {"flu-vaccine", "86198006"} <= codes
            page = client.get(f"{GP}/influensavaksine")
            appointment = re.search(r'name="avtale" value="([^"]+)"', page.text)
            assert appointment is not None and appointment.group(1) == at_office[0]["id"]
            cancelled = client.post(
                f"{GP}/influensavaksine/avbestill",
                data={"csrf_token": csrf_token(page), "avtale": appointment.group(1)},
            )
            assert cancelled.status_code == 303
            assert all(
                a["id"] != appointment.group(1)
                for a in desk.get("Appointment", organization=desk.office)
            )
    finally:
        desk.cancel_bookings_since(adult, before)  # put back if the test stopped half-way
