"""What the hub checks of a caller's request before it asks any region.

A failure caused by the caller's own request is the caller's error, never a region's (issue 10
A): the hub refuses it itself with 400 and an OperationOutcome naming the parameter or limit, so
no region is called and no circuit breaker moves. It checks with the code the sources use —
the ITI-67 parser (`mhd.iti67`, bounded by `domain.limits`), the access-basis parser
(`AccessBasis.parse`), the identity-number parser — and it parses the very query it would send
to the regions, so that it never forwards what a region would refuse.

A snapshot page (`_snapshot`, from a `next` link) takes only `_snapshot`, `_offset` and
`_count`: anything else would be silently ignored, so it is refused.

References: IHE MHD ITI-67 §2:3.67.4.1.2 (parameters), §2:3.67.4.2.3 (errors as
OperationOutcome); FHIR R4 §3.1.1.4 (_count), §3.1.1.2 (strict handling).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.domain.limits import MAX_CURSOR_LENGTH, MAX_HEADER_LENGTH, MAX_PARAMETERS
from onerecord.domain.search import DocumentQuery
from onerecord.mhd import BadRequest, parse_find_query, render_query, split_count_only
from onerecord.trust.errors import PatientBindingFailed
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER, PATIENT_SALT_HEADER
from onerecord.trust.principal import AccessBasis

__all__ = [
    "ACCESS_BASIS_HEADER",
    "CREDENTIAL_HEADERS",
    "SNAPSHOT_PARAMS",
    "CheckedFind",
    "check_credential_headers",
    "check_find_request",
    "check_forwarded_headers",
    "check_snapshot_page",
    "parse_find_request",
]

ACCESS_BASIS_HEADER = "nhn-access-basis"
SNAPSHOT_PARAMS = frozenset({"_snapshot", "_offset", "_count"})
"""The parameters of a snapshot page: what the hub's own `next` links carry, nothing else."""

CREDENTIAL_HEADERS = frozenset({"authorization", "dpop"})
"""The access token and its DPoP proof: bounded and single before any signature is checked."""

_MAX_OFFSET_DIGITS = 9


def check_credential_headers(headers: Iterable[tuple[str, str]]) -> None:
    """Refuse an oversized or repeated `Authorization` or `DPoP` header before it is parsed."""
    for _checked in _single_bounded(headers, CREDENTIAL_HEADERS):
        pass  # each one is checked as it is read


def _single_bounded(
    headers: Iterable[tuple[str, str]], names: Iterable[str]
) -> Iterator[tuple[str, str]]:
    """Yield each header named in `names` (lower case), refusing a repeat or an oversized one."""
    wanted = frozenset(names)
    seen: Counter[str] = Counter()
    for raw_name, value in headers:
        name = raw_name.lower()
        if name not in wanted:
            continue
        seen[name] += 1
        if seen[name] > 1:
            raise BadRequest(f"the {name} header may be given once", expression=name)
        if len(value) > MAX_HEADER_LENGTH:
            raise _too_costly("MAX_HEADER_LENGTH", MAX_HEADER_LENGTH, len(value), name)
        yield name, value


def check_forwarded_headers(headers: Iterable[tuple[str, str]], forwarded: Iterable[str]) -> None:
    """Refuse a forwarded header a region would refuse: too long, repeated, or not parseable.

    `headers` are every (name, value) the caller sent, repeats included: the hub forwards one
    value, so a header given twice is refused rather than checked in one copy and sent in another.
    """
    names = {n.lower() for n in forwarded} | {PATIENT_SALT_HEADER, PATIENT_NIN_HEADER}
    for name, value in _single_bounded(headers, names):
        if name == ACCESS_BASIS_HEADER and value:
            try:
                AccessBasis.parse(value)  # as a source reads it (source.security)
            except ValueError:
                raise BadRequest(
                    f"{ACCESS_BASIS_HEADER} {value[:64]!r} is not a known access basis "
                    f"({', '.join(b.value for b in AccessBasis)})",
                    code="value",
                    expression=ACCESS_BASIS_HEADER,
                ) from None
        if name == PATIENT_NIN_HEADER and value:
            try:
                NationalIdentityNumber(value.strip())
            except InvalidIdentifier:
                raise PatientBindingFailed(
                    f"{PATIENT_NIN_HEADER} is not a national identity number"
                ) from None


def check_snapshot_page(params: Sequence[tuple[str, str]], *, max_page_size: int) -> None:
    """Refuse a snapshot page with anything but `_snapshot`, `_offset` and `_count`, once each."""
    if len(params) > MAX_PARAMETERS:
        raise _too_costly("MAX_PARAMETERS", MAX_PARAMETERS, len(params), None)
    names = Counter(name for name, _ in params)
    others = sorted(set(names) - SNAPSHOT_PARAMS)
    if others:
        raise BadRequest(
            "a snapshot page takes only _snapshot, _offset and _count; "
            f"not {', '.join(others[:5])} (search again to change the query)",
            code="not-supported",
            expression=others[0],
        )
    for name, repeats in names.items():
        if repeats > 1:
            raise BadRequest(f"{name} may be given once", expression=name)
    values = dict(params)
    snapshot = values["_snapshot"]
    if not snapshot:
        raise BadRequest("_snapshot: empty value", code="value", expression="_snapshot")
    if len(snapshot) > MAX_CURSOR_LENGTH:
        raise _too_costly("MAX_CURSOR_LENGTH", MAX_CURSOR_LENGTH, len(snapshot), "_snapshot")
    offset = values.get("_offset")
    if offset is not None and not _digits(offset, _MAX_OFFSET_DIGITS):
        raise BadRequest(
            f"_offset must be an integer from 0 to {10**_MAX_OFFSET_DIGITS - 1}",
            code="value",
            expression="_offset",
        )
    page_size = values.get("_count")
    if page_size is not None and not (
        _digits(page_size, 9) and 1 <= int(page_size) <= max_page_size
    ):
        raise BadRequest(
            f"_count must be an integer from 1 to {max_page_size}",
            code="value",
            expression="_count",
        )


@dataclass(frozen=True, slots=True)
class CheckedFind:
    """An ITI-67 search as the hub checked it, for `HubService.find` to use without parsing it
    again: the caller's query, whether only its total is asked, the parameters without that
    ask, and the query each region will receive (already rendered and parsed as a region does).
    """

    query: DocumentQuery
    only_total: bool
    params: list[tuple[str, str]]
    region_params: list[tuple[str, str]]


def check_find_request(
    params: Sequence[tuple[str, str]], *, max_page_size: int, region_page_size: int
) -> CheckedFind | None:
    """Refuse an ITI-67 search (or snapshot page) the hub or a region would refuse.

    The query is parsed as the caller sent it, then the query each region will receive is
    rendered and parsed again as a region parses it (`HubService.find` sends `render_query`
    with `_count` = `region_page_size`). `parse_find_query` bounds the work first
    (`domain.limits`: parameters, repeats, lengths, OR-lists, dates). Returns what was parsed
    (None for a snapshot page), so that the search is not parsed a third time.
    """
    if any(name == "_snapshot" for name, _ in params):
        check_snapshot_page(params, max_page_size=max_page_size)
        return None
    checked = parse_find_request(
        params, max_page_size=max_page_size, region_page_size=region_page_size
    )
    parse_find_query(checked.region_params, max_count=region_page_size)
    return checked


def parse_find_request(
    params: Sequence[tuple[str, str]], *, max_page_size: int, region_page_size: int
) -> CheckedFind:
    """Parse an ITI-67 search (not a snapshot page) and render the query each region receives:
    the caller's query with `_count` = `region_page_size` (the hub collects every match and
    pages itself), and no `_total`: the hub counts the merged answer itself, and a region's
    total would cost it a count query nobody reads."""
    only_total, rest = split_count_only(params)  # `_summary=count` is the hub's to answer
    query, _cursor = parse_find_query(rest, max_count=max_page_size)
    region_params = render_query(replace(query, count=region_page_size, total=None), None)
    return CheckedFind(query, only_total, rest, region_params)


def _too_costly(limit: str, allowed: int, seen: int, expression: str | None) -> BadRequest:
    return BadRequest(
        f"{limit}: at most {allowed} allowed, {seen} given",
        code="too-costly",
        expression=expression,
    )


def _digits(value: str, most: int) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= most
