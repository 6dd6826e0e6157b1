"""Changing who the technicians are, from the server: add, change and remove a technician of the roster,
and forget a second factor. Every change is audited with who made it.

The roster is edited exactly as ``mspclaw tech add|remove`` edit it (:class:`~mspclaw.pipeline.techs.TechRegistry`:
one locked transaction in the database; validated), and every reader on every replica picks the change up at
its next read (the roster's version is checked), so a narrowed role or client list applies at once.

An admin cannot remove themselves or change their own role or clients here (so the last admin cannot lock
everyone out); the CLI can.
"""

from __future__ import annotations

from typing import Any

from mspclaw.errors import Conflict, NotFound
from mspclaw.pipeline.techs import Tech, TechRegistry, tech_from
from mspclaw.store.audit import AuditLog
from mspclaw.store.console_logins import SecondFactors
from mspclaw.store.logins import Logins


def _summary(tech: Tech) -> dict[str, Any]:
    return {"email": tech.email, "name": tech.name, "role": tech.role, "clients": tech.clients}


class Roster:
    def __init__(self, techs: TechRegistry, logins: Logins, factors: SecondFactors, audit: AuditLog) -> None:
        self._techs, self._logins, self._factors, self._audit = techs, logins, factors, audit

    def get(self, ref: str) -> Tech:
        tech = self._techs.find(ref)
        if tech is None:
            raise NotFound(f"no technician {ref!r} in the roster")
        return tech

    def add(self, values: dict[str, Any], *, actor: str) -> Tech:
        """Add a technician (:class:`Conflict` naming each invalid field, or an e-mail already listed)."""
        tech = self._techs.add(tech_from(values))
        self._audit.append("tech_added", actor=actor, data=_summary(tech))
        return tech

    def change(self, email: str, values: dict[str, Any], *, actor: str, actor_email: str | None = None) -> Tech:
        """Change a technician's name, role, clients, shifts and chat ids; their e-mail and aliases stay."""
        old = self.get(email)
        own = actor_email is not None and old.email == actor_email.lower()
        if own and (values.get("role", old.role) != old.role or values.get("clients", old.clients) != old.clients):
            raise Conflict("you cannot change your own role or clients; ask another admin")
        merged = old.model_dump() | {k: v for k, v in values.items() if k not in ("email", "aliases")}
        tech = self._techs.replace(old.email, tech_from(merged))
        changed = sorted(k for k in merged if merged[k] != old.model_dump().get(k))
        self._audit.append("tech_changed", actor=actor, data=_summary(tech) | {"changed": changed})
        return tech

    def remove(self, email: str, *, actor: str, actor_email: str | None = None) -> Tech:
        """Remove a technician; their password, login tokens and second factor go too."""
        tech = self.get(email)
        if actor_email is not None and tech.email == actor_email.lower():
            raise Conflict("you cannot remove yourself; ask another admin")
        removed = self._techs.remove(tech.email)
        self._logins.remove(removed.email)
        self._factors.reset(removed.email)
        self._audit.append("tech_removed", actor=actor, data={"email": removed.email})
        return removed

    def reset_second_factor(self, email: str, *, actor: str) -> bool:
        """Forget a technician's console second factor (``mspclaw tech reset-2fa``); they enrol a new one at
        their next sign-in. False: they had none."""
        tech = self.get(email)
        had = self._factors.reset(tech.email)
        self._audit.append("tech_second_factor_reset", actor=actor, data={"email": tech.email, "had_one": had})
        return had

    def has_second_factor(self, email: str) -> bool:
        return self._factors.confirmed(email)
