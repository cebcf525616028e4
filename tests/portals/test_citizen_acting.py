"""Acting for someone, the pages name that person where they said "you" (issue 11, defect 3).

A parent acting for a child (and a proxy for a giver alike: the same `Person`) saw «Mine
dokumenter» in the menu and «Reserverer du deg» on the privacy page. Now the menu says
«Dokumentene til NN», and the privacy page «Reserverer NN seg …», in bokmål, nynorsk and
English; back to oneself, the pages say "you" again. The app over ASGI with the STS and hub
faked (the fixtures of test_citizen_app.py).
"""

from __future__ import annotations

import re

import httpx
import pytest

from onerecord.portals.citizen_view import NAMED_WHEN_ACTING, Person
from onerecord.portals.i18n import LANGUAGES, Translator, catalog
from tests.portals import test_citizen_app
from tests.portals.pages import csrf_token
from tests.portals.test_citizen_app import CHILD11, PARENT, FakeNetwork, log_in

pytestmark = pytest.mark.anyio
fake = test_citizen_app.fake
browser = test_citizen_app.browser

CHILD_NAME = "Terje Pettersen"

# What each language must say of the child, and the "you" it must no longer say.
NAMED = {
    "nb": {
        "dokumenter": (
            f'aria-current="page">Dokumentene til {CHILD_NAME}</a>',
            f"skjuler du et av dokumentene til {CHILD_NAME} for helsepersonell",
        ),
        "personvern": (
            f"<h1>Personvern og sperringer for {CHILD_NAME}</h1>",
            f"på vegne av {CHILD_NAME}",
            f"Reserverer {CHILD_NAME} seg, ser ikke helsepersonell noen av dokumentene til "
            f"{CHILD_NAME}",
            f"{CHILD_NAME} er ikke reservert.",
            f"Skal helsepersonell kunne se dokumentene til {CHILD_NAME}?",
            f"Nei, reserver {CHILD_NAME} mot all deling",
            f"Ingen av dokumentene til {CHILD_NAME} er sperret.",
            f"Ingen helsepersonell er sperret fra dokumentene til {CHILD_NAME}.",
            f"da står det i loggen til {CHILD_NAME}.",
        ),
    },
    "nn": {
        "dokumenter": (
            f'aria-current="page">Dokumenta til {CHILD_NAME}</a>',
            f"skjuler du eit av dokumenta til {CHILD_NAME}",
        ),
        "personvern": (
            f"<h1>Personvern og sperringar for {CHILD_NAME}</h1>",
            f"Reserverer {CHILD_NAME} seg, ser ikkje helsepersonell",
            f"Nei, reserver {CHILD_NAME} mot all deling",
            f"Ingen av dokumenta til {CHILD_NAME} er sperra.",
        ),
    },
    "en": {
        "dokumenter": (
            f'aria-current="page">Documents of {CHILD_NAME}</a>',
            f"you hide one of the documents of {CHILD_NAME} from health personnel",
        ),
        "personvern": (
            f"<h1>Privacy and blocks for {CHILD_NAME}</h1>",
            f"If {CHILD_NAME} opts out, health personnel see none of the documents of {CHILD_NAME}",
            f"{CHILD_NAME} is not reserved.",
            f"No, reserve {CHILD_NAME} against all sharing",
            f"No health personnel are blocked from the documents of {CHILD_NAME}.",
        ),
    },
}
SAID_OF_ONESELF = {
    "nb": (
        ">Mine dokumenter<",
        "Reserverer du deg",
        "dokumentene dine",
        "reserver meg",
        "Du har ikke sperret",
        "Du er ikke reservert",
        "Sperret av deg",
        "Du ser det fortsatt selv",
    ),
    "nn": (">Dokumenta mine<", "Reserverer du deg", "dokumenta dine", "reserver meg"),
    "en": (
        ">My documents<",
        "If you reserve yourself",
        "your documents",
        "reserve me",
        "You have not blocked",
        "You are not reserved",
    ),
}


async def act_for_child(browser: httpx.AsyncClient) -> None:
    back = await log_in(browser)
    assert back.status_code == 303, back.text
    people = await browser.get("/innbygger/representasjon")
    switched = await browser.post(
        "/innbygger/representasjon", data={"csrf_token": csrf_token(people), "person": CHILD11}
    )
    assert switched.status_code == 303


@pytest.mark.parametrize("language", ["nb", "nn", "en"])
async def test_acting_for_a_child_the_pages_name_the_child(
    browser: httpx.AsyncClient, language: str
) -> None:
    await browser.get(f"/sprak/{language}", params={"neste": "/"})
    await act_for_child(browser)
    for path, texts in NAMED[language].items():
        page = await browser.get(f"/innbygger/{path}")
        assert page.status_code == 200, page.text[-2000:]
        for text in texts:
            assert text in page.text, (path, text)
        # The menu names the child on every page, not only on the documents page.
        assert re.search(
            rf">(Dokumentene til|Dokumenta til|Documents of) {CHILD_NAME}</a>", page.text
        )
        for words in SAID_OF_ONESELF[language]:
            assert words not in page.text, (path, words)


async def test_back_to_oneself_the_pages_say_you_again(browser: httpx.AsyncClient) -> None:
    await act_for_child(browser)
    page = await browser.get("/innbygger/personvern")
    assert "Reserverer Terje Pettersen seg" in page.text
    back_form = re.search(
        r'<form method="post" action="/innbygger/representasjon">(.*?)</form>', page.text, re.S
    )
    assert back_form
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', back_form.group(1)))
    assert fields["person"] == PARENT
    assert (await browser.post("/innbygger/representasjon", data=fields)).status_code == 303
    page = await browser.get("/innbygger/personvern")
    assert "Reserverer du deg, ser ikke helsepersonell noen av dokumentene dine" in page.text
    assert 'aria-current="page">Personvern og sperringer</a>' in page.text
    assert ">Mine dokumenter</a>" in page.text and CHILD_NAME not in page.text


async def test_a_document_blocked_for_the_child_is_not_said_blocked_by_you(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.blocked_documents[CHILD11] = {"2.16.578.1.99.3"}
    await act_for_child(browser)
    page = await browser.get("/innbygger/dokumenter")
    assert "Sperret for helsepersonell." in page.text and "Sperret av deg." not in page.text


# --- pure parts -----------------------------------------------------------------------------


def test_every_message_said_of_someone_acted_for_names_them_in_every_language() -> None:
    messages = catalog()
    for key in NAMED_WHEN_ACTING:
        assert key in messages, key
        other = messages[f"{key}-other"]
        assert set(other) == set(LANGUAGES), key
        if key != "citizen.documents.state.blocked":
            assert all("{name}" in text for text in other.values()), key


def test_person_key_names_only_someone_acted_for() -> None:
    me = Person("16908400260", "Guro Pettersen", "self")
    child = Person(CHILD11, CHILD_NAME, "parent")
    giver = Person("21828634825", "Per Giver", "proxy")
    assert me.key("citizen.privacy.intro") == "citizen.privacy.intro"
    assert child.key("citizen.privacy.intro") == "citizen.privacy.intro-other"
    assert giver.key("citizen.nav.documents") == "citizen.nav.documents-other"
    assert child.key("citizen.nav.access-log") == "citizen.nav.access-log"
    t = Translator("nb")
    assert t(giver.key("citizen.nav.documents"), name=giver.name) == "Dokumentene til Per Giver"
    assert t(me.key("citizen.nav.documents"), name=me.name) == "Mine dokumenter"
