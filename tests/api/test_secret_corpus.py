"""The secret corpus through a real server: no sink keeps a secret, no model provider receives one.

Every secret of ``tests/secret_corpus.py`` is pasted into a ticket (subject and body) on a live
server (uvicorn, SQLite, a real in-process agent); the scripted model repeats it in its thought
and in its final answer, as a model quoting the ticket or a tool's output would. Afterwards every
sink is searched for every secret value: the database (tickets, sessions, events, steps, tool
calls, model turns, notes, replies: the whole file), the audit files, the API's ticket view, what
the model was sent, and every ``mspclaw`` log line. The figures are printed (``-s``) for the
closing note.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from pathlib import Path

import pytest
from tests.conftest import live_server
from tests.inprocess_agent import inprocess_agent
from tests.secret_corpus import ORDINARY, SECRETS, Secret

from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn, UserPrompt
from mspclaw.engine.models.function import FunctionModel, answer, call

pytestmark = pytest.mark.anyio

CASE = re.compile(r"\[case (\d+)\]")


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def unescape(text: str) -> str:
    return text.replace("\\\\", "\\").replace("\\n", "\n").replace('\\"', '"')


def leaked(secret: Secret, text: str) -> bool:
    return any(value in text for value in secret.values)


async def test_no_sink_keeps_a_secret_of_the_corpus_and_no_model_receives_one(tmp_path: Path) -> None:
    sent: dict[int, list[str]] = {}

    def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        prompt = " ".join(p.text for m in messages if isinstance(m, ModelRequest) for p in m.parts
                          if isinstance(p, UserPrompt))
        found = CASE.search(prompt)
        n = int(found.group(1)) if found else -1
        sent.setdefault(n, []).append(repr(messages))  # the triage of a ticket is sent to the provider too
        if n < 0 or "<<<TICKET" in prompt:  # an ordinary ticket, or the triage of any ticket
            return answer("not_automatable")
        secret = SECRETS[n].text
        if not any(isinstance(p, ToolReturn) for m in messages if isinstance(m, ModelRequest) for p in m.parts):
            return call("disk_usage", {"path": "/"}, text=f"The user wrote: {secret}")
        return answer(f"Checked the disk. For the record, the ticket said: {secret}")

    captured = Captured()
    root = logging.getLogger("mspclaw")
    level = root.level
    root.addHandler(captured)
    root.setLevel(logging.DEBUG)
    views: dict[int, str] = {}
    try:
        async with live_server(tmp_path, model=FunctionModel(script)) as live:
            client = await live.client()
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(inprocess_agent(live.url, await live.code(client), tmp_path / "agent"))
                created: dict[int, str] = {}
                for n, secret in enumerate(SECRETS):
                    r = await live.http.post("/api/tickets", json={
                        "client": client, "subject": f"[case {n}] {secret.text[:150]}",
                        "body": f"[case {n}]\n{secret.text}", "requester": "maria@acme.example"})
                    assert r.status_code in (200, 201, 202), r.text
                    created[n] = r.json()["ticket_id"]
                ordinary_ids = []
                for text in ORDINARY:
                    r = await live.http.post("/api/tickets", json={"client": client, "subject": text[:150],
                                                                   "body": text, "requester": "maria@acme.example"})
                    ordinary_ids.append(r.json()["ticket_id"])
                for n, ticket_id in created.items():
                    views[n] = repr(await live.wait_ticket(ticket_id))
                stored_ordinary = [live.services.store.ticket(t) for t in ordinary_ids]
    finally:
        root.removeHandler(captured)
        root.setLevel(level)

    conn = sqlite3.connect(tmp_path / "data" / "mspclaw.db")
    try:
        database = "\n".join(conn.iterdump())
    finally:
        conn.close()
    audit = "".join(p.read_text() for p in (tmp_path / "data" / "audit").glob("*.jsonl"))
    sinks = {
        "database": database,
        "audit files": unescape(audit),
        "api ticket view": unescape("\n".join(views.values())),
        "sent to the model": unescape("\n".join(m for ms in sent.values() for m in ms)),
        "logs": "\n".join(captured.lines),
    }
    misses = {(s.name, sink) for s in SECRETS for sink, text in sinks.items() if leaked(s, text)}
    cells = len(SECRETS) * len(sinks)
    untouched = sum(t.subject == text[:150] and t.body == text for t, text in zip(stored_ordinary, ORDINARY,
                                                                                 strict=True))
    print(f"\nsecret corpus: {len(SECRETS)} secrets x {len(sinks)} sinks = {cells} checks, "
          f"{cells - len(misses)} caught, {len(misses)} leaked; ordinary tickets unchanged: "
          f"{untouched}/{len(ORDINARY)}; {len(set(range(len(SECRETS))) & set(sent))} of the tickets went to the "
          f"model, {sum(len(ms) for ms in sent.values())} requests")
    assert not misses, sorted(misses)
    assert len(set(range(len(SECRETS))) & set(sent)) >= len(SECRETS) // 2, "most tickets reached the model"
    assert all("[redacted]" in views[n] for n in views)
    assert untouched == len(ORDINARY)
