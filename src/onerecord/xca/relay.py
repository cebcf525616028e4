"""The caller's own SAML assertion, relayed unchanged by the hub to a region over FHIR.

A clinical system that asks the hub over XDS.b (ITI-18/43) proves who it is and which patient
it asks about with a SAML assertion its issuer (HelseID) signed. The hub verifies it, and so
does every region: the hub sends the assertion on as it came, so the region checks the issuer's
signature, the audience, the lifetime and `resource-id` itself and never takes the hub's word
for the caller or the patient. To an XCA region it travels in `wsse:Security` as the national
gateway forwards it; to an MHD region in the header `onerecord-xua-assertion`, beside the hub
assertion that says the hub relays it (its claim `xua_sha256` is the SHA-256 of the header's
bytes, so the two cannot be paired otherwise).

The header holds the assertion's XML, DEFLATE-compressed and base64url-encoded without padding
(the SAML HTTP-Redirect binding's encoding, SAML Bindings 2.0 §3.4.4.1), so that a signed
assertion with its certificate fits an HTTP header. Inflating is bounded (a small header cannot
expand past `MAX_ASSERTION_BYTES`), and the XML is read by the hardened reader.

References: IHE ITI TF-2 3.40.4.1 (XUA: the assertion travels with the request); SAML Bindings
2.0 §3.4.4.1 (DEFLATE encoding); TRUST-FRAMEWORK §2.4; ATT-4.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from onerecord.xca.errors import SamlProblem, SamlRefused, XcaParseError
from onerecord.xca.xml import SAML2, parse_xml, qname

__all__ = [
    "MAX_ASSERTION_BYTES",
    "MAX_HEADER_CHARS",
    "RELAY_CLAIM",
    "XUA_ASSERTION_HEADER",
    "encode_relayed",
    "read_relayed",
    "relay_digest",
]

XUA_ASSERTION_HEADER = "onerecord-xua-assertion"
RELAY_CLAIM = "xua_sha256"
"""The hub assertion's claim: base64url SHA-256 of the relayed header value."""
MAX_HEADER_CHARS = 24 * 1024
MAX_ASSERTION_BYTES = 64 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def relay_digest(header_value: str) -> str:
    """The value of the hub assertion's `xua_sha256` claim for this header value."""
    return _b64(hashlib.sha256(header_value.encode("ascii")).digest())


def encode_relayed(assertion: Any) -> str:
    """The header value of an assertion element: its XML, deflated, base64url."""
    xml = etree.tostring(assertion)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return _b64(compressor.compress(xml) + compressor.flush())


def _refuse(message: str) -> SamlRefused:
    return SamlRefused(message, problem=SamlProblem.SHAPE)


def read_relayed(header_value: str, *, digest: str) -> Any:
    """The relayed assertion element, after checking it is the one the hub assertion names.

    Raises SamlRefused for a header that is too long, not base64url, not DEFLATE, too large
    inflated, not the digest the hub signed, or not one saml:Assertion.
    """
    if len(header_value) > MAX_HEADER_CHARS:
        raise _refuse(f"{XUA_ASSERTION_HEADER} is longer than {MAX_HEADER_CHARS} characters")
    if not header_value.isascii():
        raise _refuse(f"{XUA_ASSERTION_HEADER} is not base64url")
    expected = relay_digest(header_value).encode("ascii", "replace")
    if not hmac.compare_digest(expected, digest.encode("ascii", "replace")):
        raise _refuse(f"{XUA_ASSERTION_HEADER} is not the assertion the hub relayed")
    try:
        raw = base64.urlsafe_b64decode(header_value + "=" * (-len(header_value) % 4))
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(raw, MAX_ASSERTION_BYTES + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise _refuse(f"{XUA_ASSERTION_HEADER} is not a deflated, base64url assertion") from None
    if len(xml) > MAX_ASSERTION_BYTES or inflater.unconsumed_tail:
        raise _refuse(f"the relayed assertion is larger than {MAX_ASSERTION_BYTES} bytes")
    try:
        root = parse_xml(xml, max_bytes=MAX_ASSERTION_BYTES)
    except XcaParseError as exc:
        raise _refuse(f"the relayed assertion: {exc.message}") from None
    if root.tag != qname(SAML2, "Assertion"):
        raise _refuse("the relayed value is not a saml:Assertion")
    return root
