"""Every tool call passes the same gates before its tool runs, and always yields a result.

In order (DESIGN section 4, "the agent itself refuses"):

1. the signature verifies against the key pinned at enrollment (``bad_signature``);
2. the deadline has not passed (``timeout``);
3. the tool is in the catalogue and implemented on this OS (``unknown_tool``);
4. the arguments validate against the tool's schema (``invalid_args``);
5. a destructive call carries an approval (``approval_required``), which the signature covers, signed by
   the server's approval key for this call id, tool, arguments and agent, and not expired;
6. the journal has not seen the call_id (else the recorded result, or ``interrupted``);
7. the tool runs in a worker thread, bounded by its own timeout and the call's deadline.

A refusal or a failure becomes a ``tool_result`` with ``ok=false`` and the error's ``code``;
nothing a tool does can crash the daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from mspclaw.agent.journal import Fresh, Interrupted, Journal, Recorded
from mspclaw.agent.tools import ToolContext, ToolFn, WithSecret
from mspclaw.errors import (
    ApprovalRequired,
    BadSignature,
    CallInterrupted,
    StoreError,
    ToolError,
    ToolFailed,
    ToolTimeout,
    UnknownTool,
)
from mspclaw.protocol.frames import ErrorInfo, ToolCall, ToolResult
from mspclaw.protocol.signing import Signer, check_approval
from mspclaw.tools.catalogue import CATALOGUE
from mspclaw.tools.spec import ToolSpec

log = logging.getLogger(__name__)


def offered_tools(registry: Mapping[str, ToolFn], catalogue: Mapping[str, ToolSpec] = CATALOGUE) -> list[str]:
    """Names both implemented in ``registry`` and known to ``catalogue``, sorted."""
    return sorted(name for name in registry if name in catalogue)


class Executor:
    """Checks, journals and runs tool calls.

    ``registry`` maps tool names to implementations (see :func:`mspclaw.agent.tools.tool_registry`);
    ``key`` is the server key pinned at enrollment, ``approval_key`` the server's Ed25519 public key
    pinned with it (approvals are checked against it and ``agent_id``). All are injected so tests can run the real
    gates around a tool of their own.
    """

    def __init__(
        self,
        *,
        key: bytes,
        registry: Mapping[str, ToolFn],
        journal: Journal,
        context: ToolContext,
        catalogue: Mapping[str, ToolSpec] = CATALOGUE,
        clock: Callable[[], float] = time.time,
        approval_key: bytes | None = None,
        agent_id: str = "",
    ) -> None:
        self._signer = Signer(key)
        self._approval_key = approval_key
        self._agent_id = agent_id
        self._registry = dict(registry)
        self._journal = journal
        self._context = context
        self._catalogue = catalogue
        self._clock = clock
        self._running: dict[str, asyncio.Future[ToolResult]] = {}

    def offered_tools(self) -> list[str]:
        """Tools both in the catalogue and implemented here, sorted: what ``hello`` lists."""
        return offered_tools(self._registry, self._catalogue)

    async def execute(self, call: ToolCall) -> ToolResult:
        """Run ``call`` through every gate; always returns a result, never raises (but cancellation)."""
        started = time.monotonic()
        try:
            spec, args = self._admit(call)
        except ToolError as exc:
            log.warning("refused call %s (%s): %s", call.call_id, call.tool, exc.message)
            return _failure(call, exc, started)
        running = self._running.get(call.call_id)
        if running is not None:
            # the server resent a call that is still running here (after a reconnect): share its result
            result = await asyncio.shield(running)
            return result.model_copy(update={"replayed": True})
        try:
            claim = self._journal.claim(call.call_id, call.tool)
        except StoreError as exc:  # without the journal a replay could run the tool twice: do not run
            log.error("%s", exc.message)
            return _failure(call, ToolFailed(f"the agent's call journal failed, so the call was not run: "
                                             f"{exc.message}"), started)
        match claim:
            case Recorded(result=result):
                log.info("call %s (%s) already ran: returning the recorded result", call.call_id, call.tool)
                return result
            case Interrupted(started_at=when):
                return _failure(call, CallInterrupted(
                    f"call {call.call_id} ({call.tool}) started at {time.ctime(when)} but the agent stopped "
                    "before it finished; it is not run again because it may have taken effect"
                ), started)
            case Fresh():
                pass
        task = asyncio.ensure_future(self._run(call, spec, args, started))
        self._running[call.call_id] = task
        task.add_done_callback(lambda _: self._running.pop(call.call_id, None))
        return await asyncio.shield(task)

    def _admit(self, call: ToolCall) -> tuple[ToolSpec, BaseModel]:
        """Gates 1-5: raise the :class:`ToolError` that refuses the call, or return spec and args."""
        if not self._signer.verify(call):
            raise BadSignature(
                f"signature of call {call.call_id} does not verify against the pinned server key"
            )
        now = self._clock()
        if call.deadline <= now:
            raise ToolTimeout(f"deadline passed {now - call.deadline:.1f} s before the call could start")
        spec = self._catalogue.get(call.tool)
        if spec is None or call.tool not in self._registry:
            where = "the catalogue" if spec is None else "this agent's operating system"
            raise UnknownTool(f"tool {call.tool!r} is not available in {where}; offered: "
                              f"{', '.join(self.offered_tools()) or 'none'}")
        args = spec.validate(call.args)
        if spec.needs_approval(args):
            if call.approval is None:
                raise ApprovalRequired(f"{call.tool} changes this machine and needs a technician's approval")
            if self._approval_key is None:
                raise ApprovalRequired(f"{call.tool} needs a signed approval, but this agent pinned no approval key "
                                       "at enrollment; enroll it again")
            why = check_approval(self._approval_key, call.approval, call_id=call.call_id, tool=call.tool,
                                 args=call.args, agent_id=self._agent_id, now=now)
            if why is not None:
                raise ApprovalRequired(f"{call.tool} refused: {why}")
        return spec, args

    async def _run(self, call: ToolCall, spec: ToolSpec, args: BaseModel, started: float) -> ToolResult:
        """Gate 7 and the journal's ``done`` record. Cancellation leaves the call ``started``."""
        budget = min(spec.timeout_s, call.deadline - self._clock())
        tool = self._registry[call.tool]
        try:
            output = await asyncio.wait_for(_in_daemon_thread(tool, args, self._context), timeout=budget)
            result = _success(call, output, started)
        except TimeoutError:
            # the thread cannot be killed; it finishes in the background and its output is dropped
            result = _failure(call, ToolTimeout(f"{call.tool} did not finish within {budget:.1f} s"), started)
        except ToolFailed as exc:
            result = _failure(call, exc, started)
        except Exception as exc:  # a bug in a tool is reported, never fatal to the daemon
            log.exception("tool %s crashed on call %s", call.tool, call.call_id)
            result = _failure(call, ToolFailed(f"{type(exc).__name__}: {exc}"), started)
        try:
            self._journal.finish(result)
        except StoreError as exc:  # the tool ran: report its result; a replay will say "interrupted"
            log.error("%s", exc.message)
        log.info("call %s (%s): %s in %d ms", call.call_id, call.tool,
                 "ok" if result.ok else result.error and result.error.code, result.duration_ms)
        return result


def _in_daemon_thread(tool: ToolFn, args: BaseModel, context: ToolContext) -> asyncio.Future[Any]:
    """Run a blocking tool in its own daemon thread; the future settles on the event loop.

    Like ``asyncio.to_thread``, except that the thread is a daemon: a tool stuck in the kernel
    (``statvfs`` on a dead NFS server) can neither be killed nor joined, and with the default
    executor's non-daemon workers it would keep the agent from exiting on Ctrl-C or SIGTERM.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(output: Any, error: BaseException | None) -> None:
        if future.done():
            return  # timed out or cancelled meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(output)

    def work() -> None:
        output: Any = None
        error: BaseException | None = None
        try:
            output = tool(args, context)
        except BaseException as exc:  # handed to the awaiting coroutine, which reports it
            error = exc
        try:
            loop.call_soon_threadsafe(settle, output, error)
        except RuntimeError:
            pass  # the event loop is gone: the agent is shutting down

    threading.Thread(target=work, name=f"tool {getattr(tool, '__name__', 'tool')}", daemon=True).start()
    return future


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _success(call: ToolCall, output: Any, started: float) -> ToolResult:
    secret = None
    if isinstance(output, WithSecret):
        output, secret = output.output, output.secret
    if not isinstance(output, dict):
        raise ToolFailed(f"{call.tool} returned {type(output).__name__}, not a JSON object")
    try:
        json.dumps(output, allow_nan=False)  # frames carry JSON; a tool's output is checked once, here
    except (TypeError, ValueError) as exc:
        raise ToolFailed(f"{call.tool} returned output that is not JSON: {exc}") from exc
    return ToolResult(call_id=call.call_id, ok=True, output=output, duration_ms=_elapsed_ms(started), secret=secret)


def _failure(call: ToolCall, exc: ToolError, started: float) -> ToolResult:
    return ToolResult(
        call_id=call.call_id,
        ok=False,
        error=ErrorInfo(code=exc.code, message=exc.message),
        duration_ms=_elapsed_ms(started),
    )
