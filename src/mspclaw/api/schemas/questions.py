"""Questions to end users and the answers relayed for them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from mspclaw.protocol.limits import ANSWER_MAX


class QuestionOut(BaseModel):
    id: str
    session_id: str
    client_id: str
    text: str
    choices: list[str] | None
    channel: str
    status: str
    answer: str | None
    answered_by: str | None
    deadline: datetime
    created_at: datetime


class AnswerIn(BaseModel):
    answer: str = Field(min_length=1, max_length=ANSWER_MAX, description="The end user's answer, as they gave it.")
    by: str = Field("end user", min_length=1, max_length=255, description="Who relayed the answer (audited).")
