"""One logging setup for every service: one JSON line per event, no personal data, no traceback.

Logs carry no health data and no personal identifiers (issue 10, D). An error is one event with
its name, the correlation id, the exception's type and where it was raised (module:function:line)
— never the traceback, whose frames hold local variables (national identity numbers, patient
salts, SQL parameters, upload bodies), and never the exception's message, which for SQLAlchemy
and asyncpg carries the statement's parameters. `redact` is the last line of defence for what
an event names itself: it drops values under keys such as `salt` or `body`, masks 11-digit
numbers (national identity numbers) and compact JWTs (tokens are named by their `jti` only),
and shortens long strings.

structlog events and the standard library's records (uvicorn's error log among them) go
through the same processors to the same handler, so no server prints a traceback past it.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import IO, Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "DropLoggedTwice",
    "configure_logging",
    "json_formatter",
    "log_unexpected_error",
    "logging_config",
    "redact",
    "summarise_exception",
]

MAX_TEXT = 200
"""Characters kept of any string value; the rest is dropped (bodies never fit in an event)."""

_SECRET_KEYS = frozenset(
    {
        "access_token",
        "assertion",
        "authorization",
        "body",
        "content",
        "cookie",
        "dpop",
        "fnr",
        "form",
        "nin",
        "params",
        "parameters",
        "password",
        "payload",
        "refresh_token",
        "salt",
        "secret",
        "statement",
        "token",
    }
)
_SECRET_SUFFIXES = ("_salt", "_body", "_password", "_secret", "_token", "_nin", "_params")
# Eleven digits on their own, also written 6+5 with a space or hyphen: a fødselsnummer or
# D-number. Every such number is masked, valid check digits or not; a false positive costs
# nothing.
_NIN = re.compile(r"(?<!\d)\d{6}[ -]?\d{5}(?!\d)")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_TRACEBACK = "Traceback (most recent call last):"
_TYPE_NAME = re.compile(r"[A-Za-z_][\w.]{0,200}")
_MAX_DEPTH = 4
_MAX_ITEMS = 50
_LOGGED_MARK = "_onerecord_logged"
_PACKAGE = "onerecord"


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _frame_name(tb: TracebackType) -> str:
    frame = tb.tb_frame
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name}:{tb.tb_lineno}"


def _locations(exc: BaseException) -> tuple[str | None, str | None]:
    """Where `exc` was raised, and the innermost frame of our own code (if another one)."""
    tb = exc.__traceback__
    ours: TracebackType | None = None
    last: TracebackType | None = None
    while tb is not None:
        last = tb
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_PACKAGE):
            ours = tb
        tb = tb.tb_next
    raised = _frame_name(last) if last is not None else None
    in_ours = _frame_name(ours) if ours is not None and ours is not last else None
    return raised, in_ours


def _exception_of(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        value = exc_info[1]
        return value if isinstance(value, BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def _drop_traceback_text(event_dict: EventDict) -> None:
    """Cut a traceback written into the message itself (Starlette's failed lifespan does)."""
    event = event_dict.get("event")
    if not isinstance(event, str) or _TRACEBACK not in event:
        return
    before, _, after = event.partition(_TRACEBACK)
    event_dict["event"] = before.strip() or "traceback"
    last = after.strip().splitlines()[-1] if after.strip() else ""
    name = last.split(":", 1)[0].strip()
    if _TYPE_NAME.fullmatch(name):
        event_dict.setdefault("error", name)


def summarise_exception(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Replace `exc_info` by the exception's type and location; drop any traceback text.

    The message is left out on purpose: database drivers put the statement's parameters in it.
    """
    exc = _exception_of(event_dict.pop("exc_info", None))
    for key in ("exception", "stack", "stack_info"):
        event_dict.pop(key, None)
    _drop_traceback_text(event_dict)
    if exc is None:
        return event_dict
    event_dict["error"] = _type_name(exc)
    raised, ours = _locations(exc)
    if raised:
        event_dict["raised_at"] = raised
    if ours:
        event_dict["onerecord_at"] = ours
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        event_dict["cause"] = _type_name(cause)
    if isinstance(exc, OSError) and isinstance(exc.errno, int):
        event_dict["errno"] = exc.errno
    return event_dict


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)


def _clean(value: object, depth: int) -> object:
    if isinstance(value, str):
        text = _JWT.sub("[jwt]", _NIN.sub("[nin]", value[: MAX_TEXT * 2]))
        if len(value) > MAX_TEXT:
            text = f"{text[:MAX_TEXT]}…[{len(value) - MAX_TEXT} characters dropped]"
        return text
    if isinstance(value, bool | float | type(None)):
        return value
    if isinstance(value, int):
        return "[nin]" if _NIN.fullmatch(str(value)) else value
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"
    if depth >= _MAX_DEPTH:
        return "[nested]"
    if isinstance(value, Mapping):
        return {
            str(k): ("[redacted]" if _is_secret(str(k)) else _clean(v, depth + 1))
            for k, v in list(value.items())[:_MAX_ITEMS]
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    return _clean(str(value), depth)


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Drop secret-named values, mask identity numbers and JWTs, shorten long strings."""
    for key in list(event_dict):
        if key.startswith("_"):
            continue  # structlog's own bookkeeping (_record, _from_structlog)
        value = event_dict[key]
        event_dict[key] = "[redacted]" if _is_secret(key) else _clean(value, 0)
    return event_dict


def _add_service(service: str) -> Processor:
    def add(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


class DropLoggedTwice(logging.Filter):
    """Drop the server's own report of an exception our error handler has logged already.

    Starlette re-raises an exception after its handler has answered 500, and uvicorn then
    logs it again ("Exception in ASGI application"); one error is one event.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and getattr(exc, _LOGGED_MARK, False))


def log_unexpected_error(
    logger: Any, event: str, exc: BaseException, *, correlation_id: str | None, **fields: Any
) -> None:
    """Log an error nobody handled as one event, and mark it so the server does not repeat it."""
    logger.error(event, exc_info=exc, correlation_id=correlation_id, **fields)
    try:
        setattr(exc, _LOGGED_MARK, True)
    except AttributeError:  # an exception type with __slots__: the server may log it once more
        pass


def _foreign_chain(service: str) -> list[Processor]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        summarise_exception,
        redact,
    ]


def json_formatter(service: str = "onerecord") -> logging.Formatter:
    """The standard library's formatter: a record as one redacted JSON line."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_foreign_chain(service),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )


def logging_config(
    level: int | str = logging.INFO,
    *,
    service: str = "onerecord",
    stream: IO[str] | str = "ext://sys.stderr",
) -> dict[str, Any]:
    """The standard library's configuration: every record as one redacted JSON line.

    Give it to uvicorn as `log_config` too: uvicorn applies it in each worker process (so it
    holds names, not objects: it is pickled to reach them).
    """
    level_name = logging.getLevelName(level) if isinstance(level, int) else level.upper()
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["once"],
        "stream": stream,
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"once": {"()": f"{__name__}.DropLoggedTwice"}},
        "formatters": {"json": {"()": f"{__name__}.json_formatter", "service": service}},
        "handlers": {"json": handler},
        # uvicorn's loggers keep no handler of their own: their records reach the root's.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "root": {"handlers": ["json"], "level": level_name},
    }


def configure_logging(
    level: int | str = logging.INFO,
    *,
    service: str = "onerecord",
    stream: IO[str] | str = "ext://sys.stderr",
) -> None:
    """Send structlog and the standard library through the same redacting JSON processors."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    logging.config.dictConfig(logging_config(numeric, service=service, stream=stream))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *_foreign_chain(service),  # the same steps as the standard library's records
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
