"""Site tools: directory and account operations a client's site agent runs (AD, Microsoft 365).

They are described here so playbooks can name them and the server can route them to the
client's ``site`` agent (DESIGN section 3); the implementations belong to the enterprise
integrations of the site agent (``agent/tools/ad.py``, ``m365.py``), a later issue. Every tool
that changes an account is destructive, so it always waits for a technician's approval.

``reset_password`` never returns the temporary password: the site agent hands it to the user's
own device agent, which shows it to the user only; it is in no output, note or audit event.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mspclaw.tools.spec import OS, ToolSpec

_USER = r"^[A-Za-z0-9][A-Za-z0-9._'@-]{0,127}$"
_GROUP = r"^[A-Za-z0-9][A-Za-z0-9 ._&()-]{0,127}$"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserArgs(_Args):
    username: str = Field(pattern=_USER, description="sAMAccountName or user principal name (e-mail form).")


class CreateUserArgs(_Args):
    first_name: str = Field(pattern=r"^[^\x00-\x1f<>;|]{1,64}$")
    last_name: str = Field(pattern=r"^[^\x00-\x1f<>;|]{1,64}$")
    like_user: str | None = Field(None, pattern=_USER, description="Copy groups and licences from this user.")


class ShareArgs(_Args):
    username: str = Field(pattern=_USER)
    share: str = Field(pattern=r"^(\\\\|//)?[A-Za-z0-9][A-Za-z0-9 ._$:\\/-]{0,255}$",
                       description="Share path or name, e.g. \\\\fs01\\Finance or Finance.")


class GroupArgs(_Args):
    username: str = Field(pattern=_USER)
    group: str = Field(pattern=_GROUP, description="The directory group that grants the access.")


_ALL: frozenset[OS] = frozenset({"linux", "macos", "windows"})

SITE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("directory_user", "Look a user up in the directory: enabled, locked out, password age and "
             "expiry, MFA methods registered, groups.", UserArgs, _ALL, runs_on="site", timeout_s=20),
    ToolSpec("unlock_account", "Unlock a locked-out directory account.", UserArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=20),
    ToolSpec("reset_password", "Set a random temporary password that must be changed at next sign-in; it is "
             "shown to the user on their own device only and returned to nobody.", UserArgs, _ALL,
             runs_on="site", destructive=True, idempotent=False, timeout_s=30),
    ToolSpec("reset_mfa", "Remove the user's registered MFA methods and require them to register again at "
             "next sign-in; revokes their sign-in sessions.", UserArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("create_user", "Create a directory account for a new hire, copying groups and licences from a "
             "colleague in the same role.", CreateUserArgs, _ALL, runs_on="site", destructive=True,
             idempotent=False, timeout_s=60),
    ToolSpec("disable_user", "Disable a leaver's account, revoke sign-in sessions and hide them from the "
             "address list (nothing is deleted).", UserArgs, _ALL, runs_on="site", destructive=True,
             idempotent=True, timeout_s=60),
    ToolSpec("share_access", "Which groups grant access to a file share and whether the user is in one.",
             ShareArgs, _ALL, runs_on="site", timeout_s=30),
    ToolSpec("add_to_group", "Add a user to a directory group.", GroupArgs, _ALL, runs_on="site",
             destructive=True, idempotent=True, timeout_s=30),
)
