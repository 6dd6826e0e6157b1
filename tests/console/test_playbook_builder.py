"""The playbook builder over HTTP, against the real server on loopback (its PostgreSQL or SQLite store as
configured for the test run), signed in with password and TOTP as a browser would.

The editor's form is read back from the page the way a browser submits it (every input, checked box,
selected option and textarea), changed, and posted. Validation is compared with ``mspclaw playbooks
validate`` run as a real process on the YAML the builder shows; the dry-run replays the recorded device
snapshots shipped with the package (``playbooks/snapshots``).
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from tests.conftest import live_server
from tests.console.signing_in import DANA, VIC, register, signed_in

from mspclaw.playbooks.schema import Playbook

pytestmark = pytest.mark.anyio

ADA: dict[str, Any] = {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]}
SAM: dict[str, Any] = {"name": "Sam Scoped", "email": "sam@msp.example", "role": "admin", "clients": ["Acme Dental"]}
JSON = {"Accept": "application/json"}
SEED = """\
# Our scanner playbook: kept by the service desk, reviewed every quarter.
id: acme_scanner
name: Scanner problems
version: "1.0.0"
category: printer
description: >
  The office scanner does not scan to e-mail. Read the network configuration and test the way out.
os: [linux, macos, windows]
triggers:
  keywords: [scanner, scanning]  # what our users call it
  phrases: [scanner not working, scan to email]
tools: [network_status, check_connectivity]
requires_approval: []
steps:
  # read before anything else
  - id: net
    title: Read the network configuration
    tool: network_status
  - id: web
    title: Test the way out
    tool: check_connectivity
    args: {host: www.msftconnecttest.com, port: 443, timeout_s: 5}
success_check: "web.reachable"
reply:
  resolved: your computer reaches the mail server again; scan once more.
  escalated: a technician will look at the scanner with you.
"""


class FormReader(HTMLParser):
    """The fields a browser submits for ``<form id=builder>``: inputs, checked boxes, selects, textareas."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: list[tuple[str, str]] = []
        self._inside = False
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._area: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == "builder":
            self._inside = True
        if not self._inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind == "checkbox":
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value", "on")))
            else:
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._options = a.get("name"), []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._area, self._text = a.get("name"), ""

    def handle_data(self, data: str) -> None:
        if self._area is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False
        elif tag == "select" and self._select is not None:
            chosen = [v for v, s in self._options if s] or [v for v, _ in self._options[:1]]
            self.fields.append((self._select, chosen[0] if chosen else ""))
            self._select = None
        elif tag == "textarea" and self._area is not None:
            self.fields.append((self._area, self._text.removeprefix("\n")))
            self._area = None


def form_of(page: str) -> list[tuple[str, str]]:
    reader = FormReader()
    reader.feed(page)
    assert reader.fields, page[:1000]
    return reader.fields


def changed(fields: list[tuple[str, str]], **values: str | list[str]) -> list[tuple[str, str]]:
    """``fields`` with each named field replaced (a list: one pair per value, as checkboxes send)."""
    names = {k.replace("__", "."): v for k, v in values.items()}
    kept = [(k, v) for k, v in fields if k not in names]
    for name, value in names.items():
        kept.extend((name, v) for v in (value if isinstance(value, list) else [value]))
    return kept


def problems_of(page: str) -> list[str]:
    block = re.search(r'id="problems">.*?<ul>(.*?)</ul>', page, re.S)
    return [html.unescape(p) for p in re.findall(r"<li>(.*?)</li>", block.group(1), re.S)] if block else []


def yaml_of(page: str) -> str:
    found = re.search(r'<pre id="yaml">(.*?)</pre>', page, re.S)
    assert found, page[:2000]
    return html.unescape(found.group(1))


def seeded(tmp: Path) -> Path:
    ours = tmp / "ours"
    ours.mkdir()
    (ours / "acme_scanner.yaml").write_text(SEED, encoding="utf-8")
    return ours


async def open_editor(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text[:1000]
    return page.text


KIOSK: dict[str, str | list[str]] = {
         "id": "acme_kiosk", "name": "Kiosk browser", "version": "1.0.0", "category": "browser",
         "description": "The lobby kiosk's browser shows an error.", "os": ["linux", "windows"],
         "keywords": "kiosk", "phrases": "kiosk screen frozen\nkiosk page error", "success_check": "web.reachable",
         "reply_resolved": "the kiosk shows the page again.", "reply_escalated": "a technician will come by.",
         "nsteps": "2", "s0.id": "renew", "s0.title": "Ask the router for a fresh address", "s0.tool": "renew_dhcp",
         "s1.id": "web", "s1.title": "Test the way out", "s1.tool": "check_connectivity",
         "s1.arg.host": "www.msftconnecttest.com", "s1.arg.port": "443", "s1.arg.timeout_s": "5"}


def kiosk(csrf: str, **extra: str | list[str]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = [("csrf", csrf)]
    for key, value in {**KIOSK, **{k.replace("__", "."): v for k, v in extra.items()}}.items():
        fields.extend((key, v) for v in (value if isinstance(value, list) else [value]))
    return fields


async def post(client: httpx.AsyncClient, path: str, fields: list[tuple[str, str]] | dict[str, str],
               headers: dict[str, str] | None = None) -> httpx.Response:
    """The form posted as a browser sends it: urlencoded, a repeated name once per value."""
    pairs = list(fields.items()) if isinstance(fields, dict) else fields
    return await client.post(path, content=urlencode(pairs), headers={
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


def csrf_in(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def validate_cli(path: Path) -> list[str]:
    """``mspclaw playbooks validate PATH`` as a process: its problem lines, the path shown as the file name."""
    done = subprocess.run([sys.executable, "-m", "mspclaw", "playbooks", "validate", str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "400"}, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    return [line.replace(str(path), path.name) for line in done.stderr.splitlines()
            if line.startswith(str(path))]


async def test_validation_speaks_like_playbooks_validate(tmp_path: Path) -> None:
    async with live_server(tmp_path, playbook_dirs=[seeded(tmp_path)]) as live:
        register(live, ADA)
        ada, _ = await signed_in(live, ADA["email"])
        try:
            csrf = csrf_in(await open_editor(ada, "/playbooks/new"))
            # renew_dhcp changes the machine and is not listed for approval
            r = await post(ada, "/playbooks/_new/edit", kiosk(csrf))
            assert r.status_code == 200
            shown = problems_of(r.text)
            assert len(shown) == 1 and "renew_dhcp" in shown[0] and "requires_approval" in shown[0], shown
            saved = tmp_path / "acme_kiosk.yaml"
            saved.write_text(yaml_of(r.text), encoding="utf-8")
            assert shown == validate_cli(saved)
            # a version that is not one, a condition that does not parse: each with its line in the YAML shown
            r = await post(ada, "/playbooks/_new/edit", kiosk(csrf, s1__when="web ==", version="one",
                                                               approve="renew_dhcp"))
            shown = problems_of(r.text)
            assert len(shown) == 2 and shown[0].startswith("acme_kiosk.yaml:3: version:"), shown
            saved.write_text(yaml_of(r.text), encoding="utf-8")
            assert shown == validate_cli(saved)
            assert 'id="save"' in r.text  # an admin may save once it is valid
            refused = await post(ada, "/playbooks/_new/save", kiosk(csrf, s1__when="web =="))
            assert refused.status_code == 400 and "fix the problems" in refused.text
            assert not (tmp_path / "ours" / "acme_kiosk.yaml").exists()

            # an argument that is not of its type says which, where and what it must be
            r = await post(ada, "/playbooks/_new/edit", kiosk(csrf, approve="renew_dhcp", s1__arg__port="abc"))
            assert "steps.1.args.port: 'abc' is not a whole number" in problems_of(r.text), problems_of(r.text)

            # an id the library already uses is a problem too, in validate's words
            r = await post(ada, "/playbooks/_new/edit", kiosk(csrf, id="printer", approve="renew_dhcp"))
            assert any(p.startswith("printer.yaml:1: id: 'printer' is also used by") for p in problems_of(r.text))
        finally:
            await ada.aclose()


async def test_save_keeps_comments_signs_and_audits(tmp_path: Path) -> None:
    from mspclaw.playbooks.signing import generate_key, read_signatures

    ours = seeded(tmp_path)
    key = tmp_path / "msp.key"
    generate_key(key)
    async with live_server(tmp_path, playbook_dirs=[ours], playbook_signing_key=key) as live:
        register(live, ADA)
        ada, _ = await signed_in(live, ADA["email"])
        try:
            page = await open_editor(ada, "/playbooks/acme_scanner/edit")
            assert 'id="valid"' in page and "Scanner problems" in page
            # saved unchanged: the file stays byte for byte
            r = await post(ada, "/playbooks/acme_scanner/save", form_of(page))
            assert r.status_code == 303 and r.headers["location"] == "/playbooks/acme_scanner/edit?saved=1"
            assert (ours / "acme_scanner.yaml").read_text() == SEED
            # a new name and a keyword: those change, every comment stays
            fields = changed(form_of(page), name="Scanner and scan-to-mail", keywords="scanner, scanning, scans")
            r = await post(ada, "/playbooks/acme_scanner/save", fields)
            assert r.status_code == 303, r.text[:2000]
            text = (ours / "acme_scanner.yaml").read_text()
            for comment in ("# Our scanner playbook: kept by the service desk", "# what our users call it",
                            "# read before anything else"):
                assert comment in text, text
            data = yaml.safe_load(text)
            assert data["name"] == "Scanner and scan-to-mail"
            assert data["triggers"]["keywords"] == ["scanner", "scanning", "scans"]
            assert data["steps"][1]["args"] == {"host": "www.msftconnecttest.com", "port": 443, "timeout_s": 5.0}
            assert data["version"] == "1.0.0" and 'version: "1.0.0"' in text  # its quoting kept
            Playbook.model_validate(data)
            after = await ada.get("/playbooks/acme_scanner/edit?saved=1")
            assert "Saved to" in after.text
            # signed with the MSP's key, and audited
            assert "acme_scanner" in read_signatures(ours)
            events = live.services.audit.query(kind="playbook_saved")
            assert len(events) == 2 and events[-1].data["playbook"] == "acme_scanner"
            assert events[-1].actor == ADA["name"] and events[-1].data["signed"] is True
        finally:
            await ada.aclose()


async def test_dry_run_gives_each_step_and_the_reply(tmp_path: Path) -> None:
    async with live_server(tmp_path, playbook_dirs=[seeded(tmp_path)]) as live:
        register(live, DANA)
        dana, _ = await signed_in(live, DANA["email"])
        try:
            page = await open_editor(dana, "/playbooks/acme_scanner/edit")
            assert 'id="save-refused"' in page and "Only admins save" in page  # a technician reads and tries
            r = await post(dana, "/playbooks/acme_scanner/dry-run", changed(form_of(page), snap_os="windows"))
            assert r.status_code == 200, r.text[:2000]
            rows = re.findall(r'<tr class="(ok|failed|skipped)"><td>\d+</td><td>([^<]+)</td><td><code>([a-z_]+)',
                              r.text)
            assert rows == [("ok", "Read the network configuration", "network_status"),
                            ("ok", "Test the way out", "check_connectivity")], r.text[r.text.find("dry-result"):][:2000]
            assert re.search(r'id="outcome" class="tag">resolved<', r.text)
            assert "your computer reaches the mail server again; scan once more." in r.text

            # a destructive step: the dry-run shows the approval it asks for
            new = csrf_in(await open_editor(dana, "/playbooks/new"))
            r = await post(dana, "/playbooks/_new/dry-run", kiosk(new, approve="renew_dhcp", snap_os="linux"))
            assert r.status_code == 200, r.text[:2000]
            assert re.search(r"<td>ok \(approved\)</td>", r.text), r.text[r.text.find("dry-result"):][:2000]
            assert "the kiosk shows the page again." in r.text

            # the live match box: JSON with the verdict and why
            r = await post(dana, "/playbooks/acme_scanner/match", changed(
                form_of(page), t_subject="scanner not working, scan to email fails", t_os="windows"), headers=JSON)
            answer = r.json()
            assert answer["matched"] is True and answer["playbook"] == "acme_scanner" and "scanner" in answer["why"]
            r = await post(dana, "/playbooks/acme_scanner/match", changed(
                form_of(page), t_subject="my printer is offline"), headers=JSON)
            assert r.json()["matched"] is False
        finally:
            await dana.aclose()


async def test_who_may_save_and_forged_forms(tmp_path: Path) -> None:
    ours = seeded(tmp_path)
    async with live_server(tmp_path, playbook_dirs=[ours]) as live:
        register(live, ADA, SAM, DANA, VIC)
        await live.client("Acme Dental")
        clients = {email: (await signed_in(live, email))[0] for email in (ADA["email"], SAM["email"], DANA["email"],
                                                                          VIC["email"])}
        try:
            ada = clients[ADA["email"]]
            page = await open_editor(ada, "/playbooks/acme_scanner/edit")
            fields = changed(form_of(page), name="Changed by someone")
            for email, status, words in ((DANA["email"], 403, "Only admins save playbooks"),
                                         (SAM["email"], 403, "only an admin of every client"),
                                         (VIC["email"], 403, "Only technicians and admins")):
                own = csrf_in(await open_editor(clients[email], "/playbooks/acme_scanner/edit"))
                r = await post(clients[email], "/playbooks/acme_scanner/save", changed(fields, csrf=own))
                assert r.status_code == status and words in r.text, (email, r.text[:1500])
            # no CSRF token, a wrong one, another site's Origin: nothing written
            r = await post(ada, "/playbooks/acme_scanner/save", [f for f in fields if f[0] != "csrf"])
            assert r.status_code == 403 and "expired" in r.text
            r = await post(ada, "/playbooks/acme_scanner/save", changed(fields, csrf="forged"))
            assert r.status_code == 403
            r = await post(ada, "/playbooks/acme_scanner/save", fields, headers={"Origin": "https://evil.example"})
            assert r.status_code == 403 and "another site" in r.text
            r = await post(ada, "/playbooks/acme_scanner/save", {"csrf": "x", "name": "y" * 300_000})
            assert r.status_code == 403 and "larger than" in r.text
            assert (ours / "acme_scanner.yaml").read_text() == SEED
            assert live.services.audit.query(kind="playbook_saved") == []
            # signed out: to the sign-in page
            async with httpx.AsyncClient(base_url=live.url) as stranger:
                anonymous = await stranger.get("/playbooks/acme_scanner/edit")
            assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"

            # the library is read-only; a copy goes to our directory under a new id
            lib = await open_editor(ada, "/playbooks/printer/edit")
            assert 'id="read-only"' in lib and 'href="/playbooks/new?copy=printer"' in lib and 'id="save"' not in lib
            r = await post(ada, "/playbooks/printer/save", form_of(lib))
            assert r.status_code == 403 and "read-only" in r.text
            copy = await open_editor(ada, "/playbooks/new?copy=printer")
            assert 'value="printer_local"' in copy and 'id="valid"' in copy
            r = await post(ada, "/playbooks/_new/save", form_of(copy))
            assert r.status_code == 303 and (ours / "printer_local.yaml").exists()
            assert Playbook.model_validate(yaml.safe_load((ours / "printer_local.yaml").read_text())).id == \
                "printer_local"
            # unknown playbooks do not exist
            assert (await ada.get("/playbooks/nothing_here/edit")).status_code == 404
            listing = (await ada.get("/playbooks")).text
            assert 'data-id="acme_scanner"' in listing and 'data-id="printer_local"' in listing
        finally:
            for client in clients.values():
                await client.aclose()


async def test_fields_cannot_add_keys(tmp_path: Path) -> None:
    ours = seeded(tmp_path)
    async with live_server(tmp_path, playbook_dirs=[ours]) as live:
        register(live, ADA)
        ada, _ = await signed_in(live, ADA["email"])
        try:
            csrf = csrf_in(await open_editor(ada, "/playbooks/new"))
            # a one-line field with a line break is refused, with what and where
            r = await post(ada, "/playbooks/_new/save", kiosk(csrf, approve="renew_dhcp",
                                                                   name="Kiosk\nevil: true"))
            assert r.status_code == 400 and "name: must be one line" in html.unescape(r.text)
            # list and text fields keep what was typed as strings: no key, no document, no tag gets in
            evil = "kiosk frozen\n- evil: yes\nevil: true\n--- !!python/object:os.system"
            r = await post(ada, "/playbooks/_new/save", kiosk(
                csrf, approve="renew_dhcp", phrases=evil, description="Kiosk.\nevil: 1\n---\nrequires_approval: []",
                s1__reason="x: {evil: 1} # not a comment"))
            assert r.status_code == 303, problems_of(r.text) or r.text[:2000]
            text = (ours / "acme_kiosk.yaml").read_text()
            data = yaml.safe_load(text)
            assert set(data) <= set(Playbook.model_fields) and "evil" not in data
            assert data["triggers"]["phrases"] == ["kiosk frozen", "- evil: yes", "evil: true",
                                                   "--- !!python/object:os.system"]
            assert data["description"] == "Kiosk.\nevil: 1\n---\nrequires_approval: []\n"
            assert data["requires_approval"] == ["renew_dhcp"]
            assert data["steps"][1]["reason"] == "x: {evil: 1} # not a comment"
            Playbook.model_validate(data)
        finally:
            await ada.aclose()


async def test_without_a_playbook_directory_nothing_is_saved(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, ADA)
        ada, _ = await signed_in(live, ADA["email"])
        try:
            page = await open_editor(ada, "/playbooks/new")
            assert "MSPCLAW_PLAYBOOK_DIRS" in page and 'id="save"' not in page
            r = await post(ada, "/playbooks/_new/save", kiosk(csrf_in(page), approve="renew_dhcp"))
            assert r.status_code == 403 and "No playbook directory is configured" in r.text
            assert live.services.audit.query(kind="playbook_saved") == []
        finally:
            await ada.aclose()


def test_every_shipped_playbook_survives_the_form() -> None:
    """Each library playbook rendered into the editor's form, read back as a browser submits it, and written
    over its own file's text: the text comes back byte for byte (no field of any playbook is lost or changed)."""
    from mspclaw.console.builder_pages import Editor, editor_page
    from mspclaw.console.playbook_drafts import from_form, render_yaml
    from mspclaw.pipeline.access import Principal
    from mspclaw.playbooks.loader import LIBRARY

    files = sorted(LIBRARY.glob("*.yaml"))
    assert len(files) >= 16
    for path in files:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        page = editor_page(Editor(route_id=data["id"], data=data, yaml=text, filename=path.name, problems=[],
                                  book=None, library=False, save_refused=""),
                           user=Principal(name="t", scope=None), csrf="c")
        pairs = form_of(page)
        form: dict[str, list[str]] = {}
        for name, value in pairs:
            form.setdefault(name, []).append(value)
        read, problems = from_form(form)
        assert problems == [], (path.name, problems)
        assert render_yaml(read, text) == text, path.name
        changed_name = render_yaml({**read, "name": "Renamed"}, text)
        assert yaml.safe_load(changed_name) == {**data, "name": "Renamed"}, path.name
