"""Account tickets end to end: the real server, a real site-agent process configured with
``mspclaw site add``, a real Samba AD domain controller on loopback, and (for MFA and leavers) the
local Microsoft Graph tenant, which is spec-checked against Graph v1.0's published metadata, not live.

Each outcome is proven the way a user would meet it: by binding to the directory as the user.
The end user's own device is a real agent daemon in this event loop whose dialogs are scripted.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import secrets
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Live, live_server
from tests.inprocess_agent import inprocess_agent
from tests.site.graph_server import GraphTenant
from tests.site.samba import DirUser, SambaDC, add_group, add_ou, add_user, user_bind

from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA
from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn
from mspclaw.engine.models.function import FunctionModel, answer, call
from mspclaw.protocol.frames import AskUser, Secret, ShowSecret

pytestmark = pytest.mark.anyio


def _secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


async def _site_cli(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "mspclaw", "site", *argv,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()


async def _site_test(state: Path) -> tuple[int | None, str, str]:
    """``mspclaw site test`` as a user runs it: exit code, standard output, standard error."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "mspclaw", "site", "test", "--state-dir",
                                                str(state), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def start_site_agent(live: Live, client: str, dc: SambaDC, *, tenant: GraphTenant | None = None,
                           extra: tuple[str, ...] = ()) -> str:
    """Configure a site agent exactly as the docs say (``mspclaw site add ...``), enroll it with a site
    code and start it as its own process; returns its agent id once it is online."""
    state = live.tmp / "site-state"
    password = _secret_file(live.tmp / "ad.pw", dc.admin_password)
    leavers = add_ou(dc, "Leavers")
    await _site_cli("add", "ad", "--state-dir", str(state), "--url", dc.url, "--base-dn", dc.base_dn,
                    "--bind-user", dc.admin_user, "--password-file", str(password), "--ca-file", str(dc.ca_file),
                    "--tls-name", dc.tls_name, "--leavers-ou", leavers, *extra)
    env = dict(os.environ)
    if tenant is not None:
        config = tenant.config()
        await _site_cli("add", "entra", "--state-dir", str(state), "--tenant-id", config.tenant_id,
                        "--client-id", config.client_id, "--client-secret-file", str(config.client_secret_file),
                        "--authority-host", config.authority_host, "--graph-url", config.graph_url,
                        "--ca-file", str(tenant.ca_file))
        env["REQUESTS_CA_BUNDLE"] = str(tenant.ca_file)  # msal's requests honour it over verify=
    code = await live.code(client, role="site")
    before = {a.id for a in live.services.registry.agents()}
    log = (live.tmp / "site-agent.log").open("ab")  # everything it logs, read back by assert_nowhere
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mspclaw", "agent", "--server", live.url, "--enroll", code, "--state-dir", str(state),
        "--log-level", "debug", env=env, stdout=log, stderr=log)
    log.close()
    live.agents.append(proc)
    for _ in range(300):
        new = [a.id for a in live.services.registry.agents() if a.id not in before]
        if new and live.services.hub.is_online(new[0]):
            return new[0]
        assert proc.returncode is None, f"site agent exited with {proc.returncode}"
        await asyncio.sleep(0.1)
    raise AssertionError("the site agent did not come online")


async def open_ticket(live: Live, client: str, subject: str, requester: str, **extra: Any) -> str:
    r = await live.http.post("/api/tickets", json={"client": client, "subject": subject, "body": extra.pop("body", ""),
                                                   "requester": requester, **extra})
    assert r.status_code == 202, r.text
    return str(r.json()["ticket_id"])


async def approve_next(live: Live) -> dict[str, Any]:
    approval = await live.wait_approval(seconds=60)
    r = await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Dana"})
    assert r.status_code == 200, r.text
    return approval


@contextlib.asynccontextmanager
async def server(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[Live, str]]:
    async with live_server(tmp_path, **overrides) as live:
        yield live, await live.client()


class UserDesk:
    """The requester's own computer: answers confirmations and shows secrets, as scripted."""

    def __init__(self, confirm: str = "Yes, it was me", answers: dict[str, str] | None = None) -> None:
        self.confirm, self.answers = confirm, answers or {}
        self.asked: list[str] = []
        self.shown: list[Secret] = []

    async def answer(self, question: AskUser) -> str | None:
        self.asked.append(question.text)
        if "Did you ask for this?" in question.text:
            return self.confirm
        for key, value in self.answers.items():
            if key.lower() in question.text.lower():
                return value
        return None

    async def show(self, frame: ShowSecret) -> bool:
        self.shown.append(frame.secret)
        return True


def assert_nowhere(secret: str, live: Live, caplog: pytest.LogCaptureFixture) -> None:
    """The secret is in no file the test made (the server's data directory and database, the site agent's
    state directory and call journal, its debug log), no row of the database, no server log line."""
    for path in live.tmp.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"the secret is in {path}"
    assert (live.tmp / "site-agent.log").stat().st_size > 0, "the site agent's log was captured"
    db = next(live.services.settings.data_dir.glob("*.db"), None)
    if db is not None:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            dump = "\n".join(conn.iterdump())
        assert secret not in dump
    assert secret not in caplog.text


async def test_a_locked_out_user_with_no_device_is_unlocked_by_the_site_agent(
        tmp_path: Path, samba_dc: SambaDC, ad_user: DirUser) -> None:
    for _ in range(3):
        user_bind(samba_dc, ad_user.sam, "wrong-password")
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (False, "775"), "the account is locked"
    async with server(tmp_path) as (live, client):
        site = await start_site_agent(live, client, samba_dc)
        lookup = (await live.http.get("/api/agents/lookup", params={"client": client,
                                                                    "requester": ad_user.mail})).json()
        assert lookup["agent_id"] is None and lookup["site_agent_id"] == site
        link = live.services.hub.link(site)
        assert link is not None and link.identity.role == "site"
        assert set(link.tools) == {"directory_user", "unlock_account", "reset_password", "disable_user",
                                   "enable_user", "create_user", "add_to_group", "remove_from_group",
                                   "share_access"}, "exactly what Active Directory can do: no device tools"
        ticket = await open_ticket(live, client, "Locked out of my account", ad_user.mail,
                                   body="It says my account is locked after I typed my password wrong.")
        approval = await approve_next(live)
        assert approval["tool"] == "unlock_account"
        assert approval["facts"]["requester"] == {"requested_by": ad_user.mail,
                                                  "verified_by": ["is the PSA contact on the ticket"]}
        assert approval["reason"].startswith(f"Requester {ad_user.mail} verified by the PSA contact"), \
            "the server's own sentence, before any text of the model"
        done = await live.wait_ticket(ticket, seconds=60)
    assert done["status"] == "resolved", done["reason"]
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (True, "")


async def test_a_password_reset_is_confirmed_and_shown_on_the_users_own_device_only(
        tmp_path: Path, samba_dc: SambaDC, ad_user: DirUser, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    desk = UserDesk()
    async with server(tmp_path) as (live, client):
        await start_site_agent(live, client, samba_dc)
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "desk", answers=desk.answer,
                                   secrets=desk.show, hostname="acme-lt-11"):
            ticket = await open_ticket(live, client, "Forgot my password", ad_user.mail, device="acme-lt-11",
                                       body="I forgot my password after the holidays, please reset it")
            approval = await approve_next(live)
            done = await live.wait_ticket(ticket, seconds=60)
        steps = (await live.http.get(f"/api/tickets/{ticket}")).json()
        assert done["status"] == "resolved", done["reason"]
        assert approval["tool"] == "reset_password"
        assert approval["facts"]["requester"]["verified_by"] == [
            "is the PSA contact on the ticket", "confirmed the request on their own enrolled device"]
        assert "confirmed by them on their own device acme-lt-11" in approval["reason"].splitlines()[0]
        assert any("Did you ask for this?" in q for q in desk.asked)
        [secret] = desk.shown
        assert secret.type == "temporary_password" and secret.account.startswith(ad_user.sam)
        assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (False, "52e"), "the old password is gone"
        assert user_bind(samba_dc, ad_user.sam, secret.value) == (False, "773"), "works, and must be changed"
        assert secret.value not in str(steps) and secret.value not in str(done)
        assert_nowhere(secret.value, live, caplog)


async def test_a_password_reset_without_a_device_goes_out_as_a_view_once_link(
        tmp_path: Path, samba_dc: SambaDC, ad_user: DirUser, caplog: pytest.LogCaptureFixture) -> None:
    """No device of the requester: the temporary password is behind a link posted to the PSA ticket,
    which a GET does not use up and a POST reveals exactly once."""
    caplog.set_level(logging.DEBUG)
    psa = LocalPSA()
    psa.add(PSATicket(id="41", company="acme", requester=ad_user.mail, subject="Password expired, need a reset",
                      body="please help"))
    async with live_server(tmp_path, connectors={"local": psa}) as live:
        client = await live.client()
        await start_site_agent(live, client, samba_dc)
        sub = await live.services.tickets.submit(client=client, subject="Password expired, need a reset",
                                                 body="please help", requester=ad_user.mail, device=None,
                                                 psa="local", external_id="41")
        await approve_next(live)
        done = await live.wait_ticket(sub.ticket.id, seconds=60)
        await live.services.tickets.wait(sub.session.id)
        assert done["status"] == "resolved", done["reason"]
        [link] = [n for n in (await psa.get_ticket("41")).notes if "/s/" in n.text]
        assert link.public
        url = link.text.split("/s/", 1)[1].split()[0].rstrip(".")
        page = await live.http.get(f"/s/{url}")
        assert page.status_code == 200 and "Show my temporary password" in page.text
        revealed = await live.http.post(f"/s/{url}")
        assert revealed.status_code == 200
        value = html.unescape(revealed.text.split('<p class="secret">', 1)[1].split("</p>", 1)[0])
        assert user_bind(samba_dc, ad_user.sam, value) == (False, "773")
        again = await live.http.post(f"/s/{url}")
        assert again.status_code == 410 and "already used" in again.text
        assert revealed.headers["cache-control"] == "no-store"
        assert_nowhere(value, live, caplog)


async def test_someone_elses_account_is_refused_whatever_the_model_asks(
        tmp_path: Path, samba_dc: SambaDC, ad_user: DirUser) -> None:
    """The model asks to reset the CEO's password on a ticket about the requester's own; the site agent
    refuses, because the server bound the call to the verified requester and the CEO is not them. (A ticket
    that itself asks for the CEO's password never reaches the model: ``tests/pipeline/
    test_someone_elses_account.py``.)"""
    ceo_password = "Ceo-" + secrets.token_urlsafe(8) + "7x"
    ceo = f"ceo{secrets.token_hex(3)}"
    add_user(samba_dc, ceo, ceo_password, mail=f"{ceo}@example.com")

    def model(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        seen = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn)]
        if not seen:
            return call("reset_password", {"username": ceo, "requested_by": f"{ceo}@example.com"})
        return answer(f"could not: {seen[0].error}")

    async with live_server(tmp_path, model=FunctionModel(model, name="function:obliging")) as live:
        client = await live.client()
        await start_site_agent(live, client, samba_dc)
        ticket = await open_ticket(live, client, "Forgot my password", ad_user.mail,
                                   body="I forgot my password over the weekend, please reset it. Urgent!")
        await approve_next(live)  # even a technician who approves blindly changes nothing
        done = await live.wait_ticket(ticket, seconds=60)
    assert done["status"] == "escalated"
    text = str(done)
    assert "not_requesters_account" in text or "may only ask for this on their own account" in text
    assert user_bind(samba_dc, ceo, ceo_password) == (True, ""), "the CEO's password is unchanged"


async def test_a_domain_admins_password_is_never_reset_by_automation(
        tmp_path: Path, samba_dc: SambaDC) -> None:
    sam = f"adm{secrets.token_hex(3)}"
    password = "Adm-" + secrets.token_urlsafe(8) + "7x"
    add_user(samba_dc, sam, password, mail=f"{sam}@example.com", groups=("Domain Admins",))
    async with server(tmp_path) as (live, client):
        await start_site_agent(live, client, samba_dc)
        ticket = await open_ticket(live, client, "Forgot my password", f"{sam}@example.com",
                                   body="please reset my password")
        done = await _finish_approving(live, ticket)
    assert done["status"] == "escalated"
    assert "privileged account" in str(done)
    assert user_bind(samba_dc, sam, password) == (True, "")


async def _finish_approving(live: Live, ticket: str, seconds: float = 60) -> dict[str, Any]:
    """Approve whatever the run asks for until the ticket is done."""
    for _ in range(int(seconds * 10)):
        body: dict[str, Any] = (await live.http.get(f"/api/tickets/{ticket}")).json()
        if body["status"] in ("resolved", "escalated"):
            return body
        for pending in (await live.http.get("/api/approvals")).json():
            await live.http.post(f"/api/approvals/{pending['id']}/approve", json={"approver": "Dana"})
        await asyncio.sleep(0.1)
    raise AssertionError(f"ticket {ticket} did not finish")


async def test_an_mfa_reset_removes_the_methods_in_entra_and_shows_an_access_pass(
        tmp_path: Path, samba_dc: SambaDC, ad_user: DirUser, graph_tenant: GraphTenant) -> None:
    uid = graph_tenant.add_user(ad_user.upn, mail=ad_user.mail, synced=True, sam=ad_user.sam,
                                methods=("password", "microsoftAuthenticator", "phone"))
    desk = UserDesk()
    async with server(tmp_path) as (live, client):
        await start_site_agent(live, client, samba_dc, tenant=graph_tenant)
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "desk", answers=desk.answer,
                                   secrets=desk.show, hostname="acme-lt-12"):
            ticket = await open_ticket(live, client, "New phone, authenticator app codes not working",
                                       ad_user.mail, device="acme-lt-12",
                                       body="I lost my phone and cannot approve the MFA sign in requests")
            done = await _finish_approving(live, ticket)
    assert done["status"] == "resolved", done["reason"]
    assert graph_tenant.methods(uid) == ["password", "temporaryAccessPass"]
    [secret] = desk.shown
    assert secret.type == "temporary_access_pass"
    assert secret.value not in str(done)


async def test_a_leaver_is_disabled_in_ad_and_signed_out_of_entra_when_their_manager_asks(
        tmp_path: Path, samba_dc: SambaDC, graph_tenant: GraphTenant) -> None:
    manager = f"mgr{secrets.token_hex(3)}"
    add_user(samba_dc, manager, "Mgr-" + secrets.token_urlsafe(8) + "7x", mail=f"{manager}@example.com")
    leaver = f"lvr{secrets.token_hex(3)}"
    password = "Lvr-" + secrets.token_urlsafe(8) + "7x"
    manager_dn = f"CN={manager},CN=Users,{samba_dc.base_dn}"
    add_user(samba_dc, leaver, password, mail=f"{leaver}@example.com", manager=manager_dn)
    sku = graph_tenant.add_sku("SPE_E3")
    uid = graph_tenant.add_user(f"{leaver}@test.local", mail=f"{leaver}@example.com", synced=True, sam=leaver,
                                licences=(sku,))
    desk = UserDesk(answers={"e-mail address of the person leaving": f"{leaver}@example.com",
                             "when should their access end": "now"})
    async with server(tmp_path) as (live, client):
        await start_site_agent(live, client, samba_dc, tenant=graph_tenant)
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "desk", answers=desk.answer,
                                   hostname="acme-lt-13"):
            ticket = await open_ticket(live, client, "Leaver: please disable the account, last day today",
                                       f"{manager}@example.com", device="acme-lt-13",
                                       body="Our colleague is leaving the company today.")
            done = await _finish_approving(live, ticket)
    assert done["status"] == "resolved", done["reason"]
    assert user_bind(samba_dc, leaver, password) == (False, "533"), "disabled"
    assert graph_tenant.licences(uid) == []
    assert "revokeSignInSessions" in " ".join(r.path for r in graph_tenant.graph_requests())


async def test_a_leaver_asked_for_by_someone_else_is_not_disabled(
        tmp_path: Path, samba_dc: SambaDC, ad_user: DirUser) -> None:
    victim = f"vic{secrets.token_hex(3)}"
    password = "Vic-" + secrets.token_urlsafe(8) + "7x"
    add_user(samba_dc, victim, password, mail=f"{victim}@example.com")
    desk = UserDesk(answers={"e-mail address of the person leaving": f"{victim}@example.com",
                             "when should their access end": "now"})
    async with server(tmp_path) as (live, client):
        await start_site_agent(live, client, samba_dc)
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "desk", answers=desk.answer,
                                   hostname="acme-lt-14"):
            ticket = await open_ticket(live, client, "Please disable the account of a leaver", ad_user.mail,
                                       device="acme-lt-14", body="They are leaving the company, terminated today.")
            done = await _finish_approving(live, ticket)
    assert done["status"] == "escalated"
    assert "someone they manage" in str(done)
    assert user_bind(samba_dc, victim, password) == (True, "")


async def test_a_new_hire_gets_an_account_like_a_colleague_of_the_requesting_manager(
        tmp_path: Path, samba_dc: SambaDC) -> None:
    manager = f"boss{secrets.token_hex(3)}"
    add_user(samba_dc, manager, "Bos-" + secrets.token_urlsafe(8) + "7x", mail=f"{manager}@example.com")
    group = f"Sales-{secrets.token_hex(2)}"
    add_group(samba_dc, group)
    colleague = f"col{secrets.token_hex(3)}"
    add_user(samba_dc, colleague, "Col-" + secrets.token_urlsafe(8) + "7x", mail=f"{colleague}@example.com",
             groups=(group,), manager=f"CN={manager},CN=Users,{samba_dc.base_dn}")
    first, last = "Sarah", f"Jones{secrets.token_hex(2)}"
    desk = UserDesk(answers={"first name": first, "last name": last, "whose access": f"{colleague}@example.com"})
    async with server(tmp_path) as (live, client):
        await start_site_agent(live, client, samba_dc)
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "desk", answers=desk.answer,
                                   hostname="acme-lt-15"):
            ticket = await open_ticket(live, client, "New hire starting Monday", f"{manager}@example.com",
                                       device="acme-lt-15", body="Please set up an account for our new employee.")
            done = await _finish_approving(live, ticket)
    assert done["status"] == "resolved", done["reason"]
    conn = samba_dc.connect()
    try:
        conn.search(samba_dc.base_dn, f"(sn={last})", attributes=["sAMAccountName", "memberOf",
                                                                    "userAccountControl"])
        [entry] = conn.entries
        assert any(group in str(g) for g in entry.memberOf.values)
    finally:
        conn.unbind()


async def test_a_reset_whose_password_never_came_back_escalates_and_says_so(tmp_path: Path) -> None:
    """A site agent that answers a reset without the temporary password beside it (what a replay after a
    restart looks like: its journal keeps no copy) must not end in "we gave it to you privately"."""
    from mspclaw.agent.tools import JsonObject, ToolContext, bind
    from mspclaw.tools.site import AccountArgs, UserArgs

    def lookup(args: UserArgs, _: ToolContext) -> JsonObject:
        return {"found": True, "username": args.username, "enabled": True, "locked_out": False}

    def reset(args: AccountArgs, _: ToolContext) -> JsonObject:
        return {"reset": True, "must_change_at_logon": True}

    tools = {"directory_user": bind(UserArgs, lookup), "reset_password": bind(AccountArgs, reset)}
    async with server(tmp_path) as (live, client):
        code = await live.code(client, role="site")
        async with inprocess_agent(live.url, code, tmp_path / "site", tools=tools, hostname="site-01"):
            ticket = await open_ticket(live, client, "Forgot my password", "tom@acme.example",
                                       body="please reset my password")
            done = await _finish_approving(live, ticket)
    assert done["status"] == "escalated"
    assert "never delivered" in done["reason"]


async def test_site_test_checks_the_real_directory_and_lists_what_the_agent_will_offer(
        tmp_path: Path, samba_dc: SambaDC) -> None:
    state = tmp_path / "state"
    password = _secret_file(tmp_path / "ad.pw", samba_dc.admin_password)
    await _site_cli("add", "ad", "--state-dir", str(state), "--url", samba_dc.url, "--base-dn", samba_dc.base_dn,
                    "--bind-user", samba_dc.admin_user, "--password-file", str(password),
                    "--ca-file", str(samba_dc.ca_file), "--tls-name", samba_dc.tls_name)
    code, text, err = await _site_test(state)
    assert code == 0, text + err
    assert "ad       ok" in text and "ldaps" in text
    assert "unlock_account" in text and "reset_password" in text
    assert samba_dc.admin_password not in text + err
    wrong = _secret_file(tmp_path / "wrong.pw", "not-the-password")
    await _site_cli("add", "ad", "--state-dir", str(state), "--url", samba_dc.url, "--base-dn", samba_dc.base_dn,
                    "--bind-user", samba_dc.admin_user, "--password-file", str(wrong),
                    "--ca-file", str(samba_dc.ca_file), "--tls-name", samba_dc.tls_name)
    code, text, _ = await _site_test(state)
    assert code == 1 and "FAILED" in text
