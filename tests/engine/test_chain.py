"""Provider errors: what is retried, how long it waits, when the next model takes over."""

from __future__ import annotations

import pytest

from mspclaw.engine.messages import Message, ModelResponse, ToolDef
from mspclaw.engine.models.chain import ModelChain
from mspclaw.engine.models.function import FunctionModel, answer
from mspclaw.engine.models.selection import build_model, parse_spec
from mspclaw.errors import (
    ConfigError,
    ModelAuthError,
    ModelError,
    ModelOverloaded,
    ModelRateLimited,
    ModelRejected,
    ModelTimeout,
)

pytestmark = pytest.mark.anyio


def failing(name: str, *errors: ModelError) -> FunctionModel:
    queue = list(errors)

    def decide(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        if queue:
            raise queue.pop(0)
        return answer(f"from {name}")

    return FunctionModel(decide, name=name)


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def test_429_is_retried_honouring_retry_after() -> None:
    sleeps = Sleeps()
    model = failing("a", ModelRateLimited("429", status=429, retry_after=7.0), ModelOverloaded("503", status=503))
    chain = ModelChain([model], sleep=sleeps, initial_backoff=0.5)
    response = await chain.request([], [])
    assert response.text == "from a" and response.model == "a"
    assert model.calls == 3
    assert sleeps[0] == 7.0 and 0 <= sleeps[1] <= 1.0


async def test_three_tries_then_the_next_model_in_the_chain() -> None:
    sleeps = Sleeps()
    first = failing("a", *(ModelOverloaded("529 overloaded", status=529) for _ in range(5)))
    second = failing("b")
    chain = ModelChain([first, second], sleep=sleeps)
    response = await chain.request([], [])
    assert first.calls == 3 and second.calls == 1 and len(sleeps) == 2
    assert response.model == "b" and chain.current is second


@pytest.mark.parametrize("error", [ModelRejected("400 bad request", status=400),
                                   ModelAuthError("401 invalid key", status=401),
                                   ModelAuthError("403 forbidden", status=403)])
async def test_400_401_403_are_never_retried(error: ModelError) -> None:
    sleeps = Sleeps()
    first, second = failing("a", error), failing("b", error)
    chain = ModelChain([first, second], sleep=sleeps)
    with pytest.raises(ModelError) as caught:
        await chain.request([], [])
    assert first.calls == 1 and second.calls == 1 and sleeps == []
    assert caught.value.message == f"no model could answer; tried a: {error.message}; b: {error.message}"


async def test_a_timeout_is_retried() -> None:
    model = failing("a", ModelTimeout("timed out"))
    assert (await ModelChain([model], sleep=Sleeps()).request([], [])).text == "from a"


def test_model_spec_parsing_and_errors() -> None:
    assert parse_spec("playbook") == [] and build_model("") is None
    assert parse_spec("openai:gpt-4.1-mini, react:ollama:llama3:8b") == [
        (False, "openai", "gpt-4.1-mini"), (True, "ollama", "llama3:8b")]
    for bad in ("gpt-4", "mystery:model", "openai:"):
        with pytest.raises(ConfigError, match="MSPCLAW_MODEL"):
            parse_spec(bad)
    made: list[str] = []

    def factory(name: str) -> FunctionModel:
        made.append(name)
        return FunctionModel(lambda m, t: answer("x"), name=f"openai:{name}")

    chain = build_model("openai:a,openai:b", factories={"openai": factory})
    assert chain is not None and made == ["a", "b"] and chain.name == "openai:a,openai:b"
