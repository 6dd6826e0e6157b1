"""The server's log lines: JSON lines for machines, readable lines on a terminal, ids in context.

:func:`configure` puts one handler on the root logger (replacing the one it put there before):

* ``json`` (the default when stderr is not a terminal): one object per line with ``ts`` (UTC,
  ISO 8601, milliseconds), ``level``, ``logger``, ``msg``, the context ids, and ``exc`` for a
  traceback;
* ``text`` (the default on a terminal): ``2026-01-05 14:03:07.120 INFO  mspclaw.pipeline: msg
  [ticket_id=... session_id=...]``.

The level applies to the root logger, so the application's INFO lines reach the handler, and
uvicorn's loggers, which propagate to it (the server starts uvicorn with ``log_config=None``).

**Context.** :func:`bind` sets ids (``ticket_id``, ``session_id``, ``client_id``, ``agent_id``,
``job_id``) in a :class:`contextvars.ContextVar` for the code that runs after it in the same task:
an asyncio task copies its context when it is created, so ids bound at the start of a ticket's
task stay with every line that task logs, and never leak into another ticket's.

**Secrets.** Records of the ``mspclaw`` loggers are redacted when they are made
(``store/log_redaction.py``, installed by the composition root); the handler redacts every other
record too (uvicorn's access lines carry request paths) through the same rules, so no formatter
here ever sees a secret. Context ids are identifiers, not secrets.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Literal

LogFormat = Literal["auto", "json", "text"]
CONTEXT_KEYS = ("ticket_id", "session_id", "client_id", "agent_id", "job_id")
MAX_MESSAGE = 16_384
"""Characters of one message written; a longer one is cut and says so."""

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("mspclaw_log_context", default=_EMPTY)
_HANDLER_NAME = "mspclaw"


def current() -> Mapping[str, str]:
    """The ids bound in this context."""
    return _context.get()


def bind(**ids: str | None) -> None:
    """Add ids to this context (a ``None`` value is left out) for the rest of the current task."""
    if unknown := set(ids) - set(CONTEXT_KEYS):
        raise ValueError(f"unknown log context keys: {sorted(unknown)}")
    _context.set(MappingProxyType({**_context.get(), **{k: str(v)[:100] for k, v in ids.items() if v is not None}}))


@contextmanager
def context(**ids: str | None) -> Iterator[None]:
    """Ids bound for the ``with`` block only."""
    token = _context.set(_context.get())
    bind(**ids)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (``record.mspclaw_context``) as it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "mspclaw_context"):
            record.mspclaw_context = dict(_context.get())
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(record: logging.LogRecord) -> str:
    text = record.getMessage()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + f"... [{len(text) - MAX_MESSAGE} more]"


def _ids(record: logging.LogRecord) -> dict[str, str]:
    ids = getattr(record, "mspclaw_context", None)
    return dict(ids) if isinstance(ids, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name,
                                   "msg": _message(record), **_ids(record)}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A line a person reads: time, level, logger, message, then the ids in brackets."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        ids = _ids(record)
        tail = f" [{' '.join(f'{k}={v}' for k, v in ids.items())}]" if ids else ""
        text = f"{stamp} {record.levelname:<7} {record.name}: {_message(record)}{tail}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + record.stack_info
        return text


def resolve_format(fmt: LogFormat, stream: IO[str]) -> Literal["json", "text"]:
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(level: str = "INFO", fmt: LogFormat = "auto", *, stream: IO[str] | None = None,
              redact: Callable[[logging.LogRecord], None] | None = None) -> logging.Handler:
    """Log every record at ``level`` and above to ``stream`` (default stderr) in ``fmt``; idempotent.

    ``redact`` is applied to every record the handler writes (the store's record redaction).
    Returns the handler, which a caller may remove again.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if resolve_format(fmt, out) == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    if redact is not None:
        scrub = redact

        def redacting(record: logging.LogRecord) -> bool:
            scrub(record)
            return True

        handler.addFilter(redacting)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler
