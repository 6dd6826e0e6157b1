"""``check()``, the credential test of each connector: one cheap authenticated read, a plain answer when the
PSA accepts the credentials and :class:`PSAAuthError` when it refuses them.

Each PSA is its local test server (``tests/connectors/*_server.py``, following the vendor's published API:
SuperOps' GraphQL schema, Halo's and Freshdesk's OpenAPI documents, ConnectWise's and Autotask's
documented shapes) or the shipped local PSA simulator; each server fails the test on a request the vendor
would refuse.
"""

from __future__ import annotations

import pytest
from tests.connectors.autotask_server import run_autotask
from tests.connectors.connectwise_server import run_connectwise
from tests.connectors.freshdesk_server import run_freshdesk
from tests.connectors.halo_server import run_halo
from tests.connectors.superops_server import run_superops

from mspclaw.connectors.autotask import AutotaskConnector
from mspclaw.connectors.base import ChecksCredentials
from mspclaw.connectors.connectwise import ConnectWiseConnector
from mspclaw.connectors.freshdesk import FreshdeskConnector
from mspclaw.connectors.halo import HaloConnector
from mspclaw.connectors.http import HttpConnector
from mspclaw.connectors.local import LocalPSAConnector
from mspclaw.connectors.superops import SuperOpsConnector
from mspclaw.errors import PSAAuthError
from mspclaw.simulators.local_psa import run_local_psa

pytestmark = pytest.mark.anyio


async def _both(good: HttpConnector, bad: HttpConnector) -> str:
    """``good``'s answer; ``bad`` must be refused as an authentication failure. Both are closed."""
    try:
        assert isinstance(good, ChecksCredentials) and isinstance(bad, ChecksCredentials)
        said = await good.check()
        with pytest.raises(PSAAuthError):
            await bad.check()
        return said
    finally:
        await good.aclose()
        await bad.aclose()


async def test_superops_checks_the_token_with_the_status_list() -> None:
    async with run_superops(token="so-token", subdomain="acmemsp") as fake:
        def make(token: str) -> SuperOpsConnector:
            return SuperOpsConnector(subdomain="acmemsp", token=token, endpoint=fake.url, max_retries=0)
        said = await _both(make("so-token"), make("wrong"))
    assert "accepted the API token" in said and "7 ticket statuses" in said


async def test_connectwise_checks_the_keys_with_one_ticket() -> None:
    async with run_connectwise() as fake:
        fake.add_ticket()

        def make(private_key: str) -> ConnectWiseConnector:
            return ConnectWiseConnector(site=fake.url, company=fake.company, public_key=fake.public_key,
                                        private_key=private_key, client_id=fake.client_id, max_retries=0)
        said = await _both(make(fake.private_key), make("wrong"))
        assert fake.violations == []
        listed = fake.requests("GET", "/service/tickets")
        assert listed and all(seen.query["pageSize"] == "1" for seen in listed)
    assert said == (f"ConnectWise accepted the API member's keys for company {fake.company}; "
                    "it shows at least one ticket")


async def test_halo_checks_the_client_credentials_with_the_statuses() -> None:
    async with run_halo() as fake:
        def make(secret: str) -> HaloConnector:
            return HaloConnector(host=fake.url, client_id=fake.client_id, client_secret=secret, tenant=fake.tenant,
                                 max_retries=0)
        said = await _both(make(fake.client_secret), make("wrong"))
        assert fake.violations == []
    assert said == "Halo issued a token for this client id and lists 5 ticket statuses"


async def test_autotask_checks_the_api_user_with_the_ticket_fields() -> None:
    async with run_autotask() as fake:
        def make(secret: str) -> AutotaskConnector:
            return AutotaskConnector(username=fake.username, integration_code=fake.integration_code, secret=secret,
                                     discovery_url=fake.url, max_retries=0)
        said = await _both(make(fake.secret), make("wrong"))
        assert fake.violations == []
    assert said.startswith(f"Autotask accepted the API user at {fake.url}/atservicesrest/v1.0")


async def test_freshdesk_checks_the_api_key_with_one_ticket() -> None:
    async with run_freshdesk() as fake:
        def make(key: str) -> FreshdeskConnector:
            return FreshdeskConnector(domain="acme", api_key=key, base_url=fake.url, max_retries=0)
        said = await _both(make(fake.api_key), make("wrong"))
        assert fake.violations == []
    assert said == "Freshdesk accepted the API key for acme.freshdesk.com; it shows no tickets yet"


async def test_the_local_psa_checks_the_token() -> None:
    async with run_local_psa(api_token="lpsa-good") as psa:
        said = await _both(LocalPSAConnector(psa.base_url, "lpsa-good"), LocalPSAConnector(psa.base_url, "wrong"))
    assert said == "the local PSA accepted the API token; it shows no tickets yet"
