"""The console attacked as an outsider and as the wrong technician, against the real server on loopback (uvicorn,
SQLite data directory), signed in over HTTP with a password and a TOTP second factor as a browser's forms are sent.

Every console route is enumerated from the app's own routes: a route added later that is missing from the tables
below fails :func:`test_every_console_route_is_in_the_attack_tables`, so no route escapes the CSRF, scope and
sign-in checks silently. Records are written through the same stores the pipeline writes through (tickets, steps,
tool calls, approvals, questions, escalations, audit, device memory, enrolled agents, single sign-on providers);
what a PSA, an agent or a user may set holds an attack payload, and every page that shows it is parsed."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import update
from starlette.routing import Route
from tests.conftest import Live, live_server
from tests.console.signing_in import (
    DANA,
    EVE,
    PASSWORD,
    USED,
    VIC,
    csrf_of,
    enrol,
    password_step,
    register,
    second_step,
    secret_of,
    signed_in,
)
from tests.private_schema import postgres_schema as private_schema

import mspclaw.playbooks
from mspclaw.console import totp
from mspclaw.pipeline.access import Principal
from mspclaw.store.database import Database
from mspclaw.store.sso import Providers, checked
from mspclaw.store.tables import AuthToken, utcnow
from mspclaw.wiring import secret_box

pytestmark = pytest.mark.anyio


def payload(mark: str) -> str:
    """Markup that runs script if any part of it reaches the page unescaped; ``mark`` names the field."""
    return (f'{mark}<script>alert("{mark}")</script>"><img src=x onerror=alert(1)>\'><svg/onload=alert(1)>'
            f'<math><mtext><table><mglyph><style><img src=x onerror=alert(2)></style></mtext></math>'
            f'</title></textarea><a href="javascript:alert(3)">x</a><iframe src="javascript:alert(4)"></iframe>'
            f"\u202e\u2066\u2028\u2029<!--{mark}-->")


def short(mark: str) -> str:
    """A payload for a field of at most 100 characters."""
    return f'{mark}"><img src=x onerror=alert(1)></title><svg onload=alert(2)>\u202e'


LONG = "A" * 60_000
PLAYBOOK = "printer"
"""A playbook of the shipped library (the builder's pages edit a copy of it)."""
ADA: dict[str, Any] = {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]}
ACE: dict[str, Any] = {"name": "Ace AcmeAdmin", "email": "ace@msp.example", "role": "admin",
                       "clients": ["Acme Dental"]}
MAL: dict[str, Any] = {"name": short("TECHNAME") + "<script>x</script>", "email": "mal@msp.example", "role": "tech",
                       "clients": ["Acme Dental"]}
DANGEROUS_TAGS = {"img", "iframe", "math", "object", "embed", "base", "frame", "frameset", "meta", "style", "mglyph",
                  "mtext", "audio", "video", "source", "link"}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcset"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def safe_url(value: str) -> bool:
    """A link stays on this console (relative, not protocol-relative) or goes to http(s) only."""
    v = re.sub(r"[\x00-\x20\x7f]", "", value).lower()
    if v.startswith(("//", "/\\", "\\")):
        return False
    if v.startswith(("/", "#", "?")) or v == "":
        return True
    if v.startswith(("http://", "https://")):
        return True
    return ":" not in v.split("/", 1)[0]  # a relative path like "revoke": no scheme


def assert_inert(page: str, where: str) -> None:
    """No tag or attribute the attack could have made live, and every link http(s) or relative."""
    parser = _Tags()
    parser.feed(page)
    parser.close()
    for tag, attrs in parser.tags:
        names = {name.lower(): value or "" for name, value in attrs}
        own = (tag == "link" and names.get("href", "").startswith("/static/console/")) or (
            tag == "meta" and "http-equiv" not in names and "content" not in names.get("name", "x"))
        assert tag not in DANGEROUS_TAGS or own, (where, tag, attrs)
        if tag == "script":  # the console's own scripts only, never inline
            assert re.fullmatch(r"/static/console/[a-z_-]+\.js", names.get("src", "")), (where, attrs)
        for name, value in names.items():
            assert not name.startswith("on"), (where, tag, attrs)
            assert "alert" not in name, (where, tag, attrs)
            if name in URL_ATTRS:
                assert safe_url(value), (where, tag, name, value)
    assert "\u202e" not in page and "\u2066" not in page, f"{where}: a bidirectional override reaches the page"


# -- the world ---------------------------------------------------------------------------------------------
@dataclass
class World:
    acme: str
    beta: str
    ticket: str
    session: str
    approval: str
    decided: str
    question: str
    escalation: str
    closed_escalation: str
    device: str
    agent: str
    code_id: str
    key_id: str
    beta_ticket: str
    beta_approval: str
    beta_question: str
    beta_escalation: str
    beta_device: str
    beta_agent: str
    beta_code_id: str
    beta_key_id: str


def _principal(tech: dict[str, Any], scope: list[str]) -> Principal:
    return Principal(name=tech["name"], scope=scope, role=tech["role"], kind="tech", email=tech["email"])


async def _records(live: Live, client: str, tag: str) -> dict[str, str]:
    """A ticket of ``client`` with every field a PSA, an agent, a user or the model sets holding a payload."""
    svc = live.services
    store = svc.store
    code = svc.registry.issue_code(client, ttl=timedelta(hours=1))
    enrolled = svc.registry.enroll(code.code, hostname=payload(f"{tag}HOST")[:250], os="linux", os_version="12",
                                   agent_version="1", tools=["reset_password"])
    device = svc.registry.devices(client)[0]
    svc.staff.devices.remember(device.id, {"printer": payload(f"{tag}FACT"), payload(f"{tag}FACTKEY")[:60]: "x"},
                               source=short(f"{tag}FACTSRC"))
    ticket, session = store.open_ticket(client_id=client, subject=payload(f"{tag}SUBJECT"),
                                        body=payload(f"{tag}BODY") + LONG + payload(f"{tag}BODYEND"),
                                        requester=payload(f"{tag}REQUESTER"),
                                        requester_name=payload(f"{tag}REQNAME"), device_id=device.id,
                                        agent_id=enrolled.agent.id, started=True)
    store.update_session(session.id, playbook=payload(f"{tag}PLAYBOOK"), note=payload(f"{tag}NOTE"),
                         reply=payload(f"{tag}REPLY"), reason=payload(f"{tag}WHY"))
    store.add_step(session.id, title=payload(f"{tag}STEP"), tool="run_script", args={"x": payload(f"{tag}ARG")},
                   ok=False, observation={"output": payload(f"{tag}OUTPUT"), "error": payload(f"{tag}ERROR")})
    for event, data in (("matched", {"playbook": payload(f"{tag}MATCHED"), "explanation": payload(f"{tag}EXPL")}),
                        ("step", {"title": payload(f"{tag}EVSTEP"), "summary": payload(f"{tag}EVSUM")}),
                        ("question", {"text": payload(f"{tag}EVQ")}),
                        ("escalation", {"reason": payload(f"{tag}EVESC")})):
        store.add_event(session.id, event, data)
    store.record_call(call_id=f"call-{tag}", session_id=session.id, client_id=client, agent_id=enrolled.agent.id,
                      tool="run_script", args={"script": payload(f"{tag}CALLARG")}, approval_id=None)
    store.finish_call(f"call-{tag}", ok=False, output={"stdout": payload(f"{tag}TOOLOUT")}, error_code="failed",
                      error_message=payload(f"{tag}TOOLERR"), duration_ms=5)
    later = utcnow() + timedelta(hours=1)
    approval = store.request_approval(session_id=session.id, client_id=client, tool="reset_password",
                                      args={"user": payload(f"{tag}APARG"), "file": "invoice\u202efdp.exe"},
                                      target=payload(f"{tag}TARGET"), reason=payload(f"{tag}APREASON"),
                                      deadline=later)
    decided = store.request_approval(session_id=session.id, client_id=client, tool="disable_account", args={},
                                     target="x", reason="r", deadline=later)
    store.decide(decided.id, status="denied", approver=payload(f"{tag}APPROVER"), reason=payload(f"{tag}DENIAL"))
    runs = svc.tickets.runs
    question = runs.add_question(session_id=session.id, client_id=client, call_id=None, text=payload(f"{tag}QTEXT"),
                                 choices=None, channel="agent", deadline=later)
    runs.add_question(session_id=session.id, client_id=client, call_id=None, text=payload(f"{tag}Q2"),
                      choices=None, channel="agent", deadline=later, status="answered",
                      answer=payload(f"{tag}ANSWER"), answered_by=payload(f"{tag}ANSWERBY"))
    escalated = await svc.staff.escalations.record(ticket, session_id=session.id, kind="failed",
                                                   reason=payload(f"{tag}ESCREASON"), device=device)
    other = await svc.staff.escalations.record(ticket, session_id=session.id, kind="failed",
                                               reason=payload(f"{tag}ESC2"), device=None)
    await svc.audit.record("attack_probe", actor=short(f"{tag}ACTOR"), client_id=client, session_id=session.id,
                           data={"note": payload(f"{tag}AUDIT"), "link": "javascript:alert(9)"})
    listed = svc.registry.issue_code(client, ttl=timedelta(hours=1))
    key = await live.http.post("/api/keys", json={"name": f"{tag} key", "role": "viewer", "clients": [client]})
    assert key.status_code == 201, key.text
    return {"ticket": ticket.id, "session": session.id, "approval": approval.id, "decided": decided.id,
            "question": question.id, "escalation": escalated.row.id, "other_escalation": other.row.id,
            "device": device.id, "agent": enrolled.agent.id, "code_id": listed.id, "key_id": key.json()["id"]}


async def build_world(live: Live) -> World:
    register(live, DANA, EVE, VIC, ADA, ACE, MAL)
    acme = await live.client("Acme Dental")
    beta = await live.client("Beta Law")
    hostile = await live.client(payload("CLIENTNAME")[:200])
    assert hostile
    a = await _records(live, acme, "A")
    b = await _records(live, beta, "B")
    handling = live.services.staff.handling
    dana = _principal(DANA, [acme])
    await handling.take(a["escalation"], dana, via="console")
    await handling.hand_over(a["escalation"], dana, to=MAL["email"], note=payload("AHANDNOTE"), via="console")
    await handling.close(a["other_escalation"], dana, resolution=payload("ARESOLUTION"), via="console")
    label = short("SSOLABEL")[:100]
    Providers(Database(live.services.engine), secret_box(live.services.settings)).add(checked(
        name="corp", label=label, issuer="https://idp.example", client_id="console", client_secret="s" * 20,
        domains=["msp.example"]))
    return World(acme, beta, a["ticket"], a["session"], a["approval"], a["decided"], a["question"], a["escalation"],
                 a["other_escalation"], a["device"], a["agent"], a["code_id"], a["key_id"], b["ticket"],
                 b["approval"], b["question"], b["escalation"], b["device"], b["agent"], b["code_id"], b["key_id"])


# -- the routes ----------------------------------------------------------------------------------------------
def app_of(live: Live) -> FastAPI:
    from mspclaw.api.app import create_app

    return create_app(live.services, manage_lifecycle=False)


def console_routes(app: FastAPI) -> set[tuple[str, str]]:
    """``(method, path)`` of every route the app serves outside ``/api``, ``/ws`` and the static assets,
    walked from ``app.routes`` (routers included into it are followed through their ``original_router``)."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(list(inner.routes))
            elif isinstance(route, Route):  # FastAPI's APIRoute and Starlette's own (/openapi.json)
                for method in route.methods or ():
                    found.add((method, route.path))
    walk(list(app.routes))
    return {(m, p) for m, p in found if not p.startswith(("/api/", "/ws")) and m != "HEAD"}


MACHINE = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("POST", "/enroll"), ("POST", "/webhooks/{psa}"),
    ("POST", "/auth/login"), ("POST", "/auth/refresh"), ("POST", "/auth/link/{token}"),
    ("POST", "/integrations/slack/interactions"), ("GET", "/openapi.json"), ("GET", "/docs"),
    ("GET", "/auth/link/{token}"), ("GET", "/s/{token}"), ("POST", "/s/{token}"),
    ("GET", "/ui/approvals/{approval_id}"),
}
"""Not the console's cookie-authenticated pages: machine endpoints (their own bearer, signature or credential in
the body, no cookie: a forged cross-site request carries nothing), the one-time-link and view-once pages whose
unguessable token in the path is the credential, and public documents."""

SIGN_IN = {
    ("GET", "/login"), ("POST", "/login"), ("POST", "/login/link"), ("GET", "/login/code"), ("POST", "/login/code"),
    ("GET", "/login/enrol"), ("POST", "/login/enrol"), ("GET", "/login/sso/callback"), ("GET", "/login/sso/{name}"),
}
"""Before a session exists; their forms carry a token bound to the pending sign-in (tested below)."""


def pages_of(w: World) -> dict[str, str]:
    """Every signed-in GET page, by route path, with Acme's records."""
    return {
        "/": "/", "/tickets/{ticket_id}": f"/tickets/{w.ticket}",
        "/approvals/{approval_id}": f"/approvals/{w.approval}",
        "/tickets/{ticket_id}/events": f"/tickets/{w.ticket}/events",
        "/escalations": "/escalations?show=all", "/escalations/{escalation_id}": f"/escalations/{w.escalation}",
        "/questions": "/questions", "/audit": "/audit", "/stats": "/stats", "/devices": "/devices",
        "/devices/{device_id}": f"/devices/{w.device}", "/admin": "/admin", "/admin/clients": "/admin/clients",
        "/admin/agents": "/admin/agents", "/admin/agents/{agent_id}/revoke": f"/admin/agents/{w.agent}/revoke",
        "/admin/enrollment": "/admin/enrollment",
        "/admin/enrollment/{code_id}/revoke": f"/admin/enrollment/{w.code_id}/revoke",
        "/admin/techs": "/admin/techs", "/admin/techs/{email}": f"/admin/techs/{quote(MAL['email'])}",
        "/admin/techs/{email}/remove": f"/admin/techs/{quote(MAL['email'])}/remove",
        "/admin/keys": "/admin/keys", "/admin/keys/{key_id}/revoke": f"/admin/keys/{w.key_id}/revoke",
        "/admin/psa": "/admin/psa", "/admin/psa/new": "/admin/psa/new",
        "/admin/psa/{name}/remove": "/admin/psa/nosuch/remove",
        "/playbooks": "/playbooks", "/playbooks/new": "/playbooks/new",
        "/playbooks/{book_id}/edit": f"/playbooks/{PLAYBOOK}/edit",
    }


def forms_of(w: World, beta: bool = False) -> dict[str, tuple[str, dict[str, str]]]:
    """Every signed-in state-changing form, by route path: the URL (Acme's records, or Beta's) and its fields."""
    t, ap, q, esc, dev, ag, code, key = (
        (w.beta_ticket, w.beta_approval, w.beta_question, w.beta_escalation, w.beta_device, w.beta_agent,
         w.beta_code_id, w.beta_key_id) if beta else
        (w.ticket, w.approval, w.question, w.escalation, w.device, w.agent, w.code_id, w.key_id))
    return {
        "/logout": ("/logout", {}),
        "/approvals/{approval_id}/decide": (f"/approvals/{ap}/decide", {"decision": "approve"}),
        "/devices/{device_id}/forget": (f"/devices/{dev}/forget", {"back": f"/tickets/{t}"}),
        "/questions/{question_id}/answer": (f"/questions/{q}/answer", {"answer": "yes", "back": f"/tickets/{t}"}),
        "/escalations/{escalation_id}/take": (f"/escalations/{esc}/take", {}),
        "/escalations/{escalation_id}/hand-over": (f"/escalations/{esc}/hand-over",
                                                   {"to": DANA["email"], "note": "n"}),
        "/escalations/{escalation_id}/close": (f"/escalations/{esc}/close", {"resolution": "done"}),
        "/admin/clients": ("/admin/clients", {"name": "Forged Client"}),
        "/admin/agents/{agent_id}/revoke": (f"/admin/agents/{ag}/revoke", {}),
        "/admin/enrollment": ("/admin/enrollment", {"client": w.beta if beta else w.acme, "role": "device"}),
        "/admin/enrollment/{code_id}/revoke": (f"/admin/enrollment/{code}/revoke", {}),
        "/admin/techs": ("/admin/techs", {"name": "Forged", "email": "forged@msp.example", "role": "admin",
                                          "clients": "*"}),
        "/admin/techs/{email}/edit": (f"/admin/techs/{quote(EVE['email'] if beta else MAL['email'])}/edit",
                                      {"name": "Forged", "role": "admin", "clients": "*"}),
        "/admin/techs/{email}/remove": (f"/admin/techs/{quote(EVE['email'] if beta else MAL['email'])}/remove", {}),
        "/admin/techs/{email}/link": (f"/admin/techs/{quote(EVE['email'] if beta else MAL['email'])}/link", {}),
        "/admin/techs/{email}/reset-2fa": (f"/admin/techs/{quote(EVE['email'] if beta else MAL['email'])}/reset-2fa",
                                           {}),
        "/admin/keys": ("/admin/keys", {"name": "forged", "role": "admin", "all_clients": "on"}),
        "/admin/keys/{key_id}/revoke": (f"/admin/keys/{key}/revoke", {}),
        "/admin/psa": ("/admin/psa", {"name": "forged", "kind": "local"}),
        "/admin/psa/{name}/test": ("/admin/psa/nosuch/test", {}),
        "/admin/psa/{name}/{change}": ("/admin/psa/nosuch/remove", {}),
        "/playbooks/{book_id}/edit": (f"/playbooks/{PLAYBOOK}/edit", {}),
        "/playbooks/{book_id}/match": (f"/playbooks/{PLAYBOOK}/match", {}),
        "/playbooks/{book_id}/dry-run": (f"/playbooks/{PLAYBOOK}/dry-run", {}),
        "/playbooks/{book_id}/save": (f"/playbooks/{PLAYBOOK}/save", {}),
    }


async def test_every_console_route_is_in_the_attack_tables(tmp_path: Path) -> None:
    """Enumerated from the app: a new route outside /api must be added to a table here (and so be attacked)."""
    async with live_server(tmp_path, workers=0) as live:
        routes = console_routes(app_of(live))
        w = World(*(["x"] * 21))
        known = ({("GET", p) for p in pages_of(w)} | {("POST", p) for p in forms_of(w)} | MACHINE | SIGN_IN)
        assert routes - known == set(), "routes not attacked by this file: add them to pages_of/forms_of"
        assert known - routes == set(), "routes in the tables that the app no longer serves"
        assert ("POST", "/approvals/{approval_id}/decide") in routes and ("GET", "/") in routes


# -- the probes ----------------------------------------------------------------------------------------------
def snapshot(live: Live, w: World) -> dict[str, Any]:
    """What a forged or out-of-scope request must not change."""
    svc = live.services
    escalations = svc.staff.escalation_store
    return {
        # the server's own sweep may expire a pending approval or question of these runless sessions meanwhile;
        # a forged request would approve, deny or answer it
        "approvals": sorted((a.id, _settled(a.status)) for a in svc.store.approvals(None, status=None)),
        "questions": sorted((q.id, _settled(q.status)) for q in svc.tickets.runs.questions(scope=None)),
        "escalations": [escalations.get(i, None).state for i in (w.escalation, w.beta_escalation)],
        "holders": [escalations.get(i, None).held_by for i in (w.escalation, w.beta_escalation)],
        "facts": [svc.staff.devices.facts(d) for d in (w.device, w.beta_device)],
        "clients": sorted(c.name for c in svc.registry.clients()),
        "revoked": sorted(a.id for a in svc.registry.agents() if a.revoked_at is not None),
        "codes": sorted(c.id for c in svc.registry.open_codes()),
        "techs": svc.staff.techs.export(),
        "keys": sorted(json.dumps(k, sort_keys=True) for k in _keys(live)),
    }


def _settled(status: str) -> str:
    return "pending" if status == "expired" else status


def _keys(live: Live) -> list[dict[str, Any]]:
    import httpx as sync_httpx

    r = sync_httpx.get(f"{live.url}/api/keys", headers={"Authorization": f"Bearer {live.api_key}"}, timeout=30)
    assert r.status_code == 200, r.text
    listed: list[dict[str, Any]] = r.json()
    return listed


async def changes_nothing(live: Live, w: World, act: Awaitable[httpx.Response]) -> httpx.Response:
    """``act`` (not started until the state before it is read) changes none of :func:`snapshot`."""
    before = await asyncio.to_thread(snapshot, live, w)
    response = await act
    after = await asyncio.to_thread(snapshot, live, w)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    return response


async def test_stored_payloads_are_inert_on_every_page(tmp_path: Path) -> None:
    """Every field a PSA, an agent, a user or a technician sets holds markup; every page that shows it is parsed:
    no live tag, no event handler, no script but the console's own, every link http(s) or relative."""
    books = tmp_path / "playbooks"
    books.mkdir()
    shipped = yaml.safe_load((Path(mspclaw.playbooks.__file__).parent / "library" / f"{PLAYBOOK}.yaml").read_text())
    (books / "hostile.yaml").write_text(yaml.safe_dump({
        **shipped, "id": "hostile", "name": short("PBNAME")[:100], "description": payload("PBDESC")[:400]}))
    async with live_server(tmp_path, workers=0, playbook_dirs=[books]) as live:
        w = await build_world(live)
        ada, _ = await signed_in(live, ADA["email"])
        try:
            expected = {
                "/": ["ASUBJECT", "AREQUESTER"],
                f"/tickets/{w.ticket}": ["ASUBJECT", "ABODY", "AREQUESTER", "AHOST", "APLAYBOOK", "ANOTE", "AREPLY",
                                         "ASTEP", "AERROR", "ACALLARG", "ATOOLERR", "AEVSTEP", "AEVQ", "AEVESC",
                                         "AMATCHED", "AQTEXT", "AANSWER", "AFACT", "APPROVER", "ADENIAL", "AAUDIT"],
                f"/approvals/{w.approval}": ["ASUBJECT", "AAPARG", "ATARGET", "AAPREASON", "AREQUESTER", "AHOST"],
                f"/approvals/{w.decided}": ["AAPPROVER", "ADENIAL"],
                "/escalations?show=all": ["ASUBJECT", "AESCREASON", "TECHNAME"],
                f"/escalations/{w.escalation}": ["ASUBJECT", "AESCREASON", "AHANDNOTE", "TECHNAME"],
                f"/escalations/{w.closed_escalation}": ["ARESOLUTION"],
                "/questions": ["AQTEXT", "ASUBJECT"],
                "/audit": ["AACTOR", "AAUDIT"],
                f"/audit?ticket={w.ticket}": ["AAUDIT"],
                "/stats": ["Acme"],
                "/devices": ["AHOST"],
                f"/devices/{w.device}": ["AHOST", "AFACT", "ASUBJECT"],
                "/admin": [],
                "/admin/clients": ["CLIENTNAME"],
                "/admin/agents": ["AHOST"],
                f"/admin/agents/{w.agent}/revoke": ["AHOST"],
                "/admin/enrollment": [],
                "/admin/techs": ["TECHNAME"],
                f"/admin/techs/{quote(MAL['email'])}": ["TECHNAME"],
                "/admin/keys": [],
                "/admin/psa": [],
                "/playbooks": ["PBNAME"],
                "/playbooks/hostile/edit": ["PBNAME", "PBDESC"],
                "/playbooks/new?copy=hostile": ["PBNAME"],
            }
            missing = []
            for url, marks in expected.items():
                r = await ada.get(url)
                assert r.status_code == 200, (url, r.status_code, r.text[:300])
                assert r.headers["content-type"].startswith("text/html"), url
                assert "script-src 'self'" in r.headers["content-security-policy"], url
                missing += [(url, mark) for mark in marks if mark not in r.text]
                assert_inert(r.text, url)
            assert missing == [], "pages that do not show the field: the probe would miss it"
            # the live timeline: each pushed line is HTML rendered and escaped by the server
            async with ada.stream("GET", f"/tickets/{w.ticket}/events") as stream:
                assert stream.status_code == 200
                lines: list[str] = []
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        lines.append(json.loads(line[6:])["html"])
                    if len(lines) >= 5:
                        break
            assert any("AEVSTEP" in h for h in lines)
            for h in lines:
                assert_inert(h, "timeline event")
            # the sign-in page shows the single sign-on provider's label
            async with httpx.AsyncClient(base_url=live.url) as outsider:
                r = await outsider.get("/login")
                assert "SSOLABEL" in r.text
                assert_inert(r.text, "/login")
        finally:
            await ada.aclose()


async def test_forged_forms_change_nothing(tmp_path: Path) -> None:
    """Every state-changing console form: no token, another session's token, a foreign ``Origin`` and
    ``Origin: null`` are refused and change nothing; GETting every page changes nothing either."""
    async with live_server(tmp_path, workers=0) as live:
        w = await build_world(live)
        ada, _ = await signed_in(live, ADA["email"])
        other, _ = await signed_in(live, DANA["email"])
        try:
            mine = csrf_of((await ada.get("/")).text)
            theirs = csrf_of((await other.get("/")).text)
            assert mine != theirs
            for path, (url, fields) in forms_of(w).items():
                attempts: list[tuple[str, dict[str, str], dict[str, str]]] = [
                    ("no token", fields, {}),
                    ("another session's token", {**fields, "csrf": theirs}, {}),
                    ("a foreign origin", {**fields, "csrf": mine}, {"Origin": "https://evil.example"}),
                    ("a null origin", {**fields, "csrf": mine}, {"Origin": "null"}),
                    ("a look-alike origin", {**fields, "csrf": mine},
                     {"Origin": f"{live.url}.evil.example"}),
                ]
                for why, data, headers in attempts:
                    r = await changes_nothing(live, w, ada.post(url, data=data, headers=headers))
                    assert r.status_code == 403, (path, why, r.status_code, r.text[:300])
                    assert "set-cookie" not in r.headers or "mspclaw_console=" not in r.headers["set-cookie"]
            # GET never changes state, the confirmation pages included
            for path, url in pages_of(w).items():
                if path.endswith("/events"):
                    continue
                r = await changes_nothing(live, w, ada.get(url))
                assert r.status_code in (200, 404), (url, r.status_code)
            # a GET or HEAD on a form's address does nothing either
            for url, _ in forms_of(w).values():
                r = await changes_nothing(live, w, ada.get(url))
                assert r.status_code in (200, 404, 405), (url, r.status_code)
            # the session still works: nothing above signed Ada out
            assert (await ada.get("/")).status_code == 200
            # with the right token, odd values are refused with the form again, not a crash
            for hours in ("\u00b2\u2074", "\uff12\uff14", "-1", "9" * 30):
                r = await changes_nothing(live, w, ada.post("/admin/enrollment", data={
                    "csrf": mine, "client": w.acme, "role": "device", "hours": hours}))
                assert r.status_code == 400, (hours, r.status_code, r.text[:300])
            # and the same forms with the right token do act (the refusals above are not for every request)
            r = await ada.post(f"/escalations/{w.beta_escalation}/take", data={"csrf": mine})
            assert r.status_code == 303, r.text[:300]
            assert live.services.staff.escalation_store.get(w.beta_escalation, None).held_by == ADA["email"]
        finally:
            await ada.aclose()
            await other.aclose()


async def test_the_sign_in_forms_need_their_own_token(tmp_path: Path) -> None:
    """Before a session exists: the password, code and enrolment forms refuse a missing token, a token of
    another browser and a foreign origin; a one-time link posted from another site is refused."""
    async with live_server(tmp_path, workers=0) as live:
        register(live, DANA, EVE)
        async with httpx.AsyncClient(base_url=live.url) as attacker, httpx.AsyncClient(base_url=live.url) as victim:
            page = await attacker.get("/login")
            their = csrf_of(page.text)
            own = csrf_of((await victim.get("/login")).text)
            for data, headers in (({}, {}), ({"csrf": their}, {}), ({"csrf": own}, {"Origin": "https://evil.example"}),
                                  ({"csrf": own}, {"Origin": "null"})):
                r = await victim.post("/login", data={**data, "email": DANA["email"], "password": PASSWORD},
                                      headers=headers)
                assert r.status_code == 403 and "mspclaw_console_2fa" not in r.headers.get("set-cookie", ""), r.text
            r = await password_step(victim, DANA["email"])
            assert r.status_code == 303
            for path in ("/login/enrol", "/login/code"):
                r = await victim.post(path, data={"code": "123456"})
                assert r.status_code == 403, (path, r.text[:200])
                r = await victim.post(path, data={"code": "123456", "csrf": their})
                assert r.status_code == 403, (path, r.text[:200])
            r = await victim.post("/login/link", data={"token": "x" * 40}, headers={"Origin": "https://evil.example"})
            assert r.status_code == 403
            # codes of digits that are not ASCII digits: a wrong code, not a crash
            for odd in ("\u00b9\u00b2\u00b3\u2074\u2075\u2076", "\uff11\uff12\uff13\uff14\uff15\uff16", "12345\u0663"):
                page = await victim.get("/login/enrol")
                r = await victim.post("/login/enrol", data={"csrf": csrf_of(page.text), "code": odd})
                assert r.status_code == 401, (odd, r.status_code, r.text[:200])
        # a one-time link is spent only by the form of its own page, in the browser that opened it
        made = await live.http.post(f"/api/techs/{EVE['email']}/login-link")
        assert made.status_code == 201, made.text
        path = httpx.URL(made.json()["url"]).path
        token = path.rsplit("/", 1)[1]
        async with httpx.AsyncClient(base_url=live.url) as attacker, httpx.AsyncClient(base_url=live.url) as victim:
            their = csrf_of((await attacker.get(path)).text)
            for data in ({"token": token}, {"token": token, "csrf": their}):
                r = await victim.post("/login/link", data=data)
                assert r.status_code == 403 and "mspclaw_console_2fa" not in r.headers.get("set-cookie", ""), r.text
            page = await victim.get(path)
            assert_inert(page.text, path)
            r = await victim.post("/login/link", data={"token": token, "csrf": csrf_of(page.text)})
            assert r.status_code == 303 and r.headers["location"] == "/login/enrol", r.text[:300]


async def test_another_clients_records_do_not_exist(tmp_path: Path) -> None:
    """Eve (Beta's technician) and Ace (Acme's admin) probe every page and form with the other client's ids:
    404, never 403, never a byte of the other client's records; a viewer acts nowhere; a technician reaches no
    admin form."""
    async with live_server(tmp_path, workers=0) as live:
        w = await build_world(live)
        eve, _ = await signed_in(live, EVE["email"])
        vic, _ = await signed_in(live, VIC["email"])
        dana, _ = await signed_in(live, DANA["email"])
        ace, _ = await signed_in(live, ACE["email"])
        try:
            acme_ids = [w.ticket, w.approval, w.decided, w.question, w.escalation, w.device, w.agent, w.code_id]
            by_id = {
                f"/tickets/{w.ticket}": 404, f"/approvals/{w.approval}": 404, f"/escalations/{w.escalation}": 404,
                f"/devices/{w.device}": 404, f"/devices?client={w.acme}": 404, f"/audit?client={w.acme}": 404,
                f"/audit?ticket={w.ticket}": 404,
            }
            for url, status in by_id.items():
                r = await eve.get(url)
                assert r.status_code == status, (url, r.status_code, r.text[:300])
                assert "ASUBJECT" not in r.text and "AHOST" not in r.text, url
            r = await eve.get(f"/tickets/{w.ticket}/events")
            assert r.status_code == 404 and "ASUBJECT" not in r.text
            for url in ("/", "/escalations?show=all", "/questions", "/audit", "/stats", "/devices", "/admin",
                        "/admin/clients", "/admin/agents"):
                r = await eve.get(url)
                for mark in ("ASUBJECT", "AHOST", "AQTEXT", "AESCREASON", "AAUDIT", "AACTOR"):
                    assert mark not in r.text, (url, mark)
                for found in acme_ids:
                    assert found not in r.text, (url, found)
            csrf = csrf_of((await eve.get("/")).text)
            for path, (url, fields) in forms_of(w).items():
                if path in ("/logout", "/admin/clients", "/admin/techs", "/admin/keys", "/admin/psa",
                            "/admin/psa/{name}/test", "/admin/psa/{name}/{change}", "/admin/enrollment"):
                    continue
                if path.startswith(("/admin/", "/playbooks/")):
                    continue  # a technician reaches no admin form (below); Acme's admin probes Beta's; playbooks
                    # belong to no client
                r = await changes_nothing(live, w, eve.post(url, data={**fields, "csrf": csrf}))
                assert r.status_code == 404, (path, r.status_code, r.text[:300])
                assert "ASUBJECT" not in r.text
            # an admin of Acme only: Beta's agents, codes, keys and technicians do not exist
            ace_csrf = csrf_of((await ace.get("/")).text)
            for path, (url, fields) in forms_of(w, beta=True).items():
                if not path.startswith("/admin/") or "{" not in path or "psa" in path:
                    continue
                r = await changes_nothing(live, w, ace.post(url, data={**fields, "csrf": ace_csrf}))
                assert r.status_code in (403, 404), (path, r.status_code, r.text[:300])
                assert "BHOST" not in r.text
            for url in (f"/admin/agents/{w.beta_agent}/revoke", f"/admin/enrollment/{w.beta_code_id}/revoke"):
                r = await ace.get(url)
                assert r.status_code == 404 and "BHOST" not in r.text, (url, r.status_code)
            r = await changes_nothing(live, w, ace.post(
                "/admin/enrollment", data={"csrf": ace_csrf, "client": w.beta, "role": "device"}))
            assert r.status_code in (400, 403, 404), r.status_code
            # a viewer of Acme: reads, acts nowhere
            vcsrf = csrf_of((await vic.get("/")).text)
            for path, (url, fields) in forms_of(w).items():
                if path == "/logout":
                    continue
                r = await changes_nothing(live, w, vic.post(url, data={**fields, "csrf": vcsrf}))
                assert r.status_code in (403, 404), (path, r.status_code)
            # a technician reaches no admin-only form
            dcsrf = csrf_of((await dana.get("/")).text)
            for path, (url, fields) in forms_of(w).items():
                if not path.startswith("/admin/"):
                    continue
                r = await changes_nothing(live, w, dana.post(url, data={**fields, "csrf": dcsrf}))
                assert r.status_code in (403, 404), (path, r.status_code)
        finally:
            for c in (eve, vic, dana, ace):
                await c.aclose()


async def test_signed_out_requests_reach_nothing(tmp_path: Path) -> None:
    """Without a session every page sends to the sign-in page (the stream answers 401) and every form changes
    nothing."""
    async with live_server(tmp_path, workers=0) as live:
        w = await build_world(live)
        async with httpx.AsyncClient(base_url=live.url) as outsider:
            for path, url in pages_of(w).items():
                r = await outsider.get(url)
                if path.endswith("/events"):
                    assert r.status_code == 401
                    continue
                assert r.status_code == 303 and r.headers["location"] == "/login", (url, r.status_code)
                assert "ASUBJECT" not in r.text
            for url, fields in forms_of(w).values():
                r = await changes_nothing(live, w, outsider.post(url, data=fields))
                assert r.status_code in (303, 403), (url, r.status_code)
                if r.status_code == 303:
                    assert r.headers["location"] == "/login"


# -- sessions --------------------------------------------------------------------------------------------------
async def test_sessions_fixation_sign_out_expiry_and_cookie_flags(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        register(live, DANA)
        # fixation: a session cookie planted before sign-in is not the one after it
        planted = "planted-" + "x" * 30
        async with httpx.AsyncClient(base_url=live.url) as c:
            c.cookies.set("mspclaw_console", planted, domain="127.0.0.1")
            assert (await c.get("/")).status_code == 303
            await password_step(c, DANA["email"])
            page = await c.get("/login/enrol")
            secret = secret_of(page.text)
            USED[secret] = totp.code_at(secret, time.time())
            done = await c.post("/login/enrol", data={"csrf": csrf_of(page.text), "code": USED[secret]})
            assert done.status_code == 200
            cookie = next(v for v in done.headers.get_list("set-cookie") if v.startswith("mspclaw_console="))
            token = cookie.split("=", 1)[1].split(";", 1)[0]
            assert token and token != planted
            flags = [f.strip().lower() for f in cookie.split(";")[1:]]
            assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags, flags
            assert "secure" not in flags  # plain http on loopback
            # sign-out invalidates the session on the server: the old cookie replayed is a stranger
            csrf = csrf_of((await c.get("/")).text)
            out = await c.post("/logout", data={"csrf": csrf})
            assert out.status_code == 303
        async with httpx.AsyncClient(base_url=live.url, cookies={"mspclaw_console": token}) as replay:
            r = await replay.get("/")
            assert r.status_code == 303 and r.headers["location"] == "/login"
        # an expired session sends to the sign-in page
        d, secret = await signed_in(live, DANA["email"], secret=secret)
        try:
            assert (await d.get("/")).status_code == 200
            from sqlalchemy.orm import Session as OrmSession

            with OrmSession(live.services.engine) as db, db.begin():
                db.execute(update(AuthToken).where(AuthToken.kind == "console", AuthToken.revoked_at.is_(None))
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
            r = await d.get("/")
            assert r.status_code == 303 and r.headers["location"] == "/login"
            r = await d.post("/logout", data={})
            assert r.status_code in (303, 403)
        finally:
            await d.aclose()
        # behind a TLS proxy (X-Forwarded-Proto from loopback): the cookies are Secure
        async with httpx.AsyncClient(base_url=live.url, headers={"X-Forwarded-Proto": "https"}) as tls:
            r = await tls.get("/login")
            for cookie in r.headers.get_list("set-cookie"):
                assert "secure" in [f.strip().lower() for f in cookie.split(";")], cookie


# -- redirects ------------------------------------------------------------------------------------------------
def raw_request(live: Live, request: bytes) -> bytes:
    """One request sent byte for byte (no client library normalises the path); the reply as far as it came (a
    server may answer and close before it read everything)."""
    port = int(live.url.rsplit(":", 1)[1])
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server answered and stopped reading
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


async def test_no_open_redirect_and_no_header_injection(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        w = await build_world(live)
        d = httpx.AsyncClient(base_url=live.url, timeout=30)
        _, codes = await enrol(d, DANA["email"])
        try:
            csrf = csrf_of((await d.get("/")).text)
            evil = ["//evil.example/x", "/\\evil.example", "https://evil.example", "/tickets/\r\nSet-Cookie: a=b",
                    "/tickets//evil.example", "/tickets/%0d%0aLocation:%20https://evil.example",
                    "\\\\evil.example", "/devices/\t//evil.example", "javascript:alert(1)", "/tickets/\\evil"]
            for back in evil:
                r = await d.post(f"/questions/{w.question}/answer",
                                 data={"csrf": csrf, "answer": "a", "back": back})
                location = r.headers.get("location", "")
                assert r.status_code in (303, 409), (back, r.status_code)
                if r.status_code == 303:
                    assert safe_url(location) and "\n" not in location and "\r" not in location, (back, location)
                    assert "set-cookie" not in r.headers or "a=b" not in r.headers["set-cookie"]
                r = await d.post(f"/devices/{w.device}/forget", data={"csrf": csrf, "back": back})
                assert r.status_code == 303, (back, r.status_code)
                location = r.headers["location"]
                assert safe_url(location) and "\n" not in location, (back, location)
        finally:
            await d.aclose()
        # the cookie that brings a technician back after sign-in (recovery codes: one sign-in each)
        for nxt in ("//evil.example/", "/\\evil.example", "https://evil.example", "/\t/evil.example", "\\/evil",
                    "/login/../..//evil.example"):
            async with httpx.AsyncClient(base_url=live.url, cookies={"mspclaw_console_next": nxt}) as c:
                await password_step(c, DANA["email"])
                r = await second_step(c, codes.pop())
                assert r.status_code == 303, r.text[:300]
                assert safe_url(r.headers["location"]), (nxt, r.headers["location"])
        # a page asked for by a strange path is remembered only as a local path
        reply = await asyncio.to_thread(
            raw_request, live, b"GET //evil.example/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n"):
            if line.lower().startswith("location:"):
                assert safe_url(line.split(":", 1)[1].strip()), line
            if line.lower().startswith("set-cookie: mspclaw_console_next="):
                value = line.split("=", 1)[1].split(";", 1)[0].strip('"')
                assert not value.startswith("//"), line


# -- oversized and malformed input ----------------------------------------------------------------------------
async def test_oversized_and_malformed_input_is_refused_clearly(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        w = await build_world(live)
        d, _ = await signed_in(live, DANA["email"])
        try:
            csrf = csrf_of((await d.get("/")).text)
            url = f"/escalations/{w.escalation}/close"
            cases: list[tuple[str, Any]] = [
                ("a huge form", {"csrf": csrf, "resolution": "x" * 200_000}),
                ("a form over the console's limit", {"csrf": csrf, "resolution": "x" * 20_000}),
                ("many fields", "&".join(f"f{i}=1" for i in range(5000)) + f"&csrf={csrf}"),
                ("a few too many fields", "&".join(f"f{i}=1" for i in range(25)) + f"&csrf={csrf}"),
                ("bad UTF-8", b"csrf=" + csrf.encode() + b"&resolution=\xff\xfe\xc3("),
                ("a NUL", f"csrf={csrf}&resolution=a%00b"),
                ("a body that is not a form", b"\x00\x01\x02{json"),
            ]
            for why, body in cases:
                if isinstance(body, dict):
                    r = await changes_nothing(live, w, d.post(url, data=body))
                else:
                    raw = body if isinstance(body, bytes) else body.encode()
                    r = await changes_nothing(live, w, d.post(
                        url, content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}))
                assert r.status_code in (400, 403, 409, 413), (why, r.status_code, r.text[:300])
                assert "Internal Server Error" not in r.text
            # bad UTF-8 with a valid token: no 500
            r = await d.post(f"/questions/{w.question}/answer", content=b"csrf=" + csrf.encode()
                             + b"&answer=%ff%fe&by=\xff", headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code in (303, 400), r.status_code
            # long and odd query strings and ids
            for page in (f"/audit?kind={'k' * 5000}", f"/audit?ticket={'t' * 3000}", f"/stats?days={'9' * 5000}",
                         f"/devices?client={'c' * 5000}", f"/escalations?show={'x' * 5000}",
                         f"/tickets/{'t' * 5000}", f"/devices/{'d' * 5000}", f"/approvals/{'a' * 5000}",
                         "/audit?since=not-a-date&until=2026-13-45", "/audit?kind=%ff%fe", "/tickets/%ff%00",
                         "/stats?days=%C2%B2", "/stats?days=%EF%BC%93%EF%BC%90", "/audit?before=%C2%B2",
                         "/audit?before=%C2%B9%C2%B2", "/audit?since=0001-01-01&until=9999-12-31",
                         f"/admin/techs/{'e' * 5000}", "/audit?page=-1&limit=99999999"):
                r = await d.get(page)
                assert r.status_code in (200, 400, 403, 404, 414, 422), (page[:80], r.status_code)
                assert "Internal Server Error" not in r.text
            for after in ("-99999999999999999999", "1e999", "%ff"):
                async with d.stream("GET", f"/tickets/{w.ticket}/events?after={after}") as stream:
                    assert stream.status_code in (200, 400, 422), (after, stream.status_code)
            for last in (b"9" * 5000, b"\xb2", b"\xb9\xb2\xb3", b"-1"):  # "\xb2" is a superscript two in latin-1
                async with d.stream("GET", f"/tickets/{w.ticket}/events", headers={b"Last-Event-ID": last}) as stream:
                    assert stream.status_code == 200, last
        finally:
            await d.aclose()
        # a 10 MB query string is refused before anything reads it
        reply = await asyncio.to_thread(
            raw_request, live, b"GET /audit?q=" + b"x" * 10_000_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Connection: close\r\n\r\n")
        status = reply.split(b"\r\n", 1)[0]
        assert status.split(b" ")[1] in (b"400", b"413", b"414", b"431"), status


def postgres_schema() -> Generator[str, None, None]:
    return private_schema("attacks")


async def test_nul_and_control_characters_on_postgresql(tmp_path: Path) -> None:
    """PostgreSQL refuses NUL in text: every field a browser can send reaches it as a clear answer, not a 500
    (real PostgreSQL on loopback)."""
    schema = postgres_schema()
    url = next(schema)
    try:
        async with live_server(tmp_path, workers=0, database_url=url) as live:
            register(live, DANA, ADA, MAL)
            svc = live.services
            acme = await live.client("Acme Dental")
            ticket, session = svc.store.open_ticket(client_id=acme, subject="printer", body="", requester="m@a.example",
                                                    device_id=None)
            later = utcnow() + timedelta(hours=1)
            approval = svc.store.request_approval(session_id=session.id, client_id=acme, tool="reset_password",
                                                  args={}, target="m", reason="r", deadline=later)
            question = svc.tickets.runs.add_question(session_id=session.id, client_id=acme, call_id=None, text="q",
                                                     choices=None, channel="agent", deadline=later)
            escalation = (await svc.staff.escalations.record(ticket, session_id=session.id, kind="failed", reason="r",
                                                             device=None)).row.id
            Providers(Database(svc.engine), secret_box(svc.settings)).add(checked(
                name="corp", label="Corp", issuer="https://idp.example", client_id="console",
                client_secret="s" * 20, domains=["msp.example"]))
            nul = "a\x00b"
            failures = []
            async with httpx.AsyncClient(base_url=live.url) as outsider:
                page = await outsider.get("/login")
                for r in (await outsider.post("/login", data={"csrf": csrf_of(page.text),
                                                              "email": f"dana{nul}@msp.example", "password": nul}),
                          await outsider.get("/login/sso/corp%00x"),
                          await outsider.get("/login/sso/callback", params={"state": nul, "code": nul}),
                          await outsider.get("/auth/link/a%00b"),
                          await outsider.post("/login/link", data={"token": nul})):
                    if r.status_code >= 500:
                        failures.append((str(r.url), r.status_code, r.text[:200]))
            ada, _ = await signed_in(live, ADA["email"])
            try:
                csrf = csrf_of((await ada.get("/")).text)
                await ada.post(f"/escalations/{escalation}/take", data={"csrf": csrf})
                for target, data in (
                    (f"/questions/{question.id}/answer", {"answer": nul, "by": nul, "back": f"/tickets/{ticket.id}"}),
                    (f"/escalations/{escalation}/hand-over", {"to": ADA["email"], "note": nul}),
                    (f"/escalations/{escalation}/close", {"resolution": nul}),
                    (f"/approvals/{approval.id}/decide", {"decision": "deny", "reason": nul}),
                    ("/admin/clients", {"name": nul}),
                    ("/admin/techs", {"name": nul, "email": f"x{nul}@msp.example", "role": "tech", "clients": nul}),
                    (f"/admin/techs/{quote(MAL['email'])}/edit", {"name": nul, "role": "tech", "clients": nul}),
                    ("/admin/keys", {"name": nul, "role": "viewer", "clients": nul}),
                    ("/admin/enrollment", {"client": nul, "role": "device", "hours": "24"}),
                ):
                    r = await ada.post(target, data={"csrf": csrf, **data})
                    if r.status_code >= 500:
                        failures.append((target, r.status_code, r.text[:200]))
                zero = "a%00b"  # NUL, as a browser sends it in an address
                for page_url in (f"/tickets/{zero}", f"/approvals/{zero}", f"/escalations/{zero}", f"/devices/{zero}",
                                 f"/audit?ticket={zero}", f"/audit?client={zero}", f"/devices?client={zero}",
                                 f"/admin/techs/{zero}", f"/admin/agents/{zero}/revoke",
                                 f"/admin/enrollment/{zero}/revoke", f"/admin/keys/{zero}/revoke",
                                 f"/playbooks/{zero}/edit", f"/admin/psa/{zero}/remove", f"/tickets/{zero}/events",
                                 f"/api/tickets/{zero}", f"/api/approvals/{zero}", f"/api/devices?client={zero}"):
                    r = await ada.get(page_url)
                    if r.status_code >= 500:
                        failures.append((page_url, r.status_code, r.text[:200]))
                assert failures == [], "\n".join(f"{u} {s} {t}" for u, s, t in failures)
            finally:
                await ada.aclose()
    finally:
        next(schema, None)
