"""Technician logins and API keys against the real server: Argon2id passwords, short-lived JWTs,
rotating refresh tokens, one-time links, throttling, revocation; approvers; the session socket's
role and client checks."""

from __future__ import annotations

import copy
import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from tests.conftest import Live, live_server
from tests.roster import put_roster
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mspclaw.api.routes import audit, auth, devices, escalations, feedback, keys, stats, techs
from mspclaw.protocol.codec import decode_session_frame, encode
from mspclaw.protocol.frames import Decide, Error, Start, Watch
from mspclaw.store.tables import ApiKeyRow, AuthToken, TechCredential, utcnow

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
TECHS = {"techs": [
    {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "clients": ["Acme Dental"]},
    {"name": "Vic Viewer", "email": "vic@msp.example", "role": "viewer", "clients": ["Acme Dental"]},
    {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "clients": ["Beta Law"]},
    {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]},
]}


async def setup(live: Live, *logins: str) -> tuple[str, str]:
    """Put the roster in place; give a password to those who log in (Argon2id costs ~0.3 s a hash here)."""
    put_roster(live.services, TECHS)
    for email in logins:
        live.services.staff.logins.set_password(email, PASSWORD)
    return await live.client("Acme Dental"), await live.client("Beta Law")


async def login(anon: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await anon.post("/auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_password_login_jwt_refresh_rotation_and_reuse(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        a, _ = await setup(live, "dana@msp.example")
        stored = live.services.staff.logins
        with live.services.engine.connect() as conn:
            (hashed,) = conn.execute(TechCredential.__table__.select()
                                     .where(TechCredential.email == "dana@msp.example")).one()[1:2]
        assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
        assert (await login(anon, "dana@msp.example", "wrong password!")).status_code == 401
        assert (await login(anon, "nobody@msp.example")).status_code == 401
        r = await login(anon, "DANA@msp.example")
        assert r.status_code == 200, r.text
        tokens = r.json()
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "dana@msp.example" and claims["role"] == "tech"
        assert 0 < claims["exp"] - claims["iat"] <= 900
        me = (await anon.get("/api/me", headers=bearer(tokens["access_token"]))).json()
        assert me == {"name": "Dana Scully", "kind": "tech", "role": "tech", "email": "dana@msp.example",
                      "clients": [a]}
        # refresh: a new pair; the old refresh token is spent
        r2 = await anon.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r2.status_code == 200 and r2.json()["refresh_token"] != tokens["refresh_token"]
        # presenting the spent one again (a stolen token) revokes the whole login
        r3 = await anon.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r3.status_code == 401 and "already used" in r3.json()["detail"]["message"]
        r4 = await anon.post("/auth/refresh", json={"refresh_token": r2.json()["refresh_token"]})
        assert r4.status_code == 401 and "revoked" in r4.json()["detail"]["message"]
        with live.services.engine.connect() as conn:
            rows = conn.execute(AuthToken.__table__.select()).all()
        assert all(tokens["refresh_token"] not in str(row) for row in rows), "refresh tokens are stored as digests"
        kinds = [e.kind for e in live.services.audit.query()]
        # both failed logins are counted; from one address within a minute, one is audited (a guessing run
        # must not cost a chained, fsynced event each)
        assert kinds.count("login_failed") == 1 and "login" in kinds and "refresh_refused" in kinds
        assert live.services.intake.refusals.counts()["login_failed"] == 2
        assert PASSWORD not in json.dumps([e.data for e in live.services.audit.query()])
        del stored


async def test_bad_tokens_are_refused(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        await setup(live, "dana@msp.example")
        good = (await login(anon, "dana@msp.example")).json()["access_token"]
        claims = jwt.decode(good, options={"verify_signature": False})
        secret = live.services.settings.load_jwt_secret()
        forged = [
            jwt.encode({**claims, "role": "admin"}, "not-the-secret-but-long-enough-for-hs256!", algorithm="HS256"),
            jwt.encode({**claims, "exp": int(time.time()) - 5}, secret, algorithm="HS256"),
            jwt.encode({**claims, "typ": "refresh"}, secret, algorithm="HS256"),
            jwt.encode({**claims, "sub": "mallory@evil.example"}, secret, algorithm="HS256"),
            jwt.encode(claims, "", algorithm="none"),  # PyJWT takes "" as no key for alg "none"
            good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        ]
        for token in forged:
            r = await anon.get("/api/me", headers=bearer(token))
            assert r.status_code == 401, (token, r.text)
        expired = await anon.get("/api/me", headers=bearer(forged[1]))
        assert "expired" in expired.json()["detail"]["message"]
        # the role in the token does not matter: the roster does. Narrow Dana to viewer: at once.
        doc = copy.deepcopy(TECHS)
        doc["techs"][0]["role"] = "viewer"
        put_roster(live.services, doc)
        assert (await anon.get("/api/me", headers=bearer(good))).json()["role"] == "viewer"
        r = await anon.post("/api/tickets", headers=bearer(good), json={"client": "Acme Dental", "subject": "x"})
        assert r.status_code == 403
        # removed from the registry: the token stops working
        doc["techs"].pop(0)
        put_roster(live.services, doc)
        assert (await anon.get("/api/me", headers=bearer(good))).status_code == 401


async def test_failed_logins_are_throttled(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        await setup(live, "fox@msp.example", "dana@msp.example")
        for _ in range(5):
            assert (await login(anon, "fox@msp.example", "guess guess guess")).status_code == 401
        r = await login(anon, "fox@msp.example")
        assert r.status_code == 429 and "too many failed logins" in r.json()["detail"]["message"]
        assert (await login(anon, "dana@msp.example")).status_code == 200, "other accounts are not affected"
        # one address trying many accounts is stopped too
        live.services.staff.access._remote_throttle.limit = 7
        for n in range(2):
            assert (await login(anon, f"guess{n}@msp.example")).status_code == 401
        r = await login(anon, "dana@msp.example")
        assert r.status_code == 429 and "this address" in r.json()["detail"]["message"]


async def test_one_time_login_link(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        await setup(live)
        r = await live.http.post("/api/techs/vic@msp.example/login-link")
        assert r.status_code == 201
        path = httpx.URL(r.json()["url"]).path
        page = await anon.get(path)
        assert page.status_code == 200 and "<form" in page.text  # a GET (mail scanner) does not spend it
        first = await anon.post(path)
        assert first.status_code == 200
        me = (await anon.get("/api/me", headers=bearer(first.json()["access_token"]))).json()
        assert me["email"] == "vic@msp.example" and me["role"] == "viewer"
        again = await anon.post(path)
        assert again.status_code == 401
        # an expired link
        token, _ = live.services.staff.logins.issue("login_link", "vic@msp.example", timedelta(seconds=-1))
        assert (await anon.post(f"/auth/link/{token}")).status_code == 401
        assert (await live.http.post("/api/techs/nobody@x.example/login-link")).status_code == 404


async def test_api_keys_are_hashed_scoped_and_revocable(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        a, b = await setup(live)
        r = await live.http.post("/api/keys", json={"name": "bridge", "role": "tech", "clients": ["Acme Dental"]})
        assert r.status_code == 201
        key = r.json()["key"]
        assert r.json()["clients"] == [a]
        with live.services.engine.connect() as conn:
            stored = conn.execute(ApiKeyRow.__table__.select()).all()
        secret = key.removeprefix("mck_").partition("_")[2]  # mck_<id>_<secret>; the secret may hold "_" itself
        assert len(secret) >= 40 and secret not in str(stored), "only the digest of the secret is stored"
        assert "key" not in (await live.http.get("/api/keys")).json()[0]
        clients = (await anon.get("/api/clients", headers=bearer(key))).json()
        assert [c["id"] for c in clients] == [a]
        assert (await anon.get(f"/api/clients/{b}", headers=bearer(key))).status_code == 404
        assert (await anon.get("/api/me", headers=bearer(key[:-2] + "xx"))).status_code == 401
        dup = await live.http.post("/api/keys", json={"name": "bridge", "role": "viewer", "all_clients": True})
        assert dup.status_code == 409
        bad = await live.http.post("/api/keys", json={"name": "x", "role": "viewer"})
        assert bad.status_code == 409 and "at least one client" in bad.json()["detail"]["message"]
        assert (await live.http.post("/api/keys/bridge/revoke")).json()["revoked_at"]
        r = await anon.get("/api/me", headers=bearer(key))
        assert r.status_code == 401 and "revoked" in r.json()["detail"]["message"]
        kinds = {e.kind for e in live.services.audit.query()}
        assert {"api_key_created", "api_key_revoked"} <= kinds
        assert key not in json.dumps([e.data for e in live.services.audit.query()])


async def test_staff_routes_need_a_credential(tmp_path: Path) -> None:
    from fastapi.routing import APIRoute

    staff_api = [m.api for m in (auth, devices, stats, escalations, feedback, audit, keys, techs)]
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        for route in [r for router in staff_api for r in router.routes if isinstance(r, APIRoute)]:
            path = route.path.replace("{", "").replace("}", "")
            assert route.methods, path
            for method in route.methods:
                r = await anon.request(method, path, json={})
                assert r.status_code == 401, (method, path)


async def test_approver_must_be_a_registered_technician_of_the_client_not_the_requester(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        a, _ = await setup(live, "dana@msp.example")
        svc = live.services

        def pending(requester: str = "maria@acme.example") -> str:
            _, session = svc.store.open_ticket(client_id=a, subject="disk", body="", requester=requester,
                                               device_id=None)
            return svc.store.request_approval(session_id=session.id, client_id=a, tool="clear_temp_files",
                                              args={}, target="pc", reason="r",
                                              deadline=utcnow() + timedelta(minutes=5)).id

        async def decide(ap: str, approver: str, headers: dict[str, str] | None = None) -> httpx.Response:
            client = anon if headers else live.http
            return await client.post(f"/api/approvals/{ap}/approve", json={"approver": approver}, headers=headers)

        r = await decide(pending(), "Somebody Unknown")
        assert r.status_code == 403 and "not a technician" in r.json()["detail"]["message"]
        r = await decide(pending(), "vic@msp.example")
        assert r.status_code == 403 and "viewer" in r.json()["detail"]["message"]
        r = await decide(pending(), "fox@msp.example")
        assert r.status_code == 403 and "does not serve" in r.json()["detail"]["message"]
        r = await decide(pending(requester="dana@msp.example"), "Dana Scully")
        assert r.status_code == 403 and "requested this ticket" in r.json()["detail"]["message"]
        r = await decide(pending(), "dana@msp.example")
        assert r.status_code == 200 and r.json()["approver"] == "Dana Scully <dana@msp.example>"
        # a logged-in technician decides as themselves, never in someone else's name
        dana = (await login(anon, "dana@msp.example")).json()["access_token"]
        r = await decide(pending(), "Ada Admin", bearer(dana))
        assert r.status_code == 403 and "someone else's name" in r.json()["detail"]["message"]
        r = await decide(pending(), "", bearer(dana))
        assert r.status_code == 200 and r.json()["approver"] == "Dana Scully <dana@msp.example>"
        r = await decide(pending(requester="DANA@msp.example"), "", bearer(dana))
        assert r.status_code == 403
        decided = [e for e in svc.audit.query(kind="approval_decided")]
        assert {e.actor for e in decided} == {"Dana Scully <dana@msp.example>"}


async def test_bootstrap_mode_without_technicians_still_refuses_the_requester(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        a = await live.client("Acme Dental")
        _, session = live.services.store.open_ticket(client_id=a, subject="d", body="",
                                                     requester="maria@acme.example", device_id=None)
        ap = live.services.store.request_approval(session_id=session.id, client_id=a, tool="clear_temp_files",
                                                  args={}, target="pc", reason="r",
                                                  deadline=utcnow() + timedelta(minutes=5)).id
        r = await live.http.post(f"/api/approvals/{ap}/approve", json={"approver": "maria@acme.example"})
        assert r.status_code == 403
        r = await live.http.post(f"/api/approvals/{ap}/approve", json={"approver": "Dana"})
        assert r.status_code == 200 and r.json()["approver"] == "Dana"


async def test_session_socket_checks_role_and_client(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        a, b = await setup(live, "vic@msp.example", "dana@msp.example")
        svc = live.services
        _, b_session = svc.store.open_ticket(client_id=b, subject="x", body="", requester="u@b.example",
                                             device_id=None)
        b_ap = svc.store.request_approval(session_id=b_session.id, client_id=b, tool="clear_temp_files", args={},
                                          target="pc", reason="r", deadline=utcnow() + timedelta(minutes=5)).id
        vic = (await login(anon, "vic@msp.example")).json()["access_token"]
        dana = (await login(anon, "dana@msp.example")).json()["access_token"]

        async def exchange(token: str, frame: str) -> Error:
            async with connect(live.ws_url + "/ws/sessions", additional_headers=bearer(token)) as ws:
                await ws.send(frame)
                got = decode_session_frame(await ws.recv())
                assert isinstance(got, Error), got
                return got

        assert (await exchange(vic, encode(Start(client_id=a, subject="x")))).code == "forbidden"
        assert (await exchange(vic, encode(Decide(approval_id=b_ap, approve=True, approver="")))).code == "forbidden"
        assert (await exchange(dana, encode(Watch(session_id=b_session.id)))).code == "not_found"
        assert (await exchange(dana, encode(Decide(approval_id=b_ap, approve=True, approver="")))).code == "not_found"
        assert (await exchange(dana, encode(Start(client_id=b, subject="x")))).code == "not_found"
        assert svc.store.approval(b_ap).status == "pending"
        async with connect(live.ws_url + "/ws/sessions", additional_headers=bearer("mck_nope_nope")) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
