"""Asynchronous ITI-38/39: the answer sent to the request's WS-Addressing ReplyTo endpoint.

A request whose wsa:ReplyTo is not anonymous asks for its answer on a new connection. The
request is read, its assertion verified, the policy applied and the access audited exactly as
for a synchronous request (`RespondingGateway`), and a caller's fault is still answered at once
(SOAP Fault, 4xx). What would have been the synchronous answer is then acknowledged with HTTP
202 and an empty body, and POSTed in the background to the ReplyTo address as a message of its
own: wsa:Action the response action, a fresh wsa:MessageID, wsa:RelatesTo the request's
MessageID, wsa:To the ReplyTo address. The ITI-39 answer is the same MTOM message as the
synchronous one.

Only an address on the region's allow-list (`xca_reply_to`, `onerecord.xca.addressing`) is
ever sent to: any other ReplyTo or FaultTo is a Sender fault, audited as a denial, and nothing
leaves. A try that fails to connect, times out, or meets a 5xx, 408 or 429 is repeated after a
doubling wait, at most `xca_reply_attempts` tries; another answer (3xx, 4xx) ends it. A fault of
ours after the acknowledgement (the documents' bytes unreadable) goes to FaultTo (else ReplyTo)
as a SOAP Receiver fault relating to the request; with FaultTo anonymous or none it is dropped.
Each delivery ends in one log event (sent, given up, or failed) naming the endpoint's host, the
request's MessageID and what happened — never a body or an identity number.

References: IHE ITI TF-2 Appendix V (V.3.2 WS-Addressing; the asynchronous web services
exchange), the XCA Asynchronous Web Services Exchange option (ITI TF-1 XCA, ITI-38/39);
W3C WS-Addressing 1.0 Core §3.4 (replies: [destination], [relationship]) and SOAP Binding
(a non-anonymous reply endpoint: the HTTP response carries no SOAP envelope, 202 Accepted).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import IO

import anyio
import httpx
import structlog

from onerecord.logs import log_unexpected_error
from onerecord.source.access import AccessRecorder, CallerContext
from onerecord.source.settings import SourceSettings
from onerecord.source.xca_gateway import (
    ITI38_RESPONSE_ACTION,
    ITI39_RESPONSE_ACTION,
    Admit,
    RespondingGateway,
)
from onerecord.xca.addressing import ReplyAllowList, check_message_id
from onerecord.xca.errors import XcaParseError
from onerecord.xca.mtom import mtom_response
from onerecord.xca.soap import (
    ANONYMOUS,
    FAULT_ACTION,
    NONE_ADDRESS,
    SOAP12_MEDIA_TYPE,
    SoapEnvelope,
    render_envelope,
    render_fault,
)

__all__ = ["AsyncAnswers", "ReplyBacklog", "ReplyRoute"]

log = structlog.get_logger("onerecord.source.xca")

REFUSED_REASON = "reply-to-not-allowed"
"""The audited reason of a refused ReplyTo or FaultTo."""
_SPOOL_IN_MEMORY = 1024 * 1024
_CHUNK = 64 * 1024
_RETRIED_STATUSES = frozenset({408, 429})
_MAX_WAIT_S = 300.0


class ReplyBacklog(Exception):
    """More asynchronous answers are under way than this region sends at once (HTTP 503)."""

    retry_after_s = 5


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    """Where an accepted asynchronous request's answer and late faults go."""

    reply_to: str
    """The ReplyTo address as the caller wrote it (the answer's wsa:To)."""
    send_to: str
    """The same address as checked against the allow-list (where the answer is POSTed)."""
    fault_to: str | None
    fault_send_to: str | None
    """None: a late fault is dropped (FaultTo anonymous or none)."""
    relates_to: str
    correlation_id: str


@dataclass(slots=True)
class _Outcome:
    delivered: bool
    attempts: int
    last: str


class _Spool:
    """A message's bytes held for every try: in memory, past 1 MiB in an unnamed file."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        self.size = 0
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)

    async def fill(self, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            self.size += len(chunk)
            await anyio.to_thread.run_sync(self._file.write, chunk)

    async def chunks(self) -> AsyncIterator[bytes]:
        await anyio.to_thread.run_sync(self._file.seek, 0)
        while chunk := await anyio.to_thread.run_sync(self._file.read, _CHUNK):
            yield chunk

    def close(self) -> None:
        self._file.close()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _host(address: str) -> str:
    """The scheme, host and port of a checked address: what the log names of an endpoint."""
    scheme, _, rest = address.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


class AsyncAnswers:
    """Accepts asynchronous ITI-38/39 requests and delivers their answers in the background."""

    def __init__(
        self,
        *,
        allowed: ReplyAllowList,
        recorder: AccessRecorder,
        client: httpx.AsyncClient,
        attempts: int = 5,
        backoff_s: float = 1.0,
        max_pending: int = 64,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.allowed = allowed
        self.recorder = recorder
        self.client = client
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_pending = max_pending
        self._sleep = sleep
        self._reserved = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: SourceSettings, *, recorder: AccessRecorder) -> AsyncAnswers:
        """The region's allow-list, retry policy and its own HTTP client (no redirects)."""
        timeout = httpx.Timeout(settings.xca_reply_timeout_s, connect=10.0)
        client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,  # a redirect would lead off the allow-list
            trust_env=False,  # no proxy or credentials from the environment: only the setting
            proxy=settings.xca_reply_proxy,
        )
        return cls(
            allowed=ReplyAllowList(settings.xca_reply_to),
            recorder=recorder,
            client=client,
            attempts=settings.xca_reply_attempts,
            backoff_s=settings.xca_reply_backoff_s,
            max_pending=settings.xca_reply_max_pending,
        )

    @property
    def pending(self) -> int:
        """Answers accepted and not yet delivered or given up."""
        return self._reserved

    # --- accepting -------------------------------------------------------------------------

    async def route(self, envelope: SoapEnvelope, *, audit_action: str) -> ReplyRoute:
        """Check the request's reply addressing; a refusal is a Sender fault, audited.

        Refused: a ReplyTo of none, an address not on the allow-list (or not a plain http(s)
        URL), such a FaultTo, and a missing or odd MessageID (its RelatesTo would be unusable).
        """
        assert envelope.reply_to is not None  # an asynchronous request
        correlation_id = (envelope.message_id or "")[:64]
        try:
            if envelope.reply_to == NONE_ADDRESS:
                raise XcaParseError("wsa:ReplyTo none: this gateway answers every request")
            send_to = self.allowed.check(envelope.reply_to)
            fault_to = envelope.fault_to
            fault_send_to: str | None = send_to
            if fault_to in (ANONYMOUS, NONE_ADDRESS):
                fault_send_to = None  # the back channel is closed after the 202: dropped
            elif fault_to is not None:
                fault_send_to = self.allowed.check(fault_to, what="wsa:FaultTo")
        except XcaParseError:
            caller = CallerContext(correlation_id=correlation_id or "xca-async")
            await self.recorder.denied(caller, audit_action, REFUSED_REASON)
            raise
        relates_to = check_message_id(envelope.message_id)
        return ReplyRoute(
            reply_to=envelope.reply_to,
            send_to=send_to,
            fault_to=fault_to,
            fault_send_to=fault_send_to,
            relates_to=relates_to,
            correlation_id=correlation_id,
        )

    def _reserve(self) -> None:
        if self._reserved >= self.max_pending:
            raise ReplyBacklog("too many asynchronous answers under way; try again shortly")
        self._reserved += 1

    async def query(
        self,
        gateway: RespondingGateway,
        envelope: SoapEnvelope,
        *,
        correlation_id: str,
        admit: Admit | None = None,
    ) -> None:
        """Answer an ITI-38 request at its ReplyTo endpoint; return once it is accepted."""
        route = await self.route(envelope, audit_action="search")
        self._reserve()
        try:
            answer = await gateway.query(envelope, correlation_id=correlation_id, admit=admit)
            body = render_envelope(
                answer,
                action=ITI38_RESPONSE_ACTION,
                relates_to=route.relates_to,
                to=route.reply_to,
            )
        except BaseException:
            self._reserved -= 1
            raise
        media = f'{SOAP12_MEDIA_TYPE}; charset=UTF-8; action="{ITI38_RESPONSE_ACTION}"'
        self._start(route, ITI38_RESPONSE_ACTION, media, lambda: _once(body))

    async def retrieve(
        self,
        gateway: RespondingGateway,
        envelope: SoapEnvelope,
        *,
        correlation_id: str,
        admit: Admit | None = None,
    ) -> None:
        """Answer an ITI-39 request (MTOM) at its ReplyTo endpoint; return once accepted."""
        route = await self.route(envelope, audit_action="retrieve")
        self._reserve()
        try:
            answer = await gateway.retrieve(envelope, correlation_id=correlation_id, admit=admit)
            soap = render_envelope(
                answer.body,
                action=ITI39_RESPONSE_ACTION,
                relates_to=route.relates_to,
                to=route.reply_to,
            )
        except BaseException:
            self._reserved -= 1
            raise
        content_type, stream = mtom_response(soap, answer.parts, action=ITI39_RESPONSE_ACTION)
        self._start(route, ITI39_RESPONSE_ACTION, content_type, lambda: stream)

    def _start(
        self,
        route: ReplyRoute,
        action: str,
        content_type: str,
        body: Callable[[], AsyncIterator[bytes]],
    ) -> None:
        task = asyncio.create_task(self._deliver(route, action, content_type, body))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._reserved -= 1

    # --- delivering ------------------------------------------------------------------------

    async def _deliver(
        self,
        route: ReplyRoute,
        action: str,
        content_type: str,
        body: Callable[[], AsyncIterator[bytes]],
    ) -> None:
        fields = {"correlation_id": route.correlation_id, "action": action}
        spool = _Spool(content_type)
        try:
            try:
                stream = body()
                try:
                    await spool.fill(stream)
                finally:
                    close = getattr(stream, "aclose", None)
                    if close is not None:
                        await close()
            except Exception as exc:  # ours: the answer could not be made (e.g. bytes unreadable)
                log_unexpected_error(log, "xca.async_answer_failed", exc, **fields)
                await self._send_fault(route)
                return
            outcome = await self._post(route.send_to, spool)
            event = "xca.async_answer_sent" if outcome.delivered else "xca.async_answer_given_up"
            emit = log.info if outcome.delivered else log.warning
            emit(
                event,
                endpoint=_host(route.send_to),
                attempts=outcome.attempts,
                last=outcome.last,
                size=spool.size,
                **fields,
            )
        except Exception as exc:  # a bug of ours: logged once, never lost in a task
            log_unexpected_error(log, "xca.async_unexpected_error", exc, **fields)
        finally:
            spool.close()

    async def _send_fault(self, route: ReplyRoute) -> None:
        fields = {"correlation_id": route.correlation_id, "action": FAULT_ACTION}
        if route.fault_send_to is None:
            log.warning("xca.async_fault_dropped", fault_to="anonymous-or-none", **fields)
            return
        body = render_fault(
            "internal error; the answer could not be completed",
            code="Receiver",
            relates_to=route.relates_to,
            to=route.fault_to or route.reply_to,
        )
        spool = _Spool(f"{SOAP12_MEDIA_TYPE}; charset=UTF-8")
        try:
            await spool.fill(_once(body))
            outcome = await self._post(route.fault_send_to, spool)
        finally:
            spool.close()
        emit = log.info if outcome.delivered else log.warning
        emit(
            "xca.async_fault_sent" if outcome.delivered else "xca.async_fault_given_up",
            endpoint=_host(route.fault_send_to),
            attempts=outcome.attempts,
            last=outcome.last,
            **fields,
        )

    def _wait_s(self, attempt: int) -> float:
        """The wait before try `attempt` (2, 3, …): doubling, with up to a quarter's jitter."""
        base = min(self.backoff_s * 2.0 ** (attempt - 2), _MAX_WAIT_S)
        return base * (1 + random.random() / 4)  # noqa: S311 - spreading retries, not secrecy

    async def _post(self, address: str, spool: _Spool) -> _Outcome:
        """POST the message, retrying what may pass on its own; never follows a redirect."""
        last = ""
        headers = {"content-type": spool.content_type, "content-length": str(spool.size)}
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await self._sleep(self._wait_s(attempt))
            try:
                async with self.client.stream(
                    "POST", address, content=spool.chunks(), headers=headers
                ) as response:
                    status = response.status_code
            except httpx.HTTPError as exc:  # no connection, timeout, broken transfer
                last = type(exc).__name__
                continue
            last = str(status)
            if 200 <= status < 300:
                return _Outcome(True, attempt, last)
            if status < 500 and status not in _RETRIED_STATUSES:
                return _Outcome(False, attempt, last)  # the receiver refused it: final
        return _Outcome(False, self.attempts, last)

    async def close(self, *, grace_s: float = 5.0) -> None:
        """Let deliveries under way finish for `grace_s`, abandon the rest (logged), close."""
        if self._tasks:
            _, left = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in left:
                task.cancel()
            if left:
                await asyncio.gather(*left, return_exceptions=True)
                log.warning("xca.async_answers_abandoned", count=len(left))
        await self.client.aclose()
