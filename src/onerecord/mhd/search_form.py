"""Read the form body of an ITI-67 `POST …/DocumentReference/_search`, bounded before parsing.

The hub and the sources read it with this one function, so both refuse the same bodies:
more than MAX_BODY_BYTES is a 413 as soon as it is known, more than MAX_PARAMETERS a 400 counted
on the raw bytes (100,000 parameters cost one scan, not a parse). `parse_find_query` then checks
every other limit (`domain.limits`).

References: FHIR R4 §3.1.1 (search via POST, application/x-www-form-urlencoded);
IHE MHD ITI-67 §2:3.67.4.1.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from urllib.parse import parse_qsl

from onerecord.domain.limits import MAX_BODY_BYTES, MAX_PARAMETERS
from onerecord.mhd.errors import BadRequest, PayloadTooLarge

__all__ = ["read_search_form"]


async def read_search_form(
    chunks: AsyncIterable[bytes], *, declared_length: str | None = None
) -> list[tuple[str, str]]:
    """Return the (name, value) pairs of a search form, refusing an oversized one early."""
    too_large = PayloadTooLarge(
        f"MAX_BODY_BYTES: a search form may hold at most {MAX_BODY_BYTES} bytes"
    )
    declared = declared_length or ""
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    if body and (count := body.count(b"&") + 1) > MAX_PARAMETERS:
        raise BadRequest(
            f"MAX_PARAMETERS: at most {MAX_PARAMETERS} allowed, {count} given",
            code="too-costly",
        )
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadRequest("the form body is not UTF-8") from None
