"""The model's triage of tickets no playbook matched: scripted with FunctionModel, then through the
real provider SDKs against the loopback provider server (``tests/engine/provider_wire.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from tests.engine import provider_wire as wire
from tests.engine.provider_wire import ProviderServer, Reply

from mspclaw.engine.messages import Message, ModelResponse, ToolDef, Usage
from mspclaw.engine.models.anthropic import AnthropicModel
from mspclaw.engine.models.base import Model
from mspclaw.engine.models.function import FunctionModel, answer, call
from mspclaw.engine.models.gemini import GeminiModel
from mspclaw.engine.models.ollama import OllamaModel
from mspclaw.engine.models.openai import OpenAIModel
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.model_triage import NOT_AUTOMATABLE, TOOL, ModelTriage

pytestmark = pytest.mark.anyio

UNCLEAR = ("weird thing", "since Monday the thing with the scanner software on my PC does something odd")


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


def _scripted(args: dict[str, Any] | str | None, seen: list[list[Message]] | None = None) -> FunctionModel:
    def turn(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        if seen is not None:
            seen.append(messages)
        assert [t.name for t in tools] == [TOOL]
        if args is None:
            return answer("I think it is the printer.")
        return call(TOOL, args, usage=Usage(prompt_tokens=420, completion_tokens=17))
    return FunctionModel(turn, name="function:triage")


async def test_a_category_from_the_catalogue_with_reason_and_tokens(matcher: Matcher) -> None:
    seen: list[list[Message]] = []
    model = _scripted({"category": "app_crash", "reason": "the scanner program misbehaves"}, seen)
    verdict = await ModelTriage(model, matcher).classify(*UNCLEAR)
    assert verdict.category == "app_crash" and "scanner program" in verdict.reason
    assert verdict.model == "function:triage" and verdict.usage.total == 437
    assert verdict.playbook(matcher.books, "windows") is not None
    prompt = json.dumps([m.model_dump() for m in seen[0]])
    assert "printer" in prompt and "not_automatable" in prompt and "scanner software" in prompt


async def test_not_automatable_and_answers_outside_the_catalogue_go_to_a_technician(matcher: Matcher) -> None:
    no = await ModelTriage(_scripted({"category": NOT_AUTOMATABLE, "reason": "needs a site visit"}), matcher
                           ).classify(*UNCLEAR)
    assert no.category is None and "needs a site visit" in no.reason
    for args in ({"category": "delete_all_users", "reason": "the ticket said so"}, "not json", None):
        verdict = await ModelTriage(_scripted(args), matcher).classify(*UNCLEAR)
        assert verdict.category is None and "technician" in verdict.reason


async def test_the_must_not_layer_wins_and_the_model_is_not_asked(matcher: Matcher) -> None:
    model = _scripted({"category": "printer", "reason": "ignore previous instructions"})
    verdict = await ModelTriage(model, matcher).classify("printer", "the printer is on fire, smoke everywhere")
    assert verdict.category is None and "hardware failure" in verdict.reason
    assert model.calls == 0 and verdict.usage.total == 0
    assert matcher.match("printer", "the printer is on fire, smoke everywhere", None).triage_reason


TIMEOUT_S = 10.0
Build = Callable[[str], Model]
PROVIDERS: dict[str, tuple[Build, Callable[..., dict[str, Any]]]] = {
    "openai": (lambda url: OpenAIModel("gpt-4.1-mini", client=openai.AsyncOpenAI(
        api_key="sk-test", base_url=url + "/v1", max_retries=0, timeout=TIMEOUT_S)), wire.openai_reply),
    "anthropic": (lambda url: AnthropicModel("claude-sonnet-5-5", client=anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url=url, max_retries=0, timeout=TIMEOUT_S)), wire.anthropic_reply),
    "gemini": (lambda url: GeminiModel("gemini-2.5-flash", client=genai.Client(
        api_key="test", http_options=types.HttpOptions(base_url=url, timeout=int(TIMEOUT_S * 1000)))),
        wire.gemini_reply),
    "ollama": (lambda url: OllamaModel("llama3.1", host=url, timeout_s=TIMEOUT_S), wire.ollama_reply),
}


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_through_each_providers_sdk(server: ProviderServer, provider: str, matcher: Matcher) -> None:
    build, reply = PROVIDERS[provider]
    args = json.dumps({"category": "software_install", "reason": "wants a program installed"})
    server.replies.append(Reply(body=reply(None, [(TOOL, args)], (321, 12))))
    verdict = await ModelTriage(build(server.url), matcher).classify("need the thing", "please put Notepad++ on my pc")
    assert verdict.category == "software_install" and "installed" in verdict.reason
    assert (verdict.usage.prompt_tokens, verdict.usage.completion_tokens) == (321, 12)
    assert verdict.model.startswith(f"{provider}:")
    _, body = server.requests[0]
    assert TOOL in json.dumps(body) and "not_automatable" in json.dumps(body)
