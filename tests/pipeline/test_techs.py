"""techs.yaml: validation that names the line, on-duty routing, channels per client or global,
and edits that are atomic and never lost when several run at once."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mspclaw.errors import ConfigError, Conflict, NotFound
from mspclaw.pipeline.techs import Tech, TechRegistry, parse, tech_from

GOOD = """\
techs:
  - name: Dana Scully
    email: Dana@MSP.example
    role: tech
    slack_id: U0DANA
    clients: ["Acme Dental"]
    on_duty: ["mon-fri 08:00-18:00"]
    timezone: Europe/Berlin
  - name: Night Owl
    email: owl@msp.example
    clients: ["*"]
    on_duty: ["mon-sun 22:00-06:00"]
channels:
  - name: acme
    kind: teams
    url: https://example.invalid/workflows/acme
    clients: [cl_acme]
"""


def test_a_valid_file_loads() -> None:
    doc = parse(GOOD, "techs.yaml")
    assert [t.email for t in doc.techs] == ["dana@msp.example", "owl@msp.example"]
    assert doc.channels[0].kind == "teams" and "url" not in repr(doc.channels[0])


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD.replace("role: tech", "role: boss"), 4, "techs.0.role"),
    (GOOD.replace("Dana@MSP.example", "not-an-email"), 3, "techs.0.email"),
    (GOOD.replace('"mon-fri 08:00-18:00"', '"weekdays 9-5"'), 7, "write 'mon-fri 08:00-18:00'"),
    (GOOD.replace("Europe/Berlin", "Mars/Olympus"), 8, "unknown time zone"),
    (GOOD.replace("kind: teams", "kind: pager"), 15, "channels.0.kind"),
    (GOOD.replace("    clients: [\"*\"]\n", ""), 9, "techs.1.clients: Field required"),
    (GOOD.replace("slack_id: U0DANA", "slack_id: U0DANA\n    pager: 555"), 6, "techs.0.pager: Extra inputs"),
    (GOOD + "  - name: [unclosed\n", 19, "flow sequence at line 18"),
])
def test_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "techs.yaml")
    assert f"techs.yaml:{line}:" in info.value.message and words in info.value.message, info.value.message


def test_duplicate_emails_are_refused() -> None:
    text = GOOD.replace("owl@msp.example", "dana@msp.example")
    with pytest.raises(ConfigError, match=r"e-mail listed twice: dana@msp\.example"):
        parse(text, "techs.yaml")


def test_on_duty_picks_the_first_technician_in_their_hours(tmp_path: Path) -> None:
    path = tmp_path / "techs.yaml"
    path.write_text(GOOD)
    reg = TechRegistry(path)
    tuesday_noon_berlin = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    tuesday_night = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    wednesday_early = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
    saturday_noon = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert reg.on_duty("cl_acme", "Acme Dental", tuesday_noon_berlin).tech.name == "Dana Scully"  # type: ignore[union-attr]
    assert reg.on_duty("cl_acme", "Acme Dental", tuesday_night).tech.name == "Night Owl"  # type: ignore[union-attr]
    assert reg.on_duty("cl_acme", "Acme Dental", wednesday_early).tech.name == "Night Owl"  # type: ignore[union-attr]
    nobody = reg.on_duty("cl_acme", "Acme Dental", saturday_noon)
    assert nobody.tech is None and "none of the 2 technicians" in nobody.why
    assert reg.on_duty("cl_x", "Other", saturday_noon).tech is None
    assert reg.on_duty("cl_x", "Other", tuesday_night).tech.email == "owl@msp.example"  # type: ignore[union-attr]
    # channels: the client's own, else global (none here)
    assert [c.name for c in reg.channels("cl_acme", "Acme Dental", "escalation")] == ["acme"]
    assert reg.channels("cl_x", "Other", "escalation") == []


def test_hand_edits_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "techs.yaml"
    path.write_text(GOOD)
    reg = TechRegistry(path)
    assert reg.find("night owl") is not None
    path.write_text(GOOD.replace("Night Owl", "Day Owl") + "\n")
    assert reg.find("night owl") is None and reg.find("Day Owl") is not None


def test_add_and_remove_write_atomically_and_validate(tmp_path: Path) -> None:
    path = tmp_path / "data" / "techs.yaml"
    reg = TechRegistry(path)
    reg.add(tech_from({"name": "Dana", "email": "dana@msp.example", "clients": ["Acme"]}))
    with pytest.raises(Conflict, match="already in"):
        reg.add(tech_from({"name": "Dana 2", "email": "DANA@msp.example", "clients": ["Acme"]}))
    with pytest.raises(Conflict, match="role"):
        tech_from({"name": "X", "email": "x@msp.example", "clients": ["Acme"], "role": "root"})
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".techs.")] == [], "no temp file left"
    assert parse(path.read_text(), "x").techs[0].email == "dana@msp.example"
    reg.remove("Dana")
    with pytest.raises(NotFound):
        reg.remove("dana@msp.example")
    assert parse(path.read_text(), "x").techs == []


def test_a_broken_file_is_not_overwritten_by_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "techs.yaml"
    path.write_text("techs:\n  - name: [oops\n")
    with pytest.raises(ConfigError, match=r"flow sequence at line 2"):
        TechRegistry(path).add(Tech(name="A", email="a@msp.example", clients=["*"]))
    assert path.read_text() == "techs:\n  - name: [oops\n"


def test_concurrent_adds_from_threads_and_processes_lose_none(tmp_path: Path) -> None:
    path = tmp_path / "techs.yaml"
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            TechRegistry(path).add(Tech(name=f"T{i}", email=f"t{i}@msp.example", clients=["*"]))
        except BaseException as exc:
            errors.append(exc)

    script = ("import sys; from mspclaw.pipeline.techs import Tech, TechRegistry; i = sys.argv[2]; "
              "[TechRegistry(__import__('pathlib').Path(sys.argv[1])).add(Tech(name=f'P{i}-{n}', "
              "email=f'p{i}-{n}@msp.example', clients=['*'])) for n in range(3)]")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(i)]) for i in range(2)]
    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(60) for p in procs] == [0, 0]
    assert not errors
    emails = {t.email for t in parse(path.read_text(), "x").techs}
    from_procs = {f"p{i}-{n}@msp.example" for i in range(2) for n in range(3)}
    assert emails == {f"t{i}@msp.example" for i in range(12)} | from_procs
