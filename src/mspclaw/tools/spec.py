"""``ToolSpec``: what a tool is called, what it takes, where it runs and whether it is destructive.

Arguments are a pydantic model, so the JSON Schema offered to a model and the validation
done by the server before dispatch and by the agent before running are the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from mspclaw.errors import InvalidArguments

RunsOn = Literal["device", "site"]
OS = Literal["linux", "macos", "windows"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    os: frozenset[OS]
    runs_on: RunsOn = "device"
    destructive: bool = False
    idempotent: bool = True
    timeout_s: float = 30.0
    preview_flag: str | None = None
    """For a destructive tool: the boolean argument that, when true, only reports what
    would change. Such a preview call needs no approval."""
    hands_over_secret: bool = False
    """The tool sets a temporary password or access pass and returns it beside its result for the
    user alone (``protocol.frames.Secret``); a result without it was not delivered to anyone."""

    def json_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()

    def validate(self, args: dict[str, Any]) -> BaseModel:
        """Return the parsed arguments or raise :class:`InvalidArguments` naming each field."""
        try:
            return self.args.model_validate(args)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "arguments"
                problems.append(f"{where}: {err['msg']}")
            raise InvalidArguments(f"{self.name}: " + "; ".join(problems)) from exc

    def is_preview(self, args: BaseModel) -> bool:
        """True when the call only reports what it would change."""
        return self.preview_flag is not None and getattr(args, self.preview_flag, False) is True

    def needs_approval(self, args: BaseModel) -> bool:
        """True when this call changes something and so must carry a technician's approval."""
        return self.destructive and not self.is_preview(args)
