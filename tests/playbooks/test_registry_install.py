"""Registries, installs, updates and removals, and every refusal leaving the install directory untouched.

Registries are served by a real HTTP server on loopback (``http.server`` from the standard library,
serving the published directory as a static site would) or read from a path; the time-out case is a
loopback socket that accepts the connection and never answers. Commands run through Typer's runner
in process; the audit trail is the real store in a temporary data directory (SQLite).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.playbooks.registry_helpers import Signer, community_playbook, make_signer, publish
from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.playbooks.canonical import MAX_FILE_BYTES, content_hash, load_yaml
from mspclaw.playbooks.install import InstallError, commit, fetcher, open_registry, prepare, record_revocations, shown
from mspclaw.playbooks.registry import Registry, RegistryError, build, dumps, parse_registry, seal
from mspclaw.playbooks.signing import SIGNATURES_FILE, sign
from mspclaw.playbooks.verified import load_verified_catalogue
from mspclaw.settings import Settings
from mspclaw.wiring import open_store

runner = CliRunner()


def invoke(*args: str, data_dir: Path, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["playbooks", *args], input=stdin,
                           env={"MSPCLAW_DATA_DIR": str(data_dir), "COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never sends a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/playbook-registry.json"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())} if directory.exists() else {}


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return make_signer(tmp_path)


def test_install_over_http_shows_permissions_and_is_audited(tmp_path: Path, signer: Signer) -> None:
    pub, target, data = tmp_path / "pub", tmp_path / "installed", tmp_path / "data"
    community_playbook(pub, book="account_locked", new_id="acme_unlock")
    publish(pub, signer)
    with serve(pub) as base:
        code, out, err = invoke("search", "unlock", "-r", base + "playbook-registry.json", data_dir=data)
        assert code == 0 and "acme_unlock" in out, err
        args = ["install", "acme_unlock", "-r", base + "playbook-registry.json", "--dir", str(target),
                "--trusted-keys", str(signer.trust_file)]
        code, out, err = invoke(*args, data_dir=data, stdin="n\n")
        assert code == 1 and "nothing installed" in err and not target.exists()
        # the permissions were shown before the question: tools, approvals and the directory rights, with why
        assert "unlock_account" in out and "Read/write lockoutTime" in out and "clear the lockout" in out
        code, out, err = invoke(*args, data_dir=data, stdin="y\n")
    assert code == 0, err
    assert sorted(p.name for p in target.iterdir()) == ["acme_unlock.yaml", SIGNATURES_FILE]
    code, _, _ = invoke("verify", str(target), "--trusted-keys", str(signer.trust_file), data_dir=data)
    assert code == 0
    settings = Settings(data_dir=data)
    db, audit = open_store(settings)
    try:
        (event,) = audit.query(kind="playbook_installed")
    finally:
        audit.close()
        db.dispose()
    assert event.actor == "cli" and event.data["playbook"] == "acme_unlock" and event.data["version"] == "1.1.0"
    assert event.data["destructive"] == ["unlock_account"] and event.data["tier"] == "community"


def test_update_refuses_downgrade_and_asks_again_when_permissions_widen(tmp_path: Path, signer: Signer) -> None:
    pub, target, data = tmp_path / "pub", tmp_path / "installed", tmp_path / "data"
    community_playbook(pub, book="wifi", new_id="acme_wifi", version="1.0.0")
    registry = str(publish(pub, signer))
    trust = ["--trusted-keys", str(signer.trust_file)]
    assert invoke("install", "acme_wifi", "-r", registry, "--dir", str(target), "--yes", *trust, data_dir=data)[0] == 0
    # 1.1.0 adds a destructive tool: the update shows it and asks
    text = (pub / "acme_wifi.yaml").read_text().replace('version: "1.0.0"', 'version: "1.1.0"')
    assert "tools: [" in text
    text = text.replace("tools: [", "tools: [clear_temp_files, ", 1).replace(
        "requires_approval: [", "requires_approval: [clear_temp_files, ", 1)
    (pub / "acme_wifi.yaml").write_text(text)
    publish(pub, signer)
    before = snapshot(target)
    code, out, err = invoke("update", "-r", registry, "--dir", str(target), *trust, data_dir=data, stdin="n\n")
    assert code == 1 and "needs more than before" in out and "new: destructive:clear_temp_files" in out
    assert snapshot(target) == before
    code, out, err = invoke("update", "-r", registry, "--dir", str(target), *trust, data_dir=data, stdin="y\n")
    assert code == 0 and "update acme_wifi 1.0.0 -> 1.1.0" in out, err
    assert 'version: "1.1.0"' in (target / "acme_wifi.yaml").read_text()
    # the registry goes back to 1.0.0: a downgrade, refused
    (pub / "acme_wifi.yaml").write_text(text.replace('version: "1.1.0"', 'version: "1.0.0"'))
    publish(pub, signer)
    before = snapshot(target)
    code, _, err = invoke("update", "acme_wifi", "-r", registry, "--dir", str(target), *trust, data_dir=data)
    assert code == 1 and "1.1.0 is installed" in err and "refusing a downgrade" in err
    assert snapshot(target) == before
    # removal
    code, out, _ = invoke("remove", "acme_wifi", "--dir", str(target), "--yes", data_dir=data)
    assert code == 0 and not (target / "acme_wifi.yaml").exists()
    assert json.loads((target / SIGNATURES_FILE).read_text()) == {}


def _registry_for(pub: Path, text: str, signer: Signer, *, book_id: str = "acme_printer",
                  version: str = "1.1.0") -> str:
    """A registry whose one entry carries ``text`` with a correct hash and a valid signature: only the
    playbook itself can be what is refused."""
    pub.mkdir(parents=True, exist_ok=True)
    (pub / f"{book_id}.yaml").write_text(text)
    good = pub.parent / "good"
    community_playbook(good)
    registry = build(good, tier="community")
    sha = content_hash(load_yaml(text, "x"))
    sig = sign(signer.key, playbook_id=book_id, version=version, sha256=sha, signee="Acme MSP")
    entry = registry.playbooks[0].model_copy(update={"sha256": sha, "signatures": [sig], "path": f"{book_id}.yaml"})
    out = pub / "playbook-registry.json"
    out.write_text(dumps(seal("community", [entry])))
    return str(out)


@pytest.mark.parametrize(("edit", "reason"), [
    (("tools: [", "tools: [format_disk, "), "unknown tool 'format_disk'"),
    (("requires_approval: [clear_print_queue, restart_print_spooler]", "requires_approval: [restart_print_spooler]"),
     "tool 'clear_print_queue' changes the machine or an account: list it in requires_approval"),
])
def test_playbooks_outside_the_rules_are_refused(tmp_path: Path, signer: Signer, edit: tuple[str, str],
                                                  reason: str) -> None:
    text = community_playbook(tmp_path / "src", edit=edit).read_text()
    registry = _registry_for(tmp_path / "pub", text, signer)
    target = tmp_path / "installed"
    code, _, err = invoke("install", "acme_printer", "-r", registry, "--dir", str(target), "--yes",
                          "--trusted-keys", str(signer.trust_file), data_dir=tmp_path / "data")
    assert code == 1 and "not a valid playbook" in err and reason in err
    assert not target.exists()


@pytest.mark.parametrize("bomb", [
    "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n",
    "a: " + "[" * 100 + "]" * 100 + "\n",
])
def test_yaml_bombs_from_a_registry_are_refused(tmp_path: Path, signer: Signer, bomb: str) -> None:
    pub = tmp_path / "pub"
    pub.mkdir()
    (pub / "acme_printer.yaml").write_text(bomb)
    good = tmp_path / "good"
    community_playbook(good)
    entry = build(good, tier="community").playbooks[0]
    (pub / "playbook-registry.json").write_text(dumps(seal("community", [entry])))
    with pytest.raises(InstallError, match=r"aliases|nested more than 32"):
        prepare(open_registry(str(pub / "playbook-registry.json"), fetcher()), str(pub / "playbook-registry.json"),
                "acme_printer", target=tmp_path / "installed", trust=signer.trust(), fetch=fetcher())
    assert not (tmp_path / "installed").exists()


def test_oversized_playbook_over_http_is_cut_off(tmp_path: Path, signer: Signer) -> None:
    pub = tmp_path / "pub"
    community_playbook(pub)
    publish(pub, signer)
    (pub / "acme_printer.yaml").write_text("x: " + "y" * (MAX_FILE_BYTES + 10))
    with serve(pub) as base:
        registry = open_registry(base + "playbook-registry.json", fetcher())
        with pytest.raises(InstallError, match=f"more than {MAX_FILE_BYTES} bytes; refusing it"):
            prepare(registry, base + "playbook-registry.json", "acme_printer", target=tmp_path / "installed",
                    trust=signer.trust(), fetch=fetcher())


def test_registry_with_a_bad_hash_an_unknown_key_or_an_altered_file(tmp_path: Path, signer: Signer) -> None:
    pub, target, data = tmp_path / "pub", tmp_path / "installed", tmp_path / "data"
    community_playbook(pub)
    registry = publish(pub, signer)
    trust = ["--trusted-keys", str(signer.trust_file)]
    assert invoke("verify", str(registry), *trust, data_dir=data)[0] == 0  # the registry file verifies as a whole
    assert invoke("verify", str(registry), data_dir=data)[0] == 1  # ... only with the key pinned
    # signed by a key this MSP does not pin
    code, _, err = invoke("install", "acme_printer", "-r", str(registry), "--dir", str(target), "--yes",
                          data_dir=data)
    assert code == 1 and "untrusted: signed by key" in err and "no trust file pins" in err
    # the index edited after it was built
    data_json = json.loads(registry.read_text())
    data_json["playbooks"][0]["permissions"]["destructive"] = []
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data_json))
    code, _, err = invoke("install", "acme_printer", "-r", str(tampered), "--dir", str(target), "--yes", *trust,
                          data_dir=data)
    assert code == 1 and "the registry's hash does not match its content" in err
    # the playbook file changed after the registry was built
    path = pub / "acme_printer.yaml"
    path.write_text(path.read_text().replace("name: ", "name: Evil ", 1))
    code, out, _ = invoke("verify", str(registry), *trust, data_dir=data)
    assert code == 1 and "altered" in out and "is not the content the registry lists" in out
    code, _, err = invoke("install", "acme_printer", "-r", str(registry), "--dir", str(target), "--yes", *trust,
                          data_dir=data)
    assert code == 1 and "content hash sha256:" in err and "is not the registry's" in err
    assert not target.exists()


def test_revoked_entries_are_refused_and_recorded_on_update(tmp_path: Path, signer: Signer) -> None:
    pub, target, data = tmp_path / "pub", tmp_path / "installed", tmp_path / "data"
    community_playbook(pub)
    registry = publish(pub, signer)
    trust = ["--trusted-keys", str(signer.trust_file)]
    assert invoke("install", "acme_printer", "-r", str(registry), "--dir", str(target), "--yes", *trust,
                  data_dir=data)[0] == 0
    sha = json.loads(registry.read_text())["playbooks"][0]["sha256"]
    (pub / "revoked.json").write_text(json.dumps({"revoked": [{"sha256": sha, "reason": "deletes spooled files"}]}))
    publish(pub, signer)
    code, _, err = invoke("update", "-r", str(registry), "--dir", str(target), *trust, data_dir=data)
    assert "as installed is revoked by the registry: deletes spooled files" in err
    code, out, _ = invoke("verify", str(target), *trust, data_dir=data)
    assert code == 1 and "revoked" in out
    (target / "acme_printer.yaml").unlink()
    code, _, err = invoke("install", "acme_printer", "-r", str(registry), "--dir", str(target), "--yes", *trust,
                          data_dir=data)
    assert code == 1 and "every version in" in err and "deletes spooled files" in err


def test_a_registry_url_that_never_answers_times_out(tmp_path: Path) -> None:
    with silent_server() as url:
        started = time.monotonic()
        with pytest.raises(InstallError, match=r"no answer within 0.5 s \(ReadTimeout\)"):
            open_registry(url, fetcher(timeout_s=0.5))
        assert time.monotonic() - started < 5
        code, _, err = invoke("search", "-r", url, "--fetch-timeout", "0.5", data_dir=tmp_path / "data")
    assert code == 1 and "no answer within 0.5 s" in err


def test_registry_shape_and_size_limits() -> None:
    with pytest.raises(RegistryError, match="over the 4194304-byte limit"):
        parse_registry(b" " * (4 * 1024 * 1024 + 1), "big.json")
    with pytest.raises(RegistryError, match=r"format: Input should be 'mspclaw-playbook-registry/1'"):
        parse_registry(b'{"format": "other", "generated_at": "x", "tier": "local", "playbooks": [], '
                       b'"sha256": "sha256:' + b"0" * 64 + b'"}', "r.json")
    assert isinstance(parse_registry(dumps(seal("local", [])).encode(), "empty.json"), Registry)


def test_a_revoked_version_no_longer_listed_still_reaches_installed_copies(tmp_path: Path, signer: Signer) -> None:
    pub, target = tmp_path / "pub", tmp_path / "installed"
    community_playbook(pub)
    registry = publish(pub, signer)
    offer = prepare(open_registry(str(registry), fetcher()), str(registry), "acme_printer", target=target,
                    trust=signer.trust(), fetch=fetcher())
    commit(offer, target)
    old_sha = offer.entry.sha256
    # 1.2.0 replaces the file; 1.1.0 is revoked but no longer has an entry of its own
    community_playbook(pub, version="1.2.0")
    (pub / "revoked.json").write_text(json.dumps({"revoked": [{"sha256": old_sha, "reason": "bad queue logic"}]}))
    newer = parse_registry(publish(pub, signer).read_bytes(), "r")
    assert [e.version for e in newer.playbooks] == ["1.2.0"] and newer.revoked[0].sha256 == old_sha
    (hit,) = record_revocations(newer, target)
    assert hit.book.version == "1.1.0"
    loaded = load_verified_catalogue([target], mode="enforce", trust_files=[signer.trust_file], library=None)
    (refused,) = loaded.refused
    assert loaded.books == [] and refused.status == "revoked"
    assert "acme_printer 1.1.0: revoked (bad queue logic" in refused.line()
    assert f"mspclaw playbooks remove acme_printer --dir {target}" in refused.fix


def test_without_a_reachable_store_the_install_is_logged_beside_the_playbooks(tmp_path: Path, signer: Signer) -> None:
    pub, target = tmp_path / "pub", tmp_path / "installed"
    community_playbook(pub)
    registry = publish(pub, signer)
    not_a_dir = tmp_path / "data-is-a-file"
    not_a_dir.write_text("")
    code, _, err = invoke("install", "acme_printer", "-r", str(registry), "--dir", str(target), "--yes",
                          "--trusted-keys", str(signer.trust_file), data_dir=not_a_dir)
    assert code == 0 and "the audit store is not reachable" in err
    (line,) = (target / "install-log.jsonl").read_text().splitlines()
    assert json.loads(line)["kind"] == "playbook_installed" and json.loads(line)["version"] == "1.1.0"


def test_registry_urls_are_shown_without_credentials() -> None:
    assert shown("https://bob:token@example.com:8443/x/reg.json?sig=abc") == "https://example.com:8443/x/reg.json"
    assert shown("/srv/playbooks/playbook-registry.json") == "/srv/playbooks/playbook-registry.json"
