"""Ollama through the official ``ollama`` client: ``/api/chat`` with native tool calling.
Server from ``OLLAMA_HOST`` (default ``http://127.0.0.1:11434``); no key."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import httpx
import ollama

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
from mspclaw.errors import ModelTimeout

_ids = itertools.count(1)


class OllamaModel:
    def __init__(self, model: str, *, host: str | None = None, timeout_s: float = 120.0,
                 price_per_mtok: tuple[float, float] = (0.0, 0.0)) -> None:
        # the SDK's ResponseError drops the response, so its retry-after is kept here as it passes
        self._client = ollama.AsyncClient(host=host, timeout=timeout_s, event_hooks={"response": [self._seen]})
        self._headers: dict[str, str] = {}
        self._model = model
        self.name = f"ollama:{model}"
        self.price_per_mtok = price_per_mtok

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        wire_tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                        "parameters": t.parameters}} for t in tools]
        try:
            reply = await self._client.chat(model=self._model, messages=_messages(messages),
                                            tools=wire_tools or None, stream=False)
        except ollama.ResponseError as exc:
            raise from_status("ollama", exc.status_code, exc.error, self._headers) from exc
        except httpx.TimeoutException as exc:
            raise ModelTimeout(f"ollama: no answer in time ({exc})") from exc
        except (ConnectionError, httpx.TransportError) as exc:
            raise ModelTimeout(f"ollama: cannot connect ({exc})") from exc
        message = reply.message
        parts: list[ResponsePart] = [TextPart(text=message.content)] if message.content else []
        for tool_call in message.tool_calls or []:
            args: Any = tool_call.function.arguments
            parts.append(ToolCallPart(call_id=f"ollama_{next(_ids)}", name=tool_call.function.name,
                                      args=dict(args) if isinstance(args, dict) else str(args)))
        return ModelResponse(parts=parts, model=f"ollama:{reply.model or self._model}", usage=Usage(
            prompt_tokens=reply.prompt_eval_count or 0, completion_tokens=reply.eval_count or 0))

    async def _seen(self, response: httpx.Response) -> None:
        self._headers = {k: v for k, v in response.headers.items() if k.lower().startswith("retry-after")}


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            entry: dict[str, Any] = {"role": "assistant", "content": message.text}
            calls = [{"function": {"name": c.name, "arguments": c.args if isinstance(c.args, dict) else {}}}
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
                    out.append({"role": "tool", "tool_name": part.name,
                                "content": json.dumps({"error": part.error} if part.error else part.content)})
    return out
