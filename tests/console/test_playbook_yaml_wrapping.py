"""The playbook builder's YAML writer never saves text that reads back as something else.

ruamel (the round-trip writer the builder uses to keep a file's comments and layout) wraps a long flow
mapping between the words of a key: ``{..., pc friert: 1.5}`` came out as ``pc`` at the end of one line and
``friert: 1.5`` on the next, which is no YAML. Weights with phrases as keys ("out of memory: 2.0") are
ordinary, so a technician renaming such a playbook in the console got a file that no longer loads.
"""

from __future__ import annotations

from typing import Any

import yaml

from mspclaw.pipeline.playbook_drafting import render_yaml


def draft(weights: dict[str, float]) -> dict[str, Any]:
    return {"id": "wrapped_keys", "name": "Wrapped keys", "triggers": {"keywords": ["slow"], "weights": weights}}


PHRASE_WEIGHTS = {f"word{i} other{i}": 1.5 for i in range(30)}


def test_a_new_playbook_with_phrase_weights_reads_back_the_same() -> None:
    text = render_yaml(draft(PHRASE_WEIGHTS))
    assert yaml.safe_load(text)["triggers"]["weights"] == PHRASE_WEIGHTS


def test_an_edit_beside_a_long_flow_mapping_keeps_the_file_readable() -> None:
    original = render_yaml(draft(PHRASE_WEIGHTS))
    renamed = render_yaml({**draft(PHRASE_WEIGHTS), "name": "Renamed"}, original)
    read = yaml.safe_load(renamed)
    assert read["name"] == "Renamed" and read["triggers"]["weights"] == PHRASE_WEIGHTS


def test_short_values_are_still_wrapped_at_the_width() -> None:
    keywords = [f"keyword{i}" for i in range(40)]
    text = render_yaml({"id": "long_list", "name": "Long list", "triggers": {"keywords": keywords}})
    assert yaml.safe_load(text)["triggers"]["keywords"] == keywords
    assert max(len(line) for line in text.splitlines()) <= 120
