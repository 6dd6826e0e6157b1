"""Hybrid identity: which directory holds a user's password, lockout, sessions and MFA, decided per user.

The site agent may know an Active Directory domain, an Entra ID tenant, or both. For each user it
looks in both and decides from the directories' own data (DESIGN section 3):

* a user **synced from AD** (Entra says ``onPremisesSyncEnabled``, and its immutable id or
  sAMAccountName matches the AD account) has password and lockout handled in AD, sessions, MFA
  and licences in Entra;
* a **cloud-only** user (in Entra, not synced) is handled in Entra for everything;
* an **AD-only** user (no tenant configured, or not in it) in AD;
* a **leaver** is disabled in both.

Every account tool says which directory it used and why (``authority``). Before a change it checks,
against the directory itself, that the verified requester may ask for it: their own account for
unlock, password and MFA; the leaver's manager for a leaver; themselves or their manager for
access. Privileged accounts (AD ``adminCount=1`` or a protected group, an Entra directory role) are
never changed by automation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mspclaw.agent.site.ad import ActiveDirectory, ADUser
from mspclaw.agent.site.config import VerificationPolicy
from mspclaw.agent.site.entra import EntraID, EntraUser
from mspclaw.agent.tools import JsonObject, ToolContext, ToolFn, WithSecret, bind
from mspclaw.errors import AccountNotFound, IntegrationError, NotRequesters, PrivilegedAccount
from mspclaw.protocol.frames import Secret
from mspclaw.tools.site import AccountArgs, CreateUserArgs, GroupArgs, LicenceArgs, RequestedArgs, ShareArgs, UserArgs

log = logging.getLogger(__name__)

Who = Literal["self", "manager", "self_or_manager"]


@dataclass(frozen=True)
class Account:
    """One person as the site's directories know them."""

    name: str
    ad: ADUser | None
    entra: EntraUser | None

    @property
    def synced(self) -> bool:
        return self.entra is not None and self.entra.on_premises_sync_enabled

    @property
    def password_authority(self) -> Literal["ad", "entra"]:
        return "ad" if self.ad is not None else "entra"

    @property
    def privileged(self) -> bool:
        return bool((self.ad and self.ad.privileged) or (self.entra and self.entra.privileged))

    def label(self) -> str:
        if self.ad is not None:
            return self.ad.upn or self.ad.sam
        assert self.entra is not None
        return self.entra.upn

    def addresses(self) -> set[str]:
        """Every name this person is known by, lower-cased: how a requester's e-mail is matched."""
        names: set[str] = set()
        if self.ad is not None:
            names.update(n.lower() for n in (self.ad.sam, self.ad.upn, self.ad.mail) if n)
        if self.entra is not None:
            names.update(n.lower() for n in (self.entra.upn, self.entra.mail, self.entra.on_premises_sam) if n)
        return names

    def why(self) -> str:
        if self.ad is not None and self.synced:
            return "synced from on-premises AD: password and lockout in AD, sessions, MFA and licences in Entra ID"
        if self.ad is not None and self.entra is None:
            return "found in Active Directory only: everything is handled in AD"
        if self.ad is not None:
            return ("in AD and in Entra ID, but the Entra account is not synced from it: password in AD, "
                    "sessions and MFA in Entra")
        return "cloud-only Entra ID account: everything is handled in Entra ID"


class Identity:
    """The account tools over whichever directories this site has. Thread-safe: one change at a time."""

    def __init__(self, ad: ActiveDirectory | None, entra: EntraID | None,
                 policy: VerificationPolicy = VerificationPolicy(), *, leavers_ou: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if ad is None and entra is None:
            raise ValueError("Identity needs Active Directory, Entra ID, or both")
        self._ad, self._entra, self._policy, self._clock = ad, entra, policy, clock
        self._leavers_ou = leavers_ou
        self._lock = threading.Lock()

    # -- looking people up -------------------------------------------------------------------
    def find(self, name: str) -> Account:
        """The account named ``name`` in every configured directory; :class:`AccountNotFound` if in none."""
        ad = self._find_ad(name)
        entra = self._find_entra(name)
        if entra is None and ad is not None and self._entra is not None:
            for alias in (ad.upn, ad.mail):  # the cloud account of a synced user carries the UPN or mail
                if alias and alias.lower() != name.lower() and (entra := self._find_entra(alias)) is not None:
                    break
        if ad is None and entra is not None and self._ad is not None and entra.on_premises_sam:
            ad = self._find_ad(entra.on_premises_sam)
        if ad is None and entra is None:
            where = " or ".join(d for d, on in (("Active Directory", self._ad), ("Entra ID", self._entra)) if on)
            raise AccountNotFound(f"no account {name!r} in {where}; check the spelling, or the requester's "
                                  "e-mail address in the PSA")
        return Account(name, ad, entra)

    def _find_ad(self, name: str) -> ADUser | None:
        if self._ad is None:
            return None
        try:
            return self._ad.find_user(name)
        except AccountNotFound:
            return None

    def _find_entra(self, name: str) -> EntraUser | None:
        if self._entra is None:
            return None
        try:
            return self._entra.find_user(name)
        except AccountNotFound:
            return None

    def lookup(self, name: str) -> JsonObject:
        try:
            account = self.find(name)
        except AccountNotFound as exc:
            return {"found": False, "username": name, "reason": exc.message}
        return _summary(account)

    # -- who may ask ---------------------------------------------------------------------------
    def _authorise(self, target: Account, args: RequestedArgs, who: Who, what: str) -> JsonObject:
        """Raise unless the verified requester may ask for ``what`` on ``target``; returns how it was verified."""
        if target.privileged:
            raise PrivilegedAccount(f"{target.label()} is a privileged account (administrator rights or a "
                                    f"protected group); automation never changes it: {what} must be done by a "
                                    "technician after verifying the request by phone")
        requester = (args.requested_by or "").strip().lower()
        if not requester:
            raise NotRequesters(f"{what}: the ticket has no verified requester, so nothing is changed; a technician "
                                "must confirm who asked")
        is_self = requester in target.addresses()
        is_manager = self._is_manager(requester, target)
        allowed = {"self": is_self, "manager": is_manager, "self_or_manager": is_self or is_manager}[who]
        if not allowed:
            need = {"self": "their own account", "manager": "the account of someone they manage",
                    "self_or_manager": "their own account or that of someone they manage"}[who]
            raise NotRequesters(f"{what}: the requester {requester} may only ask for this on {need}, and "
                                f"{target.label()} is not; nothing was changed. Escalated for a technician to "
                                "verify the request by phone")
        factors = sorted(set(args.verified_by) | {"psa_contact"})
        if self._policy.require_second_factor and "device_confirmation" not in factors:
            raise NotRequesters(f"{what}: this client requires a second factor (a confirmation on the requester's "
                                "own device) and none could be checked; nothing was changed")
        return {"requester": requester, "relationship": "self" if is_self else "manager", "verified_by": factors}

    def _is_manager(self, requester: str, target: Account) -> bool:
        manager = target.ad.manager if target.ad is not None else None
        if not manager:
            return False
        if manager.lower() == requester:
            return True
        try:
            return requester in self.find(manager).addresses()
        except AccountNotFound:
            return False

    # -- the tools ------------------------------------------------------------------------------
    def unlock(self, args: AccountArgs) -> JsonObject:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "self", "unlock")
            if account.ad is not None:
                self._require_ad().unlock(account.ad)
                after = self.find(args.username)
                return {**_summary(after), "unlocked": True, "directory": "ad", "verification": verified}
            raise IntegrationError(f"{account.label()} is a cloud-only account: Entra ID smart lockout ends by "
                                   "itself after its lockout period and cannot be cleared by an administrator; "
                                   "tell the user to wait 1-5 minutes, or reset the password")

    def reset_password(self, args: AccountArgs) -> WithSecret:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "self", "password reset")
            if account.ad is not None:
                password = self._require_ad().reset_password(account.ad)
                directory = "ad"
            else:
                assert account.entra is not None
                password = self._require_entra().reset_password(account.entra)
                directory = "entra"
            revoked = self._revoke_quietly(account)
            after = self.find(args.username)
            output = {**_summary(after), "reset": True, "directory": directory, "sessions_revoked": revoked,
                      "must_change_at_logon": directory == "entra" or after.ad is None
                      or after.ad.must_change_password, "verification": verified}
            return WithSecret(output, Secret(type="temporary_password", account=account.label(), value=password,
                                             must_change=True))

    def reset_mfa(self, args: AccountArgs) -> WithSecret:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "self", "MFA reset")
            entra = self._require_entra()
            if account.entra is None:
                raise AccountNotFound(f"{account.label()} has no Entra ID account, and MFA is registered there; "
                                      "check the user's cloud account")
            removed = entra.reset_mfa(account.entra)
            changed = [f"removed {', '.join(removed) or 'no'} MFA methods"]
            try:
                entra.revoke_sessions(account.entra)
                changed.append("revoked sign-in sessions")
                tap, minutes = entra.issue_tap(account.entra)
            except IntegrationError as exc:
                raise IntegrationError(exc.message, changed=tuple(changed),
                                       unchanged=("Temporary Access Pass not issued",)) from exc
            output = {**_summary(self.find(args.username)), "reset": True, "removed_methods": list(removed),
                      "sessions_revoked": True, "access_pass_minutes": minutes, "directory": "entra",
                      "verification": verified}
            return WithSecret(output, Secret(type="temporary_access_pass", account=account.label(), value=tap,
                                             expires_at=self._clock() + minutes * 60, must_change=False))

    def revoke(self, args: AccountArgs) -> JsonObject:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "self_or_manager", "sign-out everywhere")
            if account.entra is None:
                raise IntegrationError(f"{account.label()} has no Entra ID account: there are no cloud sessions to "
                                       "revoke; on-premises sessions end when the password changes")
            self._require_entra().revoke_sessions(account.entra)
            return {**_summary(account), "sessions_revoked": True, "directory": "entra", "verification": verified}

    def disable(self, args: AccountArgs) -> JsonObject:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "manager", "leaver offboarding")
            changed: list[str] = []
            unchanged = ["AD account disabled", "moved to the leavers OU", "Entra sign-in blocked",
                         "sessions revoked", "licences removed"]
            try:
                if account.ad is not None:
                    ad = self._require_ad()
                    ad.set_enabled(account.ad, False)
                    changed.append(unchanged.pop(0))
                    if self._leavers_ou:
                        ad.move_to(account.ad, self._leavers_ou)
                        changed.append(unchanged.pop(0))
                    else:
                        unchanged.pop(0)
                else:
                    del unchanged[:2]
                if account.entra is not None and account.synced:
                    # sign-in follows the AD account at the next sync; sessions and licences are cloud-side
                    entra = self._require_entra()
                    unchanged.pop(0)
                    entra.revoke_sessions(account.entra)
                    changed.append(unchanged.pop(0))
                    removed = entra.remove_licences(account.entra)
                    changed.append(f"licences removed ({len(removed)})")
                    unchanged = []
                elif account.entra is not None:
                    done = self._require_entra().offboard(account.entra)
                    changed.extend(f"Entra: {key.replace('_', ' ')}" for key, value in done.items()
                                   if key not in ("upn", "deleted") and value)
                    unchanged = []
                else:
                    unchanged = []
            except IntegrationError as exc:
                raise IntegrationError(f"offboarding {account.label()} stopped: {exc.message}",
                                       changed=(*changed, *exc.changed), unchanged=tuple(unchanged)) from exc
            after = self.find(args.username)
            return {**_summary(after), "disabled": True, "changed": changed, "verification": verified,
                    "deleted": "nothing"}

    def enable(self, args: AccountArgs) -> JsonObject:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "manager", "enabling an account")
            if account.ad is not None:
                self._require_ad().set_enabled(account.ad, True)
            if account.entra is not None and not account.synced:
                self._require_entra().set_sign_in(account.entra, True)
            return {**_summary(self.find(args.username)), "enabled_again": True, "verification": verified}

    def create(self, args: CreateUserArgs) -> JsonObject:
        """A new hire's account, like a colleague's. The requester must be that colleague's manager. The
        first password is random and known to nobody: the technician sets it with the new hire on day one."""
        with self._lock:
            if not args.like_user:
                raise IntegrationError("a new account copies the access of a colleague in the same role: name one "
                                       "(like_user)")
            like = self.find(args.like_user)
            verified = self._authorise(like, args, "manager", "creating an account like this colleague's")
            if self._ad is not None and like.ad is not None:
                user, _password = self._ad.create_user(args.first_name, args.last_name, like=like.ad)
                licences = list(like.entra.licences) if like.entra is not None else []
                return {"created": True, "username": user.upn or user.sam, "sam": user.sam, "directory": "ad",
                        "groups": list(user.groups), "licences_pending_sync": licences,
                        "why": "created in Active Directory like its colleague; Entra ID gets it at the next sync, "
                               "then its licences are assigned", "first_password": "random, known to nobody",
                        "verification": verified, "enabled": user.enabled}
            entra = self._require_entra()
            if like.entra is None:
                raise AccountNotFound(f"{like.label()} has no Entra ID account to copy")
            domain = like.entra.upn.rpartition("@")[2]
            new, _password = entra.create_user(args.first_name, args.last_name, domain=domain, like=like.entra)
            return {"created": True, "username": new.upn, "directory": "entra", "groups": list(new.groups),
                    "licences": list(new.licences), "why": "cloud-only tenant: created in Entra ID like its colleague",
                    "first_password": "random, known to nobody", "verification": verified,
                    "enabled": new.account_enabled}

    def share_access(self, args: ShareArgs) -> JsonObject:
        account = self.find(args.username)
        ad = self._require_ad()
        groups = ad.groups_for_share(args.share)
        member = sorted(set(groups) & set(account.ad.groups if account.ad else ()))
        return {"username": account.label(), "share": args.share, "groups": list(groups),
                "has_access": bool(member), "through": member,
                "known_share": bool(groups),
                "source": "the share-to-group mapping kept in this site's configuration"}

    def add_to_group(self, args: GroupArgs) -> JsonObject:
        return self._membership(args, add=True)

    def remove_from_group(self, args: GroupArgs) -> JsonObject:
        return self._membership(args, add=False)

    def _membership(self, args: GroupArgs, *, add: bool) -> JsonObject:
        """A group change in the directory that holds the user: AD when they are in it, else Entra ID."""
        what = f"{'adding to' if add else 'removing from'} group {args.group}"
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "self_or_manager", what)
            if account.ad is not None:
                ad = self._require_ad()
                changed = (ad.add_to_group if add else ad.remove_from_group)(account.ad, args.group)
                directory = "ad"
            else:
                assert account.entra is not None
                entra = self._require_entra()
                changed = (entra.add_to_group if add else entra.remove_from_group)(account.entra, args.group)
                directory = "entra"
            return {"username": account.label(), "group": args.group, "added" if add else "removed": changed,
                    "member": add, "directory": directory, "verification": verified}

    def assign_licence(self, args: LicenceArgs) -> JsonObject:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "manager", f"assigning licence {args.sku}")
            if account.entra is None:
                raise AccountNotFound(f"{account.label()} has no Entra ID account yet (a new AD account appears "
                                      "after the next directory sync); try again later")
            changed = self._require_entra().assign_licence(account.entra, args.sku)
            return {"username": account.label(), "sku": args.sku, "assigned": changed, "verification": verified}

    def remove_licence(self, args: LicenceArgs) -> JsonObject:
        with self._lock:
            account = self.find(args.username)
            verified = self._authorise(account, args, "manager", f"removing licence {args.sku}")
            if account.entra is None:
                raise AccountNotFound(f"{account.label()} has no Entra ID account")
            removed = self._require_entra().remove_licences(account.entra, [args.sku])
            return {"username": account.label(), "sku": args.sku, "removed": bool(removed),
                    "verification": verified}

    # -- plumbing -------------------------------------------------------------------------------
    def _revoke_quietly(self, account: Account) -> bool:
        """After a password reset: sign the user out of cloud sessions too (best effort, reported)."""
        if account.entra is None or self._entra is None:
            return False
        try:
            self._entra.revoke_sessions(account.entra)
        except IntegrationError as exc:
            log.warning("password reset done, but revoking %s's sessions failed: %s", account.label(), exc.message)
            return False
        return True

    def _require_ad(self) -> ActiveDirectory:
        if self._ad is None:
            raise IntegrationError("this site has no Active Directory configured; add it with "
                                   "`mspclaw site add ad ...` on the site agent")
        return self._ad

    def _require_entra(self) -> EntraID:
        if self._entra is None:
            raise IntegrationError("this site has no Entra ID tenant configured; add it with "
                                   "`mspclaw site add entra ...` on the site agent")
        return self._entra

    def close(self) -> None:
        for directory in (self._ad, self._entra):
            if directory is not None:
                directory.close()

    def tools(self) -> dict[str, ToolFn]:
        """The account tools this site can perform, by catalogue name."""

        def lookup(args: UserArgs, _: ToolContext) -> JsonObject:
            return self.lookup(args.username)

        def wrap(fn: Callable[[Any], JsonObject | WithSecret]) -> Callable[[Any, ToolContext], JsonObject | WithSecret]:
            return lambda args, _context: fn(args)

        table: dict[str, ToolFn] = {
            "directory_user": bind(UserArgs, lookup),
            "disable_user": bind(AccountArgs, wrap(self.disable)),
            "enable_user": bind(AccountArgs, wrap(self.enable)),
            "create_user": bind(CreateUserArgs, wrap(self.create)),
            "add_to_group": bind(GroupArgs, wrap(self.add_to_group)),
            "remove_from_group": bind(GroupArgs, wrap(self.remove_from_group)),
            "reset_password": bind(AccountArgs, wrap(self.reset_password)),
        }
        if self._ad is not None:
            table["unlock_account"] = bind(AccountArgs, wrap(self.unlock))
            table["share_access"] = bind(ShareArgs, wrap(self.share_access))
        if self._entra is not None:
            table["reset_mfa"] = bind(AccountArgs, wrap(self.reset_mfa))
            table["revoke_sessions"] = bind(AccountArgs, wrap(self.revoke))
            table["assign_licence"] = bind(LicenceArgs, wrap(self.assign_licence))
            table["remove_licence"] = bind(LicenceArgs, wrap(self.remove_licence))
        return table


def _summary(account: Account) -> JsonObject:
    """What ``directory_user`` reports: one merged view, with where each part comes from."""
    ad, entra = account.ad, account.entra
    enabled = (ad.enabled if ad is not None else True) and (entra.account_enabled if entra is not None else True)
    out: JsonObject = {
        "found": True, "username": account.label(),
        "enabled": enabled,
        "locked_out": bool(ad and ad.locked_out),
        "password_expired": bool(ad and ad.password_expired),
        "must_change_password": bool(ad and ad.must_change_password),
        "privileged": account.privileged,
        "authority": {"password": account.password_authority,
                      "sessions_and_mfa": "entra" if entra is not None else "ad", "why": account.why()},
        "sources": [s for s, present in (("ad", ad), ("entra", entra)) if present is not None],
    }
    if ad is not None:
        out["ad"] = ad.public()
        out["groups"] = list(ad.groups)
        out["manager"] = ad.manager
    if entra is not None:
        out["entra"] = entra.public()
        out["mfa_methods"] = [m for m in entra.auth_methods if m != "password"]
        out["licences"] = list(entra.licences)
        out.setdefault("groups", list(entra.groups))
    return out
