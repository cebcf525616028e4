"""The synthetic contact register: e-mail, mobile and language, one source for every part."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from onerecord.demo_dialogue import write_contacts
from onerecord.dialogue.contacts import load_contacts
from onerecord.synth.demographics import contact_details, email_address
from onerecord.synth.population import AddressProtection, Population


def test_contact_details_follow_the_e_mail_rules(population: Population) -> None:
    today = population.reference_date
    languages: Counter[str] = Counter()
    for citizen in population.citizens:
        entry = contact_details(citizen, today)
        assert entry.email == email_address(citizen, today)  # one source of the address
        assert (entry.mobile is None) == (entry.email is None)
        if entry.mobile is not None:
            assert len(entry.mobile) == 8 and entry.mobile.startswith("4")
        if citizen.protection is not AddressProtection.NONE:
            assert entry.email is None and entry.mobile is None
        assert entry.language in ("nb", "nn", "en")
        languages[entry.language] += 1
        assert contact_details(citizen, today) == entry  # stable
    assert languages["nb"] > languages["nn"] + languages["en"]


def test_the_extract_the_dialogue_service_reads(population: Population, tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    count = write_contacts(path, population)
    assert count == len(json.loads(path.read_text("utf-8")))
    assert path.stat().st_mode & 0o777 == 0o600
    register = load_contacts(path)
    adult = population.cast["adult"]
    found = register.contact(adult.nin.value)
    expected = contact_details(adult, population.reference_date)
    assert found is not None
    assert (found.email, found.mobile, found.language) == (
        expected.email,
        expected.mobile,
        expected.language,
    )
