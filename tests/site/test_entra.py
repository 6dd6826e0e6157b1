"""The Entra ID adapter through the real msal + httpx code path, against the local tenant of
``tests/site/graph_server.py``: spec-checked against Microsoft's Graph v1.0 metadata, not live."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.site.graph_server import GraphTenant

from mspclaw.agent.site.entra import EntraID
from mspclaw.errors import (
    AccountNotFound,
    AmbiguousAccount,
    IntegrationAuthFailed,
    IntegrationError,
    IntegrationThrottled,
    IntegrationUnreachable,
    PrivilegedAccount,
)

ALL_METHODS = ("password", "phone", "microsoftAuthenticator", "softwareOath", "fido2", "email",
               "windowsHelloForBusiness", "temporaryAccessPass")




@pytest.fixture
def tenant(graph_tenant: GraphTenant) -> GraphTenant:
    return graph_tenant


@pytest.fixture
def office(tenant: GraphTenant) -> dict[str, str]:
    """A small tenant: two licences, three groups, a role, a cloud user, a synced user and an admin."""
    ids = {
        "e3": tenant.add_sku("SPE_E3"), "bp": tenant.add_sku("O365_BUSINESS_PREMIUM"),
        "sales": tenant.add_group("Sales"), "vpn": tenant.add_group("VPN Users"),
        "dyn": tenant.add_group("All Sales (dynamic)", dynamic=True),
        "ga": tenant.add_role("Global Administrator"),
    }
    ids["alice"] = tenant.add_user("alice@contoso.test", display_name="Alice Smith",
                                   methods=("password", "phone", "microsoftAuthenticator"),
                                   licences=(ids["e3"],), groups=(ids["sales"], ids["vpn"], ids["dyn"]))
    ids["bob"] = tenant.add_user("bob@contoso.test", synced=True, sam="bob", immutable_id="Ym9iLWd1aWQ=",
                                 methods=("password", "phone"), licences=(ids["bp"],))
    ids["root"] = tenant.add_user("it.admin@contoso.test", methods=("password", "fido2"), roles=(ids["ga"],))
    return ids


@pytest.fixture
def entra(tenant: GraphTenant) -> EntraID:
    return tenant.entra()


def test_lookup_reads_flags_methods_licences_groups_and_roles(tenant: GraphTenant, office: dict[str, str],
                                                              entra: EntraID) -> None:
    """Spec-checked, not live: a cloud user, a synced user and an admin as the tools see them."""
    alice = entra.find_user("Alice@Contoso.test")
    assert (alice.id, alice.on_premises_sync_enabled, alice.account_enabled) == (office["alice"], False, True)
    assert alice.auth_methods == ("password", "phone", "microsoftAuthenticator")
    assert alice.licences == (office["e3"],)
    assert set(alice.groups) == {"Sales", "VPN Users", "All Sales (dynamic)"} and alice.directory_roles == ()
    assert alice.public() == {
        "found": True, "source": "entra", "id": office["alice"], "upn": "alice@contoso.test",
        "mail": "alice@contoso.test", "display_name": "Alice Smith", "enabled": True, "synced_from_ad": False,
        "mfa_methods": ["phone", "microsoftAuthenticator"], "licences": [office["e3"]],
        "groups": list(alice.groups), "privileged": False}

    bob = entra.find_user("bob@contoso.test")
    assert (bob.on_premises_sync_enabled, bob.on_premises_sam, bob.on_premises_immutable_id) == (
        True, "bob", "Ym9iLWd1aWQ=")
    assert entra.find_user(office["bob"]).upn == "bob@contoso.test"  # by object id
    assert entra.find_user("bob").upn == "bob@contoso.test"  # by mail nickname

    admin = entra.find_user("it.admin@contoso.test")
    assert admin.directory_roles == ("Global Administrator",) and admin.privileged


def test_lookup_not_found_and_ambiguous(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: no match and two matches (same mail) are distinct errors."""
    with pytest.raises(AccountNotFound):
        entra.find_user("nobody@contoso.test")
    with pytest.raises(AccountNotFound):
        entra.find_user("00000000-0000-0000-0000-000000000000")
    tenant.add_user("sales1@contoso.test", mail="sales@contoso.test")
    tenant.add_user("sales2@contoso.test", mail="sales@contoso.test")
    with pytest.raises(AmbiguousAccount, match="2 Entra ID accounts"):
        entra.find_user("sales@contoso.test")


def test_identifier_quotes_are_doubled_in_filter(tenant: GraphTenant, office: dict[str, str],
                                                 entra: EntraID) -> None:
    """Spec-checked, not live: a quote in the name cannot widen the $filter (OData '' escaping)."""
    injection = "x@contoso.test' or accountEnabled eq true or mail eq 'y"
    with pytest.raises(AccountNotFound):  # unescaped it would match every enabled account
        entra.find_user(injection)
    sent = tenant.graph_requests("GET")[-1].query["$filter"]
    assert sent == ("userPrincipalName eq 'x@contoso.test'' or accountEnabled eq true or mail eq ''y' "
                    "or mail eq 'x@contoso.test'' or accountEnabled eq true or mail eq ''y'")
    tenant.add_user("o'brien@contoso.test")
    assert entra.find_user("o'brien@contoso.test").upn == "o'brien@contoso.test"


def test_reset_password_of_cloud_user_forces_change(tenant: GraphTenant, office: dict[str, str],
                                                    entra: EntraID) -> None:
    """Spec-checked, not live: PATCH passwordProfile with forceChangePasswordNextSignIn."""
    password = entra.reset_password(entra.find_user("alice@contoso.test"))
    assert len(password) >= 14 and tenant.password_of(office["alice"]) == password
    assert tenant.user(office["alice"])["passwordProfile"] == {"password": None,
                                                              "forceChangePasswordNextSignIn": True}


def test_reset_password_refused_for_synced_user(tenant: GraphTenant, office: dict[str, str],
                                                entra: EntraID) -> None:
    """Spec-checked, not live: a synced account's password lives in AD; nothing is sent to Graph."""
    bob = entra.find_user("bob@contoso.test")
    with pytest.raises(IntegrationError, match="synced from AD: reset in AD"):
        entra.reset_password(bob)
    with pytest.raises(IntegrationError, match="synced from AD"):
        entra.set_sign_in(bob, False)
    assert tenant.graph_requests("PATCH") == [] and tenant.password_of(office["bob"]) is None


def test_revoke_sessions(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: POST revokeSignInSessions moves signInSessionsValidFromDateTime."""
    before = tenant.user(office["alice"])["signInSessionsValidFromDateTime"]
    entra.revoke_sessions(entra.find_user("alice@contoso.test"))
    assert tenant.user(office["alice"])["signInSessionsValidFromDateTime"] > before


def test_reset_mfa_deletes_every_method_type(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: each method is deleted through its type's own collection."""
    uid = tenant.add_user("carol@contoso.test", methods=ALL_METHODS)
    removed = entra.reset_mfa(entra.find_user("carol@contoso.test"))
    assert set(removed) == set(ALL_METHODS) - {"password"}
    assert tenant.methods(uid) == ["password"]
    deleted = {r.path.split("/")[5] for r in tenant.graph_requests("DELETE")}
    assert deleted == {"phoneMethods", "microsoftAuthenticatorMethods", "softwareOathMethods", "fido2Methods",
                       "emailMethods", "windowsHelloForBusinessMethods", "temporaryAccessPassMethods"}


def test_reset_mfa_partial_failure_says_what_changed(tenant: GraphTenant, office: dict[str, str],
                                                     entra: EntraID) -> None:
    """Spec-checked, not live: a method Graph will not delete is reported with what was removed."""
    uid = tenant.add_user("dave@contoso.test", methods=("password", "phone", "fido2", "email"))
    dave = entra.find_user("dave@contoso.test")
    tenant.fail_next(400, code="badRequest", message="The method cannot be deleted.", match="fido2Methods", times=2)
    with pytest.raises(IntegrationError) as caught:
        entra.reset_mfa(dave)
    assert set(caught.value.changed) == {"removed phone", "removed email"}
    assert caught.value.unchanged == ("fido2 still registered",)
    assert tenant.methods(uid) == ["password", "fido2"]


def test_issue_tap(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: a multi-use TAP with the configured lifetime."""
    alice = entra.find_user("alice@contoso.test")
    tap, minutes = entra.issue_tap(alice)
    assert len(tap) == 8 and minutes == 60
    assert tenant.graph_requests("POST")[-1].body == {"lifetimeInMinutes": 60, "isUsableOnce": False}
    assert "temporaryAccessPass" in tenant.methods(office["alice"])


def test_tap_disabled_by_policy_is_explained(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: the tenant's TAP policy is off; the error says so and what to do."""
    tenant.tap_policy_enabled = False
    with pytest.raises(IntegrationError, match="Temporary Access Pass is disabled in this tenant's authentication "
                                               "methods policy; enable it"):
        entra.issue_tap(entra.find_user("alice@contoso.test"))


def test_block_and_unblock_sign_in(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: PATCH accountEnabled."""
    alice = entra.find_user("alice@contoso.test")
    entra.set_sign_in(alice, False)
    assert tenant.user(office["alice"])["accountEnabled"] is False
    entra.set_sign_in(alice, True)
    assert tenant.user(office["alice"])["accountEnabled"] is True


def test_assign_and_remove_licences(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: assignLicense by part number or skuId; no-ops say False/()."""
    alice = entra.find_user("alice@contoso.test")
    assert entra.assign_licence(alice, "o365_business_premium") is True
    assert entra.assign_licence(alice, office["e3"]) is False
    alice = entra.find_user("alice@contoso.test")
    assert set(tenant.licences(office["alice"])) == {office["e3"], office["bp"]}
    assert entra.remove_licences(alice, ["SPE_E3"]) == (office["e3"],)
    alice = entra.find_user("alice@contoso.test")
    assert entra.remove_licences(alice) == (office["bp"],)
    assert tenant.licences(office["alice"]) == []
    with pytest.raises(IntegrationError, match="no licence 'VISIO'"):
        entra.assign_licence(alice, "VISIO")


def test_group_membership(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: members/$ref by name or id; role-assignable groups are refused."""
    bob = entra.find_user("bob@contoso.test")
    assert entra.add_to_group(bob, "Sales") is True
    assert "bob@contoso.test" in tenant.members("Sales")
    assert entra.add_to_group(bob, office["sales"]) is False  # Graph: already exists
    assert entra.remove_from_group(bob, "Sales") is True
    assert entra.remove_from_group(bob, "Sales") is False
    assert "bob@contoso.test" not in tenant.members("Sales")
    tenant.add_group("Helpdesk Admins", role_assignable=True)
    with pytest.raises(PrivilegedAccount):
        entra.add_to_group(bob, "Helpdesk Admins")
    with pytest.raises(IntegrationError, match="no Entra ID group"):
        entra.add_to_group(bob, "Nope")


def test_create_user_like_colleague(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: a cloud-only new hire with the colleague's licences and assigned groups."""
    tenant.add_user("jose.garcia@contoso.test")  # a namesake already has the plain name
    alice = entra.find_user("alice@contoso.test")
    new, password = entra.create_user("José", "García", domain="contoso.test", like=alice)
    assert new.upn == "jose.garcia2@contoso.test" and not new.on_premises_sync_enabled
    stored = tenant.user(new.id)
    assert stored["passwordProfile"]["forceChangePasswordNextSignIn"] is True
    assert stored["usageLocation"] == "US" and stored["displayName"] == "José García"
    assert tenant.password_of(new.id) == password
    assert new.licences == (office["e3"],)
    assert set(new.groups) == {"Sales", "VPN Users"}  # not the dynamic group
    assert new.directory_roles == ()


def test_create_user_reports_what_was_not_copied(tenant: GraphTenant, office: dict[str, str],
                                                 entra: EntraID) -> None:
    """Spec-checked, not live: the account exists even when a group add fails; the error says so."""
    alice = entra.find_user("alice@contoso.test")
    tenant.fail_next(403, match="members")
    with pytest.raises(IntegrationError) as caught:
        entra.create_user("Eve", "Adams", domain="contoso.test", like=alice)
    assert caught.value.changed[:2] == ("created eve.adams@contoso.test", f"licences {office['e3']}")
    assert len(caught.value.unchanged) == 1 and "GroupMember.ReadWrite.All" in caught.value.unchanged[0]
    assert tenant.user("eve.adams@contoso.test")["accountEnabled"] is True


def test_offboard_blocks_revokes_and_unlicenses_without_deleting(tenant: GraphTenant, office: dict[str, str],
                                                                entra: EntraID) -> None:
    """Spec-checked, not live: disabled, sessions revoked, licences removed, nothing deleted."""
    before = tenant.user(office["alice"])
    done = entra.offboard(entra.find_user("alice@contoso.test"))
    after = tenant.user(office["alice"])
    assert done == {"upn": "alice@contoso.test", "deleted": False, "sign_in_blocked": True,
                    "sessions_revoked": True, "licences_removed": [office["e3"]]}
    assert after["accountEnabled"] is False and after["assignedLicenses"] == []
    assert after["signInSessionsValidFromDateTime"] > before["signInSessionsValidFromDateTime"]
    assert tenant.graph_requests("DELETE") == []
    assert tenant.methods(office["alice"]) == ["password", "phone", "microsoftAuthenticator"]
    assert "alice@contoso.test" in tenant.members("Sales")


def test_offboard_of_synced_user_reports_partial(tenant: GraphTenant, office: dict[str, str],
                                                 entra: EntraID) -> None:
    """Spec-checked, not live: sign-in of a synced account is AD's; the rest is done and reported."""
    with pytest.raises(IntegrationError) as caught:
        entra.offboard(entra.find_user("bob@contoso.test"))
    assert caught.value.changed == ("sessions revoked", "licences removed")
    assert caught.value.unchanged[0].startswith("sign-in not blocked (bob@contoso.test is synced from AD")
    assert tenant.user(office["bob"])["accountEnabled"] is True and tenant.licences(office["bob"]) == []


def test_privileged_accounts_are_never_changed(tenant: GraphTenant, office: dict[str, str],
                                               entra: EntraID) -> None:
    """Spec-checked, not live: an account holding a directory role is refused before any write."""
    admin = entra.find_user("it.admin@contoso.test")
    for change in (entra.reset_password, entra.reset_mfa, entra.revoke_sessions, entra.offboard):
        with pytest.raises(PrivilegedAccount):
            change(admin)
    assert [r for r in tenant.graph_requests() if r.method != "GET"] == []


def test_certificate_credential(tenant: GraphTenant, office: dict[str, str]) -> None:
    """Spec-checked, not live: a PEM with certificate and key signs msal's client assertion (x5t)."""
    entra = tenant.entra(certificate=tenant.make_certificate())
    assert entra.find_user("alice@contoso.test").id == office["alice"]
    assert "client_assertion" in tenant.requests[1].body and "client_secret" not in tenant.requests[1].body
    stranger = tenant.entra(certificate=tenant.make_certificate(register=False))
    with pytest.raises(IntegrationAuthFailed, match="AADSTS700027"):
        stranger.find_user("alice@contoso.test")


def test_refused_secret_and_expired_token(tenant: GraphTenant, office: dict[str, str], tmp_path: Path) -> None:
    """Spec-checked, not live: a wrong secret (msal's invalid_client) and a token Graph rejects (401)."""
    wrong = EntraID(tenant.config(), secret="not-the-secret", http=tenant.http_client(),
                    token_http=tenant.token_session(), sleep=tenant.sleeps.append)
    with pytest.raises(IntegrationAuthFailed, match="invalid_client: AADSTS7000215") as caught:
        wrong.check()
    assert "not-the-secret" not in str(caught.value)
    entra = tenant.entra()
    entra.find_user("alice@contoso.test")
    tenant.rotate_token_key()
    with pytest.raises(IntegrationAuthFailed, match="secret/certificate was refused or expired"):
        entra.find_user("alice@contoso.test")


def test_permission_denied_names_the_permission(tenant: GraphTenant, office: dict[str, str],
                                                entra: EntraID) -> None:
    """Spec-checked, not live: 403 Authorization_RequestDenied -> which application permission to grant."""
    alice = entra.find_user("alice@contoso.test")
    tenant.fail_next(403, match="PATCH")
    with pytest.raises(IntegrationAuthFailed, match=r"User-PasswordProfile\.ReadWrite\.All") as caught:
        entra.reset_password(alice)
    assert "Password" in str(caught.value) and "Administrator" in str(caught.value)
    tenant.fail_next(403, match="temporaryAccessPassMethods")
    with pytest.raises(IntegrationAuthFailed, match=r"UserAuthenticationMethod\.ReadWrite\.All"):
        entra.issue_tap(alice)
    tenant.fail_next(403, match="members")
    with pytest.raises(IntegrationAuthFailed, match=r"GroupMember\.ReadWrite\.All"):
        entra.remove_from_group(alice, "Sales")


def test_check_reports_granted_and_missing_permissions(tenant: GraphTenant, office: dict[str, str],
                                                       entra: EntraID) -> None:
    """Spec-checked, not live: check() reads the token's roles and the organization."""
    tenant.granted_roles = ["User.Read.All", "Directory.Read.All"]
    report = entra.check()
    assert report["ok"] and report["organization"] == "Contoso (local test tenant)"
    assert report["permissions"] == ["Directory.Read.All", "User.Read.All"]
    assert "UserAuthenticationMethod.ReadWrite.All" in report["missing_permissions"]
    assert "Directory.Read.All" not in report["missing_permissions"]


def test_not_found_on_write(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: a user deleted between lookup and change -> AccountNotFound."""
    alice = entra.find_user("alice@contoso.test")
    tenant.fail_next(404, match="PATCH")
    with pytest.raises(AccountNotFound):
        entra.set_sign_in(alice, False)


def test_throttling_honours_retry_after_then_succeeds(tenant: GraphTenant, office: dict[str, str],
                                                      entra: EntraID) -> None:
    """Spec-checked, not live: 429 with Retry-After is waited out (injected sleep), then the call succeeds."""
    tenant.fail_next(429, retry_after=7, times=2)
    assert entra.find_user("alice@contoso.test").id == office["alice"]
    assert tenant.sleeps == [7.0, 7.0]


def test_persistent_throttling_and_server_errors(tenant: GraphTenant, office: dict[str, str],
                                                 entra: EntraID) -> None:
    """Spec-checked, not live: retries are capped (count and total wait), then the right error."""
    tenant.fail_next(429, retry_after=20, times=10)
    with pytest.raises(IntegrationThrottled):
        entra.find_user("alice@contoso.test")
    assert tenant.sleeps == [20.0, 10.0, 0.0] and sum(tenant.sleeps) <= 30
    tenant.sleeps.clear()
    tenant.clear_failures()
    tenant.fail_next(500, times=10)
    with pytest.raises(IntegrationUnreachable, match="500"):
        entra.find_user("alice@contoso.test")
    assert tenant.sleeps == [1.0, 2.0, 4.0]
    tenant.clear_failures()
    tenant.fail_next(503, times=1)
    assert entra.find_user("alice@contoso.test").id == office["alice"]


def test_unreachable_and_untrusted_tls(tenant: GraphTenant, office: dict[str, str]) -> None:
    """Spec-checked, not live: a certificate the configured CA did not sign, then Graph gone."""
    (tenant.dir / "other").mkdir()
    other_ca = GraphTenant(tenant.dir / "other").ca_file  # a CA that did not sign the server's certificate
    untrusted = EntraID(tenant.config(ca_file=other_ca), token_http=tenant.token_session())
    with pytest.raises(IntegrationUnreachable, match="cannot reach Microsoft Graph"):
        untrusted.find_user("alice@contoso.test")
    untrusted.close()
    trusted = EntraID(tenant.config(), token_http=tenant.token_session())  # the client built from config
    assert trusted.find_user("alice@contoso.test").id == office["alice"]
    tenant.stop()
    with pytest.raises(IntegrationUnreachable, match="cannot reach Microsoft Graph"):
        trusted.find_user("alice@contoso.test")
    trusted.close()
    fresh = tenant.entra()
    with pytest.raises(IntegrationUnreachable, match="token endpoint"):
        fresh.check()


def test_paging_and_response_size_bounds(tenant: GraphTenant, office: dict[str, str], entra: EntraID) -> None:
    """Spec-checked, not live: @odata.nextLink is followed; an over-5-MB answer is refused."""
    tenant.page_size = 1
    alice = entra.find_user("alice@contoso.test")
    assert len(alice.groups) == 3 and len(alice.auth_methods) == 3
    for n in range(25):
        tenant.add_group(f"Team {n}", members=(office["bob"],))
    with pytest.raises(IntegrationError, match="more than 20 pages"):
        entra.find_user("bob@contoso.test")
    tenant.add_user("huge@contoso.test", display_name="x" * (6 * 1024 * 1024))
    with pytest.raises(IntegrationError, match="over 5 MB"):
        entra.find_user("huge@contoso.test")


def test_spec_check_refuses_unknown_properties(tenant: GraphTenant, office: dict[str, str]) -> None:
    """The local server itself: a property Graph v1.0 does not define is a 400 and a recorded violation."""
    token = tenant.access_token()
    client = tenant.http_client()
    headers = {"Authorization": f"Bearer {token}"}
    bad = client.patch(f"{tenant.graph_url}/users/{office['alice']}", headers=headers,
                       json={"accountEnabled": False, "passwordNeverExpires": True})
    assert bad.status_code == 400 and "user has no property 'passwordNeverExpires'" in bad.text
    bad = client.get(f"{tenant.graph_url}/users/{office['alice']}/authentication/smsMethods", headers=headers)
    assert bad.status_code == 400 and "segment 'smsMethods'" in bad.text
    bad = client.post(f"{tenant.graph_url}/users/{office['alice']}/assignLicense", headers=headers,
                      json={"addLicenses": [{"skuId": office["e3"], "plans": []}], "removeLicenses": []})
    assert bad.status_code == 400 and "assignedLicense has no property 'plans'" in bad.text
    assert len(tenant.violations) == 3
    assert tenant.user(office["alice"])["accountEnabled"] is True
    tenant.violations.clear()


def test_secrets_never_logged_or_raised(tenant: GraphTenant, office: dict[str, str], entra: EntraID,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """Spec-checked, not live: the bearer token, client secret, passwords and TAPs stay out of logs/errors."""
    caplog.set_level(logging.DEBUG)
    alice = entra.find_user("alice@contoso.test")
    password = entra.reset_password(alice)
    tap, _ = entra.issue_tap(alice)
    tenant.fail_next(400, code="Request_BadRequest", message="The specified password does not comply.",
                     match="PATCH")
    with pytest.raises(IntegrationError) as caught:
        entra.reset_password(alice)
    tokens = {r.authorization.removeprefix("Bearer ") for r in tenant.requests if r.authorization}
    assert tokens
    for secret in (password, tap, tenant.client_secret, *tokens):
        assert secret not in caplog.text and secret not in str(caught.value)

