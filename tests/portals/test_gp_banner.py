"""The banner of the GP pages says what the citizen does there, never "documents" (issue 15).

A parent acting for a child of 12–15 (the STS's `onerecord:representation_dialogue`: the GP
services only) read «Du ser dokumentene til …» on every GP page, as if they had the child's
record. Now the GP pages say that the citizen uses the GP services for the person, for such a
child that they book and renew only and do not see the child's record or messages, and the
menu's documents link stays the citizen's own. Each GP template rendered in nb, nn and en.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from onerecord.portals.citizen_routes import CITIZEN_BASE, CITIZEN_PAGES
from onerecord.portals.citizen_view import Person
from onerecord.portals.i18n import LANGUAGES, Translator
from onerecord.portals.sessions import PortalSession
from onerecord.portals.web import make_templates

PARENT = Person("01017012345", "Per Forelder", "self")
CHILD13 = Person("01011312345", "Tia Tenåring", "parent")
CHILD9 = Person("01011712345", "Ola Liten", "parent")


def _session(acting_for: Person | None) -> PortalSession:
    session = PortalSession(id="s", csrf_token="c" * 32, last_seen=0.0, role="citizen")
    session.citizen_nin, session.user_name = PARENT.nin, PARENT.name
    session.acting_for = None if acting_for is None else acting_for.nin
    session.representations = ({"nin": CHILD9.nin, "name": CHILD9.name, "relation": "parent"},)
    session.dialogue_representations = (
        {"nin": CHILD13.nin, "name": CHILD13.name, "relation": "parent"},
    )
    return session


def _banner_and_menu(language: str, person: Person, *, record: bool) -> tuple[str, str]:
    """The GP refusal page (every GP page shares its frame) rendered as the route does."""
    env = make_templates()
    env.globals["static_url"] = lambda name: f"/static/{name}"
    env.globals["page_time"] = lambda: datetime(2026, 12, 3, tzinfo=UTC)
    context: dict[str, Any] = {
        "session": _session(None if person.is_self else person),
        "t": Translator(language),
        "lang": language,
        "languages": LANGUAGES,
        "here": "/innbygger/fastlege",
        "notice": None,
        "acting": person,
        "gp_record": record,
        "record_person": person if record else PARENT,
        "nav": CITIZEN_PAGES,
        "active": "fastlege",
        "gp_nav": (),
        "gp_active": "",
        "gp_base": f"{CITIZEN_BASE}/fastlege",
        "base": CITIZEN_BASE,
        "reason": "service-not-for-parent-of-12-15",
    }
    html = env.get_template("citizen/gp_refused.html").render(**context)
    banner = re.search(r'<div class="acting[^"]*">(.*?)</div>', html, re.S)
    menu = re.search(r'<nav class="citizen-nav".*?</nav>', html, re.S)
    assert banner is not None and menu is not None
    return banner.group(1), menu.group(0)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_child_of_12_15_is_said_booked_for_not_read(language: str) -> None:
    t = Translator(language)
    banner, menu = _banner_and_menu(language, CHILD13, record=False)
    said = t("citizen.acting.gp-only", name=CHILD13.name, relation=t("citizen.relation.parent"))
    assert said in banner
    assert re.search(r"dokument|document", banner, re.I) is None
    # The record (journalen) is named only to say it is not theirs.
    assert {"nb": "ser du ikke", "nn": "ser du ikkje", "en": "do not see"}[language] in banner
    # The way back keeps the citizen on the GP pages.
    assert 'name="for" value="fastlege"' in banner
    assert t("citizen.acting.gp-back") in banner
    # The menu's documents link is the citizen's own, not the child's.
    assert CHILD13.name not in menu
    assert t("citizen.nav.documents") in menu


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_child_under_12_on_the_gp_pages_is_said_served_not_read(language: str) -> None:
    t = Translator(language)
    banner, menu = _banner_and_menu(language, CHILD9, record=True)
    said = t("citizen.acting.gp-other", name=CHILD9.name, relation=t("citizen.relation.parent"))
    assert said in banner
    assert re.search(r"dokument|document", banner, re.I) is None
    # The record's pages are the child's here, so the menu names the child.
    assert t("citizen.nav.documents-other", name=CHILD9.name) in menu


@pytest.mark.parametrize("language", LANGUAGES)
def test_oneself_on_the_gp_pages(language: str) -> None:
    t = Translator(language)
    banner, menu = _banner_and_menu(language, PARENT, record=True)
    assert t("citizen.acting.gp-self") in banner
    assert re.search(r"dokument|document", banner, re.I) is None
    assert t("citizen.acting.change") in banner
    assert t("citizen.nav.documents") in menu
