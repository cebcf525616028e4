"""The portals' languages: bokmål by default, nynorsk and English by a switch.

Messages live in `messages/*.toml`, one table per message id with the text in each language:

    ["overview.title"]
    nb = "Nasjonal dokumentoversikt"
    nn = "Nasjonal dokumentoversikt"
    en = "National document overview"

Texts are `str.format` templates (`"{count} dokumenter"`). Dates and times are written the
Norwegian way (Språkrådet: «21.11.2026», «kl. 14.05»; long form «21. november 2026»); English
pages use «21 November 2026» and «14:05».
References: WCAG 2.1 SC 3.1.1 (language of page), SC 3.1.2 (language of parts).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_COOKIE",
    "Translator",
    "catalog",
    "choose_language",
    "format_clock",
    "format_date",
    "format_datetime",
]

LANGUAGES: Mapping[str, str] = {"nb": "Bokmål", "nn": "Nynorsk", "en": "English"}
"""The languages offered, each named in itself (as a language switch should)."""
DEFAULT_LANGUAGE = "nb"
LANGUAGE_COOKIE = "onerecord_lang"
_OSLO = ZoneInfo("Europe/Oslo")

_MONTHS = {
    "nb": (
        "januar", "februar", "mars", "april", "mai", "juni",
        "juli", "august", "september", "oktober", "november", "desember",
    ),
    "nn": (
        "januar", "februar", "mars", "april", "mai", "juni",
        "juli", "august", "september", "oktober", "november", "desember",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip


@cache
def catalog() -> Mapping[str, Mapping[str, str]]:
    """Return every message id with its texts by language, read once from package data."""
    messages: dict[str, Mapping[str, str]] = {}
    folder = resources.files("onerecord.portals") / "messages"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".toml"):
            continue
        table = tomllib.loads(item.read_text(encoding="utf-8"))
        for key, texts in table.items():
            if key in messages:
                raise ValueError(f"message {key!r} is defined twice ({item.name})")
            if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
                raise ValueError(f"message {key!r} in {item.name} is not a table of texts")
            messages[key] = texts
    return messages


def choose_language(requested: str | None) -> str:
    """Return `requested` when it is offered, else bokmål."""
    return requested if requested is not None and requested in LANGUAGES else DEFAULT_LANGUAGE


def _parse(value: str | date | datetime) -> date | datetime | None:
    if isinstance(value, date):
        return value
    text = value.strip()
    try:
        if len(text) > 10:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def format_date(value: str | date | datetime | None, language: str, *, long: bool = False) -> str:
    """Write a date the Norwegian way (21.11.2026 / 21. november 2026); unparseable as given."""
    if value is None or value == "":
        return ""
    parsed = _parse(value)
    if parsed is None:
        return str(value)
    if isinstance(parsed, datetime) and parsed.tzinfo is not None:
        parsed = parsed.astimezone(_OSLO)
    day = parsed.date() if isinstance(parsed, datetime) else parsed
    if language == "en":
        return f"{day.day} {_MONTHS['en'][day.month - 1]} {day.year}"
    if long:
        months = _MONTHS.get(language, _MONTHS[DEFAULT_LANGUAGE])
        return f"{day.day}. {months[day.month - 1]} {day.year}"
    return f"{day.day:02d}.{day.month:02d}.{day.year}"


def format_datetime(value: str | datetime | None, language: str) -> str:
    """Write a moment in Norwegian time: «21.11.2026 kl. 14.05» (en: «21 November 2026, 14:05»)."""
    if value is None or value == "":
        return ""
    parsed = _parse(value)
    if not isinstance(parsed, datetime):
        return format_date(value, language)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_OSLO)
    if language == "en":
        return f"{format_date(parsed, language)}, {parsed:%H:%M}"
    return f"{format_date(parsed, language)} kl. {parsed:%H.%M}"


def format_clock(value: datetime, language: str) -> str:
    """The time of day in Norwegian time: «09.05» (en: «09:05»)."""
    local = value.astimezone(_OSLO)
    return f"{local:%H:%M}" if language == "en" else f"{local:%H.%M}"


@dataclass(frozen=True, slots=True)
class Translator:
    """Look up message texts in one language, falling back to bokmål."""

    language: str = DEFAULT_LANGUAGE

    def __call__(self, key: str, /, **params: object) -> str:
        """Return the text of `key` in this language, formatted with `params`."""
        texts = catalog().get(key)
        if texts is None:
            raise KeyError(f"unknown message {key!r}")
        text = texts.get(self.language) or texts[DEFAULT_LANGUAGE]
        return text.format(**params) if params else text

    def plural(self, count: int, one: str, other: str, /, **params: object) -> str:
        """Return message `one` when count is 1, else `other`, each given `count`."""
        return self(one if count == 1 else other, count=count, **params)

    def date(self, value: str | date | datetime | None, *, long: bool = False) -> str:
        return format_date(value, self.language, long=long)

    def datetime(self, value: str | datetime | None) -> str:
        return format_datetime(value, self.language)
