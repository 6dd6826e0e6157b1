"""A PSA ticket's run has its device's known facts from the ticket's open: no read of them of its own, unless
the ticket taught the device something new (its requester as the device's user)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.pipeline.test_intake import _done, psa_and_server, setup_client, wait_for

pytestmark = pytest.mark.anyio


async def test_a_runs_device_facts_come_with_the_tickets_open(tmp_path: Path) -> None:
    async with psa_and_server(tmp_path, approval_timeout_s=30) as (psa, live):
        company = await setup_client(psa, live, tmp_path / "temp")
        runs = live.services.tickets.run.runs
        reads: list[str] = []
        read = runs.device_facts

        def counted(device_id: str) -> dict[str, str]:  # an instance attribute of our own store: counts its reads
            reads.append(device_id)
            return read(device_id)

        runs.device_facts = counted  # type: ignore[method-assign]
        for done, expected in ((1, 2), (2, 2)):
            await psa.connector.create_ticket(company, requester="maria@acme.example", subject="disk full",
                                              body="I cannot save files anymore")
            await wait_for(lambda done=done: _done(live, done))
            # the first ticket teaches the device its user: read again after learning it, and for the closing's
            # greeting (the device row was read before); the second ticket reads none (three, then one before)
            assert len(reads) == expected, reads
        facts: Any = live.services.tickets.run.runs.device_facts(reads[0])
        assert facts.get("primary_user") == "maria@acme.example"
