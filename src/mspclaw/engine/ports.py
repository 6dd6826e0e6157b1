"""What the engine needs from outside, as small protocols. The pipeline supplies them."""

from __future__ import annotations

from typing import Any, Protocol

from mspclaw.engine.plan import StepRecord
from mspclaw.protocol.frames import Approval


class ToolPort(Protocol):
    """Runs one tool on the ticket's agent; raises :class:`~mspclaw.errors.ToolError` on failure."""

    async def __call__(
        self, tool: str, args: dict[str, Any], *, reason: str, approval: Approval | None = None
    ) -> dict[str, Any]: ...


class ApprovalPort(Protocol):
    """Asks a technician; returns the grant or raises :class:`~mspclaw.errors.ApprovalDenied`."""

    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval: ...


class StepSink(Protocol):
    async def __call__(self, record: StepRecord) -> None: ...
