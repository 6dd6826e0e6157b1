"""Log lines: JSON off a terminal, text on one, the ids of the task in context, the level from settings,
secrets never written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.conftest import live_server
from tests.inprocess_agent import inprocess_agent

from mspclaw import __version__
from mspclaw.api.server import configure_logging
from mspclaw.observability import logs
from mspclaw.settings import Settings
from mspclaw.store import log_redaction

pytestmark = pytest.mark.anyio


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.captureWarnings(False)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_off_a_terminal_with_time_level_logger_and_info_kept(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", "auto", stream=out)
    logging.getLogger("mspclaw.pipeline.intake").info("job %s: ticket %s resolved", "j1", "T-9")
    logging.getLogger("mspclaw.pipeline.intake").debug("not at INFO")
    [line] = lines(out)
    assert line["level"] == "INFO" and line["logger"] == "mspclaw.pipeline.intake"
    assert line["msg"] == "job j1: ticket T-9 resolved"
    assert isinstance(line["ts"], str) and line["ts"].endswith("Z") and "T" in line["ts"]


def test_text_on_a_terminal(restore_root: None) -> None:
    out = Terminal()
    logs.configure("WARNING", "auto", stream=out)
    logging.getLogger("mspclaw.x").info("dropped below WARNING")
    logging.getLogger("mspclaw.x").warning("disk nearly full")
    text = out.getvalue()
    assert "dropped" not in text
    assert " WARNING mspclaw.x: disk nearly full" in text and not text.startswith("{")


def test_an_exception_is_one_json_line_with_its_traceback(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("mspclaw.y").exception("job crashed")
    [line] = lines(out)
    assert line["msg"] == "job crashed" and "RuntimeError: boom" in str(line["exc"])


async def test_each_task_logs_with_its_own_ids(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    log = logging.getLogger("mspclaw.pipeline.run")
    step = asyncio.Event()

    async def ticket(ticket_id: str, session_id: str) -> None:
        logs.bind(ticket_id=ticket_id, session_id=session_id)
        await step.wait()
        log.info("step done")

    tasks = [asyncio.create_task(ticket("t1", "s1")), asyncio.create_task(ticket("t2", "s2"))]
    await asyncio.sleep(0)
    step.set()
    await asyncio.gather(*tasks)
    log.info("outside any ticket")
    found = lines(out)
    assert {(x.get("ticket_id"), x.get("session_id")) for x in found[:2]} == {("t1", "s1"), ("t2", "s2")}
    assert "ticket_id" not in found[2], "ids bound in a ticket's task never leak out of it"


def test_context_block_and_unknown_keys(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    with logs.context(agent_id="a-1"):
        logging.getLogger("mspclaw.dispatch").info("in")
    logging.getLogger("mspclaw.dispatch").info("out")
    inside, outside = lines(out)
    assert inside["agent_id"] == "a-1" and "agent_id" not in outside
    with pytest.raises(ValueError, match="unknown log context keys"):
        logs.bind(password="x")


def test_secrets_never_written_whichever_logger(restore_root: None) -> None:
    log_redaction.install()
    out = io.StringIO()
    handler = configure_logging("INFO", "json")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    secret = "msp_" + secrets.token_urlsafe(32)
    logging.getLogger("mspclaw.api").info("key given: %s", secret)
    logging.getLogger("ops_test.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET",
                                              "/x?password=Sup3r-Secret!", "1.1", 200)
    written = out.getvalue()
    assert secret not in written and "Sup3r-Secret!" not in written
    assert len(lines(out)) == 2


def test_level_comes_from_mspclaw_log_level(monkeypatch: pytest.MonkeyPatch, restore_root: None) -> None:
    monkeypatch.setenv("MSPCLAW_LOG_LEVEL", "warning")
    monkeypatch.setenv("MSPCLAW_LOG_FORMAT", "text")
    settings = Settings()
    out = io.StringIO()
    logs.configure(settings.log_level, settings.log_format, stream=out)
    logging.getLogger("mspclaw.z").info("quiet")
    logging.getLogger("mspclaw.z").warning("loud")
    assert "quiet" not in out.getvalue() and "WARNING mspclaw.z: loud" in out.getvalue()
    monkeypatch.setenv("MSPCLAW_LOG_LEVEL", "chatty")
    with pytest.raises(ValidationError):
        Settings()


def test_a_message_is_bounded(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    logging.getLogger("mspclaw.big").info("x" * (logs.MAX_MESSAGE * 3))
    [line] = lines(out)
    assert len(str(line["msg"])) < logs.MAX_MESSAGE + 100


def test_python_warnings_get_a_time_and_a_level(restore_root: None) -> None:
    handler = configure_logging("INFO", "json")
    assert isinstance(handler, logging.StreamHandler)
    out = io.StringIO()
    handler.setStream(out)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("the old setting is deprecated", DeprecationWarning, stacklevel=1)
    [line] = lines(out)
    assert line["logger"] == "py.warnings" and line["level"] == "WARNING" and "ts" in line
    assert "the old setting is deprecated" in str(line["msg"])


async def test_a_ticket_run_logs_with_its_ticket_session_and_agent_ids(tmp_path: Path, restore_root: None) -> None:
    """A real ticket through the pipeline and a real agent connection: the server says when the ticket starts
    and how it ends, with its ticket, session and agent ids in context, and when the agent comes and goes, with
    the agent's id."""
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    async with live_server(tmp_path, workers=0) as live:
        client = await live.client()
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "agent",
                                   temp_root=tmp_path / "temp") as agent:
            done = (await live.http.post("/api/tickets", json={
                "client": client, "subject": "disk almost full", "body": "it says the disk is full"})).json()
            await live.wait_ticket(done["ticket_id"])
            await live.services.tickets.wait(done["session_id"])
            agent_id = agent.state.agent_id
        for _ in range(100):  # the server sees the agent go a moment after it closed
            if not live.services.hub.is_online(agent_id):
                break
            await asyncio.sleep(0.05)
    found = lines(out)
    ticket, session = done["ticket_id"], done["session_id"]
    ids = {"ticket_id": ticket, "session_id": session, "client_id": client, "agent_id": agent_id}
    started = [x for x in found if x["logger"] == "mspclaw.pipeline.run" and x["msg"] == (
        f"ticket {ticket} started (agent {agent_id})")]
    ended = [x for x in found if x["logger"] == "mspclaw.pipeline.closing"
             and str(x["msg"]).startswith(f"ticket {ticket} resolved: ")]
    assert len(started) == 1 and len(ended) == 1, [x["msg"] for x in found]
    for line in (*started, *ended):
        assert {k: line.get(k) for k in ids} == ids, line
    hub = [x for x in found if x["logger"] == "mspclaw.dispatch.hub"]
    assert [str(x["msg"]).split(":")[0] for x in hub] == ["agent connected", "agent disconnected"], hub
    assert re.fullmatch(rf"agent connected: \S+ \(device, linux .+, version {re.escape(__version__)}\)",
                        str(hub[0]["msg"])), hub[0]
    assert all(x.get("agent_id") == agent_id and x.get("client_id") == client for x in hub)
    assert "ticket_id" not in hub[0], "a connection's lines carry no ticket's ids"
