"""The text ReAct fallback: strict parsing, one corrective retry, history written back as text."""

from __future__ import annotations

import pytest

from mspclaw.engine.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    RetryPrompt,
    SystemPrompt,
    ToolDef,
    ToolReturn,
    UserPrompt,
)
from mspclaw.engine.models.function import FunctionModel, answer, call
from mspclaw.engine.models.react import ReActModel
from mspclaw.errors import MalformedModelOutput

pytestmark = pytest.mark.anyio

TOOLS = [ToolDef(name="disk_usage", description="Measure disks.", parameters={"type": "object"}),
         ToolDef(name="resolve", description="Finish.", parameters={"type": "object"})]
GOOD = 'Thought: measure the disk first\nAction: disk_usage\nAction Input: {"paths": ["/"]}'


async def test_a_well_formed_answer_becomes_a_tool_call() -> None:
    seen: list[list[Message]] = []

    def text_model(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        seen.append(messages)
        assert tools == [], "a ReAct model gets no native tools"
        return answer(GOOD)

    model = ReActModel(FunctionModel(text_model))
    history: list[Message] = [ModelRequest(parts=[SystemPrompt(text="be good"), UserPrompt(text="disk full")]),
                              call("disk_usage", {"paths": []}, text="look"),
                              ModelRequest(parts=[ToolReturn(call_id="x", name="disk_usage", content={"ok": 1})])]
    response = await model.request(history, TOOLS)
    [tool_call] = response.tool_calls
    assert (tool_call.name, tool_call.args, response.text) == ("disk_usage", {"paths": ["/"]}, "measure the disk first")
    system = seen[0][0].parts[0]
    assert isinstance(system, SystemPrompt)
    assert "disk_usage: Measure disks." in system.text and "Thought:" in system.text
    assert isinstance(seen[0][1], ModelResponse) and "Action: disk_usage" in seen[0][1].text
    observation = seen[0][2].parts[0]
    assert isinstance(observation, UserPrompt) and observation.text == 'Observation: {"ok": 1}'


@pytest.mark.parametrize(("bad", "why"), [
    ("I would check the disk.", "not Thought / Action / Action Input"),
    ("Thought: x\nAction: format_disk\nAction Input: {}", "unknown action 'format_disk'"),
    ("Thought: x\nAction: disk_usage\nAction Input: {paths: /}", "not valid JSON"),
])
async def test_a_malformed_answer_gets_one_corrective_retry(bad: str, why: str) -> None:
    replies = [bad, GOOD]
    corrections: list[str] = []

    def text_model(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and isinstance(last.parts[0], RetryPrompt):
            corrections.append(last.parts[0].text)
        return answer(replies.pop(0))

    hello: list[Message] = [ModelRequest(parts=[UserPrompt(text="hi")])]
    response = await ReActModel(FunctionModel(text_model)).request(hello, TOOLS)
    assert response.tool_calls[0].name == "disk_usage"
    assert len(corrections) == 1 and why in corrections[0]


async def test_two_malformed_answers_raise() -> None:
    with pytest.raises(MalformedModelOutput):
        await ReActModel(FunctionModel(lambda m, t: answer("no idea"))).request([], TOOLS)
