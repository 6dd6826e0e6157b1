"""The Active Directory adapter against a real Samba AD domain controller on loopback (``samba.py``).

Every outcome is proven the way a user would meet it: by binding as the affected account over LDAPS
and reading the AD error code (775 locked, 533 disabled, 773 must change, 52e wrong password).
"""


from __future__ import annotations

import base64
import gc
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.site.samba import (
    DirUser,
    SambaDC,
    add_group,
    add_ou,
    add_user,
    attribute,
    group_dn,
    make_service_account,
    user_bind,
)

import mspclaw.agent.site.ad as ad_module
from mspclaw.agent.site.ad import ActiveDirectory, ADUser, account_name
from mspclaw.agent.site.config import ADConfig
from mspclaw.errors import (
    AccountNotFound,
    AmbiguousAccount,
    IntegrationAuthFailed,
    IntegrationError,
    IntegrationUnreachable,
    PrivilegedAccount,
)

NO_FILE = Path("/nonexistent/ad-password")


def config(dc: SambaDC, **over: Any) -> ADConfig:
    values: dict[str, Any] = {"url": dc.url, "base_dn": dc.base_dn, "bind_user": dc.admin_user,
                              "password_file": NO_FILE, "ca_file": dc.ca_file, "tls_name": dc.tls_name,
                              "timeout_s": 5}
    return ADConfig(**(values | over))


@pytest.fixture
def ad(samba_dc: SambaDC) -> Iterator[ActiveDirectory]:
    directory = ActiveDirectory(config(samba_dc), password=samba_dc.admin_password)
    yield directory
    directory.close()


def strong() -> str:
    return "Pw-" + secrets.token_urlsafe(9) + "9a"


def new_user(dc: SambaDC, **kw: Any) -> DirUser:
    sam = f"u{secrets.token_hex(4)}"
    password = strong()
    mail = kw.pop("mail", f"{sam}@example.com")
    return DirUser(sam=sam, password=password, dn=add_user(dc, sam, password, mail=mail, **kw), mail=mail)


def test_check_binds_and_reads_the_domain_policy(samba_dc: SambaDC, ad: ActiveDirectory) -> None:
    """Real Samba AD DC on loopback: check() binds over LDAPS and reports the domain's policy."""
    report = ad.check()
    assert report["ok"] is True and report["tls"] == "ldaps"
    assert report["bound_as"] == samba_dc.admin_user
    assert report["policy"]["min_length"] == 7 and report["policy"]["complexity"] is True
    policy = ad.policy()
    assert (policy.min_length, policy.complexity, policy.lockout_threshold) == (7, True, 3)
    assert policy.max_age_days == 42 and policy.history == 24


def test_an_idle_connection_is_replaced_before_use(samba_dc: SambaDC, ad_user: DirUser,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Samba AD DC on loopback: after the idle limit every call binds afresh and still works."""
    monkeypatch.setattr(ad_module, "IDLE_RECONNECT_S", 0.0)
    directory = ActiveDirectory(config(samba_dc), password=samba_dc.admin_password)
    try:
        for _ in range(2):
            assert directory.check()["ok"] is True
            user = directory.find_user(ad_user.sam)
            assert directory.add_to_group(user, "Domain Users") is False
    finally:
        directory.close()


def test_password_is_read_from_the_secret_file(samba_dc: SambaDC, tmp_path: Path) -> None:
    """Real Samba AD DC on loopback: without ``password=`` the adapter reads ``password_file``."""
    secret = tmp_path / "ad.pw"
    secret.write_text(samba_dc.admin_password + "\n")
    secret.chmod(0o600)
    directory = ActiveDirectory(config(samba_dc, password_file=secret))
    try:
        assert directory.check()["ok"] is True
    finally:
        directory.close()


def test_find_user_by_sam_upn_mail_and_domain_prefix(samba_dc: SambaDC, ad: ActiveDirectory) -> None:
    """Real Samba AD DC on loopback: one account is found by each of its names, with its state."""
    boss = new_user(samba_dc)
    user = new_user(samba_dc, manager=boss.dn)
    for name in (user.sam, user.sam.upper(), user.upn, user.mail, f"TEST\\{user.sam}"):
        found = ad.find_user(name)
        assert found.dn == user.dn, name
    assert found.manager == boss.sam
    assert found.enabled and not found.locked_out and not found.must_change_password and not found.privileged
    assert found.password_last_set and found.password_last_set.endswith("Z")
    assert found.password_expires and found.password_expires > found.password_last_set
    assert found.groups == ()
    conn = samba_dc.connect()
    try:
        conn.search(user.dn, "(objectClass=*)", "BASE", attributes=["objectGUID"])
        assert base64.b64decode(found.immutable_id) == conn.response[0]["raw_attributes"]["objectGUID"][0]
    finally:
        conn.unbind()
    public = found.public()
    assert public["found"] is True and public["source"] == "ad" and public["sam"] == user.sam
    assert "immutable_id" not in public
    json.dumps(public)


@pytest.mark.parametrize("name", ["*", "u*", "*)(sAMAccountName=*", "x)(|(sAMAccountName=*)", "\\2a", "\\",
                                  "a\x00*", "*@example.com", "(objectClass=*)"])
def test_filter_injection_finds_nobody(samba_dc: SambaDC, ad: ActiveDirectory, ad_user: DirUser, name: str) -> None:
    """Real Samba AD DC on loopback: LDAP filter syntax in a name is matched literally, never as a filter."""
    with pytest.raises(AccountNotFound):
        ad.find_user(name)


def test_special_characters_are_escaped_not_rejected(samba_dc: SambaDC, ad: ActiveDirectory) -> None:
    """Real Samba AD DC on loopback: a real name with ( ) * \\ in it is found exactly."""
    sam = f"p({secrets.token_hex(3)})"
    mail = f"o'neil*{secrets.token_hex(3)}@example.com"
    add_user(samba_dc, sam, strong(), mail=mail)
    assert ad.find_user(sam).sam == sam
    assert ad.find_user(mail).sam == sam
    with pytest.raises(IntegrationError, match="at most 256"):
        ad.find_user("a" * 257)
    with pytest.raises(AccountNotFound):
        ad.find_user("TEST\\")


def test_two_accounts_with_one_mail_are_ambiguous(samba_dc: SambaDC, ad: ActiveDirectory) -> None:
    """Real Samba AD DC on loopback: a shared mail address changes nothing on a guess."""
    mail = f"shared-{secrets.token_hex(3)}@example.com"
    one, two = new_user(samba_dc, mail=mail), new_user(samba_dc, mail=mail)
    with pytest.raises(AmbiguousAccount) as info:
        ad.find_user(mail)
    assert one.sam in info.value.message and two.sam in info.value.message


def test_lockout_then_unlock(samba_dc: SambaDC, ad: ActiveDirectory, ad_user: DirUser) -> None:
    """Real Samba AD DC on loopback: three bad passwords lock the account; unlock lets the user in."""
    for _ in range(3):
        assert user_bind(samba_dc, ad_user.sam, "Wrong-pass-1")[0] is False
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (False, "775")
    locked = ad.find_user(ad_user.sam)
    assert locked.locked_out and locked.bad_password_count >= 3
    ad.unlock(locked)
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (True, "")
    assert not ad.find_user(ad_user.sam).locked_out


def test_reset_password_forces_a_change_and_never_leaks(samba_dc: SambaDC, ad: ActiveDirectory,
                                                         ad_user: DirUser, caplog: pytest.LogCaptureFixture) -> None:
    """Real Samba AD DC on loopback: the old password stops working and the temporary one must be changed."""
    caplog.set_level(logging.DEBUG)
    temporary = ad.reset_password(ad.find_user(ad_user.sam))
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (False, "52e")
    assert user_bind(samba_dc, ad_user.sam, temporary) == (False, "773")
    after = ad.find_user(ad_user.sam)
    assert after.must_change_password and after.password_last_set is None and not after.password_expired
    assert len(temporary) >= 14
    assert all(any(c in cls for c in temporary) for cls in ("ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz",
                                                            "23456789", "!#%+-=?@_"))
    assert not set(temporary) & set("O0Il1")
    assert temporary not in caplog.text
    assert "reset the password of" in caplog.text


def test_reset_without_the_right_names_the_permission_and_hides_the_password(
        samba_dc: SambaDC, ad_user: DirUser, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Samba AD DC on loopback: a service account without 'Reset password' gets IntegrationAuthFailed,
    and the generated password is in neither the error nor the log."""
    caplog.set_level(logging.DEBUG)
    made: list[str] = []
    real = ad_module.temporary_password

    def spy(length: int, *, avoid: tuple[str, ...] = ()) -> str:
        made.append(real(length, avoid=avoid))
        return made[-1]

    monkeypatch.setattr(ad_module, "temporary_password", spy)
    helper = new_user(samba_dc)
    weak = ActiveDirectory(config(samba_dc, bind_user=helper.upn), password=helper.password)
    try:
        with pytest.raises(IntegrationAuthFailed, match="lacks permission to reset the password") as info:
            weak.reset_password(weak.find_user(ad_user.sam))
    finally:
        weak.close()
    assert made and made[0] not in str(info.value) and made[0] not in caplog.text
    assert all(made[0] not in str(e) for e in (info.value.__cause__, info.value.__context__) if e)
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (True, "")


def test_a_delegated_helpdesk_account_is_enough_and_names_what_it_lacks(samba_dc: SambaDC, ad_user: DirUser) -> None:
    """Real Samba AD DC on loopback: a non-admin service account with 'Reset password', lockoutTime and
    userAccountControl delegated on CN=Users resets, unlocks and disables; a group change names the right."""
    upn, password = make_service_account(samba_dc)
    helpdesk = ActiveDirectory(config(samba_dc, bind_user=upn), password=password)
    try:
        user = helpdesk.find_user(ad_user.sam)
        temporary = helpdesk.reset_password(user)
        assert user_bind(samba_dc, ad_user.sam, temporary) == (False, "773")
        for _ in range(3):
            user_bind(samba_dc, ad_user.sam, "Wrong-pass-1")
        helpdesk.unlock(helpdesk.find_user(ad_user.sam))
        assert user_bind(samba_dc, ad_user.sam, temporary) == (False, "773")
        helpdesk.set_enabled(user, False)
        assert user_bind(samba_dc, ad_user.sam, temporary) == (False, "533")
        with pytest.raises(IntegrationAuthFailed, match=f"{upn} lacks permission to add {ad_user.sam} to"):
            helpdesk.add_to_group(user, "Domain Guests")
        last = f"Lee{secrets.token_hex(3)}"
        with pytest.raises(IntegrationAuthFailed, match="lacks permission to create a user account"):
            helpdesk.create_user("Ann", last, like=None)
        with pytest.raises(AccountNotFound):
            helpdesk.find_user(f"ann.{last.lower()}")
    finally:
        helpdesk.close()


def test_disable_then_enable(samba_dc: SambaDC, ad: ActiveDirectory, ad_user: DirUser) -> None:
    """Real Samba AD DC on loopback: a disabled account cannot log on (533); enabled again it can."""
    ad.set_enabled(ad.find_user(ad_user.sam), False)
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (False, "533")
    assert not ad.find_user(ad_user.sam).enabled
    assert attribute(samba_dc, ad_user.dn, "userAccountControl") == ["514"]
    ad.set_enabled(ad.find_user(ad_user.sam), True)
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (True, "")
    assert attribute(samba_dc, ad_user.dn, "userAccountControl") == ["512"]


def test_move_to_the_leavers_ou(samba_dc: SambaDC, ad: ActiveDirectory, ad_user: DirUser) -> None:
    """Real Samba AD DC on loopback: the account moves with its password and state intact."""
    leavers = add_ou(samba_dc, "Leavers")
    moved = ad.move_to(ad.find_user(ad_user.sam), leavers)
    assert moved.dn.lower() == f"cn={ad_user.sam},{leavers}".lower()
    assert ad.find_user(ad_user.sam).dn == moved.dn
    assert user_bind(samba_dc, ad_user.sam, ad_user.password) == (True, "")
    with pytest.raises(IntegrationError, match="does not exist"):
        ad.move_to(moved, f"OU=Nowhere,{samba_dc.base_dn}")


def test_create_user_like_a_colleague_copies_groups_but_never_admin_rights(
        samba_dc: SambaDC, ad: ActiveDirectory) -> None:
    """Real Samba AD DC on loopback: the new account gets the colleague's ordinary groups only."""
    team = f"Finance-{secrets.token_hex(3)}"
    add_group(samba_dc, team)
    colleague = new_user(samba_dc, groups=(team, "Domain Admins"))
    like = ad.find_user(colleague.sam)
    assert like.privileged and set(like.groups) == {team, "Domain Admins"}
    last = "Ståhl" + "".join(secrets.choice("bcdfg") for _ in range(5))
    user, temporary = ad.create_user("Zoë", last, like=like)
    assert user.sam == account_name("Zoë", last) == f"zoe.{last.lower().replace('å', 'a')}"
    assert user.upn == f"{user.sam}@test.local" and user.display_name == f"Zoë {last}"
    assert user.groups == (team,) and not user.privileged
    assert user.enabled and user.must_change_password
    assert user_bind(samba_dc, user.sam, temporary) == (False, "773")
    again, _ = ad.create_user("Zoë", last, like=None)
    assert again.sam == f"{user.sam}2" and again.groups == () and f"({again.sam})" in again.dn


def test_group_membership_add_and_remove(samba_dc: SambaDC, ad: ActiveDirectory, ad_user: DirUser) -> None:
    """Real Samba AD DC on loopback: memberOf follows; a second add or remove changes nothing."""
    team = f"Sales-{secrets.token_hex(3)}"
    add_group(samba_dc, team)
    user = ad.find_user(ad_user.sam)
    assert ad.find_group(team) == group_dn(samba_dc, team)
    assert ad.add_to_group(user, team) is True
    assert ad.add_to_group(user, team) is False
    assert ad.find_user(ad_user.sam).groups == (team,)
    assert ad.remove_from_group(user, team) is True
    assert ad.remove_from_group(user, team) is False
    assert ad.find_user(ad_user.sam).groups == ()
    with pytest.raises(AccountNotFound):
        ad.find_group("no-such-group-*")


def test_privileged_accounts_and_protected_groups_are_never_changed(samba_dc: SambaDC, ad: ActiveDirectory,
                                                                    ad_user: DirUser) -> None:
    """Real Samba AD DC on loopback: Domain Admins (direct or nested) and adminCount=1 are privileged."""
    nested = f"Helpdesk-{secrets.token_hex(3)}"
    nested_dn = add_group(samba_dc, nested)
    conn = samba_dc.connect()
    try:
        conn.modify(group_dn(samba_dc, "Domain Admins", conn), {"member": [("MODIFY_ADD", [nested_dn])]})
    finally:
        conn.unbind()
    direct = new_user(samba_dc, groups=("Domain Admins",))
    indirect = new_user(samba_dc, groups=(nested,))
    flagged = new_user(samba_dc, admin_count=True)
    for account in (direct, indirect, flagged):
        assert ad.find_user(account.sam).privileged, account
    with pytest.raises(PrivilegedAccount):
        ad.reset_password(ad.find_user(indirect.sam))
    assert user_bind(samba_dc, indirect.sam, indirect.password) == (True, "")
    plain = ad.find_user(ad_user.sam)
    for group in ("Domain Admins", "domain admins", nested, "Administrators"):
        with pytest.raises(PrivilegedAccount, match="protected group"):
            ad.add_to_group(plain, group)
    assert ad.find_user(ad_user.sam).groups == () and not ad.find_user(ad_user.sam).privileged


def test_wrong_service_password_is_an_auth_failure(samba_dc: SambaDC) -> None:
    """Real Samba AD DC on loopback: a refused bind names the account and the password file."""
    directory = ActiveDirectory(config(samba_dc), password="Not-the-password-1")
    with pytest.raises(IntegrationAuthFailed, match=r"refused the service account Administrator@test\.local"):
        directory.check()
    directory.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_certificates_that_do_not_verify_are_unreachable_with_the_cause(samba_dc: SambaDC) -> None:
    """Real Samba AD DC on loopback: a CA that did not sign the DC, or a wrong name, stops before binding."""
    other_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    wrong_ca = ActiveDirectory(config(samba_dc, ca_file=other_ca), password=samba_dc.admin_password)
    with pytest.raises(IntegrationUnreachable, match=f"did not verify against ca_file {other_ca}"):
        wrong_ca.check()
    wrong_name = ActiveDirectory(config(samba_dc, tls_name="dc9.example.com"), password=samba_dc.admin_password)
    with pytest.raises(IntegrationUnreachable, match=r"does not name 127\.0\.0\.1, dc9\.example\.com; set --tls-name"):
        wrong_name.check()
    no_name = ActiveDirectory(config(samba_dc, tls_name=None), password=samba_dc.admin_password)
    with pytest.raises(IntegrationUnreachable, match="--tls-name"):
        no_name.check()
    gc.collect()  # ldap3 leaves the failed TLS socket to the garbage collector


def test_closed_port_and_silent_server_fail_fast() -> None:
    """No DC needed: a refused port and a server that never answers are IntegrationUnreachable in time."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dc_less = ADConfig(url=f"ldaps://127.0.0.1:{port}", base_dn="DC=test,DC=local", bind_user="svc",
                       password_file=NO_FILE, timeout_s=1)
    with pytest.raises(IntegrationUnreachable, match="refused the connection"):
        ActiveDirectory(dc_less, password="x").check()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        slow = dc_less.model_copy(update={"url": f"ldaps://127.0.0.1:{silent.getsockname()[1]}"})
        with pytest.raises(IntegrationUnreachable, match="within 1 s"):
            ActiveDirectory(slow, password="x").check()
        assert time.monotonic() - started < 4
    gc.collect()  # a socket ldap3 left open would fail this test here (warnings are errors)


def test_plain_ldap_uses_starttls(samba_dc: SambaDC) -> None:
    """Real Samba AD DC on loopback: ldap:// on 389 upgrades with StartTLS and then binds."""
    directory = ActiveDirectory(config(samba_dc, url="ldap://127.0.0.1:389"), password=samba_dc.admin_password)
    try:
        assert directory.check()["tls"] == "starttls"
    finally:
        directory.close()


def test_no_simple_bind_is_ever_sent_without_tls() -> None:
    """No DC needed: a fake LDAP port that refuses StartTLS sees the StartTLS request and never a password."""
    received: list[bytes] = []
    connections: list[int] = []
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                peer, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(1)
            with peer:
                peer.settimeout(2)
                try:
                    received.append(peer.recv(4096))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"ldap://127.0.0.1:{server.getsockname()[1]}"
    cfg = ADConfig(url=url, base_dn="DC=test,DC=local", bind_user="svc-mspclaw@test.local",
                   password_file=NO_FILE, timeout_s=2)
    try:
        with pytest.raises(IntegrationUnreachable, match=r"did not accept StartTLS.*never binds without encryption"):
            ActiveDirectory(cfg, password="Secret-bind-pw-9").check()
        time.sleep(0.3)  # a second (plain) attempt would connect now
    finally:
        stop.set()
        thread.join(5)
        server.close()
    wire = b"".join(received)
    assert b"1.3.6.1.4.1.1466.20037" in wire
    assert b"Secret-bind-pw-9" not in wire and b"svc-mspclaw" not in wire
    assert len(connections) == 1


def test_groups_for_share_normalises_the_names_people_type() -> None:
    """No DC needed: UNC, URL-style, bare and trailing-slash spellings of a share map to the same groups."""
    cfg = ADConfig(url="ldaps://dc1.test.local", base_dn="DC=test,DC=local", bind_user="svc", password_file=NO_FILE,
                   share_groups={"\\\\fs01\\Finance": ("GG-Finance-RW",), "HR": ("GG-HR",),
                                 "\\\\fs01\\Finance\\Payroll": ("GG-Payroll",), "\\\\fs02\\Projects": ("GG-P2",),
                                 "\\\\fs03\\Projects": ("GG-P3",)})
    directory = ActiveDirectory(cfg, password="unused")
    for spelling in ("\\\\fs01\\Finance", "\\\\FS01\\finance\\", "//fs01/Finance", "//fs01/Finance/",
                     "Finance", "finance/", " Finance ", "\\\\fs01\\Finance\\Reports\\2024"):
        assert directory.groups_for_share(spelling) == ("GG-Finance-RW",), spelling
    assert directory.groups_for_share("\\\\fs01\\Finance\\Payroll\\") == ("GG-Payroll",)
    assert directory.groups_for_share("\\\\fs09\\HR") == ("GG-HR",)
    assert directory.groups_for_share("//fs02/projects") == ("GG-P2",)
    assert directory.groups_for_share("Projects") == ()  # two servers, two answers: unknown
    assert directory.groups_for_share("\\\\fs02\\Finance") == ()
    assert directory.groups_for_share("Marketing") == ()


def test_public_summary_is_json(samba_dc: SambaDC, ad: ActiveDirectory, ad_user: DirUser) -> None:
    """Real Samba AD DC on loopback: the tool output carries the fields a technician reads."""
    user: ADUser = ad.find_user(ad_user.upn)
    summary = json.loads(json.dumps(user.public()))
    assert {"sam", "upn", "mail", "enabled", "locked_out", "bad_password_count", "password_last_set",
            "password_expires", "password_expired", "must_change_password", "groups", "manager",
            "privileged"} <= set(summary)
    assert summary["upn"] == ad_user.upn and summary["groups"] == [] and summary["manager"] is None
