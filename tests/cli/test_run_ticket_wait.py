"""``mspclaw run-ticket`` waits with a timeout: exit 5 when the ticket ends escalated, 4 when the
timeout runs out (while a step waits for a technician)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.cli.test_cli import mspclaw
from tests.conftest import make_old_files
from tests.pipeline.test_intake import psa_and_server, setup_client, wait_for

from mspclaw.cli.exits import ExitCode
from mspclaw.simulators.local_psa import RunningPSA

pytestmark = pytest.mark.anyio


async def _escalated(psa: RunningPSA, ticket_id: str) -> bool:
    return (await psa.connector.get_ticket(ticket_id)).status == "escalated"


@pytest.mark.timeout(240)
async def test_run_ticket_exits_5_when_escalated_and_4_when_its_timeout_runs_out(tmp_path: Path) -> None:
    async with psa_and_server(tmp_path, workers=1) as (psa, live):
        env = {"MSPCLAW_SERVER_URL": live.url, "MSPCLAW_API_KEY": live.api_key}
        stranger = await psa.connector.create_company("Nobody Knows Co")
        lost = await psa.connector.create_ticket(stranger, requester="x@nobody.example", subject="disk full")
        await wait_for(lambda: _escalated(psa, lost.id), 30)
        again = await asyncio.to_thread(mspclaw, "run-ticket", "--psa", "local", "--ticket", lost.id, env=env)
        assert again.returncode == ExitCode.NOT_RESOLVED and int(ExitCode.NOT_RESOLVED) == 5, again.stderr
        assert f"local ticket {lost.id}: escalated in the PSA" in again.stdout

        make_old_files(tmp_path / "temp", 2)
        company = await setup_client(psa, live, tmp_path / "temp")
        ticket = await psa.connector.create_ticket(company, requester="maria@acme.example", subject="disk full",
                                                   body="no space left on my laptop")
        await live.wait_approval()  # the webhook started it; its delete step waits for a technician
        waited = await asyncio.to_thread(mspclaw, "run-ticket", "--psa", "local", "--ticket", ticket.id,
                                         "--timeout", "3", env=env)
        assert waited.returncode == ExitCode.TIMEOUT and int(ExitCode.TIMEOUT) == 4, waited.stderr
        assert "after 3 s; it goes on on the server" in waited.stderr
