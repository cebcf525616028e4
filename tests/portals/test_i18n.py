"""Languages (i18n.py): complete message catalog, Norwegian dates and times, fallbacks."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime

import pytest

from onerecord.portals.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    Translator,
    catalog,
    choose_language,
    format_date,
    format_datetime,
)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_message_has_nb_nn_and_en_with_the_same_placeholders() -> None:
    messages = catalog()
    assert len(messages) > 50
    incomplete = {
        key: sorted(texts) for key, texts in messages.items() if set(texts) != {*LANGUAGES}
    }
    assert incomplete == {}
    empty = [key for key, texts in messages.items() if not all(t.strip() for t in texts.values())]
    assert empty == []
    mismatched = {
        key: {lang: sorted(_placeholders(text)) for lang, text in texts.items()}
        for key, texts in messages.items()
        if len({frozenset(_placeholders(text)) for text in texts.values()}) > 1
    }
    assert mismatched == {}


def test_languages_are_named_in_themselves() -> None:
    assert dict(LANGUAGES) == {"nb": "Bokmål", "nn": "Nynorsk", "en": "English"}
    assert DEFAULT_LANGUAGE == "nb"


@pytest.mark.parametrize("requested", [None, "", "de", "NB", "en-GB", "nb;q=1"])
def test_unknown_language_gives_bokmal(requested: str | None) -> None:
    assert choose_language(requested) == "nb"


@pytest.mark.parametrize("language", ["nb", "nn", "en"])
def test_known_language_is_kept(language: str) -> None:
    assert choose_language(language) == language


def test_translator_formats_in_its_language_and_falls_back() -> None:
    assert Translator("nb")("region.ok", name="Helse Vest") == "Helse Vest svarte."
    assert Translator("en")("region.ok", name="Helse Vest") == "Helse Vest answered."
    assert Translator("nn")("site.skip") == "Hopp til innhaldet"
    assert Translator("de")("site.skip") == Translator("nb")("site.skip")
    with pytest.raises(KeyError, match="no.such.message"):
        Translator("nb")("no.such.message")


def test_plural_picks_one_or_other() -> None:
    t = Translator("nb")
    assert t.plural(1, "hcp.blocked.one", "hcp.blocked.other").startswith("1 dokument er")
    assert t.plural(3, "hcp.blocked.one", "hcp.blocked.other").startswith("3 dokumenter er")
    assert (
        Translator("en")
        .plural(0, "hcp.blocked.one", "hcp.blocked.other")
        .startswith("0 documents are")
    )


def test_dates_the_norwegian_way() -> None:
    day = date(2026, 11, 21)
    assert format_date(day, "nb") == "21.11.2026"
    assert format_date("2026-11-21", "nn") == "21.11.2026"
    assert format_date("2026-03-05", "nb") == "05.03.2026"
    assert format_date(day, "nb", long=True) == "21. november 2026"
    assert format_date(day, "nn", long=True) == "21. november 2026"
    assert format_date(day, "en") == "21 November 2026"
    assert format_date(day, "en", long=True) == "21 November 2026"
    assert Translator("nb").date("2026-11-21", long=True) == "21. november 2026"


def test_dates_of_moments_are_read_in_oslo_time() -> None:
    # 23:30 UTC on 21 November is already 22 November in Oslo (UTC+1).
    assert format_date("2026-11-21T23:30:00Z", "nb") == "22.11.2026"
    assert format_date(datetime(2026, 11, 21, 23, 30, tzinfo=UTC), "en") == "22 November 2026"


def test_unreadable_or_missing_dates() -> None:
    assert format_date(None, "nb") == ""
    assert format_date("", "nb") == ""
    assert format_date("i går", "nb") == "i går"
    assert format_date("2026-13-45T00:00:00", "nb") == "2026-13-45T00:00:00"
    # An unknown language writes dates as bokmål does, also the long form.
    assert format_date("2026-11-21", "de") == "21.11.2026"
    assert format_date("2026-11-21", "de", long=True) == "21. november 2026"


def test_datetime_in_europe_oslo_with_kl() -> None:
    winter = "2026-11-21T13:05:00Z"  # UTC+1
    summer = "2026-06-21T12:05:00+00:00"  # UTC+2
    assert format_datetime(winter, "nb") == "21.11.2026 kl. 14.05"
    assert format_datetime(summer, "nn") == "21.06.2026 kl. 14.05"
    assert format_datetime(winter, "en") == "21 November 2026, 14:05"
    assert format_datetime(datetime(2026, 11, 21, 13, 5, tzinfo=UTC), "nb") == (
        "21.11.2026 kl. 14.05"
    )
    assert Translator("nb").datetime(winter) == "21.11.2026 kl. 14.05"
    # A date alone stays a date; nothing stays nothing.
    assert format_datetime("2026-11-21", "nb") == "21.11.2026"
    assert format_datetime(None, "nb") == ""
    assert format_datetime("soon", "nb") == "soon"
