"""The shipped playbooks load, and a broken playbook is reported with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mspclaw.playbooks.loader import PlaybookError, load_dir, load_file
from mspclaw.playbooks.matcher import match

CATEGORIES = {"password_reset", "account_locked", "printer", "wifi", "vpn", "slow_computer", "disk_full", "email",
              "software_install", "onboarding", "offboarding", "shared_drive_access", "mfa_reset", "browser",
              "no_internet", "app_crash"}


def test_library_has_one_playbook_per_category_on_every_os() -> None:
    books = load_dir()
    assert sorted(b.category for b in books) == sorted(CATEGORIES)
    for book in books:
        assert set(book.os) == {"linux", "macos", "windows"}, book.id
        assert book.reply.resolved and book.reply.escalated and book.escalation
    plan = next(b for b in books if b.id == "disk_full").plan_for("linux")
    assert [s.tool for s in plan.steps] == ["disk_usage", "clear_temp_files", "clear_temp_files", "disk_usage",
                                            "large_files"]


def test_every_destructive_tool_waits_for_approval() -> None:
    from mspclaw.tools import CATALOGUE

    for book in load_dir():
        for tool in book.tools:
            if CATALOGUE[tool].destructive:
                assert tool in book.requires_approval, (book.id, tool)


def test_replies_are_plain_words_without_secrets() -> None:
    jargon = ("dhcp", "dns", "spooler", "cache flush", "registry", "powershell", "sudo", "{", "}")
    for book in load_dir():
        for text in book.reply.model_dump().values():
            lowered = text.lower()
            assert not any(word in lowered for word in jargon), (book.id, text)
            assert "password:" not in lowered, book.id  # a temporary password is never put in a reply


GOOD = (Path(__file__).parents[2] / "src/mspclaw/playbooks/library/disk_full.yaml").read_text()


def test_bad_field_names_file_line_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("older_than_days: 7}", "older_than_days: -3}", 1))
    with pytest.raises(PlaybookError) as info:
        load_file(bad)
    (problem,) = info.value.problems
    assert problem.startswith(f"{bad}:")
    line = int(problem.split(":")[1])
    lines = bad.read_text().splitlines()
    assert lines[line - 1].strip() == "- id: preview"  # the step that holds the bad argument
    assert "steps.1" in problem and "older_than_days" in problem


def test_unknown_tool_and_missing_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("tools: [disk_usage, clear_temp_files, large_files]",
                                "tools: [disk_usage, format_c_drive, large_files]")
                   .replace("name: Disk full\n", ""))
    with pytest.raises(PlaybookError) as info:
        load_file(bad)
    text = "\n".join(info.value.problems)
    assert "name: Field required" in text
    tools_line = bad.read_text().splitlines().index("tools: [disk_usage, format_c_drive, large_files]") + 1
    assert f"{bad}:{tools_line}: tools: Value error, unknown tool 'format_c_drive'" in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: x\nname: [unclosed\n")
    with pytest.raises(PlaybookError, match=r"broken.yaml:\d+: not valid YAML"):
        load_file(bad)


def test_loading_a_directory_is_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)  # same id twice
    with pytest.raises(PlaybookError, match="also used by"):
        load_dir(tmp_path)


@pytest.mark.parametrize(("subject", "body", "expected"), [
    ("disk almost full", "cannot save files", "disk_full"),
    ("Internet not working", "websites don't load", "no_internet"),
    ("pc very slow", "freezes all the time", "slow_computer"),
    ("printer jammed", "paper stuck", None),
    ("Suspicious email", "mailbox full, asks for my password, phishing?", None),
])
def test_matcher_picks_or_refuses(subject: str, body: str, expected: str | None) -> None:
    found = match(load_dir(), subject, body, "linux")
    assert (found.playbook.id if found.playbook else None) == expected
    assert found.explanation


def test_matcher_respects_os(tmp_path: Path) -> None:
    (tmp_path / "disk.yaml").write_text(GOOD.replace("os: [macos, windows, linux]", "os: [linux]"))
    books = load_dir(tmp_path)
    assert match(books, "disk full", "", "linux").playbook is not None
    assert match(books, "disk full", "", "windows").playbook is None
