"""Filter, sort and page the document overview (both portals), as pure functions.

The query string is the page's state, so every view can be bookmarked and works without
JavaScript: `klasse`, `type` (a Volven code, or the text a region sent), `region`, `fra`, `til`
(YYYY-MM-DD), `sorter` (dato, tittel, type, klasse, forfatter, virksomhet, region), `retning`
(synkende, stigende), `side`, `antall`, `gruppering` (`ingen`: one flat list; default: grouped
by institution and stay, see `stays.py`). Unknown or malformed values fall back to the default
and are reported in `problems`, so the page can say what it ignored instead of failing.

Grouping applies to the list in date order (the default): newest first inside each group, the
groups ordered by their newest document (or oldest, ascending). Sorting by another column gives
one flat list in that order, which is what a click on «Tittel» asks for. The page is cut from
the grouped list, so a group may continue on the next page (its header is repeated there).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlencode

__all__ = [
    "PAGE_SIZES",
    "SORT_KEYS",
    "ListingPage",
    "ListingQuery",
    "Listable",
    "apply_listing",
    "parse_listing_query",
    "refresh_url",
]

PAGE_SIZES = (25, 50, 100, 200)
SORT_KEYS = ("dato", "tittel", "type", "klasse", "forfatter", "virksomhet", "region")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Listable(Protocol):
    """What the listing needs of a row."""

    @property
    def date(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def class_(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def organisation(self) -> str: ...
    @property
    def region(self) -> str: ...


def _code_or_text(row: Any, code: str, text: str) -> tuple[str, str]:
    return (str(getattr(row, code, "") or ""), str(getattr(row, text, "") or ""))


def _group(row: Any) -> Any:
    """The row's group (institution, stay) when it has one (`overview.DocumentRow.group`)."""
    return getattr(row, "group", None)


_SORT: Mapping[str, Callable[[Any], str]] = {
    "dato": lambda r: r.date,
    "tittel": lambda r: r.title.casefold(),
    "type": lambda r: r.type.casefold(),
    "klasse": lambda r: r.class_.casefold(),
    "forfatter": lambda r: r.author.casefold(),
    "virksomhet": lambda r: r.organisation.casefold(),
    "region": lambda r: r.region.casefold(),
}


@dataclass(frozen=True, slots=True)
class ListingQuery:
    """One view of the overview: filters, order and page."""

    class_: str | None = None
    type: str | None = None
    region: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "dato"
    descending: bool = True
    page: int = 1
    per_page: int = 25
    grouped: bool = True
    problems: tuple[str, ...] = ()

    def params(self, **changes: Any) -> str:
        """Return this view's query string with `changes` applied (for links)."""
        q = replace(self, **changes)
        values = {
            "klasse": q.class_,
            "type": q.type,
            "region": q.region,
            "fra": q.date_from.isoformat() if q.date_from else None,
            "til": q.date_to.isoformat() if q.date_to else None,
            "sorter": q.sort if q.sort != "dato" else None,
            "retning": "stigende" if not q.descending else None,
            "side": str(q.page) if q.page != 1 else None,
            "antall": str(q.per_page) if q.per_page != 25 else None,
            "gruppering": None if q.grouped else "ingen",
        }
        return urlencode({k: v for k, v in values.items() if v})

    def sort_link(self, key: str) -> str:
        """Return the query string that sorts by `key` (reversing when already sorted by it)."""
        descending = not self.descending if key == self.sort else key == "dato"
        return self.params(sort=key, descending=descending, page=1)

    @property
    def grouping(self) -> bool:
        """True when the rows are shown in groups (institution, stay): date order, not `ingen`."""
        return self.grouped and self.sort == "dato"

    @property
    def filtered(self) -> bool:
        return any((self.class_, self.type, self.region, self.date_from, self.date_to))


def _date(value: str | None, name: str, problems: list[str]) -> date | None:
    if not value:
        return None
    # YYYY-MM-DD in ASCII digits only: date.fromisoformat also takes 20260101 and 2026-W01-1.
    text = value.strip()
    if _ISO_DATE.fullmatch(text) is None:
        problems.append(name)
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(name)
        return None


def _int(value: str | None, name: str, problems: list[str]) -> int | None:
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not value:
        return None
    if re.fullmatch(r"[0-9]{1,6}", value.strip()) is None:
        problems.append(name)
        return None
    return int(value)


def parse_listing_query(params: Mapping[str, str]) -> ListingQuery:
    """Read a view from query parameters; bad values fall back and are named in `problems`."""
    problems: list[str] = []
    sort = params.get("sorter") or "dato"
    if sort not in SORT_KEYS:
        problems.append("sorter")
        sort = "dato"
    direction = params.get("retning") or "synkende"
    if direction not in ("synkende", "stigende"):
        problems.append("retning")
        direction = "synkende"
    per_page = _int(params.get("antall"), "antall", problems)
    if per_page is None:
        per_page = 25
    elif per_page not in PAGE_SIZES:
        problems.append("antall")
        per_page = 25
    page = _int(params.get("side"), "side", problems)
    if page is None:
        page = 1
    elif page < 1:
        problems.append("side")
        page = 1
    grouping = params.get("gruppering") or ""
    if grouping not in ("", "ingen"):
        problems.append("gruppering")
        grouping = ""
    date_from = _date(params.get("fra"), "fra", problems)
    date_to = _date(params.get("til"), "til", problems)
    if date_from and date_to and date_from > date_to:
        problems.append("til")
        date_to = None
    return ListingQuery(
        class_=params.get("klasse") or None,
        type=params.get("type") or None,
        region=params.get("region") or None,
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        descending=direction == "synkende",
        page=page,
        per_page=per_page,
        grouped=grouping != "ingen",
        problems=tuple(problems),
    )


T = TypeVar("T", bound="Listable")


@dataclass(frozen=True, slots=True)
class ListingPage(Generic[T]):
    """One page of rows, with the filter choices the whole overview offers."""

    rows: tuple[T, ...]
    matching: int
    page: int
    pages: int
    classes: tuple[tuple[str, str], ...]
    """(value, text) of each class in the whole overview: the code, else the region's text."""
    types: tuple[tuple[str, str], ...]
    regions: tuple[str, ...]

    def first_number(self, per_page: int) -> int:
        """Return the 1-based number of the page's first row (0 when empty)."""
        return 0 if not self.rows else 1 + (self.page - 1) * per_page

    def runs(self) -> list[tuple[Any, tuple[T, ...]]]:
        """The page's rows in runs of one group each: (group, rows), in page order."""
        runs: list[tuple[Any, list[T]]] = []
        for row in self.rows:
            key = _group(row)
            if runs and runs[-1][0] == key:
                runs[-1][1].append(row)
            else:
                runs.append((key, [row]))
        return [(key, tuple(rows)) for key, rows in runs]

    def pages_around(self, width: int = 2) -> list[int]:
        """Return the page numbers to link: first, last and `width` either side of the page."""
        near = set(range(max(1, self.page - width), min(self.pages, self.page + width) + 1))
        return sorted(near | {1, self.pages})


def _in_period(row_date: str, query: ListingQuery) -> bool:
    day = row_date[:10]
    if query.date_from and (not day or day < query.date_from.isoformat()):
        return False
    return not (query.date_to and (not day or day > query.date_to.isoformat()))


def _choices(rows: Sequence[Any], code: str, text: str) -> tuple[tuple[str, str], ...]:
    """The filter's choices: (value for the URL, the region's text), code first when there."""
    found: dict[str, str] = {}
    for r in rows:
        value, shown = _code_or_text(r, code, text)
        if value or shown:
            found.setdefault(value or shown, shown or value)
    return tuple(sorted(found.items(), key=lambda item: item[1].casefold()))


def apply_listing(rows: Sequence[T], query: ListingQuery) -> ListingPage[T]:
    """Filter, sort and cut one page of `rows` as `query` says."""
    matching = [
        r
        for r in rows
        if (query.class_ is None or query.class_ in _code_or_text(r, "class_code", "class_"))
        and (query.type is None or query.type in _code_or_text(r, "type_code", "type"))
        and (query.region is None or r.region == query.region)
        and _in_period(r.date, query)
    ]
    key = _SORT[query.sort]
    # Stable sort: the secondary order is newest first, whatever the primary key.
    ordered = sorted(matching, key=lambda r: r.date, reverse=True)
    if query.sort != "dato" or not query.descending:
        ordered = sorted(ordered, key=key, reverse=query.descending)
    if query.grouping:
        first: dict[Any, int] = {}
        for index, row in enumerate(ordered):
            first.setdefault(_group(row), index)
        ordered = sorted(ordered, key=lambda r: first[_group(r)])  # stable: order kept inside
    pages = max(1, -(-len(ordered) // query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    return ListingPage(
        rows=tuple(ordered[start : start + query.per_page]),
        matching=len(ordered),
        page=page,
        pages=pages,
        classes=_choices(rows, "class_code", "class_"),
        types=_choices(rows, "type_code", "type"),
        regions=tuple(sorted({r.region for r in rows if r.region})),
    )


def refresh_url(base: str, query: ListingQuery) -> str:
    """The link that fetches the list afresh and comes back to this view («Oppdater»)."""
    params = query.params()
    return f"{base}?{params}&oppdater=1" if params else f"{base}?oppdater=1"
