"""Active Directory over LDAP (ldap3): find, unlock, reset, enable/disable, move, create, group changes.

Every connection is encrypted before the service account binds: ``ldaps://`` verifies the DC's
certificate against ``ca_file`` (or the system store) and ``tls_name``; ``ldap://`` must accept
StartTLS first, and is refused otherwise, so no password ever crosses the wire in clear text.
ldap3's exceptions are translated here into the :class:`~mspclaw.errors.IntegrationError` family,
and LDAP entries are parsed into :class:`ADUser` and :class:`PasswordPolicy` in this file only.

Accounts that are privileged (``adminCount=1``, a protected group directly or nested, or a
privileged primary group) and protected groups are never changed.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import re
import secrets
import ssl
import threading
import time
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

with warnings.catch_warnings():  # ldap3 2.9.1 touches pyasn1's deprecated tagMap/typeMap on import
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from ldap3 import (
        BASE,
        MODIFY_ADD,
        MODIFY_DELETE,
        MODIFY_REPLACE,
        NONE,
        SIMPLE,
        SUBTREE,
        SYNC,
        Connection,
        Server,
        Tls,
    )
    from ldap3.core import exceptions as lx
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn, parse_dn, to_dn

from mspclaw.agent.site.config import ADConfig, read_secret
from mspclaw.errors import (
    AccountNotFound,
    AmbiguousAccount,
    IntegrationAuthFailed,
    IntegrationError,
    IntegrationUnreachable,
    PrivilegedAccount,
)

log = logging.getLogger(__name__)

MAX_IDENTIFIER = 256
SEARCH_LIMIT = 10
IDLE_RECONNECT_S = 120.0
IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN: nested membership
UF_ACCOUNTDISABLE = 0x2
UF_LOCKOUT = 0x10
UF_PASSWORD_EXPIRED = 0x800000
NEVER = 0x7FFFFFFFFFFFFFFF
PRIVILEGED_PRIMARY_GROUPS = frozenset({512, 516, 518, 519, 521})  # Domain/Schema/Enterprise Admins, DCs, RODCs
USER_CLASS = "(objectCategory=person)(objectClass=user)"
USER_ATTRS = (
    "sAMAccountName", "userPrincipalName", "mail", "displayName", "userAccountControl",
    "msDS-User-Account-Control-Computed", "lockoutTime", "badPwdCount", "pwdLastSet",
    "msDS-UserPasswordExpiryTimeComputed", "memberOf", "manager", "adminCount", "objectGUID", "primaryGroupID",
)
AD_DATA_CODES = {
    "525": "the account does not exist", "52e": "the password is wrong", "530": "logon not permitted at this time",
    "531": "logon not permitted from this workstation", "532": "the password has expired",
    "533": "the account is disabled", "701": "the account has expired",
    "773": "the password must be changed", "775": "the account is locked out",
}

# Temporary passwords: four classes, no look-alikes (O 0 I l 1), nothing that needs quoting.
_UPPER, _LOWER, _DIGITS, _SYMBOLS = "ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!#%+-=?@_"
_FOLD = str.maketrans({"ß": "ss", "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ł": "l",
                       "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "þ": "th", "Þ": "th", "ı": "i"})


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int
    complexity: bool
    history: int
    max_age_days: int | None
    lockout_threshold: int


@dataclass(frozen=True)
class ADUser:
    dn: str
    sam: str
    upn: str | None
    mail: str | None
    display_name: str | None
    enabled: bool
    locked_out: bool
    bad_password_count: int
    password_last_set: str | None
    """ISO 8601 UTC; None if never set or the user must change it."""
    password_expires: str | None
    """ISO 8601 UTC; None when it never expires (or must be changed now)."""
    password_expired: bool
    """Expired by age (``must_change_password`` covers an administrator's reset)."""
    must_change_password: bool
    groups: tuple[str, ...]
    """CNs of the groups the account is a direct member of."""
    manager: str | None
    """The manager's sAMAccountName."""
    privileged: bool
    immutable_id: str
    """base64 of ``objectGUID``: Entra's ``onPremisesImmutableId``."""

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("immutable_id")
        out["groups"] = list(self.groups)
        return {"found": True, "source": "ad", **out}


# --- parsing LDAP entries ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One search result entry: its DN and raw values by lower-cased attribute name."""

    dn: str
    values: dict[str, list[bytes]]

    @classmethod
    def of(cls, response: dict[str, Any]) -> _Entry:
        raw = response.get("raw_attributes") or {}
        return cls(str(response["dn"]), {str(k).lower(): list(v) for k, v in raw.items()})

    def all(self, name: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self.values.get(name.lower(), [])]

    def text(self, name: str) -> str | None:
        found = self.all(name)
        return found[0] if found else None

    def number(self, name: str, default: int = 0) -> int:
        value = self.text(name)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default

    def binary(self, name: str) -> bytes:
        found = self.values.get(name.lower(), [])
        return found[0] if found else b""


def _filetime(value: int) -> str | None:
    if value <= 0 or value >= NEVER:
        return None
    moment = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 10)
    return moment.isoformat().replace("+00:00", "Z")


def _rdn_value(dn: str) -> str:
    """The value of a DN's first RDN, unescaped: ``CN=Smith\\, Jo,OU=x`` -> ``Smith, Jo``."""
    try:
        value = str(parse_dn(dn)[0][1])
    except (lx.LDAPException, IndexError):
        return dn
    return re.sub(r"\\([0-9A-Fa-f]{2}|.)", lambda m: chr(int(m[1], 16)) if len(m[1]) == 2 else m[1], value)


def _parent(dn: str) -> str:
    return ",".join(to_dn(dn)[1:])


def _policy(entry: _Entry) -> PasswordPolicy:
    max_age = entry.number("maxPwdAge")
    days = None if max_age == 0 or abs(max_age) >= NEVER else abs(max_age) // (10_000_000 * 86_400)
    return PasswordPolicy(min_length=entry.number("minPwdLength"), complexity=bool(entry.number("pwdProperties") & 1),
                          history=entry.number("pwdHistoryLength"), max_age_days=days or None,
                          lockout_threshold=entry.number("lockoutThreshold"))


def _user(entry: _Entry, *, manager: str | None, in_protected_group: bool) -> ADUser:
    uac = entry.number("userAccountControl")
    computed = entry.text("msDS-User-Account-Control-Computed")
    flags = int(computed) if computed is not None else 0
    locked = bool(flags & UF_LOCKOUT) if computed is not None else entry.number("lockoutTime") > 0
    pwd_last_set = entry.number("pwdLastSet")
    must_change = pwd_last_set == 0
    return ADUser(
        dn=entry.dn, sam=entry.text("sAMAccountName") or "", upn=entry.text("userPrincipalName"),
        mail=entry.text("mail"), display_name=entry.text("displayName"), enabled=not uac & UF_ACCOUNTDISABLE,
        locked_out=locked, bad_password_count=entry.number("badPwdCount"), password_last_set=_filetime(pwd_last_set),
        password_expires=None if must_change else _filetime(entry.number("msDS-UserPasswordExpiryTimeComputed")),
        password_expired=bool(flags & UF_PASSWORD_EXPIRED) and not must_change, must_change_password=must_change,
        groups=tuple(_rdn_value(g) for g in entry.all("memberOf")), manager=manager,
        privileged=(entry.number("adminCount") == 1 or in_protected_group
                    or entry.number("primaryGroupID") in PRIVILEGED_PRIMARY_GROUPS),
        immutable_id=base64.b64encode(entry.binary("objectGUID")).decode("ascii"),
    )


# --- pure helpers ------------------------------------------------------------------------------


def temporary_password(length: int, *, avoid: tuple[str, ...] = ()) -> str:
    """A random password with all four character classes and none of ``avoid`` (3+ chars) in it."""
    pool = _UPPER + _LOWER + _DIGITS + _SYMBOLS
    banned = [a.casefold() for a in avoid if len(a) >= 3]
    rng = secrets.SystemRandom()
    while True:
        chars = [secrets.choice(c) for c in (_UPPER, _LOWER, _DIGITS, _SYMBOLS)]
        chars += [secrets.choice(pool) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        password = "".join(chars)
        if not any(b in password.casefold() for b in banned):
            return password


def account_name(first: str, last: str) -> str:
    """``first.last`` folded to lower-case ASCII letters, digits and hyphens."""
    def fold(part: str) -> str:
        text = unicodedata.normalize("NFKD", part.translate(_FOLD)).encode("ascii", "ignore").decode().lower()
        return re.sub(r"[^a-z0-9-]", "", text).strip("-")
    first_f, last_f = fold(first), fold(last)
    if not first_f or not last_f:
        raise IntegrationError(f"cannot make an account name from {first!r} {last!r}: give the names in Latin letters")
    return f"{first_f}.{last_f}"


def _share_key(share: str) -> tuple[bool, tuple[str, ...]]:
    """(names a server?, lower-cased path parts): ``\\\\fs01\\Finance\\`` -> (True, ("fs01", "finance"))."""
    text = share.strip().replace("/", "\\")
    unc = text.startswith("\\\\")
    return unc, tuple(p.casefold() for p in text.split("\\") if p)


# --- the adapter -------------------------------------------------------------------------------


class ActiveDirectory:
    """One site's domain, bound as its service account; one operation at a time (a lock)."""

    def __init__(self, config: ADConfig, *, password: str | None = None) -> None:
        self._config = config
        self._password = password if password is not None else read_secret(config.password_file, "AD bind password")
        url = urlsplit(config.url)
        self._ldaps = url.scheme == "ldaps"
        self._host = url.hostname or ""
        self._port = url.port or (636 if self._ldaps else 389)
        self._where = f"{self._host}:{self._port}"
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._used = 0.0
        self._depth = 0

    # -- connection ------------------------------------------------------------------------------

    def _open(self) -> Connection:
        cfg = self._config
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(cfg.ca_file) if cfg.ca_file else None,
                  valid_names=[cfg.tls_name] if cfg.tls_name else None)
        server = Server(self._host, port=self._port, use_ssl=self._ldaps, tls=tls, get_info=NONE,
                        connect_timeout=cfg.timeout_s)
        conn = Connection(server, user=cfg.bind_user, password=self._password, authentication=SIMPLE,
                          client_strategy=SYNC, auto_bind=False, auto_referrals=False, raise_exceptions=True,
                          receive_timeout=math.ceil(cfg.timeout_s))  # ldap3 packs it as an integer
        try:
            with _quiet_tls():
                conn.open(read_server_info=False)
                if not self._ldaps:
                    try:
                        started = conn.start_tls(read_server_info=False)
                    except lx.LDAPException as exc:
                        raise self._no_starttls(str(exc)) from exc
                    if not started or not conn.tls_started:
                        raise self._no_starttls(str(conn.result.get("description") if conn.result else ""))
                conn.bind()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.unbind()
            with contextlib.suppress(Exception):
                if conn.socket is not None:  # ldap3 leaves a socket that failed to connect open
                    conn.socket.close()
            raise
        return conn

    def _no_starttls(self, detail: str) -> IntegrationUnreachable:
        return IntegrationUnreachable(
            f"{self._where} did not accept StartTLS ({detail or 'no reason given'}); the service account never binds "
            "without encryption: use ldaps:// or enable LDAP over TLS on the domain controller")

    @contextlib.contextmanager
    def _session(self, action: str) -> Iterator[Connection]:
        """The bound connection, with ldap3's exceptions translated for ``action``."""
        with self._lock:
            outermost = self._depth == 0
            self._depth += 1
            try:
                if outermost and self._conn is not None and time.monotonic() - self._used > IDLE_RECONNECT_S:
                    self._drop()  # DCs close idle LDAP connections (MaxConnIdleTime, 900 s by default)
                if self._conn is None or self._conn.closed:
                    self._conn = self._open()
                yield self._conn
            except IntegrationError:
                raise
            except (lx.LDAPOperationResult, lx.LDAPBindError) as exc:
                raise self._translate_result(exc, action) from exc
            except (lx.LDAPCommunicationError, lx.LDAPStartTLSError, lx.LDAPCertificateError,
                    lx.LDAPResponseTimeoutError, OSError) as exc:
                self._drop()
                raise self._translate_failure(exc) from exc
            except lx.LDAPException as exc:
                raise IntegrationError(f"could not {action}: {type(exc).__name__}: {str(exc)[:200]}") from exc
            finally:
                self._depth -= 1
                self._used = time.monotonic()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.unbind()
        self._conn = None

    def _translate_failure(self, exc: BaseException) -> IntegrationError:
        text = str(exc)
        cfg = self._config
        if isinstance(exc, lx.LDAPCertificateError) or "doesn't match any name" in text:
            names = ", ".join(n for n in (self._host, cfg.tls_name) if n)
            return IntegrationUnreachable(
                f"the certificate of {self._where} does not name {names}; set --tls-name to the name the "
                "certificate carries (e.g. the DC's FQDN)")
        if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLError):
            trust = f"ca_file {cfg.ca_file}" if cfg.ca_file else "the system's trust store"
            reason = re.search(r"certificate verify failed: ([^()\]]+)", text)
            return IntegrationUnreachable(
                f"the certificate of {self._where} did not verify against {trust}"
                f"{f' ({reason[1].strip()})' if reason else ''}; set --ca-file to the CA that signs the DC's "
                "certificate or --tls-name to the name it carries")
        if "timed out" in text or "timeout" in text.lower():
            what = f"no answer from {self._where} within {cfg.timeout_s:g} s"
        elif "refused" in text:
            what = f"{self._where} refused the connection"
        else:
            what = f"cannot talk to {self._where} ({type(exc).__name__}: {text[:200]})"
        return IntegrationUnreachable(f"{what}; check that the domain controller is up, the URL and port are right "
                                      "and no firewall blocks the site agent")

    def _translate_result(self, exc: BaseException, action: str) -> IntegrationError:
        message = str(getattr(exc, "message", "") or exc)
        code = re.search(r"data ([0-9a-f]{3})", message)
        if isinstance(exc, lx.LDAPInvalidCredentialsResult | lx.LDAPBindError):
            why = AD_DATA_CODES.get(code[1], "") if code else ""
            return IntegrationAuthFailed(
                f"{self._where} refused the service account {self._config.bind_user}"
                f"{f' ({why})' if why else ' (wrong password, expired, disabled or locked out)'}; fix the account "
                f"or put its current password in {self._config.password_file}")
        if isinstance(exc, lx.LDAPInsufficientAccessRightsResult | lx.LDAPStrongerAuthRequiredResult):
            return IntegrationAuthFailed(
                f"the service account {self._config.bind_user} lacks permission to {action}; delegate that right "
                "to it on the OU that holds the account (Active Directory Users and Computers, Delegate Control)")
        if isinstance(exc, lx.LDAPConstraintViolationResult | lx.LDAPUnwillingToPerformResult) and "password" in action:
            return IntegrationError(f"the domain controller rejected the new password while trying to {action}: it "
                                    "does not meet the domain's password policy (length, complexity or history)")
        if isinstance(exc, lx.LDAPNoSuchObjectResult):
            return IntegrationError(f"cannot {action}: the object does not exist in the directory "
                                    f"({message.strip()[:160] or 'noSuchObject'})")
        description = getattr(exc, "description", None) or type(exc).__name__
        return IntegrationError(f"the domain controller refused to {action}: {description} ({message.strip()[:200]})")

    # -- reading ---------------------------------------------------------------------------------

    def _search(self, conn: Connection, base: str, flt: str, attrs: tuple[str, ...], *,
                scope: str = SUBTREE, limit: int = SEARCH_LIMIT) -> list[_Entry]:
        conn.search(base, flt, search_scope=scope, attributes=list(attrs), size_limit=limit,
                    time_limit=max(1, int(self._config.timeout_s)))
        return [_Entry.of(r) for r in conn.response or () if r.get("type") == "searchResEntry"]

    def _exists(self, conn: Connection, dn: str) -> bool:
        try:
            return bool(self._search(conn, dn, "(objectClass=*)", ("objectClass",), scope=BASE, limit=1))
        except lx.LDAPNoSuchObjectResult:
            return False

    def _protected_filter(self) -> str:
        names = "".join(f"(cn={escape_filter_chars(n)})(sAMAccountName={escape_filter_chars(n)})"
                        for n in self._config.protected_groups)
        return f"(|{names}(adminCount=1))"

    def _in_protected(self, conn: Connection, dn: str) -> bool:
        """Whether ``dn`` is a direct or nested member of a protected (or adminCount=1) group."""
        flt = f"(&(objectClass=group)(member:{IN_CHAIN}:={escape_filter_chars(dn)}){self._protected_filter()})"
        return bool(self._search(conn, self._config.base_dn, flt, ("cn",), limit=1))

    def _read(self, conn: Connection, dn: str) -> ADUser:
        found = self._search(conn, dn, f"(&{USER_CLASS})", USER_ATTRS, scope=BASE, limit=1)
        if not found:
            raise AccountNotFound(f"no user account at {dn}")
        return self._to_user(conn, found[0])

    def _to_user(self, conn: Connection, entry: _Entry) -> ADUser:
        manager = None
        manager_dn = entry.text("manager")
        if manager_dn:
            boss = self._search(conn, manager_dn, "(objectClass=*)", ("sAMAccountName",), scope=BASE, limit=1)
            manager = boss[0].text("sAMAccountName") if boss else None
        return _user(entry, manager=manager, in_protected_group=self._in_protected(conn, entry.dn))

    def check(self) -> dict[str, Any]:
        with self._session("read the directory") as conn:
            policy = self.policy()
            self._search(conn, self._config.base_dn, f"(&{USER_CLASS})", ("sAMAccountName",), limit=1)
        return {"ok": True, "server": self._config.url, "tls": "ldaps" if self._ldaps else "starttls",
                "bound_as": self._config.bind_user, "policy": asdict(policy)}

    def policy(self) -> PasswordPolicy:
        attrs = ("minPwdLength", "pwdProperties", "pwdHistoryLength", "maxPwdAge", "lockoutThreshold")
        with self._session("read the domain's password policy") as conn:
            found = self._search(conn, self._config.base_dn, "(objectClass=*)", attrs, scope=BASE, limit=1)
        if not found:
            raise IntegrationError(f"the domain object {self._config.base_dn} cannot be read; check base_dn")
        return _policy(found[0])

    def find_user(self, identifier: str) -> ADUser:
        name = _identifier(identifier)
        domain, _, sam = name.partition("\\")
        if domain and sam and "@" not in name:
            name = sam  # DOMAIN\sam
        value = escape_filter_chars(name)
        flt = f"(&{USER_CLASS}(|(sAMAccountName={value})(userPrincipalName={value})(mail={value})))"
        with self._session("look up the account") as conn:
            found = self._search(conn, self._config.base_dn, flt, USER_ATTRS)
            if not found:
                raise AccountNotFound(f"no account in {self._config.base_dn} has the sAMAccountName, "
                                      f"userPrincipalName or mail {identifier[:80]!r}")
            if len(found) > 1:
                names = [e.text("sAMAccountName") or e.dn for e in found]
                more = f" and {len(names) - 5} more" if len(names) > 5 else ""
                raise AmbiguousAccount(f"{len(names)} accounts match {identifier[:80]!r}: "
                                       f"{', '.join(names[:5])}{more}; ask for the exact user name")
            return self._to_user(conn, found[0])

    def find_group(self, name: str) -> str:
        return self._group(_identifier(name)).dn

    def _group(self, name: str) -> _Entry:
        value = escape_filter_chars(name)
        flt = f"(&(objectClass=group)(|(cn={value})(sAMAccountName={value})))"
        with self._session("look up the group") as conn:
            found = self._search(conn, self._config.base_dn, flt, ("cn", "sAMAccountName", "adminCount"))
        if not found:
            raise AccountNotFound(f"no group in {self._config.base_dn} is called {name[:80]!r}")
        if len(found) > 1:
            raise AmbiguousAccount(f"{len(found)} groups are called {name[:80]!r}: "
                                   f"{', '.join(e.dn for e in found[:5])}")
        return found[0]

    def _group_protected(self, conn: Connection, group: _Entry) -> bool:
        protected = {n.casefold() for n in self._config.protected_groups}
        names = {(group.text("cn") or "").casefold(), (group.text("sAMAccountName") or "").casefold()}
        return bool(names & protected) or group.number("adminCount") == 1 or self._in_protected(conn, group.dn)

    # -- changes ---------------------------------------------------------------------------------

    def _refuse_privileged(self, user: ADUser) -> None:
        if user.privileged:
            raise PrivilegedAccount(f"{user.sam} is a privileged account (adminCount or a protected group): "
                                    "automation does not change it; a technician must do this by hand")

    def unlock(self, user: ADUser) -> None:
        self._refuse_privileged(user)
        with self._session(f"unlock {user.sam} (write lockoutTime)") as conn:
            conn.modify(user.dn, {"lockoutTime": [(MODIFY_REPLACE, ["0"])]})
        log.info("unlocked %s", user.sam)

    def reset_password(self, user: ADUser) -> str:
        self._refuse_privileged(user)
        policy = self.policy()
        password = temporary_password(max(policy.min_length, 14), avoid=_name_parts(user.sam, user.display_name))
        with self._session(f"reset the password of {user.sam} ('Reset password' right)") as conn:
            conn.modify(user.dn, {"unicodePwd": [(MODIFY_REPLACE, [_encode_password(password)])],
                                  "pwdLastSet": [(MODIFY_REPLACE, ["0"])]})
        log.info("reset the password of %s (must change at next logon)", user.sam)
        return password

    def set_enabled(self, user: ADUser, enabled: bool) -> None:
        self._refuse_privileged(user)
        verb = "enable" if enabled else "disable"
        with self._session(f"{verb} {user.sam} (write userAccountControl)") as conn:
            found = self._search(conn, user.dn, "(objectClass=user)", ("userAccountControl",), scope=BASE, limit=1)
            if not found:
                raise AccountNotFound(f"{user.sam} no longer exists at {user.dn}")
            uac = found[0].number("userAccountControl")
            new = uac & ~UF_ACCOUNTDISABLE if enabled else uac | UF_ACCOUNTDISABLE
            if new != uac:
                conn.modify(user.dn, {"userAccountControl": [(MODIFY_REPLACE, [str(new)])]})
        log.info("%sd %s", verb, user.sam)

    def move_to(self, user: ADUser, ou_dn: str) -> ADUser:
        self._refuse_privileged(user)
        with self._session(f"move {user.sam} to {ou_dn}") as conn:
            if not self._exists(conn, ou_dn):
                raise IntegrationError(f"{ou_dn} does not exist; check leavers_ou")
            rdn = to_dn(user.dn)[0]
            conn.modify_dn(user.dn, rdn, new_superior=ou_dn)
            moved = self._read(conn, f"{rdn},{ou_dn}")
        log.info("moved %s to %s", user.sam, ou_dn)
        return moved

    def add_to_group(self, user: ADUser, group: str) -> bool:
        return self._membership(user, group, add=True)

    def remove_from_group(self, user: ADUser, group: str) -> bool:
        return self._membership(user, group, add=False)

    def _membership(self, user: ADUser, group: str, *, add: bool) -> bool:
        self._refuse_privileged(user)
        entry = self._group(_identifier(group))
        verb = "add" if add else "remove"
        with self._session(f"{verb} {user.sam} {'to' if add else 'from'} {entry.text('cn')} (write member)") as conn:
            if self._group_protected(conn, entry):
                raise PrivilegedAccount(f"{entry.text('cn')} is a protected group: automation never changes its "
                                        "members; a technician must do this by hand")
            member = bool(self._search(conn, entry.dn, f"(member={escape_filter_chars(user.dn)})", ("cn",),
                                       scope=BASE, limit=1))
            if member == add:
                return False
            try:
                conn.modify(entry.dn, {"member": [(MODIFY_ADD if add else MODIFY_DELETE, [user.dn])]})
            except (lx.LDAPEntryAlreadyExistsResult, lx.LDAPAttributeOrValueExistsResult,
                    lx.LDAPNoSuchAttributeResult):
                return False  # a member through primaryGroupID, or changed by someone else meanwhile
        log.info("%s %s %s %s", "added" if add else "removed", user.sam, "to" if add else "from", entry.text("cn"))
        return True

    def create_user(self, first_name: str, last_name: str, *, like: ADUser | None) -> tuple[ADUser, str]:
        first, last = _identifier(first_name), _identifier(last_name)
        cfg = self._config
        base = account_name(first, last)
        suffix = cfg.upn_suffix or ".".join(_rdn_value(r) for r in to_dn(cfg.base_dn) if r.lower().startswith("dc="))
        container = cfg.users_ou or (_parent(like.dn) if like else f"CN=Users,{cfg.base_dn}")
        password = temporary_password(max(self.policy().min_length, 14), avoid=(first, last, base))
        with self._session("create a user account ('Create User objects' right)") as conn:
            sam = self._free_name(conn, base, suffix)
            dn = f"CN={escape_rdn(f'{first} {last}')},{container}"
            if self._exists(conn, dn):
                dn = f"CN={escape_rdn(f'{first} {last} ({sam})')},{container}"
            groups = self._copyable_groups(conn, like) if like else []
            conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
                "sAMAccountName": sam, "userPrincipalName": f"{sam}@{suffix}", "givenName": first, "sn": last,
                "displayName": f"{first} {last}", "unicodePwd": _encode_password(password), "pwdLastSet": "0",
                "userAccountControl": "512"})
            log.info("created %s in %s", sam, container)
            done = [f"created {sam} in {container} (enabled, temporary password, must change)"]
            for i, (group_dn, cn) in enumerate(groups):
                try:
                    conn.modify(group_dn, {"member": [(MODIFY_ADD, [dn])]})
                except (lx.LDAPException, OSError) as exc:
                    problem = self._translate_result(exc, f"add {sam} to {cn}") \
                        if isinstance(exc, lx.LDAPOperationResult) else self._translate_failure(exc)
                    raise IntegrationError(f"{sam} was created but copying {like.sam if like else ''}'s groups "
                                           f"stopped: {problem.message}; reset its password before handing it over",
                                           changed=tuple(done),
                                           unchanged=tuple(f"member of {c}" for _, c in groups[i:])) from exc
                done.append(f"added to {cn}")
            return self._read(conn, dn), password

    def _free_name(self, conn: Connection, base: str, suffix: str) -> str:
        for n in range(1, 100):
            tail = "" if n == 1 else str(n)
            sam = base[:20 - len(tail)].rstrip(".-") + tail
            value = escape_filter_chars(sam)
            flt = f"(|(sAMAccountName={value})(userPrincipalName={escape_filter_chars(f'{sam}@{suffix}')}))"
            if not self._search(conn, self._config.base_dn, flt, ("cn",), limit=1):
                return sam
        raise IntegrationError(f"accounts {base} to {base}99 all exist; create this account by hand")

    def _copyable_groups(self, conn: Connection, like: ADUser) -> list[tuple[str, str]]:
        found = self._search(conn, like.dn, "(objectClass=user)", ("memberOf",), scope=BASE, limit=1)
        out = []
        for group_dn in found[0].all("memberOf") if found else []:
            entries = self._search(conn, group_dn, "(objectClass=group)", ("cn", "sAMAccountName", "adminCount"),
                                   scope=BASE, limit=1)
            if entries and not self._group_protected(conn, entries[0]):
                out.append((group_dn, entries[0].text("cn") or _rdn_value(group_dn)))
        return out

    def groups_for_share(self, share: str) -> tuple[str, ...]:
        """The groups the MSP mapped to ``share``; the longest matching path wins, a bare share name
        matches a UNC path with that share; () when unknown or when two servers' mappings disagree."""
        unc, parts = _share_key(share)
        best: list[tuple[str, ...]] = []
        best_len = 0
        for key, groups in self._config.share_groups.items():
            key_unc, key_parts = _share_key(key)
            want, have = parts, key_parts
            if unc and not key_unc:
                want = parts[1:]
            elif key_unc and not unc:
                have = key_parts[1:]
            if not have or want[:len(have)] != have:
                continue
            if len(have) > best_len:
                best, best_len = [tuple(groups)], len(have)
            elif len(have) == best_len:
                best.append(tuple(groups))
        return best[0] if best and all(g == best[0] for g in best) else ()

    def close(self) -> None:
        with self._lock:
            self._drop()


def _identifier(value: str) -> str:
    text = value.strip()
    if not text:
        raise IntegrationError("the account or group name is empty")
    if len(text) > MAX_IDENTIFIER:
        raise IntegrationError(f"the name is {len(text)} characters long; at most {MAX_IDENTIFIER} are accepted")
    return text


def _name_parts(*names: str | None) -> tuple[str, ...]:
    return tuple(p for n in names if n for p in re.split(r"[\s.,_\-#@]+", n) if p)


def _encode_password(password: str) -> bytes:
    return f'"{password}"'.encode("utf-16-le")


@contextlib.contextmanager
def _quiet_tls() -> Iterator[None]:
    """ldap3 2.9.1 checks host names with ``ssl.match_hostname``, which warns on Python 3.11."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"ssl\.match_hostname\(\) is deprecated", DeprecationWarning)
        yield
