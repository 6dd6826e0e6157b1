"""``/api/playbooks`` against the real server (uvicorn, SQLite, the MSP's playbook directory on disk): the
same service as the console's builder, so the same checks, messages, signing and audit.

What it shows: the list says which playbooks are the shipped library, the MSP's own and loaded; a playbook
reads back as its YAML and as the loader parses it; a save is checked exactly as ``mspclaw playbooks validate``
checks the file (the same ``FILE:LINE: FIELD: MESSAGE`` lines), written byte for byte with its comments,
signed with the MSP's key, audited, and then loaded by the running server; the library is read-only, only an
admin of every client saves, and an oversized body is refused; match and dry-run answer as the builder does.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest
import yaml
from tests.conftest import Live, live_server
from tests.console.test_playbook_builder import SEED

from mspclaw.playbooks.loader import LIBRARY, PlaybookError, load_file
from mspclaw.playbooks.signing import generate_key, read_signatures

pytestmark = pytest.mark.anyio

PRINTER = (LIBRARY / "printer.yaml").read_text(encoding="utf-8")


def local_copy(book_id: str = "printer_local") -> str:
    """The library's printer playbook under another id, with a comment of the MSP's own."""
    text = PRINTER.replace("id: printer\n", f"id: {book_id}\n", 1)
    assert text != PRINTER, "the library's printer playbook starts its id line as expected"
    return "# Ours: adapted from the library's printer playbook\n" + text


def seeded(tmp: Path) -> Path:
    """The MSP's playbook directory with one playbook of its own (the server refuses an empty one)."""
    ours = tmp / "ours"
    ours.mkdir()
    (ours / "acme_scanner.yaml").write_text(SEED, encoding="utf-8")
    return ours


async def key_for(live: Live, role: str, clients: list[str]) -> httpx.AsyncClient:
    r = await live.http.post("/api/keys", json={"name": f"{role}-{len(clients)}", "role": role, "clients": clients,
                                                "all_clients": not clients})
    assert r.status_code == 201, r.text
    return httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {r.json()['key']}"}, timeout=30)


async def test_list_read_save_sign_audit_and_reload(tmp_path: Path) -> None:
    ours = seeded(tmp_path)
    key = tmp_path / "msp.key"
    generate_key(key)
    async with live_server(tmp_path, playbook_dirs=[ours], playbook_signing_key=key, playbook_reload_s=0.2) as live:
        http = live.http
        listed = (await http.get("/api/playbooks")).json()
        printer = next(p for p in listed if p["id"] == "printer")
        assert printer["library"] and not printer["own"] and printer["loaded"] and printer["file"] == "printer.yaml"
        assert [p["id"] for p in listed if p["own"]] == ["acme_scanner"]

        shown = (await http.get("/api/playbooks/printer")).json()
        assert shown["yaml"] == PRINTER and shown["problems"] == [] and shown["parsed"]["id"] == "printer"
        assert shown["library"] and shown["loaded"]
        missing = await http.get("/api/playbooks/no_such_book")
        assert missing.status_code == 404 and "no_such_book" in missing.json()["detail"]["message"]

        # the library is read-only
        r = await http.put("/api/playbooks/printer", json={"yaml": PRINTER})
        assert r.status_code == 403 and "read-only" in r.json()["detail"]["message"]

        # a new playbook: written byte for byte (its comment kept), signed, audited, then loaded
        text = local_copy()
        r = await http.put("/api/playbooks/printer_local", json={"yaml": text})
        assert r.status_code == 200, r.text
        assert r.json() == {"id": "printer_local", "version": shown["parsed"]["version"], "file": "printer_local.yaml",
                            "created": True, "signed": True, "note": ""}
        assert (ours / "printer_local.yaml").read_text(encoding="utf-8") == text
        assert "printer_local" in read_signatures(ours)
        (event,) = live.services.audit.query(kind="playbook_saved")
        assert event.data["playbook"] == "printer_local" and event.data["created"] is True
        assert event.data["signed"] is True and event.data["file"] == "printer_local.yaml"
        for _ in range(100):
            if "printer_local" in {b.id for b in live.services.tickets.playbooks}:
                break
            await asyncio.sleep(0.1)
        row = next(p for p in (await http.get("/api/playbooks")).json() if p["id"] == "printer_local")
        assert row["own"] and not row["library"] and row["loaded"]

        # saved again with a change: the same file replaced, not a new one
        changed = text.replace("# Ours:", "# Ours (v2):")
        r = await http.put("/api/playbooks/printer_local", json={"yaml": changed})
        assert r.status_code == 200 and r.json()["created"] is False, r.text
        assert (ours / "printer_local.yaml").read_text(encoding="utf-8") == changed
        assert len(live.services.audit.query(kind="playbook_saved")) == 2


async def test_a_bad_playbook_gets_the_validate_messages_and_nothing_is_written(tmp_path: Path) -> None:
    ours = seeded(tmp_path)
    async with live_server(tmp_path, playbook_dirs=[ours]) as live:
        data = yaml.safe_load(local_copy("broken_printer"))
        data["steps"][0]["tool"] = "no_such_tool"
        data["max_steps"] = "many"
        bad = yaml.safe_dump(data, sort_keys=False)
        r = await live.http.put("/api/playbooks/broken_printer", json={"yaml": bad})
        assert r.status_code == 400, r.text
        message = r.json()["detail"]["message"]
        # what `mspclaw playbooks validate` (load_file) prints for the same text in a file of that name
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        (scratch / "broken_printer.yaml").write_text(bad, encoding="utf-8")
        with pytest.raises(PlaybookError) as raised:
            load_file(scratch / "broken_printer.yaml")
        problems = [p.replace(str(scratch / "broken_printer.yaml"), "broken_printer.yaml")
                    for p in raised.value.problems]
        assert problems and all(p in message for p in problems[:10]), (problems, message)
        assert "broken_printer.yaml:" in message and "no_such_tool" in message
        assert [p.name for p in ours.iterdir()] == ["acme_scanner.yaml"]

        # the id in the YAML must be the path's
        r = await live.http.put("/api/playbooks/other_id", json={"yaml": local_copy("printer_local")})
        assert r.status_code == 400 and "'printer_local' is not the playbook edited" in r.json()["detail"]["message"]
        # an id the library already has, under another path
        r = await live.http.put("/api/playbooks/printer_x", json={"yaml": PRINTER.replace("id: printer\n",
                                                                                           "id: printer_x\n", 1)})
        assert r.status_code == 200, r.text
        shutil.copy(ours / "printer_x.yaml", ours / "twin.yaml")
        twin = (await live.http.get("/api/playbooks/printer_x")).json()
        assert twin["problems"] and "also used by" in twin["problems"][0]

        # an oversized body is refused before anything is read as YAML
        r = await live.http.put("/api/playbooks/huge", json={"yaml": "#" * (300 * 1024)})
        assert r.status_code == 422 and not (ours / "huge.yaml").exists()


async def test_who_saves_and_match_and_dry_run(tmp_path: Path) -> None:
    ours = seeded(tmp_path)
    async with live_server(tmp_path, playbook_dirs=[ours]) as live:
        acme = await live.client("Acme Dental")
        scoped_admin, tech, viewer = (await key_for(live, "admin", [acme]), await key_for(live, "tech", [acme]),
                                      await key_for(live, "viewer", [acme]))
        try:
            body = {"yaml": local_copy()}
            for who in (scoped_admin, tech, viewer):
                r = await who.put("/api/playbooks/printer_local", json=body)
                assert r.status_code == 403, r.text
            assert not (ours / "printer_local.yaml").exists()
            assert (await viewer.get("/api/playbooks/printer")).status_code == 200

            ticket = {"subject": "Nothing prints on floor 2", "body": "my jobs are stuck in the print queue",
                      "os": "windows"}
            r = await tech.post("/api/playbooks/printer/match", json=ticket)
            assert r.status_code == 200, r.text
            found = r.json()
            assert found["matched"] and found["playbook"] == "printer" and found["score"] > 0 and found["why"]
            r = await tech.post("/api/playbooks/printer/match", json={"subject": "VPN will not connect from home"})
            assert r.status_code == 200 and not r.json()["matched"] and r.json()["playbook"] != "printer"
            r = await tech.post("/api/playbooks/printer/match", json={})
            assert r.status_code == 400 and "subject or body" in r.json()["detail"]["message"]
            assert (await viewer.post("/api/playbooks/printer/match", json={"subject": "printer"})).status_code == 403

            r = await tech.post("/api/playbooks/printer/dry-run", json={"snapshot": "windows"})
            assert r.status_code == 200, r.text
            ran = r.json()
            assert ran["snapshot"] == "windows" and ran["steps"] and ran["reply"] and ran["outcome"]
            assert all(s["result"] in ("ok", "failed", "skipped") for s in ran["steps"])
            r = await tech.post("/api/playbooks/printer/dry-run", json={"snapshot": "amiga"})
            assert r.status_code == 400 and "choose a recorded device" in r.json()["detail"]["message"]
            r = await tech.post("/api/playbooks/printer/dry-run", json={"site": "nowhere"})
            assert r.status_code == 400 and "choose a recorded site" in r.json()["detail"]["message"]
        finally:
            for who in (scoped_admin, tech, viewer):
                await who.aclose()
