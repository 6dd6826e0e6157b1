"""Shared set-up for the registry tests: a signed directory of playbooks, keys, trust files, a registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mspclaw.playbooks.loader import LIBRARY
from mspclaw.playbooks.registry import build, dumps
from mspclaw.playbooks.signing import Tier, Trust, generate_key, load_private_key
from mspclaw.playbooks.verified import sign_path


@dataclass
class Signer:
    key: Ed25519PrivateKey
    public: str
    trust_file: Path

    def trust(self) -> Trust:
        return Trust.load(self.trust_file)


def make_signer(tmp: Path, name: str = "Acme MSP", tier: Tier = "community") -> Signer:
    key_path = tmp / f"{name.replace(' ', '_')}.key"
    public = generate_key(key_path)
    trust_file = tmp / f"{name.replace(' ', '_')}-trust.json"
    trust_file.write_text(json.dumps({"keys": [{"name": name, "tier": tier, "public_key": public}]}))
    return Signer(load_private_key(key_path), public, trust_file)


def library_text(book: str) -> str:
    return (LIBRARY / f"{book}.yaml").read_text(encoding="utf-8")


def community_playbook(directory: Path, *, book: str = "printer", new_id: str = "acme_printer",
                       version: str = "1.1.0", edit: tuple[str, str] | None = None) -> Path:
    """A copy of a shipped playbook under another id and version (and one textual edit)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = library_text(book).replace(f"id: {book}\n", f"id: {new_id}\n", 1)
    text = text.replace('version: "1"\n', f'version: "{version}"\n', 1)
    if edit is not None:
        assert edit[0] in text, edit
        text = text.replace(*edit)
    path = directory / f"{new_id}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def publish(directory: Path, signer: Signer, *, tier: Tier = "community") -> Path:
    """Sign every playbook of ``directory`` and write its registry beside them."""
    sign_path(directory, signer.key, signee="Acme MSP")
    out = directory / "playbook-registry.json"
    out.write_text(dumps(build(directory, tier=tier)), encoding="utf-8")
    return out


async def wait_for(check: Callable[[], object], timeout_s: float = 15.0) -> bool:
    """Whether ``check()`` turned true within ``timeout_s`` (polled every 50 ms)."""
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return False
