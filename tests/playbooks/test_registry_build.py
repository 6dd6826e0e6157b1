"""The registry built from the shipped library, its published JSON Schema, and the permissions manifest.

Real files only; the schema check validates the built registry with the ``jsonschema`` reference
implementation when it is installed, and compares the published file with the generated one always.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.playbooks.loader import LIBRARY, load_file
from mspclaw.playbooks.registry import build, dumps, json_schema, parse_registry, permissions, version_key

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def test_published_registry_schema_is_current() -> None:
    """CI fails here when the registry model changed and the published schema was not regenerated."""
    published = json.loads((ROOT / "docs" / "playbook-registry.schema.json").read_text())
    assert published == json_schema(), ("docs/playbook-registry.schema.json is stale: run `mspclaw playbooks "
                                        "registry schema --output docs/playbook-registry.schema.json`")


def test_library_registry_carries_what_an_msp_needs(tmp_path: Path) -> None:
    out = tmp_path / "playbook-registry.json"
    result = runner.invoke(app, ["playbooks", "registry", "build", str(LIBRARY), "-o", str(out), "--tier", "official"])
    assert result.exit_code == 0, result.stderr
    registry = parse_registry(out.read_bytes(), str(out))
    assert registry.tier == "official" and len(registry.playbooks) == 16 and registry.generated_at.endswith("Z")
    entries = {e.id: e for e in registry.playbooks}
    locked = entries["account_locked"]
    assert locked.runs_on == {"device": [], "site": ["user", "unlock", "after"]}
    assert locked.permissions.destructive == ["unlock_account"]
    assert [(d.system, d.permission) for d in locked.permissions.directory] == [
        ("active_directory", "Read/write lockoutTime"), ("active_directory", "read user attributes"),
        ("microsoft_graph", "User.ReadWrite.All")]
    assert entries["onboarding"].tested_against.identity == ["active_directory"]
    printer = entries["printer"]
    assert {t.name for t in printer.permissions.tools if t.needs_approval} == {"clear_print_queue",
                                                                              "restart_print_spooler"}
    # every entry carries the library's official signature (whether it is current is the signing test's job)
    assert all(e.signatures and e.signatures[0].signee == "MSPclaw official playbooks" for e in registry.playbooks)


def test_manifest_lists_declared_tools_a_model_may_call(tmp_path: Path) -> None:
    path = tmp_path / "wifi.yaml"
    text = (LIBRARY / "wifi.yaml").read_text()
    assert "tools: [" in text and "requires_approval: [" in text
    path.write_text(text.replace("tools: [", "tools: [clear_temp_files, ", 1)
                    .replace("requires_approval: [", "requires_approval: [clear_temp_files, ", 1))
    book = load_file(path)
    manifest = permissions(book)
    extra = next(t for t in manifest.tools if t.name == "clear_temp_files")
    assert extra.steps == [] and extra.needs_approval and "a model running this playbook may call it" in extra.why[0]
    assert {t.name for t in manifest.tools} == set(book.tools) and "clear_temp_files" in manifest.destructive


def test_registry_is_reproducible_and_semver_ordered(tmp_path: Path) -> None:
    first, second = build(LIBRARY, tier="official"), build(LIBRARY, tier="official")
    assert [e.sha256 for e in first.playbooks] == [e.sha256 for e in second.playbooks]
    assert parse_registry(dumps(first).encode(), "x").sha256 == first.sha256
    assert version_key("1.10.0") > version_key("1.9.9") > version_key("1.9.9-rc.1")
    assert version_key("2") == version_key("2.0.0")
