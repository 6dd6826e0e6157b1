"""Durable resume: a session killed at any point continues from its last persisted step.

The run is replayed, not restarted. Two wrappers make a replay land exactly where the dead
process stood, whatever the model:

* :class:`DurableModel` stores every model turn before the loop acts on it, and answers the
  n-th request of a resumed run with the n-th stored turn instead of asking the model again;
* :class:`DurableTools` gives the n-th tool call of a session the fixed id ``call_<session>_<n>``
  (:class:`CallLedger`): a call whose result is stored returns it without dispatch; a call left
  in flight is sent again with the same id, which the agent's journal answers with its recorded
  result (or "interrupted") instead of running it twice; its approval and question rows are found
  again by that id, with their stored deadlines.

The deterministic playbook runner needs only the second; both are cheap on a fresh run (one
insert per turn, and no read per call: a session this process has just opened has no stored call,
so :class:`CallLedger` is told it is fresh and the lookup is skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mspclaw.engine.messages import MESSAGES, RESPONSE, Message, ModelResponse, ToolDef
from mspclaw.engine.models.base import Model
from mspclaw.engine.ports import ToolPort
from mspclaw.errors import TOOL_ERRORS_BY_CODE, ToolFailed
from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.frames import Approval
from mspclaw.store.redact import redact
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import ModelTurn, ToolCallRow


class CallLedger:
    """Numbers a session's tool calls (and questions) in order: the n-th gets the same id on every replay."""

    def __init__(self, session_id: str, *, fresh: bool = False) -> None:
        """``fresh``: the session was opened by this run, so none of its calls can be stored yet (its ids
        embed the session id, and only the session's one runner writes them); replays pass ``False``."""
        self._session_id = session_id
        self.fresh = fresh
        self._n = 0
        self.current = ""
        self.stored: ToolCallRow | None = None
        """The row :class:`DurableTools` read for ``current`` (``None``: not sent yet), so the tool
        port below it need not read it again."""

    def next(self) -> str:
        self._n += 1
        self.current = f"call_{self._session_id}_{self._n}"
        self.stored = None
        return self.current


class DurableModel:
    def __init__(self, inner: Model, runs: RunStore, session_id: str, *,
                 turns: Sequence[ModelTurn] | None = None) -> None:
        """``turns``: the session's stored turns, when the caller has read them (off the event loop)."""
        self._inner, self._runs, self._session_id = inner, runs, session_id
        stored = runs.turns(session_id) if turns is None else turns
        self._stored = [RESPONSE.validate_python(t.response) for t in stored]
        self.replayed = len(self._stored)
        self._n = 0
        self.name = inner.name

    @property
    def price_per_mtok(self) -> tuple[float, float]:
        return self._inner.price_per_mtok

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        self._n += 1
        if self._n <= len(self._stored):
            return self._stored[self._n - 1]
        response = await self._inner.request(_redacted(messages), tools)  # no secret leaves for a provider
        await run_store(self._runs, self._runs.add_turn, self._session_id, self._n,
                        model=response.model or self._inner.name, response=response.model_dump(mode="json"),
                        prompt_tokens=response.usage.prompt_tokens,
                        completion_tokens=response.usage.completion_tokens)
        return response


def _redacted(messages: Sequence[Message]) -> list[Message]:
    """The conversation with every secret :func:`~mspclaw.store.redact.redact` finds replaced: what a
    model provider receives (the stored turn is redacted by :meth:`RunStore.add_turn` too)."""
    return MESSAGES.validate_python(redact(MESSAGES.dump_python(list(messages), mode="json")))


class DurableTools:
    """The outermost tool port of a session: stored results are returned, not dispatched again."""

    def __init__(self, inner: ToolPort, runs: RunStore, ledger: CallLedger) -> None:
        self._inner, self._runs, self._ledger = inner, runs, ledger

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        call_id = self._ledger.next()
        row = self._ledger.stored = None if self._ledger.fresh else await run_store(self._runs, self._runs.call,
                                                                                    call_id)
        if row is not None and row.status == "ok":
            return row.output or {}
        if row is not None and row.status == "error":
            error = TOOL_ERRORS_BY_CODE.get(row.error_code or "", ToolFailed)
            raise error(row.error_message or "the call failed")
        return await self._inner(tool, args, reason=reason, approval=approval)
