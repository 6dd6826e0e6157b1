"""A blocking database statement run on an event loop's thread fails loudly, when the guard is on.

A store call made from a coroutine holds the event loop, and every ticket, socket and timer of the
process with it, until the database answers. Async code awaits a store's async method or offloads the
call (:func:`mspclaw.pipeline.offload.run_store`, :func:`asyncio.to_thread`); a call run inline on
purpose (SQLite, whose commit costs less than the thread hop: ``run_store``, the audit log's batches)
says so with :func:`inline`.

:func:`enable` makes every :class:`~mspclaw.store.database.Database` built afterwards listen to its
engine's ``before_cursor_execute`` event, which every statement goes through (ORM sessions, Core, the
fast path): a statement executed on a thread that is running an event loop, outside :func:`inline`,
raises :class:`BlockingOnLoop` before it reaches the driver. What it guards is the server's code: a
statement whose innermost coroutine on the stack is not in the ``mspclaw`` package (a test body, a
test's stand-in) is let through, since what it stalls is the test's own loop.

The test suite turns it on for every test (``tests/conftest.py``), and a server with
``MSPCLAW_LOOP_GUARD=1``. Off by default: there a blocking call costs latency, while raising would
turn it into a failed request or a stopped background loop; and off, no listener is registered, so
the statements' path is exactly as without the guard.
"""

from __future__ import annotations

import asyncio
import inspect
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Engine, event

_enabled = False
_inline: ContextVar[bool] = ContextVar("mspclaw_store_inline", default=False)

FIRST_WORDS = 6
"""How much of a refused statement its error shows."""


class BlockingOnLoop(RuntimeError):
    """A database statement was about to block a running event loop."""


def enable() -> None:
    """Guard every :class:`~mspclaw.store.database.Database` built from now on in this process."""
    global _enabled  # one switch per process, like faulthandler's
    _enabled = True


def enabled() -> bool:
    return _enabled


def install(engine: Engine) -> None:
    """Refuse ``engine``'s statements on an event loop's thread (once per engine, however often called)."""
    if not event.contains(engine, "before_cursor_execute", _refuse_on_loop):
        event.listen(engine, "before_cursor_execute", _refuse_on_loop)


class inline:  # lower case: used as a function, ``with inline():``
    """Statements in this block may run on the event loop's thread: the caller decided the call is
    cheaper inline than on a worker thread (a SQLite commit is a local file write). A class, not a
    generator, since every inline store call of a ticket (``run_store`` on SQLite) enters one."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _inline.set(True)

    def __exit__(self, *_exc: object) -> None:
        _inline.reset(self._token)


def _refuse_on_loop(_conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any,
                    _executemany: bool) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # a worker thread, or a program without an event loop
    if _inline.get():
        return
    blocking = _blocking_coroutine()
    if blocking is not None and not blocking.startswith("mspclaw."):
        return  # the tests' own code (a test body, a stand-in): what it stalls is the test's own loop
    split = statement.split()
    words = " ".join(split[:FIRST_WORDS])
    if "FROM" in split[FIRST_WORDS:]:  # which table a long column list reads
        words += " ... " + " ".join(split[split.index("FROM", FIRST_WORDS):][:2])
    raise BlockingOnLoop(
        f"database statement `{words} ...` ran on a thread that is running an event loop"
        f"{f' (called from {blocking})' if blocking else ''}, which it would block until the database answers; "
        "from async code, await the store's async method or offload the call "
        "(mspclaw.pipeline.offload.run_store, asyncio.to_thread)")


_ASYNC = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _blocking_coroutine() -> str | None:
    """``module.function`` of the innermost coroutine on this thread's stack: the async code that made
    the blocking call (None: a plain callback the loop runs)."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if frame.f_code.co_flags & _ASYNC:
                return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}"
            frame = frame.f_back
        return None
    finally:
        del frame
