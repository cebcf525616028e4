"""Where the dialogue service finds a person's e-mail and language: the contact register.

`ContactRegister` is the edge. The service reads an extract of the register (`load_contacts`,
a JSON object of national id → `{"email", "mobile", "language"}`); the demo writes it from the
synthetic population's one contact register (`synth.demographics.contact_details`, which also
gives the STS's patient lookup its e-mail), as it seeds the GP lists from the population.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

__all__ = ["LANGUAGES", "ContactDetails", "ContactRegister", "StaticContacts", "load_contacts"]

LANGUAGES = ("nb", "nn", "en")
_NIN = re.compile(r"[0-9]{11}")
_MOBILE = re.compile(r"[0-9]{8}")


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """A person's entry: e-mail and mobile (None when not registered), preferred language."""

    email: str | None
    mobile: str | None
    language: str

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError("language must be nb, nn or en")
        if self.email is not None and (
            len(self.email) > 254 or self.email.count("@") != 1 or not self.email.isprintable()
        ):
            raise ValueError("not an e-mail address")
        if self.mobile is not None and not _MOBILE.fullmatch(self.mobile):
            raise ValueError("a mobile number is eight digits")


class ContactRegister(Protocol):
    """The contact register: a person's e-mail, mobile and preferred language, or None."""

    def contact(self, nin: str) -> ContactDetails | None: ...


class StaticContacts:
    """A register held in memory (an extract, or the tests' own)."""

    def __init__(self, entries: Mapping[str, ContactDetails]) -> None:
        self.entries = dict(entries)

    def contact(self, nin: str) -> ContactDetails | None:
        return self.entries.get(nin)


def _entry(value: Any) -> ContactDetails:
    if not isinstance(value, dict):
        raise ValueError("an entry is an object")
    email, mobile, language = value.get("email"), value.get("mobile"), value.get("language")
    if not (email is None or isinstance(email, str)) or not (
        mobile is None or isinstance(mobile, str)
    ):
        raise ValueError("email and mobile are strings or null")
    if not isinstance(language, str):
        raise ValueError("language is a string")
    return ContactDetails(email, mobile, language)


def load_contacts(path: Path) -> StaticContacts:
    """Read a register extract (see the module docstring); ValueError when malformed."""
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError("the contact register extract is a JSON object")
    entries = {}
    for nin, value in data.items():
        if not _NIN.fullmatch(nin):
            raise ValueError("the contact register is keyed by national identity number")
        entries[nin] = _entry(value)
    return StaticContacts(entries)
