"""Each OS's tool table: every tool is a catalogue tool, takes exactly the catalogue's arguments
model, and refuses arguments of another model (the binding is derived from the function's
annotation, so this is what keeps the two in step)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from mspclaw.agent.tools import ToolContext, tool_registry, tool_table
from mspclaw.tools import get_tool
from mspclaw.tools.catalogue import CATALOGUE


@pytest.mark.parametrize("os_name", ["linux", "macos", "windows"])
def test_every_tool_takes_the_catalogues_arguments(os_name: str) -> None:
    table = tool_registry(os_name)
    assert table and set(table) <= set(CATALOGUE)
    for name, run in table.items():
        fn = run.__wrapped__  # type: ignore[attr-defined]
        assert fn.__name__ == name
        assert typing.get_type_hints(fn)["args"] is get_tool(name).args, (os_name, name)


class Wrong(BaseModel):
    x: int = 1


def test_a_table_refuses_other_arguments_and_unannotated_tools(tmp_path: Path) -> None:
    from mspclaw.agent.tools.linux import system_info

    table = tool_table(system_info)
    with pytest.raises(TypeError, match="expected NoArgs arguments, got Wrong"):
        table["system_info"](Wrong(), ToolContext(temp_roots=[tmp_path]))

    def untyped(args, context):  # type: ignore[no-untyped-def]
        return {}

    with pytest.raises(TypeError, match="must be annotated with a pydantic model"):
        tool_table(untyped)
