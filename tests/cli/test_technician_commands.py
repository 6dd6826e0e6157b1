"""``mspclaw tech | keys | devices | stats | escalations | tickets feedback`` as technicians and admins
run them, against a running server. Commands run in-process (typer's runner, in a thread beside the server);
one runs as a real process to check the entry point."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import live_server
from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.errors import MSPClawError
from mspclaw.store.tables import utcnow

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n"


async def test_technician_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    async with live_server(tmp_path, workers=0) as live:
        env = {"MSPCLAW_SERVER_URL": live.url, "MSPCLAW_API_KEY": live.api_key,
               "MSPCLAW_DATA_DIR": str(live.services.settings.data_dir), "COLUMNS": "200"}

        async def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
            result = await asyncio.to_thread(runner.invoke, app, list(args), env=env, input=stdin)
            if isinstance(result.exception, MSPClawError):  # what `mspclaw` (cli.app.run) prints, exit 1
                return 1, result.stdout, f"error: {result.exception.message}"
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            return result.exit_code, result.stdout, result.stderr

        # technicians (offline: the roster and the passwords in the database)
        code, out, err = await run("tech", "add", "Dana Scully", "--email", "dana@msp.example", "--client",
                                   "Acme Dental", "--slack-id", "U0DANA", "--on-duty", "mon-sun 00:00-23:59")
        assert code == 0, err
        code, _, err = await run("tech", "add", "Bad", "--email", "bad", "--client", "Acme Dental")
        assert code == 1 and "email" in err
        code, out, _ = await run("tech", "passwd", "dana@msp.example", "--password-stdin",
                                 stdin="correct horse battery staple\n")
        assert code == 0 and "password set" in out
        techs = json.loads((await run("tech", "list", "--json"))[1])
        assert techs[0]["email"] == "dana@msp.example" and techs[0]["on_duty_now"] is True
        code, out, _ = await run("tech", "link", "Dana Scully")
        assert code == 0 and out.strip().startswith(f"{live.url}/auth/link/")
        r = await live.http.post(out.strip().removeprefix(live.url))
        assert r.status_code == 200 and r.json()["access_token"]

        # API keys
        client = await live.client("Acme Dental")
        code, out, err = await run("keys", "create", "bridge", "--role", "tech", "--client", "Acme Dental")
        assert code == 0 and out.strip().startswith("mck_") and "Shown once" in err
        key = out.strip()
        keys = json.loads((await run("keys", "list", "--json"))[1])
        assert [(k["name"], k["role"], k["clients"]) for k in keys] == [("bridge", "tech", [client])]
        assert key not in json.dumps(keys)

        # devices: seed one enrolled device with facts
        reg = live.services.registry
        issued = reg.issue_code(client, ttl=timedelta(hours=1))
        agent = reg.enroll(issued.code, hostname="pc-7", os="linux", os_version="", agent_version="", tools=[])
        device = next(d for d in reg.devices(client) if d.agent_id == agent.agent.id)
        await live.services.staff.learning.record(device.id, {"department": "Billing", "location": "2nd floor"},
                                                  source="answer:department", client_id=client)
        code, out, _ = await run("devices", "list")
        assert code == 0 and "pc-7" in out and "2" in out
        code, out, _ = await run("devices", "show", device.id)
        assert "Billing" in out and "answer:department" in out
        code, out, _ = await run("devices", "forget", device.id, "--yes")
        assert code == 0 and "forgot 2 facts" in out
        assert any(e.kind == "device_forgotten" for e in live.services.audit.query(client_ids=[client]))
        code, _, err = await run("devices", "show", "dv_nope")
        assert code == 1 and "404" in err

        # feedback, escalations, stats with a chart
        store = live.services.store
        for answer in ("yes", "no", None):
            t, s = store.open_ticket(client_id=client, subject="disk", body="", requester="m@acme.example",
                                     device_id=device.id)
            store.update_session(s.id, playbook="disk_full", outcome="resolved", status="resolved")
            store.set_ticket_status(t.id, "resolved")
            now = utcnow()
            live.services.staff.feedback.store.open(ticket_id=t.id, session_id=s.id, client_id=client,
                                                  resolved_at=now, deadline=now + timedelta(hours=1), channel="api")
            if answer:
                code, out, err = await run("tickets", "feedback", t.id, answer, "--comment", "checked")
                assert code == 0, err
        code, out, _ = await run("escalations", "list")
        assert code == 0 and "user_said_no" in out and "dana@msp.example" in out
        chart = tmp_path / "rate.png"
        code, out, err = await run("stats", "--by", "playbook", "--chart", str(chart))
        assert code == 0, err
        assert "disk_full" in out and "33%" in out and "never counted as success" in err
        assert chart.read_bytes().startswith(PNG) and chart.stat().st_size > 10_000
        stats = json.loads((await run("stats", "--by", "client", "--json"))[1])
        assert stats["rows"][0]["key"] == "Acme Dental" and stats["total"]["unconfirmed"] == 1
        code, _, err = await run("stats", "--by", "weather")
        assert code == 1 and "playbook, client or model" in err

        # the named key works from a real process, and is refused once revoked
        proc_env = {**os.environ, **env, "MSPCLAW_API_KEY": key}
        listed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "mspclaw", "devices", "list",
                                                          "--json"], capture_output=True, text=True, env=proc_env)
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["hostname"] == "pc-7"
        code, _, err = await run("keys", "revoke", "bridge")
        assert code == 0
        r = await live.http.get("/api/me", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401
