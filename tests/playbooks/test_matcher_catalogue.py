"""An MSP's own playbook directories: loaded with the library, validated at start, indexed together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mspclaw.playbooks.catalogue import load_catalogue
from mspclaw.playbooks.loader import LIBRARY, PlaybookError
from mspclaw.playbooks.matcher import Matcher
from mspclaw.settings import Settings

ROOT = Path(__file__).parents[2]


def _own_playbook(directory: Path, playbook_id: str = "acme_label_printer") -> Path:
    data = yaml.safe_load((LIBRARY / "printer.yaml").read_text(encoding="utf-8"))
    data["id"] = playbook_id
    data["triggers"] = {"keywords": ["zebra", "labels"], "phrases": ["label printer"], "negative": [],
                        "weights": {"zebra": 3.0}}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{playbook_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_own_playbooks_load_with_the_library_and_are_matched(tmp_path: Path) -> None:
    _own_playbook(tmp_path / "acme")
    books = load_catalogue([tmp_path / "acme"])
    assert {"printer", "acme_label_printer"} <= {b.id for b in books}
    found = Matcher(books).match("zebra label printer", "the labels do not come out", "windows")
    assert found.playbook is not None and found.playbook.id == "acme_label_printer"


def test_problems_name_the_file_and_line_and_nothing_loads(tmp_path: Path) -> None:
    good = tmp_path / "good"
    _own_playbook(good)
    bad = tmp_path / "bad"
    path = _own_playbook(bad, "broken")
    path.write_text(path.read_text(encoding="utf-8").replace("tools:", "tools_typo:", 1), encoding="utf-8")
    clash = tmp_path / "clash"
    _own_playbook(clash, "printer")
    with pytest.raises(PlaybookError) as caught:
        load_catalogue([good, bad, clash, tmp_path / "missing"])
    problems = "\n".join(caught.value.problems)
    assert f"{path}:" in problems
    assert "'printer' is also used by" in problems and str(clash / "printer.yaml") in problems
    assert f"{tmp_path / 'missing'}: no such directory" in problems


def test_settings_take_the_directories_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MSPCLAW_PLAYBOOK_DIRS", f'["{tmp_path / "a"}", "{tmp_path / "b"}"]')
    assert Settings().playbook_dirs == [tmp_path / "a", tmp_path / "b"]


def test_the_server_refuses_to_start_on_a_bad_playbook(tmp_path: Path) -> None:
    path = _own_playbook(tmp_path / "mine", "broken")
    path.write_text(path.read_text(encoding="utf-8").replace("tools:", "tools_typo:", 1), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "mspclaw", "server", "--data-dir", str(tmp_path / "data"),
                           "--port", "0", "--playbooks", str(tmp_path / "mine")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 1
    assert f"{path}:" in done.stderr and "the server did not start" in done.stderr
