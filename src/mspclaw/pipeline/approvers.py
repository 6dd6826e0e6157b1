"""Who may approve a destructive step: a registered technician of that client who neither asked
for the ticket nor opened it; for chosen tools, two such technicians.

* A technician logged in with a JWT approves as themselves (a different ``approver`` name is
  refused, so nobody signs for someone else).
* The bootstrap key or a named API key (the CLI, a chat bridge) names the approver; the name or
  e-mail must be a technician of the roster with role ``tech`` or ``admin`` serving the client.
* Either way the approver is neither the ticket's requester nor the person who opened it (the
  ``actor`` of its ``ticket_opened`` audit event). People are compared on normalised identities
  (:mod:`mspclaw.pipeline.identity`): every address and display name in the requester field, in
  any case or form (``Name <addr>``, ``"Last, First" <ADDR>``, ``+tags``), against the
  technician's e-mail, name and ``aliases`` in the roster (other addresses, names, PSA contact
  ids). An opener that is no person (the bootstrap key ``admin``, ``key:NAME``, ``psa:NAME``)
  is not compared: a shared key does not say who used it.
* A tool listed in ``MSPCLAW_TWO_PERSON_TOOLS`` needs two approvals by two different people: the
  first is recorded (audit event ``approval_first``) and the request stays pending; the second,
  by someone else, decides it. A denial by either is final.

A fresh install with an empty roster runs in bootstrap mode: an admin caller's named
approver is recorded as given (still never the ticket's requester or opener, compared the same
way). As soon as the registry lists one technician, the rules above apply to every decision.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from mspclaw.errors import ConfigError, Conflict, Forbidden
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.identity import identity_keys
from mspclaw.pipeline.techs import TechRegistry
from mspclaw.store.audit import AuditLog
from mspclaw.store.registry import Registry
from mspclaw.store.tables import ApprovalRow
from mspclaw.store.tickets import TicketStore
from mspclaw.tools import CATALOGUE

FIRST_APPROVAL = "approval_first"
"""Audit event of the first of two approvals of a two-person tool."""
_SERVICE_ACTORS = ("admin", "api", "system")
_SERVICE_PREFIXES = ("key:", "psa:")
_LABEL_MAX = 255  # the approver column


@dataclass(frozen=True)
class Approver:
    name: str
    email: str | None
    registered: bool
    keys: frozenset[str] = frozenset()
    """Every normalised identity this approver goes by (:func:`~mspclaw.pipeline.identity.identity_keys`)."""

    def label(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name


class ApproverPolicy:
    def __init__(self, techs: TechRegistry, store: TicketStore, registry: Registry, audit: AuditLog, *,
                 two_person_tools: Collection[str] = ()) -> None:
        unknown = sorted(set(two_person_tools) - set(CATALOGUE))
        if unknown:
            destructive = sorted(name for name, spec in CATALOGUE.items() if spec.destructive)
            raise ConfigError(f"MSPCLAW_TWO_PERSON_TOOLS names unknown tool(s) {', '.join(unknown)}; "
                              f"list tool names from the catalogue, such as {', '.join(destructive)}")
        self._techs, self._store, self._registry, self._audit = techs, store, registry, audit
        self.two_person_tools = frozenset(two_person_tools)

    def resolve(self, row: ApprovalRow, principal: Principal, claimed: str) -> Approver:
        """The technician who decides ``row``; :class:`Forbidden` with the reason otherwise."""
        client = self._registry.client(row.client_id)
        approver = self._approver(principal, claimed, client.id, client.name)
        ticket = self._store.ticket(self._store.session(row.session_id).ticket_id)
        if approver.keys & identity_keys(ticket.requester):
            raise Forbidden(f"{approver.name} requested this ticket ({ticket.requester}) and cannot approve its "
                            "destructive step; another technician must decide")
        opener = self._opener(row, ticket.id)
        if opener is not None and approver.keys & self._person_keys(opener):
            raise Forbidden(f"{approver.name} opened this ticket (as {opener}) and cannot approve its destructive "
                            "step; another technician must decide")
        return approver

    def _approver(self, principal: Principal, claimed: str, client_id: str, client_name: str) -> Approver:
        if principal.kind == "tech":
            tech = self._techs.find(principal.email or "")
            if tech is None:
                raise Forbidden("you are no longer in the technician roster")
            if claimed.strip() and self._techs.find(claimed) != tech:
                raise Forbidden(f"you are logged in as {tech.name}; you cannot decide in someone else's name")
        else:
            if not self._techs.techs():
                if not principal.at_least("admin"):
                    raise Forbidden("only an admin may decide while the roster lists no technician")
                name = claimed.strip()
                if not name:
                    raise Conflict("an approval decision needs the approver's name while the roster lists no "
                                   "technician (`--as NAME`, or add technicians with `mspclaw tech add`)")
                return Approver(name, None, registered=False, keys=identity_keys(name))
            found = self._techs.find(claimed)
            if found is None:
                raise Forbidden(f"{claimed!r} is not a technician of the roster; approvals must be made by a "
                                "registered technician (`mspclaw tech list`)")
            tech = found
        if tech.role not in ("tech", "admin"):
            raise Forbidden(f"{tech.name} is a viewer; only technicians and admins approve destructive steps")
        if not tech.serves(client_id, client_name):
            raise Forbidden(f"{tech.name} does not serve {client_name}")
        return Approver(tech.name, tech.email, registered=True, keys=tech.identity_keys())

    def _opener(self, row: ApprovalRow, ticket_id: str) -> str | None:
        """Who opened the ticket (its ``ticket_opened`` event's actor); ``None`` if no event records it."""
        for session_id in dict.fromkeys([row.session_id, self._store.session_for(ticket_id).id]):
            opened = self._audit.query(session_id=session_id, kind="ticket_opened", limit=1)
            if opened:
                return opened[0].actor
        return None

    def _person_keys(self, actor: str) -> frozenset[str]:
        """The identities of the person behind an audit actor; none for a key, the PSA or the bootstrap key."""
        if actor.strip().lower() in _SERVICE_ACTORS or actor.startswith(_SERVICE_PREFIXES):
            return frozenset()
        keys = set(identity_keys(actor))
        for tech in self._techs.matching(actor):
            keys |= tech.identity_keys()
        return frozenset(keys)

    def second_approval(self, row: ApprovalRow, approver: Approver) -> Approver | None:
        """Apply the two-person rule to ``approver``'s approval of ``row``.

        Returns who decides: ``approver`` alone for a tool without the rule; ``None`` when this is the
        first of two approvals (the caller records it in the audit trail as ``FIRST_APPROVAL``; the
        request stays pending); both people when a different person approved first. The same person
        approving twice is :class:`Forbidden`.
        """
        if row.tool not in self.two_person_tools or row.status != "pending":
            return approver  # a decided row: the store refuses the decision with what it was
        firsts = [e for e in self._audit.query(session_id=row.session_id, kind=FIRST_APPROVAL)
                  if e.data.get("approval_id") == row.id]
        if not firsts:
            return None
        first = firsts[0].actor
        if approver.keys & identity_keys(first):
            raise Forbidden(f"{approver.name} already gave the first approval of {row.tool} (as {first}); "
                            "the two-person rule needs a second, different technician to approve")
        both = f"{first} + {approver.label()}"
        if len(both) > _LABEL_MAX:
            both = both[:_LABEL_MAX - 1] + "…"
        return Approver(both, None, registered=approver.registered, keys=approver.keys | identity_keys(first))
