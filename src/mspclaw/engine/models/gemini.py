"""Google Gemini through the official ``google-genai`` SDK: ``generate_content`` with function calling.
Key from ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import httpx
import httpx2
from google import genai
from google.genai import errors, types

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

_ids = itertools.count(1)


class GeminiModel:
    def __init__(self, model: str, *, client: genai.Client | None = None, timeout_s: float = 60.0,
                 price_per_mtok: tuple[float, float] = (0.3, 2.5)) -> None:
        try:
            self._client = client or genai.Client(http_options=types.HttpOptions(timeout=int(timeout_s * 1000)))
        except ValueError as exc:
            raise ConfigError(f"gemini:{model}: {exc}; set GEMINI_API_KEY") from exc
        self._model = model
        self.name = f"gemini:{model}"
        self.price_per_mtok = price_per_mtok

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        config = types.GenerateContentConfig(
            system_instruction=system_text(list(messages)) or None,
            tools=[types.Tool(function_declarations=[
                types.FunctionDeclaration(name=t.name, description=t.description, parameters_json_schema=t.parameters)
                for t in tools])] if tools else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
        try:
            reply = await self._client.aio.models.generate_content(model=self._model, contents=_contents(messages),
                                                                   config=config)
        except errors.APIError as exc:
            headers = getattr(exc.response, "headers", None)  # httpx or the SDK's own response type
            raise from_status("gemini", exc.code, exc.message or str(exc), headers) from exc
        except (httpx.TimeoutException, httpx2.TimeoutException) as exc:  # the SDK's transport is httpx2
            raise ModelTimeout(f"gemini: no answer in time ({exc})") from exc
        except (httpx.TransportError, httpx2.TransportError) as exc:
            raise ModelTimeout(f"gemini: cannot connect ({exc})") from exc
        candidates = reply.candidates or []
        if not candidates or candidates[0].content is None:
            raise ModelError("gemini: the answer had no candidate")
        parts: list[ResponsePart] = []
        for part in candidates[0].content.parts or []:
            if part.text:
                parts.append(TextPart(text=part.text))
            elif part.function_call is not None and part.function_call.name:
                args: Any = part.function_call.args
                parts.append(ToolCallPart(call_id=part.function_call.id or f"gemini_{next(_ids)}",
                                          name=part.function_call.name,
                                          args=dict(args) if isinstance(args, dict) else json.dumps(args)))
        meta = reply.usage_metadata
        return ModelResponse(parts=parts, model=f"gemini:{reply.model_version or self._model}", usage=Usage(
            prompt_tokens=(meta.prompt_token_count or 0) if meta else 0,
            completion_tokens=(meta.candidates_token_count or 0) if meta else 0))


def _contents(messages: Sequence[Message]) -> list[types.Content]:
    out: list[types.Content] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            parts = [types.Part(text=p.text) if isinstance(p, TextPart) else types.Part(
                function_call=types.FunctionCall(id=p.call_id, name=p.name,
                                                 args=p.args if isinstance(p.args, dict) else {}))
                for p in message.parts]
            out.append(types.Content(role="model", parts=parts))
            continue
        assert isinstance(message, ModelRequest)
        user_parts: list[types.Part] = []
        for part in message.parts:
            match part:
                case UserPrompt(text=text) | RetryPrompt(text=text):
                    user_parts.append(types.Part(text=text))
                case ToolReturn():
                    user_parts.append(types.Part(function_response=types.FunctionResponse(
                        id=part.call_id, name=part.name,
                        response={"error": part.error} if part.error else {"output": part.content})))
        if user_parts:
            out.append(types.Content(role="user", parts=user_parts))
    return out
