"""Secrets out of the ``mspclaw`` log records, whatever handler writes them.

A :class:`logging.Filter` set on the ``mspclaw`` logger would not see the records of its children
(``mspclaw.pipeline.tickets``...): the standard library consults a logger's filters only for records
logged on that very logger. :func:`install` therefore wraps the record factory instead, so every
record of the ``mspclaw`` tree is redacted when it is made, before any handler, formatter or
remote log shipper sees it: its message (with its arguments merged in) and its formatted exception
pass through :func:`~mspclaw.store.redact.redact_text`. Records of other loggers are left alone.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mspclaw.store.redact import redact_text

ROOT = "mspclaw"
_lock = threading.Lock()
_installed = False


class RedactingFilter(logging.Filter):
    """Redacts a record in place and keeps it; also usable on a handler of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    """Replace the record's message by its redacted text (arguments merged) and its exception by
    its redacted traceback text."""
    message = record.getMessage()
    record.msg, record.args = redact_text(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
        record.exc_info = None  # the formatter would otherwise format it again, in clear
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


def _in_tree(name: str) -> bool:
    return name == ROOT or name.startswith(ROOT + ".")


def install() -> None:
    """Redact every record of the ``mspclaw`` logger tree from now on (idempotent, process-wide)."""
    global _installed
    with _lock:
        if _installed:
            return
        inner = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = inner(*args, **kwargs)
            if _in_tree(record.name):
                redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
