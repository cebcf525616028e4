"""Where access policy and audit slot into the source's request path.

Every search and retrieve passes an `AccessGuard` before any data leaves and reports to an
`AccessRecorder` afterwards, allowed or denied (F5). The trust framework's implementations are
in `onerecord.source.security`; `OpenAccess` and `NoAudit` serve development open access
(`dev_open_access`, only with `dev_mode`) and the storage benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from onerecord.domain import DocumentEntry, DocumentQuery, NationalIdentityNumber
from onerecord.mhd import MhdError
from onerecord.trust.policy import EntryFacts

__all__ = [
    "AccessGuard",
    "AccessRecorder",
    "AccessRefused",
    "CallerContext",
    "NO_SUCH_DOCUMENT",
    "DocumentNotShown",
    "EntryView",
    "NoAudit",
    "OpenAccess",
    "RetrieveGrant",
    "SearchGrant",
]


@dataclass(frozen=True, slots=True)
class CallerContext:
    """What the edge learned about the caller: filled by authentication, opaque to the store.

    `token_jti` is what the audit may keep of the caller's token (F6); `headers` holds the
    request headers the policy reads (patient, salt, access basis), lower-case names.
    `asserted_patient` is the patient a signed SAML assertion names in the clear (XUA
    `resource-id`, ATT-4): it binds the request to that patient as the salted digest of an
    attestation does on the MHD path (`onerecord.source.xca_gateway`).
    """

    correlation_id: str
    principal: object | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token_jti: str | None = None
    via_hub: bool = False
    asserted_patient: NationalIdentityNumber | None = None


class AccessRefused(MhdError):
    """The access policy refused the request (403); `reason` is a stable DenialReason code."""

    reason: str

    def __init__(self, message: str, *, reason: str, status: int = 403) -> None:
        super().__init__(message, status=status, code="forbidden", reason=reason)


NO_SUCH_DOCUMENT = "no document with this retrieve key is available"
"""The one answer to a retrieve of a document that is not there or not the caller's to know."""


class DocumentNotShown(AccessRefused):
    """Refused so that the caller cannot tell the document from one that does not exist.

    The source answers it exactly as a made-up retrieve key (404, same body); `reason` goes to
    the audit only: wrong-patient, document-restricted, or document-not-found.
    """

    def __init__(self, *, reason: str) -> None:
        super().__init__(NO_SUCH_DOCUMENT, reason=reason, status=404)


@dataclass(frozen=True, slots=True)
class EntryView:
    """How one entry may be shown: in full or as a masked placeholder (hidden → no view).

    `emergency`: shown only because of an emergency or elevated access (D2, D3). `entry` is what
    the policy read: a DocumentEntry, or a registry row that answers the same fields (a search).
    """

    entry: EntryFacts
    masked: bool = False
    emergency: bool = False
    handle: str | None = None
    """A masked entry's placeholder id, when the policy names it (trust.emergency.masked_handle)."""


def _show_all(entry: EntryFacts) -> EntryView | None:
    return EntryView(entry)


@dataclass(frozen=True, slots=True)
class SearchGrant:
    """The query as narrowed by policy, and how to show each entry it returns.

    `empty`: answer with an empty searchset without asking the registry (reservation, D4;
    citizen 12–15, E2); `empty_reason` is the DenialReason code that says why, for the caller.
    """

    query: DocumentQuery
    viewer: Callable[[EntryFacts], EntryView | None] = _show_all
    empty: bool = False
    empty_reason: str | None = None

    def view(self, entry: EntryFacts) -> EntryView | None:
        return self.viewer(entry)


@dataclass(frozen=True, slots=True)
class RetrieveGrant:
    """Permission to read one document's bytes; `emergency` marks a D2/D3 unlock."""

    emergency: bool = False


class AccessGuard(Protocol):
    async def authorize_search(self, caller: CallerContext, query: DocumentQuery) -> SearchGrant:
        """Return the narrowed query or raise a denial."""

    async def authorize_retrieve(
        self, caller: CallerContext, entry: DocumentEntry | None
    ) -> RetrieveGrant:
        """Return if the caller may read the bytes of `entry`, else raise a denial.

        `entry` None: no document has the key. The request is checked all the same, so that
        whether a document exists never changes the answer before it is DocumentNotShown.
        """


class AccessRecorder(Protocol):
    async def searched(
        self, caller: CallerContext, query: DocumentQuery, returned: Sequence[EntryView]
    ) -> None: ...

    async def retrieved(
        self, caller: CallerContext, entry: DocumentEntry, grant: RetrieveGrant
    ) -> None: ...

    async def denied(
        self,
        caller: CallerContext,
        action: str,
        reason: str,
        *,
        patient: str | None = None,
        document: str | None = None,
    ) -> None: ...


class OpenAccess:
    """Allows everything: for development open access and the storage benchmarks only."""

    async def authorize_search(self, caller: CallerContext, query: DocumentQuery) -> SearchGrant:
        return SearchGrant(query)

    async def authorize_retrieve(
        self, caller: CallerContext, entry: DocumentEntry | None
    ) -> RetrieveGrant:
        return RetrieveGrant()


class NoAudit:
    """Records nothing."""

    async def searched(
        self, caller: CallerContext, query: DocumentQuery, returned: Sequence[EntryView]
    ) -> None:
        return None

    async def retrieved(
        self, caller: CallerContext, entry: DocumentEntry, grant: RetrieveGrant
    ) -> None:
        return None

    async def denied(
        self,
        caller: CallerContext,
        action: str,
        reason: str,
        *,
        patient: str | None = None,
        document: str | None = None,
    ) -> None:
        return None
