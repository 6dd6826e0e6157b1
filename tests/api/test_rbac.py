"""Every /api route, called as each role and as a technician of another client, against the
real server (uvicorn, SQLite): the allow/deny of each call is asserted, and the list routes are
checked to leak nothing of a client the caller does not serve.

Callers: the bootstrap key; named API keys (admin of every client, admin/tech/viewer of client
A); technicians logged in with a password (JWT) as tech and viewer of A, and as a tech of B.
Expected results come from the route's rule (``api/rbac.py``) and the caller's clients:
role too low or a global route for a scoped caller -> 403; a record of a client the caller does
not serve -> 404 (it learns nothing, not even that it exists); otherwise the route's success.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from tests.conftest import Live, live_server
from tests.roster import put_roster

from mspclaw.api.rbac import POLICY
from mspclaw.pipeline.techs import Tech
from mspclaw.store.database import Database
from mspclaw.store.jobs import PSAAccounts
from mspclaw.store.tables import utcnow
from mspclaw.wiring import secret_box

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
_n = itertools.count()


def uniq(prefix: str) -> str:
    return f"{prefix}-{next(_n)}-{secrets.token_hex(2)}"


@dataclass
class Who:
    name: str
    token: str
    role: str
    clients: str  # "all", "A" or "B"


@dataclass
class World:
    live: Live
    a: str
    b: str
    a_ticket: str
    b_ticket: str

    # -- fresh records of client A, one per call, so state-changing routes can succeed each time
    def agent(self, client: str | None = None) -> str:
        reg = self.live.services.registry
        code = reg.issue_code(client or self.a, ttl=timedelta(hours=1))
        return reg.enroll(code.code, hostname=uniq("pc"), os="linux", os_version="", agent_version="",
                          tools=[]).agent.id

    def device(self, client: str | None = None) -> str:
        agent = self.agent(client)
        dev = next(d for d in self.live.services.registry.devices(client or self.a) if d.agent_id == agent)
        self.live.services.staff.devices.remember(dev.id, {"department": "Billing", "location": "2nd floor"},
                                                source="answer:department")
        return dev.id

    def ticket(self, client: str | None = None) -> tuple[str, str]:
        t, s = self.live.services.store.open_ticket(client_id=client or self.a, subject="printer jams", body="",
                                                    requester="maria@acme.example", device_id=None)
        self.live.services.store.update_session(s.id, status="resolved", outcome="resolved", playbook="printer")
        return t.id, s.id

    def approval(self, client: str | None = None) -> str:
        _, session = self.ticket(client)
        row = self.live.services.store.request_approval(
            session_id=session, client_id=client or self.a, tool="clear_temp_files", args={"dry_run": False},
            target="pc-1", reason="free space", deadline=utcnow() + timedelta(minutes=5))
        return row.id

    def question(self, client: str | None = None) -> str:
        _, session = self.ticket(client)
        return self.live.services.tickets.runs.add_question(
            session_id=session, client_id=client or self.a, call_id=None, text="Which printer?", choices=None,
            channel="agent", deadline=utcnow() + timedelta(minutes=5)).id

    def feedback(self) -> str:
        ticket, session = self.ticket()
        now = utcnow()
        self.live.services.staff.feedback.store.open(ticket_id=ticket, session_id=session, client_id=self.a,
                                                   resolved_at=now, deadline=now + timedelta(hours=1), channel="api")
        return ticket

    def escalation(self, client: str | None = None) -> str:
        ticket, session = self.ticket(client)
        return self.live.services.staff.escalation_store.add(
            ticket_id=ticket, session_id=session, client_id=client or self.a, kind="failed", reason="x", body={},
            assigned_to=None).id

    def job(self, *, cancelled: bool = False) -> str:
        job, _ = self.live.services.jobs.enqueue("psa_ticket", {"psa": "none", "ticket_id": "1"},
                                                 dedupe_key=uniq("job"))
        if cancelled:
            self.live.services.jobs.cancel(job.id)
        return job.id

    def key(self) -> str:
        row, _ = self.live.services.staff.keys.create(uniq("spare"), role="viewer", clients=[self.a],
                                                    all_clients=False, created_by="test")
        return row.id

    def code(self, client: str | None = None) -> str:
        """A fresh enrollment code of client A (its id)."""
        return self.live.services.registry.issue_code(client or self.a, ttl=timedelta(hours=1)).id

    def codes(self) -> str:
        """Open codes of both clients, for the list."""
        self.code(self.a), self.code(self.b)
        return "/api/enrollments"

    def spare_tech(self) -> str:
        """A fresh technician of the roster (its e-mail)."""
        email = f"{uniq('spare')}@msp.example"
        self.live.services.staff.techs.add(Tech(name=email, email=email, clients=["Acme Dental"]))
        return email

    def psa(self) -> str:
        """A disabled PSA account whose PSA does not answer (its credential test says so, 200)."""
        svc = self.live.services
        return PSAAccounts(Database(svc.engine), secret_box(svc.settings)).add(
            uniq("psa"), "local", {"base_url": "http://127.0.0.1:9", "poll_interval_s": 0}, {"token": "t"},
            enabled=False).name


@dataclass
class Case:
    method: str
    route: str
    need: str
    """The least role that may call it; ``admin*``: an admin of every client."""
    make: Callable[[World], tuple[str, dict[str, Any] | None]]
    ok: int = 200
    scoped: str = "item"
    """``item``: a record of client A (404 to others); ``list``: filtered; ``none``: not client-scoped."""
    list_key: str = "client_id"


CASES = [
    Case("POST", "/api/clients", "admin*", lambda w: ("/api/clients", {"name": uniq("Client")}), 201, "none"),
    Case("GET", "/api/clients", "viewer", lambda w: ("/api/clients", None), scoped="list", list_key="id"),
    Case("GET", "/api/clients/{ref}", "viewer", lambda w: (f"/api/clients/{w.a}", None)),
    Case("POST", "/api/enrollments", "admin", lambda w: ("/api/enrollments", {"client": w.a}), 201),
    Case("GET", "/api/agents", "viewer", lambda w: ("/api/agents", None), scoped="list"),
    Case("GET", "/api/agents/lookup", "viewer", lambda w: (f"/api/agents/lookup?client={w.a}", None)),
    Case("POST", "/api/agents/{agent_id}/revoke", "admin", lambda w: (f"/api/agents/{w.agent()}/revoke", None)),
    Case("POST", "/api/tickets", "tech", lambda w: ("/api/tickets", {"client": w.a, "subject": "printer",
                                                                     "requester": "maria@acme.example"}), 202),
    Case("GET", "/api/tickets", "viewer", lambda w: ("/api/tickets", None), scoped="list"),
    Case("GET", "/api/tickets/{ticket_id}", "viewer", lambda w: (f"/api/tickets/{w.a_ticket}", None)),
    Case("GET", "/api/approvals", "viewer", lambda w: ("/api/approvals?status=", None), scoped="list"),
    Case("POST", "/api/approvals/{approval_id}/approve", "tech",
         lambda w: (f"/api/approvals/{w.approval()}/approve", {"approver": "tech-a@msp.example"})),
    Case("POST", "/api/approvals/{approval_id}/deny", "tech",
         lambda w: (f"/api/approvals/{w.approval()}/deny", {"approver": "tech-a@msp.example", "reason": "no"})),
    Case("POST", "/api/psa/{psa}/tickets/{ticket_id}/run", "admin*",
         lambda w: ("/api/psa/nopsa/tickets/1/run", None), 404, "none"),
    Case("GET", "/api/jobs", "admin*", lambda w: ("/api/jobs", None), scoped="none"),
    Case("GET", "/api/jobs/{job_id}", "admin*", lambda w: (f"/api/jobs/{w.job()}", None), scoped="none"),
    Case("POST", "/api/jobs/{job_id}/retry", "admin*", lambda w: (f"/api/jobs/{w.job(cancelled=True)}/retry", None),
         scoped="none"),
    Case("POST", "/api/jobs/{job_id}/cancel", "admin*", lambda w: (f"/api/jobs/{w.job()}/cancel", None),
         scoped="none"),
    Case("GET", "/api/me", "viewer", lambda w: ("/api/me", None), scoped="none"),
    Case("POST", "/api/logout", "viewer", lambda w: ("/api/logout", None), scoped="none"),
    Case("GET", "/api/devices", "viewer", lambda w: ("/api/devices", None), scoped="list"),
    Case("GET", "/api/devices/{device_id}", "viewer", lambda w: (f"/api/devices/{w.device()}", None)),
    Case("POST", "/api/devices/{device_id}/forget", "tech", lambda w: (f"/api/devices/{w.device()}/forget", None)),
    Case("GET", "/api/stats", "viewer", lambda w: ("/api/stats?by=client", None), scoped="none"),
    Case("GET", "/api/escalations", "viewer", lambda w: ("/api/escalations", None), scoped="list"),
    Case("GET", "/api/escalations/{escalation_id}", "viewer", lambda w: (f"/api/escalations/{w.escalation()}", None)),
    Case("POST", "/api/escalations/{escalation_id}/take", "tech",
         lambda w: (f"/api/escalations/{w.escalation()}/take", None)),
    Case("POST", "/api/escalations/{escalation_id}/hand-over", "tech",
         lambda w: (f"/api/escalations/{w.escalation()}/hand-over", {"to": "tech-a@msp.example", "note": "yours"})),
    Case("POST", "/api/escalations/{escalation_id}/close", "tech",
         lambda w: (f"/api/escalations/{w.escalation()}/close", {"resolution": "fixed by hand"})),
    Case("GET", "/api/notifications", "tech", lambda w: ("/api/notifications", None), scoped="list"),
    Case("GET", "/api/tickets/{ticket_id}/feedback", "viewer",
         lambda w: (f"/api/tickets/{w.feedback()}/feedback", None)),
    Case("POST", "/api/tickets/{ticket_id}/feedback", "tech",
         lambda w: (f"/api/tickets/{w.feedback()}/feedback", {"answer": "yes"})),
    Case("GET", "/api/questions", "viewer", lambda w: ("/api/questions?status=", None), scoped="list"),
    Case("POST", "/api/questions/{question_id}/answer", "tech",
         lambda w: (f"/api/questions/{w.question()}/answer", {"answer": "the one by the door"})),
    Case("GET", "/api/audit", "tech", lambda w: ("/api/audit?limit=1000", None), scoped="list"),
    Case("POST", "/api/keys", "admin*",
         lambda w: ("/api/keys", {"name": uniq("k"), "role": "viewer", "clients": [w.a]}), 201, "none"),
    Case("GET", "/api/keys", "admin*", lambda w: ("/api/keys", None), scoped="none"),
    Case("POST", "/api/keys/{ref}/revoke", "admin*", lambda w: (f"/api/keys/{w.key()}/revoke", None), scoped="none"),
    Case("GET", "/api/techs", "admin*", lambda w: ("/api/techs", None), scoped="none"),
    Case("POST", "/api/techs/{ref}/login-link", "admin*",
         lambda w: ("/api/techs/tech-a@msp.example/login-link", None), 201, "none"),
    Case("POST", "/api/techs", "admin*", lambda w: ("/api/techs", {"name": "New", "email": f"{uniq('new')}@x.example",
                                                                   "clients": ["Acme Dental"]}), 201, "none"),
    Case("PATCH", "/api/techs/{ref}", "admin*", lambda w: (f"/api/techs/{w.spare_tech()}", {"role": "viewer"}),
         scoped="none"),
    Case("DELETE", "/api/techs/{ref}", "admin*", lambda w: (f"/api/techs/{w.spare_tech()}", None), 204, "none"),
    Case("POST", "/api/techs/{ref}/reset-2fa", "admin*", lambda w: (f"/api/techs/{w.spare_tech()}/reset-2fa", None),
         scoped="none"),
    Case("GET", "/api/enrollments", "admin", lambda w: (w.codes(), None), scoped="list"),
    Case("POST", "/api/enrollments/{code_id}/revoke", "admin",
         lambda w: (f"/api/enrollments/{w.code()}/revoke", None)),
    Case("GET", "/api/psa-accounts", "admin*", lambda w: ("/api/psa-accounts", None), scoped="none"),
    Case("POST", "/api/psa-accounts", "admin*",
         lambda w: ("/api/psa-accounts", {"name": uniq("psa"), "kind": "local", "poll_interval_s": 0,
                                          "fields": {"base_url": "http://127.0.0.1:9", "token": "t"}}), 201, "none"),
    Case("POST", "/api/psa-accounts/{name}/test", "admin*", lambda w: (f"/api/psa-accounts/{w.psa()}/test", None),
         scoped="none"),
    Case("POST", "/api/psa-accounts/{name}/enable", "admin*",
         lambda w: (f"/api/psa-accounts/{w.psa()}/enable", None), scoped="none"),
    Case("POST", "/api/psa-accounts/{name}/disable", "admin*",
         lambda w: (f"/api/psa-accounts/{w.psa()}/disable", None), scoped="none"),
    Case("DELETE", "/api/psa-accounts/{name}", "admin*", lambda w: (f"/api/psa-accounts/{w.psa()}", None), 204,
         "none"),
    Case("GET", "/api/playbooks", "viewer", lambda w: ("/api/playbooks", None), scoped="none"),
    Case("GET", "/api/playbooks/{book_id}", "viewer", lambda w: ("/api/playbooks/printer", None), scoped="none"),
    # no MSPCLAW_PLAYBOOK_DIRS here: an admin of every client passes the rule and is told to configure one (409)
    Case("PUT", "/api/playbooks/{book_id}", "admin*",
         lambda w: ("/api/playbooks/printer_local", {"yaml": "id: printer_local\n"}), 409, "none"),
    Case("POST", "/api/playbooks/{book_id}/match", "tech",
         lambda w: ("/api/playbooks/printer/match", {"subject": "the printer is jammed"}), scoped="none"),
    Case("POST", "/api/playbooks/{book_id}/dry-run", "tech", lambda w: ("/api/playbooks/printer/dry-run", {}),
         scoped="none"),
]


RANK = {"viewer": 0, "tech": 1, "admin": 2}


def expected(case: Case, who: Who) -> int:
    if RANK[who.role] < RANK[case.need.rstrip("*")]:
        return 403
    if case.need.endswith("*") and who.clients != "all":
        return 403
    if case.scoped == "item" and who.clients == "B":
        return 404
    return case.ok


TECHS: dict[str, list[dict[str, Any]]] = {"techs": [
    {"name": "Tech A", "email": "tech-a@msp.example", "role": "tech", "clients": ["Acme Dental"]},
    {"name": "Viewer A", "email": "viewer-a@msp.example", "role": "viewer", "clients": ["Acme Dental"]},
    {"name": "Tech B", "email": "tech-b@msp.example", "role": "tech", "clients": ["Beta Law"]},
]}


async def setup_world(live: Live) -> tuple[World, list[Who]]:
    svc = live.services
    put_roster(svc, TECHS)
    a, b = await live.client("Acme Dental"), await live.client("Beta Law")
    callers = [Who("bootstrap", live.api_key, "admin", "all")]
    for name, role, all_clients, clients, scope in [("global-admin", "admin", True, [], "all"),
                                                    ("admin-a", "admin", False, [a], "A"),
                                                    ("tech-key-a", "tech", False, [a], "A"),
                                                    ("viewer-key-a", "viewer", False, [a], "A")]:
        r = await live.http.post("/api/keys", json={"name": name, "role": role, "clients": clients,
                                                     "all_clients": all_clients})
        assert r.status_code == 201, r.text
        callers.append(Who(name, r.json()["key"], role, scope))
    async with httpx.AsyncClient(base_url=live.url) as anon:
        for tech in TECHS["techs"]:
            svc.staff.logins.set_password(tech["email"], PASSWORD)
            r = await anon.post("/auth/login", json={"email": tech["email"], "password": PASSWORD})
            assert r.status_code == 200, r.text
            callers.append(Who(tech["email"], r.json()["access_token"], tech["role"],
                               "A" if tech["clients"] == ["Acme Dental"] else "B"))
    world = World(live, a, b, "", "")
    world.a_ticket, _ = world.ticket(a)
    world.b_ticket, _ = world.ticket(b)
    # client A has two devices, so a new ticket for it cannot be routed and escalates at once
    world.device(a), world.device(a), world.device(b)
    world.escalation(b)
    world.approval(a), world.approval(b)
    world.question(a), world.question(b)
    return world, callers


def visible_ids(body: Any, key: str) -> set[str]:
    assert isinstance(body, list), body
    return {str(item[key]) for item in body if item.get(key) is not None}


async def test_every_route_as_every_role_and_as_another_clients_tech(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        world, callers = await setup_world(live)
        app_routes = {(m, r.path) for r in _api_routes() for m in r.methods or ()}
        assert {(c.method, c.route) for c in CASES} == app_routes, "every /api route is in the matrix"
        assert set(POLICY) == app_routes, "every /api route has an access rule, and no rule is stale"
        for case in CASES:
            rule = POLICY[(case.method, case.route)]
            assert (rule.role + ("*" if rule.every_client else "")) == case.need, (case.route, rule)
        failures = []
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            for case in CASES:
                for who in callers:
                    path, body = case.make(world)
                    r = await http.request(case.method, path, json=body,
                                           headers={"Authorization": f"Bearer {who.token}"})
                    want = expected(case, who)
                    if r.status_code != want:
                        failures.append(f"{case.method} {path} as {who.name}: {r.status_code}, want {want}: "
                                        f"{r.text[:160]}")
                        continue
                    if want == 200 and case.scoped == "list" and who.clients != "all":
                        seen = visible_ids(r.json(), case.list_key)
                        forbidden = world.b if who.clients == "A" else world.a
                        if forbidden in seen:
                            failures.append(f"GET {path} as {who.name} leaked client {forbidden}'s records")
                        if case.list_key == "client_id" and not seen and case.route != "/api/notifications":
                            failures.append(f"GET {path} as {who.name} saw nothing of its own client")
                    if case.route == "/api/stats" and want == 200 and who.clients == "B":
                        keys = {row["key"] for row in r.json()["rows"]}
                        if "Acme Dental" in keys:
                            failures.append("stats leaked client A to a tech of client B")
        assert not failures, "\n".join(failures)
        refusals = live.services.audit.query(kind="api_forbidden")
        assert refusals and all(e.actor != "unknown" for e in refusals)


def _api_routes() -> list[APIRoute]:
    from mspclaw.api.routes import API_ROUTERS

    return [r for router in API_ROUTERS for r in router.routes if isinstance(r, APIRoute)]
