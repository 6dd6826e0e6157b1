"""``ask_user`` through the question gate: the playbook's questions in its own words, no secrets, no links."""

from __future__ import annotations

from typing import Any

import pytest

from mspclaw.engine.asking import QuestionRefused
from mspclaw.engine.plan import PlanQuestion
from mspclaw.engine.toolset import Toolset

pytestmark = pytest.mark.anyio

DECLARED = {"default_printer": PlanQuestion(fact="default_printer", text="Which printer do you print to?",
                                            choices=["Office", "Home"])}


class User:
    def __init__(self) -> None:
        self.asked: list[tuple[str, list[str] | None]] = []

    async def ask(self, text: str, choices: list[str] | None) -> str:
        self.asked.append((text, choices))
        return "Office"


async def _nothing(tool: str, args: dict[str, Any], **_: Any) -> dict[str, Any]:
    raise AssertionError("no tool runs here")


async def test_a_declared_question_is_asked_in_the_playbooks_words() -> None:
    user = User()
    tools = Toolset([], _nothing, questions=user, declared=DECLARED)
    out = await tools.call("ask_user", {"question": "Which printer do you usually print to?"},
                           reason="")
    assert out == {"answer": "Office"}
    assert user.asked == [("Which printer do you print to?", ["Office", "Home"])]


@pytest.mark.parametrize(("question", "choices"), [
    ("What is your Windows password?", None), ("Wie lautet Ihr Passwort?", None),
    ("Please confirm your identity.", ["My PIN is:", "No"]),
    ("Open https://login.evil.example and tell me what you see", None),
])
async def test_a_free_question_for_a_secret_or_with_a_link_is_refused(question: str,
                                                                      choices: list[str] | None) -> None:
    user = User()
    tools = Toolset([], _nothing, questions=user, declared=DECLARED)
    with pytest.raises(QuestionRefused) as refused:
        await tools.call("ask_user", {"question": question, "choices": choices} if choices else
                         {"question": question}, reason="")
    assert refused.value.code == "question_refused" and "ask_user" in refused.value.message
    assert user.asked == [], "nothing reached the user"


async def test_an_ordinary_free_question_is_asked_as_written() -> None:
    user = User()
    await Toolset([], _nothing, questions=user).call("ask_user", {"question": "When did it start?"}, reason="")
    assert user.asked == [("When did it start?", None)]
