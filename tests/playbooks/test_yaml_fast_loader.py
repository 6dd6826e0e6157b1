"""Playbook YAML is read by libyaml's parser under PyYAML's safe constructor (``canonical.FAST_LOADER``): the same
values as ``yaml.safe_load`` for every library playbook, PyYAML's own messages for a document it refuses, and the
same refusals (aliases, depth) as before."""

from __future__ import annotations

import pytest
import yaml

from mspclaw.playbooks import canonical
from mspclaw.playbooks.canonical import CanonicalError, check_yaml, safe_load
from mspclaw.playbooks.loader import LIBRARY


def test_the_fast_loader_is_libyaml_where_pyyaml_has_it() -> None:
    assert canonical.FAST_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_library_playbook_reads_the_same(path: object) -> None:
    text = path.read_text(encoding="utf-8")  # type: ignore[attr-defined]
    assert safe_load(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", ["id: [unclosed", "a: b\n c: d\n:", "key: 'no end", "- a\nb: c"])
def test_a_refused_document_raises_pyyamls_own_error(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as expected:
        yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError) as got:
        safe_load(text)
    assert str(got.value) == str(expected.value)


def test_aliases_and_depth_are_refused_as_before() -> None:
    with pytest.raises(CanonicalError, match=r"p.yaml:2: YAML aliases \(\*x\) are not allowed"):
        check_yaml("a: &x [1]\nb: *x\n", "p.yaml")
    with pytest.raises(CanonicalError, match="nested more than 32 levels deep"):
        check_yaml("a: " + "[" * 40 + "]" * 40, "p.yaml")
    with pytest.raises(CanonicalError, match=r"p.yaml:\d+: not valid YAML: did not find expected"):
        check_yaml("id: [unclosed", "p.yaml")
