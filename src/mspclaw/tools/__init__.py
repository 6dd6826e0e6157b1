"""The tool catalogue: names, argument schemas, where each tool runs, which are destructive."""

from mspclaw.tools.catalogue import CATALOGUE, get_tool
from mspclaw.tools.spec import ToolSpec

__all__ = ["CATALOGUE", "ToolSpec", "get_tool"]
