"""``ask_user`` as a model may use it: a wrapper around the question port, not a branch in the loop.

A question that asks what one of the playbook's declared questions asks (by meaning,
:func:`~mspclaw.engine.questions.best_match`) is put to the user in the playbook's own words and
with its choices, whatever the model wrote. Any other question is the model's own: it is put as
written only when neither it nor its choices ask for a secret (:func:`~mspclaw.engine.content.asks_for_secret`)
or carry an address. A refusal is a :class:`QuestionRefused` the loop tells the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from mspclaw.engine.content import asks_for_secret, links
from mspclaw.engine.plan import PlanQuestion
from mspclaw.engine.questions import best_match
from mspclaw.errors import InvalidArguments


class QuestionPort(Protocol):
    """Asks the end user; returns the answer or raises a ToolError (no answer in time)."""

    async def ask(self, text: str, choices: list[str] | None) -> str: ...


class QuestionRefused(InvalidArguments):
    """The model's question may not be put to the end user; it is told why and what to do instead."""

    code = "question_refused"


class QuestionGate:
    def __init__(self, inner: QuestionPort, declared: Mapping[str, PlanQuestion] | None = None) -> None:
        self._inner = inner
        self._declared = dict(declared or {})

    async def ask(self, text: str, choices: list[str] | None) -> str:
        found = best_match(text, [(q.text, fact) for fact, q in self._declared.items()])
        if found is not None:
            question = self._declared[found[1]]
            return await self._inner.ask(question.text, list(question.choices) or None)
        for part in (text, *(choices or [])):
            secret = asks_for_secret(part)
            if secret is not None:
                raise QuestionRefused(
                    f"ask_user: the question asks the end user for {secret!r}: MSPclaw never asks a user for a "
                    "password, code, PIN, key or card number. Do without it or escalate to a technician")
            if links(part):
                raise QuestionRefused(
                    f"ask_user: the question carries the address {links(part)[0][0]!r}: questions to the end "
                    "user carry no links or addresses. Ask without it")
        return await self._inner.ask(text, choices)
