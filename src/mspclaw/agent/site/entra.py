"""Entra ID / Microsoft 365 accounts through Microsoft Graph v1.0, app-only.

The site agent holds the app registration's secret or certificate; msal gets a client-credentials
token and httpx talks to Graph. Every Graph failure becomes one of the ``IntegrationError`` family
with what failed and what to do; calls that change several things report what changed and what
did not. Tokens and temporary passwords never appear in exception messages or logs.

Automation never changes an account that holds a directory role (:class:`PrivilegedAccount`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import ssl
import string
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msal
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.agent.site.config import EntraConfig, read_secret
from mspclaw.errors import (
    AccountNotFound,
    AmbiguousAccount,
    ConfigError,
    IntegrationAuthFailed,
    IntegrationError,
    IntegrationThrottled,
    IntegrationUnreachable,
    PrivilegedAccount,
)

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 5 * 1024 * 1024
MAX_PAGES = 20
MAX_RETRIES = 3
MAX_RETRY_WAIT_S = 30.0

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_USER_FIELDS = ("id,userPrincipalName,mail,displayName,accountEnabled,onPremisesSyncEnabled,"
                "onPremisesImmutableId,onPremisesSamAccountName,assignedLicenses")

# method type (the @odata.type without prefix and suffix) -> the navigation property that deletes it
_METHOD_PATHS: dict[str, str] = {
    "phone": "phoneMethods",
    "microsoftAuthenticator": "microsoftAuthenticatorMethods",
    "softwareOath": "softwareOathMethods",
    "fido2": "fido2Methods",
    "email": "emailMethods",
    "windowsHelloForBusiness": "windowsHelloForBusinessMethods",
    "temporaryAccessPass": "temporaryAccessPassMethods",
}

# application permission a call needs -> the permissions that grant it
_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "User.ReadWrite.All": ("User.ReadWrite.All", "Directory.ReadWrite.All"),
    "User-PasswordProfile.ReadWrite.All": ("User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All",
                                           "Directory.ReadWrite.All"),
    "UserAuthenticationMethod.ReadWrite.All": ("UserAuthenticationMethod.ReadWrite.All",),
    "GroupMember.ReadWrite.All": ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    "LicenseAssignment.ReadWrite.All": ("LicenseAssignment.ReadWrite.All", "User.ReadWrite.All",
                                        "Directory.ReadWrite.All"),
    "Directory.Read.All": ("Directory.Read.All", "Directory.ReadWrite.All"),
}
_TAP_DISABLED = ("Temporary Access Pass is disabled in this tenant's authentication methods policy; enable it "
                 "(Entra admin center > Protection > Authentication methods > Temporary Access Pass) for this "
                 "user, or reset the user's MFA and let them register again")


# --- Graph payloads -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _ErrorBody(_Model):
    code: str = "unknown"
    message: str = ""
    inner: dict[str, Any] | None = Field(None, alias="innerError")


class _GraphError(_Model):
    error: _ErrorBody


class _AssignedLicense(_Model):
    sku_id: str = Field(alias="skuId")


class _User(_Model):
    id: str
    upn: str = Field(alias="userPrincipalName")
    mail: str | None = None
    display_name: str | None = Field(None, alias="displayName")
    account_enabled: bool | None = Field(None, alias="accountEnabled")
    sync_enabled: bool | None = Field(None, alias="onPremisesSyncEnabled")
    immutable_id: str | None = Field(None, alias="onPremisesImmutableId")
    sam: str | None = Field(None, alias="onPremisesSamAccountName")
    licences: list[_AssignedLicense] = Field(default_factory=list, alias="assignedLicenses")


class _DirectoryObject(_Model):
    odata_type: str = Field("", alias="@odata.type")
    id: str
    display_name: str | None = Field(None, alias="displayName")
    group_types: list[str] = Field(default_factory=list, alias="groupTypes")
    role_assignable: bool | None = Field(None, alias="isAssignableToRole")

    @property
    def kind(self) -> str:
        return self.odata_type.removeprefix("#microsoft.graph.")


class _Method(_Model):
    odata_type: str = Field(alias="@odata.type")
    id: str

    @property
    def kind(self) -> str:
        return self.odata_type.removeprefix("#microsoft.graph.").removesuffix("AuthenticationMethod")


class _Sku(_Model):
    sku_id: str = Field(alias="skuId")
    part_number: str = Field("", alias="skuPartNumber")


class _Tap(_Model):
    temporary_access_pass: str = Field(alias="temporaryAccessPass")
    lifetime: int = Field(alias="lifetimeInMinutes")


class _Organization(_Model):
    id: str
    display_name: str | None = Field(None, alias="displayName")


class _Page(_Model):
    value: list[dict[str, Any]]
    next_link: str | None = Field(None, alias="@odata.nextLink")


@dataclass(frozen=True)
class _Reply:
    status: int
    body: dict[str, Any]
    retry_after: str | None = None

    @property
    def error(self) -> _ErrorBody:
        try:
            return _GraphError.model_validate(self.body).error
        except ValidationError:
            return _ErrorBody()


# --- the adapter ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntraUser:
    """An Entra ID account as the tools see it: identity, state, methods, licences, memberships."""

    id: str
    upn: str
    mail: str | None
    display_name: str | None
    account_enabled: bool
    on_premises_sync_enabled: bool
    on_premises_immutable_id: str | None
    on_premises_sam: str | None
    auth_methods: tuple[str, ...]
    licences: tuple[str, ...]
    groups: tuple[str, ...]
    directory_roles: tuple[str, ...]

    @property
    def privileged(self) -> bool:
        return bool(self.directory_roles)

    def public(self) -> dict[str, Any]:
        return {
            "found": True, "source": "entra", "id": self.id, "upn": self.upn, "mail": self.mail,
            "display_name": self.display_name, "enabled": self.account_enabled,
            "synced_from_ad": self.on_premises_sync_enabled,
            "mfa_methods": [m for m in self.auth_methods if m != "password"],
            "licences": list(self.licences), "groups": list(self.groups), "privileged": self.privileged,
        }


class EntraID:
    """Microsoft Graph for one tenant, with the app's secret or certificate from ``config``.

    ``http`` (an ``httpx.Client``), ``token_http`` (a ``requests.Session`` for msal) and ``sleep``
    are injected by tests; by default they are built from ``config``.
    """

    def __init__(self, config: EntraConfig, *, secret: str | None = None, http: httpx.Client | None = None,
                 token_http: Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._config = config
        self._base = config.graph_url.rstrip("/")
        origin = urlsplit(self._base)
        self._scope = f"{origin.scheme}://{origin.netloc}/.default"
        self._credential: str | dict[str, str] = secret if secret is not None else _credential(config)
        self._token_http = token_http
        self._app: Any = None
        self._sleep = sleep
        self._own_http = http is None
        self._http = http or httpx.Client(verify=ssl.create_default_context(cafile=config.ca_file),
                                          timeout=config.timeout_s, trust_env=False)
        self._token_claims: dict[str, Any] = {}

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # --- tools ------------------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Get a token and read the tenant: which of the permissions the tools need seem granted."""
        self._token()
        granted = sorted(str(r) for r in self._token_claims.get("roles", ()) if isinstance(r, str))
        org: _Organization | None = None
        reply = self._call("GET", "/organization", what="read the organization", need="Directory.Read.All",
                           params={"$select": "id,displayName"}, allow=(403,))
        if reply.status == 200:
            orgs = _Page.model_validate(reply.body).value
            org = _Organization.model_validate(orgs[0]) if orgs else None
        self._call("GET", "/users", what="read users", need="User.ReadWrite.All",
                   params={"$top": "1", "$select": "id"})
        missing = [need for need, grants in _PERMISSIONS.items() if not set(grants) & set(granted)]
        return {
            "ok": True, "tenant_id": self._config.tenant_id,
            "organization": org.display_name if org else None,
            "permissions": granted, "missing_permissions": missing if granted else None,
            "note": (None if granted else "the token lists no application permissions: grant and admin-consent "
                     + ", ".join(_PERMISSIONS)),
        }

    def find_user(self, identifier: str) -> EntraUser:
        """The one account whose UPN or mail (or object id, or mail nickname) is ``identifier``."""
        value = identifier.strip()
        if not value or len(value) > 320 or any(ord(c) < 32 for c in value):
            raise AccountNotFound(f"{identifier!r} is not a user principal name or e-mail address")
        select = {"$select": _USER_FIELDS}
        if _GUID.match(value):
            reply = self._call("GET", f"/users/{value}", what="look up a user", need="User.ReadWrite.All",
                               params=select, allow=(404,))
            if reply.status == 404:
                raise AccountNotFound(f"no Entra ID account has the object id {value}")
            found = [_User.model_validate(reply.body)]
        else:
            literal = "'" + value.replace("'", "''") + "'"
            query = (f"userPrincipalName eq {literal} or mail eq {literal}" if "@" in value
                     else f"mailNickname eq {literal}")
            found = [_User.model_validate(u) for u in
                     self._pages("/users", what="look up a user", need="User.ReadWrite.All",
                                 params={**select, "$filter": query})]
        if not found:
            raise AccountNotFound(f"no Entra ID account has the name or address {value!r}")
        if len(found) > 1:
            raise AmbiguousAccount(f"{len(found)} Entra ID accounts match {value!r} "
                                   f"({', '.join(u.upn for u in found[:5])}): name the account by its UPN")
        return self._load(found[0])

    def reset_password(self, user: EntraUser) -> str:
        """Set a random temporary password the user must change at next sign-in; returns it."""
        self._changeable(user)
        if user.on_premises_sync_enabled:
            raise IntegrationError(f"{user.upn} is synced from AD: reset in AD (Entra ID takes the password "
                                   "from the on-premises account)")
        password = _temp_password()
        self._call("PATCH", f"/users/{user.id}", what=f"reset the password of {user.upn}",
                   need="User-PasswordProfile.ReadWrite.All",
                   json={"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True}},
                   hide=(password,))
        log.info("entra: reset the password of %s (change at next sign-in)", user.id)
        return password

    def revoke_sessions(self, user: EntraUser) -> None:
        self._changeable(user)
        self._call("POST", f"/users/{user.id}/revokeSignInSessions", what=f"revoke the sessions of {user.upn}",
                   need="User.ReadWrite.All")
        log.info("entra: revoked the sign-in sessions of %s", user.id)

    def reset_mfa(self, user: EntraUser) -> tuple[str, ...]:
        """Delete every registered method but the password; returns the types removed."""
        self._changeable(user)
        methods = [m for m in self._methods(user.id) if m.kind != "password"]
        removed: list[str] = []
        pending = [m for m in methods if m.kind in _METHOD_PATHS]
        unknown = [m.kind for m in methods if m.kind not in _METHOD_PATHS]
        problems: dict[str, str] = {}
        stop = False
        for _pass in range(2):  # a default method may only go once the others are gone
            failed: list[_Method] = []
            for index, method in enumerate(pending):
                try:
                    self._call("DELETE", f"/users/{user.id}/authentication/{_METHOD_PATHS[method.kind]}/{method.id}",
                               what=f"remove the {method.kind} method of {user.upn}",
                               need="UserAuthenticationMethod.ReadWrite.All", allow=(404,))
                except IntegrationError as exc:
                    if type(exc) is not IntegrationError and not removed:
                        raise  # nothing changed: the specific error says it best
                    problems[method.id] = exc.message
                    failed.append(method)
                    if isinstance(exc, IntegrationAuthFailed | IntegrationUnreachable | IntegrationThrottled):
                        failed.extend(pending[index + 1:])
                        stop = True
                        break
                    continue
                removed.append(method.kind)
                problems.pop(method.id, None)
            pending = failed
            if not pending or stop:
                break
        log.info("entra: removed %d authentication methods of %s", len(removed), user.id)
        if pending or unknown:
            reasons = "; ".join(f"{m.kind}: {problems[m.id]}" for m in pending if m.id in problems)
            raise IntegrationError(
                f"could not remove every MFA method of {user.upn}"
                + (f" ({reasons})" if reasons else "")
                + (f"; types Graph cannot delete here: {', '.join(unknown)}" if unknown else ""),
                changed=tuple(f"removed {k}" for k in removed),
                unchanged=tuple(f"{m.kind} still registered" for m in pending) + tuple(unknown))
        return tuple(removed)

    def issue_tap(self, user: EntraUser) -> tuple[str, int]:
        """A Temporary Access Pass, usable several times for ``tap_lifetime_minutes``: (pass, minutes)."""
        self._changeable(user)
        lifetime = self._config.tap_lifetime_minutes
        reply = self._call("POST", f"/users/{user.id}/authentication/temporaryAccessPassMethods",
                           what=f"issue a Temporary Access Pass to {user.upn}",
                           need="UserAuthenticationMethod.ReadWrite.All",
                           json={"lifetimeInMinutes": lifetime, "isUsableOnce": False}, allow=(400, 403))
        if reply.status in (400, 403):
            err = reply.error
            text = f"{err.code} {err.message}".lower().replace(" ", "")
            if "usercredentialpolicy" in text or ("policy" in text and "temporaryaccesspass" in text):
                raise IntegrationError(f"{_TAP_DISABLED} (Graph: {err.message[:300]})")
            if reply.status == 403:
                raise self._denied(f"issue a Temporary Access Pass to {user.upn}",
                                   "UserAuthenticationMethod.ReadWrite.All", err)
            raise IntegrationError(f"Graph refused to issue a Temporary Access Pass to {user.upn}: "
                                   f"{err.code}: {err.message[:300]}")
        tap = _Tap.model_validate(reply.body)
        log.info("entra: issued a Temporary Access Pass to %s for %d minutes", user.id, tap.lifetime)
        return tap.temporary_access_pass, tap.lifetime

    def set_sign_in(self, user: EntraUser, enabled: bool) -> None:
        self._changeable(user)
        if user.on_premises_sync_enabled:
            raise IntegrationError(f"{user.upn} is synced from AD: {'enable' if enabled else 'disable'} the account "
                                   "in AD (Entra ID takes its state from the on-premises account)")
        self._call("PATCH", f"/users/{user.id}", what=f"{'allow' if enabled else 'block'} sign-in of {user.upn}",
                   need="User.ReadWrite.All", json={"accountEnabled": enabled})
        log.info("entra: sign-in of %s %s", user.id, "allowed" if enabled else "blocked")

    def assign_licence(self, user: EntraUser, sku: str) -> bool:
        """Assign a licence by skuId or part number (``SPE_E3``); False if the user already has it."""
        self._changeable(user)
        sku_id = self._sku(sku).sku_id
        if sku_id.lower() in {s.lower() for s in user.licences}:
            return False
        self._assign(user.id, user.upn, add=(sku_id,), remove=())
        log.info("entra: assigned licence %s to %s", sku_id, user.id)
        return True

    def remove_licences(self, user: EntraUser, skus: Sequence[str] | None = None) -> tuple[str, ...]:
        """Remove the given licences (all when ``None``) the user holds; returns the skuIds removed."""
        self._changeable(user)
        held = {s.lower(): s for s in user.licences}
        wanted = list(user.licences) if skus is None else [self._sku(s).sku_id for s in skus]
        remove = tuple(held[s.lower()] for s in wanted if s.lower() in held)
        if remove:
            self._assign(user.id, user.upn, add=(), remove=remove)
            log.info("entra: removed %d licences of %s", len(remove), user.id)
        return remove

    def add_to_group(self, user: EntraUser, group: str) -> bool:
        self._changeable(user)
        target = self._group(group)
        if target.display_name in user.groups or target.id in user.groups:
            return False
        reply = self._call("POST", f"/groups/{target.id}/members/$ref",
                           what=f"add {user.upn} to {target.display_name}", need="GroupMember.ReadWrite.All",
                           json={"@odata.id": f"{self._base}/directoryObjects/{user.id}"}, allow=(400,))
        if reply.status == 400:
            if "already exist" in reply.error.message:
                return False
            raise IntegrationError(f"Graph refused to add {user.upn} to {target.display_name}: "
                                   f"{reply.error.code}: {reply.error.message[:300]}")
        log.info("entra: added %s to group %s", user.id, target.id)
        return True

    def remove_from_group(self, user: EntraUser, group: str) -> bool:
        self._changeable(user)
        target = self._group(group)
        reply = self._call("DELETE", f"/groups/{target.id}/members/{user.id}/$ref",
                           what=f"remove {user.upn} from {target.display_name}", need="GroupMember.ReadWrite.All",
                           allow=(404,))
        if reply.status == 404:
            return False
        log.info("entra: removed %s from group %s", user.id, target.id)
        return True

    def create_user(self, first_name: str, last_name: str, *, domain: str,
                    like: EntraUser | None) -> tuple[EntraUser, str]:
        """A cloud-only account ``first.last@domain`` that must change its password at first sign-in,
        with ``like``'s licences and (assigned, non-role) groups; returns (user, temporary password)."""
        nickname = _nickname(first_name, last_name)
        if not nickname or not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain):
            raise IntegrationError(f"cannot make an account name from {first_name!r} {last_name!r} @ {domain!r}")
        upn = self._free_upn(nickname, domain)
        password = _temp_password()
        body = {
            "accountEnabled": True, "displayName": f"{first_name.strip()} {last_name.strip()}",
            "givenName": first_name.strip(), "surname": last_name.strip(),
            "mailNickname": upn.split("@")[0], "userPrincipalName": upn,
            "usageLocation": self._config.usage_location,
            "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True},
        }
        reply = self._call("POST", "/users", what=f"create {upn}", need="User.ReadWrite.All", json=body,
                           hide=(password,))
        created = _User.model_validate(reply.body)
        log.info("entra: created %s (%s)", created.id, upn)
        changed, unchanged, skipped = [f"created {upn}"], [], []
        if like is not None:
            if like.licences:
                try:
                    self._assign(created.id, upn, add=like.licences, remove=())
                    changed.append(f"licences {', '.join(like.licences)}")
                except IntegrationError as exc:
                    unchanged.append(f"licences {', '.join(like.licences)} ({exc.message})")
            for group in self._member_of(like.id):
                name = group.display_name or group.id
                if group.kind != "group":
                    continue
                if group.role_assignable or "DynamicMembership" in group.group_types:
                    skipped.append(name)  # role-assignable: privileged; dynamic: membership is computed
                    continue
                try:
                    self._call("POST", f"/groups/{group.id}/members/$ref", what=f"add {upn} to {name}",
                               need="GroupMember.ReadWrite.All",
                               json={"@odata.id": f"{self._base}/directoryObjects/{created.id}"})
                    changed.append(f"group {name}")
                except IntegrationError as exc:
                    unchanged.append(f"group {name} ({exc.message})")
            if unchanged:
                raise IntegrationError(f"created {upn} but could not copy everything from {like.upn}",
                                       changed=tuple(changed), unchanged=tuple(unchanged))
        if skipped:
            log.info("entra: did not copy %d role-assignable or dynamic groups to %s", len(skipped), created.id)
        reply = self._call("GET", f"/users/{created.id}", what=f"read {upn} back", need="User.ReadWrite.All",
                           params={"$select": _USER_FIELDS})
        return self._load(_User.model_validate(reply.body), methods=False), password

    def offboard(self, user: EntraUser) -> dict[str, Any]:
        """Block sign-in, revoke sessions, remove every licence; nothing is deleted."""
        self._changeable(user)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("sign-in blocked", lambda: self.set_sign_in(user, False)),
            ("sessions revoked", lambda: self.revoke_sessions(user)),
            ("licences removed", lambda: self.remove_licences(user)),
        ]
        done: dict[str, Any] = {"upn": user.upn, "deleted": False}
        changed: list[str] = []
        unchanged: list[str] = []
        for name, step in steps:
            try:
                result = step()
            except IntegrationError as exc:
                unchanged.append(f"{name.split()[0]} not {name.split()[1]} ({exc.message})")
                continue
            changed.append(name)
            done[name.replace(" ", "_").replace("-", "_")] = list(result) if isinstance(result, tuple) else True
        if unchanged:
            raise IntegrationError(f"offboarding {user.upn} did not finish", changed=tuple(changed),
                                   unchanged=tuple(unchanged))
        return done

    # --- lookups ----------------------------------------------------------------------------------

    def _load(self, found: _User, *, methods: bool = True) -> EntraUser:
        member_of = self._member_of(found.id)
        kinds = tuple(dict.fromkeys(m.kind for m in self._methods(found.id))) if methods else ("password",)
        return EntraUser(
            id=found.id, upn=found.upn, mail=found.mail, display_name=found.display_name,
            account_enabled=bool(found.account_enabled), on_premises_sync_enabled=bool(found.sync_enabled),
            on_premises_immutable_id=found.immutable_id, on_premises_sam=found.sam,
            auth_methods=kinds, licences=tuple(lic.sku_id for lic in found.licences),
            groups=tuple(o.display_name or o.id for o in member_of if o.kind == "group"),
            directory_roles=tuple(o.display_name or o.id for o in member_of if o.kind == "directoryRole"),
        )

    def _methods(self, user_id: str) -> list[_Method]:
        return [_Method.model_validate(m) for m in
                self._pages(f"/users/{user_id}/authentication/methods", what="read authentication methods",
                            need="UserAuthenticationMethod.ReadWrite.All")]

    def _member_of(self, user_id: str) -> list[_DirectoryObject]:
        return [_DirectoryObject.model_validate(o) for o in
                self._pages(f"/users/{user_id}/memberOf", what="read group and role memberships",
                            need="Directory.Read.All")]

    def _sku(self, sku: str) -> _Sku:
        skus = [_Sku.model_validate(s) for s in
                self._pages("/subscribedSkus", what="read the tenant's licences", need="Directory.Read.All")]
        match = [s for s in skus if sku.lower() in (s.sku_id.lower(), s.part_number.lower())]
        if not match:
            known = ", ".join(s.part_number for s in skus) or "none"
            raise IntegrationError(f"the tenant has no licence {sku!r} (it has: {known})")
        return match[0]

    def _group(self, group: str) -> _DirectoryObject:
        what = f"find group {group!r}"
        select = {"$select": "id,displayName,groupTypes,isAssignableToRole"}
        if _GUID.match(group):
            reply = self._call("GET", f"/groups/{group}", what=what, need="Directory.Read.All", params=select,
                               allow=(404,))
            found = [] if reply.status == 404 else [_DirectoryObject.model_validate(reply.body)]
        else:
            literal = "'" + group.replace("'", "''") + "'"
            found = [_DirectoryObject.model_validate(g) for g in
                     self._pages("/groups", what=what, need="Directory.Read.All",
                                 params={**select, "$filter": f"displayName eq {literal}"})]
        if not found:
            raise IntegrationError(f"no Entra ID group is named {group!r}")
        if len(found) > 1:
            raise AmbiguousAccount(f"{len(found)} Entra ID groups are named {group!r}: name it by its id")
        if found[0].role_assignable:
            raise PrivilegedAccount(f"group {group!r} can hold directory roles: automation does not change it")
        return found[0]

    def _free_upn(self, nickname: str, domain: str) -> str:
        for n in ("", *range(2, 10)):
            upn = f"{nickname}{n}@{domain}"
            reply = self._call("GET", f"/users/{quote(upn, safe='@')}", what=f"check whether {upn} exists",
                               need="User.ReadWrite.All", params={"$select": "id"}, allow=(404,))
            if reply.status == 404:
                return upn
        raise IntegrationError(f"{nickname}@{domain} and nine variants are taken: create the account by hand")

    def _assign(self, user_id: str, upn: str, *, add: Sequence[str], remove: Sequence[str]) -> None:
        self._call("POST", f"/users/{user_id}/assignLicense", what=f"change the licences of {upn}",
                   need="LicenseAssignment.ReadWrite.All",
                   json={"addLicenses": [{"skuId": s, "disabledPlans": []} for s in add],
                         "removeLicenses": list(remove)})

    @staticmethod
    def _changeable(user: EntraUser) -> None:
        if user.privileged:
            raise PrivilegedAccount(f"{user.upn} holds directory roles ({', '.join(user.directory_roles)}): "
                                    "automation does not change it; an administrator must")

    # --- transport --------------------------------------------------------------------------------

    def _token(self) -> str:
        try:
            if self._app is None:
                extra: dict[str, Any] = {"http_client": self._token_http} if self._token_http is not None else {
                    "verify": _verify(self._config), "timeout": self._config.timeout_s}
                self._app = msal.ConfidentialClientApplication(
                    self._config.client_id, client_credential=self._credential,
                    authority=f"{self._config.authority_host.rstrip('/')}/{self._config.tenant_id}",
                    instance_discovery=False, token_cache=msal.TokenCache(), **extra)
            result = self._app.acquire_token_for_client(scopes=[self._scope])
        except (OSError, ssl.SSLError) as exc:
            raise IntegrationUnreachable(f"cannot reach the Entra ID token endpoint "
                                         f"{self._config.authority_host}: {type(exc).__name__}") from exc
        except ValueError as exc:  # msal: discovery failed (unknown tenant, bad authority, bad key)
            raise IntegrationAuthFailed(f"Entra ID did not accept tenant {self._config.tenant_id} or the app's "
                                        f"credential: {str(exc)[:300]}") from exc
        if not isinstance(result, dict) or "access_token" not in result:
            error = result.get("error", "no_token") if isinstance(result, dict) else "no_token"
            description = str(result.get("error_description", "")) if isinstance(result, dict) else ""
            first = description.splitlines()[0][:300] if description else "no detail"
            hint = ("the app's secret/certificate was refused or expired: renew it in the app registration"
                    if error == "invalid_client" else "check tenant_id, client_id and the app registration")
            raise IntegrationAuthFailed(f"Entra ID refused the app {self._config.client_id} ({error}: {first}); {hint}")
        token = str(result["access_token"])
        self._token_claims = _claims(token)
        return token

    def _pages(self, path: str, *, what: str, need: str, params: dict[str, str] | None = None
               ) -> Iterator[dict[str, Any]]:
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                return
            reply = self._call("GET", url, what=what, need=need, params=params if url == path else None)
            page = _Page.model_validate(reply.body)
            yield from page.value
            url = page.next_link
            if url is not None and not url.startswith(self._base + "/"):
                raise IntegrationError(f"Graph sent a next page outside {self._base} while trying to {what}")
        if url is not None:
            raise IntegrationError(f"more than {MAX_PAGES} pages of results while trying to {what}: narrow it")

    def _call(self, method: str, path: str, *, what: str, need: str, json: Any = None,
              params: dict[str, str] | None = None, allow: tuple[int, ...] = (), hide: tuple[str, ...] = ()
              ) -> _Reply:
        url = path if path.startswith("https://") else self._base + path
        waited = 0.0
        for attempt in range(MAX_RETRIES + 1):
            token = self._token()
            try:
                reply = self._send(method, url, token, json, params)
            except httpx.TransportError as exc:
                raise IntegrationUnreachable(f"cannot reach Microsoft Graph at {self._base} to {what}: "
                                             f"{type(exc).__name__}") from exc
            status = reply.status
            if status < 300 or status in allow:
                return reply
            retryable = status in (429, 503, 504) or (status >= 500 and method != "POST")
            if retryable and attempt < MAX_RETRIES:
                delay = min(_retry_delay(reply, attempt), MAX_RETRY_WAIT_S - waited)
                if delay >= 0:
                    log.warning("entra: Graph answered %d to %s %s; retrying in %.1f s", status, method,
                                urlsplit(url).path, delay)
                    self._sleep(delay)
                    waited += delay
                    continue
            raise self._failure(reply, what, need, hide)
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, token: str, body: Any, params: dict[str, str] | None) -> _Reply:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        with self._http.stream(method, url, headers=headers, json=body, params=params) as response:
            size, chunks = 0, []
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise IntegrationError(f"Graph's answer to {method} {urlsplit(url).path} is over 5 MB: refused")
                chunks.append(chunk)
            retry_after = response.headers.get("Retry-After")
        raw = b"".join(chunks)
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            data = {}
        return _Reply(response.status_code, data if isinstance(data, dict) else {}, retry_after)

    def _failure(self, reply: _Reply, what: str, need: str, hide: tuple[str, ...]) -> IntegrationError:
        err = reply.error
        message = err.message[:300]
        for secret in hide:
            message = message.replace(secret, "***")
        status = reply.status
        if status == 401:
            return IntegrationAuthFailed(f"Graph refused the app's token while trying to {what}: the app's "
                                         f"secret/certificate was refused or expired: {err.code}: {message}")
        if status == 403:
            return self._denied(what, need, err, message)
        if status == 404:
            return AccountNotFound(f"Graph could not find it while trying to {what}: {message}")
        if status == 429 or status in (503, 504):
            return IntegrationThrottled(f"Microsoft Graph kept throttling ({status}) while trying to {what}; "
                                        "try again in a few minutes")
        if status >= 500:
            return IntegrationUnreachable(f"Microsoft Graph failed ({status} {err.code}) while trying to {what}; "
                                          "try again later")
        return IntegrationError(f"Graph refused to {what}: {err.code}: {message}")

    @staticmethod
    def _denied(what: str, need: str, err: _ErrorBody, message: str | None = None) -> IntegrationAuthFailed:
        extra = (" and the app needs an Entra role that may reset passwords (Helpdesk, Password or User "
                 "Administrator)" if "Password" in need else "")
        return IntegrationAuthFailed(
            f"Graph denied the app permission to {what} ({err.code}): grant the application permission {need} "
            f"with admin consent{extra}: {message if message is not None else err.message[:300]}")


# --- small pure functions -------------------------------------------------------------------------


def _retry_delay(reply: _Reply, attempt: int) -> float:
    """Seconds to wait before retrying: Graph's Retry-After, else 1, 2, 4 s."""
    try:
        return max(0.0, float(reply.retry_after)) if reply.retry_after is not None else float(2 ** attempt)
    except ValueError:
        return float(2 ** attempt)


def _verify(config: EntraConfig) -> str | bool:
    return str(config.ca_file) if config.ca_file else True


def _credential(config: EntraConfig) -> str | dict[str, str]:
    if config.certificate_file is not None:
        pem = read_secret(config.certificate_file, "Entra certificate")
        cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
        key = re.search(r"-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----.+?-----END \1?PRIVATE KEY-----", pem, re.S)
        if cert is None or key is None:
            raise ConfigError(f"Entra certificate: {config.certificate_file} must hold the app's certificate and "
                              "its private key, both PEM")
        der = ssl.PEM_cert_to_DER_cert(cert.group(0))
        return {"private_key": key.group(0), "thumbprint": hashlib.sha1(der, usedforsecurity=False).hexdigest()}
    if config.client_secret_file is not None:
        return read_secret(config.client_secret_file, "Entra client secret")
    raise ConfigError("the entra integration has neither client_secret_file nor certificate_file: "
                      "run `mspclaw site add entra` again with one of them")


def _claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT access token, for reporting granted roles; {} if opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _temp_password(length: int = 16) -> str:
    """Random, meets Entra's complexity rules (three of four classes; here all four)."""
    alphabet = string.ascii_letters + string.digits + "!#$%*+-=?@"
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if (any(c.islower() for c in password) and any(c.isupper() for c in password)
                and any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)):
            return password


def _nickname(first: str, last: str) -> str:
    def ascii_part(text: str) -> str:
        folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return re.sub(r"[^a-z0-9-]", "", folded.lower())

    parts = [p for p in (ascii_part(first), ascii_part(last)) if p]
    return ".".join(parts)[:64]
