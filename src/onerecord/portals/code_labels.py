"""Every code a page shows, said in the page's language (issue 11, defect 8; "The look").

A DocumentReference carries codes with Norwegian display texts (Volven). The pages show the
message `code.<kind>.<code>` instead, which has bokmål (the Volven name), nynorsk and English
(`messages/codes.toml`); document classes and types also have `….plain`, the same in plain
words («Epikrise» — «sammendrag etter sykehusopphold»). A code without a message falls back
to the display text the region sent, so an unknown code is still shown, never dropped.
The format column says what kind of file it is in plain words: by format code (HIS 1169),
else by media type (`code.mime.<type>`), else the media type as given.

Kinds: class and type (Volven 9602), confidentiality (Volven 9603 and HL7), format (IHE
formatCode with HIS 1169 codes), facility (Volven 1303), setting (Volven 8451), event (7210).
"""

from __future__ import annotations

from dataclasses import dataclass

from onerecord.portals.i18n import Translator, catalog

__all__ = ["KINDS", "MIME_SUFFICIENT", "CodeLabels", "message_key"]

KINDS = ("class", "type", "confidentiality", "format", "facility", "setting", "event", "modality")
MIME_SUFFICIENT = "urn:ihe:iti:xds:2017:mimeTypeSufficient"
"""The format code that leaves the kind of file to the media type."""


def message_key(kind: str, code: str) -> str:
    """The message id naming `code` of `kind` (it may not exist)."""
    return f"code.{kind}.{code}"


@dataclass(frozen=True, slots=True)
class CodeLabels:
    """Labels of codes in one language (templates get one as `codes`)."""

    t: Translator

    def label(self, kind: str, code: str, fallback: str = "") -> str:
        """The name of `code` in this language; `fallback` (the sender's text) if unknown."""
        key = message_key(kind, code)
        if code and key in catalog():
            return self.t(key)
        return fallback or code

    def plain(self, kind: str, code: str) -> str:
        """The code said in plain words ("" when there is no such text)."""
        key = f"{message_key(kind, code)}.plain"
        return self.t(key) if code and key in catalog() else ""

    def format(self, format_code: str, mime_type: str) -> str:
        """What kind of file a document is, in plain words (PDF, lab report, image …)."""
        if format_code and format_code != MIME_SUFFICIENT:
            key = message_key("format", format_code)
            if key in catalog():
                return self.t(key)
        mime = message_key("mime", mime_type)
        if mime_type and mime in catalog():
            return self.t(mime)
        return mime_type
