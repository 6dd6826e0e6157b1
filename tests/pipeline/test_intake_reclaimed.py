"""A PSA ticket's job run again after its ticket was opened: never a second ticket, never worked twice.

A first attempt opens the ticket without looking it up first (the ticket's unique PSA key says when it
exists); a job claimed again after its worker died looks it up before it reads the PSA."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.pipeline.test_intake import _done, psa_and_server, setup_client, wait_for

from mspclaw.errors import NotFound
from mspclaw.pipeline.intake import Intake

pytestmark = pytest.mark.anyio


async def test_a_retried_job_of_an_opened_ticket_finds_it_and_works_nothing_twice(tmp_path: Path) -> None:
    async with psa_and_server(tmp_path, approval_timeout_s=30) as (psa, live):
        company = await setup_client(psa, live, tmp_path / "temp")
        ticket = await psa.connector.create_ticket(company, requester="maria@acme.example",
                                                   subject="disk full", body="I cannot save files anymore")
        await wait_for(lambda: _done(live, 1))
        (job,) = live.services.jobs.list()
        (opened,) = live.services.store.tickets()
        notes = len((await psa.connector.get_ticket(ticket.id)).notes)
        assert notes == 2

        # the operator queues it again: a fresh first attempt, whose open meets the ticket's unique PSA key
        assert live.services.jobs.retry(job.id).attempts == 0
        await wait_for(lambda: _done(live, 1))
        again = live.services.jobs.get(job.id)
        assert again.status == "done" and again.attempts == 1 and again.last_error is None
        assert [t.id for t in live.services.store.tickets()] == [opened.id]
        assert len((await psa.connector.get_ticket(ticket.id)).notes) == notes

        # claimed again after a worker died (a second attempt): found before the PSA is read (it has none here)
        offline = Intake(jobs=live.services.jobs, tickets=live.services.tickets, audit=live.services.audit,
                         connectors={})
        assert await offline.process(again.model_copy(update={"attempts": 2})) == opened.status == "resolved"
        with pytest.raises(NotFound):  # a first attempt reads the PSA first
            await offline.process(again.model_copy(update={"attempts": 1}))
        assert [t.id for t in live.services.store.tickets()] == [opened.id]
