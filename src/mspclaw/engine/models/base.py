"""The one small interface every model provider implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mspclaw.engine.messages import Message, ModelResponse, ToolDef


class Model(Protocol):
    """Answers one turn of a conversation.

    ``name`` is ``provider:model`` as configured. ``request`` raises a
    :class:`~mspclaw.errors.ModelError` subclass on failure (never an SDK exception) and does
    no retrying of its own: the chain in :mod:`mspclaw.engine.models.chain` retries and falls back.
    ``price_per_mtok`` is (prompt, completion) in US dollars per million tokens, for the spend limit.
    """

    @property
    def name(self) -> str: ...

    @property
    def price_per_mtok(self) -> tuple[float, float]: ...

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse: ...
