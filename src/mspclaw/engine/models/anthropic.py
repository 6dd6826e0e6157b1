"""Anthropic Claude through the official ``anthropic`` SDK: the Messages API with native tool use.
Key from ``ANTHROPIC_API_KEY``. A 529 (overloaded) is retried like a 5xx by the chain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anthropic

from mspclaw.engine.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    ResponsePart,
    RetryPrompt,
    TextPart,
    ToolCallPart,
    ToolDef,
    ToolReturn,
    Usage,
    UserPrompt,
    system_text,
)
from mspclaw.engine.models.status import from_status
from mspclaw.errors import ConfigError, ModelError, ModelTimeout


class AnthropicModel:
    def __init__(self, model: str, *, client: anthropic.AsyncAnthropic | None = None, timeout_s: float = 60.0,
                 max_tokens: int = 4096, price_per_mtok: tuple[float, float] = (3.0, 15.0)) -> None:
        try:
            self._client = client or anthropic.AsyncAnthropic(max_retries=0, timeout=timeout_s)
        except anthropic.AnthropicError as exc:
            raise ConfigError(f"anthropic:{model}: {exc}; set ANTHROPIC_API_KEY") from exc
        self._model, self._max_tokens = model, max_tokens
        self.name = f"anthropic:{model}"
        self.price_per_mtok = price_per_mtok

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        kwargs: dict[str, Any] = {"model": self._model, "max_tokens": self._max_tokens,
                                  "messages": _messages(messages)}
        if system := system_text(list(messages)):
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                               for t in tools]
        try:
            reply = await self._client.messages.create(**kwargs)
        except anthropic.APIStatusError as exc:
            raise from_status("anthropic", exc.status_code, exc.message, exc.response.headers) from exc
        except anthropic.APITimeoutError as exc:
            raise ModelTimeout(f"anthropic: no answer in time ({exc})") from exc
        except anthropic.APIConnectionError as exc:
            raise ModelTimeout(f"anthropic: cannot connect ({exc})") from exc
        except anthropic.AnthropicError as exc:
            raise ModelError(f"anthropic: {exc}") from exc
        parts: list[ResponsePart] = []
        for block in reply.content:
            if block.type == "text":
                parts.append(TextPart(text=block.text))
            elif block.type == "tool_use":
                args = block.input if isinstance(block.input, dict) else json.dumps(block.input)
                parts.append(ToolCallPart(call_id=block.id, name=block.name, args=args))
        return ModelResponse(parts=parts, model=f"anthropic:{reply.model}", usage=Usage(
            prompt_tokens=reply.usage.input_tokens, completion_tokens=reply.usage.output_tokens))


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(role: str, block: dict[str, Any]) -> None:
        if out and out[-1]["role"] == role:  # the API wants user and assistant turns to alternate
            out[-1]["content"].append(block)
        else:
            out.append({"role": role, "content": [block]})

    for message in messages:
        if isinstance(message, ModelResponse):
            for part in message.parts:
                if isinstance(part, TextPart):
                    if part.text:
                        add("assistant", {"type": "text", "text": part.text})
                else:
                    add("assistant", {"type": "tool_use", "id": part.call_id, "name": part.name,
                                      "input": part.args if isinstance(part.args, dict) else {}})
            continue
        assert isinstance(message, ModelRequest)
        for request_part in message.parts:
            match request_part:
                case UserPrompt(text=text) | RetryPrompt(text=text):
                    add("user", {"type": "text", "text": text})
                case ToolReturn():
                    add("user", {"type": "tool_result", "tool_use_id": request_part.call_id,
                                 "content": request_part.error or json.dumps(request_part.content),
                                 "is_error": request_part.error is not None})
    return out
