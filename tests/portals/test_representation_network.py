"""Acting for someone else in the citizen portal, in front of the real network.

The cast's proxy holder logs in through the STS page, finds the proxy giver among the people
they may act for, switches to them and sees the giver's documents (the same ones the giver
sees). The parent with a protected address (strengt fortrolig) sees their child of 6 refused
with the protected-address sentence, and a tampered form asking for the child anyway gets 403
with the same sentence and switches nothing.
References: TRUST-FRAMEWORK §5.2 (who may act for whom).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import httpx
import pytest

from onerecord.portals.i18n import Translator
from tests.network.conftest import Network
from tests.portals.pages import csrf_token, login_through_sts

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

NB = Translator("nb")
DOCUMENTS = "/innbygger/dokumenter"
REPRESENTATION = "/innbygger/representasjon"


@pytest.fixture
def browser(portal_url: str) -> Iterator[httpx.Client]:
    """A browser at the portal: cookies kept, redirects followed by hand."""
    with httpx.Client(base_url=portal_url, timeout=30) as client:
        yield client


def main_text(page: httpx.Response) -> str:
    """Return the text of the page's <main>, tags dropped and white space collapsed."""
    match = re.search(r"<main\b[^>]*>(.*?)</main>", page.text, re.S)
    assert match, page.text[:2000]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def acting_line(page: httpx.Response) -> str:
    """Return the text of the line saying whose documents the page shows."""
    match = re.search(r'<div class="acting[^"]*">(.*?)</div>', page.text, re.S)
    assert match, page.text[:2000]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def allowed_people(page: httpx.Response) -> dict[str, str]:
    """Return the people the representation page offers a button for: {nin: name}."""
    people = {}
    for item in re.findall(r"<li>(.*?)</li>", page.text, re.S):
        nin = re.search(r'name="person" value="(\d{11})"', item)
        person = re.search(r'<span class="person">([^<]+) \([^)<]+\)</span>', item)
        if nin and person:
            people[nin.group(1)] = unescape(person.group(1))
    return people


def refused_people(page: httpx.Response) -> dict[str, str]:
    """Return the refused people of the representation page: {name: the sentence after it}."""
    section = re.search(r'<ul class="people refused">(.*?)</ul>', page.text, re.S)
    if section is None:
        return {}
    return {
        unescape(name): " ".join(unescape(sentence).split())
        for name, sentence in re.findall(
            r"<li><strong>([^<]+)</strong> \([^)]*\): (.*?)</li>", section.group(1), re.S
        )
    }


def unique_ids(page: httpx.Response) -> set[str]:
    """Return the uniqueIds of the documents listed (from each row's block form)."""
    return set(re.findall(r'name="unique_id" value="([^"]+)"', page.text))


def own_unique_ids(network: Network, nin: str) -> set[str]:
    """The uniqueIds a citizen's own hub search shows them (no portal in between)."""
    bundle = network.hub_search(network.citizen(nin), nin)
    return {
        e["resource"]["masterIdentifier"]["value"].removeprefix("urn:oid:")
        for e in bundle.get("entry", [])
        if e["resource"].get("resourceType") == "DocumentReference"
        and "masterIdentifier" in e["resource"]
    }


def test_proxy_holder_switches_to_the_proxy_giver_and_sees_their_documents(
    network: Network, portal_url: str, browser: httpx.Client
) -> None:
    patients = network.manifest["patients"]
    holder, giver = patients["proxy_holder"], patients["proxy_giver"]
    first = login_through_sts(browser, portal_url, "innbygger", holder)
    assert first.status_code == 200 and str(first.url).endswith(DOCUMENTS)
    assert acting_line(first).startswith(NB("citizen.acting.self"))
    own = unique_ids(first)

    people = browser.get(REPRESENTATION)
    assert people.status_code == 200
    offered = allowed_people(people)
    assert giver in offered, main_text(people)
    giver_name = offered[giver]
    proxy = NB("citizen.relation.proxy")
    assert f"{giver_name} ({proxy})" in main_text(people)
    assert not refused_people(people)

    chosen = browser.post(REPRESENTATION, data={"csrf_token": csrf_token(people), "person": giver})
    assert chosen.status_code == 303 and chosen.headers["location"] == DOCUMENTS
    documents = browser.get(DOCUMENTS, params={"antall": "200"})
    assert documents.status_code == 200
    assert acting_line(documents).startswith(
        NB("citizen.acting.other", name=giver_name, relation=proxy)
    )
    assert NB("citizen.acting.switched", name=giver_name) in documents.text
    assert f"<h1>{NB('citizen.documents.title-other', name=giver_name)}</h1>" in documents.text
    rows = re.findall(r'<tr class="document[^"]*"', documents.text)
    assert rows, main_text(documents)
    # The giver's documents, exactly as the giver's own search shows them; none of the holder's.
    shown = unique_ids(documents)
    assert shown and shown == own_unique_ids(network, giver)
    assert not shown & own


def test_parent_with_a_protected_address_is_refused_the_child_even_by_a_tampered_form(
    network: Network, portal_url: str, browser: httpx.Client
) -> None:
    patients = network.manifest["patients"]
    parent, child = patients["protected6"], patients["protected6_child"]
    login_through_sts(browser, portal_url, "innbygger", parent)

    people = browser.get(REPRESENTATION)
    assert people.status_code == 200
    assert child not in people.text  # no button, no hidden field, no number shown
    assert allowed_people(people) == {}
    refused = refused_people(people)
    assert len(refused) == 1, main_text(people)
    ((name, said),) = refused.items()
    sentence = NB("citizen.refused.protected-address", name=name)
    assert said == sentence

    tampered = browser.post(
        REPRESENTATION, data={"csrf_token": csrf_token(people), "person": child}
    )
    assert tampered.status_code == 403
    alert = re.search(r'<p class="error" role="alert">(.*?)</p>', tampered.text, re.S)
    assert alert and " ".join(unescape(alert.group(1)).split()) == sentence
    assert acting_line(tampered) == NB("citizen.acting.self")

    # Nothing switched: the pages still show the parent's own documents.
    after = browser.get(DOCUMENTS)
    assert after.status_code == 200
    assert acting_line(after) == NB("citizen.acting.self")
    assert f"<h1>{NB('citizen.documents.title')}</h1>" in after.text
    assert NB("citizen.acting.switched", name=name) not in after.text
