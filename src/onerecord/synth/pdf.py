"""A minimal PDF writer for synthetic documents: text pages in Helvetica, WinAnsi encoding.

Written by hand (objects, cross-reference table, trailer) so the output is small, valid and
byte-for-byte reproducible.

References: ISO 32000-1:2008 7.5 (file structure: header, body, xref, trailer), 9.6.2.2 (standard
14 fonts), D.2 (WinAnsiEncoding), 9.4.3 (text operators).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["PdfParagraph", "render_pdf"]

_PAGE_WIDTH = 595  # A4 in points
_PAGE_HEIGHT = 842
_MARGIN = 56
_WRAP = 92  # characters per line at 10 pt Helvetica, a safe estimate


@dataclass(frozen=True, slots=True)
class PdfParagraph:
    """A block of text; headings are set in Helvetica-Bold."""

    text: str
    heading: bool = False


def _escape(text: str) -> bytes:
    """Encode text as a PDF literal string in WinAnsi (cp1252), escaping \\, ( and )."""
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _text_string(text: str) -> bytes:
    """Encode a document-information text string as UTF-16BE with a BOM (PDF 1.7 §7.9.2.2)."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _lines(paragraphs: Sequence[PdfParagraph]) -> list[tuple[str, bool]]:
    lines: list[tuple[str, bool]] = []
    for paragraph in paragraphs:
        if paragraph.heading:
            lines.append(("", False))
            lines.append((paragraph.text, True))
            continue
        for chunk in paragraph.text.split("\n"):
            wrapped = textwrap.wrap(chunk, _WRAP) or [""]
            lines.extend((line, False) for line in wrapped)
        lines.append(("", False))
    return lines


def _page_stream(lines: Sequence[tuple[str, bool]]) -> bytes:
    out = [b"BT", b"14 TL", f"{_MARGIN} {_PAGE_HEIGHT - _MARGIN} Td".encode()]
    for text, bold in lines:
        out.append(b"/F2 11 Tf" if bold else b"/F1 10 Tf")
        out.append(b"(" + _escape(text) + b") Tj T*")
    out.append(b"ET")
    return b"\n".join(out) + b"\n"


def _pdf_date(moment: datetime) -> str:
    return moment.strftime("D:%Y%m%d%H%M%SZ") if moment.utcoffset() is not None else ""


def render_pdf(
    title: str, paragraphs: Sequence[PdfParagraph], *, author: str, created: datetime
) -> bytes:
    """Return a complete PDF of the paragraphs, title set in bold on the first page."""
    lines = [(title, True), ("", False), *_lines(paragraphs)]
    per_page = (_PAGE_HEIGHT - 2 * _MARGIN) // 14
    pages = [lines[i : i + per_page] for i in range(0, len(lines), per_page)]
    # Object numbers: 1 catalog, 2 pages, 3 Helvetica, 4 Helvetica-Bold, 5 info,
    # then for each page: page object and content stream.
    objects: list[bytes] = []
    kids = " ".join(f"{6 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for number, base in ((3, "Helvetica"), (4, "Helvetica-Bold")):
        del number
        objects.append(
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} "
            "/Encoding /WinAnsiEncoding >>".encode()
        )
    objects.append(
        b"<< /Title " + _text_string(title) + b" /Author " + _text_string(author) + b" "
        b"/Producer (onerecord synth, synthetic data) /CreationDate ("
        + _pdf_date(created).encode()
        + b") >>"
    )
    for i, page in enumerate(pages):
        stream = _page_stream(page)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_WIDTH} {_PAGE_HEIGHT}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
            f"/Contents {7 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"endstream")
    body = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref_at = len(body)
    body += f"xref\n0 {len(objects) + 1}\n".encode()
    body += b"0000000000 65535 f \n"
    for offset in offsets:
        body += f"{offset:010d} 00000 n \n".encode()
    body += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 5 0 R >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode()
    return bytes(body)
