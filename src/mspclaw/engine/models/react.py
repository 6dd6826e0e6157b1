"""Text ReAct for models without tool calling: Thought / Action / Action Input, parsed strictly.

The wrapped model sees no tool schemas through its API; the tools are described in the system
prompt, earlier tool calls are written back as text and observations come as ``Observation:``
lines. An answer that does not parse gets one corrective retry that says what was wrong; a
second bad answer is a :class:`MalformedModelOutput`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence

from mspclaw.engine.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    RequestPart,
    ResponsePart,
    RetryPrompt,
    SystemPrompt,
    TextPart,
    ToolCallPart,
    ToolDef,
    ToolReturn,
    UserPrompt,
)
from mspclaw.engine.models.base import Model
from mspclaw.errors import MalformedModelOutput

FORMAT = """Answer in exactly this format and nothing else:
Thought: <one or two sentences>
Action: <one tool name from the list>
Action Input: <the tool's arguments as one JSON object>
You will get back "Observation: <result>". Finish with the action resolve or escalate."""

_PATTERN = re.compile(r"^\s*Thought:\s*(?P<thought>.*?)\s*^Action:\s*(?P<action>[A-Za-z_][A-Za-z0-9_]*)\s*$\s*"
                      r"^Action Input:\s*(?P<input>\{.*\})\s*\Z", re.DOTALL | re.MULTILINE)
_ids = itertools.count(1)


def parse(text: str, tools: Sequence[ToolDef]) -> tuple[str, str, dict[str, object]]:
    """(thought, action, arguments) or :class:`MalformedModelOutput` saying what is wrong."""
    found = _PATTERN.match(text)
    if found is None:
        raise MalformedModelOutput("the answer is not Thought / Action / Action Input")
    names = {t.name for t in tools}
    if found["action"] not in names:
        raise MalformedModelOutput(f"unknown action {found['action']!r}; use one of {', '.join(sorted(names))}")
    try:
        args = json.loads(found["input"])
    except ValueError as exc:
        raise MalformedModelOutput(f"Action Input is not valid JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise MalformedModelOutput("Action Input must be a JSON object")
    return found["thought"], found["action"], args


class ReActModel:
    def __init__(self, inner: Model) -> None:
        self._inner = inner
        self.name = f"react:{inner.name}"

    @property
    def price_per_mtok(self) -> tuple[float, float]:
        return self._inner.price_per_mtok

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        text_messages = _as_text(messages, tools)
        for attempt in range(2):
            response = await self._inner.request(text_messages, [])
            try:
                thought, action, args = parse(response.text, tools)
            except MalformedModelOutput as exc:
                if attempt == 1:
                    raise
                text_messages = [*text_messages, response,
                                 ModelRequest(parts=[RetryPrompt(text=f"{exc.message}. {FORMAT}")])]
                continue
            parts: list[ResponsePart] = [TextPart(text=thought),
                                         ToolCallPart(call_id=f"react_{next(_ids)}", name=action, args=args)]
            return ModelResponse(parts=parts, usage=response.usage, model=response.model or self.name)
        raise MalformedModelOutput("unreachable")  # pragma: no cover


def _as_text(messages: Sequence[Message], tools: Sequence[ToolDef]) -> list[Message]:
    catalogue = "\n".join(f"- {t.name}: {t.description} Arguments (JSON Schema): {json.dumps(t.parameters)}"
                          for t in tools)
    out: list[Message] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            lines = [f"Thought: {message.text}"] if message.text else []
            for call in message.tool_calls:
                args = call.args if isinstance(call.args, str) else json.dumps(call.args)
                lines += [f"Action: {call.name}", f"Action Input: {args}"]
            out.append(ModelResponse(parts=[TextPart(text="\n".join(lines))], usage=message.usage))
            continue
        parts: list[RequestPart] = []
        for part in message.parts:
            if isinstance(part, SystemPrompt):
                parts.append(SystemPrompt(text=f"{part.text}\n\nTools:\n{catalogue}\n\n{FORMAT}"))
            elif isinstance(part, ToolReturn):
                body = f"error: {part.error}" if part.error else json.dumps(part.content)
                parts.append(UserPrompt(text=f"Observation: {body}"))
            else:
                parts.append(part)
        out.append(ModelRequest(parts=parts))
    return out
