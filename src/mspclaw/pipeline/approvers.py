"""Who may approve a destructive step: a registered technician of that client, never the requester.

* A technician logged in with a JWT approves as themselves (a different ``approver`` name is
  refused, so nobody signs for someone else).
* The bootstrap key or a named API key (the CLI, a chat bridge) names the approver; the name or
  e-mail must be a technician in ``techs.yaml`` with role ``tech`` or ``admin`` serving the client.
* Either way the approver is not the ticket's requester.

A fresh install with an empty ``techs.yaml`` runs in bootstrap mode: an admin caller's named
approver is recorded as given (still never the ticket's requester). As soon as the registry lists
one technician, the rules above apply to every decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from mspclaw.errors import Forbidden
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.techs import TechRegistry
from mspclaw.store.registry import Registry
from mspclaw.store.tables import ApprovalRow
from mspclaw.store.tickets import TicketStore


@dataclass(frozen=True)
class Approver:
    name: str
    email: str | None
    registered: bool

    def label(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name


class ApproverPolicy:
    def __init__(self, techs: TechRegistry, store: TicketStore, registry: Registry) -> None:
        self._techs, self._store, self._registry = techs, store, registry

    def resolve(self, row: ApprovalRow, principal: Principal, claimed: str) -> Approver:
        """The technician who decides ``row``; :class:`Forbidden` with the reason otherwise."""
        client = self._registry.client(row.client_id)
        session = self._store.session(row.session_id)
        requester = self._store.ticket(session.ticket_id).requester.strip().lower()
        if principal.kind == "tech":
            tech = self._techs.find(principal.email or "")
            if tech is None:
                raise Forbidden("you are no longer in techs.yaml")
            if claimed.strip() and self._techs.find(claimed) != tech:
                raise Forbidden(f"you are logged in as {tech.name}; you cannot decide in someone else's name")
        else:
            if not self._techs.techs():
                if not principal.at_least("admin"):
                    raise Forbidden("only an admin may decide while techs.yaml lists no technician")
                if requester and claimed.strip().lower() == requester:
                    raise Forbidden("the ticket's requester cannot approve their own ticket's destructive step")
                return Approver(claimed.strip(), None, registered=False)
            found = self._techs.find(claimed)
            if found is None:
                raise Forbidden(f"{claimed!r} is not a technician in techs.yaml; approvals must be made by a "
                                "registered technician (`mspclaw tech list`)")
            tech = found
        if tech.role not in ("tech", "admin"):
            raise Forbidden(f"{tech.name} is a viewer; only technicians and admins approve destructive steps")
        if not tech.serves(client.id, client.name):
            raise Forbidden(f"{tech.name} does not serve {client.name}")
        if requester and requester in (tech.email, tech.name.lower()):
            raise Forbidden(f"{tech.name} requested this ticket and cannot approve its destructive step; "
                            "another technician must decide")
        return Approver(tech.name, tech.email, registered=True)
