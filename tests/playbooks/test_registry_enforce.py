"""Signature checks are on by default: the server leaves out each unsigned, altered, revoked or untrusted-key
playbook, says which file, why and how to fix it (the log once, the audit trail once, ``/readyz``,
``GET /api/playbooks``), and runs the rest; the MSP's own key is made in the data directory on first start,
trusted at tier local, and signs what the API (the builder's service) saves and what ``mspclaw playbooks sign``
signs with no settings at all.

The real server runs (uvicorn, SQLite in a temporary data directory, the playbook directory on disk, the reloader);
signatures are real Ed25519 signatures; the CLI runs through Typer's runner in this process.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from tests.conftest import live_server
from tests.playbooks.registry_helpers import community_playbook, make_signer, wait_for
from tests.playbooks.test_registry_install import invoke

from mspclaw.playbooks.canonical import content_hash, load_yaml
from mspclaw.playbooks.signing import ensure_key
from mspclaw.playbooks.verified import sign_path
from mspclaw.settings import Settings
from mspclaw.wiring import PLAYBOOK_KEY_FILE, load_playbooks

pytestmark = pytest.mark.anyio


def test_enforce_is_the_default() -> None:
    assert Settings().playbook_trust == "enforce"


async def test_server_refuses_each_untrusted_playbook_says_why_once_and_runs_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, ours = tmp_path / "data", tmp_path / "ours"
    own = ensure_key(data / PLAYBOOK_KEY_FILE)  # what an earlier start made
    stranger = make_signer(tmp_path, "Stranger")
    community_playbook(ours, new_id="acme_printer")  # signed by a key nobody pinned
    sign_path(ours / "acme_printer.yaml", stranger.key, signee="Stranger")
    for book, new_id in (("wifi", "acme_wifi"), ("vpn", "acme_vpn"), ("slow_computer", "acme_slow"),
                         ("disk_full", "acme_disk")):
        community_playbook(ours, book=book, new_id=new_id, version="1.0.0")
    sign_path(ours / "acme_vpn.yaml", own, signee="Acme MSP")
    sign_path(ours / "acme_slow.yaml", own, signee="Acme MSP")
    sign_path(ours / "acme_disk.yaml", own, signee="Acme MSP")
    vpn = ours / "acme_vpn.yaml"
    vpn.write_text(vpn.read_text(encoding="utf-8").replace("name: ", "name: Evil ", 1), encoding="utf-8")
    revoked = content_hash(load_yaml((ours / "acme_disk.yaml").read_text(encoding="utf-8"), "acme_disk.yaml"))
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps({"revoked": [{"sha256": revoked, "reason": "wipes the wrong folder"}]}))
    # acme_wifi is unsigned; acme_slow is the one signed by the MSP's own key, as it is

    with caplog.at_level(logging.WARNING, logger="mspclaw"):
        async with live_server(tmp_path, playbook_dirs=[ours], playbook_trusted_keys=trust,
                               playbook_reload_s=0.05) as live:
            services = live.services

            def ids() -> set[str]:
                return {b.id for b in services.tickets.playbooks}

            assert "acme_slow" in ids() and "printer" in ids()
            assert not ids() & {"acme_printer", "acme_wifi", "acme_vpn", "acme_disk"}
            why = {r.book_id: r.line() for r in services.playbook_refusals.current}
            key = data.absolute() / PLAYBOOK_KEY_FILE
            sign_wifi = f"`mspclaw playbooks sign {ours / 'acme_wifi.yaml'} --key {key}`"
            assert why["acme_wifi"].startswith(f"{ours / 'acme_wifi.yaml'}: playbook acme_wifi 1.0.0: unsigned")
            assert sign_wifi in why["acme_wifi"]
            assert f"{vpn}: playbook acme_vpn 1.0.0: altered since it was signed" in why["acme_vpn"]
            assert "acme_disk 1.0.0: revoked (wipes the wrong folder" in why["acme_disk"]
            assert f"mspclaw playbooks remove acme_disk --dir {ours}" in why["acme_disk"]
            assert "acme_printer 1.1.0: signed by a key not trusted (signed by key ed25519:" in why["acme_printer"]
            assert "MSPCLAW_PLAYBOOK_TRUSTED_KEYS" in why["acme_printer"]

            # the console's list (GET /api/playbooks) and /readyz say it too
            rows = {p["id"]: p for p in (await live.http.get("/api/playbooks")).json()}
            assert not rows["acme_wifi"]["loaded"] and sign_wifi in rows["acme_wifi"]["refused"]
            assert rows["acme_slow"]["loaded"] and rows["acme_slow"]["refused"] == ""
            ready = (await live.http.get("/readyz")).json()["checks"]["playbooks"]
            assert ready["ok"] and "refused (not loaded)" in ready["detail"]
            assert all(str(ours / f"{i}.yaml") in ready["detail"] for i in ("acme_wifi", "acme_vpn", "acme_disk"))

            # audited once each; a reload (another file changes) neither logs nor audits them again
            assert await wait_for(lambda: len([e for e in services.audit.query(kind="playbook_untrusted")
                                               if Path(e.data["file"]).parent == ours]) == 4)
            community_playbook(ours, book="printer", new_id="acme_printer2", version="1.0.0")
            sign_path(ours / "acme_printer2.yaml", own, signee="Acme MSP")
            assert await wait_for(lambda: "acme_printer2" in ids()), "the signed playbook was not picked up"
            # the unsigned one, signed now with the MSP's key, goes into service on the next reload
            sign_path(ours / "acme_wifi.yaml", own, signee="Acme MSP")
            assert await wait_for(lambda: "acme_wifi" in ids()), "the playbook signed now was not picked up"
            events = [e for e in services.audit.query(kind="playbook_untrusted")
                      if Path(e.data["file"]).parent == ours]
            assert sorted((e.data["playbook"], e.data["status"], e.data["refused"]) for e in events) == [
                ("acme_disk", "revoked", True), ("acme_printer", "untrusted", True), ("acme_vpn", "altered", True),
                ("acme_wifi", "unsigned", True)]
            # pinning the stranger's key in the trust file is picked up without a restart
            trust.write_text(json.dumps({"keys": [{"name": "Stranger", "tier": "community",
                                                   "public_key": stranger.public}],
                                         "revoked": [{"sha256": revoked, "reason": "wipes the wrong folder"}]}))
            assert await wait_for(lambda: "acme_printer" in ids()), "the newly pinned key was not picked up"
            assert {r.book_id for r in services.playbook_refusals.current if r.path.parent == ours} == {
                "acme_vpn", "acme_disk"}
    logged = [r.getMessage() for r in caplog.records if "playbook refused (not loaded)" in r.getMessage()]
    for book in ("acme_wifi", "acme_vpn", "acme_disk", "acme_printer"):
        assert len([m for m in logged if f"playbook {book} " in m]) == 1, (book, logged)


async def test_a_playbook_saved_through_the_api_loads_under_enforce_with_no_settings(tmp_path: Path) -> None:
    """No MSPCLAW_PLAYBOOK_SIGNING_KEY, no trust file: the key the server made signs the save, and it loads."""
    ours = tmp_path / "ours"
    community_playbook(ours, book="wifi", new_id="acme_wifi", version="1.0.0")  # unsigned: refused, not fatal
    async with live_server(tmp_path, playbook_dirs=[ours], playbook_reload_s=0.05) as live:
        key = tmp_path / "data" / PLAYBOOK_KEY_FILE
        assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
        assert live.services.settings.playbook_trust == "enforce" and live.services.settings.playbook_signing_key \
            is None
        text = (ours / "acme_wifi.yaml").read_text(encoding="utf-8").replace("id: acme_wifi\n", "id: acme_new\n")
        r = await live.http.put("/api/playbooks/acme_new", json={"yaml": text})
        assert r.status_code == 200, r.text
        assert r.json()["signed"] is True and r.json()["note"] == ""
        assert await wait_for(lambda: "acme_new" in {b.id for b in live.services.tickets.playbooks})
        assert "acme_wifi" not in {b.id for b in live.services.tickets.playbooks}
        (event,) = live.services.audit.query(kind="playbook_saved")
        assert event.data["signed"] is True


def test_sign_with_the_default_local_key_then_the_server_loads_it(tmp_path: Path) -> None:
    data, ours = tmp_path / "data", tmp_path / "ours"
    community_playbook(ours, book="wifi", new_id="acme_wifi", version="1.0.0")
    settings = Settings(data_dir=data, playbook_dirs=[ours])
    before = load_playbooks(settings)  # the server's first start: its key is made; the playbook is refused
    assert "acme_wifi" not in {b.id for b in before.books}
    (refused,) = [r for r in before.refused if r.path.parent == ours]
    assert refused.status == "unsigned"
    code, out, err = invoke("verify", str(ours), data_dir=data)
    assert code == 1 and "unsigned" in out
    code, out, err = invoke("sign", str(ours), data_dir=data)  # no --key: the data directory's key
    assert code == 0, err
    assert "signed acme_wifi 1.0.0" in out and str(data.absolute() / PLAYBOOK_KEY_FILE) in out
    after = load_playbooks(settings)
    assert "acme_wifi" in {b.id for b in after.books} and not [r for r in after.refused if r.path.parent == ours]
    code, out, err = invoke("verify", str(ours), data_dir=data)  # the server's trust by default: its own key too
    assert code == 0 and "local" in out, out + err
    # signing before any server start makes the key the server then uses
    fresh, mine = tmp_path / "fresh", tmp_path / "mine"
    community_playbook(mine, book="vpn", new_id="acme_vpn", version="1.0.0")
    assert invoke("sign", str(mine), data_dir=fresh)[0] == 0
    assert "acme_vpn" in {b.id for b in load_playbooks(Settings(data_dir=fresh, playbook_dirs=[mine])).books}
