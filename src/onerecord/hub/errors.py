"""Errors of the national hub, turned into OperationOutcome only at the HTTP edge.

HubError
├── DirectoryError        the region directory file cannot be read or is invalid
├── UnknownCommunity      no region in the directory has this homeCommunityId (404)
├── SnapshotExpired       a paging snapshot is gone; search again (410)
└── SnapshotNotFound      no snapshot with this id for this caller (404)
"""

from __future__ import annotations

__all__ = [
    "DirectoryError",
    "HubError",
    "SnapshotExpired",
    "SnapshotNotFound",
    "UnknownCommunity",
]


class HubError(Exception):
    """A request to the hub could not be served as asked."""

    status = 500
    code = "exception"

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


class DirectoryError(HubError):
    """The region directory is missing or invalid."""


class UnknownCommunity(HubError):
    """No region serves this homeCommunityId (XCA XDSUnknownCommunity)."""

    status = 404
    code = "not-found"


class SnapshotExpired(HubError):
    """The paging snapshot has expired; the client must search again."""

    status = 410
    code = "expired"


class SnapshotNotFound(HubError):
    """No snapshot with this id exists for this caller."""

    status = 404
    code = "not-found"
