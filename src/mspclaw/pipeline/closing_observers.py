"""What a finished run sets off beyond its note and reply, each a :class:`~mspclaw.pipeline.closing.RunObserver`:
a structured escalation for the technician, the "did it work?" question to the user, the model's usage."""

from __future__ import annotations

import logging

from mspclaw.engine.models.base import Model
from mspclaw.errors import MSPClawError
from mspclaw.pipeline.closing import FinishedRun
from mspclaw.pipeline.escalation import Escalations, classify
from mspclaw.pipeline.feedback import FeedbackService
from mspclaw.pipeline.offload import run_store
from mspclaw.store.runs import RunStore
from mspclaw.store.stats import UsageLog

log = logging.getLogger(__name__)


class EscalateOnClose:
    """An escalated run becomes a structured escalation (stored, assigned, sent to the on-duty
    technician), whose rendering is the ticket's internal note."""

    def __init__(self, escalations: Escalations) -> None:
        self._escalations = escalations

    async def on_closing(self, run: FinishedRun) -> None:
        if run.outcome != "escalated":
            return
        book = run.playbook
        kind = classify(run.reason, routed=run.route.agent_id is not None, matched=book is not None,
                        ran=run.result is not None)
        try:
            recorded = await self._escalations.record(
                run.ticket, session_id=run.session.id, kind=kind, reason=run.reason, device=run.route.device,
                playbook=book.id if book else None, playbook_hint=book.escalation if book else "",
                approvals=run.approvals)
        except MSPClawError:
            log.exception("ticket %s: structured escalation failed; the plain note stands", run.ticket.id)
            return
        run.note = recorded.note

    async def on_closed(self, run: FinishedRun) -> None:
        pass


class AskFeedbackOnClose:
    """A resolved run's reply ends with "did it work?", and the question is put to the user."""

    def __init__(self, feedback: FeedbackService) -> None:
        self._feedback = feedback

    async def on_closing(self, run: FinishedRun) -> None:
        if run.outcome == "resolved":
            run.reply = f"{run.reply}\n\n{self._feedback.question}"

    async def on_closed(self, run: FinishedRun) -> None:
        if run.outcome != "resolved":
            return
        try:
            await self._feedback.ask(run.ticket, run.session.id, run.route.agent_id)
        except MSPClawError:
            log.exception("ticket %s: could not ask for feedback", run.ticket.id)


class RecordUsageOnClose:
    """The reasoning model's tokens and cost of a run it took part in, for the stats."""

    def __init__(self, runs: RunStore, usage: UsageLog, model: Model) -> None:
        self._runs, self._usage, self._model = runs, usage, model

    async def on_closing(self, run: FinishedRun) -> None:
        """Recorded before the end is stored, so whoever sees the session closed finds its usage."""
        if run.result is None:  # the engine never ran: nothing was spent
            return
        prompt_tokens, completion_tokens = await run_store(self._runs, self._runs.token_totals, run.session.id)
        per_prompt, per_completion = self._model.price_per_mtok
        await run_store(self._runs, self._usage.record, run.session.id, model=self._model.name[:100],
                        input_tokens=prompt_tokens, output_tokens=completion_tokens,
                        cost_usd=(prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6)

    async def on_closed(self, run: FinishedRun) -> None:
        pass
