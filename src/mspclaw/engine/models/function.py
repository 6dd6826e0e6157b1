"""``FunctionModel``: a test double where a callable decides each turn.

Shipped in the package (habit 2): tests script the model with it, the benchmark runs it with
zero latency, and a dry-run can drive a playbook with it. The callable gets the conversation
and the offered tools and returns a :class:`ModelResponse` (sync or async).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mspclaw.engine.messages import Message, ModelResponse, TextPart, ToolCallPart, ToolDef, Usage

TurnFn = Callable[[list[Message], list[ToolDef]], ModelResponse | Awaitable[ModelResponse]]

_ids = itertools.count(1)


class FunctionModel:
    def __init__(self, fn: TurnFn, *, name: str = "function:test",
                 price_per_mtok: tuple[float, float] = (0.0, 0.0)) -> None:
        self._fn = fn
        self.name = name
        self.price_per_mtok = price_per_mtok
        self.calls = 0

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        self.calls += 1
        out = self._fn(list(messages), list(tools))
        if inspect.isawaitable(out):
            out = await out
        return out


def call(name: str, args: dict[str, Any] | str | None = None, *, text: str = "",
         usage: Usage | None = None) -> ModelResponse:
    """A response that calls one tool (with an optional thought)."""
    parts: list[TextPart | ToolCallPart] = [TextPart(text=text)] if text else []
    parts.append(ToolCallPart(call_id=f"fc_{next(_ids)}", name=name, args={} if args is None else args))
    return ModelResponse(parts=parts, usage=usage or Usage(prompt_tokens=10, completion_tokens=5))


def answer(text: str, *, usage: Usage | None = None) -> ModelResponse:
    """A final answer: text and no tool call."""
    return ModelResponse(parts=[TextPart(text=text)], usage=usage or Usage(prompt_tokens=10, completion_tokens=5))
