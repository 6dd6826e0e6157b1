"""``mspclaw tech export`` and ``mspclaw tech import FILE``: the roster in the database edited as a techs.yaml
file; a file with errors is refused line by line and changes nothing; a data directory's techs.yaml of an
earlier release is imported by the first command after the upgrade. Offline, as an admin runs them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.errors import MSPClawError


def run(data: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data), *args])
    if isinstance(result.exception, MSPClawError):  # what `mspclaw` (cli.app.run) prints, exit 1
        return 1, result.stdout, f"error: {result.exception.message}"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def emails(data: Path) -> list[str]:
    return [t["email"] for t in json.loads(run(data, "tech", "list", "--json")[1])]


def test_export_edit_import_and_a_broken_file_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out, err = run(data, "tech", "add", "Dana Scully", "--email", "dana@msp.example", "--client", "*")
    assert (code, out.strip()) == (0, "dana@msp.example: added to the roster"), err
    exported = tmp_path / "roster.yaml"
    code, _, err = run(data, "tech", "export", "--output", str(exported))
    assert code == 0 and "keep it private" in err and oct(exported.stat().st_mode & 0o777) == "0o600"
    doc = yaml.safe_load(exported.read_text())
    doc["techs"].append({"name": "Fox Mulder", "email": "fox@msp.example", "clients": ["Acme"], "role": "boss"})
    doc["channels"] = [{"name": "ops", "kind": "teams", "url": "https://example.invalid/hook"}]
    exported.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, _, err = run(data, "tech", "import", str(exported))
    line = next(n for n, text in enumerate(exported.read_text().splitlines(), 1) if "boss" in text)
    assert code == 1 and f"{exported}:{line}: techs.1.role" in err, err
    assert emails(data) == ["dana@msp.example"], "nothing imported from a file with an error"

    doc["techs"][1]["role"] = "viewer"
    doc["techs"].pop(0)
    exported.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out, err = run(data, "tech", "import", str(exported))
    assert code == 0, err
    assert out.strip() == (f"{exported}: 1 technician(s) and 1 channel(s) in the roster now (1 added, 0 changed, "
                           "1 removed: dana@msp.example)")
    assert emails(data) == ["fox@msp.example"]
    code, out, _ = run(data, "tech", "export")
    assert code == 0 and yaml.safe_load(out)["channels"][0]["url"] == "https://example.invalid/hook"
    code, _, err = run(data, "tech", "passwd", "Dana Scully", "--password-stdin")
    assert code == 1 and "no technician 'Dana Scully' in the roster" in err


def test_the_first_command_after_the_upgrade_imports_techs_yaml(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "techs.yaml").write_text("techs:\n  - name: Dana Scully\n    email: dana@msp.example\n"
                                     "    clients: ['*']\n")
    assert emails(data) == ["dana@msp.example"]
    assert not (data / "techs.yaml").exists() and (data / "techs.yaml.imported").exists()
