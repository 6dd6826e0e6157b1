"""What the engine and a model say to each other: typed parts in ``kind``-tagged unions.

A conversation is a list of :data:`Message`: a :class:`ModelRequest` (the engine's turn: the
instructions, the ticket, tool results, corrections) or a :class:`ModelResponse` (the model's
turn: text and tool calls, with its token usage). Each provider adapter turns this list into
its own wire format and back; nothing outside ``engine/models/`` knows a provider's format.
Everything here is JSON-serialisable, so a session's turns are persisted and replayed as is.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolDef(_Part):
    """A tool as the model sees it: its name, what it does and its arguments' JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class Usage(_Part):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens)

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# --- the engine's parts ------------------------------------------------------------------------


class SystemPrompt(_Part):
    kind: Literal["system"] = "system"
    text: str


class UserPrompt(_Part):
    """The task: the ticket and what the engine knows about it."""

    kind: Literal["user"] = "user"
    text: str


class ToolReturn(_Part):
    """The observation for one tool call: its output, or the error the model should act on."""

    kind: Literal["tool_return"] = "tool_return"
    call_id: str
    name: str
    content: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class RetryPrompt(_Part):
    """A correction: the model's last turn could not be acted on, and why."""

    kind: Literal["retry"] = "retry"
    text: str


RequestPart = Annotated[SystemPrompt | UserPrompt | ToolReturn | RetryPrompt, Field(discriminator="kind")]

# --- the model's parts -------------------------------------------------------------------------


class TextPart(_Part):
    kind: Literal["text"] = "text"
    text: str


class ToolCallPart(_Part):
    """One tool call. ``args`` is the parsed object, or the raw text when it was not valid JSON."""

    kind: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    args: dict[str, Any] | str = Field(default_factory=dict)


ResponsePart = Annotated[TextPart | ToolCallPart, Field(discriminator="kind")]


class ModelRequest(_Part):
    kind: Literal["request"] = "request"
    parts: list[RequestPart]


class ModelResponse(_Part):
    kind: Literal["response"] = "response"
    parts: list[ResponsePart]
    usage: Usage = Usage()
    model: str = ""

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart)).strip()

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]


Message = Annotated[ModelRequest | ModelResponse, Field(discriminator="kind")]
MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])
RESPONSE: TypeAdapter[ModelResponse] = TypeAdapter(ModelResponse)


def system_text(messages: list[Message]) -> str:
    """All system prompts of a conversation, joined (for providers that take it apart)."""
    return "\n\n".join(p.text for m in messages if isinstance(m, ModelRequest)
                       for p in m.parts if isinstance(p, SystemPrompt))
