"""A techs.yaml costs one linear pass to read, whatever it holds: aliases (the "billion laughs" expansion, or
one long value repeated a hundred thousand times), too many nodes and deep nesting are refused before anything
is built, with the file, the line and what to do; a real roster as large as the file limit still loads."""

from __future__ import annotations

import time

import pytest

from mspclaw.errors import ConfigError
from mspclaw.pipeline.techs import MAX_DEPTH, MAX_FILE, MAX_NODES, Tech, TechsFile, dump, parse

HEAD = """\
techs:
  - name: Dana Scully
    email: dana@msp.example
"""


def _billion_laughs(levels: int = 9) -> str:
    """10**levels strings from a few hundred bytes: each level a list of ten of the one before."""
    lines = ["lol:", '  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n" + HEAD + f"    clients: [\"*\"]\n    aliases: *a{levels - 1}\n"


def _refused(text: str, seconds: float = 1.0) -> str:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        parse(text, "/srv/techs.yaml")
    assert time.perf_counter() - started < seconds, "refused without building anything"
    return info.value.message


def test_a_billion_laughs_roster_is_refused_at_its_first_alias() -> None:
    message = _refused(_billion_laughs())
    assert message.startswith("/srv/techs.yaml:3: YAML aliases (*a0) are not allowed in a technician roster; "
                              "write the value out in full"), message


def test_one_long_value_repeated_by_alias_is_refused() -> None:
    # 500 KB of text that stands for 10 GB of client names: each alias is the same string again
    text = HEAD + f"    clients: [&x {'x' * 100_000}, {', '.join(['*x'] * 100_000)}]\n"
    message = _refused(text)
    assert message.startswith("/srv/techs.yaml:4: YAML aliases (*x) are not allowed"), message


def test_a_merge_key_is_an_alias_too() -> None:
    text = HEAD + '    clients: ["*"]\n    <<: &base {role: admin}\n'
    text += '  - <<: *base\n    name: B\n    email: b@m.example\n'
    assert _refused(text).startswith("/srv/techs.yaml:6: YAML aliases (*base)"), text


def test_too_many_nodes_are_refused() -> None:
    text = HEAD + f"    clients: [{','.join(['a'] * (MAX_NODES + 1))}]\n"
    assert len(text.encode()) < MAX_FILE
    message = _refused(text, seconds=5.0)  # one pass over 400 KB of events
    assert message == (f"/srv/techs.yaml:4: more than {MAX_NODES} YAML nodes; a roster is far smaller: check that "
                       "this is a techs.yaml"), message


def test_deep_nesting_is_refused_where_it_starts() -> None:
    # unbounded, 20,000 levels (40 KB) cost the composer seconds and 50,000 overflowed the C stack of PyYAML's
    # libyaml composer (the process died); refused at the first level too many
    text = HEAD + '    clients: ["*"]\n    aliases:\n      ' + "[" * 1_000 + "]" * 1_000 + "\n"
    message = _refused(text)
    assert message.startswith(f"/srv/techs.yaml:6: nested more than {MAX_DEPTH} levels deep"), message


def test_a_text_over_the_file_limit_is_refused_whoever_read_it() -> None:
    text = HEAD + '    clients: ["*"]\n' + "#" * MAX_FILE + "\n"
    assert _refused(text).startswith(f"/srv/techs.yaml: {len(text)} bytes is over the 1024 KiB limit"), text


def test_a_real_roster_as_large_as_the_file_limit_loads() -> None:
    techs = [Tech(name=f"Technician {i}", email=f"tech{i}@msp.example", slack_id=f"U{i:08d}",
                  teams_id=f"tech{i}@msp.example", clients=["Acme Dental", "Bravo Law"],
                  on_duty=["mon-fri 08:00-18:00"], timezone="Europe/Berlin", aliases=[f"tech{i}@home.example"])
             for i in range(3_600)]
    text = dump(TechsFile(techs=techs))
    assert MAX_FILE * 0.85 < len(text.encode()) <= MAX_FILE
    assert parse(text, "techs.yaml").techs == techs
