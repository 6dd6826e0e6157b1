"""Each provider adapter drives its official SDK against a loopback server replaying that provider's
wire format (``provider_wire.py``): text, tool calls, usage, 429 with retry-after, 5xx and 529,
auth errors, a timeout, malformed tool-argument JSON; then one conformance scenario through the
loop over all four. No real provider is called.
"""

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

from mspclaw.engine.loop import run_loop
from mspclaw.engine.messages import ModelRequest, ModelResponse, ToolDef, UserPrompt
from mspclaw.engine.models.anthropic import AnthropicModel
from mspclaw.engine.models.base import Model
from mspclaw.engine.models.chain import ModelChain
from mspclaw.engine.models.gemini import GeminiModel
from mspclaw.engine.models.ollama import OllamaModel
from mspclaw.engine.models.openai import OpenAIModel
from mspclaw.engine.plan import StepRecord
from mspclaw.engine.toolset import Toolset
from mspclaw.errors import ModelAuthError, ModelOverloaded, ModelRateLimited, ModelTimeout
from mspclaw.protocol.frames import Approval

pytestmark = pytest.mark.anyio
TIMEOUT_S = 10.0
"""Client timeout for every exchange but the timeout test's: generous, so a busy machine cannot fail them."""
SHORT_TIMEOUT_S = 0.5

Build = Callable[..., Model]
PROVIDERS: dict[str, tuple[Build, Callable[..., dict[str, Any]], Callable[[int, str], dict[str, Any]]]] = {
    "openai": (lambda url, timeout=TIMEOUT_S: OpenAIModel("gpt-4.1-mini", client=openai.AsyncOpenAI(
        api_key="sk-test", base_url=url + "/v1", max_retries=0, timeout=timeout)),
        wire.openai_reply, wire.openai_error),
    "anthropic": (lambda url, timeout=TIMEOUT_S: AnthropicModel("claude-sonnet-5-5", client=anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url=url, max_retries=0, timeout=timeout)),
        wire.anthropic_reply, wire.anthropic_error),
    "gemini": (lambda url, timeout=TIMEOUT_S: GeminiModel("gemini-2.5-flash", client=genai.Client(
        api_key="test", http_options=types.HttpOptions(base_url=url, timeout=int(timeout * 1000)))),
        wire.gemini_reply, wire.gemini_error),
    "ollama": (lambda url, timeout=TIMEOUT_S: OllamaModel("llama3.1", host=url, timeout_s=timeout),
               wire.ollama_reply, wire.ollama_error),
}
PATHS = {"type": "array", "items": {"type": "string"}}
TOOLS = [ToolDef(name="disk_usage", description="Measure disks.",
                 parameters={"type": "object", "properties": {"paths": PATHS}})]
HELLO = [ModelRequest(parts=[UserPrompt(text="my disk is full")])]


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_text_and_usage(server: ProviderServer, provider: str) -> None:
    build, reply, _ = PROVIDERS[provider]
    server.replies.append(Reply(body=reply("Your disk looks fine.", [], (123, 45))))
    response = await build(server.url).request(HELLO, TOOLS)
    assert response.text == "Your disk looks fine." and response.tool_calls == []
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (123, 45)
    assert response.model.startswith(f"{provider}:")
    _, body = server.requests[0]
    assert "disk_usage" in json.dumps(body), "the tool schema went out in the provider's format"


async def test_one_and_several_tool_calls(server: ProviderServer, provider: str) -> None:
    build, reply, _ = PROVIDERS[provider]
    model = build(server.url)
    server.replies.append(Reply(body=reply(None, [("disk_usage", '{"paths": ["/"]}')], (10, 5))))
    server.replies.append(Reply(body=reply("checking both", [("disk_usage", '{"paths": ["/"]}'),
                                                            ("disk_usage", '{"paths": ["/home"]}')], (10, 5))))
    one = await model.request(HELLO, TOOLS)
    assert [(c.name, c.args) for c in one.tool_calls] == [("disk_usage", {"paths": ["/"]})]
    several = await model.request(HELLO, TOOLS)
    assert [c.args for c in several.tool_calls] == [{"paths": ["/"]}, {"paths": ["/home"]}]
    assert len({c.call_id for c in several.tool_calls}) == 2 and several.text == "checking both"


async def test_429_carries_retry_after(server: ProviderServer, provider: str) -> None:
    build, _, error = PROVIDERS[provider]
    server.replies.append(Reply(429, error(429, "Rate limit reached"), {"retry-after": "2"}))
    with pytest.raises(ModelRateLimited) as caught:
        await build(server.url).request(HELLO, TOOLS)
    assert caught.value.retryable and caught.value.retry_after == 2.0 and caught.value.status == 429


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_and_overloaded_are_retryable(server: ProviderServer, provider: str, status: int) -> None:
    build, _, error = PROVIDERS[provider]
    server.replies.append(Reply(status, error(status, "Overloaded")))
    with pytest.raises(ModelOverloaded) as caught:
        await build(server.url).request(HELLO, TOOLS)
    assert caught.value.retryable and caught.value.status == status


async def test_a_bad_key_is_not_retryable(server: ProviderServer, provider: str) -> None:
    build, _, error = PROVIDERS[provider]
    server.replies.append(Reply(401, error(401, "invalid x-api-key")))
    with pytest.raises(ModelAuthError) as caught:
        await build(server.url).request(HELLO, TOOLS)
    assert not caught.value.retryable and "check the API key" in caught.value.message


async def test_a_timeout(server: ProviderServer, provider: str) -> None:
    build, reply, _ = PROVIDERS[provider]
    server.replies.append(Reply(body=reply("late", [], (1, 1)), delay_s=SHORT_TIMEOUT_S * 3))
    with pytest.raises(ModelTimeout):
        await build(server.url, SHORT_TIMEOUT_S).request(HELLO, TOOLS)


async def test_malformed_tool_json_reaches_the_loop_as_raw_text(server: ProviderServer) -> None:
    """Only OpenAI's wire carries arguments as text; the others send a JSON object or nothing."""
    server.replies.append(Reply(body=wire.openai_reply(None, [("disk_usage", '{"paths": ["/"')], (1, 1))))
    response = await PROVIDERS["openai"][0](server.url).request(HELLO, TOOLS)
    assert response.tool_calls[0].args == '{"paths": ["/"'


async def test_conformance_one_scenario_through_the_loop(server: ProviderServer, provider: str) -> None:
    """A 429, an unknown tool, a real tool, then resolve: the same outcome from every provider."""
    build, reply, error = PROVIDERS[provider]
    server.replies += [
        Reply(429, error(429, "slow down"), {"retry-after": "0"}),
        Reply(body=reply("let me format it", [("format_disk", "{}")], (100, 10))),
        Reply(body=reply(None, [("disk_usage", '{"paths": ["/"]}')], (120, 10))),
        Reply(body=reply(None, [("resolve", '{"summary": "disk at 40%", "reply": "all fine"}')], (140, 10))),
    ]
    calls: list[tuple[str, dict[str, Any]]] = []

    async def port(tool: str, args: dict[str, Any], *, reason: str,
                   approval: Approval | None = None) -> dict[str, Any]:
        calls.append((tool, args))
        return {"filesystems": [{"mount_point": "/", "percent_used": 40}]}

    steps: list[StepRecord] = []

    async def sink(record: StepRecord) -> None:
        steps.append(record)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    chain = ModelChain([build(server.url)], sleep=sleep)
    result = await run_loop(chain, "be careful", "disk full", Toolset(["disk_usage"], port), sink)
    assert (result.outcome, result.reason, result.reply) == ("resolved", "disk at 40%", "all fine")
    assert calls == [("disk_usage", {"paths": ["/"]})] and slept == [0.0]
    assert [(s.tool, s.ok) for s in steps] == [("format_disk", False), ("disk_usage", True), ("resolve", True)]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (360, 30)
    second, third = json.dumps(server.requests[2][1]), json.dumps(server.requests[3][1])
    assert "is not a tool of this run" in second, "the unknown tool went back to the model as an observation"
    assert "percent_used" in third, "the tool output went back in the provider's format"
    assert isinstance(result.messages, list) and isinstance(result.messages[1], ModelResponse)
