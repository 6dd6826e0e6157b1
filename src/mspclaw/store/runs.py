"""What a session needs to continue after a restart: model turns, tool calls by id, questions.

A session's run is replayed from these rows: the n-th model turn and the n-th tool call of a
session have fixed keys, so after a restart the same turn is read instead of asked again and the
same call finds its result (or is sent again with the same ``call_id``, which the agent's journal
answers without running the tool twice).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from mspclaw.errors import Conflict, NotFound
from mspclaw.store.database import Database
from mspclaw.store.redact import redact_json, redact_optional, redact_text
from mspclaw.store.tables import ApprovalRow, DeviceFact, ModelTurn, QuestionRow, ToolCallRow, new_id, utcnow

_CALLS = cast("Table", ToolCallRow.__table__)
_FACTS = cast("Table", DeviceFact.__table__)
_DEVICE_FACTS = select(_FACTS.c.key, _FACTS.c.value).where(_FACTS.c.device_id == bindparam("device_id"))
_PENDING_QUESTIONS = select(QuestionRow.id).where(QuestionRow.session_id == bindparam("session_id"),
                                                  QuestionRow.status == "pending")
_CALL_BY_ID = select(_CALLS).where(_CALLS.c.call_id == bindparam("call_id"))
"""Built once: read by a resumed session for each of its tool calls (the ledger's replay check)."""


class RunStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._sessions = db.sessions
        self._fast = db.fast
        self._call_by_id, self._device_facts = self._fast.prepare(_CALL_BY_ID), self._fast.prepare(_DEVICE_FACTS)
        self._pending_questions = self._fast.prepare(_PENDING_QUESTIONS)

    @property
    def commits_wait_for_server(self) -> bool:
        """PostgreSQL (async callers offload: :func:`mspclaw.pipeline.offload.run_store`), not SQLite."""
        return self._db.commits_wait_for_server

    # -- model turns ----------------------------------------------------------------------------
    def turns(self, session_id: str) -> list[ModelTurn]:
        with self._sessions() as db:
            return list(db.scalars(select(ModelTurn).where(ModelTurn.session_id == session_id)
                                   .order_by(ModelTurn.seq)))

    def add_turn(self, session_id: str, seq: int, *, model: str, response: dict[str, Any], prompt_tokens: int,
                 completion_tokens: int) -> None:
        try:
            with self._sessions.begin() as db:
                db.add(ModelTurn(session_id=session_id, seq=seq, model=model, response=redact_json(response),
                                 prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
        except IntegrityError as exc:  # another process is running this session too
            raise Conflict(f"turn {seq} of session {session_id} is already stored") from exc

    def token_totals(self, session_id: str) -> tuple[int, int]:
        """Prompt and completion tokens the session's model turns used."""
        with self._sessions() as db:
            row = db.execute(select(func.coalesce(func.sum(ModelTurn.prompt_tokens), 0),
                                    func.coalesce(func.sum(ModelTurn.completion_tokens), 0))
                             .where(ModelTurn.session_id == session_id)).one()
        return int(row[0]), int(row[1])

    # -- tool calls and approvals by call id ----------------------------------------------------
    def call(self, call_id: str) -> ToolCallRow | None:
        """The call's row, detached (a plain read, no ORM session)."""
        row = self._fast.mapping(self._call_by_id, {"call_id": call_id})
        return ToolCallRow(**row) if row is not None else None

    def approval_for_call(self, call_id: str) -> ApprovalRow | None:
        with self._sessions() as db:
            return db.scalars(select(ApprovalRow).where(ApprovalRow.call_id == call_id)
                              .order_by(ApprovalRow.created_at.desc())).first()

    # -- questions ------------------------------------------------------------------------------
    def add_question(self, *, session_id: str, client_id: str, call_id: str | None, text: str,
                     choices: list[str] | None, channel: str, deadline: datetime, status: str = "pending",
                     answer: str | None = None, answered_by: str | None = None) -> QuestionRow:
        text, answer = redact_text(text), redact_optional(answer)
        row = QuestionRow(id=new_id("q"), session_id=session_id, client_id=client_id, call_id=call_id, text=text,
                          choices=choices, channel=channel, deadline=deadline, status=status, answer=answer,
                          answered_by=answered_by, answered_at=utcnow() if answer is not None else None)
        with self._sessions.begin() as db:
            db.add(row)
        return row

    def question(self, question_id: str, scope: Collection[str] | None = None) -> QuestionRow:
        with self._sessions() as db:
            stmt = select(QuestionRow).where(QuestionRow.id == question_id)
            if scope is not None:
                stmt = stmt.where(QuestionRow.client_id.in_(list(scope)))
            found = db.scalars(stmt).first()
        if found is None:
            raise NotFound(f"no question {question_id!r}")
        return found

    def question_for_call(self, call_id: str) -> QuestionRow | None:
        with self._sessions() as db:
            return db.scalars(select(QuestionRow).where(QuestionRow.call_id == call_id)).first()

    def questions(self, session_id: str | None = None, *, scope: Collection[str] | None = None,
                  status: str | None = None) -> list[QuestionRow]:
        stmt = select(QuestionRow).order_by(QuestionRow.created_at)
        if session_id is not None:
            stmt = stmt.where(QuestionRow.session_id == session_id)
        if scope is not None:
            stmt = stmt.where(QuestionRow.client_id.in_(list(scope)))
        if status is not None:
            stmt = stmt.where(QuestionRow.status == status)
        with self._sessions() as db:
            return list(db.scalars(stmt))

    def pending_question_ids(self, session_id: str) -> list[str]:
        """The ids of a session's questions still waiting for an answer."""
        return [row[0] for row in self._fast.read(self._pending_questions, {"session_id": session_id})]

    def settle_question(self, question_id: str, *, status: str, answer: str | None, answered_by: str) -> QuestionRow:
        """Answer or expire a pending question once; a second settlement is a :class:`Conflict`."""
        answer = redact_optional(answer)
        with self._sessions.begin() as db:
            result = cast("CursorResult[Any]", db.execute(
                update(QuestionRow).where(QuestionRow.id == question_id, QuestionRow.status == "pending")
                .values(status=status, answer=answer, answered_by=answered_by, answered_at=utcnow())))
            row = db.get(QuestionRow, question_id)
            if row is None:
                raise NotFound(f"no question {question_id!r}")
            if result.rowcount != 1:
                raise Conflict(f"question {question_id} is already {row.status}")
        return row

    # -- device memory (read only here) ---------------------------------------------------------
    def device_facts(self, device_id: str) -> dict[str, str]:
        return {key: value for key, value in self._fast.read(self._device_facts, {"device_id": device_id})}
