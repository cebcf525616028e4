"""WS-Addressing reply endpoints: which caller-named addresses a gateway may send an answer to.

An asynchronous request names where its answer goes (wsa:ReplyTo, wsa:FaultTo). A gateway that
posts to whatever address a caller writes there forges requests for the caller into any network
it can reach (SSRF), so an answer goes only to an endpoint the operator listed. An entry of the
list is an absolute http(s) URL with a path: ending in "/" it is a prefix, otherwise the one
exact URL. An address is read strictly before it is compared: a small set of URL characters, no
user information, no fragment, no dot segments and no encoded dots, slashes or backslashes (which
another parser might read as another path), scheme and host compared without case and the
default port made explicit.

References: W3C WS-Addressing 1.0 Core §2 (endpoint references, the anonymous and none
addresses), §3.2 (MessageID: an absolute IRI); IHE ITI TF-2 Appendix V (WS-Addressing,
asynchronous exchange); RFC 3986 §3 (URI syntax), §5.2.4 (dot segments).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from onerecord.xca.errors import ParseProblem, XcaParseError

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "ReplyAllowList",
    "ReplyEndpoint",
    "check_message_id",
]

MAX_ADDRESS_LENGTH = 2048
MAX_MESSAGE_ID_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Unreserved, sub-delims, ":", "/", "?", "%" and the brackets of an IPv6 literal; no "@" (user
# information), no "#" (fragment), no "\" and nothing outside ASCII.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?%!$&'()*+,;=\[\]]+")
_HOST = re.compile(r"[A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\]")
_MESSAGE_ID = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[\x21-\x7e]+")
_ENCODED_TRICKS = ("%2e", "%2f", "%5c", "%00")


@dataclass(frozen=True, slots=True)
class ReplyEndpoint:
    """One allowed reply endpoint: scheme, host, port, path (with query); prefix or exact."""

    scheme: str
    host: str
    port: int
    path: str
    prefix: bool

    @classmethod
    def parse(cls, entry: str) -> ReplyEndpoint:
        """Read one allow-list entry; ValueError when it is not an absolute http(s) URL."""
        parsed = _split(entry)
        if parsed is None:
            raise ValueError(f"reply endpoint {entry[:80]!r} is not an absolute http(s) URL")
        scheme, host, port, path = parsed
        if path in ("", "/") and not entry.endswith("/"):
            raise ValueError(
                f"reply endpoint {entry[:80]!r} names no path; end it with / for a prefix"
            )
        return cls(scheme, host, port, path, prefix=path.endswith("/"))

    def matches(self, scheme: str, host: str, port: int, path: str) -> bool:
        """Whether an already strictly read address is this endpoint (or under this prefix)."""
        if (scheme, host, port) != (self.scheme, self.host, self.port):
            return False
        return path.startswith(self.path) if self.prefix else path == self.path


def _split(address: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path with query) of a strictly formed http(s) URL, else None."""
    if not 0 < len(address) <= MAX_ADDRESS_LENGTH or not _URL_CHARACTERS.fullmatch(address):
        return None
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.fragment or port == 0:
        return None
    shown_host = f"[{host}]" if ":" in host else host
    if not _HOST.fullmatch(shown_host):
        return None
    path = parts.path
    lowered = path.lower()
    if any(trick in lowered for trick in _ENCODED_TRICKS):
        return None
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, shown_host, _DEFAULT_PORTS[scheme] if port is None else port, path


class ReplyAllowList:
    """The reply endpoints a gateway may answer to; empty: none (every async request refused)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.endpoints = tuple(ReplyEndpoint.parse(entry) for entry in entries)

    def __bool__(self) -> bool:
        return bool(self.endpoints)

    def check(self, address: str, *, what: str = "wsa:ReplyTo") -> str:
        """Return the address to send to, or raise XcaParseError (a Sender fault).

        The address returned is rebuilt from what was compared (scheme and host in lower
        case, the port explicit), so the request goes where the check looked.
        """
        if not self.endpoints:
            raise XcaParseError(
                f"this gateway answers asynchronously to no address; {what} must be anonymous"
            )
        parsed = _split(address)
        if parsed is None:
            raise XcaParseError(
                f"{what} is not an absolute http(s) URL of plain form", problem=ParseProblem.VALUE
            )
        if not any(endpoint.matches(*parsed) for endpoint in self.endpoints):
            raise XcaParseError(
                f"{what} is not a reply endpoint this gateway may answer to",
                problem=ParseProblem.VALUE,
            )
        scheme, host, port, path = parsed
        return f"{scheme}://{host}:{port}{path}"


def check_message_id(message_id: str | None) -> str:
    """Return the request's MessageID, which an asynchronous answer's RelatesTo names.

    WS-Addressing 1.0 Core §3.2 requires a MessageID of a request that expects a reply; it is
    an absolute IRI. Refused (a Sender fault): none, one that is not an absolute URI of
    printable ASCII, or one longer than 256 characters.
    """
    if not message_id:
        raise XcaParseError("an asynchronous request needs wsa:MessageID")
    if len(message_id) > MAX_MESSAGE_ID_LENGTH or not _MESSAGE_ID.fullmatch(message_id):
        raise XcaParseError(
            "wsa:MessageID is not an absolute URI of at most 256 printable ASCII characters",
            problem=ParseProblem.VALUE,
        )
    return message_id
