"""Account tools act for the ticket's verified requester, and for no one else (DESIGN section 3).

:class:`ActForRequester` is the engine's outermost tool port. For a tool whose arguments carry
``requested_by`` (the site's account tools), it sets ``requested_by`` and ``verified_by`` from the
ticket, replacing whatever a playbook or a model passed: no ticket text, tool output or model
output can aim a change at another account. The site agent then checks them against its own
directory (their own account for a password, lockout or MFA; someone they manage for a leaver or
a new hire's access) and refuses privileged accounts.

Before a change it asks for a second factor when one is available (``confirm``: the requester
confirms on their own enrolled device), and records how the requester was verified in
:class:`Verifications`, which the approval request reads to state it as a fact of the server (not
as text appended to the model's reason).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mspclaw.engine.ports import ToolPort
from mspclaw.pipeline.identity import identity_keys
from mspclaw.playbooks.beneficiary import mentions
from mspclaw.protocol.frames import Approval
from mspclaw.protocol.signing import args_digest
from mspclaw.tools import get_tool
from mspclaw.tools.site import OWN_ACCOUNT_TOOLS

Confirm = Callable[[str, str], Awaitable[bool]]
"""``(tool, target account) -> True`` when the requester confirmed on their own device; ``False`` when
there is no such device or no answer; raises when they said it was not them."""


@dataclass(frozen=True)
class Verification:
    requester: str
    methods: tuple[str, ...]
    """``psa_contact``, and ``device_confirmation`` when they confirmed on their own device."""
    device: str | None = None

    def sentence(self) -> str:
        how = (f"the PSA contact on the ticket, and confirmed by them on their own device {self.device}"
               if "device_confirmation" in self.methods
               else "the PSA contact on the ticket only (no enrolled device of theirs was online to confirm on)")
        return f"Requester {self.requester} verified by {how}."


class Verifications:
    """How the requester was verified for each bound call (by tool and exact arguments), for the approval."""

    def __init__(self) -> None:
        self._by_call: dict[tuple[str, str], Verification] = {}

    def record(self, tool: str, args: dict[str, Any], verification: Verification) -> None:
        self._by_call[(tool, args_digest(get_tool(tool).validate(args).model_dump(mode="json")))] = verification

    def for_call(self, tool: str, args: dict[str, Any]) -> Verification | None:
        """``args`` as validated by the catalogue (what the approval gate asks about)."""
        return self._by_call.get((tool, args_digest(args)))


def for_someone_else(tools: Iterable[str], subject: str, body: str, requester: str) -> str | None:
    """Why a playbook with these ``tools`` must not run for this ticket: it changes the requester's own account
    (:data:`~mspclaw.tools.site.OWN_ACCOUNT_TOOLS`) and the ticket asks for another person's ("reset the
    password for user jdoe": the run would reset the requester's). ``None`` when the playbook changes no
    such account or the ticket names no one else; a name in the ticket that is the requester's own
    (their user name, address or name) does not count."""
    if not OWN_ACCOUNT_TOOLS.intersection(tools):
        return None
    own = identity_keys(requester)
    locals_ = {key.removeprefix("addr:").split("@", 1)[0] for key in own if key.startswith("addr:")}
    words = {word for key in own if key.startswith("name:") for word in key.removeprefix("name:").split()}
    for mention in mentions(subject, body):
        if mention.name is not None:
            name = mention.name
            if identity_keys(name) & own or name.split("@", 1)[0] in locals_ or name in words:
                continue  # their own user name or name, quoted (an error message, a signature)
        return (f"the ticket asks for another person's account (\"{mention.evidence}\"); MSPclaw changes an "
                f"account only for the verified requester ({requester or 'unknown'}): verify that person and act "
                "for them by hand, or ask them to contact the service desk themselves")
    return None


class ActForRequester:
    def __init__(self, inner: ToolPort, requester: str, confirm: Confirm | None = None, *,
                 device: str | None = None, verifications: Verifications | None = None) -> None:
        self._inner, self._requester, self._confirm, self._device = inner, requester, confirm, device
        self.verifications = verifications if verifications is not None else Verifications()
        self._confirmed: dict[str, bool] = {}

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        spec = get_tool(tool)
        if "requested_by" not in spec.args.model_fields:
            return await self._inner(tool, args, reason=reason, approval=approval)
        verified = ["psa_contact"]
        target = str(args.get("username") or args.get("like_user") or "")
        if spec.destructive and await self._confirmed_for(tool, target):
            verified.append("device_confirmation")
        bound = {**args, "requested_by": self._requester, "verified_by": verified}
        self.verifications.record(tool, bound, Verification(
            self._requester, tuple(verified), self._device if "device_confirmation" in verified else None))
        return await self._inner(tool, bound, reason=reason, approval=approval)

    async def _confirmed_for(self, tool: str, target: str) -> bool:
        if self._confirm is None:
            return False
        key = f"{tool}/{target}"
        if key not in self._confirmed:
            self._confirmed[key] = await self._confirm(tool, target)
        return self._confirmed[key]
