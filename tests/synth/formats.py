"""Independent checks of the byte formats the generator writes (PDF, PNG, XML, FHIR JSON)."""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle
from lxml import etree  # type: ignore[import-untyped]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_pdf(data: bytes) -> int:
    """Assert the PDF's structure and cross-reference table; return the number of objects."""
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF")
    startxref = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data)
    assert startxref, "no startxref"
    xref_at = int(startxref.group(1))
    assert data[xref_at : xref_at + 4] == b"xref"
    header = re.match(rb"xref\n0 (\d+)\n", data[xref_at:])
    assert header
    size = int(header.group(1))
    table = data[xref_at + header.end() :]
    rows = [table[i * 20 : (i + 1) * 20] for i in range(size)]
    assert rows[0] == b"0000000000 65535 f \n"
    for number, row in enumerate(rows[1:], start=1):
        assert len(row) == 20 and row.endswith(b" n \n"), row
        offset = int(row[:10])
        assert data[offset:].startswith(f"{number} 0 obj\n".encode()), number
    trailer = data[xref_at + header.end() + 20 * size :]
    assert trailer.startswith(b"trailer")
    assert f"/Size {size}".encode() in trailer
    for match in re.finditer(rb"<< /Length (\d+) >>\nstream\n", data):
        end = match.end() + int(match.group(1))
        assert data[end : end + 9] == b"endstream"
    return size - 1


def check_png(data: bytes) -> tuple[int, int]:
    """Assert signature, chunk CRCs and pixel data size; return (width, height)."""
    assert data.startswith(PNG_SIGNATURE)
    pos = len(PNG_SIGNATURE)
    chunks: list[tuple[bytes, bytes]] = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (8, 0)
    pixels = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    assert len(pixels) == height * (1 + width)
    return width, height


def parse_xml(data: bytes) -> Any:
    """Parse with a hardened parser (no network, no entities); raise if not well-formed."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def check_fhir_document(data: bytes) -> dict[str, Any]:
    """Assert a valid R4B document Bundle whose references all resolve; return it as JSON."""
    bundle: dict[str, Any] = orjson.loads(data)
    Bundle.model_validate(bundle)  # fhir.resources as the oracle
    assert bundle["type"] == "document"
    assert bundle["identifier"]["value"] and bundle["timestamp"]
    entries = bundle["entry"]
    assert entries[0]["resource"]["resourceType"] == "Composition"
    full_urls = [e["fullUrl"] for e in entries]
    assert len(set(full_urls)) == len(full_urls)
    for entry in entries:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    references = re.findall(rb'"reference":\s*"([^"]+)"', data)
    assert references and {r.decode() for r in references} <= set(full_urls)
    return bundle
