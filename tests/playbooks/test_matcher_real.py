"""The matcher on real, publicly licensed end-user questions (Super User and Mozilla Support, CC BY-SA).

The ``tests/data/tickets_real_*.jsonl`` files are labelled by hand, not written here (sources,
licences and the labelling rules are in ``tests/data/REAL_SOURCES.md``). Rows carry ``fold``:
the must-not and trigger rules may be tuned looking at folds 0-2 only, so folds 3-4 are the
held-out figure. Each source's floors sit at (just under) what the matcher achieved when they
were last measured, so a regression fails; raise them when the matcher improves.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mspclaw.playbooks.evaluation import Labelled, evaluate, read_labelled
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import matcher_for

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = DATA / "tickets_real_superuser.jsonl"
SUMO = DATA / "tickets_real_sumo.jsonl"

WHY = frozenset({"outage", "alert", "hardware", "security", "business_app", "purchase", "howto", "other"})

# Mozilla Support (support.mozilla.org), folds 3-4: the figures the matcher reaches now (bench/triage_sources.py
# prints them). Raise these as the matcher improves.
# Per language the user wrote in: (rows, top-1 floor, false-automation ceiling).
# Raised 2026-12-06 (round 3: how-tos with bare negations, page layout, narrative installs, consumer accounts):
# en 69.5 % / 21, es 70.1 % / 4, nl 62.4 % / 8, de 77.0 % / 3, fr 70.9 % / 1; whole file 69.9 % / 97 of 915.
SUMO_HELD_OUT_FLOORS: dict[str, tuple[int, float, int]] = {
    "en": (243, 0.69, 22),
    "es": (97, 0.69, 5),
    "nl": (93, 0.62, 8),
    "de": (61, 0.77, 3),
    "fr": (55, 0.69, 2),
}
# All SUMO rows (every language), same date: top-1 floor and false-automation ceiling.
SUMO_WHOLE_FLOOR = (0.69, 98)
# German questions from the en-US forum gathered later (``tickets_real_sumo_german.jsonl``, 116 rows, none of
# them in the SUMO file above), labelled before the matcher saw them: (rows, top-1 floor, false-automation
# ceiling) for folds 3-4 and for the whole file. Measured 2026-12-06: held-out 75.6 % / 2 of 33 (before this
# round's changes: 71.1 % / 2), whole 75.0 % / 4 of 79 (before: 71.6 % / 4).
GERMAN = DATA / "tickets_real_sumo_german.jsonl"
GERMAN_HELD_OUT_FLOOR = (45, 0.75, 2)
GERMAN_WHOLE_FLOOR = (116, 0.75, 4)
# Monitoring alerts (awesome-prometheus-alerts, every row must-not), same date: how many got a playbook.
ALERTS = DATA / "tickets_real_alerts.jsonl"
ALERTS_FALSE_AUTOMATION_CEILING = 0


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _chosen(path: Path, held_out: bool | None, lang: str | None = None) -> list[Labelled]:
    tickets = read_labelled(path)
    raw = _rows(path)
    return [ticket for ticket, row in zip(tickets, raw, strict=True)
            if (held_out is None or (row["fold"] >= 3) == held_out)
            and (lang is None or row.get("lang") == lang)]


def _figures(held_out: bool | None, path: Path = CORPUS, lang: str | None = None) -> tuple[float, int, int]:
    report = evaluate(matcher_for(load_dir()), _chosen(path, held_out, lang))
    return report.accuracy, len(report.false_automations), len(report.must_not)


def test_real_corpus_is_labelled_and_attributed() -> None:
    rows = _rows(CORPUS)
    assert len(rows) >= 400
    assert all(row["source"] == "superuser" and row["ref"].startswith("https://superuser.com/q/") for row in rows)
    assert sum(row["label"] != "none" for row in rows) >= 40


def test_held_out_folds() -> None:
    # measured 2026-12-06: top-1 56.2%, 73 of 163 must-not automated (before the tuning: 35.2%, 110/163);
    # later the same day 84.7 %, 20 of 163 (the rules and vocabulary in five languages, calibration refitted);
    # round 3: 85.2 %, 18 of 163
    accuracy, false_automations, must_not = _figures(held_out=True)
    assert must_not == 163
    assert accuracy >= 0.85
    assert false_automations <= 19


def test_whole_real_corpus() -> None:
    # measured 2026-12-06: top-1 61.6%, 158 of 390 must-not automated (before: 40.7%, 249/390);
    # later the same day 84.9 %, 45 of 390; round 3: 88.3 %, 29 of 390; round 4: 89.2 %, 25 of 390 (the tuning
    # folds: settings questions' own verbs, port and shell configuration; folds 3-4 unchanged)
    accuracy, false_automations, must_not = _figures(held_out=None)
    assert must_not == 390
    assert accuracy >= 0.89
    assert false_automations <= 25


@pytest.mark.parametrize("path", sorted(DATA.glob("tickets_real_*.jsonl")), ids=lambda p: p.stem)
def test_real_files_are_labelled_attributed_and_redacted(path: Path) -> None:
    categories = {book.category for book in load_dir()}
    rows = _rows(path)
    refs = [row["ref"] for row in rows]
    assert len(refs) == len(set(refs)), "one row per source question"
    for row in rows:
        assert row["ref"].startswith("https://"), row["ref"]
        assert row["label"] in categories or row["label"] == "none", row["label"]
        assert row["os"] in {"windows", "macos", "linux"}
        assert len(row["body"]) <= 420
    if path != CORPUS:  # the newer files: addresses redacted, language, a reason for every `none`, sha1(ref) folds
        for row in rows:
            assert not re.search(r"[\w.+-]+@[\w-]+\.[a-z]{2,}", row["subject"] + row["body"]), "e-mail address left in"
            assert row["lang"] in {"en", "de", "fr", "es", "nl"}
            assert row["fold"] == int(hashlib.sha1(row["ref"].encode()).hexdigest(), 16) % 5
            assert (row["label"] == "none") == ("why" in row)
            assert row.get("why", "other") in WHY


def test_sumo_covers_five_languages_and_everyday_faults() -> None:
    rows = _rows(SUMO)
    assert all(row["source"] == "sumo" and row["ref"].startswith("https://support.mozilla.org/") for row in rows)
    for lang, least in (("en", 400), ("es", 200), ("nl", 200), ("de", 140), ("fr", 140)):
        assert sum(row["lang"] == lang for row in rows) >= least
    labels = {row["label"] for row in rows}
    everyday = {"browser", "email", "app_crash", "software_install", "printer", "slow_computer", "disk_full"}
    everyday |= {"wifi", "vpn"}
    assert everyday <= labels
    assert sum(row.get("why") == "security" for row in rows) >= 30


@pytest.mark.parametrize("lang", sorted(SUMO_HELD_OUT_FLOORS))
def test_sumo_held_out_per_language(lang: str) -> None:
    rows, accuracy_floor, false_automation_ceiling = SUMO_HELD_OUT_FLOORS[lang]
    chosen = _chosen(SUMO, held_out=True, lang=lang)
    assert len(chosen) == rows
    accuracy, false_automations, _ = _figures(held_out=True, path=SUMO, lang=lang)
    assert accuracy >= accuracy_floor
    assert false_automations <= false_automation_ceiling


def test_whole_sumo_corpus() -> None:
    accuracy, false_automations, must_not = _figures(held_out=None, path=SUMO)
    assert must_not == sum(row["label"] == "none" for row in _rows(SUMO))
    assert accuracy >= SUMO_WHOLE_FLOOR[0]
    assert false_automations <= SUMO_WHOLE_FLOOR[1]


def test_monitoring_alerts_never_get_a_playbook() -> None:
    rows = _rows(ALERTS)
    assert len(rows) >= 150
    assert all(row["label"] == "none" and row["why"] == "alert" for row in rows)
    for held_out in (True, False):
        _, false_automations, must_not = _figures(held_out=held_out, path=ALERTS)
        assert must_not == sum((row["fold"] >= 3) == held_out for row in rows)
        assert false_automations <= ALERTS_FALSE_AUTOMATION_CEILING


def test_later_german_questions_held_out_and_whole() -> None:
    rows = _rows(GERMAN)
    assert all(row["source"] == "sumo" and row["lang"] == "de" for row in rows)
    assert not {row["ref"] for row in rows} & {row["ref"] for row in _rows(SUMO)}, "no question in both files"
    for held_out, (count, floor, ceiling) in ((True, GERMAN_HELD_OUT_FLOOR), (None, GERMAN_WHOLE_FLOOR)):
        assert len(_chosen(GERMAN, held_out)) == count
        accuracy, false_automations, _ = _figures(held_out=held_out, path=GERMAN)
        assert accuracy >= floor
        assert false_automations <= ceiling
