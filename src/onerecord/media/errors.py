"""The media archive's exceptions, turned into DIMSE statuses (and later HTTP) only at the edge.

MediaError
├── InvalidInstance      the instance lacks or garbles what the archive indexes it by
├── InstanceConflict     the instance contradicts what is stored (its study is another
│                        patient's, its series another study's)
├── InvalidQuery         a C-FIND identifier the archive cannot match
├── TooManyMatches       a query or retrieve over the configured maximum
├── ContentWriteFailed   the bytes could not be made durable (nothing was registered)
├── InstanceNotAuthorised  a DICOMweb store of an instance of another patient than the bound one
└── AccessRefused        the trust framework refused a DICOMweb request (403, `reason`)
    ├── NotShown         a study, series or instance absent or not the caller's: 404 alike
    └── ControlsUnavailable  the patient's controls could not be read from the region's
                         source: refused, fail closed (503)
"""

from __future__ import annotations

__all__ = [
    "CONTROLS_UNAVAILABLE",
    "NOT_SHOWN",
    "AccessRefused",
    "ContentWriteFailed",
    "ControlsUnavailable",
    "InstanceConflict",
    "InstanceNotAuthorised",
    "InvalidInstance",
    "InvalidQuery",
    "MediaError",
    "NotShown",
    "SopClassMismatch",
    "TooManyMatches",
]


class MediaError(Exception):
    """Something the media archive refused or could not do."""


class InvalidInstance(MediaError):
    """The instance lacks or garbles an attribute the archive needs (UIDs, patient)."""


class SopClassMismatch(InvalidInstance):
    """The data set's SOP Class UID is not the one the request named (C-STORE A900)."""


class InstanceConflict(MediaError):
    """The instance contradicts the stored hierarchy (patient → study → series)."""


class InvalidQuery(MediaError):
    """A query the archive cannot match (unknown level, a malformed date range)."""


class ContentWriteFailed(MediaError):
    """The instance's bytes were not stored; nothing was registered."""


class TooManyMatches(MediaError):
    """A query or retrieve matches more than the archive answers at once."""


class InstanceNotAuthorised(MediaError):
    """The instance is of another patient than the one the caller is bound to (STOW 0124)."""


class AccessRefused(MediaError):
    """The access policy refused the request; `reason` is a stable DenialReason-like code."""

    status = 403

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


NOT_SHOWN = "no such study, series or instance"


class NotShown(AccessRefused):
    """Answered as if the resource did not exist (404, one body); `reason` for the audit only."""

    status = 404

    def __init__(self, *, reason: str) -> None:
        super().__init__(NOT_SHOWN, reason=reason)


CONTROLS_UNAVAILABLE = "patient-controls-unavailable"


class ControlsUnavailable(AccessRefused):
    """The source could not be asked for the patient's controls: refused (503), fail closed."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=CONTROLS_UNAVAILABLE)
