"""A running server picks up installed, updated and removed playbooks without a restart.

The whole composition root runs (``wiring.build`` and ``Services.start`` on a SQLite data directory);
the playbook directory is written the way ``mspclaw playbooks install`` writes it, and the test waits
for the server's reloader to put the new set in service. An
unsigned file is loaded with a warning under ``warn`` (``enforce`` is tested on the loader itself:
``test_registry_signing.py``), and a broken file is refused while the running set stays.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.playbooks.registry_helpers import community_playbook, make_signer, wait_for

from mspclaw.playbooks.loader import PlaybookError
from mspclaw.playbooks.reload import PlaybookReloader
from mspclaw.playbooks.verified import Verified, sign_path
from mspclaw.settings import Settings
from mspclaw.wiring import build, load_playbooks

pytestmark = pytest.mark.anyio


async def test_running_server_reloads_changed_playbooks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    signer = make_signer(tmp_path)
    books = tmp_path / "books"
    community_playbook(books)
    sign_path(books, signer.key, signee="Acme MSP")
    settings = Settings(data_dir=tmp_path / "data", playbook_dirs=[books], playbook_trust="warn",
                        playbook_trusted_keys=signer.trust_file, playbook_reload_s=0.05)
    services = build(settings)
    await services.start(workers=False)
    try:
        def ids() -> set[str]:
            return {b.id for b in services.tickets.playbooks}

        assert "acme_printer" in ids() and len(ids()) == 17
        community_playbook(books, book="wifi", new_id="acme_wifi", version="1.0.0")
        sign_path(books, signer.key, signee="Acme MSP")
        assert await wait_for(lambda: "acme_wifi" in ids()), "the new playbook was not picked up"
        # an unsigned file under warn: loaded, and said
        with caplog.at_level(logging.WARNING):
            community_playbook(books, book="vpn", new_id="acme_vpn", version="1.0.0")
            assert await wait_for(lambda: "acme_vpn" in ids())
        assert "acme_vpn 1.0.0: unsigned" in caplog.text
        # a broken file: the reload is refused and the running set stays in service
        with caplog.at_level(logging.ERROR):
            (books / "acme_vpn.yaml").write_text("id: [broken\n")
            assert await wait_for(lambda: "were not reloaded (the running set stays)" in caplog.text)
        assert "acme_vpn" in ids() and "acme_wifi" in ids()
        (books / "acme_vpn.yaml").unlink()
        (books / "acme_wifi.yaml").unlink()
        assert await wait_for(lambda: "acme_wifi" not in ids()), "the removal was not picked up"
    finally:
        await services.stop()
        services.close()


async def test_reloader_only_loads_on_change(tmp_path: Path) -> None:
    books = tmp_path / "books"
    community_playbook(books)
    loads: list[int] = []
    applied: list[int] = []
    settings = Settings(data_dir=tmp_path / "data", playbook_dirs=[books], playbook_trust="off")

    def load() -> Verified:
        loads.append(1)
        return load_playbooks(settings)

    async def apply(got: Verified) -> None:
        applied.append(len(got.books))

    reloader = PlaybookReloader([books], load, apply)
    assert await reloader.reload() is False and not loads
    (books / "acme_printer.yaml").write_text("id: [broken\n")
    assert await reloader.reload() is False and reloader.problems and not applied
    community_playbook(books)
    assert await reloader.reload() is True and applied == [17]
    with pytest.raises(PlaybookError, match="no such directory of playbooks"):
        load_playbooks(Settings(data_dir=tmp_path / "data", playbook_dirs=[tmp_path / "missing"]))
