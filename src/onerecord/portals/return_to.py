"""Where a user comes back to after logging in again, changing workplace or stating a basis.

The page to come back to travels as `neste` (a form field or a query parameter) and is outside
input: only a path of this site, inside the portal area it is used for, is taken (no open
redirect: `web.safe_next`); anything else falls back to the area's own next page. Some pages
cannot be come back to directly and lead to the page before them: a document needs the overview
it was listed in (fetched afresh), and a health worker's patient pages need the basis stated
again, so they lead to the patient form, which goes on to the overview afterwards
(issue 11, defect 8).
"""

from __future__ import annotations

from onerecord.portals.web import safe_next

__all__ = [
    "CITIZEN_AREA",
    "HCP_AREA",
    "MAX_RETURN_PATH",
    "after_basis",
    "after_login",
    "area_of",
    "local_page",
    "needs_patient",
]

HCP_AREA = "/helsepersonell"
CITIZEN_AREA = "/innbygger"
MAX_RETURN_PATH = 1000
"""The longest `neste` taken (an overview's full query string is well under 300)."""
_NEVER_BACK = frozenset({"", "logg-inn", "innlogget"})
_PATIENT_PAGES = frozenset({"oversikt", "dokument", "nodtilgang"})


def area_of(path: str) -> str | None:
    """Return the portal area (`/helsepersonell` or `/innbygger`) a path belongs to, if any."""
    for area in (HCP_AREA, CITIZEN_AREA):
        if path == area or path.startswith(f"{area}/"):
            return area
    return None


def _page_name(page: str, area: str) -> str:
    """The first path segment after the area: `oversikt` of `/helsepersonell/oversikt?x=1`."""
    path = page.split("?", 1)[0].split("#", 1)[0]
    return path[len(area) :].strip("/").split("/", 1)[0]


def local_page(value: str | None, area: str) -> str | None:
    """Return `value` when it is a page of `area` on this site, else None.

    A path (not `//host`, no backslash), at most MAX_RETURN_PATH characters, no control
    characters, no dot segments, inside `area`; never a login page (that would loop).
    """
    if value is None or len(value) > MAX_RETURN_PATH:
        return None
    if safe_next(value, "") != value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    path = value.split("?", 1)[0].split("#", 1)[0]
    if ".." in path or "%2e" in path.lower():
        return None  # a dot segment, plain or encoded, could leave the area
    if area_of(path) != area:
        return None
    return None if _page_name(value, area) in _NEVER_BACK else value


def needs_patient(page: str) -> bool:
    """True for a health worker's page that shows a patient (it needs a stated basis)."""
    return _page_name(page, HCP_AREA) in _PATIENT_PAGES


def after_login(area: str, value: str | None) -> str | None:
    """Return the page to land on once logged in again, or None for the area's usual one.

    A citizen's document page leads to the documents list (the document is listed afresh
    there); a health worker's pages are reached through the workplace and patient pages,
    which carry the page on.
    """
    page = local_page(value, area)
    if page is not None and area == CITIZEN_AREA and _page_name(page, area) == "dokument":
        return f"{CITIZEN_AREA}/dokumenter"
    return page


def after_basis(value: str | None) -> str:
    """Return the overview to show once a basis is stated: the one named (its filters, sort
    and page kept) or the plain overview. A document's page leads to the overview too: it
    can only be opened from an overview fetched under the new basis."""
    page = local_page(value, HCP_AREA)
    if page is not None and _page_name(page, HCP_AREA) == "oversikt":
        return page
    return f"{HCP_AREA}/oversikt"
