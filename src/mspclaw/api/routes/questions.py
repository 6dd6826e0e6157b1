"""``/api/questions``: questions to end users, and relaying an answer given another way."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.questions import AnswerIn, QuestionOut

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.get("/questions", response_model=list[QuestionOut], tags=["questions"])
def list_questions(svc: ServicesDep, caller: CallerDep, status: str | None = "pending") -> list[QuestionOut]:
    rows = svc.tickets.runs.questions(scope=caller.scope, status=status or None)
    return [QuestionOut.model_validate(row, from_attributes=True) for row in rows]


@api.post("/questions/{question_id}/answer", response_model=QuestionOut, tags=["questions"])
def answer_question(question_id: str, body: AnswerIn, svc: ServicesDep, caller: CallerDep) -> QuestionOut:
    """Relay the end user's answer (from a phone call, a chat); a question is answered once."""
    row = svc.tickets.questions.answer(question_id, body.answer, by=f"{body.by} (via {caller.name})",
                                       scope=caller.scope)
    return QuestionOut.model_validate(row, from_attributes=True)
