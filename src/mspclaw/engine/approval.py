"""Approval as a wrapper around the tool port, not a branch in the loop.

A call is gated when the catalogue says the tool is destructive for these arguments, or the
playbook lists the tool in ``requires_approval``; a preview (``dry_run: true``) changes
nothing and is never gated. The gate asks the :class:`~mspclaw.engine.ports.ApprovalPort` and
passes the grant down, so the agent can see and verify it.
"""

from __future__ import annotations

from typing import Any

from mspclaw.engine.ports import ApprovalPort, ToolPort
from mspclaw.protocol.frames import Approval
from mspclaw.tools import get_tool


class ApprovalGate:
    def __init__(self, inner: ToolPort, approvals: ApprovalPort, requires_approval: frozenset[str]) -> None:
        self._inner = inner
        self._approvals = approvals
        self._requires = requires_approval

    async def __call__(
        self, tool: str, args: dict[str, Any], *, reason: str, approval: Approval | None = None
    ) -> dict[str, Any]:
        spec = get_tool(tool)
        parsed = spec.validate(args)
        gated = spec.needs_approval(parsed) or (tool in self._requires and not spec.is_preview(parsed))
        if approval is None and gated:
            approval = await self._approvals.request(tool, parsed.model_dump(mode="json"), reason=reason)
        return await self._inner(tool, args, reason=reason, approval=approval)
