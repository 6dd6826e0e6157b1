"""Canonical form, Ed25519 signatures, trust per tier, and the server's loader in off/warn/enforce.

Everything runs on real files with the real ``cryptography`` Ed25519 implementation; nothing external.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from tests.playbooks.registry_helpers import community_playbook, library_text, make_signer

from mspclaw.playbooks.canonical import MAX_FILE_BYTES, CanonicalError, canonical_bytes, content_hash, load_yaml
from mspclaw.playbooks.loader import LIBRARY, PlaybookError, load_file
from mspclaw.playbooks.registry import parse_file
from mspclaw.playbooks.signing import (
    SIGNATURES_FILE,
    Signature,
    SigningError,
    Trust,
    ensure_key,
    generate_key,
    public_key_of,
    read_signatures,
    sign,
    verify,
)
from mspclaw.playbooks.verified import LocalKey, load_verified_catalogue, sign_path, verify_directory


def test_canonical_form_follows_jcs() -> None:
    """RFC 8785's rules: keys by UTF-16 code units, ES6 numbers, minimal escapes, UTF-8."""
    assert canonical_bytes({"b": [1, 2.0, 1e21, 1e-7, 0.5], "a": "é\n\u2028", "\ue000": 1, "\U0001f600": 2}) == (
        '{"a":"é\\n\u2028","b":[1,2,1e+21,1e-7,0.5],"\U0001f600":2,"\ue000":1}'.encode())
    # a comment or a different layout does not change the hash; a value does
    text = library_text("wifi")
    same = "# a comment\n" + text.replace("category: wifi", "category:    wifi")
    assert content_hash(load_yaml(text, "a")) == content_hash(load_yaml(same, "b"))
    assert content_hash(load_yaml(text, "a")) != content_hash(load_yaml(text.replace("wifi", "wlan", 1), "c"))


def test_unquoted_date_has_no_canonical_form() -> None:
    with pytest.raises(CanonicalError, match=r"released: a date has no JSON form.*quote the value"):
        canonical_bytes(load_yaml("released: 2026-01-02\n", "x.yaml"))


@pytest.mark.parametrize(("text", "reason"), [
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n",
     "YAML aliases \\(\\*a\\) are not allowed"),
    ("a: " + "[" * 200 + "]" * 200 + "\n", "nested more than 32 levels deep"),
    ("a: " + "{b: " * 100 + "1" + "}" * 100 + "\n", "nested more than 32 levels deep"),
    ("a: [" + ", ".join(["1"] * 30_000) + "]\n", "more than 20000 YAML nodes"),
])
def test_yaml_bombs_are_refused_by_the_loader(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookError, match=reason):
        load_file(path)


def test_oversized_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("description: " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(PlaybookError, match=f"over the {MAX_FILE_BYTES}-byte limit"):
        load_file(path)


def test_version_is_semver(tmp_path: Path) -> None:
    path = community_playbook(tmp_path, version="2.1")
    assert load_file(path).version == "2.1.0"
    bad = community_playbook(tmp_path / "bad", version="two")
    with pytest.raises(PlaybookError, match="version: Value error, version 'two' is not a semantic version"):
        load_file(bad)


def test_sign_and_verify_each_refusal(tmp_path: Path) -> None:
    signer, stranger = make_signer(tmp_path), make_signer(tmp_path, "Stranger")
    path = community_playbook(tmp_path / "books")
    parsed = parse_file(path)
    good = sign(signer.key, playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256, signee="Acme MSP")
    trust = signer.trust()
    ok = verify([good], playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256, trust=trust)
    assert ok.ok and ok.tier == "community" and ok.signee == "Acme MSP"

    unsigned = verify([], playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256, trust=trust)
    assert unsigned.status == "unsigned" and "mspclaw playbooks sign" in unsigned.message
    altered = verify([good], playbook_id="acme_printer", version="1.1.0", sha256="sha256:" + "0" * 64, trust=trust)
    assert altered.status == "altered" and "content differs from what Acme MSP signed" in altered.message
    bumped = verify([good], playbook_id="acme_printer", version="9.0.0", sha256=parsed.sha256, trust=trust)
    assert bumped.status == "altered"
    forged = good.model_copy(update={"value": base64.b64encode(b"\x00" * 64).decode()})
    assert verify([forged], playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256,
                  trust=trust).message.endswith("does not verify")
    theirs = sign(stranger.key, playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256, signee="Stranger")
    unknown = verify([theirs], playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256, trust=trust)
    assert unknown.status == "untrusted" and "which no trust file pins" in unknown.message

    revoking = tmp_path / "revoking.json"
    revoking.write_text(json.dumps({"keys": [], "revoked": [{"sha256": parsed.sha256, "reason": "leaks data"}]}))
    revoked = verify([good], playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256,
                     trust=Trust.load(signer.trust_file, revoking))
    assert revoked.status == "revoked" and revoked.message.startswith("leaks data; remove it")
    dead_key = tmp_path / "dead.json"
    dead_key.write_text(json.dumps({"keys": [{"name": "Acme MSP", "tier": "community", "public_key": signer.public,
                                              "revoked": True}]}))
    assert verify([good], playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256,
                  trust=Trust.load(dead_key)).status == "untrusted"


def test_the_strongest_tier_wins_and_keys_are_never_overwritten(tmp_path: Path) -> None:
    local, official = make_signer(tmp_path, "Local", "local"), make_signer(tmp_path, "Vendor", "official")
    parsed = parse_file(community_playbook(tmp_path / "books"))
    sigs = [sign(k.key, playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256, signee=n)
            for k, n in ((local, "Local"), (official, "Vendor"))]
    verdict = verify(sigs, playbook_id="acme_printer", version="1.1.0", sha256=parsed.sha256,
                     trust=Trust.load(local.trust_file, official.trust_file))
    assert verdict.tier == "official"
    with pytest.raises(SigningError, match="exists; choose another file"):
        generate_key(tmp_path / "Local.key")


def test_bad_trust_and_signature_files_say_where(tmp_path: Path) -> None:
    bad = tmp_path / "trust.json"
    bad.write_text(json.dumps({"keys": [{"name": "x", "tier": "gold", "public_key": "AAAA"}]}))
    with pytest.raises(SigningError, match=r"keys\.0\.tier: Input should be 'official', 'community' or 'local'"):
        Trust.load(bad)
    bad.write_text(json.dumps({"keys": [{"name": "x", "tier": "local", "public_key": "bm90IGEga2V5"}]}))
    with pytest.raises(SigningError, match="public_key is not a base64 Ed25519 public key"):
        Trust.load(bad)
    (tmp_path / SIGNATURES_FILE).write_text('{"a": [{"type": "jss"}]}')
    with pytest.raises(SigningError, match=r"signatures\.json: a: id: Field required"):
        read_signatures(tmp_path)


def test_the_shipped_library_verifies_with_the_shipped_official_key() -> None:
    """Fails when a library playbook changed and `make sign-library` was not run."""
    checked = verify_directory(LIBRARY, Trust.load())
    bad = [c.line() for c in checked if not c.verdict.ok]
    assert not bad, "run `make sign-library` (docs/playbook-registry.md):\n" + "\n".join(bad)
    assert {c.verdict.tier for c in checked} == {"official"} and len(checked) == 16
    assert not [c for c in verify_directory(LIBRARY, Trust.load(official=False)) if c.verdict.ok]


def test_loader_off_warn_enforce(tmp_path: Path) -> None:
    """Under enforce each playbook that does not verify is left out, the others load, and each refusal names the
    file, why, and the command that fixes it; warn loads them and says the same; off checks nothing."""
    signer = make_signer(tmp_path)
    books = tmp_path / "books"
    community_playbook(books)
    community_playbook(books, book="wifi", new_id="acme_wifi", version="1.0.0")
    sign_path(books / "acme_printer.yaml", signer.key, signee="Acme MSP")
    # acme_wifi unsigned; acme_printer signed by a key only the trust file pins
    # the library (library=None) is left out here: its own test is the one above
    off = load_verified_catalogue([books], mode="off", library=None)
    assert len(off.books) == 2 and off.refused == []
    warned = load_verified_catalogue([books], mode="warn", trust_files=[signer.trust_file], library=None)
    assert len(warned.books) == 2 and [r.book_id for r in warned.refused] == ["acme_wifi"]
    assert "acme_wifi 1.0.0: unsigned" in warned.refused[0].line()

    own = LocalKey(tmp_path / "own.key", ensure_key(tmp_path / "own.key"))
    enforced = load_verified_catalogue([books], mode="enforce", library=None, local_key=own)
    assert enforced.books == [] and {r.book_id: r.status for r in enforced.refused} == {
        "acme_printer": "untrusted", "acme_wifi": "unsigned"}
    lines = {r.book_id: r.line() for r in enforced.refused}
    assert lines["acme_wifi"].startswith(f"{books / 'acme_wifi.yaml'}: playbook acme_wifi 1.0.0: unsigned")
    assert f"`mspclaw playbooks sign {books / 'acme_wifi.yaml'} --key {own.path}`" in lines["acme_wifi"]
    assert "signed by a key not trusted" in lines["acme_printer"] and "MSPCLAW_PLAYBOOK_TRUSTED_KEYS" in \
        lines["acme_printer"]

    # the one that verifies loads; the other stays out
    sign_path(books / "acme_wifi.yaml", own.key, signee="Acme MSP")
    partly = load_verified_catalogue([books], mode="enforce", library=None, local_key=own)
    assert [b.id for b in partly.books] == ["acme_wifi"] and [r.book_id for r in partly.refused] == ["acme_printer"]
    both = load_verified_catalogue([books], mode="enforce", trust_files=[signer.trust_file], library=None,
                                   local_key=own)
    assert len(both.books) == 2 and both.refused == []
    # a trust file's own entry for the MSP's key wins: revoked there, it is not trusted
    revoked = tmp_path / "revoked-own.json"
    revoked.write_text(json.dumps({"keys": [{"name": "old own key", "tier": "local", "revoked": True,
                                             "public_key": public_key_of(own.key)}]}))
    out = load_verified_catalogue([books], mode="enforce", trust_files=[revoked], library=None, local_key=own)
    assert [r.book_id for r in out.refused] == ["acme_printer", "acme_wifi"]
    assert "which is revoked" in out.refused[1].detail

    # altered after signing: a value changed, the signature no longer covers it
    path = books / "acme_wifi.yaml"
    path.write_text(path.read_text().replace("name: ", "name: Evil ", 1))
    altered = load_verified_catalogue([books], mode="enforce", trust_files=[signer.trust_file], library=None,
                                      local_key=own)
    assert [b.id for b in altered.books] == ["acme_printer"]
    (line,) = [r.line() for r in altered.refused]
    assert "acme_wifi 1.0.0: altered since it was signed (the content differs" in line
    assert "if you made the change, sign it again: `mspclaw playbooks sign" in line

    # an altered library file is refused with the shipped library's own fix
    library = tmp_path / "library"
    library.mkdir()
    (library / "wifi.yaml").write_text(library_text("wifi").replace("name: ", "name: Evil ", 1))
    (library / SIGNATURES_FILE).write_text((LIBRARY / SIGNATURES_FILE).read_text())
    shipped = load_verified_catalogue([], mode="enforce", library=library, local_key=own)
    assert shipped.books == [] and "reinstall mspclaw" in shipped.refused[0].fix
    assert shipped.refused[0].status == "altered"
    # the MSP's own key does not vouch for the shipped library: only a key at tier official does
    sign_path(library / "wifi.yaml", own.key, signee="Acme MSP")
    assert load_verified_catalogue([library], mode="enforce", library=None, local_key=own).refused == []
    resigned = load_verified_catalogue([], mode="enforce", library=library, local_key=own)
    assert resigned.books == [] and "reinstall mspclaw" in resigned.refused[0].fix


def test_signatures_file_keeps_other_keys_and_does_not_churn(tmp_path: Path) -> None:
    first, second = make_signer(tmp_path, "First"), make_signer(tmp_path, "Second")
    books = tmp_path / "books"
    community_playbook(books)
    sign_path(books, first.key, signee="First")
    sign_path(books, second.key, signee="Second")
    before = (books / SIGNATURES_FILE).read_text()
    sign_path(books, second.key, signee="Second")
    assert (books / SIGNATURES_FILE).read_text() == before
    sigs = read_signatures(books)["acme_printer"]
    assert sorted(s.signee for s in sigs) == ["First", "Second"]
    assert all(isinstance(s, Signature) and s.type == "jss" and s.algorithm == "Ed25519" for s in sigs)
