"""An account playbook asked for on another person's account ("reset the password for user jdoe") ends with a
technician before any tool runs: the run would otherwise change the requester's own account, the only one
MSPclaw may change for them. The requester's own name quoted in the ticket does not count."""

from __future__ import annotations

import pytest
from tests.pipeline.test_run import NO_ROUTE, Closed, services, ticket, ticket_run

from mspclaw.pipeline.requester import for_someone_else
from mspclaw.wiring import Services

__all__ = ["services"]
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("subject", "body"), [
    ("Password reset", "please reset password for user jdoe"),
    ("Account locked", "User mueller is locked out since this morning, please unlock"),
    ("Passwort", "Bitte das Passwort für den Mitarbeiter Schmidt zurücksetzen"),
    ("MFA", "can you reset her authenticator? she got a new phone"),
])
async def test_someone_elses_account_goes_to_a_technician_before_any_tool(
        services: Services, subject: str, body: str) -> None:
    closed = Closed()
    t, s = ticket(services, subject, body)
    await ticket_run(services, closed).process(t, s, NO_ROUTE)
    (run,) = closed.runs
    assert run.playbook is not None and run.playbook.id in {"password_reset", "account_locked", "mfa_reset"}
    assert run.outcome == "escalated"
    assert run.reason.startswith("the ticket asks for another person's account")
    assert "tom@acme.example" in run.reason  # who MSPclaw would act for
    assert services.store.calls(s.id) == []
    assert "another person's account" in run.note
    assert "your password" not in run.reply  # the generic hand-over, not the playbook's reply to the owner


async def test_the_requesters_own_user_name_quoted_in_the_ticket_is_their_own_account(services: Services) -> None:
    closed = Closed()
    t, s = ticket(services, "Password expired", "The error says: password expired for user tom. I cannot log in")
    await ticket_run(services, closed).process(t, s, NO_ROUTE)
    (run,) = closed.runs
    assert run.playbook is not None and run.playbook.id == "password_reset"
    assert "site agent" in run.reason  # it went on, to where the account is changed


def test_only_playbooks_that_change_the_requesters_own_account_are_held() -> None:
    asked = ("New starter", "please create an account for the new employee jdoe")
    assert for_someone_else(["directory_user", "create_user"], *asked, "boss@acme.example") is None
    assert for_someone_else(["directory_user", "reset_password"], *asked, "boss@acme.example") is not None


def test_an_address_or_a_display_name_of_the_requester_is_theirs() -> None:
    assert for_someone_else(["reset_password"], "pw", "reset password for dana.scully@acme.example",
                            '"Scully, Dana" <dana.scully@acme.example>') is None
    assert for_someone_else(["reset_password"], "pw", "Dana's password expired", "Dana Scully") is None
    assert for_someone_else(["reset_password"], "pw", "Fox's password expired", "Dana Scully") is not None
