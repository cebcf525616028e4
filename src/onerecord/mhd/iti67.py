"""ITI-67 Find Document References: query parameters <-> DocumentQuery, searchset Bundle.

Parameter handling is strict: a parameter this server does not know is a 400 naming it, so a
client never mistakes an ignored filter for an applied one (FHIR R4 §3.1.1.2 allows a server to
refuse with `Prefer: handling=strict`; onerecord always is strict). `_total` (none, estimate,
accurate) and `_pretty` are accepted and ignored: the total is always counted and the output is
never pretty. `_summary`, `_elements`, `_include` and modifiers (`type:text`) are refused.

`status` is optional although MHD says the consumer SHALL send it; without it only current
entries are found (the XDS default). Dates without a time of day are read in Europe/Oslo, the
server's local time per FHIR R4 §3.1.1.5.8. Repeated date parameters are ANDed, which for a point
in time is the intersection of the ranges, so each of date/creation/period becomes one TimeRange.

References: IHE MHD 4.x ITI-67 §2:3.67.4.1.2 (parameters), §2:3.67.4.2 (response);
FHIR R4 §3.1.1.5 (search parameter types), §3.1.1.4 (_sort, _count), §3.1.1.5.8 (date prefixes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from onerecord.domain.codes import normalise_system
from onerecord.domain.document_entry import DocumentStatus
from onerecord.domain.errors import InvalidIdentifier
from onerecord.domain.identifiers import DNR_SYSTEM, FNR_SYSTEM, HNR_SYSTEM, NationalIdentityNumber
from onerecord.domain.search import (
    DEFAULT_PAGE_SIZE,
    DocumentQuery,
    InvalidCursor,
    PageCursor,
    SortField,
    SortKey,
    TimeRange,
    TokenParam,
)
from onerecord.mhd.errors import BadRequest, NotAcceptable

__all__ = [
    "LOCAL_ZONE",
    "parse_date_param",
    "parse_find_query",
    "parse_token",
    "render_query",
    "searchset_bundle",
]

LOCAL_ZONE = ZoneInfo("Europe/Oslo")

_PATIENT_SYSTEMS = {f"urn:oid:{s}": s for s in (FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM)}
_TOKEN_PARAMS = {
    "category": "category",
    "type": "type",
    "setting": "setting",
    "facility": "facility",
    "event": "event",
    "security-label": "security_label",
    "format": "format",
    "identifier": "identifier",
    "related": "related",
}
_DATE_PARAMS = {"date": "date", "creation": "creation", "period": "period"}
_STRING_PARAMS = {"author.given": "author_given", "author.family": "author_family"}
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_IGNORED = {"_total": {"none", "estimate", "accurate"}, "_pretty": {"true", "false"}}
_KNOWN = (
    {"patient.identifier", "status", "_count", "_sort", "_cursor", "_format"}
    | set(_TOKEN_PARAMS)
    | set(_DATE_PARAMS)
    | set(_STRING_PARAMS)
    | set(_IGNORED)
)

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap")


def _split_commas(value: str) -> list[str]:
    """Split on commas not escaped with a backslash (FHIR R4 §3.1.1.5.7); escapes are kept."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            # Keep the escape: the caller unescapes after splitting on "|" too.
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def _split_bar(value: str) -> tuple[str, str] | None:
    """Split "system|code" on the first unescaped bar; None when there is none."""
    escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "|":
            return value[:i], value[i + 1 :]
    return None


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", value)


def parse_token(value: str, *, name: str) -> TokenParam:
    """Parse one token: "code", "system|code", "system|" or "|code" (FHIR R4 §3.1.1.5.6)."""
    if not value:
        raise BadRequest(f"{name}: empty token value", expression=name)
    split = _split_bar(value)
    if split is None:
        return TokenParam(system=None, code=_unescape(value))
    system, code = (_unescape(s) for s in split)
    if not system and not code:
        raise BadRequest(f"{name}: token '|' has neither system nor code", expression=name)
    # "|code" means "code without a system"; our codings always have one, so it finds nothing.
    return TokenParam(system=normalise_system(system) if system else "", code=code or None)


def _moment_range(raw: str, name: str) -> tuple[datetime, datetime]:
    """Return [start, end) of a FHIR date/dateTime value at its precision."""
    match = _DATE_RE.match(raw)
    if match is None:
        raise BadRequest(
            f"{name}: {raw!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or "
            "YYYY-MM-DDThh:mm[:ss[.fff]]±hh:mm)",
            expression=name,
        )
    g = match.groupdict()
    if g["hour"] is not None and g["tz"] is None:
        raise BadRequest(f"{name}: {raw!r} has a time of day but no time zone", expression=name)
    tz = (
        LOCAL_ZONE
        if g["tz"] is None
        else datetime.fromisoformat(
            "2000-01-01T00:00" + ("+00:00" if g["tz"] == "Z" else g["tz"])
        ).tzinfo
    )
    year = int(g["year"])
    month = int(g["month"] or 1)
    day = int(g["day"] or 1)
    try:
        if g["month"] is None:
            return datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
        if g["day"] is None:
            start = datetime(year, month, 1, tzinfo=tz)
            nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
            return start, nxt
        if g["hour"] is None:
            start = datetime(year, month, day, tzinfo=tz)
            following = (start.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=tz)
            return start, following
        fraction = g["fraction"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        start = datetime(
            year,
            month,
            day,
            int(g["hour"]),
            int(g["minute"]),
            int(g["second"] or 0),
            micro,
            tzinfo=tz,
        )
        if g["second"] is None:
            step = timedelta(minutes=1)
        elif not fraction:
            step = timedelta(seconds=1)
        else:
            step = timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
        return start, start + step
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not a real date or time", expression=name) from None


def parse_date_param(value: str, *, name: str) -> TimeRange:
    """Parse one date parameter value with its prefix into a TimeRange (FHIR R4 §3.1.1.5.8)."""
    prefix, raw = "eq", value
    if value[:2] in _PREFIXES:
        prefix, raw = value[:2], value[2:]
    if prefix in {"ne", "sa", "eb", "ap"}:
        raise BadRequest(
            f"{name}: prefix {prefix!r} is not supported (use eq, gt, ge, lt, le)", expression=name
        )
    start, end = _moment_range(raw, name)
    if prefix == "eq":
        return TimeRange(start, end)
    if prefix == "gt":
        return TimeRange(lower=end)
    if prefix == "ge":
        return TimeRange(lower=start)
    if prefix == "lt":
        return TimeRange(upper=start)
    return TimeRange(upper=end)


def _intersect(ranges: Sequence[TimeRange]) -> TimeRange:
    lowers = [r.lower for r in ranges if r.lower is not None]
    uppers = [r.upper for r in ranges if r.upper is not None]
    return TimeRange(max(lowers) if lowers else None, min(uppers) if uppers else None)


def _patient(values: list[str]) -> NationalIdentityNumber:
    name = "patient.identifier"
    if not values:
        raise BadRequest(
            "patient.identifier is required (system|value, e.g. "
            "urn:oid:2.16.578.1.12.4.1.4.1|<fødselsnummer>)",
            code="required",
            expression=name,
        )
    if len(values) > 1:
        raise BadRequest("patient.identifier may be given once", expression=name)
    split = _split_bar(values[0])
    system, value = (None, values[0]) if split is None else split
    if system and system not in _PATIENT_SYSTEMS:
        raise BadRequest(
            f"patient.identifier system {system!r} is not a national identity number system "
            "(urn:oid:2.16.578.1.12.4.1.4.1, .2 or .3)",
            code="value",
            expression=name,
        )
    try:
        patient = NationalIdentityNumber(value)
    except InvalidIdentifier as exc:
        raise BadRequest(
            f"patient.identifier: {exc.message}", code="value", expression=name
        ) from None
    if system and _PATIENT_SYSTEMS[system] != patient.system:
        raise BadRequest(
            f"patient.identifier: the value is a {patient.kind.value} but the system is {system}",
            code="value",
            expression=name,
        )
    return patient


def _statuses(values: list[str]) -> frozenset[DocumentStatus]:
    result = frozenset({DocumentStatus.CURRENT}) if not values else frozenset(DocumentStatus)
    for value in values:
        chosen: set[DocumentStatus] = set()
        for part in value.split(","):
            try:
                chosen.add(DocumentStatus(part))
            except ValueError:
                raise BadRequest(
                    f"status {part!r} is not current, superseded or entered-in-error",
                    code="value",
                    expression="status",
                ) from None
        result &= chosen
    return result


def _sort(values: list[str]) -> tuple[SortKey, ...] | None:
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest("_sort may be given once (use a comma list)", expression="_sort")
    keys: list[SortKey] = []
    for part in values[0].split(","):
        descending = part.startswith("-")
        name = part[1:] if descending else part
        try:
            sort_field = SortField(name)
        except ValueError:
            allowed = ", ".join(f.value for f in SortField)
            raise BadRequest(
                f"_sort: {name!r} is not one of {allowed}", expression="_sort"
            ) from None
        if any(k.field is sort_field for k in keys):
            raise BadRequest(f"_sort: {name} is given twice", expression="_sort")
        keys.append(SortKey(sort_field, descending))
    return tuple(keys)


def _count(values: list[str], max_count: int) -> int:
    if not values:
        return min(DEFAULT_PAGE_SIZE, max_count)
    if len(values) > 1:
        raise BadRequest("_count may be given once", expression="_count")
    raw = values[0]
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= max_count:
        raise BadRequest(
            f"_count must be an integer from 1 to {max_count}, not {raw!r}",
            code="value",
            expression="_count",
        )
    return int(raw)


def parse_find_query(
    params: Sequence[tuple[str, str]], *, max_count: int
) -> tuple[DocumentQuery, PageCursor | None]:
    """Parse ITI-67 query (or form) parameters into a DocumentQuery and the paging cursor."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    unknown = sorted(set(grouped) - _KNOWN)
    if unknown:
        hint = " (use patient.identifier=system|value)" if "patient" in unknown else ""
        raise BadRequest(
            f"unknown or unsupported search parameter(s): {', '.join(unknown)}{hint}",
            code="not-supported",
            expression=unknown[0],
        )
    for name, values in grouped.items():
        if name != "patient.identifier" and name != "_cursor" and any(v == "" for v in values):
            raise BadRequest(f"{name}: empty value", code="value", expression=name)
    for name, allowed in _IGNORED.items():
        for value in grouped.get(name, ()):
            if value not in allowed:
                raise BadRequest(
                    f"{name}={value} is not one of {', '.join(sorted(allowed))}", expression=name
                )
    for fmt in grouped.get("_format", ()):
        if fmt not in _JSON_FORMATS:
            raise NotAcceptable(
                f"_format={fmt} is not supported; this server speaks FHIR JSON",
                expression="_format",
            )

    query = DocumentQuery(
        patient_id=_patient(grouped.get("patient.identifier", [])),
        statuses=_statuses(grouped.get("status", [])),
        count=_count(grouped.get("_count", []), max_count),
    )
    changes: dict[str, Any] = {}
    for name, attr in _DATE_PARAMS.items():
        if name in grouped:
            ranges = [parse_date_param(v, name=name) for v in grouped[name]]
            changes[attr] = (_intersect(ranges),)
    for name, attr in _TOKEN_PARAMS.items():
        if name in grouped:
            changes[attr] = tuple(
                tuple(parse_token(part, name=name) for part in _split_commas(value))
                for value in grouped[name]
            )
    for name, attr in _STRING_PARAMS.items():
        if name in grouped:
            groups = tuple(tuple(_unescape(p) for p in _split_commas(v)) for v in grouped[name])
            if any(not s for g in groups for s in g):
                raise BadRequest(f"{name}: empty value in the list", expression=name)
            changes[attr] = groups
    sort = _sort(grouped.get("_sort", []))
    if sort is not None:
        changes["sort"] = sort
    if changes:
        query = replace(query, **changes)

    cursor: PageCursor | None = None
    cursors = grouped.get("_cursor", [])
    if len(cursors) > 1:
        raise BadRequest("_cursor may be given once", expression="_cursor")
    if cursors:
        try:
            cursor = PageCursor.decode(cursors[0])
        except InvalidCursor as exc:
            raise BadRequest(exc.message, expression="_cursor") from None
    return query, cursor


def _render_token(token: TokenParam) -> str:
    if token.system is None:
        return _escape(token.code or "")
    return f"{_escape(token.system)}|{_escape(token.code or '')}"


def render_query(query: DocumentQuery, cursor: PageCursor | None) -> list[tuple[str, str]]:
    """Rebuild the canonical ITI-67 parameters of a query (for self and next links).

    Access-policy fields (hidden labels, release time) are never rendered.
    """
    patient = query.patient_id
    out: list[tuple[str, str]] = [
        ("patient.identifier", f"urn:oid:{patient.system}|{patient.value}"),
        ("status", ",".join(sorted(s.value for s in query.statuses)) or "current"),
    ]
    if not query.statuses:
        # An empty intersection finds nothing; render it as two disjoint status filters.
        out[1] = ("status", "current")
        out.append(("status", "superseded"))
    for name, attr in _DATE_PARAMS.items():
        for time_range in getattr(query, attr):
            if time_range.lower is not None:
                out.append((name, f"ge{time_range.lower.isoformat()}"))
            if time_range.upper is not None:
                out.append((name, f"lt{time_range.upper.isoformat()}"))
    for name, attr in _TOKEN_PARAMS.items():
        for any_of in getattr(query, attr):
            out.append((name, ",".join(_render_token(t) for t in any_of)))
    for name, attr in _STRING_PARAMS.items():
        for strings in getattr(query, attr):
            out.append((name, ",".join(_escape(s) for s in strings)))
    out.append(("_sort", ",".join(k.render() for k in query.sort)))
    out.append(("_count", str(query.count)))
    if cursor is not None:
        out.append(("_cursor", cursor.encode()))
    return out


def searchset_bundle(
    *,
    resources: Sequence[dict[str, Any]],
    self_url: str,
    next_url: str | None,
    total: int | None,
    outcomes: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Build the ITI-67 searchset Bundle; OperationOutcomes go in with search.mode outcome.

    Each match's fullUrl is "<self_url without query>/<id>".
    """
    base = self_url.split("?", 1)[0].rstrip("/")
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    entries.extend(
        {"fullUrl": f"urn:uuid:{uuid4()}", "resource": o, "search": {"mode": "outcome"}}
        for o in outcomes
    )
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid4()), "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle
