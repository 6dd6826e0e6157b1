"""The API answers what ``/openapi.json`` says.

schemathesis generates requests for every documented operation of the real server (uvicorn,
SQLite): valid ones, invalid ones (a wrong type, a missing field, a missing or bad credential),
and valid ones that name records that exist. Each request is sent as the bootstrap admin and as a
viewer scoped to one client, and every answer must be: no 5xx, a status the operation documents,
the documented content type and headers, and a body that matches the documented schema, errors
included. Examples are bounded (``MAX_EXAMPLES`` per operation and kind of input) so the whole
run takes well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import schemathesis.checks
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import APIOperation, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from tests.conftest import Live, live_server

from mspclaw.store.tables import utcnow

MAX_EXAMPLES = 6

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
    known: dict[str, str]
    """Path parameter (and ``client`` query) -> a record that exists, of the viewer's client."""


def _seed(live: Live) -> Target:
    """Records of every kind, so detail routes answer 200 with bodies to check, not only 404."""
    svc = live.services
    a = svc.registry.add_client("Acme Dental", {}).id
    svc.registry.add_client("Beta Law", {})
    agent = svc.registry.enroll(svc.registry.issue_code(a, ttl=timedelta(hours=1)).code, hostname="pc-1",
                                os="linux", os_version="", agent_version="", tools=[]).agent
    device = next(d for d in svc.registry.devices(a) if d.agent_id == agent.id)
    svc.staff.devices.remember(device.id, {"department": "Billing"}, source="answer:department")
    ticket, session = svc.store.open_ticket(client_id=a, subject="printer jams", body="",
                                            requester="maria@acme.example", device_id=None)
    svc.store.update_session(session.id, status="resolved", outcome="resolved", playbook="printer")
    now = utcnow()
    approval = svc.store.request_approval(session_id=session.id, client_id=a, tool="clear_temp_files",
                                          args={"dry_run": False}, target="pc-1", reason="free space",
                                          deadline=now + timedelta(minutes=5))
    question = svc.tickets.runs.add_question(session_id=session.id, client_id=a, call_id=None,
                                             text="Which printer?", choices=None, channel="agent",
                                             deadline=now + timedelta(minutes=5))
    svc.staff.feedback.store.open(ticket_id=ticket.id, session_id=session.id, client_id=a, resolved_at=now,
                                deadline=now + timedelta(hours=1), channel="api")
    escalation = svc.staff.escalation_store.add(ticket_id=ticket.id, session_id=session.id, client_id=a,
                                              kind="failed", reason="x", body={}, assigned_to=None)
    job, _ = svc.jobs.enqueue("psa_ticket", {"psa": "none", "ticket_id": "1"}, dedupe_key="seed")
    _, viewer = svc.staff.keys.create("viewer-a", role="viewer", clients=[a], all_clients=False, created_by="test")
    return Target(
        live.url,
        callers={"admin": {"Authorization": f"Bearer {live.api_key}"}, "viewer": {"Authorization": f"Bearer {viewer}"}},
        known={"ref": a, "client": a, "agent_id": agent.id, "device_id": device.id, "ticket_id": ticket.id,
               "approval_id": approval.id, "question_id": question.id, "escalation_id": escalation.id,
               "job_id": job.id})


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("conformance")
    with start_blocking_portal(backend="asyncio") as portal, portal.wrap_async_context_manager(
            live_server(tmp)) as live:
        yield _seed(live)


@dataclass
class Run:
    callers: dict[str, dict[str, str]]
    session: requests.Session
    cases: int = 0
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(operation, caller, failed check) -> the first example: the answer and a curl line to replay it."""

    def send(self, case: schemathesis.Case[Any]) -> None:
        """Send ``case`` as every caller; remember the first example of each distinct failure."""
        self.cases += 1
        for caller, headers in self.callers.items():
            self.calls += 1
            try:
                status = case.call_and_validate(headers=headers, checks=CHECKS, session=self.session).status_code
                self.statuses[status] = self.statuses.get(status, 0) + 1
            except FailureGroup as group:
                for failure in group.exceptions:
                    self.failures.setdefault((case.operation.label, caller, failure.title), str(group)[:2000])

    def report(self) -> str:
        return "\n\n".join(f"{op} as {caller}: {title}\n{example}"
                           for (op, caller, title), example in sorted(self.failures.items()))


def _fuzz(run: Run, operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, **fixed: Any) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def send(case: schemathesis.Case[Any]) -> None:
        run.send(case)

    try:
        send()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to send that the document forbids


def _existing(operation: APIOperation[Any, Any, Any, Any], known: dict[str, str]) -> dict[str, Any]:
    """Path parameters and ``client`` query that name records that exist, for this operation."""
    fixed: dict[str, Any] = {}
    path = {p.name: known[p.name] for p in operation.path_parameters if p.name in known}
    if path:
        fixed["path_parameters"] = path
    if "client" in operation.query:
        fixed["query"] = {"client": known["client"]}
    return fixed


EDGE_VALUES = ["9" * 5000, "\x00", "' OR 1=1 --", "[red]x[not markup", "-1", str(2**64)]
"""Values random strings rarely hit, for every path and query parameter: huge, NUL, SQL, markup, numbers."""
EDGE_QUERY_VALUES = [*EDGE_VALUES, "99999999999m", "3652059d", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-14:00", "\u0661\u0662h"]
"""And for query parameters (filters such as ``since``): ages and times at the calendar's ends."""


def _edges(run: Run, operation: APIOperation[Any, Any, Any, Any], known: dict[str, str]) -> None:
    """Each path and query parameter of ``operation`` in turn set to each edge value."""
    path = {p.name: known.get(p.name, "x") for p in operation.path_parameters}
    for location, names, values in (("path_parameters", list(path), EDGE_VALUES),
                                    ("query", [p.name for p in operation.query], EDGE_QUERY_VALUES)):
        for name in names:
            for value in values:
                parts: dict[str, dict[str, str]] = {"path_parameters": dict(path), "query": {}}
                parts[location][name] = value
                run.send(operation.Case(path_parameters=parts["path_parameters"], query=parts["query"]))


def test_the_document_declares_bearer_auth_and_one_error_shape(target: Target) -> None:
    doc = requests.get(f"{target.url}/openapi.json", timeout=10).json()
    validate(doc)
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    open_routes = ("/healthz", "/enroll", "/webhooks/", "/auth/", "/ui/")
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if path.startswith("/api/"):
                assert operation["security"] == [{"bearer": []}], where
                assert "401" in operation["responses"], where
            else:
                assert path.startswith(open_routes) and "security" not in operation, where
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorOut"}, (where, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.mark.timeout(900)  # every operation fuzzed in turn: minutes, not a unit test
def test_every_operation_answers_as_documented(target: Target) -> None:
    config = schemathesis.Config.from_dict({"generation": {"max-examples": MAX_EXAMPLES}})
    schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json", config=config)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document loaded every operation
        operations.append(result.ok())
    assert len(operations) >= 40
    with requests.Session() as session:
        run = Run(target.callers, session)
        for operation in operations:
            _fuzz(run, operation, GenerationMode.POSITIVE)
            _fuzz(run, operation, GenerationMode.NEGATIVE)
            if existing := _existing(operation, target.known):
                _fuzz(run, operation, GenerationMode.POSITIVE, **existing)
            _edges(run, operation, target.known)
    print(f"\n{len(operations)} operations, {run.cases} cases, {run.calls} calls, statuses "
          f"{dict(sorted(run.statuses.items()))}, {len(run.failures)} distinct failures")
    assert {200, 401, 403, 404, 422} <= run.statuses.keys()
    assert not run.failures, run.report()
