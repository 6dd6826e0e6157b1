"""Retry and fall back: the provider-error policy, in one place, around any list of models.

* 429, 5xx, Anthropic's 529 and timeouts are retried with exponential backoff and full jitter,
  honouring the provider's ``retry-after``, at most ``tries`` times per model;
* 400, 401, 403 (and any other non-retryable :class:`ModelError`) are never sent again to the
  same model;
* either way, when a model gives up the next model of the chain gets the same request;
* when every model gave up, :class:`ModelError` says what was tried and how each one failed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

from mspclaw.engine.messages import Message, ModelResponse, ToolDef
from mspclaw.engine.models.base import Model
from mspclaw.errors import ModelError

Sleep = Callable[[float], Awaitable[None]]


def backoff(attempt: int, *, initial: float, cap: float, retry_after: float | None) -> float:
    """Delay before retry ``attempt`` (0-based): the provider's hint if it gave one, else full jitter."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap)
    return random.uniform(0.0, min(cap, initial * 2.0 ** attempt))


class ModelChain:
    def __init__(self, models: Sequence[Model], *, tries: int = 3, initial_backoff: float = 0.5,
                 max_backoff: float = 30.0, sleep: Sleep = asyncio.sleep) -> None:
        if not models:
            raise ValueError("a model chain needs at least one model")
        self.models = list(models)
        self.name = ",".join(m.name for m in self.models)
        self._tries, self._initial, self._cap, self._sleep = tries, initial_backoff, max_backoff, sleep
        self.current: Model = self.models[0]
        self.failures: list[str] = []
        """Every failed attempt of this chain's life, in order: ``"openai:gpt-4.1: 429 rate limited"``."""

    @property
    def price_per_mtok(self) -> tuple[float, float]:
        return self.current.price_per_mtok

    async def request(self, messages: Sequence[Message], tools: Sequence[ToolDef]) -> ModelResponse:
        tried: list[str] = []
        for model in self.models:
            for attempt in range(self._tries):
                try:
                    response = await model.request(messages, tools)
                except ModelError as exc:
                    note = f"{model.name}: {exc.message}"
                    tried.append(note)
                    self.failures.append(note)
                    if not exc.retryable or attempt + 1 == self._tries:
                        break
                    await self._sleep(backoff(attempt, initial=self._initial, cap=self._cap,
                                              retry_after=exc.retry_after))
                    continue
                self.current = model
                return response.model_copy(update={"model": response.model or model.name})
        raise ModelError("no model could answer; tried " + "; ".join(tried))
