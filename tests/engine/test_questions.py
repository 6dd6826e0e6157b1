"""Questions matched by meaning: paraphrases are the same question, different topics are not."""

from __future__ import annotations

import pytest

from mspclaw.engine.questions import THRESHOLD, best_match, fact_for, similarity

PARAPHRASES = [
    ("What is the name of your computer?", "What's your PC called?"),
    ("When did the problem start?", "Since when has this been happening?"),
    ("Have you restarted your computer?", "Did you reboot the laptop?"),
    ("What error message do you see?", "What does the popup say?"),
    ("Is the printer turned on?", "Is the printer switched on?"),
    ("What is your username?", "What login name do you use?"),
    ("Which Wi-Fi network are you connected to?", "What wireless network are you on?"),
]
DIFFERENT = [
    ("Which printer do you use?", "Which browser do you use?"),
    ("What is your email address?", "Which Wi-Fi network are you on?"),
    ("Is the printer turned on?", "Is the computer turned on?"),
    ("Which printer do you use?", "Which printer is jammed?"),
    ("Have you restarted your computer?", "What is the name of your computer?"),
]


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_paraphrases_are_the_same_question(a: str, b: str) -> None:
    assert similarity(a, b) >= THRESHOLD, (a, b, similarity(a, b))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_questions_are_not(a: str, b: str) -> None:
    assert similarity(a, b) < THRESHOLD, (a, b, similarity(a, b))


def test_best_match_picks_the_closest_known_answer() -> None:
    known = [("Which printer do you use?", "HP LaserJet 4"), ("What is your PC called?", "ACME-LT-07")]
    found = best_match("what's the name of your laptop", known)
    assert found is not None
    assert found[:2] == ("What is your PC called?", "ACME-LT-07") and found[2] == pytest.approx(1.0)
    assert best_match("Which browser do you use?", known) is None


def test_a_device_fact_answers_a_question_that_names_it() -> None:
    facts = {"default_printer": "HP LaserJet 4", "primary_user": "maria"}
    assert fact_for("Which printer is your default one?", facts) == ("default_printer", "HP LaserJet 4")
    assert fact_for("Which printer is jammed?", facts) is None
