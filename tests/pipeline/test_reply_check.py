"""What reaches the end user from the model: replies without foreign links or credentials, answers kept redacted."""

from __future__ import annotations

import pytest

from mspclaw.engine.plan import RunResult
from mspclaw.pipeline.notes import ReplyCheck, user_reply
from mspclaw.pipeline.questions import WITHHELD, kept_answer

CHECK = ReplyCheck(["https://help.msp.example", "status.msp.example"])


@pytest.mark.parametrize("reply", [
    "Please sign in again at http://login.evil.example/reset to finish.",
    "Download the fix from www.evil.example.",
    "Write to support@evil.example if it happens again.",
    "Check https://help.msp.example.evil.example/login",
    "Your new password is Summer-2026-Pass, keep it safe.",
    "Please reply with your password so we can finish.",
    "Antworten Sie bitte mit Ihrem Passwort.",
])
def test_a_reply_with_a_foreign_link_a_credential_or_a_request_for_one_is_refused(reply: str) -> None:
    assert CHECK.problems(reply), reply


@pytest.mark.parametrize("reply", [
    "We cleared old temporary files; you have 20 GB free again.",
    "See https://help.msp.example/kb/42 or https://status.msp.example for outages.",
    "We reset your password; the temporary one is shown on your own computer only.",
    "Run setup.exe again if the installer stops.",
])
def test_an_ordinary_reply_passes(reply: str) -> None:
    assert CHECK.problems(reply) == [], CHECK.problems(reply)


def test_a_refused_reply_is_replaced_by_the_playbooks() -> None:
    result = RunResult("resolved", "done", "sign in at http://login.evil.example", [], {})
    assert user_reply(result, "Bob Smith", template="we fixed it.", refused=True) == "Hi Bob, we fixed it."
    assert "evil" in user_reply(result, "Bob Smith"), "unchanged unless refused"


def test_an_answer_to_a_question_about_a_secret_is_never_kept_and_others_are_redacted() -> None:
    assert kept_answer("Wie lautet Ihr Passwort?", "Winter-2026!") == WITHHELD
    assert kept_answer("What code did we text you?", "123456") == WITHHELD
    kept = kept_answer("When did it start?", "Yesterday. My password is Tr0ub4dor&3x if that helps.")
    assert "Tr0ub4dor" not in kept and kept.startswith("Yesterday.")
