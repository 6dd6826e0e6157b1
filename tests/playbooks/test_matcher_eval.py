"""``mspclaw playbooks eval``: what an MSP runs on its own exported tickets before trusting automation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mspclaw", "playbooks", "eval", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS: list[dict[str, object]] = [
    {"subject": "printer not printing", "body": "jobs stuck in the queue", "os": "windows", "label": "printer"},
    {"subject": "vpn", "body": "vpn wont connect from home", "os": "macos", "label": "vpn"},
    {"subject": "phishing?", "body": "got a suspicious mail asking for my password", "os": "windows",
     "label": "not_automatable"},
    {"subject": "internet down at the whole site", "body": "nobody has internet", "os": "windows",
     "label": "no_internet"},  # wrongly labelled: the matcher is right not to automate it
    {"subject": "forgot password", "body": "please reset", "os": None, "label": "none"},
]


def test_eval_prints_accuracy_false_automation_confusion_and_worst_cases(tmp_path: Path) -> None:
    done = _run(str(_write(tmp_path / "closed.jsonl", ROWS)), "--worst", "5")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "5 tickets: top-1 accuracy 60.0%" in text
    assert "false automation 1 of 2 must-not-automate tickets (50.0%)" in " ".join(text.split())
    assert "confusion" in text and "worst" in text and "forgot password" in text


def test_eval_json_counts_per_file(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.jsonl", ROWS[:2])
    second = _write(tmp_path / "b.jsonl", ROWS[2:])
    done = _run(str(first), str(second), "--json", "--calibrate")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tickets"] == 5 and report["false_automations"] == 1 and report["must_not_automate"] == 2
    assert report["per_file"]["a.jsonl"]["top1_accuracy"] == 1.0
    assert ["no_internet", "none", 1] in report["confusion"]
    assert len(report["calibration_fit"]) == 3


def test_eval_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "x", "body": "y", "label": "printer"}\n{"subject": 3}\n', encoding="utf-8")
    done = _run(str(bad))
    assert done.returncode == 2 and f"{bad}:2:" in done.stderr
