"""Helpers for reading the portal's pages in tests, and for logging in as a browser would."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urljoin

import httpx

__all__ = [
    "TableRow",
    "csrf_token",
    "follow_redirects",
    "login_through_sts",
    "region_answered_or_spared",
    "set_cookie_header",
    "table_rows",
]

_MAX_REDIRECTS = 10


def region_answered_or_spared(html: str, name: str) -> bool:
    """True when the page says region `name` answered, or that the hub's locator spared it.

    With the locator on (the demo network), a region that holds nothing about the patient is
    not asked, and the page says so in its own words (never as a failure).
    """
    return re.search(rf"{re.escape(name)} (svarte\.|ble ikke spurt:)", unescape(html)) is not None


def csrf_token(page: httpx.Response) -> str:
    """Return the CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def set_cookie_header(response: httpx.Response) -> str:
    """Return the one Set-Cookie header of a response."""
    values = response.headers.get_list("set-cookie")
    assert len(values) == 1, values
    return values[0]


def follow_redirects(client: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Follow each 3xx by hand (GET, as a browser does after 302/303); return the last answer."""
    for _ in range(_MAX_REDIRECTS):
        if not response.is_redirect:
            return response
        target = urljoin(str(response.url), response.headers["location"])
        response = client.get(target)
    raise AssertionError(f"more than {_MAX_REDIRECTS} redirects, last at {response.url}")


def _form_field(page: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', page)
    assert match, f"no field {name!r} on the page:\n{page[:2000]}"
    return unescape(match.group(1))


def _form_action(page: str) -> str:
    match = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page)
    assert match, f"no form on the page:\n{page[:2000]}"
    return unescape(match.group(1))


def login_through_sts(
    client: httpx.Client,
    portal_url: str,
    area: Literal["helsepersonell", "innbygger"],
    nin: str,
) -> httpx.Response:
    """Log `nin` in at the portal `area` through the STS's login page; return the final page.

    The dance a browser does: the portal's login page, its form (303 to the STS /authorize),
    the STS page listing the test users, the radio button whose value is `nin`, the STS's 302
    back to `/{area}/innlogget` with the code, and the portal's redirects after that.
    `client` must not follow redirects by itself; its cookies carry the portal session.
    """
    base = portal_url.rstrip("/")
    start = client.get(f"{base}/{area}/logg-inn")
    assert start.status_code == 200, start.text[:2000]
    sent = client.post(f"{base}/{area}/logg-inn", data={"csrf_token": csrf_token(start)})
    assert sent.status_code == 303, sent.text[:2000]
    sts_page = follow_redirects(client, sent)
    assert sts_page.status_code == 200, sts_page.text[:2000]
    radios = [
        tag
        for tag in re.findall(r"<input\b[^>]*>", sts_page.text)
        if 'type="radio"' in tag and 'name="subject"' in tag
    ]
    assert any(f'value="{nin}"' in tag for tag in radios), (
        f"{nin} is not among the STS page's test users: {radios}"
    )
    action = urljoin(str(sts_page.url), _form_action(sts_page.text))
    chosen = client.post(
        action, data={"request_id": _form_field(sts_page.text, "request_id"), "subject": nin}
    )
    assert chosen.status_code == 302, chosen.text[:2000]
    assert chosen.headers["location"].startswith(f"{base}/{area}/innlogget?"), chosen.headers
    return follow_redirects(client, chosen)


@dataclass
class TableRow:
    """One row of the overview table as the page shows it."""

    classes: tuple[str, ...]
    attrs: dict[str, str]
    cells: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return "blocked" in self.classes

    @property
    def title(self) -> str:
        return self.cells[1]

    @property
    def region(self) -> str:
        return self.cells[6]


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[TableRow] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            classes = tuple(values.get("class", "").split())
            self.rows.append(TableRow(classes, values))
        elif self._in_body and tag == "td" and self.rows:
            self._cell = []
        elif self._cell is not None and tag == "a" and values.get("href"):
            self.rows[-1].links.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].cells.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(page: httpx.Response) -> list[TableRow]:
    """Return the document rows of an overview page (documents and «Sperret» placeholders)."""
    parser = _Rows()
    parser.feed(page.text)
    return [r for r in parser.rows if r.classes and len(r.cells) >= 7]
