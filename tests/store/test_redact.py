"""Redaction: the secret corpus at every store sink, ordinary tickets untouched, bounded cost, logs.

The corpus (``tests/secret_corpus.py``) is written through the public store APIs into every place
MSPclaw keeps text (ticket subject and body, session events, notes, replies, steps, tool call
arguments, outputs and errors, questions and answers, model turns, the audit trail) and into the
logs; afterwards no secret value may be found in the database file, the audit files or a log line.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.secret_corpus import ORDINARY, SECRETS, Secret

from mspclaw.engine.messages import ModelRequest, ModelResponse, ToolReturn, UserPrompt
from mspclaw.engine.models.function import FunctionModel, answer
from mspclaw.pipeline.durable import DurableModel
from mspclaw.store import log_redaction
from mspclaw.store.audit import AuditLog
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url
from mspclaw.store.redact import REDACTED, redact, redact_text
from mspclaw.store.registry import Registry
from mspclaw.store.runs import RunStore
from mspclaw.store.tickets import TicketStore

NAMES = [s.name for s in SECRETS]


def leaked(secret: Secret, text: str) -> list[str]:
    return [value for value in secret.values if value in text]


def test_the_corpus_is_large_and_varied() -> None:
    assert len(SECRETS) >= 40 and len({s.name for s in SECRETS}) == len(SECRETS)
    for secret in SECRETS:
        assert all(value in secret.text for value in secret.values), secret.name


@pytest.mark.parametrize("secret", SECRETS, ids=NAMES)
def test_every_secret_of_the_corpus_is_redacted_from_text(secret: Secret) -> None:
    out = redact_text(secret.text)
    assert not leaked(secret, out), out
    assert REDACTED in out
    assert redact_text(out) == out, "redacting twice changes nothing"


@pytest.mark.parametrize("secret", SECRETS, ids=NAMES)
def test_secrets_inside_json_values_and_lists_are_redacted(secret: Secret) -> None:
    out = repr(redact({"body": secret.text, "list": [secret.text, 1], "nested": {"why": [secret.text]}}))
    assert not leaked(secret, out.replace("\\\\", "\\"))


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_ticket_text_is_not_touched(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text_in", "text_out"),
    [
        ("my password is not working", "my password is not working"),
        ("Password: expired", "Password: expired"),
        ("my password is Summer2024!", "my password is [redacted]"),
        ("mck_0123456789ab_Xk4Lm9Pq2Rs7Tv1Wz8Yb3Cd6Ef0Gh5Ij2Kl9Mn4Op7Q", "mck_0123456789ab_[redacted]"),
        ("AccountName=a;AccountKey=abc;EndpointSuffix=core.windows.net",
         "AccountName=a;AccountKey=[redacted];EndpointSuffix=core.windows.net"),
        ("login at /auth/link/AbCdEf0123456789xyz_-QQ now", "login at /auth/link/[redacted] now"),
    ],
)
def test_what_stays_and_what_goes(text_in: str, text_out: str) -> None:
    assert redact_text(text_in) == text_out


# --- bounded cost --------------------------------------------------------------------------------

MB = 1_000_000
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "letters": lambda n: "a" * n,
    "base64 run": lambda n: "Ab1/" * (n // 4),
    "label=": lambda n: "password=" * (n // 9),
    "label: then spaces": lambda n: "password:" + " " * n + "x",
    "prose": lambda n: "my password for the vpn is " * (n // 27),
    "open quote": lambda n: 'password: "' * (n // 11),
    "value separators": lambda n: "pw=" + "a," * (n // 2),
    "jwt-like": lambda n: "eyJ-" * (n // 4),
    "pem without end": lambda n: "-----BEGIN PRIVATE KEY-----" * (n // 27),
    "token prefixes": lambda n: "ghp_xoxb-sk-AKIAmck_" * (n // 20),
    "url without @": lambda n: "https://u:" * (n // 10),
    "bearer": lambda n: "Bearer " * (n // 7),
    "pin digits": lambda n: "pin 1" * (n // 5),
    "unicode label": lambda n: "contraseña " * (n // 11),
}


@pytest.mark.parametrize("shape", ADVERSARIAL)
def test_one_megabyte_of_adversarial_text_is_redacted_in_linear_time(shape: str) -> None:
    make = ADVERSARIAL[shape]
    small, big = make(MB // 4), make(MB)
    started = time.process_time()
    redact_text(small)
    quarter = time.process_time() - started
    started = time.process_time()
    redact_text(big)
    whole = time.process_time() - started
    assert whole < 8.0, f"{shape}: {whole:.2f} s of CPU for 1 MB"
    assert whole < 8 * quarter + 0.5, f"{shape}: 4x the text cost {whole / max(quarter, 1e-9):.1f}x the time"


# --- every store sink ----------------------------------------------------------------------------


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[TicketStore, RunStore, AuditLog, str, Path]]:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    store_db = Database(engine)
    client = Registry(store_db).add_client("Acme")
    yield TicketStore(store_db), RunStore(store_db), AuditLog(Database(engine), tmp_path / "audit"), client.id, tmp_path
    engine.dispose()


def database_text(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def test_no_secret_of_the_corpus_is_kept_by_any_store_sink(stores: Any) -> None:
    store, runs, audit, client_id, tmp = stores
    deadline = datetime.now(UTC) + timedelta(minutes=5)
    for n, secret in enumerate(SECRETS):
        text = secret.text
        ticket, session = store.open_ticket(client_id=client_id, subject=text[:200], body=text, requester="u@x",
                                            device_id=None, started=True)
        store.add_event(session.id, "thought", {"text": text}, session_values={"reason": text})
        store.add_step(session.id, title=text[:200], tool="run", args={"cmd": text}, ok=True,
                       observation={"stdout": text})
        store.add_step_and_event(session.id, title="step", tool="run", args={"cmd": text}, ok=False,
                                 observation={"stderr": text}, event="step", data={"summary": text})
        call_id = f"call_{session.id}_1"
        store.record_call(call_id=call_id, session_id=session.id, client_id=client_id, agent_id="ag", tool="run",
                          args={"script": text}, approval_id=None)
        store.finish_call(call_id, ok=False, output={"out": text}, error_code="failed", error_message=text,
                          duration_ms=1)
        question = runs.add_question(session_id=session.id, client_id=client_id, call_id=None, text=text,
                                     choices=None, channel="device", deadline=deadline)
        runs.settle_question(question.id, status="answered", answer=text, answered_by="user")
        runs.add_turn(session.id, 1, model="m", response=answer(text).model_dump(mode="json"), prompt_tokens=1,
                      completion_tokens=1)
        store.update_session(session.id, note=text)
        store.close_session(session.id, ticket.id, outcome="resolved", note=text, reply=text, reason=text,
                            event=("resolved", {"note": text, "reply": text}))
        audit.append("note_written", client_id=client_id, session_id=session.id[:32],
                     data={"note": text, "reply": text, "n": n})
    kept = database_text(tmp / "mspclaw.db")
    files = "".join(p.read_text() for p in (tmp / "audit").glob("*.jsonl"))
    misses = {s.name: leaked(s, kept) + leaked(s, files.replace("\\\\", "\\")) for s in SECRETS}
    assert not {name: values for name, values in misses.items() if values}
    assert "Acme" in kept and "resolved" in kept  # the rest is still there


@pytest.mark.anyio
async def test_the_model_provider_receives_no_secret_and_the_stored_turn_keeps_none(stores: Any) -> None:
    store, runs, _, client_id, _ = stores
    _, session = store.open_ticket(client_id=client_id, subject="s", body="", requester="", device_id=None)
    received: list[str] = []

    def provider(messages: list[Any], tools: list[Any]) -> ModelResponse:
        received.append(repr(messages))
        return answer("\n".join(s.text for s in SECRETS))  # a model repeating what it was given

    corpus = "\n\n".join(s.text for s in SECRETS)
    model = DurableModel(FunctionModel(provider), runs, session.id)
    await model.request([ModelRequest(parts=[UserPrompt(text=corpus),
                                             ToolReturn(call_id="c1", name="read_file", content={"text": corpus})])],
                        [])
    sent = received[0].replace("\\\\", "\\").replace("\\n", "\n")
    stored = repr([t.response for t in runs.turns(session.id)]).replace("\\\\", "\\").replace("\\n", "\n")
    assert not [s.name for s in SECRETS if leaked(s, sent)]
    assert not [s.name for s in SECRETS if leaked(s, stored)]


def test_log_records_of_the_mspclaw_tree_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    log_redaction.install()
    log_redaction.install()  # idempotent
    with caplog.at_level(logging.INFO):
        for secret in SECRETS:
            logging.getLogger("mspclaw.pipeline.tickets").info("ticket body: %s", secret.text)
        try:
            raise ValueError(SECRETS[10].text)
        except ValueError:
            logging.getLogger("mspclaw.api").exception("request failed")
        logging.getLogger("elsewhere").info("not ours: %s", "password=kept-as-is1")
    text = caplog.text
    assert not [s.name for s in SECRETS if leaked(s, text)]
    assert "password=kept-as-is1" in text, "other loggers are not touched"
    assert "ValueError" in text and REDACTED in text


def test_redaction_is_idempotent_so_a_redacted_text_can_be_remembered_as_clean() -> None:
    """``redact_text`` remembers the texts it returned (a note is redacted where it is written, then by the
    store and the audit log): that is sound only if redacting a redacted text changes nothing."""
    from mspclaw.store import redact as module

    for secret in SECRETS:
        once = redact_text(secret.text)
        assert redact_text(once) == once, secret.name
        module._clean.clear()
        assert module._redact_text(once) == once, secret.name


def test_the_clean_texts_remembered_are_bounded_and_never_pass_a_secret() -> None:
    from mspclaw.store import redact as module

    module._clean.clear()
    for i in range(module._CLEAN_TEXTS * 3):
        redact_text(f"ticket {i}: password: hunter{i}x{i}")
    assert len(module._clean) == module._CLEAN_TEXTS
    redact_text("token " + "A" * (module._CLEAN_TEXT_CHARS + 10))  # too long to remember
    assert all(len(text) <= module._CLEAN_TEXT_CHARS for text in module._clean)
    for secret in SECRETS:  # remembered outputs are outputs: an input with a secret is never among them
        for value in secret.values:
            assert all(value not in text for text in module._clean), secret.name
            assert value not in redact_text(secret.text), secret.name
