"""The session channel: start a ticket, follow its events, decide on the socket, resume after a drop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Live, live_server, make_old_files
from websockets.asyncio.client import ClientConnection, connect

from mspclaw.protocol.codec import decode_session_frame, encode
from mspclaw.protocol.frames import Decide, Error, Event, Start, Watch

pytestmark = pytest.mark.anyio


async def open_ws(live: Live) -> ClientConnection:
    return await connect(live.ws_url + "/ws/sessions", additional_headers={"Authorization": f"Bearer {live.api_key}"})


async def events_until(ws: ClientConnection, last: str) -> list[Event]:
    seen: list[Event] = []
    while True:
        frame = decode_session_frame(await ws.recv())
        assert isinstance(frame, Event), frame
        seen.append(frame)
        if frame.event == last:
            return seen


async def test_start_follow_decide_and_resume(tmp_path: Path) -> None:
    make_old_files(tmp_path / "temp", 2)
    async with live_server(tmp_path) as live:
        client = await live.client()
        await live.start_agent(client, temp_root=tmp_path / "temp")
        ws = await open_ws(live)
        await ws.send(encode(Start(client_id=client, subject="disk full", body="no space left",
                                   requester="maria@acme.example")))
        first = await events_until(ws, "approval_request")
        assert [e.event for e in first][:2] == ["started", "matched"]
        assert first[1].data["playbook"] == "disk_full"
        request: dict[str, Any] = first[-1].data
        session_id = first[-1].session_id
        await ws.close()  # the watcher drops while the session waits

        ws2 = await open_ws(live)
        await ws2.send(encode(Watch(session_id=session_id, after_seq=first[-1].seq)))
        await ws2.send(encode(Decide(approval_id=str(request["approval_id"]), approve=True, approver="Dana")))
        rest = await events_until(ws2, "final_answer")
        seqs = [e.seq for e in rest]
        assert seqs == list(range(first[-1].seq + 1, first[-1].seq + 1 + len(rest))), "no gap, no repeat"
        assert rest[0].event == "approval_decision" and rest[0].data["approver"] == "Dana"
        assert rest[-1].data["outcome"] == "resolved"
        await ws2.close()


async def test_bad_frames_get_errors_and_foreign_sessions_are_not_found(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        ws = await open_ws(live)
        for text, code in [("nope", "bad_frame"), (json.dumps({"kind": "fly"}), "unknown_kind"),
                           (encode(Watch(session_id="ss_missing")), "not_found"),
                           (encode(Start(client_id="cl_missing", subject="x")), "not_found")]:
            await ws.send(text)
            frame = decode_session_frame(await ws.recv())
            assert isinstance(frame, Error) and frame.code == code, (text, frame)
        await ws.close()
