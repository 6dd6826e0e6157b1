"""OpenAI (and any OpenAI-compatible endpoint) through the official ``openai`` SDK: chat completions
with native tool calling. Key and endpoint from ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai

from mspclaw.engine.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    ResponsePart,
    RetryPrompt,
    SystemPrompt,
    TextPart,
    ToolCallPart,
    ToolDef,
    ToolReturn,
    Usage,
    UserPrompt,
)
from mspclaw.engine.models.status import from_status
from mspclaw.errors import ConfigError, ModelError, ModelTimeout


class OpenAIModel:
    def __init__(self, model: str, *, client: openai.AsyncOpenAI | None = None, timeout_s: float = 60.0,
                 price_per_mtok: tuple[float, float] = (0.4, 1.6)) -> None:
        try:
            self._client = client or openai.AsyncOpenAI(max_retries=0, timeout=timeout_s)
        except openai.OpenAIError as exc:
            raise ConfigError(f"openai:{model}: {exc}; set OPENAI_API_KEY (and OPENAI_BASE_URL for another "
                              "OpenAI-compatible endpoint)") from exc
        self._model = model
        self.name = f"openai:{model}"
        self.price_per_mtok = price_per_mtok

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        kwargs: dict[str, Any] = {"model": self._model, "messages": _messages(messages)}
        if tools:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}} for t in tools]
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise from_status("openai", exc.status_code, exc.message, exc.response.headers) from exc
        except openai.APITimeoutError as exc:
            raise ModelTimeout(f"openai: no answer in time ({exc})") from exc
        except openai.APIConnectionError as exc:
            raise ModelTimeout(f"openai: cannot connect ({exc})") from exc
        except openai.OpenAIError as exc:
            raise ModelError(f"openai: {exc}") from exc
        if not completion.choices:
            raise ModelError("openai: the answer had no choices")
        message = completion.choices[0].message
        parts: list[ResponsePart] = [TextPart(text=message.content)] if message.content else []
        for tool_call in message.tool_calls or []:
            function = getattr(tool_call, "function", None)
            if function is None:
                continue
            parts.append(ToolCallPart(call_id=tool_call.id, name=function.name, args=_args(function.arguments)))
        usage = completion.usage
        return ModelResponse(parts=parts, model=f"openai:{completion.model}", usage=Usage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0))


def _args(raw: str) -> dict[str, Any] | str:
    """The parsed object, or the raw text for the loop to send back as a correction."""
    try:
        parsed = json.loads(raw or "{}")
    except ValueError:
        return raw
    return parsed if isinstance(parsed, dict) else raw


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            entry: dict[str, Any] = {"role": "assistant", "content": message.text or None}
            calls = [{"id": c.call_id, "type": "function", "function": {
                "name": c.name, "arguments": c.args if isinstance(c.args, str) else json.dumps(c.args)}}
                for c in message.tool_calls]
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
            continue
        assert isinstance(message, ModelRequest)
        for part in message.parts:
            match part:
                case SystemPrompt(text=text):
                    out.append({"role": "system", "content": text})
                case UserPrompt(text=text) | RetryPrompt(text=text):
                    out.append({"role": "user", "content": text})
                case ToolReturn():
                    out.append({"role": "tool", "tool_call_id": part.call_id,
                                "content": json.dumps({"error": part.error} if part.error else part.content)})
    return out
