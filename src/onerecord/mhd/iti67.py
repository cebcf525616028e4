"""ITI-67 Find Document References: query parameters <-> DocumentQuery, searchset Bundle.

Parameter handling is strict: a parameter this server does not know is a 400 naming it, so a
client never mistakes an ignored filter for an applied one (FHIR R4 §3.1.1.2 allows a server to
refuse with `Prefer: handling=strict`; onerecord always is strict). `_total` (none, estimate,
accurate) says whether the answer counts its matches (`TotalMode`: without it, `total` is given
only when the first page holds every match); `_pretty` is accepted and ignored (the output is
never pretty). `_summary=count` and `_count=0` ask for the total only (`split_count_only`);
other `_summary` values, `_elements`, `_include` and modifiers (`type:text`) are refused.

Bounded work: before anything else the parameters are counted (MAX_PARAMETERS, all names;
MAX_PARAMETER_REPEATS per name), every value measured (MAX_STRING_LENGTH, the cursor
MAX_CURSOR_LENGTH) and every comma list counted (MAX_OR_VALUES); `_count` above MAX_PAGE_SIZE (or
the server's lower `max_count`) is refused, not clamped. Dates must lie in [EARLIEST_DATE,
LATEST_DATE) with an offset within ±14:00, so no range bound computed from them can overflow. Each
refusal is a 400 BadRequest naming the limit; `parse_find_query` raises nothing but MhdError.

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
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import orjson

from onerecord.domain.codes import normalise_system
from onerecord.domain.document_entry import DocumentStatus
from onerecord.domain.errors import DomainError, InvalidIdentifier
from onerecord.domain.identifiers import DNR_SYSTEM, FNR_SYSTEM, HNR_SYSTEM, NationalIdentityNumber
from onerecord.domain.limits import (
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_CURSOR_LENGTH,
    MAX_OR_VALUES,
    MAX_PAGE_SIZE,
    MAX_PARAMETER_REPEATS,
    MAX_PARAMETERS,
    MAX_STRING_LENGTH,
    MAX_UTC_OFFSET_MINUTES,
    DateOutOfRange,
    LimitExceeded,
    check_count,
    check_length,
    check_moment,
)
from onerecord.domain.search import (
    DEFAULT_PAGE_SIZE,
    DocumentQuery,
    InvalidCursor,
    PageCursor,
    SortField,
    SortKey,
    TimeRange,
    TokenParam,
    TotalMode,
)
from onerecord.mhd.errors import BadRequest, NotAcceptable

__all__ = [
    "LOCAL_ZONE",
    "parse_date_param",
    "parse_find_query",
    "parse_token",
    "render_query",
    "searchset_bundle",
    "searchset_bundle_bytes",
    "split_count_only",
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
_IGNORED = {"_pretty": {"true", "false"}}
_KNOWN = (
    {"patient.identifier", "status", "_count", "_sort", "_cursor", "_format", "_total"}
    | set(_TOKEN_PARAMS)
    | set(_DATE_PARAMS)
    | set(_STRING_PARAMS)
    | set(_IGNORED)
)

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,
)
_LIST_PARAMS = set(_TOKEN_PARAMS) | set(_STRING_PARAMS)
_MAX_LIST_CHARS = MAX_OR_VALUES * (MAX_STRING_LENGTH + 1)
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
    tz = LOCAL_ZONE if g["tz"] is None else _offset(g["tz"], raw, name)
    year = int(g["year"])
    # The year first, so that no bound below (the end of a year, +1 unit) can overflow.
    if not EARLIEST_DATE.year <= year < LATEST_DATE.year:
        raise _out_of_range(raw, name)
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


def _offset(raw_tz: str, raw: str, name: str) -> tzinfo:
    """Return the fixed offset of "Z" or "±hh:mm", refusing one beyond ±14:00 (ISO 8601)."""
    if raw_tz == "Z":
        return UTC
    hours, minutes = int(raw_tz[1:3]), int(raw_tz[4:6])
    total = hours * 60 + minutes
    if minutes >= 60 or total > MAX_UTC_OFFSET_MINUTES:
        raise BadRequest(
            f"{name}: {raw!r} has the UTC offset {raw_tz}, beyond ±14:00 "
            f"(MAX_UTC_OFFSET_MINUTES {MAX_UTC_OFFSET_MINUTES})",
            code="value",
            expression=name,
        )
    return timezone(timedelta(minutes=-total if raw_tz[0] == "-" else total))


def _out_of_range(raw: str, name: str) -> BadRequest:
    return BadRequest(
        f"{name}: {raw!r} lies outside the dates this network holds (EARLIEST_DATE "
        f"{EARLIEST_DATE.date()} to LATEST_DATE {LATEST_DATE.date()}, exclusive)",
        code="value",
        expression=name,
    )


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
    try:
        check_moment(start, name=name)
    except DateOutOfRange:
        raise _out_of_range(raw, name) from None
    if end > LATEST_DATE:
        raise _out_of_range(raw, name)
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
    if raw.isascii() and raw.isdigit() and int(raw) > MAX_PAGE_SIZE:
        # Refused, not clamped: a client must not believe it got everything it asked for.
        raise LimitExceeded("MAX_PAGE_SIZE", MAX_PAGE_SIZE, int(raw), expression="_count")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= max_count:
        raise BadRequest(
            f"_count must be an integer from 1 to {max_count}, not {raw!r}",
            code="value",
            expression="_count",
        )
    return int(raw)


def _total(values: list[str]) -> TotalMode | None:
    """Parse `_total` (FHIR R4 search.html#total): none, estimate or accurate, at most once."""
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest("_total may be given once", expression="_total")
    try:
        return TotalMode(values[0])
    except ValueError:
        allowed = ", ".join(m.value for m in TotalMode)
        raise BadRequest(
            f"_total={values[0][:40]} is not one of {allowed}", code="value", expression="_total"
        ) from None


_TOTAL_METHODS = frozenset({"count", "accurate", "estimate"})


def split_count_only(
    params: Sequence[tuple[str, str]],
) -> tuple[bool, list[tuple[str, str]]]:
    """Return whether a search asks for its total only, and the parameters without that ask.

    `_summary=count` and `_count=0` both ask for a Bundle with `total` and no entries (FHIR R4
    search.html#summary, #count); other `_summary` values are refused. `_totalMethod` (sent by
    fhirpy's `count()`, not a FHIR parameter) is accepted with count, accurate or estimate and
    dropped. What remains is for `parse_find_query`.
    """
    summaries = [v for n, v in params if n == "_summary"]
    if len(summaries) > 1:
        raise BadRequest("_summary may be given once", expression="_summary")
    if summaries and summaries[0] != "count":
        raise BadRequest(
            f"_summary={summaries[0][:40]} is not supported (only _summary=count)",
            code="not-supported",
            expression="_summary",
        )
    for name, value in params:
        if name == "_totalMethod" and value not in _TOTAL_METHODS:
            raise BadRequest(
                f"_totalMethod={value[:40]} is not one of {', '.join(sorted(_TOTAL_METHODS))}",
                expression="_totalMethod",
            )
    only_total = bool(summaries) or ("_count", "0") in params
    dropped = {"_summary", "_totalMethod", *(("_count",) if only_total else ())}
    return only_total, [(n, v) for n, v in params if n not in dropped]


def _too_costly(exc: LimitExceeded) -> BadRequest:
    return BadRequest(exc.message, code="too-costly", expression=exc.expression)


def _check_value(name: str, value: str) -> None:
    """Bound one value: its length, and for a comma list the number and length of its items."""
    if name == "_cursor":
        check_count(len(value), limit=MAX_CURSOR_LENGTH, limit_name="MAX_CURSOR_LENGTH", name=name)
        return
    if name not in _LIST_PARAMS:
        check_length(value, name=name)
        return
    if len(value) > _MAX_LIST_CHARS:
        # Too long to split cheaply: name the limit the value breaks.
        commas = value.count(",")
        if commas >= MAX_OR_VALUES:
            raise LimitExceeded("MAX_OR_VALUES", MAX_OR_VALUES, commas + 1, expression=name)
        check_length(value, name=name)
    parts = _split_commas(value)
    check_count(len(parts), limit=MAX_OR_VALUES, limit_name="MAX_OR_VALUES", name=name)
    for part in parts:
        check_length(part, name=name)


def _bounded(params: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Group the parameters by name, refusing more than the limits allow (before any parsing)."""
    check_count(len(params), limit=MAX_PARAMETERS, limit_name="MAX_PARAMETERS")
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        check_length(name, name=name[:MAX_STRING_LENGTH])
        values = grouped.setdefault(name, [])
        values.append(value)
        check_count(
            len(values), limit=MAX_PARAMETER_REPEATS, limit_name="MAX_PARAMETER_REPEATS", name=name
        )
        _check_value(name, value)
    return grouped


def parse_find_query(
    params: Sequence[tuple[str, str]], *, max_count: int = MAX_PAGE_SIZE
) -> tuple[DocumentQuery, PageCursor | None]:
    """Parse ITI-67 query (or form) parameters into a DocumentQuery and the paging cursor.

    The one entry point for every party that reads an ITI-67 query (the sources, and the hub
    before it fans out), so that they refuse exactly the same requests. Raises only MhdError:
    BadRequest (400) for anything malformed or over a limit, NotAcceptable (406) for `_format`.
    `max_count` is the largest `_count` this server serves; never above MAX_PAGE_SIZE.
    """
    try:
        grouped = _bounded(params)
        return _parse(grouped, min(max_count, MAX_PAGE_SIZE))
    except LimitExceeded as exc:
        raise _too_costly(exc) from None
    except DomainError as exc:
        raise BadRequest(exc.message, expression=exc.expression) from None


def _parse(
    grouped: dict[str, list[str]], max_count: int
) -> tuple[DocumentQuery, PageCursor | None]:
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
        total=_total(grouped.get("_total", [])),
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
    if query.total is not None:
        out.append(("_total", query.total.value))
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


def searchset_bundle_bytes(
    *,
    matches: Sequence[tuple[str, bytes]],
    self_url: str,
    next_url: str | None,
    total: int | None,
    outcomes: Sequence[dict[str, Any]] = (),
) -> bytes:
    """Build `searchset_bundle` as JSON bytes around resources that are already JSON.

    `matches` holds (id, resource JSON) per match, spliced in as they are: no resource is
    parsed or encoded again. The bytes are those `orjson.dumps(searchset_bundle(...))` gives.
    """
    head = searchset_bundle(resources=[], self_url=self_url, next_url=next_url, total=total)
    if not matches and not outcomes:
        return orjson.dumps(head)
    base = self_url.split("?", 1)[0].rstrip("/")
    parts: list[bytes] = []
    for resource_id, resource in matches:
        parts += (b'{"fullUrl":', orjson.dumps(f"{base}/{resource_id}"), b',"resource":')
        parts += (resource, b',"search":{"mode":"match"}},')
    for outcome in outcomes:
        entry = {
            "fullUrl": f"urn:uuid:{uuid4()}",
            "resource": outcome,
            "search": {"mode": "outcome"},
        }
        parts += (orjson.dumps(entry), b",")
    parts[-1] = parts[-1][:-1]  # the last entry's comma
    return orjson.dumps(head)[:-1] + b',"entry":[' + b"".join(parts) + b"]}"
