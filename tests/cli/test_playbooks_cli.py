"""``mspclaw playbooks validate|list|show|match|schema`` as a user runs them (Typer's runner, in process)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.playbooks.loader import LIBRARY
from mspclaw.playbooks.schema import json_schema

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["playbooks", *args])
    return result.exit_code, result.stdout, result.stderr


def test_validate_the_library_and_a_broken_file(tmp_path: Path) -> None:
    code, out, _ = invoke("validate", str(LIBRARY))
    assert code == 0 and out.strip() == "16 playbook(s) valid"
    bad = tmp_path / "printer.yaml"
    text = (LIBRARY / "printer.yaml").read_text()
    bad.write_text(text.replace("category: printer", "category: printers"))
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text(text.replace("requires_approval: [clear_print_queue, restart_print_spooler]",
                                   "requires_approval: [restart_print_spooler]"))
    code, _, err = invoke("validate", str(bad), str(unsafe), str(LIBRARY / "wifi.yaml"))
    assert code == 1
    lines = bad.read_text().splitlines()
    category_line = lines.index("category: printers") + 1
    assert f"{bad}:{category_line}: category: Input should be 'password_reset'" in err
    assert "tool 'clear_print_queue' changes the machine or an account: list it in requires_approval" in err
    assert "fix them and run `mspclaw playbooks validate` again" in err


def test_validate_reports_a_step_argument_computed_from_an_unknown_field(tmp_path: Path) -> None:
    bad = tmp_path / "vpn.yaml"
    bad.write_text((LIBRARY / "vpn.yaml").read_text().replace("args_from: {name: ", "args_from: {names: "))
    code, _, err = invoke("validate", str(bad))
    assert code == 1 and "restart_vpn takes no argument 'names'" in err


def test_list_and_show() -> None:
    code, out, _ = invoke("list", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 16
    printer = next(r for r in rows if r["id"] == "printer")
    assert printer["requires_approval"] == ["clear_print_queue", "restart_print_spooler"]
    code, out, _ = invoke("show", "printer")
    assert code == 0 and "steps on windows:" in out and "Restart the Windows print spooler" in out
    assert out.count("Restart the Windows print spooler") == 1  # a Windows step only
    code, out, _ = invoke("show", "wifi", "--json")
    assert json.loads(out)["category"] == "wifi"
    code, _, err = invoke("show", "nope")
    assert code == 1 and "no playbook 'nope'; known:" in err


def test_match_one_ticket_as_text_and_json() -> None:
    code, out, _ = invoke("match", "printer not printing", "--body", "jobs stuck in the queue", "--os", "windows")
    assert code == 0 and out.startswith("printer  score ")
    code, out, _ = invoke("match", "Suspicious email", "--body", "is this phishing?", "--os", "macos", "--json")
    decision = json.loads(out)
    assert decision["category"] is None and decision["playbook"] is None
    assert "security report" in decision["explanation"]
    code, _, err = invoke("match", "printer not printing")
    assert code == 2 and "--os is required" in err
    code, _, err = invoke("match", "printer", "--os", "beos")
    assert code == 2 and "--os must be one of linux, macos, windows" in err


def test_match_batch_keeps_order_and_refuses_bad_lines_whole(tmp_path: Path) -> None:
    good = tmp_path / "t.jsonl"
    good.write_text('{"subject": "vpn down", "body": "", "os": "windows"}\n\n'
                    '{"subject": "thanks!", "body": "all good", "os": "macos"}\n')
    code, out, _ = invoke("match", "--batch", str(good))
    assert code == 0
    assert [json.loads(line)["category"] for line in out.splitlines()] == ["vpn", None]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "vpn down", "os": "windows"}\nnot json\n{"subject": "x", "os": "amiga"}\n')
    code, out, err = invoke("match", "--batch", str(bad))
    assert code == 2 and out == ""
    assert f"{bad}:2: not JSON" in err and f"{bad}:3: os: 'amiga' is not one of" in err


def test_published_schema_is_current() -> None:
    """CI fails here when the playbook model changed and docs/playbook.schema.json was not regenerated."""
    published = json.loads((ROOT / "docs" / "playbook.schema.json").read_text())
    assert published == json_schema(), (
        "docs/playbook.schema.json is stale: run `mspclaw playbooks schema --output docs/playbook.schema.json`")
    code, out, _ = invoke("schema")
    assert code == 0 and json.loads(out) == published
    assert set(published["properties"]["category"]["enum"]) >= {"printer", "mfa_reset", "app_crash"}
