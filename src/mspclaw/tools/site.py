"""Site tools: account operations a client's site agent runs against its directories (AD, Entra ID).

The site agent (``mspclaw.agent.site``) implements them from the integrations configured on it and
decides per user which directory holds what (hybrid identity). Every tool that changes an account is
destructive, so it always waits for a technician's approval.

Who may ask for a change is checked by the site agent against the directory itself: ``requested_by``
and ``verified_by`` are set by the server from the ticket's verified requester, whatever a playbook
or a model put there, so ticket text can never aim a change at someone else's account.

``reset_password`` and ``reset_mfa`` never return the temporary password or access pass in their
output: it travels beside the result to the user alone (``protocol.frames.Secret``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mspclaw.tools.spec import OS, ToolSpec

_USER = r"^[A-Za-z0-9][A-Za-z0-9._'@-]{0,127}$"
_GROUP = r"^[A-Za-z0-9][A-Za-z0-9 ._&()-]{0,127}$"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


Verification = Literal["psa_contact", "device_confirmation"]


class UserArgs(_Args):
    username: str = Field(pattern=_USER, description="sAMAccountName or user principal name (e-mail form).")


class RequestedArgs(_Args):
    requested_by: str | None = Field(None, max_length=256, description="Set by the server: the ticket's verified "
                                     "requester. Any value given here is replaced.")
    verified_by: list[Verification] = Field(default_factory=list, max_length=4,
                                            description="Set by the server: how the requester was verified.")


class AccountArgs(UserArgs, RequestedArgs):
    pass


class CreateUserArgs(RequestedArgs):
    first_name: str = Field(pattern=r"^[^\x00-\x1f<>;|=,+\"\\#]{1,64}$")
    last_name: str = Field(pattern=r"^[^\x00-\x1f<>;|=,+\"\\#]{1,64}$")
    like_user: str | None = Field(None, pattern=_USER, description="Copy groups and licences from this user.")


class ShareArgs(_Args):
    username: str = Field(pattern=_USER)
    share: str = Field(pattern=r"^(\\\\|//)?[A-Za-z0-9][A-Za-z0-9 ._$:\\/-]{0,255}$",
                       description="Share path or name, e.g. \\\\fs01\\Finance or Finance.")


class GroupArgs(AccountArgs):
    group: str = Field(pattern=_GROUP, description="The directory group that grants the access.")


class LicenceArgs(AccountArgs):
    sku: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Licence SKU part number or skuId, e.g. SPE_E3.")


_ALL: frozenset[OS] = frozenset({"linux", "macos", "windows"})

SITE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("directory_user", "Look a user up in the client's directories (AD and/or Entra ID): enabled, locked "
             "out, password age and expiry, must-change flag, MFA methods, licences, groups, manager, which "
             "directory holds the password and why.", UserArgs, _ALL, runs_on="site", timeout_s=30),
    ToolSpec("unlock_account", "Unlock the requester's own locked-out directory account.", AccountArgs, _ALL,
             runs_on="site", destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("reset_password", "Set a random temporary password on the requester's own account that must be "
             "changed at next sign-in; it is shown to the user only and returned to nobody.", AccountArgs, _ALL,
             runs_on="site", destructive=True, idempotent=False, timeout_s=30, hands_over_secret=True),
    ToolSpec("reset_mfa", "Remove the requester's registered MFA methods, revoke their sign-in sessions and issue a "
             "Temporary Access Pass (shown to the user only) so they can register again.", AccountArgs, _ALL,
             runs_on="site", destructive=True, idempotent=False, timeout_s=60, hands_over_secret=True),
    ToolSpec("revoke_sessions", "Sign the user out everywhere (revoke refresh tokens and sessions).", AccountArgs,
             _ALL, runs_on="site", destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("create_user", "Create a directory account for a new hire, copying groups and licences from a "
             "colleague in the same role (never admin rights).", CreateUserArgs, _ALL, runs_on="site",
             destructive=True, idempotent=False, timeout_s=90),
    ToolSpec("disable_user", "Leaver: disable the account in every directory, move it to the leavers OU, revoke "
             "sign-in sessions and remove licences (nothing is deleted).", AccountArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=90),
    ToolSpec("enable_user", "Enable a disabled account again (AD and/or Entra sign-in).", AccountArgs, _ALL,
             runs_on="site", destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("share_access", "Which groups grant access to a file share and whether the user is in one.",
             ShareArgs, _ALL, runs_on="site", timeout_s=30),
    ToolSpec("add_to_group", "Add a user to a directory group.", GroupArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("remove_from_group", "Remove a user from a directory group.", GroupArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("assign_licence", "Assign a Microsoft 365 licence to a user.", LicenceArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("remove_licence", "Remove a Microsoft 365 licence from a user.", LicenceArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=30),
)

ACCOUNT_TOOLS: frozenset[str] = frozenset(spec.name for spec in SITE_TOOLS)
OWN_ACCOUNT_TOOLS: frozenset[str] = frozenset({"unlock_account", "reset_password", "reset_mfa"})
"""Tools the site agent runs only on the requester's own account (a leaver's or a new hire's are the others)."""
