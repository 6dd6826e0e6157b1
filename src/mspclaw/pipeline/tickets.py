"""The ticket pipeline as its callers (the API, the CLI, PSA intake) see it: submit a ticket, wait for
it, resume what a stopped process left, shut down.

The work is done by three rooms, each built whole by the composition root: :mod:`submission`
(opening and resuming, the runs under way), :mod:`run` (route, match, engine, with the session's
ports from :mod:`session_ports`) and :mod:`closing` (note, reply, PSA write-back, and the run's
observers: escalation, feedback, usage).
"""

from __future__ import annotations

from collections.abc import Collection

from mspclaw.pipeline.handover import Handover
from mspclaw.pipeline.questions import Questions
from mspclaw.pipeline.routing import Router
from mspclaw.pipeline.run import TicketRun, needs_device, site_tools
from mspclaw.pipeline.submission import PSACompany, Submissions, Submitted
from mspclaw.playbooks.schema import Playbook
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import Client
from mspclaw.store.tickets import TicketStore

__all__ = ["Submitted", "TicketService", "needs_device", "site_tools"]


class TicketService:
    def __init__(self, *, submissions: Submissions, run: TicketRun) -> None:
        self.submissions, self.run = submissions, run

    # what the API reads beside the pipeline: the stores and ports its runs use
    @property
    def store(self) -> TicketStore:
        return self.run.store

    @property
    def runs(self) -> RunStore:
        return self.run.runs

    @property
    def router(self) -> Router:
        return self.run.router

    @property
    def questions(self) -> Questions:
        return self.run.questions

    @property
    def handover(self) -> Handover:
        return self.run.handover

    @property
    def playbooks(self) -> list[Playbook]:
        """The installed playbooks the runs match against."""
        return self.run.playbooks

    @playbooks.setter
    def playbooks(self, books: list[Playbook]) -> None:
        self.run.playbooks = books

    async def submit(self, *, client: str | Client | PSACompany, subject: str, body: str, requester: str,
                     device: str | None,
                     scope: Collection[str] | None = None, psa: str | None = None, external_id: str | None = None,
                     actor: str = "api", requester_name: str | None = None) -> Submitted:
        """Open a ticket and start working on it (:meth:`Submissions.submit`)."""
        return await self.submissions.submit(client=client, subject=subject, body=body, requester=requester,
                                             device=device, scope=scope, psa=psa, external_id=external_id,
                                             actor=actor, requester_name=requester_name)

    async def wait(self, session_id: str) -> str | None:
        """The outcome the session's run closed its ticket with (:meth:`Submissions.wait`)."""
        return await self.submissions.wait(session_id)

    async def wait_or_recover(self, ticket_id: str) -> None:
        await self.submissions.wait_or_recover(ticket_id)

    async def recover(self) -> int:
        return await self.submissions.recover()

    async def shutdown(self) -> None:
        await self.submissions.shutdown()

    def find_external(self, psa: str, external_id: str) -> str | None:
        return self.submissions.find_external(psa, external_id)
