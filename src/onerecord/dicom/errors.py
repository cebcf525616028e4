"""Errors of the DICOMweb wire, each carrying the HTTP status the edge answers with.

    DicomWireError                  any status below
    ├── InvalidRequest          400  malformed query, path, header, body or DICOM JSON
    ├── NotFound                404  a frame number beyond the instance's frames
    ├── NotAcceptable           406  the Accept header names nothing this archive produces
    ├── StoreConflict           409  no instance of a STOW-RS request could be stored
    ├── PayloadTooLarge         413  a body or one part of it over the configured bound
    └── UnsupportedMediaType    415  a Content-Type (or multipart `type`) we do not take

Every parser of outside input in `onerecord.dicom` raises one of these, never a pydicom,
binascii, orjson or ValueError. Messages name the parameter or attribute at fault and hold no
attribute values (no patient names or identifiers) so they can be logged and returned as is.

References: DICOM PS3.18 §8.5 (status codes of the Studies Service), §10.5.3 (STOW-RS 409),
RFC 9110 §15.5 (4xx).
"""

from __future__ import annotations

__all__ = [
    "DicomWireError",
    "InvalidRequest",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "StoreConflict",
    "UnsupportedMediaType",
]


class DicomWireError(Exception):
    """A DICOMweb request that cannot be served; `status` is its HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class InvalidRequest(DicomWireError):
    """400: the request is malformed (PS3.18 §8.5)."""

    status = 400


class NotFound(DicomWireError):
    """404: the request names something that does not exist (a frame beyond the last)."""

    status = 404


class NotAcceptable(DicomWireError):
    """406: no representation we produce is acceptable to the client (PS3.18 §8.7.3)."""

    status = 406


class StoreConflict(DicomWireError):
    """409: the store request could not be carried out at all (PS3.18 §10.5.3)."""

    status = 409


class PayloadTooLarge(DicomWireError):
    """413: the body, or one part of it, is over the configured bound."""

    status = 413


class UnsupportedMediaType(DicomWireError):
    """415: a Content-Type this archive does not accept (PS3.18 §10.5.1)."""

    status = 415
