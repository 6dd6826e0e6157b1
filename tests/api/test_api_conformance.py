"""The API answers what ``/openapi.json`` says: schemathesis fuzzes every documented operation of
the real server (uvicorn, SQLite) with valid and invalid inputs, as the bootstrap admin and as a
viewer scoped to one client, and each answer must be no 5xx, a status the operation documents,
the documented content type, and a body that matches the documented schema (errors included).

Examples are bounded per operation (``MAX_EXAMPLES`` per generation mode, plus schemathesis's
boundary cases) so the whole run stays well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.checks
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.errors import FailureGroup
from tests.conftest import live_server

from mspclaw.store.tables import utcnow

MAX_EXAMPLES = 8

CONFIG = schemathesis.Config.from_dict({"generation": {"max-examples": MAX_EXAMPLES}})

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@dataclass
class Target:
    url: str
    callers: dict[str, dict[str, str]]
    """Headers of each caller: the bootstrap admin and a viewer of one client."""


def _seed(live: Any) -> dict[str, dict[str, str]]:
    """Records of every kind so the list and detail answers have bodies to check."""
    svc = live.services
    a = svc.registry.add_client("Acme Dental", {}).id
    svc.registry.add_client("Beta Law", {})
    code = svc.registry.issue_code(a, ttl=timedelta(hours=1))
    svc.registry.enroll(code.code, hostname="pc-1", os="linux", os_version="", agent_version="", tools=[])
    ticket, session = svc.store.open_ticket(client_id=a, subject="printer jams", body="",
                                            requester="maria@acme.example", device_id=None)
    svc.store.update_session(session.id, status="resolved", outcome="resolved", playbook="printer")
    svc.store.request_approval(session_id=session.id, client_id=a, tool="clear_temp_files", args={"dry_run": False},
                               target="pc-1", reason="free space", deadline=utcnow() + timedelta(minutes=5))
    svc.tickets.runs.add_question(session_id=session.id, client_id=a, call_id=None, text="Which printer?",
                                  choices=None, channel="agent", deadline=utcnow() + timedelta(minutes=5))
    svc.ops.escalation_store.add(ticket_id=ticket.id, session_id=session.id, client_id=a, kind="failed",
                                 reason="x", body={}, assigned_to=None)
    svc.jobs.enqueue("psa_ticket", {"psa": "none", "ticket_id": "1"}, dedupe_key="seed")
    _, viewer = svc.ops.keys.create("viewer-a", role="viewer", clients=[a], all_clients=False, created_by="test")
    return {"admin": {"Authorization": f"Bearer {live.api_key}"}, "viewer": {"Authorization": f"Bearer {viewer}"}}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("conformance")
    with start_blocking_portal(backend="asyncio") as portal, portal.wrap_async_context_manager(
            live_server(tmp)) as live:
        yield Target(live.url, _seed(live))


@dataclass
class Run:
    cases: int = 0
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    """(operation, failed check) -> the first example, with the answer and a curl line to replay it."""

    def report(self) -> str:
        return "\n\n".join(f"{op}: {title}\n{example}" for (op, title), example in sorted(self.failures.items()))


def _fuzz(operation: APIOperation, mode: GenerationMode, headers: dict[str, str], run: Run) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case) -> None:
        run.cases += 1
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                run.failures.setdefault((operation.label, failure.title), str(group)[:2000])

    try:
        call()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to send that the document forbids


@pytest.mark.parametrize("caller", ["admin", "viewer"])
def test_every_operation_answers_as_documented(target: Target, caller: str) -> None:
    schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    run = Run()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, target.callers[caller], run)
    print(f"{caller}: {len(operations)} operations, {run.cases} cases, {len(run.failures)} failures")
    assert not run.failures, run.report()
