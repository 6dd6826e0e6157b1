"""techs.yaml is read by libyaml (``canonical.safe_load``) and composed for line numbers only when it does not
validate: the values are ``yaml.safe_load``'s, and an error names the line PyYAML's own composer gives, whatever
the file's line endings, byte order mark or the line breaks (NEL, LS) inside its quoted values."""

from __future__ import annotations

import pytest
import yaml

from mspclaw.errors import ConfigError
from mspclaw.pipeline.techs import TechsFile, parse

ROSTER = """\
techs:
  - name: NAME
    email: dana@msp.example
    role: ROLE
    clients: ["*"]
    on_duty: ["mon-fri 08:00-18:00"]
channels:
  - name: ops
    kind: teams
    url: https://example.invalid/hook
"""
LAYOUTS = {
    "plain": ROSTER,
    "crlf": ROSTER.replace("\n", "\r\n"),
    "bom": "\ufeff" + ROSTER,
    "non-ascii": ROSTER.replace("NAME", "Dänä Scülly 😀"),
    "nel-quoted": ROSTER.replace("NAME", '"Dana\x85Scully"'),
    "ls-quoted": ROSTER.replace("NAME", '"Dana\u2028Scully"'),
}


def _pyyaml_line(text: str, field: str) -> int:
    """The line PyYAML's pure-Python composer gives the first technician's ``field``."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    tech = node.value[0][1].value[0]
    return int(next(k for k, _ in tech.value if k.value == field).start_mark.line) + 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_roster_reads_as_yaml_safe_load_reads_it(layout: str) -> None:
    text = LAYOUTS[layout].replace("ROLE", "tech")
    assert parse(text, "techs.yaml") == TechsFile.model_validate(yaml.safe_load(text))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_invalid_roster_names_the_line_pyyaml_gives(layout: str) -> None:
    text = LAYOUTS[layout].replace("ROLE", "boss")
    with pytest.raises(ConfigError) as info:
        parse(text, "techs.yaml")
    assert f"techs.yaml:{_pyyaml_line(text, 'role')}: techs.0.role:" in info.value.message, info.value.message
