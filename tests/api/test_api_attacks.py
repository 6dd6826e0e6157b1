"""The API attacked with what PostgreSQL stores no text with (NUL) and with odd values, against the real server on
loopback over real PostgreSQL (``TEST_POSTGRES_URL``): every answer is a clear 4xx, never a 500 or a 503."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import live_server
from tests.console.signing_in import DANA, register
from tests.console.test_console_attacks import postgres_schema

from mspclaw.store.tables import utcnow

pytestmark = pytest.mark.anyio
NUL = "a\x00b"


async def test_nul_in_json_bodies_and_addresses_is_a_clear_refusal_on_postgresql(tmp_path: Path) -> None:
    schema = postgres_schema()
    url = next(schema)
    try:
        async with live_server(tmp_path, workers=0, database_url=url) as live:
            register(live, DANA)
            svc = live.services
            acme = await live.client("Acme Dental")
            ticket, session = svc.store.open_ticket(client_id=acme, subject="printer", body="", requester="m@a.example",
                                                    device_id=None)
            later = utcnow() + timedelta(hours=1)
            approval = svc.store.request_approval(session_id=session.id, client_id=acme, tool="reset_password",
                                                  args={}, target="m", reason="r", deadline=later)
            question = svc.tickets.runs.add_question(session_id=session.id, client_id=acme, call_id=None, text="q",
                                                     choices=None, channel="agent", deadline=later)
            escalation = (await svc.staff.escalations.record(ticket, session_id=session.id, kind="failed",
                                                             reason="r", device=None)).row.id
            posts: list[tuple[str, dict[str, Any]]] = [
                ("/api/tickets", {"client": acme, "subject": NUL, "body": NUL, "requester": f"m{NUL}@a.example"}),
                ("/api/tickets", {"client": NUL, "subject": "s", "body": "b", "requester": "m@a.example"}),
                ("/api/clients", {"name": NUL}),
                ("/api/keys", {"name": NUL, "role": "viewer", "clients": [acme]}),
                ("/api/keys", {"name": "k", "role": "viewer", "clients": [NUL]}),
                ("/api/enrollments", {"client": NUL}),
                (f"/api/questions/{question.id}/answer", {"answer": NUL, "by": NUL}),
                (f"/api/approvals/{approval.id}/deny", {"approver": NUL, "reason": NUL}),
                (f"/api/escalations/{escalation}/take", {}),
                (f"/api/escalations/{escalation}/hand-over", {"to": NUL, "note": NUL}),
                (f"/api/escalations/{escalation}/close", {"resolution": NUL}),
                (f"/api/tickets/{ticket.id}/feedback", {"rating": "up", "comment": NUL}),
                ("/api/techs", {"name": NUL, "email": f"x{NUL}@msp.example", "role": "tech", "clients": [NUL]}),
                ("/auth/login", {"email": f"dana{NUL}@msp.example", "password": NUL}),
                ("/auth/refresh", {"refresh_token": NUL}),
                ("/enroll", {"code": NUL, "hostname": NUL, "os": "linux", "os_version": NUL, "agent_version": "1",
                             "tools": [NUL]}),
            ]
            failures = []
            for target, body in posts:
                r = await live.http.post(target, json=body)
                if r.status_code >= 500:
                    failures.append(f"POST {target} {r.status_code} {r.text[:300]}")
            zero = "a%00b"
            for target in (f"/api/tickets/{zero}", f"/api/approvals/{zero}", f"/api/devices?client={zero}",
                           f"/api/audit?client={zero}", f"/api/audit?ticket={zero}", f"/api/tickets?client={zero}",
                           f"/api/escalations/{zero}", f"/api/techs/{zero}", f"/api/psa-accounts/{zero}",
                           f"/api/jobs/{zero}", f"/api/stats?client={zero}", f"/auth/link/{zero}", f"/s/{zero}"):
                r = await live.http.get(target)
                if r.status_code >= 500:
                    failures.append(f"GET {target} {r.status_code} {r.text[:300]}")
                elif "%00" in target and not target.startswith("/s/"):
                    assert r.status_code == 422 and "NUL" in r.text, (target, r.status_code, r.text[:300])
            r = await live.http.post(f"/api/tickets/{zero}/feedback", json={"rating": "up"})
            assert r.status_code == 422 and "NUL" in r.text, r.text
            r = await live.http.post("/api/clients", json={"name": NUL})
            assert r.status_code == 422 and "NUL" in r.text, r.text
            assert NUL not in {c.name for c in svc.registry.clients()}
            assert failures == [], "\n".join(failures)
    finally:
        next(schema, None)
